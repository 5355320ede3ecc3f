"""Box lifecycle: init, run, cleanup and repair, each under the box's lock.

This is the layer every front end goes through. It owns box storage, ownership and the box
record; it hands a fully resolved ``RunSpec`` to the keeper for the run itself.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

from cellbox import storage
from cellbox.cgroup import CgroupBackend, detect, detect_rootless
from cellbox.config import Config, ConfigCache, load_config
from cellbox.errors import BoxBusyError, BoxStateError, SandboxSetupError, UsageError
from cellbox.linux import privileges, proc
from cellbox.lock import BoxLock, BoxRecord, flock_holders, read_record
from cellbox.result import RunResult

if TYPE_CHECKING:  # --init and --cleanup need neither (nor seccomp, which spec imports)
    from collections.abc import Callable

    from cellbox.cgroup import BoxCgroup
    from cellbox.keeper import Slot
    from cellbox.spec import RunSpec


@dataclass(frozen=True)
class Caller:
    """On whose behalf the box is used: owner of the box's files."""

    uid: int
    gid: int

    @classmethod
    def current(cls) -> Caller:
        """The requester: the process's own user, or a root daemon's client."""
        r = privileges.requester()
        return cls(r.uid, r.gid)


@dataclass
class BoxState:
    """What ``cellbox boxes`` shows for one box."""

    box_id: int
    state: str  # free | initialised | running | leased | busy | needs-repair
    record: BoxRecord
    pid: int | None = None  # the holder: a running keeper, a lease, an operation
    since: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        r = self.record
        return {"box": self.box_id, "state": self.state, "pid": self.pid, "since": self.since,
                "owner_uid": r.owner_uid if r.initialised else None, "detail": self.detail,
                "runs": r.runs, "repairs": r.repairs, "orphans_killed": r.orphans_killed,
                "lock_waits": r.waits, "lock_wait_seconds": round(r.wait_seconds, 6)}


class WarmInits:
    """Box inits kept alive between the commands of initialised boxes, by a process that
    outlives them (the keeper daemon's resident worker of a box). A ``--run`` goes to its
    box's warm init when that init built the same root (``BoxPlan``: rules, network, uid and
    gid) on the same box storage, and would give the program the same inherited process
    settings (resource limits, umask). A run that would need a new one gets it only if the
    box's previous run had the same root and settings; else (a judge's runs that alternate
    roots, as CMS's evaluation and its chmod do) it takes a box init of its own, which builds
    the root and runs the program itself, faster than a warm init and its run init that no
    later run would use. Each run still starts
    clean, as in the pool (``Boxes._prepare_files``, the box init, the cgroup), while the
    box's files persist, as isolate's do. The box record names the warm init
    (``BoxRecord.warm``), so that a ``--cleanup`` by any process ends it."""

    def __init__(self) -> None:
        self._slots: dict[int, tuple[object, Slot]] = {}  # box id -> (key, its box init)
        self._last: dict[int, object] = {}  # box id -> the key of its last run
        # (cg_root, rootless) -> the cgroup backend detected once, for every command
        self.backends: dict[tuple[str, bool], CgroupBackend] = {}
        self._configs = ConfigCache()

    def config(self) -> Config:
        """The config file's settings, read again only when the file (or its name) changed."""
        return self._configs.get()

    def slot_for(self, box_id: int, record: BoxRecord, spec: RunSpec,
                 cgroup: Callable[[], BoxCgroup]) -> Slot | None:
        """The warm box init for this run; a new one is launched with the run (None: the run
        takes a box init of its own: it hands the caller's descriptors to the program, or its
        root or settings differ from the box's last run's)."""
        if spec.inherit_fds:
            return None
        import resource

        from cellbox import keeper
        from cellbox.boxinit.plan import BoxPlan

        umask = os.umask(0)
        os.umask(umask)
        key = (BoxPlan.of(spec, warm=True), record.created, umask,
               tuple(resource.getrlimit(r) for r in range(proc.RLIMITS)))
        held = self._slots.get(box_id)
        if held is not None and held[0] == key and held[1].alive:
            return held[1]
        self.end(box_id)
        if self._last.get(box_id) != key:
            self._last[box_id] = key
            return None
        slot = keeper.Slot(spec, cgroup())
        self._slots[box_id] = (key, slot)
        return slot

    def end(self, box_id: int) -> None:
        """End the box's warm init, if any."""
        held = self._slots.pop(box_id, None)
        if held is not None:
            held[1].close()

    def close(self) -> None:
        for box_id in list(self._slots):
            self.end(box_id)


