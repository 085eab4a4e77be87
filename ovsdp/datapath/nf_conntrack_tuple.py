"""Tuples and the packet's network layer for conntrack
(include/net/netfilter/nf_conntrack_tuple.h; nf_ct_get_tuple() and the
get_l4proto() of nf_conntrack_core.c; the checks ip_rcv()/ipv6_rcv() make).

:class:`Tuple` is ``struct nf_conntrack_tuple`` with ints for addresses;
``parse_l3`` turns a packet given from its network header into a
:class:`Pkt`, or a reason why conntrack cannot track it.  Sans I/O; bad
input never raises.
"""

import struct
from typing import NamedTuple

from . import checksum
from .nf_conntrack_common import (
    IPPROTO_AH,
    IPPROTO_DSTOPTS,
    IPPROTO_FRAGMENT,
    IPPROTO_HOPOPTS,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_NONE,
    IPPROTO_ROUTING,
    NFPROTO_IPV4,
    NFPROTO_IPV6,
)
from .nf_conntrack_proto import icmp_invert_type, l4proto_find

_IPV6_EXT = frozenset({IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_AH,
                       IPPROTO_NONE, IPPROTO_DSTOPTS})       # ipv6_ext_hdr()


class Tuple(NamedTuple):
    """struct nf_conntrack_tuple: l3num, addresses (ints), protocol and the L4
    part: ports for TCP/UDP/UDP-Lite/SCTP/DCCP; for ICMP/ICMPv6 the echo id
    (src.u.icmp.id) and the type and code (dst.u.icmp.type/code)."""

    l3num: int
    src: int
    dst: int
    protonum: int
    sport: int = 0
    dport: int = 0
    icmp_id: int = 0
    icmp_type: int = 0
    icmp_code: int = 0

    def invert(self):
        """nf_ct_invert_tuple(): the tuple of the other direction, or None
        (ICMP types without a reply type cannot be inverted)."""
        if self.protonum in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            t = icmp_invert_type(self.protonum, self.icmp_type)
            if t is None:
                return None
            return self._replace(src=self.dst, dst=self.src, icmp_type=t)
        return self._replace(src=self.dst, dst=self.src, sport=self.dport, dport=self.sport)


class Pkt:
    """The parts of the skb the trackers read: L3 bytes trimmed to the
    datagram's length, the L4 offset (dataoff) and protocol, the addresses."""

    __slots__ = ("data", "l3num", "protonum", "dataoff", "src", "dst", "hop_limit")

    def __init__(self, data, l3num, protonum, dataoff, src, dst, hop_limit=0):
        self.data, self.l3num, self.protonum, self.dataoff = data, l3num, protonum, dataoff
        self.src, self.dst, self.hop_limit = src, dst, hop_limit

    def l4_csum_bad(self):
        """nf_checksum(): the L4 checksum (with pseudo header) does not verify."""
        l4 = self.data[self.dataoff:]
        if self.l3num == NFPROTO_IPV4:
            if self.protonum == IPPROTO_ICMP:
                return checksum.inet_csum(l4) != 0
            pseudo = struct.pack("!IIBBH", self.src, self.dst, 0, self.protonum, len(l4))
        else:
            pseudo = (self.src.to_bytes(16, "big") + self.dst.to_bytes(16, "big") +
                      struct.pack("!IxxxB", len(l4), self.protonum))
        return checksum.inet_csum(pseudo, l4) != 0


def ipv6_skip_exthdr(data, start, nexthdr):
    """ipv6_skip_exthdr(): skip extension headers; (offset or -1, nexthdr, frag_off)."""
    frag_off = 0
    while nexthdr in _IPV6_EXT:
        if nexthdr == IPPROTO_NONE or start + 2 > len(data):
            return -1, nexthdr, frag_off
        if nexthdr == IPPROTO_FRAGMENT:
            if start + 4 > len(data):
                return -1, nexthdr, frag_off
            (frag_off,) = struct.unpack_from("!H", data, start + 2)
            if frag_off & ~0x7:
                break                           # not the first fragment
            hdrlen = 8
        elif nexthdr == IPPROTO_AH:
            hdrlen = (data[start + 1] + 2) << 2
        else:
            hdrlen = (data[start + 1] + 1) << 3
        nexthdr = data[start]
        start += hdrlen
    return start, nexthdr, frag_off


