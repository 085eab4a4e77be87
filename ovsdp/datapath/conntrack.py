"""The CT action's attributes, as net/openvswitch/conntrack.c reads them.

Only the validation of ``ovs_ct_copy_action()`` (``parse_ct``, ``parse_nat``)
lives here for now: ovsdp does not track connections yet, so a well-formed
CT action is then refused with EOPNOTSUPP by the caller, and a malformed
one gets the kernel's errno first.  Sans I/O.
"""

import errno
import struct

from .. import uapi as U
from ..netlink.attr import NetlinkError, iter_attrs, leftover
from . import key_layout as K

NF_CT_HELPER_NAME_LEN = 16
CTNL_TIMEOUT_NAME_MAX = 32
NFPROTO_IPV4 = 2
NFPROTO_IPV6 = 10

# ovs_ct_attr_lens[]: (minlen, maxlen) of each OVS_CT_ATTR_*
_CT_LENS = {
    U.OVS_CT_ATTR_UNSPEC: (0, 0),
    U.OVS_CT_ATTR_COMMIT: (0, 0),
    U.OVS_CT_ATTR_FORCE_COMMIT: (0, 0),
    U.OVS_CT_ATTR_ZONE: (2, 2),
    U.OVS_CT_ATTR_MARK: (8, 8),                   # struct md_mark: value, mask
    U.OVS_CT_ATTR_LABELS: (32, 32),               # struct md_labels: value, mask
    U.OVS_CT_ATTR_HELPER: (1, NF_CT_HELPER_NAME_LEN),
    U.OVS_CT_ATTR_NAT: (0, 0x7FFFFFFF),           # checked by parse_nat()
    U.OVS_CT_ATTR_EVENTMASK: (4, 4),
    U.OVS_CT_ATTR_TIMEOUT: (1, CTNL_TIMEOUT_NAME_MAX),
}

# ovs_nat_attr_lens[]: the exact length of each OVS_NAT_ATTR_*, (IPv4, IPv6)
_NAT_LENS = {
    U.OVS_NAT_ATTR_UNSPEC: (0, 0),
    U.OVS_NAT_ATTR_SRC: (0, 0),
    U.OVS_NAT_ATTR_DST: (0, 0),
    U.OVS_NAT_ATTR_IP_MIN: (4, 16),
    U.OVS_NAT_ATTR_IP_MAX: (4, 16),
    U.OVS_NAT_ATTR_PROTO_MIN: (2, 2),
    U.OVS_NAT_ATTR_PROTO_MAX: (2, 2),
    U.OVS_NAT_ATTR_PERSISTENT: (0, 0),
    U.OVS_NAT_ATTR_PROTO_HASH: (0, 0),
    U.OVS_NAT_ATTR_PROTO_RANDOM: (0, 0),
}
# attributes that set a flag of the NAT range (nf_nat_range2.flags)
_NAT_RANGE_FLAGS = {U.OVS_NAT_ATTR_IP_MIN, U.OVS_NAT_ATTR_IP_MAX, U.OVS_NAT_ATTR_PROTO_MIN,
                    U.OVS_NAT_ATTR_PROTO_MAX, U.OVS_NAT_ATTR_PERSISTENT,
                    U.OVS_NAT_ATTR_PROTO_HASH, U.OVS_NAT_ATTR_PROTO_RANDOM}


class CtInfo:
    """What parse_ct() takes out of the attributes (struct ovs_conntrack_info)."""

    __slots__ = ("family", "commit", "force", "zone", "mark", "labels", "helper", "nat",
                 "nat_attrs", "eventmask", "timeout")

    def __init__(self, family):
        self.family = family
        self.commit = self.force = False
        self.zone = 0
        self.mark = None             # (value, mask)
        self.labels = None           # (value bytes, mask bytes)
        self.helper = None
        self.nat = None              # None, "nat" (existing connections), "src" or "dst"
        self.nat_attrs = {}
        self.eventmask = None
        self.timeout = None


def _fail(msg, err=errno.EINVAL):
    return NetlinkError(err, msg)


def _terminated(p):
    """string_is_terminated(): a NUL within the attribute."""
    return b"\0" in p


_NFPROTO = {K.ETH_P_IP: NFPROTO_IPV4, K.ETH_P_IPV6: NFPROTO_IPV6}


