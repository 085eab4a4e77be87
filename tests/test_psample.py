"""The psample family and OVS's psample action (Linux 6.11+), sans I/O.

Expected messages are built here by hand from include/uapi/linux/psample.h
and psample.c's order, not with ovsdp's encoders.
"""

import errno
import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from ovsdp import uapi as U
from ovsdp.datapath import actions as ACTS
from ovsdp.datapath import flow_netlink_actions as FA
from ovsdp.datapath import psample as PS
from ovsdp.datapath.module import Module, OvsNet
from ovsdp.datapath.skb import Skb
from ovsdp.netlink.attr import NetlinkError
from ovsdp.netlink.genl import Peer
from ovsdp.netlink.message import parse_error, split

from .test_actions import FakeDP, key_of, run

# ------------------------------------------------------------------ by hand
MULTI, REQUEST, ACK, DUMP = 0x2, 0x1, 0x4, 0x300
NESTED = 0x8000
OVS_PSAMPLE = 25
TIMESTAMP = 1_733_580_000_123_456_789


def attr(t, payload=b""):
    n = 4 + len(payload)
    return struct.pack("=HH", n, t) + payload + b"\0" * (-n % 4)


def u16(t, v):
    return attr(t, struct.pack("=H", v))


def u32(t, v):
    return attr(t, struct.pack("=I", v))


def u64(t, v):
    return attr(t, struct.pack("=Q", v))


def genl_msg(family_id, cmd, flags, seq, pid, body, version=1):
    return struct.pack("=IHHII", 20 + len(body), family_id, flags, seq, pid) + \
        struct.pack("=BBH", cmd, version, 0) + body


def sample_msg(fid, *, iif, rate, size, group, data, proto=0x0800, cookie=None, seq=0):
    """PSAMPLE_CMD_SAMPLE as psample_sample_packet() puts it for OVS."""
    body = (u16(0, iif) + u32(5, rate) + u32(2, size) + u32(3, group) + u32(4, seq)
            + u64(13, TIMESTAMP) + u16(14, proto))
    if data:
        body += attr(6, data)
    if cookie:
        body += attr(15, cookie)
    body += attr(16)                                  # SAMPLE_PROBABILITY, always from OVS
    return genl_msg(fid, 0, 0, 0, 0, body)


# ------------------------------------------------------------------ harness
class ListPeer(Peer):
    def __init__(self, portid, admin=True, net=None):
        super().__init__(portid, admin, net=net)
        self.out = []

    def send(self, data, kind="reply"):
        self.out.append(data)
        return 0

    def messages(self):
        msgs = [m for d in self.out for _, m in split(d)[0]]
        self.out.clear()
        return msgs


def sockopt(m, peer, opt, value):
    body = struct.pack("=III", U.SOL_NETLINK, opt, value)
    m.receive(peer, struct.pack("=IHHII", 16 + len(body), U.OVSDP_MSG_SOCKOPT, REQUEST | ACK,
                                1, 0) + body)
    (msg,) = peer.messages()
    return parse_error(msg)[0]


def join(m, peer, name):
    return sockopt(m, peer, U.NETLINK_ADD_MEMBERSHIP, m.psample_family.group_id(name))


def get_group(m, peer, flags=REQUEST | DUMP, seq=9):
    m.receive(peer, genl_msg(m.psample_family.id, U.PSAMPLE_CMD_GET_GROUP, flags, seq, 0, b""))
    return peer.messages()


class Vport:
    ifindex = 0x40000007           # ovsdp's virtual ifindexes: the u16 keeps the low bits
    tunnel = False


@pytest.fixture
def env():
    m = Module()
    m.psample.clock = lambda: TIMESTAMP
    listener = ListPeer(77)
    m.add_peer(listener)
    dp = FakeDP()
    dp.net = m.init_net
    dp.psample = m.psample
    return m, dp, listener


def psample(group, cookie=None, flag=NESTED):
    body = u32(1, group) + (attr(2, cookie) if cookie is not None else b"")
    return attr(OVS_PSAMPLE | flag, body)


def act(group, cookie=None):
    """The ActionList entry of a psample action."""
    return FA.copy_actions(psample(group, cookie), key_of(udp()))[0]


def udp(n=20):
    return bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02")
                 / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / Raw(b"q" * n))


def execute(dp, frame, acts):
    return run(dp, frame, acts, skb=Skb(frame, Vport()))


