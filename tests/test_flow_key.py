"""Flow key extraction (ovsdp.datapath.flow_key) against the kernel's rules."""

import errno
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

scapy_all = pytest.importorskip("scapy.all")
from scapy.all import (  # noqa: E402
    ARP,
    ICMP,
    IP,
    LLC,
    SCTP,
    SNAP,
    TCP,
    UDP,
    Dot1AD,
    Dot1Q,
    Dot3,
    Ether,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPOption_NOP,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Raw,
)
from scapy.contrib.mpls import MPLS  # noqa: E402
from scapy.layers.ipsec import AH  # noqa: E402

from ovsdp.datapath import flow_hash as FH  # noqa: E402
from ovsdp.datapath import flow_key as F  # noqa: E402
from ovsdp.datapath import key_layout as K  # noqa: E402

SRC = "00:00:00:00:00:01"
DST = "00:00:00:00:00:02"
MAC_SRC = 1
MAC_DST = 2
META = K.make(in_port=3, recirc_id=0x11, priority=7, skb_mark=9, dp_hash=0x55)


def eth(**kw):
    return Ether(src=SRC, dst=DST, **kw)


def ip4(a):
    return int.from_bytes(bytes(int(x) for x in a.split(".")), "big")


def ip6(a):
    import ipaddress
    return int(ipaddress.IPv6Address(a))


def L2(eth_type, **extra):
    return dict(eth_src=MAC_SRC, eth_dst=MAC_DST, eth_type=eth_type, **extra)


def expect(frame, expected, meta=META):
    data = bytes(frame)
    key = F.extract(data, meta)
    assert K.fields_of(key) == K.fields_of(K.make(**expected) | meta)
    assert key == F.extract_slow(data, meta)
    return key


IPV4_TCP = dict(ip_proto=6, ip_tos=0x10, ip_ttl=64, ipv4_src=ip4("10.0.0.1"),
                ipv4_dst=ip4("10.0.0.2"), tp_src=1234, tp_dst=80, tcp_flags=0x18)

