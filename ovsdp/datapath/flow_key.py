"""Packet bytes -> flow key (net/openvswitch/flow.c: key_extract()).

``extract(data, meta)`` parses an Ethernet frame into a flow key int (see
key_layout) and ORs ``meta`` (in_port, recirc_id, priority, skb_mark,
dp_hash, tunnel and ct fields, placed by the caller) into it.  Truncated and
malformed packets get the fields the kernel would give them (a header that
does not fit zeroes that layer's fields, like the kernel's
check_header()/pskb_may_pull() failures), except where key_extract() itself
fails (only a bad NSH header does that here): then :class:`ExtractError`
carries the kernel's errno, and the callers do what the kernel's do (the
receive path drops the packet, OVS_PACKET_CMD_EXECUTE fails with the errno,
a recirculation is an action error).

Kernel rules mirrored here (Linux ~6.x):

- VLAN: the outer tag (TPID 0x8100 or 0x88a8, frame long enough for the tag
  and the next type) gives vlan_tci|VLAN_CFI_MASK and vlan_tpid, one inner
  tag likewise gives cvlan_*; the kernel moves the outer tag out of the frame
  (hwaccel), ovsdp keeps every tag inline.
- parse_ethertype(): a type below 0x600 is 802.2 (ETH_P_802_2) unless an
  LLC/SNAP header with OUI 0 carries a real ethertype.  The network header
  follows the SNAP header whenever one with OUI 0 was present.
- IPv4: a header that does not fit (or IHL < 5) zeroes the IP fields; a
  non-zero fragment offset is frag LATER with the L4 fields zeroed; MF is
  FIRST.  L4 fields are zeroed when the L4 header does not fit.
- IPv6: extension headers walked like ipv6_find_hdr() (the current kernel
  uses it rather than ipv6_skip_exthdr()), later fragments get proto 44
  (NEXTHDR_FRAGMENT); ipv6_exthdrs as get_ipv6_ext_hdrs() computes them,
  including its quirk of testing IPPROTO_FRAGMENT (44) where OFPIEH12_FRAG
  is meant.
- ICMPv6 neighbour discovery: target, sll, tll; a repeated sll/tll option
  zeroes all three (parse_icmpv6()).
- ARP/RARP only for Ethernet/IPv4 ARP, opcode into ip_proto when <= 0xff.
- MPLS: up to 3 labels stored; the stack is walked to the bottom of stack;
  a stack truncated before its bottom keeps the labels read but no
  num_labels_mask (the kernel returns before setting it).
- NSH (0x894f), parse_nsh(): the base header must fit (EINVAL), have
  version 0 (EINVAL) and its whole length must fit (EINVAL); flags, ttl,
  mdtype (the whole byte), np and path_hdr go into the key; MD type 1 needs
  length 24 (EINVAL) and gives the 4 context words, MD type 2 zero context,
  any other MD type EINVAL.  The kernel's check_header() answers ENOMEM
  when the bytes are there but not linear; ovsdp's packets are always
  linear.

Where the kernel would leave a field uninitialised or stale (e.g. the L4
fields of an IPv6 packet whose extension headers are truncated), ovsdp
leaves it 0.  Frames shorter than an Ethernet header (which the kernel never
parses) read as if padded with zeros.

Fast path: an Ethernet frame (untagged or with one VLAN tag) carrying IPv4
without options, not a fragment, and a complete TCP or UDP header is the
first 54 bytes of the frame (without the tag) read as one number and masked
(KEEP_TCP / KEEP_UDP), plus the tag.  It returns exactly what the parser
returns (tests check it by property).

Also here: ``layers()`` (the header offsets actions need).  The packet
hashes computed from a key (skb_get_hash() and its kin) are
:mod:`.flow_hash`.
"""

import struct

from .. import uapi as U
from ..uapi import headers as H
from . import key_layout as K

# ---------------------------------------------------------------- constants
ETH_HLEN = 14
VLAN_HLEN = 4
MPLS_HLEN = 4
VLAN_CFI_MASK = K.VLAN_CFI_MASK
ETH_P_802_2 = K.ETH_P_802_2
ETH_P_8021Q = K.ETH_P_8021Q
ETH_P_8021AD = K.ETH_P_8021AD
ETH_P_IP = K.ETH_P_IP
ETH_P_IPV6 = K.ETH_P_IPV6
ETH_P_ARP = K.ETH_P_ARP
ETH_P_RARP = K.ETH_P_RARP
ETH_P_MPLS_UC = K.ETH_P_MPLS_UC
ETH_P_MPLS_MC = K.ETH_P_MPLS_MC
ETH_P_NSH = K.ETH_P_NSH