# ------------------------------------------------------------------ the family
def test_the_family_as_nlctrl_shows_it():
    m = Module()
    fam = m.genl.by_name["psample"]
    assert (fam.version, fam.hdrsize, fam.maxattr) == (1, 0, 16)
    assert fam.mcgrp_names == ["config", "packets"]
    (op,) = fam.ops.values()
    # a dump only, no policy, no privilege
    assert (op.cmd, op.ctrl_flags()) == (U.PSAMPLE_CMD_GET_GROUP, U.GENL_CMD_CAP_DUMP)


def test_get_group_dumps_the_namespaces_groups_as_new_group(env):
    m, _dp, _ = env
    viewer = ListPeer(5, admin=False)
    m.add_peer(viewer)
    (done,) = get_group(m, viewer)
    assert parse_error(done)[0] == 0 and struct.unpack_from("=H", done, 4)[0] == U.NLMSG_DONE
    other = m.add_net(OvsNet("ns2", name="ns2"))
    m.psample.group_get(m.init_net, 7)
    m.psample.group_get(other, 5)
    g3 = m.psample.group_get(m.init_net, 3)
    m.psample.group_get(m.init_net, 7)
    g3.seq = 11
    *groups, done = get_group(m, viewer, seq=42)
    fid = m.psample_family.id
    assert groups == [
        genl_msg(fid, 2, MULTI, 42, 5, u32(3, 7) + u32(7, 2) + u32(4, 0)),
        genl_msg(fid, 2, MULTI, 42, 5, u32(3, 3) + u32(7, 1) + u32(4, 11))]
    assert parse_error(done)[0] == 0


def test_get_group_has_no_doit(env):
    m, _dp, _ = env
    viewer = ListPeer(5, admin=False)
    m.add_peer(viewer)
    (err,) = get_group(m, viewer, flags=REQUEST | ACK)
    assert parse_error(err)[0] == errno.EOPNOTSUPP


def test_groups_coming_and_going_are_told_to_config(env):
    m, _dp, _ = env
    watcher = ListPeer(6, admin=False)
    m.add_peer(watcher)
    assert join(m, watcher, "config") == 0
    other_net = m.add_net(OvsNet("ns2", name="ns2"))
    elsewhere = ListPeer(6, admin=True, net=other_net)
    m.add_peer(elsewhere)
    assert join(m, elsewhere, "config") == 0
    ps = m.psample
    g = ps.group_get(m.init_net, 9)
    ps.group_take(g)
    ps.group_put(g)
    ps.group_put(g)
    fid = m.psample_family.id
    # created with refcount 0 (told before it is taken), destroyed at 0
    assert watcher.messages() == [
        genl_msg(fid, 2, MULTI, 0, 0, u32(3, 9) + u32(7, 0) + u32(4, 0)),
        genl_msg(fid, 3, MULTI, 0, 0, u32(3, 9) + u32(7, 0) + u32(4, 0))]
    assert elsewhere.messages() == [] and ps.groups == []


def test_only_cap_net_admin_may_join_packets(env):
    m, _dp, _ = env
    user = ListPeer(8, admin=False)
    m.add_peer(user)
    assert join(m, user, "packets") == errno.EPERM
    assert join(m, user, "config") == 0
    admin = ListPeer(9, admin=True)
    m.add_peer(admin)
    assert join(m, admin, "packets") == 0
    assert m.psample_family.has_listeners("packets", m.init_net)
    assert not m.psample_family.has_listeners("packets", OvsNet("x", name="x"))


# ------------------------------------------------------------- validation
@pytest.mark.parametrize("action,code", [
    (psample(1, flag=0), errno.EINVAL),                          # NLA_F_NESTED is missing
    (attr(OVS_PSAMPLE | NESTED), errno.EINVAL),                  # no group
    (attr(OVS_PSAMPLE | NESTED, attr(2, b"ab")), errno.EINVAL),  # a cookie but no group
    (attr(OVS_PSAMPLE | NESTED, u32(1, 1) + u32(3, 0)), errno.EINVAL),     # unknown type
    (attr(OVS_PSAMPLE | NESTED, attr(0, b"") + u32(1, 1)), errno.EINVAL),  # type 0
    (attr(OVS_PSAMPLE | NESTED, attr(1, b"\1\0")), errno.EINVAL),  # strict: not a u32
    (attr(OVS_PSAMPLE | NESTED, attr(1, bytes(8))), errno.EINVAL),
    (attr(OVS_PSAMPLE | NESTED, attr(1 | NESTED, bytes(4))), errno.EINVAL),
    (attr(OVS_PSAMPLE | NESTED, u32(1, 1) + b"\0\0"), errno.EINVAL),       # leftover
    (psample(1, bytes(17)), errno.ERANGE),                       # cookie over 16 bytes
])
def test_validation_is_the_kernels(action, code):
    with pytest.raises(NetlinkError) as e:
        FA.copy_actions(action, key_of(udp()))
    assert e.value.errno == code


