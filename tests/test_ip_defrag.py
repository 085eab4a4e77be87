"""IP fragment reassembly (datapath/ip_defrag.py) and output fragmentation
(datapath/ip_fragment.py) on hand-built packets: order, duplicates,
overlaps, bad lengths, timeouts on a fake clock, the memory bound, IPv6
extension headers, zones; and the fragments output cuts."""

import errno
import random
import struct

import pytest
from scapy.all import (
    IP,
    UDP,
    IPOption_NOP,
    IPOption_RR,
    IPOption_Security,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Raw,
    fragment,
    fragment6,
)

from ovsdp.datapath import checksum as CS
from ovsdp.datapath import ip_defrag as D
from ovsdp.datapath import ip_fragment as F

EINPROGRESS = errno.EINPROGRESS
USER = D.IP_DEFRAG_CONNTRACK_IN


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def defrag(**kw):
    clock = Clock()
    return D.Defrag(clock=clock, **kw), clock


def dgram4(n=4000, ident=7, src="10.0.0.1", dst="10.0.0.2", **kw):
    return bytes(IP(src=src, dst=dst, id=ident, **kw) / UDP(sport=1111, dport=2222)
                 / Raw(bytes(i & 0xFF for i in range(n))))


def frags4(datagram, size=1480):
    """The datagram in fragments of ``size`` payload bytes (scapy cuts them)."""
    return [bytes(f) for f in fragment(IP(datagram), fragsize=size)]


