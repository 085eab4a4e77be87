"""Conntrack events sans I/O (nf_conntrack_ecache.py, nf_conntrack_netlink_events.py):
the exact bytes of the NEW / UPDATE / DESTROY messages Linux 6.x multicasts
to the ctnetlink groups, which events packets, the CT action's commit and
ctnetlink requests cause, the eventmask, the nf_conntrack_events sysctl,
the namespace scope, and that nobody listening means no work.

Expected bytes are written by hand (literal numbers from nfnetlink.h and
nfnetlink_conntrack.h), with the helpers of test_ctnetlink.
"""

import struct

from scapy.all import IP, TCP, Ether

from ovsdp import uapi as U
from ovsdp.datapath import nf_conntrack_ecache as EC
from ovsdp.datapath import nf_conntrack_netlink as CTNL
from ovsdp.datapath.module import Module, OvsNet
from ovsdp.netlink.attr import nla

from .test_actions import DST, SRC, FakeDP
from .test_ct_action import COMMIT, ct, reply, through, udp, zone
from .test_ctnetlink import (
    REQ,
    UDP,
    A,
    B,
    Clock,
    FakePeer,
    add_conn,
    attr,
    be16,
    be32,
    nest,
    request,
    sockopt,
)

NFNL_CT = 1 << 8
CT_NEW, CT_DELETE = 0, 2
F_CREATE_EXCL = 0x400 | 0x200
ECHO = 0x8
G_NEW, G_UPDATE, G_DESTROY = 1, 2, 3
S_SEEN_REPLY, S_ASSURED, S_CONFIRMED, S_DYING = 0x2, 0x4, 0x8, 0x200
H1, H2 = 0x0A000001, 0x0A000002                    # 10.0.0.1, 10.0.0.2 (test_ct_action)


def setup(groups=(G_NEW, G_UPDATE, G_DESTROY), net=None, m=None):
    """A module, a NETLINK_NETFILTER peer in ``groups``, a FakeDP on the tracker."""
    m = m or Module()
    net = net or m.init_net
    clock = Clock()
    tr = net.conntrack
    tr._clock = clock
    tr.now = clock.t
    p = FakePeer()
    p.net = net
    m.add_peer(p)
    assert sockopt(m, p, 0x4F03, 12) == 0              # OVSDP_SO_PROTOCOL: NETLINK_NETFILTER
    for g in groups:
        assert sockopt(m, p, 1, g) == 0                  # NETLINK_ADD_MEMBERSHIP
    dp = FakeDP()
    dp.conntrack = tr
    return m, p, tr, dp, clock


def ip4_tuple(src, dst, proto, sport, dport):
    ip = attr(1, be32(src)) + attr(2, be32(dst))
    pr = attr(1, bytes([proto, 0, 0, 0])[:1]) + attr(2, be16(sport)) + attr(3, be16(dport))
    return nest(1, ip) + nest(2, pr)


def udp_tuples(sport=1111, dport=2222):
    return (nest(1, ip4_tuple(H1, H2, 17, sport, dport)) +
            nest(2, ip4_tuple(H2, H1, 17, dport, sport)))


def header(length, mtype, flags, pid=0, family=2):
    """nlmsghdr (seq 0) + nfgenmsg of an event message."""
    return struct.pack("=IHHII", length, NFNL_CT | mtype, flags, 0, pid) + \
        struct.pack("!BBH", family, 0, 0)


def msg(mtype, flags, body, pid=0):
    return header(20 + len(body), mtype, flags, pid) + body


def only(tr):
    (conn,) = list(tr)
    return conn


def tcp(a, b, sport, dport, flags, seq, ack=0):
    return bytes(Ether(src=SRC, dst=DST) / IP(src=a, dst=b) /
                 TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=8192,
                     options=[]))