def key_to_nfproto(eth_type):
    """The conntrack family of a flow's eth_type, or None (NFPROTO_UNSPEC)."""
    return _NFPROTO.get(eth_type)


def parse_ct(payload, eth_type):
    """ovs_ct_copy_action()'s checks: a :class:`CtInfo`, or NetlinkError."""
    family = key_to_nfproto(eth_type)
    if family is None:
        raise _fail("ct family unspecified")
    info = CtInfo(family)
    for raw, p, _off in iter_attrs(payload):
        t = raw & U.NLA_TYPE_MASK
        if t > U.OVS_CT_ATTR_MAX:
            raise _fail(f"Unknown conntrack attr (type={t}, max={U.OVS_CT_ATTR_MAX})")
        lo, hi = _CT_LENS[t]
        if not lo <= len(p) <= hi:
            raise _fail(f"Conntrack attr type has unexpected length (type={t}, "
                        f"length={len(p)}, expected={hi})")
        if t in (U.OVS_CT_ATTR_FORCE_COMMIT, U.OVS_CT_ATTR_COMMIT):
            info.commit = True
            info.force = info.force or t == U.OVS_CT_ATTR_FORCE_COMMIT
        elif t == U.OVS_CT_ATTR_ZONE:
            info.zone = struct.unpack("=H", p)[0]
        elif t == U.OVS_CT_ATTR_MARK:
            value, mask = struct.unpack("=II", p)
            if not mask:
                raise _fail("ct_mark mask cannot be 0")
            info.mark = (value, mask)
        elif t == U.OVS_CT_ATTR_LABELS:
            if not any(p[16:]):
                raise _fail("ct_labels mask cannot be 0")
            info.labels = (bytes(p[:16]), bytes(p[16:]))
        elif t == U.OVS_CT_ATTR_HELPER:
            if not _terminated(p):
                raise _fail("Invalid conntrack helper")
            info.helper = bytes(p[:p.index(b"\0")])
        elif t == U.OVS_CT_ATTR_NAT:
            _parse_nat(p, info)
        elif t == U.OVS_CT_ATTR_EVENTMASK:
            info.eventmask = struct.unpack("=I", p)[0]
        elif t == U.OVS_CT_ATTR_TIMEOUT:
            if not _terminated(p):
                raise _fail("Invalid conntrack timeout")
            info.timeout = bytes(p[:p.index(b"\0")])
        else:
            raise _fail(f"Unknown conntrack attr ({t})")
    if not info.commit and info.mark is not None:
        raise _fail("Setting conntrack mark requires 'commit' flag.")
    if not info.commit and info.labels is not None:
        raise _fail("Setting conntrack labels requires 'commit' flag.")
    rem = leftover(payload)
    if rem > 0:
        raise _fail(f"Conntrack attr has {rem} unknown bytes")
    return info


def _parse_nat(payload, info):
    """parse_nat(): one of SRC or DST, a range, flags only with a type, after COMMIT."""
    v6 = info.family == NFPROTO_IPV6
    kind = None
    flags = False
    for raw, p, _off in iter_attrs(payload):
        t = raw & U.NLA_TYPE_MASK
        if t > U.OVS_NAT_ATTR_MAX:
            raise _fail(f"Unknown NAT attribute (type={t}, max={U.OVS_NAT_ATTR_MAX})")
        want = _NAT_LENS[t][v6]
        if len(p) != want:
            raise _fail(f"NAT attribute type {t} has unexpected length ({len(p)} != {want})")
        if t in (U.OVS_NAT_ATTR_SRC, U.OVS_NAT_ATTR_DST):
            if kind is not None:
                raise _fail("Only one type of NAT may be specified", errno.ERANGE)
            kind = "src" if t == U.OVS_NAT_ATTR_SRC else "dst"
        elif t in _NAT_RANGE_FLAGS:
            flags = True
            info.nat_attrs[t] = bytes(p)
        else:
            raise _fail(f"Unknown nat attribute ({t})")
    rem = leftover(payload)
    if rem > 0:
        raise _fail(f"NAT attribute has {rem} unknown bytes")
    if kind is None:
        if flags:
            raise _fail("NAT flags may be given only when NAT range (SRC or DST) is also "
                        "specified.")
        info.nat = "nat"             # NAT existing connections
    elif not info.commit:
        raise _fail("NAT attributes may be specified only when CT COMMIT flag is also "
                    "specified.")
    else:
        info.nat = kind
