"""Flow keys <-> Open vSwitch's ``struct flow`` (lib/odp-util.c).

:func:`key_to_flow` is ``odp_flow_key_to_flow()``: it reads a flow key (a
stream of OVS_KEY_ATTR_* attributes) into a :class:`Flow` and says how well
the key fits what Open vSwitch expects of it (:class:`Fitness`).
:func:`flow_to_key` is ``odp_flow_key_from_flow()`` with the datapath
support ``ovstest test-odp parse-keys`` assumes (recirculation, every
conntrack field but the original tuple, any number of VLAN headers, ND
extensions).  Together they are test-odp's round trip::

    flow, fitness = key_to_flow(key)      # FlowKeyError if it does not convert
    format_key(flow_to_key(flow))

Only keys are converted, not masks.  The attributes come out in the order a
current Open vSwitch (and the kernel) puts them: recirc_id, dp_hash,
skb_priority, tunnel, in_port, skb_mark, ct_*, packet_type, eth, ...
"""

import struct

from .. import uapi as U
from ..netlink.attr import attr_list, nla, nla_nest
from ..uapi import attrs as ATTRS
from .flow_struct import (
    _BE16,
    _BE32,
    _BE64,
    _I32,
    _U16,
    _U32,
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    ETH_TYPE_MIN,
    ETH_TYPE_MPLS,
    ETH_TYPE_MPLS_MCAST,
    ETH_TYPE_NSH,
    ETH_TYPE_RARP,
    ETH_TYPE_VLANS,
    FLOW_DL_TYPE_NONE,
    FLOW_MAX_MPLS_LABELS,
    FLOW_MAX_VLAN_HEADERS,
    FLOW_NW_FRAG_ANY,
    FLOW_NW_FRAG_LATER,
    FLOW_TNL_F_CSUM,
    FLOW_TNL_F_DONT_FRAGMENT,
    FLOW_TNL_F_KEY,
    FLOW_TNL_F_OAM,
    FLOW_TNL_F_UDPIF,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    MPLS_BOS_MASK,
    NSH_M_TYPE1,
    ODPP_NONE,
    OFPHTN_ETHERTYPE,
    OVS_KEY_ATTR_MAX,
    OVS_TUNNEL_KEY_ATTR_GTPU_OPTS,
    OVS_TUNNEL_KEY_ATTR_MAX,
    PT_ETH,
    VLAN_CFI,
    Fitness,
    Flow,
    FlowKeyError,
)

__all__ = ["flow_to_key", "key_to_flow"]


class _Err(Exception):
    pass


# ----------------------------------------------------------------- numbers
_ND_EXT = struct.Struct("!IB3x")         # nd_reserved, nd_options_type
_GTPU = struct.Struct("=BB")             # flags, msgtype

_NOCHECK = object()


def _ovs_len(table, max_type, atype):
    """odp_key_attr_len() over the table's ``ovs`` column: a length, or
    _NOCHECK (variable, nested, past the table)."""
    if atype > max_type:
        return _NOCHECK
    n = table.ovs_length(atype)
    if n is None:
        return 0
    return _NOCHECK if n is ATTRS.VARIABLE or n is ATTRS.NESTED else n


def _key_len(atype):
    return _ovs_len(ATTRS.KEY, OVS_KEY_ATTR_MAX, atype)


def _tun_len(atype):
    return _ovs_len(ATTRS.TUNNEL_KEY, OVS_TUNNEL_KEY_ATTR_MAX, atype)


def _attr_name(atype):
    row = ATTRS.KEY.row(atype)
    return row.name if row is not None and row.name else f"key{atype}"


# ------------------------------------------------------------- key -> flow
def _parse_attrs(buf):
    """parse_flow_nlattrs(): {type: payload} of one level, out-of-range ones dropped."""
    attrs = {}
    found, leftover = attr_list(buf)
    for atype, payload in found:
        want = _key_len(atype)
        if want is not _NOCHECK and len(payload) != want:
            raise _Err(f"attribute {_attr_name(atype)} has length {len(payload)} "
                       f"but should have length {want}")
        if atype > OVS_KEY_ATTR_MAX:
            continue            # a newer datapath's attribute: ignored
        if atype in attrs:
            raise _Err(f"duplicate {_attr_name(atype)} attribute in flow key")
        attrs[atype] = payload
    if leftover:
        raise _Err("trailing garbage in flow key")
    return attrs


