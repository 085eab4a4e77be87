"""Flow keys and masks: OVS_KEY_ATTR_* attributes -> text.

Mirrors lib/odp-util.c: :func:`format_key` is ``odp_flow_format()`` (and,
with no mask, ``odp_flow_key_format()``); the way back, ``parse_key``
(``odp_flow_from_string()``), is :mod:`.keys_scan`.  Keys and masks are the raw payloads of
OVS_FLOW_ATTR_KEY / OVS_FLOW_ATTR_MASK: a stream of netlink attributes.
"""

import struct

from .. import uapi as U
from ..netlink.attr import attr_list, nla
from ..netlink.attr import find as find_attr
from ..uapi import attrs as ATTRS
from ._util import (
    chomp,
    fmt_hex_x,
    format_flags,
    format_flags_masked,
    is_all,
    put_hex,
    spaced_hex,
)
from .key_fields import (
    STRUCTS,
    _f_be64,
    _f_in6,
    _f_ipv4,
    _f_u,
)

# ----------------------------------------------------------------- tables
# Open vSwitch userspace's view of the attributes (ovs_flow_key_attr_lens[]):
# the ``ovs`` column of uapi/attrs.py; a type it has no length for is unknown.
NESTED = ATTRS.NESTED
VARIABLE = ATTRS.VARIABLE
KEY = ATTRS.KEY
TUNNEL_KEY = ATTRS.TUNNEL_KEY
VXLAN_EXT = ATTRS.VXLAN_EXT
NSH_KEY = ATTRS.NSH_KEY
KEY_NAMES = KEY.names()

# Flag bits of struct flow_tnl (lib/packets.h) used by the text form.
FLOW_TNL_F_OAM = 1 << 0
FLOW_TNL_F_DONT_FRAGMENT = 1 << 1
FLOW_TNL_F_CSUM = 1 << 2
FLOW_TNL_F_KEY = 1 << 3
FLOW_TNL_F_MASK = 0xF

_TUN_FLAG_NAMES = {FLOW_TNL_F_DONT_FRAGMENT: "df", FLOW_TNL_F_CSUM: "csum",
                   FLOW_TNL_F_KEY: "key", FLOW_TNL_F_OAM: "oam"}
_CT_STATE_NAMES = {U.OVS_CS_F_REPLY_DIR: "rpl", U.OVS_CS_F_TRACKED: "trk",
                   U.OVS_CS_F_NEW: "new", U.OVS_CS_F_ESTABLISHED: "est",
                   U.OVS_CS_F_RELATED: "rel", U.OVS_CS_F_INVALID: "inv",
                   U.OVS_CS_F_SRC_NAT: "snat", U.OVS_CS_F_DST_NAT: "dnat"}
_TCP_FLAG_NAMES = {0x001: "fin", 0x002: "syn", 0x004: "rst", 0x008: "psh",
                   0x010: "ack", 0x020: "urg", 0x040: "ece", 0x080: "cwr",
                   0x100: "ns", 0x200: "[200]", 0x400: "[400]", 0x800: "[800]"}
TCP_FLAGS_MASK = 0x0FFF

tun_flag_to_string = _TUN_FLAG_NAMES.get
ct_state_to_string = _CT_STATE_NAMES.get
tcp_flag_to_string = _TCP_FLAG_NAMES.get

VLAN_CFI = 0x1000
VLAN_VID_MASK = 0x0FFF
VLAN_PCP_SHIFT = 13

_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
_BE16 = struct.Struct("!H")
_BE32 = struct.Struct("!I")
_BE64 = struct.Struct("!Q")


# --------------------------------------------------------------- formatting
def _f_tun_flags(flags, mask, verbose):
    if verbose or mask is None or mask:
        if mask is not None:
            body = format_flags_masked(tun_flag_to_string, flags,
                                       mask & FLOW_TNL_F_MASK, FLOW_TNL_F_MASK)
        else:
            body = format_flags(tun_flag_to_string, flags, "|")
        return f"flags({body}),"
    return ""


