"""NAT in the CT action, on hand-built packets (net/openvswitch/conntrack.c's
ovs_ct_nat() on nf_nat): SNAT and DNAT of UDP, TCP and ICMP echo over IPv4
and IPv6, replies translated back, port ranges and clashes, ICMP errors
related to a translated connection (the embedded packet too), the key's
snat/dnat bits and rewritten fields, the checksums, and the action's
validation and dump."""

import errno
import ipaddress
import struct

import pytest
from scapy.all import ICMP, IP, TCP, UDP, Ether, ICMPv6DestUnreach, ICMPv6EchoRequest, IPv6, Raw

from ovsdp import uapi as U
from ovsdp.datapath import conntrack as CT
from ovsdp.datapath import key_layout as K
from ovsdp.datapath import nf_nat_core as NAT
from ovsdp.datapath.checksum import inet_csum
from ovsdp.netlink.attr import NetlinkError, nla

from .test_actions import DST, SRC, FakeDP, run

A_CT = U.OVS_ACTION_ATTR_CT
A_RECIRC = U.OVS_ACTION_ATTR_RECIRC
A_OUTPUT = U.OVS_ACTION_ATTR_OUTPUT
TRK, NEW, EST, REL, RPL, INV, SNAT, DNAT = 0x20, 0x01, 0x02, 0x04, 0x08, 0x10, 0x40, 0x80
COMMIT = nla(U.OVS_CT_ATTR_COMMIT)


def ip4(a):
    return int(ipaddress.ip_address(a))


def nat(kind=None, lo=None, hi=None, plo=None, phi=None, *flags):
    parts = []
    if kind:
        parts.append(nla(U.OVS_NAT_ATTR_SRC if kind == "src" else U.OVS_NAT_ATTR_DST))
    for attr, v in ((U.OVS_NAT_ATTR_IP_MIN, lo), (U.OVS_NAT_ATTR_IP_MAX, hi)):
        if v is not None:
            parts.append(nla(attr, ipaddress.ip_address(v).packed))
    for attr, v in ((U.OVS_NAT_ATTR_PROTO_MIN, plo), (U.OVS_NAT_ATTR_PROTO_MAX, phi)):
        if v is not None:
            parts.append(nla(attr, struct.pack("=H", v)))
    parts.extend(nla(f) for f in flags)
    return nla(U.OVS_CT_ATTR_NAT, b"".join(parts))


def ct(*attrs, eth_type=K.ETH_P_IP):
    return (A_CT, CT.parse_ct(b"".join(attrs), eth_type))


def through(dp, frame, acts):
    """ct actions, output to port 2, recirculate: (key after, frame out)."""
    dp.recircs.clear()
    before = len(dp.out(2))
    err, _ = run(dp, frame, list(acts) + [(A_OUTPUT, 2), (A_RECIRC, 1)])
    assert err == 0
    sent = dp.out(2)[before:]
    return dp.recircs[-1]["key"], (sent[-1] if sent else None)


def state(k):
    return (k >> K.S_CT_STATE) & 0xFF


def frame_csums_valid(frame):
    """The IPv4 header, L4 and embedded checksums verify (sum to zero)."""
    pkt = Ether(frame)
    rebuilt = Ether(frame)
    for cls, field in ((IP, "chksum"), (TCP, "chksum"), (UDP, "chksum"), (ICMP, "chksum"),
                       (ICMPv6EchoRequest, "cksum"), (ICMPv6DestUnreach, "cksum")):
        layer = rebuilt.getlayer(cls)
        while layer is not None:
            if getattr(layer, field) != 0 or cls is not UDP:
                setattr(layer, field, None)
            layer = layer.payload.getlayer(cls) if layer.payload else None
    return bytes(Ether(bytes(rebuilt))) == bytes(pkt)


def udp(a="10.0.0.1", b="10.0.0.2", sport=1111, dport=2222):
    return bytes(Ether(src=SRC, dst=DST) / IP(src=a, dst=b) / UDP(sport=sport, dport=dport)
                 / Raw(b"payload!"))


def tcp(a="10.0.0.1", b="10.0.0.2", sport=40000, dport=80, flags="S", seq=1000, ack=0):
    return bytes(Ether(src=SRC, dst=DST) / IP(src=a, dst=b)
                 / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack))


