"""Flow keys and masks <-> netlink attributes (net/openvswitch/flow_netlink.c).

This module mirrors the key half of the kernel's flow_netlink.c (Linux ~6.17;
the action half is :mod:`.flow_netlink_actions`):

- :func:`get_match` is ``ovs_nla_get_match()``: an OVS_KEY_ATTR_* stream
  (and optionally a mask stream) into the flow key and mask ints of
  key_layout.py, with every validation rule of the kernel;
- :func:`get_key` is the same with no mask (the GET/DEL lookup path);
- :func:`get_flow_metadata` is ``ovs_nla_get_flow_metadata()`` for
  OVS_PACKET_CMD_EXECUTE;
- the way out, ``put_key`` (``__ovs_nla_put_key()``) and
  ``put_tunnel_info``, is :mod:`.flow_netlink_put`;
- :func:`get_ufid` / :func:`get_ufid_flags` are ``ovs_nla_get_ufid()`` and
  ``ovs_nla_get_ufid_flags()``;
- tunnel keys (``ip_tun_from_nlattr()`` and the option parsers) are
  :mod:`.flow_netlink_tunnel`, and what all these parsers share
  (sw_flow_match, the attribute walk, constants) :mod:`.flow_netlink_match`.

The C code works on ``struct sw_flow_key``; here the same steps write the
named fields of the key int.  Where C truncates a value into a narrower field
(an ARP opcode into the u8 ``ip.proto``, a u32 ct_state into a u8, the mask
``in_port`` 0xffffffff into a u16) the same truncation happens here.  The
attribute array ``a[]`` is shared between the key and the mask parse exactly
as in the kernel (a mask VLAN attribute that is missing reads the key's, see
validate_vlan_mask_from_nlattrs).

Conventions for fields whose wire encoding is not obvious:

- ``tun_opts`` holds the ``tun_opts_len`` option bytes as a big-endian
  number; for VXLAN those bytes are the kernel's ``struct vxlan_metadata``
  (one native-endian u32 ``gbp``); ERSPAN options always have
  ``tun_opts_len`` 12 (sizeof(struct erspan_metadata)), as in the kernel.
- ``ct_labels`` is the 16 label bytes as a big-endian number.
- ``ipv6_exthdrs`` is the u16 flag word (OFPIEH12_* bits).
- ``in_port`` of a mask is 0xffff when exact (the kernel field is a u16).

Errors raise :class:`NetlinkError` with the kernel's errno and a message
modelled on the kernel's OVS_NLERR text (also where the kernel returns the
errno without logging anything).

Deliberate differences from the kernel:

- struct sw_flow_key overlays ipv4/ipv6/mpls/nsh, the ARP addresses and the IPv4
  conntrack tuple, the ND fields and the IPv6 conntrack tuple, and the IPv4
  and IPv6 tunnel addresses; key_layout keeps them apart, so a key that
  gives two overlapping attributes (only possible with an explicit mask that
  leaves one out) keeps both values instead of the last one written.
- NSH flow keys (nsh_key_put_from_nlattr(), nsh_key_to_nlattr()) are
  :mod:`.flow_netlink_nsh`; MD type 2 keys are refused (EINVAL) as in the
  kernel.  set(nsh) and its masked form are EINVAL, as since Linux removed
  them (commit dfe28c4167a9); PUSH_NSH and POP_NSH are validated and run
  (:mod:`.nsh`).
- A CT action is checked in conntrack.py, its helper looked up in
  nf_conntrack_ovs.py and its timeout policy in conntrack_timeout.py.
  PSAMPLE is validated, kept and dumped as the kernel does (psample.py).
  CT_CLEAR and METER are accepted.
- ovs_ct_verify() is taken to accept every conntrack key attribute (a
  kernel with conntrack zones, marks and labels).
- The tunnel ID is emitted without an OVS_TUNNEL_KEY_ATTR_PAD attribute, as
  on architectures with efficient unaligned access (x86_64, arm64).
- A set(tunnel()) TunnelInfo keeps the kernel's IP_TUNNEL_CRIT_OPT flag as
  :data:`TUN_F_CRIT_OPT` in tun_flags; its IPv6/bridge mode is derived from
  the key (tun_proto AF_INET6; AF_INET with no destination).
"""

import errno

