void main() { int x = "s"; }
