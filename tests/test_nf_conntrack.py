"""Unit tests of the sans-I/O connection tracker (ovsdp.datapath.nf_conntrack).

Packets are built by hand with struct; expected states, timeouts and
ctinfo values are worked out by hand from Linux's rules, not from the code.
"""

import random
import struct

import pytest

from ovsdp.datapath import nf_conntrack as ct
from ovsdp.datapath.nf_conntrack import ConnTracker, CtResult, Tuple

A, B, C, R = 0x0A000001, 0x0A000002, 0x0A000003, 0x0A0000FE      # 10.0.0.1/.2/.3/.254
A6 = 0x20010DB8 << 96 | 1                                          # 2001:db8::1
B6 = 0x20010DB8 << 96 | 2
LL1 = 0xFE80 << 112 | 1                                            # fe80::1
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
DAYS5 = 5 * 24 * 3600


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(src, dst, proto, payload, frag=0, ihl=5, tot_len=None, opts=b""):
    hlen = ihl * 4
    tl = hlen + len(payload) if tot_len is None else tot_len
    hdr = struct.pack("!BBHHHBBHII", 0x40 | ihl, 0, tl, 1, frag, 64, proto, 0, src, dst)
    return hdr + opts + payload


def ip6(src, dst, nh, payload, hop=64):
    return (struct.pack("!IHBB", 0x60000000, len(payload), nh, hop) + src.to_bytes(16, "big")
            + dst.to_bytes(16, "big") + payload)


def tcp(sport, dport, seq, ack, flags, win=65535, opts=b"", data=b"", doff=None):
    d = (20 + len(opts)) // 4 if doff is None else doff
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, d << 4, flags, win, 0, 0) + opts + data


def udp(sport, dport, data=b"", length=None, check=0):
    ln = 8 + len(data) if length is None else length
    return struct.pack("!HHHH", sport, dport, ln, check) + data


def icmp(t, code=0, ident=0, seq=0, rest=None):
    body = struct.pack("!HH", ident, seq) if rest is None else rest
    return struct.pack("!BBH", t, code, 0) + body


def v4tcp(src, dst, sport, dport, seq, ack, flags, **kw):
    return ip4(src, dst, 6, tcp(sport, dport, seq, ack, flags, **kw))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def tr(clock):
    return ConnTracker(max_conns=100, clock=clock)


def commit(tr, pkt, family=ct.NFPROTO_IPV4, zone=0):
    r = tr.process(pkt, family, zone)
    assert r.invalid is None, r.invalid
    assert tr.confirm(r)
    return r


def handshake(tr, syn_opts=b"", synack_opts=b"", ack_win=65535):
    r = commit(tr, v4tcp(A, B, 1234, 80, 1000, 0, SYN, win=64240, opts=syn_opts))
    tr.process(v4tcp(B, A, 80, 1234, 5000, 1001, SYN | ACK, win=65160, opts=synack_opts), 2)
    tr.process(v4tcp(A, B, 1234, 80, 1001, 5001, ACK, win=ack_win), 2)
    return r.conn


# -- constants ------------------------------------------------------------------------------

def test_constants_match_linux():
    assert (ct.IP_CT_ESTABLISHED, ct.IP_CT_RELATED, ct.IP_CT_NEW, ct.IP_CT_IS_REPLY,
            ct.IP_CT_UNTRACKED) == (0, 1, 2, 3, 7)
    assert (ct.IPS_EXPECTED, ct.IPS_SEEN_REPLY, ct.IPS_ASSURED, ct.IPS_CONFIRMED) == (1, 2, 4, 8)
    assert (ct.NFPROTO_IPV4, ct.NFPROTO_IPV6) == (2, 10)
    assert ct.TCP_CONNTRACK_ESTABLISHED == 3 and ct.TCP_CONNTRACK_TIME_WAIT == 7
    assert ct.TCP_CONNTRACK_SYN_SENT2 == 9
    t = ct.TCP_TIMEOUTS
    assert t[ct.TCP_CONNTRACK_SYN_SENT] == 120 and t[ct.TCP_CONNTRACK_SYN_RECV] == 60
    assert t[ct.TCP_CONNTRACK_ESTABLISHED] == DAYS5 and t[ct.TCP_CONNTRACK_CLOSE] == 10
    assert ct.UDP_TIMEOUTS == (30, 120) and ct.ICMP_TIMEOUT == 30
    assert ct.GENERIC_TIMEOUT == 600