# ------------------------------------------------------------------- corpus
# (name, frame, expected fields)
CORPUS = [
    ("ipv4-tcp",
     eth() / IP(src="10.0.0.1", dst="10.0.0.2", tos=0x10, ttl=64)
     / TCP(sport=1234, dport=80, flags="PA"),
     L2(0x0800, **IPV4_TCP)),
    ("ipv4-tcp-df",
     eth() / IP(src="10.0.0.1", dst="10.0.0.2", tos=0x10, ttl=64, flags="DF")
     / TCP(sport=1234, dport=80, flags="PA"),
     L2(0x0800, **IPV4_TCP)),
    ("ipv4-options-tcp",
     eth() / IP(src="10.0.0.1", dst="10.0.0.2", tos=0x10, ttl=64, options=[IPOption_NOP()] * 4)
     / TCP(sport=1234, dport=80, flags="PA"),
     L2(0x0800, **IPV4_TCP)),
    ("ipv4-tcp-all-flags",
     eth() / IP(src="1.2.3.4", dst="5.6.7.8", ttl=1)
     / TCP(sport=1, dport=2, flags=0x1FF, reserved=7, dataofs=5),
     L2(0x0800, ip_proto=6, ip_ttl=1, ipv4_src=ip4("1.2.3.4"), ipv4_dst=ip4("5.6.7.8"),
        tp_src=1, tp_dst=2, tcp_flags=0xFFF)),
    ("ipv4-udp",
     eth() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=9) / UDP(sport=53, dport=5353) / Raw(b"x" * 30),
     L2(0x0800, ip_proto=17, ip_ttl=9, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"),
        tp_src=53, tp_dst=5353)),
    ("ipv4-udp-short",   # 42 bytes: no fast path
     eth() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=9) / UDP(sport=53, dport=5353),
     L2(0x0800, ip_proto=17, ip_ttl=9, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"),
        tp_src=53, tp_dst=5353)),
    ("ipv4-first-fragment",
     eth() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=9, flags="MF", proto=17)
     / UDP(sport=1, dport=2) / Raw(b"y" * 40),
     L2(0x0800, ip_proto=17, ip_ttl=9, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"),
        ip_frag=1, tp_src=1, tp_dst=2)),
    ("ipv4-later-fragment",
     eth() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=9, frag=100, proto=6) / Raw(b"z" * 40),
     L2(0x0800, ip_proto=6, ip_ttl=9, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"),
        ip_frag=2)),
    ("ipv4-later-fragment-mf",
     eth() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=9, frag=1, flags="MF", proto=17)
     / Raw(b"z" * 40),
     L2(0x0800, ip_proto=17, ip_ttl=9, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"),
        ip_frag=2)),
    ("ipv4-sctp",
     eth() / IP(src="10.0.0.1", dst="10.0.0.2") / SCTP(sport=5000, dport=6000),
     L2(0x0800, ip_proto=132, ip_ttl=64, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"),
        tp_src=5000, tp_dst=6000)),
    ("ipv4-icmp",
     eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3, code=1),
     L2(0x0800, ip_proto=1, ip_ttl=64, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"),
        tp_src=3, tp_dst=1)),
    ("ipv4-gre",
     eth() / IP(src="10.0.0.1", dst="10.0.0.2", proto=47) / Raw(b"\0" * 20),
     L2(0x0800, ip_proto=47, ip_ttl=64, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"))),
    ("ipv4-bad-ihl",
     eth() / IP(src="10.0.0.1", dst="10.0.0.2", ihl=4) / TCP(),
     L2(0x0800)),
    ("ipv4-ihl-beyond-frame",
     eth(type=0x0800) / Raw(bytes(IP(src="10.0.0.1", dst="10.0.0.2", ihl=15))),
     L2(0x0800)),
    ("ipv4-version-not-checked",
     eth() / IP(version=6, src="10.0.0.1", dst="10.0.0.2") / UDP(sport=7, dport=8),
     L2(0x0800, ip_proto=17, ip_ttl=64, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"),
        tp_src=7, tp_dst=8)),
    ("ipv4-tcp-bad-doff",
     eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, dataofs=4),
     L2(0x0800, ip_proto=6, ip_ttl=64, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"))),
    ("ipv4-tcp-doff-beyond-frame",
     eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, dataofs=15),
     L2(0x0800, ip_proto=6, ip_ttl=64, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"))),
    ("vlan-ipv4-udp",
     eth() / Dot1Q(vlan=100, prio=3) / IP(src="10.0.0.1", dst="10.0.0.2")
     / UDP(sport=1, dport=2),
     L2(0x0800, vlan_tci=(3 << 13) | 0x1000 | 100, vlan_tpid=0x8100, ip_proto=17, ip_ttl=64,
        ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"), tp_src=1, tp_dst=2)),
    ("vlan-dei",
     eth() / Dot1Q(vlan=5, dei=1) / Raw(b"\0" * 30),
     L2(0x0000 or 4, vlan_tci=0x1005, vlan_tpid=0x8100)),
    ("qinq-ipv6-udp",
     eth() / Dot1AD(vlan=10) / Dot1Q(vlan=20) / IPv6(src="::1", dst="::2", hlim=3)
     / UDP(sport=9, dport=10),
     L2(0x86DD, vlan_tci=0x1000 | 10, vlan_tpid=0x88A8, cvlan_tci=0x1000 | 20,
        cvlan_tpid=0x8100, ip_proto=17, ip_ttl=3, ipv6_src=1, ipv6_dst=2, tp_src=9,
        tp_dst=10)),
    ("three-tags",
     eth() / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP() / UDP(),
     L2(0x8100, vlan_tci=0x1001, vlan_tpid=0x88A8, cvlan_tci=0x1002, cvlan_tpid=0x8100)),
    ("llc-stp",
     Dot3(src=SRC, dst=DST) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(b"\0" * 35),
     L2(0x0004)),
    ("snap-ipv4",
     Dot3(src=SRC, dst=DST) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800)
     / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=3, dport=4),
     L2(0x0800, ip_proto=17, ip_ttl=64, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"),
        tp_src=3, tp_dst=4)),
    ("snap-cisco-oui",
     Dot3(src=SRC, dst=DST) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0x0C, code=0x2000)
     / Raw(b"\0" * 30),
     L2(0x0004)),
    ("snap-small-type",
     Dot3(src=SRC, dst=DST) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0100)
     / Raw(b"\0" * 30),
     L2(0x0004)),
    ("arp-request",
     eth(type=0x0806) / ARP(op=1, hwsrc="00:00:00:00:00:0a", psrc="10.0.0.1",
                            hwdst="00:00:00:00:00:0b", pdst="10.0.0.2"),
     L2(0x0806, ip_proto=1, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"),
        arp_sha=0x0A, arp_tha=0x0B)),
    ("rarp",
     eth(type=0x8035) / ARP(op=3, hwsrc="00:00:00:00:00:0a", psrc="10.0.0.1",
                            hwdst="00:00:00:00:00:0b", pdst="10.0.0.2"),
     L2(0x8035, ip_proto=3, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"),
        arp_sha=0x0A, arp_tha=0x0B)),
    ("arp-big-opcode",
     eth(type=0x0806) / ARP(op=0x1FF, hwsrc="00:00:00:00:00:0a", psrc="10.0.0.1",
                            hwdst="00:00:00:00:00:0b", pdst="10.0.0.2"),
     L2(0x0806, ipv4_src=ip4("10.0.0.1"), ipv4_dst=ip4("10.0.0.2"), arp_sha=0x0A,
        arp_tha=0x0B)),
    ("arp-not-ethernet",
     eth(type=0x0806) / ARP(hwtype=6, op=1, psrc="10.0.0.1", pdst="10.0.0.2"),
     L2(0x0806)),
    ("mpls-1",
     eth(type=0x8847) / MPLS(label=100, cos=5, s=1, ttl=64) / IP() / UDP(),
     L2(0x8847, mpls_lse0=(100 << 12) | (5 << 9) | 0x100 | 64, mpls_labels=1)),
    ("mpls-4-multicast",
     eth(type=0x8848) / MPLS(label=1, s=0, ttl=1) / MPLS(label=2, s=0, ttl=2)
     / MPLS(label=3, s=0, ttl=3) / MPLS(label=4, s=1, ttl=4) / Raw(b"\0" * 20),
     L2(0x8848, mpls_lse0=(1 << 12) | 1, mpls_lse1=(2 << 12) | 2, mpls_lse2=(3 << 12) | 3,
        mpls_labels=7)),
    ("mpls-no-bottom",
     eth(type=0x8847) / MPLS(label=1, s=0, ttl=1) / MPLS(label=2, s=0, ttl=2),
     L2(0x8847, mpls_lse0=(1 << 12) | 1, mpls_lse1=(2 << 12) | 2)),
    ("ipv6-tcp",
     eth() / IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0x28, fl=0x12345, hlim=5)
     / TCP(sport=22, dport=2222, flags="S"),
     L2(0x86DD, ip_proto=6, ip_tos=0x28, ip_ttl=5, ipv6_label=0x12345,
        ipv6_src=ip6("2001:db8::1"), ipv6_dst=ip6("2001:db8::2"), tp_src=22, tp_dst=2222,
        tcp_flags=2)),
    ("ipv6-sctp",
     eth() / IPv6(src="::1", dst="::2") / SCTP(sport=1, dport=2),
     L2(0x86DD, ip_proto=132, ip_ttl=64, ipv6_src=1, ipv6_dst=2, tp_src=1, tp_dst=2)),
    ("icmpv6-echo",
     eth() / IPv6(src="::1", dst="::2") / ICMPv6EchoRequest(),
     L2(0x86DD, ip_proto=58, ip_ttl=64, ipv6_src=1, ipv6_dst=2, tp_src=128)),
    ("nd-ns-sll",
     eth() / IPv6(src="::1", dst="::2") / ICMPv6ND_NS(tgt="fe80::1")
     / ICMPv6NDOptSrcLLAddr(lladdr="00:00:00:00:00:0a"),
     L2(0x86DD, ip_proto=58, ip_ttl=255, ipv6_src=1, ipv6_dst=2, tp_src=135,
        nd_target=ip6("fe80::1"), nd_sll=0x0A)),
    ("nd-na-tll",
     eth() / IPv6(src="::1", dst="::2") / ICMPv6ND_NA(tgt="fe80::2")
     / ICMPv6NDOptDstLLAddr(lladdr="00:00:00:00:00:0b"),
     L2(0x86DD, ip_proto=58, ip_ttl=255, ipv6_src=1, ipv6_dst=2, tp_src=136,
        nd_target=ip6("fe80::2"), nd_tll=0x0B)),
    ("nd-ns-sll-tll",
     eth() / IPv6(src="::1", dst="::2") / ICMPv6ND_NS(tgt="fe80::1")
     / ICMPv6NDOptSrcLLAddr(lladdr="00:00:00:00:00:0a")
     / ICMPv6NDOptDstLLAddr(lladdr="00:00:00:00:00:0b"),
     L2(0x86DD, ip_proto=58, ip_ttl=255, ipv6_src=1, ipv6_dst=2, tp_src=135,
        nd_target=ip6("fe80::1"), nd_sll=0x0A, nd_tll=0x0B)),
    ("nd-ns-duplicate-sll",
     eth() / IPv6(src="::1", dst="::2") / ICMPv6ND_NS(tgt="fe80::1")
     / ICMPv6NDOptSrcLLAddr(lladdr="00:00:00:00:00:0a")
     / ICMPv6NDOptSrcLLAddr(lladdr="00:00:00:00:00:0c"),
     L2(0x86DD, ip_proto=58, ip_ttl=255, ipv6_src=1, ipv6_dst=2, tp_src=135)),
    ("nd-ns-zero-sll-repeated",   # a zero address does not count as present
     eth() / IPv6(src="::1", dst="::2") / ICMPv6ND_NS(tgt="fe80::1")
     / ICMPv6NDOptSrcLLAddr(lladdr="00:00:00:00:00:00")
     / ICMPv6NDOptSrcLLAddr(lladdr="00:00:00:00:00:0c"),
     L2(0x86DD, ip_proto=58, ip_ttl=255, ipv6_src=1, ipv6_dst=2, tp_src=135,
        nd_target=ip6("fe80::1"), nd_sll=0x0C)),
    ("nd-ns-code-1",
     eth() / IPv6(src="::1", dst="::2") / ICMPv6ND_NS(tgt="fe80::1", code=1)
     / ICMPv6NDOptSrcLLAddr(lladdr="00:00:00:00:00:0a"),
     L2(0x86DD, ip_proto=58, ip_ttl=255, ipv6_src=1, ipv6_dst=2, tp_src=135, tp_dst=1)),
    ("nd-ns-zero-length-option",
     eth() / IPv6(src="::1", dst="::2") / ICMPv6ND_NS(tgt="fe80::1")
     / ICMPv6NDOptSrcLLAddr(lladdr="00:00:00:00:00:0a", len=0),
     L2(0x86DD, ip_proto=58, ip_ttl=255, ipv6_src=1, ipv6_dst=2, tp_src=135,
        nd_target=ip6("fe80::1"))),
    ("ipv6-exthdrs-in-order",
     eth() / IPv6(src="::1", dst="::2") / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
     / IPv6ExtHdrRouting(addresses=[], segleft=0) / IPv6ExtHdrFragment(offset=0, m=1)
     / TCP(sport=1, dport=2, flags="A"),
     L2(0x86DD, ip_proto=6, ip_ttl=64, ipv6_src=1, ipv6_dst=2, ip_frag=1, tp_src=1,
        tp_dst=2, tcp_flags=0x10,
        ipv6_exthdrs=F.OFPIEH12_HOP | F.OFPIEH12_DEST | F.OFPIEH12_ROUTER
        | F.OFPIEH12_FRAG)),
    ("ipv6-exthdrs-unsequenced",
     eth() / IPv6(src="::1", dst="::2") / IPv6ExtHdrFragment(offset=0)
     / IPv6ExtHdrHopByHop() / UDP(sport=1, dport=2),
     L2(0x86DD, ip_proto=17, ip_ttl=64, ipv6_src=1, ipv6_dst=2, ip_frag=1, tp_src=1,
        tp_dst=2, ipv6_exthdrs=F.OFPIEH12_FRAG | F.OFPIEH12_UNSEQ)),   # HOP only when first
    ("ipv6-exthdrs-repeated-routing",
     eth() / IPv6(src="::1", dst="::2") / IPv6ExtHdrRouting(addresses=[], segleft=0)
     / IPv6ExtHdrRouting(addresses=[], segleft=0) / UDP(sport=1, dport=2),
     L2(0x86DD, ip_proto=17, ip_ttl=64, ipv6_src=1, ipv6_dst=2, tp_src=1, tp_dst=2,
        ipv6_exthdrs=F.OFPIEH12_ROUTER | F.OFPIEH12_UNREP | F.OFPIEH12_UNSEQ)),
    ("ipv6-ah-after-fragment",   # the kernel's IPPROTO_FRAGMENT-for-OFPIEH12_FRAG quirk
     eth() / IPv6(src="::1", dst="::2") / IPv6ExtHdrFragment(offset=0, nh=51)
     / AH(nh=6, payloadlen=4, icv=b"x" * 12) / TCP(sport=1, dport=2, flags="S"),
     L2(0x86DD, ip_proto=6, ip_ttl=64, ipv6_src=1, ipv6_dst=2, ip_frag=1, tp_src=1,
        tp_dst=2, tcp_flags=2,
        ipv6_exthdrs=F.OFPIEH12_FRAG | F.OFPIEH12_AUTH | F.OFPIEH12_UNSEQ)),
    ("ipv6-later-fragment",
     eth() / IPv6(src="::1", dst="::2") / IPv6ExtHdrFragment(offset=100, nh=6)
     / Raw(b"\0" * 20),
     L2(0x86DD, ip_proto=44, ip_ttl=64, ipv6_src=1, ipv6_dst=2, ip_frag=2,
        ipv6_exthdrs=F.OFPIEH12_FRAG)),
    ("ipv6-later-fragment-then-exthdr",   # ipv6_find_hdr(): -ENOENT, flagged a fragment
     eth() / IPv6(src="::1", dst="::2") / IPv6ExtHdrFragment(offset=5, nh=60)
     / Raw(b"\x06\x00" + b"\0" * 14),
     L2(0x86DD, ip_proto=59, ip_ttl=64, ipv6_src=1, ipv6_dst=2, ip_frag=1,
        ipv6_exthdrs=F.OFPIEH12_FRAG | F.OFPIEH12_DEST | F.OFPIEH12_UNSEQ)),
    ("ipv6-no-next-header",
     eth() / IPv6(src="::1", dst="::2", nh=59) / Raw(b"\0" * 8),
     L2(0x86DD, ip_proto=59, ip_ttl=64, ipv6_src=1, ipv6_dst=2,
        ipv6_exthdrs=F.OFPIEH12_NONEXT)),
    ("ipv6-truncated-exthdr",
     eth() / IPv6(src="::1", dst="::2", nh=0) / Raw(b"\x06"),
     L2(0x86DD, ip_proto=59, ip_ttl=64, ipv6_src=1, ipv6_dst=2,
        ipv6_exthdrs=F.OFPIEH12_HOP)),
    ("ipv6-short-header",
     eth(type=0x86DD) / Raw(bytes(IPv6(src="::1", dst="::2"))[:39]),
     L2(0x86DD)),
    ("lldp",
     eth(type=0x88CC) / Raw(b"\x02\x07" + b"\0" * 40),
     L2(0x88CC)),
    ("nsh-md1",
     eth(type=0x894F) / Raw(b"\0\x06\x01\x03" + b"\0" * 40),
     L2(0x894F, nsh_mdtype=1, nsh_np=3)),
]
CORPUS_IDS = [c[0] for c in CORPUS]