# include/net/nsh.h
NSH_BASE_HDR_LEN = 8
NSH_M_TYPE1 = 1
NSH_M_TYPE2 = 2
NSH_M_TYPE1_LEN = 24
EINVAL = 22

IPPROTO_HOPOPTS = H.IPPROTO_HOPOPTS
IPPROTO_ICMP = H.IPPROTO_ICMP
IPPROTO_TCP = H.IPPROTO_TCP
IPPROTO_UDP = H.IPPROTO_UDP
IPPROTO_ROUTING = H.IPPROTO_ROUTING
IPPROTO_FRAGMENT = H.IPPROTO_FRAGMENT
IPPROTO_ESP = H.IPPROTO_ESP
IPPROTO_AH = H.IPPROTO_AH
IPPROTO_ICMPV6 = H.IPPROTO_ICMPV6
IPPROTO_NONE = H.IPPROTO_NONE
IPPROTO_DSTOPTS = H.IPPROTO_DSTOPTS
IPPROTO_SCTP = H.IPPROTO_SCTP

NDISC_NEIGHBOUR_SOLICITATION = 135
NDISC_NEIGHBOUR_ADVERTISEMENT = 136
ND_OPT_SOURCE_LL_ADDR = 1
ND_OPT_TARGET_LL_ADDR = 2

FRAG_NONE = U.OVS_FRAG_TYPE_NONE
FRAG_FIRST = U.OVS_FRAG_TYPE_FIRST
FRAG_LATER = U.OVS_FRAG_TYPE_LATER

# ipv6_find_hdr() flags and results
IP6_FH_F_FRAG = 1 << 0
IP6_FH_F_AUTH = 1 << 1
IP6_FH_F_SKIP_RH = 1 << 2
ENOENT = 2
EBADMSG = 74

# OFPIEH12_* (flow.h), uapi's
OFPIEH12_NONEXT = U.OFPIEH12_NONEXT
OFPIEH12_ESP = U.OFPIEH12_ESP
OFPIEH12_AUTH = U.OFPIEH12_AUTH
OFPIEH12_DEST = U.OFPIEH12_DEST
OFPIEH12_FRAG = U.OFPIEH12_FRAG
OFPIEH12_ROUTER = U.OFPIEH12_ROUTER
OFPIEH12_HOP = U.OFPIEH12_HOP
OFPIEH12_UNREP = U.OFPIEH12_UNREP
OFPIEH12_UNSEQ = U.OFPIEH12_UNSEQ

# ipv6_ext_hdr(): HOP, ROUTING, FRAGMENT, AUTH, NONE, DEST (ESP is not one)
_IPV6_EXT = frozenset((IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT,
                       IPPROTO_AH, IPPROTO_NONE, IPPROTO_DSTOPTS))
_VLAN_TPIDS = (ETH_P_8021Q, ETH_P_8021AD)

# field shifts
_S_ETH_DST = K.S_ETH_DST
_S_ETH_SRC = K.S_ETH_SRC
_S_ETH_TYPE = K.S_ETH_TYPE
_S_VLAN_TCI = K.S_VLAN_TCI
_S_VLAN_TPID = K.S_VLAN_TPID
_S_CVLAN_TCI = K.S_CVLAN_TCI
_S_CVLAN_TPID = K.S_CVLAN_TPID
_S_IP_FRAG = K.S_IP_FRAG
_S_IP_TOS = K.S_IP_TOS
_S_IP_TTL = K.S_IP_TTL
_S_IP_PROTO = K.S_IP_PROTO
_S_IPV4_SRC = K.S_IPV4_SRC
_S_IPV4_DST = K.S_IPV4_DST
_S_TP_SRC = K.S_TP_SRC
_S_TP_DST = K.S_TP_DST
_S_TCP_FLAGS = K.S_TCP_FLAGS
_S_ARP_SHA = K.S_ARP_SHA
_S_ARP_THA = K.S_ARP_THA
_S_IPV6_EXTHDRS = K.S_IPV6_EXTHDRS
_S_NO_ETH = K.S_NO_ETH
_S_IPV6_SRC = K.S_IPV6_SRC
_S_IPV6_DST = K.S_IPV6_DST
_S_IPV6_LABEL = K.S_IPV6_LABEL
_S_MPLS_LSE = (K.S_MPLS_LSE0, K.S_MPLS_LSE1, K.S_MPLS_LSE2)
_S_MPLS_LABELS = K.S_MPLS_LABELS
_S_NSH_FLAGS = K.S_NSH_FLAGS
_S_NSH_TTL = K.S_NSH_TTL
_S_NSH_MDTYPE = K.S_NSH_MDTYPE
_S_NSH_NP = K.S_NSH_NP
_S_NSH_PATH_HDR = K.S_NSH_PATH_HDR
_S_NSH_CONTEXT = K.S_NSH_CONTEXT
_S_TP_PAIR = _S_TP_DST  # tp_src directly above tp_dst: one 32-bit field
assert K.S_TP_SRC == _S_TP_DST + 16

