"""Fragments through ct() between two namespaces (root, iproute2): a UDP
datagram bigger than the MTU leaves the sender in fragments, ovsdp
reassembles them before conntrack (ct(commit)), outputs the datagram cut
again to the size the fragments had, and the receiver's stack puts it
together: IPv4 and IPv6.  Everything is named ovdf<4 hex digits>... and
removed again, also when a test fails."""

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

import pytest

from ovsdp import testbed
from ovsdp.cli import dpctl
from ovsdp.client.dpif import Dpif
from ovsdp.testbed import run

from .conftest import subprocess_daemon
from .test_netns import _why_not

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")]

SFX = secrets.token_hex(2)
PREFIX = f"ovdf{SFX}"
_R = secrets.randbits(16)
NET4 = f"198.18.{_R & 0xFF}"
NET6 = f"fd{_R >> 8:02x}:{int(SFX, 16):x}:df::"
ZONE = 9
SIZE = 4000

RECEIVER = """
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(10)
print("ready", flush=True)
data, peer = s.recvfrom(65535)
want = bytes(i & 0xFF for i in range(int(sys.argv[3])))
print(len(data), data == want, flush=True)
"""
SENDER = """
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.sendto(bytes(i & 0xFF for i in range(int(sys.argv[3]))), (sys.argv[1], int(sys.argv[2])))
"""


def dpctl_ok(sock, *args):
    out = []

    class Sink:
        def write(self, text):
            out.append(text)

        def flush(self):
            pass

    rc = dpctl.run(list(args), socket=sock, stdout=Sink(), stderr=Sink())
    assert rc == 0, "".join(out)
    return "".join(out)


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind():
    yield
    left_ns = [n for n in run("ip", "netns", "list", capture=True).split()
               if n.startswith(PREFIX)]
    left_links = [n for n in os.listdir("/sys/class/net") if PREFIX in n]
    for n in left_ns:
        run("ip", "netns", "del", n, check=False)
    for n in left_links:
        run("ip", "link", "del", n, check=False)
    assert not left_ns and not left_links, f"left behind: {left_ns + left_links}"


@pytest.fixture(scope="module")
def pair():
    """Two hosts (MTU 1500) on one datapath: every IP packet through ct(commit)."""
    tmp = tempfile.mkdtemp(prefix="ovsdp-frag-")
    sock = os.path.join(tmp, "ovsdp.sock")
    dp = PREFIX
    bed = testbed.Testbed([f"{dp}{i}" for i in (1, 2)], port_prefix="p-", net4=NET4,
                          net6=NET6)
    try:
        with bed, subprocess_daemon(sock):
            for h in bed.hosts:
                h.run("sysctl", "-qw", f"net.ipv6.conf.{h.ifname}.router_solicitations=0",
                      check=False)
            with Dpif(sock) as c:
                c.dp_new(dp, upcall_pid=0)
                for h in bed.hosts:
                    h.port_no = c.vport_new(dp, h.port, "netdev").port_no
            a, b = bed.hosts
            for src, dst in ((a, b), (b, a)):
                pi, po = src.port_no, dst.port_no
                dpctl_ok(sock, "add-flow", dp, f"in_port({pi}),eth(),eth_type(0x0806),arp()",
                         f"{po}")
                for l3 in ("eth_type(0x0800),ipv4()", "eth_type(0x86dd),ipv6()"):
                    dpctl_ok(sock, "add-flow", dp, f"in_port({pi}),eth(),{l3}",
                             f"ct(commit,zone={ZONE}),{po}")
            bed.sock = sock
            bed.dp = dp
            yield bed
            with open(sock + ".log") as f:
                log = f.read()
            assert "Traceback" not in log, log
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def receiver(host, ip, port):
    p = host.popen(sys.executable, "-c", RECEIVER, ip, str(port), str(SIZE),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_a_datagram_bigger_than_the_mtu_arrives_whole(pair, v6):
    a, b = pair.hosts
    dst = b.ip6 if v6 else b.ip4
    bind = "::" if v6 else "0.0.0.0"
    if v6:
        testbed.run("ping", "-6", "-c", "1", "-W", "3", dst, ns=a.ns, check=False)
    port = 7100 + v6
    with receiver(b, bind, port) as p:
        a.run(sys.executable, "-c", SENDER, dst, str(port), str(SIZE))
        try:
            out, err = p.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
    flows = dpctl_ok(pair.sock, "dump-flows", pair.dp)
    assert out.split() == [str(SIZE), "True"], (out, err, flows)
    assert "ct(commit" in flows
