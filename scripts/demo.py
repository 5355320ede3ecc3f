"""Sandbox real programs through the library and show the verdicts.

Run as root, through scripts/demo.sh (which sets up .venv first). Every hostile program has a
cap of its own, so that even without the sandbox it would stop: the memory hog at 1 GiB, the
infinite loop after 20 s, the fork bomb after 2000 forks. Exits 0 when every verdict is the
expected one, 1 otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cellbox import Box, Limits, RunResult, Status
from cellbox.errors import CellboxError

MiB = 1 << 20

SUM_C = r"""
#include <stdio.h>
int main(void) {
    long a, b;
    if (scanf("%ld %ld", &a, &b) != 2) return 1;
    printf("%ld\n", a + b);
    return 0;
}
"""

SUM_PY = "a, b = map(int, input().split())\nprint(a + b)\n"

# Touches 1 MiB after 1 MiB; stops by itself at 1 GiB.
MEMORY_HOG_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    for (int mib = 1; mib <= 1024; mib++) {
        char *p = malloc(1 << 20);
        if (!p) { printf("malloc failed at %d MiB\n", mib); return 2; }
        memset(p, mib, 1 << 20);
    }
    printf("allocated 1024 MiB: not stopped\n");
    return 0;
}
"""

# Spins; gives up by itself after 20 s of wall-clock time.
INFINITE_LOOP_C = r"""
#include <stdio.h>
#include <time.h>
int main(void) {
    time_t start = time(NULL);
    volatile unsigned long n = 0;
    while (time(NULL) - start < 20)
        for (int i = 0; i < 1000000; i++) n++;
    printf("spun for 20 s: not stopped\n");
    return 0;
}
"""

# Every process forks as long as the shared budget of 2000 fork attempts lasts (children fork
# too); refused forks are counted. Each process then waits for its own children.
FORK_BOMB_C = r"""
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#define BUDGET 2000
int main(void) {
    long *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) { perror("mmap"); return 2; }
    pid_t top = getpid();
    while (__atomic_fetch_add(&shared[0], 1, __ATOMIC_SEQ_CST) < BUDGET) {
        pid_t pid = fork();
        if (pid < 0) {
            __atomic_fetch_add(&shared[1], 1, __ATOMIC_SEQ_CST);
            usleep(100);
        } else if (pid > 0) {
            __atomic_fetch_add(&shared[2], 1, __ATOMIC_SEQ_CST);
        }
    }
    while (wait(NULL) > 0) {}
    if (getpid() == top)
        printf("%ld forked, %ld refused\n", shared[2], shared[1]);
    return 0;
}
"""

