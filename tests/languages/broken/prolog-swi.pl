main :- write(a
