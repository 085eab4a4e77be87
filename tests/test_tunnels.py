"""Tunnel vports (vxlan, geneve, gre) carrying traffic.

The first half runs anywhere: an in-memory daemon, packets handed to a
tunnel port's receive path and encapsulations kept by the port, checked
byte by byte against the kernel's formats.  The second half needs root:
the daemon with real devices, a namespace behind a veth as the underlay,
Linux's own tunnel devices (vxlan; geneve and gretap when the kernel has
them) or raw-socket peers in that namespace, and ping across.  Every
namespace, link and process is removed again; names carry a random suffix.
"""

import contextlib
import errno
import ipaddress
import itertools
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import time

import pytest

from ovsdp import odp, testbed
from ovsdp import uapi as U
from ovsdp.cli import dpctl
from ovsdp.client.dpif import Dpif
from ovsdp.datapath import key_layout as K
from ovsdp.datapath.offload import VNET_HDR
from ovsdp.netlink import attr as A
from ovsdp.netlink.attr import NetlinkError
from ovsdp.testbed import run
from ovsdp.vports import encap as E
from ovsdp.vports import tunnel as T
from ovsdp.vports import tunnel_socket as TS
from ovsdp.vports import vxlan as VX

SFX = secrets.token_hex(2)
_COUNTER = itertools.count(1)

MAC_A = bytes.fromhex("0200000000aa")
MAC_B = bytes.fromhex("0200000000bb")


# ------------------------------------------------------------------ packets
def ip4(s):
    return int(ipaddress.IPv4Address(s))


def ip6(s):
    return int(ipaddress.IPv6Address(s))


def ipv4_header(src, dst, proto, payload_len, tos=0, ttl=64, df=False, ident=0):
    hdr = struct.pack("!BBHHHBBHII", 0x45, tos, 20 + payload_len, ident, E.IP_DF if df else 0,
                      ttl, proto, 0, src, dst)
    return hdr[:10] + struct.pack("!H", E.inet_csum(hdr)) + hdr[12:]


def inner_frame(tos=0, ttl=64, sport=1000, dport=2000, payload=b"hello tunnel",
                src="10.1.0.1", dst="10.1.0.2", vlan=None):
    """Ethernet + IPv4 + UDP."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = ipv4_header(ip4(src), ip4(dst), 17, len(udp), tos=tos, ttl=ttl)
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return MAC_B + MAC_A + tag + b"\x08\x00" + ip + udp


def udp4(src, dst, sport, dport, payload, tos=0, ttl=64, df=False, csum=False):
    """A whole IPv4/UDP packet as a raw socket reads it."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if csum:
        udp = udp[:6] + struct.pack("!H", E.udp_checksum(E.AF_INET, src, dst, udp)) + udp[8:]
    return ipv4_header(src, dst, 17, len(udp), tos, ttl, df) + udp


def vxlan_pkt(vni, frame, flags=E.VXLAN_HF_VNI, reserved=0):
    return struct.pack("!II", flags, (vni << 8) | reserved) + frame


def geneve_pkt(vni, frame, opts=b"", oam=False, crit=False, proto=E.ETH_P_TEB, ver=0):
    return (struct.pack("!BBH", (ver << 6) | len(opts) // 4, (0x80 if oam else 0)
                        | (0x40 if crit else 0), proto)
            + struct.pack("!I", vni << 8) + opts + frame)


def gre_pkt(frame, key=None, csum=False, proto=E.ETH_P_TEB):
    return E.gre_header(proto, key, csum, frame) + frame


# -------------------------------------------------------------- key helpers
def attrs(buf):
    return {t & U.NLA_TYPE_MASK: p for t, p, _ in A.iter_attrs(buf)}


def tunnel_of(key):
    """The OVS_TUNNEL_KEY_ATTR_* of a key's OVS_KEY_ATTR_TUNNEL (None: none)."""
    k = attrs(key)
    if U.OVS_KEY_ATTR_TUNNEL not in k:
        return None
    return attrs(k[U.OVS_KEY_ATTR_TUNNEL])


def tun_summary(tun):
    """The tunnel attributes as plain values."""
    out = {}
    for t, p in tun.items():
        if t == U.OVS_TUNNEL_KEY_ATTR_ID:
            out["tun_id"] = struct.unpack("!Q", p)[0]
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV4_SRC:
            out["src"] = str(ipaddress.IPv4Address(p))
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV4_DST:
            out["dst"] = str(ipaddress.IPv4Address(p))
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV6_SRC:
            out["src"] = str(ipaddress.IPv6Address(p))
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV6_DST:
            out["dst"] = str(ipaddress.IPv6Address(p))
        elif t == U.OVS_TUNNEL_KEY_ATTR_TOS:
            out["tos"] = p[0]
        elif t == U.OVS_TUNNEL_KEY_ATTR_TTL:
            out["ttl"] = p[0]
        elif t == U.OVS_TUNNEL_KEY_ATTR_TP_SRC:
            out["tp_src"] = struct.unpack("!H", p)[0]
        elif t == U.OVS_TUNNEL_KEY_ATTR_TP_DST:
            out["tp_dst"] = struct.unpack("!H", p)[0]
        elif t == U.OVS_TUNNEL_KEY_ATTR_DONT_FRAGMENT:
            out["df"] = True
        elif t == U.OVS_TUNNEL_KEY_ATTR_CSUM:
            out["csum"] = True
        elif t == U.OVS_TUNNEL_KEY_ATTR_OAM:
            out["oam"] = True
        elif t == U.OVS_TUNNEL_KEY_ATTR_GENEVE_OPTS:
            out["geneve"] = bytes(p)
        elif t == U.OVS_TUNNEL_KEY_ATTR_VXLAN_OPTS:
            out["gbp"] = struct.unpack("=I", attrs(p)[U.OVS_VXLAN_EXT_GBP])[0]
        else:
            out[t] = bytes(p)
    return out


def in_port_of(key):
    return A.get_u32(attrs(key)[U.OVS_KEY_ATTR_IN_PORT])


# ----------------------------------------------------------- in-memory setup
class MemNet:
    """An in-memory daemon's datapath with the tunnel ports under test."""

    def __init__(self, daemon, dpif):
        self.daemon = daemon
        self.dpif = dpif
        self.dp = f"tdp{next(_COUNTER)}"
        dpif.dp_new(self.dp)
        self.ports = {}

    def add(self, name, vtype, dst_port=None, gbp=False):
        opts = Dpif.tunnel_options(dst_port, gbp) if vtype in ("vxlan", "geneve") else None
        v = self.dpif.vport_new(self.dp, name, vtype, options=opts)
        self.ports[name] = v.port_no
        return v.port_no

    def vport(self, name):
        return self.daemon.call(lambda: self.daemon.module.init_net.vports_by_name[name])

    def call(self, fn, *args):
        return self.daemon.call(fn, *args)

    def execute(self, frame, actions, key="in_port(0)"):
        self.dpif.execute(self.dp, frame, odp.parse_key(key)[0], odp.parse_actions(actions))

    def sent(self, name):
        return self.daemon.call(lambda: list(self.daemon.module.init_net.vports_by_name[name].sent))

    def stats(self, name):
        v = self.dpif.vport_get(self.dp, name)
        return v.stats

    def rx(self, name, method, *args):
        v = self.vport(name)
        self.daemon.call(getattr(v, method), *args)

    def upcall(self, timeout=2.0):
        return self.dpif.recv_upcall(timeout)


@pytest.fixture
def mem(daemon, dpif):
    return MemNet(daemon, dpif)


def stats_dict(s):
    return dict(s)


# ============================================================ wire formats
def test_udp_src_port_is_udp_flow_src_port():
    # (hash ^ hash << 16) * (max - min) >> 32 + min, in [min, max)
    assert E.udp_src_port(0, 32768, 61000) == 32768
    h = 0x12345678
    x = (h ^ (h << 16)) & 0xFFFFFFFF
    assert E.udp_src_port(h, 32768, 61000) == ((x * (61000 - 32768)) >> 32) + 32768
    for h in (1, 0xFFFFFFFF, 0x80000000, 0xDEADBEEF):
        assert 1 <= E.udp_src_port(h, 1, 65535) < 65535
    # one flow, one port; the hash looks at addresses and ports
    f1, f2 = inner_frame(sport=1), inner_frame(sport=2)
    assert E.flow_hash(f1) == E.flow_hash(inner_frame(sport=1, payload=b"other"))
    assert E.flow_hash(f1) != E.flow_hash(f2)


