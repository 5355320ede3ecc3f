import sys
inp, ans, fb = sys.argv[1:4]
data = open(inp).read()
if 'crash' in data:
    raise RuntimeError('the validator has a bug')
got = sys.stdin.read().split()
ok = got == open(ans).read().split()
open(fb + 'judgemessage.txt', 'w').write('judged: ' + ('fine' if ok else 'wrong'))
open(fb + 'teammessage.txt', 'w').write('hello team')
sys.exit(42 if ok else 43)
