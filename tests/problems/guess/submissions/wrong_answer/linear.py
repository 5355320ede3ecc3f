import sys

# Guesses 1, 2, 3...: more guesses than the interactor allows. It stops quietly at EOF, so the
# verdict is WA however its end and the interactor's are ordered.
for g in range(1, 1001):
    print(g, flush=True)
    if sys.stdin.readline().strip() in ("correct", ""):
        break
