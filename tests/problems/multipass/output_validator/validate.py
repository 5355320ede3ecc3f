import os, sys
inp, ans, fb = sys.argv[1:4]
n = int(open(inp).read())
got = int(sys.stdin.read().split()[0])
if got != n + 1:
    open(fb + 'judgemessage.txt', 'a').write(f'pass with {n}: got {got}\n')
    sys.exit(43)
open(fb + 'judgemessage.txt', 'a').write(f'pass with {n} ok\n')
if n < 7:
    open(fb + 'nextpass.in', 'w').write(f'{n + 1}\n')
sys.exit(42)
