object Main {
  def main(args: Array[String]): Unit = {
    val lines = scala.io.Source.stdin.getLines()
    lines.next() match {
      case "hello" => println("hello")
      case "echo" => lines.foreach(println)
      case "re" => throw new IllegalStateException("boom")
      case "cpu" => { var x = 0L; while (x >= 0) x += 1 }
      case "sleep" => Thread.sleep(30000)
      case "mle" =>
        val hold = new java.util.ArrayList[Array[Byte]]()
        while (true) { val b = new Array[Byte](16 << 20); java.util.Arrays.fill(b, 1.toByte); hold.add(b) }
      case "ole" => { val s = "x" * 65536; while (true) print(s) }
      case "exit" => sys.exit(3)
      case _ =>
    }
  }
}
