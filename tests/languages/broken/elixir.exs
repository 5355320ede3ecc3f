IO.puts("a"