# ------------------------------------------------------------------ bytes
def test_new_update_destroy_bytes_of_a_udp_connection():
    m, p, tr, dp, clock = setup()
    through(dp, udp(), [ct(COMMIT, zone(5))])
    conn = only(tr)
    cid = be32(CTNL.ct_id(conn))
    head = udp_tuples() + attr(18, be16(5)) + attr(12, cid)     # CTA_ZONE, CTA_ID
    assert p.messages() == [msg(CT_NEW, F_CREATE_EXCL,
                                head + attr(3, be32(S_CONFIRMED)) + attr(7, be32(30)))]
    # the reply through a commit: IPCT_REPLY, an update
    clock.t += 1
    through(dp, reply(), [ct(COMMIT, zone(5))])
    assert p.messages() == [msg(CT_NEW, 0, head + attr(3, be32(S_CONFIRMED | S_SEEN_REPLY)) +
                                attr(7, be32(30)))]
    # nothing changed: a commit reports nothing
    through(dp, udp(), [ct(COMMIT, zone(5))])
    assert p.messages() == []
    # expiry, by the gc: DELETE, DYING in the status, no CTA_TIMEOUT (0)
    clock.t += 31
    assert tr.gc() == 1
    assert p.messages() == [msg(CT_DELETE, 0, head + attr(3, be32(
        S_CONFIRMED | S_SEEN_REPLY | S_DYING)))]


def test_tcp_handshake_protoinfo_assured_and_a_destroy_with_its_timeout():
    m, p, tr, dp, clock = setup()
    a, b = "10.0.0.1", "10.0.0.2"
    c = [ct(COMMIT)]
    through(dp, tcp(a, b, 1000, 80, "S", 100), c)
    conn = only(tr)
    cid = attr(12, be32(CTNL.ct_id(conn)))
    tup = (nest(1, ip4_tuple(H1, H2, 6, 1000, 80)) + nest(2, ip4_tuple(H2, H1, 6, 80, 1000)))

    def protoinfo(state, flags0, flags1):
        tcp_ = (attr(1, bytes([state])) + attr(2, b"\0") + attr(3, b"\0") +
                attr(4, bytes([flags0, 0])) + attr(5, bytes([flags1, 0])))
        return nest(4, nest(1, tcp_))                      # CTA_PROTOINFO, CTA_PROTOINFO_TCP

    # SYN: NEW with the state (SYN_SENT), as `conntrack -E` shows it
    (new,) = p.messages()
    assert new == msg(CT_NEW, F_CREATE_EXCL, tup + cid + attr(3, be32(S_CONFIRMED)) +
                      attr(7, be32(120)) + protoinfo(1, 0, 0))
    through(dp, tcp(b, a, 80, 1000, "SA", 500, 101), c)
    (upd,) = p.messages()                                # REPLY + PROTOINFO (SYN_RECV)
    assert upd[:20] == header(len(upd), CT_NEW, 0)
    assert attr(3, be32(S_CONFIRMED | S_SEEN_REPLY)) + attr(7, be32(60)) in upd
    assert attr(1, b"\x02") in upd
    through(dp, tcp(a, b, 1000, 80, "A", 101, 501), c)
    (upd,) = p.messages()                                # ASSURED + PROTOINFO (ESTABLISHED)
    st = S_CONFIRMED | S_SEEN_REPLY | S_ASSURED
    assert attr(3, be32(st)) + attr(7, be32(432000)) in upd and attr(1, b"\x03") in upd
    # killed (as a ctnetlink delete does): the time left, the state only
    clock.t += 10
    assert tr.get(0, conn.tuple[0]) is conn              # the lookup of a delete reads the clock
    assert tr.kill(conn)
    assert p.messages() == [msg(CT_DELETE, 0, tup + cid + attr(3, be32(st | S_DYING)) +
                                attr(7, be32(431990)) + nest(4, nest(1, attr(1, b"\x03"))))]


