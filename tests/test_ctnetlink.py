"""ctnetlink sans I/O: the transport's protocol option, nfnetlink's dispatch,
the byte layout of entries as Linux 6.x emits them, dump / get / delete /
flush / statistics, and the errno of bad requests.

The expected bytes are written out by hand from the kernel's headers
(nfnetlink.h, nfnetlink_conntrack.h: the numbers are literals here, not the
uapi module's names), so that a wrong table entry fails a test.
"""

import errno
import struct

import pytest

from ovsdp.client.conntrack import parse_entry
from ovsdp.datapath import nf_conntrack_netlink as CTNL
from ovsdp.datapath.module import Module
from ovsdp.datapath.nf_conntrack import Conn, Tuple
from ovsdp.datapath.nf_conntrack_tcp import TcpState
from ovsdp.netlink.genl import Peer
from ovsdp.netlink.message import NLMSGHDR, parse_error, split

NLA_F_NESTED = 0x8000
IPS_SEEN_REPLY, IPS_ASSURED, IPS_CONFIRMED = 2, 4, 8
NFNL_CT = 1 << 8                # NFNL_SUBSYS_CTNETLINK << 8
CT_NEW, CT_GET, CT_DELETE, CT_CTRZERO, CT_STATS_CPU, CT_STATS, CT_DYING, CT_UNCONF = range(8)
DUMP = 0x300
REQ, ACK = 1, 4
A, B, C = 0xC6120001, 0xC6120002, 0xC6120003          # 198.18.0.x


# ------------------------------------------------------------------ helpers
def attr(t, payload):
    """One attribute, by hand: nla_len, nla_type, payload, padding."""
    n = 4 + len(payload)
    return struct.pack("=HH", n, t) + payload + b"\0" * (-n % 4)


def nest(t, *parts):
    return attr(t | NLA_F_NESTED, b"".join(parts))


def be16(v):
    return struct.pack("!H", v)


def be32(v):
    return struct.pack("!I", v)


class FakePeer(Peer):
    def __init__(self, portid=4242, admin=True):
        super().__init__(portid, admin)
        self.out = []

    def send(self, data, kind="reply"):
        self.out.append(data)
        return 0

    def messages(self):
        msgs = [m for d in self.out for _, m in split(d)[0]]
        self.out.clear()
        return msgs


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def env():
    m = Module()
    clock = Clock()
    m.init_net.conntrack._clock = clock
    m.init_net.conntrack.now = clock.t
    p = FakePeer()
    m.add_peer(p)
    assert sockopt(m, p, 0x4F03, 12) == 0
    return m, p, m.init_net.conntrack


def sockopt(m, p, opt, value, level=270):
    body = struct.pack("=III", level, opt, value)
    m.receive(p, NLMSGHDR.pack(16 + len(body), 0x0F, REQ | ACK, 99, 0) + body)
    msgs = p.messages()
    assert len(msgs) == 1 and struct.unpack_from("=H", msgs[0], 4)[0] == 2
    return parse_error(msgs[0])[0]


def request(m, p, msg_type, flags=REQ, body=b"", family=2, version=0, seq=7, subsys=1):
    data = struct.pack("!BBH", family, version, 0) + body
    m.receive(p, NLMSGHDR.pack(16 + len(data), subsys << 8 | msg_type, flags, seq, 0) + data)
    return p.messages()


def errno_of(msgs):
    assert msgs and struct.unpack_from("=H", msgs[-1], 4)[0] in (2, 3), msgs
    return parse_error(msgs[-1])[0]


def entries(msgs):
    return [m for m in msgs if struct.unpack_from("=H", m, 4)[0] == NFNL_CT | CT_NEW]


def add_conn(ct, orig, zone=0, status=IPS_CONFIRMED | IPS_SEEN_REPLY, mark=0, labels=0,
             timeout=30, reply=None):
    c = Conn(zone, orig, reply or orig.invert(), ct.now)
    c.status, c.mark, c.labels = status, mark, labels
    c.timeout = ct.now + timeout
    ct._insert(c)
    return c


