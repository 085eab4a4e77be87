"""Flow keys, masks and actions <-> netlink attributes (net/openvswitch/flow_netlink.c).

This module mirrors the kernel's flow_netlink.c (Linux ~6.17):

- :func:`get_match` is ``ovs_nla_get_match()``: an OVS_KEY_ATTR_* stream
  (and optionally a mask stream) into the flow key and mask ints of
  key_layout.py, with every validation rule of the kernel;
- :func:`get_key` is the same with no mask (the GET/DEL lookup path);
- :func:`get_flow_metadata` is ``ovs_nla_get_flow_metadata()`` for
  OVS_PACKET_CMD_EXECUTE;
- :func:`put_key` is ``__ovs_nla_put_key()``, byte for byte;
- :func:`put_tunnel_info` is ``ovs_nla_put_tunnel_info()``;
- :func:`copy_actions` is ``ovs_nla_copy_actions()``: validation of an
  action list against the (masked) flow key, returning an ActionList;
- :func:`get_ufid` / :func:`get_ufid_flags` are ``ovs_nla_get_ufid()`` and
  ``ovs_nla_get_ufid_flags()``.

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

- struct sw_flow_key overlays ipv4/ipv6/mpls, the ARP addresses and the IPv4
  conntrack tuple, the ND fields and the IPv6 conntrack tuple, and the IPv4
  and IPv6 tunnel addresses; key_layout keeps them apart, so a key that
  gives two overlapping attributes (only possible with an explicit mask that
  leaves one out) keeps both values instead of the last one written.
- NSH flow keys and set(nsh) are refused with EOPNOTSUPP (key_layout has no
  NSH fields); put_key() emits nothing for an NSH eth_type.
- The CT, METER, PSAMPLE, PUSH_NSH and POP_NSH actions are refused with
  EOPNOTSUPP (not implemented yet; the kernel does the same for PSAMPLE
  without CONFIG_PSAMPLE), CT, PSAMPLE and POP_NSH after the kernel's checks
  (a malformed one gets the kernel's errno; CT's are in conntrack.py).
  CT_CLEAR is accepted.
- ovs_ct_verify() is taken to accept every conntrack key attribute (a
  kernel with conntrack zones, marks and labels).
- The tunnel ID is emitted without an OVS_TUNNEL_KEY_ATTR_PAD attribute, as
  on architectures with efficient unaligned access (x86_64, arm64).
- A set(tunnel()) TunnelInfo keeps the kernel's IP_TUNNEL_CRIT_OPT flag as
  :data:`TUN_F_CRIT_OPT` in tun_flags; its IPv6/bridge mode is derived from
  the key (tun_proto AF_INET6; AF_INET with no destination).
"""

import errno
import logging
import struct

from .. import uapi as U
from ..netlink.attr import (
    BINARY,
    NESTED,
    U16,
    U32,
    UNSPEC,
    NetlinkError,
    Policy,
    align,
    nla,
    nla_be16,
    nla_be32,
    nla_be64,
    nla_flag,
    nla_nest,
    nla_u8,
    nla_u16,
    nla_u32,
    validate_nla,
)
from ..uapi import attrs as ATTRS
from . import conntrack
from . import key_layout as K
from .skb import TunnelInfo

log_ = logging.getLogger(__name__)

# --------------------------------------------------------------- constants
_NLA = struct.Struct("=HH")
_TYPE_MASK = U.NLA_TYPE_MASK
_BE16 = struct.Struct("!H")
_BE32 = struct.Struct("!I")
_BE64 = struct.Struct("!Q")
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132
NDISC_NEIGHBOUR_SOLICITATION = 135
NDISC_NEIGHBOUR_ADVERTISEMENT = 136
AF_INET = 2
AF_INET6 = 10
ETH_P_802_3_MIN = 0x0600
ETH_HLEN = 14
ETH_ALEN = 6
MPLS_LABEL_DEPTH = 3
IP_TUNNEL_OPTS_MAX = 255            # sizeof(sw_flow_key.tun_opts)
ERSPAN_METADATA_LEN = 12            # sizeof(struct erspan_metadata)
GENEVE_CRIT_OPT_TYPE = 0x80
CT_SUPPORTED_MASK = 0xFF            # OVS_CS_F_NEW .. OVS_CS_F_DST_NAT
OVS_COPY_ACTIONS_MAX_DEPTH = 16
MAX_ACTIONS_BUFSIZE = 32 * 1024
_SFA_HEADER = 28                 # offsetof(struct sw_flow_actions, actions) on 64-bit
# What the kernel adds when it rewrites an action into its own form:
_NEST_HDR = 4                    # add_nested_action_start()
_SAMPLE_ARG = 12                 # nla_total_size(sizeof(struct sample_arg))
_CLONE_ARG = 8                   # nla_total_size(sizeof(u32))
_CPL_ARG = 8                     # nla_total_size(sizeof(struct check_pkt_len_arg))
_TUNNEL_INFO = 12                # nla_total_size(sizeof(struct ovs_tunnel_info))
OVS_VXLAN_EXT_MAX = U.OVS_VXLAN_EXT_GBP
OVS_TUNNEL_KEY_ATTR_MAX = U.OVS_TUNNEL_KEY_ATTR_MAX
OVS_KEY_ATTR_MAX = U.OVS_KEY_ATTR_MAX
OVS_ACTION_ATTR_MAX = U.OVS_ACTION_ATTR_MAX

# Kernel tunnel flag with no key-field meaning: set in a set(tunnel()) action's
# TunnelInfo when a Geneve option has the critical bit (validate_geneve_opts);
# the Geneve sender copies it into the header's C bit.  Bit 7 of tun_flags is
# unused by key_layout's TUN_F_* bits.
TUN_F_CRIT_OPT = 1 << 7
_TUN_OPT_FLAGS = K.TUN_F_GENEVE_OPT | K.TUN_F_VXLAN_OPT | K.TUN_F_ERSPAN_OPT

# Key struct layouts (uapi)
_IPV4 = U.OVS_KEY_IPV4
_IPV6 = U.OVS_KEY_IPV6
_TP = U.OVS_KEY_TCP
_ARP = U.OVS_KEY_ARP
_ND = U.OVS_KEY_ND
_CT4 = U.OVS_KEY_CT_TUPLE_IPV4
_CT6 = U.OVS_KEY_CT_TUPLE_IPV6

# ovs_key_lens[] and the tables its rows' .next point to (uapi/attrs.py)
_VARIABLE = ATTRS.VARIABLE
_NESTED = ATTRS.NESTED
_KEY = ATTRS.KEY
_TUNNEL_KEY = ATTRS.TUNNEL_KEY
_VXLAN_EXT = ATTRS.VXLAN_EXT
_NSH_KEY = ATTRS.NSH_KEY

# The fields of struct ip_tunnel_key (SW_FLOW_KEY_MEMSET_FIELD(tun_key)).
_TUN_KEY_FIELDS = ("tun_id", "tun_ipv4_src", "tun_ipv4_dst", "tun_ipv6_src", "tun_ipv6_dst",
                   "tun_tos", "tun_ttl", "tun_tp_src", "tun_tp_dst", "tun_flags")
_TUN_KEY_MASK = 0
for _f in _TUN_KEY_FIELDS:
    _TUN_KEY_MASK |= K.ones(_f)
_ALL_TUN_MASK = _TUN_KEY_MASK | K.ones("tun_proto") | K.ones("tun_opts_len") | K.ones("tun_opts")
del _f

_FIELD = K.FIELDS


def _get(key, name):
    s, w = _FIELD[name]
    return (key >> s) & ((1 << w) - 1)


def _bit(t):
    return 1 << t


def _err(log, msg, err=errno.EINVAL):
    if log:
        log_.info("%s", msg)
    return NetlinkError(err, msg)


def eth_p_mpls(eth_type):
    return eth_type in (K.ETH_P_MPLS_UC, K.ETH_P_MPLS_MC)


def eth_type_vlan(eth_type):
    return eth_type in (K.ETH_P_8021Q, K.ETH_P_8021AD)


def _popcount(v):
    return bin(v).count("1")


# --------------------------------------------------------------- the match
class _Match:
    """struct sw_flow_match: the key being built and (optionally) its mask."""

    __slots__ = ("key", "mask")

    def __init__(self, want_mask=True):
        self.key = 0
        self.mask = 0 if want_mask else None

    def put(self, name, value, is_mask):
        """SW_FLOW_KEY_PUT: the value truncated to the field like a C store."""
        s, w = _FIELD[name]
        fm = (1 << w) - 1
        if is_mask:
            self.mask = (self.mask & ~(fm << s)) | ((value & fm) << s)
        else:
            self.key = (self.key & ~(fm << s)) | ((value & fm) << s)

    def kget(self, name):
        return _get(self.key, name)

    def mget(self, name):
        return _get(self.mask, name)