def test_mark_and_labels_of_the_commit_are_in_the_new_event_then_only_changes():
    m, p, tr, dp, clock = setup()
    mark = nla(U.OVS_CT_ATTR_MARK, struct.pack("=II", 0x2A, 0xFFFFFFFF))
    lab = nla(U.OVS_CT_ATTR_LABELS, (7).to_bytes(16, "big") + (0xFF).to_bytes(16, "big"))
    through(dp, udp(), [ct(COMMIT, mark, lab)])
    conn = only(tr)
    labels = attr(22, (7).to_bytes(16, "big"))                     # CTA_LABELS
    (new,) = p.messages()
    assert new.endswith(attr(7, be32(30)) + labels + attr(8, be32(0x2A)))   # ... CTA_MARK
    # the same mark and labels again: nothing; another mark: an update with it
    through(dp, udp(), [ct(COMMIT, mark, lab)])
    assert p.messages() == []
    mark2 = nla(U.OVS_CT_ATTR_MARK, struct.pack("=II", 0x2B, 0xFFFFFFFF))
    through(dp, udp(), [ct(COMMIT, mark2)])
    (upd,) = p.messages()
    assert upd.endswith(attr(7, be32(30)) + attr(8, be32(0x2B))) and labels not in upd
    lab2 = nla(U.OVS_CT_ATTR_LABELS, (9).to_bytes(16, "big") + (0xFF).to_bytes(16, "big"))
    through(dp, udp(), [ct(COMMIT, lab2)])
    (upd,) = p.messages()
    assert upd.endswith(attr(22, (9).to_bytes(16, "big")) + attr(8, be32(0x2B)))
    assert conn.ecache.cache == 0


# -------------------------------------------------------------- the filters
def eventmask(*events):
    return nla(U.OVS_CT_ATTR_EVENTMASK, struct.pack("=I", sum(1 << e for e in events)))


def test_eventmask_of_the_commit_limits_the_reports():
    m, p, tr, dp, clock = setup()
    # destroy only: no NEW, no UPDATE, the DELETE
    through(dp, udp(), [ct(COMMIT, eventmask(EC.IPCT_DESTROY))])
    through(dp, reply(), [ct(COMMIT)])
    assert p.messages() == []
    conn = only(tr)
    assert conn.ecache.ctmask == 1 << EC.IPCT_DESTROY
    tr.kill(conn)
    (d,) = p.messages()
    assert struct.unpack_from("=H", d, 4)[0] == NFNL_CT | CT_DELETE
    # NEW only: the NEW event (whole), the reply's update not
    through(dp, udp(sport=3333), [ct(COMMIT, eventmask(EC.IPCT_NEW))])
    assert [struct.unpack_from("=H", x, 4)[0] for x in p.messages()] == [NFNL_CT | CT_NEW]
    through(dp, udp(a="10.0.0.2", b="10.0.0.1", sport=2222, dport=3333), [ct(COMMIT)])
    assert p.messages() == []
    # a later commit with another mask changes it for the rest of its life
    back = udp(a="10.0.0.2", b="10.0.0.1", sport=2222, dport=3333)
    through(dp, back, [ct(COMMIT, eventmask(EC.IPCT_MARK))])
    mark = nla(U.OVS_CT_ATTR_MARK, struct.pack("=II", 1, 0xFFFFFFFF))
    through(dp, udp(sport=3333), [ct(COMMIT, mark)])
    (upd,) = p.messages()
    assert upd.endswith(attr(8, be32(1)))


def test_groups_are_the_socket_side_filter():
    m, p, tr, dp, clock = setup(groups=(G_NEW,))
    through(dp, udp(), [ct(COMMIT)])
    through(dp, reply(), [ct(COMMIT)])
    tr.kill(only(tr))
    kinds = [struct.unpack_from("=HH", x, 4) for x in p.messages()]
    assert kinds == [(NFNL_CT | CT_NEW, F_CREATE_EXCL)]


