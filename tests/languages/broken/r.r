cat("a"