# ------------------------------------------------------- attribute parsing
def _walk(buf):
    """nla_for_each_attr(): ``([(raw_type, payload, nla_len, rem_before)], rem)``.

    ``rem`` is the kernel's value after the loop: the bytes left over, negative
    when the last attribute's padding is missing (nla_next() subtracts the
    aligned length).  ``rem_before`` is what nla_is_last() compares with.
    """
    n = len(buf)
    off = 0
    rem = n
    out = []
    while rem >= 4:
        alen, raw = _NLA.unpack_from(buf, off)
        if alen < 4 or alen > rem:
            break
        out.append((raw, bytes(buf[off + 4:off + alen]), alen, rem))
        step = align(alen)
        off += step
        rem -= step
    return out, rem


def _parse_flow_nlattrs(buf, a, attrs, log, nz):
    """__parse_flow_nlattrs(): fills a[] and returns the updated attrs bitmap."""
    items, rem = _walk(buf)
    for raw, payload, _alen, _rem in items:
        t = raw & _TYPE_MASK
        if t > OVS_KEY_ATTR_MAX:
            raise _err(log, f"Key type {t} is out of range max {OVS_KEY_ATTR_MAX}")
        expected = _KEY.length(t)
        if expected is None:                    # userspace-only types
            raise _err(log, f"Key type {t} is not supported")
        if attrs & _bit(t):
            raise _err(log, f"Duplicate key (type {t}).")
        if expected not in (_NESTED, _VARIABLE) and len(payload) != expected:
            raise _err(log, f"Key {t} has unexpected len {len(payload)} expected {expected}")
        if not nz or any(payload):
            attrs |= _bit(t)
            a[t] = payload
    if rem:
        raise _err(log, f"Message has {rem} unknown bytes.")
    return attrs


# ----------------------------------------------------------------- tunnels
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


def _ip_tun_from_nlattr(payload, m, is_mask, log):
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


# -------------------------------------------------------------------- VLAN
def _vlan_name(inner):
    return "C-VLAN" if inner else "VLAN"


def _validate_vlan(m, attrs, inner, a, log):
    """validate_vlan_from_nlattrs(): 0 = not a VLAN, 1 = a VLAN to parse."""
    E, T, V = U.OVS_KEY_ATTR_ENCAP, U.OVS_KEY_ATTR_ETHERTYPE, U.OVS_KEY_ATTR_VLAN
    if not (attrs & _bit(U.OVS_KEY_ATTR_ETHERNET) and attrs & _bit(T)
            and eth_type_vlan(_BE16.unpack(a[T])[0])):
        return 0
    if not (attrs & _bit(V) and attrs & _bit(E)):
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
    if not attrs & _bit(U.OVS_KEY_ATTR_ENCAP):
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
    attrs &= ~(_bit(U.OVS_KEY_ATTR_ENCAP) | _bit(U.OVS_KEY_ATTR_VLAN)
               | _bit(U.OVS_KEY_ATTR_ETHERTYPE))
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
    return attrs & ~_bit(U.OVS_KEY_ATTR_ETHERTYPE)


def _metadata_from_nlattrs(m, attrs, a, is_mask, log):
    """metadata_from_nlattrs(): returns the attrs left to parse."""
    if attrs & _bit(U.OVS_KEY_ATTR_DP_HASH):
        m.put("dp_hash", _U32.unpack(a[U.OVS_KEY_ATTR_DP_HASH])[0], is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_DP_HASH)
    if attrs & _bit(U.OVS_KEY_ATTR_RECIRC_ID):
        m.put("recirc_id", _U32.unpack(a[U.OVS_KEY_ATTR_RECIRC_ID])[0], is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_RECIRC_ID)
    if attrs & _bit(U.OVS_KEY_ATTR_PRIORITY):
        m.put("priority", _U32.unpack(a[U.OVS_KEY_ATTR_PRIORITY])[0], is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_PRIORITY)
    if attrs & _bit(U.OVS_KEY_ATTR_IN_PORT):
        in_port = _U32.unpack(a[U.OVS_KEY_ATTR_IN_PORT])[0]
        if is_mask:
            in_port = 0xFFFFFFFF        # Always exact match in_port.
        elif in_port >= K.DP_MAX_PORTS:
            raise _err(log, f"Port {in_port} exceeds max allowable {K.DP_MAX_PORTS}")
        m.put("in_port", in_port & 0xFFFF, is_mask)     # u16 phy.in_port
        attrs &= ~_bit(U.OVS_KEY_ATTR_IN_PORT)
    elif not is_mask:
        m.put("in_port", K.DP_MAX_PORTS, False)
    if attrs & _bit(U.OVS_KEY_ATTR_SKB_MARK):
        m.put("skb_mark", _U32.unpack(a[U.OVS_KEY_ATTR_SKB_MARK])[0], is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_SKB_MARK)
    if attrs & _bit(U.OVS_KEY_ATTR_TUNNEL):
        try:
            _ip_tun_from_nlattr(a[U.OVS_KEY_ATTR_TUNNEL], m, is_mask, log)
        except NetlinkError as e:
            raise NetlinkError(errno.EINVAL, e.msg) from None
        attrs &= ~_bit(U.OVS_KEY_ATTR_TUNNEL)
    if attrs & _bit(U.OVS_KEY_ATTR_CT_STATE):
        ct_state = _U32.unpack(a[U.OVS_KEY_ATTR_CT_STATE])[0]
        if ct_state & ~CT_SUPPORTED_MASK:
            raise _err(log, f"ct_state flags {ct_state:08x} unsupported")
        m.put("ct_state", ct_state, is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_CT_STATE)
    if attrs & _bit(U.OVS_KEY_ATTR_CT_ZONE):
        m.put("ct_zone", _U16.unpack(a[U.OVS_KEY_ATTR_CT_ZONE])[0], is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_CT_ZONE)
    if attrs & _bit(U.OVS_KEY_ATTR_CT_MARK):
        m.put("ct_mark", _U32.unpack(a[U.OVS_KEY_ATTR_CT_MARK])[0], is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_CT_MARK)
    if attrs & _bit(U.OVS_KEY_ATTR_CT_LABELS):
        m.put("ct_labels", int.from_bytes(a[U.OVS_KEY_ATTR_CT_LABELS], "big"), is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_CT_LABELS)
    if attrs & _bit(U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4):
        src, dst, sport, dport, proto = _CT4.unpack(a[U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4])
        m.put("ct_orig_src", src, is_mask)
        m.put("ct_orig_dst", dst, is_mask)
        m.put("ct_orig_tp_src", sport, is_mask)
        m.put("ct_orig_tp_dst", dport, is_mask)
        m.put("ct_orig_proto", proto, is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4)
    if attrs & _bit(U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6):
        src, dst, sport, dport, proto = _CT6.unpack(a[U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6])
        m.put("ct_orig_src", int.from_bytes(src, "big"), is_mask)
        m.put("ct_orig_dst", int.from_bytes(dst, "big"), is_mask)
        m.put("ct_orig_tp_src", sport, is_mask)
        m.put("ct_orig_tp_dst", dport, is_mask)
        m.put("ct_orig_proto", proto, is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6)

    # For layer 3 packets the Ethernet type is provided and treated as
    # metadata but no MAC addresses are provided.
    no_eth = (not attrs & _bit(U.OVS_KEY_ATTR_ETHERNET)
              and attrs & _bit(U.OVS_KEY_ATTR_ETHERTYPE))
    # Always exact match mac_proto.
    m.put("no_eth", 0xFF if is_mask else (1 if no_eth else 0), is_mask)
    if no_eth:
        attrs = _parse_eth_type(m, attrs, a, is_mask, log)
    return attrs