def test_nobody_listening_means_no_extension_and_no_messages():
    m, p, tr, dp, clock = setup(groups=())
    notifier = tr.event_cb
    assert m.nfnl.ct_listeners == 0
    through(dp, udp(), [ct(COMMIT, eventmask(EC.IPCT_NEW))])
    conn = only(tr)
    assert conn.ecache is None and notifier.sent == 0
    # a listener joining later hears nothing of this connection, destroy included
    # (nf_conntrack_events=2: the extension is given when the connection is made)
    assert sockopt(m, p, 1, G_DESTROY) == 0
    tr.kill(conn)
    assert p.messages() == [] and notifier.sent == 0
    # one made now has it; leaving the last group stops extensions again
    through(dp, udp(sport=4444), [ct(COMMIT)])
    assert only(tr).ecache is not None
    assert sockopt(m, p, 2, G_DESTROY) == 0                       # NETLINK_DROP_MEMBERSHIP
    assert m.nfnl.ct_listeners == 0
    through(dp, udp(sport=5555), [ct(COMMIT)])
    assert [c.ecache is None for c in tr] == [False, True]


def test_sysctl_events_0_and_1():
    m, p, tr, dp, clock = setup(groups=())
    tr.sysctl_events = 1                     # always: the extension, but nobody to tell
    through(dp, udp(), [ct(COMMIT)])
    assert only(tr).ecache.ctmask == 0xFFFF and tr.event_cb.sent == 0
    tr.sysctl_events = 0
    assert sockopt(m, p, 1, G_NEW) == 0
    through(dp, udp(sport=4444), [ct(COMMIT)])
    assert p.messages() == [] and [c.ecache is None for c in tr] == [False, True]


def test_events_stay_in_the_connections_namespace():
    m = Module()
    other = m.add_net(OvsNet(key="ns2", name="ns2"))
    _, p, tr, dp, clock = setup(m=m)                     # a listener in init_net
    _, q, tr2, dp2, _ = setup(m=m, net=other)             # and one in ns2
    through(dp2, udp(), [ct(COMMIT)])
    assert p.messages() == [] and len(q.messages()) == 1
    through(dp, udp(), [ct(COMMIT)])
    assert len(p.messages()) == 1 and q.messages() == []


def test_a_full_listener_loses_its_copy_only():
    m, p, tr, dp, clock = setup()

    class Full(FakePeer):
        def send(self, data, kind="reply"):
            return 105                                   # ENOBUFS: the transport dropped it

    full = Full(portid=5151)
    m.add_peer(full)
    full.protocol = 12                                  # NETLINK_NETFILTER
    m.nfnl.join(full, G_NEW)
    through(dp, udp(), [ct(COMMIT)])
    assert len(p.messages()) == 1                       # the other member has its copy
    assert only(tr).ecache.missed == 0                   # not a failure of the report


# --------------------------------------------------------------- ctnetlink
def test_ctnetlink_delete_with_echo_and_change_report():
    m, p, tr, dp, clock = setup()
    other = FakePeer(portid=777)
    m.add_peer(other)
    assert sockopt(m, other, 0x4F03, 12) == 0 and sockopt(m, other, 1, G_UPDATE) == 0
    assert sockopt(m, other, 1, G_DESTROY) == 0
    through(dp, udp(), [ct(COMMIT)])
    conn = only(tr)
    p.messages()
    # a change (CTA_MARK): an update to the group
    body = udp_tuples() + attr(8, be32(0x77))
    assert request(m, p, CT_NEW, REQ | 0x4, body)[-1][16:20] == b"\0\0\0\0"
    (upd,) = other.messages()
    assert upd[:20] == header(len(upd), CT_NEW, 0, pid=p.portid)
    assert upd.endswith(attr(8, be32(0x77)))
    # a delete with NLM_F_ECHO: the requester gets it (not twice), the group too
    got = request(m, p, CT_DELETE, REQ | ECHO, udp_tuples())
    dels = [x for x in got if struct.unpack_from("=H", x, 4)[0] == NFNL_CT | CT_DELETE]
    assert len(dels) == 1 and struct.unpack_from("=I", dels[0], 12)[0] == p.portid
    assert other.messages() == dels
    assert conn.dying


