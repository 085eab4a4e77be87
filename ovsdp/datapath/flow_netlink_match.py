"""What the parsers of flow_netlink share (net/openvswitch/flow_netlink.c).

struct sw_flow_match over the key ints of key_layout.py, the kernel's
attribute walk with its remainders (nla_for_each_attr), the error helper
that logs as OVS_NLERR does, and the constants and struct layouts the key,
tunnel and action halves all use.
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