def _warm_entry(slot: Slot) -> dict[str, int] | None:
    """The box record's note of a live warm box init: its pid and start time."""
    st = proc.stat(slot.pid) if slot.alive and slot.pid is not None else None
    return None if st is None else {"pid": slot.pid, "start": st[1]}


def _end_warm_init(record: BoxRecord) -> None:
    """Kill the warm box init the record names, if it still lives (its pid namespace, with
    any run of it, dies with it). Its keeper finds it dead and starts another if needed."""
    entry = record.warm
    if entry is None:
        return
    st = proc.stat(int(entry["pid"]))
    if st is not None and st[1] == entry.get("start"):
        try:
            os.kill(int(entry["pid"]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    record.warm = None


class Boxes:
    """Box operations for one configuration. ``warm``: keep box inits alive between runs
    (a process that serves many commands: the keeper daemon's resident workers);
    ``backends``: the cgroup backends a long-lived process has detected (else ``warm``'s)."""

    def __init__(self, config: Config | None = None, warm: WarmInits | None = None,
                 backends: dict[tuple[str, bool], CgroupBackend] | None = None) -> None:
        self.config = config or (load_config() if warm is None else warm.config())
        self.warm_inits = warm
        self._backends = backends if backends is not None else (
            {} if warm is None else warm.backends)
        # Rootless mode (docs/security.md): a user namespace, plain directories for storage,
        # and cgroups only if some were delegated to the user. It follows the euid.
        self.rootless = os.geteuid() != 0

    @cached_property
    def cgroups(self) -> CgroupBackend:
        known = self._backends
        key = (self.config.cg_root, self.rootless)
        if key not in known:
            known[key] = detect_rootless(key[0]) if self.rootless else detect(key[0])
        return known[key]

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
        lock = BoxLock(self.config.lock_root, box_id).acquire(wait)
        try:
            record = lock.read()
            damage = self.damage(box_id, record)
            if lock.waited > 0:
                record.waits += 1
                record.wait_seconds += lock.waited
            if damage:
                self.repair(lock, record, damage)
            elif lock.waited > 0:
                lock.write(record)
        except BaseException:
            lock.release()
            raise
        return lock

    # -- damage and repair -----------------------------------------------------------------

    def damage(self, box_id: int, record: BoxRecord) -> str | None:
        """What a dead holder left in this box, or None if it is consistent. Only meaningful
        under the lock, or when /proc/locks shows that nobody holds it."""
        mounted = self._has_storage(box_id)
        if record.extra.get("corrupt"):
            return "its record was unreadable"
        if record.run is not None:
            return f"a run (cellbox pid {record.run.get('pid')}) was interrupted"
        if record.lease is not None:
            return f"the library lease of pid {record.lease.get('pid')} ended without cleanup"
        if record.initialised and not mounted:
            return "its storage is gone (an interrupted --cleanup)"
        if not record.initialised and mounted:
            return "an interrupted --init left its storage"
        if not record.initialised and self._cg_exists(box_id):
            return "an interrupted --init or --cleanup left its cgroup"
        return None

    def repair(self, lock: BoxLock, record: BoxRecord, damage: str) -> BoxRecord:
        """Undo what a dead holder left: kill stray processes, then either hand an interrupted
        run's box back to its owner, or reset the box. Counted in the record."""
        box_id = lock.box_id
        orphans = 0
        if self._cg_exists(box_id):
            cg = self.cgroups.box(box_id, create=False)
            orphans = len(cg.pids())
            if orphans:
                cg.kill_all()
        box_dir = self.box_dir(box_id)
        interrupted_run = (record.run is not None and record.lease is None and record.initialised
                           and not record.extra.get("corrupt") and self._has_storage(box_id))
        if interrupted_run:
            box = os.path.join(box_dir, "box")
            storage.remove_special_files(box)
            if not self.rootless:
                storage.chown_tree(box, record.owner_uid, record.owner_gid)
            record.run = None
        else:
            _end_warm_init(record)
            self._remove(box_id)
            record = record.reset()
        record.repairs += 1
        record.orphans_killed += orphans
        lock.write(record)
        print(f"cellbox: box {box_id}: repaired: {damage}"
              + (f"; killed {orphans} leftover processes" if orphans else ""), file=sys.stderr)
        return record

    def _has_storage(self, box_id: int) -> bool:
        box_dir = self.box_dir(box_id)
        return os.path.isdir(box_dir) if self.rootless else storage.is_mounted(box_dir)

    def _cg_exists(self, box_id: int) -> bool:
        return self.cgroups.box(box_id, create=False).exists()

    # -- inspection (never takes a lock, so it is safe next to live runs) -------------------

    def known_ids(self) -> list[int]:
        """Boxes that have ever been locked (every operation creates the lock file)."""
        try:
            names = os.listdir(self.config.lock_root)
        except FileNotFoundError:
            return []
        ids = {int(n[:-5]) for n in names if n.endswith(".lock") and n[:-5].isdigit()}
        return sorted(i for i in ids if i < self.config.num_boxes)

    def state(self, box_id: int, holders: dict[tuple[int, int], int]) -> BoxState:
        lock = BoxLock(self.config.lock_root, box_id)
        holder = lock.holder(holders)
        record = read_record(lock.record_path)
        st = BoxState(box_id, "free", record)
        if holder is not None:
            if record.run is not None:
                st.state, st.pid, st.since = "running", holder, record.run.get("since")
            elif record.lease is not None:
                st.state, st.pid, st.since = "leased", holder, record.lease.get("since")
            else:
                st.state, st.pid, st.detail = "busy", holder, "an operation is in progress"
        elif (damage := self.damage(box_id, record)) is not None:
            st.state, st.detail = "needs-repair", damage
        elif record.initialised:
            st.state = "initialised"
        return st

    def states(self) -> list[BoxState]:
        holders = flock_holders()
        return [self.state(i, holders) for i in self.known_ids()]

    def reap(self) -> list[BoxState]:
        """Repair every box that needs it and is not held. Returns what was repaired."""
        return [st for st in self.needing_repair() if self.reap_one(st)]

    def needing_repair(self) -> list[BoxState]:
        return [st for st in self.states() if st.state == "needs-repair"]

    def reap_one(self, st: BoxState) -> bool:
        """Repair one box; False if someone took it meanwhile (and repaired it themselves)."""
        try:
            self.lock(st.box_id).release()  # taking the lock repairs
        except BoxBusyError:
            return False
        return True

    # -- the three operations -------------------------------------------------------------

    def init(self, lock: BoxLock, caller: Caller, quota: tuple[int, int] | None = None,
             lease: bool = False) -> str:
        """Create the box. ``lease``: the box lives only as long as this lock holder (a
        library lease); whoever takes the lock after the holder died resets it."""
        box_id = lock.box_id
        if self.config.restricted_init and privileges.requester().uid != 0:
            raise BoxStateError("This configuration has restricted_init: only root may --init")
        record = lock.read()
        box_dir = self.box_dir(box_id)
        if record.initialised:  # (lock() repaired any inconsistency)
            raise BoxStateError(f"Box {box_id} is already initialised (by uid "
                                f"{record.owner_uid}); run --cleanup first")
        if quota is not None and self.rootless:
            raise UsageError("--quota needs root (box storage is a tmpfs); in rootless mode a "
                             "box is a plain directory of yours, without a quota")
        size, inodes = quota or (self.config.box_size_kb, self.config.box_inodes)
        cg = self.cgroups.box(box_id, create=True)
        try:
            if self.rootless:
                storage.make_plain_storage(box_dir)
            else:
                storage.mount_storage(box_dir, size, inodes, caller.uid)
                os.chown(os.path.join(box_dir, "box"), caller.uid, caller.gid)
        except OSError as e:
            cg.remove()
            self._remove_storage(box_id)
            raise SandboxSetupError(f"Cannot create box storage at {box_dir}: {e}") from e
        record = record.reset()
        record.initialised, record.owner_uid, record.owner_gid = True, caller.uid, caller.gid
        record.quota, record.created = quota, time.time()
        if lease:
            record.lease = {"pid": os.getpid(), "since": record.created}
        lock.write(record)
        return box_dir

    def run(self, lock: BoxLock, caller: Caller, spec: RunSpec,
            keep_special_files: bool = False) -> RunResult:
        return self.run_many([(lock, spec)], caller, keep_special_files)[0]

    def run_many(self, jobs: list[tuple[BoxLock, RunSpec]], caller: Caller,
                 keep_special_files: bool = False,
                 started: Callable[[], None] | None = None) -> list[RunResult]:
        """One run in each box, all at once, supervised by this one process (``started``:
        see ``keeper.run_many``)."""
        from cellbox import keeper  # the run path only

        prepared: list[tuple[BoxLock, BoxRecord, RunSpec, Slot | None]] = []
        weakened: list[list[str]] = []
        try:
            for lock, spec in jobs:
                spec, missing = self._without_cgroup(spec)
                prepared.append(self._before_run(lock, caller, spec))
                weakened.append(missing)
            results = keeper.run_many([(spec, slot.cgroup if slot else
                                        self.cgroups.box(lock.box_id), slot)
                                       for lock, _, spec, slot in prepared], started)
            for result, missing in zip(results, weakened, strict=True):
                result.cgroup_weakened = missing
            return results
        finally:
            for lock, record, _, slot in prepared:
                if slot is not None:  # the box init the next run may take, if it lives
                    record.warm = _warm_entry(slot)
                self._after_run(lock, record, keep_special_files)

    def resolve(self, lock: BoxLock, caller: Caller, spec: RunSpec,
                record: BoxRecord | None = None) -> RunSpec:
        """``spec`` for this box: rule sources resolved, the box's directory, uid and gid
        (``record``: the box's, if the caller has just read it)."""
        from cellbox.rules import resolve_sources

        box_id = lock.box_id
        box_dir = self.box_dir(box_id)
        self._require_initialised(record or lock.read(), box_id, caller)
        with privileges.requester_access():  # the rule sources are the caller's to reach
            rules = resolve_sources(spec.rules, box_dir)
        return replace(spec, rules=rules, box_dir=box_dir,
                       uid=self.config.box_uid(box_id), gid=self.config.box_gid(box_id),
                       # the user's files are the box uid's inside: no chown either way
                       id_map=(os.geteuid(), os.getegid()) if self.rootless else None)

    def warm(self, lock: BoxLock, caller: Caller, root: RunSpec) -> Slot:
        """A warm box init for a leased box (the pool's): started, with the root of ``root``
        (its rules and network); its ``spec`` is ``root`` resolved for this box."""
        from cellbox import keeper  # the run path only

        slot = keeper.Slot(self.resolve(lock, caller, root), self.cgroups.box(lock.box_id))
        slot.start()
        return slot

    def run_warm(self, caller: Caller, jobs: list[tuple[RunSpec, Slot]],
                 started: Callable[[], None] | None = None) -> list[RunResult]:
        """Pool runs, one in each leased box's warm box init (``slot``), all at once; each
        ``spec`` is its slot's, with the run's argv, environment and limits (``started``: see
        ``keeper.run_many``). No record is written: the lease's record stands for the pool's
        life, and whoever takes the lock after the pool died repairs the box."""
        from cellbox import keeper  # the run path only

        runs: list[tuple[RunSpec, BoxCgroup, Slot | None]] = []
        weakened: list[list[str]] = []
        try:
            for spec, slot in jobs:
                spec, missing = self._without_cgroup(spec)
                self._prepare_files(spec)
                runs.append((spec, slot.cgroup, slot))
                weakened.append(missing)
            results = keeper.run_many(runs, started)
        finally:
            for spec, _, _ in runs:
                self._restore_files(spec.box_dir, caller.uid, caller.gid, False)
        for result, missing in zip(results, weakened, strict=True):
            result.cgroup_weakened = missing
        return results

    def _before_run(self, lock: BoxLock, caller: Caller, spec: RunSpec
                    ) -> tuple[BoxLock, BoxRecord, RunSpec, Slot | None]:
        """The run's spec resolved, the box's files ready, and the warm box init it runs in
        (None: one of its own). The run is marked in the record, unless the box is leased:
        the lease's record stands for its runs, as for the pool's (a dead holder's box is reset
        either way), which saves two record writes per run (each a rename that a disk file
        system may flush)."""
        record = lock.read()
        spec = self.resolve(lock, caller, spec, record)
        slot = None
        if self.warm_inits is not None:
            slot = self.warm_inits.slot_for(lock.box_id, record, spec,
                                            lambda: self.cgroups.box(lock.box_id))
        self._prepare_files(spec)
        if record.lease is None:
            record.run = {"pid": os.getpid(), "since": time.time()}
            lock.write(record)
        return lock, record, spec, slot

    def _after_run(self, lock: BoxLock, record: BoxRecord, keep_special_files: bool) -> None:
        self._restore_files(self.box_dir(lock.box_id), record.owner_uid, record.owner_gid,
                            keep_special_files)
        if record.lease is None:
            record.run = None
            record.runs += 1
            lock.write(record)

    def _prepare_files(self, spec: RunSpec) -> None:
        """An empty /tmp; /box and /tmp themselves as new (``storage.DIR_STATE``); the box's
        files become the box user's for the run (rootless: they are already, through the user
        namespace's map)."""
        tmp, box = os.path.join(spec.box_dir, "tmp"), os.path.join(spec.box_dir, "box")
        storage.renew_dir(tmp, storage.TMP_MODE, (os.geteuid(), os.getegid()))
        storage.empty_dir(tmp)
        storage.renew_dir(box, storage.BOX_MODE, self._box_owner(spec.uid, spec.gid))
        if not self.rootless:
            storage.chown_tree(box, spec.uid, spec.gid)

    def _restore_files(self, box_dir: str, uid: int, gid: int,
                       keep_special_files: bool) -> None:
        """The box's files go back to their owner (no device, fifo or socket kept), and /box
        itself to its owner alone."""
        box = os.path.join(box_dir, "box")
        storage.renew_dir(box, storage.BOX_MODE, self._box_owner(uid, gid))
        if not keep_special_files:
            storage.remove_special_files(box)
        if not self.rootless:
            storage.chown_tree(box, uid, gid)

    def _box_owner(self, uid: int, gid: int) -> tuple[int, int]:
        """Rootless: every file of the box is the user's own, whoever ``uid`` names."""
        return (os.geteuid(), os.getegid()) if self.rootless else (uid, gid)

    def _without_cgroup(self, spec: RunSpec) -> tuple[RunSpec, list[str]]:
        """Rootless mode without a cgroup: ``spec`` with RLIMIT_NPROC for its processes limit,
        and what no cgroup will do for this run; or an error if it asked for a limit that
        needs one and did not opt out. Otherwise ``spec`` as it is, and nothing."""
        if self.cgroups.version != 0:
            return spec, []
        from cellbox.cgroup import none

        missing = none.unenforced(spec.limits)
        if missing and not (spec.allow_no_cgroup or self.config.allow_no_cgroup):
            raise SandboxSetupError(
                f"The {' and '.join(missing)} limit(s) need a cgroup, which this rootless run "
                f"lacks ({self.cgroups.describe()}). Or run without (--no-cgroups, or "
                "allow_no_cgroup = true in the config): the meta file then lists them under "
                "cellbox-cgroup-weakened (docs/security.md, rootless mode)")
        return replace(spec, nproc=none.nproc(spec.limits)), [*missing, none.ACCOUNTING]

    def has_anything_to_clean(self, box_id: int) -> bool:
        """False when the box is free and a cleanup would find nothing to do or repair: not
        initialised, and nothing left (checked under its lock, taken without waiting; nothing
        is changed). True when it is held by another, or when anything is there."""
        self.check_box_id(box_id)
        try:
            lock = BoxLock(self.config.lock_root, box_id).acquire()
        except BoxBusyError:
            return True
        with lock:
            record = lock.read()
            return record.initialised or self.damage(box_id, record) is not None

    def cleanup(self, lock: BoxLock, caller: Caller) -> bool:
        """Remove the box's cgroups and storage. False if there was nothing to clean."""
        box_id = lock.box_id
        record = lock.read()
        if not record.initialised and not self._has_storage(box_id):
            if self._cg_exists(box_id):
                self.cgroups.box(box_id, create=False).remove()
            return False
        self._check_owner(record, box_id, caller)
        if self.warm_inits is not None:
            self.warm_inits.end(box_id)
        _end_warm_init(record)
        self._remove(box_id)
        lock.write(record.reset())
        return True

    def _remove(self, box_id: int) -> None:
        self.cgroups.box(box_id, create=False).remove()
        self._remove_storage(box_id)

    def _remove_storage(self, box_id: int) -> None:
        if self.rootless:
            storage.remove_plain_storage(self.box_dir(box_id))
        else:
            storage.unmount_storage(self.box_dir(box_id))

    def _require_initialised(self, record: BoxRecord, box_id: int, caller: Caller) -> None:
        if not record.initialised or not self._has_storage(box_id):
            raise BoxStateError(f"Box {box_id} is not initialised; run --init first")
        self._check_owner(record, box_id, caller)

    @staticmethod
    def _check_owner(record: BoxRecord, box_id: int, caller: Caller) -> None:
        if privileges.requester().uid != 0 and caller.uid != record.owner_uid:
            raise BoxStateError(f"Box {box_id} belongs to uid {record.owner_uid}, not to you: "
                                "only its owner or root may run or clean it up")

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
                if not record.initialised and not self._has_storage(box_id):
                    return lock
                lock.release()
            if deadline is not None and time.monotonic() >= deadline:
                raise SandboxSetupError(f"All {self.config.num_boxes} boxes are busy or "
                                        "initialised; clean some up or raise num_boxes")
            time.sleep(0.05)

