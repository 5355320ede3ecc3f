"""Kernel keyrings that outlive a run: the uid's user (@u) and user-session (@us) keyrings,
its persistent keyring, and the session keyring the program starts with (@s).

    keyring.py put RING SECRET   store a key, and read it back in the same run (the channel
                                 works): prints "stored", then "SAW SECRET"
    keyring.py get RING          look for it: "SAW ..." if found
    keyring.py clear RING        empty the keyring
"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_add_key, SYS_keyctl = 248, 250
KEYCTL_CLEAR, KEYCTL_LINK, KEYCTL_READ, KEYCTL_GET_PERSISTENT = 7, 8, 11, 22
L = ctypes.c_long
action, kind = sys.argv[1], sys.argv[2]
if kind == "persistent":  # linked into the session keyring
    ring = libc.syscall(SYS_keyctl, KEYCTL_GET_PERSISTENT, L(-1), L(-3))
    assert ring > 0, ctypes.get_errno()
else:
    ring = {"user": -4, "user-session": -5, "session": -3}[kind]
    libc.syscall(SYS_keyctl, KEYCTL_LINK, L(ring), L(-3))  # possessed: readable in full
if action == "put":
    key = libc.syscall(SYS_add_key, b"user", b"next-run", sys.argv[3].encode(),
                       L(len(sys.argv[3])), L(ring))
    print("stored" if key > 0 else f"not stored: errno {ctypes.get_errno()}")
if action == "clear":
    libc.syscall(SYS_keyctl, KEYCTL_CLEAR, L(ring))
else:  # every key the ring holds, listed by id (no search: that would need possession)
    ids = (ctypes.c_int32 * 64)()
    n = libc.syscall(SYS_keyctl, KEYCTL_READ, L(ring), ids, L(ctypes.sizeof(ids)))
    for key in ids[:max(n, 0) // 4]:
        buf = ctypes.create_string_buffer(128)
        if libc.syscall(SYS_keyctl, KEYCTL_READ, L(key), buf, L(128)) > 0:
            print("SAW", buf.value.decode())
