import sys
import time

secret = int(open(sys.argv[1]).read())
fb = sys.argv[3]
for turn in range(20):
    line = sys.stdin.readline()
    if not line:
        open(fb + 'judgemessage.txt', 'w').write('the submission stopped talking')
        # A moment before judging, so that the submission's end (which gave this EOF) is
        # seen first even on a busy machine: its own failure then decides, as it should
        time.sleep(0.2)
        sys.exit(43)
    g = int(line)
    if g == secret:
        print('correct', flush=True)
        sys.exit(42)
    print('lower' if secret < g else 'higher', flush=True)
open(fb + 'judgemessage.txt', 'w').write('too many guesses')
sys.exit(43)
