"""Rewriting packets for NAT, as net/netfilter/nf_nat_proto.c.

``nat_packet`` is ``nf_nat_packet()``: a packet of a NATed connection made
to look like the inverse of the other direction's tuple, its source or
destination address and port (or ICMP id) rewritten with the IPv4 header
checksum and the L4 checksum (pseudo header included) updated
incrementally; SCTP's CRC32c is recomputed.  ``icmp_reply_translation`` /
``icmpv6_reply_translation`` translate an ICMP error related to a NATed
connection: the embedded packet as the other direction saw it, the ICMP
checksum recomputed, then the outer header.

The buffer ``d`` is a bytearray holding the network-layer datagram from
offset 0 (trimmed to its length, as ovs_skb_network_trim() leaves the
skb); ``partial`` is a CHECKSUM_PARTIAL skb (the L4 checksum field then
holds the pseudo-header sum only, see checksum.inet_proto_csum_replace).
Sans I/O.
"""

import struct

from . import checksum as CS
from .nf_conntrack import ipv6_skip_exthdr
from .nf_conntrack_common import (
    IP_CT_DIR_REPLY,
    IP_CT_IS_REPLY,
    IPPROTO_DCCP,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPPROTO_UDPLITE,
    IPS_DST_NAT,
    IPS_DST_NAT_DONE,
    IPS_SRC_NAT,
    IPS_SRC_NAT_DONE,
    NFPROTO_IPV4,
    NFPROTO_IPV6,
)
from .nf_nat_core import NF_ACCEPT, NF_DROP, NF_NAT_MANIP_SRC

IPS_NAT_MASK = IPS_SRC_NAT | IPS_DST_NAT
IPS_NAT_DONE_MASK = IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE
ICMP_REDIRECT = 5
NDISC_REDIRECT = 137
# the ICMP messages with an identifier icmp_manip_pkt() rewrites
_ICMP_ID_TYPES = frozenset({8, 0, 13, 14, 15, 16, 17, 18})
_ICMPV6_ECHO = (128, 129)


def _get16(d, off):
    return (d[off] << 8) | d[off + 1]


def _put16(d, off, v):
    d[off] = v >> 8
    d[off + 1] = v & 0xFF


def _ctdir(ctinfo):
    """CTINFO2DIR()."""
    return IP_CT_DIR_REPLY if ctinfo >= IP_CT_IS_REPLY else 0


def _addr_of(d, iphdroff, v6, manip):
    """The address the manip replaces, as (offset, int)."""
    if v6:
        off = iphdroff + (8 if manip == NF_NAT_MANIP_SRC else 24)
        return off, int.from_bytes(d[off:off + 16], "big")
    off = iphdroff + (12 if manip == NF_NAT_MANIP_SRC else 16)
    return off, int.from_bytes(d[off:off + 4], "big")


def _csum_update(d, iphdroff, check, target, manip, partial, v6):
    """nf_csum_update(): the pseudo header's part of an L4 checksum."""
    _off, old = _addr_of(d, iphdroff, v6, manip)
    new = target.src if manip == NF_NAT_MANIP_SRC else target.dst
    CS.inet_proto_csum_replace(d, check, old, new, 4 if v6 else 1, partial, True)


def _port_manip(d, hdroff, target, manip):
    """Write the port; (old, new)."""
    off = hdroff if manip == NF_NAT_MANIP_SRC else hdroff + 2
    new = target.sport if manip == NF_NAT_MANIP_SRC else target.dport
    old = _get16(d, off)
    _put16(d, off, new)
    return old, new


def _tcp_like(d, iphdroff, hdroff, target, manip, partial, v6, full, check):
    """tcp_manip_pkt() / dccp_manip_pkt(): 8 bytes are guaranteed; the
    checksum is updated only when the whole header is there (an ICMP
    error's embedded header may not have it)."""
    if len(d) < hdroff + 8:
        return False
    have_all = len(d) >= hdroff + full
    if have_all:
        _csum_update(d, iphdroff, hdroff + check, target, manip, partial, v6)
    old, new = _port_manip(d, hdroff, target, manip)
    if have_all:
        CS.inet_proto_csum_replace(d, hdroff + check, old, new, 1, partial, False)
    return True