from .. import uapi as U
from ..netlink.attr import NetlinkError, align
from . import key_layout as K
from .flow_netlink_match import (
    _ARP,
    _BE16,
    _BE32,
    _CT4,
    _CT6,
    _IPV6,
    _KEY,
    _ND,
    _NLA,
    _TUN_KEY_MASK,
    _TYPE_MASK,
    _U16,
    _U32,
    CT_SUPPORTED_MASK,
    ETH_P_802_3_MIN,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    MPLS_LABEL_DEPTH,
    NDISC_NEIGHBOUR_ADVERTISEMENT,
    NDISC_NEIGHBOUR_SOLICITATION,
    Match,
    _err,
    _get,
    _parse_flow_nlattrs,
    eth_p_mpls,
    eth_type_vlan,
    image_run,
    log_,
)
from .flow_netlink_nsh import nsh_key_from_nlattrs
from .flow_netlink_tunnel import ip_tun_from_nlattr

# The attrs bitmap's bits (1 << OVS_KEY_ATTR_*), as constants: the parse runs per flow put.
_B_ARP = 1 << U.OVS_KEY_ATTR_ARP
_B_CT_LABELS = 1 << U.OVS_KEY_ATTR_CT_LABELS
_B_CT_MARK = 1 << U.OVS_KEY_ATTR_CT_MARK
_B_CT_ORIG_TUPLE_IPV4 = 1 << U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4
_B_CT_ORIG_TUPLE_IPV6 = 1 << U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6
_B_CT_STATE = 1 << U.OVS_KEY_ATTR_CT_STATE
_B_CT_ZONE = 1 << U.OVS_KEY_ATTR_CT_ZONE
_B_DP_HASH = 1 << U.OVS_KEY_ATTR_DP_HASH
_B_ENCAP = 1 << U.OVS_KEY_ATTR_ENCAP
_B_ETHERNET = 1 << U.OVS_KEY_ATTR_ETHERNET
_B_ETHERTYPE = 1 << U.OVS_KEY_ATTR_ETHERTYPE
_B_ICMP = 1 << U.OVS_KEY_ATTR_ICMP
_B_ICMPV6 = 1 << U.OVS_KEY_ATTR_ICMPV6
_B_IN_PORT = 1 << U.OVS_KEY_ATTR_IN_PORT
_B_IPV4 = 1 << U.OVS_KEY_ATTR_IPV4
_B_IPV6 = 1 << U.OVS_KEY_ATTR_IPV6
_B_IPV6_EXTHDRS = 1 << U.OVS_KEY_ATTR_IPV6_EXTHDRS
_B_MPLS = 1 << U.OVS_KEY_ATTR_MPLS
_B_ND = 1 << U.OVS_KEY_ATTR_ND
_B_NSH = 1 << U.OVS_KEY_ATTR_NSH
_B_PRIORITY = 1 << U.OVS_KEY_ATTR_PRIORITY
_B_RECIRC_ID = 1 << U.OVS_KEY_ATTR_RECIRC_ID
_B_SCTP = 1 << U.OVS_KEY_ATTR_SCTP
_B_SKB_MARK = 1 << U.OVS_KEY_ATTR_SKB_MARK
_B_TCP = 1 << U.OVS_KEY_ATTR_TCP
_B_TCP_FLAGS = 1 << U.OVS_KEY_ATTR_TCP_FLAGS
_B_TUNNEL = 1 << U.OVS_KEY_ATTR_TUNNEL
_B_UDP = 1 << U.OVS_KEY_ATTR_UDP
_B_VLAN = 1 << U.OVS_KEY_ATTR_VLAN

TUN_F_CRIT_OPT = K.TUN_F_CRIT_OPT       # the kernel's IP_TUNNEL_CRIT_OPT (key_layout)


# -------------------------------------------------------------------- VLAN
def _vlan_name(inner):
    return "C-VLAN" if inner else "VLAN"