# Metadata fields: everything extract() does not derive from the packet.
META_MASK = 0
for _n in ("in_port", "recirc_id", "dp_hash", "priority", "skb_mark", "ct_state",
           "ct_zone", "ct_mark", "ct_labels", "ct_orig_proto", "ct_orig_tp_src",
           "ct_orig_tp_dst", "ct_orig_src", "ct_orig_dst", "tun_id", "tun_ipv4_src",
           "tun_ipv4_dst", "tun_ipv6_src", "tun_ipv6_dst", "tun_tos", "tun_ttl",
           "tun_tp_src", "tun_tp_dst", "tun_flags", "tun_proto", "tun_opts_len",
           "tun_opts"):
    META_MASK |= K.ones(_n)
del _n

# The fast path: untagged Ethernet + IPv4 (IHL 5, not a fragment) + TCP/UDP.
# The key is the frame's first 54 bytes, read as one number, with only the
# image bits of the fields such a key holds kept.
_KEEP_COMMON = (K.M_ETH_DST | K.M_ETH_SRC | K.M_ETH_TYPE | K.M_IP_TOS | K.M_IP_TTL
                | K.M_IP_PROTO | K.M_IPV4_SRC | K.M_IPV4_DST | K.M_TP_SRC | K.M_TP_DST)
KEEP_UDP = _KEEP_COMMON
KEEP_TCP = _KEEP_COMMON | (0x0FFF << _S_TCP_FLAGS)

_U32 = struct.Struct("!I")
_IPV4 = H.IPHDR
_ARP = struct.Struct("!HHBBH6sI6sI")      # hrd pro hln pln op sha sip tha tip
_unpack_u32 = _U32.unpack_from
_unpack_ipv4 = _IPV4.unpack_from
_unpack_arp = _ARP.unpack_from
_unpack_tcp = struct.Struct("!I8xH").unpack_from      # ports, offset+flags
_from_bytes = int.from_bytes


class ExtractError(Exception):
    """key_extract() failed with ``errno``; ``result`` is what _parse() had
    built so far (key, mac_len, network, transport, ip_proto, protocol,
    vlan), for the callers that only want header offsets."""

    def __init__(self, err, result, msg):
        super().__init__(msg)
        self.errno = err
        self.result = result


def parse_nsh(data, nh):
    """parse_nsh(): ``(key bits, errno or 0, message)`` of the NSH header at
    ``nh``."""
    n = len(data)
    if nh + NSH_BASE_HDR_LEN > n:
        return 0, EINVAL, "NSH base header truncated"
    vftl = (data[nh] << 8) | data[nh + 1]
    if vftl >> 14:
        return 0, EINVAL, f"NSH version {vftl >> 14} is not 0"
    length = (vftl & 0x3F) << 2
    if nh + length > n:
        return 0, EINVAL, f"NSH header of length {length} truncated"
    mdtype = data[nh + 2]
    k = (((vftl >> 12) & 0x3) << _S_NSH_FLAGS | ((vftl >> 6) & 0x3F) << _S_NSH_TTL
         | mdtype << _S_NSH_MDTYPE | data[nh + 3] << _S_NSH_NP
         | _unpack_u32(data, nh + 4)[0] << _S_NSH_PATH_HDR)
    if mdtype == NSH_M_TYPE1:
        if length != NSH_M_TYPE1_LEN:
            return k, EINVAL, f"NSH MD type 1 header has length {length}, not 24"
        k |= _from_bytes(data[nh + 8:nh + 24], "big") << _S_NSH_CONTEXT
    elif mdtype != NSH_M_TYPE2:
        return k, EINVAL, f"NSH MD type {mdtype} is not 1 or 2"
    return k, 0, ""