UDP = Tuple(2, A, B, 17, 40000, 53)
ICMP = Tuple(2, A, C, 1, icmp_id=0x1234, icmp_type=8, icmp_code=0)
V6 = Tuple(10, 0xFD000000000000000000000000000001, 0xFD000000000000000000000000000002, 17,
           1000, 2000)


def hand_tuple_v4_ports(src, dst, proto, sport, dport):
    ip = nest(1, attr(1, be32(src)), attr(2, be32(dst)))
    pr = nest(2, attr(1, bytes([proto])), attr(2, be16(sport)), attr(3, be16(dport)))
    return ip + pr


# ------------------------------------------------------------------ layout
def test_udp_entry_is_byte_exact(env):
    m, p, ct = env
    c = add_conn(ct, UDP, zone=7, mark=5, timeout=29.7)
    body = (nest(1, hand_tuple_v4_ports(A, B, 17, 40000, 53)) +
            nest(2, hand_tuple_v4_ports(B, A, 17, 53, 40000)) +
            attr(18, be16(7)) +                          # CTA_ZONE
            attr(3, be32(IPS_CONFIRMED | IPS_SEEN_REPLY)) +   # CTA_STATUS
            attr(8, be32(5)) +                           # CTA_MARK
            attr(12, be32(CTNL.ct_id(c))) +              # CTA_ID
            attr(11, be32(1)) +                          # CTA_USE
            attr(7, be32(29)))                           # CTA_TIMEOUT (seconds, floor)
    want_payload = struct.pack("!BBH", 2, 0, 0) + body
    want = NLMSGHDR.pack(16 + len(want_payload), 0x0100, 0x02 | 0x20, 7, 4242) + want_payload
    msgs = request(m, p, CT_GET, REQ | DUMP)
    assert entries(msgs) == [want]
    # the dump of every family is not filtered: NLM_F_MULTI only
    msgs = request(m, p, CT_GET, REQ | DUMP, family=0)
    assert struct.unpack_from("=H", entries(msgs)[0], 6)[0] == 0x02
    assert entries(msgs)[0][20:] == body


def test_icmp_and_tcp_and_v6_and_labels_layouts(env):
    m, p, ct = env
    c = add_conn(ct, ICMP)
    ip = nest(1, attr(1, be32(A)), attr(2, be32(C)))
    pr = nest(2, attr(1, b"\x01"), attr(4, be16(0x1234)), attr(5, b"\x08"), attr(6, b"\x00"))
    assert CTNL.dump_tuple(c.tuple[0]) == ip + pr
    rip = nest(1, attr(1, be32(C)), attr(2, be32(A)))
    rpr = nest(2, attr(1, b"\x01"), attr(4, be16(0x1234)), attr(5, b"\x00"), attr(6, b"\x00"))
    assert CTNL.dump_tuple(c.tuple[1]) == rip + rpr

    v6 = add_conn(ct, V6)
    ip6 = nest(1, attr(3, V6.src.to_bytes(16, "big")), attr(4, V6.dst.to_bytes(16, "big")))
    pr6 = nest(2, attr(1, b"\x11"), attr(2, be16(1000)), attr(3, be16(2000)))
    assert CTNL.dump_tuple(v6.tuple[0]) == ip6 + pr6
    msg = CTNL.fill_info(v6, ct, 1, 1)
    assert msg[16:20] == b"\x0a\x00\x00\x00"             # nfgen_family AF_INET6

    tcp = add_conn(ct, Tuple(2, A, B, 6, 5555, 80), labels=0x0102 << 112 | 0xFF)
    st = tcp.proto = TcpState()
    st.state = 3                                          # ESTABLISHED
    st.seen[0].td_scale, st.seen[0].flags = 7, 0x23
    st.seen[1].td_scale, st.seen[1].flags = 9, 0x01
    info = nest(4, nest(1, attr(1, b"\x03"), attr(2, b"\x07"), attr(3, b"\x09"),
                        attr(4, b"\x23\x00"), attr(5, b"\x01\x00")))
    assert CTNL.dump_protoinfo(tcp) == info
    msg = CTNL.fill_info(tcp, ct, 1, 1)
    labels = attr(22, bytes([1, 2]) + bytes(13) + b"\xff")
    assert msg.endswith(attr(7, be32(30)) + info + labels)
    assert CTNL.dump_protoinfo(c) == b""                  # ICMP: no CTA_PROTOINFO


