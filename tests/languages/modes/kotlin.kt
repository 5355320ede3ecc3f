import kotlin.system.exitProcess

fun main() {
    when (readLine()) {
        "hello" -> println("hello")
        "echo" -> print(System.`in`.bufferedReader().readText())
        "re" -> throw IllegalStateException("boom")
        "cpu" -> { var x = 0L; while (x >= 0) x++ }
        "sleep" -> Thread.sleep(30000)
        "mle" -> {
            val hold = ArrayList<ByteArray>()
            while (true) { val b = ByteArray(16 shl 20); b.fill(1); hold.add(b) }
        }
        "ole" -> { val s = "x".repeat(65536); while (true) print(s) }
        "exit" -> exitProcess(3)
    }
}