# ------------------------------------------------------------------- Layers
class Layers:
    """Header offsets of a packet, as key_extract() leaves them in the skb.

    - ``mac_len``: end of the L2 header including inline VLAN tags (and an
      LLC/SNAP header) = start of the MPLS stack or of the network header.
    - ``network``: skb_network_offset(): the L3 header, or the MPLS stack
      (which the kernel keeps as network header until the labels are popped).
    - ``transport``: skb_transport_offset() for IPv4/IPv6 (the network
      offset when the IP header is bad), -1 when the kernel leaves it unset.
    - ``eth_type``: the key's eth_type; ``ip_proto``: the L4 protocol found
      (IPv4 protocol field; IPv6 after extension headers, 44 for later
      fragments); ``protocol``: skb->protocol (the inner TPID for frames with
      two tags, as the kernel keeps it for skb_vlan_pop()); ``vlan``: number
      of VLAN tags parsed (0-2), the first being the one the kernel holds
      outside the frame (hwaccel).
    """

    __slots__ = ("mac_len", "network", "transport", "eth_type", "ip_proto",
                 "protocol", "vlan")

    def __init__(self, mac_len, network, transport, eth_type, ip_proto, protocol, vlan):
        self.mac_len = mac_len
        self.network = network
        self.transport = transport
        self.eth_type = eth_type
        self.ip_proto = ip_proto
        self.protocol = protocol
        self.vlan = vlan

    def __repr__(self):
        return ("Layers(mac_len=%d, network=%d, transport=%d, eth_type=%#06x, "
                "ip_proto=%d, protocol=%#06x, vlan=%d)"
                % (self.mac_len, self.network, self.transport, self.eth_type,
                   self.ip_proto, self.protocol, self.vlan))


# ------------------------------------------------------------ IPv6 helpers
def ipv6_find_hdr(data, nh, target=-1, flags=0):
    """ipv6_find_hdr() for the IPv6 header at ``nh``.

    Returns ``(nexthdr, offset, fragoff, flags)``; ``nexthdr`` is negative
    (-ENOENT, -EBADMSG) on failure.  ``offset`` is the header found (or the
    upper-layer header when ``target`` < 0); ``fragoff`` the fragment offset
    of a non-first fragment.
    """
    n = len(data)
    start = nh + 40
    nexthdr = data[nh + 6]
    while True:
        found = nexthdr == target
        if nexthdr not in _IPV6_EXT or nexthdr == IPPROTO_NONE:
            if target < 0 or found:
                break
            return -ENOENT, 0, 0, flags
        if start + 2 > n:
            return -EBADMSG, 0, 0, flags
        hp_next = data[start]
        hp_len = data[start + 1]
        if nexthdr == IPPROTO_ROUTING:
            if start + 4 > n:
                return -EBADMSG, 0, 0, flags
            if flags & IP6_FH_F_SKIP_RH and data[start + 3] == 0:
                found = False
        if nexthdr == IPPROTO_FRAGMENT:
            flags |= IP6_FH_F_FRAG
            if start + 4 > n:
                return -EBADMSG, 0, 0, flags
            frag_off = ((data[start + 2] << 8) | data[start + 3]) & ~7
            if frag_off:
                if target < 0 and (hp_next not in _IPV6_EXT or hp_next == IPPROTO_NONE):
                    return hp_next, 0, frag_off, flags
                if not found:
                    return -ENOENT, 0, 0, flags
                return nexthdr, start, frag_off, flags
            hdrlen = 8
        elif nexthdr == IPPROTO_AH:
            if flags & IP6_FH_F_AUTH and target < 0:
                break
            hdrlen = (hp_len + 2) << 2
        else:
            hdrlen = (hp_len + 1) << 3
        if found:
            break
        nexthdr = hp_next
        start += hdrlen
    return nexthdr, start, 0, flags


