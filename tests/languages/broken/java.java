public class Main { void f() { int x = "s"; } }
