"""Tunnel wire formats: VXLAN, Geneve and GRE over IPv4/IPv6, without I/O.

The kernel's flow-based tunnel devices (drivers/net/vxlan/vxlan_core.c,
drivers/net/geneve.c, net/ipv4/ip_gre.c with ip_tunnel.c) read a received
packet's outer headers into a ``struct ip_tunnel_info`` that
ovs_flow_key_extract() copies into the flow key, and build the outer headers
of a transmitted frame from the ``ip_tunnel_info`` of set(tunnel(...)).
This module is those two conversions on bytes, for :mod:`.tunnel`:

- receive: :func:`parse_ipv4` (outer IPv4 header), :func:`udp_ok` (UDP
  length and checksum), :func:`vxlan_decap`, :func:`geneve_decap`,
  :func:`gre_decap` (tunnel header -> tunnel fields and inner frame),
  :func:`ecn_decapsulate` (INET_ECN_decapsulate() on the inner frame),
  :func:`inet_may_pull` and :func:`tunnel_meta` (the key's tun_* bits);
- transmit: :class:`TunKey` (a TunnelInfo key as ip_tunnel_key fields),
  :func:`vxlan_header`, :func:`geneve_header`, :func:`gre_header`,
  :func:`udp_header`, :func:`ecn_encapsulate`, :func:`flow_hash` and
  :func:`udp_src_port` (udp_flow_src_port()).

Addresses are ints (network order numbers, as in the flow key); ``family``
is AF_INET (2) or AF_INET6 (10), the kernel's tun_proto.
"""

import struct
import zlib

from ..datapath import key_layout as K
from ..datapath.checksum import csum16, csum_replace2, fold_add, inet_csum
from ..datapath.offload import F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, VNET_HDR
from ..uapi import headers as H
from ..uapi.headers import (  # noqa: F401 - the names this module's users take from it
    ETH_P_IP,
    ETH_P_IPV6,
    ETH_P_TEB,
    GRE_CSUM,
    GRE_KEY,
    GRE_ROUTING,
    GRE_SEQ,
    GRE_VERSION,
    IP_DF,
    IPPROTO_GRE,
    IPPROTO_UDP,
    VXLAN_HF_VNI,
)

AF_INET = 2
AF_INET6 = 10
ETH_HLEN = H.ETHHDR.size
ETH_P_NSH = 0x894F
ETH_P_MPLS_UC = 0x8847
_VLAN_TPIDS = (0x8100, 0x88A8)

INET_ECN_MASK = 3
INET_ECN_NOT_ECT = 0
INET_ECN_ECT_1 = 1
INET_ECN_ECT_0 = 2
INET_ECN_CE = 3

# VXLAN (include/net/vxlan.h): the first header word
VXLAN_HLEN = 16                      # UDP + VXLAN headers
VXLAN_HF_GBP = 0x80000000
VXLAN_GBP_USED_BITS = VXLAN_HF_GBP | 0x00FFFFFF
VXLAN_GBP_DONT_LEARN = 1 << 22
VXLAN_GBP_POLICY_APPLIED = 1 << 19
VXLAN_GBP_ID_MASK = 0xFFFF
VXLAN_VNI_MASK = 0xFFFFFF00          # the second word: VNI and a reserved byte
VXLAN_HF_VER = 0x30000000            # VXLAN-GPE: version, next protocol present, OAM
VXLAN_HF_NP = 0x04000000
VXLAN_HF_OAM = 0x01000000
VXLAN_GPE_USED_BITS = VXLAN_HF_VER | VXLAN_HF_NP | VXLAN_HF_OAM | 0xFF
# tun_p_to_eth_p(): a VXLAN-GPE next protocol and the ethertype it means
GPE_NEXT_PROTOCOL = {1: ETH_P_IP, 2: ETH_P_IPV6, 3: ETH_P_TEB, 4: ETH_P_NSH, 5: ETH_P_MPLS_UC}
_GPE_NP_OF = {t: np for np, t in GPE_NEXT_PROTOCOL.items()}

