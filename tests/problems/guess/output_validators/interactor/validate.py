import sys
secret = int(open(sys.argv[1]).read())
fb = sys.argv[3]
for turn in range(20):
    line = sys.stdin.readline()
    if not line:
        open(fb + 'judgemessage.txt', 'w').write('the submission stopped talking')
        sys.exit(43)
    g = int(line)
    if g == secret:
        print('correct', flush=True)
        sys.exit(42)
    print('lower' if secret < g else 'higher', flush=True)
open(fb + 'judgemessage.txt', 'w').write('too many guesses')
sys.exit(43)