def _check_expectations(present, expected):
    if expected - present:
        return Fitness.TOO_LITTLE
    if present - expected:
        return Fitness.TOO_MUCH
    return Fitness.PERFECT


def _tunnel_from_attr(payload, tun):
    """odp_tun_key_from_attr__() for a key."""
    have_ttl = unknown = False
    for t, p in attr_list(payload)[0]:
        want = _tun_len(t)
        if want is not _NOCHECK and len(p) != want:
            raise _Err(f"tunnel key attribute {t} should have length {want} "
                       f"but actually has {len(p)}")
        if t == U.OVS_TUNNEL_KEY_ATTR_ID:
            tun.tun_id = _BE64.unpack(p)[0]
            tun.flags |= FLOW_TNL_F_KEY
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV4_SRC:
            tun.ip_src = p
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV4_DST:
            tun.ip_dst = p
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV6_SRC:
            tun.ipv6_src = p
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV6_DST:
            tun.ipv6_dst = p
        elif t == U.OVS_TUNNEL_KEY_ATTR_TOS:
            tun.ip_tos = p[0]
        elif t == U.OVS_TUNNEL_KEY_ATTR_TTL:
            tun.ip_ttl = p[0]
            have_ttl = True
        elif t == U.OVS_TUNNEL_KEY_ATTR_DONT_FRAGMENT:
            tun.flags |= FLOW_TNL_F_DONT_FRAGMENT
        elif t == U.OVS_TUNNEL_KEY_ATTR_CSUM:
            tun.flags |= FLOW_TNL_F_CSUM
        elif t == U.OVS_TUNNEL_KEY_ATTR_TP_SRC:
            tun.tp_src = _BE16.unpack(p)[0]
        elif t == U.OVS_TUNNEL_KEY_ATTR_TP_DST:
            tun.tp_dst = _BE16.unpack(p)[0]
        elif t == U.OVS_TUNNEL_KEY_ATTR_OAM:
            tun.flags |= FLOW_TNL_F_OAM
        elif t == U.OVS_TUNNEL_KEY_ATTR_VXLAN_OPTS:
            _vxlan_from_attr(p, tun)
        elif t == U.OVS_TUNNEL_KEY_ATTR_GENEVE_OPTS:
            tun.geneve = p
            tun.flags |= FLOW_TNL_F_UDPIF
        elif t == U.OVS_TUNNEL_KEY_ATTR_ERSPAN_OPTS:
            opts = p.ljust(12, b"\0")
            tun.erspan_ver = _I32.unpack_from(opts)[0] & 0xFF
            if tun.erspan_ver == 1:
                tun.erspan_idx = _BE32.unpack_from(opts, 4)[0]
            elif tun.erspan_ver == 2:
                tun.erspan_dir = (opts[11] >> 3) & 1
                tun.erspan_hwid = ((opts[10] & 3) << 4) + (opts[11] >> 4)
        elif t == OVS_TUNNEL_KEY_ATTR_GTPU_OPTS:
            tun.gtpu_flags, tun.gtpu_msgtype = _GTPU.unpack(p.ljust(2, b"\0")[:2])
        else:
            unknown = True
    if not have_ttl:
        raise _Err("tunnel options missing TTL")
    return Fitness.TOO_MUCH if unknown else Fitness.PERFECT


def _vxlan_from_attr(payload, tun):
    """nl_parse_nested() with a mandatory u32 OVS_VXLAN_EXT_GBP."""
    found, leftover = attr_list(payload)
    gbp = None
    for t, p in found:
        if t == U.OVS_VXLAN_EXT_GBP:
            if len(p) != 4:
                gbp = None
                break
            gbp = _U32.unpack(p)[0]
    if leftover or gbp is None:
        raise _Err("error parsing VXLAN options")
    tun.gbp_id = gbp & 0xFFFF
    tun.gbp_flags = (gbp >> 16) & 0xFF


