"""SCTP and GRE connection tracking (nf_conntrack_sctp.py, the Gre tracker of
nf_conntrack_proto.py), with packets built by hand and an injected clock.

The expected states, tags and timeouts are worked out by hand from Linux 6.x's
nf_conntrack_proto_sctp.c / nf_conntrack_proto_gre.c, not from the code.  The
CRC32c comes from scapy, an implementation independent of ovsdp's.
"""

import struct
import sys

import pytest
from scapy.layers.sctp import crc32c

from ovsdp.cli.dpctl.conntrack import format_entry
from ovsdp.client.conntrack import parse_entry
from ovsdp.datapath import nf_conntrack as ct
from ovsdp.datapath import nf_conntrack_netlink as CTNL
from ovsdp.datapath import nf_conntrack_sctp as S
from ovsdp.datapath.nf_conntrack import ConnTracker, Tuple
from ovsdp.datapath.nf_conntrack_proto import l4proto_find

A, B = 0x0A000001, 0x0A000002                  # 10.0.0.1, 10.0.0.2
A6, B6 = 0x20010DB8 << 96 | 1, 0x20010DB8 << 96 | 2
TA, TB = 0x11111111, 0x22222222                # A's and B's initiate tags
PA, PB = 5000, 36412                           # A's and B's ports

(DATA, INIT, INIT_ACK, SACK, HB, HB_ACK, ABORT, SHUTDOWN, SHUTDOWN_ACK, ERROR,
 COOKIE_ECHO, COOKIE_ACK) = range(12)
SHUTDOWN_COMPLETE = 14
T_BIT = 1

NONE, CLOSED, COOKIE_WAIT, COOKIE_ECHOED, ESTABLISHED = 0, 1, 2, 3, 4
SHUTDOWN_SENT, SHUTDOWN_RECD, SHUTDOWN_ACK_SENT, HEARTBEAT_SENT = 5, 6, 7, 8


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def chunk(ctype, body=b"", flags=0, length=None):
    ln = 4 + len(body) if length is None else length
    c = struct.pack("!BBH", ctype, flags, ln) + body
    return c + b"\0" * (-len(c) % 4)


def init(ctype, tag):
    """INIT / INIT_ACK: tag, a_rwnd, out/in streams, initial TSN (no parameters)."""
    return chunk(ctype, struct.pack("!IIHHI", tag, 65536, 10, 10, 1))


def data(payload=b"hello"):
    return chunk(DATA, struct.pack("!IHHI", 1, 0, 0, 0) + payload, flags=3)


def sctp(sport, dport, vtag, *chunks, good_crc=True):
    hdr = struct.pack("!HHI", sport, dport, vtag)
    body = b"".join(chunks)
    crc = crc32c(hdr + b"\0\0\0\0" + body) if good_crc else 0xDEADBEEF
    return hdr + struct.pack(">I", crc) + body


def ip4(src, dst, proto, payload):
    return struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                       src, dst) + payload


def ip6(src, dst, nh, payload):
    return (struct.pack("!IHBB", 0x60000000, len(payload), nh, 64) + src.to_bytes(16, "big")
            + dst.to_bytes(16, "big") + payload)


def a2b(vtag, *chunks, **kw):
    return ip4(A, B, 132, sctp(PA, PB, vtag, *chunks, **kw))


def b2a(vtag, *chunks, **kw):
    return ip4(B, A, 132, sctp(PB, PA, vtag, *chunks, **kw))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def tr(clock):
    return ConnTracker(max_conns=100, clock=clock)


def ok(tr, pkt, family=ct.NFPROTO_IPV4):
    r = tr.process(pkt, family)
    assert r.invalid is None, r.invalid
    return r


def established(tr):
    """The four-way handshake from A to B; the connection."""
    r = ok(tr, a2b(0, init(INIT, TA)))
    assert tr.confirm(r)
    ok(tr, b2a(TA, init(INIT_ACK, TB)))
    ok(tr, a2b(TB, chunk(COOKIE_ECHO, b"cookie!!")))
    ok(tr, b2a(TA, chunk(COOKIE_ACK)))
    assert r.conn.proto.state == ESTABLISHED
    return r.conn