def test_snat_udp_and_the_reply_translated_back():
    dp = FakeDP()
    k, out = through(dp, udp(), [ct(COMMIT, nat("src", "192.168.0.100"))])
    assert state(k) == TRK | NEW | SNAT
    assert K.get(k, "ipv4_src") == ip4("192.168.0.100") and K.get(k, "tp_src") == 1111
    p = Ether(out)
    assert (p[IP].src, p[UDP].sport, p[IP].dst) == ("192.168.0.100", 1111, "10.0.0.2")
    assert frame_csums_valid(out)
    (conn,) = list(dp.conntrack)
    assert conn.tuple[1].dst == ip4("192.168.0.100")      # replies come to the NAT address
    # the reply: to the NAT address, translated back to the client
    k, out = through(dp, udp("10.0.0.2", "192.168.0.100", 2222, 1111), [ct(nla(
        U.OVS_CT_ATTR_NAT))])
    assert state(k) == TRK | EST | RPL | DNAT
    assert K.get(k, "ipv4_dst") == ip4("10.0.0.1")
    p = Ether(out)
    assert (p[IP].dst, p[UDP].dport) == ("10.0.0.1", 1111) and frame_csums_valid(out)
    # the next original-direction packet: ct(nat) translates it like the first
    k, out = through(dp, udp(), [ct(nla(U.OVS_CT_ATTR_NAT))])
    assert state(k) == TRK | EST | SNAT and Ether(out)[IP].src == "192.168.0.100"


def test_dnat_tcp_to_a_server_address_and_port():
    dp = FakeDP()
    act = ct(COMMIT, nat("dst", "10.0.0.9", None, 8080))
    k, out = through(dp, tcp(), [act])
    assert state(k) & DNAT and K.get(k, "ipv4_dst") == ip4("10.0.0.9")
    assert K.get(k, "tp_dst") == 8080
    p = Ether(out)
    assert (p[IP].dst, p[TCP].dport, p[IP].src, p[TCP].sport) == ("10.0.0.9", 8080,
                                                                     "10.0.0.1", 40000)
    assert frame_csums_valid(out)
    k, out = through(dp, tcp("10.0.0.9", "10.0.0.1", 8080, 40000, "SA", 5000, 1001),
                     [ct(nla(U.OVS_CT_ATTR_NAT))])
    assert state(k) == TRK | EST | RPL | SNAT
    p = Ether(out)
    assert (p[IP].src, p[TCP].sport) == ("10.0.0.2", 80) and frame_csums_valid(out)


def test_a_taken_port_moves_and_a_one_port_range_that_is_taken_drops():
    dp = FakeDP()
    dp.conntrack.rng.seed(7)
    through(dp, udp(), [ct(COMMIT, nat("src", "192.168.0.100"))])
    # another client, same source port, same NAT address: 1111 is taken
    k, out = through(dp, udp("10.0.0.3"), [ct(COMMIT, nat("src", "192.168.0.100"))])
    sport = Ether(out)[UDP].sport
    assert sport != 1111 and 1024 <= sport <= 65535 and K.get(k, "tp_src") == sport
    assert len(dp.conntrack) == 2
    # a range of one port: the first gets it, the second cannot and is dropped
    one = nat("src", "192.168.0.200", None, 5000)
    _, out = through(dp, udp(sport=7), [ct(COMMIT, one)])
    assert Ether(out)[UDP].sport == 5000
    err, _ = run(dp, udp("10.0.0.3", sport=7), [ct(COMMIT, one), (A_OUTPUT, 2)])
    assert err == errno.EINVAL and len(dp.conntrack) == 3
    # a range of two: the second takes the other port
    two = nat("src", "192.168.0.201", None, 6000, 6001)
    ports = {Ether(through(dp, udp(a, sport=9), [ct(COMMIT, two)])[1])[UDP].sport
             for a in ("10.0.0.1", "10.0.0.3")}
    assert ports == {6000, 6001}


def test_address_ranges_map_a_source_consistently():
    dp = FakeDP()
    act = ct(COMMIT, nat("src", "172.16.0.10", "172.16.0.19"))
    chosen = set()
    for sport in range(3000, 3010):
        _, out = through(dp, udp(sport=sport), [act])
        chosen.add(Ether(out)[IP].src)
    assert len(chosen) == 1                     # same hosts: the same address
    (addr,) = chosen
    assert ip4("172.16.0.10") <= ip4(addr) <= ip4("172.16.0.19")


