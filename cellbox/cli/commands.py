"""What each command does with parsed options: --init, --run, --cleanup, the info commands,
and ``cellbox run`` (one-shot). Thin: all the work is in ``cellbox.box``."""

from __future__ import annotations

import os
import stat
import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cellbox.cli.options import help_text, parse
from cellbox.errors import BoxBusyError, CellboxError, SandboxSetupError, UsageError
from cellbox.limits import COMMAND, LIBRARY, Defaults, Limits, parse_size
from cellbox.result import RunResult, Status

if TYPE_CHECKING:
    from collections.abc import Callable

    from cellbox.box import Boxes, WarmInits

COMMANDS = ("init", "run", "cleanup", "version", "print-cg-root", "check-config", "help")
VERSION = "0.1.0"
WAIT_HINT = "use --wait to wait for it"
WAIT_LONGER_HINT = "wait longer (--wait=SECONDS, or --wait for no limit)"


@dataclass
class Parsed:
    values: dict[str, object]
    program: list[str]

    def get(self, name: str, default: object = None) -> object:
        return self.values.get(name, default)

    def flag(self, name: str) -> bool:
        return bool(self.values.get(name))

    def number(self, name: str, kind: type = float, default: float | None = None,
               zero_is_none: bool = False) -> float | None:
        raw = self.values.get(name)
        if raw is None:
            return default
        try:
            v = kind(raw)
        except (TypeError, ValueError):
            raise UsageError(f"--{name}={raw!r}: expected a {'whole ' if kind is int else ''}"
                             "number") from None
        if v < 0 or v != v or v in (float("inf"),):
            raise UsageError(f"--{name}={raw!r}: must be a non-negative finite number")
        return None if zero_is_none and v == 0 else v

    def size(self, name: str, zero_is_none: bool = True) -> int | None:
        raw = self.values.get(name)
        if raw is None:
            return None
        v = parse_size(str(raw), default_unit="k")
        return None if zero_is_none and v == 0 else v


def limits_from(p: Parsed, defaults: Defaults = LIBRARY) -> Limits:
    """The run's limits; ``defaults``: the command's, for the process and open files limits
    (isolate's grammar: no other limit unless asked for)."""
    processes = defaults.base.processes
    if "processes" in p.values:
        raw = p.values["processes"]
        processes = None if raw is None else int(p.number("processes", int) or 0) or None
    open_files = p.number("open-files", int, default=defaults.base.open_files)
    return Limits(
        time=p.number("time", zero_is_none=True),
        wall_time=p.number("wall-time", zero_is_none=True),
        extra_time=p.number("extra-time", default=0.0) or 0.0,
        memory=p.size("cg-mem"),
        address_space=p.size("mem"),
        stack=p.size("stack"),
        open_files=None if open_files == 0 else int(open_files or 0),
        file_size=p.size("fsize"),
        core=p.size("core") or 0,
        processes=processes,
    )


def spec_from(p: Parsed, capture: bool = False,  # noqa: ANN201 - RunSpec, imported lazily
              defaults: Defaults = LIBRARY):
    from cellbox.rules import build_dir_rules, build_env, normalise_workdir
    from cellbox.spec import RunSpec

    if p.flag("stderr-to-stdout") and p.get("stderr"):
        raise UsageError("--stderr and --stderr-to-stdout cannot be used together")
    chdir = normalise_workdir(str(p.get("chdir") or "/box"))
    return RunSpec(
        argv=p.program,
        env=build_env(p.get("env", []), p.flag("full-env"), os.environ),  # type: ignore[arg-type]
        rules=build_dir_rules(p.get("dir", []), defaults=not p.flag("no-default-dirs")),  # type: ignore[arg-type]
        limits=limits_from(p, defaults),
        stdin=_stdio_path(p, "stdin"), stdout=_stdio_path(p, "stdout"),
        stderr=_stdio_path(p, "stderr"),
        stderr_to_stdout=p.flag("stderr-to-stdout"),
        chdir=chdir,
        share_net=p.flag("share-net"),
        inherit_fds=p.flag("inherit-fds"),
        seccomp=_seccomp_policy(p),
        tty_hack=p.flag("tty-hack"),
        capture_output=capture,
        allow_no_cgroup=p.flag("no-cgroups"),
    )