# -- constants ------------------------------------------------------------------------------

def test_states_and_default_timeouts_are_linux_6():
    assert (S.SCTP_CONNTRACK_CLOSED, S.SCTP_CONNTRACK_ESTABLISHED,
            S.SCTP_CONNTRACK_HEARTBEAT_SENT, S.SCTP_CONNTRACK_MAX) == (1, 4, 8, 10)
    t = ConnTracker(clock=Clock()).sctp_timeouts
    assert t[:9] == [10, 10, 3, 3, 210, 3, 3, 3, 30]      # [NONE] is the CLOSED timeout
    assert ConnTracker(clock=Clock()).gre_timeouts == [30, 180]
    assert l4proto_find(132).name == "sctp" and l4proto_find(132).ports
    assert l4proto_find(47).name == "gre" and not l4proto_find(47).ports


# -- the association's life -----------------------------------------------------------------

def test_four_way_handshake_to_established_and_assured(tr, clock):
    r = ok(tr, a2b(0, init(INIT, TA)))
    conn = r.conn
    assert r.ctinfo == ct.IP_CT_NEW and conn.tuple[0] == Tuple(2, A, B, 132, PA, PB)
    assert conn.proto.state == CLOSED and conn.proto.vtag == [0, TA]
    assert conn.timeout == clock.t + 10
    assert tr.confirm(r)

    clock.t += 1
    r = ok(tr, b2a(TA, init(INIT_ACK, TB)))
    assert r.conn is conn and r.reply and r.ctinfo == ct.IP_CT_ESTABLISHED_REPLY
    assert conn.proto.state == COOKIE_WAIT and conn.proto.vtag == [TB, TA]
    assert conn.timeout == clock.t + 3 and not conn.assured

    clock.t += 1
    r = ok(tr, a2b(TB, chunk(COOKIE_ECHO, b"cookie!!")))
    assert r.ctinfo == ct.IP_CT_ESTABLISHED and conn.proto.state == COOKIE_ECHOED
    assert conn.timeout == clock.t + 3 and not conn.assured

    clock.t += 1
    ok(tr, b2a(TA, chunk(COOKIE_ACK)))
    assert conn.proto.state == ESTABLISHED and conn.assured
    assert conn.timeout == clock.t + 210
    # IP 20 + common header 12 + chunks: INIT/INIT_ACK 20, COOKIE_ECHO 12, COOKIE_ACK 4
    assert conn.counters == [[2, 52 + 44], [2, 52 + 36]]


def test_data_both_ways_refreshes(tr, clock):
    conn = established(tr)
    for t, pkt in ((100, a2b(TB, data())), (200, b2a(TA, data(), chunk(SACK, bytes(12))))):
        clock.t += t
        ok(tr, pkt)
        assert conn.proto.state == ESTABLISHED and conn.timeout == clock.t + 210
    assert tr.process(a2b(TB, data()), 2).conn is conn


def test_cookie_echo_bundled_with_data(tr):
    r = ok(tr, a2b(0, init(INIT, TA)))
    tr.confirm(r)
    ok(tr, b2a(TA, init(INIT_ACK, TB)))
    ok(tr, a2b(TB, chunk(COOKIE_ECHO, b"cookie!!"), data()))
    assert r.conn.proto.state == COOKIE_ECHOED
    ok(tr, b2a(TA, chunk(COOKIE_ACK), data()))
    assert r.conn.proto.state == ESTABLISHED and r.conn.assured


@pytest.mark.parametrize("pkt", [
    a2b(TA, data()),                    # A's own tag: B's is what B expects
    a2b(0x33333333, data()),
    b2a(TB, data()),
    a2b(TA, chunk(COOKIE_ECHO, b"xxxx")),
    a2b(TA, chunk(SHUTDOWN, struct.pack("!I", 1))),
    b2a(TB, chunk(SACK, bytes(12)), data()),
])
def test_wrong_verification_tag_is_invalid_and_changes_nothing(tr, clock, pkt):
    conn = established(tr)
    before = (conn.timeout, list(conn.counters[0]), list(conn.counters[1]))
    clock.t += 5
    r = tr.process(pkt, 2)
    assert r.invalid and r.conn is None
    assert "tag" in r.invalid
    assert conn.proto.state == ESTABLISHED and conn.proto.vtag == [TB, TA]
    assert (conn.timeout, conn.counters[0], conn.counters[1]) == before