def test_tuple_invert():
    t = Tuple(2, A, B, 6, 1234, 80)
    assert t.invert() == Tuple(2, B, A, 6, 80, 1234)
    e = Tuple(2, A, B, 1, icmp_id=7, icmp_type=8)
    assert e.invert() == Tuple(2, B, A, 1, icmp_id=7, icmp_type=0)
    assert Tuple(2, A, B, 1, icmp_type=13).invert().icmp_type == 14
    assert Tuple(10, A6, B6, 58, icmp_type=128).invert().icmp_type == 129
    assert Tuple(10, A6, B6, 58, icmp_type=129).invert().icmp_type == 128
    assert Tuple(2, A, B, 1, icmp_type=9).invert() is None
    assert hash(t) == hash(Tuple(2, A, B, 6, 1234, 80))


# -- TCP ------------------------------------------------------------------------------------

def test_tcp_handshake(tr, clock):
    r = tr.process(v4tcp(A, B, 1234, 80, 1000, 0, SYN), 2)
    assert r.ctinfo == ct.IP_CT_NEW and not r.reply and r.conn is not None
    assert not r.conn.confirmed and r.conn.proto.state == ct.TCP_CONNTRACK_SYN_SENT
    assert r.conn.tuple[1] == Tuple(2, B, A, 6, 80, 1234)
    assert r.conn.timeout == clock.t + 120
    assert tr.confirm(r) and r.conn.confirmed and len(tr) == 1
    conn = r.conn

    r = tr.process(v4tcp(B, A, 80, 1234, 5000, 1001, SYN | ACK), 2)
    assert r.conn is conn and r.reply and r.ctinfo == ct.IP_CT_ESTABLISHED_REPLY
    assert conn.proto.state == ct.TCP_CONNTRACK_SYN_RECV and conn.seen_reply
    assert not conn.assured and conn.timeout == clock.t + 60

    r = tr.process(v4tcp(A, B, 1234, 80, 1001, 5001, ACK), 2)
    assert r.conn is conn and r.ctinfo == ct.IP_CT_ESTABLISHED and not r.reply
    assert conn.proto.state == ct.TCP_CONNTRACK_ESTABLISHED and conn.assured
    assert conn.timeout == clock.t + DAYS5
    r = tr.process(v4tcp(B, A, 80, 1234, 5001, 1001, ACK), 2)
    assert r.ctinfo == ct.IP_CT_ESTABLISHED_REPLY and r.reply
    assert tr.confirm(r)                              # already confirmed: no-op
    assert len(tr) == 1 and tr.stats.insert == 1
    assert conn.counters[0][0] == 2 and conn.counters[1][0] == 2
    assert conn.counters[0][1] == 2 * 40


def test_tcp_retransmitted_syn_is_new_and_keeps_timeout(tr, clock):
    r = commit(tr, v4tcp(A, B, 1234, 80, 1000, 0, SYN))
    clock.t += 50
    r2 = tr.process(v4tcp(A, B, 1234, 80, 1000, 0, SYN), 2)
    assert r2.conn is r.conn and r2.ctinfo == ct.IP_CT_NEW
    assert r.conn.timeout == clock.t - 50 + 120      # SYN retransmit does not renew


def test_tcp_data_unacked_timeout(tr, clock):
    conn = handshake(tr)
    tr.process(v4tcp(A, B, 1234, 80, 1001, 5001, PSH | ACK, data=b"x" * 100), 2)
    assert conn.timeout == clock.t + 300             # TCP_CONNTRACK_UNACK
    tr.process(v4tcp(B, A, 80, 1234, 5001, 1101, ACK), 2)
    assert conn.timeout == clock.t + DAYS5


def test_tcp_out_of_window_is_invalid_and_changes_nothing(tr, clock):
    conn = handshake(tr)
    before = (conn.proto.state, conn.proto.seen[0].td_end, conn.proto.seen[0].td_maxend,
              conn.timeout, conn.counters[0][0])
    clock.t += 5
    r = tr.process(v4tcp(A, B, 1234, 80, 1001 + 10_000_000, 5001, ACK, data=b"y"), 2)
    assert r.conn is None and r.invalid.startswith("SEQ is over upper bound")
    assert (conn.proto.state, conn.proto.seen[0].td_end, conn.proto.seen[0].td_maxend,
            conn.timeout, conn.counters[0][0]) == before
    # ACK for data never sent
    r = tr.process(v4tcp(A, B, 1234, 80, 1001, 5001 + 500_000, ACK), 2)
    assert r.invalid.startswith("ACK is over upper bound")
    assert tr.stats.invalid == 2


def test_tcp_liberal_accepts_out_of_window(clock):
    tr = ConnTracker(max_conns=10, clock=clock, tcp_be_liberal=True)
    conn = handshake(tr)
    r = tr.process(v4tcp(A, B, 1234, 80, 1001 + 10_000_000, 5001, ACK, data=b"y"), 2)
    assert r.invalid is None and r.conn is conn


