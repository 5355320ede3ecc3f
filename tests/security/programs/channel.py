"""Try one channel between two boxes.

    channel.py listen KIND ARG   set the channel up, publish a token, write /box/ready, then
                                 wait for a message until /box/done appears (at most 15 s);
                                 prints "GOT ..." for anything received.
    channel.py talk KIND ARG     send a token, and look for what a listener published;
                                 prints "SAW ..." for anything observed.
    channel.py both KIND ARG     both roles at once in one box (the positive control).

ARG is the TCP/UDP port (and name suffix) both sides agree on. Everything stays on loopback,
in /tmp, /dev/shm or /shared. Harmless: the worst it does is send a short string.
"""

import ctypes
import fcntl
import os
import signal
import socket
import sys
import time

os.write(2, b"cellbox-test: started\n")  # the start marker of every hostile test program
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.shmat.restype = ctypes.c_void_p
TOKEN = b"cellbox-channel-token"
KEY = 0x5CE11B0C
IPC_CREAT, IPC_NOWAIT, SETVAL, GETVAL = 0o1000, 0o4000, 16, 12
SYS_keyctl, SYS_add_key = 250, 248  # x86_64
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_SETPERM, KEYCTL_READ, KEYCTL_SEARCH = 1, 5, 11, 10
KEY_SPEC_SESSION_KEYRING = -3


def say(word, detail):
    print(word, detail, flush=True)


# -- each channel: setup (listener), poll (listener, -> message or None), talk (talker) --------

class Files:
    def __init__(self, path):
        self.path = path

    def setup(self, arg):
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o666)
        os.fchmod(fd, 0o666)
        os.close(fd)

    def poll(self):
        data = open(self.path, "rb").read()
        return data or None

    def talk(self, arg):
        if os.path.exists(self.path):
            say("SAW", self.path)
        with open(self.path, "ab") as f:
            f.write(TOKEN)


class SysvShm:
    def setup(self, arg):
        self.id = libc.shmget(KEY, 4096, IPC_CREAT | 0o666)
        self.addr = libc.shmat(self.id, None, 0)

    def poll(self):
        data = ctypes.string_at(self.addr, len(TOKEN))
        return data if data == TOKEN else None

    def talk(self, arg):
        shm = libc.shmget(KEY, 0, 0)
        if shm >= 0:
            addr = libc.shmat(shm, None, 0)
            if addr not in (None, ctypes.c_void_p(-1).value):
                ctypes.memmove(addr, TOKEN, len(TOKEN))
                say("SAW", "shm")


class SysvSem:
    def setup(self, arg):
        self.id = libc.semget(KEY, 1, IPC_CREAT | 0o666)

    def poll(self):
        return b"semaphore set" if libc.semctl(self.id, 0, GETVAL) == 42 else None

    def talk(self, arg):
        sem = libc.semget(KEY, 1, 0)
        if sem >= 0 and libc.semctl(sem, 0, SETVAL, 42) == 0:
            say("SAW", "sem")


class SysvMsg:
    def setup(self, arg):
        self.id = libc.msgget(KEY, IPC_CREAT | 0o666)

    def poll(self):
        buf = ctypes.create_string_buffer(8 + 64)
        n = libc.msgrcv(self.id, buf, 64, 0, IPC_NOWAIT)
        return buf.raw[8:8 + n] if n > 0 else None

    def talk(self, arg):
        q = libc.msgget(KEY, 0)
        buf = ctypes.create_string_buffer(ctypes.c_long(1).value.to_bytes(8, "little") + TOKEN)
        if q >= 0 and libc.msgsnd(q, buf, len(TOKEN), IPC_NOWAIT) == 0:
            say("SAW", "msg")


