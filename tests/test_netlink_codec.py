"""The netlink layer without sockets: attributes, policies, framing, errors."""

import errno
import struct

import pytest

from ovsdp import uapi as U
from ovsdp.netlink import attr as A
from ovsdp.netlink.attr import NetlinkError
from ovsdp.netlink.genl import Family, GenlCore, Op, Peer
from ovsdp.netlink.message import build, build_done, build_error, parse_error, split


# ------------------------------------------------------------- encoding
def test_encode_every_attribute_type():
    assert A.nla_u8(1, 0xAB) == struct.pack("=HHB3x", 5, 1, 0xAB)
    assert A.nla_u16(2, 0xBEEF) == struct.pack("=HHH2x", 6, 2, 0xBEEF)
    assert A.nla_u32(3, 0xDEADBEEF) == struct.pack("=HHI", 8, 3, 0xDEADBEEF)
    assert A.nla_u64(4, 1 << 40) == struct.pack("=HHQ", 12, 4, 1 << 40)
    assert A.nla_s32(5, -2) == struct.pack("=HHi", 8, 5, -2)
    assert A.nla_be16(6, 0x0800) == struct.pack("=HH", 6, 6) + b"\x08\x00\0\0"
    assert A.nla_be32(7, 0x0A000001) == struct.pack("=HH", 8, 7) + b"\x0a\x00\x00\x01"
    assert A.nla_be64(8, 0x0102030405060708) == struct.pack("=HH", 12, 8) + bytes(range(1, 9))
    assert A.nla_string(9, "dp0") == struct.pack("=HH", 8, 9) + b"dp0\0"
    assert A.nla_string(9, "abcd") == struct.pack("=HH", 9, 9) + b"abcd\0\0\0\0"
    assert A.nla(10, b"\x01\x02\x03") == struct.pack("=HH", 7, 10) + b"\x01\x02\x03\0"
    assert A.nla_flag(11) == struct.pack("=HH", 4, 11)
    inner = A.nla_u32(1, 7)
    assert A.nla_nest(12, inner) == struct.pack("=HH", 12, 12) + inner
    assert A.nla_nest(12, inner, flag=True) == struct.pack("=HH", 12, 12 | U.NLA_F_NESTED) + inner
    assert A.nla_u32_array(13, [1, 2]) == struct.pack("=HHII", 12, 13, 1, 2)


def test_decode_accessors():
    assert A.get_u8(b"\x05") == 5
    assert A.get_u16(struct.pack("=H", 300)) == 300
    assert A.get_u32(struct.pack("=I", 70000)) == 70000
    assert A.get_s32(struct.pack("=i", -5)) == -5
    assert A.get_u64(struct.pack("=Q", 1 << 50)) == 1 << 50
    assert A.get_be16(b"\x86\xdd") == 0x86DD
    assert A.get_be32(b"\x0a\x00\x00\x01") == 0x0A000001
    assert A.get_be64(bytes(range(8))) == 0x0001020304050607
    assert A.get_string(b"abc\0junk") == "abc"
    assert A.get_u32_array(struct.pack("=3I", 1, 2, 3)) == [1, 2, 3]


# ------------------------------------------------------------- parsing
POLICY = {
    1: A.Policy(A.U32),
    2: A.Policy(A.NUL_STRING, 15),
    3: A.Policy(A.FLAG),
    4: A.Policy(A.NESTED),
    5: A.Policy(A.U32, min=0, max=4096),
    6: A.Policy(A.S32, min=0),
    7: A.Policy(A.UNSPEC, 14),
    8: A.Policy(A.BINARY, 16),
    9: A.Policy(A.STRING, 4),
    10: A.Policy(A.U64),
}


def test_parse_keeps_last_duplicate_and_ignores_unknown():
    buf = A.nla_u32(1, 1) + A.nla_u32(1, 2) + A.nla_u32(99, 5) + A.nla_u32(0, 9)
    assert A.parse(buf, 10, POLICY) == {1: struct.pack("=I", 2)}