def test_tcp_fin_teardown_to_time_wait(tr, clock):
    conn = handshake(tr)
    tr.process(v4tcp(A, B, 1234, 80, 1001, 5001, FIN | ACK), 2)
    assert conn.proto.state == ct.TCP_CONNTRACK_FIN_WAIT and conn.timeout == clock.t + 120
    tr.process(v4tcp(B, A, 80, 1234, 5001, 1002, ACK), 2)
    assert conn.proto.state == ct.TCP_CONNTRACK_CLOSE_WAIT and conn.timeout == clock.t + 60
    tr.process(v4tcp(B, A, 80, 1234, 5001, 1002, FIN | ACK), 2)
    assert conn.proto.state == ct.TCP_CONNTRACK_LAST_ACK and conn.timeout == clock.t + 30
    r = tr.process(v4tcp(A, B, 1234, 80, 1002, 5002, ACK), 2)
    assert r.ctinfo == ct.IP_CT_ESTABLISHED
    assert conn.proto.state == ct.TCP_CONNTRACK_TIME_WAIT and conn.timeout == clock.t + 120
    t0 = clock.t
    clock.t = t0 + 119
    assert tr.get(0, conn.tuple[0]) is conn
    clock.t = t0 + 120
    assert tr.get(0, conn.tuple[0]) is None and len(tr) == 0


def test_tcp_syn_in_time_wait_reopens(tr, clock):
    conn = handshake(tr)
    tr.process(v4tcp(A, B, 1234, 80, 1001, 5001, FIN | ACK), 2)
    tr.process(v4tcp(B, A, 80, 1234, 5001, 1002, FIN | ACK), 2)
    tr.process(v4tcp(A, B, 1234, 80, 1002, 5002, ACK), 2)
    assert conn.proto.state == ct.TCP_CONNTRACK_TIME_WAIT
    r = tr.process(v4tcp(A, B, 1234, 80, 90000, 0, SYN), 2)
    assert r.invalid is None and r.ctinfo == ct.IP_CT_NEW
    assert r.conn is not conn and not r.conn.confirmed
    assert r.conn.proto.state == ct.TCP_CONNTRACK_SYN_SENT
    assert conn.dying and len(tr) == 0


def test_tcp_rst_closes(tr, clock):
    conn = handshake(tr)
    r = tr.process(v4tcp(B, A, 80, 1234, 5001, 0, RST), 2)
    assert r.invalid is None and r.conn is conn
    assert conn.proto.state == ct.TCP_CONNTRACK_CLOSE and conn.timeout == clock.t + 10


def test_tcp_rst_before_maxack_is_invalid(tr):
    conn = handshake(tr)
    r = tr.process(v4tcp(B, A, 80, 1234, 4000, 0, RST), 2)
    assert r.invalid == "invalid rst" and conn.proto.state == ct.TCP_CONNTRACK_ESTABLISHED


def test_tcp_rst_answering_syn_deletes(tr):
    commit(tr, v4tcp(A, B, 1234, 80, 1000, 0, SYN))
    r = tr.process(v4tcp(B, A, 80, 1234, 0, 1001, RST | ACK), 2)
    assert r.invalid is None and r.reply and r.conn.proto.state == ct.TCP_CONNTRACK_CLOSE
    assert len(tr) == 0 and r.conn.dying


def test_tcp_window_scaling():
    ws7 = b"\x01\x03\x03\x07"              # NOP, window scale 7
    ws8 = b"\x01\x03\x03\x08"
    clock = Clock()
    tr = ConnTracker(max_conns=10, clock=clock)
    conn = handshake(tr, ws7, ws8, ack_win=502)
    assert conn.proto.seen[0].td_scale == 7 and conn.proto.seen[1].td_scale == 8
    assert conn.proto.seen[0].td_maxwin == 502 << 7
    tr.process(v4tcp(B, A, 80, 1234, 5001, 1001, ACK, win=1000), 2)    # 1000 << 8
    assert conn.proto.seen[0].td_maxend == 1001 + 256000
    r = tr.process(v4tcp(A, B, 1234, 80, 200001, 5001, ACK, data=b"z" * 10), 2)
    assert r.invalid is None

    # the server does not scale: neither side does, the same segment is out of window
    tr = ConnTracker(max_conns=10, clock=clock)
    conn = handshake(tr, ws7, b"", ack_win=502)
    assert conn.proto.seen[0].td_scale == 0 and conn.proto.seen[1].td_scale == 0
    tr.process(v4tcp(B, A, 80, 1234, 5001, 1001, ACK, win=1000), 2)
    r = tr.process(v4tcp(A, B, 1234, 80, 200001, 5001, ACK, data=b"z" * 10), 2)
    assert r.invalid.startswith("SEQ is over upper bound")