def test_icmp_echo_snat_and_reply():
    dp = FakeDP()
    echo = bytes(Ether(src=SRC, dst=DST) / IP(src="10.0.0.1", dst="8.8.8.8")
                 / ICMP(type=8, id=77, seq=1) / Raw(b"ping"))
    k, out = through(dp, echo, [ct(COMMIT, nat("src", "192.168.0.100"))])
    assert state(k) & SNAT and Ether(out)[IP].src == "192.168.0.100"
    nat_id = Ether(out)[ICMP].id
    assert frame_csums_valid(out)
    rep = bytes(Ether(src=DST, dst=SRC) / IP(src="8.8.8.8", dst="192.168.0.100")
                / ICMP(type=0, id=nat_id, seq=1) / Raw(b"ping"))
    k, out = through(dp, rep, [ct(nla(U.OVS_CT_ATTR_NAT))])
    p = Ether(out)
    assert state(k) == TRK | EST | RPL | DNAT
    assert (p[IP].dst, p[ICMP].id) == ("10.0.0.1", 77) and frame_csums_valid(out)


def test_a_related_icmp_error_is_translated_inside_and_out():
    dp = FakeDP()
    _, out = through(dp, udp(), [ct(COMMIT, nat("src", "192.168.0.100"))])
    sent = Ether(out)[IP]
    # the server answers port unreachable to the NAT address, quoting what it got
    err_pkt = bytes(Ether(src=DST, dst=SRC) / IP(src="10.0.0.2", dst="192.168.0.100")
                    / ICMP(type=3, code=3) / bytes(sent)[:28])
    k, out = through(dp, err_pkt, [ct(nla(U.OVS_CT_ATTR_NAT))])
    assert state(k) & (TRK | REL | RPL) == TRK | REL | RPL
    # the key follows the rewritten outer header (Linux 6.10: the manip counts)
    assert state(k) & DNAT and K.get(k, "ipv4_dst") == ip4("10.0.0.1")
    p = Ether(out)
    assert p[IP].dst == "10.0.0.1"
    inner = IP(bytes(p[ICMP].payload))
    assert (inner.src, inner[UDP].sport, inner.dst) == ("10.0.0.1", 1111, "10.0.0.2")
    icmp = bytes(p[ICMP])
    assert inet_csum(icmp) == 0                  # the ICMP checksum covers the new inner
    ih = bytes(inner)[:20]
    assert inet_csum(ih) == 0                    # the inner IP header checksum too
    assert inet_csum(bytes(p[IP])[:20]) == 0


def test_ipv6_snat_udp_with_checksums():
    dp = FakeDP()
    f = bytes(Ether(src=SRC, dst=DST) / IPv6(src="fd00::1", dst="fd00::2")
              / UDP(sport=1111, dport=2222) / Raw(b"payload!"))
    act = ct(COMMIT, nat("src", "fd00::100"), eth_type=K.ETH_P_IPV6)
    k, out = through(dp, f, [act])
    assert state(k) & SNAT and K.get(k, "ipv6_src") == int(ipaddress.ip_address("fd00::100"))
    p = Ether(out)
    assert p[IPv6].src == "fd00::100"
    q = Ether(out)
    q[UDP].chksum = None
    assert Ether(bytes(q))[UDP].chksum == p[UDP].chksum
    rep = bytes(Ether(src=DST, dst=SRC) / IPv6(src="fd00::2", dst="fd00::100")
                / UDP(sport=2222, dport=1111) / Raw(b"answer"))
    k, out = through(dp, rep, [ct(nla(U.OVS_CT_ATTR_NAT), eth_type=K.ETH_P_IPV6)])
    assert Ether(out)[IPv6].dst == "fd00::1" and state(k) & DNAT


def test_ipv6_related_icmpv6_error_through_snat():
    dp = FakeDP()
    f = bytes(Ether(src=SRC, dst=DST) / IPv6(src="fd00::1", dst="fd00::2")
              / UDP(sport=1111, dport=2222) / Raw(b"payload!"))
    _, out = through(dp, f, [ct(COMMIT, nat("src", "fd00::100"), eth_type=K.ETH_P_IPV6)])
    quoted = bytes(Ether(out)[IPv6])
    e = bytes(Ether(src=DST, dst=SRC) / IPv6(src="fd00::2", dst="fd00::100")
              / ICMPv6DestUnreach(code=4) / quoted)
    k, out = through(dp, e, [ct(nla(U.OVS_CT_ATTR_NAT), eth_type=K.ETH_P_IPV6)])
    p = Ether(out)
    assert p[IPv6].dst == "fd00::1" and state(k) & REL
    inner = IPv6(bytes(p[ICMPv6DestUnreach].payload))
    assert inner.src == "fd00::1" and inner[UDP].sport == 1111
    q = Ether(out)
    q[ICMPv6DestUnreach].cksum = None
    assert Ether(bytes(q))[ICMPv6DestUnreach].cksum == p[ICMPv6DestUnreach].cksum


