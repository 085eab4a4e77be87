"""A stateful firewall of ct() flows between two namespaces (root, iproute2,
ping): connections from the first host are let through and their replies
come back; a connection the second host starts is dropped at its first
packet.  The flows are the kernel selftests' ct_connect_v4 pattern: ct()
in a zone, recirculate, then match ct_state."""

import contextlib
import subprocess
import sys

import pytest

from ovsdp.cli import dpctl

from .test_netns import need, nothing_left_behind, ns_proc, ping, topology, wait_listening  # noqa: F401

ZONE = 7
TCP_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(4)
while True:
    c, _ = s.accept()
    c.sendall(c.recv(100).upper())
    c.close()
"""
TCP_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
s.sendall(b"hello")
print(s.recv(100).decode())
"""


def dpctl_text(net, *args):
    """(exit status, output) of ``ovsdp dpctl ARGS`` against the test's daemon."""
    out = []

    class Sink:
        def write(self, text):
            out.append(text)

        def flush(self):
            pass

    rc = dpctl.run(list(args), socket=net.sock, stdout=Sink(), stderr=Sink())
    return rc, "".join(out)


def add_flow(net, flow, actions):
    rc, out = dpctl_text(net, "add-flow", net.dp, flow, actions)
    assert rc == 0, out


def flow_stats(net):
    rc, out = dpctl_text(net, "dump-flows", net.dp)
    assert rc == 0, out
    return out


@pytest.fixture(scope="module")
def fw():
    """Two hosts, a firewall that lets the first one start connections."""
    need("ping")
    with topology("ct", 2, switch=False) as net:
        a, b = net.hosts
        pa, pb = a.port_no, b.port_no
        ip = "eth(),eth_type(0x0800),ipv4()"
        for flow, actions in [
            (f"in_port({pa}),eth(),eth_type(0x0806),arp()", f"{pb}"),
            (f"in_port({pb}),eth(),eth_type(0x0806),arp()", f"{pa}"),
            (f"recirc_id(0),in_port({pa}),ct_state(-trk),{ip}", f"ct(zone={ZONE}),recirc(0x1)"),
            (f"recirc_id(0x1),in_port({pa}),ct_state(+trk+new),{ip}",
             f"ct(commit,zone={ZONE}),{pb}"),
            (f"recirc_id(0x1),in_port({pa}),ct_state(+trk+est),{ip}", f"{pb}"),
            (f"recirc_id(0),in_port({pb}),ct_state(-trk),{ip}", f"ct(zone={ZONE}),recirc(0x2)"),
            (f"recirc_id(0x2),in_port({pb}),ct_state(+trk+est),{ip}", f"{pa}"),
            (f"recirc_id(0x2),in_port({pb}),ct_state(+trk+new),{ip}", "drop"),
        ]:
            add_flow(net, flow, actions)
        yield net


def test_ping_out_is_answered_ping_in_is_dropped(fw):
    a, b = fw.hosts
    sent, got, out = ping(a.ns, b.ip4, count=3, wait=2)
    assert got == sent, out + fw.logs()
    sent, got, out = ping(b.ns, a.ip4, count=2, wait=1)
    assert got == 0, out
    assert "ct_state(+new+trk)" in flow_stats(fw)


def test_tcp_out_connects_tcp_in_does_not(fw):
    a, b = fw.hosts
    with contextlib.ExitStack() as stack:
        stack.enter_context(ns_proc(b, sys.executable, "-c", TCP_SERVER, "7001",
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        stack.enter_context(ns_proc(a, sys.executable, "-c", TCP_SERVER, "7002",
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_listening(b, 7001)
        wait_listening(a, 7002)
        r = a.run(sys.executable, "-c", TCP_CLIENT, b.ip4, "7001", capture=True, check=False)
        assert r.strip() == "HELLO", fw.logs()
        r = subprocess.run(["ip", "netns", "exec", b.ns, sys.executable, "-c", TCP_CLIENT,
                            a.ip4, "7002"], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "HELLO" not in r.stdout     # its SYN never arrives