def test_tcp_sack_permitted_option(tr):
    conn = handshake(tr, b"\x04\x02\x01\x01", b"\x04\x02\x01\x01")
    assert conn.proto.seen[0].flags & ct.IP_CT_TCP_FLAG_SACK_PERM
    assert conn.proto.seen[1].flags & ct.IP_CT_TCP_FLAG_SACK_PERM
    # the server SACKs 1101..1201 after the client sent two segments
    tr.process(v4tcp(A, B, 1234, 80, 1001, 5001, ACK, data=b"a" * 100), 2)
    tr.process(v4tcp(A, B, 1234, 80, 1101, 5001, ACK, data=b"b" * 100), 2)
    sack = b"\x01\x01\x05\x0a" + struct.pack("!II", 1101, 1201)
    r = tr.process(v4tcp(B, A, 80, 1234, 5001, 1001, ACK, opts=sack), 2)
    assert r.invalid is None
    # a SACK edge beyond anything sent is refused like an ACK would be
    sack = b"\x01\x01\x05\x0a" + struct.pack("!II", 1101, 9201)
    r = tr.process(v4tcp(B, A, 80, 1234, 5001, 1001, ACK, opts=sack), 2)
    assert r.invalid.startswith("ACK is over upper bound")


def test_tcp_retransmissions_shorten_timeout(tr, clock):
    tr.tcp_timeouts[ct.TCP_CONNTRACK_RETRANS] = 100
    conn = handshake(tr)
    seg = v4tcp(A, B, 1234, 80, 1001, 5001, PSH | ACK, data=b"r" * 10)
    for _ in range(3):
        tr.process(seg, 2)
    assert conn.proto.retrans == 2 and conn.timeout == clock.t + 300
    tr.process(seg, 2)
    assert conn.proto.retrans == 3 and conn.timeout == clock.t + 100


def test_tcp_loose_pickup(tr, clock):
    r = tr.process(v4tcp(A, B, 1234, 80, 1000, 2000, ACK, win=1000), 2)
    assert r.invalid is None and r.ctinfo == ct.IP_CT_NEW
    assert r.conn.proto.state == ct.TCP_CONNTRACK_ESTABLISHED and r.conn.timeout == clock.t + 300
    tr.confirm(r)
    conn = r.conn
    r = tr.process(v4tcp(B, A, 80, 1234, 2000, 1000, ACK, win=1000), 2)
    assert r.reply and not conn.assured and conn.timeout == clock.t + 300
    tr.process(v4tcp(A, B, 1234, 80, 1000, 2000, ACK, win=1000), 2)
    assert conn.assured and conn.timeout == clock.t + DAYS5


def test_tcp_packets_that_cannot_start(clock):
    tr = ConnTracker(max_conns=10, clock=clock, tcp_loose=False)
    assert tr.process(v4tcp(A, B, 1, 2, 1000, 2000, ACK), 2).invalid == "invalid new"
    tr = ConnTracker(max_conns=10, clock=clock)
    assert tr.process(v4tcp(A, B, 1, 2, 1000, 2000, SYN | ACK), 2).invalid == "invalid new"
    assert tr.process(v4tcp(A, B, 1, 2, 1000, 2000, FIN | ACK), 2).invalid == "invalid new"
    assert tr.process(v4tcp(A, B, 1, 2, 1000, 0, RST), 2).invalid == "invalid new"
    bad = "invalid tcp flag combination"
    assert tr.process(v4tcp(A, B, 1, 2, 1000, 0, SYN | FIN), 2).invalid == bad
    assert tr.process(v4tcp(A, B, 1, 2, 1000, 0, 0), 2).invalid == bad
    assert tr.process(v4tcp(A, B, 1, 2, 1000, 0, FIN), 2).invalid == bad
    assert len(tr) == 0


def test_tcp_syn_from_client_in_established_is_ignored(tr, clock):
    conn = handshake(tr)
    t = conn.timeout
    clock.t += 10
    r = tr.process(v4tcp(A, B, 1234, 80, 777, 0, SYN), 2)
    assert r.invalid is None and r.conn is conn and r.note and "ignored" in r.note
    assert conn.timeout == t and conn.proto.state == ct.TCP_CONNTRACK_ESTABLISHED


# -- UDP ------------------------------------------------------------------------------------

def test_udp_new_reply_stream_and_expiry(tr, clock):
    q = ip4(A, B, 17, udp(5000, 53, b"q"))
    p = ip4(B, A, 17, udp(53, 5000, b"ans"))
    r = tr.process(q, 2)
    assert r.ctinfo == ct.IP_CT_NEW and r.conn.timeout == clock.t + 30
    tr.confirm(r)
    conn = r.conn
    clock.t += 1
    r = tr.process(p, 2)
    assert r.ctinfo == ct.IP_CT_ESTABLISHED_REPLY and r.reply and conn.seen_reply
    assert conn.timeout == clock.t + 30 and not conn.assured
    clock.t += 0.5                                   # 1.5 s after creation: not a stream yet
    assert tr.process(q, 2).ctinfo == ct.IP_CT_ESTABLISHED
    assert conn.timeout == clock.t + 30 and not conn.assured
    clock.t += 1                                     # 2.5 s: stream
    tr.process(q, 2)
    assert conn.assured and conn.timeout == clock.t + 120
    assert conn.counters == [[3, 3 * 29], [1, 31]]
    clock.t += 120
    assert tr.process(q, 2).ctinfo == ct.IP_CT_NEW and len(tr) == 0


