object Doubler {
  def main(args: Array[String]): Unit = {
    println(Twice(scala.io.StdIn.readLine().trim.toInt))
  }
}
