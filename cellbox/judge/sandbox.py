"""Compile a source and run the result, each inside a box of its own.

The compiler runs in a box with the language's compile limits; what it produced (the profile's
artifacts) is copied out (never through a link, streamed and with its holes kept, so a huge
sparse file costs the host neither memory nor disk) into a host directory the Compilation
owns, and copied into a fresh box for every run, so no run sees what an earlier one left.
Given ``pools`` (warm pools by the boxes' root), the compile step and the runs take a warm
box instead, which starts every run as clean (cellbox.pool), without a box's set-up. A
language with no compile step needs no box before its runs: its source stays in memory.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import subprocess
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from cellbox.api import DEFAULT_PATH, Box
from cellbox.errors import UsageError
from cellbox.judge.builds import new_build_dir, remove_build_dir
from cellbox.judge.verdict import Verdict
from cellbox.languages import COMPILE_LIMITS, Language
from cellbox.limits import Limits
from cellbox.pool import Pool, run_warm
from cellbox.result import RunResult, Status

MESSAGE_CAP = 16 << 10  # characters of compiler output kept in a Compilation
# A run's /tmp is noexec: the program cannot write a file there and execute it. (/box must
# stay executable, since the compiled program runs from it.)
RUN_DIRS = ("/tmp:tmp:noexec",)
# Warm pools by the root of their boxes (the --dir rules): a compile step needs the language's
# root, a run the same with RUN_DIRS.
PoolFor = Callable[[tuple[str, ...]], Pool]


@dataclass(frozen=True)
class Artifact:
    name: str  # in the box
    path: str  # the copy on the host, in its Compilation's directory
    mode: int


@dataclass
class Compilation:
    """The outcome of compiling. ``result`` is None for a language with no compile step."""

    language: Language
    ok: bool
    message: str = ""  # the compiler's output (stdout then stderr), capped at MESSAGE_CAP
    result: RunResult | None = None
    artifacts: tuple[Artifact, ...] = ()
    directory: str = ""  # on the host, holding the artifacts; removed with the Compilation
    # A language with no compile step: its source and the files its artifacts name, as given
    # (nothing ran that could change them, so they need no box nor host copy)
    files: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.directory:
            weakref.finalize(self, remove_build_dir, self.directory)

    def copy_into(self, box: Box) -> None:
        """Write the artifacts into ``box`` (a run's)."""
        for name, data in self.files.items():
            box.write_file(name, data)
        for a in self.artifacts:
            box.copy_in(a.name, a.path, a.mode)

    @property
    def verdict(self) -> Verdict | None:
        """None if it compiled; CE when the compiler failed or hit a compile limit; IE when
        the compiler could not start at all (a toolchain the box cannot see), which is never
        the submission's fault."""
        if self.ok:
            return None
        r = self.result
        return Verdict.IE if r is not None and r.status in (Status.INTERNAL_ERROR,
                                                            Status.EXEC_ERROR) else Verdict.CE

    def to_dict(self) -> dict[str, object]:
        r = self.result
        return {"ok": self.ok, "message": self.message,
                "status": r.status.name if r else None,
                "time": round(r.cpu_time, 3) if r else 0.0,
                "wall_time": round(r.wall_time, 3) if r else 0.0,
                "memory": r.peak_memory if r else None}


def run_environment(lang: Language, limits: Limits) -> dict[str, str]:
    """The environment of the profile's commands, placeholders filled from ``limits``."""
    return {"PATH": DEFAULT_PATH} | lang.environment(limits)


def _message(result: RunResult) -> str:
    text = (result.stdout + result.stderr).decode("utf-8", "replace").strip()
    if len(text) > MESSAGE_CAP:
        text = text[:MESSAGE_CAP] + "\n[... compiler output truncated]"
    if result.status is not Status.OK and result.status is not Status.RUNTIME_ERROR:
        text += f"\n[compilation stopped: {result.message}]"  # a compile limit, not an error
    return text.strip()


def compile_source(lang: Language, source: bytes, limits: Limits | None = None,
                   files: Mapping[str, bytes] = {}, options: Sequence[str] = (),
                   pools: PoolFor | None = None) -> Compilation:
    """Compile ``source`` in a box of its own (a warm one from ``pools`` if given); on success
    keep the artifacts (and the source). ``files``: more files beside the source (the source
    wins a clash); ``options``: compiler options (argv elements, never a shell), for profiles
    that take them."""
    limits = limits or lang.compile_limits()
    argv = lang.compile_argv(limits, options)  # refuses options the profile cannot take
    if not lang.compile:
        return Compilation(lang, True, files={**_named(lang, files), lang.source: source})
    env = run_environment(lang, limits)
    directory = new_build_dir()
    try:
        if pools is not None:
            warm = pools(lang.dirs).prepare(argv, limits, env=env,
                                            files={**files, lang.source: source})
            return _compiled(lang, warm.box, limits, directory, lambda: run_warm([warm])[0])
        with Box() as box:
            for name, data in files.items():
                box.write_file(name, data)
            box.write_file(lang.source, source)
            return _compiled(lang, box, limits, directory,
                             lambda: box.run(argv, limits, env=env, dirs=lang.dirs))
    except BaseException:
        remove_build_dir(directory)
        raise


def _compiled(lang: Language, box: Box, limits: Limits, directory: str,
              compile: Callable[[], RunResult]) -> Compilation:
    """``compile`` run in ``box``, which holds the source; the artifacts copied to
    ``directory`` if it succeeded."""
    result = compile()
    if not result.ok:
        remove_build_dir(directory)
        return Compilation(lang, False, _message(result), result)
    return Compilation(lang, True, _message(result), result,
                       _artifacts(box, lang, directory, limits), directory)


def _named(lang: Language, files: Mapping[str, bytes]) -> dict[str, bytes]:
    """The ``files`` at the top of the box that an artifact pattern matches."""
    return {name: data for name, data in files.items() if "/" not in name and any(
        fnmatch.fnmatchcase(name, p) for p in lang.artifacts)}


def _artifacts(box: Box, lang: Language, directory: str,
               limits: Limits) -> tuple[Artifact, ...]:
    """The source and every regular file at the top of the box matching an artifact pattern,
    copied to ``directory``, each at most the compile step's file size limit. Listing names
    is safe: the compiler has exited and every file is copied with copy_out."""
    cap = limits.file_size if limits.file_size is not None else COMPILE_LIMITS.file_size
    names = []
    with os.scandir(os.path.join(box.path, "box")) as entries:
        for e in sorted(entries, key=lambda e: e.name):
            st = e.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and (e.name == lang.source or any(
                    fnmatch.fnmatchcase(e.name, p) for p in lang.artifacts)):
                # executable or not as the compile step left it
                names.append((e.name, 0o755 if st.st_mode & stat.S_IXUSR else 0o644))
    found = []
    for i, (name, mode) in enumerate(names):
        path = os.path.join(directory, str(i))
        box.copy_out(name, path, cap or 0)
        found.append(Artifact(name, path, mode))
    return tuple(found)


def run_compiled(compilation: Compilation, limits: Limits, stdin: bytes = b"",
                 files: Mapping[str, bytes] = {}, args: Sequence[str] = (),
                 share_net: bool = False, stderr_to_stdout: bool = False,
                 pools: PoolFor | None = None) -> RunResult:
    """Run a successful compilation in a fresh box (or a warm one from ``pools``, which
    cannot take ``share_net`` or ``stderr_to_stdout``: a warm box's network and stdio are
    fixed): ``files`` and the artifacts written anew (the artifacts win a clash); ``args``
    follow the profile's run command; ``share_net`` gives it the host's network;
    ``stderr_to_stdout`` merges stderr into stdout."""
    if not compilation.ok:
        raise ValueError("run_compiled() needs a successful compilation")
    lang = compilation.language
    limits = lang.run_limits(limits)
    argv, env = lang.run_argv(limits) + list(args), run_environment(lang, limits)
    if pools is not None:
        if share_net or stderr_to_stdout:
            raise ValueError("a warm box cannot share the network or merge stderr")
        warm = pools(lang.dirs + RUN_DIRS).prepare(argv, limits, stdin=stdin, env=env,
                                                   files=files)
        compilation.copy_into(warm.box)
        return run_warm([warm])[0]
    with Box() as box:
        for name, data in files.items():
            box.write_file(name, data)
        compilation.copy_into(box)
        return box.run(argv, limits, stdin=stdin, env=env, dirs=lang.dirs + RUN_DIRS,
                       share_net=share_net, stderr_to_stdout=stderr_to_stdout)


_host_versions: dict[str, str | None] = {}  # by language name, for the life of the process
_version_locks: dict[str, threading.Lock] = {}  # one reader per language at a time
_locks_lock = threading.Lock()


def host_version(lang: Language) -> str | None:
    """The toolchain's version as its version command prints it on the host, outside any
    box (so without proving that a box can run it); None if it fails or prints none. Read
    once per process; a caller asking while another thread reads it waits for that read."""
    with _locks_lock:
        lock = _version_locks.setdefault(lang.name, threading.Lock())
    with lock:
        if lang.name not in _host_versions:
            limits = lang.compile_limits()
            try:
                r = subprocess.run(lang.fill(lang.version, limits), capture_output=True,
                                   timeout=60, check=False,
                                   env={"PATH": DEFAULT_PATH, **lang.environment(limits)})
            except (OSError, subprocess.TimeoutExpired):
                r = None
            _host_versions[lang.name] = (_version(lang, r.stdout + r.stderr)
                                         if r is not None and r.returncode == 0 else None)
        return _host_versions[lang.name]


def read_host_versions(langs: Sequence[Language]) -> None:
    """Read the versions of many toolchains at once (each is a process of its own, the JVM's
    take seconds)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(host_version, langs))


def on_host(lang: Language) -> bool:
    """Whether the toolchain is installed, whether or not a box can run it."""
    return host_version(lang) is not None


def require_toolchain(lang: Language) -> None:
    """Raise, saying what to do, if the language's toolchain does not work in a box here."""
    if toolchain_version(lang) is not None:
        return
    if on_host(lang):
        raise UsageError(f"The {lang.titled(None)} toolchain is installed but does not work "
                         f"in a box: its version command ({' '.join(lang.version)}) succeeds "
                         "on the host and fails inside the box. Check the profile's dirs and "
                         "env (docs/languages.md), then 'cellbox languages'")
    raise UsageError(f"The {lang.titled(None)} toolchain is not installed here: its version "
                     f"command ({' '.join(lang.version)}) fails. Install "
                     f"it (apt-get install {' '.join(lang.packages) or '...'}; "
                     "scripts/bootstrap.sh installs every shipped language's), then "
                     "check with 'cellbox languages'")


_versions: dict[str, str | None] = {}  # by language name, for the life of the process


def toolchain_version(lang: Language) -> str | None:
    """The toolchain's version (``version_pattern``'s match, or its first group, in what the
    version command prints), run inside a box, so that it proves the box can run the
    toolchain; None if it fails there or prints no version."""
    if lang.name not in _versions:
        _versions[lang.name] = _detect_version(lang)
    return _versions[lang.name]


def _detect_version(lang: Language) -> str | None:
    limits = lang.compile_limits()
    with Box() as box:
        try:
            r = box.run(lang.fill(lang.version, limits), limits,
                        env=run_environment(lang, limits), dirs=lang.dirs)
        except UsageError:  # e.g. a directory the profile binds is missing: no toolchain here
            return None
    return _version(lang, r.stdout + r.stderr) if r.ok else None


def _version(lang: Language, output: bytes) -> str | None:
    found = re.search(lang.version_pattern, output.decode("utf-8", "replace"))
    return found.group(found.lastindex or 0) if found else None


def title(lang: Language) -> str:
    """The language's title with the toolchain's version, as the host's toolchain prints it
    (no box needed: the service's own process names its languages this way)."""
    return lang.titled(host_version(lang))