def test_ctnetlink_create_reports_new():
    m, p, tr, dp, clock = setup()
    body = (nest(1, ip4_tuple(A, B, 17, 40000, 53)) + nest(2, ip4_tuple(B, A, 17, 53, 40000)) +
            attr(7, be32(50)))
    got = request(m, p, CT_NEW, REQ | 0x400, body)
    news = [x for x in got if struct.unpack_from("=HH", x, 4) == (NFNL_CT | CT_NEW,
                                                                    F_CREATE_EXCL)]
    assert len(news) == 1
    conn = tr.get(0, UDP)
    assert news[0] == msg(CT_NEW, F_CREATE_EXCL, nest(1, ip4_tuple(A, B, 17, 40000, 53)) +
                          nest(2, ip4_tuple(B, A, 17, 53, 40000)) +
                          attr(12, be32(CTNL.ct_id(conn))) + attr(3, be32(S_CONFIRMED)) +
                          attr(7, be32(50)) + attr(8, be32(0)), pid=p.portid)
    # (IPCT_MARK is among what a create reports: CTA_MARK even when 0)


def test_flush_and_early_drop_report_destroys():
    m, p, tr, dp, clock = setup(groups=(G_DESTROY,))
    tr.max_conns = 2
    for sport in (1, 2):
        through(dp, udp(sport=sport), [ct(COMMIT)])
    through(dp, udp(sport=3), [ct(COMMIT)])               # early drop of the oldest
    assert tr.stats.early_drop == 1 and len(p.messages()) == 1
    assert tr.flush() == 2 and len(p.messages()) == 2
    add_conn(tr, UDP)                                     # no extension: silent
    assert tr.flush() == 1 and p.messages() == []


def test_event_names_and_bits_match_the_uapi():
    assert [getattr(EC, "IPCT_" + n) for n in EC.IPCT_NAMES] == list(range(12))
    assert EC.events_names((1 << EC.IPCT_NEW) | (1 << EC.IPCT_LABEL)) == ["NEW", "LABEL"]


# ------------------------------------------------ through the real transport
def test_a_listener_that_never_reads_holds_up_nobody(daemon):
    """Thousands of NEW events to two members: the one that reads gets
    every one, the one that never reads is cut off at its queue's bound and
    told (NLMSG_OVERRUN); the datapath's work goes on meanwhile."""
    import contextlib
    import select
    import socket

    from ovsdp.server.transport import OUTQ_BYTES

    from .conftest import raw_connect

    def member(group):
        s = raw_connect(daemon.path)
        for seq, (opt, val) in enumerate(((0x4F03, 12), (1, group)), 1):
            body = struct.pack("=III", 270, opt, val)
            s.send(struct.pack("=IHHII", 16 + len(body), 0x0F, 1 | 4, seq, 0) + body)
            ack = s.recv(4096)
            assert struct.unpack_from("=i", ack, 16)[0] == 0, ack      # the ack's error
        return s

    def portid(s):
        s.send(struct.pack("=IHHII", 16, 1, 1 | 4, 99, 0))          # NLMSG_NOOP
        return struct.unpack_from("=IHHII", s.recv(4096))[4]

    lazy, busy = member(G_NEW), member(G_NEW)
    lazy_id = portid(lazy)
    tr = daemon.module.init_net.conntrack
    frame = struct.Struct("!BBHHHBBH4s4sHHHH")

    def make(lo, hi):
        for i in range(lo, hi):
            pkt = frame.pack(0x45, 0, 28, 0, 0, 64, 17, 0, bytes([10, 0, i >> 8 & 0xFF, i & 0xFF]),
                             bytes([10, 1, 0, 1]), 1000, 53, 8, 0)
            assert tr.confirm(tr.process(pkt, 2, 3))
    got = 0
    n, step = 12000, 500
    try:
        for lo in range(0, n, step):
            daemon.call(make, lo, lo + step)
            while got < lo + step:                       # the busy member reads as it goes
                assert select.select([busy], [], [], 10)[0], f"only {got} events arrived"
                d = busy.recv(1 << 16)
                assert struct.unpack_from("=H", d, 4)[0] == NFNL_CT | CT_NEW
                got += 1
        assert got == n and daemon.call(lambda: len(tr)) == n
        conn = daemon.call(lambda: next(c for c in daemon.daemon.server.conns.values()
                                        if c.portid == lazy_id))
        assert daemon.call(lambda: conn.outq_bytes) <= OUTQ_BYTES + 1024
        lost = daemon.call(lambda: conn.overruns)
        assert lost > 0
        kinds = []
        lazy.settimeout(2)
        with contextlib.suppress(socket.timeout):
            while True:
                kinds.append(struct.unpack_from("=H", lazy.recv(1 << 16), 4)[0])
        assert kinds.count(NFNL_CT | CT_NEW) + lost == n
        assert kinds[-1] == U.NLMSG_OVERRUN and kinds.count(U.NLMSG_OVERRUN) == 1
    finally:
        lazy.close()
        busy.close()