def ipv6_ext_hdrs(data, nh):
    """get_ipv6_ext_hdrs(): the OFPIEH12_* bits of the IPv6 header at ``nh``."""
    n = len(data)
    next_type = data[nh + 6]
    start = nh + 40
    dest_count = 0
    h = 0
    while next_type in _IPV6_EXT:
        if next_type == IPPROTO_NONE:
            return h | OFPIEH12_NONEXT
        if next_type == IPPROTO_ESP:            # not an ipv6_ext_hdr(): unreachable
            if h & OFPIEH12_ESP:
                h |= OFPIEH12_UNREP
            if (h & ~(OFPIEH12_HOP | OFPIEH12_DEST | OFPIEH12_ROUTER | IPPROTO_FRAGMENT
                      | OFPIEH12_AUTH | OFPIEH12_UNREP)) or dest_count >= 2:
                h |= OFPIEH12_UNSEQ
            h |= OFPIEH12_ESP
        elif next_type == IPPROTO_AH:
            if h & OFPIEH12_AUTH:
                h |= OFPIEH12_UNREP
            # The kernel masks with IPPROTO_FRAGMENT (44) where OFPIEH12_FRAG is
            # meant: an AH after a fragment header counts as out of sequence.
            if (h & ~(OFPIEH12_HOP | OFPIEH12_DEST | OFPIEH12_ROUTER | IPPROTO_FRAGMENT
                      | OFPIEH12_UNREP)) or dest_count >= 2:
                h |= OFPIEH12_UNSEQ
            h |= OFPIEH12_AUTH
        elif next_type == IPPROTO_DSTOPTS:
            if dest_count == 0:
                if h & ~(OFPIEH12_HOP | OFPIEH12_UNREP):
                    h |= OFPIEH12_UNSEQ
                h |= OFPIEH12_DEST
            elif dest_count == 1:
                if h & ~(OFPIEH12_HOP | OFPIEH12_DEST | OFPIEH12_ROUTER | OFPIEH12_FRAG
                         | OFPIEH12_AUTH | OFPIEH12_ESP | OFPIEH12_UNREP):
                    h |= OFPIEH12_UNSEQ
            else:
                h |= OFPIEH12_UNREP
            dest_count += 1
        elif next_type == IPPROTO_FRAGMENT:
            if h & OFPIEH12_FRAG:
                h |= OFPIEH12_UNREP
            if (h & ~(OFPIEH12_HOP | OFPIEH12_DEST | OFPIEH12_ROUTER | OFPIEH12_UNREP)
                    or dest_count >= 2):
                h |= OFPIEH12_UNSEQ
            h |= OFPIEH12_FRAG
        elif next_type == IPPROTO_ROUTING:
            if h & OFPIEH12_ROUTER:
                h |= OFPIEH12_UNREP
            if h & ~(OFPIEH12_HOP | OFPIEH12_DEST | OFPIEH12_UNREP) or dest_count >= 2:
                h |= OFPIEH12_UNSEQ
            h |= OFPIEH12_ROUTER
        else:                                   # IPPROTO_HOPOPTS
            if h & OFPIEH12_HOP:
                h |= OFPIEH12_UNREP
            if h == 0:
                h |= OFPIEH12_HOP
            else:
                h |= OFPIEH12_UNSEQ
        if start + 2 > n:
            break
        next_type = data[start]
        start += (data[start + 1] + 1) << 3     # ipv6_optlen(), for every type
    return h


def _parse_icmpv6_nd(data, th, n):
    """parse_icmpv6() neighbour discovery part: target/sll/tll bits, relative
    to the IPv6 block (see _parse)."""
    icmp_len = n - th
    if icmp_len < 24:
        return 0
    target = _from_bytes(data[th + 8:th + 24], "big")
    sll = tll = 0
    icmp_len -= 24
    off = th + 24
    while icmp_len >= 8:
        opt_len = data[off + 1] * 8
        if not opt_len or opt_len > icmp_len:
            break
        opt_type = data[off]
        if opt_type == ND_OPT_SOURCE_LL_ADDR and opt_len == 8:
            if sll:
                return 0
            sll = _from_bytes(data[off + 2:off + 8], "big")
        elif opt_type == ND_OPT_TARGET_LL_ADDR and opt_len == 8:
            if tll:
                return 0
            tll = _from_bytes(data[off + 2:off + 8], "big")
        icmp_len -= opt_len
        off += opt_len
    return (target << _R_ND_TARGET) | (sll << _R_ND_SLL) | (tll << _R_ND_TLL)


def _l4(data, proto, th, n):
    """Key bits of the TCP/UDP/SCTP header at ``th`` (0 if it does not fit)."""
    if proto == IPPROTO_TCP:
        if th + 20 <= n:
            ports, w = _unpack_tcp(data, th)
            doff = (w >> 12) << 2
            if doff >= 20 and th + doff <= n:
                return (ports << _S_TP_PAIR) | ((w & 0x0FFF) << _S_TCP_FLAGS)
        return 0
    if proto == IPPROTO_UDP:
        if th + 8 <= n:
            return _unpack_u32(data, th)[0] << _S_TP_PAIR
        return 0
    if proto == IPPROTO_SCTP:
        if th + 12 <= n:
            return _unpack_u32(data, th)[0] << _S_TP_PAIR
    return 0


