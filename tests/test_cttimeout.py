"""cttimeout sans I/O (nfnetlink_cttimeout.c, nf_conntrack_timeout.c): the
bytes of NEW / GET / DELETE / DEFAULT_SET / DEFAULT_GET and their errnos,
the reference count a CT action holds, and the timeouts a connection made
by a CT action with a policy gets (net/openvswitch/conntrack.c).

The expected bytes are written out by hand from nfnetlink_cttimeout.h
(numbers are literals here, not the uapi module's names)."""

import errno
import logging
import struct

import pytest

from ovsdp import uapi as U
from ovsdp.datapath import flow_netlink_actions as FA
from ovsdp.datapath import nf_conntrack_timeout as T
from ovsdp.datapath.conntrack_timeout import set_timeouts
from ovsdp.datapath.module import OvsNet
from ovsdp.netlink.attr import nla, nla_nest
from ovsdp.uapi import nfnetlink as N

from .test_actions import FakeDP, key_of
from .test_ct_action import COMMIT, ct, state, through, udp, zone
from .test_ctnetlink import FakePeer, attr, be16, be32, errno_of, nest, request, sockopt
from .test_ctnetlink import env as env  # noqa: F401 - the fixture

SUB = 8                                         # NFNL_SUBSYS_CTNETLINK_TIMEOUT
TP_NEW, TP_GET, TP_DELETE, TP_DEFAULT_SET, TP_DEFAULT_GET = range(5)
NAME, L3PROTO, L4PROTO, DATA, USE = 1, 2, 3, 4, 5
REQ, ACK, MULTI, REPLACE, EXCL, CREATE, DUMP = 1, 4, 2, 0x100, 0x200, 0x400, 0x300
AF_INET, AF_INET6 = 2, 10


def tp(m, p, msg_type, body=b"", flags=REQ | ACK, seq=7):
    return request(m, p, msg_type, flags, body, family=0, seq=seq, subsys=SUB)


def name(s):
    return attr(NAME, s + b"\0")


def policy_body(n, l3, l4, *data):
    return (name(n) + attr(L3PROTO, be16(l3)) + attr(L4PROTO, bytes([l4])) +
            nest(DATA, *(attr(t, be32(v)) for t, v in data)))


def hdr(msg, seq=7, portid=4242):
    length, mtype, flags, mseq, mpid = struct.unpack_from("=IHHII", msg)
    assert (length, mseq, mpid) == (len(msg), seq, portid)
    return mtype, flags


def acked(msgs):
    assert errno_of(msgs) == 0
    return msgs[:-1]


# ------------------------------------------------------------ the wire
def test_new_then_get_is_byte_exact(env):
    m, p, tracker = env
    assert acked(tp(m, p, TP_NEW, policy_body(b"ovs_tp_5_udp4", AF_INET, 17, (1, 3)),
                    REQ | ACK | CREATE | REPLACE)) == []
    msgs = acked(tp(m, p, TP_GET, name(b"ovs_tp_5_udp4")))
    assert len(msgs) == 1
    assert hdr(msgs[0]) == (SUB << 8 | TP_NEW, MULTI)
    want = (b"\x00\x00\x00\x00"                                  # nfgenmsg: AF_UNSPEC, v0
            + b"\x12\x00\x01\x00ovs_tp_5_udp4\x00\x00\x00"       # CTA_TIMEOUT_NAME
            + b"\x06\x00\x02\x00\x00\x02\x00\x00"                # L3PROTO be16 AF_INET
            + b"\x05\x00\x03\x00\x11\x00\x00\x00"                # L4PROTO 17
            + b"\x08\x00\x05\x00\x00\x00\x00\x01"                # USE 1: the list's
            + b"\x14\x00\x04\x80"                                # DATA | NLA_F_NESTED
            + b"\x08\x00\x01\x00\x00\x00\x00\x03"                # UDP_UNREPLIED 3
            + b"\x08\x00\x02\x00\x00\x00\x00\x78")               # UDP_REPLIED: default 120
    assert msgs[0][16:] == want
    assert tracker.timeout_policies[b"ovs_tp_5_udp4"].data == [3, 120]


