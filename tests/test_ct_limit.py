"""The ovs_ct_limit family and zone limits at commit (conntrack.c's
ovs_ct_limit_cmd_* and ovs_ct_check_limit), through the control socket and
dummy ports, and on the CT action's stand-in datapath."""

import errno
import logging
import socket
import struct

import pytest
from scapy.all import IP, UDP, Ether, Raw

from ovsdp import uapi as U
from ovsdp.cli import dpctl
from ovsdp.client.dpif import Dpif
from ovsdp.client.netlink import NetlinkSocket
from ovsdp.datapath import conntrack as CT
from ovsdp.datapath.families import ct_limit as L
from ovsdp.netlink.attr import nla
from ovsdp.netlink.message import build_genl, parse_error

from .conftest import raw_connect
from .test_actions import FakeDP, run
from .test_ct_action import COMMIT, ct, reply, udp, zone
from .test_ovs_net import world  # noqa: F401 - the two-namespace fixture

ZL = U.OVS_CT_LIMIT_ATTR_ZONE_LIMIT
SET, DEL, GET = U.OVS_CT_LIMIT_CMD_SET, U.OVS_CT_LIMIT_CMD_DEL, U.OVS_CT_LIMIT_CMD_GET
NETLINK_LOG = "ovsdp.datapath.families.ct_limit"


def entries(*pairs):
    """The ZONE_LIMIT attribute of (zone_id, limit[, count]) entries."""
    return nla(ZL, b"".join(U.OVS_ZONE_LIMIT.pack(*(p + (0,) * (3 - len(p)))) for p in pairs))


def req(dpif, cmd, attrs=b"", ifindex=0):
    return dpif.sock.genl_request(U.OVS_CT_LIMIT_FAMILY, cmd, U.OVS_HEADER.pack(ifindex) + attrs)


def err_of(fn, *args):
    with pytest.raises(OSError) as e:
        fn(*args)
    return e.value.errno


@pytest.fixture(autouse=True)
def _no_ratelimit(monkeypatch):
    """Every OVS_NLERR line is logged (the kernel's rate limit would hide
    some across a test run)."""
    unlimited = L.RateLimit(burst=10 ** 9)
    monkeypatch.setattr(L, "net_ratelimit", unlimited)
    monkeypatch.setattr(CT, "net_ratelimit", unlimited)


# ------------------------------------------------------------------ the family
def test_the_family_as_nlctrl_shows_it(dpif):
    fam = dpif.sock.family(U.OVS_CT_LIMIT_FAMILY)
    assert (fam.version, fam.hdrsize, fam.maxattr) == (1, 4, 1)
    assert list(fam.groups) == [U.OVS_CT_LIMIT_MCGROUP]
    do_pol = U.GENL_CMD_CAP_DO | U.GENL_CMD_CAP_HASPOL
    assert fam.ops == {SET: U.GENL_UNS_ADMIN_PERM | do_pol, DEL: U.GENL_UNS_ADMIN_PERM | do_pol,
                       GET: do_pol}


def test_set_get_del_round_trip_in_the_kernels_order(dpif):
    assert dpif.ct_get_limits() == [(-1, 0, 0)]          # default unlimited, no zones
    dpif.ct_set_limits([(-1, 10), (1, 2), (513, 3), (2, 4)])
    # bucket by bucket (zone % 512), the latest added first within a bucket
    assert dpif.ct_get_limits() == [(-1, 10, 0), (513, 3, 0), (1, 2, 0), (2, 4, 0)]
    dpif.ct_set_limits([(1, 7)])                          # replaced in place
    assert dpif.ct_get_limits() == [(-1, 10, 0), (513, 3, 0), (1, 7, 0), (2, 4, 0)]
    # a list: the zones asked for, the default's limit for a zone without one,
    # zone ids out of range left out
    assert dpif.ct_get_limits([-1, 5, 1, 70000, -2]) == [(-1, 10, 0), (5, 10, 0), (1, 7, 0)]
    assert dpif.ct_get_limits([]) == []                   # an empty attribute: nothing
    dpif.ct_del_limits([1, -1, 9])                        # the default goes back to 0
    assert dpif.ct_get_limits() == [(-1, 0, 0), (513, 3, 0), (2, 4, 0)]
    dpif.ct_set_limits([(2, 0)])                          # a zone's own 0: unlimited
    assert dpif.ct_get_limits([2]) == [(2, 0, 0)]