# --------------------------------------------------------------- key body
def _key_from_nlattrs(m, attrs, a, is_mask, log):
    """ovs_key_from_nlattrs()."""
    attrs = _metadata_from_nlattrs(m, attrs, a, is_mask, log)

    if attrs & _bit(U.OVS_KEY_ATTR_ETHERNET):
        eth = a[U.OVS_KEY_ATTR_ETHERNET]
        m.put("eth_src", int.from_bytes(eth[0:6], "big"), is_mask)
        m.put("eth_dst", int.from_bytes(eth[6:12], "big"), is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_ETHERNET)
        if attrs & _bit(U.OVS_KEY_ATTR_VLAN):
            raise _err(log, "VLAN attribute unexpected.")
        if attrs & _bit(U.OVS_KEY_ATTR_ETHERTYPE):
            attrs = _parse_eth_type(m, attrs, a, is_mask, log)
        elif not is_mask:
            m.put("eth_type", K.ETH_P_802_2, False)
    elif not m.kget("eth_type"):
        raise _err(log, "Either Ethernet header or EtherType is required.")

    if attrs & _bit(U.OVS_KEY_ATTR_IPV4):
        src, dst, proto, tos, ttl, frag = _IPV4.unpack(a[U.OVS_KEY_ATTR_IPV4])
        if not is_mask and frag > U.OVS_FRAG_TYPE_MAX:
            raise _err(log, f"IPv4 frag type {frag} is out of range max {U.OVS_FRAG_TYPE_MAX}")
        m.put("ip_proto", proto, is_mask)
        m.put("ip_tos", tos, is_mask)
        m.put("ip_ttl", ttl, is_mask)
        m.put("ip_frag", frag, is_mask)
        m.put("ipv4_src", src, is_mask)
        m.put("ipv4_dst", dst, is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_IPV4)

    if attrs & _bit(U.OVS_KEY_ATTR_IPV6):
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
        attrs &= ~_bit(U.OVS_KEY_ATTR_IPV6)

    if attrs & _bit(U.OVS_KEY_ATTR_IPV6_EXTHDRS):
        m.put("ipv6_exthdrs", _U16.unpack(a[U.OVS_KEY_ATTR_IPV6_EXTHDRS])[0], is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_IPV6_EXTHDRS)

    if attrs & _bit(U.OVS_KEY_ATTR_ARP):
        sip, tip, op, sha, tha = _ARP.unpack(a[U.OVS_KEY_ATTR_ARP])
        if not is_mask and op & 0xFF00:
            raise _err(log, f"Unknown ARP opcode (opcode={op}).")
        m.put("ipv4_src", sip, is_mask)
        m.put("ipv4_dst", tip, is_mask)
        m.put("ip_proto", op, is_mask)          # u8: the low byte of the opcode
        m.put("arp_sha", int.from_bytes(sha, "big"), is_mask)
        m.put("arp_tha", int.from_bytes(tha, "big"), is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_ARP)

    if attrs & _bit(U.OVS_KEY_ATTR_NSH):
        raise _err(log, "ovsdp does not implement NSH flow keys yet", errno.EOPNOTSUPP)

    if attrs & _bit(U.OVS_KEY_ATTR_MPLS):
        p = a[U.OVS_KEY_ATTR_MPLS]
        count = len(p) // 4
        if count == 0 or count > MPLS_LABEL_DEPTH or len(p) % 4:
            raise _err(log, f"MPLS key has invalid length {len(p)} "
                            f"(1..{MPLS_LABEL_DEPTH} labels of 4 bytes)")
        for i in range(count):
            m.put(f"mpls_lse{i}", _BE32.unpack_from(p, 4 * i)[0], is_mask)
        m.put("mpls_labels", (1 << count) - 1, is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_MPLS)

    if attrs & _bit(U.OVS_KEY_ATTR_TCP):
        sport, dport = _TP.unpack(a[U.OVS_KEY_ATTR_TCP])
        m.put("tp_src", sport, is_mask)
        m.put("tp_dst", dport, is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_TCP)

    if attrs & _bit(U.OVS_KEY_ATTR_TCP_FLAGS):
        m.put("tcp_flags", _BE16.unpack(a[U.OVS_KEY_ATTR_TCP_FLAGS])[0], is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_TCP_FLAGS)

    for t in (U.OVS_KEY_ATTR_UDP, U.OVS_KEY_ATTR_SCTP):
        if attrs & _bit(t):
            sport, dport = _TP.unpack(a[t])
            m.put("tp_src", sport, is_mask)
            m.put("tp_dst", dport, is_mask)
            attrs &= ~_bit(t)

    for t in (U.OVS_KEY_ATTR_ICMP, U.OVS_KEY_ATTR_ICMPV6):
        if attrs & _bit(t):
            p = a[t]
            m.put("tp_src", p[0], is_mask)      # htons(type) in a __be16
            m.put("tp_dst", p[1], is_mask)
            attrs &= ~_bit(t)

    if attrs & _bit(U.OVS_KEY_ATTR_ND):
        target, sll, tll = _ND.unpack(a[U.OVS_KEY_ATTR_ND])
        m.put("nd_target", int.from_bytes(target, "big"), is_mask)
        m.put("nd_sll", int.from_bytes(sll, "big"), is_mask)
        m.put("nd_tll", int.from_bytes(tll, "big"), is_mask)
        attrs &= ~_bit(U.OVS_KEY_ATTR_ND)

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
        inner = table.next(t)
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
def _match_validate(m, key_attrs, mask_attrs, log):
    """match_validate(): required key attributes and allowed mask attributes."""
    A = U
    key_expected = 0
    mask_allowed = key_attrs
    mask_allowed &= ~(_bit(A.OVS_KEY_ATTR_IPV4) | _bit(A.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4)
                      | _bit(A.OVS_KEY_ATTR_IPV6) | _bit(A.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6)
                      | _bit(A.OVS_KEY_ATTR_TCP) | _bit(A.OVS_KEY_ATTR_TCP_FLAGS)
                      | _bit(A.OVS_KEY_ATTR_UDP) | _bit(A.OVS_KEY_ATTR_SCTP)
                      | _bit(A.OVS_KEY_ATTR_ICMP) | _bit(A.OVS_KEY_ATTR_ICMPV6)
                      | _bit(A.OVS_KEY_ATTR_ARP) | _bit(A.OVS_KEY_ATTR_ND)
                      | _bit(A.OVS_KEY_ATTR_MPLS) | _bit(A.OVS_KEY_ATTR_NSH))
    mask_allowed |= (_bit(A.OVS_KEY_ATTR_TUNNEL) | _bit(A.OVS_KEY_ATTR_IN_PORT)
                     | _bit(A.OVS_KEY_ATTR_ETHERTYPE))
    has_mask = m.mask is not None
    eth_type = m.kget("eth_type")
    eth_exact = has_mask and m.mget("eth_type") == 0xFFFF
    proto_exact = has_mask and m.mget("ip_proto") == 0xFF
    proto = m.kget("ip_proto")

    if eth_type in (K.ETH_P_ARP, K.ETH_P_RARP):
        key_expected |= _bit(A.OVS_KEY_ATTR_ARP)
        if eth_exact:
            mask_allowed |= _bit(A.OVS_KEY_ATTR_ARP)

    if eth_p_mpls(eth_type):
        key_expected |= _bit(A.OVS_KEY_ATTR_MPLS)
        if eth_exact:
            mask_allowed |= _bit(A.OVS_KEY_ATTR_MPLS)

    if eth_type in (K.ETH_P_IP, K.ETH_P_IPV6):
        v6 = eth_type == K.ETH_P_IPV6
        l3 = A.OVS_KEY_ATTR_IPV6 if v6 else A.OVS_KEY_ATTR_IPV4
        ct = A.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6 if v6 else A.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4
        key_expected |= _bit(l3)
        if eth_exact:
            mask_allowed |= _bit(l3) | _bit(ct)
        if m.kget("ip_frag") != U.OVS_FRAG_TYPE_LATER:
            if proto == IPPROTO_UDP:
                key_expected |= _bit(A.OVS_KEY_ATTR_UDP)
                if proto_exact:
                    mask_allowed |= _bit(A.OVS_KEY_ATTR_UDP)
            if proto == IPPROTO_SCTP:
                key_expected |= _bit(A.OVS_KEY_ATTR_SCTP)
                if proto_exact:
                    mask_allowed |= _bit(A.OVS_KEY_ATTR_SCTP)
            if proto == IPPROTO_TCP:
                key_expected |= _bit(A.OVS_KEY_ATTR_TCP) | _bit(A.OVS_KEY_ATTR_TCP_FLAGS)
                if proto_exact:
                    mask_allowed |= _bit(A.OVS_KEY_ATTR_TCP) | _bit(A.OVS_KEY_ATTR_TCP_FLAGS)
            if not v6 and proto == IPPROTO_ICMP:
                key_expected |= _bit(A.OVS_KEY_ATTR_ICMP)
                if proto_exact:
                    mask_allowed |= _bit(A.OVS_KEY_ATTR_ICMP)
            if v6 and proto == IPPROTO_ICMPV6:
                key_expected |= _bit(A.OVS_KEY_ATTR_ICMPV6)
                if proto_exact:
                    mask_allowed |= _bit(A.OVS_KEY_ATTR_ICMPV6)
                if m.kget("tp_src") in (NDISC_NEIGHBOUR_SOLICITATION,
                                        NDISC_NEIGHBOUR_ADVERTISEMENT):
                    key_expected |= _bit(A.OVS_KEY_ATTR_ND)
                    # The kernel's ct original tuple shares the ND fields'
                    # space: both are not allowed at the same time.
                    mask_allowed &= ~_bit(A.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6)
                    if has_mask and m.mget("tp_src") == 0xFF:
                        mask_allowed |= _bit(A.OVS_KEY_ATTR_ND)

    if eth_type == K.ETH_P_NSH:
        key_expected |= _bit(A.OVS_KEY_ATTR_NSH)
        if eth_exact:
            mask_allowed |= _bit(A.OVS_KEY_ATTR_NSH)

    if key_attrs & key_expected != key_expected:
        raise _err(log, f"Missing key (keys={key_attrs:x}, expected={key_expected:x})")
    if mask_attrs & mask_allowed != mask_attrs:
        raise _err(log, f"Unexpected mask (mask={mask_attrs:x}, allowed={mask_allowed:x})")