# Geneve (include/net/geneve.h)
GENEVE_BASE_HLEN = 16                # UDP + Geneve base header
GENEVE_VER = 0

_BE16 = struct.Struct("!H")
_BE32 = struct.Struct("!I")
_U32 = struct.Struct("=I")
_UDP = H.UDPHDR
_VXLAN = H.VXLANHDR
_GENEVE = H.GENEVEHDR
_IPV4 = H.IPHDR

_S_TUN_ID = K.S_TUN_ID
_S_TUN_IPV4_SRC = K.S_TUN_IPV4_SRC
_S_TUN_IPV4_DST = K.S_TUN_IPV4_DST
_S_TUN_IPV6_SRC = K.S_TUN_IPV6_SRC
_S_TUN_IPV6_DST = K.S_TUN_IPV6_DST
_S_TUN_TOS = K.S_TUN_TOS
_S_TUN_TTL = K.S_TUN_TTL
_S_TUN_TP_SRC = K.S_TUN_TP_SRC
_S_TUN_TP_DST = K.S_TUN_TP_DST
_S_TUN_FLAGS = K.S_TUN_FLAGS
_S_TUN_PROTO = K.S_TUN_PROTO
_S_TUN_OPTS_LEN = K.S_TUN_OPTS_LEN
_S_TUN_OPTS = K.S_TUN_OPTS


class Drop(Exception):
    """A received packet the tunnel device drops.

    ``counter`` names the vport statistic the kernel device counts it in
    (``"rx_errors"``, ``"rx_dropped"``), or is None for a silent drop.
    """

    def __init__(self, counter=None, why=""):
        super().__init__(why)
        self.counter = counter


# ------------------------------------------------------------ checksums
def _pseudo(family, src, dst, length, proto):
    if family == AF_INET:
        return struct.pack("!IIBBH", src, dst, 0, proto, length)
    return src.to_bytes(16, "big") + dst.to_bytes(16, "big") + struct.pack("!I3xB", length, proto)


def udp_checksum(family, src, dst, udp):
    """The checksum field value of the UDP datagram ``udp`` (its own checksum
    field zero); 0 is sent as 0xffff (CSUM_MANGLED_0)."""
    c = inet_csum(_pseudo(family, src, dst, len(udp), IPPROTO_UDP), udp)
    return c or 0xFFFF


def udp_ok(family, src, dst, l4, zero_csum_ok=True):
    """__udp4_lib_rcv()/__udp6_lib_rcv() checks on the transport bytes ``l4``.

    Returns (sport, dport, has_csum, udp bytes trimmed to the UDP length,
    csum_ok) or None when the UDP layer would drop the datagram (short, bad
    length, a zero checksum over IPv6 that the socket does not take).

    ``csum_ok`` False: the checksum does not verify as read.  A packet built
    on this host from a CHECKSUM_PARTIAL skb (a tunnel device in another
    namespace, over a veth) reaches a raw socket before the checksums are
    filled in: the UDP checksum field may hold only its pseudo-header sum
    (taken as valid here), or a checksum computed for the packet whose inner
    checksum is filled in (local checksum offload); :func:`udp_recheck` tells
    after :func:`complete_partial_csum` on the inner frame.
    """
    n = len(l4)
    if n < 8:
        return None
    sport, dport, ulen, check = _UDP.unpack_from(l4)
    if family == AF_INET6 and ulen == 0:
        ulen = n                        # a jumbogram's UDP length
    if ulen < 8 or ulen > n:
        return None
    udp = l4[:ulen] if ulen < n else l4
    ok = True
    if check:
        pseudo = _pseudo(family, src, dst, ulen, IPPROTO_UDP)
        ok = not inet_csum(pseudo, udp) or check == csum16(pseudo)
    elif family == AF_INET6 and not zero_csum_ok:
        return None
    return sport, dport, bool(check), udp, ok