# ------------------------------------------------------------ the parser
# The IPv6 fields (addresses, label, ND) and the MPLS fields are contiguous
# blocks of the key: each is built as a small number and shifted into place
# once, which is much cheaper than OR-ing every field into a long key.
_S_V6 = _S_IPV6_SRC
_R_IPV6_DST = K.S_IPV6_DST - _S_V6
_R_IPV6_LABEL = K.S_IPV6_LABEL - _S_V6
_R_ND_TARGET = K.S_ND_TARGET - _S_V6
_R_ND_SLL = K.S_ND_SLL - _S_V6
_R_ND_TLL = K.S_ND_TLL - _S_V6
_S_MPLS = K.S_MPLS_LSE0
_R_MPLS_LSE = tuple(s - _S_MPLS for s in _S_MPLS_LSE)
_R_MPLS_LABELS = _S_MPLS_LABELS - _S_MPLS
_NO_ETH_BIT = 1 << _S_NO_ETH


def _parse(data, meta, no_eth, eth_type):
    """key_extract(): returns (key, mac_len, network, transport, ip_proto,
    protocol, vlan_tags)."""
    n = len(data)
    vlan = 0
    if no_eth:
        meta |= _NO_ETH_BIT
        lo = eth_type << _S_ETH_TYPE
        nh = 0
        protocol = eth_type
    else:
        # eth_dst and eth_src are adjacent in the image: dst above src.
        if n >= 12:
            lo = _from_bytes(data[:12], "big") << _S_ETH_SRC
        else:
            lo = _from_bytes(bytes(data[:12]).ljust(12, b"\0"), "big") << _S_ETH_SRC
        off = 12
        # parse_vlan(): outer tag, then one inner tag.
        if n >= 18:
            tpid = (data[12] << 8) | data[13]
            if tpid == ETH_P_8021Q or tpid == ETH_P_8021AD:
                tci = (data[14] << 8) | data[15]
                lo |= ((tci | VLAN_CFI_MASK) << _S_VLAN_TCI) | (tpid << _S_VLAN_TPID)
                vlan = 1
                off = 16
                if n >= 22:
                    tpid2 = (data[16] << 8) | data[17]
                    if tpid2 == ETH_P_8021Q or tpid2 == ETH_P_8021AD:
                        tci = (data[18] << 8) | data[19]
                        lo |= (((tci | VLAN_CFI_MASK) << _S_CVLAN_TCI)
                               | (tpid2 << _S_CVLAN_TPID))
                        vlan = 2
                        off = 20
        # parse_ethertype()
        if off + 2 <= n:
            proto = (data[off] << 8) | data[off + 1]
        else:
            proto = 0
        off += 2
        if proto >= 0x600:
            eth_type = proto
        elif n - off < 8:
            eth_type = ETH_P_802_2
        else:
            if data[off] != 0xAA or data[off + 1] != 0xAA or data[off + 3] or data[off + 4] \
                    or data[off + 5]:
                eth_type = ETH_P_802_2
            else:
                t = (data[off + 6] << 8) | data[off + 7]
                off += 8
                eth_type = t if t >= 0x600 else ETH_P_802_2
        lo |= eth_type << _S_ETH_TYPE
        nh = off
        # skb->protocol: the inner TPID of a double-tagged frame
        protocol = tpid2 if vlan == 2 else eth_type
    mac_len = nh

    # key_extract_l3l4()
    if eth_type == ETH_P_IP:
        if nh + 20 > n:
            return meta | lo, mac_len, nh, nh, 0, protocol, vlan
        vihl, tos, _tl, _id, frag, ttl, proto, _cs, src, dst = _unpack_ipv4(data, nh)
        ihl = (vihl & 0x0F) * 4
        if ihl < 20 or nh + ihl > n:
            return meta | lo, mac_len, nh, nh, 0, protocol, vlan
        th = nh + ihl
        lo |= ((src << _S_IPV4_SRC) | (dst << _S_IPV4_DST) | (proto << _S_IP_PROTO)
               | (tos << _S_IP_TOS) | (ttl << _S_IP_TTL))
        if frag & 0x1FFF:
            return (meta | lo | (FRAG_LATER << _S_IP_FRAG), mac_len, nh, th, proto,
                    protocol, vlan)
        if frag & 0x2000:
            lo |= FRAG_FIRST << _S_IP_FRAG
        if proto == IPPROTO_ICMP:
            if th + 8 <= n:
                lo |= (data[th] << _S_TP_SRC) | (data[th + 1] << _S_TP_DST)
        else:
            lo |= _l4(data, proto, th, n)
        return meta | lo, mac_len, nh, th, proto, protocol, vlan

    if eth_type == ETH_P_IPV6:
        if nh + 40 > n:
            return meta | lo, mac_len, nh, nh, 0, protocol, vlan
        first = _unpack_u32(data, nh)[0]
        lo |= ((((first >> 20) & 0xFF) << _S_IP_TOS) | (data[nh + 7] << _S_IP_TTL))
        v6 = (_from_bytes(data[nh + 8:nh + 24], "big")
              | (_from_bytes(data[nh + 24:nh + 40], "big") << _R_IPV6_DST)
              | ((first & 0xFFFFF) << _R_IPV6_LABEL))
        nexthdr = data[nh + 6]
        if nexthdr in _IPV6_EXT:
            lo |= ipv6_ext_hdrs(data, nh) << _S_IPV6_EXTHDRS
            nexthdr, th, fragoff, flags = ipv6_find_hdr(data, nh)
            if flags & IP6_FH_F_FRAG:
                if fragoff:
                    lo |= (FRAG_LATER << _S_IP_FRAG) | (IPPROTO_FRAGMENT << _S_IP_PROTO)
                    return (meta | lo | (v6 << _S_V6), mac_len, nh, -1, IPPROTO_FRAGMENT,
                            protocol, vlan)
                lo |= FRAG_FIRST << _S_IP_FRAG
            if nexthdr < 0:
                lo |= IPPROTO_NONE << _S_IP_PROTO
                return (meta | lo | (v6 << _S_V6), mac_len, nh, nh, IPPROTO_NONE,
                        protocol, vlan)
        else:
            th = nh + 40
        lo |= nexthdr << _S_IP_PROTO
        if nexthdr == IPPROTO_ICMPV6:
            if th + 8 <= n:
                t = data[th]
                code = data[th + 1]
                lo |= (t << _S_TP_SRC) | (code << _S_TP_DST)
                if code == 0 and (t == NDISC_NEIGHBOUR_SOLICITATION
                                  or t == NDISC_NEIGHBOUR_ADVERTISEMENT):
                    v6 |= _parse_icmpv6_nd(data, th, n)
        else:
            lo |= _l4(data, nexthdr, th, n)
        return meta | lo | (v6 << _S_V6), mac_len, nh, th, nexthdr, protocol, vlan

    if eth_type == ETH_P_ARP or eth_type == ETH_P_RARP:
        if nh + 28 <= n:
            hrd, pro, hln, pln, op, sha, sip, tha, tip = _unpack_arp(data, nh)
            if hrd == 1 and pro == ETH_P_IP and hln == 6 and pln == 4:
                if op <= 0xFF:
                    lo |= op << _S_IP_PROTO
                lo |= ((sip << _S_IPV4_SRC) | (tip << _S_IPV4_DST)
                       | (_from_bytes(sha, "big") << _S_ARP_SHA)
                       | (_from_bytes(tha, "big") << _S_ARP_THA))
        return meta | lo, mac_len, nh, -1, 0, protocol, vlan

    if eth_type == ETH_P_MPLS_UC or eth_type == ETH_P_MPLS_MC:
        mpls = 0
        count = 1
        while True:
            end = mac_len + count * MPLS_HLEN
            if end > n:
                # truncated stack: the labels read, but no num_labels_mask
                return meta | lo | (mpls << _S_MPLS), mac_len, nh, -1, 0, protocol, vlan
            lse = _unpack_u32(data, end - MPLS_HLEN)[0]
            if count <= 3:
                mpls |= lse << _R_MPLS_LSE[count - 1]
            if lse & 0x100:
                break
            count += 1
        if count > 3:
            count = 3
        mpls |= ((1 << count) - 1) << _R_MPLS_LABELS
        return meta | lo | (mpls << _S_MPLS), mac_len, nh, -1, 0, protocol, vlan

    if eth_type == ETH_P_NSH:
        k, err, msg = parse_nsh(data, nh)
        if err:
            raise ExtractError(err, (meta | lo | k, mac_len, nh, -1, 0, protocol, vlan), msg)
        return meta | lo | k, mac_len, nh, -1, 0, protocol, vlan

    return meta | lo, mac_len, nh, -1, 0, protocol, vlan