def test_parse_ignores_leftover_bytes():
    buf = A.nla_u32(1, 1) + b"\x01\x02"
    assert A.parse(buf, 10, POLICY) == {1: struct.pack("=I", 1)}
    assert A.leftover(buf) == 2


def test_parse_stops_at_bad_length():
    # a header claiming more than is there ends the walk, like nla_ok()
    buf = A.nla_u32(1, 1) + struct.pack("=HH", 200, 2) + b"x"
    assert A.parse(buf, 10, POLICY) == {1: struct.pack("=I", 1)}


@pytest.mark.parametrize("payload,err", [
    (b"\x01\x02", errno.ERANGE),               # u32 too short
])
def test_u32_too_short(payload, err):
    with pytest.raises(NetlinkError) as e:
        A.parse(A.nla(1, payload), 10, POLICY)
    assert e.value.errno == err
    assert e.value.offset == 0


def test_u32_longer_is_accepted_like_liberal_parsing():
    tb = A.parse(A.nla(1, struct.pack("=II", 7, 8)), 10, POLICY)
    assert A.get_u32(tb[1]) == 7


def test_nul_string_rules():
    assert A.get_string(A.parse(A.nla_string(2, "x" * 15), 10, POLICY)[2]) == "x" * 15
    # 16 characters: no NUL within IFNAMSIZ bytes -> EINVAL, as the kernel says
    with pytest.raises(NetlinkError) as e:
        A.parse(A.nla_string(2, "x" * 16), 10, POLICY)
    assert e.value.errno == errno.EINVAL
    # a NUL early but a long attribute -> ERANGE
    with pytest.raises(NetlinkError) as e:
        A.parse(A.nla(2, b"ab\0" + b"y" * 20 + b"\0"), 10, POLICY)
    assert e.value.errno == errno.ERANGE
    with pytest.raises(NetlinkError) as e:
        A.parse(A.nla(2, b"abc"), 10, POLICY)          # no NUL
    assert e.value.errno == errno.EINVAL
    with pytest.raises(NetlinkError) as e:
        A.parse(A.nla(2, b""), 10, POLICY)
    assert e.value.errno == errno.EINVAL


def test_string_and_binary_and_unspec_lengths():
    assert A.parse(A.nla(9, b"abcd"), 10, POLICY)[9] == b"abcd"
    with pytest.raises(NetlinkError):
        A.parse(A.nla(9, b"abcde"), 10, POLICY)
    assert A.parse(A.nla(8, b"x" * 16), 10, POLICY)[8] == b"x" * 16
    with pytest.raises(NetlinkError):
        A.parse(A.nla(8, b"x" * 17), 10, POLICY)
    with pytest.raises(NetlinkError) as e:
        A.parse(A.nla(7, b"x" * 13), 10, POLICY)
    assert e.value.errno == errno.ERANGE


def test_flag_with_payload_is_erange():
    assert 3 in A.parse(A.nla_flag(3), 10, POLICY)
    with pytest.raises(NetlinkError) as e:
        A.parse(A.nla(3, b"\x01"), 10, POLICY)
    assert e.value.errno == errno.ERANGE


def test_nested_minimum():
    assert A.parse(A.nla(4, b""), 10, POLICY)[4] == b""
    with pytest.raises(NetlinkError):
        A.parse(A.nla(4, b"\x01\x02"), 10, POLICY)


def test_ranges():
    assert A.parse(A.nla_u32(5, 4096), 10, POLICY)
    with pytest.raises(NetlinkError) as e:
        A.parse(A.nla_u32(5, 4097), 10, POLICY)
    assert e.value.errno == errno.ERANGE
    assert e.value.msg == "integer out of range"
    with pytest.raises(NetlinkError):
        A.parse(A.nla_s32(6, -1), 10, POLICY)


