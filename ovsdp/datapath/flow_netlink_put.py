"""Flow keys -> netlink attributes: __ovs_nla_put_key() and
ovs_nla_put_tunnel_info() (net/openvswitch/flow_netlink.c), byte for byte.

The way in (the kernel's parsing and validation) is :mod:`.flow_netlink`.
"""

import struct

from .. import uapi as U
from ..netlink.attr import (
    nla,
    nla_be16,
    nla_be32,
    nla_be64,
    nla_flag,
    nla_nest,
    nla_u8,
    nla_u16,
    nla_u32,
)
from . import key_layout as K
from .flow_netlink_match import (
    _ARP,
    _BE32,
    _CT4,
    _CT6,
    _IPV6,
    _ND,
    _TP,
    _TUN_OPT_FLAGS,
    _U32,
    AF_INET,
    AF_INET6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    MPLS_LABEL_DEPTH,
    NDISC_NEIGHBOUR_ADVERTISEMENT,
    NDISC_NEIGHBOUR_SOLICITATION,
    _get,
    _popcount,
    eth_p_mpls,
    eth_type_vlan,
)
from .flow_netlink_nsh import nsh_key_to_nlattr


def _tun_opts_bytes(output, length):
    v = _get(output, "tun_opts") & ((1 << (8 * length)) - 1)
    return v.to_bytes(length, "big")


def _ip_tun_to_nlattr(output, opts_len, tun_proto, bridge=False):
    """__ip_tun_to_nlattr(): the tunnel key attributes (no enclosing nest)."""
    g = _get
    flags = g(output, "tun_flags")
    parts = []
    if flags & K.TUN_F_KEY:
        parts.append(nla_be64(U.OVS_TUNNEL_KEY_ATTR_ID, g(output, "tun_id")))
    if bridge:
        parts.append(nla_flag(U.OVS_TUNNEL_KEY_ATTR_IPV4_INFO_BRIDGE))
        return b"".join(parts)
    if tun_proto == AF_INET:
        if g(output, "tun_ipv4_src"):
            parts.append(nla_be32(U.OVS_TUNNEL_KEY_ATTR_IPV4_SRC, g(output, "tun_ipv4_src")))
        if g(output, "tun_ipv4_dst"):
            parts.append(nla_be32(U.OVS_TUNNEL_KEY_ATTR_IPV4_DST, g(output, "tun_ipv4_dst")))
    elif tun_proto == AF_INET6:
        if g(output, "tun_ipv6_src"):
            parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_IPV6_SRC,
                             g(output, "tun_ipv6_src").to_bytes(16, "big")))
        if g(output, "tun_ipv6_dst"):
            parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_IPV6_DST,
                             g(output, "tun_ipv6_dst").to_bytes(16, "big")))
    if g(output, "tun_tos"):
        parts.append(nla_u8(U.OVS_TUNNEL_KEY_ATTR_TOS, g(output, "tun_tos")))
    parts.append(nla_u8(U.OVS_TUNNEL_KEY_ATTR_TTL, g(output, "tun_ttl")))
    if flags & K.TUN_F_DONT_FRAGMENT:
        parts.append(nla_flag(U.OVS_TUNNEL_KEY_ATTR_DONT_FRAGMENT))
    if flags & K.TUN_F_CSUM:
        parts.append(nla_flag(U.OVS_TUNNEL_KEY_ATTR_CSUM))
    if g(output, "tun_tp_src"):
        parts.append(nla_be16(U.OVS_TUNNEL_KEY_ATTR_TP_SRC, g(output, "tun_tp_src")))
    if g(output, "tun_tp_dst"):
        parts.append(nla_be16(U.OVS_TUNNEL_KEY_ATTR_TP_DST, g(output, "tun_tp_dst")))
    if flags & K.TUN_F_OAM:
        parts.append(nla_flag(U.OVS_TUNNEL_KEY_ATTR_OAM))
    if opts_len and flags & _TUN_OPT_FLAGS:
        opts = _tun_opts_bytes(output, opts_len)
        if flags & K.TUN_F_GENEVE_OPT:
            parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_GENEVE_OPTS, opts))
        elif flags & K.TUN_F_VXLAN_OPT:
            # struct vxlan_metadata at the start of the options
            gbp = _U32.unpack(opts[:4].ljust(4, b"\0"))[0]
            parts.append(nla_nest(U.OVS_TUNNEL_KEY_ATTR_VXLAN_OPTS,
                                  nla_u32(U.OVS_VXLAN_EXT_GBP, gbp)))
        elif flags & K.TUN_F_ERSPAN_OPT:
            parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_ERSPAN_OPTS, opts))
    return b"".join(parts)


