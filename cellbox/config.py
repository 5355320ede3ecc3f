"""The configuration file: one TOML file, validated into a frozen dataclass.

Looked up at ``$CELLBOX_CONFIG`` if set, else ``/usr/local/etc/cellbox.toml``. A missing
default file means the built-in defaults below; a file named by $CELLBOX_CONFIG must exist.
For a user who is not root (rootless mode), box_root and lock_root that the file does not set
default to ``$XDG_RUNTIME_DIR/cellbox/boxes`` and ``.../locks`` instead.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields

from cellbox.errors import ConfigError

DEFAULT_PATH = "/usr/local/etc/cellbox.toml"
ENV_VAR = "CELLBOX_CONFIG"


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

    def __post_init__(self) -> None:
        for name in ("box_root", "lock_root"):
            if not os.path.isabs(getattr(self, name)):
                raise ConfigError(f"Config {name}={getattr(self, name)!r} must be an absolute path")
        if self.cg_root != "auto" and not self.cg_root.strip("/"):
            raise ConfigError("Config cg_root must be 'auto' or a cgroup path such as 'cellbox' "
                              "(never the root cgroup)")
        if self.num_boxes < 1:
            raise ConfigError(f"Config num_boxes={self.num_boxes} must be at least 1")
        if self.first_uid < 1 or self.first_gid < 1:
            raise ConfigError("Config first_uid and first_gid must be above 0 (never root)")
        if self.first_uid + self.num_boxes > 2**32 - 2:
            raise ConfigError("Config first_uid + num_boxes overflows the uid range")
        if self.box_size_kb < 64 or self.box_inodes < 16:
            raise ConfigError("Config box_size_kb must be >= 64 and box_inodes >= 16")

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
        raise ConfigError(f"Config file {path} is not valid TOML: {e}") from None
    if os.geteuid() != 0:
        data = {**_user_state_dirs(path, data), **data}
    known = {f.name: f.type for f in fields(Config)}
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(f"Config file {path}: unknown key(s) {', '.join(sorted(unknown))}; "
                          f"known keys: {', '.join(known)}")
    for key, value in data.items():
        want = {"str": str, "int": int, "bool": bool}[str(known[key])]
        if type(value) is not want:
            raise ConfigError(f"Config file {path}: {key} must be a {want.__name__}, "
                              f"not {value!r}")
    try:
        return Config(**data)
    except ConfigError as e:
        raise ConfigError(f"Config file {path}: {e}") from None


def write_private_config(top: str, name: str, num_boxes: int, first_uid: int,
                         lock_root: str | None = None) -> tuple[Config, str]:
    """A configuration of its own, for a tool that must never touch real boxes (chaos,
    bench): box storage and locks under ``top`` (or locks in ``lock_root``), cgroups under
    ``cellbox/<name>-<pid>``, uids from ``first_uid``. Returns it, and the path of its file
    for child processes ($CELLBOX_CONFIG)."""
    path = os.path.join(top, "cellbox.toml")
    with open(path, "w") as f:
        f.write(f'box_root = "{top}/boxes"\nlock_root = "{lock_root or top + "/locks"}"\n'
                f'cg_root = "cellbox/{name}-{os.getpid()}"\nnum_boxes = {num_boxes}\n'
                f"first_uid = {first_uid}\nfirst_gid = {first_uid}\n")
    return load_config(path), path