def _udp(d, iphdroff, hdroff, target, manip, partial, v6, lite):
    """udp_manip_pkt() / udplite_manip_pkt(): a zero UDP checksum (none) stays."""
    if len(d) < hdroff + 8:
        return False
    if lite or _get16(d, hdroff + 6):
        _csum_update(d, iphdroff, hdroff + 6, target, manip, partial, v6)
        off = hdroff if manip == NF_NAT_MANIP_SRC else hdroff + 2
        new = target.sport if manip == NF_NAT_MANIP_SRC else target.dport
        CS.inet_proto_csum_replace(d, hdroff + 6, _get16(d, off), new, 1, partial, False)
        if not _get16(d, hdroff + 6):
            _put16(d, hdroff + 6, 0xFFFF)           # CSUM_MANGLED_0
    _port_manip(d, hdroff, target, manip)
    return True


def _sctp(d, hdroff, target, manip, partial):
    """sctp_manip_pkt(): ports, then the CRC32c over the whole packet."""
    if len(d) < hdroff + 8:
        return False
    _port_manip(d, hdroff, target, manip)
    if len(d) >= hdroff + 12 and not partial:
        d[hdroff + 8:hdroff + 12] = CS.sctp_compute_cksum(d, hdroff)
    return True


def _icmp(d, hdroff, target, partial):
    """icmp_manip_pkt(): the identifier of query messages."""
    if len(d) < hdroff + 8:
        return False
    if d[hdroff] in _ICMP_ID_TYPES:
        CS.inet_proto_csum_replace(d, hdroff + 2, _get16(d, hdroff + 4), target.icmp_id, 1,
                                   partial, False)
        _put16(d, hdroff + 4, target.icmp_id)
    return True


def _icmpv6(d, iphdroff, hdroff, target, manip, partial):
    """icmpv6_manip_pkt(): the pseudo header, and the echo identifier."""
    if len(d) < hdroff + 8:
        return False
    _csum_update(d, iphdroff, hdroff + 2, target, manip, partial, True)
    if d[hdroff] in _ICMPV6_ECHO:
        CS.inet_proto_csum_replace(d, hdroff + 2, _get16(d, hdroff + 4), target.icmp_id, 1,
                                   partial, False)
        _put16(d, hdroff + 4, target.icmp_id)
    return True


def _l4proto_manip(d, iphdroff, hdroff, target, manip, partial, v6):
    """nf_nat_l4proto_manip_pkt(): by the target's protocol; others pass."""
    p = target.protonum
    if p == IPPROTO_TCP:
        return _tcp_like(d, iphdroff, hdroff, target, manip, partial, v6, 20, 16)
    if p == IPPROTO_UDP or p == IPPROTO_UDPLITE:
        return _udp(d, iphdroff, hdroff, target, manip, partial, v6, p == IPPROTO_UDPLITE)
    if p == IPPROTO_SCTP:
        return _sctp(d, hdroff, target, manip, partial)
    if p == IPPROTO_ICMP:
        return _icmp(d, hdroff, target, partial)
    if p == IPPROTO_ICMPV6:
        return _icmpv6(d, iphdroff, hdroff, target, manip, partial)
    if p == IPPROTO_DCCP:
        return _tcp_like(d, iphdroff, hdroff, target, manip, partial, v6, 12, 6)
    return True


def ipv4_manip_pkt(d, iphdroff, target, manip, partial=False):
    """nf_nat_ipv4_manip_pkt()."""
    if len(d) < iphdroff + 20:
        return False
    hdroff = iphdroff + (d[iphdroff] & 0xF) * 4
    if not _l4proto_manip(d, iphdroff, hdroff, target, manip, partial, False):
        return False
    off, old = _addr_of(d, iphdroff, False, manip)
    new = target.src if manip == NF_NAT_MANIP_SRC else target.dst
    CS.csum_replace4(d, iphdroff + 10, old, new)
    d[off:off + 4] = new.to_bytes(4, "big")
    return True


def ipv6_manip_pkt(d, iphdroff, target, manip, partial=False):
    """nf_nat_ipv6_manip_pkt(): L4 only for an unfragmented (or first) part."""
    if len(d) < iphdroff + 40:
        return False
    hdroff, _nexthdr, frag_off = ipv6_skip_exthdr(d, iphdroff + 40, d[iphdroff + 6])
    if hdroff >= 0 and not frag_off & ~0x7:
        if not _l4proto_manip(d, iphdroff, hdroff, target, manip, partial, True):
            return False
    off, _old = _addr_of(d, iphdroff, True, manip)
    new = target.src if manip == NF_NAT_MANIP_SRC else target.dst
    d[off:off + 16] = new.to_bytes(16, "big")
    return True