def test_counters_only_with_accounting_and_ctrzero_zeroes_them(env):
    m, p, ct = env
    c = add_conn(ct, UDP)
    c.counters = [[3, 300], [2, 120]]
    assert b"".join(entries(request(m, p, CT_GET, REQ | DUMP))).find(
        struct.pack("=H", 9 | NLA_F_NESTED)) < 0
    ct.acct = True
    counters = (nest(9, attr(1, struct.pack("!Q", 3)), attr(2, struct.pack("!Q", 300))) +
                nest(10, attr(1, struct.pack("!Q", 2)), attr(2, struct.pack("!Q", 120))))
    assert entries(request(m, p, CT_GET, REQ | DUMP))[0].endswith(counters)
    assert entries(request(m, p, CT_CTRZERO, REQ | DUMP))[0].endswith(counters)
    assert c.counters == [[0, 0], [0, 0]]


def test_stats_messages(env):
    m, p, ct = env
    add_conn(ct, UDP)
    ct.stats.found, ct.stats.insert, ct.stats.drop = 4, 1, 2
    msgs = request(m, p, CT_STATS_CPU, REQ | DUMP, family=0)
    assert len(msgs) == 2 and struct.unpack_from("=H", msgs[1], 4)[0] == 3     # + NLMSG_DONE
    vals = [4, 0, 1, 0, 2, 0, 0, 0, 0, 0]                 # FOUND INVALID INSERT ... CHAIN_TOOLONG
    types = [2, 4, 8, 9, 10, 11, 12, 13, 14, 15]
    body = struct.pack("!BBH", 0, 0, 0) + b"".join(
        attr(t, be32(v)) for t, v in zip(types, vals, strict=True))
    assert msgs[0] == NLMSGHDR.pack(16 + len(body), 0x0104, 0x02, 7, 4242) + body
    assert request(m, p, CT_STATS_CPU, REQ) == []        # not a dump: nothing, no error
    msgs = request(m, p, CT_STATS, REQ | ACK, family=0)
    body = struct.pack("!BBH", 0, 0, 0) + attr(1, be32(1)) + attr(2, be32(65536))
    assert msgs[0] == NLMSGHDR.pack(16 + len(body), 0x0105, 0x02, 7, 4242) + body
    assert errno_of(msgs) == 0


# ----------------------------------------------------------- get / filters
def test_get_one_tuple_by_orig_or_reply(env):
    m, p, ct = env
    add_conn(ct, UDP, zone=3)
    orig = nest(1, hand_tuple_v4_ports(A, B, 17, 40000, 53))
    reply = nest(2, hand_tuple_v4_ports(B, A, 17, 53, 40000))
    msgs = request(m, p, CT_GET, REQ | ACK, orig + attr(18, be16(3)))
    assert len(entries(msgs)) == 1 and errno_of(msgs) == 0
    assert struct.unpack_from("=H", msgs[0], 6)[0] == 0x02      # NLM_F_MULTI, as Linux
    assert attr(11, be32(2)) in msgs[0]                         # CTA_USE: find_get's ref
    assert len(entries(request(m, p, CT_GET, REQ, reply + attr(18, be16(3))))) == 1
    assert errno_of(request(m, p, CT_GET, REQ, orig)) == errno.ENOENT          # zone 0
    assert errno_of(request(m, p, CT_GET, REQ)) == errno.EINVAL                # no tuple