def format_vlan_tci(tci, mask, verbose):
    out = ""
    vid, vid_m = tci & VLAN_VID_MASK, mask & VLAN_VID_MASK
    pcp, pcp_m = tci >> VLAN_PCP_SHIFT, mask >> VLAN_PCP_SHIFT
    if verbose or vid or vid_m:
        out += f"vid={vid}"
        if vid_m != VLAN_VID_MASK:
            out += f"/0x{vid_m:x}"
        out += ","
    if verbose or pcp or pcp_m:
        out += f"pcp={pcp}"
        if pcp_m != 7:
            out += f"/0x{pcp_m:x}"
        out += ","
    if not tci & VLAN_CFI:
        out += "cfi=0,"
    return chomp(out)


def format_mpls_lse(lse):
    return (f"label={lse >> 12},tc={(lse >> 9) & 7},ttl={lse & 0xFF},"
            f"bos={(lse >> 8) & 1}")


def _format_mpls(key, mask):
    out = []
    for i in range(0, len(key), 4):
        k = _BE32.unpack_from(key, i)[0]
        if mask is None:
            out.append(format_mpls_lse(k))
        else:
            m = _BE32.unpack_from(mask, i)[0]
            out.append(f"label={k >> 12}/0x{m >> 12:x},tc={(k >> 9) & 7}/{(m >> 9) & 7:x},"
                       f"ttl={k & 0xFF}/0x{m & 0xFF:x},bos={(k >> 8) & 1}/{(m >> 8) & 1:x}")
    return ",".join(out)


def _le128(b):
    """A ct label as printed: the 16 bytes read as a little-endian u128."""
    return bytes(reversed(b))


def format_u128(value, mask, verbose):
    """format_u128(): value bytes as stored in the attribute (LE u128)."""
    if verbose or (mask is not None and any(mask)):
        s = put_hex(_le128(value))
        if mask is not None and not is_all(mask, 0xFF):
            s += "/" + put_hex(_le128(mask))
        return s
    return ""


def _mask_is_constant(atype, mask, c):
    """odp_mask_is_constant__() for c in (0, -1)."""
    b = 0 if c == 0 else 0xFF
    if atype in (U.OVS_KEY_ATTR_UNSPEC, U.OVS_KEY_ATTR_ENCAP) or KEY.ovs_length(atype) is None:
        return False
    if atype == U.OVS_KEY_ATTR_TCP_FLAGS:
        return (_BE16.unpack(mask)[0] & TCP_FLAGS_MASK) == (TCP_FLAGS_MASK if c else 0)
    if atype == U.OVS_KEY_ATTR_IPV6:
        label = _BE32.unpack_from(mask, 32)[0] & 0xFFFFF
        return (label == (0xFFFFF if c else 0) and is_all(mask[36:40], b)
                and is_all(mask[0:32], b))
    if atype == U.OVS_KEY_ATTR_ARP:
        return is_all(mask[:22], b)
    if atype == U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4:
        return is_all(mask[:13], b)
    if atype == U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6:
        return is_all(mask[:37], b)
    return is_all(mask, b)


def _mask_is_exact(atype, mask):
    return _mask_is_constant(atype, mask, -1)


def _mask_is_wildcard(atype, mask):
    return _mask_is_constant(atype, mask, 0)


def _wildcard_mask(atype, payload, table):
    """generate_all_wildcard_mask(): zeros shaped like the key attribute."""
    if table.ovs_length(atype) is not NESTED:
        return bytes(len(payload))
    sub = table.next(atype)
    return b"".join(nla(t, _wildcard_mask(t, p, sub)) for t, p in attr_list(payload)[0])


def _check_len(atype, key, mask, table):
    """check_attr_len(): None if fine, else the text OVS prints."""
    exp = table.ovs_length(atype)
    if exp is None or exp in (VARIABLE, NESTED):
        # Unknown types are printed generically as keyN(...).
        return None
    bad_key = len(key) != exp
    bad_mask = mask is not None and len(mask) != exp
    if not (bad_key or bad_mask):
        return None
    s = f"key{atype}"
    if bad_key:
        s += f"(bad key length {len(key)}, expected {exp})("
    s += spaced_hex(key)
    if mask is not None:
        s += "/"
        if bad_mask:
            s += f"(bad mask length {len(mask)}, expected {exp})("
        s += spaced_hex(mask)
    return s + ")"


def _format_unknown(atype, key, mask):
    s = f"key{atype}({spaced_hex(key)}"
    if mask is not None and not is_all(mask, 0xFF):
        s += "/" + spaced_hex(mask)
    return s + ")"


