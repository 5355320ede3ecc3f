import core.thread : Thread;
import core.time : seconds;
import std.stdio;
import std.string : strip;

int main() {
    string mode = readln().strip;
    switch (mode) {
    case "hello": writeln("hello"); break;
    case "echo": foreach (line; stdin.byLine(KeepTerminator.yes)) write(line); break;
    case "re": throw new Exception("boom");
    case "cpu": { ulong x = 0; while (x != ulong.max) { x++; if (x == 1UL << 62) writeln(x); } break; }
    case "sleep": Thread.sleep(30.seconds); break;
    case "mle": {
        ubyte[][] hold;
        for (;;) { auto b = new ubyte[16 << 20]; b[] = 1; hold ~= b; }
    }
    case "ole": {
        char[65536] b = 'x';
        for (;;) stdout.rawWrite(b[]);
    }
    case "exit": return 3;
    default: break;
    }
    return 0;
}