class Mqueue:
    name = b"/cellbox-chan"

    def setup(self, arg):
        self.q = libc.mq_open(self.name, os.O_CREAT | os.O_RDONLY | os.O_NONBLOCK, 0o666, None)

    def poll(self):
        buf = ctypes.create_string_buffer(8192)
        n = libc.mq_receive(self.q, buf, 8192, None)
        return buf.raw[:n] if n > 0 else None

    def talk(self, arg):
        q = libc.mq_open(self.name, os.O_WRONLY | os.O_NONBLOCK)
        if q >= 0 and libc.mq_send(q, TOKEN, len(TOKEN), 0) == 0:
            say("SAW", "mqueue")


class Stream:
    def __init__(self, family, address):
        self.family, self.address = family, address

    def addr(self, arg):
        return self.address(arg)

    def setup(self, arg):
        self.s = socket.socket(self.family, socket.SOCK_STREAM)
        self.s.bind(self.addr(arg))
        self.s.listen(4)
        self.s.setblocking(False)

    def poll(self):
        try:
            conn, _ = self.s.accept()
        except BlockingIOError:
            return None
        conn.settimeout(1)
        return b"connection: " + conn.recv(64)

    def talk(self, arg):
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(self.addr(arg))
        s.sendall(TOKEN)
        say("SAW", "connected")


class Udp:
    def setup(self, arg):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", int(arg)))
        self.s.setblocking(False)

    def poll(self):
        try:
            return self.s.recv(64)
        except BlockingIOError:
            return None

    def talk(self, arg):
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(TOKEN, ("127.0.0.1", int(arg)))


class Signals:
    got = []

    def setup(self, arg):
        signal.signal(signal.SIGUSR1, lambda *a: self.got.append(1))

    def poll(self):
        return b"SIGUSR1" if self.got else None

    def talk(self, arg):
        me = os.getpid()
        for pid in [-1] + list(range(1, 200)):
            if pid != me:
                try:
                    os.kill(pid, signal.SIGUSR1)
                    say("SAW", f"signalled {pid}")
                except OSError:
                    pass


class Locks:
    """The listener holds an flock and a POSIX read lock on /shared/lockfile (read-only);
    the talker looks for them."""

    path = "/shared/lockfile"

    def setup(self, arg):
        self.fd = os.open(self.path, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        fcntl.lockf(self.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)

    def poll(self):
        return None

    def talk(self, arg):
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("SAW", "an flock held by someone else")
        lock = fcntl.fcntl(fd, fcntl.F_GETLK, b"\1\0" + bytes(30))  # F_WRLCK at 0, whole file
        if lock[:2] != b"\2\0":  # not F_UNLCK
            say("SAW", "a POSIX lock held by someone else")


class Keyring:
    """The listener makes a named session keyring everyone may use and puts the token in it;
    the talker joins the keyring by name and reads the key."""

    name = b"cellbox-chan"

    def setup(self, arg):
        kr = libc.syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, self.name)
        libc.syscall(SYS_keyctl, KEYCTL_SETPERM, kr, 0x3F3F3F3F)
        key = libc.syscall(SYS_add_key, b"user", b"chan", TOKEN, len(TOKEN), kr)
        if key >= 0:
            libc.syscall(SYS_keyctl, KEYCTL_SETPERM, key, 0x3F3F3F3F)

    def poll(self):
        return None

    def talk(self, arg):
        kr = libc.syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, self.name)
        key = libc.syscall(SYS_keyctl, KEYCTL_SEARCH, kr, b"user", b"chan", 0)
        buf = ctypes.create_string_buffer(64)
        if key >= 0 and libc.syscall(SYS_keyctl, KEYCTL_READ, key, buf, 64) > 0:
            say("SAW", buf.value)


class ProcNames:
    """The listener names itself after the token; the talker scans /proc for the name."""

    def setup(self, arg):
        libc.prctl(15, f"cbx-{arg}".encode(), 0, 0, 0)  # PR_SET_NAME

    def poll(self):
        return None

    def talk(self, arg):
        for pid in os.listdir("/proc"):
            try:
                if open(f"/proc/{pid}/comm").read().strip() == f"cbx-{arg}":
                    say("SAW", f"process {pid}")
            except OSError:
                pass


