"""Every command-line option, once. The parser, ``--help`` and docs/cli.md all read this table.

The grammar is getopt_long's, as isolate uses it: ``--name=value`` or ``--name value`` for a
required value, ``--name[=value]`` for an optional one (``-p`` alone means unlimited, ``-p5``
means 5), short options bundle (``-vs``), unique prefixes of long names are accepted, and the
first non-option or ``--`` ends the options.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cellbox.cli import subcommands
from cellbox.errors import UsageError


class Arg(Enum):
    NONE = 0
    REQUIRED = 1
    OPTIONAL = 2


@dataclass(frozen=True)
class Opt:
    long: str
    short: str | None
    arg: Arg
    help: str
    metavar: str = ""
    group: str = "run"
    repeat: bool = False  # may be given many times; values are collected in order


N, R, OPT = Arg.NONE, Arg.REQUIRED, Arg.OPTIONAL

OPTIONS: tuple[Opt, ...] = (
    # commands
    Opt("init", None, N, "Initialise the box; print its directory (its box/ is the "
        "program's working directory)", group="command"),
    Opt("run", None, N, "Run PROGRAM ARGS... (after --) in the initialised box", group="command"),
    Opt("cleanup", None, N, "Remove the box's storage and cgroups (nothing to do is fine)",
        group="command"),
    Opt("version", None, N, "Print the version and the configuration in use", group="command"),
    Opt("print-cg-root", None, N, "Print the cgroup root cellbox uses", group="command"),
    Opt("check-config", None, N, "Validate the configuration file against this host (box "
        "ids, directories, cgroups)", group="command"),
    Opt("help", "h", N, "Show this help", group="command"),
    # box selection and reporting
    Opt("box-id", "b", R, "Box to use (default 0)", "ID", group="box"),
    Opt("wait", None, OPT, "Wait for a busy box instead of failing (for at most SECONDS)",
        "SECONDS", group="box"),
    Opt("quota", "q", R, "With --init: box storage of BLOCKS KiB and INODES files",
        "BLOCKS,INODES", group="box"),
    Opt("as-uid", None, R, "(root) act for this uid: it owns the box's files", "UID",
        group="box"),
    Opt("as-gid", None, R, "(root) act for this gid", "GID", group="box"),
    Opt("cg", None, N, "Use control groups (always on in cellbox; accepted for isolate)",
        group="box"),
    Opt("verbose", "v", N, "Describe the box, limits, rules and environment on stderr",
        group="box", repeat=True),
    Opt("silent", "s", N, "Print no status line, only errors", group="box"),
    Opt("meta", "M", R, "Write the meta file (isolate's keys) to FILE, - for stdout", "FILE",
        group="box"),
    Opt("meta-format", None, R, "Meta file format: text (isolate's key:value) or json",
        "FORMAT", group="box"),
    # limits
    Opt("time", "t", R, "CPU time limit of all processes and threads, seconds (0: none)",
        "SECONDS"),
    Opt("wall-time", "w", R, "Wall-clock time limit, seconds (0: none)", "SECONDS"),
    Opt("extra-time", "x", R, "Grace after a time limit before the kill, seconds", "SECONDS"),
    Opt("mem", "m", R, "Address-space limit per process, KiB (suffixes K, M, G accepted)",
        "SIZE"),
    Opt("cg-mem", None, R, "Memory limit of the whole run (cgroup, no swap), KiB", "SIZE"),
    Opt("stack", "k", R, "Stack limit per process, KiB (default: the hard limit)", "SIZE"),
    Opt("open-files", "n", R, "Open files per process (default 64, 0: no limit)", "N"),
    Opt("fsize", "f", R, "Largest file the program may write, KiB", "SIZE"),
    Opt("core", None, R, "Largest core dump, KiB (default 0)", "SIZE"),
    Opt("processes", "p", OPT, "Processes and threads at once (default 1, and 64 for cellbox run; -p alone: no limit)",
        "N"),
    Opt("no-cgroups", None, N, "Rootless mode without a delegated cgroup: run anyway, with "
        "the limits that need one (--cg-mem, --processes, --time across processes) not "
        "enforced and listed in the meta key cellbox-cgroup-weakened"),
    Opt("cg-timing", None, N, "Time all processes in the cgroup (always on; accepted)"),
    Opt("no-cg-timing", None, N, "Accepted for isolate; cellbox always counts every process"),
    # program environment
    Opt("stdin", "i", R, "Read stdin from FILE (a path inside the box)", "FILE"),
    Opt("stdout", "o", R, "Write stdout to FILE (a path inside the box)", "FILE"),
    Opt("stderr", "r", R, "Write stderr to FILE (a path inside the box)", "FILE"),
    Opt("stderr-to-stdout", None, N, "Send stderr where stdout goes"),
    Opt("chdir", "c", R, "Working directory of the program, inside the box (default /box)",
        "DIR"),
    Opt("env", "E", R, "VAR: inherit it; VAR=value: set it; VAR=: remove it", "VAR[=VALUE]",
        repeat=True),
    Opt("full-env", "e", N, "Inherit the whole environment"),
    Opt("dir", "d", R, "Directory rule IN=OUT[:opts], IN[:opts] or IN= (remove); opts: "
        "rw, dev, noexec, maybe, fs, tmp, norec", "RULE", repeat=True),
    Opt("no-default-dirs", "D", N, "Start from no directory rules at all"),
    Opt("share-net", None, N, "Keep the host's network (weakens isolation)"),
    Opt("syscalls", None, R, "Change the seccomp policy: +NAME allows syscall NAME with any "
        "arguments, -NAME denies it with EPERM, -NAME:ERRNO with that errno; comma-separated "
        "(allowing what the default denies is reported as weakened)", "CHANGES", repeat=True),
    Opt("seccomp-policy", None, R, "Seccomp policy: a built-in name (default) or the path of "
        "a TOML file (see docs/security.md)", "POLICY"),
    Opt("tty-hack", None, N, "Interactive programs: stay in the caller's terminal session and "
        "take its foreground (default: a new session, no controlling terminal)"),
    Opt("inherit-fds", None, N, "Pass open file descriptors beyond 0-2 to the program"),
    Opt("special-files", None, N, "Keep symlinks, FIFOs and sockets the program made in the box "
        "(default: they are deleted after the run)"),
    # one-shot (cellbox run) only
    Opt("json", None, N, "cellbox run: print the result as JSON (with the output)",
        group="oneshot"),
    Opt("file", None, R, "cellbox run: copy the host file into the box (as NAME)",
        "HOST[:NAME]", group="oneshot", repeat=True),
)

BY_LONG = {o.long: o for o in OPTIONS}
BY_SHORT = {o.short: o for o in OPTIONS if o.short}


def parse(argv: list[str]) -> tuple[dict[str, object], list[str]]:
    """Parse options. Returns ({long name: value}, the remaining program argv)."""
    values: dict[str, object] = {}
    i = 0

    def store(opt: Opt, value: str | None) -> None:
        if opt.arg is Arg.REQUIRED and value is None:
            raise UsageError(f"Option --{opt.long} needs a value ({opt.metavar})")
        stored: object = True if opt.arg is Arg.NONE else value
        if opt.repeat:
            values.setdefault(opt.long, [])
            values[opt.long].append(stored)  # type: ignore[attr-defined]
        else:
            values[opt.long] = stored

    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            opt = _long(name)
            if opt.arg is Arg.NONE and eq:
                raise UsageError(f"Option --{opt.long} takes no value")
            if opt.arg is Arg.REQUIRED and not eq:
                if i >= len(argv):
                    raise UsageError(f"Option --{opt.long} needs a value ({opt.metavar})")
                value, i = argv[i], i + 1
            store(opt, value if (eq or opt.arg is Arg.REQUIRED) else None)
        elif arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                opt = BY_SHORT.get(arg[j])
                if opt is None:
                    raise UsageError(f"Unknown option -{arg[j]} (see --help)")
                rest = arg[j + 1:]
                if opt.arg is Arg.NONE:
                    store(opt, None)
                    j += 1
                    continue
                if rest:
                    store(opt, rest)
                elif opt.arg is Arg.REQUIRED:
                    if i >= len(argv):
                        raise UsageError(f"Option -{opt.short} needs a value ({opt.metavar})")
                    store(opt, argv[i])
                    i += 1
                else:
                    store(opt, None)
                break
        else:
            i -= 1
            break
    return values, argv[i:]


def _long(name: str) -> Opt:
    if name in BY_LONG:
        return BY_LONG[name]
    matches = [o for o in OPTIONS if o.long.startswith(name)] if name else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"Option --{name} is ambiguous: "
                         + ", ".join(f"--{o.long}" for o in matches))
    raise UsageError(f"Unknown option --{name} (see --help)")


GROUPS = {"command": "Commands", "box": "Box and reporting", "run": "Run options",
          "oneshot": "cellbox run only"}


def help_text() -> str:
    lines = [
        "usage: cellbox [OPTIONS] --init | --run -- PROGRAM [ARGS...] | --cleanup",
        "       cellbox run [OPTIONS] -- PROGRAM [ARGS...]   (init + run + cleanup on a free box)",
        *(f"       cellbox {' | '.join(names)} [--help]   ({group})"
          for group, names in subcommands.GROUPS.items()),
        "",
        "An isolate-compatible sandbox: same options, meta file and exit codes",
        "(0: the program exited 0; 1: it failed (RE, SG, TO); 2: bad usage or internal error).",
    ]
    for group, title in GROUPS.items():
        lines += ["", f"{title}:"]
        for o in OPTIONS:
            if o.group != group:
                continue
            flag = (f"-{o.short}, " if o.short else "    ") + f"--{o.long}"
            if o.arg is Arg.REQUIRED:
                flag += f"={o.metavar}"
            elif o.arg is Arg.OPTIONAL:
                flag += f"[={o.metavar}]"
            lines.append(f"  {flag:<30} {o.help}")
    lines += ["", "Configuration: $CELLBOX_CONFIG, else /usr/local/etc/cellbox.toml. "
              "Docs: docs/cli.md"]
    return "\n".join(lines) + "\n"
