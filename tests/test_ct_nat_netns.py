"""NAT of ct() flows between two namespaces (root, iproute2, ping): the first
host reaches the second through a virtual address (DNAT) and, in a second
zone, is hidden behind another (SNAT); TCP, UDP and ping go through and
come back translated; a UDP datagram to a closed port brings the ICMP port
unreachable back through the translation (the kernel selftests'
nat_connect_v4 and nat_related_v4 patterns)."""

import contextlib
import subprocess
import sys
import time

import pytest

from .test_conntrack_netns import TCP_CLIENT, TCP_SERVER, add_flow
from .test_netns import NET4, need, nothing_left_behind, ns_proc, ping, topology, wait_listening  # noqa: F401,E501

VIP = f"{NET4}.100"         # the address the first host uses for the second (DNAT)
HIDE = f"{NET4}.200"        # the address the second host sees the first as (SNAT)
UDP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(100)
    s.sendto(peer[0].encode() + b" " + data, peer)
"""
UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"hi")
try:
    print(s.recv(100).decode())
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
"""


@pytest.fixture(scope="module")
def natnet():
    need("ping")
    with topology("nt", 2, switch=False) as net:
        a, b = net.hosts
        pa, pb = a.port_no, b.port_no
        # the first host sends to VIP at the second host's MAC; the second
        # answers HIDE at the first host's MAC
        a.run("ip", "neigh", "replace", VIP, "lladdr", b.mac, "dev", a.ifname)
        b.run("ip", "neigh", "replace", HIDE, "lladdr", a.mac, "dev", b.ifname)
        ip = "eth(),eth_type(0x0800),ipv4()"
        for flow, actions in [
            (f"in_port({pa}),eth(),eth_type(0x0806),arp()", f"{pb}"),
            (f"in_port({pb}),eth(),eth_type(0x0806),arp()", f"{pa}"),
            # zone 1: DNAT of VIP to the second host
            (f"recirc_id(0),in_port({pa}),ct_state(-trk),eth(),eth_type(0x0800),"
             f"ipv4(dst={VIP})", "ct(zone=1,nat),recirc(0x1)"),
            (f"recirc_id(0x1),in_port({pa}),ct_state(+trk+new),{ip}",
             f"ct(commit,zone=1,nat(dst={b.ip4})),{pb}"),
            (f"recirc_id(0x1),in_port({pa}),ct_state(+trk+est),{ip}", f"{pb}"),
            # zone 2: everything else from the first host is SNATed to HIDE
            (f"recirc_id(0),in_port({pa}),ct_state(-trk),eth(),eth_type(0x0800),"
             f"ipv4(dst={b.ip4})", "ct(zone=2,nat),recirc(0x3)"),
            (f"recirc_id(0x3),in_port({pa}),ct_state(+trk+new),{ip}",
             f"ct(commit,zone=2,nat(src={HIDE})),{pb}"),
            (f"recirc_id(0x3),in_port({pa}),ct_state(+trk+est),{ip}", f"{pb}"),
            # from the second host: back through the zone of its destination
            (f"recirc_id(0),in_port({pb}),ct_state(-trk),eth(),eth_type(0x0800),"
             f"ipv4(dst={a.ip4})", "ct(zone=1,nat),recirc(0x2)"),
            (f"recirc_id(0),in_port({pb}),ct_state(-trk),eth(),eth_type(0x0800),"
             f"ipv4(dst={HIDE})", "ct(zone=2,nat),recirc(0x2)"),
            (f"recirc_id(0x2),in_port({pb}),ct_state(+trk+est),{ip}", f"{pa}"),
            (f"recirc_id(0x2),in_port({pb}),ct_state(+trk+rel),{ip}", f"{pa}"),
            (f"recirc_id(0x2),in_port({pb}),ct_state(+trk+new),{ip}", "drop"),
        ]:
            add_flow(net, flow, actions)
        yield net


def wait_udp(host, port, timeout=10):
    """Wait until a UDP socket is bound to ``port`` in ``host``'s namespace."""
    deadline = time.monotonic() + timeout
    want = f":{port:04X}"
    while time.monotonic() < deadline:
        table = host.run("cat", "/proc/net/udp", capture=True)
        if any(ln.split()[1].endswith(want) for ln in table.splitlines()[1:] if ln.split()):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing bound to UDP port {port} in {host.ns}")


def run_client(host, code, *args):
    r = subprocess.run(["ip", "netns", "exec", host.ns, sys.executable, "-c", code, *args],
                       capture_output=True, text=True, timeout=30)
    return r.stdout.strip()


def test_dnat_ping_tcp_and_udp_reach_the_virtual_address(natnet):
    a, b = natnet.hosts
    sent, got, out = ping(a.ns, VIP, count=3, wait=2)
    assert got == sent, out + natnet.logs()
    with contextlib.ExitStack() as stack:
        stack.enter_context(ns_proc(b, sys.executable, "-c", TCP_SERVER, "7101",
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        stack.enter_context(ns_proc(b, sys.executable, "-c", UDP_SERVER, "7102",
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_listening(b, 7101)
        wait_udp(b, 7102)
        assert run_client(a, TCP_CLIENT, VIP, "7101") == "HELLO", natnet.logs()
        # the server sees the client's own address (no SNAT in zone 1)
        assert run_client(a, UDP_CLIENT, VIP, "7102") == f"{a.ip4} hi"


def test_snat_hides_the_client_behind_another_address(natnet):
    a, b = natnet.hosts
    with ns_proc(b, sys.executable, "-c", UDP_SERVER, "7103",
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        wait_udp(b, 7103)
        assert run_client(a, UDP_CLIENT, b.ip4, "7103") == f"{HIDE} hi", natnet.logs()
    sent, got, out = ping(a.ns, b.ip4, count=2, wait=2)
    assert got == sent, out


def test_port_unreachable_comes_back_through_the_nat(natnet):
    a, _b = natnet.hosts
    # nothing listens on 7999: the ICMP error of the second host, related to
    # the DNATed connection, is translated back so the client's socket sees it
    assert run_client(a, UDP_CLIENT, VIP, "7999") == "refused", natnet.logs()
    assert run_client(a, UDP_CLIENT, _b.ip4, "7998") == "refused", natnet.logs()


def test_unsolicited_packets_from_the_second_host_are_dropped(natnet):
    a, b = natnet.hosts
    sent, got, out = ping(b.ns, a.ip4, count=2, wait=1)
    assert got == 0, out
