"""The configuration file: one TOML file, validated into a frozen dataclass.

Looked up at ``$CELLBOX_CONFIG`` if set, else ``/usr/local/etc/cellbox.toml``. A missing
default file means the built-in defaults below; a file named by $CELLBOX_CONFIG must exist.
For a user who is not root (rootless mode), box_root and lock_root that the file does not set
default to ``$XDG_RUNTIME_DIR/cellbox/boxes`` and ``.../locks`` instead.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, fields

from cellbox.errors import ConfigError

DEFAULT_PATH = "/usr/local/etc/cellbox.toml"
ENV_VAR = "CELLBOX_CONFIG"
MAX_ID = 2**32 - 2  # (uid_t)-1 means "no change" to the kernel
PREFIX = "Config: "  # on errors of a Config built in code; a file's name replaces it
TOML_TYPES = {str: "string", int: "integer", bool: "boolean", tuple: "array of strings"}


@dataclass(frozen=True)
class Config:
    box_root: str = "/var/local/lib/cellbox"  # box storage: <box_root>/<id>/box
    lock_root: str = "/run/cellbox"  # one lock file (and box record) per box
    cg_root: str = "auto"  # "auto", or the cgroup path (relative to each hierarchy) to use
    first_uid: int = 60000  # box N runs as first_uid + N
    first_gid: int = 60000
    num_boxes: int = 1000
    restricted_init: bool = False  # only root may --init
    box_size_kb: int = 1048576  # default box storage (tmpfs) size when --quota is not given
    box_inodes: int = 65536
    allow_no_cgroup: bool = False  # rootless without a delegated cgroup: run anyway, weakened
    # Whom root's keeper daemon serves besides root: these user names and group members.
    daemon_users: tuple[str, ...] = ()
    daemon_groups: tuple[str, ...] = ("cellbox",)
    daemon_autostart: bool = True  # root's commands start a daemon when none is running
    daemon_idle_exit: int = 300  # seconds: a daemon started on demand exits when idle this long

    def __post_init__(self) -> None:
        for name in ("box_root", "lock_root"):
            if not os.path.isabs(getattr(self, name)):
                raise _invalid(name, getattr(self, name), "must be an absolute path, e.g. "
                               f"{_toml(getattr(Config, name))}")
        parts = self.cg_root.strip("/").split("/")
        if self.cg_root != "auto" and (parts == [""] or "." in parts or ".." in parts):
            raise _invalid("cg_root", self.cg_root, "must be 'auto' or a cgroup path below "
                           "the cgroup mount, such as 'cellbox': never the root cgroup, and "
                           "without '.' or '..'")
        if self.num_boxes < 1:
            raise _invalid("num_boxes", self.num_boxes, "must be at least 1, e.g. 1000")
        for name in ("first_uid", "first_gid"):
            first = getattr(self, name)
            if first < 1:
                raise _invalid(name, first, "must be above 0 (a box never runs as root), "
                               "e.g. 60000")
            if first + self.num_boxes > MAX_ID:
                raise _invalid(name, first, f"is too high: {name} + num_boxes "
                               f"({self.num_boxes}) passes the largest id, {MAX_ID}; lower "
                               f"{name} or num_boxes")
        if self.box_size_kb < 64:
            raise _invalid("box_size_kb", self.box_size_kb, "must be at least 64 (KiB)")
        if self.box_inodes < 16:
            raise _invalid("box_inodes", self.box_inodes, "must be at least 16")
        if self.daemon_idle_exit < 1:
            raise _invalid("daemon_idle_exit", self.daemon_idle_exit, "must be at least 1 "
                           "(seconds), e.g. 300")

    def box_uid(self, box_id: int) -> int:
        return self.first_uid + box_id

    def box_gid(self, box_id: int) -> int:
        return self.first_gid + box_id


def config_path() -> str:
    return os.environ.get(ENV_VAR) or DEFAULT_PATH


def _user_state_dirs(path: str, data: dict[str, object]) -> dict[str, str]:
    """Rootless defaults for the state directories the file leaves out."""
    if "box_root" in data and "lock_root" in data:
        return {}
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if not os.path.isabs(runtime):
        raise ConfigError(f"As a user who is not root, cellbox keeps its boxes under "
                          f"$XDG_RUNTIME_DIR/cellbox, and $XDG_RUNTIME_DIR is not set: set it, "
                          f"or set box_root and lock_root in the config file ({path}, or the "
                          f"file ${ENV_VAR} names)")
    return {"box_root": os.path.join(runtime, "cellbox", "boxes"),
            "lock_root": os.path.join(runtime, "cellbox", "locks")}


def load_config(path: str | None = None) -> Config:
    explicit = path is not None or ENV_VAR in os.environ
    path = path or config_path()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"Config file {path} does not exist (named by ${ENV_VAR}); "
                              "create it or unset the variable") from None
        data = {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"Config file {path} is not valid TOML: {e}; fix that line "
                          "(docs/config.md has an example)") from None
    except OSError as e:
        raise ConfigError(f"Cannot read config file {path}: {e.strerror}; run cellbox as "
                          "root (sudo), or make the file readable") from None
    if os.geteuid() != 0:
        data = {**_user_state_dirs(path, data), **data}
    known = {f.name: f for f in fields(Config)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"Config file {path}: unknown key {key!r}; {hint}remove it or fix "
                          f"its name. Known keys: {', '.join(known)} (docs/config.md)")
    for key, value in data.items():
        default = known[key].default
        if isinstance(default, tuple) and isinstance(value, list) \
                and all(isinstance(v, str) for v in value):
            data[key] = value = tuple(value)
        if type(value) is not type(default):
            kind = TOML_TYPES.get(type(default), type(default).__name__)
            raise ConfigError(f"Config file {path}: {key} = {_toml(value)} must be a TOML "
                              f"{kind}, e.g. {key} = {_toml(default)}")
    try:
        return Config(**data)
    except ConfigError as e:
        raise ConfigError(f"Config file {path}: {str(e).removeprefix(PREFIX)}") from None


class ConfigCache:
    """A long-lived process's configs (the keeper daemon's, its resident workers'): each file
    read again only when it, its name or what a rootless default depends on has changed."""

    def __init__(self) -> None:
        self._held: dict[str | None, tuple[object, Config]] = {}

    def get(self, path: str | None = None) -> Config:
        """``load_config(path)``, from the cache while the file is unchanged."""
        name = path or config_path()
        try:
            st = os.stat(name)
            stamp: object = (name, st.st_ino, st.st_mtime_ns, st.st_size, os.geteuid(),
                             os.environ.get("XDG_RUNTIME_DIR"))
        except OSError:
            stamp = None  # (load_config says what is wrong, every time)
        held = self._held.get(path)
        if stamp is None or held is None or held[0] != stamp:
            held = self._held[path] = (stamp, load_config(path))
        return held[1]


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _invalid(key: str, value: object, rule: str) -> ConfigError:
    return ConfigError(f"{PREFIX}{key} = {_toml(value)} {rule}")


def host_problems(config: Config, path: str) -> list[str]:
    """What on this host makes ``config`` (read from ``path``) unsafe or unusable, beyond
    the file itself: box uids or gids that belong to real users or groups, and box or lock roots that
    cannot be created. Read-only; for ``cellbox --check-config`` and ``cellbox doctor``."""
    problems = [f"Config file {path}: {p}" for p in _id_clashes(config)]
    for key in ("box_root", "lock_root"):
        problem = _directory_problem(getattr(config, key))
        if problem:
            problems.append(f"Config file {path}: {key} = {_toml(getattr(config, key))} "
                            f"{problem}")
    return problems


def _id_clashes(config: Config) -> list[str]:
    """A box whose uid or gid a real user or group has would share that user's files and
    processes: name each one, with how to move the range."""
    import grp
    import pwd

    clashes = []
    for key, first, entries in (("first_uid", config.first_uid,
                                 [(u.pw_name, u.pw_uid) for u in pwd.getpwall()]),
                                ("first_gid", config.first_gid,
                                 [(g.gr_name, g.gr_gid) for g in grp.getgrall()])):
        last = first + config.num_boxes - 1
        taken = sorted((i, name) for name, i in entries if first <= i <= last)
        if taken:
            names = ", ".join(f"{name} ({i})" for i, name in taken)
            kind = "user" if key == "first_uid" else "group"
            clashes.append(f"{key} = {first} with num_boxes = {config.num_boxes}: box {kind[0]}ids "
                           f"{first}..{last} include the {kind}(s) {names}; a box would run "
                           f"as that {kind}. Move {key} to a range no {kind} has, or lower "
                           "num_boxes")
    return clashes


def _directory_problem(path: str) -> str | None:
    """None if ``path`` is a directory or can be created (cellbox creates it when needed)."""
    if os.path.isdir(path):
        return None
    if os.path.lexists(path):
        return "exists and is not a directory; remove it or name another path"
    parent = os.path.dirname(path)
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"cannot be created: {parent} is not a directory; name another path"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: {parent} is not writable; create it or name another path"
    return None


def write_private_config(top: str, name: str, num_boxes: int, first_uid: int,
                         lock_root: str | None = None) -> tuple[Config, str]:
    """A configuration of its own, for a tool that must never touch real boxes (chaos,
    bench): box storage and locks under ``top`` (or locks in ``lock_root``), cgroups under
    ``cellbox/<name>-<pid>``, uids from ``first_uid``. Returns it, and the path of its file
    for child processes ($CELLBOX_CONFIG). Its commands never start the machine's keeper
    daemon (daemon_autostart = false): that one would serve with the machine's config."""
    path = os.path.join(top, "cellbox.toml")
    with open(path, "w") as f:
        f.write(f'box_root = "{top}/boxes"\nlock_root = "{lock_root or top + "/locks"}"\n'
                f'cg_root = "cellbox/{name}-{os.getpid()}"\nnum_boxes = {num_boxes}\n'
                f"first_uid = {first_uid}\nfirst_gid = {first_uid}\n"
                "daemon_autostart = false\n")
    return load_config(path), path