def test_shutdown_sequence_to_closed_then_expiry(tr, clock):
    conn = established(tr)
    clock.t += 1
    ok(tr, a2b(TB, chunk(SHUTDOWN, struct.pack("!I", 1))))
    assert conn.proto.state == SHUTDOWN_SENT and conn.timeout == clock.t + 3
    assert l4proto_find(132).can_early_drop(conn)
    clock.t += 1
    ok(tr, b2a(TA, chunk(SHUTDOWN_ACK)))
    assert conn.proto.state == SHUTDOWN_ACK_SENT and conn.timeout == clock.t + 3
    clock.t += 1
    bad = tr.process(a2b(TA, chunk(SHUTDOWN_COMPLETE)), 2)        # A must use B's tag
    assert bad.invalid and conn.proto.state == SHUTDOWN_ACK_SENT
    ok(tr, a2b(TB, chunk(SHUTDOWN_COMPLETE)))
    assert conn.proto.state == CLOSED and conn.timeout == clock.t + 10
    assert not l4proto_find(132).can_early_drop(conn)
    clock.t += 9.5
    assert tr.get(0, conn.tuple[0]) is conn
    clock.t += 0.5
    assert tr.get(0, conn.tuple[0]) is None and len(tr) == 0


def test_shutdown_from_the_responder(tr, clock):
    conn = established(tr)
    assert not l4proto_find(132).can_early_drop(conn)
    ok(tr, b2a(TA, chunk(SHUTDOWN, struct.pack("!I", 1))))
    assert conn.proto.state == SHUTDOWN_RECD and conn.timeout == clock.t + 3
    ok(tr, a2b(TB, chunk(SHUTDOWN_ACK)))
    assert conn.proto.state == SHUTDOWN_ACK_SENT
    ok(tr, b2a(TA, chunk(SHUTDOWN_COMPLETE)))
    assert conn.proto.state == CLOSED


@pytest.mark.parametrize("pkt,good", [
    (b2a(TA, chunk(ABORT)), True),                      # T clear: the receiver's tag
    (b2a(TB, chunk(ABORT, flags=T_BIT)), True),         # T set: the sender's own tag
    (b2a(TB, chunk(ABORT)), False),
    (b2a(TA, chunk(ABORT, flags=T_BIT)), False),
    (a2b(TB, chunk(ABORT)), True),
    (a2b(0x1234, chunk(ABORT)), False),
])
def test_abort_and_its_t_bit(tr, clock, pkt, good):
    conn = established(tr)
    clock.t += 1
    r = tr.process(pkt, 2)
    if good:
        assert r.invalid is None and conn.proto.state == CLOSED
        assert conn.timeout == clock.t + 10
    else:
        assert r.invalid == "ABORT with a wrong verification tag"
        assert conn.proto.state == ESTABLISHED and conn.timeout == clock.t - 1 + 210


def test_shutdown_complete_with_t_bit(tr):
    conn = established(tr)
    ok(tr, a2b(TB, chunk(SHUTDOWN, struct.pack("!I", 1))))
    ok(tr, b2a(TA, chunk(SHUTDOWN_ACK)))
    assert tr.process(a2b(TB, chunk(SHUTDOWN_COMPLETE, flags=T_BIT)), 2).invalid
    ok(tr, a2b(TA, chunk(SHUTDOWN_COMPLETE, flags=T_BIT)))
    assert conn.proto.state == CLOSED


# -- malformed packets and do_basic_checks ---------------------------------------------------

