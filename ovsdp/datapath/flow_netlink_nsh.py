"""NSH keys and the push_nsh header <-> netlink attributes
(net/openvswitch/flow_netlink.c, its NSH part).

- :func:`nsh_key_put_from_nlattr` is the kernel function of that name: the
  nested OVS_KEY_ATTR_NSH (OVS_NSH_KEY_ATTR_BASE, _MD1, _MD2) into the
  ``nsh_*`` fields of a :class:`~.flow_netlink_match.Match`, with its
  checks.  ovs_key_from_nlattrs() turns any failure into EINVAL; in a flow
  key MD type 2 is refused (the kernel's internal ENOTSUPP, 524, which the
  caller also turns into EINVAL).
- :func:`validate_push_nsh` is validate_push_nsh() (the same parse into a
  throwaway match with ``is_push_nsh``: MD type 2 allowed, base and
  metadata required).
- :func:`nsh_hdr_from_nlattr` builds the NSH header a push_nsh action
  prepends (the kernel builds it at each execution; ovsdp once, at
  validation: the same bytes).
- :func:`nsh_key_to_nlattr` is the way back, for flow dumps and upcalls:
  the base always, MD1 for a mask or an MD type 1 key, never MD2.

set(nsh(...)) and its masked form are not here: Linux removed them
(commit dfe28c4167a9, "net: openvswitch: remove never-working support for
setting nsh fields", in 6.18 and the 6.6/6.12 stable series), so
validate_set() refuses OVS_KEY_ATTR_NSH with EINVAL (flow_netlink_actions).
"""

import errno

from .. import uapi as U
from ..netlink.attr import NetlinkError, nla, nla_nest
from ..uapi import attrs as ATTRS
from . import key_layout as K
from .flow_netlink_match import _NLA, _TYPE_MASK, Match, _err, _get, _walk

NSH_M_TYPE1 = 1
NSH_M_TYPE2 = 2
NSH_BASE_HDR_LEN = 8
NSH_CTX_HDRS_MAX_LEN = 248
NSH_HDR_MAX_LEN = NSH_BASE_HDR_LEN + NSH_CTX_HDRS_MAX_LEN
ENOTSUPP = 524                      # the kernel-internal errno (include/linux/errno.h)

_NSH_KEY = ATTRS.NSH_KEY
_VARIABLE = ATTRS.VARIABLE
_BASE = U.OVS_KEY_NSH_BASE
_MD1 = U.OVS_KEY_NSH_MD1


def nsh_key_put_from_nlattr(payload, m, is_mask, is_push_nsh, log):
    """nsh_key_put_from_nlattr(): ``payload`` is the nest's content.

    Raises NetlinkError (EINVAL; ENOTSUPP for MD2 outside push_nsh).
    """
    has_base = has_md1 = has_md2 = False
    mdtype = 0
    items, rem = _walk(payload)
    for raw, p, _alen, _rem in items:
        t = raw & _TYPE_MASK
        if t > U.OVS_NSH_KEY_ATTR_MAX:
            raise _err(log, f"nsh attr {t} is out of range max {U.OVS_NSH_KEY_ATTR_MAX}")
        want = _NSH_KEY.length(t)
        if want is not _VARIABLE and len(p) != want:
            raise _err(log, f"nsh attr {t} has unexpected len {len(p)} expected {want}")
        if t == U.OVS_NSH_KEY_ATTR_BASE:
            has_base = True
            flags, ttl, mdtype, np_, path = _BASE.unpack(p)
            m.put("nsh_flags", flags, is_mask)
            m.put("nsh_ttl", ttl, is_mask)
            m.put("nsh_mdtype", mdtype, is_mask)
            m.put("nsh_np", np_, is_mask)
            m.put("nsh_path_hdr", path, is_mask)
        elif t == U.OVS_NSH_KEY_ATTR_MD1:
            has_md1 = True
            m.put("nsh_context", int.from_bytes(p, "big"), is_mask)
        elif t == U.OVS_NSH_KEY_ATTR_MD2:
            if not is_push_nsh:
                raise _err(log, "NSH MD type 2 is not supported in flow keys", ENOTSUPP)
            has_md2 = True
            if not 0 < len(p) <= NSH_CTX_HDRS_MAX_LEN:
                raise _err(log, f"Invalid MD length {len(p)} for MD type {mdtype}")
        else:
            raise _err(log, f"Unknown nsh attribute {t}")
    if rem > 0:
        raise _err(log, f"nsh attribute has {rem} unknown bytes.")
    if has_md1 and has_md2:
        raise _err(log, "invalid nsh attribute: md1 and md2 are exclusive.")
    if not is_mask:
        if (has_md1 and mdtype != NSH_M_TYPE1) or (has_md2 and mdtype != NSH_M_TYPE2):
            raise _err(log, f"nsh attribute has unmatched MD type {mdtype}.")
        if is_push_nsh and (not has_base or not (has_md1 or has_md2)):
            raise _err(log, "push_nsh: missing base or metadata attributes")


