:- use_module(arith).

main :-
    read_line_to_string(user_input, Line),
    number_string(N, Line),
    twice(N, M),
    write(M), nl.