def test_vxlan_header_and_decap():
    f = inner_frame()
    assert E.vxlan_header(0x12345678, None) == bytes.fromhex("08000000 34567800")
    vni, gbp, inner = E.vxlan_decap(b"\0" * 8 + vxlan_pkt(42, f), False)
    assert (vni, gbp, inner) == (42, None, f)
    # reserved bits and unknown flags: dropped without a count
    for bad in (vxlan_pkt(42, f, flags=0), vxlan_pkt(42, f, reserved=1),
                vxlan_pkt(42, f, flags=E.VXLAN_HF_VNI | 0x01000000),
                vxlan_pkt(42, f, flags=E.VXLAN_HF_VNI | E.VXLAN_HF_GBP | 0x10)):
        with pytest.raises(E.Drop) as e:
            E.vxlan_decap(b"\0" * 8 + bad, False)
        assert e.value.counter is None
    # with the GBP extension: G bit, policy id, D and A bits into vxlan_metadata
    word = E.VXLAN_HF_VNI | E.VXLAN_HF_GBP | (0x48 << 16) | 0x0A0B
    vni, gbp, _ = E.vxlan_decap(b"\0" * 8 + vxlan_pkt(7, f, flags=word), True)
    assert (vni, gbp) == (7, E.VXLAN_GBP_DONT_LEARN | E.VXLAN_GBP_POLICY_APPLIED | 0x0A0B)
    assert E.vxlan_header(7, gbp) == struct.pack("!II", word, 7 << 8)
    # the extension tolerates other bits of its word, no G bit means no metadata
    _, gbp, _ = E.vxlan_decap(b"\0" * 8 + vxlan_pkt(7, f, flags=E.VXLAN_HF_VNI | 0x10), True)
    assert gbp is None


def test_vxlan_gpe_header_and_decap():
    f = inner_frame()
    ip = f[14:]
    i_p = E.VXLAN_HF_VNI | E.VXLAN_HF_NP
    assert E.vxlan_gpe_header(0x2A, E.ETH_P_IP) == bytes.fromhex("0c000001 00002a00")
    assert E.vxlan_gpe_header(0x2A, E.ETH_P_TEB) == bytes.fromhex("0c000003 00002a00")
    assert E.vxlan_gpe_header(1, 0x0806) is None           # no next protocol for ARP
    for np, proto, payload in ((1, E.ETH_P_IP, ip), (2, E.ETH_P_IPV6, ip), (3, E.ETH_P_TEB, f),
                               (4, E.ETH_P_NSH, ip), (5, E.ETH_P_MPLS_UC, ip)):
        got = E.vxlan_gpe_decap(b"\0" * 8 + vxlan_pkt(42, payload, flags=i_p | np))
        assert got == (42, proto, payload)
    # vxlan_parse_gpe_proto() and the reserved bits: dropped without a count
    for bad in (vxlan_pkt(42, ip, flags=E.VXLAN_HF_NP | 1),               # no I flag
                vxlan_pkt(42, ip, flags=E.VXLAN_HF_VNI | 1),              # no P flag
                vxlan_pkt(42, ip, flags=i_p | 0x10000000 | 1),            # version 1
                vxlan_pkt(42, ip, flags=i_p | E.VXLAN_HF_OAM | 1),        # OAM
                vxlan_pkt(42, ip, flags=i_p | 6),                         # unknown protocol
                vxlan_pkt(42, ip, flags=i_p | 0x02000000 | 1),            # the B bit
                vxlan_pkt(42, ip, flags=i_p | 1, reserved=1),
                vxlan_pkt(42, f[:10], flags=i_p | 3)):                    # short frame
        with pytest.raises(E.Drop) as e:
            E.vxlan_gpe_decap(b"\0" * 8 + bad)
        assert e.value.counter is None


def test_geneve_and_gre_headers():
    f = inner_frame()
    opts = bytes.fromhex("0102 80 01 deadbeef")
    hdr = E.geneve_header(0xABCDEF, True, True, opts)
    assert hdr == bytes.fromhex("02 c0 6558 abcdef00") + opts
    assert E.geneve_decap(b"\0" * 8 + hdr + f) == (0xABCDEF, True, True, opts, f)
    with pytest.raises(E.Drop) as e:
        E.geneve_decap(b"\0" * 8 + geneve_pkt(1, f, proto=0x0800))
    assert e.value.counter == "rx_dropped"
    with pytest.raises(E.Drop) as e:
        E.geneve_decap(b"\0" * 8 + geneve_pkt(1, f, ver=1))
    assert e.value.counter is None
    g = gre_pkt(f, key=0x01020304, csum=True)
    assert g[:4] == bytes.fromhex("a000 6558") and g[8:12] == bytes.fromhex("01020304")
    assert E.inet_csum(g) == 0
    assert E.gre_decap(g) == (0xA000, 0x01020304, E.ETH_P_TEB, 12, f, True)
    assert E.gre_decap(gre_pkt(f)) == (0, None, E.ETH_P_TEB, 4, f, True)
    bad = bytearray(g)
    bad[-1] ^= 1
    assert E.gre_decap(bytes(bad))[5] is False
    for b in (b"\x00\x01\x65\x58" + f, b"\x40\x00\x65\x58" + f, b"\x20\x00\x65\x58"):
        with pytest.raises(E.Drop):
            E.gre_decap(b)


def test_ecn():
    ect0 = inner_frame(tos=0x02)
    notect = inner_frame(tos=0x00)
    # ip_tunnel_ecn_encap(): ECT copied, CE sent as ECT(0)
    assert E.ecn_encapsulate(0x28, ect0) == 0x2A
    assert E.ecn_encapsulate(0x2B, notect) == 0x28
    assert E.ecn_encapsulate(0, inner_frame(tos=0x03)) == 0x02
    # INET_ECN_decapsulate(): CE into an ECT packet (header checksum kept right)
    rc, f = E.ecn_decapsulate(0x03, ect0)
    assert rc == 0 and f[15] == 0x03 and E.inet_csum(f[14:34]) == 0
    rc, f = E.ecn_decapsulate(0x01, ect0)                 # outer ECT(1): inner ECT(1)
    assert rc == 0 and f[15] == 0x01 and E.inet_csum(f[14:34]) == 0
    assert E.ecn_decapsulate(0x02, notect) == (1, notect)
    assert E.ecn_decapsulate(0x03, notect)[0] == 2
    assert E.ecn_decapsulate(0x03, b"\0" * 12 + b"\x08\x06" + bytes(28))[0] == 0