def udp_recheck(family, src, dst, head, inner):
    """Whether a datagram of ``head`` (UDP and tunnel headers, an even
    length) and ``inner`` has a valid checksum."""
    ln = len(head) + len(inner)
    return not inet_csum(_pseudo(family, src, dst, ln, IPPROTO_UDP), head, inner)


def udp_header(sport, dport, payload_len):
    """A UDP header with a zero checksum for ``payload_len`` bytes of payload."""
    return _UDP.pack(sport, dport, payload_len + 8, 0)


# --------------------------------------------------------------- outer IP
def parse_ipv4(pkt):
    """An IPv4 packet as a raw socket reads it.

    Returns (header length, tos, DF set, ttl, protocol, src, dst, total
    length) or None when the header is not a sane IPv4 header.
    """
    if len(pkt) < 20:
        return None
    vihl, tos, tot, _id, frag, ttl, proto, _check, src, dst = _IPV4.unpack_from(pkt)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20 or tot < ihl or tot > len(pkt):
        return None
    return ihl, tos, bool(frag & IP_DF), ttl, proto, src, dst, tot


# --------------------------------------------------------- inner frames
def inner_l3(frame):
    """(ethertype after any VLAN tags, its offset) of an Ethernet frame, like
    skb_protocol(skb, true); (0, 0) when a tag is cut short."""
    n = len(frame)
    if n < ETH_HLEN:
        return 0, 0
    off = 12
    t = (frame[12] << 8) | frame[13]
    while t in _VLAN_TPIDS:
        off += 4
        if off + 2 > n:
            return 0, 0
        t = (frame[off] << 8) | frame[off + 1]
    return t, off + 2


def complete_partial_csum(frame):
    """The inner frame with a TCP/UDP checksum completed when its checksum
    field holds only the pseudo-header sum.

    A tunnel packet built on this host from a CHECKSUM_PARTIAL skb (a Linux
    tunnel device in another namespace, over a veth) reaches a raw socket
    with the inner checksum not filled in; the kernel would carry the skb on
    with its offload and the checksum would be filled before it matters.
    skb_checksum_help() does it here.  A field holding the correct checksum
    keeps it (recomputing gives the same value).
    """
    t, off = inner_l3(frame)
    n = len(frame)
    if t == ETH_P_IP:
        if n < off + 20 or frame[off + 6] & 0x3F or frame[off + 7]:
            return frame                    # short, or a fragment
        l4 = off + (frame[off] & 0x0F) * 4
        end = off + ((frame[off + 2] << 8) | frame[off + 3])
        proto = frame[off + 9]
        addrs = frame[off + 12:off + 20]
    elif t == ETH_P_IPV6:
        if n < off + 40:
            return frame
        l4 = off + 40
        end = l4 + ((frame[off + 4] << 8) | frame[off + 5])
        proto = frame[off + 6]
        addrs = frame[off + 8:off + 40]
    else:
        return frame
    if proto == 6:
        where = l4 + 16
    elif proto == 17:
        where = l4 + 6
    else:
        return frame
    if end > n or where + 2 > end:
        return frame
    field = (frame[where] << 8) | frame[where + 1]
    if proto == 17 and field == 0:
        return frame                        # no UDP checksum
    pseudo = fold_add(csum16(addrs), proto, end - l4)
    if field != pseudo and not (field in (0, 0xFFFF) and pseudo in (0, 0xFFFF)):
        return frame
    d = bytearray(frame)
    d[where:where + 2] = b"\0\0"
    c = ~fold_add(pseudo, csum16(bytes(d[l4:end]))) & 0xFFFF
    if proto == 17 and c == 0:
        c = 0xFFFF
    d[where:where + 2] = _BE16.pack(c)
    return bytes(d)