def test_replies_carry_the_request_header_and_nothing_else(dpif):
    (m,) = req(dpif, SET, entries((7, 1)), ifindex=1234)
    assert (m.cmd, m.version, m.hdr.flags, m.dp_ifindex, m.attrs) == (SET, 1, 0, 1234, {})
    (m,) = req(dpif, DEL, entries((7,)), ifindex=-5)
    assert (m.cmd, m.dp_ifindex, m.attrs) == (DEL, -5, {})
    (m,) = req(dpif, GET, ifindex=99)
    assert (m.cmd, m.dp_ifindex) == (GET, 99)
    assert m.attrs == {ZL: U.OVS_ZONE_LIMIT.pack(-1, 0, 0)}
    raw = m.raw[U.NLMSG_HDRLEN + U.GENL_HDRLEN + 4:]
    assert struct.unpack_from("=HH", raw) == (4 + 12, ZL)    # no NLA_F_NESTED


def test_set_and_del_need_the_attribute(dpif):
    for cmd in (SET, DEL):
        with pytest.raises(OSError) as e:
            req(dpif, cmd)
        assert e.value.errno == errno.EINVAL and e.value.ext_ack is None
    assert err_of(dpif.ct_del_limits, []) == errno.EINVAL


def test_malformed_arrays_succeed_with_what_the_kernel_reads(dpif, caplog):
    caplog.set_level(logging.INFO, logger=NETLINK_LOG)
    zl = U.OVS_ZONE_LIMIT.pack
    req(dpif, SET, nla(ZL, bytes(4)))                     # no whole entry: nothing set
    assert dpif.ct_get_limits() == [(-1, 0, 0)]
    req(dpif, SET, nla(ZL, zl(3, 30, 0) + b"\1\1\1\1"))    # one entry and 4 bytes more
    assert dpif.ct_get_limits() == [(-1, 0, 0), (3, 30, 0)]
    req(dpif, SET, nla(ZL, zl(4, 40, 0) + zl(5, 50, 0)[:10]))   # 22 bytes: aligned, two
    assert dpif.ct_get_limits([4, 5]) == [(4, 40, 0), (5, 50, 0)]
    req(dpif, SET, entries((70000, 1), (-2, 1), (6, 60)))  # bad zone ids are skipped
    assert dpif.ct_get_limits() == [(-1, 0, 0), (3, 30, 0), (4, 40, 0), (5, 50, 0),
                                    (6, 60, 0)]
    req(dpif, DEL, nla(ZL, zl(3, 0, 0) + bytes(8)))       # DEL: the same walk
    req(dpif, GET, nla(ZL, zl(4, 0, 0) + bytes(2)))
    logged = [r.getMessage() for r in caplog.records if r.name == NETLINK_LOG]
    assert logged == ["netlink: set zone limit has 4 unknown bytes",
                      "netlink: set zone limit has 4 unknown bytes",
                      "netlink: zone id is out of range", "netlink: zone id is out of range",
                      "netlink: del zone limit has 8 unknown bytes",
                      "netlink: get zone limit has 4 unknown bytes"]
    assert dpif.ct_get_limits([3]) == [(3, 0, 0)]


def test_an_attribute_shorter_than_a_header_fails_the_policy(daemon):
    """NLA_NESTED: empty, or at least NLA_HDRLEN; the error points at it."""
    s = raw_connect(daemon.path)
    try:
        fid = Dpif(sock=NetlinkSocket(sock=s, timeout=5)).sock.family(
            U.OVS_CT_LIMIT_FAMILY).id
        body = U.OVS_HEADER.pack(0) + nla(ZL, b"\0\0")
        s.send(build_genl(fid, SET, 1, U.NLM_F_REQUEST, 7, 0, body))
        err, text, offset = parse_error(s.recv(4096))
    finally:
        s.close()
    assert (err, text) == (errno.ERANGE, "Attribute failed policy validation")
    assert offset == U.NLMSG_HDRLEN + U.GENL_HDRLEN + 4