@pytest.mark.parametrize("name,frame,expected", CORPUS, ids=CORPUS_IDS)
def test_corpus(name, frame, expected):
    if name == "vlan-dei":
        # raw payload after a tag: its type is 0 -> 802.2
        expected = dict(expected, eth_type=0x0004)
    expect(frame, expected)


def test_vlan_fast_path():
    frame = bytes(eth() / Dot1Q(vlan=100, prio=3) / IP(src="10.0.0.1", dst="10.0.0.2")
                  / TCP(sport=1, dport=2, flags="S"))
    assert F.extract(frame, META) == F.extract_slow(frame, META)
    assert K.get(F.extract(frame, 0), "vlan_tci") == 0x7064


def test_fast_path_taken_for_common_frames():
    """The fast path agrees with the parser and handles what it should."""
    for name in ("ipv4-tcp", "ipv4-tcp-df", "ipv4-udp", "ipv4-tcp-all-flags"):
        frame = bytes(dict((c[0], c[1]) for c in CORPUS)[name])
        assert len(frame) >= 54
        key = F.extract(frame, META)
        assert key == F.extract_slow(frame, META)
        # the fast path is exactly the masked image
        keep = F.KEEP_TCP if frame[23] == 6 else F.KEEP_UDP
        assert key == (int.from_bytes(frame[:54], "big") & keep) | META