def gso_vnet(frame, mtu=1500):
    """A virtio_net_hdr making a TCP super-frame a GSO frame again, or None.

    A tunnel device on this host (another namespace, over a veth) hands its
    GSO skbs on unsegmented: a raw socket reads the whole super-packet and
    loses the skb's gso_size.  Such an inner frame is longer than an
    Ethernet frame and its TCP checksum field holds the pseudo-header sum (a
    frame that really is that long has a complete checksum).  The datapath
    then carries it as the kernel carries the GSO skb: segments of ``mtu``
    bytes (the original segment size is not known) where it must be cut.
    """
    t, off = inner_l3(frame)
    n = len(frame)
    if n <= off + mtu:
        return None
    if t == ETH_P_IP:
        if n < off + 20 or frame[off + 9] != 6 or frame[off + 6] & 0x3F or frame[off + 7]:
            return None
        l4 = off + (frame[off] & 0x0F) * 4
        end = off + ((frame[off + 2] << 8) | frame[off + 3])
        addrs = frame[off + 12:off + 20]
        gso = GSO_TCPV4
    elif t == ETH_P_IPV6:
        if n < off + 40 or frame[off + 6] != 6:
            return None
        l4 = off + 40
        end = l4 + ((frame[off + 4] << 8) | frame[off + 5])
        addrs = frame[off + 8:off + 40]
        gso = GSO_TCPV6
    else:
        return None
    if end != n or l4 + 20 > n:
        return None
    hdr_len = l4 + (frame[l4 + 12] >> 4) * 4
    field = (frame[l4 + 16] << 8) | frame[l4 + 17]
    if hdr_len >= n or field != fold_add(csum16(addrs), 6, n - l4):
        return None
    gso_size = mtu - (hdr_len - off)
    if gso_size < 8:
        return None
    return VNET_HDR.pack(F_NEEDS_CSUM, gso, hdr_len, gso_size, l4, 16)


def inet_may_pull(frame):
    """pskb_inet_may_pull() after the tunnel set the network header right
    after the Ethernet header: an IPv4 (IPv6) frame, VLAN tags skipped for
    the type, must hold 20 (40) bytes after those 14 bytes."""
    t, _ = inner_l3(frame)
    need = 20 if t == ETH_P_IP else 40 if t == ETH_P_IPV6 else 0
    return len(frame) >= ETH_HLEN + need


def _dsfield(frame):
    """ip_tunnel_get_dsfield(): (dsfield, type, offset) of the inner IP header."""
    t, off = inner_l3(frame)
    if t == ETH_P_IP and len(frame) >= off + 20:
        return frame[off + 1], t, off
    if t == ETH_P_IPV6 and len(frame) >= off + 40:
        return ((frame[off] & 0x0F) << 4) | (frame[off + 1] >> 4), t, off
    return None, t, off


def ecn_encapsulate(tos, frame):
    """ip_tunnel_ecn_encap(): the outer TOS with the inner packet's ECN
    (ECT copied, CE sent as ECT(0))."""
    inner, _, _ = _dsfield(frame)
    if inner is None:
        inner = 0
    ecn = inner & INET_ECN_MASK
    return (tos & ~INET_ECN_MASK & 0xFF) | (INET_ECN_ECT_0 if ecn == INET_ECN_CE else ecn)


def _set_inner_ecn(frame, t, off, new_ecn, only_from=None):
    """The frame with the inner IP header's ECN field rewritten (IPv4
    checksum updated); unchanged when the current ECN is not ``only_from``
    (if given) or when the packet is not ECN-capable."""
    if t == ETH_P_IP:
        tos = frame[off + 1]
        ecn = tos & INET_ECN_MASK
        if ecn == INET_ECN_NOT_ECT or (only_from is not None and ecn != only_from):
            return frame
        new_tos = (tos & ~INET_ECN_MASK) | new_ecn
        if new_tos == tos:
            return frame
        d = bytearray(frame)
        old_word = (d[off] << 8) | tos
        d[off + 1] = new_tos
        csum_replace2(d, off + 10, old_word, (d[off] << 8) | new_tos)
        return bytes(d)
    b1 = frame[off + 1]
    ecn = (b1 >> 4) & INET_ECN_MASK
    if ecn == INET_ECN_NOT_ECT or (only_from is not None and ecn != only_from):
        return frame
    d = bytearray(frame)
    d[off + 1] = (b1 & 0xCF) | (new_ecn << 4)
    return bytes(d)