def _nsh_from_attr(payload, flow):
    """odp_nsh_key_from_attr__() for a key."""
    lens = {U.OVS_NSH_KEY_ATTR_BASE: U.OVS_KEY_NSH_BASE.size,
            U.OVS_NSH_KEY_ATTR_MD1: U.OVS_KEY_NSH_MD1.size, U.OVS_NSH_KEY_ATTR_MD2: -2}
    flags, ttl, mdtype, np, path, ctx = flow.nsh
    has_md1 = False
    for t, p in attr_list(payload)[0]:
        want = 0 if t == U.OVS_NSH_KEY_ATTR_UNSPEC else lens.get(t, -1)
        if want and len(p) != want:
            raise _Err(f"NSH key attribute {t} should have length {want} "
                       f"but actually has {len(p)}")
        if t == U.OVS_NSH_KEY_ATTR_BASE:
            flags, ttl, mdtype, np, path = U.OVS_KEY_NSH_BASE.unpack(p)
        elif t == U.OVS_NSH_KEY_ATTR_MD1:
            has_md1 = True
            ctx = U.OVS_KEY_NSH_MD1.unpack(p)
    flow.nsh = (flags, ttl, mdtype, np, path, tuple(ctx))
    if has_md1 and mdtype != NSH_M_TYPE1:
        raise _Err(f"OVS_NSH_KEY_ATTR_MD1 present but declared mdtype {mdtype} "
                   f"is not {NSH_M_TYPE1} (NSH_M_TYPE1)")


def _parse_ethertype(attrs, expected, flow):
    if U.OVS_KEY_ATTR_ETHERTYPE in attrs:
        flow.dl_type = _BE16.unpack(attrs[U.OVS_KEY_ATTR_ETHERTYPE])[0]
        if flow.dl_type < ETH_TYPE_MIN:
            raise _Err(f"invalid Ethertype {flow.dl_type} in flow key")
        expected.add(U.OVS_KEY_ATTR_ETHERTYPE)
    elif U.OVS_KEY_ATTR_IPV4 in attrs:
        flow.dl_type = ETH_TYPE_IP
    elif U.OVS_KEY_ATTR_IPV6 in attrs:
        flow.dl_type = ETH_TYPE_IPV6
    elif U.OVS_KEY_ATTR_MPLS in attrs:
        flow.dl_type = ETH_TYPE_MPLS
    else:
        flow.dl_type = FLOW_DL_TYPE_NONE


def _odp_to_ovs_frag(frag, attr):
    if frag > U.OVS_FRAG_TYPE_LATER:
        raise _Err(f"{attr} has invalid nw_frag 0xff")
    return (0, FLOW_NW_FRAG_ANY, FLOW_NW_FRAG_ANY | FLOW_NW_FRAG_LATER)[frag]


def _parse_mpls(p, flow):
    if not p or len(p) % 4:
        raise _Err(f"MPLS LSEs have invalid length {len(p)}")
    lses = struct.unpack(f"!{len(p) // 4}I", p)
    for i, lse in enumerate(lses[:FLOW_MAX_MPLS_LABELS]):
        flow.mpls_lse[i] = lse
    if len(lses) > FLOW_MAX_MPLS_LABELS:
        return Fitness.TOO_MUCH
    if any(lse & MPLS_BOS_MASK for lse in lses[:-1]):
        raise _Err("MPLS BOS set in non-innermost label")
    if len(lses) < FLOW_MAX_MPLS_LABELS and not lses[-1] & MPLS_BOS_MASK:
        return Fitness.TOO_LITTLE
    return None