def _seccomp_policy(p: Parsed):  # noqa: ANN202 - Policy, imported lazily
    from cellbox import policy

    values = p.get("syscalls", [])
    assert isinstance(values, list)  # a repeatable option: the parser collects a list
    changes = policy.parse_changes([str(v) for v in values])
    ref = str(p.get("seccomp-policy") or policy.DEFAULT_POLICY)
    return policy.load_policy(ref, changes)


def _stdio_path(p: Parsed, name: str) -> str | None:
    v = p.get(name)
    if v is None:
        return None
    if not str(v) or "\0" in str(v):
        raise UsageError(f"--{name} needs a file name")
    return str(v)


def _box_id(p: Parsed) -> int:
    return int(p.number("box-id", int, default=0) or 0)


def _wait(p: Parsed) -> float | None:
    if "wait" not in p.values:
        return 0.0
    return None if p.values["wait"] is None else p.number("wait")


def _caller(p: Parsed):  # noqa: ANN202
    from cellbox.box import Caller

    from cellbox.linux import privileges

    uid, gid = p.get("as-uid"), p.get("as-gid")
    if (uid is not None or gid is not None) and privileges.requester().uid != 0:
        raise UsageError("--as-uid and --as-gid are for root only")
    if (uid is None) != (gid is None):
        raise UsageError("--as-uid and --as-gid go together")
    if uid is None:
        return Caller.current()
    return Caller(int(p.number("as-uid", int) or 0), int(p.number("as-gid", int) or 0))


def _quota(p: Parsed) -> tuple[int, int] | None:
    raw = p.get("quota")
    if raw is None:
        return None
    blocks, sep, inodes = str(raw).partition(",")
    try:
        q = (int(blocks), int(inodes))
    except ValueError:
        raise UsageError(f"--quota={raw!r}: expected BLOCKS,INODES, e.g. --quota=65536,1000") \
            from None
    if not sep or q[0] < 64 or q[1] < 16:
        raise UsageError(f"--quota={raw!r}: expected BLOCKS,INODES with at least 64 KiB "
                         "and 16 inodes")
    return q


def _say(p: Parsed, result: RunResult) -> None:
    if p.flag("silent"):  # silent but for an internal error: every exit 2 says why
        if result.status is Status.INTERNAL_ERROR:
            print(result.message, file=sys.stderr)
        return
    if result.status is Status.OK:
        print(f"OK ({result.cpu_time:.3f} sec real, {result.wall_time:.3f} sec wall)",
              file=sys.stderr)
    else:
        print(result.message, file=sys.stderr)


def _check_meta(p: Parsed, spec, box_dir: str) -> None:  # noqa: ANN001 - RunSpec, lazily
    """Before the run: a meta file that the program could replace before cellbox writes it
    (with a link to a root-only file, a FIFO, a forged result) is refused: one in a directory
    bound read-write, or reached through a host link into the box's storage. (One named by its
    path in the box's storage is written without following links.)"""
    from cellbox.rules import Kind

    target = p.get("meta")
    if target in (None, "-") or _path_in(os.path.abspath(str(target)), box_dir) is not None:
        return
    real = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(str(target)))),
                        os.path.basename(str(target)))
    writable = [r.source for r in spec.rules if r.kind is Kind.BIND and r.rw and r.source]
    for top in [box_dir, *writable]:
        if _path_in(real, top) is not None:
            raise UsageError(f"--meta={target}: the program can write where that file lies "
                             f"(in {top}, read-write in the box) and could replace it before "
                             "cellbox writes it; put the meta file outside the box's read-write "
                             "directories")