def _validate_vlan(m, attrs, inner, a, log):
    """validate_vlan_from_nlattrs(): 0 = not a VLAN, 1 = a VLAN to parse."""
    E, T, V = U.OVS_KEY_ATTR_ENCAP, U.OVS_KEY_ATTR_ETHERTYPE, U.OVS_KEY_ATTR_VLAN
    if not (attrs & _B_ETHERNET and attrs & (1 << T)
            and eth_type_vlan(_BE16.unpack(a[T])[0])):
        return 0
    if not (attrs & (1 << V) and attrs & (1 << E)):
        raise _err(log, f"Invalid {_vlan_name(inner)} frame")
    tci = _BE16.unpack(a[V])[0] if a.get(V) is not None else 0
    if not tci & K.VLAN_CFI_MASK:
        if tci:
            raise _err(log, f"{_vlan_name(inner)} TCI does not have VLAN_CFI_MASK bit set.")
        if len(a[E]):
            raise _err(log, f"Truncated {_vlan_name(inner)} header has non-zero encap "
                            "attribute.")
    return 1


def _validate_vlan_mask(m, attrs, inner, a, log):
    """validate_vlan_mask_from_nlattrs()."""
    encap_valid = bool(m.kget("vlan_tci") & K.VLAN_CFI_MASK)
    i_encap_valid = bool(m.kget("cvlan_tci") & K.VLAN_CFI_MASK)
    if not attrs & _B_ENCAP:
        return 0
    if (not inner and not encap_valid) or (inner and not i_encap_valid):
        raise _err(log, f"Encap mask attribute is set for non-{_vlan_name(inner)} frame.")
    # Like the kernel, a[] may still hold the key's VLAN/ETHERTYPE here.
    v = a.get(U.OVS_KEY_ATTR_VLAN)
    tci = _BE16.unpack(v)[0] if v is not None else 0
    t = a.get(U.OVS_KEY_ATTR_ETHERTYPE)
    tpid = _BE16.unpack(t)[0] if t is not None else 0
    if tpid != 0xFFFF:
        raise _err(log, f"Must have an exact match on {_vlan_name(inner)} TPID "
                        f"(mask={tpid:x}).")
    if not tci & K.VLAN_CFI_MASK:
        raise _err(log, f"{_vlan_name(inner)} TCI mask does not have exact match for "
                        "VLAN_CFI_MASK bit.")
    return 1


def _parse_one_vlan(m, attrs, inner, a, is_mask, log):
    """__parse_vlan_from_nlattrs(): returns the updated attrs."""
    if not is_mask:
        ok = _validate_vlan(m, attrs, inner, a, log)
    else:
        ok = _validate_vlan_mask(m, attrs, inner, a, log)
    if not ok:
        return attrs
    v = a.get(U.OVS_KEY_ATTR_VLAN)
    tci = _BE16.unpack(v)[0] if v is not None else 0
    t = a.get(U.OVS_KEY_ATTR_ETHERTYPE)
    tpid = _BE16.unpack(t)[0] if t is not None else 0
    pre = "cvlan_" if inner else "vlan_"
    m.put(pre + "tpid", tpid, is_mask)
    m.put(pre + "tci", tci, is_mask)
    attrs &= ~(_B_ENCAP | _B_VLAN
               | _B_ETHERTYPE)
    encap = a[U.OVS_KEY_ATTR_ENCAP]
    return _parse_flow_nlattrs(encap, a, attrs, log, is_mask)


def _parse_vlan(m, attrs, a, is_mask, log):
    """parse_vlan_from_nlattrs()."""
    attrs = _parse_one_vlan(m, attrs, False, a, is_mask, log)
    if m.kget("vlan_tci") & K.VLAN_CFI_MASK:
        attrs = _parse_one_vlan(m, attrs, True, a, is_mask, log)
    return attrs


# ---------------------------------------------------------------- metadata
def _parse_eth_type(m, attrs, a, is_mask, log):
    eth_type = _BE16.unpack(a[U.OVS_KEY_ATTR_ETHERTYPE])[0]
    if is_mask:
        eth_type = 0xFFFF               # Always exact match EtherType.
    elif eth_type < ETH_P_802_3_MIN:
        raise _err(log, f"EtherType {eth_type:x} is less than min {ETH_P_802_3_MIN:x}")
    m.put("eth_type", eth_type, is_mask)
    return attrs & ~_B_ETHERTYPE


