"""Language profiles: one TOML file per language in this package, loaded into ``Language``.

A profile is data: what to compile and run, which extra directories and environment the
toolchain needs in the box, how its limits differ from a plain program's, and which Judge0
language ids it answers. The keys are documented in docs/languages.md. Command-line elements
and environment values may use two placeholders, filled from the run's memory limit:
``{memory_mib}`` (the limit) and ``{heap_mib}`` (the limit minus ``heap_reserve``, at least
half the limit), for runtimes that size their own heap. A title may hold ``{version}``, the
toolchain's version as detected in a box (cellbox.judge.sandbox.toolchain_version).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

from cellbox.errors import UsageError
from cellbox.limits import Limits, parse_size

MIB = 1 << 20
OPTION_SETS = "_option_sets.toml"  # not a profile: compiler option allow-lists by family
JUDGE0 = "_judge0.toml"  # not a profile: Judge0 ids no profile answers, and why
NOT_PROFILES = {OPTION_SETS, JUDGE0}
VERSION_PATTERN = r"[0-9]+(?:\.[0-9]+)+"  # the first dotted number in the version output
PLACEHOLDERS = {"memory_mib": 1, "heap_mib": 1}  # names (with dummy values for validation)

# Compilation runs in the box like anything else, with these limits unless a profile's
# [compile_limits] changes them: a compiler bomb ends as a clean CE, never a hang.
COMPILE_LIMITS = Limits(time=15.0, wall_time=30.0, memory=768 * MIB, processes=16,
                        open_files=256, output=64 << 10, file_size=256 * MIB)
# Which Limits fields a profile may adjust: compilation has its own limits in full; a run's
# time and memory are the caller's, so only the runtime's own needs are the profile's.
COMPILE_KEYS = {"time", "wall_time", "memory", "processes", "open_files", "output", "file_size"}
CAP_KEYS = COMPILE_KEYS - {"open_files"}  # what a service's admin caps
RUN_KEYS = {"processes", "open_files", "stack"}
SIZE_KEYS = {"memory", "output", "file_size", "stack"}
TOP_KEYS = {"name", "title", "version", "source", "compile", "run", "artifacts", "dirs", "env",
            "oom_markers", "heap_reserve", "compile_limits", "run_limits", "compiler_options",
            "judge0_ids", "version_pattern", "packages"}


class ProfileError(UsageError):
    """A language profile is malformed."""


@dataclass(frozen=True)
class Language:
    name: str  # what --lang takes
    title: str  # may hold {version}: see titled()
    version: tuple[str, ...]  # prints the toolchain's version
    source: str  # the file name the source is saved as in the box
    run: tuple[str, ...]
    compile: tuple[str, ...] = ()  # empty: nothing to compile
    artifacts: tuple[str, ...] = ()  # glob patterns of compile outputs the runs need
    dirs: tuple[str, ...] = ()  # extra directory rules, isolate syntax
    env: dict[str, str] = field(default_factory=dict)
    oom_markers: tuple[str, ...] = ()  # stderr text that means "out of memory" (-> MLE)
    heap_reserve: int = 0  # bytes of the memory limit kept out of {heap_mib}
    compile_changes: dict[str, float] = field(default_factory=dict)  # [compile_limits]
    run_changes: dict[str, float] = field(default_factory=dict)  # [run_limits]
    # Full-match patterns: each compiler option a caller gives must match one (none: the
    # profile takes no options). An allow-list, since many options make a compiler run
    # another program (gcc's -wrapper, -B, plugins; rustc's -C linker; javac's processors).
    compiler_options: tuple[str, ...] = ()
    judge0_ids: tuple[int, ...] = ()  # the Judge0 CE language ids this profile answers
    packages: tuple[str, ...] = ()  # Debian packages of the toolchain (scripts/bootstrap.sh)
    version_pattern: str = VERSION_PATTERN  # finds the version in the version command's output

    def titled(self, version: str | None) -> str:
        """The title with the detected version in it (without it when there is none)."""
        if version is None:  # "Go ({version})" -> "Go", "C (GCC {version})" -> "C (GCC)"
            return re.sub(r" \(\{version\}\)| ?\{version\}", "", self.title)
        return self.title.replace("{version}", version)

    def environment(self, limits: Limits) -> dict[str, str]:
        """The profile's environment, placeholders filled from ``limits``."""
        return dict(zip(self.env, self.fill(tuple(self.env.values()), limits), strict=True))

    def compile_argv(self, limits: Limits, options: Sequence[str] = ()) -> list[str]:
        """The compile command; ``options`` go just before the source file, so that they
        override the profile's own flags (gcc, javac and rustc let a later flag win)."""
        argv = self.fill(self.compile, limits)
        if not options:
            return argv
        self.check_options(options)
        at = argv.index(self.source)
        return argv[:at] + list(options) + argv[at:]

    def check_options(self, options: Sequence[str]) -> None:
        """Raise, naming the culprit, unless every option is on the profile's allow-list."""
        if options and not self.compiler_options:
            step = " ".join(self.compile) or "none"
            raise UsageError(f"Language {self.name!r} takes no compiler options (its compile "
                             f"step: {step})")
        for option in options:
            if not any(re.fullmatch(p, option, re.DOTALL) for p in self.compiler_options):
                raise UsageError(f"The compiler option {option!r} is not allowed for "
                                 f"{self.name!r}; each option must match one of: "
                                 f"{' '.join(self.compiler_options)}")

    def run_argv(self, limits: Limits) -> list[str]:
        return self.fill(self.run, limits)

    def fill(self, argv: tuple[str, ...], limits: Limits) -> list[str]:
        if not any("{" in a for a in argv):
            return list(argv)
        if limits.memory is None:
            raise UsageError(f"Language {self.name!r} sizes its heap from the memory limit: "
                             "give a memory limit (e.g. 256M)")
        memory = limits.memory // MIB
        heap = max(limits.memory - self.heap_reserve, limits.memory // 2) // MIB
        return [a.format(memory_mib=memory, heap_mib=heap) for a in argv]

    def compile_limits(self, caps: Limits | None = None) -> Limits:
        """The profile's compile limits, each lowered to ``caps``' where that is set and
        lower (a service's admin caps bound compilation as much as the run)."""
        own = dataclasses.replace(COMPILE_LIMITS, **self.compile_changes)  # type: ignore[arg-type]
        if caps is None:
            return own
        lowered = {k: getattr(caps, k) for k in CAP_KEYS
                   if getattr(caps, k) is not None and getattr(caps, k) < getattr(own, k)}
        return dataclasses.replace(own, **lowered)

    def run_limits(self, limits: Limits) -> Limits:
        """The caller's limits with the runtime's own needs (threads, open files) applied."""
        return dataclasses.replace(limits, **self.run_changes)  # type: ignore[arg-type]


def _strings(name: str, key: str, value: object, allow_empty: bool = False,
             placeholders: bool = True) -> tuple[str, ...]:
    if (not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)
            or (not value and not allow_empty)):
        raise ProfileError(f"Language profile {name}: {key!r} must be a list of non-empty "
                           "strings, e.g. [\"gcc\", \"main.c\"]")
    for v in value if placeholders else ():
        try:
            v.format(**PLACEHOLDERS)
        except (KeyError, IndexError, ValueError):
            raise ProfileError(f"Language profile {name}: {key} element {v!r} uses an unknown "
                               f"placeholder; known: {', '.join(PLACEHOLDERS)}") from None
    return tuple(value)