def _parse_l3(attrs, expected, flow):
    """The L3 half of parse_l2_5_onward(); False when there is no L4 to look at."""
    dl = flow.dl_type
    if dl == ETH_TYPE_IP:
        expected.add(U.OVS_KEY_ATTR_IPV4)
        p = attrs.get(U.OVS_KEY_ATTR_IPV4)
        if p is not None:
            (flow.nw_src, flow.nw_dst, flow.nw_proto, flow.nw_tos, flow.nw_ttl,
             frag) = U.OVS_KEY_IPV4.unpack(p)
            flow.nw_frag = _odp_to_ovs_frag(frag, "OVS_KEY_ATTR_IPV4")
    elif dl == ETH_TYPE_IPV6:
        expected.add(U.OVS_KEY_ATTR_IPV6)
        p = attrs.get(U.OVS_KEY_ATTR_IPV6)
        if p is not None:
            (flow.ipv6_src, flow.ipv6_dst, flow.ipv6_label, flow.nw_proto, flow.nw_tos,
             flow.nw_ttl, frag) = U.OVS_KEY_IPV6.unpack(p)
            flow.nw_frag = _odp_to_ovs_frag(frag, "OVS_KEY_ATTR_IPV6")
    elif dl in (ETH_TYPE_ARP, ETH_TYPE_RARP):
        expected.add(U.OVS_KEY_ATTR_ARP)
        p = attrs.get(U.OVS_KEY_ATTR_ARP)
        if p is not None:
            sip, tip, op, sha, tha = U.OVS_KEY_ARP.unpack(p)
            if op & 0xFF00:
                raise _Err(f"unsupported ARP opcode {op} in flow key")
            flow.nw_src, flow.nw_dst, flow.nw_proto = sip, tip, op
            flow.arp_sha, flow.arp_tha = sha, tha
    elif dl == ETH_TYPE_NSH:
        expected.add(U.OVS_KEY_ATTR_NSH)
        p = attrs.get(U.OVS_KEY_ATTR_NSH)
        if p is not None:
            _nsh_from_attr(p, flow)
    else:
        return False
    return True


def _parse_l4(attrs, expected, flow):
    """The L4 half of parse_l2_5_onward()."""
    dl, proto = flow.dl_type, flow.nw_proto
    if flow.nw_frag & FLOW_NW_FRAG_LATER or dl not in (ETH_TYPE_IP, ETH_TYPE_IPV6):
        return
    tp = {IPPROTO_TCP: U.OVS_KEY_ATTR_TCP, IPPROTO_UDP: U.OVS_KEY_ATTR_UDP,
          IPPROTO_SCTP: U.OVS_KEY_ATTR_SCTP}.get(proto)
    if tp is not None:
        expected.add(tp)
        if tp in attrs:
            flow.tp_src, flow.tp_dst = U.OVS_KEY_TCP.unpack(attrs[tp])
        if tp == U.OVS_KEY_ATTR_TCP and U.OVS_KEY_ATTR_TCP_FLAGS in attrs:
            expected.add(U.OVS_KEY_ATTR_TCP_FLAGS)
            flow.tcp_flags = _BE16.unpack(attrs[U.OVS_KEY_ATTR_TCP_FLAGS])[0]
    elif proto == IPPROTO_ICMP and dl == ETH_TYPE_IP:
        expected.add(U.OVS_KEY_ATTR_ICMP)
        if U.OVS_KEY_ATTR_ICMP in attrs:
            flow.tp_src, flow.tp_dst = U.OVS_KEY_ICMP.unpack(attrs[U.OVS_KEY_ATTR_ICMP])
    elif proto == IPPROTO_ICMPV6 and dl == ETH_TYPE_IPV6:
        expected.add(U.OVS_KEY_ATTR_ICMPV6)
        if U.OVS_KEY_ATTR_ICMPV6 not in attrs:
            return
        flow.tp_src, flow.tp_dst = U.OVS_KEY_ICMPV6.unpack(attrs[U.OVS_KEY_ATTR_ICMPV6])
        if not flow.is_nd():
            return
        expected.add(U.OVS_KEY_ATTR_ND)
        if U.OVS_KEY_ATTR_ND in attrs:
            flow.nd_target, flow.arp_sha, flow.arp_tha = U.OVS_KEY_ND.unpack(
                attrs[U.OVS_KEY_ATTR_ND])
        if U.OVS_KEY_ATTR_ND_EXTENSIONS in attrs:
            expected.add(U.OVS_KEY_ATTR_ND_EXTENSIONS)
            flow.igmp_group_ip4, flow.tcp_flags = _ND_EXT.unpack(
                attrs[U.OVS_KEY_ATTR_ND_EXTENSIONS])