def test_udp_malformed(tr):
    assert tr.process(ip4(A, B, 17, udp(1, 2, b"abc", length=30)), 2).invalid == \
        "truncated/malformed packet"
    assert tr.process(ip4(A, B, 17, udp(1, 2, length=4)), 2).invalid == \
        "truncated/malformed packet"
    assert tr.process(ip4(A, B, 17, b"\0\1\0\2\0"), 2).invalid == "short packet"
    assert tr.process(ip4(A, B, 17, b"\0\1"), 2).invalid == "can't get tuple"


def test_udp_checksum_when_enabled(clock):
    tr = ConnTracker(max_conns=10, clock=clock, checksum=True)
    seg = udp(5000, 53, b"hello")
    pseudo = struct.pack("!IIBBH", A, B, 0, 17, len(seg))
    good = seg[:6] + struct.pack("!H", csum(pseudo + seg)) + seg[8:]
    assert tr.process(ip4(A, B, 17, good), 2).invalid is None
    bad = seg[:6] + struct.pack("!H", csum(pseudo + seg) ^ 1) + seg[8:]
    assert tr.process(ip4(A, B, 17, bad), 2).invalid == "bad checksum"


# -- ICMP -----------------------------------------------------------------------------------

def test_icmp_echo(tr, clock):
    r = tr.process(ip4(A, B, 1, icmp(8, ident=7, seq=1)), 2)
    assert r.ctinfo == ct.IP_CT_NEW
    assert r.conn.tuple[0] == Tuple(2, A, B, 1, icmp_id=7, icmp_type=8)
    assert r.conn.tuple[1] == Tuple(2, B, A, 1, icmp_id=7, icmp_type=0)
    tr.confirm(r)
    r2 = tr.process(ip4(B, A, 1, icmp(0, ident=7, seq=1)), 2)
    assert r2.conn is r.conn and r2.ctinfo == ct.IP_CT_ESTABLISHED_REPLY
    assert r.conn.timeout == clock.t + 30 and not r.conn.assured
    assert tr.process(ip4(A, B, 1, icmp(8, ident=7, seq=2)), 2).ctinfo == ct.IP_CT_ESTABLISHED


def test_icmp_that_cannot_create(tr):
    assert tr.process(ip4(B, A, 1, icmp(0, ident=9)), 2).invalid.startswith("can't create")
    assert tr.process(ip4(B, A, 1, icmp(9)), 2).invalid == "can't invert tuple"
    assert tr.process(ip4(B, A, 1, icmp(40)), 2).invalid == "invalid icmp type"
    assert tr.process(ip4(B, A, 1, b"\x08\0\0"), 2).invalid == "short packet"
    assert tr.stats.error == 2


def test_icmp_error_related_to_udp(tr):
    q = ip4(A, B, 17, udp(5000, 53, b"query"))
    r = commit(tr, q)
    unreach = ip4(R, A, 1, icmp(3, 3, rest=b"\0" * 4) + q[:28])
    e = tr.process(unreach, 2)
    assert e.invalid is None and e.conn is r.conn
    assert e.ctinfo == ct.IP_CT_RELATED + ct.IP_CT_IS_REPLY and e.reply
    # an error sent towards the server about its reply is RELATED, original direction
    p = ip4(B, A, 17, udp(53, 5000, b"answer"))
    e = tr.process(ip4(A, B, 1, icmp(3, 3, rest=b"\0" * 4) + p[:28]), 2)
    assert e.conn is r.conn and e.ctinfo == ct.IP_CT_RELATED and not e.reply
    assert r.conn.counters[0][0] == 1               # errors do not refresh or count


def test_icmp_error_unknown_or_mismatched(tr):
    commit(tr, ip4(A, B, 17, udp(5000, 53, b"query")))
    other = ip4(A, B, 17, udp(5001, 53, b"query"))
    e = tr.process(ip4(B, A, 1, icmp(3, 3, rest=b"\0" * 4) + other[:28]), 2)
    assert e.conn is None and e.invalid == "embedded packet matches no connection"
    known = ip4(A, B, 17, udp(5000, 53, b"query"))
    e = tr.process(ip4(B, C, 1, icmp(3, 3, rest=b"\0" * 4) + known[:28]), 2)
    assert e.invalid == "outer daddr != inner"
    e = tr.process(ip4(B, A, 1, icmp(11, rest=b"\0" * 4) + known[:10]), 2)
    assert e.invalid.startswith("embedded packet")
    assert tr.stats.error == 3 and tr.stats.invalid == 0