def test_dump_filters(env):
    m, p, ct = env
    add_conn(ct, UDP, zone=1, mark=0x10)
    add_conn(ct, ICMP, zone=2, mark=0x11, status=IPS_CONFIRMED)
    add_conn(ct, V6, zone=1, mark=0x20)

    def dumped(body=b"", family=0):
        return sorted(parse_entry(e).zone
                      for e in entries(request(m, p, CT_GET, REQ | DUMP, body, family)))

    def n(body=b"", family=0):
        return len(entries(request(m, p, CT_GET, REQ | DUMP, body, family)))

    assert n() == 3 and n(family=2) == 2 and n(family=10) == 1
    assert n(attr(18, be16(1))) == 2 and n(attr(18, be16(2))) == 1
    assert n(attr(8, be32(0x10)) + attr(21, be32(0xF0))) == 2
    assert n(attr(8, be32(0x10)) + attr(21, be32(0xFF))) == 1
    assert n(attr(8, be32(0x10))) == 1                      # mask all ones without CTA_MARK_MASK
    assert n(attr(3, be32(IPS_SEEN_REPLY))) == 2
    assert n(attr(3, be32(0)) + attr(26, be32(IPS_SEEN_REPLY))) == 1
    # CTA_FILTER: original source address and protocol
    filt = nest(25, attr(1, struct.pack("=I", 1 << 0 | 1 << 3)))
    orig = nest(1, nest(1, attr(1, be32(A))), nest(2, attr(1, b"\x01")))
    assert n(filt + orig, family=2) == 1
    assert dumped() == [1, 1, 2]


def test_dump_runs_in_parts_and_skips_expired(env):
    m, p, ct = env
    for i in range(300):
        add_conn(ct, Tuple(2, A, B, 17, 1000 + i, 53), timeout=10 if i % 2 else 100)
    ct._clock.t += 50
    assert len(entries(request(m, p, CT_GET, REQ | DUMP))) == 150


# -------------------------------------------------------- delete / flush
def test_delete_by_tuple_and_id(env):
    m, p, ct = env
    c = add_conn(ct, UDP)
    orig = nest(1, hand_tuple_v4_ports(A, B, 17, 40000, 53))
    assert errno_of(request(m, p, CT_DELETE, REQ | ACK, orig + attr(12, be32(CTNL.ct_id(c) ^ 1)))) \
        == errno.ENOENT
    assert len(ct) == 1
    assert errno_of(request(m, p, CT_DELETE, REQ | ACK, orig + attr(12, be32(CTNL.ct_id(c))))) == 0
    assert len(ct) == 0
    assert errno_of(request(m, p, CT_DELETE, REQ | ACK, orig)) == errno.ENOENT


def test_flush_all_by_family_and_zone(env):
    m, p, ct = env
    for z in (0, 1):
        add_conn(ct, UDP, zone=z)
        add_conn(ct, V6, zone=z)
    # version 0: the family does not filter a flush (conntrack -F sends AF_INET)
    assert errno_of(request(m, p, CT_DELETE, REQ | ACK, attr(18, be16(1)), family=2)) == 0
    assert len(ct) == 2 and all(c.zone == 0 for c in ct)
    assert errno_of(request(m, p, CT_DELETE, REQ | ACK, family=10, version=1)) == 0
    assert [c.tuple[0].l3num for c in ct] == [2]
    assert errno_of(request(m, p, CT_DELETE, REQ | ACK, family=2)) == 0
    assert len(ct) == 0


def test_dying_and_unconfirmed(env):
    m, p, ct = env
    add_conn(ct, UDP)
    for t in (CT_DYING, CT_UNCONF):
        msgs = request(m, p, t, REQ | DUMP)
        assert len(msgs) == 1 and errno_of(msgs) == 0                 # NLMSG_DONE only
        assert errno_of(request(m, p, t, REQ)) == errno.EOPNOTSUPP


CREATE, EXCL = 0x400, 0x200
ORIG = nest(1, hand_tuple_v4_ports(A, B, 17, 40000, 53))
REPLY = nest(2, hand_tuple_v4_ports(B, A, 17, 53, 40000))