def test_get_fails_with_emsgsize_when_the_reply_does_not_fit(dpif):
    n = L.MAX_REPLY_ENTRIES
    dpif.ct_set_limits([(z, 1) for z in range(n - 1)])
    assert len(dpif.ct_get_limits()) == n                 # the default and n - 1 zones
    dpif.ct_set_limits([(n, 1)])
    assert err_of(dpif.ct_get_limits) == errno.EMSGSIZE
    assert len(dpif.ct_get_limits(list(range(n - 1)))) == n - 1


def test_only_set_and_del_need_cap_net_admin(daemon, dpif):
    """The read-only socket's peers do not have CAP_NET_ADMIN."""
    dpif.ct_set_limits([(1, 5)])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(daemon.path + ".ro")
    with Dpif(sock=NetlinkSocket(daemon.path, timeout=5, sock=s)) as ro:
        assert ro.ct_get_limits() == [(-1, 0, 0), (1, 5, 0)]
        assert err_of(ro.ct_set_limits, [(1, 6)]) == errno.EPERM
        assert err_of(ro.ct_del_limits, [1]) == errno.EPERM
    assert dpif.ct_get_limits([1]) == [(1, 5, 0)]


def test_limits_belong_to_the_callers_namespace(world):  # noqa: F811
    m, here, there, client, _released = world
    a, b = client(here, 100), client(there, 200)
    a.ct_set_limits([(-1, 3), (1, 1)])
    assert b.ct_get_limits() == [(-1, 0, 0)]
    b.ct_set_limits([(2, 2)])
    assert a.ct_get_limits() == [(-1, 3, 0), (1, 1, 0)]
    assert b.ct_get_limits() == [(-1, 0, 0), (2, 2, 0)]
    assert here.conntrack.ct_limit_info is here.ct_limit_info
    assert there.ct_limit_info.limits == {2: 2}


# ---------------------------------------------- enforcement on the stand-in dp
def limited(**zones):
    dp = FakeDP()
    info = dp.conntrack.ct_limit_info = L.CtLimitInfo()
    info.enabled = True
    for z, lim in zones.items():
        if z == "default":
            info.default_limit = lim
        else:
            info.set(int(z[1:]), lim)
    return dp, info


def commit(dp, frame, z):
    err, _ = run(dp, frame, [ct(COMMIT, zone(z)), (U.OVS_ACTION_ATTR_OUTPUT, 2)])
    return err


def test_commit_refuses_a_new_connection_over_the_zone_limit(caplog):
    dp, info = limited(z5=1)
    assert commit(dp, udp(sport=1), 5) == 0
    with caplog.at_level(logging.WARNING, logger="ovsdp.datapath.conntrack"):
        assert commit(dp, udp(sport=2), 5) == errno.ENOMEM
    assert "openvswitch: zone: 5 exceeds conntrack limit" in caplog.text
    assert dp.drops[U.OVS_DROP_ACTION_ERROR] == 1 and len(dp.out(2)) == 1
    assert dp.conntrack.count(5) == 1
    assert commit(dp, udp(sport=1), 5) == 0               # its own connection: confirmed
    assert commit(dp, reply(), 5) == errno.ENOMEM         # another tuple entirely
    assert commit(dp, udp(sport=2), 6) == 0               # zone 6 has no limit
    info.set(5, 2)
    assert commit(dp, udp(sport=2), 5) == 0
    assert dp.conntrack.count(5) == 2


def test_expired_connections_do_not_count():
    dp, _ = limited(z5=1)
    assert commit(dp, udp(sport=1), 5) == 0
    (conn,) = list(dp.conntrack)
    dp.conntrack.set_timeout(conn, -1)                    # expired, not yet reaped
    assert len(dp.conntrack) == 1
    assert commit(dp, udp(sport=2), 5) == 0
    assert dp.conntrack.count(5) == 1


