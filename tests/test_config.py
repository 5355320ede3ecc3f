"""Every configuration error makes ``cellbox --check-config`` (and every command) exit
nonzero with a message that names the file, the key and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellbox.config import host_problems, load_config
from cellbox.errors import ConfigError
from tests.support.boxes import cellbox

pytestmark = pytest.mark.operations

# (file content, words the message must hold besides the file's name)
BAD = {
    "unknown key": ('box_rot = "/x"\n', ["'box_rot'", "did you mean 'box_root'", "remove it"]),
    "wrong type": ('num_boxes = "ten"\n', ["num_boxes", "integer", "e.g. num_boxes = 1000"]),
    "bool as int": ("restricted_init = 1\n", ["restricted_init", "boolean", "= false"]),
    "bad range": ("num_boxes = 0\n", ["num_boxes = 0", "at least 1"]),
    "root uid": ("first_uid = 0\n", ["first_uid = 0", "above 0", "e.g. 60000"]),
    "id overflow": ("first_gid = 4294967200\n", ["first_gid", "largest id", "lower first_gid"]),
    "tiny quota": ("box_size_kb = 1\n", ["box_size_kb = 1", "at least 64"]),
    "relative root": ('lock_root = "run/cellbox"\n', ["lock_root", "absolute path",
                                                      "/run/cellbox"]),
    "cgroup escape": ('cg_root = "../escape"\n', ["cg_root", "'..'", "'cellbox'"]),
    "root cgroup": ('cg_root = "/"\n', ["cg_root", "never the root cgroup"]),
    "not toml": ("num_boxes = = 1\n", ["not valid TOML", "line 1", "fix that line"]),
    # Box uids 65500..65599 hold nobody (65534), whom every Debian system has.
    "real user": ("first_uid = 65500\nnum_boxes = 100\n",
                  ["first_uid = 65500", "nobody (65534)", "Move first_uid"]),
    "box root under a file": ('box_root = "/etc/hostname/boxes"\n',
                              ["box_root", "/etc/hostname is not a directory", "another path"]),
    "lock root is a file": ('lock_root = "/etc/hostname"\n',
                            ["lock_root", "not a directory", "remove it or name another"]),
    "group not in a list": ('daemon_groups = "cellbox"\n',
                            ["daemon_groups", "array of strings", '= ["cellbox"]']),
    "a number among users": ('daemon_users = ["cms", 1]\n',
                             ["daemon_users", "array of strings"]),
    "no idle time": ("daemon_idle_exit = 0\n", ["daemon_idle_exit = 0", "at least 1"]),
}


def _check(cfg: Path, content: str, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN202
    cfg.write_text(content)
    monkeypatch.setenv("CELLBOX_CONFIG", str(cfg))
    return cellbox("--check-config")


@pytest.mark.unit
@pytest.mark.parametrize("case", list(BAD))
def test_config_error_names_file_key_and_fix(case: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The validation itself (what --check-config and every command report): the file's
    content, then what the host makes of it."""
    content, words = BAD[case]
    cfg = tmp_path / "cellbox.toml"
    cfg.write_text(content)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # where a user who is not root keeps boxes
    try:
        message = "\n".join(host_problems(load_config(str(cfg)), str(cfg)))
    except ConfigError as e:
        message = str(e)
    assert f"Config file {cfg}" in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("case", ["not toml", "real user"])
def test_check_config_exits_2_with_the_message(case: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    content, words = BAD[case]
    cfg = tmp_path / "cellbox.toml"
    proc = _check(cfg, content, monkeypatch)
    assert proc.returncode == 2 and words[0].encode() in proc.stderr, proc.stderr


def test_a_bad_config_stops_every_command(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "cellbox.toml"
    _check(cfg, "num_boxes = 0\n", monkeypatch)
    for argv in (("-b", "0", "--init"), ("run", "--", "/bin/true"), ("boxes",)):
        proc = cellbox(*argv)
        assert proc.returncode == 2 and b"num_boxes = 0" in proc.stderr, argv


def test_doctor_reports_config_problems(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "cellbox.toml"
    _check(cfg, "first_uid = 65500\nnum_boxes = 100\n", monkeypatch)
    proc = cellbox("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert proc.returncode == 1
    assert checks["configuration"]["level"] == "fail"
    assert "nobody" in checks["configuration"]["found"]


def test_a_root_that_does_not_exist_yet_is_fine(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """cellbox creates box_root and lock_root when it needs them."""
    cfg = tmp_path / "cellbox.toml"
    proc = _check(cfg, f'box_root = "{tmp_path}/new/boxes"\nlock_root = "{tmp_path}/locks"\n',
                  monkeypatch)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b": OK" in proc.stdout and not (tmp_path / "new").exists()


@pytest.mark.unit
def test_a_cached_config_is_read_again_when_its_file_changes(tmp_path: Path) -> None:
    """The keeper daemon and its residents keep configs between commands: an edit, or a
    file put in its place, is seen by the next command; a file made broken fails it."""
    from cellbox.config import ConfigCache

    path = tmp_path / "cellbox.toml"
    path.write_text("num_boxes = 10\n")
    cache = ConfigCache()
    first = cache.get(str(path))
    assert first.num_boxes == 10
    assert cache.get(str(path)) is first  # unchanged: not parsed again
    path.write_text("num_boxes = 200\n")  # (a new size: seen even within the mtime's tick)
    assert cache.get(str(path)).num_boxes == 200
    replacement = tmp_path / "new.toml"
    replacement.write_text("num_boxes = 300\n")
    replacement.replace(path)  # a new inode, as an editor or a package upgrade writes it
    assert cache.get(str(path)).num_boxes == 300
    path.write_text("num_boxes = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        cache.get(str(path))