def test_extract_l3():
    pkt = bytes(IP(src="10.0.0.1", dst="10.0.0.2", ttl=7) / UDP(sport=1, dport=2))
    meta = META | K.make(eth_type=0x0800, no_eth=1)     # as packet EXECUTE passes it
    key = F.extract_l3(pkt, 0x0800, meta)
    assert K.fields_of(key) == K.fields_of(META | K.make(
        no_eth=1, eth_type=0x0800, ip_proto=17, ip_ttl=7, ipv4_src=ip4("10.0.0.1"),
        ipv4_dst=ip4("10.0.0.2"), tp_src=1, tp_dst=2))
    mpls = bytes(MPLS(label=5, s=1, ttl=1) / pkt)
    key = F.extract_l3(mpls, 0x8847, META)
    assert K.fields_of(key) == K.fields_of(META | K.make(
        no_eth=1, eth_type=0x8847, mpls_lse0=(5 << 12) | 0x101, mpls_labels=1))
    assert F.extract_any(mpls, META, True, 0x8847) == key
    ly = F.layers(mpls, True, 0x8847)
    assert (ly.mac_len, ly.network, ly.transport) == (0, 0, -1)


@pytest.mark.parametrize("frame,expected", [
    (eth() / IP() / TCP(), (14, 14, 34, 0x0800, 6, 0x0800, 0)),
    (eth() / IP(options=[IPOption_NOP()] * 8) / UDP(), (14, 14, 42, 0x0800, 17, 0x0800, 0)),
    (eth() / Dot1Q() / IP() / UDP(), (18, 18, 38, 0x0800, 17, 0x0800, 1)),
    (eth() / Dot1AD() / Dot1Q() / IP() / UDP(), (22, 22, 42, 0x0800, 17, 0x8100, 2)),
    (eth() / IP(ihl=4) / UDP(), (14, 14, 14, 0x0800, 0, 0x0800, 0)),
    (eth() / IP(frag=3) / UDP(), (14, 14, 34, 0x0800, 17, 0x0800, 0)),
    (eth() / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment() / TCP(),
     (14, 14, 70, 0x86DD, 6, 0x86DD, 0)),
    (eth() / IPv6() / IPv6ExtHdrFragment(offset=9) / TCP(), (14, 14, -1, 0x86DD, 44, 0x86DD, 0)),
    (eth() / IPv6(nh=0) / Raw(b"\x06"), (14, 14, 14, 0x86DD, 59, 0x86DD, 0)),
    (eth(type=0x8847) / MPLS(s=1) / IP(), (14, 14, -1, 0x8847, 0, 0x8847, 0)),
    (eth() / Dot1Q() / MPLS(s=1) / IP(), (18, 18, -1, 0x8847, 0, 0x8847, 1)),
    (Dot3(src=SRC, dst=DST) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x800)
     / IP() / UDP(), (22, 22, 42, 0x0800, 17, 0x0800, 0)),
    (Dot3(src=SRC, dst=DST) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(b"\0" * 20),
     (14, 14, -1, 0x0004, 0, 0x0004, 0)),
    (eth() / ARP(), (14, 14, -1, 0x0806, 0, 0x0806, 0)),
])
def test_layers(frame, expected):
    ly = F.layers(bytes(frame))
    assert (ly.mac_len, ly.network, ly.transport, ly.eth_type, ly.ip_proto, ly.protocol,
            ly.vlan) == expected