def put_tunnel_info(tun_info):
    """ovs_nla_put_tunnel_info(): a TunnelInfo's attributes (no enclosing nest).

    The kernel's tunnel mode is derived from the key: IPv6 when tun_proto is
    AF_INET6, bridge when an IPv4 tunnel has no destination (what
    validate_and_copy_set_tun() records).
    """
    k = tun_info.key
    proto = _get(k, "tun_proto")
    if proto != AF_INET6:
        proto = AF_INET
    bridge = proto == AF_INET and not _get(k, "tun_ipv4_dst")
    return _ip_tun_to_nlattr(k, _get(k, "tun_opts_len"), proto, bridge)


# Shifts of the fields every key stream carries (key_layout), read inline.
_S_RECIRC_ID = K.S_RECIRC_ID
_S_DP_HASH = K.S_DP_HASH
_S_PRIORITY = K.S_PRIORITY
_S_IN_PORT = K.S_IN_PORT
_S_SKB_MARK = K.S_SKB_MARK
_S_CT_STATE = K.S_CT_STATE
_S_CT_ZONE = K.S_CT_ZONE
_S_CT_MARK = K.S_CT_MARK
_S_CT_LABELS = K.S_CT_LABELS
_S_CT_ORIG_PROTO = K.S_CT_ORIG_PROTO
_S_TUN_PROTO = K.S_TUN_PROTO
_M8, _M16, _M32 = 0xFF, 0xFFFF, 0xFFFFFFFF
_M48 = (1 << 48) - 1
_M128 = (1 << 128) - 1
_S_NO_ETH = K.S_NO_ETH
_S_ETH_TYPE = K.S_ETH_TYPE
_S_VLAN_TCI = K.S_VLAN_TCI
_S_IP_PROTO = K.S_IP_PROTO
_S_IP_FRAG = K.S_IP_FRAG
_IMAGE = (1 << K.IMAGE_BITS) - 1
_IMAGE_LEN = K.IMAGE_BITS // 8


def _hdr(atype, n):
    """A netlink attribute header for an ``n``-byte payload."""
    return _NLA_HDR.pack(4 + n, atype)


_NLA_HDR = struct.Struct("=HH")
# The common attributes' payloads are byte ranges of the key's frame image
# (key_layout): headers computed once, payloads sliced from one to_bytes().
_H_ETHERNET = _hdr(U.OVS_KEY_ATTR_ETHERNET, 12)
_H_ETHERTYPE = _hdr(U.OVS_KEY_ATTR_ETHERTYPE, 2)
_H_IPV4 = _hdr(U.OVS_KEY_ATTR_IPV4, 12)
_H_TCP = _hdr(U.OVS_KEY_ATTR_TCP, 4)
_H_UDP = _hdr(U.OVS_KEY_ATTR_UDP, 4)
_H_TCP_FLAGS = _hdr(U.OVS_KEY_ATTR_TCP_FLAGS, 2)
_PAD2 = b"\0\0"

# RECIRC_ID, DP_HASH, PRIORITY: three u32 attributes that always lead.
_LEAD = struct.Struct("=HHIHHIHHI")
# SKB_MARK, then ovs_ct_put_key()'s CT_STATE, CT_ZONE, CT_MARK, CT_LABELS.
_MARK_CT = struct.Struct("=HHIHHIHHH2xHHIHH16s")


