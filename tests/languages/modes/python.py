import sys
import time

mode = sys.stdin.readline().strip()
if mode == "hello":
    print("hello")
elif mode == "echo":
    sys.stdout.write(sys.stdin.read())
elif mode == "re":
    raise RuntimeError("boom")
elif mode == "cpu":
    while True:
        pass
elif mode == "sleep":
    time.sleep(30)
elif mode == "mle":
    hold = []
    while True:
        hold.append(b"x" * (16 << 20))
elif mode == "ole":
    while True:
        sys.stdout.write("x" * 65536)
elif mode == "exit":
    sys.exit(3)