# -------------------------------------------------------------- truncation
@pytest.mark.parametrize("name,frame,expected", CORPUS, ids=CORPUS_IDS)
def test_every_truncation(name, frame, expected):
    """Every prefix parses without error (but a cut NSH header, which
    key_extract() refuses with EINVAL), the fast path agrees, and what a
    prefix yields is a subset of what the full frame yields, except the
    documented cases where truncation changes the interpretation."""
    data = bytes(frame)
    full = K.fields_of(F.extract(data, 0))
    for cut in range(len(data) + 1):
        part = data[:cut]
        if name.startswith("nsh") and 14 <= cut < 14 + 24:
            with pytest.raises(F.ExtractError) as e:
                F.extract(part, META)
            assert e.value.errno == errno.EINVAL
            assert F.layers(part).network == 14
            continue
        key = F.extract(part, META)
        assert key == F.extract_slow(part, META)
        assert key & F.META_MASK == META
        F.layers(part)
        got = K.fields_of(key & ~F.META_MASK)
        for field, value in got.items():
            if field in ("eth_type", "ip_proto"):
                continue   # 802.2 / VLAN TPID / IPv6 NEXTHDR_NONE when cut short
            if field == "ipv6_exthdrs":
                assert value & ~full.get(field, 0) == 0, (name, cut)   # fewer headers seen
                continue
            if field == "ip_frag" and name == "ipv6-later-fragment":
                continue   # a cut fragment header: FRAG flag, offset unknown
            if field in ("nd_sll", "nd_tll", "nd_target") and ("zero-sll" in name
                                                                 or "duplicate" in name):
                continue
            assert full.get(field) == value, (name, cut, field)