def test_tcp_and_sctp_data_map_to_their_states(env):
    m, p, tracker = env
    body = policy_body(b"t", AF_INET6, 6, (1, 7), (3, 99), (11, 42))
    assert errno_of(tp(m, p, TP_NEW, body)) == 0
    t = tracker.timeout_policies[b"t"]
    assert t.data[1] == 7 and t.data[0] == 7        # SYN_SENT, and index 0 takes it
    assert t.data[3] == 99 and t.data[13] == 42     # ESTABLISHED, UNACK (index 13)
    assert t.data[12] == 300                        # RETRANS: the default
    msg = acked(tp(m, p, TP_GET, name(b"t")))[0]
    data = msg[16 + 4 + 8 + 8 + 8 + 8:]
    assert data[:4] == struct.pack("=HH", 4 + 11 * 8, DATA | 0x8000)
    types = [struct.unpack_from("=H", data, 4 + 8 * i + 2)[0] for i in range(11)]
    vals = [struct.unpack_from("!I", data, 4 + 8 * i + 4)[0] for i in range(11)]
    assert types == list(range(1, 12))
    assert vals == [7, 60, 99, 120, 60, 30, 120, 10, 120, 300, 42]
    assert errno_of(tp(m, p, TP_NEW, policy_body(b"s", AF_INET, 132, (4, 5)))) == 0
    assert tracker.timeout_policies[b"s"].data == [10, 10, 3, 3, 5, 3, 3, 3, 30, 0]


def test_dump_in_creation_order_and_icmp(env):
    m, p, _ = env
    for n, l4 in ((b"b", 1), (b"a", 58), (b"c", 255)):
        assert errno_of(tp(m, p, TP_NEW, policy_body(n, AF_INET, l4))) == 0
    msgs = tp(m, p, TP_GET, flags=REQ | DUMP)
    assert struct.unpack_from("=H", msgs[-1], 4)[0] == 3          # NLMSG_DONE
    names = [x[16 + 8:16 + 8 + 1] for x in msgs[:-1]]
    assert names == [b"b", b"a", b"c"]
    # ICMP's one timeout, the namespace's default 30; generic's 600
    assert msgs[0][-12:] == b"\x0c\x00\x04\x80\x08\x00\x01\x00\x00\x00\x00\x1e"
    assert msgs[2][-4:] == be32(600)


def test_replace_updates_in_place_over_the_defaults(env):
    m, p, tracker = env
    assert errno_of(tp(m, p, TP_NEW, policy_body(b"t", AF_INET, 6, (3, 100)))) == 0
    t = tracker.timeout_policies[b"t"]
    assert errno_of(tp(m, p, TP_NEW, policy_body(b"t", AF_INET, 6, (1, 5)),
                       REQ | ACK | REPLACE)) == 0
    assert tracker.timeout_policies[b"t"] is t
    assert t.data[1] == 5 and t.data[3] == 5 * 24 * 3600         # ESTABLISHED back to default
    assert errno_of(tp(m, p, TP_NEW, policy_body(b"t", AF_INET, 6), REQ | ACK | EXCL)) == \
        errno.EEXIST
    assert errno_of(tp(m, p, TP_NEW, policy_body(b"t", AF_INET, 6))) == errno.EBUSY
    assert errno_of(tp(m, p, TP_NEW, policy_body(b"t", AF_INET, 17), REQ | ACK | REPLACE)) == \
        errno.EINVAL
    assert errno_of(tp(m, p, TP_NEW, policy_body(b"t", AF_INET6, 6), REQ | ACK | REPLACE)) == \
        errno.EINVAL


@pytest.mark.parametrize("body, err", [
    (name(b"x") + attr(L3PROTO, be16(2)) + attr(L4PROTO, b"\x11"), errno.EINVAL),   # no DATA
    (attr(L3PROTO, be16(2)) + attr(L4PROTO, b"\x11") + nest(DATA), errno.EINVAL),   # no NAME
    (policy_body(b"x", 2, 33), errno.EOPNOTSUPP),          # DCCP: no tracker in ovsdp
    (policy_body(b"x", 2, 99), errno.EOPNOTSUPP),          # falls back to generic
    (policy_body(b"x", 2, 0), errno.EOPNOTSUPP),
    (name(b"x") + attr(L3PROTO, be16(2)) + attr(L4PROTO, b"\x11")
     + nest(DATA, attr(1, b"\0\0")), errno.ERANGE),        # a short NLA_U32
    (attr(NAME, b"abc") + attr(L3PROTO, be16(2)) + attr(L4PROTO, b"\x11") + nest(DATA),
     errno.EINVAL),                                        # name without its NUL
    (policy_body(b"n" * 32, 2, 17), errno.EINVAL),         # no NUL in the first 32
    (attr(NAME, b"n" * 31 + b"\0x") + attr(L3PROTO, be16(2)) + attr(L4PROTO, b"\x11")
     + nest(DATA), errno.ERANGE),                          # longer than 31
    (name(b"x") + attr(L3PROTO, b"\x02") + attr(L4PROTO, b"\x11") + nest(DATA),
     errno.ERANGE),                                        # a short NLA_U16
])
def test_bad_new_requests(env, body, err):
    m, p, tracker = env
    assert errno_of(tp(m, p, TP_NEW, body)) == err
    assert tracker.timeout_policies == {}