def _parse_l2_5_onward(attrs, expected, flow, need_check):
    if flow.dl_type in (ETH_TYPE_MPLS, ETH_TYPE_MPLS_MCAST):
        expected.add(U.OVS_KEY_ATTR_MPLS)
        if U.OVS_KEY_ATTR_MPLS in attrs:
            fit = _parse_mpls(attrs[U.OVS_KEY_ATTR_MPLS], flow)
            if fit is not None:
                return fit
    elif _parse_l3(attrs, expected, flow):
        _parse_l4(attrs, expected, flow)
    if not need_check:
        return Fitness.PERFECT
    return _check_expectations(set(attrs), expected)


def _parse_8021q_onward(attrs, expected, flow):
    fitness = Fitness.ERROR
    encaps = 0
    while encaps < FLOW_MAX_VLAN_HEADERS and flow.dl_type in ETH_TYPE_VLANS:
        encap = attrs.get(U.OVS_KEY_ATTR_ENCAP)
        expected |= {U.OVS_KEY_ATTR_VLAN, U.OVS_KEY_ATTR_ENCAP}
        fitness = _check_expectations(set(attrs), expected)
        vlan = attrs.get(U.OVS_KEY_ATTR_VLAN)
        tci = _BE16.unpack(vlan)[0] if vlan is not None else 0
        flow.vlans[encaps] = [flow.dl_type, tci]
        flow.dl_type = 0
        if vlan is None or encap is None:
            return Fitness.TOO_LITTLE
        if tci == 0:                    # a truncated 802.1Q header
            if fitness == Fitness.PERFECT and encap:
                return Fitness.TOO_MUCH
            return fitness
        if not tci & VLAN_CFI:
            raise _Err(f"OVS_KEY_ATTR_VLAN 0x{tci:04x} is nonzero but CFI bit is not set")
        attrs = _parse_attrs(encap)
        expected = set()
        _parse_ethertype(attrs, expected, flow)
        fitness = _parse_l2_5_onward(attrs, expected, flow, False)
        if fitness != Fitness.PERFECT:
            return fitness
        encaps += 1
    return _check_expectations(set(attrs), expected)


_METADATA = (  # attribute, Flow field, layout
    (U.OVS_KEY_ATTR_RECIRC_ID, "recirc_id", _U32),
    (U.OVS_KEY_ATTR_DP_HASH, "dp_hash", _U32),
    (U.OVS_KEY_ATTR_PRIORITY, "skb_priority", _U32),
    (U.OVS_KEY_ATTR_SKB_MARK, "pkt_mark", _U32),
    (U.OVS_KEY_ATTR_CT_ZONE, "ct_zone", _U16),
    (U.OVS_KEY_ATTR_CT_MARK, "ct_mark", _U32),
)