def test_new_changes_a_connection(env):
    m, p, ct = env
    c = add_conn(ct, UDP, mark=0xF0F0, labels=0xFF)
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, ORIG + attr(8, be32(0x1)) +
                            attr(21, be32(0x0F)))) == 0
    assert c.mark == 0xF0F1                                     # (mark & ~mask) ^ value
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, REPLY + attr(8, be32(7)))) == 0
    assert c.mark == 7                                          # no mask: replaced
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, ORIG + attr(7, be32(500)))) == 0
    assert ct.expires(c) == 500
    st = IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED | 0x10     # SRC_NAT is ignored
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, ORIG + attr(3, be32(st)))) == 0
    assert c.status == IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED
    for bad in (IPS_CONFIRMED | IPS_ASSURED, IPS_SEEN_REPLY | IPS_ASSURED):
        assert errno_of(request(m, p, CT_NEW, REQ | ACK, ORIG + attr(3, be32(bad)))) == errno.EBUSY
    labels = bytes(range(1, 9))
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, ORIG + attr(22, labels))) == 0
    assert c.labels == int.from_bytes(labels + bytes(8), "big")
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, ORIG + attr(22, bytes(3)))) == errno.EINVAL
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, ORIG + attr(22, bytes(4)) +
                            attr(23, bytes(8)))) == errno.EINVAL
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, ORIG + nest(6))) == errno.EOPNOTSUPP
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, ORIG + nest(5, attr(1, b"ftp\0")))) \
        == errno.EOPNOTSUPP
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, ORIG + nest(5, attr(1, b"\0")))) == 0
    assert errno_of(request(m, p, CT_NEW, REQ | ACK | EXCL, ORIG)) == errno.EEXIST
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, nest(1, hand_tuple_v4_ports(
        A, B, 17, 1, 2)))) == errno.ENOENT
    # conntrack 1.4.7's -U without -f: AF_UNSPEC tuples are EOPNOTSUPP, as on Linux
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, ORIG, family=0)) == errno.EOPNOTSUPP


def test_new_tcp_protoinfo(env):
    m, p, ct = env
    c = add_conn(ct, Tuple(2, A, B, 6, 1, 2))
    c.proto = TcpState()
    info = nest(4, nest(1, attr(1, b"\x03"), attr(4, b"\x01\x01"), attr(5, b"\x01\xff"),
                        attr(2, b"\x05"), attr(3, b"\x06")))
    orig = nest(1, hand_tuple_v4_ports(A, B, 6, 1, 2))
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, orig + info)) == 0
    assert c.proto.state == 3 and c.proto.seen[0].flags == 1 and c.proto.seen[1].flags == 1
    assert (c.proto.seen[0].td_scale, c.proto.seen[1].td_scale) == (5, 6)
    bad = nest(4, nest(1, attr(1, b"\x0a")))
    assert errno_of(request(m, p, CT_NEW, REQ | ACK, orig + bad)) == errno.EINVAL


def test_new_creates_a_connection(env):
    m, p, ct = env
    assert errno_of(request(m, p, CT_NEW, REQ | ACK | CREATE, ORIG)) == errno.EINVAL
    assert errno_of(request(m, p, CT_NEW, REQ | ACK | CREATE, ORIG + REPLY)) == errno.EINVAL
    body = ORIG + REPLY + attr(7, be32(60)) + attr(8, be32(9)) + attr(18, be16(4)) + \
        attr(3, be32(IPS_CONFIRMED | IPS_ASSURED)) + attr(22, b"\x01" * 16)
    assert errno_of(request(m, p, CT_NEW, REQ | ACK | CREATE | EXCL, body)) == 0
    (e,) = entries(request(m, p, CT_GET, REQ | DUMP))
    e = parse_entry(e)
    assert (e.zone, e.mark, e.timeout, e.status) == (4, 9, 60, IPS_CONFIRMED | IPS_ASSURED)
    assert e.labels == b"\x01" * 16 and e.reply.sport == 53
    assert ct.stats.insert == 1
    assert errno_of(request(m, p, CT_NEW, REQ | ACK | CREATE | EXCL, body)) == errno.EEXIST
    other = nest(2, hand_tuple_v4_ports(B, A, 6, 53, 40000))
    assert errno_of(request(m, p, CT_NEW, REQ | ACK | CREATE, nest(1, hand_tuple_v4_ports(
        A, B, 17, 1, 2)) + other + attr(7, be32(1)))) == errno.EINVAL     # protocols differ
    assert errno_of(request(m, p, CT_NEW, REQ | ACK | CREATE, ORIG + REPLY + attr(7, be32(1)) +
                            attr(3, be32(IPS_ASSURED)))) == errno.EBUSY   # not CONFIRMED