READ_SHADOW_C = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    FILE *f = fopen("/etc/shadow", "r");
    if (!f) { printf("blocked: /etc/shadow: %s\n", strerror(errno)); return 0; }
    char line[256];
    printf("LEAKED: %s", fgets(line, sizeof line, f) ? line : "(empty)\n");
    return 3;
}
"""

NETWORK_C = r"""
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
/* Connects to a service the demo listens with on the host's 127.0.0.1: a box has a network
   namespace of its own, so its 127.0.0.1 is not the host's. Nothing leaves the machine. */
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) { printf("blocked: socket: %s\n", strerror(errno)); return 0; }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        printf("blocked: connect to the host's 127.0.0.1:%s: %s\n", argv[1], strerror(errno));
        return 0;
    }
    printf("LEAKED: connected to the host's 127.0.0.1:%s\n", argv[1]);
    return 3;
}
"""


@dataclass
class Case:
    name: str
    source: str  # C source, or Python if ``python``
    limits: Limits
    expected: Status
    check: Callable[[RunResult], str | None]  # None when the run looks right, else why not
    stdin: bytes = b""
    python: bool = False
    dirs: list[str] = field(default_factory=list)
    what: str = ""  # the expectation, in words (the status must be ``expected`` too)
    host_port: bool = False  # pass the port of the demo's host listener as argv[1]


def stdout_is(text: str) -> Callable[[RunResult], str | None]:
    def check(r: RunResult) -> str | None:
        got = r.stdout.decode(errors="replace")
        return None if got == text else f"stdout {got!r}, expected {text!r}"

    return check


def stdout_starts(prefix: str) -> Callable[[RunResult], str | None]:
    def check(r: RunResult) -> str | None:
        got = r.stdout.decode(errors="replace")
        return None if got.startswith(prefix) else f"stdout {got!r}"

    return check


def fork_limit_hit(r: RunResult) -> str | None:
    if not r.processes_limit_hit:
        return "the processes limit was never hit"
    if "refused" not in r.stdout.decode(errors="replace"):
        return f"stdout {r.stdout!r}"
    return None


def always(r: RunResult) -> str | None:
    return None


CASES = [
    Case(
        "sum.c",
        SUM_C,
        Limits(time=1, wall_time=5, memory=64 * MiB),
        Status.OK,
        stdout_is("42\n"),
        stdin=b"40 2\n",
        what="OK, prints 42",
    ),
    Case(
        "sum.py",
        SUM_PY,
        Limits(time=2, wall_time=5, memory=64 * MiB),
        Status.OK,
        stdout_is("42\n"),
        stdin=b"40 2\n",
        python=True,
        what="OK, prints 42",
    ),
    Case(
        "memory hog",
        MEMORY_HOG_C,
        Limits(time=5, wall_time=10, memory=64 * MiB),
        Status.MEMORY_LIMIT,
        always,
        what="MEMORY_LIMIT",
    ),
    Case(
        "infinite loop",
        INFINITE_LOOP_C,
        # wall time well above the CPU limit: on a busy machine 1 s of CPU takes longer
        Limits(time=1, wall_time=15),
        Status.TIME_LIMIT,
        always,
        what="TIME_LIMIT",
    ),
    Case(
        "fork bomb",
        FORK_BOMB_C,
        Limits(time=5, wall_time=10, memory=256 * MiB, processes=16),
        Status.OK,
        fork_limit_hit,
        what="OK, forks refused",
    ),
    Case(
        "read /etc/shadow",
        READ_SHADOW_C,
        Limits(time=1, wall_time=5),
        Status.OK,
        stdout_starts("blocked:"),
        dirs=["/etc"],
        what="OK, refused",
    ),
    Case(
        "reach the host",
        NETWORK_C,
        Limits(time=1, wall_time=5),
        Status.OK,
        stdout_starts("blocked:"),
        what="OK, refused",
        host_port=True,
    ),
]


def compile_c(source: str, workdir: str, name: str) -> bytes:
    src = os.path.join(workdir, name + ".c")
    exe = os.path.join(workdir, name)
    with open(src, "w") as f:
        f.write(source)
    done = subprocess.run(["gcc", "-O2", "-o", exe, src], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"demo: cannot compile {name}.c:\n{done.stderr}")
    with open(exe, "rb") as f:
        return f.read()


def describe_limits(lim: Limits) -> str:
    parts = []
    if lim.time is not None:
        parts.append(f"CPU {lim.time:g}s")
    if lim.memory is not None:
        parts.append(f"mem {lim.memory // MiB}M")
    if lim.processes != 1:
        parts.append(f"procs {lim.processes}")
    return " ".join(parts)


def notes(r: RunResult, problem: str | None) -> str:
    if problem:
        return f"[red]{escape(problem)}[/]"
    out = r.stdout.decode(errors="replace").strip().removeprefix("blocked: ")
    bits = [out] if out else []
    if r.processes_limit_hit:
        bits.append("processes limit hit")
    return escape("; ".join(bits) or r.message)


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("demo: cellbox needs root (namespaces, mounts, cgroups): run sudo scripts/demo.sh")
    if shutil.which("gcc") is None:
        sys.exit("demo: gcc is missing; run scripts/bootstrap.sh as root")
    # A wide table: when the output is not a terminal (a CI log), do not squeeze it to 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=120)
    table = Table(
        title="cellbox demo: real programs, sandboxed",
        caption_justify="left",
        caption="Each hostile program also stops by itself: the memory hog at 1 GiB, "
        "the loop after 20 s, the fork bomb after 2000 forks.",
    )
    table.add_column("program", no_wrap=True)
    table.add_column("limits")
    table.add_column("expected")
    table.add_column("verdict", no_wrap=True)
    table.add_column("CPU", justify="right")
    table.add_column("peak", justify="right")
    table.add_column("what happened", ratio=1)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="cellbox-demo-") as workdir, \
            socket.create_server(("127.0.0.1", 0)) as listener:
        port = str(listener.getsockname()[1])
        for i, case in enumerate(CASES):
            console.print(f"[dim]running {case.name}[/dim]")
            if case.python:
                name, data, argv = "main.py", case.source.encode(), ["/usr/bin/python3", "main.py"]
            else:
                name = f"prog{i}"
                data, argv = compile_c(case.source, workdir, name), ["./" + name]
            if case.host_port:
                argv.append(port)
            try:
                with Box() as box:
                    box.write_file(name, data, mode=0o755)
                    r = box.run(argv, case.limits, stdin=case.stdin, dirs=case.dirs)
            except CellboxError as e:  # e.g. a limit this machine cannot enforce
                failures += 1
                table.add_row(
                    case.name,
                    describe_limits(case.limits),
                    case.what,
                    "[red]✗ error[/]",
                    "",
                    "",
                    f"[red]{escape(str(e))}[/]",
                )
                continue
            problem = None if r.status is case.expected else f"expected {case.expected.name}"
            problem = problem or case.check(r)
            failures += problem is not None
            verdict = (
                f"[green]✓ {r.status.name}[/]" if problem is None else f"[red]✗ {r.status.name}[/]"
            )
            table.add_row(
                case.name,
                describe_limits(case.limits),
                case.what,
                verdict,
                f"{r.cpu_time:.2f}s",
                f"{(r.peak_memory or 0) / MiB:.0f}M",
                notes(r, problem),
            )
    console.print(table)
    if failures:
        console.print(
            f"[red bold]{failures} of {len(CASES)} verdicts were not the expected ones[/]"
        )
        return 1
    console.print(f"[green bold]all {len(CASES)} verdicts as expected[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