# --------------------------------------------------------------- the API
def _get_match(key_attrs, mask_attrs, log, want_mask):
    m = _Match(want_mask)
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
    its ``eth_type``); ``attrs_seen`` is the set of top-level OVS_KEY_ATTR_*
    types present, which ovs_flow_key_extract_userspace() needs after
    extraction (a CT_ORIG_TUPLE_IPV4 needs an IPv4 packet, a
    CT_ORIG_TUPLE_IPV6 an IPv6 packet that is not ND: EINVAL otherwise).
    """
    a = {}
    attrs = _parse_flow_nlattrs(key_attrs, a, 0, log, False)
    m = _Match(False)
    m.put("in_port", K.DP_MAX_PORTS, False)
    _metadata_from_nlattrs(m, attrs, a, False, log)
    seen = {t for t in range(OVS_KEY_ATTR_MAX + 1) if attrs & _bit(t)}
    return m.key, seen


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
    if U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4 in attrs_seen and \
            _get(key, "eth_type") != K.ETH_P_IP:
        raise _err(log, "CT_ORIG_TUPLE_IPV4 given for a packet that is not IPv4")
    if U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6 in attrs_seen and \
            (_get(key, "eth_type") != K.ETH_P_IPV6 or is_nd(key)):
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


# ---------------------------------------------------------------- put_key
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


def put_key(key, output, is_mask):
    """__ovs_nla_put_key(): the OVS_KEY_ATTR_* stream for ``output``.

    ``key`` (the kernel's ``swkey``) decides which attributes appear and how
    they nest; the values come from ``output``: the key itself, or the mask
    with ``is_mask``.  Returns the attributes without the enclosing
    OVS_FLOW_ATTR_KEY/MASK or OVS_PACKET_ATTR_KEY nest.
    """
    g = _get
    top = [nla_u32(U.OVS_KEY_ATTR_RECIRC_ID, g(output, "recirc_id")),
           nla_u32(U.OVS_KEY_ATTR_DP_HASH, g(output, "dp_hash")),
           nla_u32(U.OVS_KEY_ATTR_PRIORITY, g(output, "priority"))]
    sw_tun_proto = g(key, "tun_proto")
    if sw_tun_proto or is_mask:
        top.append(nla_nest(U.OVS_KEY_ATTR_TUNNEL,
                            _ip_tun_to_nlattr(output, g(key, "tun_opts_len"), sw_tun_proto)))
    out_in_port = g(output, "in_port") & 0xFFFF
    if g(key, "in_port") == K.DP_MAX_PORTS:
        if is_mask and out_in_port == 0xFFFF:
            top.append(nla_u32(U.OVS_KEY_ATTR_IN_PORT, 0xFFFFFFFF))
    else:
        upper = 0xFFFF if is_mask else 0
        top.append(nla_u32(U.OVS_KEY_ATTR_IN_PORT, (upper << 16) | out_in_port))
    top.append(nla_u32(U.OVS_KEY_ATTR_SKB_MARK, g(output, "skb_mark")))

    # ovs_ct_put_key()
    top.append(nla_u32(U.OVS_KEY_ATTR_CT_STATE, g(output, "ct_state")))
    top.append(nla_u16(U.OVS_KEY_ATTR_CT_ZONE, g(output, "ct_zone")))
    top.append(nla_u32(U.OVS_KEY_ATTR_CT_MARK, g(output, "ct_mark")))
    top.append(nla(U.OVS_KEY_ATTR_CT_LABELS, g(output, "ct_labels").to_bytes(16, "big")))
    sw_eth_type = g(key, "eth_type")
    if g(key, "ct_orig_proto"):
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
    if not g(key, "no_eth"):
        cur.append(nla(U.OVS_KEY_ATTR_ETHERNET, g(output, "eth_src").to_bytes(6, "big")
                       + g(output, "eth_dst").to_bytes(6, "big")))
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

    cur.append(nla_be16(U.OVS_KEY_ATTR_ETHERTYPE, g(output, "eth_type")))

    if eth_type_vlan(sw_eth_type):
        # A third VLAN tag: nothing more is known about the packet.
        return

    if sw_eth_type == K.ETH_P_IP:
        cur.append(nla(U.OVS_KEY_ATTR_IPV4, _IPV4.pack(
            g(output, "ipv4_src"), g(output, "ipv4_dst"), g(output, "ip_proto"),
            g(output, "ip_tos"), g(output, "ip_ttl"), g(output, "ip_frag"))))
    elif sw_eth_type == K.ETH_P_IPV6:
        cur.append(nla(U.OVS_KEY_ATTR_IPV6, _IPV6.pack(
            g(output, "ipv6_src").to_bytes(16, "big"), g(output, "ipv6_dst").to_bytes(16, "big"),
            g(output, "ipv6_label"), g(output, "ip_proto"), g(output, "ip_tos"),
            g(output, "ip_ttl"), g(output, "ip_frag"))))
        cur.append(nla_u16(U.OVS_KEY_ATTR_IPV6_EXTHDRS, g(output, "ipv6_exthdrs")))
    elif sw_eth_type == K.ETH_P_NSH:
        # ovsdp keys carry no NSH fields (NSH keys are refused by get_match).
        pass
    elif sw_eth_type in (K.ETH_P_ARP, K.ETH_P_RARP):
        cur.append(nla(U.OVS_KEY_ATTR_ARP, _ARP.pack(
            g(output, "ipv4_src"), g(output, "ipv4_dst"), g(output, "ip_proto"),
            g(output, "arp_sha").to_bytes(6, "big"), g(output, "arp_tha").to_bytes(6, "big"))))
    elif eth_p_mpls(sw_eth_type):
        n = min(_popcount(g(output, "mpls_labels")), MPLS_LABEL_DEPTH)
        cur.append(nla(U.OVS_KEY_ATTR_MPLS, b"".join(
            _BE32.pack(g(output, f"mpls_lse{i}")) for i in range(n))))

    if (sw_eth_type in (K.ETH_P_IP, K.ETH_P_IPV6)
            and g(key, "ip_frag") != U.OVS_FRAG_TYPE_LATER):
        proto = g(key, "ip_proto")
        if proto == IPPROTO_TCP:
            cur.append(nla(U.OVS_KEY_ATTR_TCP, _TP.pack(g(output, "tp_src"), g(output, "tp_dst"))))
            cur.append(nla_be16(U.OVS_KEY_ATTR_TCP_FLAGS, g(output, "tcp_flags")))
        elif proto == IPPROTO_UDP:
            cur.append(nla(U.OVS_KEY_ATTR_UDP, _TP.pack(g(output, "tp_src"), g(output, "tp_dst"))))
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


# ----------------------------------------------------------------- actions
class Userspace:
    """The validated OVS_ACTION_ATTR_USERSPACE argument.

    ``raw`` is the attribute's payload as given, which the kernel copies and
    puts back verbatim when it dumps the action; it takes no part in
    comparisons.
    """

    __slots__ = ("pid", "userdata", "egress_tun_port", "actions", "raw")

    def __init__(self, pid, userdata, egress_tun_port, actions, raw=None):
        self.pid = pid
        self.userdata = userdata
        self.egress_tun_port = egress_tun_port
        self.actions = actions
        self.raw = raw

    def _fields(self):
        return (self.pid, self.userdata, self.egress_tun_port, self.actions)

    def __eq__(self, other):
        return isinstance(other, Userspace) and self._fields() == other._fields()

    def __hash__(self):
        return hash(self._fields())

    def __repr__(self):
        return "Userspace(pid=%r, userdata=%r, egress_tun_port=%r, actions=%r)" % self._fields()


# An ActionList is a tuple of (OVS_ACTION_ATTR_* type, argument) pairs.
ActionList = tuple

# action_lens[] (uapi/attrs.py): absent types (UNSPEC) are 0.
_ACTION = ATTRS.ACTION

_USERSPACE_POLICY = {
    U.OVS_USERSPACE_ATTR_PID: Policy(U32),
    U.OVS_USERSPACE_ATTR_USERDATA: Policy(UNSPEC),
    U.OVS_USERSPACE_ATTR_EGRESS_TUN_PORT: Policy(U32),
}
_CPL_POLICY = {
    U.OVS_CHECK_PKT_LEN_ATTR_PKT_LEN: Policy(U16),
    U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_GREATER: Policy(NESTED),
    U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_LESS_EQUAL: Policy(NESTED),
}

_PSAMPLE_POLICY = {
    U.OVS_PSAMPLE_ATTR_GROUP: Policy(U32),
    U.OVS_PSAMPLE_ATTR_COOKIE: Policy(BINARY, U.OVS_PSAMPLE_COOKIE_MAX_SIZE),
}

_ACTION_NAMES = {v: k[len("OVS_ACTION_ATTR_"):] for k, v in vars(U).items()
                 if k.startswith("OVS_ACTION_ATTR_") and k != "OVS_ACTION_ATTR_MAX"}


def _not_implemented(t, log):
    return _err(log, f"ovsdp does not implement the {_ACTION_NAMES.get(t, t)} action yet",
                errno.EOPNOTSUPP)


# tun_p_from_eth_p(): what NSH can carry next when there is no Ethernet header
_TUN_P_ETH_TYPES = (K.ETH_P_IP, K.ETH_P_IPV6, K.ETH_P_NSH, K.ETH_P_MPLS_UC, K.ETH_P_TEB)
NSH_M_TYPE1, NSH_M_TYPE2 = 1, 2
NSH_CTX_HDRS_MAX_LEN = 248


def _validate_push_nsh(payload, log):
    """validate_nsh(is_push_nsh): nsh_key_put_from_nlattr()'s checks; EINVAL if not.

    The action holds one attribute (OVS_KEY_ATTR_NSH) whose payload is the
    NSH key: a base header and MD type 1 or 2 context matching its mdtype.
    """
    if len(payload) < 4:
        raise _err(log, "push_nsh needs an NSH key attribute")
    alen = _NLA.unpack_from(payload)[0]
    if alen < 4 or alen > len(payload):
        raise _err(log, "push_nsh: bad NSH key attribute")
    items, rem = _walk(payload[4:alen])
    mdtype = None
    has = set()
    for raw, p, _alen, _rem in items:
        t = raw & _TYPE_MASK
        if t > U.OVS_NSH_KEY_ATTR_MAX:
            raise _err(log, f"nsh attr {t} is out of range max {U.OVS_NSH_KEY_ATTR_MAX}")
        want = _NSH_KEY.length(t)
        if want is not _VARIABLE and len(p) != want:
            raise _err(log, f"nsh attr {t} has unexpected len {len(p)} expected {want}")
        if t == U.OVS_NSH_KEY_ATTR_BASE:
            mdtype = p[2]
        elif t == U.OVS_NSH_KEY_ATTR_MD2:
            if not 0 < len(p) <= NSH_CTX_HDRS_MAX_LEN:
                raise _err(log, f"Invalid MD length {len(p)} for MD type {mdtype}")
        elif t != U.OVS_NSH_KEY_ATTR_MD1:
            raise _err(log, f"Unknown nsh attribute {t}")
        has.add(t)
    if rem > 0:
        raise _err(log, f"nsh attribute has {rem} unknown bytes.")
    md1, md2 = U.OVS_NSH_KEY_ATTR_MD1 in has, U.OVS_NSH_KEY_ATTR_MD2 in has
    if md1 and md2:
        raise _err(log, "invalid nsh attribute: md1 and md2 are exclusive.")
    if (md1 and mdtype != NSH_M_TYPE1) or (md2 and mdtype != NSH_M_TYPE2):
        raise _err(log, f"nsh attribute has unmatched MD type {mdtype}.")
    if U.OVS_NSH_KEY_ATTR_BASE not in has or not (md1 or md2):
        raise _err(log, "push_nsh: missing base or metadata attributes")


def _validate_psample(payload, log):
    """validate_psample(): a u32 group is required, a cookie of at most 16 bytes."""
    a = _parse_deprecated_strict(payload, U.OVS_PSAMPLE_ATTR_MAX, _PSAMPLE_POLICY, log,
                                 "psample action")
    if U.OVS_PSAMPLE_ATTR_GROUP not in a:
        raise _err(log, "psample action needs OVS_PSAMPLE_ATTR_GROUP")


def _parse_deprecated_strict(payload, maxtype, policy, log, what):
    """nla_parse_deprecated_strict(): unknown types and trailing bytes are errors."""
    tb = {}
    items, rem = _walk(payload)
    for raw, p, _alen, _rem in items:
        t = raw & _TYPE_MASK
        if t == 0 or t > maxtype:
            raise _err(log, f"{what}: Unknown attribute type {t}")
        pt = policy.get(t)
        if pt is not None:
            validate_nla(t, p, pt, None)
        tb[t] = p
    if rem > 0:
        raise _err(log, f"{what}: bytes leftover after parsing attributes")
    return tb


def _validate_userspace(payload, log):
    a = _parse_deprecated_strict(payload, U.OVS_USERSPACE_ATTR_MAX, _USERSPACE_POLICY, log,
                                 "userspace action")
    pid = a.get(U.OVS_USERSPACE_ATTR_PID)
    if pid is None or not _U32.unpack_from(pid)[0]:
        raise _err(log, "userspace action needs a non-zero OVS_USERSPACE_ATTR_PID")
    port = a.get(U.OVS_USERSPACE_ATTR_EGRESS_TUN_PORT)
    return Userspace(_U32.unpack_from(pid)[0], a.get(U.OVS_USERSPACE_ATTR_USERDATA),
                     _U32.unpack_from(port)[0] if port is not None else None,
                     U.OVS_USERSPACE_ATTR_ACTIONS in a, bytes(payload))


def _validate_geneve_opts(opts, log):
    """validate_geneve_opts(): True when an option has the critical bit."""
    crit = False
    off = 0
    n = len(opts)
    while n - off > 0:
        if n - off < 4:
            raise _err(log, "Geneve option header truncated")
        length = 4 + (opts[off + 3] & 0x1F) * 4
        if length > n - off:
            raise _err(log, "Geneve option length exceeds the options")
        crit |= bool(opts[off + 2] & GENEVE_CRIT_OPT_TYPE)
        off += length
    return crit


def _validate_and_copy_set_tun(payload, log):
    """validate_and_copy_set_tun(): the set(tunnel(...)) TunnelInfo."""
    m = _Match(False)
    opts_type = _ip_tun_from_nlattr(payload, m, False, log)
    key = m.key & _ALL_TUN_MASK
    opts_len = _get(key, "tun_opts_len")
    if opts_len:
        # only tun_opts_len bytes of options are kept
        s, _w = _FIELD["tun_opts"]
        opts = _get(key, "tun_opts") & ((1 << (8 * opts_len)) - 1)
        key = (key & ~K.ones("tun_opts")) | (opts << s)
        if opts_type == U.OVS_TUNNEL_KEY_ATTR_GENEVE_OPTS:
            if _validate_geneve_opts(opts.to_bytes(opts_len, "big"), log):
                key |= TUN_F_CRIT_OPT << _FIELD["tun_flags"][0]
    return TunnelInfo(key)


def _validate_masked(data, key_len):
    for i in range(key_len):
        if data[i] & ~data[key_len + i] & 0xFF:
            return False
    return True


def _validate_set(payload, key, mac_proto_none, eth_type, masked, log):
    """validate_set(): returns the ActionList entry."""
    what = "set_masked" if masked else "set"
    n = len(payload)
    if n < 4:
        raise _err(log, f"{what} action needs exactly one key attribute")
    klen, kraw = _NLA.unpack_from(payload, 0)
    if klen < 4 or klen > n or align(klen) != n:
        raise _err(log, f"{what} action needs exactly one key attribute")
    key_type = kraw & _TYPE_MASK
    data = payload[4:klen]
    key_len = len(data)
    if masked:
        key_len //= 2
    if key_type > OVS_KEY_ATTR_MAX:
        raise _err(log, f"{what} action: key type {key_type} out of range")
    expected = _KEY.length(key_type) or 0
    if expected not in (_NESTED, _VARIABLE) and key_len != expected:
        raise _err(log, f"{what} action: key {key_type} has unexpected len {key_len} "
                        f"expected {expected}")
    if masked and not _validate_masked(data, key_len):
        raise _err(log, "Set action: key bits outside the mask must be zero")

    A = U
    ip_eth = eth_type in (K.ETH_P_IP, K.ETH_P_IPV6)
    if key_type in (A.OVS_KEY_ATTR_PRIORITY, A.OVS_KEY_ATTR_SKB_MARK,
                    A.OVS_KEY_ATTR_CT_MARK, A.OVS_KEY_ATTR_CT_LABELS):
        pass
    elif key_type == A.OVS_KEY_ATTR_ETHERNET:
        if mac_proto_none:
            raise _err(log, "set(eth) on a packet without Ethernet header")
    elif key_type == A.OVS_KEY_ATTR_TUNNEL:
        if masked:
            raise _err(log, "Masked tunnel set is not supported")
        return (A.OVS_ACTION_ATTR_SET, _validate_and_copy_set_tun(data, log))
    elif key_type == A.OVS_KEY_ATTR_IPV4:
        if eth_type != K.ETH_P_IP:
            raise _err(log, f"set(ipv4) on a flow with eth_type {eth_type:#06x}")
        _s, _d, proto, _tos, _ttl, frag = _IPV4.unpack_from(data)
        if masked:
            _s, _d, mproto, _tos, _ttl, mfrag = _IPV4.unpack_from(data, key_len)
            if mproto or mfrag:
                raise _err(log, "set(ipv4): the protocol and frag fields are not writable")
        else:
            if proto != _get(key, "ip_proto"):
                raise _err(log, "set(ipv4) may not change the IP protocol")
            if frag != _get(key, "ip_frag"):
                raise _err(log, "set(ipv4) may not change the frag type")
    elif key_type == A.OVS_KEY_ATTR_IPV6:
        if eth_type != K.ETH_P_IPV6:
            raise _err(log, f"set(ipv6) on a flow with eth_type {eth_type:#06x}")
        _s, _d, label, proto, _tc, _hl, frag = _IPV6.unpack_from(data)
        if masked:
            _s, _d, mlabel, mproto, _tc, _hl, mfrag = _IPV6.unpack_from(data, key_len)
            if mproto or mfrag:
                raise _err(log, "set(ipv6): the protocol and frag fields are not writable")
            if mlabel & 0xFFF00000:
                raise _err(log, "set(ipv6): flow label mask has bits above 20")
        else:
            if proto != _get(key, "ip_proto"):
                raise _err(log, "set(ipv6) may not change the IP protocol")
            if frag != _get(key, "ip_frag"):
                raise _err(log, "set(ipv6) may not change the frag type")
        if label & 0xFFF00000:
            raise _err(log, f"set(ipv6): flow label {label:#x} is out of range")
    elif key_type in (A.OVS_KEY_ATTR_TCP, A.OVS_KEY_ATTR_UDP, A.OVS_KEY_ATTR_SCTP):
        want = {A.OVS_KEY_ATTR_TCP: IPPROTO_TCP, A.OVS_KEY_ATTR_UDP: IPPROTO_UDP,
                A.OVS_KEY_ATTR_SCTP: IPPROTO_SCTP}[key_type]
        if not ip_eth or _get(key, "ip_proto") != want:
            raise _err(log, f"set of L4 key {key_type} does not match the flow's protocol")
    elif key_type == A.OVS_KEY_ATTR_MPLS:
        if not eth_p_mpls(eth_type):
            raise _err(log, f"set(mpls) on a flow with eth_type {eth_type:#06x}")
        # Only the top label stack entry can be set.  The kernel's length
        # table says "variable" for MPLS and its set_mpls() then reads one
        # ovs_key_mpls and its mask whatever the length; ovsdp takes exactly one.
        if key_len != U.OVS_KEY_MPLS.size:
            raise _err(log, f"{what}(mpls) key has length {key_len}, expected "
                            f"{U.OVS_KEY_MPLS.size}")
    elif key_type == A.OVS_KEY_ATTR_NSH:
        if eth_type != K.ETH_P_NSH:
            raise _err(log, f"set(nsh) on a flow with eth_type {eth_type:#06x}")
        raise _err(log, "ovsdp does not implement set(nsh) yet", errno.EOPNOTSUPP)
    else:
        raise _err(log, f"key type {key_type} cannot be set")

    value = bytes(data[:key_len])
    if masked:
        mask = bytes(data[key_len:2 * key_len])
    else:
        # Non-masked set actions become masked ones with an all-ones mask.
        mask = bytearray(b"\xff" * key_len)
        if key_type == A.OVS_KEY_ATTR_IPV6:
            # clear the non-writable bits of the flow label
            mask[32:36] = _BE32.pack(0x000FFFFF)
        mask = bytes(mask)
    return (A.OVS_ACTION_ATTR_SET_MASKED if masked else A.OVS_ACTION_ATTR_SET_TO_MASKED,
            (key_type, value, mask))


class _State:
    """The values __ovs_nla_copy_actions() threads through a list."""

    __slots__ = ("eth_type", "vlan_tci", "mpls_label_count", "sfa")

    def __init__(self, eth_type, vlan_tci, mpls_label_count, sfa):
        self.eth_type = eth_type
        self.vlan_tci = vlan_tci
        self.mpls_label_count = mpls_label_count
        self.sfa = sfa

    def reserve(self, n, log):
        """reserve_sfa_size(): ``n`` more bytes of the kernel's copy of the list.

        The kernel keeps the validated list as netlink attributes in a
        struct sw_flow_actions (a 28-byte header, then the actions) of at
        most MAX_ACTIONS_BUFSIZE bytes; a list whose copy would not fit is
        EMSGSIZE.  ``sfa`` is a one-item list shared by every nesting level.
        """
        used = self.sfa[0] + n
        if _SFA_HEADER + used > MAX_ACTIONS_BUFSIZE:
            raise _err(log, f"Flow action size exceeds max {MAX_ACTIONS_BUFSIZE}",
                       errno.EMSGSIZE)
        self.sfa[0] = used


def _copy_sample(payload, key, st, log, depth):
    attrs = {}
    items, rem = _walk(payload)
    for raw, p, _alen, _rem in items:
        t = raw & _TYPE_MASK
        if not t or t > U.OVS_SAMPLE_ATTR_MAX or t in attrs:
            raise _err(log, f"sample action: invalid or duplicate attribute {t}")
        attrs[t] = p
    if rem:
        raise _err(log, f"sample action has {rem} unknown bytes")
    prob = attrs.get(U.OVS_SAMPLE_ATTR_PROBABILITY)
    if prob is None or len(prob) != 4:
        raise _err(log, "sample action needs a u32 probability")
    acts = attrs.get(U.OVS_SAMPLE_ATTR_ACTIONS)
    if acts is None or (len(acts) and len(acts) < 4):
        raise _err(log, "sample action needs an actions attribute")
    st.reserve(_NEST_HDR + _SAMPLE_ARG, log)
    nested = _copy_actions(acts, key, st.eth_type, st.vlan_tci, st.mpls_label_count, log,
                           depth + 1, st.sfa)
    return (_U32.unpack(prob)[0], nested)


def _copy_dec_ttl(payload, key, st, log, depth):
    attrs = {}
    items, rem = _walk(payload)
    for raw, p, _alen, _rem in items:
        t = raw & _TYPE_MASK
        if t > U.OVS_DEC_TTL_ATTR_MAX:
            continue            # ignored, to be future proof
        if not t or t in attrs:
            raise _err(log, f"Duplicate or invalid key (type {t}).")
        attrs[t] = p
    if rem:
        raise _err(log, f"Message has {rem} unknown bytes.")
    acts = attrs.get(U.OVS_DEC_TTL_ATTR_ACTION)
    if acts is None or (len(acts) and len(acts) < 4):
        raise _err(log, "Missing valid actions attribute.")
    st.reserve(2 * _NEST_HDR, log)
    return _copy_actions(acts, key, st.eth_type, st.vlan_tci, st.mpls_label_count, log,
                         depth + 1, st.sfa)


def _copy_check_pkt_len(payload, key, st, log, depth):
    a = _parse_deprecated_strict(payload, U.OVS_CHECK_PKT_LEN_ATTR_MAX, _CPL_POLICY, log,
                                 "check_pkt_len action")
    pl = a.get(U.OVS_CHECK_PKT_LEN_ATTR_PKT_LEN)
    if pl is None or not _U16.unpack_from(pl)[0]:
        raise _err(log, "check_pkt_len action needs a non-zero packet length")
    le = a.get(U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_LESS_EQUAL)
    gt = a.get(U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_GREATER)
    if gt is None or le is None:
        raise _err(log, "check_pkt_len action needs both nested action lists")
    st.reserve(_NEST_HDR + _CPL_ARG + _NEST_HDR, log)
    acts_le = _copy_actions(le, key, st.eth_type, st.vlan_tci, st.mpls_label_count, log,
                            depth + 1, st.sfa)
    st.reserve(_NEST_HDR, log)
    acts_gt = _copy_actions(gt, key, st.eth_type, st.vlan_tci, st.mpls_label_count, log,
                            depth + 1, st.sfa)
    return (_U16.unpack_from(pl)[0], acts_gt, acts_le)


_PUSH_MPLS_ETH_TYPES = (K.ETH_P_IP, K.ETH_P_IPV6, K.ETH_P_ARP, K.ETH_P_RARP)
# actions the kernel stores in a form of its own (skip_copy), sized where they are handled
_REWRITTEN = frozenset((U.OVS_ACTION_ATTR_SET, U.OVS_ACTION_ATTR_SAMPLE,
                        U.OVS_ACTION_ATTR_CLONE, U.OVS_ACTION_ATTR_CHECK_PKT_LEN,
                        U.OVS_ACTION_ATTR_DEC_TTL))


def _copy_actions(buf, key, eth_type, vlan_tci, mpls_label_count, log, depth, sfa):
    """__ovs_nla_copy_actions()."""
    mac_proto_none = bool(_get(key, "no_eth"))
    if depth > OVS_COPY_ACTIONS_MAX_DEPTH:
        raise _err(log, f"Actions nested deeper than {OVS_COPY_ACTIONS_MAX_DEPTH} levels",
                   errno.EOVERFLOW)
    st = _State(eth_type, vlan_tci, mpls_label_count, sfa)
    out = []
    A = U
    items, rem = _walk(buf)
    for raw, p, alen, rem_before in items:
        t = raw & _TYPE_MASK
        if t > OVS_ACTION_ATTR_MAX:
            raise _err(log, f"Unknown Action type {t}")
        expected = _ACTION.length(t)
        if expected is not _VARIABLE and len(p) != expected:
            raise _err(log, f"Action {_ACTION_NAMES.get(t, t)} has unexpected len {len(p)} "
                            f"expected {expected}")
        is_last = alen == rem_before        # nla_is_last()

        if t == A.OVS_ACTION_ATTR_UNSPEC:
            raise _err(log, "Unknown Action type 0")
        elif t == A.OVS_ACTION_ATTR_USERSPACE:
            out.append((t, _validate_userspace(p, log)))
        elif t == A.OVS_ACTION_ATTR_OUTPUT:
            port = _U32.unpack(p)[0]
            if port >= K.DP_MAX_PORTS:
                raise _err(log, f"output port {port} exceeds max allowable {K.DP_MAX_PORTS}")
            out.append((t, port))
        elif t == A.OVS_ACTION_ATTR_TRUNC:
            max_len = _U32.unpack(p)[0]
            if max_len < ETH_HLEN:
                raise _err(log, f"trunc max_len {max_len} is less than {ETH_HLEN}")
            out.append((t, max_len))
        elif t == A.OVS_ACTION_ATTR_HASH:
            alg, basis = U.OVS_ACTION_HASH.unpack(p)
            if alg not in (U.OVS_HASH_ALG_L4, U.OVS_HASH_ALG_SYM_L4):
                raise _err(log, f"Unknown hash algorithm {alg}")
            out.append((t, (alg, basis)))
        elif t == A.OVS_ACTION_ATTR_POP_VLAN:
            if mac_proto_none:
                raise _err(log, "pop_vlan on a packet without Ethernet header")
            st.vlan_tci = 0
            out.append((t, None))
        elif t == A.OVS_ACTION_ATTR_PUSH_VLAN:
            if mac_proto_none:
                raise _err(log, "push_vlan on a packet without Ethernet header")
            tpid, tci = U.OVS_ACTION_PUSH_VLAN.unpack(p)
            if not eth_type_vlan(tpid):
                raise _err(log, f"push_vlan TPID {tpid:#06x} is not 802.1Q or 802.1ad")
            if not tci & K.VLAN_CFI_MASK:
                raise _err(log, "push_vlan TCI does not have the VLAN_CFI_MASK bit set")
            st.vlan_tci = tci
            out.append((t, (tpid, tci)))
        elif t == A.OVS_ACTION_ATTR_RECIRC:
            out.append((t, _U32.unpack(p)[0]))
        elif t == A.OVS_ACTION_ATTR_ADD_MPLS:
            lse, ethertype = U.OVS_ACTION_ADD_MPLS.unpack_from(p)
            tun_flags = _U16.unpack_from(p, 6)[0]
            if not eth_p_mpls(ethertype):
                raise _err(log, f"add_mpls ethertype {ethertype:#06x} is not MPLS")
            if tun_flags & U.OVS_MPLS_L3_TUNNEL_FLAG_MASK:
                if (st.vlan_tci & K.VLAN_CFI_MASK
                        or (st.eth_type not in _PUSH_MPLS_ETH_TYPES
                            and not eth_p_mpls(st.eth_type))):
                    raise _err(log, "add_mpls is not allowed on this packet type")
                st.mpls_label_count = (st.mpls_label_count + 1) & 0xFFFFFFFF
            else:
                if not mac_proto_none:
                    st.mpls_label_count = 1
                    mac_proto_none = True
                else:
                    st.mpls_label_count = (st.mpls_label_count + 1) & 0xFFFFFFFF
            st.eth_type = ethertype
            out.append((t, (lse, ethertype, tun_flags)))
        elif t == A.OVS_ACTION_ATTR_PUSH_MPLS:
            lse, ethertype = U.OVS_ACTION_PUSH_MPLS.unpack(p)
            if not eth_p_mpls(ethertype):
                raise _err(log, f"push_mpls ethertype {ethertype:#06x} is not MPLS")
            if (st.vlan_tci & K.VLAN_CFI_MASK
                    or (st.eth_type not in _PUSH_MPLS_ETH_TYPES and not eth_p_mpls(st.eth_type))):
                raise _err(log, "push_mpls is not allowed on this packet type")
            st.eth_type = ethertype
            st.mpls_label_count = (st.mpls_label_count + 1) & 0xFFFFFFFF
            out.append((t, (lse, ethertype)))
        elif t == A.OVS_ACTION_ATTR_POP_MPLS:
            if st.vlan_tci & K.VLAN_CFI_MASK or not eth_p_mpls(st.eth_type):
                raise _err(log, "pop_mpls on a packet that is not MPLS")
            proto = _BE16.unpack(p)[0]
            if proto == K.ETH_P_TEB and not mac_proto_none:
                raise _err(log, "pop_mpls to Ethernet (TEB) on a packet with Ethernet header")
            st.mpls_label_count = (st.mpls_label_count - 1) & 0xFFFFFFFF
            if not eth_p_mpls(proto) or not st.mpls_label_count:
                st.eth_type = 0
            else:
                st.eth_type = proto
            out.append((t, proto))
        elif t == A.OVS_ACTION_ATTR_SET:
            entry = _validate_set(p, key, mac_proto_none, st.eth_type, False, log)
            if entry[0] == A.OVS_ACTION_ATTR_SET:        # tunnel: a tunnel_info pointer
                st.reserve(_NEST_HDR + _TUNNEL_INFO, log)
            else:                                        # widened to key and mask
                st.reserve(_NEST_HDR + align(4 + 2 * len(entry[1][1])), log)
            out.append(entry)
        elif t == A.OVS_ACTION_ATTR_SET_MASKED:
            out.append(_validate_set(p, key, mac_proto_none, st.eth_type, True, log))
        elif t == A.OVS_ACTION_ATTR_SAMPLE:
            out.append((t, _copy_sample(p, key, st, log, depth)))
        elif t == A.OVS_ACTION_ATTR_CT:
            try:
                conntrack.parse_ct(p, _get(key, "eth_type"))   # malformed: the kernel's errno
            except NetlinkError as e:
                raise _err(log, e.msg, e.errno) from None
            raise _not_implemented(t, log)
        elif t == A.OVS_ACTION_ATTR_CT_CLEAR:
            out.append((t, None))
        elif t == A.OVS_ACTION_ATTR_PUSH_ETH:
            if not mac_proto_none:
                raise _err(log, "push_eth on a packet that already has an Ethernet header")
            mac_proto_none = False
            out.append((t, (bytes(p[0:6]), bytes(p[6:12]))))
        elif t == A.OVS_ACTION_ATTR_POP_ETH:
            if mac_proto_none:
                raise _err(log, "pop_eth on a packet without Ethernet header")
            if st.vlan_tci & K.VLAN_CFI_MASK:
                raise _err(log, "pop_eth on a VLAN tagged packet")
            mac_proto_none = True
            out.append((t, None))
        elif t == A.OVS_ACTION_ATTR_PSAMPLE:
            _validate_psample(p, log)        # malformed: EINVAL, as the kernel says
            raise _not_implemented(t, log)
        elif t == A.OVS_ACTION_ATTR_POP_NSH:
            if st.eth_type != K.ETH_P_NSH:
                raise _err(log, f"pop_nsh on a flow with eth_type {st.eth_type:#06x}")
            raise _not_implemented(t, log)
        elif t == A.OVS_ACTION_ATTR_PUSH_NSH:
            if not mac_proto_none or st.eth_type in _TUN_P_ETH_TYPES:
                _validate_push_nsh(p, log)
                raise _not_implemented(t, log)
            raise _err(log, f"push_nsh on a packet of eth_type {st.eth_type:#06x}")
        elif t == A.OVS_ACTION_ATTR_METER:
            # any meter id: a missing meter is ignored when the packet comes
            out.append((t, _U32.unpack(p)[0]))
        elif t == A.OVS_ACTION_ATTR_CLONE:
            if len(p) and len(p) < 4:
                raise _err(log, "clone action payload is not an action list")
            st.reserve(_NEST_HDR + _CLONE_ARG, log)
            out.append((t, _copy_actions(p, key, st.eth_type, st.vlan_tci,
                                         st.mpls_label_count, log, depth + 1, st.sfa)))
        elif t == A.OVS_ACTION_ATTR_CHECK_PKT_LEN:
            out.append((t, _copy_check_pkt_len(p, key, st, log, depth)))
        elif t == A.OVS_ACTION_ATTR_DEC_TTL:
            out.append((t, _copy_dec_ttl(p, key, st, log, depth)))
        elif t == A.OVS_ACTION_ATTR_DROP:
            if not is_last:
                raise _err(log, "drop action must be the last action")
            out.append((t, _U32.unpack(p)[0]))
        else:  # pragma: no cover - every type 0..MAX is handled above
            raise _err(log, f"Unknown Action type {t}")
        if t not in _REWRITTEN:         # copy_action(): kept as it came
            st.reserve(align(alen), log)
    if rem > 0:
        raise _err(log, f"Action list has {rem} unknown bytes.")
    return tuple(out)


def copy_actions(actions, key, log=True):
    """ovs_nla_copy_actions(): validate an action list against the flow key.

    ``actions`` is the payload of OVS_FLOW_ATTR_ACTIONS/OVS_PACKET_ATTR_ACTIONS;
    ``key`` must be the masked flow key (for EXECUTE: the packet's key).
    Returns the ActionList described in docs/architecture.md.
    """
    eth_type = _get(key, "eth_type")
    count = _popcount(_get(key, "mpls_labels")) if eth_p_mpls(eth_type) else 0
    return _copy_actions(actions, key, eth_type, _get(key, "vlan_tci"), count, log, 0, [0])


# ---------------------------------------------------------- put_actions
def _put_userspace(us):
    if us.raw is not None:
        return us.raw
    parts = [nla_u32(U.OVS_USERSPACE_ATTR_PID, us.pid)]
    if us.userdata is not None:
        parts.append(nla(U.OVS_USERSPACE_ATTR_USERDATA, us.userdata))
    if us.egress_tun_port is not None:
        parts.append(nla_u32(U.OVS_USERSPACE_ATTR_EGRESS_TUN_PORT, us.egress_tun_port))
    if us.actions:
        parts.append(nla(U.OVS_USERSPACE_ATTR_ACTIONS))
    return b"".join(parts)


def put_actions(acts):
    """ovs_nla_put_actions(): an ActionList back to its attribute stream.

    As in the kernel, a plain set() that became a masked one is put back as
    set() of the key alone, a tunnel set as set(tunnel(...)), and nested
    lists (sample, clone, check_pkt_len, dec_ttl) in their canonical layout.
    """
    out = []
    for t, arg in acts:
        if t == U.OVS_ACTION_ATTR_OUTPUT or t == U.OVS_ACTION_ATTR_RECIRC \
                or t == U.OVS_ACTION_ATTR_TRUNC or t == U.OVS_ACTION_ATTR_METER \
                or t == U.OVS_ACTION_ATTR_DROP:
            out.append(nla_u32(t, arg))
        elif t == U.OVS_ACTION_ATTR_USERSPACE:
            out.append(nla(t, _put_userspace(arg)))
        elif t == U.OVS_ACTION_ATTR_SET_TO_MASKED:
            key_type, value, _mask = arg
            out.append(nla_nest(U.OVS_ACTION_ATTR_SET, nla(key_type, value)))
        elif t == U.OVS_ACTION_ATTR_SET_MASKED:
            key_type, value, mask = arg
            out.append(nla_nest(t, nla(key_type, value + mask)))
        elif t == U.OVS_ACTION_ATTR_SET:
            out.append(nla_nest(t, nla_nest(U.OVS_KEY_ATTR_TUNNEL, put_tunnel_info(arg))))
        elif t == U.OVS_ACTION_ATTR_PUSH_VLAN:
            out.append(nla(t, U.OVS_ACTION_PUSH_VLAN.pack(*arg)))
        elif t in (U.OVS_ACTION_ATTR_POP_VLAN, U.OVS_ACTION_ATTR_POP_ETH,
                   U.OVS_ACTION_ATTR_CT_CLEAR, U.OVS_ACTION_ATTR_POP_NSH):
            out.append(nla(t))
        elif t == U.OVS_ACTION_ATTR_SAMPLE:
            prob, nested = arg
            out.append(nla_nest(t, nla_u32(U.OVS_SAMPLE_ATTR_PROBABILITY, prob),
                                nla_nest(U.OVS_SAMPLE_ATTR_ACTIONS, put_actions(nested))))
        elif t == U.OVS_ACTION_ATTR_HASH:
            out.append(nla(t, U.OVS_ACTION_HASH.pack(*arg)))
        elif t == U.OVS_ACTION_ATTR_PUSH_MPLS:
            out.append(nla(t, U.OVS_ACTION_PUSH_MPLS.pack(*arg)))
        elif t == U.OVS_ACTION_ATTR_ADD_MPLS:
            lse, ethertype, flags = arg
            out.append(nla(t, U.OVS_ACTION_ADD_MPLS.pack(lse, ethertype)
                           + flags.to_bytes(2, "little")))
        elif t == U.OVS_ACTION_ATTR_POP_MPLS:
            out.append(nla(t, arg.to_bytes(2, "big")))
        elif t == U.OVS_ACTION_ATTR_PUSH_ETH:
            src, dst = arg
            out.append(nla(t, src + dst))
        elif t == U.OVS_ACTION_ATTR_CLONE:
            out.append(nla_nest(t, put_actions(arg)))
        elif t == U.OVS_ACTION_ATTR_CHECK_PKT_LEN:
            pkt_len, gt, le = arg
            out.append(nla_nest(
                t, nla(U.OVS_CHECK_PKT_LEN_ATTR_PKT_LEN, pkt_len.to_bytes(2, "little")),
                nla_nest(U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_GREATER, put_actions(gt)),
                nla_nest(U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_LESS_EQUAL, put_actions(le))))
        elif t == U.OVS_ACTION_ATTR_DEC_TTL:
            out.append(nla_nest(t, nla_nest(U.OVS_DEC_TTL_ATTR_ACTION, put_actions(arg))))
        else:
            raise ValueError(f"cannot put action type {t}")
    return b"".join(out)
