"""Conntrack helpers end to end: a real FTP client (Python's ftplib) and
server (pyftpdlib) in two namespaces, through a datapath whose flows are
those of Open vSwitch's "conntrack - FTP" test (the client's side
committed with the FTP helper, the server's allowed back only when
established or related).  Active and passive transfers work, the data
connection is RELATED; the real ``conntrack`` tool lists the control
connection with its helper and the expectation (``conntrack -L expect``),
and flushes the expectations; ``ovs-dpctl dump-conntrack`` shows
``helper=ftp``.

Everything this module creates is named ovhp<4 hex digits>... and removed
again, also when a test fails.
"""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from ovsdp import preload

from .conftest import ROOT, two_host_datapath
from .test_ctnetlink_netns import _text

pytest.importorskip("pyftpdlib")
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                 reason="needs root and iproute2")]

SFX = secrets.token_hex(2)
PREFIX = f"ovhp{SFX}"
_R = secrets.randbits(16)
NET4 = f"198.18.{_R & 0xFF}"
SERVER = """
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
a = DummyAuthorizer()
a.add_anonymous(sys.argv[2])
FTPHandler.authorizer = a
FTPHandler.permit_foreign_addresses = True
FTPServer((sys.argv[1], 21), FTPHandler).serve_forever()
"""
CLIENT = """
import ftplib, sys
f = ftplib.FTP(sys.argv[1], timeout=5)
f.login()
f.set_pasv(sys.argv[2] == "passive")
out = []
f.retrbinary("RETR hello.txt", out.append)
f.quit()
sys.stdout.write(b"".join(out).decode())
"""


def ovsdp_run(sock, *argv):
    env = preload.environment(dict(os.environ, PYTHONPATH=ROOT), socket=sock)
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=60)


def _flows(pa, pb):
    """Open vSwitch's "conntrack - FTP" flows1: the client's side committed
    with the FTP helper, the server's let back when established or related."""
    tcp = "eth(),eth_type(0x0800),ipv4(proto=6),tcp(),tcp_flags(0/0)"
    return [(f"in_port({pa}),eth(),eth_type(0x0806),arp()", f"{pb}"),
            (f"in_port({pb}),eth(),eth_type(0x0806),arp()", f"{pa}"),
            (f"recirc_id(0),in_port({pa}),{tcp}", f"ct(commit,helper=ftp),{pb}"),
            (f"recirc_id(0),in_port({pb}),{tcp}", "ct,recirc(0x1)"),
            (f"recirc_id(0x1),in_port({pb}),ct_state(+trk+est),{tcp}", f"{pa}"),
            (f"recirc_id(0x1),in_port({pb}),ct_state(+trk+rel),{tcp}", f"{pa}")]


@pytest.fixture(scope="module")
def ftp():
    tmp = tempfile.mkdtemp(prefix="ovhp-")
    os.chmod(tmp, 0o755)
    with open(os.path.join(tmp, "hello.txt"), "w") as f:
        f.write("hello through the FTP helper\n")
    server = None
    try:
        with two_host_datapath(PREFIX, NET4, flows=_flows) as (sock, dp, bed):
            b = bed.hosts[1]
            server = b.popen(sys.executable, "-c", SERVER, b.ip4, tmp,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(100):
                if "LISTEN" in b.run("ss", "-ltn", "sport = :21", capture=True, check=False):
                    break
                time.sleep(0.05)
            yield sock, dp, bed
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def _get(bed, mode):
    a, b = bed.hosts
    return a.run(sys.executable, "-c", CLIENT, b.ip4, mode, capture=True, timeout=30)


def test_active_ftp_through_the_helper(ftp):
    sock, dp, bed = ftp
    a, b = bed.hosts
    # without the helper the server's data connection (active mode) is dropped
    assert _get(bed, "active") == "hello through the FTP helper\n"
    if shutil.which("conntrack"):
        r = ovsdp_run(sock, "conntrack", "-L")
        assert r.returncode == 0, r.stderr
        ctl = [ln for ln in r.stdout.splitlines() if "dport=21 " in ln]
        assert ctl and all("helper=ftp" in ln for ln in ctl), r.stdout
        # the server's data connection came in through ct() alone: its expectation
        # is still there (a lookup without commit does not use it up)
        r = ovsdp_run(sock, "conntrack", "-L", "expect")
        assert r.returncode == 0, r.stderr
        exp = [ln for ln in r.stdout.splitlines() if ln.strip()]
        assert len(exp) == 1 and "proto=6" in exp[0] and f"src={b.ip4} dst={a.ip4}" in exp[0] \
            and "helper=ftp" in exp[0], r.stdout
        assert "1 expectations have been shown" in r.stderr, r.stderr
        r = ovsdp_run(sock, "conntrack", "-F", "expect")
        assert r.returncode == 0, r.stderr
        r = ovsdp_run(sock, "conntrack", "-L", "expect")
        assert r.returncode == 0 and r.stdout.strip() == "", r.stdout
    if shutil.which("ovs-dpctl"):
        r = ovsdp_run(sock, "ovs-dpctl", "dump-conntrack", dp)
        assert r.returncode == 0, r.stderr
        assert any(",helper=ftp" in ln and "dport=21)" in ln for ln in r.stdout.splitlines()), \
            r.stdout
    rc, out, err = _text(sock, "dump-conntrack", dp)
    assert rc == 0 and ",helper=ftp" in out, (out, err)


def test_passive_ftp_through_the_helper(ftp):
    sock, dp, bed = ftp
    assert _get(bed, "passive") == "hello through the FTP helper\n"