def tcp_frame(payload, partial=False):
    """Ethernet + IPv4 + TCP; ``partial``: the checksum field holds only the
    pseudo-header sum, as a CHECKSUM_PARTIAL (or GSO) skb has it."""
    src, dst = ip4("10.1.0.1"), ip4("10.1.0.2")
    tcp = struct.pack("!HHIIBBHHH", 1000, 80, 1, 0, 0x50, 0x18, 65535, 0, 0) + payload
    pseudo = struct.pack("!IIBBH", src, dst, 0, 6, len(tcp))
    if partial:
        c = E.csum16(pseudo)
    else:
        c = E.inet_csum(pseudo, tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    return MAC_B + MAC_A + b"\x08\x00" + ipv4_header(src, dst, 6, len(tcp)) + tcp


def test_partial_checksums_and_gso_super_frames():
    full, part = tcp_frame(b"x" * 100), tcp_frame(b"x" * 100, partial=True)
    assert E.complete_partial_csum(part) == full
    assert E.complete_partial_csum(full) is full
    assert E.gso_vnet(tcp_frame(b"x" * 1000, partial=True)) is None     # not a super-frame
    big = tcp_frame(b"y" * 5000, partial=True)
    vnet = E.gso_vnet(big)
    assert VNET_HDR.unpack(vnet) == (1, 1, 54, 1460, 34, 16)           # TCPv4, 1460-byte MSS
    assert E.gso_vnet(tcp_frame(b"y" * 5000)) is None                  # a complete jumbo frame
    # a UDP checksum computed for the completed packet (local checksum offload)
    src, dst = ip4("192.168.55.2"), ip4("192.168.55.1")
    body = vxlan_pkt(1, part)
    udp = struct.pack("!HHHH", 1, 4789, 8 + len(body), 0) + vxlan_pkt(1, full)
    c = E.udp_checksum(E.AF_INET, src, dst, udp)
    lco = struct.pack("!HHHH", 1, 4789, 8 + len(body), c) + body
    assert E.udp_ok(E.AF_INET, src, dst, lco)[4] is False
    assert E.udp_recheck(E.AF_INET, src, dst, lco[:16], E.complete_partial_csum(part))


# ========================================================= in memory: receive
def test_vxlan_receive_miss_upcall_has_tunnel_key(mem):
    vx = mem.add("vx0", "vxlan", 4789)
    f = inner_frame()
    pkt = udp4(ip4("192.168.55.2"), ip4("192.168.55.1"), 54321, 4789, vxlan_pkt(0x2A, f),
               tos=0x28, ttl=33, df=True, csum=True)
    mem.rx("vx0", "receive_ipv4", pkt)
    u = mem.upcall()
    assert u is not None and u.cmd == U.OVS_PACKET_CMD_MISS
    assert u.packet == f and in_port_of(u.key) == vx
    assert tun_summary(tunnel_of(u.key)) == {
        "tun_id": 0x2A, "src": "192.168.55.2", "dst": "192.168.55.1", "tos": 0x28, "ttl": 33,
        "tp_src": 54321, "tp_dst": 4789, "df": True, "csum": True}
    assert "flags(df|csum|key)" in odp.format_key(u.key)
    s = stats_dict(mem.stats("vx0"))
    assert (s["rx_packets"], s["rx_bytes"]) == (1, len(f) - 14)     # less the Ethernet header
    # no checksum, no DF: neither flag
    mem.rx("vx0", "receive_ipv4", udp4(ip4("192.168.55.2"), ip4("192.168.55.1"), 1, 4789,
                                       vxlan_pkt(5, f)))
    tun = tun_summary(tunnel_of(mem.upcall().key))
    assert "df" not in tun and "csum" not in tun and tun["tun_id"] == 5


def test_a_read_batch_reaches_the_datapath_as_batches_per_peer_in_order(mem):
    """Frames decapsulated in one read batch go to the datapath together:
    consecutive frames with the same tunnel metadata as one batch, in order."""
    mem.add("vx0", "vxlan", 4789)
    a, b = ip4("192.168.55.2"), ip4("192.168.55.3")
    frames = [inner_frame(payload=b"frame %d" % i) for i in range(4)]
    pkts = [udp4(src, ip4("192.168.55.1"), 5000, 4789, vxlan_pkt(7, f))
            for src, f in zip((a, a, b, a), frames, strict=True)]
    v = mem.vport("vx0")
    sizes = []

    def read_batch():
        dp = v.dp
        real = dp.receive_batch
        dp.receive_batch = lambda fr, *args: (sizes.append(len(fr)), real(fr, *args))
        try:
            v._rx_start()
            for p in pkts:
                v.receive_ipv4(p)
            assert sizes == []              # nothing before the batch ends
            v._rx_flush()
        finally:
            del dp.receive_batch
    mem.call(read_batch)
    assert sizes == [2, 1, 1]
    ups = [mem.upcall() for _ in frames]
    assert [u.packet for u in ups] == frames
    assert [tun_summary(tunnel_of(u.key))["src"] for u in ups] == \
        ["192.168.55.2", "192.168.55.2", "192.168.55.3", "192.168.55.2"]


def test_vxlan_receive_drops(mem):
    mem.add("vx0", "vxlan", 4789)
    f = inner_frame()
    src, dst = ip4("192.168.55.2"), ip4("192.168.55.1")
    good = udp4(src, dst, 1, 4789, vxlan_pkt(1, f), csum=True)
    bad_csum = bytearray(good)
    bad_csum[-1] ^= 0xFF
    for pkt in (bytes(bad_csum),                                         # UDP checksum
                udp4(src, dst, 1, 4789, vxlan_pkt(1, f, flags=0)),        # no I flag
                udp4(src, dst, 1, 4789, vxlan_pkt(1, f, reserved=3)),     # reserved bits
                udp4(src, dst, 1, 4789, vxlan_pkt(1, f[:10])),            # no Ethernet header
                udp4(src, dst, 1, 4789, vxlan_pkt(1, f, flags=E.VXLAN_HF_VNI | E.VXLAN_HF_GBP)),
                udp4(src, dst, 1, 4790, vxlan_pkt(1, f))):                # another port
        mem.rx("vx0", "receive_ipv4", pkt)
    assert mem.upcall(0.3) is None
    assert stats_dict(mem.stats("vx0"))["rx_errors"] == 0
    # an IPv4 frame too short for its IP header: rx_length_errors
    mem.rx("vx0", "receive_ipv4", udp4(src, dst, 1, 4789, vxlan_pkt(1, f[:20])))
    # CE on a non-ECT packet: rx_frame_errors
    mem.rx("vx0", "receive_ipv4", udp4(src, dst, 1, 4789, vxlan_pkt(1, f), tos=0x03))
    assert mem.upcall(0.3) is None
    s = stats_dict(mem.stats("vx0"))
    assert (s["rx_packets"], s["rx_errors"]) == (0, 2)
    # CE on an ECT(0) packet: the inner packet arrives with CE
    mem.rx("vx0", "receive_ipv4", udp4(src, dst, 1, 4789, vxlan_pkt(1, inner_frame(tos=2)),
                                       tos=0x03))
    u = mem.upcall()
    assert u.packet[15] == 0x03 and E.inet_csum(u.packet[14:34]) == 0


def test_receive_completes_offloads_of_local_senders(mem):
    vx = mem.add("vx0", "vxlan", 4789)
    loc = mem.add("loc", "internal")
    src, dst = ip4("192.168.55.2"), ip4("192.168.55.1")
    full, part = tcp_frame(b"x" * 100), tcp_frame(b"x" * 100, partial=True)
    # outer checksum right only once the inner one is filled in: taken, completed
    udp = struct.pack("!HHHH", 1, 4789, 16 + len(full), 0) + vxlan_pkt(1, full)
    c = E.udp_checksum(E.AF_INET, src, dst, udp)
    body = struct.pack("!HHHH", 1, 4789, 16 + len(part), c) + vxlan_pkt(1, part)
    mem.rx("vx0", "receive_ipv4", ipv4_header(src, dst, 17, len(body)) + body)
    assert mem.upcall().packet == full
    # the same with a wrong outer checksum: the UDP layer's drop
    bad = body[:6] + struct.pack("!H", c ^ 0x0101) + body[8:]
    mem.rx("vx0", "receive_ipv4", ipv4_header(src, dst, 17, len(bad)) + bad)
    assert mem.upcall(0.3) is None
    # a GSO super-frame goes on as one (with its offload) to a port that takes it
    k, m = odp.parse_key(f"in_port({vx}),eth()")
    mem.dpif.flow_new(mem.dp, k, odp.parse_actions(f"{loc}"), mask=m)
    big = tcp_frame(bytes(range(256)) * 20, partial=True)
    mem.rx("vx0", "receive_ipv4", udp4(src, dst, 1, 4789, vxlan_pkt(1, big)))
    delivered = mem.call(lambda: list(mem.daemon.module.init_net.vports_by_name["loc"].delivered))
    # (the in-memory internal port keeps the frames it would give the host:
    # segmented, with complete checksums)
    assert len(delivered) == 4 and all(len(d) <= 1514 for d in delivered)
    assert b"".join(d[54:] for d in delivered) == bytes(range(256)) * 20
    for d in delivered:
        assert E.inet_csum(struct.pack("!IIBBH", ip4("10.1.0.1"), ip4("10.1.0.2"), 0, 6,
                                       len(d) - 34), d[34:]) == 0


def test_vxlan_gbp_receive(mem):
    mem.add("vx0", "vxlan", 4789)
    mem.add("vg", "vxlan", 4790, gbp=True)
    f = inner_frame()
    word = E.VXLAN_HF_VNI | E.VXLAN_HF_GBP | (0x40 << 16) | 0x1234
    src, dst = ip4("192.168.55.2"), ip4("192.168.55.1")
    mem.rx("vg", "receive_ipv4", udp4(src, dst, 1, 4790, vxlan_pkt(9, f, flags=word)))
    tun = tun_summary(tunnel_of(mem.upcall().key))
    assert tun["gbp"] == E.VXLAN_GBP_DONT_LEARN | 0x1234
    mem.rx("vg", "receive_ipv4", udp4(src, dst, 1, 4790, vxlan_pkt(9, f)))
    assert "gbp" not in tun_summary(tunnel_of(mem.upcall().key))
    # a port without the extension takes no G bit
    mem.rx("vx0", "receive_ipv4", udp4(src, dst, 1, 4789, vxlan_pkt(9, f, flags=word)))
    assert mem.upcall(0.3) is None


def test_geneve_receive(mem):
    gn = mem.add("gn0", "geneve", 6081)
    f = inner_frame()
    opts = bytes.fromhex("0102 80 01 deadbeef") + bytes.fromhex("ffff 01 00")
    src, dst = ip4("192.168.55.2"), ip4("192.168.55.1")
    mem.rx("gn0", "receive_ipv4", udp4(src, dst, 4000, 6081,
                                       geneve_pkt(0x123456, f, opts, oam=True, crit=True)))
    u = mem.upcall()
    assert u.packet == f and in_port_of(u.key) == gn
    assert tun_summary(tunnel_of(u.key)) == {
        "tun_id": 0x123456, "src": "192.168.55.2", "dst": "192.168.55.1", "ttl": 64,
        "tp_src": 4000, "tp_dst": 6081, "oam": True, "geneve": opts}
    # no options: no GENEVE_OPT (and no option attribute)
    mem.rx("gn0", "receive_ipv4", udp4(src, dst, 4000, 6081, geneve_pkt(1, f)))
    assert "geneve" not in tun_summary(tunnel_of(mem.upcall().key))
    # not Ethernet, options beyond the packet: rx_dropped; version 1: silently
    mem.rx("gn0", "receive_ipv4", udp4(src, dst, 1, 6081, geneve_pkt(1, f, proto=0x0800)))
    mem.rx("gn0", "receive_ipv4", udp4(src, dst, 1, 6081, geneve_pkt(1, b"", opts)))
    mem.rx("gn0", "receive_ipv4", udp4(src, dst, 1, 6081, geneve_pkt(1, f, ver=1)))
    assert mem.upcall(0.3) is None
    s = stats_dict(mem.stats("gn0"))
    assert (s["rx_packets"], s["rx_dropped"], s["rx_errors"]) == (2, 2, 0)
    assert s["rx_bytes"] == 2 * (len(f) - 14)


def test_geneve_ipv6_receive_needs_udp_checksum(mem):
    mem.add("gn0", "geneve", 6081)
    mem.add("vx0", "vxlan", 4789)
    f = inner_frame()
    src, dst = ip6("fd00::2"), ip6("fd00::1")
    for name, port, body in (("gn0", 6081, geneve_pkt(7, f)), ("vx0", 4789, vxlan_pkt(7, f))):
        udp = struct.pack("!HHHH", 5555, port, 8 + len(body), 0) + body
        mem.rx(name, "receive_ipv6", src, dst, 0x10, 40, udp)       # zero checksum
        csummed = udp[:6] + struct.pack("!H", E.udp_checksum(E.AF_INET6, src, dst, udp)) \
            + udp[8:]
        mem.rx(name, "receive_ipv6", src, dst, 0x10, 40, csummed)
    # Geneve takes only the checksummed one (use_udp6_rx_checksums), VXLAN both
    got = []
    while (u := mem.upcall(0.3)) is not None:
        got.append(tun_summary(tunnel_of(u.key)))
    assert [g["tp_dst"] for g in got] == [6081, 4789, 4789]
    assert got[0] == {"tun_id": 7, "src": "fd00::2", "dst": "fd00::1", "tos": 0x10, "ttl": 40,
                      "tp_src": 5555, "tp_dst": 6081, "csum": True}
    assert "csum" not in got[1] and got[2]["csum"]


def test_gre_receive(mem):
    gre = mem.add("gre0", "gre")
    f = inner_frame()
    src, dst = ip4("192.168.55.2"), ip4("192.168.55.1")

    def pkt(g, df=False):
        return ipv4_header(src, dst, E.IPPROTO_GRE, len(g), ttl=50, df=df) + g

    mem.rx("gre0", "receive_ipv4", pkt(gre_pkt(f, key=0xA0B0C0D0), df=True))
    u = mem.upcall()
    assert u.packet == f and in_port_of(u.key) == gre
    assert tun_summary(tunnel_of(u.key)) == {"tun_id": 0xA0B0C0D0, "src": "192.168.55.2",
                                             "dst": "192.168.55.1", "ttl": 50, "df": True}
    mem.rx("gre0", "receive_ipv4", pkt(gre_pkt(f)))
    tun = tun_summary(tunnel_of(mem.upcall().key))       # no key: no tun_id, no key flag
    assert tun == {"src": "192.168.55.2", "dst": "192.168.55.1", "ttl": 50}
    # a checksum: the collect_md device's rx_crc_errors; IP payloads are not its
    mem.rx("gre0", "receive_ipv4", pkt(gre_pkt(f, key=1, csum=True)))
    mem.rx("gre0", "receive_ipv4", pkt(gre_pkt(f[14:], key=1, proto=0x0800)))
    assert mem.upcall(0.3) is None
    s = stats_dict(mem.stats("gre0"))
    assert (s["rx_packets"], s["rx_bytes"], s["rx_errors"]) == (2, 2 * len(f), 1)


# ======================================================== in memory: transmit
def udp_parts(enc):
    """(sport, dport, length, checksum, tunnel header + frame) of an Encap."""
    sport, dport, ln, check = struct.unpack_from("!HHHH", enc.payload)
    return sport, dport, ln, check, enc.payload[8:]


def test_vxlan_transmit(mem):
    vx = mem.add("vx0", "vxlan", 4789)
    f = inner_frame(tos=0x02)
    mem.execute(f, f"set(tunnel(tun_id=0x1122334455,src=192.168.55.1,dst=192.168.55.2,"
                   f"tos=0x28,ttl=33,flags(df|csum|key))),{vx}")
    mem.execute(f, f"set(tunnel(tun_id=0x2a,dst=192.168.55.2,tp_dst=4790,ttl=0,flags(key))),"
                   f"{vx}")
    e1, e2 = mem.sent("vx0")
    assert (e1.family, e1.src, e1.dst, e1.tos, e1.ttl, e1.df, e1.proto) == (
        2, ip4("192.168.55.1"), ip4("192.168.55.2"), 0x2A, 33, True, 17)
    sport, dport, ln, check, rest = udp_parts(e1)
    lo, hi = TS.local_port_range()
    assert dport == 4789 and lo <= sport < hi and ln == len(e1.payload)
    assert sport == E.udp_src_port(E.flow_hash(f), lo, hi)
    assert check and E.inet_csum(E._pseudo(2, e1.src, e1.dst, ln, 17), e1.payload) == 0
    assert rest == bytes.fromhex("08000000 33445500") + f            # VNI: low 24 bits
    # no source (routing chooses), the key's tp_dst, no checksum, TTL 0 = default
    sport, dport, ln, check, rest = udp_parts(e2)
    assert (e2.src, e2.ttl, e2.df, e2.tos, dport, check) == (0, 0, False, 0x02, 4790, 0)
    assert rest[:8] == bytes.fromhex("08000000 00002a00")
    s = stats_dict(mem.stats("vx0"))
    assert (s["tx_packets"], s["tx_bytes"]) == (2, 2 * (len(f) - 14))


def test_ipv6_underlay_transmit(mem):
    vx = mem.add("vx0", "vxlan", 4789)
    f = inner_frame(tos=0x01)
    mem.execute(f, f"set(tunnel(tun_id=0x9,ipv6_src=fd00::1,ipv6_dst=fd00::2,tos=0x80,ttl=5,"
                   f"flags(df|csum|key))),{vx}")
    (e,) = mem.sent("vx0")
    assert (e.family, e.src, e.dst, e.tos, e.ttl, e.df) == (
        10, ip6("fd00::1"), ip6("fd00::2"), 0x81, 5, False)           # no DF over IPv6
    sport, dport, ln, check, rest = udp_parts(e)
    assert dport == 4789 and check
    assert E.inet_csum(E._pseudo(10, e.src, e.dst, ln, 17), e.payload) == 0
    assert rest == bytes.fromhex("08000000 00000900") + f


def test_vxlan_gbp_transmit(mem):
    vg = mem.add("vg", "vxlan", 4790, gbp=True)
    vx = mem.add("vx0", "vxlan", 4789)
    f = inner_frame()
    tun = "tun_id=0x7,dst=192.168.55.2,ttl=64,vxlan(gbp(id=10,flags=0x48)),flags(key)"
    mem.execute(f, f"set(tunnel({tun})),{vg},set(tunnel({tun})),{vx}")
    (eg,), (ex,) = mem.sent("vg"), mem.sent("vx0")
    assert udp_parts(eg)[4][:8] == struct.pack("!II", 0x88000000 | (0x48 << 16) | 10, 7 << 8)
    assert udp_parts(ex)[4][:8] == struct.pack("!II", 0x08000000, 7 << 8)   # no extension


def test_geneve_transmit(mem):
    gn = mem.add("gn0", "geneve", 6081)
    f = inner_frame()
    mem.execute(f, f"set(tunnel(tun_id=0xabcdef,dst=192.168.55.2,ttl=64,tp_dst=9999,"
                   f"geneve({{class=0x102,type=0x80,len=4,0xdeadbeef}}),flags(oam|key))),{gn}")
    (e,) = mem.sent("gn0")
    sport, dport, ln, check, rest = udp_parts(e)
    assert dport == 6081                      # the port's, whatever the key says
    assert 1 <= sport < 65535 and check == 0
    # ver 0, 2 option words, O and C (a critical option) bits, TEB, VNI
    assert rest == bytes.fromhex("02 c0 6558 abcdef00 0102 80 01 deadbeef") + f


def test_gre_transmit(mem):
    gre = mem.add("gre0", "gre")
    f = inner_frame(tos=0x23, ttl=17)
    mem.execute(f, f"set(tunnel(tun_id=0x1122334455,dst=192.168.55.2,ttl=0,tos=0x1,"
                   f"flags(csum|key))),{gre}")
    mem.execute(f, f"set(tunnel(dst=192.168.55.2,ttl=9,tos=0x40,flags(df))),{gre}")
    e1, e2 = mem.sent("gre0")
    # TTL 0 and TOS 1 inherit from the inner packet; its ECN CE goes out as ECT(0)
    assert (e1.proto, e1.ttl, e1.tos, e1.df) == (47, 17, 0x22, False)
    assert e1.payload[:4] == bytes.fromhex("a000 6558") and e1.payload[6:8] == b"\0\0"
    assert e1.payload[8:12] == bytes.fromhex("22334455")      # the key: low 32 bits
    assert E.inet_csum(e1.payload) == 0 and e1.payload[12:] == f
    assert (e2.ttl, e2.tos, e2.df) == (9, 0x42, True)
    assert e2.payload == bytes.fromhex("0000 6558") + f
    # IPv6 tunnels are not GRE's
    mem.execute(f, f"set(tunnel(ipv6_dst=fd00::2,ttl=9,flags(key))),{gre}")
    assert len(mem.sent("gre0")) == 2
    assert stats_dict(mem.stats("gre0"))["tx_dropped"] == 1


def test_transmit_without_tunnel_info(mem):
    ports = {n: mem.add(n, t, p) for n, t, p in (("vx0", "vxlan", 4789), ("gn0", "geneve", 6081),
                                                ("gre0", "gre", None))}
    f = inner_frame()
    mem.execute(f, ",".join(str(p) for p in ports.values()))
    got = {n: stats_dict(mem.stats(n)) for n in ports}
    # vxlan_xmit() frees it without a count; geneve and gretap count tx_dropped
    assert [(got[n]["tx_packets"], got[n]["tx_dropped"], got[n]["tx_errors"])
            for n in ("vx0", "gn0", "gre0")] == [(0, 0, 0), (0, 1, 0), (0, 1, 0)]
    assert all(not mem.sent(n) for n in ports)


def test_gso_frames_are_segmented_before_encapsulation(mem):
    vx = mem.add("vx0", "vxlan", 4789)
    v = mem.vport("vx0")
    payload = bytes(range(256)) * 12
    tcp = struct.pack("!HHIIBBHHH", 1000, 80, 1, 0, 0x50, 0x18, 65535, 0, 0) + payload
    ip = ipv4_header(ip4("10.1.0.1"), ip4("10.1.0.2"), 6, len(tcp))
    frame = MAC_B + MAC_A + b"\x08\x00" + ip + tcp
    vnet = VNET_HDR.pack(1, 1, 54, 1000, 34, 16)          # csum partial, TCPv4 GSO, 1000 bytes
    info = T.TunnelInfo(K.make(tun_id=1, tun_ipv4_dst=ip4("192.168.55.2"), tun_ttl=64,
                               tun_flags=K.TUN_F_KEY, tun_proto=2))
    mem.call(v.output, frame, vnet, False, info)
    sent = mem.sent("vx0")
    assert len(sent) == 4 and vx
    assert all(len(e.payload) - 16 - 54 <= 1000 for e in sent)


def test_fill_metadata_dst_for_userspace_action(mem):
    vx = mem.add("vx0", "vxlan", 4789)
    gre = mem.add("gre0", "gre")
    f = inner_frame()
    pid = mem.dpif.portid
    mem.execute(f, f"set(tunnel(tun_id=0x2a,dst=127.0.0.1,ttl=64,flags(key))),"
                   f"userspace(pid={pid},tunnel_out_port={vx}),"
                   f"userspace(pid={pid},tunnel_out_port={gre})")
    u1, u2 = mem.upcall(), mem.upcall()
    assert u1.cmd == U.OVS_PACKET_CMD_ACTION
    lo, hi = TS.local_port_range()
    t1 = tun_summary(attrs(u1.egress_tun_key))
    assert t1 == {"tun_id": 0x2A, "src": "127.0.0.1", "dst": "127.0.0.1", "ttl": 64,
                  "tp_src": E.udp_src_port(E.flow_hash(f), lo, hi), "tp_dst": 4789}
    # the first fill changed the skb's tunnel info (skb_tunnel_info_unclone()):
    # the second action sees its ports too; GRE adds only the source
    t2 = tun_summary(attrs(u2.egress_tun_key))
    assert t2 == t1
    mem.execute(f, f"set(tunnel(tun_id=0x2a,dst=127.0.0.1,ttl=64,flags(key))),"
                   f"userspace(pid={pid},tunnel_out_port={gre})")
    t3 = tun_summary(attrs(mem.upcall().egress_tun_key))
    assert t3 == {"tun_id": 0x2A, "src": "127.0.0.1", "dst": "127.0.0.1", "ttl": 64}
    # without set(tunnel()) there is nothing to fill: no egress key
    mem.execute(f, f"userspace(pid={pid},tunnel_out_port={vx})")
    assert mem.upcall().egress_tun_key is None


def test_in_memory_ports_open_no_sockets(mem):
    mem.add("vx0", "vxlan", 4789)
    mem.add("vx1", "vxlan", 4789)              # the same UDP port: nothing is bound
    mem.add("gre0", "gre")
    mem.add("gre1", "gre")
    for n in ("vx0", "vx1", "gre0", "gre1"):
        v = mem.vport(n)
        assert v._socks == [] and v.loop is None and v.tunnel
    assert mem.vport("vx0").mtu == VX.VXLAN_MTU


# =================================================================== root
def _why_not_root():
    if os.geteuid() != 0:
        return "needs root (network namespaces, veths, raw sockets)"
    if not shutil.which("ip"):
        return "needs the ip command (iproute2)"
    return None


def needs_root(fn):
    """Marks a test ``root`` and skips it, with the reason, when it cannot run."""
    skip = pytest.mark.skipif(_why_not_root() is not None, reason=_why_not_root() or "")
    return pytest.mark.root(skip(fn))


def _kernel_has(kind, *args):
    """Whether the kernel can create a ``kind`` link (probed in a scratch namespace)."""
    ns = f"ovtp{SFX}{next(_COUNTER)}"
    try:
        run("ip", "netns", "add", ns)
    except Exception:  # noqa: BLE001
        return False
    try:
        return run("ip", "-n", ns, "link", "add", "probe0", "type", kind, *args,
                   check=False) == 0
    finally:
        run("ip", "netns", "del", ns, check=False)


def _free_udp_port():
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        return s.getsockname()[1]


def _free_net():
    """A random 192.168.X.0/24 no local address is in, and an fd00 /64."""
    used = run("ip", "-4", "addr", capture=True)
    for _ in range(50):
        x = secrets.randbelow(150) + 100
        if f"192.168.{x}." not in used:
            # (four hex digits without a leading zero: the canonical text the
            # datapath's addresses are compared with)
            group = secrets.randbelow(0xF000) + 0x1000
            return f"192.168.{x}", f"fd{secrets.randbelow(256):02x}:{group:x}::"
    raise RuntimeError("no free 192.168.X.0/24")


class Underlay:
    """A namespace behind a veth: ROOT_IP on the root end, NS_IP inside;
    the overlay subnet's .1 on the datapath's TAP, .2 on the peer's device."""

    def __init__(self, real_daemon):
        n = next(_COUNTER)
        self.name = f"ovx{SFX}{n}"
        self.net4, self.net6 = _free_net()
        self.root_ip, self.ns_ip = f"{self.net4}.1", f"{self.net4}.2"
        self.root_ip6, self.ns_ip6 = f"{self.net6}1", f"{self.net6}2"
        ov = secrets.randbelow(200) + 20
        self.ov_net = f"10.{ov}.{secrets.randbelow(250) + 1}"
        self.ov_root, self.ov_ns = f"{self.ov_net}.1", f"{self.ov_net}.2"
        self.tb = testbed.Testbed([self.name], port_prefix="p-", net4=self.net4, ipv6=False)
        self.daemon = real_daemon
        self.dp = f"ovd{SFX}{n}"
        self.dpif = None

    def setup(self):
        self.tb.setup()
        h = self.host = self.tb.hosts[0]
        h.run("ip", "addr", "flush", "dev", h.ifname)
        h.run("ip", "addr", "add", f"{self.ns_ip}/24", "dev", h.ifname)
        h.run("ip", "-6", "addr", "add", f"{self.ns_ip6}/64", "dev", h.ifname, "nodad")
        run("sysctl", "-qw", f"net.ipv6.conf.{h.port}.disable_ipv6=0")
        run("ip", "addr", "add", f"{self.root_ip}/24", "dev", h.port)
        run("ip", "-6", "addr", "add", f"{self.root_ip6}/64", "dev", h.port, "nodad")
        self.dpif = Dpif(self.daemon.path)
        self.dpif.dp_new(self.dp)
        run("sysctl", "-qw", f"net.ipv6.conf.{self.dp}.disable_ipv6=1", check=False)
        run("ip", "addr", "add", f"{self.ov_root}/24", "dev", self.dp)
        run("ip", "link", "set", self.dp, "up")
        return self

    def teardown(self):
        if self.dpif is not None:
            with contextlib.suppress(OSError):
                self.dpif.dp_del(self.dp)
            self.dpif.close()
        self.tb.teardown()

    # ------------------------------------------------------------ helpers
    def ns(self, *args, check=True):
        return self.host.run(*args, check=check)

    def peer_device(self, *link_args, ip=None):
        """A Linux tunnel device ``peer0`` in the namespace with the overlay's .2."""
        self.ns("ip", "link", "add", "peer0", *link_args)
        self.ns("ip", "link", "set", "peer0", "mtu", "1400")
        self.ns("ip", "addr", "add", f"{ip or self.ov_ns}/24", "dev", "peer0")
        self.ns("ip", "link", "set", "peer0", "up")

    def add_flow(self, flow, actions):
        out = []
        rc = dpctl.run(["add-flow", self.dp, flow, actions], socket=self.daemon.path,
                       stdout=_Sink(out), stderr=_Sink(out))
        assert rc == 0, "".join(out)

    def vport(self, name):
        return self.daemon.call(lambda: self.daemon.module.init_net.vports_by_name[name])

    def stats(self, name):
        return stats_dict(self.dpif.vport_get(self.dp, name).stats)

    def upcall_from(self, port_no, timeout=5):
        """The next upcall of a packet received on ``port_no`` (others skipped)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            u = self.dpif.recv_upcall(left)
            if u is None:
                break
            if in_port_of(u.key) == port_no:
                return u
        return None

    def ping(self, dst, ns=None, count=3, v6=False):
        cmd = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2"]
        if v6:
            cmd.append("-6")
        cmd.append(dst)
        if ns:
            cmd = ["ip", "netns", "exec", ns] + cmd
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=count + 20)
        return r.returncode == 0, r.stdout

    def wait_ping(self, dst, ns=None, timeout=10):
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            ok, out = self.ping(dst, ns, count=1)
            if ok:
                return True, out
        return False, out

    def py(self, code, timeout=15):
        """Run Python ``code`` in the namespace; its stdout."""
        r = subprocess.run(["ip", "netns", "exec", self.host.ns, sys.executable, "-c", code],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
        assert r.returncode == 0, r.stderr
        return r.stdout

    @contextlib.contextmanager
    def capture(self, proto, port=None, count=1, timeout=8):
        """Packets of IP protocol ``proto`` (to UDP ``port``) arriving in the
        namespace, read from a raw socket by a process in it: yields a list
        filled (with whole IPv4 packets) when the block ends."""
        code = CAPTURE.format(proto=proto, port=port or 0, count=count, timeout=timeout)
        p = subprocess.Popen(["ip", "netns", "exec", self.host.ns, sys.executable, "-c", code],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        got = []
        try:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
            yield got
            out, err = p.communicate(timeout=timeout + 5)
            got.extend(bytes.fromhex(x) for x in out.split())
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            for f in (p.stdout, p.stderr):
                f.close()


class _Sink:
    def __init__(self, out):
        self.out = out

    def write(self, s):
        self.out.append(s)

    def flush(self):
        pass


CAPTURE = """
import select, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, {proto})
print("ready", flush=True)
got, end = 0, time.monotonic() + {timeout}
while got < {count} and time.monotonic() < end:
    if not select.select([s], [], [], max(0, end - time.monotonic()))[0]:
        break
    p = s.recv(65536)
    ihl = (p[0] & 15) * 4
    if {port} and int.from_bytes(p[ihl + 2:ihl + 4], "big") != {port}:
        continue
    print(p.hex(), flush=True)
    got += 1