def _format_vxlan_opts(key, mask, verbose):
    out = ""
    for t, p in attr_list(key)[0]:
        m = None
        if mask is not None:
            m = find_attr(mask, t)
            if m is None:
                m = bytes(len(p))
        bad = _check_len(t, p, m, VXLAN_EXT)
        if bad is not None:
            out += bad
            continue
        if t == U.OVS_VXLAN_EXT_GBP:
            k = _U32.unpack(p)[0]
            mm = _U32.unpack(m)[0] if m is not None else None
            s = "gbp("
            s += _f_u("id", k & 0xFFFF, None if mm is None else mm & 0xFFFF, 0xFFFF, verbose)
            s += _f_u("flags", (k >> 16) & 0xFF, None if mm is None else (mm >> 16) & 0xFF,
                      0xFF, verbose, hexfmt=True)
            out += chomp(s) + "),"
        else:
            out += _format_unknown(t, p, m) + ","
    return chomp(out)


def _format_erspan(key, mask, verbose):
    key = key.ljust(12, b"\0")
    ver = key[0]
    s = f"ver={ver}"
    if mask is not None:
        mask = mask.ljust(12, b"\0")
        if mask[0] != 0xFF:
            s += "/" + fmt_hex_x(mask[0])
    s += ","
    if ver == 1:
        idx = _BE32.unpack_from(key, 4)[0]
        if mask is not None:
            s += f"idx={fmt_hex_x(idx)}/{fmt_hex_x(_BE32.unpack_from(mask, 4)[0])},"
        else:
            s += f"idx={fmt_hex_x(idx)},"
    elif ver == 2:
        b, mb = key[11], (mask[11] if mask is not None else None)
        # dir is a one-bit field: a set mask bit means exact.
        s += _f_u("dir", (b >> 3) & 1, None if mb is None else 0xFF * ((mb >> 3) & 1), 0xFF,
                  verbose)
        s += _f_u("hwid", b >> 4, None if mb is None else mb >> 4, 0xFF, verbose, hexfmt=True)
    return chomp(s)


def format_geneve_opts(opts, mask, verbose):
    out = ""
    i = 0
    n = len(opts)
    while n - i > 0:
        if n - i < 4:
            return out + f"opt len {n - i} less than minimum 4"
        data_len = (opts[i + 3] & 0x1F) * 4
        length = 4 + data_len
        if length > n - i:
            return out + f"opt len {length} greater than remaining {n - i}"
        cls = _BE16.unpack_from(opts, i)[0]
        typ = opts[i + 2]
        if mask is not None:
            mcls = _BE16.unpack_from(mask, i)[0]
            mtyp = mask[i + 2]
            mlen = 0xFF if (mask[i + 3] & 0x1F) == 0x1F else mask[i + 3] & 0x1F
        else:
            mcls = mtyp = mlen = None
        s = "{"
        s += _f_u("class", cls, mcls, 0xFFFF, verbose, hexfmt=True)
        s += _f_u("type", typ, mtyp, 0xFF, verbose, hexfmt=True)
        s += _f_u("len", data_len, mlen, 0xFF, verbose)
        data = opts[i + 4:i + length]
        mdata = mask[i + 4:i + length] if mask is not None else None
        if data_len and (verbose or mdata is None or any(mdata)):
            s += put_hex(data)
            if mdata is not None and not is_all(mdata, 0xFF):
                s += "/" + put_hex(mdata)
        else:
            s = chomp(s)
        out += s + "}"
        i += length
    return out