def test_nat_of_a_new_connection_waits_for_the_commit():
    dp = FakeDP()
    k, out = through(dp, udp(), [ct(nla(U.OVS_CT_ATTR_NAT))])   # lookup only: nothing
    assert state(k) == TRK | NEW and Ether(out)[IP].src == "10.0.0.1"
    # once per packet and zone: a second ct(nat) after NAT leaves it alone
    k, out = through(dp, udp(), [ct(COMMIT, nat("src", "192.168.0.100")),
                                 ct(COMMIT, nat("src", "192.168.0.150"))])
    assert Ether(out)[IP].src == "192.168.0.100"


def test_parse_nat_range_and_dump_round_trip():
    raw = COMMIT + nla(U.OVS_CT_ATTR_ZONE, struct.pack("=H", 0)) + nat(
        "src", "10.1.0.1", "10.1.0.9", 1000, 2000, U.OVS_NAT_ATTR_PERSISTENT,
        U.OVS_NAT_ATTR_PROTO_RANDOM)
    info = CT.parse_ct(raw, K.ETH_P_IP)
    r = info.range
    assert (r.min_addr, r.max_addr, r.min_proto, r.max_proto) == (
        ip4("10.1.0.1"), ip4("10.1.0.9"), 1000, 2000)
    assert r.flags == (NAT.NF_NAT_RANGE_MAP_IPS | NAT.NF_NAT_RANGE_PROTO_SPECIFIED
                       | NAT.NF_NAT_RANGE_PERSISTENT | NAT.NF_NAT_RANGE_PROTO_RANDOM_FULLY)
    assert CT.action_to_attrs(info) == raw
    # a missing maximum is the minimum, and the dump leaves it out again
    raw = COMMIT + nla(U.OVS_CT_ATTR_ZONE, struct.pack("=H", 0)) + nat("dst", "10.1.0.1",
                                                                       None, 80)
    info = CT.parse_ct(raw, K.ETH_P_IP)
    assert (info.range.max_addr, info.range.max_proto) == (ip4("10.1.0.1"), 80)
    assert CT.action_to_attrs(info) == raw
    # plain nat: an empty nest
    raw = nla(U.OVS_CT_ATTR_ZONE, struct.pack("=H", 0)) + nla(U.OVS_CT_ATTR_NAT)
    assert CT.action_to_attrs(CT.parse_ct(raw, K.ETH_P_IP)) == raw


@pytest.mark.parametrize("attrs, msg", [
    (nat("src") + COMMIT, "NAT attributes may be specified only when CT COMMIT"),
    (COMMIT + nla(U.OVS_CT_ATTR_NAT, nla(U.OVS_NAT_ATTR_SRC) + nla(U.OVS_NAT_ATTR_DST)),
     "Only one type of NAT"),
    (COMMIT + nla(U.OVS_CT_ATTR_NAT, nla(U.OVS_NAT_ATTR_PERSISTENT)), "NAT flags may be given"),
    (COMMIT + nla(U.OVS_CT_ATTR_NAT, nla(U.OVS_NAT_ATTR_SRC)
                  + nla(U.OVS_NAT_ATTR_IP_MIN, b"\1\2\3")), "unexpected length"),
])
def test_parse_nat_errors(attrs, msg):
    with pytest.raises(NetlinkError) as ei:
        CT.parse_ct(attrs, K.ETH_P_IP)
    assert msg in ei.value.msg



def test_a_source_keeps_its_mapping_towards_other_destinations():
    """find_appropriate_src(): a second connection from the same address and
    port gets the mapping the first one got, when it is free."""
    dp = FakeDP()
    act = ct(COMMIT, nat("src", "192.168.0.100", None, 5000, 6000))
    _, out = through(dp, udp(b="10.0.0.2"), [act])
    first = Ether(out)[UDP].sport
    assert 5000 <= first <= 6000
    for dst in ("10.0.0.3", "10.0.0.4"):
        _, out = through(dp, udp(b=dst), [act])
        assert Ether(out)[UDP].sport == first
    # once the connections are gone, the index forgets them
    dp.conntrack.flush()
    assert dp.conntrack.nat_bysource == {}


def test_exhausted_port_range_is_bounded_work():
    """A full range costs at most NF_NAT_MAX_ATTEMPTS tries per halving, and
    the packet is dropped at confirm (insert_failed), nothing else."""
    dp = FakeDP()
    act = ct(COMMIT, nat("src", "192.168.0.100", None, 7000, 7031))
    for i in range(32):
        err, _ = run(dp, udp(sport=100 + i), [act])
        assert err == 0
    assert len(dp.conntrack) == 32
    err, _ = run(dp, udp(sport=99), [act])
    assert err == errno.EINVAL and len(dp.conntrack) == 32
    assert dp.conntrack.stats.insert_failed == 1
