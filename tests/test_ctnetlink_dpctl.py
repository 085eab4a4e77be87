"""ctnetlink over the wire: ovsdp's dpctl conntrack commands and the
CtSocket client against a daemon, and NETLINK_NETFILTER sockets through the
preload library.  The output is Open vSwitch's (lib/ct-dpif.c
ct_dpif_format_entry(), lib/dpctl.c)."""

import errno
import io
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from ovsdp import preload
from ovsdp.cli import dpctl
from ovsdp.cli.dpctl.conntrack import STATUS_NAMES, format_entry, format_flags
from ovsdp.client.conntrack import CtSocket, CtTuple, parse_entry
from ovsdp.datapath import nf_conntrack_netlink as CTNL
from ovsdp.datapath.nf_conntrack import Conn, Tuple
from ovsdp.datapath.nf_conntrack_tcp import TcpState

from .conftest import ROOT
from .test_preload import run_preloaded

DP = "ovcndp"
A, B = 0x0A000001, 0x0A000002                  # 10.0.0.1, 10.0.0.2
IPS = 0x2 | 0x4 | 0x8                          # SEEN_REPLY | ASSURED | CONFIRMED


def run(daemon, *argv):
    out, err = io.StringIO(), io.StringIO()
    rc = dpctl.run(list(argv), socket=daemon.path, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def _add(module, orig, zone=0, mark=0, labels=0, status=IPS, tcp_state=None, counters=None):
    ct = module.init_net.conntrack
    c = Conn(zone, orig, orig.invert(), time.monotonic())
    c.status, c.mark, c.labels = status, mark, labels
    c.timeout = time.monotonic() + 100
    if tcp_state is not None:
        c.proto = TcpState()
        c.proto.state = tcp_state
        c.proto.seen[0].td_scale, c.proto.seen[0].flags = 7, 0x23
        c.proto.seen[1].td_scale, c.proto.seen[1].flags = 7, 0x03
    if counters:
        c.counters = counters
    ct._insert(c)
    return CTNL.ct_id(c)


@pytest.fixture
def ctd(daemon):
    rc, _, err = run(daemon, "add-dp", DP)
    assert rc == 0, err
    m = daemon.module
    ids = [
        daemon.call(_add, m, Tuple(2, A, B, 6, 40000, 80), 0, 0, 0, IPS, 3),
        daemon.call(_add, m, Tuple(2, A, B, 17, 5000, 53), 5, 7, 0xAB << 120 | 1, 0xA),
        daemon.call(_add, m, Tuple(2, A, B, 1, icmp_id=9, icmp_type=8), 5),
        daemon.call(_add, m, Tuple(10, 1, 2, 58, icmp_id=3, icmp_type=128)),
    ]
    daemon.ids = ids
    return daemon


TCP_LINE = ("tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40000,dport=80),"
            "reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=40000),"
            "protoinfo=(state=ESTABLISHED)")
UDP_LINE = ("udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=5000,dport=53),"
            "reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=5000),zone=5,mark=7,"
            "labels=0x1" + "00" * 14 + "ab")
ICMP_LINE = ("icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=9,type=8,code=0),"
             "reply=(src=10.0.0.2,dst=10.0.0.1,id=9,type=0,code=0),zone=5")
ICMP6_LINE = "icmpv6,orig=(src=::1,dst=::2,id=3,type=128,code=0),reply=(src=::2,dst=::1,id=3," \
             "type=129,code=0)"


def test_dump_conntrack(ctd):
    rc, out, err = run(ctd, "dump-conntrack")
    assert rc == 0, err
    assert out.splitlines() == [TCP_LINE, UDP_LINE, ICMP_LINE, ICMP6_LINE]
    rc, out, err = run(ctd, "dump-conntrack", DP, "zone=5")
    assert rc == 0 and out.splitlines() == [UDP_LINE, ICMP_LINE], (out, err)
    rc, out, err = run(ctd, "dump-conntrack", f"system@{DP}", "zone=6")
    assert rc == 0 and out == ""


def test_dump_conntrack_verbose_and_stats(ctd):
    rc, out, err = run(ctd, "-m", "-s", "dump-conntrack", "zone=0")
    assert rc == 0, err
    tcp, icmp6 = out.splitlines()
    tid = ctd.ids[0]
    assert tcp.startswith(f"tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40000,dport=80),"
                          f"reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=40000),id={tid},"
                          "status=SEEN_REPLY|ASSURED|CONFIRMED,timeout=")
    assert tcp.endswith(",protoinfo=(state_orig=ESTABLISHED,state_reply=ESTABLISHED,"
                        "wscale_orig=7,wscale_reply=7,flags_orig=WINDOW_SCALE|SACK_PERM|"
                        "MAXACK_SET,flags_reply=WINDOW_SCALE|SACK_PERM)")
    timeout = int(tcp.split(",timeout=")[1].split(",")[0])
    assert 95 <= timeout <= 100
    assert ",packets=" not in out                     # nf_conntrack_acct is off
    ctd.module.init_net.conntrack.acct = True
    rc, out, err = run(ctd, "-s", "dump-conntrack", "zone=5")
    assert "sport=5000,dport=53),reply" in out and "packets" not in out     # 0: not shown
    ctd.call(lambda: [setattr(c, "counters", [[2, 84], [1, 42]])
                      for c in ctd.module.init_net.conntrack if c.zone == 5])
    rc, out, err = run(ctd, "-s", "dump-conntrack", "zone=5")
    assert "dport=53,packets=2,bytes=84),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=5000," \
           "packets=1,bytes=42),zone=5,timeout=" in out, out


def test_ct_stats_show(ctd):
    rc, out, err = run(ctd, "ct-stats-show")
    assert rc == 0, err
    assert out == "Connections Stats:\n    Total: 4\n  TCP: 1\n  UDP: 1\n  ICMP: 1\n"
    rc, out, err = run(ctd, "ct-stats-show", DP, "zone=0", "verbose")
    assert out == ("Connections Stats:\n    Total: 2\n  TCP: 1\n    Conn per TCP states:\n"
                   "\t  [ESTABLISHED]=1\n")
    rc, out, err = run(ctd, "ct-bkts")
    assert rc == 0 and out == "Command is available for UserSpace ConnTracker only.\n"


def test_flush_conntrack(ctd):
    ct = ctd.module.init_net.conntrack
    rc, out, err = run(ctd, "flush-conntrack", "zone=x")
    assert rc == 1 and err == "ovsdp dpctl: failed to parse zone (Invalid argument)\n"
    rc, out, err = run(ctd, "flush-conntrack", "ct_nw_src=10.0.0.1,bogus=1")
    assert err == "ovsdp dpctl: invalid conntrack tuple field: bogus (Invalid argument)\n"
    rc, out, err = run(ctd, "flush-conntrack", "ct_tp_src=1")
    assert err == "ovsdp dpctl: port is set without protocol (Invalid argument)\n"
    # a five-tuple: one delete
    rc, out, err = run(ctd, "flush-conntrack", DP, "zone=5", "ct_nw_src=10.0.0.1,"
                       "ct_nw_dst=10.0.0.2,ct_nw_proto=17,ct_tp_src=5000,ct_tp_dst=53")
    assert rc == 0, err
    assert len(ct) == 3
    # a tuple that does not exist: ENOENT, as the kernel answers
    rc, out, err = run(ctd, "flush-conntrack", "ct_nw_src=10.0.0.1,ct_nw_dst=10.0.0.2,"
                       "ct_nw_proto=17,ct_tp_src=1,ct_tp_dst=2")
    assert rc == 1 and "failed to flush conntrack (No such file or directory)" in err
    # a partial match: what matches is deleted, entry by entry
    rc, out, err = run(ctd, "flush-conntrack", "ct_nw_proto=1")
    assert rc == 0 and len(ct) == 2, err
    rc, out, err = run(ctd, "flush-conntrack", "zone=0")
    assert rc == 0 and len(ct) == 0, err
    rc, out, err = run(ctd, "--read-only", "flush-conntrack")
    assert rc == 1 and "does not work in read only mode" in err


def test_format_helpers():
    assert format_flags(0, STATUS_NAMES) == "0"
    assert format_flags(0x1 | 0x8 | 1 << 20, STATUS_NAMES) == "EXPECTED|CONFIRMED|0x100000"
    e = parse_entry(CTNL.fill_info(_conn(), _Tracker(), 0, 0))
    assert format_entry(e) == ("udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1,dport=2),"
                               "reply=(src=10.0.0.2,dst=10.0.0.1,sport=2,dport=1)")


class _Tracker:
    max_conns = 10

    @staticmethod
    def expires(conn):
        return 3


def _conn():
    return Conn(0, Tuple(2, A, B, 17, 1, 2), Tuple(2, B, A, 17, 2, 1), 0)


def test_ct_socket_client(ctd):
    with CtSocket(ctd.path) as s:
        assert s.stats() == (4, 65536)
        (cpu, vals), = s.stats_cpu()
        assert cpu == 0 and vals["insert"] == 0 and "chaintoolong" in vals
        e = s.get(CtTuple(2, A, B, 17, 5000, 53), zone=5)
        assert e.mark == 7 and e.zone == 5 and e.use == 2 and e.id == ctd.ids[1]
        with pytest.raises(OSError) as ex:
            s.get(CtTuple(2, A, B, 17, 5000, 53))
        assert ex.value.errno == errno.ENOENT
        s.delete(CtTuple(2, A, B, 17, 5000, 53), zone=5, ct_id=ctd.ids[1])
        assert len(s.dump()) == 3 and len(s.dump(family=10)) == 1
        s.flush(family=10)
        assert [x.family for x in s.dump()] == [2, 2]
        s.flush()
        assert s.dump() == []


# ----------------------------------------------------------- the preload
PRELOAD_PROG = """
import socket, struct
s = nlsock(proto=12)
proto = s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
s.setsockopt(270, 1, 3)                          # NETLINK_ADD_MEMBERSHIP, destroy events
try:
    s.setsockopt(270, 1, 33)
    bad = 0
except OSError as e:
    bad = e.errno
# IPCTNL_MSG_CT_GET dump (nfgenmsg AF_UNSPEC)
s.send(struct.pack("=IHHII", 20, 0x101, 0x301, 5, 0) + b"\\0\\0\\0\\0")
msgs = []
while True:
    b = s.recv(65536, socket.MSG_DONTWAIT)
    hs = headers(b)
    msgs += [h[1] for h in hs]
    if any(h[1] in (2, 3) for h in hs):
        break
pid = s.getsockname()[0]
r = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)     # NETLINK_ROUTE stays real
rproto = r.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
out(proto=proto, bad=bad, msgs=msgs, pid=pid, rproto=rproto, mine=os.getpid())
"""


def test_netfilter_socket_through_the_preload(ctd):
    res, _ = run_preloaded(ctd.path, PRELOAD_PROG)
    assert res["proto"] == 12 and res["rproto"] == 0
    assert res["bad"] == errno.EINVAL
    assert res["msgs"] == [0x100] * 4 + [3]
    assert res["pid"] == res["mine"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv")
def test_unprivileged_netfilter_socket_gets_eperm(ctd):
    lib = preload.library_path()
    if not os.access(lib, os.R_OK, effective_ids=False) or os.stat(lib).st_mode & 0o005 != 5:
        pytest.skip("the library is not readable by other users here")
    got, _ = run_preloaded(ctd.path, """
        s = nlsock(proto=12)
        s.send(struct.pack("=IHHII", 20, 0x101, 0x301, 5, 0) + b"\\0\\0\\0\\0")
        b = s.recv(65536)
        s.setsockopt(270, 1, 1)                  # joining needs no rights
        out(err=error_of(b), type=headers(b)[0][1], uid=os.getuid())
    """, user=65534)
    assert got == {"err": errno.EPERM, "type": 2, "uid": 65534}


@pytest.mark.skipif(shutil.which("conntrack") is None, reason="conntrack not installed")
def test_conntrack_tool_output(ctd):
    def conntrack(*args):
        r = subprocess.run([sys.executable, "-m", "ovsdp", "run", "--socket", ctd.path, "--",
                            "conntrack", *args], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, PYTHONPATH=ROOT))
        return r.returncode, r.stdout, r.stderr

    rc, out, err = conntrack("-L", "-p", "tcp")
    assert rc == 0, err
    assert re.fullmatch(r"tcp      6 (9[5-9]|100) ESTABLISHED src=10\.0\.0\.1 dst=10\.0\.0\.2 "
                        r"sport=40000 dport=80 src=10\.0\.0\.2 dst=10\.0\.0\.1 sport=80 "
                        r"dport=40000 \[ASSURED\] mark=0 use=1\n", out), out
    assert "1 flow entries have been shown" in err
    rc, out, err = conntrack("-L", "-f", "ipv6")
    assert rc == 0 and out.startswith("icmpv6   58 ") and "src=::1 dst=::2 type=128 code=0 id=3" \
        in out, out
    rc, out, err = conntrack("-L", "-w", "5", "-m", "7")
    assert rc == 0 and out.count("\n") == 1 and "udp      17 " in out and "zone=5" in out, out
    rc, out, err = conntrack("-C")
    assert rc == 0 and out == "4\n"
    rc, out, err = conntrack("-G", "-p", "tcp", "-s", "10.0.0.1", "-d", "10.0.0.2",
                             "--sport", "40000", "--dport", "80")
    assert rc == 0 and out.endswith(" [ASSURED] mark=0 use=2\n"), (out, err)
    rc, out, err = conntrack("-G", "-p", "tcp", "-s", "10.0.0.1", "-d", "10.0.0.2",
                             "--sport", "40000", "--dport", "81")
    assert rc != 0 and "such conntrack doesn't exist" in err, err      # ENOENT
    # -I creates, -U changes (with -f: 1.4.7 sends AF_UNSPEC without it, which
    # Linux too refuses), -I again says it exists
    new = ("-p", "udp", "-s", "1.1.1.1", "-d", "2.2.2.2", "--sport", "1", "--dport", "2")
    rc, out, err = conntrack("-I", *new, "-t", "50", "-m", "3")
    assert rc == 0 and "1 flow entries have been created" in err, err
    rc, out, err = conntrack("-I", *new, "-t", "50")
    assert rc != 0 and "Such conntrack exists" in err, err
    for change in (("-m", "77"), ("-u", "ASSURED")):
        rc, out, err = conntrack("-U", "-f", "ipv4", "-p", "udp", "-s", "1.1.1.1", *change)
        assert rc == 0 and "1 flow entries have been updated" in err, err
    rc, out, err = conntrack("-L", "-s", "1.1.1.1")
    assert re.fullmatch(r"udp      17 (4[89]|50) src=1\.1\.1\.1 dst=2\.2\.2\.2 sport=1 dport=2 "
                        r"\[UNREPLIED\] src=2\.2\.2\.2 dst=1\.1\.1\.1 sport=2 dport=1 "
                        r"\[ASSURED\] mark=77 use=1\n", out), out
    rc, out, err = conntrack("-D", "-s", "1.1.1.1")
    assert rc == 0 and "1 flow entries have been deleted" in err, err
    rc, out, err = conntrack("-D", "-w", "5")
    assert rc == 0 and len(ctd.module.init_net.conntrack) == 2, (out, err)
