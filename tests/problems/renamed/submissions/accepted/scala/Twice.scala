object Twice {
  def apply(x: Int): Int = 2 * x
}