@pytest.mark.parametrize("cookie", [None, b"", b"\xc0\xff\xee", bytes(range(16))])
def test_the_action_dumps_back_as_it_came_without_the_nested_flag(cookie):
    a = psample(4, cookie)
    acts = FA.copy_actions(a, key_of(udp()))
    (t, arg), = acts
    assert (t, arg.group, arg.cookie) == (OVS_PSAMPLE, 4, cookie)
    assert FA.put_actions(acts) == attr(OVS_PSAMPLE, a[4:])
    # and inside sample(), where the kernel keeps it as it came too
    nested = attr(U.OVS_ACTION_ATTR_SAMPLE, u32(1, 0x1000) + attr(2, a))
    (_, (prob, inner)), = FA.copy_actions(nested, key_of(udp()))
    assert FA.put_actions(inner) == attr(OVS_PSAMPLE, a[4:])


# --------------------------------------------------------------- execution
def test_a_sample_as_a_listener_gets_it(env):
    m, dp, listener = env
    assert join(m, listener, "packets") == 0
    frame = udp()
    err, _ = execute(dp, frame, [act(1, b"\xc0\xff\xee"), (U.OVS_ACTION_ATTR_OUTPUT, 2)])
    assert err == 0 and dp.out(2) == [frame]
    assert listener.messages() == [
        sample_msg(m.psample_family.id, iif=7, rate=0xFFFFFFFF, size=len(frame), group=1,
                   data=frame, cookie=b"\xc0\xff\xee")]
    # the group is the action's, on the stack: no group is kept, the seq stays 0
    execute(dp, frame, [act(1)])
    (again,) = listener.messages()
    assert again == sample_msg(m.psample_family.id, iif=7, rate=0xFFFFFFFF, size=len(frame),
                               group=1, data=frame)
    assert m.psample.groups == []


def test_trunc_cuts_the_sample_and_psample_ends_the_cut(env):
    m, dp, listener = env
    join(m, listener, "packets")
    frame = udp()
    execute(dp, frame, [(U.OVS_ACTION_ATTR_TRUNC, 14), act(1, b"\1"),
                        (U.OVS_ACTION_ATTR_OUTPUT, 2)])
    (msg,) = listener.messages()
    assert msg == sample_msg(m.psample_family.id, iif=7, rate=0xFFFFFFFF, size=len(frame),
                             group=1, data=frame[:14], cookie=b"\1")
    assert dp.out(2) == [frame]                # cutlen = 0 after the psample


def test_an_outer_vlan_tag_is_not_in_the_sample(env):
    m, dp, listener = env
    join(m, listener, "packets")
    frame = bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02") / Dot1Q(vlan=5)
                  / IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / Raw(b"v" * 10))
    execute(dp, frame, [act(2)])
    (msg,) = listener.messages()
    untagged = frame[:12] + frame[16:]
    assert msg == sample_msg(m.psample_family.id, iif=7, rate=0xFFFFFFFF, size=len(untagged),
                             group=2, data=untagged)


def test_inside_sample_the_rate_is_its_probability(env, monkeypatch):
    m, dp, listener = env
    join(m, listener, "packets")
    monkeypatch.setattr(ACTS.rng, "getrandbits", lambda n: 0)
    frame = udp()
    fid = m.psample_family.id
    sample = (U.OVS_ACTION_ATTR_SAMPLE, (0x40000000, (act(3, b"\xee"),)))
    err, _ = execute(dp, frame, [sample, act(4)])          # not last: restored after
    assert err == 0 and not dp.drops
    assert listener.messages() == [
        sample_msg(fid, iif=7, rate=0x40000000, size=len(frame), group=3, data=frame,
                   cookie=b"\xee"),
        sample_msg(fid, iif=7, rate=0xFFFFFFFF, size=len(frame), group=4, data=frame)]
    execute(dp, frame, [(U.OVS_ACTION_ATTR_SAMPLE, (0x1234, (act(5),)))])   # last
    (msg,) = listener.messages()
    assert msg == sample_msg(fid, iif=7, rate=0x1234, size=len(frame), group=5, data=frame)
    # not sampled: nothing
    monkeypatch.setattr(ACTS.rng, "getrandbits", lambda n: 0xFFFFFFFF)
    execute(dp, frame, [(U.OVS_ACTION_ATTR_SAMPLE, (0x1234, (act(5),)))])
    assert listener.messages() == []