class Vsock:
    """vsock ports are not per network namespace: a port the listener binds is taken for
    everyone. The talker only binds (never connects: CID 2 is the hypervisor)."""

    def setup(self, arg):
        self.s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        self.s.bind((socket.VMADDR_CID_ANY, int(arg)))
        self.s.listen(1)

    def poll(self):
        return None

    def talk(self, arg):
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        try:
            s.bind((socket.VMADDR_CID_ANY, int(arg)))
        except OSError as e:
            if e.errno == 98:  # EADDRINUSE
                say("SAW", "the vsock port is taken")


def _aio_nr():
    with open("/proc/sys/fs/aio-nr") as f:
        return int(f.read())


def _io_setup(events):
    ctx = ctypes.c_ulong(0)
    if libc.syscall(206, events, ctypes.byref(ctx)) != 0:  # io_setup, x86_64
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ctx


class Aio:
    """The machine-wide count of AIO events reserved (/proc/sys/fs/aio-nr): the listener
    reserves LISTEN events and watches the count grow by the talker's TALK."""

    LISTEN, TALK = 3001, 1709

    def setup(self, arg):
        self.base = _aio_nr()  # kept if the reservation is refused
        self.ctx = _io_setup(self.LISTEN)
        self.base = _aio_nr()

    def poll(self):
        moved = _aio_nr() - self.base
        return f"aio-nr moved by {moved}".encode() if moved >= self.TALK else None

    def talk(self, arg):
        if _aio_nr() >= self.LISTEN:
            say("SAW", f"aio-nr is {_aio_nr()}")
        self.ctx = _io_setup(self.TALK)
        time.sleep(1)  # held while the listener polls


CHANNELS = {
    "shm": lambda: Files("/dev/shm/cellbox-chan"),
    "tmp": lambda: Files("/tmp/cellbox-chan"),
    "sysv-shm": SysvShm, "sysv-sem": SysvSem, "sysv-msg": SysvMsg, "mqueue": Mqueue,
    "abstract": lambda: Stream(socket.AF_UNIX, lambda arg: f"\0cellbox-chan-{arg}"),
    "unix-shared": lambda: Stream(socket.AF_UNIX, lambda arg: "/shared/sock"),
    "tcp": lambda: Stream(socket.AF_INET, lambda arg: ("127.0.0.1", int(arg))),
    "udp": Udp, "signal": Signals, "lock": Locks, "keyring": Keyring, "vsock": Vsock,
    "proc": ProcNames, "aio": Aio,
}


def listen(chan, arg, done):
    try:
        chan.setup(arg)
    except OSError as e:
        say("setup failed:", e)
    open("/box/ready", "w").close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not done():
        try:
            msg = chan.poll()
        except OSError:
            msg = None
        if msg:
            say("GOT", msg)
            return
        time.sleep(0.02)
    try:
        msg = chan.poll()  # once more: the message may have come with the end signal
    except OSError:
        msg = None
    say("GOT", msg) if msg else say("nothing", "received")


def talk(chan, arg):
    try:
        chan.talk(arg)
    except OSError as e:
        say("talk failed:", e)


def main():
    role, kind, arg = sys.argv[1:4]
    chan = CHANNELS[kind]()
    if role == "listen":
        listen(chan, arg, lambda: os.path.exists("/box/done"))
    elif role == "talk":
        talk(chan, arg)
    else:  # both, in one box
        for stale in ("/box/ready", "/box/done"):
            if os.path.exists(stale):
                os.unlink(stale)
        pid = os.fork()
        if pid == 0:
            listen(chan, arg, lambda: os.path.exists("/box/done"))
            os._exit(0)
        while not os.path.exists("/box/ready"):
            time.sleep(0.01)
        talk(CHANNELS[kind](), arg)
        time.sleep(0.1)
        open("/box/done", "w").close()
        os.waitpid(pid, 0)


main()