def _shielded_stdio(spec):  # noqa: ANN001, ANN202 - RunSpec, imported lazily
    """The caller's stdout and stderr, when regular files, are not handed to the program: it
    could read what the file held before through /proc/self/fd, and truncate or overwrite it
    (docs/security.md, "The caller's files"). Such a run's output is captured instead (up to
    the output limit, 64 MiB by default) and written to them after the run."""
    from dataclasses import replace

    from cellbox.limits import DEFAULT_CAPTURE

    def regular_file(fd: int) -> bool:
        try:
            return stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            return False

    exposed = ((spec.stdout is None and regular_file(1))
               or (spec.stderr is None and not spec.stderr_to_stdout and regular_file(2)))
    if not exposed or spec.capture_output:
        return spec
    return replace(spec, capture_output=True,
                   limits=replace(spec.limits, output=spec.limits.output or DEFAULT_CAPTURE))


def _deliver_output(spec, result: RunResult) -> None:  # noqa: ANN001 - RunSpec
    """What ``_shielded_stdio`` captured, to the caller's stdout and stderr."""
    for fd, data, own_file in ((1, result.stdout, spec.stdout), (2, result.stderr, spec.stderr)):
        view = memoryview(data if own_file is None else b"")
        while view:
            view = view[os.write(fd, view):]