"""


@pytest.fixture
def net(real_daemon):
    u = Underlay(real_daemon)
    try:
        yield u.setup()
    finally:
        u.teardown()


def _check_outer_udp(pkt, src, dst, dport, ttl, tos, df, csum, sport_range):
    ihl, p_tos, p_df, p_ttl, proto, p_src, p_dst, tot = E.parse_ipv4(pkt)
    assert (proto, p_src, p_dst, p_ttl, p_tos, p_df) == (17, ip4(src), ip4(dst), ttl, tos, df)
    sport, p_dport, ln, check = struct.unpack_from("!HHHH", pkt, ihl)
    assert p_dport == dport and sport_range[0] <= sport < sport_range[1]
    if csum:
        assert check and E.udp_ok(E.AF_INET, p_src, p_dst, pkt[ihl:tot])[4]
    else:
        assert check == 0
    return pkt[ihl + 8:tot]


@needs_root
def test_vxlan_with_linux_vxlan(net):
    """Ping between the datapath's TAP and a Linux vxlan device, both ways."""
    port = _free_udp_port()
    net.peer_device("type", "vxlan", "id", "42", "remote", net.root_ip, "local", net.ns_ip,
                    "dstport", str(port), "udpcsum", "df", "set", "tos", "0x28", "ttl", "33")
    vx = net.dpif.vport_new(net.dp, f"vx{SFX}", "vxlan",
                            options=Dpif.tunnel_options(port)).port_no
    v = net.vport(f"vx{SFX}")
    assert v.loop is not None and len(v._socks) >= 2
    # first only the way out: the answers come back as MISS upcalls with the tunnel key
    net.add_flow("in_port(0),eth()", f"set(tunnel(tun_id=0x2a,src={net.root_ip},"
                                     f"dst={net.ns_ip},ttl=64,flags(key))),{vx}")
    ok, _ = net.ping(net.ov_ns, count=1)
    assert not ok
    u = net.upcall_from(vx)
    assert u is not None and u.cmd == U.OVS_PACKET_CMD_MISS
    tun = tun_summary(tunnel_of(u.key))
    lo, hi = (int(x) for x in net.py("print(open('/proc/sys/net/ipv4/ip_local_port_range')"
                                     ".read())").split())
    assert lo <= tun.pop("tp_src") <= hi
    assert tun == {"tun_id": 42, "src": net.ns_ip, "dst": net.root_ip, "tos": 0x28, "ttl": 33,
                   "tp_dst": port, "df": True, "csum": True}
    # then the way in too
    net.add_flow(f"tunnel(tun_id=0x2a,src={net.ns_ip},dst={net.root_ip},ttl=0/0,flags(+key)),"
                 f"in_port({vx}),eth()", "0")
    ok, out = net.wait_ping(net.ov_ns)
    assert ok, out
    ok, out = net.ping(net.ov_ns, count=5)
    assert ok and " 0% packet loss" in out, out
    ok, out = net.ping(net.ov_root, ns=net.host.ns, count=3)
    assert ok and " 0% packet loss" in out, out
    s = net.stats(f"vx{SFX}")
    assert s["rx_packets"] >= 8 and s["tx_packets"] >= 8
    assert s["rx_errors"] == s["tx_errors"] == 0
    # what goes out, as the namespace sees it
    with net.capture(17, port) as got:
        net.dpif.execute(net.dp, inner_frame(tos=0x01), odp.parse_key("in_port(0)")[0],
                         odp.parse_actions(f"set(tunnel(tun_id=0x2a,dst={net.ns_ip},tos=0x40,"
                                           f"ttl=7,flags(df|csum|key))),{vx}"))
    (pkt,) = got
    rest = _check_outer_udp(pkt, net.root_ip, net.ns_ip, port, 7, 0x41, True, True,
                            TS.local_port_range())
    assert rest == bytes.fromhex("08000000 00002a00") + inner_frame(tos=0x01)