def _key_to_flow(key):
    flow = Flow()
    attrs = _parse_attrs(key)
    expected = set()
    for atype, field, layout in _METADATA:
        if atype in attrs:
            setattr(flow, field, layout.unpack(attrs[atype])[0])
            expected.add(atype)
    if U.OVS_KEY_ATTR_CT_STATE in attrs:
        flow.ct_state = _U32.unpack(attrs[U.OVS_KEY_ATTR_CT_STATE])[0] & 0xFF
        expected.add(U.OVS_KEY_ATTR_CT_STATE)
    if U.OVS_KEY_ATTR_CT_LABELS in attrs:
        flow.ct_label = attrs[U.OVS_KEY_ATTR_CT_LABELS]
        expected.add(U.OVS_KEY_ATTR_CT_LABELS)
    p = attrs.get(U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4)
    if p is not None:
        (flow.ct_nw_src, flow.ct_nw_dst, flow.ct_tp_src, flow.ct_tp_dst,
         flow.ct_nw_proto) = U.OVS_KEY_CT_TUPLE_IPV4.unpack(p)
        expected.add(U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4)
    p = attrs.get(U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6)
    if p is not None:
        (flow.ct_ipv6_src, flow.ct_ipv6_dst, flow.ct_tp_src, flow.ct_tp_dst,
         flow.ct_nw_proto) = U.OVS_KEY_CT_TUPLE_IPV6.unpack(p)
        expected.add(U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6)
    if U.OVS_KEY_ATTR_TUNNEL in attrs:
        if _tunnel_from_attr(attrs[U.OVS_KEY_ATTR_TUNNEL], flow.tunnel) == Fitness.PERFECT:
            expected.add(U.OVS_KEY_ATTR_TUNNEL)
    if U.OVS_KEY_ATTR_IN_PORT in attrs:
        flow.in_port = _U32.unpack(attrs[U.OVS_KEY_ATTR_IN_PORT])[0]
        expected.add(U.OVS_KEY_ATTR_IN_PORT)
    else:
        flow.in_port = ODPP_NONE
    if U.OVS_KEY_ATTR_PACKET_TYPE in attrs:
        flow.packet_type = _BE32.unpack(attrs[U.OVS_KEY_ATTR_PACKET_TYPE])[0]
        expected.add(U.OVS_KEY_ATTR_PACKET_TYPE)
        if flow.packet_type >> 16 == OFPHTN_ETHERTYPE:
            flow.dl_type = flow.packet_type & 0xFFFF
    else:
        flow.packet_type = PT_ETH
    if U.OVS_KEY_ATTR_ETHERNET in attrs:
        flow.dl_src, flow.dl_dst = U.OVS_KEY_ETHERNET.unpack(attrs[U.OVS_KEY_ATTR_ETHERNET])
        flow.packet_type = PT_ETH
        expected.add(U.OVS_KEY_ATTR_ETHERNET)
    elif U.OVS_KEY_ATTR_ETHERTYPE in attrs:
        ethertype = _BE16.unpack(attrs[U.OVS_KEY_ATTR_ETHERTYPE])[0]
        flow.packet_type = OFPHTN_ETHERTYPE << 16 | ethertype
        expected.add(U.OVS_KEY_ATTR_ETHERTYPE)
    _parse_ethertype(attrs, expected, flow)
    if flow.dl_type in ETH_TYPE_VLANS:
        return flow, _parse_8021q_onward(attrs, expected, flow)
    return flow, _parse_l2_5_onward(attrs, expected, flow, True)


def key_to_flow(key):
    """odp_flow_key_to_flow(): ``(flow, fitness)`` for the flow key ``key``.

    Raises :class:`FlowKeyError` (an OdpParseError) where Open vSwitch's
    fitness is ERROR, with its message.
    """
    key = bytes(key)
    try:
        return _key_to_flow(key)
    except _Err as e:
        from .keys import format_key

        raise FlowKeyError(f"{e}; the flow key in error is: {format_key(key)}") from None


# ------------------------------------------------------------- flow -> key
def _tunnel_to_attr(tun):
    """tun_key_to_attr() for a key."""
    parts = []
    if tun.tun_id or tun.flags & FLOW_TNL_F_KEY:
        parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_ID, _BE64.pack(tun.tun_id)))
    for atype, addr in ((U.OVS_TUNNEL_KEY_ATTR_IPV4_SRC, tun.ip_src),
                        (U.OVS_TUNNEL_KEY_ATTR_IPV4_DST, tun.ip_dst),
                        (U.OVS_TUNNEL_KEY_ATTR_IPV6_SRC, tun.ipv6_src),
                        (U.OVS_TUNNEL_KEY_ATTR_IPV6_DST, tun.ipv6_dst)):
        if addr.strip(b"\0"):
            parts.append(nla(atype, addr))
    if tun.ip_tos:
        parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_TOS, bytes([tun.ip_tos])))
    parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_TTL, bytes([tun.ip_ttl])))
    if tun.flags & FLOW_TNL_F_DONT_FRAGMENT:
        parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_DONT_FRAGMENT))
    if tun.flags & FLOW_TNL_F_CSUM:
        parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_CSUM))
    if tun.tp_src:
        parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_TP_SRC, _BE16.pack(tun.tp_src)))
    if tun.tp_dst:
        parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_TP_DST, _BE16.pack(tun.tp_dst)))
    if tun.flags & FLOW_TNL_F_OAM:
        parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_OAM))
    if tun.gbp_flags or tun.gbp_id:
        gbp = (tun.gbp_flags << 16) | tun.gbp_id
        parts.append(nla_nest(U.OVS_TUNNEL_KEY_ATTR_VXLAN_OPTS,
                              nla(U.OVS_VXLAN_EXT_GBP, _U32.pack(gbp))))
    if tun.flags & FLOW_TNL_F_UDPIF:
        parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_GENEVE_OPTS, tun.geneve))
    if tun.erspan_ver in (1, 2):
        opts = bytearray(_I32.pack(tun.erspan_ver) + bytes(8))
        if tun.erspan_ver == 1:
            _BE32.pack_into(opts, 4, tun.erspan_idx)
        else:
            opts[10] = (tun.erspan_hwid >> 4) & 3
            opts[11] = (tun.erspan_dir & 1) << 3 | (tun.erspan_hwid & 0xF) << 4
        parts.append(nla(U.OVS_TUNNEL_KEY_ATTR_ERSPAN_OPTS, bytes(opts)))
    if tun.gtpu_flags and tun.gtpu_msgtype:
        parts.append(nla(OVS_TUNNEL_KEY_ATTR_GTPU_OPTS,
                         _GTPU.pack(tun.gtpu_flags, tun.gtpu_msgtype)))
    return nla_nest(U.OVS_KEY_ATTR_TUNNEL, *parts)


