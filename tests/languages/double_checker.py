# testlib-style: checker INPUT OUTPUT ANSWER; the output must be twice the input and the answer.
import sys

inp, out, ans = (open(p).read().split() for p in sys.argv[1:4])
if out == ans and out == [str(2 * int(inp[0]))]:
    sys.exit(0)
print(f"input {inp} output {out} answer {ans}")
sys.exit(1)