def ecn_decapsulate(outer_tos, frame):
    """IP_ECN_decapsulate()/IP6_ECN_decapsulate(): (rc, frame).

    rc 0: fine (the inner packet may now carry CE, or ECT(1)); 1: an ECN
    outer header on a non-ECT inner packet (only logged by the kernel); 2:
    CE on a non-ECT inner packet, the packet must be dropped.
    """
    inner, t, off = _dsfield(frame)
    if inner is None:
        return 0, frame
    outer = outer_tos & INET_ECN_MASK
    if inner & INET_ECN_MASK == INET_ECN_NOT_ECT:
        if outer == INET_ECN_NOT_ECT:
            return 0, frame
        return (2 if outer == INET_ECN_CE else 1), frame
    if outer == INET_ECN_CE:
        return 0, _set_inner_ecn(frame, t, off, INET_ECN_CE)
    if outer == INET_ECN_ECT_1:
        return 0, _set_inner_ecn(frame, t, off, INET_ECN_ECT_1, only_from=INET_ECN_ECT_0)
    return 0, frame


def inner_ttl_tos(frame):
    """(ttl, dsfield) of the inner IP packet when the frame's own type (the
    kernel's skb->protocol, VLAN tags not skipped) is IPv4 or IPv6, else None:
    what GRE inherits for a zero TTL or a TOS of 1."""
    if len(frame) < ETH_HLEN:
        return None
    t = (frame[12] << 8) | frame[13]
    if t == ETH_P_IP and len(frame) >= ETH_HLEN + 20:
        return frame[22], frame[15]
    if t == ETH_P_IPV6 and len(frame) >= ETH_HLEN + 40:
        return frame[21], ((frame[14] & 0x0F) << 4) | (frame[15] >> 4)
    return None


def l2_len(frame):
    """The inner network header offset (Ethernet plus VLAN tags): what the
    kernel leaves out of a tunnel's tx_bytes."""
    off = 12
    n = len(frame)
    while off + 2 <= n and ((frame[off] << 8) | frame[off + 1]) in _VLAN_TPIDS:
        off += 4
    return min(off + 2, n)


# ------------------------------------------------------ UDP source port
def flow_hash(frame):
    """A 32-bit flow hash of an Ethernet frame standing in for skb_get_hash():
    the IP addresses, protocol and ports (for unfragmented TCP/UDP/SCTP),
    else the MAC addresses and type (udp_flow_src_port()'s fallback)."""
    t, off = inner_l3(frame)
    if t == ETH_P_IP and len(frame) >= off + 20:
        ihl = (frame[off] & 0x0F) * 4
        proto = frame[off + 9]
        key = bytes(frame[off + 12:off + 20]) + bytes((proto,))
        frag = ((frame[off + 6] << 8) | frame[off + 7]) & 0x3FFF
        if proto in (6, 17, 132) and not frag and len(frame) >= off + ihl + 4:
            key += bytes(frame[off + ihl:off + ihl + 4])
    elif t == ETH_P_IPV6 and len(frame) >= off + 40:
        proto = frame[off + 6]
        key = bytes(frame[off + 8:off + 40]) + bytes((proto,))
        key += bytes((frame[off + 1] & 0x0F, frame[off + 2], frame[off + 3]))   # flow label
        if proto in (6, 17, 132) and len(frame) >= off + 44:
            key += bytes(frame[off + 40:off + 44])
    else:
        key = bytes(frame[:12]) + _BE16.pack(t)
    return zlib.crc32(key) or zlib.crc32(bytes(frame[:12]), t) or 1