def _write_meta(p: Parsed, result: RunResult, box_dir: str, owner: tuple[int, int]) -> None:
    target = p.get("meta")
    if target is None:
        return
    fmt = str(p.get("meta-format") or "text")
    text = result.meta_json() if fmt == "json" else result.meta_text()
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    inside = _path_in(os.path.abspath(str(target)), box_dir)
    if inside is not None:
        # The box controls this directory: never follow its links or open its FIFOs.
        from cellbox import storage

        storage.write_file(box_dir, inside, text.encode(), owner=owner)
        return
    from cellbox.linux.privileges import requester_access

    data = text.encode()
    with requester_access():
        fd = os.open(str(target), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        # Cut to length after writing, not truncated to zero before: ext4 flushes a file
        # truncated to zero when it is closed (auto_da_alloc), about 1 ms per run.
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _path_in(path: str, top: str) -> str | None:
    """``path`` relative to ``top`` if it lies under it (by name or by real path), else None."""
    for prefix in {top, os.path.realpath(top)}:
        if path.startswith(prefix.rstrip("/") + "/"):
            return path[len(prefix.rstrip("/")) + 1:]
    return None


def exit_code(result: RunResult) -> int:
    if result.status is Status.OK:
        return 0
    return 2 if result.status is Status.INTERNAL_ERROR else 1


def _check_arguments(p: Parsed, command: str) -> None:
    fmt = p.get("meta-format")
    if fmt is not None and fmt not in ("text", "json"):
        raise UsageError(f"--meta-format={fmt!r}: use text or json")
    if command == "run" and not p.program:
        raise UsageError("--run needs a program: cellbox --run [OPTIONS] -- PROGRAM [ARGS...]")
    if command != "run" and p.program:
        raise UsageError(f"Unexpected argument {p.program[0]!r} (a program goes only with --run)")
    for name in ("json", "file"):
        if name in p.values:
            raise UsageError(f"--{name} belongs to 'cellbox run', not to --{command}")
    # Validate every value now, so bad usage fails before anything changes.
    limits_from(p)
    _quota(p)
    _caller(p)
    _box_id(p)
    _wait(p)


def isolate_main(argv: list[str], warm: WarmInits | None = None) -> int:
    """isolate's grammar; ``warm``: the box inits that a process serving many commands keeps
    alive between them (``box.WarmInits``)."""
    values, program = parse(argv)
    p = Parsed(values, program)
    chosen = [c for c in COMMANDS if c in values]
    if not chosen and program:
        from cellbox.cli.subcommands import SUBCOMMANDS

        raise UsageError(f"Unknown command {program[0]!r}: use --init, --run or --cleanup "
                         f"(isolate's grammar), or one of: run, {', '.join(SUBCOMMANDS)} "
                         "(see --help)")
    if not chosen:
        raise UsageError("No command given: use --init, --run, --cleanup (see --help)")
    if len(chosen) > 1:
        raise UsageError(f"Give one command only, not {' and '.join('--' + c for c in chosen)}")
    command = chosen[0]
    if command == "help":
        sys.stdout.write(help_text())
        return 0
    _check_arguments(p, command)
    # Built before the box is touched, so bad rules or env change nothing; a policy file it
    # names is read with the caller's permissions.
    from cellbox.linux.privileges import requester_access

    with requester_access():
        spec = spec_from(p) if command == "run" else None
    if command == "version":
        return _version()
    if command in ("print-cg-root", "check-config"):
        return _info(command)

    from cellbox.box import Boxes

    boxes = Boxes(warm=warm)
    with boxes.lock(_box_id(p), _wait(p)) as lock:
        if command == "init":
            print(boxes.init(lock, _caller(p), _quota(p)))
            return 0
        if command == "cleanup":
            boxes.cleanup(lock, _caller(p))
            return 0
        assert spec is not None
        _check_meta(p, spec, boxes.box_dir(lock.box_id))
        spec = _shielded_stdio(spec)
        if p.get("verbose"):
            _describe(boxes, lock.box_id, spec)
        try:
            with _terminal(spec):
                result = boxes.run(lock, _caller(p), spec,
                                   keep_special_files=p.flag("special-files"))
        except SandboxSetupError as e:
            result = RunResult(status=Status.INTERNAL_ERROR, message=str(e))
        if spec.capture_output:
            _deliver_output(spec, result)
        record = lock.read()
        _write_meta(p, result, boxes.box_dir(lock.box_id), (record.owner_uid, record.owner_gid))
    _say(p, result)
    return exit_code(result)


def cleanup_finds_nothing(argv: list[str], boxes: Callable[[], Boxes]) -> bool:
    """Whether ``argv`` is a valid --cleanup of a box (of ``boxes()``) that is free and has
    nothing to clean up or repair: a command that would change and print nothing, and exit 0.
    The keeper daemon answers it itself (a judge's sandbox calls --cleanup before each
    --init). Any doubt is False: the command then runs as any other."""
    try:
        values, program = parse(argv)
        p = Parsed(values, program)
        if [c for c in COMMANDS if c in values] != ["cleanup"]:
            return False
        _check_arguments(p, "cleanup")
        return not boxes().has_anything_to_clean(_box_id(p))
    except (CellboxError, OSError):
        return False


def _terminal(spec) -> AbstractContextManager[None]:  # noqa: ANN001
    """--tty-hack hands the terminal to the program: take it back after the run."""
    from cellbox.linux import terminal

    return terminal.foreground_restored() if spec.tty_hack else nullcontext()


def _describe(boxes, box_id: int, spec) -> None:  # noqa: ANN001
    """-v: what the run will get, on stderr."""
    out = sys.stderr
    print(f"box {box_id}: {boxes.box_dir(box_id)}, uid/gid {boxes.config.box_uid(box_id)}/"
          f"{boxes.config.box_gid(box_id)}; {boxes.cgroups.describe()}", file=out)
    print(f"limits: {spec.limits}", file=out)
    for rule in spec.rules:
        print(f"dir rule: {rule.describe()}", file=out)
    print(f"environment: {' '.join(sorted(spec.env))}", file=out)
    print(spec.seccomp.describe(), file=out)


def _version() -> int:
    from cellbox.config import config_path

    path = config_path()
    state = "" if os.path.exists(path) else " (not present: the built-in defaults apply)"
    print(f"cellbox {VERSION} (isolate-compatible command line)\nconfig: {path}{state}")
    return 0


def _info(command: str) -> int:
    from cellbox.box import Boxes

    boxes = Boxes()
    backend = boxes.cgroups
    if command == "print-cg-root":
        print(backend.describe())
        return 0
    from cellbox.config import config_path, host_problems

    path = config_path()
    problems = host_problems(boxes.config, path)
    state = ("not present, built-in defaults in use" if not os.path.exists(path)
             else "has problems" if problems else "OK")
    print(f"config {path}: {state}")
    for key, value in boxes.config.__dict__.items():
        print(f"  {key} = {value!r}")
    print(backend.describe())
    for problem in problems:
        print(f"cellbox: {problem}", file=sys.stderr)
    return 2 if problems else 0


def oneshot_main(argv: list[str]) -> int:
    """cellbox run [OPTIONS] -- PROGRAM ARGS: init, run and cleanup on a free box."""
    values, program = parse(argv)
    p = Parsed(values, program)
    for c in COMMANDS:
        if c in values and c != "help":
            raise UsageError(f"'cellbox run' takes no --{c}: it does init, run and cleanup")
    if "help" in values:
        sys.stdout.write(help_text())
        return 0
    if not program:
        raise UsageError("cellbox run needs a program: cellbox run [OPTIONS] -- PROGRAM [ARGS...]")
    if "box-id" in values or "quota" in values:
        raise UsageError("cellbox run picks a free box itself; use --init/--run for a fixed one")
    files = [_file_arg(str(f)) for f in p.get("file", [])]  # type: ignore[union-attr]
    as_json = p.flag("json")
    spec = spec_from(p, capture=as_json, defaults=COMMAND)
    from cellbox import storage
    from cellbox.box import Boxes

    boxes = Boxes()
    caller = _caller(p)
    if not as_json:
        spec = _shielded_stdio(spec)
    with boxes.acquire_free(_wait(p)) as lock:
        box_dir = boxes.init(lock, caller, lease=True)  # reset by the next holder if we die
        try:
            _check_meta(p, spec, box_dir)
            for host, name in files:
                with open(host, "rb") as f:
                    storage.write_file(os.path.join(box_dir, "box"), name, f.read(),
                                       mode=0o755 if os.access(host, os.X_OK) else 0o644)
            with _terminal(spec):
                result = boxes.run(lock, caller, spec,
                                   keep_special_files=p.flag("special-files"))
        except SandboxSetupError as e:
            result = RunResult(status=Status.INTERNAL_ERROR, message=str(e))
        finally:
            boxes.cleanup(lock, caller)
    if spec.capture_output and not as_json:
        _deliver_output(spec, result)
    _write_meta(p, result, box_dir, (caller.uid, caller.gid))
    if as_json:
        import json

        print(json.dumps(result.to_dict(), indent=2))
    elif not p.flag("silent"):
        _table(result)
    elif result.status is Status.INTERNAL_ERROR:  # every exit 2 says why
        print(f"cellbox: {result.message}", file=sys.stderr)
    return exit_code(result)


def _file_arg(arg: str) -> tuple[str, str]:
    host, _, name = arg.partition(":")
    if not os.path.isfile(host):
        raise UsageError(f"--file {arg!r}: {host} is not a file on the host")
    return host, name or os.path.basename(host)


def _table(result: RunResult) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="cellbox run", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    code = result.status.isolate_code
    rows = [("status", result.status.name + (f" ({code})" if code else "")),
            ("message", result.message or "-"),
            ("exit code", str(result.exit_code) if result.exit_code is not None else "-"),
            ("signal", str(result.signal) if result.signal is not None else "-"),
            ("CPU time", f"{result.cpu_time:.3f} s"), ("wall time", f"{result.wall_time:.3f} s"),
            ("peak memory", "not measured (no cgroup)" if result.peak_memory is None
             else f"{result.peak_memory / 1048576:.1f} MiB"),
            ("max RSS", f"{result.max_rss / 1048576:.1f} MiB"),
            ("OOM killed", "yes" if result.oom_killed else "no")]
    for k, v in rows:
        t.add_row(k, v)
    Console(stderr=True).print(t)


def run_cli(argv: list[str], warm: WarmInits | None = None) -> int:
    from cellbox.cli import subcommands

    try:
        if argv and argv[0] == "run":
            return oneshot_main(argv[1:])
        if argv and argv[0] in subcommands.SUBCOMMANDS:
            return subcommands.main(argv)
        return isolate_main(argv, warm)
    except BoxBusyError as e:
        print(f"cellbox: {e.with_hint(WAIT_HINT, WAIT_LONGER_HINT)}", file=sys.stderr)
        return e.exit_code
    except CellboxError as e:
        print(f"cellbox: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(f"cellbox: {e}", file=sys.stderr)
        return 2