def _metadata_from_nlattrs(m, attrs, a, is_mask, log):
    """metadata_from_nlattrs(): returns the attrs left to parse."""
    if attrs & _B_DP_HASH:
        m.put("dp_hash", _U32.unpack(a[U.OVS_KEY_ATTR_DP_HASH])[0], is_mask)
        attrs &= ~_B_DP_HASH
    if attrs & _B_RECIRC_ID:
        m.put("recirc_id", _U32.unpack(a[U.OVS_KEY_ATTR_RECIRC_ID])[0], is_mask)
        attrs &= ~_B_RECIRC_ID
    if attrs & _B_PRIORITY:
        m.put("priority", _U32.unpack(a[U.OVS_KEY_ATTR_PRIORITY])[0], is_mask)
        attrs &= ~_B_PRIORITY
    if attrs & _B_IN_PORT:
        in_port = _U32.unpack(a[U.OVS_KEY_ATTR_IN_PORT])[0]
        if is_mask:
            in_port = 0xFFFFFFFF        # Always exact match in_port.
        elif in_port >= K.DP_MAX_PORTS:
            raise _err(log, f"Port {in_port} exceeds max allowable {K.DP_MAX_PORTS}")
        m.put("in_port", in_port & 0xFFFF, is_mask)     # u16 phy.in_port
        attrs &= ~_B_IN_PORT
    elif not is_mask:
        m.put("in_port", K.DP_MAX_PORTS, False)
    if attrs & _B_SKB_MARK:
        m.put("skb_mark", _U32.unpack(a[U.OVS_KEY_ATTR_SKB_MARK])[0], is_mask)
        attrs &= ~_B_SKB_MARK
    if attrs & _B_TUNNEL:
        try:
            ip_tun_from_nlattr(a[U.OVS_KEY_ATTR_TUNNEL], m, is_mask, log)
        except NetlinkError as e:
            raise NetlinkError(errno.EINVAL, e.msg) from None
        attrs &= ~_B_TUNNEL
    if attrs & _B_CT_STATE:
        ct_state = _U32.unpack(a[U.OVS_KEY_ATTR_CT_STATE])[0]
        if ct_state & ~CT_SUPPORTED_MASK:
            raise _err(log, f"ct_state flags {ct_state:08x} unsupported")
        m.put("ct_state", ct_state, is_mask)
        attrs &= ~_B_CT_STATE
    if attrs & _B_CT_ZONE:
        m.put("ct_zone", _U16.unpack(a[U.OVS_KEY_ATTR_CT_ZONE])[0], is_mask)
        attrs &= ~_B_CT_ZONE
    if attrs & _B_CT_MARK:
        m.put("ct_mark", _U32.unpack(a[U.OVS_KEY_ATTR_CT_MARK])[0], is_mask)
        attrs &= ~_B_CT_MARK
    if attrs & _B_CT_LABELS:
        m.put("ct_labels", int.from_bytes(a[U.OVS_KEY_ATTR_CT_LABELS], "big"), is_mask)
        attrs &= ~_B_CT_LABELS
    if attrs & _B_CT_ORIG_TUPLE_IPV4:
        src, dst, sport, dport, proto = _CT4.unpack(a[U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4])
        m.put("ct_orig_src", src, is_mask)
        m.put("ct_orig_dst", dst, is_mask)
        m.put("ct_orig_tp_src", sport, is_mask)
        m.put("ct_orig_tp_dst", dport, is_mask)
        m.put("ct_orig_proto", proto, is_mask)
        attrs &= ~_B_CT_ORIG_TUPLE_IPV4
    if attrs & _B_CT_ORIG_TUPLE_IPV6:
        src, dst, sport, dport, proto = _CT6.unpack(a[U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6])
        m.put("ct_orig_src", int.from_bytes(src, "big"), is_mask)
        m.put("ct_orig_dst", int.from_bytes(dst, "big"), is_mask)
        m.put("ct_orig_tp_src", sport, is_mask)
        m.put("ct_orig_tp_dst", dport, is_mask)
        m.put("ct_orig_proto", proto, is_mask)
        attrs &= ~_B_CT_ORIG_TUPLE_IPV6

    # For layer 3 packets the Ethernet type is provided and treated as
    # metadata but no MAC addresses are provided.
    no_eth = (not attrs & _B_ETHERNET
              and attrs & _B_ETHERTYPE)
    # Always exact match mac_proto.
    m.put("no_eth", 0xFF if is_mask else (1 if no_eth else 0), is_mask)
    if no_eth:
        attrs = _parse_eth_type(m, attrs, a, is_mask, log)
    return attrs