def _fields(data):
    return K.fields_of(F.extract(data, 0))


def test_truncated_ipv4_tcp_rules():
    data = bytes(CORPUS[0][1])
    for cut in range(len(data) + 1):
        f = _fields(data[:cut])
        if cut < 34:
            assert not {"ip_proto", "ipv4_src", "ipv4_dst", "ip_ttl", "ip_tos"} & set(f)
        else:
            assert f["ipv4_src"] == ip4("10.0.0.1") and f["ip_proto"] == 6
        if cut < 54:
            assert not {"tp_src", "tp_dst", "tcp_flags"} & set(f)
        else:
            assert f["tp_src"] == 1234 and f["tcp_flags"] == 0x18
        if cut < 14:
            assert f.get("eth_type") == 0x0004
        else:
            assert f["eth_type"] == 0x0800


def test_truncated_udp_icmp_sctp_arp_rules():
    for frame, l4_end, fields in (
            (eth() / IP() / UDP(sport=1, dport=2), 42, ("tp_src", "tp_dst")),
            (eth() / IP() / ICMP(type=8), 42, ("tp_src",)),
            (eth() / IP() / SCTP(sport=1, dport=2), 46, ("tp_src", "tp_dst")),
            (eth() / IPv6() / UDP(sport=1, dport=2), 62, ("tp_src", "tp_dst")),
            (eth() / IPv6() / ICMPv6EchoRequest(), 62, ("tp_src",)),
            (eth(type=0x806) / ARP(psrc="1.1.1.1"), 42, ("ipv4_src", "ip_proto"))):
        data = bytes(frame)
        for cut in range(14, len(data) + 1):
            f = _fields(data[:cut])
            for name in fields:
                assert (name in f) == (cut >= l4_end), (frame.summary(), cut, name)


