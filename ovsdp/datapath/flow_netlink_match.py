"""What the parsers of flow_netlink share (net/openvswitch/flow_netlink.c).

struct sw_flow_match over the key ints of key_layout.py, the kernel's
attribute walk with its remainders (nla_for_each_attr), the key attribute
walk (__parse_flow_nlattrs) with the plans that let a stream laid out like
an earlier one skip it, the error helper that logs as OVS_NLERR does, and
the constants and struct layouts the key, tunnel and action halves all use.
"""

import errno
import logging
import struct

from .. import uapi as U
from ..netlink.attr import NetlinkError
from ..uapi import attrs as ATTRS
from ..uapi import headers as H
from . import key_layout as K

log_ = logging.getLogger("ovsdp.datapath.flow_netlink")


# --------------------------------------------------------------- constants
_NLA = struct.Struct("=HH")
_TYPE_MASK = U.NLA_TYPE_MASK
_BE16 = struct.Struct("!H")
_BE32 = struct.Struct("!I")
_BE64 = struct.Struct("!Q")
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")

IPPROTO_ICMP = H.IPPROTO_ICMP
IPPROTO_TCP = H.IPPROTO_TCP
IPPROTO_UDP = H.IPPROTO_UDP
IPPROTO_ICMPV6 = H.IPPROTO_ICMPV6
IPPROTO_SCTP = H.IPPROTO_SCTP
NDISC_NEIGHBOUR_SOLICITATION = 135
NDISC_NEIGHBOUR_ADVERTISEMENT = 136
AF_INET = 2
AF_INET6 = 10
ETH_P_802_3_MIN = H.ETH_P_802_3_MIN
ETH_HLEN = 14
ETH_ALEN = 6
MPLS_LABEL_DEPTH = 3
IP_TUNNEL_OPTS_MAX = 255            # sizeof(sw_flow_key.tun_opts)
ERSPAN_METADATA_LEN = 12            # sizeof(struct erspan_metadata)
CT_SUPPORTED_MASK = 0xFF            # OVS_CS_F_NEW .. OVS_CS_F_DST_NAT
OVS_VXLAN_EXT_MAX = U.OVS_VXLAN_EXT_GBP
OVS_TUNNEL_KEY_ATTR_MAX = U.OVS_TUNNEL_KEY_ATTR_MAX
OVS_KEY_ATTR_MAX = U.OVS_KEY_ATTR_MAX

TUN_F_CRIT_OPT = K.TUN_F_CRIT_OPT
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

# The fields of struct ip_tunnel_key (SW_FLOW_KEY_MEMSET_FIELD(tun_key)).
_TUN_KEY_FIELDS = ("tun_id", "tun_ipv4_src", "tun_ipv4_dst", "tun_ipv6_src", "tun_ipv6_dst",
                   "tun_tos", "tun_ttl", "tun_tp_src", "tun_tp_dst", "tun_flags")
_TUN_KEY_MASK = 0
for _f in _TUN_KEY_FIELDS:
    _TUN_KEY_MASK |= K.ones(_f)
_ALL_TUN_MASK = _TUN_KEY_MASK | K.ones("tun_proto") | K.ones("tun_opts_len") | K.ones("tun_opts")
del _f

_FIELD = K.FIELDS


# name -> (shift, all-ones of the width)
_SHIFT_ONES = {name: (s, (1 << w) - 1) for name, (s, w) in _FIELD.items()}


def _get(key, name):
    s, fm = _SHIFT_ONES[name]
    return key >> s & fm


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
# name -> (shift, all-ones of the width, the key with the field cleared
# is key & clear): SW_FLOW_KEY_PUT's store, computed once per field.
_PUT = {name: (s, (1 << w) - 1, ~(((1 << w) - 1) << s)) for name, (s, w) in _FIELD.items()}


