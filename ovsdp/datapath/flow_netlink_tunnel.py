"""Tunnel keys from netlink attributes: ip_tun_from_nlattr() and the
Geneve, VXLAN and ERSPAN option parsers of net/openvswitch/flow_netlink.c.

Each writes the tun_* fields of a :class:`.flow_netlink_match.Match` (the
key or its mask); the OVS_TUNNEL_KEY_ATTR_* lengths come from uapi's
TUNNEL_KEY rows.  The way out is :func:`.flow_netlink_put.put_tunnel_info`.
"""

from .. import uapi as U
from . import key_layout as K
from .flow_netlink_match import (
    _BE16,
    _BE32,
    _BE64,
    _NESTED,
    _TUNNEL_KEY,
    _TYPE_MASK,
    _U32,
    _VARIABLE,
    _VXLAN_EXT,
    AF_INET,
    AF_INET6,
    ERSPAN_METADATA_LEN,
    IP_TUNNEL_OPTS_MAX,
    OVS_TUNNEL_KEY_ATTR_MAX,
    OVS_VXLAN_EXT_MAX,
    _err,
    _walk,
)


def _genev_tun_opt(payload, m, is_mask, log):
    n = len(payload)
    if n > IP_TUNNEL_OPTS_MAX:
        raise _err(log, f"Geneve option length err (len {n}, max {IP_TUNNEL_OPTS_MAX}).")
    if n % 4:
        raise _err(log, f"Geneve opt len {n} is not a multiple of 4.")
    if not is_mask:
        m.put("tun_opts_len", n, False)
    else:
        if m.kget("tun_opts_len") != n:
            raise _err(log, f"Geneve option len {m.kget('tun_opts_len')} != mask len {n}")
        m.put("tun_opts_len", 0xFF, True)
    m.put("tun_opts", int.from_bytes(payload, "big"), is_mask)


def _vxlan_tun_opt(payload, m, is_mask, log):
    gbp = 0
    items, rem = _walk(payload)
    for raw, p, _alen, _rem in items:
        t = raw & _TYPE_MASK
        if t > OVS_VXLAN_EXT_MAX:
            raise _err(log, f"VXLAN extension {t} out of range max {OVS_VXLAN_EXT_MAX}")
        expected = _VXLAN_EXT.length(t)
        if len(p) != expected:
            raise _err(log, f"VXLAN extension {t} has unexpected len {len(p)} "
                            f"expected {expected}")
        if t == U.OVS_VXLAN_EXT_GBP:
            gbp = _U32.unpack(p)[0]
        else:
            raise _err(log, f"Unknown VXLAN extension attribute {t}")
    if rem:
        raise _err(log, f"VXLAN extension message has {rem} unknown bytes.")
    m.put("tun_opts_len", 0xFF if is_mask else 4, is_mask)
    # struct vxlan_metadata { u32 gbp; } in host order
    m.put("tun_opts", int.from_bytes(_U32.pack(gbp), "big"), is_mask)


def _erspan_tun_opt(payload, m, is_mask, log):
    n = len(payload)
    if n > IP_TUNNEL_OPTS_MAX:
        raise _err(log, f"ERSPAN option length err (len {n}, max {IP_TUNNEL_OPTS_MAX}).")
    m.put("tun_opts_len", 0xFF if is_mask else ERSPAN_METADATA_LEN, is_mask)
    m.put("tun_opts", int.from_bytes(payload, "big"), is_mask)