def test_expired_connection_met_by_a_lookup_reports_its_destroy():
    m, p, tr, dp, clock = setup(groups=(G_DESTROY,))
    through(dp, udp(), [ct(COMMIT)])
    clock.t += 31                                    # expired, not yet reaped by a gc
    through(dp, udp(), [ct()])                       # the lookup removes it, then it is new
    (d,) = p.messages()
    assert struct.unpack_from("=H", d, 4)[0] == NFNL_CT | CT_DELETE and len(tr) == 0


def test_expectation_events_follow_the_masters_expmask():
    class Notifier:
        has_listener = 1 << G_NEW

        def __init__(self):
            self.got = []

        def conntrack_event(self, tracker, events, conn, portid, report):
            return 0

        def expect_event(self, tracker, events, exp, portid, report):
            self.got.append((events, exp, portid, report))
            return 0

    class Exp:
        def __init__(self, master):
            self.master = master

    m, p, tr, dp, clock = setup(groups=())
    tr.event_cb = n = Notifier()
    through(dp, udp(), [ct(COMMIT)])
    conn = only(tr)
    exp = Exp(conn)
    assert EC.expect_event_report(tr, EC.IPEXP_NEW, exp, 5, True) == 0
    assert n.got == [(1 << EC.IPEXP_NEW, exp, 5, True)]
    conn.ecache.expmask = 1 << EC.IPEXP_DESTROY
    EC.expect_event_report(tr, EC.IPEXP_NEW, exp)
    EC.expect_event_report(tr, EC.IPEXP_DESTROY, exp)
    assert [g[0] for g in n.got] == [1, 2]
    conn.ecache = None                              # a master without the cache: nothing
    EC.expect_event_report(tr, EC.IPEXP_DESTROY, exp)
    assert len(n.got) == 2


def test_a_report_that_fails_is_kept_as_missed_and_sent_with_the_next():
    m, p, tr, dp, clock = setup()
    through(dp, udp(), [ct(COMMIT)])
    conn = only(tr)
    calls = []
    real = tr.event_cb

    class Failing:
        has_listener = real.has_listener

        def conntrack_event(self, tracker, events, c, portid, report):
            calls.append(events)
            return -105 if len(calls) == 1 else 0      # -ENOBUFS once
    tr.event_cb = Failing()
    through(dp, reply(), [ct(COMMIT)])               # IPCT_REPLY: not delivered
    assert conn.ecache.missed == 1 << EC.IPCT_REPLY
    mark = nla(U.OVS_CT_ATTR_MARK, struct.pack("=II", 3, 0xFFFFFFFF))
    through(dp, udp(), [ct(COMMIT, mark)])           # IPCT_MARK, with the missed REPLY
    assert calls == [1 << EC.IPCT_REPLY, (1 << EC.IPCT_REPLY) | (1 << EC.IPCT_MARK)]
    assert conn.ecache.missed == 0
