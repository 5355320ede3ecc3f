using System;
using System.Collections.Generic;
using System.Threading;

public class Program {
    public static int Main() {
        string mode = Console.ReadLine();
        switch (mode) {
        case "hello": Console.WriteLine("hello"); break;
        case "echo": Console.Write(Console.In.ReadToEnd()); break;
        case "re": throw new InvalidOperationException("boom");
        case "cpu": { long x = 0; while (x >= 0) x++; break; }
        case "sleep": Thread.Sleep(30000); break;
        case "mle": {
            var hold = new List<byte[]>();
            for (;;) { var b = new byte[16 << 20]; for (int i = 0; i < b.Length; i += 4096) b[i] = 1; hold.Add(b); }
        }
        case "ole": {
            var s = new string('x', 65536);
            for (;;) Console.Write(s);
        }
        case "exit": return 3;
        }
        return 0;
    }
}
