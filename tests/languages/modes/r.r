con <- file("stdin")
open(con)
mode <- readLines(con, n = 1)
if (mode == "hello") {
  cat("hello\n")
} else if (mode == "echo") {
  rest <- readLines(con)
  cat(paste0(rest, "\n"), sep = "")
} else if (mode == "re") {
  stop("boom")
} else if (mode == "cpu") {
  x <- 0
  while (x >= 0) x <- x + 1
} else if (mode == "sleep") {
  Sys.sleep(30)
} else if (mode == "mle") {
  hold <- list()
  repeat hold[[length(hold) + 1]] <- rep(1.5, 2 * 1024 * 1024)
} else if (mode == "ole") {
  s <- strrep("x", 65536)
  repeat cat(s)
} else if (mode == "exit") {
  quit(status = 3)
}
