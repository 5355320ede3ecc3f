"""Directory rules (what the box sees) and environment rules (what the program inherits).

The grammar is isolate's: ``IN=OUT[:opt...]``, ``IN[:opt...]`` (binds ``/IN``), ``IN=`` (removes
the rule for IN). Inside paths are validated strictly: absolute after normalisation, no ``..``,
nothing that could make a mount land outside the new root.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum

from cellbox.errors import BoxStateError, UsageError

DIR_OPTIONS = ("rw", "dev", "noexec", "maybe", "fs", "tmp", "norec")


class Kind(Enum):
    BIND = "bind"  # bind a host path
    FS = "fs"  # mount a device-less filesystem (source is its type, e.g. proc)
    TMP = "tmp"  # a fresh, private, writable directory, on the box's quota
    BOX = "box"  # the box's working directory
    DEV = "dev"  # a minimal /dev: null, zero, full, random, urandom and the fd links
    SHM = "shm"  # a fresh tmpfs per run


@dataclass(frozen=True)
class DirRule:
    inside: str  # absolute, normalised
    source: str | None  # host path (BIND), filesystem type (FS); None otherwise
    kind: Kind = Kind.BIND
    rw: bool = False
    dev: bool = False
    noexec: bool = False
    maybe: bool = False
    norec: bool = False

    def describe(self) -> str:
        opts = [o for o in ("rw", "dev", "noexec", "maybe", "norec") if getattr(self, o)]
        src = self.source if self.source is not None else f"<{self.kind.value}>"
        return f"{self.inside}={src}" + "".join(f":{o}" for o in opts)


def normalise_inside(path: str) -> str:
    """Validate and normalise a path inside the box: absolute, no '..', no empty parts."""
    if not path:
        raise UsageError("A directory rule needs a path inside the box, e.g. -d /etc")
    if "\0" in path:
        raise UsageError(f"Directory rule path {path!r} contains a NUL byte")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"Directory rule path {path!r} must not contain '..'")
    if not parts:
        raise UsageError(f"Directory rule path {path!r} would replace the box's root; "
                         "bind a subdirectory instead")
    return "/" + "/".join(parts)


def normalise_workdir(path: str) -> str:
    """The program's working directory: relative paths are under /box; '/' is allowed."""
    full = path if path.startswith("/") else "/box/" + path
    return "/" if full.strip("/") == "" else normalise_inside(full)


def parse_dir_rule(arg: str) -> tuple[str, DirRule | None]:
    """Parse one ``-d`` argument. Returns (inside, rule), with rule None for a removal."""
    spec, *opts = arg.split(":")
    for o in opts:
        if o not in DIR_OPTIONS:
            raise UsageError(f"Unknown directory option {o!r} in -d {arg!r}; "
                             f"known options: {', '.join(DIR_OPTIONS)}")
    flags = set(opts)
    inside_raw, eq, outside = spec.partition("=")
    inside = normalise_inside(inside_raw)
    if eq and not outside and not flags & {"tmp"}:
        if flags:
            raise UsageError(f"-d {arg!r}: a removal (IN=) takes no options")
        return inside, None
    if "tmp" in flags:
        if outside:
            raise UsageError(f"-d {arg!r}: the tmp option takes no outside path")
        return inside, DirRule(inside, None, Kind.TMP, rw=True, noexec="noexec" in flags)
    if "fs" in flags:
        fstype = outside or inside_raw.strip("/")
        if not fstype or "/" in fstype:
            raise UsageError(f"-d {arg!r}: with fs, OUT is a filesystem type such as proc")
        return inside, DirRule(inside, fstype, Kind.FS, rw="rw" in flags, dev="dev" in flags,
                               noexec="noexec" in flags)
    source = outside if eq else inside
    if not (source.startswith("/") or source.startswith("./")):
        raise UsageError(f"-d {arg!r}: the outside path must be absolute or start with './' "
                         "(relative to the box directory)")
    return inside, DirRule(inside, source, Kind.BIND, rw="rw" in flags, dev="dev" in flags,
                           noexec="noexec" in flags, maybe="maybe" in flags,
                           norec="norec" in flags)