def _ovs_to_odp_frag(nw_frag):
    if not nw_frag & FLOW_NW_FRAG_ANY:
        return U.OVS_FRAG_TYPE_NONE
    return U.OVS_FRAG_TYPE_LATER if nw_frag & FLOW_NW_FRAG_LATER else U.OVS_FRAG_TYPE_FIRST


def _l3_l4_to_attrs(flow, out):
    dl = flow.dl_type
    if dl < ETH_TYPE_MIN:
        return
    out.append(nla(U.OVS_KEY_ATTR_ETHERTYPE, _BE16.pack(dl)))
    if dl in ETH_TYPE_VLANS:
        return
    frag = _ovs_to_odp_frag(flow.nw_frag)
    if dl == ETH_TYPE_IP:
        out.append(nla(U.OVS_KEY_ATTR_IPV4, U.OVS_KEY_IPV4.pack(
            flow.nw_src, flow.nw_dst, flow.nw_proto, flow.nw_tos, flow.nw_ttl, frag)))
    elif dl == ETH_TYPE_IPV6:
        out.append(nla(U.OVS_KEY_ATTR_IPV6, U.OVS_KEY_IPV6.pack(
            flow.ipv6_src, flow.ipv6_dst, flow.ipv6_label, flow.nw_proto, flow.nw_tos,
            flow.nw_ttl, frag)))
    elif dl in (ETH_TYPE_ARP, ETH_TYPE_RARP):
        op = 0xFFFF if flow.nw_proto == 0xFF else flow.nw_proto
        out.append(nla(U.OVS_KEY_ATTR_ARP, U.OVS_KEY_ARP.pack(
            flow.nw_src, flow.nw_dst, op, flow.arp_sha, flow.arp_tha)))
    elif dl in (ETH_TYPE_MPLS, ETH_TYPE_MPLS_MCAST):
        n = flow.count_mpls_labels()
        out.append(nla(U.OVS_KEY_ATTR_MPLS, struct.pack(f"!{n}I", *flow.mpls_lse[:n])))
    elif dl == ETH_TYPE_NSH:
        flags, ttl, mdtype, np, path, ctx = flow.nsh
        parts = [nla(U.OVS_NSH_KEY_ATTR_BASE, U.OVS_KEY_NSH_BASE.pack(flags, ttl, mdtype, np,
                                                                      path))]
        if mdtype == NSH_M_TYPE1:
            parts.append(nla(U.OVS_NSH_KEY_ATTR_MD1, U.OVS_KEY_NSH_MD1.pack(*ctx)))
        out.append(nla_nest(U.OVS_KEY_ATTR_NSH, *parts))
    if not flow.is_ip_any() or flow.nw_frag & FLOW_NW_FRAG_LATER:
        return
    proto = flow.nw_proto
    tp = {IPPROTO_TCP: U.OVS_KEY_ATTR_TCP, IPPROTO_UDP: U.OVS_KEY_ATTR_UDP,
          IPPROTO_SCTP: U.OVS_KEY_ATTR_SCTP}.get(proto)
    if tp is not None:
        out.append(nla(tp, U.OVS_KEY_TCP.pack(flow.tp_src, flow.tp_dst)))
        if tp == U.OVS_KEY_ATTR_TCP and flow.tcp_flags:
            out.append(nla(U.OVS_KEY_ATTR_TCP_FLAGS, _BE16.pack(flow.tcp_flags)))
    elif dl == ETH_TYPE_IP and proto == IPPROTO_ICMP:
        out.append(nla(U.OVS_KEY_ATTR_ICMP, U.OVS_KEY_ICMP.pack(flow.tp_src & 0xFF,
                                                                flow.tp_dst & 0xFF)))
    elif dl == ETH_TYPE_IPV6 and proto == IPPROTO_ICMPV6:
        out.append(nla(U.OVS_KEY_ATTR_ICMPV6, U.OVS_KEY_ICMPV6.pack(flow.tp_src & 0xFF,
                                                                    flow.tp_dst & 0xFF)))
        if flow.is_nd():
            out.append(nla(U.OVS_KEY_ATTR_ND, U.OVS_KEY_ND.pack(
                flow.nd_target, flow.arp_sha, flow.arp_tha)))
            if flow.igmp_group_ip4 or flow.tcp_flags:
                out.append(nla(U.OVS_KEY_ATTR_ND_EXTENSIONS, _ND_EXT.pack(
                    flow.igmp_group_ip4, flow.tcp_flags & 0xFF)))


