"""The CT action on hand-built packets (net/openvswitch/conntrack.c on
ovsdp's tracker): the key's ct_* fields as ovs_ct_update_key() fills them,
commit with mark and labels, once per zone across recirculation, the lookup
an upcall lost, force commit, ct_clear, and what is refused."""

import struct

from scapy.all import IP, TCP, UDP, Ether, Raw

from ovsdp import uapi as U
from ovsdp.datapath import conntrack as CT
from ovsdp.datapath import key_layout as K
from ovsdp.datapath.skb import Skb
from ovsdp.netlink.attr import nla

from .test_actions import DST, SRC, FakeDP, key_of, run

A_CT = U.OVS_ACTION_ATTR_CT
A_RECIRC = U.OVS_ACTION_ATTR_RECIRC
A_OUTPUT = U.OVS_ACTION_ATTR_OUTPUT
A_CT_CLEAR = U.OVS_ACTION_ATTR_CT_CLEAR
TRK, NEW, EST, REL, RPL, INV = 0x20, 0x01, 0x02, 0x04, 0x08, 0x10


def ct(*attrs, eth_type=K.ETH_P_IP):
    """The validated CT action of attributes (bytes)."""
    return (A_CT, CT.parse_ct(b"".join(attrs), eth_type))


def zone(z):
    return nla(U.OVS_CT_ATTR_ZONE, struct.pack("=H", z))


COMMIT = nla(U.OVS_CT_ATTR_COMMIT)
FORCE = nla(U.OVS_CT_ATTR_FORCE_COMMIT)


def udp(a="10.0.0.1", b="10.0.0.2", sport=1111, dport=2222, frag=0):
    return bytes(Ether(src=SRC, dst=DST) / IP(src=a, dst=b, flags=frag)
                 / UDP(sport=sport, dport=dport) / Raw(b"x" * 8))


def reply(**kw):
    return udp(a="10.0.0.2", b="10.0.0.1", sport=2222, dport=1111, **kw)


def through(dp, frame, acts, skb=None):
    """Run ``acts`` then a recirculation; the key the recirculation saw."""
    dp.recircs.clear()
    err, skb = run(dp, frame, list(acts) + [(A_RECIRC, 1)], skb=skb)
    assert err == 0
    return dp.recircs[-1]["key"], skb


def state(k):
    return (k >> K.S_CT_STATE) & 0xFF


def test_lookup_then_commit_then_reply_and_established():
    dp = FakeDP()
    k, skb = through(dp, udp(), [ct(zone(5))])
    assert state(k) == TRK | NEW and K.get(k, "ct_zone") == 5
    assert K.get(k, "ct_orig_proto") == 17
    assert (K.get(k, "ct_orig_src"), K.get(k, "ct_orig_dst")) == (0x0A000001, 0x0A000002)
    assert (K.get(k, "ct_orig_tp_src"), K.get(k, "ct_orig_tp_dst")) == (1111, 2222)
    assert len(dp.conntrack) == 0                   # not committed: nothing kept
    k, _ = through(dp, udp(), [ct(COMMIT, zone(5))])
    assert state(k) == TRK | NEW and len(dp.conntrack) == 1
    k, _ = through(dp, udp(), [ct(zone(5))])        # no reply seen yet: still new
    assert state(k) == TRK | NEW
    k, _ = through(dp, reply(), [ct(zone(5))])
    assert state(k) == TRK | EST | RPL
    assert K.get(k, "ct_orig_src") == 0x0A000001    # the original direction's tuple
    k, _ = through(dp, udp(), [ct(zone(5))])
    assert state(k) == TRK | EST
    k, _ = through(dp, reply(), [ct(zone(6))])      # another zone: another table
    assert state(k) == TRK | NEW and K.get(k, "ct_zone") == 6


def test_commit_sets_mark_and_labels_under_their_masks():
    dp = FakeDP()
    mark = nla(U.OVS_CT_ATTR_MARK, struct.pack("=II", 0x12, 0xFF))
    labels = nla(U.OVS_CT_ATTR_LABELS, (1).to_bytes(16, "big") + (0xFF).to_bytes(16, "big"))
    k, _ = through(dp, udp(), [ct(COMMIT, mark, labels)])
    assert K.get(k, "ct_mark") == 0x12 and K.get(k, "ct_labels") == 1
    (conn,) = list(dp.conntrack)
    assert (conn.mark, conn.labels) == (0x12, 1)
    mark2 = nla(U.OVS_CT_ATTR_MARK, struct.pack("=II", 0x300, 0xF00))
    k, _ = through(dp, reply(), [ct(COMMIT, mark2)])
    assert K.get(k, "ct_mark") == 0x312 and state(k) == TRK | EST | RPL
    k, _ = through(dp, udp(), [ct()])                # a later lookup reads them back
    assert (K.get(k, "ct_mark"), K.get(k, "ct_labels")) == (0x312, 1)