def get_l4proto(data, nhoff, l3num):
    """ipv4_get_l4proto / ipv6_get_l4proto: (dataoff, protonum) or (None, why).
    A non-first fragment cannot be tracked (the kernel defragments first)."""
    if l3num == NFPROTO_IPV4:
        if nhoff + 20 > len(data):
            return None, "short IPv4 header"
        (frag,) = struct.unpack_from("!H", data, nhoff + 6)
        if frag & 0x1FFF:
            return None, "non-first fragment"
        dataoff = nhoff + ((data[nhoff] & 0xF) << 2)
        if dataoff > len(data):
            return None, "bogus IPv4 header length"
        return (dataoff, data[nhoff + 9]), None
    if nhoff + 40 > len(data):
        return None, "short IPv6 header"
    protoff, nexthdr, frag_off = ipv6_skip_exthdr(data, nhoff + 40, data[nhoff + 6])
    if protoff < 0:
        return None, "can't find the transport header"
    if frag_off & ~0x7:
        return None, "non-first fragment"
    return (protoff, nexthdr), None


def get_tuple(data, nhoff, dataoff, l3num, protonum):
    """nf_ct_get_tuple(): the tuple of the packet at ``nhoff``, or None."""
    if l3num == NFPROTO_IPV4:
        src, dst = struct.unpack_from("!II", data, nhoff + 12)
    else:
        src = int.from_bytes(data[nhoff + 8:nhoff + 24], "big")
        dst = int.from_bytes(data[nhoff + 24:nhoff + 40], "big")
    l4 = l4proto_find(protonum)
    if protonum in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        if dataoff + 8 > len(data):
            return None
        itype, code, ident = struct.unpack_from("!BB2xH", data, dataoff)
        return Tuple(l3num, src, dst, protonum, icmp_id=ident, icmp_type=itype, icmp_code=code)
    if l4.ports:
        if dataoff + 4 > len(data):
            return None
        sport, dport = struct.unpack_from("!HH", data, dataoff)
        return Tuple(l3num, src, dst, protonum, sport, dport)
    return Tuple(l3num, src, dst, protonum)


_IPV4_FAST = struct.Struct("!H2xHxB2xII")     # tot_len, frag_off, protocol, saddr, daddr


def parse_l3(data, family):
    """The network header checks ip_rcv / ipv6_rcv and OVS make before
    conntrack sees a packet, then get_l4proto: (Pkt, None) or (None, why)."""
    data = bytes(data)
    if family == NFPROTO_IPV4 and len(data) >= 20 and data[0] == 0x45:
        # the common case in one unpack: no options, not a later fragment
        tot_len, frag, protonum, src, dst = _IPV4_FAST.unpack_from(data, 2)
        if 20 <= tot_len <= len(data) and not frag & 0x1FFF:
            if tot_len < len(data):
                data = data[:tot_len]
            return Pkt(data, family, protonum, 20, src, dst, 0), None
    if family == NFPROTO_IPV4:
        if len(data) < 20:
            return None, "short IPv4 header"
        if data[0] >> 4 != 4:
            return None, "not an IPv4 packet"
        ihl = (data[0] & 0xF) * 4
        if ihl < 20:
            return None, "bad IHL"
        if ihl > len(data):
            return None, "truncated IPv4 options"
        (tot_len,) = struct.unpack_from("!H", data, 2)
        if tot_len < ihl:
            return None, "bad IPv4 total length"
        if tot_len > len(data):
            return None, "truncated IPv4 packet"
        data = data[:tot_len]
        hop = 0
    elif family == NFPROTO_IPV6:
        if len(data) < 40:
            return None, "short IPv6 header"
        if data[0] >> 4 != 6:
            return None, "not an IPv6 packet"
        (plen,) = struct.unpack_from("!H", data, 4)
        if plen:                                # 0: jumbogram, keep the buffer's length
            if 40 + plen > len(data):
                return None, "truncated IPv6 packet"
            data = data[:40 + plen]
        hop = data[7]
    else:
        return None, "unknown l3 protocol %r" % (family,)
    res, why = get_l4proto(data, 0, family)
    if res is None:
        return None, why
    dataoff, protonum = res
    if family == NFPROTO_IPV4:
        src, dst = struct.unpack_from("!II", data, 12)
    else:
        src, dst = int.from_bytes(data[8:24], "big"), int.from_bytes(data[24:40], "big")
    return Pkt(data, family, protonum, dataoff, src, dst, hop), None