def udp_src_port(h, port_min, port_max):
    """udp_flow_src_port(): the source port in [port_min, port_max) chosen by
    the flow hash ``h`` (its upper bits obfuscated as the kernel does)."""
    h = (h ^ (h << 16)) & 0xFFFFFFFF
    return ((h * (port_max - port_min)) >> 32) + port_min


# ------------------------------------------------------------------ VXLAN
def vxlan_decap(udp, gbp_ext):
    """vxlan_rcv() on the UDP datagram ``udp`` (header included).

    Returns (vni, gbp or None, inner frame); ``gbp`` is the struct
    vxlan_metadata value when the port has the GBP extension and the header
    its G bit.  Raises :class:`Drop`.
    """
    if len(udp) < VXLAN_HLEN:
        raise Drop(None, "short VXLAN header")
    flags, word1 = _VXLAN.unpack_from(udp, 8)
    if not flags & VXLAN_HF_VNI:
        raise Drop(None, "VXLAN header without the I flag")
    vni = word1 >> 8
    unparsed_flags = flags & ~VXLAN_HF_VNI
    unparsed_vni = word1 & ~VXLAN_VNI_MASK & 0xFFFFFFFF
    inner = udp[VXLAN_HLEN:]
    if len(inner) < ETH_HLEN:
        raise Drop(None, "inner frame shorter than an Ethernet header")
    gbp = None
    if gbp_ext:
        if flags & VXLAN_HF_GBP:
            gbp = flags & VXLAN_GBP_ID_MASK
            if flags & VXLAN_GBP_DONT_LEARN:
                gbp |= VXLAN_GBP_DONT_LEARN
            if flags & VXLAN_GBP_POLICY_APPLIED:
                gbp |= VXLAN_GBP_POLICY_APPLIED
        unparsed_flags &= ~VXLAN_GBP_USED_BITS
    if unparsed_flags or unparsed_vni:
        raise Drop(None, "VXLAN header with unknown flags or reserved bits")
    return vni, gbp, inner


def vxlan_header(vni, gbp):
    """The 8-byte VXLAN header (vxlan_build_skb()); ``gbp`` the struct
    vxlan_metadata value for a port with the GBP extension, else None."""
    flags = VXLAN_HF_VNI
    if gbp:
        flags |= VXLAN_HF_GBP | (gbp & (VXLAN_GBP_DONT_LEARN | VXLAN_GBP_POLICY_APPLIED
                                        | VXLAN_GBP_ID_MASK))
    return _VXLAN.pack(flags, (vni & 0xFFFFFF) << 8)


def vxlan_gpe_decap(udp):
    """vxlan_rcv() of a VXLAN-GPE device (vxlan_parse_gpe_proto()).

    Returns (vni, ethertype of the payload, payload); raises :class:`Drop`.
    """
    if len(udp) < VXLAN_HLEN:
        raise Drop(None, "short VXLAN header")
    flags, word1 = _VXLAN.unpack_from(udp, 8)
    if not flags & VXLAN_HF_VNI:
        raise Drop(None, "VXLAN header without the I flag")
    if not flags & VXLAN_HF_NP or flags & (VXLAN_HF_VER | VXLAN_HF_OAM):
        raise Drop(None, "VXLAN-GPE header without next protocol, of a later version or OAM")
    proto = GPE_NEXT_PROTOCOL.get(flags & 0xFF)
    if proto is None:
        raise Drop(None, "VXLAN-GPE next protocol unknown")
    if flags & ~(VXLAN_HF_VNI | VXLAN_GPE_USED_BITS) or word1 & ~VXLAN_VNI_MASK:
        raise Drop(None, "VXLAN header with unknown flags or reserved bits")
    inner = udp[VXLAN_HLEN:]
    if proto == ETH_P_TEB and len(inner) < ETH_HLEN:
        raise Drop(None, "inner frame shorter than an Ethernet header")
    return word1 >> 8, proto, inner