def _limits(name: str, key: str, table: object, allowed: set[str]) -> dict[str, float]:
    if not isinstance(table, dict):
        raise ProfileError(f"Language profile {name}: [{key}] must be a table")
    out: dict[str, float] = {}
    for k, v in table.items():
        if k not in allowed:
            raise ProfileError(f"Language profile {name}: [{key}] cannot set {k!r}; it may set "
                               f"{', '.join(sorted(allowed))}")
        if k in SIZE_KEYS and isinstance(v, str):
            v = parse_size(v)
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
            raise ProfileError(f"Language profile {name}: [{key}] {k} = {v!r} must be a "
                               "non-negative number (sizes may be strings such as \"512M\")")
        out[k] = v
    Limits(**out)  # type: ignore[arg-type]  # Limits' own checks (e.g. processes >= 1)
    return out


def _option_patterns(name: str, value: object) -> tuple[str, ...]:
    """A list of full-match patterns, or the name of a shared set in _option_sets.toml."""
    if isinstance(value, str):
        if value not in option_sets():
            raise ProfileError(f"Language profile {name}: compiler_options {value!r} names no "
                               f"option set; known: {', '.join(option_sets())}")
        return option_sets()[value]
    patterns = _strings(name, "compiler_options", value, allow_empty=True, placeholders=False)
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise ProfileError(f"Language profile {name}: compiler_options pattern {p!r} is "
                               f"not a valid regular expression: {e}") from None
    return patterns


@functools.cache
def option_sets() -> dict[str, tuple[str, ...]]:
    """Allow-lists of compiler options shared by several profiles (a compiler family)."""
    data = tomllib.loads(resources.files(__name__).joinpath(OPTION_SETS).read_text())
    return {k: _option_patterns(OPTION_SETS, v) for k, v in data.items()}