@needs_root
def test_a_netdev_vport_on_a_collect_md_vxlan_device_is_a_tunnel_port(net):
    """vxlan_sys_4789 as Open vSwitch makes it on an in-tree kernel: a Linux
    vxlan device in external mode, attached as a netdev vport, carries the
    tunnel metadata both ways (vport-netdev.c on such a device)."""
    port = _free_udp_port()
    dev = f"vxs{SFX}"
    run("ip", "link", "add", dev, "type", "vxlan", "external", "dstport", str(port))
    try:
        run("ip", "link", "set", dev, "up")
        net.peer_device("type", "vxlan", "id", "42", "remote", net.root_ip, "local", net.ns_ip,
                        "dstport", str(port))
        info = net.dpif.vport_new(net.dp, dev, "netdev")
        assert info.type == U.OVS_VPORT_TYPE_NETDEV and info.options is None
        assert net.vport(dev).ifindex == socket.if_nametoindex(dev)
        vx = info.port_no
        net.add_flow("in_port(0),eth()", f"set(tunnel(tun_id=0x2a,src={net.root_ip},"
                                         f"dst={net.ns_ip},ttl=64,flags(key))),{vx}")
        assert not net.ping(net.ov_ns, count=1)[0]
        u = net.upcall_from(vx)
        assert u is not None
        tun = tun_summary(tunnel_of(u.key))
        assert (tun["tun_id"], tun["src"], tun["dst"], tun["tp_dst"]) == (
            42, net.ns_ip, net.root_ip, port), tun
        net.add_flow(f"tunnel(tun_id=0x2a,src={net.ns_ip},dst={net.root_ip},ttl=0/0,"
                     f"flags(+key)),in_port({vx}),eth()", "0")
        ok, out = net.wait_ping(net.ov_ns)
        assert ok, out
        ok, out = net.ping(net.ov_ns, count=3)
        assert ok and " 0% packet loss" in out, out
        s = net.stats(dev)
        assert s["rx_packets"] >= 3 and s["tx_packets"] >= 3
    finally:
        run("ip", "link", "del", dev, check=False)


