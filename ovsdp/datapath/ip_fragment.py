"""Fragmentation on output, sans I/O: what net/openvswitch/actions.c
``ovs_fragment()`` does with ``ip_do_fragment()`` (net/ipv4/ip_output.c)
and ``ip6_fragment()`` (net/ipv6/ip6_output.c) when a packet reassembled
before conntrack (skb.mru set) is bigger than the MRU on its way out.

``ovs_fragment(frame, nh, eth_type, mru, ...)`` returns the frames to send,
each the L2 header of ``frame`` (its first ``nh`` bytes, VLAN tags
included, as prepare_frag() saves it and ovs_vport_output() puts it back)
and one fragment, or an errno when the packet cannot be fragmented.

As the kernel does it from the datapath:

- IPv4, with mtu = the MRU: the header, options and all, is copied into
  every fragment (prepare_frag() clears IPCB, so ip_options_fragment() has
  no option length to work with); DF is ignored and not set on the
  fragments (ignore_df; no IPSKB_FRAG_PMTU); the id is the datagram's; a
  fragment of a fragment keeps its offset and MF.
- IPv6, with mtu = the MRU but at least IPV6_MIN_MTU: the unfragmentable
  part is what ip6_find_1stfragopt() says (hop-by-hop, routing and the
  destination options before a routing header), the fragment header
  follows it.  The id is the one of the fragments the datagram was
  reassembled from when known (the kernel picks a new one with
  ipv6_select_ident()), else a new random one.
- Fragments are cut as the slow path cuts them (each as large as fits,
  multiples of 8 but the last); the kernel's fast path, which re-emits the
  received fragments' own boundaries when the skb still holds them
  unshared, is not reproduced.  A partial L4 checksum is completed first
  (skb_checksum_help()).
"""

import errno
import random
import struct

from ..uapi import headers as H
from . import checksum as CS

IPV6_MIN_MTU = 1280
IPV6_MAXPLEN = 65535
IP_MF = 0x2000
IP_OFFSET = 0x1FFF
IP6_MF = 0x0001
FRAG_HDR = struct.Struct("!BBHI")         # struct frag_hdr: nexthdr, reserved, frag_off, id
_U16 = struct.Struct("!H")

# The PRNG of new IPv6 fragment ids (ipv6_select_ident()); tests may reseed it.
rng = random.Random()


def ipv6_select_ident():
    """A new IPv6 fragment identification (never 0)."""
    return rng.getrandbits(32) or 1 << 31


def ip_do_fragment(pkt, mtu):
    """ip_do_fragment()'s slow path: the IPv4 packet ``pkt`` (from its IP
    header) in fragments of at most ``mtu`` bytes, or an errno."""
    ihl = (pkt[0] & 0x0F) * 4
    if ihl < 20 or len(pkt) < ihl:
        return errno.EINVAL
    space = mtu - ihl                     # the data space of a fragment
    if space < 8:
        return errno.EMSGSIZE
    frag_off = _U16.unpack_from(pkt, 6)[0]
    offset = (frag_off & IP_OFFSET) << 3  # ip_frag_init()
    not_last = frag_off & IP_MF
    hdr = bytearray(pkt[:ihl])
    data = memoryview(pkt)[ihl:]
    left = len(data)
    ptr = 0
    out = []
    while left > 0:                       # ip_frag_next()
        n = min(left, space)
        if n < left:
            n &= ~7
        left -= n
        fo = offset >> 3
        if left > 0 or not_last:
            fo |= IP_MF
        _U16.pack_into(hdr, 6, fo)
        _U16.pack_into(hdr, 2, n + ihl)
        _U16.pack_into(hdr, 10, 0)
        _U16.pack_into(hdr, 10, CS.inet_csum(hdr))
        out.append(bytes(hdr) + data[ptr:ptr + n])
        ptr += n
        offset += n
    return out


def ip6_find_1stfragopt(pkt):
    """ip6_find_1stfragopt(): (length of the unfragmentable part, offset of
    the next-header byte that ends it), or None."""
    n = len(pkt)
    offset = 40
    nh_off = 6
    found_rhdr = False
    while offset <= n:
        t = pkt[nh_off]
        if t == H.IPPROTO_ROUTING:
            found_rhdr = True
        elif t == H.IPPROTO_DSTOPTS:
            if found_rhdr:
                return offset, nh_off
        elif t != H.IPPROTO_HOPOPTS:
            return offset, nh_off
        if offset + 2 > n:
            return None
        nh_off = offset
        offset += (pkt[offset + 1] + 1) << 3
        if offset > IPV6_MAXPLEN:
            return None
    return None


def ipv6_fragment(pkt, mtu, frag_id):
    """ip6_fragment()'s slow path: the IPv6 packet ``pkt`` in fragments of at
    most ``mtu`` bytes (IPV6_MIN_MTU at least) with id ``frag_id``, or an errno."""
    found = ip6_find_1stfragopt(pkt)
    if found is None:
        return errno.EINVAL
    hlen, nh_off = found
    if mtu < IPV6_MIN_MTU:
        mtu = IPV6_MIN_MTU                # don't send fragments smaller than that
    if mtu < hlen + FRAG_HDR.size + 8:
        return errno.EMSGSIZE
    space = mtu - hlen - FRAG_HDR.size
    nexthdr = pkt[nh_off]
    unfrag = bytearray(pkt[:hlen])
    unfrag[nh_off] = H.IPPROTO_FRAGMENT
    data = memoryview(pkt)[hlen:]
    left = len(data)
    ptr = 0
    offset = 0
    out = []
    while left > 0:                       # ip6_frag_next()
        n = min(left, space)
        if n < left:
            n &= ~7
        left -= n
        _U16.pack_into(unfrag, 4, hlen - 40 + FRAG_HDR.size + n)
        fh = FRAG_HDR.pack(nexthdr, 0, offset | (IP6_MF if left > 0 else 0), frag_id)
        out.append(bytes(unfrag) + fh + data[ptr:ptr + n])
        ptr += n
        offset += n
    return out


def checksum_help(frame, csum_partial):
    """skb_checksum_help(): the frame with its partial L4 checksum filled in."""
    start, off = csum_partial
    d = bytearray(frame)
    if start + off + 2 > len(d):
        return bytes(d)
    c = ~CS.csum16(d[start:]) & 0xFFFF
    _U16.pack_into(d, start + off, c or 0xFFFF)
    return bytes(d)


def ovs_fragment(frame, nh, eth_type, mru, frag_id=None, csum_partial=None):
    """ovs_fragment() after its checks: the frames to send, or an errno."""
    if csum_partial is not None:
        frame = checksum_help(frame, csum_partial)
    l2 = bytes(frame[:nh])
    l3 = bytes(frame[nh:])
    if eth_type == H.ETH_P_IP:
        frags = ip_do_fragment(l3, mru)
    elif eth_type == H.ETH_P_IPV6:
        frags = ipv6_fragment(l3, mru, ipv6_select_ident() if frag_id is None else frag_id)
    else:
        return errno.EPFNOSUPPORT
    if isinstance(frags, int):
        return frags
    return [l2 + f for f in frags]