def parse_profile(name: str, text: str) -> Language:
    """Validate one profile's TOML text; ``name`` is where it came from, for messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"Language profile {name} is not valid TOML: {e}") from None
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ProfileError(f"Language profile {name}: unknown key(s) {', '.join(sorted(unknown))}"
                           f"; known: {', '.join(sorted(TOP_KEYS))}")
    for key in ("name", "title", "source"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ProfileError(f"Language profile {name}: {key!r} must be a non-empty string")
    if "{" in data["title"].replace("{version}", ""):
        raise ProfileError(f"Language profile {name}: the title may hold only {{version}}")
    ids = data.get("judge0_ids", [])
    if not isinstance(ids, list) or not all(type(i) is int and i > 0 for i in ids):
        raise ProfileError(f"Language profile {name}: judge0_ids must be a list of Judge0 "
                           "language ids (positive integers)")
    pattern = data.get("version_pattern", VERSION_PATTERN)
    try:
        re.compile(pattern)
    except (re.error, TypeError):
        raise ProfileError(f"Language profile {name}: version_pattern must be a regular "
                           "expression") from None
    if "/" in data["source"]:
        raise ProfileError(f"Language profile {name}: source {data['source']!r} must be a plain "
                           "file name")
    env = data.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise ProfileError(f"Language profile {name}: [env] must map names to strings")
    _strings(name, "env", list(env.values()), allow_empty=True)  # placeholders
    reserve = data.get("heap_reserve", "0")
    options = _option_patterns(name, data.get("compiler_options", []))
    if options and data["source"] not in data.get("compile", []):
        raise ProfileError(f"Language profile {name}: compiler_options needs the source file "
                           "in the compile command (options go before it)")
    return Language(
        name=data["name"], title=data["title"], source=data["source"],
        version=_strings(name, "version", data.get("version")),
        run=_strings(name, "run", data.get("run")),
        compile=_strings(name, "compile", data.get("compile", []), allow_empty=True),
        artifacts=_strings(name, "artifacts", data.get("artifacts", []), allow_empty=True),
        dirs=_strings(name, "dirs", data.get("dirs", []), allow_empty=True),
        env=dict(env),
        oom_markers=_strings(name, "oom_markers", data.get("oom_markers", []), allow_empty=True),
        heap_reserve=parse_size(reserve) if isinstance(reserve, str) else int(reserve),
        compile_changes=_limits(name, "compile_limits", data.get("compile_limits", {}),
                               COMPILE_KEYS),
        run_changes=_limits(name, "run_limits", data.get("run_limits", {}), RUN_KEYS),
        compiler_options=options, judge0_ids=tuple(ids), version_pattern=pattern,
        packages=_strings(name, "packages", data.get("packages", []), allow_empty=True,
                          placeholders=False),
    )


@functools.cache
def languages() -> dict[str, Language]:
    """Every shipped profile, by name, sorted."""
    found: dict[str, Language] = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml") and entry.name not in NOT_PROFILES:
            lang = parse_profile(entry.name, entry.read_text())
            if lang.name in found:
                raise ProfileError(f"Two language profiles are named {lang.name!r}")
            found[lang.name] = lang
    return found


@dataclass(frozen=True)
class Unsupported:
    """A Judge0 language id that no profile answers: its Judge0 name and the reason."""

    id: int
    name: str
    reason: str


@functools.cache
def judge0_table() -> tuple[dict[int, Language], dict[int, Unsupported]]:
    """Judge0 CE's language ids: those a profile answers, and those none does (with why)."""
    answered: dict[int, Language] = {}
    for lang in languages().values():
        for i in lang.judge0_ids:
            if i in answered:
                raise ProfileError(f"Judge0 language id {i} is in two profiles: "
                                   f"{answered[i].name} and {lang.name}")
            answered[i] = lang
    data = tomllib.loads(resources.files(__name__).joinpath(JUDGE0).read_text())
    unsupported = {int(k): Unsupported(int(k), v["name"], v["reason"])
                   for k, v in data["unsupported"].items()}
    both = set(answered) & set(unsupported)
    if both:
        raise ProfileError(f"Judge0 language id(s) {sorted(both)} are both answered by a "
                           f"profile and listed as unsupported in {JUDGE0}")
    return dict(sorted(answered.items())), dict(sorted(unsupported.items()))


def get(name: str) -> Language:
    try:
        return languages()[name]
    except KeyError:
        raise UsageError(f"Unknown language {name!r}; known: {', '.join(languages())} "
                         "(cellbox languages lists them)") from None