def _format_tunnel(key, mask, verbose):
    out = ""
    flags = mask_flags = 0
    for t, p in attr_list(key)[0]:
        m = None
        if mask is not None:
            m = find_attr(mask, t)
            if m is None:
                m = _wildcard_mask(t, p, TUNNEL_KEY)
        bad = _check_len(t, p, m, TUNNEL_KEY)
        if bad is not None:
            out += bad
            continue
        if t == U.OVS_TUNNEL_KEY_ATTR_ID:
            out += _f_be64("tun_id", _BE64.unpack(p)[0],
                           None if m is None else _BE64.unpack(m)[0], verbose)
            flags |= FLOW_TNL_F_KEY
            if m is not None:
                mask_flags |= FLOW_TNL_F_KEY
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV4_SRC:
            out += _f_ipv4("src", p, m, verbose)
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV4_DST:
            out += _f_ipv4("dst", p, m, verbose)
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV6_SRC:
            out += _f_in6("ipv6_src", p, m, verbose)
        elif t == U.OVS_TUNNEL_KEY_ATTR_IPV6_DST:
            out += _f_in6("ipv6_dst", p, m, verbose)
        elif t == U.OVS_TUNNEL_KEY_ATTR_TOS:
            out += _f_u("tos", p[0], None if m is None else m[0], 0xFF, verbose, hexfmt=True)
        elif t == U.OVS_TUNNEL_KEY_ATTR_TTL:
            out += _f_u("ttl", p[0], None if m is None else m[0], 0xFF, verbose)
        elif t == U.OVS_TUNNEL_KEY_ATTR_DONT_FRAGMENT:
            flags |= FLOW_TNL_F_DONT_FRAGMENT
        elif t == U.OVS_TUNNEL_KEY_ATTR_CSUM:
            flags |= FLOW_TNL_F_CSUM
        elif t == U.OVS_TUNNEL_KEY_ATTR_OAM:
            flags |= FLOW_TNL_F_OAM
        elif t == U.OVS_TUNNEL_KEY_ATTR_TP_SRC:
            out += _f_u("tp_src", _BE16.unpack(p)[0],
                        None if m is None else _BE16.unpack(m)[0], 0xFFFF, verbose)
        elif t == U.OVS_TUNNEL_KEY_ATTR_TP_DST:
            out += _f_u("tp_dst", _BE16.unpack(p)[0],
                        None if m is None else _BE16.unpack(m)[0], 0xFFFF, verbose)
        elif t == U.OVS_TUNNEL_KEY_ATTR_VXLAN_OPTS:
            out += "vxlan(" + _format_vxlan_opts(p, m, verbose) + "),"
        elif t == U.OVS_TUNNEL_KEY_ATTR_GENEVE_OPTS:
            if m is not None and len(m) != len(p):
                out += f"geneve(value len {len(p)} different from mask len {len(m)}),"
            else:
                out += "geneve(" + format_geneve_opts(p, m, verbose) + "),"
        elif t == U.OVS_TUNNEL_KEY_ATTR_PAD:
            pass
        elif t == U.OVS_TUNNEL_KEY_ATTR_ERSPAN_OPTS:
            out += "erspan(" + _format_erspan(p, m, verbose) + "),"
        else:
            out += _format_unknown(t, p, m) + ","
    if mask is not None:
        for t, _p in attr_list(mask)[0]:
            if t == U.OVS_TUNNEL_KEY_ATTR_DONT_FRAGMENT:
                mask_flags |= FLOW_TNL_F_DONT_FRAGMENT
            elif t == U.OVS_TUNNEL_KEY_ATTR_CSUM:
                mask_flags |= FLOW_TNL_F_CSUM
            elif t == U.OVS_TUNNEL_KEY_ATTR_OAM:
                mask_flags |= FLOW_TNL_F_OAM
    out += _f_tun_flags(flags, mask_flags if mask is not None else None, verbose)
    return chomp(out)


def _nsh_fields(key, mask):
    """(nsh, nsh_mask) dicts as format_odp_nsh_attr() collects them."""
    k = dict(flags=0, ttl=0, mdtype=0, np=0, path=0, ctx=[0, 0, 0, 0])
    m = dict(flags=0xFF, ttl=0xFF, mdtype=0xFF, np=0xFF, path=0xFFFFFFFF,
             ctx=[0xFFFFFFFF] * 4)
    for t, p in attr_list(key)[0]:
        mp = find_attr(mask, t) if mask is not None else None
        if _check_len(t, p, mp, NSH_KEY) is not None:
            continue
        if t == U.OVS_NSH_KEY_ATTR_BASE:
            k.update(zip(("flags", "ttl", "mdtype", "np", "path"),
                         U.OVS_KEY_NSH_BASE.unpack(p), strict=True))
            if mp is not None:
                m.update(zip(("flags", "ttl", "mdtype", "np", "path"),
                             U.OVS_KEY_NSH_BASE.unpack(mp), strict=True))
        elif t == U.OVS_NSH_KEY_ATTR_MD1:
            k["ctx"] = list(U.OVS_KEY_NSH_MD1.unpack(p))
            if mp is not None:
                m["ctx"] = list(U.OVS_KEY_NSH_MD1.unpack(mp))
    return k, m


