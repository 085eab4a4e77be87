"""ctnetlink end to end: traffic through ct(commit) between two namespaces,
then the real ``conntrack`` tool and ``ovs-dpctl`` through ``ovsdp run``, and
ovsdp's own dpctl, see the connections; ``conntrack -F`` empties the table.

Everything this module creates is named ovcn<4 hex digits>... and removed
again, also when a test fails.
"""

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys

import pytest

from ovsdp import preload
from ovsdp.cli import dpctl

from .conftest import ROOT, Lines, two_host_datapath

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip")
                                 or not shutil.which("ping"),
                                 reason="needs root, iproute2 and ping")]

SFX = secrets.token_hex(2)
PREFIX = f"ovcn{SFX}"
_R = secrets.randbits(16)
NET4 = f"198.19.{_R & 0xFF}"
NET6 = f"fd{_R >> 8:02x}:{int(SFX, 16):x}::"
ZONE = 9
UDP_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[3])))
s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
"""


def _text(sock, *args):
    out, err = [], []
    rc = dpctl.run(list(args), socket=sock, stdout=Lines(out), stderr=Lines(err))
    return rc, "".join(out), "".join(err)


def ovsdp_run(sock, *argv):
    """A real program with the preload library (``ovsdp run``)."""
    env = preload.environment(dict(os.environ, PYTHONPATH=ROOT), socket=sock)
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=60)


def _flows(pa, pb):
    ip = "eth(),eth_type(0x0800),ipv4()"
    return [
        (f"in_port({pa}),eth(),eth_type(0x0806),arp()", f"{pb}"),
        (f"in_port({pb}),eth(),eth_type(0x0806),arp()", f"{pa}"),
        (f"recirc_id(0),in_port({pa}),ct_state(-trk),{ip}", f"ct(zone={ZONE}),recirc(0x1)"),
        (f"recirc_id(0x1),in_port({pa}),ct_state(+trk+new),{ip}",
         f"ct(commit,zone={ZONE},mark=0x2a/0xffffffff,label=0x1020304/0xffffffff),{pb}"),
        (f"recirc_id(0x1),in_port({pa}),ct_state(+trk+est),{ip}", f"{pb}"),
        (f"recirc_id(0),in_port({pb}),ct_state(-trk),{ip}", f"ct(zone={ZONE}),recirc(0x2)"),
        (f"recirc_id(0x2),in_port({pb}),ct_state(+trk+est),{ip}", f"{pa}"),
    ]


@pytest.fixture(scope="module")
def fw():
    with two_host_datapath(PREFIX, NET4, NET6, _flows) as env:
        yield env


def _traffic(bed):
    a, b = bed.hosts
    r = a.run("ping", "-c", "2", "-i", "0.2", "-W", "2", b.ip4, capture=True, check=False)
    assert " 0% packet loss" in r, r
    a.run(sys.executable, "-c", UDP_SEND, b.ip4, "5353", "40001")


def test_conntrack_tool_lists_and_flushes(fw):
    sock, dp, bed = fw
    if not shutil.which("conntrack"):
        pytest.skip("conntrack (Debian package conntrack) not installed")
    a, b = bed.hosts
    _traffic(bed)
    r = ovsdp_run(sock, "conntrack", "-L")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    icmp = [ln for ln in lines if ln.startswith("icmp ")]
    udp = [ln for ln in lines if ln.startswith("udp ")]
    assert len(icmp) == 1 and len(udp) == 1, r.stdout
    assert f"src={a.ip4} dst={b.ip4} type=8 code=0" in icmp[0], icmp
    assert f"src={b.ip4} dst={a.ip4} type=0 code=0" in icmp[0], icmp
    assert "sport=40001 dport=5353" in udp[0] and "[UNREPLIED]" in udp[0], udp
    assert f"mark=42 zone={ZONE} use=1" in udp[0], udp
    assert "2 flow entries have been shown" in r.stderr, r.stderr
    # filtered by protocol, then the count and the statistics
    r = ovsdp_run(sock, "conntrack", "-L", "-p", "udp")
    assert r.returncode == 0 and r.stdout.count("\n") == 1 and "udp" in r.stdout, r
    r = ovsdp_run(sock, "conntrack", "-C")
    assert r.returncode == 0 and r.stdout.strip() == "2", r
    r = ovsdp_run(sock, "conntrack", "-S")
    assert r.returncode == 0 and re.match(r"cpu=0\s+found=\d+ invalid=\d+ insert=2 ", r.stdout), r
    # delete the UDP one by its tuple, then flush the rest
    r = ovsdp_run(sock, "conntrack", "-D", "-p", "udp", "-s", a.ip4, "-d", b.ip4,
                  "--sport", "40001", "--dport", "5353", "-w", str(ZONE))
    assert r.returncode == 0, r.stderr
    r = ovsdp_run(sock, "conntrack", "-L")
    assert "udp" not in r.stdout and r.stdout.count("icmp") == 1, r.stdout
    r = ovsdp_run(sock, "conntrack", "-F")
    assert r.returncode == 0, r.stderr
    r = ovsdp_run(sock, "conntrack", "-L")
    assert r.returncode == 0 and r.stdout == "", r.stdout
    assert "0 flow entries have been shown" in r.stderr


def test_ovs_dpctl_and_ovsdp_dpctl_dump(fw):
    sock, dp, bed = fw
    a, b = bed.hosts
    _traffic(bed)
    want_icmp = (f"icmp,orig=(src={a.ip4},dst={b.ip4},id=ID,type=8,code=0),"
                 f"reply=(src={b.ip4},dst={a.ip4},id=ID,type=0,code=0),zone={ZONE},mark=42,"
                 "labels=0x1020304")
    want_udp = (f"udp,orig=(src={a.ip4},dst={b.ip4},sport=40001,dport=5353),"
                f"reply=(src={b.ip4},dst={a.ip4},sport=5353,dport=40001),zone={ZONE},mark=42,"
                "labels=0x1020304")

    def norm(text):
        return sorted(re.sub(r",id=\d+,type", ",id=ID,type", ln) for ln in text.splitlines())

    rc, out, err = _text(sock, "dump-conntrack", dp)
    assert rc == 0, err
    assert norm(out) == sorted([want_icmp, want_udp]), out
    rc, out, err = _text(sock, "dump-conntrack", dp, "zone=1")
    assert rc == 0 and out == "", (out, err)
    rc, out, err = _text(sock, "ct-stats-show", dp)
    assert rc == 0 and out == "Connections Stats:\n    Total: 2\n  UDP: 1\n  ICMP: 1\n", out
    if shutil.which("ovs-dpctl"):
        r = ovsdp_run(sock, "ovs-dpctl", "dump-conntrack", dp)
        assert r.returncode == 0, r.stderr
        assert norm(r.stdout) == sorted([want_icmp, want_udp]), r.stdout
        r = ovsdp_run(sock, "ovs-dpctl", "ct-stats-show", dp)
        assert r.returncode == 0 and r.stdout == out, r
        r = ovsdp_run(sock, "ovs-dpctl", "-m", "dump-conntrack", dp)
        assert r.returncode == 0 and r.stdout == _text(sock, "-m", "dump-conntrack", dp)[1], r
        # (Open vSwitch 3.1's flush-conntrack takes no datapath argument: the only one)
        r = ovsdp_run(sock, "ovs-dpctl", "flush-conntrack", f"zone={ZONE}",
                      f"ct_nw_src={a.ip4},ct_nw_dst={b.ip4},ct_nw_proto=17,"
                      f"ct_tp_src=40001,ct_tp_dst=5353")
        assert r.returncode == 0, r.stderr
        r = ovsdp_run(sock, "ovs-dpctl", "dump-conntrack", dp)
        assert norm(r.stdout) == [want_icmp], r.stdout
        r = ovsdp_run(sock, "ovs-dpctl", "flush-conntrack")
        assert r.returncode == 0, r.stderr
        r = ovsdp_run(sock, "ovs-dpctl", "dump-conntrack", dp)
        assert r.returncode == 0 and r.stdout == "", r.stdout
    rc, out, err = _text(sock, "flush-conntrack", dp)
    assert rc == 0, err
    rc, out, err = _text(sock, "dump-conntrack", dp)
    assert rc == 0 and out == "", out


def test_tcp_protoinfo_through_all_three(fw):
    sock, dp, bed = fw
    a, b = bed.hosts
    server = ("import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,"
              "socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',7101))\ns.listen(1)\n"
              "c,_=s.accept()\nc.recv(10)\nimport time\ntime.sleep(5)\n")
    client = ("import socket,sys,time\ns=socket.create_connection((sys.argv[1],7101),timeout=5)"
              "\ns.sendall(b'x')\ntime.sleep(0.5)\n")
    with contextlib.ExitStack() as stack:
        p = b.popen(sys.executable, "-c", server, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
        stack.callback(lambda: (p.kill(), p.wait()))
        for _ in range(100):
            if "7101" in b.run("ss", "-ltn", capture=True, check=False):
                break
            subprocess.run(["sleep", "0.05"])
        a.run(sys.executable, "-c", client, b.ip4)
        rc, out, err = _text(sock, "dump-conntrack", dp)
        assert rc == 0, err
        tcp = [ln for ln in out.splitlines() if ln.startswith("tcp,")]
        assert len(tcp) == 1 and "dport=7101" in tcp[0], out
        # the client has closed by now: FIN_WAIT_1 or, once the server acked, CLOSE_WAIT
        tail = (f",zone={ZONE},mark=42,labels=0x1020304,"
                r"protoinfo=\(state=(FIN_WAIT_1|CLOSE_WAIT)\)$")
        assert re.search(tail, tcp[0]), tcp
        rc, out, err = _text(sock, "-m", "dump-conntrack", dp)
        assert "status=SEEN_REPLY|ASSURED|CONFIRMED" in out and "state_orig=" in out, out
        if shutil.which("ovs-dpctl"):
            r = ovsdp_run(sock, "ovs-dpctl", "-m", "dump-conntrack", dp)
            assert r.returncode == 0, r.stderr
            mine = _text(sock, "-m", "dump-conntrack", dp)[1]
            assert r.stdout == mine, (r.stdout, mine)
        if shutil.which("conntrack"):
            r = ovsdp_run(sock, "conntrack", "-L", "-p", "tcp")
            assert r.returncode == 0 and r.stdout.startswith("tcp      6 "), r
            assert "dport=7101" in r.stdout and "[ASSURED]" in r.stdout, r.stdout
    _text(sock, "flush-conntrack", dp)