# --------------------------------------------------------------- key body
# Runs of adjacent fields of the key's frame image (key_layout) that one
# attribute fills: eth_dst eth_src; ip_frag ip_tos; ip_ttl ip_proto;
# ipv4_src ipv4_dst; tp_src tp_dst.
_RUN_ETH = image_run(0, 12)
_RUN_FRAG_TOS = image_run(14, 2)
_RUN_TTL_PROTO = image_run(22, 2)
_RUN_IPV4_ADDRS = image_run(26, 8)
_RUN_PORTS = image_run(34, 4)


def _key_from_nlattrs(m, attrs, a, is_mask, log):
    """ovs_key_from_nlattrs()."""
    attrs = _metadata_from_nlattrs(m, attrs, a, is_mask, log)

    if attrs & _B_ETHERNET:
        eth = a[U.OVS_KEY_ATTR_ETHERNET]            # eth_src, eth_dst
        m.put_run(_RUN_ETH, int.from_bytes(eth[6:12] + eth[0:6], "big"), is_mask)
        attrs &= ~_B_ETHERNET
        if attrs & _B_VLAN:
            raise _err(log, "VLAN attribute unexpected.")
        if attrs & _B_ETHERTYPE:
            attrs = _parse_eth_type(m, attrs, a, is_mask, log)
        elif not is_mask:
            m.put("eth_type", K.ETH_P_802_2, False)
    elif not m.kget("eth_type"):
        raise _err(log, "Either Ethernet header or EtherType is required.")

    if attrs & _B_IPV4:
        p = a[U.OVS_KEY_ATTR_IPV4]         # struct ovs_key_ipv4: src, dst, proto, tos, ttl, frag
        if not is_mask and p[11] > U.OVS_FRAG_TYPE_MAX:
            raise _err(log, f"IPv4 frag type {p[11]} is out of range max {U.OVS_FRAG_TYPE_MAX}")
        # three runs of the frame image: ip_frag ip_tos, ip_ttl ip_proto, ipv4_src ipv4_dst
        m.put_run(_RUN_FRAG_TOS, p[11] << 8 | p[9], is_mask)
        m.put_run(_RUN_TTL_PROTO, p[10] << 8 | p[8], is_mask)
        m.put_run(_RUN_IPV4_ADDRS, int.from_bytes(p[0:8], "big"), is_mask)
        attrs &= ~_B_IPV4

    if attrs & _B_IPV6:
        src, dst, label, proto, tclass, hlimit, frag = _IPV6.unpack(a[U.OVS_KEY_ATTR_IPV6])
        if not is_mask and frag > U.OVS_FRAG_TYPE_MAX:
            raise _err(log, f"IPv6 frag type {frag} is out of range max {U.OVS_FRAG_TYPE_MAX}")
        if not is_mask and label & 0xFFF00000:
            raise _err(log, f"IPv6 flow label {label:x} is out of range (max={(1 << 20) - 1:x})")
        m.put("ipv6_label", label, is_mask)
        m.put("ip_proto", proto, is_mask)
        m.put("ip_tos", tclass, is_mask)
        m.put("ip_ttl", hlimit, is_mask)
        m.put("ip_frag", frag, is_mask)
        m.put("ipv6_src", int.from_bytes(src, "big"), is_mask)
        m.put("ipv6_dst", int.from_bytes(dst, "big"), is_mask)
        attrs &= ~_B_IPV6

    if attrs & _B_IPV6_EXTHDRS:
        m.put("ipv6_exthdrs", _U16.unpack(a[U.OVS_KEY_ATTR_IPV6_EXTHDRS])[0], is_mask)
        attrs &= ~_B_IPV6_EXTHDRS

    if attrs & _B_ARP:
        sip, tip, op, sha, tha = _ARP.unpack(a[U.OVS_KEY_ATTR_ARP])
        if not is_mask and op & 0xFF00:
            raise _err(log, f"Unknown ARP opcode (opcode={op}).")
        m.put("ipv4_src", sip, is_mask)
        m.put("ipv4_dst", tip, is_mask)
        m.put("ip_proto", op, is_mask)          # u8: the low byte of the opcode
        m.put("arp_sha", int.from_bytes(sha, "big"), is_mask)
        m.put("arp_tha", int.from_bytes(tha, "big"), is_mask)
        attrs &= ~_B_ARP

    if attrs & _B_NSH:
        nsh_key_from_nlattrs(a[U.OVS_KEY_ATTR_NSH], m, is_mask, log)
        attrs &= ~_B_NSH

    if attrs & _B_MPLS:
        p = a[U.OVS_KEY_ATTR_MPLS]
        count = len(p) // 4
        if count == 0 or count > MPLS_LABEL_DEPTH or len(p) % 4:
            raise _err(log, f"MPLS key has invalid length {len(p)} "
                            f"(1..{MPLS_LABEL_DEPTH} labels of 4 bytes)")
        for i in range(count):
            m.put(f"mpls_lse{i}", _BE32.unpack_from(p, 4 * i)[0], is_mask)
        m.put("mpls_labels", (1 << count) - 1, is_mask)
        attrs &= ~_B_MPLS

    if attrs & _B_TCP:
        m.put_run(_RUN_PORTS, int.from_bytes(a[U.OVS_KEY_ATTR_TCP], "big"), is_mask)
        attrs &= ~_B_TCP

    if attrs & _B_TCP_FLAGS:
        m.put("tcp_flags", _BE16.unpack(a[U.OVS_KEY_ATTR_TCP_FLAGS])[0], is_mask)
        attrs &= ~_B_TCP_FLAGS

    for t in (U.OVS_KEY_ATTR_UDP, U.OVS_KEY_ATTR_SCTP):
        if attrs & (1 << t):
            m.put_run(_RUN_PORTS, int.from_bytes(a[t], "big"), is_mask)
            attrs &= ~(1 << t)

    for t in (U.OVS_KEY_ATTR_ICMP, U.OVS_KEY_ATTR_ICMPV6):
        if attrs & (1 << t):
            p = a[t]
            m.put("tp_src", p[0], is_mask)      # htons(type) in a __be16
            m.put("tp_dst", p[1], is_mask)
            attrs &= ~(1 << t)

    if attrs & _B_ND:
        target, sll, tll = _ND.unpack(a[U.OVS_KEY_ATTR_ND])
        m.put("nd_target", int.from_bytes(target, "big"), is_mask)
        m.put("nd_sll", int.from_bytes(sll, "big"), is_mask)
        m.put("nd_tll", int.from_bytes(tll, "big"), is_mask)
        attrs &= ~_B_ND

    if attrs:
        raise _err(log, f"Unknown key attributes {attrs:x}")


