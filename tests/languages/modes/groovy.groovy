def mode = System.in.newReader().with { r ->
    def m = r.readLine()
    switch (m) {
        case "hello": println "hello"; break
        case "echo": print r.text; break
        case "re": throw new IllegalStateException("boom")
        case "cpu": long x = 0; while (x >= 0) x++; break
        case "sleep": Thread.sleep(30000); break
        case "mle":
            def hold = []
            while (true) { byte[] b = new byte[16 << 20]; Arrays.fill(b, (byte) 1); hold << b }
        case "ole": def s = "x" * 65536; while (true) print s
        case "exit": System.exit(3)
    }
}