def _vlans_onward(flow, cur, nests):
    for tpid, tci in flow.vlans:
        if tci == 0:
            if flow.dl_type not in ETH_TYPE_VLANS:
                break
            tpid = flow.dl_type         # a truncated VLAN header
        cur += [nla(U.OVS_KEY_ATTR_ETHERTYPE, _BE16.pack(tpid)),
                nla(U.OVS_KEY_ATTR_VLAN, _BE16.pack(tci))]
        nests.append((cur, []))
        cur = nests[-1][1]
        if tci == 0:
            return
    _l3_l4_to_attrs(flow, cur)


def flow_to_key(flow):
    """odp_flow_key_from_flow() with test-odp's datapath support: key bytes."""
    out = [nla(U.OVS_KEY_ATTR_RECIRC_ID, _U32.pack(flow.recirc_id)),
           nla(U.OVS_KEY_ATTR_DP_HASH, _U32.pack(flow.dp_hash)),
           nla(U.OVS_KEY_ATTR_PRIORITY, _U32.pack(flow.skb_priority))]
    if flow.tunnel.is_set():
        out.append(_tunnel_to_attr(flow.tunnel))
    if flow.in_port != ODPP_NONE:
        out.append(nla(U.OVS_KEY_ATTR_IN_PORT, _U32.pack(flow.in_port)))
    out += [nla(U.OVS_KEY_ATTR_SKB_MARK, _U32.pack(flow.pkt_mark)),
            nla(U.OVS_KEY_ATTR_CT_STATE, _U32.pack(flow.ct_state)),
            nla(U.OVS_KEY_ATTR_CT_ZONE, _U16.pack(flow.ct_zone)),
            nla(U.OVS_KEY_ATTR_CT_MARK, _U32.pack(flow.ct_mark)),
            nla(U.OVS_KEY_ATTR_CT_LABELS, flow.ct_label),
            nla(U.OVS_KEY_ATTR_PACKET_TYPE, _BE32.pack(flow.packet_type))]
    nests = []                  # (outer parts, parts inside its encap())
    if flow.packet_type == PT_ETH:
        out.append(nla(U.OVS_KEY_ATTR_ETHERNET, U.OVS_KEY_ETHERNET.pack(flow.dl_src,
                                                                       flow.dl_dst)))
        _vlans_onward(flow, out, nests)
    else:
        _l3_l4_to_attrs(flow, out)
    for outer, inner in reversed(nests):
        outer.append(nla_nest(U.OVS_KEY_ATTR_ENCAP, *inner))
    return b"".join(out)
