% SWI-Prolog as problemtools runs it: the program defines main/0, the goal the compiler
% makes the entry point (-g main); an error it leaves uncaught ends it with a non-zero status.
main :-
    read_line(Mode),
    run(Mode).

read_line(Codes) :-
    get_code(C),
    (   C =:= -1 -> Codes = []
    ;   C =:= 0'\n -> Codes = []
    ;   Codes = [C|Rest], read_line(Rest)
    ).

run(`hello`) :- !, write(hello), nl.
run(`echo`) :- !, echo.
run(`re`) :- !, X is 1 // 0, write(X).
run(`cpu`) :- !, spin(0).
run(`sleep`) :- !, sleep(30).
run(`mle`) :- !, grow([]).
run(`ole`) :- !, length(L, 4096), maplist(=(0'x), L), atom_codes(S, L), ole(S).
run(`exit`) :- !, halt(3).
run(_).

echo :- get_code(C), ( C =:= -1 -> true ; put_code(C), echo ).

spin(N) :- N >= 0, N1 is N + 1, spin(N1).

grow(Hold) :- length(L, 100000), grow([L|Hold]).

ole(S) :- write(S), ole(S).