def test_a_last_psample_consumes_the_packet(env):
    m, dp, listener = env
    join(m, listener, "packets")
    err, _ = execute(dp, udp(), [act(1)])
    assert err == 0 and not dp.drops and len(listener.messages()) == 1


def test_no_listener_nothing_is_built(env):
    m, dp, listener = env
    built = []
    m.psample.clock = lambda: built.append(1) or TIMESTAMP
    join(m, listener, "config")                       # not the packets group
    other = m.add_net(OvsNet("ns2", name="ns2"))
    far = ListPeer(78, net=other)
    m.add_peer(far)
    join(m, far, "packets")                           # another namespace's listener
    err, _ = execute(dp, udp(), [act(1), (U.OVS_ACTION_ATTR_OUTPUT, 2)])
    assert err == 0 and len(dp.out(2)) == 1
    assert built == [] and listener.messages() == [] and far.messages() == []
    join(m, listener, "packets")
    execute(dp, udp(), [act(1)])
    assert built == [1] and len(listener.messages()) == 1 and far.messages() == []


def test_a_huge_packet_is_cut_to_fit_the_message(env):
    m, dp, listener = env
    join(m, listener, "packets")
    frame = udp(65500 - 42)
    assert len(frame) == 65500
    execute(dp, frame, [act(1)])
    (msg,) = listener.messages()
    meta = 8 + 4 * 8 + 12 + 8                  # iif, rate/size/group/seq, timestamp, proto
    data_len = 0xFFFF - meta - 4 - 4
    assert msg == sample_msg(m.psample_family.id, iif=7, rate=0xFFFFFFFF, size=65500,
                             group=1, data=frame[:data_len])


def test_without_psample_the_action_does_nothing():
    dp = FakeDP()                               # a datapath with no psample module
    err, _ = execute(dp, udp(), [act(1), (U.OVS_ACTION_ATTR_OUTPUT, 2)])
    assert err == 0 and len(dp.out(2)) == 1


def test_tunnel_metadata_is_put_as_psample_does():
    from ovsdp.datapath import key_layout as K
    k = K.make(tun_id=0x55, tun_ipv4_src=0x0A000001, tun_ipv4_dst=0x0A000002, tun_ttl=64,
               tun_tp_dst=4789, tun_flags=K.TUN_F_KEY | K.TUN_F_CSUM, tun_proto=2)
    assert PS.tunnel_attrs(k, 2) == (
        attr(0, struct.pack("!Q", 0x55)) + attr(1, struct.pack("!I", 0x0A000001))
        + attr(2, struct.pack("!I", 0x0A000002)) + attr(4, b"\x40") + attr(6)
        + attr(10, struct.pack("!H", 4789)))


# ------------------------------------------- through the control socket
def test_over_the_socket_a_member_of_packets_gets_the_sample(daemon, dpif):
    from ovsdp import odp
    from ovsdp.client.netlink import NetlinkSocket
    from ovsdp.datapath import flow_key as F
    from ovsdp.datapath import flow_netlink_put as FNP
    from ovsdp.datapath import key_layout as K

    dpif.dp_new("ps")
    dpif.vport_new("ps", "ps1", "dummy", port_no=1)
    reader = NetlinkSocket(daemon.path + ".ro", timeout=5)     # anyone may look ...
    assert reader.genl_request("psample", U.PSAMPLE_CMD_GET_GROUP, dump=True) == []
    reader.join("psample", "config")
    with pytest.raises(OSError) as e:                          # ... but not at packets
        reader.join("psample", "packets")
    assert e.value.errno == errno.EPERM
    listener = NetlinkSocket(daemon.path, timeout=5)
    listener.join("psample", "packets")
    frame = udp()
    key = FNP.put_key(F.extract(frame, K.make(in_port=1)), F.extract(frame, K.make(in_port=1)),
                      False)
    dpif.execute("ps", frame, key, odp.parse_actions("trunc(20),psample(group=6,cookie=0xc0ffee)"))
    fid = listener.family("psample").id
    h, raw = listener.take(lambda h, raw: h.type == fid)
    ifindex = next(v.ifindex for v in daemon.module.init_net.vports_by_name.values()
                   if v.name == "ps1")
    expected = sample_msg(fid, iif=ifindex & 0xFFFF, rate=0xFFFFFFFF, size=len(frame),
                          group=6, data=frame[:20], cookie=b"\xc0\xff\xee")
    ts = 20 + 8 + 4 * 8                          # where the timestamp's payload starts
    assert raw[:ts + 4] == expected[:ts + 4] and raw[ts + 12:] == expected[ts + 12:]
    assert reader.take(lambda h, raw: True, timeout=0.2) is None   # nothing to config
    listener.close()
    reader.close()