# eth_dst is directly above eth_src: one from_bytes reads both.
assert K.S_ETH_DST == K.S_ETH_SRC + 48


# ------------------------------------------------------------------ API
_FAST_MASK = (0xFFFFFF << (39 * 8)) | (0x3FFF << (32 * 8))   # type, ver/ihl, frag
_FAST_VAL = 0x080045 << (39 * 8)                               # IPv4, IHL 5, no frag


_S_TPID_IMAGE = (54 - 12 - 2) * 8                           # bytes 12-13 of the image
_TAG_BITS = {ETH_P_8021Q: ETH_P_8021Q << _S_VLAN_TPID, ETH_P_8021AD: ETH_P_8021AD << _S_VLAN_TPID}


def extract(data, meta, _fb=_from_bytes, _mask=_FAST_MASK, _val=_FAST_VAL,
            _keep_tcp=KEEP_TCP, _keep_udp=KEEP_UDP, _tags=_TAG_BITS):
    """The flow key of the Ethernet frame ``data`` with metadata ``meta``.

    Ethernet (untagged or with one VLAN tag) + IPv4 (no options, not a
    fragment) + TCP/UDP frames take a fast path that returns exactly what
    the general parser returns; everything else goes through the parser.
    Raises ExtractError where key_extract() fails.
    """
    n = len(data)
    if n >= 54:
        v = _fb(data[:54], "big")
        if v & _mask == _val:
            p = (v >> 240) & 0xFF          # byte 23: IPv4 protocol
            if p == 6:
                d = data[46]
                if d >= 0x50 and 34 + ((d >> 4) << 2) <= n:
                    return (v & _keep_tcp) | meta
            elif p == 17:
                return (v & _keep_udp) | meta
        elif n >= 58:
            tag = _tags.get((v >> _S_TPID_IMAGE) & 0xFFFF)
            if tag is not None:
                # One VLAN tag: the same image with the tag taken out.
                v = _fb(data[:12] + data[16:58], "big")
                if v & _mask == _val:
                    p = (v >> 240) & 0xFF
                    tci = ((data[14] << 8) | data[15] | VLAN_CFI_MASK) << _S_VLAN_TCI
                    if p == 6:
                        d = data[50]
                        if d >= 0x50 and 38 + ((d >> 4) << 2) <= n:
                            return (v & _keep_tcp) | tci | tag | meta
                    elif p == 17:
                        return (v & _keep_udp) | tci | tag | meta
    return _parse(data, meta, False, 0)[0]


