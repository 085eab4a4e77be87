"""``ovsdp dpctl ct-set-limits / ct-del-limits / ct-get-limits`` and the real
ovs-dpctl's through ``ovsdp run``: output, argument errors and exit
statuses as Open vSwitch's lib/dpctl.c and lib/ct-dpif.c have them."""

import io
import os
import shutil
import socket
import subprocess
import sys

import pytest

from ovsdp.cli import dpctl as D
from ovsdp.cli.dpctl import ct_limits as CL
from ovsdp.client.dpif import Dpif
from ovsdp.client.netlink import NetlinkSocket

from .conftest import ROOT

P = "ovsdp dpctl: "
EINVAL = " (Invalid argument)\n"


def dpctl(daemon, *args, dpif=None):
    out, err = io.StringIO(), io.StringIO()
    rc = D.run(list(args), socket=daemon.path, stdout=out, stderr=err, dpif=dpif)
    return rc, out.getvalue(), err.getvalue()


def ok(daemon, *args):
    rc, out, err = dpctl(daemon, *args)
    assert (rc, err) == (0, ""), (args, out, err)
    return out


def fails(daemon, *args, dpif=None):
    rc, out, err = dpctl(daemon, *args, dpif=dpif)
    assert (rc, out) == (1, ""), (args, out, err)
    return err


@pytest.fixture
def ctdp(daemon, dpif):
    dpif.dp_new("ctd")
    return daemon


def test_set_get_del_output(ctdp, dpif):
    assert ok(ctdp, "ct-get-limits") == "default limit=0\n"
    assert ok(ctdp, "ct-set-limits", "ctd", "default=5", "zone=1,limit=2",
              "zone=513,limit=3") == ""
    assert ok(ctdp, "ct-get-limits") == ("default limit=5\nzone=513,limit=3,count=0\n"
                                         "zone=1,limit=2,count=0\n")
    assert ok(ctdp, "ct-get-limits", "system@ctd", "zone=1,7") == (
        "default limit=5\nzone=1,limit=2,count=0\nzone=7,limit=5,count=0\n")
    assert ok(ctdp, "ct-del-limits", "zone=513") == ""
    assert ok(ctdp, "ct-del-limits", "ctd", "default") == ""
    assert ok(ctdp, "ct-get-limits") == "default limit=0\nzone=1,limit=2,count=0\n"
    ok(ctdp, "ct-set-limits", "default=9")
    assert ok(ctdp, "ct-del-limits", "default", "zone=1,2") == ""
    assert ok(ctdp, "ct-get-limits") == "default limit=0\n"
    assert dpif.ct_get_limits() == [(-1, 0, 0)]


def test_numbers_are_read_as_ovs_reads_them(ctdp, dpif):
    ok(ctdp, "ct-set-limits", "limit=0x10,zone=010", "zone=9 limit=-1",
       "zone:3,limit:4294967297")
    assert dpif.ct_get_limits([8, 9, 3]) == [(8, 16, 0), (9, 0xFFFFFFFF, 0), (3, 1, 0)]
    ok(ctdp, "ct-set-limits", "default=  +7")
    assert dpif.ct_get_limits([-1]) == [(-1, 7, 0)]
    # a zone list: %hu, modulo 65536, what follows the digits ignored
    assert ok(ctdp, "ct-get-limits", "zone=65544x,,+3") == (
        "default limit=7\nzone=8,limit=16,count=0\nzone=3,limit=1,count=0\n")
    ok(ctdp, "ct-del-limits", "zone=-65528")
    assert dpif.ct_get_limits([8]) == [(8, 7, 0)]


def test_counts_show_the_zones_connections(ctdp, dpif):
    def fill():
        from .test_ct_action import udp
        tr = ctdp.module.init_net.conntrack
        for sport, z in ((1, 4), (2, 4), (3, 6)):
            res = tr.process(udp(sport=sport)[14:], 2, z)
            assert tr.confirm(res)
    ctdp.call(fill)
    ok(ctdp, "ct-set-limits", "zone=4,limit=10")
    assert ok(ctdp, "ct-get-limits") == "default limit=0\nzone=4,limit=10,count=2\n"
    assert ok(ctdp, "ct-get-limits", "zone=6,5") == (
        "default limit=0\nzone=6,limit=0,count=1\nzone=5,limit=0,count=0\n")


