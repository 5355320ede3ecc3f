"""Box lifecycle: init, run, cleanup and repair, each under the box's lock.

This is the layer every front end goes through. It owns box storage, ownership and the box
record; it hands a fully resolved ``RunSpec`` to the keeper for the run itself.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from functools import cached_property

from cellbox import storage
from cellbox.cgroup import CgroupBackend, detect
from cellbox.config import Config, load_config
from cellbox.errors import BoxBusyError, BoxStateError, SandboxSetupError, UsageError
from cellbox.lock import BoxLock, BoxRecord
from cellbox.result import RunResult
from cellbox.rules import resolve_sources
from cellbox.spec import RunSpec


@dataclass(frozen=True)
class Caller:
    """On whose behalf the box is used: owner of the box's files."""

    uid: int
    gid: int

    @classmethod
    def current(cls) -> Caller:
        return cls(os.getuid(), os.getgid())


class Boxes:
    """Box operations for one configuration."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or load_config()

    @cached_property
    def cgroups(self) -> CgroupBackend:
        return detect(self.config.cg_root)

    def check_box_id(self, box_id: int) -> None:
        if not 0 <= box_id < self.config.num_boxes:
            raise UsageError(f"Box id {box_id} is out of range: this configuration has boxes "
                             f"0..{self.config.num_boxes - 1} (num_boxes)")

    def box_dir(self, box_id: int) -> str:
        return os.path.join(self.config.box_root, str(box_id))

    def lock(self, box_id: int, wait: float | None = 0.0) -> BoxLock:
        """Take the box's lock, then repair whatever a previous holder left: once we hold
        the lock, any holder named in the record is dead."""
        self.check_box_id(box_id)
        _require_root()
        lock = BoxLock(self.config.lock_root, box_id).acquire(wait)
        try:
            self.repair(lock, lock.read())
        except BaseException:
            lock.release()
            raise
        return lock

    # -- repair --------------------------------------------------------------------------

    def repair(self, lock: BoxLock, record: BoxRecord) -> BoxRecord:
        """Undo what a dead holder left: a run in progress, stray processes, a library lease
        whose process died (its box is reset). Counted. Holding the lock proves the holder
        recorded in ``record`` is gone."""
        if record.run is None and not record.extra.get("corrupt") and not record.lease:
            return record
        box_id = lock.box_id
        if self._cg_exists(box_id):
            self.cgroups.box(box_id, create=False).kill_all()
        repairs = int(record.extra.get("repairs", 0)) + 1
        if record.lease:
            self._remove(box_id)
            record = BoxRecord(extra={"repairs": repairs})
        elif storage.is_mounted(self.box_dir(box_id)):
            storage.chown_tree(os.path.join(self.box_dir(box_id), "box"),
                               record.owner_uid, record.owner_gid)
            record.initialised = True
        record.run = None
        record.extra.pop("corrupt", None)
        record.extra["repairs"] = repairs
        lock.write(record)
        print(f"cellbox: box {box_id}: repaired what a dead cellbox process left behind",
              file=sys.stderr)
        return record

    def _cg_exists(self, box_id: int) -> bool:
        return self.cgroups.box(box_id, create=False).exists()

    # -- the three operations -------------------------------------------------------------

    def init(self, lock: BoxLock, caller: Caller, quota: tuple[int, int] | None = None,
             lease: bool = False) -> str:
        """Create the box. ``lease``: the box lives only as long as this lock holder (a
        library lease); whoever takes the lock after the holder died resets it."""
        box_id = lock.box_id
        if self.config.restricted_init and os.getuid() != 0:
            raise BoxStateError("This configuration has restricted_init: only root may --init")
        record = lock.read()
        box_dir = self.box_dir(box_id)
        if record.initialised and storage.is_mounted(box_dir):
            raise BoxStateError(f"Box {box_id} is already initialised (by uid "
                                f"{record.owner_uid}); run --cleanup first")
        if storage.is_mounted(box_dir):  # storage without a record: a crash during init
            storage.unmount_storage(box_dir)
        size, inodes = quota or (self.config.box_size_kb, self.config.box_inodes)
        cg = self.cgroups.box(box_id, create=True)
        try:
            storage.mount_storage(box_dir, size, inodes)
            os.chown(os.path.join(box_dir, "box"), caller.uid, caller.gid)
        except OSError as e:
            cg.remove()
            storage.unmount_storage(box_dir)
            raise SandboxSetupError(f"Cannot create box storage at {box_dir}: {e}") from e
        lock.write(BoxRecord(initialised=True, owner_uid=caller.uid, owner_gid=caller.gid,
                             quota=quota, created=time.time(), lease=lease,
                             extra={"repairs": record.extra.get("repairs", 0)}))
        return box_dir

    def run(self, lock: BoxLock, caller: Caller, spec: RunSpec,
            keep_special_files: bool = False) -> RunResult:
        from cellbox import keeper  # the run path only

        box_id = lock.box_id
        record = lock.read()
        box_dir = self.box_dir(box_id)
        self._require_initialised(record, box_id, caller)
        spec = replace(spec, rules=resolve_sources(spec.rules, box_dir), box_dir=box_dir,
                       uid=self.config.box_uid(box_id), gid=self.config.box_gid(box_id))
        box = os.path.join(box_dir, "box")
        storage.empty_dir(os.path.join(box_dir, "tmp"))
        os.chmod(os.path.join(box_dir, "tmp"), 0o1777)
        storage.chown_tree(box, spec.uid, spec.gid)
        record.run = {"pid": os.getpid(), "since": time.time()}
        lock.write(record)
        try:
            result = keeper.run(spec, self.cgroups.box(box_id))
        finally:
            if not keep_special_files:
                storage.remove_special_files(box)
            storage.chown_tree(box, record.owner_uid, record.owner_gid)
            record.run = None
            record.runs += 1
            lock.write(record)
        return result

    def cleanup(self, lock: BoxLock, caller: Caller) -> bool:
        """Remove the box's cgroups and storage. False if there was nothing to clean."""
        box_id = lock.box_id
        record = lock.read()
        box_dir = self.box_dir(box_id)
        if not record.initialised and not storage.is_mounted(box_dir):
            if self._cg_exists(box_id):
                self.cgroups.box(box_id, create=False).remove()
            return False
        self._check_owner(record, box_id, caller)
        self._remove(box_id)
        lock.write(BoxRecord(extra={"repairs": record.extra.get("repairs", 0)}))
        return True

    def _remove(self, box_id: int) -> None:
        self.cgroups.box(box_id, create=False).remove()
        storage.unmount_storage(self.box_dir(box_id))

    def _require_initialised(self, record: BoxRecord, box_id: int, caller: Caller) -> None:
        if not record.initialised or not storage.is_mounted(self.box_dir(box_id)):
            raise BoxStateError(f"Box {box_id} is not initialised; run --init first")
        self._check_owner(record, box_id, caller)

    @staticmethod
    def _check_owner(record: BoxRecord, box_id: int, caller: Caller) -> None:
        if os.getuid() != 0 and caller.uid != record.owner_uid:
            raise BoxStateError(f"Box {box_id} belongs to uid {record.owner_uid}, not to you")

    def acquire_free(self, wait: float | None = 0.0) -> BoxLock:
        """Lock the first box that is neither held nor initialised."""
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            for box_id in range(self.config.num_boxes):
                try:
                    lock = self.lock(box_id)
                except BoxBusyError:
                    continue
                record = lock.read()
                if not record.initialised and not storage.is_mounted(self.box_dir(box_id)):
                    return lock
                lock.release()
            if deadline is not None and time.monotonic() >= deadline:
                raise SandboxSetupError(f"All {self.config.num_boxes} boxes are busy or "
                                        "initialised; clean some up or raise num_boxes")
            time.sleep(0.05)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise SandboxSetupError("cellbox must run as root: it creates namespaces, mounts and "
                                "cgroups. Rootless mode is not available yet; use sudo.")
