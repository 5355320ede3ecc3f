"""Network: without --share-net the box reaches nothing of the host.

The host runs listeners on 127.0.0.1 and ::1 (TCP, UDP) and an abstract unix socket; each
hostile program aims at them, and the test asserts that no connection or datagram arrived.
The controls run the same program with --share-net (or on the host) and see it arrive, which
proves the listeners work. All traffic stays on loopback; vsock is probed by binding only.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.boxes import InitBox
from tests.support.hostile import Listeners, assert_no_channel
from tests.support.proof import SH_STARTED, output, run_c, run_checked, run_on_host, run_py

pytestmark = pytest.mark.security

SHARE = ("--share-net",)

CONNECT = """
import socket, sys
tcp4, tcp6, udp4, udp6, abstract = sys.argv[1:]
attempts = [
    (socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", int(tcp4))),
    (socket.AF_INET6, socket.SOCK_STREAM, ("::1", int(tcp6))),
    (socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", int(udp4))),
    (socket.AF_INET6, socket.SOCK_DGRAM, ("::1", int(udp6))),
    (socket.AF_UNIX, socket.SOCK_STREAM, "\\0" + abstract),
]
for family, kind, addr in attempts:
    s = socket.socket(family, kind)
    s.settimeout(1)
    try:
        if kind == socket.SOCK_DGRAM:
            s.sendto(b"hostile datagram", addr)
        else:
            s.connect(addr)
            s.sendall(b"hostile stream")
        print("sent to", addr)
    except OSError as e:
        print(addr, e)
"""


def connect_args(ls: Listeners) -> list[str]:
    return [str(ls.port(k)) for k in ("tcp4", "tcp6", "udp4", "udp6")] + [ls.abstract_name]


@pytest.mark.cgroup2
def test_host_loopback_listeners_get_nothing(box: InitBox, listeners: Listeners) -> None:
    """TCP and UDP to the host's 127.0.0.1 and ::1, and the host's abstract unix socket: the
    box has its own loopback and its own abstract namespace, so nothing arrives. Control:
    with --share-net every one of them arrives."""
    proc, _ = run_py(box, CONNECT, *connect_args(listeners))
    assert listeners.received() == [], output(proc)
    proc, _ = run_py(box, CONNECT, *connect_args(listeners), opts=SHARE)
    got = {kind for kind, _ in listeners.received()}
    assert got == {"tcp4", "tcp6", "udp4", "udp6", "abstract"}, output(proc)


def test_dns_lookup_reaches_no_host_resolver(box: InitBox, listeners: Listeners,
                                             sys_program: Callable[[str], Path]) -> None:
    """res_query of a canary name through a resolver on the host's 127.0.0.1 (the UDP
    listener): no query arrives and the lookup fails. Control: with --share-net the query
    arrives, carrying the canary name."""
    port = str(listeners.port("udp4"))
    exe = sys_program("net_dns")
    proc, _ = run_c(box, exe, port)
    assert listeners.received() == [], output(proc)
    assert b"res_query: -1" in proc.stdout, output(proc)
    run_c(box, exe, port, opts=SHARE)
    assert "canary" in str(listeners.received()), "the control query never arrived"


def test_raw_and_packet_sockets(box: InitBox, listeners: Listeners,
                                sys_program: Callable[[str], Path]) -> None:
    """A raw IP socket sending a forged UDP datagram to the host's listener, an AF_PACKET
    socket and a raw ICMP socket: none can be made (no CAP_NET_RAW) and nothing arrives.
    Control: root on the host delivers the forged datagram with the same program."""
    port = str(listeners.port("udp4"))
    exe = sys_program("net_raw")
    proc, _ = run_c(box, exe, port, opts=SHARE)  # even on the host's network
    assert listeners.received() == [], output(proc)
    assert b"raw udp socket: -1" in proc.stdout and b"packet socket: -1" in proc.stdout, \
        output(proc)
    run_on_host([str(exe), port])
    assert "raw-datagram" in str(listeners.received()), "the control datagram never arrived"


def test_vsock_ports_are_not_shared(box: InitBox, box2: InitBox) -> None:
    """vsock does not belong to a network namespace: a box that binds a vsock port takes it
    for everyone. One box binds, the other box and the host try the same port (nothing ever
    connects: the peer would be the hypervisor)."""
    def host_can_bind(port: str) -> None:
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        try:
            s.bind((socket.VMADDR_CID_ANY, int(port)))
        except OSError as e:
            raise AssertionError(f"a box holds host vsock port {port}: {e}") from None
        finally:
            s.close()

    assert_no_channel(box, box2, "vsock", during=host_can_bind,
                      control_opts=("--syscalls=+socket",))


def test_network_configuration_of_the_host(box: InitBox) -> None:
    """With `ip`, add a dummy interface and an address, with and without --share-net: the
    host never gets the interface (no CAP_NET_ADMIN; and without --share-net, a namespace of
    its own). Nothing here touches an existing interface."""
    name = f"cbx{os.getpid() % 10000}"
    code = (f"{SH_STARTED}ip link add {name} type dummy; ip addr add 127.77.0.1/32 dev {name}; "
            f"ip link set {name} up; ip -o link show {name}")
    try:
        for opts in ((), SHARE):
            proc, _ = run_checked(box, "/bin/sh", "-c", code, opts=("-p", *opts))
            assert not os.path.exists(f"/sys/class/net/{name}"), output(proc)
    finally:
        if os.path.exists(f"/sys/class/net/{name}"):  # only if the sandbox failed
            subprocess.run(["ip", "link", "del", name], check=False)