def extract_slow(data, meta):
    """extract() without the fast path (for tests and benchmarks)."""
    return _parse(data, meta, False, 0)[0]


def extract_l3(data, eth_type, meta):
    """The key of a packet without Ethernet header (MAC_PROTO_NONE).

    ``eth_type`` is skb->protocol; the network header is at offset 0.
    (The kernel refuses such a packet whose protocol is a VLAN TPID; ovsdp
    returns a key with only eth_type and no_eth set.)
    """
    meta &= ~(K.M_ETH_TYPE | K.M_NO_ETH)
    return _parse(data, meta, True, eth_type)[0]


def extract_any(data, meta, no_eth, eth_type=0):
    """extract() or extract_l3() according to ``no_eth``."""
    if no_eth:
        return extract_l3(data, eth_type, meta)
    return _parse(data, meta, False, 0)[0]


def parse(data, meta=0, no_eth=False, eth_type=0):
    """(key, Layers) of a packet in one pass."""
    if no_eth:
        meta &= ~(K.M_ETH_TYPE | K.M_NO_ETH)
    k, mac_len, nh, th, ipp, protocol, vlan = _parse(data, meta, no_eth, eth_type)
    return k, Layers(mac_len, nh, th, (k >> _S_ETH_TYPE) & 0xFFFF, ipp, protocol, vlan)


def layers(data, no_eth=False, eth_type=0):
    """The header offsets of ``data`` (see :class:`Layers`).

    For a packet without Ethernet header (``no_eth``), ``eth_type`` is its
    skb->protocol.
    """
    if not no_eth and len(data) >= 34 and data[12] == 8 and data[13] == 0:
        # untagged IPv4 with a good header: no need for the whole parse
        th = 14 + ((data[14] & 0x0F) << 2)
        if th >= 34 and th <= len(data):
            return Layers(14, 14, th, ETH_P_IP, data[23], ETH_P_IP, 0)
    try:
        return parse(data, 0, no_eth, eth_type)[1]
    except ExtractError as e:           # the offsets are known all the same
        k, mac_len, nh, th, ipp, protocol, vlan = e.result
        return Layers(mac_len, nh, th, (k >> _S_ETH_TYPE) & 0xFFFF, ipp, protocol, vlan)