@needs_root
def test_a_netdev_vport_on_a_vxlan_gpe_device_is_a_layer_3_port(net):
    """A collect_md VXLAN-GPE device (what Open vSwitch makes for
    options:exts=gpe) is an ARPHRD_NONE device: its IPv4 arrives without
    Ethernet header (MAC_PROTO_NONE, eth_type from the GPE next protocol),
    and a packet without Ethernet header goes out with the next protocol of
    its type.  The other end is Linux's own GPE device, routed into with an
    lwtunnel encap route, as in Open vSwitch's "layer3 - ping over VXLAN-GPE"."""
    if not _kernel_has("vxlan", "external", "gpe", "dstport", "4790"):
        pytest.skip("no vxlan-gpe devices here")
    port = _free_udp_port()
    dev = f"vxg{SFX}"
    run("ip", "link", "add", dev, "type", "vxlan", "external", "gpe", "dstport", str(port))
    try:
        run("ip", "link", "set", dev, "up")
        net.ns("ip", "link", "add", "peer0", "type", "vxlan", "external", "gpe", "dstport",
               str(port))
        net.ns("ip", "addr", "add", f"{net.ov_ns}/24", "dev", "peer0")
        net.ns("ip", "link", "set", "peer0", "mtu", "1400", "up")
        net.ns("ip", "route", "add", f"{net.ov_root}/32", "encap", "ip", "id", "7", "dst",
               net.root_ip, "dev", "peer0")
        info = net.dpif.vport_new(net.dp, dev, "netdev")
        gpe = info.port_no
        assert net.vport(dev).ethernet is False
        tap_mac = open(f"/sys/class/net/{net.dp}/address").read().strip()
        run("ip", "neigh", "replace", net.ov_ns, "lladdr", "02:00:00:00:00:07", "dev", net.dp)
        net.add_flow("in_port(0),eth(),eth_type(0x0800),ipv4()",
                     f"pop_eth,set(tunnel(tun_id=0x7,src={net.root_ip},dst={net.ns_ip},"
                     f"ttl=64,flags(key))),{gpe}")
        # the way in, first as MISS upcalls: no Ethernet header, IPv4 by the GPE header
        assert not net.ping(net.ov_root, ns=net.host.ns, count=1)[0]
        u = net.upcall_from(gpe)
        assert u is not None
        key = attrs(u.key)
        assert U.OVS_KEY_ATTR_ETHERNET not in key
        assert struct.unpack("!H", key[U.OVS_KEY_ATTR_ETHERTYPE])[0] == E.ETH_P_IP
        assert tun_summary(tunnel_of(u.key))["tun_id"] == 7
        assert u.packet[0] >> 4 == 4                # the IPv4 header, nothing before it
        net.add_flow(f"tunnel(tun_id=0x7,src={net.ns_ip},dst={net.root_ip},ttl=0/0,"
                     f"flags(+key)),in_port({gpe}),eth_type(0x0800),ipv4()",
                     f"push_eth(src=02:00:00:00:00:07,dst={tap_mac}),0")
        ok, out = net.wait_ping(net.ov_root, ns=net.host.ns)
        assert ok, out
        ok, out = net.ping(net.ov_ns, count=3)
        assert ok and " 0% packet loss" in out, out
        # the way out, as the namespace sees it: I and P flags, next protocol 1 (IPv4)
        with net.capture(17, port) as got:
            net.ping(net.ov_ns, count=1)
        assert got, "no VXLAN-GPE packet reached the peer"
        ihl = (got[0][0] & 15) * 4
        gpe_hdr = got[0][ihl + 8:ihl + 16]
        assert gpe_hdr == bytes.fromhex("0c000001 00000700"), gpe_hdr.hex()
        assert got[0][ihl + 16] >> 4 == 4
        s = net.stats(dev)
        assert s["rx_packets"] >= 4 and s["tx_packets"] >= 4
        assert s["rx_errors"] == s["tx_errors"] == 0
    finally:
        run("ip", "link", "del", dev, check=False)