def test_a_recirculated_packet_is_not_tracked_twice_in_its_zone():
    dp = FakeDP()
    through(dp, udp(), [ct(COMMIT)])
    (conn,) = list(dp.conntrack)
    k, skb = through(dp, udp(), [ct()])
    assert conn.counters[0][0] == 2
    # the same skb in ct() of the same zone again (after recirculation): cached
    err, _ = run(dp, udp(), [ct(COMMIT), (A_OUTPUT, 2)], key=k, skb=skb)
    assert err == 0 and conn.counters[0][0] == 2
    # a new skb whose key says it was tracked here (an upcall lost the skb's
    # conntrack): found again without counting the packet twice
    err, _ = run(dp, udp(), [ct(), (A_RECIRC, 1)], key=k, skb=Skb(udp()))
    assert err == 0 and conn.counters[0][0] == 2
    assert state(dp.recircs[-1]["key"]) == TRK | NEW


def test_invalid_packets_are_tracked_invalid_and_not_committed():
    dp = FakeDP()
    bad = bytes(Ether(src=SRC, dst=DST) / IP(src="10.0.0.1", dst="10.0.0.2")
                / TCP(sport=1, dport=2, flags="SF"))       # SYN+FIN: never valid
    k, skb = through(dp, bad, [ct(COMMIT, zone(3))])
    assert state(k) == TRK | INV and K.get(k, "ct_zone") == 3
    assert skb.nfct is None and len(dp.conntrack) == 0


def test_force_commit_turns_a_reply_into_a_new_original_direction():
    dp = FakeDP()
    through(dp, udp(), [ct(COMMIT)])
    k, _ = through(dp, reply(), [ct(FORCE)])
    assert state(k) == TRK | NEW
    (conn,) = list(dp.conntrack)
    assert conn.tuple[0].src == 0x0A000002           # the reply's direction is now original


def test_ct_clear_and_fragments():
    dp = FakeDP()
    k, skb = through(dp, udp(), [ct(COMMIT), (A_CT_CLEAR, None)])
    assert state(k) == 0 and K.get(k, "ct_zone") == 0 and skb.nfct is None
    frag = udp(frag="MF")
    err, _ = run(dp, frag, [ct(COMMIT), (A_OUTPUT, 2)])
    assert err == 0 and dp.out(2) == []             # kept for reassembly: not an error
    assert len(dp.defrag) == 1 and not dp.drops     # (tests/test_ct_fragments.py)


def test_related_icmp_error_carries_its_connection():
    dp = FakeDP()
    through(dp, udp(), [ct(COMMIT)])
    inner = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1111, dport=2222) / Raw(b"x" * 8)
    from scapy.all import ICMP
    err_pkt = bytes(Ether(src=SRC, dst=DST) / IP(src="10.0.0.2", dst="10.0.0.1")
                    / ICMP(type=3, code=3) / inner)
    k, _ = through(dp, err_pkt, [ct()])
    assert state(k) == TRK | REL | RPL
    assert K.get(k, "ct_orig_proto") == 17 and K.get(k, "ct_orig_tp_dst") == 2222


def test_key_of_the_recirculation_matches_a_fresh_extraction_outside_ct():
    dp = FakeDP()
    k, _ = through(dp, udp(), [ct()])
    plain = key_of(udp())
    ct_bits = (K.M_CT_STATE | K.M_CT_ZONE | K.M_CT_MARK | K.M_CT_LABELS | K.M_CT_ORIG_PROTO
               | K.M_CT_ORIG_SRC | K.M_CT_ORIG_DST | K.M_CT_ORIG_TP_SRC | K.M_CT_ORIG_TP_DST
               | K.M_RECIRC_ID)
    assert k & ~ct_bits == plain & ~ct_bits


def test_the_daemon_collects_expired_connections_on_its_timer(daemon):
    """Every CT_GC_INTERVAL the daemon's loop removes expired connections
    (gc_worker), without a packet having to meet them."""
    import time

    from ovsdp.server import daemon as D

    def setup():
        tr = daemon.module.init_net.conntrack
        res = tr.process(udp()[14:], 2, 0)
        assert tr.confirm(res)
        tr.set_timeout(res.conn, -1)                     # long expired
        return tr

    tr = daemon.call(setup)
    deadline = time.monotonic() + 3 * D.CT_GC_INTERVAL + 2
    while daemon.call(tr.__len__) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.call(tr.__len__) == 0