def test_the_default_limit_applies_to_zones_without_their_own():
    dp, info = limited(default=1, z7=0)
    assert commit(dp, udp(sport=1), 3) == 0
    assert commit(dp, udp(sport=2), 3) == errno.ENOMEM
    assert commit(dp, udp(sport=2), 4) == 0               # per zone: 4 has none yet
    for sport in (1, 2, 3):                               # zone 7's own 0: unlimited
        assert commit(dp, udp(sport=sport), 7) == 0
    info.default_limit = 0
    assert commit(dp, udp(sport=2), 3) == 0


def test_a_lookup_without_commit_is_never_limited():
    dp, _ = limited(default=1)
    assert commit(dp, udp(sport=1), 0) == 0
    err, _ = run(dp, udp(sport=2), [ct(), (U.OVS_ACTION_ATTR_OUTPUT, 2)])
    assert err == 0 and len(dp.out(2)) == 2


# ------------------------------------------------ through dummy ports, end to end
SRC, DST = "00:00:00:00:00:01", "00:00:00:00:00:02"


def frame(sport, a="10.0.0.1", b="10.0.0.2", dport=53):
    return bytes(Ether(src=SRC, dst=DST) / IP(src=a, dst=b) / UDP(sport=sport, dport=dport)
                 / Raw(b"x" * 8))


def back(sport):
    return frame(53, a="10.0.0.2", b="10.0.0.1", dport=sport)


UDP4 = "eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp()"


@pytest.fixture
def limit_dp(daemon, dpif):
    dpif.dp_new("ctl")
    for i in (1, 2):
        dpif.vport_new("ctl", f"ctl{i}", "dummy", port_no=i)
    with dpctl.DpctlSession(socket=daemon.path) as s:
        for inp, z, out in ((1, 5, 2), (2, 5, 1)):
            s.output("add-flow", "ctl", f"in_port({inp}),{UDP4}", f"ct(commit,zone={z}),{out}")
    net = daemon.module.init_net

    def send(port, data):
        def go():
            net.vports_by_name[f"ctl{port}"].inject(data)
            other = net.vports_by_name[f"ctl{3 - port}"]
            return other.fetch()
        return daemon.call(go)
    return dpif, send


def test_zone_limit_drops_the_second_connection_not_the_first_ones_replies(limit_dp):
    dpif, send = limit_dp
    dpif.ct_set_limits([(5, 1)])
    assert send(1, frame(1000)) == [frame(1000)]
    assert dpif.ct_get_limits() == [(-1, 0, 0), (5, 1, 1)]
    assert send(1, frame(1001)) == []                     # a second connection: dropped
    assert send(2, back(1000)) == [back(1000)]            # the first's replies pass
    assert send(1, frame(1000)) == [frame(1000)]
    assert dpif.ct_get_limits([5, 6]) == [(5, 1, 1), (6, 0, 0)]
    dpif.ct_set_limits([(5, 2)])                          # raising the limit
    assert send(1, frame(1001)) == [frame(1001)]
    assert dpif.ct_get_limits([5]) == [(5, 2, 2)]
    dpif.ct_del_limits([5])
    dpif.ct_set_limits([(-1, 2)])                         # zone 5 under the default now
    assert send(1, frame(1002)) == []
    assert dpif.ct_get_limits([5]) == [(5, 2, 2)]


def test_execute_returns_enomem_over_the_limit(limit_dp):
    from ovsdp import odp
    from ovsdp.datapath import flow_key as F
    from ovsdp.datapath import flow_netlink_put as FNP
    from ovsdp.datapath import key_layout as K
    dpif, _send = limit_dp
    dpif.ct_set_limits([(9, 1)])
    acts = odp.parse_actions("ct(commit,zone=9),2")
    for sport, want in ((2000, 0), (2001, errno.ENOMEM)):
        data = frame(sport)
        k = F.extract(data, K.make(in_port=1))
        try:
            dpif.execute("ctl", data, FNP.put_key(k, k, False), acts)
            got = 0
        except OSError as e:
            got = e.errno
        assert got == want
