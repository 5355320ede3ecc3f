import sys

# The score is the number printed, at most the input's; a negative number is rejected.
cap = int(open(sys.argv[1]).read())
got = int(sys.stdin.read().split()[0])
if got < 0:
    sys.exit(43)
open(sys.argv[3] + "score.txt", "w").write(str(min(got, cap)))
sys.exit(42)