def test_truncated_vlan_and_mpls():
    data = bytes(eth() / Dot1Q(vlan=7) / IP() / UDP())
    assert _fields(data[:17]) == dict(eth_src=1, eth_dst=2, eth_type=0x8100)
    assert _fields(data[:18])["vlan_tci"] == 0x1007
    data = bytes(eth() / Dot1AD(vlan=7) / Dot1Q(vlan=8) / IP() / UDP())
    assert "cvlan_tci" not in _fields(data[:21])
    assert _fields(data[:21])["eth_type"] == 0x8100
    assert _fields(data[:22])["cvlan_tci"] == 0x1008
    data = bytes(eth(type=0x8847) / MPLS(label=1, s=0) / MPLS(label=2, s=1) / IP())
    assert "mpls_labels" not in _fields(data[:21])
    assert _fields(data[:21])["mpls_lse0"] >> 12 == 1
    assert _fields(data[:22])["mpls_labels"] == 3


def test_empty_and_tiny_frames():
    for n in range(15):
        key = F.extract(b"\xff" * n, META)
        assert key & F.META_MASK == META
        assert K.get(key, "eth_type") in (0x0004, 0xFFFF)
    assert K.get(F.extract(b"", 0), "eth_type") == 0x0004


# ---------------------------------------------------------------- hypothesis
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=160))
def test_random_bytes(data):
    key = F.extract(data, META)
    assert key == F.extract_slow(data, META)
    assert key & F.META_MASK == META
    F.layers(data)
    F.layers(data, True, 0x86DD)
    F.extract_l3(data, 0x0800, META)
    F.extract_l3(data, 0x86DD, META)
    F.extract_l3(data, 0x8847, META)


_prefixes = st.sampled_from([
    b"\x08\x00", b"\x86\xdd", b"\x81\x00", b"\x88\xa8", b"\x88\x47", b"\x08\x06",
    b"\x80\x35", b"\x00\x40", b"\x81\x00\x00\x05\x08\x00", b"\x88\xa8\x00\x01\x81\x00\x00\x02",
])


def _layers_tuple(ly):
    return (ly.mac_len, ly.network, ly.transport, ly.eth_type, ly.ip_proto, ly.protocol,
            ly.vlan)


@settings(max_examples=1500, deadline=None)
@given(st.binary(min_size=12, max_size=12), _prefixes, st.binary(max_size=120))
def test_random_typed_frames(macs, etype, rest):
    data = macs + etype + rest
    assert F.extract(data, META) == F.extract_slow(data, META)
    assert _layers_tuple(F.layers(data)) == _layers_tuple(F.parse(data)[1])


@st.composite
def ipv4_l4_frames(draw):
    vihl = draw(st.sampled_from([0x45, 0x45, 0x45, 0x46, 0x44, 0x55, 0x4F]))
    frag = draw(st.sampled_from([0, 0x4000, 0x2000, 0x0001, 0x1FFF, 0x8000, 0xC000]))
    proto = draw(st.sampled_from([6, 17, 6, 17, 132, 1, 47]))
    ip = (bytes([vihl, draw(st.integers(0, 255))]) + draw(st.binary(min_size=4, max_size=4))
          + frag.to_bytes(2, "big") + bytes([draw(st.integers(0, 255)), proto])
          + draw(st.binary(min_size=10, max_size=10)))
    l4 = draw(st.binary(min_size=0, max_size=80))
    if proto == 6 and len(l4) > 12 and draw(st.booleans()):
        l4 = l4[:12] + bytes([draw(st.sampled_from([0x50, 0x60, 0x40, 0xF0, 0x80]))]) + l4[13:]
    tag = draw(st.sampled_from([b"", b"", b"\x81\x00", b"\x88\xa8", b"\x91\x00",
                                b"\x81\x00\x00\x01\x81\x00"]))
    if tag:
        tag += draw(st.binary(min_size=2, max_size=2))
    return draw(st.binary(min_size=12, max_size=12)) + tag + b"\x08\x00" + ip + l4