def default_dir_rules() -> list[DirRule]:
    return [
        DirRule("/box", None, Kind.BOX, rw=True),
        DirRule("/bin", "/bin"),
        DirRule("/dev", None, Kind.DEV),
        DirRule("/dev/shm", None, Kind.SHM, rw=True),
        DirRule("/lib", "/lib"),
        DirRule("/lib64", "/lib64", maybe=True),
        DirRule("/proc", "proc", Kind.FS),
        DirRule("/tmp", None, Kind.TMP, rw=True),
        DirRule("/usr", "/usr"),
    ]


def build_dir_rules(user_args: Iterable[str], defaults: bool = True) -> list[DirRule]:
    """Apply the user's -d arguments, in order, over the defaults (a later rule for the same
    inside path replaces the earlier one; IN= removes it)."""
    rules: dict[str, DirRule | None] = {}
    if defaults:
        rules = {r.inside: r for r in default_dir_rules()}
    for arg in user_args:
        inside, rule = parse_dir_rule(arg)
        rules[inside] = rule
    return [r for r in rules.values() if r is not None]


def resolve_sources(rules: Iterable[DirRule], box_dir: str) -> list[DirRule]:
    """Check every bind source on the host; drop 'maybe' rules whose source is missing.

    './x' sources are relative to the box directory. A missing source without 'maybe' is an
    error, so a typo never silently yields a box without the directory.
    """
    out = []
    tops = {os.path.normpath(box_dir), os.path.realpath(box_dir)}  # (looked up once)
    for r in rules:
        if r.kind is Kind.BIND:
            assert r.source is not None
            src = os.path.join(box_dir, r.source[2:]) if r.source.startswith("./") else r.source
            src = _refuse_box_links(tops, src, r)
            real = _real_source(src, r)
            if real is None:
                continue
            r = replace(r, source=real)
        out.append(r)
    return sorted(out, key=lambda r: r.inside.count("/"))


def _real_source(src: str, rule: DirRule) -> str | None:
    """The real path of a bind source, looked up with the caller's permissions (search
    permission on every directory on the way, as a mount by the caller would need); None for
    a missing 'maybe' source."""
    try:
        fd = os.open(src, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        if rule.maybe:
            return None
        raise UsageError(f"Directory rule {rule.describe()}: {src} does not exist on the host "
                         "(add :maybe to skip it when missing)") from None
    except PermissionError:
        raise UsageError(f"Directory rule {rule.describe()}: you may not reach {src} "
                         "(permission denied): a rule binds only what you could open "
                         "yourself") from None
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _refuse_box_links(tops: set[str], src: str, rule: DirRule) -> str:
    """A source inside box storage (``./x``, or an absolute path into it; ``tops``: the box
    directory by its name and by its real path) is a path the box writes: the host must not
    follow a link the box planted there, which would bind any host directory into the box.
    Returns the source, normalised if it is inside box storage."""
    path = os.path.normpath(src)
    for top in tops:
        if path != top and not path.startswith(top + "/"):
            continue
        if os.path.lexists(path) and (os.path.realpath(path)
                                      != os.path.realpath(top) + path[len(top):]):
            raise BoxStateError(f"Directory rule {rule.describe()}: {src} goes through a "
                                "symbolic link in the box; cellbox does not follow links "
                                "inside a box")
        return path
    return src


def build_env(rules: Iterable[str], full_env: bool, parent: Mapping[str, str]) -> dict[str, str]:
    """isolate's environment rules: VAR inherits, VAR=value sets, VAR= removes."""
    env: dict[str, str] = dict(parent) if full_env else {}
    env["LIBC_FATAL_STDERR_"] = "1"
    for rule in rules:
        var, eq, value = rule.partition("=")
        if not var:
            raise UsageError(f"Environment rule {rule!r} has no variable name")
        if "\0" in rule:
            raise UsageError(f"Environment rule {rule!r} contains a NUL byte")
        env.pop(var, None)
        if not eq:
            if var in parent:
                env[var] = parent[var]
        elif value:
            env[var] = value
    return env