def test_error_offset_counts_from_base():
    buf = A.nla_u32(1, 1) + A.nla(10, b"\0" * 4)
    with pytest.raises(NetlinkError) as e:
        A.parse(buf, 10, POLICY, base=20)
    assert e.value.offset == 28


# ------------------------------------------------------------- framing
def test_split_multi_message_datagram():
    m1 = build(0x20, U.NLM_F_REQUEST, 1, 0, b"abc")     # 19 bytes, padded to 20
    m2 = build(0x21, U.NLM_F_REQUEST, 2, 0, b"")
    data = m1 + b"\0" + m2
    msgs, consumed = split(data)
    assert [(h.type, h.seq) for h, _ in msgs] == [(0x20, 1), (0x21, 2)]
    assert consumed == len(data)


def test_split_stops_at_garbage():
    data = build(0x20, U.NLM_F_REQUEST, 1, 0, b"") + struct.pack("=IHHII", 100, 0, 0, 0, 0)
    msgs, consumed = split(data)
    assert len(msgs) == 1 and consumed == 16


def test_error_and_ack_layout():
    req = build(0x20, U.NLM_F_REQUEST | U.NLM_F_ACK, 7, 0, b"payload!")
    ack = build_error(req, 0, 42)
    assert ack == struct.pack("=IHHII", 36, U.NLMSG_ERROR, U.NLM_F_CAPPED, 7, 42) \
        + struct.pack("=i", 0) + req[:16]
    err = build_error(req, errno.EINVAL, 42, "bad thing", offset=20)
    code, text, off = parse_error(err)
    assert (code, text, off) == (errno.EINVAL, "bad thing", 20)
    h = struct.unpack_from("=IHHII", err)
    assert h[2] == U.NLM_F_ACK_TLVS
    # the whole request is echoed after the error code
    assert err[20:20 + len(req)] == req
    capped = build_error(req, errno.EINVAL, 42, cap_ack=True, ext_ack=False)
    assert len(capped) == 36 and parse_error(capped) == (errno.EINVAL, None, None)


def test_done_layout():
    assert build_done(9, 5) == struct.pack("=IHHIIi", 20, U.NLMSG_DONE, U.NLM_F_MULTI, 9, 5, 0)
    assert parse_error(build_done(9, 5, errno.ENODEV, "gone"))[:2] == (errno.ENODEV, "gone")


# ------------------------------------------------------------- genl core
class ListPeer(Peer):
    def __init__(self, portid=100, net_admin=True):
        super().__init__(portid, net_admin)
        self.out = []

    def send(self, data, kind="reply"):
        self.out.append(data)
        return 0


def _core_with_family():
    core = GenlCore()
    fam = Family("test_fam", 3, 2, {1: A.Policy(A.U32)}, hdrsize=4, mcgrps=["test_grp"])
    seen = []

    def doit(req):
        seen.append(req)

    def dumpit(req):
        for i in range(200):
            yield fam.message(1, U.NLM_F_MULTI, req.seq, req.portid, b"\0\0\0\0" + A.nla_u32(1, i)
                              + A.nla(2, b"x" * 100))
    fam.add_op(Op(1, U.GENL_UNS_ADMIN_PERM, doit=doit, dumpit=dumpit))
    core.register(fam)
    return core, fam, seen


def test_family_ids_and_groups_like_linux():
    core, fam, _ = _core_with_family()
    assert core.ctrl.id == 0x10
    assert core.ctrl.group_id("notify") == 0x10
    assert fam.id == 0x13
    assert fam.group_id() == 2