ARG_ERRORS = [
    (("ct-set-limits",), P + "'ct-set-limits' command requires at least 1 arguments\n"),
    (("ct-set-limits", "ctd"), P + "too few arguments" + EINVAL),
    (("ct-set-limits", "default=x"), P + "invalid default limit" + EINVAL),
    (("ct-set-limits", "default=4294967296"), P + "invalid default limit" + EINVAL),
    (("ct-set-limits", "default=-1"), P + "invalid default limit" + EINVAL),
    (("ct-set-limits", "default=1", "default=2"), P + "invalid zone limit field: default"
     + EINVAL),
    (("ct-set-limits", "zone=1"), P + "failed to parse zone limit" + EINVAL),
    (("ct-set-limits", "zone=1,limit="), P + "field limit missing value" + EINVAL),
    (("ct-set-limits", "zone,limit=1"), P + "field zone missing value" + EINVAL),
    (("ct-set-limits", "zone=x,limit=1"), P + "failed to parse field zone" + EINVAL),
    (("ct-set-limits", "zone=65536,limit=1"), P + "failed to parse field zone" + EINVAL),
    (("ct-set-limits", "zone=1,limit=08"), P + "failed to parse field limit" + EINVAL),
    (("ct-set-limits", "zone=1,limit=1,foo=2"), P + "invalid zone limit field: foo" + EINVAL),
    (("ct-del-limits",), P + "'ct-del-limits' command requires at least 1 arguments\n"),
    (("ct-del-limits", "ctd"), P + "too few arguments" + EINVAL),
    (("ct-del-limits", "bad"), P + "invalid argument bad" + EINVAL),
    (("ct-del-limits", "zone=q"), P + "invalid zone" + EINVAL),
    (("ct-del-limits", "zone=1,q"), P + "invalid zone" + EINVAL),
    (("ct-del-limits", "zone="), P + "failed to delete conntrack limit" + EINVAL),
    (("ct-del-limits", "ctd", "default", "zone=1", "x"),
     P + "'ct-del-limits' command takes at most 3 arguments\n"),
    (("ct-del-limits", "default", "zone=1", "zone=2"), P + "datapath not found" + EINVAL),
    (("ct-get-limits", "zone=a"), P + "invalid zone" + EINVAL),
    (("ct-get-limits", "nodp", "zone=1"), P + "datapath not found" + EINVAL),
    (("ct-get-limits", "ctd", "zone=1", "x"),
     P + "'ct-get-limits' command takes at most 2 arguments\n"),
]


@pytest.mark.parametrize("args,msg", ARG_ERRORS, ids=[" ".join(a) for a, _ in ARG_ERRORS])
def test_argument_errors(ctdp, args, msg):
    assert fails(ctdp, *args) == msg


def test_no_datapath(daemon):
    for args in (("ct-get-limits",), ("ct-set-limits", "zone=1,limit=1"),
                 ("ct-del-limits", "zone=1")):
        assert fails(daemon, *args) == (P + "no datapaths exist\n"
                                        + P + "datapath not found" + EINVAL)


def test_a_failed_get_names_its_error_twice_as_ovs_does(ctdp, dpif):
    from ovsdp.datapath.families.ct_limit import MAX_REPLY_ENTRIES
    dpif.ct_set_limits([(z, 1) for z in range(MAX_REPLY_ENTRIES)])
    assert fails(ctdp, "ct-get-limits").startswith(
        P + "failed to get conntrack limit Message too long (Message too long)\n")


def test_read_only_mode_runs_them_as_ovs_does(ctdp):
    assert ok(ctdp, "--read-only", "ct-set-limits", "zone=1,limit=1") == ""
    assert ok(ctdp, "--read-only", "ct-get-limits", "zone=1") == (
        "default limit=0\nzone=1,limit=1,count=0\n")


