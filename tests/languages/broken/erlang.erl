main(_) -> io:format("a~n")