# ------------------------------------------------------- exact match masks
def _mask_set_nlattr(buf, table=_KEY):
    """nlattr_set(attr, 0xff): a copy of a validated stream, payloads all-ones
    (nested ones as their table's rows say)."""
    out = bytearray(buf)
    off = 0
    n = len(buf)
    while n - off >= 4:
        alen, raw = _NLA.unpack_from(buf, off)
        if alen < 4 or alen > n - off:
            break
        t = raw & _TYPE_MASK
        start, end = off + 4, off + alen
        inner = table.nexts.get(t)
        if inner is not None:
            out[start:end] = _mask_set_nlattr(bytes(buf[start:end]), inner)
        else:
            out[start:end] = b"\xff" * (end - start)
        if table is _KEY and t == U.OVS_KEY_ATTR_CT_STATE and end - start >= 4:
            v = _U32.unpack_from(out, start)[0] & CT_SUPPORTED_MASK
            _U32.pack_into(out, start, v)
        off += align(alen)
    return bytes(out)


# -------------------------------------------------------------- validation
# match_validate(): the key's attributes a mask may carry, less these (allowed
# only by what the key is), plus these (always allowed).
_MASK_NOT_BY_DEFAULT = ~(_B_IPV4 | _B_CT_ORIG_TUPLE_IPV4 | _B_IPV6 | _B_CT_ORIG_TUPLE_IPV6
                         | _B_TCP | _B_TCP_FLAGS | _B_UDP | _B_SCTP | _B_ICMP | _B_ICMPV6
                         | _B_ARP | _B_ND | _B_MPLS | _B_NSH)
_MASK_ALWAYS_ALLOWED = _B_TUNNEL | _B_IN_PORT | _B_ETHERTYPE


