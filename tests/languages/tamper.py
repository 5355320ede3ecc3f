# Checks that input.txt holds this test's input, then overwrites it and unlinks it.
import os
import sys

data = sys.stdin.read()
with open("input.txt") as f:
    seen = f.read()
for attempt in (lambda: open("input.txt", "w").write("999\n"), lambda: os.unlink("input.txt"),
                lambda: open("input.txt", "w").write("999\n")):
    try:
        attempt()
    except OSError:
        pass
print(int(data) * 2 if seen == data else "input.txt was changed by an earlier test")