def test_a_tunnel_device_kind_ovsdp_has_no_tunnels_for_is_eopnotsupp():
    from ovsdp.datapath.vport import VportParms
    from ovsdp.vports import rtnl_link, tunnel_dev
    parms = VportParms("bu0", U.OVS_VPORT_TYPE_NETDEV, None, None, 3, b"\0\0\0\0")
    with pytest.raises(NetlinkError) as e:
        tunnel_dev.create(None, parms, rtnl_link.TunnelDevice("bareudp"), 9, 1500)
    assert e.value.errno == errno.EOPNOTSUPP and "bareudp" in e.value.msg


TCP_SERVER = """
import socket
s = socket.socket()
s.bind(("{ip}", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
s.settimeout(20)
c, _ = s.accept()
c.settimeout(20)
n = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    n += len(b)
print(n, flush=True)
"""

TCP_CLIENT = """
import socket
c = socket.create_connection(("{ip}", {port}), timeout=20)
c.sendall(bytes(range(256)) * {n256})
c.close()
"""


@needs_root
def test_vxlan_tcp_with_linux_vxlan(net):
    """TCP both ways with the veths' offloads on: the Linux side's partial
    checksums and GSO super-packets arrive whole through the raw socket."""
    port = _free_udp_port()
    net.peer_device("type", "vxlan", "id", "42", "remote", net.root_ip, "local", net.ns_ip,
                    "dstport", str(port))
    vx = net.dpif.vport_new(net.dp, f"vx{SFX}", "vxlan",
                            options=Dpif.tunnel_options(port)).port_no
    net.add_flow("in_port(0),eth()", f"set(tunnel(tun_id=0x2a,dst={net.ns_ip},ttl=64,"
                                     f"flags(key))),{vx}")
    net.add_flow(f"tunnel(tun_id=0x2a,src={net.ns_ip},dst={net.root_ip},ttl=0/0,flags(+key)),"
                 f"in_port({vx}),eth()", "0")
    ok, out = net.wait_ping(net.ov_ns)
    assert ok, out
    size = 2 << 20
    # the namespace sends to the root namespace
    srv = socket.socket()
    with srv:
        srv.bind((net.ov_root, 0))
        srv.listen(1)
        srv.settimeout(20)
        client = subprocess.Popen(
            ["ip", "netns", "exec", net.host.ns, sys.executable, "-c",
             TCP_CLIENT.format(ip=net.ov_root, port=srv.getsockname()[1], n256=size // 256)],
            stderr=subprocess.PIPE, text=True)
        try:
            c, _ = srv.accept()
            with c:
                c.settimeout(20)
                got = bytearray()
                while b := c.recv(1 << 20):
                    got += b
            assert client.wait(20) == 0, client.stderr.read()
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
            client.stderr.close()
    assert bytes(got) == bytes(range(256)) * (size // 256)
    # and the other way
    server = subprocess.Popen(["ip", "netns", "exec", net.host.ns, sys.executable, "-c",
                               TCP_SERVER.format(ip=net.ov_ns)],
                              stdout=subprocess.PIPE, text=True)
    try:
        tport = int(server.stdout.readline())
        with socket.create_connection((net.ov_ns, tport), timeout=20) as c:
            c.sendall(bytes(range(256)) * (size // 256))
        assert int(server.stdout.readline()) == size
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
        server.stdout.close()
    s = net.stats(f"vx{SFX}")
    assert s["rx_errors"] == s["tx_errors"] == s["tx_dropped"] == 0


@needs_root
def test_vxlan_with_linux_vxlan_ipv6_underlay(net):
    port = _free_udp_port()
    net.peer_device("type", "vxlan", "id", "7", "remote", net.root_ip6, "local", net.ns_ip6,
                    "dstport", str(port))
    vx = net.dpif.vport_new(net.dp, f"vx{SFX}", "vxlan",
                            options=Dpif.tunnel_options(port)).port_no
    net.add_flow("in_port(0),eth()", f"set(tunnel(tun_id=0x7,ipv6_dst={net.ns_ip6},ttl=64,"
                                     f"flags(csum|key))),{vx}")
    net.ping(net.ov_ns, count=1)
    u = net.upcall_from(vx)
    assert u is not None
    tun = tun_summary(tunnel_of(u.key))
    tun.pop("tp_src")
    assert tun == {"tun_id": 7, "src": net.ns_ip6, "dst": net.root_ip6, "ttl": 64,
                   "tp_dst": port, "csum": True}
    net.add_flow(f"tunnel(tun_id=0x7,ipv6_src={net.ns_ip6},ipv6_dst={net.root_ip6},ttl=0/0,"
                 f"flags(+key)),in_port({vx}),eth()", "0")
    ok, out = net.wait_ping(net.ov_ns)
    assert ok, out
    # the other way: once through (neighbour resolution on both sides of
    # the underlay may cost the first try), then steady without loss
    ok, out = net.wait_ping(net.ov_root, ns=net.host.ns)
    assert ok, out
    ok, out = net.ping(net.ov_root, ns=net.host.ns, count=3)
    assert ok and " 0% packet loss" in out, out


@needs_root
def test_geneve_with_linux_geneve(net):
    if not _kernel_has("geneve", "id", "1", "remote", "192.0.2.1"):
        pytest.skip("this kernel has no geneve devices")
    port = _free_udp_port()
    net.peer_device("type", "geneve", "id", "4242", "remote", net.root_ip, "dstport", str(port))
    gn = net.dpif.vport_new(net.dp, f"gn{SFX}", "geneve",
                            options=Dpif.tunnel_options(port)).port_no
    net.add_flow("in_port(0),eth()", f"set(tunnel(tun_id=0x1092,dst={net.ns_ip},ttl=64,"
                                     f"flags(key))),{gn}")
    net.add_flow(f"tunnel(tun_id=0x1092,src={net.ns_ip},dst={net.root_ip},ttl=0/0,"
                 f"flags(+key)),in_port({gn}),eth()", "0")
    ok, out = net.wait_ping(net.ov_ns)
    assert ok, out
    # the other way: once through (neighbour resolution on both sides of
    # the underlay may cost the first try), then steady without loss
    ok, out = net.wait_ping(net.ov_root, ns=net.host.ns)
    assert ok, out
    ok, out = net.ping(net.ov_root, ns=net.host.ns, count=3)
    assert ok and " 0% packet loss" in out, out


@needs_root
def test_gre_with_linux_gretap(net):
    if not _kernel_has("gretap", "remote", "192.0.2.1", "local", "192.0.2.2"):
        pytest.skip("this kernel has no gretap devices")
    net.peer_device("type", "gretap", "remote", net.root_ip, "local", net.ns_ip, "key", "77")
    gre = net.dpif.vport_new(net.dp, f"gre{SFX}", "gre").port_no
    net.add_flow("in_port(0),eth()", f"set(tunnel(tun_id=0x4d,dst={net.ns_ip},ttl=64,"
                                     f"flags(key))),{gre}")
    net.add_flow(f"tunnel(tun_id=0x4d,src={net.ns_ip},dst={net.root_ip},ttl=0/0,"
                 f"flags(+key)),in_port({gre}),eth()", "0")
    ok, out = net.wait_ping(net.ov_ns)
    assert ok, out
    # the other way: once through (neighbour resolution on both sides of
    # the underlay may cost the first try), then steady without loss
    ok, out = net.wait_ping(net.ov_root, ns=net.host.ns)
    assert ok, out
    ok, out = net.ping(net.ov_root, ns=net.host.ns, count=3)
    assert ok and " 0% packet loss" in out, out


SEND_UDP = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, {tos})
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, {ttl})
s.bind(("{src}", {sport}))
s.sendto(bytes.fromhex("{payload}"), ("{dst}", {dport}))
"""

SEND_RAW = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, {proto})
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, {ttl})
s.sendto(bytes.fromhex("{payload}"), ("{dst}", 0))
"""


@needs_root
def test_geneve_with_a_raw_peer(net):
    """Geneve over real sockets with a hand-made peer (any kernel)."""
    port = _free_udp_port()
    gn = net.dpif.vport_new(net.dp, f"gn{SFX}", "geneve",
                            options=Dpif.tunnel_options(port)).port_no
    f = inner_frame()
    opts = bytes.fromhex("0102 80 01 deadbeef")
    net.py(SEND_UDP.format(tos=0x10, ttl=21, src=net.ns_ip, sport=7777, dst=net.root_ip,
                           dport=port, payload=geneve_pkt(0x55, f, opts, oam=True).hex()))
    u = net.upcall_from(gn)
    assert u is not None and u.packet == f
    # a UDP socket checksums and sets DF (IP_PMTUDISC_WANT)
    assert tun_summary(tunnel_of(u.key)) == {
        "tun_id": 0x55, "src": net.ns_ip, "dst": net.root_ip, "tos": 0x10, "ttl": 21,
        "tp_src": 7777, "tp_dst": port, "df": True, "csum": True, "oam": True, "geneve": opts}
    with net.capture(17, port) as got:
        net.dpif.execute(net.dp, f, odp.parse_key("in_port(0)")[0],
                         odp.parse_actions(f"set(tunnel(tun_id=0x55,dst={net.ns_ip},ttl=64,"
                                           f"geneve({{class=0x102,type=0x80,len=4,0xdeadbeef}}),"
                                           f"flags(csum|key))),{gn}"))
    (pkt,) = got
    rest = _check_outer_udp(pkt, net.root_ip, net.ns_ip, port, 64, 0, False, True, (1, 65535))
    assert rest == geneve_pkt(0x55, f, opts, crit=True)
    s = net.stats(f"gn{SFX}")
    assert (s["rx_packets"], s["tx_packets"]) == (1, 1)


@needs_root
def test_gre_with_a_raw_peer(net):
    """GRE over real sockets with a hand-made peer (any kernel)."""
    gre = net.dpif.vport_new(net.dp, f"gre{SFX}", "gre").port_no
    f = inner_frame()
    net.py(SEND_RAW.format(proto=47, ttl=5, dst=net.root_ip, payload=gre_pkt(f, key=9).hex()))
    u = net.upcall_from(gre)
    assert u is not None and u.packet == f
    tun = tun_summary(tunnel_of(u.key))
    tun.pop("df", None)
    assert tun == {"tun_id": 9, "src": net.ns_ip, "dst": net.root_ip, "ttl": 5}
    with net.capture(47) as got:
        net.dpif.execute(net.dp, f, odp.parse_key("in_port(0)")[0],
                         odp.parse_actions(f"set(tunnel(tun_id=0x1234,dst={net.ns_ip},ttl=3,"
                                           f"flags(df|csum|key))),{gre}"))
    (pkt,) = got
    ihl, tos, df, ttl, proto, src, dst, tot = E.parse_ipv4(pkt)
    assert (proto, src, dst, ttl, df) == (47, ip4(net.root_ip), ip4(net.ns_ip), 3, True)
    assert E.gre_decap(pkt[ihl:tot]) == (0xA000, 0x1234, E.ETH_P_TEB, 12, f, True)
    # the port still reads after a read batch (its socket is its own)
    f2 = inner_frame(payload=b"second")
    net.py(SEND_RAW.format(proto=47, ttl=5, dst=net.root_ip, payload=gre_pkt(f2, key=9).hex()))
    u = net.upcall_from(gre)
    assert u is not None and u.packet == f2
    s = net.stats(f"gre{SFX}")
    assert (s["rx_packets"], s["tx_packets"]) == (2, 1)


@needs_root
def test_real_port_conflicts_and_cleanup(net):
    port = _free_udp_port()
    d = net.dpif
    d.vport_new(net.dp, f"va{SFX}", "vxlan", options=Dpif.tunnel_options(port))
    with pytest.raises(OSError) as e:
        d.vport_new(net.dp, f"vb{SFX}", "vxlan", options=Dpif.tunnel_options(port))
    assert e.value.errno == errno.EADDRINUSE
    port2 = _free_udp_port()
    d.vport_new(net.dp, f"ga{SFX}", "geneve", options=Dpif.tunnel_options(port2))
    with pytest.raises(OSError) as e:
        d.vport_new(net.dp, f"gb{SFX}", "geneve", options=Dpif.tunnel_options(port2))
    assert e.value.errno == errno.EPERM
    d.vport_new(net.dp, f"ra{SFX}", "gre")
    with pytest.raises(OSError) as e:
        d.vport_new(net.dp, f"rb{SFX}", "gre")
    assert e.value.errno == errno.EEXIST
    # deleting a port closes its sockets: the UDP port is free again
    v = net.vport(f"va{SFX}")
    socks = list(v._socks)
    d.vport_del(net.dp, f"va{SFX}")
    assert all(s.fileno() == -1 for s in socks)
    d.vport_new(net.dp, f"vb{SFX}", "vxlan", options=Dpif.tunnel_options(port))
    d.vport_del(net.dp, f"ra{SFX}")
    d.vport_new(net.dp, f"rb{SFX}", "gre")