def _match_validate(m, key_attrs, mask_attrs, log):
    """match_validate(): required key attributes and allowed mask attributes."""
    A = U
    key_expected = 0
    mask_allowed = key_attrs & _MASK_NOT_BY_DEFAULT | _MASK_ALWAYS_ALLOWED
    has_mask = m.mask is not None
    eth_type = m.kget("eth_type")
    eth_exact = has_mask and m.mget("eth_type") == 0xFFFF
    proto_exact = has_mask and m.mget("ip_proto") == 0xFF
    proto = m.kget("ip_proto")

    if eth_type in (K.ETH_P_ARP, K.ETH_P_RARP):
        key_expected |= _B_ARP
        if eth_exact:
            mask_allowed |= _B_ARP

    if eth_p_mpls(eth_type):
        key_expected |= _B_MPLS
        if eth_exact:
            mask_allowed |= _B_MPLS

    if eth_type in (K.ETH_P_IP, K.ETH_P_IPV6):
        v6 = eth_type == K.ETH_P_IPV6
        l3 = A.OVS_KEY_ATTR_IPV6 if v6 else A.OVS_KEY_ATTR_IPV4
        ct = A.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6 if v6 else A.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4
        key_expected |= (1 << l3)
        if eth_exact:
            mask_allowed |= (1 << l3) | (1 << ct)
        if m.kget("ip_frag") != U.OVS_FRAG_TYPE_LATER:
            if proto == IPPROTO_UDP:
                key_expected |= _B_UDP
                if proto_exact:
                    mask_allowed |= _B_UDP
            if proto == IPPROTO_SCTP:
                key_expected |= _B_SCTP
                if proto_exact:
                    mask_allowed |= _B_SCTP
            if proto == IPPROTO_TCP:
                key_expected |= _B_TCP | _B_TCP_FLAGS
                if proto_exact:
                    mask_allowed |= _B_TCP | _B_TCP_FLAGS
            if not v6 and proto == IPPROTO_ICMP:
                key_expected |= _B_ICMP
                if proto_exact:
                    mask_allowed |= _B_ICMP
            if v6 and proto == IPPROTO_ICMPV6:
                key_expected |= _B_ICMPV6
                if proto_exact:
                    mask_allowed |= _B_ICMPV6
                if m.kget("tp_src") in (NDISC_NEIGHBOUR_SOLICITATION,
                                        NDISC_NEIGHBOUR_ADVERTISEMENT):
                    key_expected |= _B_ND
                    # The kernel's ct original tuple shares the ND fields'
                    # space: both are not allowed at the same time.
                    mask_allowed &= ~_B_CT_ORIG_TUPLE_IPV6
                    if has_mask and m.mget("tp_src") == 0xFF:
                        mask_allowed |= _B_ND

    if eth_type == K.ETH_P_NSH:
        key_expected |= _B_NSH
        if eth_exact:
            mask_allowed |= _B_NSH

    if key_attrs & key_expected != key_expected:
        raise _err(log, f"Missing key (keys={key_attrs:x}, expected={key_expected:x})")
    if mask_attrs & mask_allowed != mask_attrs:
        raise _err(log, f"Unexpected mask (mask={mask_attrs:x}, allowed={mask_allowed:x})")


# --------------------------------------------------------------- the API
def _get_match(key_attrs, mask_attrs, log, want_mask):
    m = Match(want_mask)
    a = {}
    k_attrs = _parse_flow_nlattrs(key_attrs, a, 0, log, False)
    k_attrs = _parse_vlan(m, k_attrs, a, False, log)
    _key_from_nlattrs(m, k_attrs, a, False, log)

    m_attrs = 0
    if want_mask:
        if mask_attrs is None:
            # An exact-match mask: the key's own attributes with every
            # payload byte set to 0xff.  Tunnel fields that userspace omits
            # because they are 0 are still matched exactly.
            mask_attrs = _mask_set_nlattr(bytes(key_attrs))
            if m.kget("tun_proto"):
                m.mask |= _TUN_KEY_MASK
        m_attrs = _parse_flow_nlattrs(mask_attrs, a, 0, log, True)
        # Always match on tci.
        m.put("vlan_tci", 0xFFFF, True)
        m.put("cvlan_tci", 0xFFFF, True)
        m_attrs = _parse_vlan(m, m_attrs, a, True, log)
        _key_from_nlattrs(m, m_attrs, a, True, log)

    _match_validate(m, k_attrs, m_attrs, log)
    return m