def put_key(key, output, is_mask):
    """__ovs_nla_put_key(): the OVS_KEY_ATTR_* stream for ``output``.

    ``key`` (the kernel's ``swkey``) decides which attributes appear and how
    they nest; the values come from ``output``: the key itself, or the mask
    with ``is_mask``.  Returns the attributes without the enclosing
    OVS_FLOW_ATTR_KEY/MASK or OVS_PACKET_ATTR_KEY nest.
    """
    g = _get
    o = output
    top = [_LEAD.pack(8, U.OVS_KEY_ATTR_RECIRC_ID, o >> _S_RECIRC_ID & _M32,
                      8, U.OVS_KEY_ATTR_DP_HASH, o >> _S_DP_HASH & _M32,
                      8, U.OVS_KEY_ATTR_PRIORITY, o >> _S_PRIORITY & _M32)]
    sw_tun_proto = key >> _S_TUN_PROTO & _M8
    if sw_tun_proto or is_mask:
        top.append(nla_nest(U.OVS_KEY_ATTR_TUNNEL,
                            _ip_tun_to_nlattr(output, g(key, "tun_opts_len"), sw_tun_proto)))
    out_in_port = o >> _S_IN_PORT & _M16
    if key >> _S_IN_PORT & _M32 == K.DP_MAX_PORTS:
        if is_mask and out_in_port == 0xFFFF:
            top.append(nla_u32(U.OVS_KEY_ATTR_IN_PORT, 0xFFFFFFFF))
    else:
        upper = 0xFFFF if is_mask else 0
        top.append(nla_u32(U.OVS_KEY_ATTR_IN_PORT, (upper << 16) | out_in_port))
    top.append(_MARK_CT.pack(8, U.OVS_KEY_ATTR_SKB_MARK, o >> _S_SKB_MARK & _M32,
                             8, U.OVS_KEY_ATTR_CT_STATE, o >> _S_CT_STATE & _M8,
                             6, U.OVS_KEY_ATTR_CT_ZONE, o >> _S_CT_ZONE & _M16,
                             8, U.OVS_KEY_ATTR_CT_MARK, o >> _S_CT_MARK & _M32,
                             20, U.OVS_KEY_ATTR_CT_LABELS,
                             (o >> _S_CT_LABELS & _M128).to_bytes(16, "big")))
    if key >> _S_CT_ORIG_PROTO & _M8:
        sw_eth_type = g(key, "eth_type")
        if sw_eth_type == K.ETH_P_IP:
            top.append(nla(U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4, _CT4.pack(
                g(output, "ct_orig_src") & 0xFFFFFFFF, g(output, "ct_orig_dst") & 0xFFFFFFFF,
                g(output, "ct_orig_tp_src"), g(output, "ct_orig_tp_dst"),
                g(output, "ct_orig_proto"))))
        elif sw_eth_type == K.ETH_P_IPV6:
            top.append(nla(U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6, _CT6.pack(
                g(output, "ct_orig_src").to_bytes(16, "big"),
                g(output, "ct_orig_dst").to_bytes(16, "big"),
                g(output, "ct_orig_tp_src"), g(output, "ct_orig_tp_dst"),
                g(output, "ct_orig_proto"))))

    levels = [top]               # the open ENCAP nests, outermost first
    _put_key_body(key, output, is_mask, levels)
    # unencap: close the nests, innermost first
    while len(levels) > 1:
        inner = levels.pop()
        levels[-1].append(nla_nest(U.OVS_KEY_ATTR_ENCAP, *inner))
    return b"".join(top)


def _put_vlan(parts, output, inner, is_mask):
    pre = "cvlan_" if inner else "vlan_"
    parts.append(nla_be16(U.OVS_KEY_ATTR_ETHERTYPE,
                          0xFFFF if is_mask else _get(output, pre + "tpid")))
    parts.append(nla_be16(U.OVS_KEY_ATTR_VLAN, _get(output, pre + "tci")))


