"""Generate docs/cli.md: the options (from ``cellbox.cli.options.OPTIONS``), the meta-file keys
(checked against ``RunResult.meta()``), the statuses and the exit codes.

    python -m cellbox.cli.docgen > docs/cli.md

The output depends only on the code, so it is the same on every run and every machine.
"""

from __future__ import annotations

import sys
from dataclasses import fields

from cellbox.cli import options, subcommands
from cellbox.cli.commands import exit_code
from cellbox.cli.options import GROUPS, OPTIONS, Arg, Opt
from cellbox.config import DEFAULT_PATH, ENV_VAR
from cellbox.errors import CellboxError
from cellbox.result import RunResult, Status

# key: (unit, present when, meaning); isolate's keys first, then cellbox's own.
ISOLATE_KEYS: dict[str, tuple[str, str, str]] = {
    "time": ("seconds", "always", "CPU time of every process and thread of the run"),
    "time-wall": ("seconds", "always", "Wall-clock time of the run"),
    "max-rss": ("KiB", "always", "Largest resident set size of a single process (rusage; it "
                "includes cellbox's own set-up of the process, so judge memory by `cg-mem`)"),
    "csw-voluntary": ("count", "always", "Voluntary context switches"),
    "csw-forced": ("count", "always", "Forced (involuntary) context switches"),
    "cg-mem": ("KiB", "the cgroup reported it", "Peak memory of the whole run (cgroup)"),
    "cg-oom-killed": ("1", "the cgroup's OOM killer killed a process",
                      "Set when the memory limit (`--cg-mem`) was hit"),
    "exitcode": ("number", "the program exited normally", "The program's exit code"),
    "exitsig": ("signal number", "the program died on a signal", "The fatal signal"),
    "killed": ("1", "cellbox killed the program", "The sandbox ended the run (a time limit, "
               "output limit)"),
    "status": ("code", "the status is not OK", "isolate's two-letter status: see the table "
               "below (old parsers know only these)"),
    "message": ("text", "there is something to say", "A human-readable description of the "
                "status or of the internal error"),
}
CELLBOX_KEYS: dict[str, tuple[str, str, str]] = {
    "exceeded": ("name", "a limit ended the run", "Which limit: see the table below"),
    "processes-limit-hit": ("1", "a fork or thread was refused", "The processes limit "
                            "(`--processes`) refused at least one new process or thread"),
    "cellbox-seccomp-weakened": ("names", "the seccomp policy allows what the default denies",
                                 "Comma-separated syscalls (and argument checks) that the "
                                 "policy in use allows and cellbox's default policy refuses"),
    "cellbox-cgroup-weakened": ("names", "rootless mode without a cgroup",
                                "Comma-separated limits that were asked for and that no cgroup "
                                "enforced (`memory`, `processes`, `time` across processes), "
                                "then `accounting` (no peak memory; CPU time only of the "
                                "program and the children it waited for); see "
                                "[security.md](security.md#rootless-mode)"),
    "cellbox-status": ("name", "always", "cellbox's precise status name (the `Status` enum), "
                       "e.g. `MEMORY_LIMIT` where isolate would say `SG`"),
}

STATUS_MEANING: dict[Status, str] = {
    Status.OK: "The program exited with code 0 within every limit",
    Status.RUNTIME_ERROR: "The program exited with a non-zero code",
    Status.EXEC_ERROR: "The program could not be executed (missing, not executable, a bad "
                       "interpreter line): as isolate, `status:RE` and `exitcode:127`, execve's "
                       "error on the program's stderr; `message` names the error",
    Status.SIGNALED: "The program died on a signal that no limit explains",
    Status.TIME_LIMIT: "CPU time limit (`--time`) exceeded",
    Status.WALL_TIME_LIMIT: "Wall-clock time limit (`--wall-time`) exceeded",
    Status.MEMORY_LIMIT: "Killed by the out-of-memory killer of its cgroup (`--cg-mem`)",
    Status.FILE_SIZE_LIMIT: "Wrote past the file size limit (`--fsize`; SIGXFSZ)",
    Status.OUTPUT_LIMIT: "Captured output over the library's `Limits.output`",
    Status.INTERNAL_ERROR: "cellbox could not set up or finish the run (`message` says why); "
                           "a requested limit that cannot be applied also lands here",
}