def test_without_cap_net_admin(ctdp):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(ctdp.path + ".ro")
    with Dpif(sock=NetlinkSocket(ctdp.path, timeout=5, sock=s)) as ro:
        # (ovsdp dpctl adds the daemon's extended ack on a line of its own)
        assert fails(ctdp, "ct-set-limits", "zone=1,limit=1", dpif=ro).startswith(
            P + "failed to set conntrack limit (Operation not permitted)\n")
        assert fails(ctdp, "ct-del-limits", "zone=1", dpif=ro).startswith(
            P + "failed to delete conntrack limit (Operation not permitted)\n")
        rc, out, _ = dpctl(ctdp, "ct-get-limits", dpif=ro)
        assert (rc, out) == (0, "default limit=0\n")


def test_help_lists_the_commands(daemon):
    rc, out, _ = dpctl(daemon, "list-commands")
    assert "  ct-del-limits           [dp] [default] [zone=N1[,N2]...]\n" in out
    rc, out, _ = dpctl(daemon, "--help")
    assert "ct-set-limits [DP] [default=L] [zone=N,limit=L]..." in out


def test_format_and_parsers_alone():
    assert CL.format_zone_limits([(3, 1, 2), (-1, 4, 0)]) == \
        "default limit=4\nzone=3,limit=1,count=2"
    assert CL.format_zone_limits([]) == ""
    assert CL.from_reply([(-2, 1, 1), (-1, 0, 0), (65536, 1, 1), (65535, 1, 0)]) == \
        [(-1, 0, 0), (65535, 1, 0)]
    assert CL.parse_key_value("zone=(1,2),limit=3 x") == [("zone", "(1,2)"), ("limit", "3"),
                                                          ("x", "")]
    assert CL.str_to_u32("0x1_") is None and CL.str_to_u32("0XfF") == 255
    assert CL.str_to_ullong(" 12", 10) == 12 and CL.str_to_ullong("12 ", 10) is None
    assert CL.scan_u16("  -1") == 65535 and CL.scan_u16("+") is None


# --------------------------------------------- the real ovs-dpctl, unmodified
def _ovsdp_run(path, *argv):
    return subprocess.run([sys.executable, "-m", "ovsdp", "run", "--socket", path, "--", *argv],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=ROOT))


def _last_line(text):
    lines = text.strip("\n").splitlines()
    return lines[-1] if lines else ""


@pytest.mark.skipif(shutil.which("ovs-dpctl") is None, reason="ovs-dpctl not installed")
def test_ovs_dpctl_sets_and_gets_limits_on_ovsdp(ctdp, dpif):
    p = ctdp.path
    r = _ovsdp_run(p, "ovs-dpctl", "ct-set-limits", "zone=1,limit=2")
    assert r.returncode == 0, r.stderr
    assert dpif.ct_get_limits() == [(-1, 0, 0), (1, 2, 0)]
    r = _ovsdp_run(p, "ovs-dpctl", "ct-set-limits", "ctd", "default=5", "zone=513,limit=3")
    assert r.returncode == 0, r.stderr
    for args in ((), ("zone=1,7",), ("zone=513",)):
        r = _ovsdp_run(p, "ovs-dpctl", "ct-get-limits", *args)
        assert r.returncode == 0, r.stderr
        assert r.stdout == ok(ctdp, "ct-get-limits", *args)
    assert r.stdout == "default limit=5\nzone=513,limit=3,count=0\n"
    r = _ovsdp_run(p, "ovs-dpctl", "ct-del-limits", "zone=1,513")
    assert r.returncode == 0, r.stderr
    assert dpif.ct_get_limits() == [(-1, 5, 0)]
    for args in (("ct-set-limits", "zone=x,limit=1"), ("ct-del-limits", "zone=q"),
                 ("ct-set-limits", "default=x"), ("ct-set-limits", "zone=1")):
        r = _ovsdp_run(p, "ovs-dpctl", *args)
        assert r.returncode == 1
        mine = fails(ctdp, *args)
        assert _last_line(r.stderr).replace("ovs-dpctl: ", P) == mine.strip("\n")