def test_icmp_error_about_echo(tr):
    req = ip4(A, B, 1, icmp(8, ident=3, seq=1))
    r = commit(tr, req)
    e = tr.process(ip4(R, A, 1, icmp(11, rest=b"\0" * 4) + req), 2)
    assert e.conn is r.conn and e.ctinfo == ct.IP_CT_RELATED_REPLY


# -- ICMPv6 ---------------------------------------------------------------------------------

def test_icmpv6_echo_and_nd_untracked(tr):
    r = tr.process(ip6(A6, B6, 58, icmp(128, ident=9)), 10)
    assert r.ctinfo == ct.IP_CT_NEW and r.conn.tuple[1].icmp_type == 129
    tr.confirm(r)
    r2 = tr.process(ip6(B6, A6, 58, icmp(129, ident=9)), 10)
    assert r2.conn is r.conn and r2.ctinfo == ct.IP_CT_ESTABLISHED_REPLY
    for t in (133, 134, 135, 136, 130, 143):
        u = tr.process(ip6(LL1, B6, 58, icmp(t) + b"\0" * 16, hop=255), 10)
        assert u.untracked and u.ctinfo == ct.IP_CT_UNTRACKED and u.conn is None
    assert tr.process(ip6(B6, A6, 58, icmp(129, ident=1)), 10).invalid.startswith("can't")
    assert len(tr) == 1