def v4(offset, data, mf, ident=7, tos=0, df=False):
    """An IPv4 fragment by hand: ``data`` at byte ``offset``."""
    flags = (1 if mf else 0) | (2 if df else 0)          # scapy's MF and DF bits
    return bytes(IP(src="10.0.0.1", dst="10.0.0.2", id=ident, proto=17, tos=tos,
                    frag=offset // 8, flags=flags) / Raw(data))


def feed4(d, frags, user=USER):
    return [d.ip_defrag(f, user) for f in frags]


def udp6(n=4000, src="fd00::1", dst="fd00::2", ext=None):
    p = IPv6(src=src, dst=dst)
    if ext is not None:
        p = p / ext
    return p / UDP(sport=1111, dport=2222) / Raw(bytes(i & 0xFF for i in range(n)))


def frags6(pkt, ident=99, size=1232):
    """IPv6 fragments of ``pkt`` (scapy IPv6 with no fragment header): its
    unfragmentable part, then the fragment header, ``size`` bytes each (cut
    by ip_fragment.py, whose output test_ipv6_* below check byte by byte)."""
    raw = bytes(pkt)
    hlen = F.ip6_find_1stfragopt(raw)[0]
    return F.ipv6_fragment(raw, hlen + 8 + size, ident)


def v6frag(offset, data, mf, ident=99, nexthdr=17, tc=0, src="fd00::1"):
    fh = IPv6ExtHdrFragment(offset=offset // 8, m=int(mf), id=ident, nh=nexthdr)
    return bytes(IPv6(src=src, dst="fd00::2", tc=tc) / fh / Raw(data))


# --------------------------------------------------------------- IPv4
def test_in_order_reverse_and_shuffled_give_the_datagram():
    whole = dgram4()
    fr = frags4(whole)
    assert len(fr) == 3
    for order in (fr, fr[::-1], [fr[1], fr[0], fr[2]], [fr[2], fr[0], fr[1]]):
        d, _ = defrag()
        res = feed4(d, order)
        assert [r[0] for r in res[:-1]] == [EINPROGRESS] * 2
        err, got, mru = res[-1]
        assert err == 0 and got == whole
        assert mru == 1500                        # the largest fragment's IP length
        assert len(d.ipv4) == 0 and d.ipv4.mem == 0
        assert d.ipv4.stats.oks == 1 and d.ipv4.stats.reqds == 3


def test_many_small_fragments_in_random_order():
    whole = dgram4(n=3000)
    fr = frags4(whole, size=64)
    random.Random(5).shuffle(fr)
    d, _ = defrag()
    res = feed4(d, fr)
    assert all(r[0] == EINPROGRESS for r in res[:-1])
    assert res[-1][:2] == (0, whole)


def test_interleaved_datagrams_are_kept_apart():
    a, b = dgram4(ident=1), dgram4(ident=2, n=3500)
    fa, fb = frags4(a), frags4(b)
    d, _ = defrag()
    order = [fa[0], fb[0], fb[1], fa[2], fb[2], fa[1]]
    res = feed4(d, order)
    assert res[4][:2] == (0, b) and res[5][:2] == (0, a)
    assert [r[0] for r in res[:4]] == [EINPROGRESS] * 4
    assert d.ipv4.stats.oks == 2


def test_the_header_is_the_first_fragments_with_length_checksum_and_frag_fixed():
    whole = dgram4(ttl=9, options=[IPOption_NOP(), IPOption_NOP(), IPOption_NOP(),
                                   IPOption_NOP()])
    fr = frags4(whole)
    d, _ = defrag()
    err, got, _ = feed4(d, fr[::-1])[-1]
    assert err == 0 and got == whole
    ip = IP(got)
    assert ip.ihl == 6 and ip.len == len(whole) and ip.frag == 0 and ip.flags == 0
    assert CS.inet_csum(got[:24]) == 0


def test_df_is_kept_only_when_the_largest_fragment_had_it():
    d, _ = defrag()
    res = feed4(d, [v4(0, b"a" * 16, True, df=True), v4(16, b"b" * 8, False)])
    assert IP(res[-1][1]).flags == "DF"
    res = feed4(d, [v4(0, b"a" * 16, True, ident=8), v4(16, b"b" * 8, False,
                                                               ident=8, df=True)])
    assert res[-1][0] == 0 and IP(res[-1][1]).flags == 0


def test_an_exact_duplicate_is_dropped_and_the_datagram_still_completes():
    whole = dgram4()
    fr = frags4(whole)
    d, _ = defrag()
    assert d.ip_defrag(fr[0], USER)[0] == EINPROGRESS
    assert d.ip_defrag(fr[0], USER)[0] == errno.EINVAL     # IPFRAG_DUP: dropped
    assert d.ipv4.stats.dups == 1 and len(d.ipv4) == 1
    res = feed4(d, fr[1:])
    assert res[-1][:2] == (0, whole)
    assert d.ipv4.stats.fails == 0


def test_a_fragment_inside_a_run_is_a_duplicate_too():
    d, _ = defrag()
    assert d.ip_defrag(v4(0, b"a" * 16, True), USER)[0] == EINPROGRESS
    assert d.ip_defrag(v4(16, b"b" * 16, True), USER)[0] == EINPROGRESS   # one run
    assert d.ip_defrag(v4(8, b"a" * 16, True), USER)[0] == errno.EINVAL
    assert d.ipv4.stats.dups == 1 and d.ipv4.stats.overlaps == 0


@pytest.mark.parametrize("queued,offset,size", [((0, 1), 2952, 16), ((0, 2), 1472, 16),
                                                ((0, 2), 1400, 1600)])
def test_an_overlap_discards_the_whole_queue(queued, offset, size):
    whole = dgram4()
    fr = frags4(whole)                  # [0, 1480) [1480, 2960) [2960, 4008)
    d, _ = defrag()
    feed4(d, [fr[i] for i in queued])
    bad = v4(offset, b"z" * size, True)
    assert d.ip_defrag(bad, USER)[0] == errno.EINVAL
    st = d.ipv4.stats
    assert (st.overlaps, st.fails, st.dups) == (1, 1, 0) and len(d.ipv4) == 0
    # what was queued is gone: the missing fragment alone does not complete it
    (missing,) = {0, 1, 2} - set(queued)
    assert d.ip_defrag(fr[missing], USER)[0] == EINPROGRESS


def test_bad_lengths_discard_the_queue():
    d, _ = defrag()
    # a last fragment ending before data already queued
    feed4(d, [v4(16, b"b" * 16, True)])
    assert d.ip_defrag(v4(0, b"a" * 8, False), USER)[0] == errno.EINVAL
    # a second last fragment with another end
    feed4(d, [v4(16, b"b" * 8, False, ident=2)])
    assert d.ip_defrag(v4(0, b"a" * 32, False, ident=2), USER)[0] == errno.EINVAL
    # data beyond a known end
    feed4(d, [v4(16, b"b" * 8, False, ident=3)])
    assert d.ip_defrag(v4(24, b"c" * 8, True, ident=3), USER)[0] == errno.EINVAL
    # a zero-length non-last fragment (or one shorter than 8 bytes)
    assert d.ip_defrag(v4(8, b"", True, ident=4), USER)[0] == errno.EINVAL
    assert d.ip_defrag(v4(8, b"1234567", True, ident=5), USER)[0] == errno.EINVAL
    assert d.ipv4.stats.fails == 5 and len(d.ipv4) == 0


def test_a_non_last_fragment_not_a_multiple_of_8_is_cut_to_one():
    d, _ = defrag()
    assert d.ip_defrag(v4(0, b"a" * 20, True), USER)[0] == EINPROGRESS   # keeps 16
    err, got, _ = d.ip_defrag(v4(16, b"b" * 4, False), USER)
    assert err == 0 and got[20:] == b"a" * 16 + b"b" * 4


def test_a_datagram_beyond_65535_bytes_fails_at_reassembly():
    d, _ = defrag()
    pieces = [v4(0, b"a" * 8, True)]
    off = 8
    while off < 65528:
        n = min(1480, 65528 - off)
        pieces.append(v4(off, b"m" * n, True))
        off += n
    pieces.append(v4(65528, b"z" * 8, False))     # ends at 65536
    res = feed4(d, pieces)
    assert all(r[0] == EINPROGRESS for r in res[:-1])
    assert res[-1][0] == errno.E2BIG and d.ipv4.stats.fails == 1 and len(d.ipv4) == 0


def test_ecn_of_the_fragments_combines_as_rfc_3168_says():
    d, _ = defrag()
    res = feed4(d, [v4(0, b"a" * 8, True, tos=2), v4(8, b"b", False, tos=3)])
    assert IP(res[-1][1]).tos & 3 == 3                    # ECT(0) + CE: CE
    res = feed4(d, [v4(0, b"a" * 8, True, ident=9, tos=0),
                    v4(8, b"b", False, ident=9, tos=2)])
    assert res[-1][0] == errno.EINVAL                     # not-ECT + ECT: dropped
    assert d.ipv4.stats.fails == 1


def test_zones_and_protocols_make_different_queues():
    whole = dgram4()
    fr = frags4(whole)
    d, _ = defrag()
    assert d.ip_defrag(fr[0], USER + 1)[0] == EINPROGRESS
    assert d.ip_defrag(fr[1], USER + 2)[0] == EINPROGRESS
    assert d.ip_defrag(fr[2], USER + 1)[0] == EINPROGRESS
    assert len(d.ipv4) == 2
    assert d.ip_defrag(fr[1], USER + 1)[:2] == (0, whole)
    other = bytearray(fr[0])
    other[9] = 6
    other[10:12] = b"\0\0"
    assert d.ip_defrag(bytes(other), USER + 2)[0] == EINPROGRESS   # TCP: its own queue
    assert len(d.ipv4) == 2


def test_trailing_padding_is_not_fragment_data():
    d, _ = defrag()
    feed4(d, [v4(0, b"a" * 8, True)])
    err, got, _ = d.ip_defrag(v4(8, b"b", False) + b"\0" * 20, USER)
    assert err == 0 and got[20:] == b"a" * 8 + b"b"


def test_an_incomplete_datagram_times_out_after_30_seconds():
    fr = frags4(dgram4())
    d, clock = defrag()
    feed4(d, fr[:2])
    clock.now += 29.9
    assert d.expire() == 0 and len(d.ipv4) == 1
    clock.now += 0.2
    assert d.expire() == 1 and len(d.ipv4) == 0 and d.ipv4.mem == 0
    st = d.ipv4.stats
    assert (st.timeouts, st.fails, st.oks) == (1, 1, 0)
    # the rest coming late starts a new queue that never completes
    assert d.ip_defrag(fr[2], USER)[0] == EINPROGRESS


def test_timeouts_are_found_by_the_next_fragment_too():
    d, clock = defrag()
    feed4(d, [v4(0, b"a" * 8, True, ident=1)])
    clock.now += 10
    feed4(d, [v4(0, b"a" * 8, True, ident=2)])
    clock.now += 25                       # the first is 35 s old, the second 25 s
    feed4(d, [v4(0, b"a" * 8, True, ident=3)])
    assert len(d.ipv4) == 2 and d.ipv4.stats.timeouts == 1
    # a queue's time runs from its first fragment, not from its latest
    clock.now += 6
    feed4(d, [v4(8, b"b" * 8, True, ident=2)])
    assert d.ipv4.stats.timeouts == 2
    assert d.ip_defrag(v4(16, b"c", False, ident=2), USER)[0] == EINPROGRESS


def test_the_memory_bound_evicts_the_oldest_queues():
    d, clock = defrag(high_thresh=40_000, low_thresh=30_000)
    for i in range(40):
        clock.now += 0.01
        d.ip_defrag(v4(0, b"x" * 1000, True, ident=i), USER)
    assert d.ipv4.mem <= 40_000 + 2000
    st = d.ipv4.stats
    assert st.evictions > 0 and st.fails == st.evictions
    left = sorted(q.key[3] for q in d.ipv4.queues.values())
    assert left == [struct.pack("!H", i) for i in range(40 - len(left), 40)]   # the newest
    # a recent datagram still completes
    err, got, _ = d.ip_defrag(v4(1000 // 8 * 8, b"y", False, ident=39), USER)
    assert err == 0


# --------------------------------------------------------------- IPv6
def test_ipv6_in_any_order_gives_the_datagram_and_its_id():
    pkt = udp6()
    whole = bytes(pkt)
    fr = [bytes(f) for f in fragment6(IPv6(src=pkt.src, dst=pkt.dst)
                                       / IPv6ExtHdrFragment(id=99) / pkt.payload, 1280)]
    assert len(fr) == 4 and fr == frags6(pkt)           # scapy cuts them as we do
    for order in (fr, fr[::-1], [fr[2], fr[0], fr[3], fr[1]]):
        d, _ = defrag()
        res = [d.frag6_gather(f, USER, 3) for f in order]
        assert all(r[0] == EINPROGRESS for r in res[:-1])
        err, got, mru, ident = res[-1]
        assert (err, got, ident) == (0, whole, 99)
        assert mru == 1280                             # 40 + the largest payload_len
        assert d.ipv6.stats.oks == 1 and len(d.ipv6) == 0


def test_ipv6_extension_headers_before_the_fragment_header_stay():
    ext = (IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(addresses=["fd00::9"], segleft=0)
           / IPv6ExtHdrDestOpt())
    pkt = udp6(n=3000, ext=ext)
    whole = bytes(pkt)
    fr = frags6(pkt)
    hlen = F.ip6_find_1stfragopt(whole)[0]
    assert hlen == 40 + 8 + 24                          # hop-by-hop, routing (not dstopts)
    assert all(f[40] == 43 and f[48] == 44 for f in fr)     # routing: then the fragment
    d, _ = defrag()
    res = [d.frag6_gather(f, USER) for f in reversed(fr)]
    err, got, _mru, _id = res[-1]
    assert err == 0 and got == whole
    assert IPv6(got)[UDP].dport == 2222 and IPv6(got).plen == len(whole) - 40


def test_ipv6_overlap_discards_duplicate_is_kept_quietly():
    d, _ = defrag()
    assert d.frag6_gather(v6frag(0, b"a" * 16, True), USER)[0] == EINPROGRESS
    assert d.frag6_gather(v6frag(0, b"a" * 16, True), USER)[0] == EINPROGRESS   # dup
    assert d.ipv6.stats.dups == 1 and len(d.ipv6) == 1
    assert d.frag6_gather(v6frag(8, b"o" * 16, True), USER)[0] == errno.EINVAL  # overlap
    st = d.ipv6.stats
    assert (st.overlaps, st.fails, len(d.ipv6)) == (1, 1, 0)


def test_ipv6_bad_lengths():
    d, _ = defrag()
    # a non-last fragment not a multiple of 8: the queue goes, the packet passes as is
    feed = d.frag6_gather(v6frag(0, b"a" * 16, True, ident=1), USER)
    assert feed[0] == EINPROGRESS
    assert d.frag6_gather(v6frag(16, b"b" * 12, True, ident=1), USER)[:2] == (0, None)
    assert len(d.ipv6) == 0
    # beyond 65535
    assert d.frag6_gather(v6frag(65528, b"z" * 16, False, ident=2), USER)[0] == errno.EINVAL
    # a zero-length fragment
    assert d.frag6_gather(v6frag(8, b"", True, ident=3), USER)[0] == errno.EINVAL
    # a last fragment disagreeing with the known end: dropped, the queue kept
    assert d.frag6_gather(v6frag(16, b"b" * 8, False, ident=4), USER)[0] == EINPROGRESS
    assert d.frag6_gather(v6frag(0, b"a" * 32, False, ident=4), USER)[0] == errno.EINVAL
    assert d.frag6_gather(v6frag(0, b"a" * 16, True, ident=4), USER)[0] == 0


def test_ipv6_not_fragments_and_truncated_first_fragments_pass():
    d, _ = defrag()
    plain = bytes(udp6(n=10))
    assert d.frag6_gather(plain, USER) == (0, None, 0, None)
    short = v6frag(0, b"\x01\x02\x03", True, nexthdr=17)  # a first fragment, 3 bytes of UDP
    assert d.frag6_gather(short, USER) == (0, None, 0, None)
    assert len(d.ipv6) == 0


def test_ipv6_zones_sources_and_input_ports_make_different_queues():
    d, _ = defrag()
    a = v6frag(0, b"a" * 8, True)
    b = v6frag(8, b"b", False)
    assert d.frag6_gather(a, USER + 1, 1)[0] == EINPROGRESS
    assert d.frag6_gather(b, USER + 2, 1)[0] == EINPROGRESS     # another zone
    assert d.frag6_gather(b, USER + 1, 2)[0] == EINPROGRESS     # another input port
    assert d.frag6_gather(v6frag(8, b"b", False, src="fd00::7"), USER + 1, 1)[0] == EINPROGRESS
    assert len(d.ipv6) == 4
    assert d.frag6_gather(b, USER + 1, 1)[0] == 0


def test_ipv6_times_out_after_60_seconds():
    d, clock = defrag()
    d.frag6_gather(v6frag(0, b"a" * 8, True), USER)
    d.ip_defrag(v4(0, b"a" * 8, True), USER)
    clock.now += 45
    assert d.expire() == 1 and len(d.ipv6) == 1 and len(d.ipv4) == 0
    clock.now += 16
    assert d.expire() == 1 and len(d) == 0
    assert d.ipv6.stats.timeouts == 1 and d.ipv4.stats.timeouts == 1


# ------------------------------------------------------------- output
def test_ip_do_fragment_cuts_at_the_mtu_and_copies_the_whole_header():
    opts = [IPOption_RR(), IPOption_Security(), IPOption_NOP()]
    whole = bytes(IP(src="10.0.0.1", dst="10.0.0.2", id=77, flags="DF", options=opts)
                  / UDP(sport=1, dport=2) / Raw(b"p" * 3000))
    ihl = (whole[0] & 15) * 4
    out = F.ip_do_fragment(whole, 1000)
    assert [len(f) for f in out] == [ihl + (1000 - ihl) // 8 * 8] * 3 + [len(whole) - 3 * (
        (1000 - ihl) // 8 * 8)]
    for i, f in enumerate(out):
        ip = IP(f)
        assert f[20:ihl] == whole[20:ihl]               # every option, as Linux copies them
        assert ip.id == 77 and CS.inet_csum(f[:ihl]) == 0
        assert ip.flags == ("MF" if i < 3 else 0)       # DF ignored and not kept
    want = bytearray(whole)
    want[6:8] = b"\0\0"                                 # reassembled: no DF any more
    want[10:12] = b"\0\0"
    want[10:12] = struct.pack("!H", CS.inet_csum(want[:ihl]))
    d, _ = defrag()
    assert feed4(d, out)[-1][:2] == (0, bytes(want))


def test_ip_do_fragment_of_a_fragment_keeps_its_offset_and_mf():
    frag = v4(800, b"q" * 1000, True)
    out = F.ip_do_fragment(frag, 520)
    assert [IP(f).frag * 8 for f in out] == [800, 1296, 1792]
    assert all(IP(f).flags == "MF" for f in out)
    assert F.ip_do_fragment(frag, 27) == errno.EMSGSIZE


def test_ipv6_fragment_uses_the_mtu_but_at_least_1280_and_a_new_id_if_none():
    pkt = bytes(udp6(n=3000))
    out = F.ipv6_fragment(pkt, 1000, 1234)
    assert [len(f) for f in out] == [1280, 1280, 592]
    assert all(IPv6(f)[IPv6ExtHdrFragment].id == 1234 for f in out)
    got = F.ovs_fragment(b"\xaa" * 14 + pkt, 14, 0x86DD, 1500, None, None)
    ids = {IPv6(f[14:])[IPv6ExtHdrFragment].id for f in got}
    assert len(ids) == 1 and ids != {0} and all(f[:14] == b"\xaa" * 14 for f in got)
    d, _ = defrag()
    res = [d.frag6_gather(f[14:], USER) for f in got]
    assert res[-1][:2] == (0, pkt)