def _u8_masked(name, v, m):
    if not m:
        return None
    return f"{name}={v}" if m == 0xFF else f"{name}=0x{v:02x}/0x{m:02x}"


def _be32_masked(name, v, m):
    if not m:
        return None
    return f"{name}=0x{v:x}" if m == 0xFFFFFFFF else f"{name}=0x{v:x}/0x{m:08x}"


def format_nsh_key(k):
    s = (f"flags={k['flags']},ttl={k['ttl']},mdtype={k['mdtype']},np={k['np']},"
         f"spi=0x{k['path'] >> 8:x},si={k['path'] & 0xFF}")
    if k["mdtype"] == 1:
        s += "".join(f",c{i + 1}=0x{c:x}" for i, c in enumerate(k["ctx"]))
    return s


def format_nsh_key_mask(k, m):
    spi_m = m["path"] >> 8
    if spi_m == 0xFFFFFF:
        spi_m = 0xFFFFFFFF
    parts = [
        _u8_masked("flags", k["flags"], m["flags"]),
        _u8_masked("ttl", k["ttl"], m["ttl"]),
        _u8_masked("mdtype", k["mdtype"], m["mdtype"]),
        _u8_masked("np", k["np"], m["np"]),
        _be32_masked("spi", k["path"] >> 8, spi_m),
        _u8_masked("si", k["path"] & 0xFF, m["path"] & 0xFF),
    ]
    parts += [_be32_masked(f"c{i + 1}", k["ctx"][i], m["ctx"][i]) for i in range(4)]
    return ",".join(p for p in parts if p is not None)


def format_key_attr(atype, key, mask, verbose, port_names=None):
    """format_odp_key_attr(): one attribute as ``name(...)``."""
    bad = _check_len(atype, key, mask, KEY)
    if bad is not None:
        return bad
    return _format_key_attr(atype, key, mask, verbose, port_names)


