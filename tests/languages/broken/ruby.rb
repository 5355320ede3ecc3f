puts("a"