@pytest.mark.parametrize("pkt,why", [
    (a2b(0, init(INIT, TA), data()), "INIT, INIT_ACK or SHUTDOWN_COMPLETE "
                                                    "not alone in its packet"),
    (a2b(0, chunk(INIT, length=0)), "zero-length chunk"),
    (a2b(0, data(), chunk(SACK, length=0)), "zero-length chunk"),
    (a2b(0, data(), init(INIT, TA)), "INIT, INIT_ACK or SHUTDOWN_COMPLETE "
                                     "not alone in its packet"),
    (a2b(0, data(), chunk(COOKIE_ECHO, b"xxxx")), "COOKIE_ECHO or COOKIE_ACK not the first chunk"),
    (a2b(0), "no chunks"),
    (a2b(0, b"\1\0\0"), "no chunks"),                    # a chunk header that does not fit
    (ip4(A, B, 132, sctp(PA, PB, 0)[:10]), "short packet"),
])
def test_basic_checks(tr, pkt, why):
    r = tr.process(pkt, 2)
    assert r.invalid == why and r.conn is None and len(tr) == 0


def test_zero_length_chunk_in_established_is_invalid(tr, clock):
    conn = established(tr)
    before = conn.timeout
    clock.t += 1
    r = tr.process(a2b(TB, data(), chunk(SACK, length=0)), 2)
    assert r.invalid == "zero-length chunk" and conn.timeout == before


def test_truncated_init_cannot_start(tr):
    r = tr.process(a2b(0, chunk(INIT, struct.pack("!IIH", TA, 1, 1))), 2)
    assert r.invalid == "invalid new"


def test_checksum_checked_only_when_enabled(clock):
    on = ConnTracker(clock=clock, checksum=True)
    assert on.process(a2b(0, init(INIT, TA), good_crc=False), 2).invalid == "bad CRC"
    assert on.process(a2b(0, init(INIT, TA)), 2).invalid is None
    off = ConnTracker(clock=clock)
    assert off.process(a2b(0, init(INIT, TA), good_crc=False), 2).invalid is None


# -- what can start a connection --------------------------------------------------------------

@pytest.mark.parametrize("pkt,why", [
    (a2b(TB, data()), "invalid new"),                       # DATA leaves state NONE
    (a2b(TB, chunk(SACK, bytes(12))), "invalid new"),
    (a2b(TA, init(INIT, TA)), "invalid new"),               # INIT needs tag 0
    (a2b(TB, chunk(ABORT)), "ABORT, SHUTDOWN_COMPLETE or COOKIE_ACK cannot start a connection"),
    (a2b(TB, chunk(COOKIE_ACK)), "ABORT, SHUTDOWN_COMPLETE or COOKIE_ACK cannot start a "
                                 "connection"),
    (a2b(TB, chunk(SHUTDOWN_COMPLETE)), "ABORT, SHUTDOWN_COMPLETE or COOKIE_ACK cannot start a "
                                        "connection"),
    (a2b(TB, chunk(COOKIE_ECHO, b"xxxx")), "COOKIE_ECHO with a wrong verification tag"),
    (a2b(TB, chunk(COOKIE_ECHO, b"xxxx"), data()), "invalid new"),
])
def test_packets_that_cannot_start(tr, pkt, why):
    r = tr.process(pkt, 2)
    assert r.invalid == why and r.conn is None


def test_out_of_the_blue_shutdown_ack_starts_a_connection(tr, clock):
    r = ok(tr, a2b(TB, chunk(SHUTDOWN_ACK)))
    assert r.ctinfo == ct.IP_CT_NEW and r.conn.proto.state == SHUTDOWN_ACK_SENT
    assert r.conn.proto.vtag == [0, TB] and r.conn.timeout == clock.t + 3


def test_heartbeat_starts_a_secondary_path(tr, clock):
    r = ok(tr, a2b(TB, chunk(HB, b"info")))
    conn = r.conn
    assert conn.proto.state == HEARTBEAT_SENT and conn.proto.vtag == [TB, 0]
    assert conn.timeout == clock.t + 30 and tr.confirm(r)
    clock.t += 29.5
    assert tr.get(0, conn.tuple[0]) is conn
    ok(tr, b2a(TA, chunk(HB_ACK, b"info")))
    assert conn.proto.state == ESTABLISHED and conn.assured
    assert conn.proto.vtag == [TB, TA] and conn.timeout == clock.t + 210
    ok(tr, a2b(TB, data()))
    assert tr.process(b2a(TB, data()), 2).invalid == "verification tag check failed"