def test_get_and_delete(env):
    m, p, tracker = env
    assert errno_of(tp(m, p, TP_GET, name(b"none"))) == errno.ENOENT
    assert errno_of(tp(m, p, TP_GET)) == errno.EINVAL
    assert errno_of(tp(m, p, TP_DELETE, name(b"none"))) == errno.ENOENT
    for n in (b"a", b"b", b"c"):
        assert errno_of(tp(m, p, TP_NEW, policy_body(n, AF_INET, 17))) == 0
    assert errno_of(tp(m, p, TP_DELETE, name(b"b"))) == 0
    assert list(tracker.timeout_policies) == [b"a", b"c"]
    assert errno_of(tp(m, p, TP_DELETE)) == 0                    # every unused one
    assert tracker.timeout_policies == {}


def test_defaults(env):
    m, p, tracker = env
    msgs = acked(tp(m, p, TP_DEFAULT_GET, attr(L3PROTO, be16(10)) + attr(L4PROTO, b"\x11")))
    assert hdr(msgs[0]) == (SUB << 8 | TP_DEFAULT_SET, MULTI)
    assert msgs[0][16:] == (b"\x00\x00\x00\x00" + b"\x06\x00\x02\x00\x00\x0a\x00\x00"
                            + b"\x05\x00\x03\x00\x11\x00\x00\x00" + b"\x14\x00\x04\x80"
                            + b"\x08\x00\x01\x00" + be32(30) + b"\x08\x00\x02\x00" + be32(120))
    assert errno_of(tp(m, p, TP_DEFAULT_SET, attr(L3PROTO, be16(2)) + attr(L4PROTO, b"\x11")
                       + nest(DATA, attr(2, be32(77))))) == 0
    assert tracker.udp_timeouts == [30, 77]
    assert errno_of(tp(m, p, TP_DEFAULT_SET, attr(L3PROTO, be16(2)) + attr(L4PROTO, b"\x01")
                       + nest(DATA, attr(1, be32(9))))) == 0
    assert tracker.icmp_timeout == 9
    assert errno_of(tp(m, p, TP_DEFAULT_SET, attr(L3PROTO, be16(2)) + attr(L4PROTO, b"\x01")
                       + nest(DATA))) == 0
    assert tracker.icmp_timeout == 9                             # nothing given: unchanged
    # a new policy starts from the changed defaults
    assert errno_of(tp(m, p, TP_NEW, policy_body(b"u", AF_INET, 17))) == 0
    assert tracker.timeout_policies[b"u"].data == [30, 77]
    assert errno_of(tp(m, p, TP_DEFAULT_GET, attr(L3PROTO, be16(2)))) == errno.EINVAL
    assert errno_of(tp(m, p, TP_DEFAULT_SET, attr(L3PROTO, be16(2)) + attr(L4PROTO, b"\x11"))) \
        == errno.EINVAL
    assert errno_of(tp(m, p, TP_DEFAULT_GET, attr(L3PROTO, be16(2)) + attr(L4PROTO, b"\x21"))) \
        == errno.EOPNOTSUPP


def test_net_admin_and_namespaces(env):
    m, p, tracker = env
    assert errno_of(tp(m, p, TP_NEW, policy_body(b"a", AF_INET, 17))) == 0
    user = FakePeer(portid=77, admin=False)
    m.add_peer(user)
    assert sockopt(m, user, 0x4F03, 12) == 0
    assert errno_of(tp(m, user, TP_GET, flags=REQ | DUMP)) == errno.EPERM
    other = FakePeer(portid=78)
    other.net = m.add_net(OvsNet(key="ns-tp", name="ns-tp"))
    m.add_peer(other)
    assert sockopt(m, other, 0x4F03, 12) == 0
    msgs = tp(m, other, TP_GET, flags=REQ | DUMP)
    assert len(msgs) == 1 and struct.unpack_from("=H", msgs[0], 4)[0] == 3      # empty
    assert list(tracker.timeout_policies) == [b"a"]


# ------------------------------------------- the CT action and connections
def _policy(tracker, n, l3, l4, **timeouts):
    proto = N.TIMEOUT_PROTOS[l4]
    table = proto.table()
    attrs = {table.type_of(k): v for k, v in timeouts.items()}
    t = T.TimeoutPolicy(n, l3, proto, T.nlattr_to_obj(tracker, proto, attrs, [0] * proto.size))
    tracker.timeout_policies[n] = t
    return t


def tmo(n):
    return nla(U.OVS_CT_ATTR_TIMEOUT, n + b"\0")