def test_unknown_family_command_and_permissions():
    core, fam, seen = _core_with_family()
    peer = ListPeer()
    from ovsdp.netlink.message import build_genl
    core.receive(peer, build_genl(0x7777, 1, 1, U.NLM_F_REQUEST, 1, 0, b""))
    assert parse_error(peer.out.pop())[0] == errno.ENOENT
    core.receive(peer, build_genl(fam.id, 9, 1, U.NLM_F_REQUEST, 2, 0, b"\0" * 4))
    assert parse_error(peer.out.pop())[0] == errno.EOPNOTSUPP
    core.receive(peer, build_genl(fam.id, 1, 1, U.NLM_F_REQUEST, 3, 0, b"\0\0"))
    assert parse_error(peer.out.pop())[0] == errno.EINVAL        # short family header
    weak = ListPeer(net_admin=False)
    core.receive(weak, build_genl(fam.id, 1, 1, U.NLM_F_REQUEST, 4, 0, b"\0" * 4))
    assert parse_error(weak.out.pop())[0] == errno.EPERM
    core.receive(peer, build_genl(fam.id, 1, 1, U.NLM_F_REQUEST | U.NLM_F_ACK, 5, 0,
                                  b"\0" * 4 + A.nla_u32(1, 3)))
    assert parse_error(peer.out.pop())[0] == 0
    assert seen[-1].seq == 5 and A.get_u32(seen[-1].attrs[1]) == 3


def test_non_request_and_control_messages():
    core, _, _ = _core_with_family()
    peer = ListPeer()
    core.receive(peer, build(0x13, 0, 1, 0, b""))            # not a request: ignored
    assert peer.out == []
    core.receive(peer, build(U.NLMSG_NOOP, U.NLM_F_REQUEST | U.NLM_F_ACK, 2, 0, b""))
    assert parse_error(peer.out.pop())[0] == 0


def test_dump_spans_several_datagrams_then_done():
    core, fam, _ = _core_with_family()
    peer = ListPeer()
    from ovsdp.netlink.message import build_genl
    core.receive(peer, build_genl(fam.id, 1, 1, U.NLM_F_REQUEST | U.NLM_F_DUMP, 8, 0, b"\0" * 4))
    assert len(peer.out) > 2
    seen = []
    for dgram in peer.out[:-1]:
        assert len(dgram) <= peer.dump_size
        msgs, _ = split(dgram)
        for h, raw in msgs:
            assert h.flags & U.NLM_F_MULTI and h.seq == 8 and h.pid == 100
            seen.append(A.get_u32(dict((t, p) for t, p, _ in A.iter_attrs(raw[24:]))[1]))
    assert seen == list(range(200))
    done, _ = split(peer.out[-1])
    assert done[0][0].type == U.NLMSG_DONE and parse_error(done[0][1])[0] == 0


def test_multicast_membership_and_echo():
    core, fam, _ = _core_with_family()
    a, b = ListPeer(1), ListPeer(2)
    core.join(a, fam.group_id())
    core.join(b, fam.group_id())
    with pytest.raises(NetlinkError):
        core.join(a, 999)

    class R:
        peer = a
        hdr = type("H", (), {"flags": U.NLM_F_ECHO})()
    core.notify(fam, R, b"note")
    assert a.out == [b"note"] and b.out == [b"note"]    # a: echo only, not twice
    core.forget(b)
    core.multicast(fam.group_id(), b"again", a.net)
    assert b.out == [b"note"] and a.out[-1] == b"again"


def test_multicast_stays_in_the_namespace_of_the_request():
    """genl_notify() multicasts in genl_info_net(): a member whose socket is
    in another namespace hears nothing; the echo still reaches the sender."""
    core, fam, _ = _core_with_family()
    here, there = object(), object()
    a, b, c = ListPeer(1), ListPeer(2), ListPeer(1)
    a.net = b.net = here
    c.net = there                        # the same port id, another namespace
    for p in (a, b, c):
        core.join(p, fam.group_id())

    class R:
        peer = a
        hdr = type("H", (), {"flags": 0})()
    core.notify(fam, R, b"note")
    assert a.out == [b"note"] and b.out == [b"note"] and c.out == []
    core.multicast(fam.group_id(), b"there", there)
    assert c.out == [b"there"] and b.out == [b"note"]