def test_icmpv6_redirect_checks(tr):
    rd = icmp(137, 0, rest=b"\0" * 4) + b"\0" * 32
    assert tr.process(ip6(LL1, B6, 58, rd, hop=64), 10).invalid == \
        "invalid saddr or hoplimit for redirect"
    assert tr.process(ip6(LL1, B6, 58, rd, hop=255), 10).invalid == "redirect without options"
    q = ip6(B6, A6, 17, udp(53, 4000))
    r = commit(tr, ip6(A6, B6, 17, udp(4000, 53)), 10)
    opt = bytes([4, 1 + len(q) // 8]) + b"\0" * 6 + q
    e = tr.process(ip6(LL1, B6, 58, rd + opt, hop=255), 10)
    assert e.conn is r.conn and e.ctinfo == ct.IP_CT_RELATED


def test_icmpv6_error_related(tr):
    q = ip6(A6, B6, 17, udp(4000, 53, b"q"))
    r = commit(tr, q, 10)
    e = tr.process(ip6(B6, A6, 58, icmp(1, 4, rest=b"\0" * 4) + q), 10)
    assert e.conn is r.conn and e.ctinfo == ct.IP_CT_RELATED_REPLY and e.reply


# -- zones, confirmation, bound, expiry -----------------------------------------------------

def test_zones_separate_identical_tuples(tr):
    q = ip4(A, B, 17, udp(5000, 53))
    r1, r2 = commit(tr, q, zone=1), commit(tr, q, zone=2)
    assert r1.conn is not r2.conn and len(tr) == 2
    assert tr.count(1) == 1 and tr.count(2) == 1 and tr.count(0) == 0
    back = tr.process(ip4(B, A, 17, udp(53, 5000)), 2, 1)
    assert back.conn is r1.conn and back.reply
    assert tr.get(2, r2.conn.tuple[0]) is r2.conn and tr.get(0, r2.conn.tuple[0]) is None
    assert tr.flush(zone=1) == 1 and len(tr) == 1 and tr.count(1) == 0


def test_unconfirmed_not_found(tr):
    q = ip4(A, B, 17, udp(5000, 53))
    r1 = tr.process(q, 2)
    r2 = tr.process(q, 2)
    assert r1.ctinfo == r2.ctinfo == ct.IP_CT_NEW and r1.conn is not r2.conn
    back = tr.process(ip4(B, A, 17, udp(53, 5000)), 2)
    assert back.ctinfo == ct.IP_CT_NEW and not back.reply and len(tr) == 0
    assert tr.confirm(r1) and len(tr) == 1
    # the second, identical UDP entry clashes and adopts the first (nf_ct_resolve_clash)
    assert tr.confirm(r2) and r2.conn is r1.conn and tr.stats.clash_resolve == 1
    assert len(tr) == 1 and tr.stats.insert_failed == 0


def test_tcp_clash_is_insert_failed(tr):
    p = v4tcp(A, B, 1, 2, 100, 0, SYN)
    r1, r2 = tr.process(p, 2), tr.process(p, 2)
    assert tr.confirm(r1) and not tr.confirm(r2)
    assert tr.stats.insert_failed == 1 and len(tr) == 1


def test_confirm_without_conn():
    tr = ConnTracker(max_conns=1, clock=Clock())
    assert tr.confirm(CtResult(invalid="x")) is False


def test_bound_early_drop_then_failure(clock):
    tr = ConnTracker(max_conns=2, clock=clock)
    c1 = commit(tr, ip4(A, B, 17, udp(1, 53))).conn
    c2 = commit(tr, ip4(A, B, 17, udp(2, 53))).conn
    c3 = commit(tr, ip4(A, B, 17, udp(3, 53))).conn
    assert tr.stats.early_drop == 1 and len(tr) == 2
    assert c1.dying and tr.get(0, c1.tuple[0]) is None and tr.get(0, c2.tuple[0]) is c2
    for port in (2, 3):                               # make both assured UDP streams
        tr.process(ip4(B, A, 17, udp(53, port)), 2)
    clock.t += 3
    for port in (2, 3):
        tr.process(ip4(A, B, 17, udp(port, 53)), 2)
    assert c2.assured and c3.assured
    r = tr.process(ip4(A, B, 17, udp(4, 53)), 2)
    assert r.ctinfo == ct.IP_CT_NEW
    assert tr.confirm(r) is False
    assert tr.stats.insert_failed == 1 and tr.stats.drop == 1 and len(tr) == 2
    assert tr.stats.early_drop == 1


def test_bound_reaps_expired_first(clock):
    tr = ConnTracker(max_conns=1, clock=clock)
    old = commit(tr, ip4(A, B, 17, udp(1, 53))).conn
    clock.t += 31
    new = commit(tr, ip4(A, B, 17, udp(2, 53))).conn
    assert len(tr) == 1 and tr.get(0, new.tuple[0]) is new and old.dying
    assert tr.stats.early_drop == 0


def test_gc_expiry_order_and_lazy_lookup(tr, clock):
    t0 = clock.t
    conns = []
    for i in range(3):
        clock.t = t0 + 5 * i                          # expiries t0+30, +35, +40
        conns.append(commit(tr, ip4(A, B, 17, udp(100 + i, 53))).conn)
    clock.t = t0 + 20
    tr.process(ip4(A, B, 17, udp(100, 53)), 2)      # refresh the first: t0+50
    assert conns[0].timeout == t0 + 50
    clock.t = t0 + 100
    assert tr.gc(1) == 1 and conns[1].dying and not conns[2].dying
    assert tr.gc(1) == 1 and conns[2].dying and not conns[0].dying
    assert tr.gc(10) == 1 and len(tr) == 0
    assert tr.gc(10) == 0

    clock.t = t0 + 200
    c = commit(tr, ip4(A, B, 17, udp(7, 53))).conn
    clock.t += 29
    assert tr.gc() == 0
    clock.t += 1
    r = tr.process(ip4(A, B, 17, udp(7, 53)), 2)
    assert r.ctinfo == ct.IP_CT_NEW and r.conn is not c and c.dying and len(tr) == 0


def test_gc_heap_stays_bounded(tr, clock):
    conn = handshake(tr)
    for i in range(2000):                             # timeouts alternate 300 s / 5 days
        tr.process(v4tcp(A, B, 1234, 80, 1001 + i, 5001 + 0, ACK, data=b"d"), 2)
        tr.process(v4tcp(B, A, 80, 1234, 5001, 1002 + i, ACK), 2)
    assert conn.proto.state == ct.TCP_CONNTRACK_ESTABLISHED and len(tr._heap) <= 2 + 64


def test_flush_iterate_and_stats(tr, clock):
    a = commit(tr, ip4(A, B, 17, udp(1, 53))).conn
    b = commit(tr, ip4(A, B, 17, udp(2, 53))).conn
    assert set(tr) == {a, b}
    assert tr.flush(tuple=b.tuple[1]) == 1 and list(tr) == [a]
    assert tr.flush(tuple=b.tuple[0]) == 0
    assert tr.flush() == 1 and len(tr) == 0
    s = tr.stats.as_dict()
    for k in ("found", "invalid", "insert", "insert_failed", "drop", "early_drop",
              "search_restart"):
        assert k in s
    assert s["insert"] == 2 and tr.stats["insert"] == 2
    assert a.mark == 0 and a.labels == 0


def test_generic_protocol(tr, clock):
    # L2TP (115): no tracker of its own (GRE, 47, has one now: test_nf_conntrack_sctp.py)
    r = commit(tr, ip4(A, B, 115, b"\0\0\x08\0" + b"x" * 20))
    assert r.conn.timeout == clock.t + 600 and r.conn.tuple[0].sport == 0
    back = tr.process(ip4(B, A, 115, b"\0\0\x08\0"), 2)
    assert back.conn is r.conn and back.reply and not r.conn.assured


# -- malformed input ------------------------------------------------------------------------

@pytest.mark.parametrize("pkt,why", [
    (b"\x45" + b"\0" * 9, "short IPv4 header"),
    (ip4(A, B, 6, b"", ihl=4), "bad IHL"),
    (ip4(A, B, 6, b"", ihl=8), "truncated IPv4 options"),
    (ip4(A, B, 17, udp(1, 2), tot_len=100), "truncated IPv4 packet"),
    (ip4(A, B, 17, udp(1, 2), tot_len=10), "bad IPv4 total length"),
    (ip4(A, B, 17, udp(1, 2), frag=0x2001), "non-first fragment"),
    (ip6(A6, B6, 17, udp(1, 2)), "not an IPv4 packet"),
    (ip4(A, B, 6, tcp(1, 2, 0, 0, SYN)[:10]), "short packet"),
    (ip4(A, B, 6, b"\0\1"), "can't get tuple"),
    (ip4(A, B, 6, tcp(1, 2, 0, 0, SYN, doff=4)), "truncated packet"),
    (ip4(A, B, 6, tcp(1, 2, 0, 0, SYN, doff=15)), "truncated packet"),
])
def test_malformed_ipv4(tr, pkt, why):
    r = tr.process(pkt, ct.NFPROTO_IPV4)
    assert r.invalid == why and r.conn is None


def test_first_fragment_is_tracked(tr):
    r = tr.process(ip4(A, B, 17, udp(1, 2, b"abcd"), frag=0x2000), 2)   # MF, offset 0
    assert r.invalid is None and r.ctinfo == ct.IP_CT_NEW


def test_random_bytes_never_raise(clock):
    rnd = random.Random(12345)
    tr = ConnTracker(max_conns=16, clock=clock)
    valid = [v4tcp(A, B, 1, 2, 1, 0, SYN), ip4(A, B, 17, udp(1, 2, b"x")),
             ip4(A, B, 1, icmp(3, 3, rest=b"\0" * 4) + ip4(B, A, 17, udp(2, 1))[:28]),
             ip6(A6, B6, 58, icmp(1, rest=b"\0" * 4) + ip6(B6, A6, 6, tcp(1, 2, 0, 0, SYN)))]
    for i in range(3000):
        if i % 2:
            data = bytearray(rnd.choice(valid))
            for _ in range(rnd.randint(1, 4)):
                data[rnd.randrange(len(data))] = rnd.randrange(256)
            data = bytes(data[:rnd.randint(0, len(data))])
        else:
            data = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 90)))
            if data and i % 4 == 0:
                data = bytes([0x45 if i % 8 else 0x60]) + data[1:]
        for fam in (ct.NFPROTO_IPV4, ct.NFPROTO_IPV6):
            r = tr.process(data, fam)
            assert isinstance(r, CtResult)
            assert r.invalid is None or not r.invalid.startswith("internal error"), r.invalid
            if r.conn is not None and rnd.random() < 0.3:
                tr.confirm(r)
        clock.t += 0.5
    assert len(tr) <= 16
    tr.gc(1000)