def vxlan_gpe_header(vni, proto):
    """The 8-byte VXLAN-GPE header (vxlan_build_gpe_hdr()) for a payload of
    ethertype ``proto``; None when GPE has no next protocol for it."""
    np = _GPE_NP_OF.get(proto)
    if np is None:
        return None
    return _VXLAN.pack(VXLAN_HF_VNI | VXLAN_HF_NP | np, (vni & 0xFFFFFF) << 8)


def as_frame(proto, packet):
    """An L3 packet behind a made-up Ethernet header of its ethertype: the
    shape the frame helpers here read (ECN, hashing, header checks)."""
    return bytes(12) + proto.to_bytes(2, "big") + packet


# ----------------------------------------------------------------- Geneve
def geneve_decap(udp):
    """geneve_udp_encap_recv()/geneve_rx() on the UDP datagram ``udp``.

    Returns (vni, oam, critical, option bytes, inner frame).  Raises
    :class:`Drop`.
    """
    if len(udp) < GENEVE_BASE_HLEN:
        raise Drop(None, "short Geneve header")
    b0, b1, proto, vni = _GENEVE.unpack_from(udp, 8)
    if b0 >> 6 != GENEVE_VER:
        raise Drop(None, "Geneve version not 0")
    if proto != ETH_P_TEB:
        raise Drop("rx_dropped", "Geneve payload is not Ethernet")
    opts_len = (b0 & H.GENEVE_OPT_LEN_MASK) * 4
    start = GENEVE_BASE_HLEN + opts_len
    if len(udp) < start + ETH_HLEN:
        raise Drop("rx_dropped", "Geneve options or inner frame cut short")
    return (vni >> 8, bool(b1 & H.GENEVE_OAM), bool(b1 & H.GENEVE_CRITICAL),
            bytes(udp[GENEVE_BASE_HLEN:start]), udp[start:])