def _manip(d, iphdroff, target, manip, partial):
    if target.l3num == NFPROTO_IPV4:
        return ipv4_manip_pkt(d, iphdroff, target, manip, partial)
    if target.l3num == NFPROTO_IPV6:
        return ipv6_manip_pkt(d, iphdroff, target, manip, partial)
    return False


def nat_packet(d, conn, ctinfo, manip, partial=False):
    """nf_nat_packet(): rewrite when the connection is NATed on the side
    this manip handles in the packet's direction."""
    d_ = _ctdir(ctinfo)
    statusbit = IPS_SRC_NAT if manip == NF_NAT_MANIP_SRC else IPS_DST_NAT
    if d_ == IP_CT_DIR_REPLY:
        statusbit ^= IPS_NAT_MASK
    if not conn.status & statusbit:
        return NF_ACCEPT
    target = conn.tuple[1 - d_].invert()     # nf_nat_manip_pkt(): the other side, inverted
    if target is None or not _manip(d, 0, target, manip, partial):
        return NF_DROP
    return NF_ACCEPT


def _icmp_csum(d, hdrlen):
    return CS.inet_csum(bytes(d[hdrlen:]))


def _icmpv6_csum(d, hdrlen):
    pseudo = bytes(d[8:40]) + struct.pack("!IxxxB", len(d) - hdrlen, IPPROTO_ICMPV6)
    return CS.inet_csum(pseudo, bytes(d[hdrlen:]))


# per family: the inner header's minimum, the redirect type, the checksum
# over the ICMP message, the header rewrite, the ICMP protocol
_ICMP_V4 = (20, ICMP_REDIRECT, _icmp_csum, ipv4_manip_pkt, IPPROTO_ICMP)
_ICMP_V6 = (40, NDISC_REDIRECT, _icmpv6_csum, ipv6_manip_pkt, IPPROTO_ICMPV6)


def _reply_translation(d, conn, ctinfo, manip, hdrlen, partial, fam):
    """What nf_nat_icmp_reply_translation() and its IPv6 twin do: the
    embedded packet as the other direction sent it, the ICMP checksum
    recomputed, then the outer header as the reply to it."""
    inner_min, redirect, csum, manip_pkt, proto = fam
    if len(d) < hdrlen + 8 + inner_min:
        return False
    if not partial and csum(d, hdrlen) != 0:
        return False                    # nf_ip_checksum() / nf_ip6_checksum()
    if d[hdrlen] == redirect:
        if conn.status & IPS_NAT_DONE_MASK != IPS_NAT_DONE_MASK or conn.status & IPS_NAT_MASK:
            return False
    d_ = _ctdir(ctinfo)
    statusbit = IPS_SRC_NAT if manip == NF_NAT_MANIP_SRC else IPS_DST_NAT
    if d_ == IP_CT_DIR_REPLY:
        statusbit ^= IPS_NAT_MASK
    if not conn.status & statusbit:
        return True
    other = conn.tuple[1 - d_]
    if not manip_pkt(d, hdrlen + 8, other, 1 - manip, partial):
        return False
    if not partial:
        d[hdrlen + 2:hdrlen + 4] = b"\0\0"
        _put16(d, hdrlen + 2, csum(d, hdrlen))
    target = other.invert()
    if target is None:
        return False
    return manip_pkt(d, 0, target._replace(protonum=proto), manip, partial)


def icmp_reply_translation(d, conn, ctinfo, manip, partial=False):
    """nf_nat_icmp_reply_translation(): True to accept (possibly rewritten)."""
    if len(d) < 20:
        return False
    return _reply_translation(d, conn, ctinfo, manip, (d[0] & 0xF) * 4, partial, _ICMP_V4)


def icmpv6_reply_translation(d, conn, ctinfo, manip, hdrlen, partial=False):
    """nf_nat_icmpv6_reply_translation(): True to accept (possibly rewritten)."""
    return _reply_translation(d, conn, ctinfo, manip, hdrlen, partial, _ICMP_V6)
