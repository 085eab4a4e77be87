"""Conntrack events end to end: the real ``conntrack -E`` (conntrack-tools)
through ``ovsdp run`` prints [NEW], [UPDATE] and [DESTROY] lines for
connections made through a datapath with ct(commit) flows between two
namespaces; ``-e NEW`` chooses the groups; a commit's eventmask (as
ovs-vswitchd sends it) limits what a connection reports; an expired
connection's destroy comes out of the daemon's gc.

Everything this module creates is named ovce<4 hex digits>... and removed
again, also when a test fails.  The waits are bounded; no timing is asserted.
"""

import contextlib
import os
import secrets
import shutil
import struct
import subprocess
import sys
import threading
import time

import pytest

from ovsdp import odp, preload
from ovsdp import uapi as U
from ovsdp.cli import dpctl
from ovsdp.client.dpif import Dpif
from ovsdp.netlink.attr import nla, nla_nest

from .conftest import ROOT, two_host_datapath

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip")
                                 or not shutil.which("ping") or not shutil.which("conntrack"),
                                 reason="needs root, iproute2, ping and conntrack")]

SFX = secrets.token_hex(2)
PREFIX = f"ovce{SFX}"
_R = secrets.randbits(16)
NET4 = f"198.18.{_R & 0xFF}"
NET6 = f"fd{_R >> 8:02x}:{int(SFX, 16):x}::"
ZONE = 7
IPCT_DESTROY = 2
UDP_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[3])))
s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
"""
TCP_SERVER = ("import socket,time\ns=socket.socket()\n"
              "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
              "s.bind(('0.0.0.0',7102))\ns.listen(1)\nc,_=s.accept()\nc.recv(10)\ntime.sleep(3)\n")
TCP_CLIENT = ("import socket,sys,time\ns=socket.create_connection((sys.argv[1],7102),timeout=5)\n"
              "s.sendall(b'x')\ntime.sleep(0.5)\n")


def _dpctl(sock, *args):
    class Sink(list):
        def write(self, text):
            self.append(text)

        def flush(self):
            pass
    out, err = Sink(), Sink()
    rc = dpctl.run(list(args), socket=sock, stdout=out, stderr=err)
    assert rc == 0, "".join(err)
    return "".join(out)


def _env(sock):
    return preload.environment(dict(os.environ, PYTHONPATH=ROOT), socket=sock)


def ovsdp_run(sock, *argv):
    return subprocess.run(list(argv), env=_env(sock), capture_output=True, text=True,
                          timeout=60)


class Events:
    """``conntrack -E ...`` through the preload library, its lines collected."""

    def __init__(self, sock, *args):
        self.p = subprocess.Popen(["conntrack", "-E", *args], env=_env(sock),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def snapshot(self):
        with self.lock:
            return list(self.lines)

    def wait(self, pred, what, limit=30.0, poke=None, start=0):
        """Lines until one (from line ``start`` on) satisfies ``pred``
        (``poke()`` between looks)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            lines = self.snapshot()
            if any(pred(ln) for ln in lines[start:]):
                return lines
            if self.p.poll() is not None:
                break
            if poke is not None:
                poke()
            time.sleep(0.2)
        self.close()
        pytest.fail(f"no {what} from conntrack -E; got {self.snapshot()!r}, "
                    f"stderr {self.p.stderr.read()!r}")

    def close(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def _ct_actions(zone, out_port, eventmask=None):
    """ct(commit,zone=...[,eventmask]),OUT as attributes (the eventmask has
    no ODP text form: ovs-vswitchd sends it as an attribute)."""
    ct = nla(U.OVS_CT_ATTR_COMMIT) + nla(U.OVS_CT_ATTR_ZONE, struct.pack("=H", zone))
    if eventmask is not None:
        ct += nla(U.OVS_CT_ATTR_EVENTMASK, struct.pack("=I", eventmask))
    return (nla_nest(U.OVS_ACTION_ATTR_CT, ct) +
            nla(U.OVS_ACTION_ATTR_OUTPUT, struct.pack("=I", out_port)))


@pytest.fixture(scope="module")
def fw():
    with two_host_datapath(PREFIX, NET4, NET6) as (sock, dp, bed):
        a, b = bed.hosts
        pa, pb = a.port_no, b.port_no
        ip = "eth(),eth_type(0x0800),ipv4()"
        for flow, actions in [
            (f"in_port({pa}),eth(),eth_type(0x0806),arp()", f"{pb}"),
            (f"in_port({pb}),eth(),eth_type(0x0806),arp()", f"{pa}"),
            (f"recirc_id(0),in_port({pa}),ct_state(-trk),{ip}",
             f"ct(zone={ZONE}),recirc(0x1)"),
            (f"recirc_id(0),in_port({pb}),ct_state(-trk),{ip}",
             f"ct(zone={ZONE}),recirc(0x2)"),
        ]:
            _dpctl(sock, "add-flow", dp, flow, actions)
        # ICMP and TCP: committed both ways, everything reported; UDP: a
        # commit whose eventmask wants only the destroy
        with Dpif(sock) as c:
            for proto, l4, mask in ((1, "icmp()", None), (6, "tcp(),tcp_flags(0/0)", None),
                                    (17, "udp()", 1 << IPCT_DESTROY)):
                pip = f"eth(),eth_type(0x0800),ipv4(proto={proto}),{l4}"
                for rid, inp, state, out in ((1, pa, "+trk+new", pb), (1, pa, "+trk+est", pb),
                                             (2, pb, "+trk+est", pa)):
                    k, mk = odp.parse_key(f"recirc_id({rid}),in_port({inp}),"
                                          f"ct_state({state}),{pip}")
                    c.flow_new(dp, k, _ct_actions(ZONE, out, mask), mask=mk)
        yield sock, dp, bed


def _ping(bed):
    a, b = bed.hosts
    a.run("ping", "-c", "1", "-W", "2", b.ip4, check=False)


def _subscribed(ev, bed):
    """Ping until conntrack -E shows an ICMP connection: it has joined its groups."""
    a, b = bed.hosts
    return ev.wait(lambda ln: "icmp" in ln and f"dst={b.ip4}" in ln, "ICMP event",
                   poke=lambda: _ping(bed))


def test_conntrack_E_new_update_destroy_and_the_eventmask(fw):
    sock, dp, bed = fw
    a, b = bed.hosts
    ev = Events(sock)
    try:
        _subscribed(ev, bed)
        # TCP through the datapath: NEW in SYN_SENT, updates up to ESTABLISHED [ASSURED]
        with contextlib.ExitStack() as stack:
            p = b.popen(sys.executable, "-c", TCP_SERVER, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
            stack.callback(lambda: (p.kill(), p.wait()))
            for _ in range(100):
                if "7102" in b.run("ss", "-ltn", capture=True, check=False):
                    break
                subprocess.run(["sleep", "0.05"])
            a.run(sys.executable, "-c", TCP_CLIENT, b.ip4)
        lines = ev.wait(lambda ln: ln.startswith(" [UPDATE] tcp") and "ESTABLISHED" in ln
                        and "[ASSURED]" in ln, "TCP ESTABLISHED update")
        tcp_new = [ln for ln in lines if ln.startswith("    [NEW] tcp")]
        assert len(tcp_new) == 1 and "SYN_SENT" in tcp_new[0], lines
        assert f"src={a.ip4} dst={b.ip4}" in tcp_new[0] and "dport=7102" in tcp_new[0]
        assert f"zone={ZONE}" in tcp_new[0], tcp_new
        icmp = [ln for ln in lines if " icmp " in ln]
        assert any(ln.startswith("    [NEW] icmp") for ln in icmp), lines
        assert any(ln.startswith(" [UPDATE] icmp") for ln in icmp), lines
        # UDP: its eventmask wants only the destroy, so nothing yet
        a.run(sys.executable, "-c", UDP_SEND, b.ip4, "5353", "40011")
        assert "udp" in _dpctl(sock, "dump-conntrack", dp)
        # flush: a [DESTROY] for every connection, the UDP one included
        r = ovsdp_run(sock, "conntrack", "-F")
        assert r.returncode == 0, r.stderr
        lines = ev.wait(lambda ln: ln.startswith("[DESTROY] udp"), "UDP destroy")
        lines = ev.wait(lambda ln: ln.startswith("[DESTROY] tcp"), "TCP destroy")
        assert not [ln for ln in lines if "udp" in ln and not ln.startswith("[DESTROY]")], lines
        assert any(ln.startswith("[DESTROY] icmp") for ln in lines), lines
        udp = next(ln for ln in lines if ln.startswith("[DESTROY] udp"))
        assert "sport=40011 dport=5353" in udp and f"zone={ZONE}" in udp, udp
    finally:
        ev.close()


def test_conntrack_E_e_NEW_chooses_the_group(fw):
    sock, dp, bed = fw
    ev = Events(sock, "-e", "NEW")
    try:
        _subscribed(ev, bed)
        r = ovsdp_run(sock, "conntrack", "-F")
        assert r.returncode == 0, r.stderr
        n = len(ev.snapshot())
        # the next NEW after the flush: the destroys (had they come) were before it
        lines = ev.wait(lambda ln: "[NEW] icmp" in ln, "ICMP NEW after the flush",
                        poke=lambda: _ping(bed), start=n)
        assert lines and all(ln.startswith("    [NEW] ") for ln in lines), lines
    finally:
        ev.close()
        ovsdp_run(sock, "conntrack", "-F")


def test_expired_connection_destroy_comes_from_the_gc(fw):
    """A connection made through ctnetlink (``conntrack -I``) with 2 seconds
    to live: [NEW], then its [DESTROY] once the daemon's gc finds it expired."""
    sock, dp, bed = fw
    a, b = bed.hosts
    ev = Events(sock, "-e", "NEW,DESTROY")
    try:
        _subscribed(ev, bed)
        r = ovsdp_run(sock, "conntrack", "-I", "-p", "udp", "-s", a.ip4, "-d", b.ip4,
                      "--sport", "40012", "--dport", "5354", "-t", "2")
        assert r.returncode == 0, r.stderr
        lines = ev.wait(lambda ln: ln.startswith("[DESTROY] udp") and "sport=40012" in ln,
                        "destroy of the expired UDP connection")
        new = [ln for ln in lines if "sport=40012" in ln and "[NEW]" in ln]
        assert len(new) == 1 and new[0].startswith("    [NEW] udp      17 "), lines
        assert "[USERSPACE] portid=" in new[0], new          # a ctnetlink request made it
        assert "udp" not in _dpctl(sock, "dump-conntrack", dp)
    finally:
        ev.close()
        ovsdp_run(sock, "conntrack", "-F")