def test_heartbeat_sent_expires_after_30s(tr, clock):
    r = ok(tr, a2b(TB, chunk(HB, b"info")))
    tr.confirm(r)
    clock.t += 30
    assert tr.get(0, r.conn.tuple[0]) is None


# -- heartbeats on an established association ---------------------------------------------------

def test_heartbeat_in_established_refreshes(tr, clock):
    conn = established(tr)
    clock.t += 100
    ok(tr, a2b(TB, chunk(HB, b"info")))
    ok(tr, b2a(TA, chunk(HB_ACK, b"info")))
    assert conn.proto.state == ESTABLISHED and conn.timeout == clock.t + 210


def test_heartbeat_with_new_tags_after_port_reuse(tr, clock):
    conn = established(tr)
    t0 = conn.timeout
    clock.t += 50
    NA, NB = 0x0A0A0A0A, 0x0B0B0B0B               # a new association on the same ports
    r = tr.process(a2b(NB, chunk(HB, b"info")), 2)
    assert r.invalid is None and r.conn is conn
    assert conn.timeout == t0                      # accepted but not refreshed
    assert conn.proto.flags == S.SCTP_FLAG_HEARTBEAT_VTAG_FAILED
    assert conn.proto.vtag == [TB, TA]
    # the same direction cannot confirm the change
    assert tr.process(a2b(NB, chunk(HB_ACK, b"info")), 2).invalid
    r = tr.process(b2a(NA, chunk(HB_ACK, b"info")), 2)
    assert r.invalid is None and conn.proto.vtag == [0, NA] and conn.proto.flags == 0
    assert conn.timeout == clock.t + 210
    ok(tr, a2b(NB, chunk(HB, b"info")))
    assert conn.proto.vtag == [NB, NA]
    ok(tr, a2b(NB, data()))
    ok(tr, b2a(NA, data()))


def test_heartbeat_tag_change_from_the_responder(tr):
    conn = established(tr)
    NA, NB = 0x0A0A0A0A, 0x0B0B0B0B
    ok(tr, b2a(NA, chunk(HB, b"info")))
    assert conn.proto.last_dir == 1
    assert tr.process(b2a(NA, chunk(HB_ACK, b"info")), 2).invalid    # same direction
    ok(tr, a2b(NB, chunk(HB_ACK, b"info")))
    assert conn.proto.vtag == [NB, 0]


def test_heartbeat_tag_change_with_data_or_unprompted_ack_is_invalid(tr):
    conn = established(tr)
    assert tr.process(a2b(0x5, chunk(HB, b"info"), data()), 2).invalid
    assert conn.proto.flags == 0
    assert tr.process(b2a(0x5, chunk(HB_ACK, b"info")), 2).invalid
    assert conn.proto.vtag == [TB, TA]


# -- INIT retransmission and collisions ---------------------------------------------------------

def test_retransmitted_init_on_closed_is_not_refreshed(tr, clock):
    r = ok(tr, a2b(0, init(INIT, TA)))
    tr.confirm(r)
    clock.t += 5
    r2 = ok(tr, a2b(0, init(INIT, TA)))
    assert r2.conn is r.conn and r.conn.proto.state == CLOSED
    assert r.conn.timeout == clock.t + 5           # still the first INIT's 10 s
    clock.t += 5
    assert tr.get(0, r.conn.tuple[0]) is None