def get_match(key_attrs, mask_attrs, log=True):
    """ovs_nla_get_match(): parse OVS_FLOW_ATTR_KEY (and OVS_FLOW_ATTR_MASK).

    ``key_attrs``/``mask_attrs`` are the payloads of the two nested
    attributes; ``mask_attrs`` None means "no MASK attribute": the flow is an
    exact match on every attribute present.  Returns ``(key, mask)``: the
    key unmasked (the caller masks it for the flow table, like
    ovs_flow_mask_key()) and the mask.  Raises NetlinkError.
    """
    m = _get_match(key_attrs, mask_attrs, log, True)
    return m.key, m.mask


def get_key(key_attrs, log=True):
    """ovs_nla_get_match() with no mask (match->mask NULL): the key only.

    This is what OVS_FLOW_CMD_GET and OVS_FLOW_CMD_DEL do with a KEY: no
    mask is built and only the key's required attributes are validated.
    """
    return _get_match(key_attrs, None, log, False).key


def get_flow_metadata(key_attrs, log=True):
    """ovs_nla_get_flow_metadata() for OVS_PACKET_CMD_EXECUTE.

    Returns ``(meta, attrs_seen)``: ``meta`` is a key int holding the
    metadata (recirc_id, dp_hash, priority, in_port (DP_MAX_PORTS when
    absent), skb_mark, tunnel, ct_* and ct original tuple, ``no_eth``, and
    for a packet without Ethernet header (ETHERTYPE given without ETHERNET)
    its ``eth_type``); ``attrs_seen`` is the bitmap of the top-level
    OVS_KEY_ATTR_* types present (bit t for type t), which
    ovs_flow_key_extract_userspace() needs after extraction (a
    CT_ORIG_TUPLE_IPV4 needs an IPv4 packet, a
    CT_ORIG_TUPLE_IPV6 an IPv6 packet that is not ND: EINVAL otherwise).
    """
    a = {}
    attrs = _parse_flow_nlattrs(key_attrs, a, 0, log, False)
    m = Match(False)
    m.put("in_port", K.DP_MAX_PORTS, False)
    _metadata_from_nlattrs(m, attrs, a, False, log)
    return m.key, attrs


def is_nd(key):
    """sw_flow_key_is_nd()."""
    return (_get(key, "eth_type") == K.ETH_P_IPV6 and _get(key, "ip_proto") == IPPROTO_ICMPV6
            and _get(key, "tp_dst") == 0
            and _get(key, "tp_src") in (NDISC_NEIGHBOUR_SOLICITATION,
                                        NDISC_NEIGHBOUR_ADVERTISEMENT))


def check_userspace_key(attrs_seen, key, log=True):
    """The last checks of ovs_flow_key_extract_userspace(), after extraction.

    A conntrack original tuple only makes sense for the matching L3 type.
    """
    if attrs_seen & _B_CT_ORIG_TUPLE_IPV4 and _get(key, "eth_type") != K.ETH_P_IP:
        raise _err(log, "CT_ORIG_TUPLE_IPV4 given for a packet that is not IPv4")
    if attrs_seen & _B_CT_ORIG_TUPLE_IPV6 and (_get(key, "eth_type") != K.ETH_P_IPV6
                                               or is_nd(key)):
        raise _err(log, "CT_ORIG_TUPLE_IPV6 given for a packet that is not IPv6 (or is ND)")


def get_ufid(payload, log=True):
    """ovs_nla_get_ufid(): the UFID bytes, or None.

    Like the kernel, a UFID attribute outside 1..MAX_UFID_LENGTH bytes is not
    an error: the flow is then identified by its key (None is returned).
    """
    if payload is None:
        return None
    n = len(payload)
    if n < 1 or n > U.MAX_UFID_LENGTH:
        if log:
            log_.info("ufid size %u bytes exceeds the range (1, %d)", n, U.MAX_UFID_LENGTH)
        return None
    return bytes(payload)


def get_ufid_flags(payload):
    """ovs_nla_get_ufid_flags(): the u32, 0 when absent."""
    if payload is None:
        return 0
    return _U32.unpack_from(payload)[0]