def geneve_header(vni, oam, critical, opts):
    """The Geneve header with its options (geneve_build_header())."""
    return _GENEVE.pack((GENEVE_VER << 6) | (len(opts) // 4),
                        (H.GENEVE_OAM if oam else 0) | (H.GENEVE_CRITICAL if critical else 0),
                        ETH_P_TEB, (vni & 0xFFFFFF) << 8) + opts


# -------------------------------------------------------------------- GRE
def gre_decap(gre):
    """gre_parse_header() on the GRE packet ``gre`` (GRE header on).

    Returns (flags word, key or None, protocol, header length, inner
    payload, csum_ok).  Raises :class:`Drop` (silent) for what the GRE
    demultiplexer rejects: version or routing bits, a short header.
    ``csum_ok`` is False when a checksum is present and does not verify as
    read (see :func:`udp_ok` for why that may change once the inner packet's
    partial checksum is completed).
    """
    if len(gre) < 4:
        raise Drop(None, "short GRE header")
    flags, proto = struct.unpack_from("!HH", gre)
    if flags & (GRE_VERSION | GRE_ROUTING):
        raise Drop(None, "GRE version or routing bits")
    hlen = 4 + (4 if flags & GRE_CSUM else 0) + (4 if flags & GRE_KEY else 0) \
        + (4 if flags & GRE_SEQ else 0)
    if len(gre) < hlen:
        raise Drop(None, "short GRE header")
    off = 4
    ok = True
    if flags & GRE_CSUM:
        ok = not inet_csum(gre)
        off += 4
    key = None
    if flags & GRE_KEY:
        key = _BE32.unpack_from(gre, off)[0]
    return flags, key, proto, hlen, gre[hlen:], ok


def gre_header(proto, key, csum, payload):
    """The GRE header for ``payload`` (gre_build_header()): the key when
    ``key`` is not None, the checksum (over header and payload) with ``csum``."""
    flags = (GRE_CSUM if csum else 0) | (GRE_KEY if key is not None else 0)
    hdr = _BE16.pack(flags) + _BE16.pack(proto)
    if csum:
        hdr += b"\0\0\0\0"
    if key is not None:
        hdr += _BE32.pack(key & 0xFFFFFFFF)
    if csum:
        c = inet_csum(hdr, payload)
        hdr = hdr[:4] + _BE16.pack(c) + hdr[6:]
    return hdr


# ------------------------------------------------------------- flow keys
def tunnel_meta(family, src, dst, tos, ttl, tp_src, tp_dst, flags, tun_id, opts=b""):
    """The tun_* bits of a flow key for a received tunnel packet: what
    ovs_flow_key_extract() copies from the packet's ip_tunnel_info."""
    m = ((tun_id << _S_TUN_ID) | (tos << _S_TUN_TOS) | (ttl << _S_TUN_TTL)
         | (tp_src << _S_TUN_TP_SRC) | (tp_dst << _S_TUN_TP_DST) | (flags << _S_TUN_FLAGS)
         | (family << _S_TUN_PROTO))
    if family == AF_INET:
        m |= (src << _S_TUN_IPV4_SRC) | (dst << _S_TUN_IPV4_DST)
    else:
        m |= (src << _S_TUN_IPV6_SRC) | (dst << _S_TUN_IPV6_DST)
    if opts:
        m |= (len(opts) << _S_TUN_OPTS_LEN) | (int.from_bytes(opts, "big") << _S_TUN_OPTS)
    return m


def vxlan_opts(gbp):
    """The option bytes of a received VXLAN-GBP header: struct
    vxlan_metadata, one native-endian u32."""
    return _U32.pack(gbp)


def vxlan_gbp(opts):
    """The gbp of struct vxlan_metadata option bytes (at least 4)."""
    return _U32.unpack_from(opts)[0]


class TunKey:
    """The ip_tunnel_key of a set(tunnel(...)) TunnelInfo, field by field."""

    __slots__ = ("family", "src", "dst", "tun_id", "tos", "ttl", "tp_src", "tp_dst",
                 "flags", "opts")

    def __init__(self, k):
        self.family = AF_INET6 if (k >> _S_TUN_PROTO) & 0xFF == AF_INET6 else AF_INET
        if self.family == AF_INET:
            self.src = (k >> _S_TUN_IPV4_SRC) & 0xFFFFFFFF
            self.dst = (k >> _S_TUN_IPV4_DST) & 0xFFFFFFFF
        else:
            m = (1 << 128) - 1
            self.src = (k >> _S_TUN_IPV6_SRC) & m
            self.dst = (k >> _S_TUN_IPV6_DST) & m
        self.tun_id = (k >> _S_TUN_ID) & 0xFFFFFFFFFFFFFFFF
        self.tos = (k >> _S_TUN_TOS) & 0xFF
        self.ttl = (k >> _S_TUN_TTL) & 0xFF
        self.tp_src = (k >> _S_TUN_TP_SRC) & 0xFFFF
        self.tp_dst = (k >> _S_TUN_TP_DST) & 0xFFFF
        self.flags = (k >> _S_TUN_FLAGS) & 0xFFFF
        n = (k >> _S_TUN_OPTS_LEN) & 0xFF
        self.opts = (((k >> _S_TUN_OPTS) & ((1 << (8 * n)) - 1)).to_bytes(n, "big")
                     if n else b"")

    def key(self):
        """Back to a TunnelInfo key int (tun_proto, options included)."""
        return tunnel_meta(self.family, self.src, self.dst, self.tos, self.ttl, self.tp_src,
                           self.tp_dst, self.flags, self.tun_id, self.opts)