def test_init_collision(tr):
    r = ok(tr, a2b(0, init(INIT, TA)))
    tr.confirm(r)
    conn = r.conn
    ok(tr, b2a(0, init(INIT, TB)))                 # both sides open at once
    assert conn.proto.state == CLOSED and conn.proto.vtag == [TB, TA]
    assert conn.proto.init == [True, True]
    # an INIT_ACK whose tag is not the one of the INIT it collided with is dropped
    r = tr.process(a2b(TB, init(INIT_ACK, 0x77777777)), 2)
    assert r.invalid == "INIT_ACK tag does not match the collision's"
    ok(tr, a2b(TB, init(INIT_ACK, TA)))
    ok(tr, b2a(TA, init(INIT_ACK, TB)))
    assert conn.proto.state == COOKIE_WAIT
    ok(tr, b2a(TA, chunk(COOKIE_ECHO, b"cookie!!")))
    ok(tr, a2b(TB, chunk(COOKIE_ACK)))             # ESTABLISHED from the original direction
    assert conn.proto.state == ESTABLISHED and conn.assured
    assert conn.proto.init == [False, False]


def test_stray_init_ack_cannot_change_a_tag(tr, clock):
    conn = established(tr)
    t0 = conn.timeout
    clock.t += 1
    r = tr.process(b2a(TA, init(INIT_ACK, 0x99)), 2)
    assert r.invalid == "INIT_ACK tag does not match" and conn.proto.vtag == [TB, TA]
    assert conn.timeout == t0
    ok(tr, b2a(TA, init(INIT_ACK, TB)))           # the tag it had: harmless
    assert conn.proto.state == ESTABLISHED and conn.timeout == clock.t + 210


def test_restart_with_init_on_established(tr):
    conn = established(tr)
    NA, NB = 0x0A0A0A0A, 0x0B0B0B0B
    ok(tr, a2b(0, init(INIT, NA)))
    assert conn.proto.state == ESTABLISHED and conn.proto.vtag == [TB, NA]
    ok(tr, b2a(NA, init(INIT_ACK, NB)))
    assert conn.proto.vtag == [NB, NA]
    ok(tr, a2b(NB, chunk(COOKIE_ECHO, b"cookie!!")))
    ok(tr, b2a(NA, chunk(COOKIE_ACK)))
    assert conn.proto.state == ESTABLISHED and conn.proto.init == [False, False]
    assert tr.process(a2b(TB, data()), 2).invalid == "verification tag check failed"


# -- timeouts -----------------------------------------------------------------------------------

@pytest.mark.parametrize("steps,state,timeout", [
    (1, CLOSED, 10), (2, COOKIE_WAIT, 3), (3, COOKIE_ECHOED, 3), (4, ESTABLISHED, 210),
])
def test_timeout_per_state_expires(tr, clock, steps, state, timeout):
    pkts = [a2b(0, init(INIT, TA)), b2a(TA, init(INIT_ACK, TB)),
            a2b(TB, chunk(COOKIE_ECHO, b"cookie!!")), b2a(TA, chunk(COOKIE_ACK))]
    r = ok(tr, pkts[0])
    tr.confirm(r)
    for p in pkts[1:steps]:
        ok(tr, p)
    conn = r.conn
    assert conn.proto.state == state
    clock.t += timeout - 0.25
    assert tr.get(0, conn.tuple[0]) is conn
    clock.t += 0.25
    assert tr.get(0, conn.tuple[0]) is None


def test_timeouts_are_settable_on_the_tracker(tr, clock):
    tr.sctp_timeouts[ESTABLISHED] = 1000
    conn = established(tr)
    assert conn.timeout == clock.t + 1000


def test_ipv6(tr, clock):
    r = ok(tr, ip6(A6, B6, 132, sctp(PA, PB, 0, init(INIT, TA))), ct.NFPROTO_IPV6)
    tr.confirm(r)
    ok(tr, ip6(B6, A6, 132, sctp(PB, PA, TA, init(INIT_ACK, TB))), ct.NFPROTO_IPV6)
    assert r.conn.proto.state == COOKIE_WAIT and r.conn.timeout == clock.t + 3


# -- ctnetlink and dpctl ------------------------------------------------------------------------