@settings(max_examples=3000, deadline=None)
@given(ipv4_l4_frames(), st.integers(0, (1 << 64) - 1))
def test_fast_equals_slow(data, in_meta):
    meta = K.make(in_port=in_meta & 0xFFFF, recirc_id=in_meta >> 32)
    assert F.extract(data, meta) == F.extract_slow(data, meta)
    assert _layers_tuple(F.layers(data)) == _layers_tuple(F.parse(data)[1])


# ------------------------------------------------------------------ hashes
def test_jhash_1word_against_c():
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = r"""
#include <stdio.h>
#include <stdint.h>
typedef uint32_t u32;
static inline u32 rol32(u32 w, unsigned s) { return (w << s) | (w >> ((-s) & 31)); }
#define JHASH_INITVAL 0xdeadbeef
#define __jhash_final(a, b, c) { c ^= b; c -= rol32(b, 14); a ^= c; a -= rol32(c, 11); \
 b ^= a; b -= rol32(a, 25); c ^= b; c -= rol32(b, 16); a ^= c; a -= rol32(c, 4); \
 b ^= a; b -= rol32(a, 14); c ^= b; c -= rol32(b, 24); }
static u32 nwords(u32 a, u32 b, u32 c, u32 iv)
{ a += iv; b += iv; c += iv; __jhash_final(a, b, c); return c; }
int main(void) {
  u32 v[] = {0, 1, 0xdeadbeef, 0xffffffff, 12345678};
  for (int i = 0; i < 5; i++) for (int j = 0; j < 5; j++)
    printf("%u %u %u %u\n", v[i], v[j], nwords(v[i], 0, 0, v[j] + JHASH_INITVAL + 4),
           nwords(v[i], v[j], 7, 99 + JHASH_INITVAL + 12));
  return 0;
}
"""
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        c = os.path.join(d, "j.c")
        exe = os.path.join(d, "j")
        with open(c, "w") as fh:
            fh.write(src)
        subprocess.run([cc, "-O1", "-o", exe, c], check=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    for line in out.split("\n"):
        if not line:
            continue
        a, b, h1, h3 = (int(x) for x in line.split())
        assert FH.jhash_1word(a, b) == h1
        assert FH.jhash_3words(a, b, 7, 99) == h3


def test_packet_hashes():
    fwd = F.extract(bytes(eth() / IP(src="1.1.1.1", dst="2.2.2.2") / TCP(sport=5, dport=6)), 0)
    rev = F.extract(bytes(eth() / IP(src="2.2.2.2", dst="1.1.1.1") / TCP(sport=6, dport=5)), 0)
    assert 0 < FH.packet_hash(fwd) < 1 << 32
    assert FH.packet_hash(fwd) == FH.packet_hash(fwd)
    assert FH.symmetric_hash(fwd) == FH.symmetric_hash(rev)
    assert FH.packet_hash(fwd) != FH.packet_hash(rev)
    arp = F.extract(bytes(eth(type=0x806) / ARP()), 0)
    assert FH.packet_hash(arp) != 0
    assert FH.has_l4(fwd) and not FH.has_l4(arp)
    v6 = F.extract(bytes(eth() / IPv6(src="::1", dst="::2") / UDP(sport=1, dport=2)), 0)
    v6r = F.extract(bytes(eth() / IPv6(src="::2", dst="::1") / UDP(sport=2, dport=1)), 0)
    assert FH.symmetric_hash(v6) == FH.symmetric_hash(v6r)
    later = F.extract(bytes(eth() / IP(frag=5, proto=6) / Raw(b"\0" * 20)), 0)
    assert not FH.has_l4(later)


def test_fast_path_is_faster():
    import timeit
    tcp = bytes(CORPUS[0][1])
    fast = min(timeit.repeat(lambda: F.extract(tcp, META), number=2000, repeat=3))
    slow = min(timeit.repeat(lambda: F.extract_slow(tcp, META), number=2000, repeat=3))
    assert fast < slow
