"""What the seccomp filter costs: building it (once per process) and loading it (every run).

    sudo .venv/bin/python scripts/bench_seccomp.py [RUNS]

Building: the pyseccomp import, the policy TOML, its names checked with libseccomp and the BPF
export, in this (fresh) process. Loading: ``seccomp.install`` in a forked child that has set
no_new_privs, as ``inside.program_main`` does, RUNS times (median and range). Both are CPU
time (user and kernel) of the process doing the work, which other load on the machine
disturbs less than wall-clock time.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from cellbox.linux import privileges, seccomp
from cellbox.linux.syscalls import BpfProgram


def _load_once(filters: tuple[BpfProgram, ...]) -> float:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        privileges.set_no_new_privs()
        start = time.process_time()
        seccomp.install(filters)
        os.write(w, str(time.process_time() - start).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    took = float(os.read(r, 64))
    os.close(r)
    return took


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    start = time.process_time()
    policy = seccomp.default_policy()
    filters = seccomp.compile_filters(policy)
    built = time.process_time() - start
    loads = [_load_once(filters) * 1e6 for _ in range(runs)]
    sizes = ", ".join(str(f.instructions) for f in filters)
    print(f"build (once per process): {built * 1e3:.2f} ms; BPF instructions: {sizes}")
    print(f"load (per run, {runs} runs): median {statistics.median(loads):.0f} us, "
          f"min {min(loads):.0f} us, max {max(loads):.0f} us")


if __name__ == "__main__":
    main()