def image_run(first_byte, nbytes):
    """(shift, clear) of image bytes first_byte.. of a key: a run of adjacent
    fields stored at once (the key with the run cleared is key & clear)."""
    s = (K.IMAGE_BITS // 8 - first_byte - nbytes) * 8
    return s, ~(((1 << (8 * nbytes)) - 1) << s)



class Match:
    """struct sw_flow_match: the key being built and (optionally) its mask."""

    __slots__ = ("key", "mask")

    def __init__(self, want_mask=True):
        self.key = 0
        self.mask = 0 if want_mask else None

    def put(self, name, value, is_mask):
        """SW_FLOW_KEY_PUT: the value truncated to the field like a C store."""
        s, fm, clear = _PUT[name]
        if is_mask:
            self.mask = (self.mask & clear) | ((value & fm) << s)
        else:
            self.key = (self.key & clear) | ((value & fm) << s)

    def put_run(self, run, value, is_mask):
        """SW_FLOW_KEY_MEMCPY over a run of adjacent fields of the frame image
        (key_layout): ``run`` is :func:`image_run`'s, ``value`` the run's
        bytes read as one big-endian number."""
        s, clear = run
        if is_mask:
            self.mask = (self.mask & clear) | (value << s)
        else:
            self.key = (self.key & clear) | (value << s)

    def kget(self, name):
        s, fm = _SHIFT_ONES[name]
        return self.key >> s & fm

    def mget(self, name):
        s, fm = _SHIFT_ONES[name]
        return self.mask >> s & fm


# ------------------------------------------------------- attribute parsing
def _walk(buf):
    """nla_for_each_attr(): ``([(raw_type, payload, nla_len, rem_before)], rem)``.

    ``rem`` is the kernel's value after the loop: the bytes left over, negative
    when the last attribute's padding is missing (nla_next() subtracts the
    aligned length).  ``rem_before`` is what nla_is_last() compares with.
    """
    if type(buf) is not bytes:
        buf = bytes(buf)
    n = len(buf)
    off = 0
    out = []
    append = out.append
    unpack = _NLA.unpack_from
    while n - off >= 4:
        alen, raw = unpack(buf, off)
        if alen < 4 or alen > n - off:
            break
        append((raw, buf[off + 4:off + alen], alen, n - off))
        off += (alen + 3) & ~3
    return out, n - off


# ------------------------------------------------- the key attribute walk
def _parse_flow_nlattrs(buf, a, attrs, log, nz):
    """__parse_flow_nlattrs(): fills a[] and returns the updated attrs bitmap.

    Where the walk goes and every check but the all-zero test of a mask's
    payloads (``nz``) and the duplicates of the ``attrs`` passed in depend
    only on the attribute headers and the stream's length.  So a stream
    laid out like one parsed before (same length, same headers) takes that
    one's :class:`_AttrPlan`: one unpack of every header and payload, the
    headers compared with the plan's, and the result the walk would give.
    Anything else takes the walk (nla_for_each_attr(), inline).
    """
    if type(buf) is not bytes:
        buf = bytes(buf)
    n = len(buf)
    if n >= 4:
        plans = _PLANS.get((n, *_NLA.unpack_from(buf)))
        if plans is not None:
            for plan in plans:
                vals = plan.struct.unpack_from(buf)
                if vals[0::3] == plan.lens and vals[1::3] == plan.raws and not attrs & plan.bits:
                    if not nz:
                        a.update(zip(plan.types, vals[2::3], strict=True))
                        return attrs | plan.bits
                    for t, p, zeros in zip(plan.types, vals[2::3], plan.zeros, strict=True):
                        if p != zeros:
                            attrs |= (1 << t)
                            a[t] = p
                    return attrs
    attrs_in = attrs
    lengths = _KEY.lengths
    unpack = _NLA.unpack_from
    off = 0
    heads = []
    while n - off >= 4:
        alen, raw = unpack(buf, off)
        if alen < 4 or alen > n - off:
            break
        payload = buf[off + 4:off + alen]
        off += (alen + 3) & ~3
        heads.append((alen, raw))
        t = raw & _TYPE_MASK
        expected = lengths.get(t, 0)
        if expected is None or t > OVS_KEY_ATTR_MAX or attrs >> t & 1 or (
                expected is not _NESTED and expected is not _VARIABLE
                and alen - 4 != expected):
            _bad_key_attr(t, expected, payload, attrs, log)
        if not nz or any(payload):
            attrs |= (1 << t)
            a[t] = payload
    if n - off:
        raise _err(log, f"Message has {n - off} unknown bytes.")
    if heads and not attrs_in & _bits_of(heads):
        _AttrPlan.remember(n, heads)
    return attrs


def _bits_of(heads):
    bits = 0
    for _alen, raw in heads:
        bits |= 1 << (raw & _TYPE_MASK)
    return bits


class _AttrPlan:
    """The layout of an attribute stream that parsed: its headers, and a
    struct that unpacks every header and payload of a stream laid out so."""

    __slots__ = ("struct", "lens", "raws", "types", "bits", "zeros")

    def __init__(self, heads):
        fmt = ["="]
        for alen, _raw in heads:
            fmt.append(f"HH{alen - 4}s{-alen & 3}x")
        self.struct = struct.Struct("".join(fmt))
        self.lens = tuple(alen for alen, _ in heads)
        self.raws = tuple(raw for _, raw in heads)
        self.types = tuple(raw & _TYPE_MASK for raw in self.raws)
        self.bits = _bits_of(heads)
        self.zeros = tuple(bytes(alen - 4) for alen in self.lens)

    @staticmethod
    def remember(n, heads):
        """Keep the plan of a stream that parsed, if its types are distinct
        (a repeated type that parsed had an all-zero mask payload first:
        the walk decides such a stream by its values)."""
        types = [raw & _TYPE_MASK for _alen, raw in heads]
        if len(set(types)) != len(types):
            return
        if len(_PLANS) >= ATTR_PLANS_MAX:
            _PLANS.clear()
        key = (n, *heads[0])
        plans = _PLANS.setdefault(key, [])
        plans.insert(0, _AttrPlan(heads))
        del plans[4:]


ATTR_PLANS_MAX = 1024
_PLANS = {}         # (stream length, first attribute's length and type) -> [_AttrPlan]


def _bad_key_attr(t, expected, payload, attrs, log):
    """The error __parse_flow_nlattrs() reports for attribute ``t``, in its order."""
    if t > OVS_KEY_ATTR_MAX:
        raise _err(log, f"Key type {t} is out of range max {OVS_KEY_ATTR_MAX}")
    if expected is None:                    # userspace-only types
        raise _err(log, f"Key type {t} is not supported")
    if attrs & (1 << t):
        raise _err(log, f"Duplicate key (type {t}).")
    raise _err(log, f"Key {t} has unexpected len {len(payload)} expected {expected}")
