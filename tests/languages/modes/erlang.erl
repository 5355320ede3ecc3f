main(_) ->
    Mode = string:trim(io:get_line("")),
    run(Mode).

run("hello") -> io:format("hello~n");
run("echo") -> echo();
run("re") -> erlang:error(boom);
run("cpu") -> spin(0);
run("sleep") -> timer:sleep(30000);
run("mle") -> grow([]);
run("ole") -> S = binary:copy(<<"x">>, 65536), ole(S);
run("exit") -> halt(3);
run(_) -> ok.

echo() ->
    case io:get_chars("", 65536) of
        eof -> ok;
        Data -> io:put_chars(Data), echo()
    end.

spin(N) when N >= 0 -> spin(N + 1);
spin(N) -> N.

grow(Hold) -> grow([<<1:(128 bsl 20)>> | Hold]).

ole(S) -> io:put_chars(S), ole(S).