def ip_tun_from_nlattr(payload, m, is_mask, log):
    """ip_tun_from_nlattr(): returns the options attribute type (0 if none)."""
    ttl = ipv4 = ipv6 = False
    info_bridge = False
    flags = 0
    opts_type = 0
    items, rem = _walk(payload)
    for raw, p, _alen, _rem in items:
        t = raw & _TYPE_MASK
        if t > OVS_TUNNEL_KEY_ATTR_MAX:
            raise _err(log, f"Tunnel attr {t} out of range max {OVS_TUNNEL_KEY_ATTR_MAX}")
        expected = _TUNNEL_KEY.length(t)
        if expected not in (_NESTED, _VARIABLE) and len(p) != expected:
            raise _err(log, f"Tunnel attr {t} has unexpected len {len(p)} expected {expected}")
        if t == U.OVS_TUNNEL_KEY_ATTR_ID:
            m.put("tun_id", _BE64.unpack(p)[0], is_mask)
            flags |= K.TUN_F_KEY
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV4_SRC:
            m.put("tun_ipv4_src", _BE32.unpack(p)[0], is_mask)
            ipv4 = True
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV4_DST:
            m.put("tun_ipv4_dst", _BE32.unpack(p)[0], is_mask)
            ipv4 = True
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV6_SRC:
            m.put("tun_ipv6_src", int.from_bytes(p, "big"), is_mask)
            ipv6 = True
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV6_DST:
            m.put("tun_ipv6_dst", int.from_bytes(p, "big"), is_mask)
            ipv6 = True
        elif t == U.OVS_TUNNEL_KEY_ATTR_TOS:
            m.put("tun_tos", p[0], is_mask)
        elif t == U.OVS_TUNNEL_KEY_ATTR_TTL:
            m.put("tun_ttl", p[0], is_mask)
            ttl = True
        elif t == U.OVS_TUNNEL_KEY_ATTR_DONT_FRAGMENT:
            flags |= K.TUN_F_DONT_FRAGMENT
        elif t == U.OVS_TUNNEL_KEY_ATTR_CSUM:
            flags |= K.TUN_F_CSUM
        elif t == U.OVS_TUNNEL_KEY_ATTR_TP_SRC:
            m.put("tun_tp_src", _BE16.unpack(p)[0], is_mask)
        elif t == U.OVS_TUNNEL_KEY_ATTR_TP_DST:
            m.put("tun_tp_dst", _BE16.unpack(p)[0], is_mask)
        elif t == U.OVS_TUNNEL_KEY_ATTR_OAM:
            flags |= K.TUN_F_OAM
        elif t == U.OVS_TUNNEL_KEY_ATTR_GENEVE_OPTS:
            if opts_type:
                raise _err(log, "Multiple metadata blocks provided")
            _genev_tun_opt(p, m, is_mask, log)
            flags |= K.TUN_F_GENEVE_OPT
            opts_type = t
        elif t == U.OVS_TUNNEL_KEY_ATTR_VXLAN_OPTS:
            if opts_type:
                raise _err(log, "Multiple metadata blocks provided")
            _vxlan_tun_opt(p, m, is_mask, log)
            flags |= K.TUN_F_VXLAN_OPT
            opts_type = t
        elif t == U.OVS_TUNNEL_KEY_ATTR_PAD:
            pass
        elif t == U.OVS_TUNNEL_KEY_ATTR_ERSPAN_OPTS:
            if opts_type:
                raise _err(log, "Multiple metadata blocks provided")
            _erspan_tun_opt(p, m, is_mask, log)
            flags |= K.TUN_F_ERSPAN_OPT
            opts_type = t
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV4_INFO_BRIDGE:
            info_bridge = True
            ipv4 = True
        else:  # pragma: no cover - every type 0..MAX is handled above
            raise _err(log, f"Unknown IP tunnel attribute {t}")

    m.put("tun_flags", flags, is_mask)
    if is_mask:
        m.put("tun_proto", 0xFF, True)
    else:
        m.put("tun_proto", AF_INET6 if ipv6 else AF_INET, False)

    if rem > 0:
        raise _err(log, f"IP tunnel attribute has {rem} unknown bytes.")
    if ipv4 and ipv6:
        raise _err(log, "Mixed IPv4 and IPv6 tunnel attributes")
    if not is_mask:
        if not ipv4 and not ipv6:
            raise _err(log, "IP tunnel dst address not specified")
        if ipv4:
            if info_bridge:
                if (m.kget("tun_ipv4_src") or m.kget("tun_ipv4_dst") or m.kget("tun_tp_src")
                        or m.kget("tun_tp_dst") or m.kget("tun_ttl") or m.kget("tun_tos")
                        or flags & ~K.TUN_F_KEY):
                    raise _err(log, "IPv4 tun info is not correct")
            elif not m.kget("tun_ipv4_dst"):
                raise _err(log, "IPv4 tunnel dst address is zero")
        if ipv6 and not m.kget("tun_ipv6_dst"):
            raise _err(log, "IPv6 tunnel dst address is zero")
        if not ttl and not info_bridge:
            raise _err(log, "IP tunnel TTL not specified.")
    return opts_type