def installed(dp, frame, acts):
    """The actions as a flow install leaves them: validated, policies bound."""
    key = key_of(frame)
    raw = b"".join(nla(t, p) for t, p in acts)
    return set_timeouts(FA.copy_actions(raw, key), dp.conntrack, key)


def test_flow_install_binds_and_holds_the_policy(caplog):
    caplog.set_level(logging.INFO)
    dp = FakeDP()
    t = _policy(dp.conntrack, b"ovs_tp_5_udp4", AF_INET, 17, unreplied=3)
    _policy(dp.conntrack, b"v6", AF_INET6, 17)
    _policy(dp.conntrack, b"tcp", AF_INET, 6)
    ct_attrs = COMMIT + zone(5)
    clone = nla(U.OVS_ACTION_ATTR_CT, ct_attrs + tmo(b"ovs_tp_5_udp4"))
    acts = installed(dp, udp(), [(U.OVS_ACTION_ATTR_CLONE, clone),
                                 (U.OVS_ACTION_ATTR_CT, ct_attrs + tmo(b"v6")),
                                 (U.OVS_ACTION_ATTR_CT, ct_attrs + tmo(b"tcp")),
                                 (U.OVS_ACTION_ATTR_CT, ct_attrs + tmo(b"nope"))])
    infos = [acts[0][1][0][1]] + [a[1] for a in acts[1:]]
    assert infos[0].timeout_policy is t and t.use == 2           # nested in clone: bound
    assert [i.timeout_policy for i in infos[1:]] == [None, None, None]   # l3, l4, name
    assert infos[3].timeout == b"nope"                          # kept for the dump
    assert "No such timeout policy" in caplog.text
    assert "can only be used by L3 protocol number 10" in caplog.text
    assert "can only be used by L4 protocol number 6" in caplog.text
    policies = dp.conntrack.timeout_policies
    T.drop_dead_holders(policies)
    assert not t.try_del(policies)                               # EBUSY while a flow holds it
    cycle = [acts]
    cycle.append(cycle)                                          # as a flow and its mask
    del acts, infos, cycle
    T.drop_dead_holders(policies)
    assert t.use == 1 and t.try_del(policies) and b"ovs_tp_5_udp4" not in policies


def test_committed_connection_gets_the_policy_timeouts():
    dp = FakeDP()
    t = _policy(dp.conntrack, b"p", AF_INET, 17, unreplied=3, replied=7)
    commit = installed(dp, udp(), [(U.OVS_ACTION_ATTR_CT, COMMIT + zone(5) + tmo(b"p"))])
    # a lookup without the policy first, as OVS's ct(table=1) then ct(commit): the
    # connection it left on the packet is not the policy's, so the commit looks again
    k, _ = through(dp, udp(), [ct(zone(5))] + list(commit))
    assert state(k) & 0x21 == 0x21
    (conn,) = list(dp.conntrack)
    assert conn.timeout_ext is t.ext and dp.conntrack.expires(conn) == 3
    dp.now += 1
    through(dp, udp(a="10.0.0.2", b="10.0.0.1", sport=2222, dport=1111), [ct(zone(5))])
    assert dp.conntrack.expires(conn) == 3                       # replied, not yet a stream
    dp.now += 2.5
    through(dp, udp(), [ct(zone(5))])
    assert dp.conntrack.expires(conn) == 7                       # a stream: REPLIED
    # the policy deleted (no flow holds it now): the connection goes back to the defaults
    del commit
    T.drop_dead_holders(dp.conntrack.timeout_policies)
    assert t.try_del(dp.conntrack.timeout_policies)
    through(dp, udp(), [ct(zone(5))])
    assert conn.timeout_ext.timeout is None and dp.conntrack.expires(conn) == 120


def test_policies_of_other_protocols_are_not_used():
    dp = FakeDP()
    t = _policy(dp.conntrack, b"icmp", AF_INET, 1, timeout=4)
    tr = dp.conntrack
    frame = udp()
    res = tr.process(frame[14:], 2, 0, timeout_ext=t.ext)
    assert res.conn.timeout_ext is t.ext and T.timeout_lookup(res.conn) is None
    assert tr.expires(res.conn) == 30                            # UDP's default


def test_ct_action_dump_keeps_the_name():
    from ovsdp.datapath import conntrack as CT
    info = CT.parse_ct(COMMIT + tmo(b"ovs_tp_1_tcp4"), 0x0800)
    assert nla(U.OVS_CT_ATTR_TIMEOUT, b"ovs_tp_1_tcp4\0") in CT.action_to_attrs(info)
    assert nla_nest(U.OVS_ACTION_ATTR_CT, CT.action_to_attrs(info))