RESULT_FIELDS: dict[str, str] = {
    "status": "`Status` name, e.g. `OK`, `TIME_LIMIT`",
    "exit_code": "exit code, or null if the program died on a signal",
    "signal": "fatal signal number, or null",
    "cpu_time": "seconds of CPU, every process and thread",
    "wall_time": "seconds of wall-clock time",
    "peak_memory": "bytes, peak of the run's memory cgroup (or null)",
    "max_rss": "bytes, largest resident set of a single process (see `max-rss`)",
    "csw_voluntary": "voluntary context switches",
    "csw_forced": "forced context switches",
    "oom_killed": "the cgroup's OOM killer killed a process",
    "killed": "the sandbox ended the run",
    "processes_limit_hit": "the processes limit refused a fork or thread",
    "message": "human-readable status or error",
    "stdout": "captured standard output (text; with `--json` only)",
    "stderr": "captured standard error (text; with `--json` only)",
    "stdout_truncated": "stdout was longer than the capture limit",
    "stderr_truncated": "stderr was longer than the capture limit",
    "seccomp_weakened": "syscalls (or argument checks) the default seccomp policy refuses "
                        "and this run allowed (`--syscalls`, `--seccomp-policy`)",
    "cgroup_weakened": "rootless mode without a cgroup: what no cgroup did for this run "
                       "(see the meta key `cellbox-cgroup-weakened`)",
    "started_at": "when the program started, in seconds of the host's CLOCK_MONOTONIC (null "
                  "if it never did): with `wall_time`, which of two runs ended first",
    "isolate_status": "isolate's status code (`RE`, `SG`, `TO`, `XX`) or null for OK",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _flag(o: Opt) -> str:
    long = f"--{o.long}"
    if o.arg is Arg.REQUIRED:
        long += f"={o.metavar}"
    elif o.arg is Arg.OPTIONAL:
        long += f"[={o.metavar}]"
    parts = [f"`-{o.short}`"] if o.short else []
    return ", ".join(parts + [f"`{long}`"])


def _argument(o: Opt) -> str:
    notes = [] if o.arg is Arg.NONE else ["required" if o.arg is Arg.REQUIRED else "optional"]
    if o.repeat:
        notes.append("repeatable")
    text = "-" if o.arg is Arg.NONE else f"`{o.metavar}`"
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _grammar() -> str:
    doc = options.__doc__ or ""
    paragraphs = [" ".join(p.split()) for p in doc.strip().split("\n\n")]
    text = paragraphs[1] if len(paragraphs) > 1 else paragraphs[0]
    return text.replace("``", "`")  # reST literals to Markdown


def _full_result() -> RunResult:
    """A result with every optional field set, so that meta() shows every key it can."""
    return RunResult(status=Status.TIME_LIMIT, exit_code=1, signal=9, peak_memory=1 << 20,
                     oom_killed=True, killed=True, processes_limit_hit=True, message="m",
                     seccomp_weakened=["ptrace"], cgroup_weakened=["accounting"])


def _check_documented() -> None:
    produced = list(_full_result().meta())
    documented = list(ISOLATE_KEYS) + list(CELLBOX_KEYS)
    if set(produced) != set(documented):
        raise SystemExit(f"docgen: meta keys changed: produced {sorted(produced)}, documented "
                         f"{sorted(documented)}; update cellbox/cli/docgen.py")
    if set(STATUS_MEANING) != set(Status):
        raise SystemExit("docgen: the Status enum changed; update STATUS_MEANING")
    result_keys = {f.name for f in fields(RunResult)} | {"isolate_status"}
    if result_keys != set(RESULT_FIELDS):
        raise SystemExit(f"docgen: RunResult fields changed ({sorted(result_keys)}); update "
                         "RESULT_FIELDS")


def _error_exit_codes() -> set[int]:
    seen, todo = set(), [CellboxError]
    while todo:
        cls = todo.pop()
        seen.add(cls.exit_code)
        todo.extend(cls.__subclasses__())
    return seen


def render() -> str:
    _check_documented()
    out: list[str] = []
    add = out.append
    add("# cellbox command line")
    add("")
    add("<!-- Generated by `python -m cellbox.cli.docgen > docs/cli.md` from "
        "cellbox/cli/options.py and cellbox/result.py. Do not edit by hand. -->")
    add("")
    add("cellbox has two command-line forms with the same options:")
    add("")
    add("```")
    add(options.help_text().split("\n\n")[0])
    add("```")
    add("")
    add("- **isolate's grammar**: `--init` creates a box and prints its directory (the "
        "program's working directory `/box` is its `box/` subdirectory), `--run` runs a "
        "program in it, `--cleanup` removes it. The options, the meta file and the exit "
        "codes are isolate's, so that a tool written for isolate can call cellbox instead; "
        "cellbox adds a few meta keys and options of its own.")
    add("- **`cellbox run`** (one shot): takes the first free box, initialises it, copies "
        "the `--file`s in, runs the program, cleans up, and prints a result table on stderr "
        "(the program's own output goes straight to the terminal), or with `--json` the "
        "whole result, output included, as JSON on stdout. It picks the box itself, so "
        "`--box-id` and `--quota` are refused, and so are the commands (`--init`, ...).")
    add("")
    add(f"**Grammar.** {_grammar()}")
    add("")
    add("A repeatable option may be given many times; its values apply in order (for `-d` and "
        "`-E`, a later rule for the same directory or variable replaces an earlier one).")
    add("")
    add(f"Configuration: `${ENV_VAR}` if set, else `{DEFAULT_PATH}`; see "
        "[config.md](config.md). How each isolate option maps to cellbox: "
        "[migrating-from-isolate.md](migrating-from-isolate.md).")
    for group, title in GROUPS.items():
        opts = [o for o in OPTIONS if o.group == group]
        if not opts:
            continue
        add("")
        add(f"## {title}")
        add("")
        add("| option | argument | description |")
        add("|---|---|---|")
        for o in opts:
            add(f"| {_flag(o)} | {_argument(o)} | {_cell(o.help)} |")
    others = [o.long for o in OPTIONS if o.group not in GROUPS]
    if others:
        raise SystemExit(f"docgen: options in no known group: {others}; add the group to "
                         "GROUPS in cellbox/cli/options.py")

    add("")
    add("## Meta file")
    add("")
    add("`--meta=FILE` (`-` for stdout) writes one `key:value` line per key, in this order, "
        "as isolate does; `--meta-format=json` writes the same keys as one JSON object. A key "
        "that does not apply to the run is left out. Units are isolate's: seconds and KiB.")
    add("")
    add("FILE must lie where the program cannot replace it: a meta file in a directory bound "
        "read-write into the box (`-d /out=/srv/out:rw`), or reached through a host link into "
        "the box's storage, is refused before the run (exit 2). One in the box's own storage "
        "is written without following links. See [security.md](security.md), \"The caller's "
        "files\".")
    add("")
    add("| key | origin | unit | present when | meaning |")
    add("|---|---|---|---|---|")
    for key in _full_result().meta():
        origin = "isolate" if key in ISOLATE_KEYS else "cellbox"
        unit, when, meaning = {**ISOLATE_KEYS, **CELLBOX_KEYS}[key]
        add(f"| `{key}` | {origin} | {unit} | {_cell(when)} | {_cell(meaning)} |")
    add("")
    add("## The caller's stdout and stderr")
    add("")
    add("When cellbox's own stdout or stderr is a regular file (`cellbox --run ... > log`) and "
        "`-o`/`-r` do not send that stream to a file in the box, the program does not get the "
        "file itself: both streams are captured and written out after the run, each to where "
        "cellbox's own goes (up to 64 MiB a stream; past it the run ends as an output limit). "
        "When neither is a regular file, pipes and terminals are handed to the program as they "
        "are. Why: [security.md](security.md), \"The caller's files\".")
    add("")
    add("## Statuses")
    add("")
    add("| `cellbox-status` | `status` (isolate) | `exceeded` | exit code | meaning |")
    add("|---|---|---|---|---|")
    for s in Status:
        code = exit_code(RunResult(status=s))
        add(f"| `{s.name}` | {_code(s.isolate_code)} | {_code(s.exceeded)} | {code} | "
            f"{_cell(STATUS_MEANING[s])} |")
    add("")
    add("## Exit codes")
    add("")
    by_code: dict[int, list[str]] = {}
    for s in Status:
        by_code.setdefault(exit_code(RunResult(status=s)), []).append(f"`{s.name}`")
    errors = ", ".join(str(c) for c in sorted(_error_exit_codes()))
    add("| code | when |")
    add("|---|---|")
    for code in sorted(by_code):
        what = ", ".join(by_code[code])
        if code == 0:
            what = f"the run's status is {what}; also every successful `--init`, `--cleanup`, "
            what += "`--help`, `--version` and the info commands"
        elif code == 1:
            what = f"the run's status is {what}: the program failed or hit a limit"
        else:
            what = (f"the run's status is {what}; also bad usage, a bad configuration, a busy "
                    "or uninitialised box and every other cellbox error (a message on stderr "
                    f"says what to do; these errors exit with {errors})")
        add(f"| {code} | {what} |")
    add("")
    add("The same codes apply to `cellbox run`.")
    add("")
    add("## `cellbox run --json`")
    add("")
    add("Prints the whole result (the library's `RunResult`, see [library.md](library.md)) as "
        "a JSON object on stdout:")
    add("")
    add("| key | meaning |")
    add("|---|---|")
    for f in fields(RunResult):
        add(f"| `{f.name}` | {_cell(RESULT_FIELDS[f.name])} |")
    add(f"| `isolate_status` | {_cell(RESULT_FIELDS['isolate_status'])} |")
    add("")
    add("## cellbox's own commands")
    add("")
    add("These have no isolate equivalent and use ordinary `--option` grammar. The "
        "administration commands (`boxes`, `reap`, `chaos`, `doctor`) never take the lock of "
        "a box in use, so they are safe to run at any time, next to live runs; the lock "
        "protocol they watch over is in [lifecycle.md](lifecycle.md). `languages`, `exec` "
        "and `judge` are described in [languages.md](languages.md).")
    for name in subcommands.SUBCOMMANDS:
        _, parser = subcommands.resolve(name)
        add("")
        add(f"### `cellbox {name}`")
        add("")
        add("```")
        add(parser().format_help().rstrip())
        add("```")
    return "\n".join(out) + "\n"


def _code(value: str | None) -> str:
    return f"`{value}`" if value else "-"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