def nsh_key_from_nlattrs(payload, m, is_mask, log):
    """The OVS_KEY_ATTR_NSH step of ovs_key_from_nlattrs(): any failure is EINVAL."""
    try:
        nsh_key_put_from_nlattr(payload, m, is_mask, False, log)
    except NetlinkError as e:
        if e.errno == errno.EINVAL:
            raise
        raise _err(False, e.msg) from None


def _inner(payload, log):
    """nla_data(a) of OVS_ACTION_ATTR_PUSH_NSH: the OVS_KEY_ATTR_NSH inside,
    as the content of that nest."""
    if len(payload) < 4:
        raise _err(log, "push_nsh needs an NSH key attribute")
    alen = _NLA.unpack_from(payload)[0]
    if alen < 4 or alen > len(payload):
        raise _err(log, "push_nsh: bad NSH key attribute")
    return bytes(payload[4:alen])


def validate_push_nsh(payload, log):
    """validate_push_nsh(): EINVAL unless the action holds a good NSH header.

    Returns the header push_nsh prepends (:func:`nsh_hdr_from_nlattr`).
    """
    inner = _inner(payload, log)
    nsh_key_put_from_nlattr(inner, Match(False), False, True, log)   # EINVAL only
    return nsh_hdr_from_nlattr(inner)


def nsh_hdr_from_nlattr(inner):
    """nsh_hdr_from_nlattr(): the NSH header bytes of a validated push_nsh.

    The length field is (8 + metadata length) >> 2, as the kernel writes it;
    nsh_push() then copies that many 4-byte words, so metadata of a length
    that is not a multiple of 4 loses its last bytes, as in the kernel.
    """
    flags = ttl = mdtype = np_ = path = 0
    md = b""
    items, _rem = _walk(inner)
    for raw, p, _alen, _rem2 in items:
        t = raw & _TYPE_MASK
        if t == U.OVS_NSH_KEY_ATTR_BASE:
            flags, ttl, mdtype, np_, path = _BASE.unpack(p)
        elif t in (U.OVS_NSH_KEY_ATTR_MD1, U.OVS_NSH_KEY_ATTR_MD2):
            md = bytes(p)
    length = NSH_BASE_HDR_LEN + len(md)
    vftl = ((flags << 12) & 0x3000) | ((ttl << 6) & 0x0FC0) | ((length >> 2) & 0x3F)
    hdr = vftl.to_bytes(2, "big") + bytes((mdtype, np_)) + path.to_bytes(4, "big") + md
    return hdr[:((length >> 2) & 0x3F) << 2]


def nsh_key_to_nlattr(output, is_mask):
    """nsh_key_to_nlattr(): OVS_KEY_ATTR_NSH of key or mask ``output``."""
    parts = [nla(U.OVS_NSH_KEY_ATTR_BASE, _BASE.pack(
        _get(output, "nsh_flags"), _get(output, "nsh_ttl"), _get(output, "nsh_mdtype"),
        _get(output, "nsh_np"), _get(output, "nsh_path_hdr")))]
    if is_mask or _get(output, "nsh_mdtype") == NSH_M_TYPE1:
        parts.append(nla(U.OVS_NSH_KEY_ATTR_MD1,
                         _get(output, "nsh_context").to_bytes(_MD1.size, "big")))
    return nla_nest(U.OVS_KEY_ATTR_NSH, *parts)


# The fields an NSH key holds (for tests and the megaflow checks).
NSH_FIELDS = ("nsh_flags", "nsh_ttl", "nsh_mdtype", "nsh_np", "nsh_path_hdr", "nsh_context")
NSH_MASK = 0
for _f in NSH_FIELDS:
    NSH_MASK |= K.ones(_f)
del _f
