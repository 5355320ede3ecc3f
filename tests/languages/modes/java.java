import java.io.*;
import java.util.*;

public class Main {
    static volatile long counter;

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String mode = in.readLine();
        if (mode.equals("hello")) System.out.println("hello");
        else if (mode.equals("echo")) {
            String line;
            while ((line = in.readLine()) != null) System.out.println(line);
        }
        else if (mode.equals("re")) throw new IllegalStateException("boom");
        else if (mode.equals("cpu")) { while (counter >= 0) counter++; }
        else if (mode.equals("sleep")) Thread.sleep(30000);
        else if (mode.equals("mle")) {
            List<long[]> hold = new ArrayList<>();
            while (hold.size() >= 0) hold.add(new long[2 << 20]);
        }
        else if (mode.equals("ole")) {
            PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false);
            byte[] b = new byte[65536];
            Arrays.fill(b, (byte) 'x');
            while (!out.checkError()) out.write(b, 0, b.length);
        }
        else if (mode.equals("exit")) System.exit(3);
    }
}
