"""Timeout policies end to end: a UDP policy made through cttimeout (as
ovs-vswitchd makes it), a flow whose ct(commit) names it, traffic between
two namespaces; the committed connection has the policy's timeout as
ctnetlink and ``ovsdp dpctl -s dump-conntrack`` report it, a connection of
another protocol the default; the policy cannot be deleted while the flow
uses it, and can once the flow is gone.

Everything this module creates is named ovtp<4 hex digits>... and removed
again, also when a test fails.
"""

import errno
import os
import re
import secrets
import shutil
import sys

import pytest

from ovsdp.client.conntrack import CtSocket

from .conftest import two_host_datapath
from .test_ctnetlink_netns import UDP_SEND, _text

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip")
                                 or not shutil.which("ping"),
                                 reason="needs root, iproute2 and ping")]

SFX = secrets.token_hex(2)
PREFIX = f"ovtp{SFX}"
_R = secrets.randbits(16)
NET4 = f"198.19.{_R & 0xFF}"
NET6 = f"fd{_R >> 8:02x}:{int(SFX, 16):x}::"
ZONE = 5
TP = "ovs_tp_5_udp4"


@pytest.fixture(scope="module")
def fw():
    with two_host_datapath(PREFIX, NET4, NET6) as env:
        yield env


def _flows(sock, dp, pa, pb, commit):
    ip = "eth(),eth_type(0x0800),ipv4()"
    for flow, actions in [
        (f"in_port({pa}),eth(),eth_type(0x0806),arp()", f"{pb}"),
        (f"in_port({pb}),eth(),eth_type(0x0806),arp()", f"{pa}"),
        (f"recirc_id(0),in_port({pa}),ct_state(-trk),{ip}", f"ct(zone={ZONE}),recirc(0x1)"),
        (f"recirc_id(0x1),in_port({pa}),ct_state(+trk+new),eth(),eth_type(0x0800),"
         "ipv4(proto=17),udp()", commit + f",{pb}"),
        (f"recirc_id(0x1),in_port({pa}),ct_state(+trk+new),eth(),eth_type(0x0800),"
         "ipv4(proto=1),icmp()", f"ct(commit,zone={ZONE}),{pb}"),
        (f"recirc_id(0x1),in_port({pa}),ct_state(+trk+est),{ip}", f"{pb}"),
        (f"recirc_id(0),in_port({pb}),ct_state(-trk),{ip}", f"ct(zone={ZONE}),recirc(0x2)"),
        (f"recirc_id(0x2),in_port({pb}),ct_state(+trk+est),{ip}", f"{pa}"),
    ]:
        rc, _out, err = _text(sock, "add-flow", dp, flow, actions)
        assert rc == 0, err


def test_a_committed_connection_gets_the_policy_timeout(fw):
    sock, dp, bed = fw
    a, b = bed.hosts
    with CtSocket(sock) as s:
        s.set_timeout_policy(TP, 2, 17, {"unreplied": 3, "replied": 3})
        (tp,) = s.timeout_policies()
        assert (tp.name, tp.l3num, tp.l4num, tp.use) == (TP, 2, 17, 1)
        assert tp.timeouts == {"unreplied": 3, "replied": 3}
    _flows(sock, dp, a.port_no, b.port_no, f"ct(commit,zone={ZONE},timeout={TP})")
    with CtSocket(sock) as s:
        assert s.get_timeout_policy(TP).use == 2        # the flow's CT action holds it
    r = a.run("ping", "-c", "1", "-W", "2", b.ip4, capture=True, check=False)
    assert " 0% packet loss" in r, r
    a.run(sys.executable, "-c", UDP_SEND, b.ip4, "5353", "40001")
    with CtSocket(sock) as s:
        by_proto = {e.orig.protonum: e for e in s.dump(zone=ZONE)}
    assert set(by_proto) == {1, 17}, by_proto
    assert 0 <= by_proto[17].timeout <= 3                # the policy's UNREPLIED
    assert 3 < by_proto[1].timeout <= 30                 # ICMP: the default
    rc, out, err = _text(sock, "-s", "dump-conntrack", dp, f"zone={ZONE}")
    assert rc == 0, err
    udp = [ln for ln in out.splitlines() if ln.startswith("udp,")]
    assert len(udp) == 1 and re.search(r",timeout=[0-3]$", udp[0]), out
    # in use by a flow: EBUSY; a delete of all unused ones leaves it
    with CtSocket(sock) as s:
        with pytest.raises(OSError) as e:
            s.del_timeout_policy(TP)
        assert e.value.errno == errno.EBUSY
        s.del_timeout_policy()
        assert [t.name for t in s.timeout_policies()] == [TP]
    rc, _out, err = _text(sock, "del-flows", dp)
    assert rc == 0, err
    with CtSocket(sock) as s:
        assert s.get_timeout_policy(TP).use == 1
        s.del_timeout_policy(TP)
        assert s.timeout_policies() == []
        s.flush()