def _put_key_body(key, output, is_mask, levels):
    """The part of __ovs_nla_put_key() from ETHERNET on (``goto unencap`` = return)."""
    g = _get
    cur = levels[-1]
    sw_eth_type = g(key, "eth_type")
    img = (output & _IMAGE).to_bytes(_IMAGE_LEN, "big")
    if not key >> _S_NO_ETH & _M8:
        cur.append(_H_ETHERNET + img[6:12] + img[0:6])      # eth_src, eth_dst
        if g(key, "vlan_tci") or eth_type_vlan(sw_eth_type):
            _put_vlan(cur, output, False, is_mask)
            cur = []
            levels.append(cur)
            if not g(key, "vlan_tci"):
                return
            if g(key, "cvlan_tci") or eth_type_vlan(sw_eth_type):
                _put_vlan(cur, output, True, is_mask)
                cur = []
                levels.append(cur)
                if not g(key, "cvlan_tci"):
                    return
        if sw_eth_type == K.ETH_P_802_2:
            # 802.2 frames: ETHERTYPE omitted in the key, 0xffff (or
            # wildcarded) in the mask.
            if is_mask and g(output, "eth_type"):
                cur.append(nla_be16(U.OVS_KEY_ATTR_ETHERTYPE, g(output, "eth_type")))
            return

    cur.append(_H_ETHERTYPE + img[12:14] + _PAD2)

    if eth_type_vlan(sw_eth_type):
        # A third VLAN tag: nothing more is known about the packet.
        return

    if sw_eth_type == K.ETH_P_IP:
        # struct ovs_key_ipv4: src, dst, proto, tos, ttl, frag
        cur.append(_H_IPV4 + img[26:34] + img[23:24] + img[15:16] + img[22:23] + img[14:15])
    elif sw_eth_type == K.ETH_P_IPV6:
        cur.append(nla(U.OVS_KEY_ATTR_IPV6, _IPV6.pack(
            g(output, "ipv6_src").to_bytes(16, "big"), g(output, "ipv6_dst").to_bytes(16, "big"),
            g(output, "ipv6_label"), g(output, "ip_proto"), g(output, "ip_tos"),
            g(output, "ip_ttl"), g(output, "ip_frag"))))
        cur.append(nla_u16(U.OVS_KEY_ATTR_IPV6_EXTHDRS, g(output, "ipv6_exthdrs")))
    elif sw_eth_type == K.ETH_P_NSH:
        cur.append(nsh_key_to_nlattr(output, is_mask))
    elif sw_eth_type in (K.ETH_P_ARP, K.ETH_P_RARP):
        cur.append(nla(U.OVS_KEY_ATTR_ARP, _ARP.pack(
            g(output, "ipv4_src"), g(output, "ipv4_dst"), g(output, "ip_proto"),
            g(output, "arp_sha").to_bytes(6, "big"), g(output, "arp_tha").to_bytes(6, "big"))))
    elif eth_p_mpls(sw_eth_type):
        n = min(_popcount(g(output, "mpls_labels")), MPLS_LABEL_DEPTH)
        cur.append(nla(U.OVS_KEY_ATTR_MPLS, b"".join(
            _BE32.pack(g(output, f"mpls_lse{i}")) for i in range(n))))

    if (sw_eth_type in (K.ETH_P_IP, K.ETH_P_IPV6)
            and key >> _S_IP_FRAG & _M8 != U.OVS_FRAG_TYPE_LATER):
        proto = key >> _S_IP_PROTO & _M8
        if proto == IPPROTO_TCP:
            cur.append(_H_TCP + img[34:38])                 # tp_src, tp_dst
            cur.append(_H_TCP_FLAGS + img[46:48] + _PAD2)
        elif proto == IPPROTO_UDP:
            cur.append(_H_UDP + img[34:38])
        elif proto == IPPROTO_SCTP:
            cur.append(nla(U.OVS_KEY_ATTR_SCTP,
                           _TP.pack(g(output, "tp_src"), g(output, "tp_dst"))))
        elif sw_eth_type == K.ETH_P_IP and proto == IPPROTO_ICMP:
            cur.append(nla(U.OVS_KEY_ATTR_ICMP, bytes((g(output, "tp_src") & 0xFF,
                                                       g(output, "tp_dst") & 0xFF))))
        elif sw_eth_type == K.ETH_P_IPV6 and proto == IPPROTO_ICMPV6:
            cur.append(nla(U.OVS_KEY_ATTR_ICMPV6, bytes((g(output, "tp_src") & 0xFF,
                                                         g(output, "tp_dst") & 0xFF))))
            if g(key, "tp_src") in (NDISC_NEIGHBOUR_SOLICITATION, NDISC_NEIGHBOUR_ADVERTISEMENT):
                cur.append(nla(U.OVS_KEY_ATTR_ND, _ND.pack(
                    g(output, "nd_target").to_bytes(16, "big"),
                    g(output, "nd_sll").to_bytes(6, "big"),
                    g(output, "nd_tll").to_bytes(6, "big"))))