# -- IPv6 extension headers -----------------------------------------------------------------

def test_ipv6_extension_headers(tr):
    hbh = bytes([60, 0]) + b"\x01\x04\0\0\0\0"        # -> dest opts, PadN
    dst = bytes([6, 0]) + b"\x01\x04\0\0\0\0"         # -> TCP
    r = tr.process(ip6(A6, B6, 0, hbh + dst + tcp(4321, 443, 1, 0, SYN)), 10)
    assert r.invalid is None and r.ctinfo == ct.IP_CT_NEW
    assert r.conn.tuple[0] == Tuple(10, A6, B6, 6, 4321, 443)

    first = struct.pack("!BBHI", 17, 0, 0x0001, 99)   # fragment header, offset 0, M
    r = tr.process(ip6(A6, B6, 44, first + udp(1, 2, b"ab")), 10)
    assert r.invalid is None and r.conn.tuple[0].protonum == 17
    later = struct.pack("!BBHI", 17, 0, 0x0008, 99)   # offset 1
    assert tr.process(ip6(A6, B6, 44, later + b"\0" * 8), 10).invalid == "non-first fragment"
    assert tr.process(ip6(A6, B6, 59, b""), 10).invalid == "can't find the transport header"
    assert tr.process(ip6(A6, B6, 0, b"\x06"), 10).invalid == "can't find the transport header"
    ah = bytes([17, 1]) + b"\0" * 10                  # AH, (1 + 2) * 4 = 12 bytes
    r = tr.process(ip6(A6, B6, 51, ah + udp(5, 6)), 10)
    assert r.conn.tuple[0] == Tuple(10, A6, B6, 17, 5, 6)
    assert tr.process(b"\x60" + b"\0" * 20, 10).invalid == "short IPv6 header"