def test_ctnetlink_protoinfo_and_dpctl_format(tr):
    conn = established(tr)
    info = CTNL.dump_protoinfo(conn)
    # CTA_PROTOINFO { CTA_PROTOINFO_SCTP { STATE u8, VTAG_ORIGINAL be32, VTAG_REPLY be32 } }
    inner = (struct.pack("=HHB3x", 5, 1, ESTABLISHED) + struct.pack("=HH", 8, 2) +
             struct.pack("!I", TB) + struct.pack("=HH", 8, 3) + struct.pack("!I", TA))
    sctp_nest = struct.pack("=HH", 4 + len(inner), 3 | 0x8000) + inner
    assert info == struct.pack("=HH", 4 + len(sctp_nest), 4 | 0x8000) + sctp_nest
    e = parse_entry(CTNL.fill_info(conn, tr, 1, 1))
    assert e.sctp_state == ESTABLISHED and e.sctp_vtag == (TB, TA) and e.tcp_state is None
    conn.proto.vtag = [0x01020304, 0x0A0B0C0D]
    e = parse_entry(CTNL.fill_info(conn, tr, 1, 1))
    line = format_entry(e)
    # ovs-dpctl reads the tags with nl_attr_get_u32(): host order (x86: little endian)
    o, rp = (0x04030201, 0x0D0C0B0A) if sys.byteorder == "little" else (0x01020304, 0x0A0B0C0D)
    assert line == ("sctp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=5000,dport=36412),"
                    "reply=(src=10.0.0.2,dst=10.0.0.1,sport=36412,dport=5000),"
                    f"protoinfo=(state=ESTABLISHED,vtag_orig={o},vtag_reply={rp})")


@pytest.mark.parametrize("kstate,name", [(NONE, "CLOSED"), (CLOSED, "CLOSED"),
                                         (COOKIE_WAIT, "COOKIE_WAIT"),
                                         (HEARTBEAT_SENT, "HEARTBEAT_SENT")])
def test_dpctl_sctp_state_names(tr, kstate, name):
    conn = established(tr)
    conn.proto.state = kstate
    assert f"protoinfo=(state={name}," in format_entry(parse_entry(CTNL.fill_info(conn, tr, 1,
                                                                                 1)))


# -- GRE ----------------------------------------------------------------------------------------

def gre(src, dst, key=None):
    if key is None:
        return ip4(src, dst, 47, struct.pack("!HH", 0, 0x0800) + b"x" * 20)
    return ip4(src, dst, 47, struct.pack("!HHI", 0x2000, 0x0800, key) + b"x" * 20)


def test_gre_unreplied_30s(tr, clock):
    r = ok(tr, gre(A, B))
    assert r.conn.timeout == clock.t + 30 and r.conn.tuple[0] == Tuple(2, A, B, 47)
    tr.confirm(r)
    clock.t += 20
    ok(tr, gre(A, B))
    assert r.conn.timeout == clock.t + 30 and not r.conn.assured
    clock.t += 29.5
    assert tr.get(0, r.conn.tuple[0]) is r.conn
    clock.t += 0.5
    assert tr.get(0, r.conn.tuple[0]) is None


def test_gre_replied_180s_and_assured(tr, clock):
    r = ok(tr, gre(A, B))
    tr.confirm(r)
    conn = r.conn
    clock.t += 1
    back = ok(tr, gre(B, A))
    # the reply bit is set after the tracker ran: this packet still gets 30 s
    assert back.conn is conn and back.reply and conn.seen_reply
    assert conn.timeout == clock.t + 30 and not conn.assured
    clock.t += 1
    ok(tr, gre(A, B, key=7))                       # no key in the tuple: same connection
    assert conn.timeout == clock.t + 180 and conn.assured
    clock.t += 179.5
    assert tr.get(0, conn.tuple[0]) is conn
    clock.t += 0.5
    assert tr.get(0, conn.tuple[0]) is None


def test_gre_timeouts_taken_at_creation(tr, clock):
    tr.gre_timeouts[:] = [5, 50]
    r = ok(tr, gre(A, B))
    tr.confirm(r)
    assert r.conn.timeout == clock.t + 5
    tr.gre_timeouts[:] = [30, 180]                 # later changes: new connections only
    ok(tr, gre(B, A))
    ok(tr, gre(A, B))
    assert r.conn.timeout == clock.t + 50