def _format_key_attr(atype, key, mask, verbose, port_names):
    name = KEY_NAMES.get(atype)
    if name is None or atype == U.OVS_KEY_ATTR_UNSPEC:
        return _format_unknown(atype, key, mask)
    ma = mask
    exact = True if ma is None else _mask_is_exact(atype, ma)
    body = ""
    text = STRUCTS.get(atype)
    if text is not None:                        # one fixed struct: key_fields' row
        body = text.format(key, ma, verbose)
    elif atype == U.OVS_KEY_ATTR_ENCAP:
        if ma is not None and ma and key:
            body = _format_flow(key, ma, verbose, None)
        elif key:
            body = _format_flow(key, None, verbose, None)
    elif atype in (U.OVS_KEY_ATTR_PRIORITY, U.OVS_KEY_ATTR_SKB_MARK,
                   U.OVS_KEY_ATTR_DP_HASH, U.OVS_KEY_ATTR_RECIRC_ID):
        body = fmt_hex_x(_U32.unpack(key)[0])
        if not exact:
            body += "/" + fmt_hex_x(_U32.unpack(ma)[0])
    elif atype in (U.OVS_KEY_ATTR_CT_MARK, U.OVS_KEY_ATTR_CT_ZONE):
        st = _U32 if atype == U.OVS_KEY_ATTR_CT_MARK else _U16
        if verbose or (ma is not None and any(ma)):
            body = fmt_hex_x(st.unpack(key)[0])
            if not exact:
                body += "/" + fmt_hex_x(st.unpack(ma)[0])
    elif atype == U.OVS_KEY_ATTR_CT_STATE:
        v = _U32.unpack(key)[0]
        mv = 0 if (ma is None or not any(ma)) else _U32.unpack(ma)[0]
        if verbose:
            body = fmt_hex_x(v)
            if not exact:
                body += "/" + fmt_hex_x(mv)
        elif not exact:
            body = format_flags_masked(ct_state_to_string, v, mv, 0xFFFFFFFF)
        else:
            body = format_flags(ct_state_to_string, v, "|")
    elif atype == U.OVS_KEY_ATTR_CT_LABELS:
        body = format_u128(key, ma, verbose)
    elif atype == U.OVS_KEY_ATTR_TUNNEL:
        body = _format_tunnel(key, ma, verbose)
    elif atype == U.OVS_KEY_ATTR_IN_PORT:
        port = _U32.unpack(key)[0]
        if exact:
            body = (port_names or {}).get(port) or str(port)
        else:
            body = f"{port}/{fmt_hex_x(_U32.unpack(ma)[0])}"
    elif atype == U.OVS_KEY_ATTR_VLAN:
        body = format_vlan_tci(_BE16.unpack(key)[0],
                               _BE16.unpack(ma)[0] if ma is not None else 0xFFFF, verbose)
    elif atype == U.OVS_KEY_ATTR_MPLS:
        if not key or len(key) % 4:
            return f"{name}((bad key length {len(key)}))"
        if not exact:
            if len(ma) != len(key):
                return f"{name}((key length {len(key)} != mask length {len(ma)}))"
            body = _format_mpls(key, ma)
        else:
            body = _format_mpls(key, None)
    elif atype == U.OVS_KEY_ATTR_ETHERTYPE:
        body = f"0x{_BE16.unpack(key)[0]:04x}"
        if not exact:
            body += f"/0x{_BE16.unpack(ma)[0]:04x}"
    elif atype == U.OVS_KEY_ATTR_TCP_FLAGS:
        v = _BE16.unpack(key)[0]
        if not exact:
            body = format_flags_masked(tcp_flag_to_string, v,
                                       _BE16.unpack(ma)[0] & TCP_FLAGS_MASK, TCP_FLAGS_MASK)
        else:
            body = format_flags(tcp_flag_to_string, v, "|")
    elif atype == U.OVS_KEY_ATTR_NSH:
        k, m = _nsh_fields(key, ma)
        body = format_nsh_key_mask(k, m) if ma is not None else format_nsh_key(k)
    return f"{name}({body})"


def _format_flow(key, mask, verbose, port_names):
    """odp_flow_format()."""
    if not key:
        return "<empty>"
    attrs, leftover = attr_list(key)
    out = []
    has_ethtype = has_packet_type = False
    for t, p in attrs:
        ma = find_attr(mask, t) if mask else None
        bad = _check_len(t, p, ma, KEY)
        if bad is not None:
            out.append(bad)
            continue
        if t == U.OVS_KEY_ATTR_ETHERTYPE:
            has_ethtype = True
        elif t == U.OVS_KEY_ATTR_PACKET_TYPE:
            has_packet_type = True
        nested = KEY.ovs_length(t) is NESTED
        wildcard = False
        if mask:
            wildcard = _mask_is_wildcard(t, ma) if ma is not None else True
        if verbose or not wildcard or nested:
            if wildcard and ma is None:
                ma = _wildcard_mask(t, p, KEY)
            out.append(_format_key_attr(t, p, ma, verbose, port_names))
        elif t == U.OVS_KEY_ATTR_ETHERNET and not has_packet_type:
            out.append("eth()")
    s = ",".join(out)
    if leftover:
        if not attrs:
            s += "<empty>"
        s += f",***{len(leftover)} leftover bytes*** ({leftover.hex()})"
    if not has_ethtype and mask:
        ma = find_attr(mask, U.OVS_KEY_ATTR_ETHERTYPE)
        if ma is not None and len(ma) == 2:
            s += f",eth_type(0/0x{_BE16.unpack(ma)[0]:04x})"
    return s


def format_key(key, mask=None, *, verbose=False, port_names=None):
    """Format flow key attributes (and optionally their mask) as text.

    With a mask this is OVS's ``odp_flow_format()``: masks are printed only
    when partial and fully wildcarded fields and attributes are left out
    unless ``verbose``.  With ``mask=None`` the key is exact and every field
    is printed, as ``odp_flow_key_format()`` (``ovstest test-odp
    parse-keys``) does.  ``port_names`` maps port numbers to names for
    ``in_port``.
    """
    key = bytes(key)
    if mask is None:
        return _format_flow(key, None, True, port_names)
    return _format_flow(key, bytes(mask), verbose, port_names)