# ---------------------------------------------------------- bad requests
@pytest.mark.parametrize("body, err", [
    (nest(1, nest(2, attr(1, b"\x11"))), errno.EINVAL),                       # no CTA_TUPLE_IP
    (nest(1, nest(1, attr(1, be32(A)))), errno.EINVAL),                      # no dst, no proto
    (nest(1, nest(1, attr(1, be32(A)), attr(2, be32(B))), nest(2, attr(2, be16(1)))),
     errno.EINVAL),                                                          # no CTA_PROTO_NUM
    (nest(1, nest(1, attr(1, be32(A)), attr(2, be32(B))), nest(2, attr(1, b"\x11"))),
     errno.EINVAL),                                                          # no ports
    (nest(1, nest(1, attr(1, b"\x01\x02"), attr(2, be32(B)))), errno.ERANGE),  # short address
    (nest(1, nest(1, attr(1, be32(A)), attr(2, be32(B))),
          nest(2, attr(1, b"\x01"), attr(4, be16(1)), attr(5, b"\x03"), attr(6, b"\x00"))),
     errno.EINVAL),                                                          # ICMP type 3
    (attr(3, b"\x00\x01"), errno.ERANGE),                                    # short CTA_STATUS
    (attr(18, b"\x01"), errno.ERANGE),                                       # short CTA_ZONE
    (attr(22, bytes(17)), errno.ERANGE),                                     # long CTA_LABELS
    (attr(27, be32(1)), errno.EINVAL),                                       # NLA_REJECT
    (nest(1, b"\x01\x00"), errno.ERANGE),                                    # nest of 2 bytes
])
def test_bad_get_requests(env, body, err):
    m, p, ct = env
    add_conn(ct, UDP)
    assert errno_of(request(m, p, CT_GET, REQ, body)) == err


@pytest.mark.parametrize("body, err", [
    (attr(21, be32(1)), errno.EINVAL),                       # CTA_MARK_MASK alone
    (attr(26, be32(1)), errno.EINVAL),                       # CTA_STATUS_MASK alone
    (attr(3, be32(0)), errno.EINVAL),                        # status mask 0
    (nest(25, attr(1, struct.pack("=I", 1 << 12))), errno.EOPNOTSUPP),   # unknown filter flag
    (nest(25, attr(1, struct.pack("=I", 1))), errno.EINVAL),  # flags without CTA_TUPLE_ORIG
    (nest(25, attr(2, struct.pack("=I", 1 << 4))) + nest(2, nest(1)),
     errno.EINVAL),                                          # a port without the protocol
])
def test_bad_dump_filters_fail_before_the_dump(env, body, err):
    m, p, ct = env
    msgs = request(m, p, CT_GET, REQ | DUMP, body)
    assert len(msgs) == 1 and struct.unpack_from("=H", msgs[0], 4)[0] == 2
    assert errno_of(msgs) == err


def test_nfnetlink_dispatch_errors(env):
    m, p, ct = env
    assert errno_of(request(m, p, 1, REQ, subsys=9)) == errno.EINVAL          # no subsystem
    assert errno_of(request(m, p, 8, REQ)) == errno.EINVAL                    # no message 8
    # a message too short for nfgenmsg is accepted and does nothing
    m.receive(p, NLMSGHDR.pack(18, NFNL_CT | CT_GET, REQ | ACK, 5, 0) + b"\x02\x00")
    assert errno_of(p.messages()) == 0
    # a batch: EOPNOTSUPP
    assert errno_of(request(m, p, 0x10, REQ, subsys=0)) == errno.EOPNOTSUPP
    # stats take no attributes: any is ignored (maxattr 0)
    assert errno_of(request(m, p, CT_STATS, REQ | ACK, attr(1, be32(1)))) == 0
    # only one dump at a time
    for i in range(2000):
        add_conn(ct, Tuple(2, A, B, 17, 1000 + i, 53))
    p.send = lambda data, kind="reply": (p.out.append(data), errno.EAGAIN if kind == "dump"
                                         else 0)[1]
    request(m, p, CT_GET, REQ | DUMP)
    assert errno_of(request(m, p, CT_GET, REQ | DUMP)) == errno.EBUSY


def test_every_request_needs_net_admin(env):
    m, _, ct = env
    ro = FakePeer(555, admin=False)
    m.add_peer(ro)
    assert sockopt(m, ro, 0x4F03, 12) == 0
    add_conn(ct, UDP)
    for t, flags in ((CT_GET, REQ | DUMP), (CT_STATS, REQ), (CT_DELETE, REQ)):
        assert errno_of(request(m, ro, t, flags)) == errno.EPERM
    assert len(ct) == 1
    assert sockopt(m, ro, 1, 3) == 0          # joining a group needs nothing


# ------------------------------------------------------ transport option
def test_protocol_option_rules():
    m = Module()
    p = FakePeer()
    m.add_peer(p)
    assert sockopt(m, p, 0x4F03, 7) == errno.EPROTONOSUPPORT
    assert sockopt(m, p, 0x4F03, 16) == 0                 # generic: already so
    assert sockopt(m, p, 1, 2) == 0                       # ovs_datapath's group (genl)
    assert sockopt(m, p, 0x4F03, 12) == errno.EINVAL      # memberships: too late
    q = FakePeer(4243)
    m.add_peer(q)
    m.receive(q, NLMSGHDR.pack(16, 1, REQ, 1, 0))          # any message fixes it
    assert sockopt(m, q, 0x4F03, 12) == errno.EINVAL
    r = FakePeer(4244)
    m.add_peer(r)
    assert sockopt(m, r, 0x4F03, 12) == 0
    assert r.protocol == 12
    # nfnetlink's groups, not generic netlink's: 1..32
    assert sockopt(m, r, 1, 1) == 0 and sockopt(m, r, 1, 32) == 0
    assert sockopt(m, r, 1, 33) == errno.EINVAL and sockopt(m, r, 1, 0) == errno.EINVAL
    assert m.nfnl.has_listeners(1)
    assert sockopt(m, r, 2, 1) == 0 and not m.nfnl.has_listeners(1)
    assert sockopt(m, r, 11, 0) == 0 and not r.ext_ack    # the other options as genl
    # generic netlink messages mean nothing here: type 0x10 is nlctrl there
    assert errno_of(request(m, r, 0x10, REQ, subsys=0)) == errno.EOPNOTSUPP
    m.remove_peer(r)
    assert not m.nfnl.has_listeners(32)


def test_namespaces_have_their_own_tables(env):
    from ovsdp.datapath.module import OvsNet
    m, p, ct = env
    add_conn(ct, UDP)
    other = m.add_net(OvsNet("k", name="other"))
    q = FakePeer(77)
    q.net = other
    m.add_peer(q)
    assert sockopt(m, q, 0x4F03, 12) == 0
    assert entries(request(m, q, CT_GET, REQ | DUMP)) == []
    assert len(entries(request(m, p, CT_GET, REQ | DUMP))) == 1
