"""Flow key text -> OVS_KEY_ATTR_* attributes: :func:`parse_key` is
``odp_flow_from_string()`` (lib/odp-util.c's SCAN_* readers), the inverse
of :mod:`.keys`' formatting; actions' set() reads its key with
:func:`parse_key_attr`.
"""

import contextlib
import struct

from .. import uapi as U
from ..netlink.attr import MAX_ATTR_PAYLOAD, NetlinkError, nla, nla_nest
from ._util import (
    DELIMITERS,
    Cursor,
    OdpParseError,
    _Fail,
    scan_flags,
    scan_int_string,
    scan_masked_in6,
    scan_masked_ipv4,
    scan_masked_uint,
    scan_name,
    scan_uint,
)
from .key_fields import STRUCTS
from .keys import (
    _BE16,
    _BE32,
    _BE64,
    _U16,
    _U32,
    FLOW_TNL_F_CSUM,
    FLOW_TNL_F_DONT_FRAGMENT,
    FLOW_TNL_F_MASK,
    FLOW_TNL_F_OAM,
    KEY,
    TCP_FLAGS_MASK,
    VLAN_CFI,
    VLAN_PCP_SHIFT,
    _le128,
    ct_state_to_string,
    tcp_flag_to_string,
    tun_flag_to_string,
)

MAX_ODP_NESTED = 32
CT_STATE_ALLOWED = 0xFF


class _Ctx:
    __slots__ = ("port_names", "depth")

    def __init__(self, port_names):
        self.port_names = port_names
        self.depth = 0

    @contextlib.contextmanager
    def nested(self, cur):
        """One level deeper into the text; too deep is a parse error."""
        self.depth += 1
        try:
            if self.depth >= MAX_ODP_NESTED:
                cur.fail("too deeply nested")
            yield
        finally:
            self.depth -= 1


def _finish_fields(cur, fields, values, masks):
    """The SCAN_BEGIN ... SCAN_FIELD ... SCAN_FINISH loop.

    ``fields`` maps ``name=`` prefixes to a scanner(cur) -> (value, mask).
    """
    while True:
        matched = False
        for prefix, (fname, scanner) in fields.items():
            if cur.accept(prefix):
                v, m = scanner(cur)
                values[fname] = v
                masks[fname] = m
                matched = True
                break
        c = cur.peek()
        if matched and c == ",":
            cur.i += 1
            continue
        if c == ")":
            cur.i += 1
            return
        if matched:
            cur.fail("expected ',' or ')'")
        if c == ",":
            cur.i += 1
            if cur.peek() == ")":
                cur.i += 1
                return
        name = scan_name(Cursor(cur.s, cur.i), ",)=(")
        cur.fail(f"unknown field '{name}'" if name else "expected ')'")


def _struct_attr(cur, atype, text):
    """A fixed-struct attribute, read by its key_fields row: the fields
    given, by name in any order; the others (and their masks) zero."""
    values, masks = {}, {}
    _finish_fields(cur, text.scanners, values, masks)
    layout = text.layout
    return nla(atype, layout.pack_fields(values)), nla(atype, layout.pack_fields(masks))


_STRUCTS = {KEY.row(t).name: (t, text) for t, text in STRUCTS.items()}


_SINGLE_U32 = {"skb_priority": U.OVS_KEY_ATTR_PRIORITY, "skb_mark": U.OVS_KEY_ATTR_SKB_MARK,
               "dp_hash": U.OVS_KEY_ATTR_DP_HASH, "ct_mark": U.OVS_KEY_ATTR_CT_MARK}


def _close(cur):
    if not cur.accept(")"):
        cur.fail("expected ')'")


def _parse_vlan(cur):
    tci = mask = VLAN_CFI
    fields = (("vid=", 12, 0), ("pcp=", 3, VLAN_PCP_SHIFT), ("cfi=", 1, 12))
    while True:
        matched = False
        for prefix, bits, shift in fields:
            if cur.accept(prefix):
                fm = ((1 << bits) - 1) << shift
                start = cur.i
                v = scan_uint(cur, 0, 16, prefix[:-1])
                if v >> bits:
                    cur.fail(f"{prefix[:-1]} {v} out of range", start)
                tci = (tci & ~fm) | (v << shift)
                if cur.accept("/"):
                    start = cur.i
                    mv = scan_uint(cur, 0, 16, prefix[:-1] + " mask")
                    if mv >> bits:
                        cur.fail(f"{prefix[:-1]} mask out of range", start)
                    mask = (mask & ~fm) | (mv << shift)
                else:
                    mask |= fm
                matched = True
                break
        c = cur.peek()
        cur.i += 1
        if matched and c == ",":
            continue
        if c != ")":
            cur.fail("expected ')'" if matched else "unknown vlan field", cur.i - 1)
        break
    return nla(U.OVS_KEY_ATTR_VLAN, _BE16.pack(tci)), nla(U.OVS_KEY_ATTR_VLAN, _BE16.pack(mask))


_MPLS_FIELDS = (("label=", 20, 12), ("tc=", 3, 9), ("ttl=", 8, 0), ("bos=", 1, 8))


def _parse_mpls(cur):
    keys = [0, 0, 0]
    masks = [0, 0, 0]
    idx = 0
    seen = set()
    while True:
        matched = False
        for prefix, bits, shift in _MPLS_FIELDS:
            if cur.startswith(prefix):
                if prefix in seen:
                    seen = set()
                    idx += 1
                    if idx == 3:
                        cur.fail("too many MPLS labels")
                cur.i += len(prefix)
                fm = ((1 << bits) - 1) << shift
                start = cur.i
                v = scan_uint(cur, 0, 32, prefix[:-1])
                if v >> bits:
                    cur.fail(f"{prefix[:-1]} {v} out of range", start)
                keys[idx] = (keys[idx] & ~fm) | (v << shift)
                if cur.accept("/"):
                    mv = scan_uint(cur, 0, 32, prefix[:-1] + " mask")
                    if mv >> bits:
                        cur.fail(f"{prefix[:-1]} mask out of range", start)
                    masks[idx] = (masks[idx] & ~fm) | (mv << shift)
                else:
                    masks[idx] |= fm
                seen.add(prefix)
                matched = True
                break
        c = cur.peek()
        cur.i += 1
        if matched and c == ",":
            continue
        if c != ")":
            cur.fail("expected ')'" if matched else "unknown mpls field", cur.i - 1)
        break
    n = idx + 1
    k = b"".join(_BE32.pack(x) for x in keys[:n])
    m = b"".join(_BE32.pack(x) for x in masks[:n])
    return nla(U.OVS_KEY_ATTR_MPLS, k), nla(U.OVS_KEY_ATTR_MPLS, m)


def _parse_in_port(cur, ctx):
    if cur.peek().isdigit() or cur.peek() == "+":
        v, m = scan_masked_uint(cur, 32, "port")
    else:
        name = scan_name(cur, ")")
        names = ctx.port_names or {}
        if name not in names:
            cur.fail(f"unknown port name '{name}'" if name else "expected port", cur.i - len(name))
        v, m = names[name], 0xFFFFFFFF
    _close(cur)
    return nla(U.OVS_KEY_ATTR_IN_PORT, _U32.pack(v)), nla(U.OVS_KEY_ATTR_IN_PORT, _U32.pack(m))


def _scan_erspan(cur):
    ver = vmask = idx = imask = dir_ = dmask = hwid = hmask = 0
    if cur.accept("ver="):
        ver, vmask = scan_masked_uint(cur, 8, "ver")
    cur.accept(",")
    if ver == 1:
        if cur.accept("idx="):
            idx, imask = scan_masked_uint(cur, 32, "idx")
        key = struct.pack("=I", 1) + _BE32.pack(idx) + bytes(4)
        mask = struct.pack("=I", vmask) + _BE32.pack(imask) + bytes(4)
    elif ver == 2:
        if cur.accept("dir="):
            dir_, dmask = scan_masked_uint(cur, 8, "dir")
        cur.accept(",")
        if cur.accept("hwid="):
            hwid, hmask = scan_masked_uint(cur, 8, "hwid")
        key = struct.pack("=I", 2) + bytes(7) + bytes([(dir_ & 1) << 3 | (hwid & 0xF) << 4])
        mask = struct.pack("=I", vmask) + bytes(7) + bytes([(dmask & 1) << 3
                                                             | (hmask & 0xF) << 4])
    else:
        cur.fail("erspan ver must be 1 or 2")
    _close(cur)
    return key, mask


def _scan_vxlan_gbp(cur):
    gid = gidm = fl = flm = 0
    if cur.accept("id="):
        gid, gidm = scan_masked_uint(cur, 16, "gbp id")
    cur.accept(",")
    if cur.accept("flags="):
        fl, flm = scan_masked_uint(cur, 8, "gbp flags")
    if not cur.accept("))"):
        cur.fail("expected '))'")
    return (fl << 16) | gid, (flm << 16) | gidm


def _scan_geneve(cur):
    key = bytearray()
    mask = bytearray()
    remain = 252
    while cur.peek() == "{" and remain >= 4:
        cur.i += 1
        remain -= 4
        cls = clsm = typ = typm = 0
        data_len = 0
        lenm = 0x1F
        if cur.accept("class="):
            cls, clsm = scan_masked_uint(cur, 16, "class")
        cur.accept(",")
        if cur.accept("type="):
            typ, typm = scan_masked_uint(cur, 8, "type")
        cur.accept(",")
        if cur.accept("len="):
            start = cur.i
            opt_len, opt_len_m = scan_masked_uint(cur, 8, "len")
            if opt_len > 124 or opt_len % 4 or opt_len > remain:
                cur.fail("invalid geneve option length", start)
            data_len = opt_len
            lenm = opt_len_m & 0x1F
        data = bytes(data_len)
        mdata = b"\xff" * data_len
        if cur.accept(","):
            data = scan_int_string(cur, data_len, "option data")
        if cur.accept("/"):
            mdata = scan_int_string(cur, data_len, "option mask")
        if not cur.accept("}"):
            cur.fail("expected '}'")
        key += struct.pack("!HBB", cls, typ, data_len // 4) + data
        mask += struct.pack("!HBB", clsm, typm, lenm) + mdata
        remain -= data_len
    _close(cur)
    return bytes(key), bytes(mask)


def _parse_tunnel(cur):
    kparts, mparts = [], []

    def put(t, k, m):
        kparts.append(nla(t, k))
        mparts.append(nla(t, m))

    simple = {
        "tun_id=": (U.OVS_TUNNEL_KEY_ATTR_ID, lambda c: scan_masked_uint(c, 64, "tun_id"),
                    _BE64.pack),
        "src=": (U.OVS_TUNNEL_KEY_ATTR_IPV4_SRC, scan_masked_ipv4, None),
        "dst=": (U.OVS_TUNNEL_KEY_ATTR_IPV4_DST, scan_masked_ipv4, None),
        "ipv6_src=": (U.OVS_TUNNEL_KEY_ATTR_IPV6_SRC, scan_masked_in6, None),
        "ipv6_dst=": (U.OVS_TUNNEL_KEY_ATTR_IPV6_DST, scan_masked_in6, None),
        "tos=": (U.OVS_TUNNEL_KEY_ATTR_TOS, lambda c: scan_masked_uint(c, 8, "tos"),
                 lambda v: bytes([v])),
        "ttl=": (U.OVS_TUNNEL_KEY_ATTR_TTL, lambda c: scan_masked_uint(c, 8, "ttl"),
                 lambda v: bytes([v])),
        "tp_src=": (U.OVS_TUNNEL_KEY_ATTR_TP_SRC, lambda c: scan_masked_uint(c, 16, "tp_src"),
                    _BE16.pack),
        "tp_dst=": (U.OVS_TUNNEL_KEY_ATTR_TP_DST, lambda c: scan_masked_uint(c, 16, "tp_dst"),
                    _BE16.pack),
    }
    while True:
        matched = True
        for prefix, (t, scanner, packer) in simple.items():
            if cur.accept(prefix):
                v, m = scanner(cur)
                if packer:
                    v, m = packer(v), packer(m)
                put(t, v, m)
                break
        else:
            if cur.accept("erspan("):
                k, m = _scan_erspan(cur)
                put(U.OVS_TUNNEL_KEY_ATTR_ERSPAN_OPTS, k, m)
            elif cur.accept("vxlan(gbp("):
                k, m = _scan_vxlan_gbp(cur)
                if k:
                    kparts.append(nla_nest(U.OVS_TUNNEL_KEY_ATTR_VXLAN_OPTS,
                                           nla(U.OVS_VXLAN_EXT_GBP, _U32.pack(k))))
                if m:
                    mparts.append(nla_nest(U.OVS_TUNNEL_KEY_ATTR_VXLAN_OPTS,
                                           nla(U.OVS_VXLAN_EXT_GBP, _U32.pack(m))))
            elif cur.accept("geneve("):
                k, m = _scan_geneve(cur)
                put(U.OVS_TUNNEL_KEY_ATTR_GENEVE_OPTS, k, m)
            elif cur.accept("flags("):
                f, fm = scan_flags(cur, tun_flag_to_string, ")", FLOW_TNL_F_MASK, True,
                                   "tunnel flag")
                _close(cur)
                for bits, buf in ((f, kparts), (fm, mparts)):
                    if bits & FLOW_TNL_F_DONT_FRAGMENT:
                        buf.append(nla(U.OVS_TUNNEL_KEY_ATTR_DONT_FRAGMENT))
                    if bits & FLOW_TNL_F_CSUM:
                        buf.append(nla(U.OVS_TUNNEL_KEY_ATTR_CSUM))
                    if bits & FLOW_TNL_F_OAM:
                        buf.append(nla(U.OVS_TUNNEL_KEY_ATTR_OAM))
            else:
                matched = False
        c = cur.peek()
        if matched and c == ",":
            cur.i += 1
            continue
        if c == ")":
            cur.i += 1
            break
        if matched:
            cur.fail("expected ',' or ')'")
        name = scan_name(Cursor(cur.s, cur.i), ",)=(")
        cur.fail(f"unknown tunnel field '{name}'" if name else "expected ')'")
    k = nla_nest(U.OVS_KEY_ATTR_TUNNEL, *kparts)
    m = nla_nest(U.OVS_KEY_ATTR_TUNNEL, *mparts)
    if len(k) > 0xFFFF:
        cur.fail("tunnel key too large")
    return k, m


def _parse_nsh(cur):
    k = dict(flags=0, ttl=0, mdtype=0, np=0, spi=0, si=0, c=[0, 0, 0, 0])
    m = dict(flags=0, ttl=0, mdtype=0, np=0, spi=0, si=0, c=[0, 0, 0, 0])
    # parse_odp_nsh_key_mask_attr() has no "ttl=" (OVS prints ttl but cannot
    # read it back): a key or set(nsh()) naming it is an error there too.
    fields = {"flags=": 8, "mdtype=": 8, "np=": 8, "spi=": 32, "si=": 8}
    while True:
        matched = False
        for prefix, bits in fields.items():
            if cur.accept(prefix):
                k[prefix[:-1]], m[prefix[:-1]] = scan_masked_uint(cur, bits, prefix[:-1])
                matched = True
                break
        else:
            for i in range(4):
                if cur.accept(f"c{i + 1}="):
                    k["c"][i], m["c"][i] = scan_masked_uint(cur, 32, f"c{i + 1}")
                    matched = True
                    break
        c = cur.peek()
        cur.i += 1
        if matched and c == ",":
            continue
        if c != ")":
            cur.fail("expected ')'" if matched else "unknown nsh field", cur.i - 1)
        break

    def attr(d, is_mask):
        base = U.OVS_KEY_NSH_BASE.pack(d["flags"], d["ttl"], d["mdtype"], d["np"],
                                       ((d["spi"] << 8) | d["si"]) & 0xFFFFFFFF)
        parts = [nla(U.OVS_NSH_KEY_ATTR_BASE, base)]
        if is_mask or d["mdtype"] == 1:
            parts.append(nla(U.OVS_NSH_KEY_ATTR_MD1, U.OVS_KEY_NSH_MD1.pack(*d["c"])))
        return nla_nest(U.OVS_KEY_ATTR_NSH, *parts)

    return attr(k, False), attr(m, True)


def _parse_generic(cur, atype):
    """``keyN(xx xx[/xx xx])``: an attribute OVS has no name for."""
    from ._util import scan_hex_bytes

    k = scan_hex_bytes(cur)
    m = b"\xff" * len(k)
    if cur.accept("/"):
        m = scan_hex_bytes(cur)
    _close(cur)
    return nla(atype, k), nla(atype, m)


def parse_key_attr(cur, ctx):
    """parse_odp_key_mask_attr(): one attribute -> (key bytes, mask bytes)."""
    with ctx.nested(cur):
        return _parse_key_attr(cur, ctx)


def _parse_key_attr(cur, ctx):
    s = cur.s
    j = cur.i
    while j < len(s) and (s[j].isalnum() or s[j] == "_"):
        j += 1
    name = s[cur.i:j]
    if not s.startswith("(", j):
        cur.fail(f"unknown key attribute '{name}'" if name else "expected key attribute")
    cur.i = j + 1
    if name in _SINGLE_U32:
        t = _SINGLE_U32[name]
        v, m = scan_masked_uint(cur, 32)
        _close(cur)
        return nla(t, _U32.pack(v)), nla(t, _U32.pack(m))
    if name == "recirc_id":
        v = scan_uint(cur, 0, 32, "recirc_id")
        _close(cur)
        t = U.OVS_KEY_ATTR_RECIRC_ID
        return nla(t, _U32.pack(v)), nla(t, _U32.pack(0xFFFFFFFF))
    if name == "ct_zone":
        v, m = scan_masked_uint(cur, 16, "ct_zone")
        _close(cur)
        t = U.OVS_KEY_ATTR_CT_ZONE
        return nla(t, _U16.pack(v)), nla(t, _U16.pack(m))
    if name == "ct_state":
        v, m = scan_flags(cur, ct_state_to_string, ")", CT_STATE_ALLOWED, True, "ct_state flag")
        _close(cur)
        t = U.OVS_KEY_ATTR_CT_STATE
        return nla(t, _U32.pack(v)), nla(t, _U32.pack(m))
    if name == "ct_label":
        v = scan_int_string(cur, 16, "ct_label")
        m = b"\xff" * 16
        if cur.accept("/"):
            m = scan_int_string(cur, 16, "ct_label mask")
        _close(cur)
        t = U.OVS_KEY_ATTR_CT_LABELS
        return nla(t, _le128(v)), nla(t, _le128(m))
    if name == "eth_type":
        v, m = scan_masked_uint(cur, 16, "eth_type")
        _close(cur)
        t = U.OVS_KEY_ATTR_ETHERTYPE
        return nla(t, _BE16.pack(v)), nla(t, _BE16.pack(m))
    if name == "tcp_flags":
        v, m = scan_flags(cur, tcp_flag_to_string, ")", TCP_FLAGS_MASK, True, "tcp flag")
        _close(cur)
        t = U.OVS_KEY_ATTR_TCP_FLAGS
        return nla(t, _BE16.pack(v & 0xFFFF)), nla(t, _BE16.pack(m & 0xFFFF))
    if name in _STRUCTS:
        return _struct_attr(cur, *_STRUCTS[name])
    if name == "in_port":
        return _parse_in_port(cur, ctx)
    if name == "vlan":
        return _parse_vlan(cur)
    if name == "mpls":
        return _parse_mpls(cur)
    if name == "tunnel":
        return _parse_tunnel(cur)
    if name == "nsh":
        return _parse_nsh(cur)
    if name == "encap":
        kparts, mparts = [], []
        while True:
            cur.skip_delims()
            if cur.at_end():
                cur.fail("expected ')'")
            if cur.accept(")"):
                break
            k, m = parse_key_attr(cur, ctx)
            kparts.append(k)
            mparts.append(m)
        k = nla_nest(U.OVS_KEY_ATTR_ENCAP, *kparts)
        if len(k) > 0xFFFF:
            cur.fail("encap too large")
        return k, nla_nest(U.OVS_KEY_ATTR_ENCAP, *mparts)
    if name.startswith("key") and name[3:].isdigit() and int(name[3:]) <= 0x3FFF:
        return _parse_generic(cur, int(name[3:]))
    cur.i = j - len(name)
    cur.fail(f"unknown key attribute '{name}'")


def parse_key(text, port_names=None):
    """Parse a flow key as odp_flow_from_string() does.

    Returns ``(key, mask)``: two netlink attribute streams with the
    attributes in text order.  Fields left out of an attribute are zero
    with a zero mask; a field without ``/mask`` is exact; ``recirc_id`` is
    always exact.  A leading ``ufid:UUID`` is skipped.  ``port_names`` maps
    names to port numbers for ``in_port(NAME)``.  Raises
    :class:`OdpParseError`.
    """
    ctx = _Ctx(port_names)
    cur = Cursor(text)
    kparts, mparts = [], []
    while True:
        cur.skip_delims()
        if cur.at_end():
            break
        start = cur.i
        try:
            if cur.accept("ufid:"):
                u = scan_name(cur, DELIMITERS)
                if not _is_uuid(u):
                    cur.fail("invalid ufid", start)
                cur.accept(" ")
                continue
            k, m = parse_key_attr(cur, ctx)
        except _Fail as e:
            raise OdpParseError(text, start, e.reason, e.pos) from None
        except NetlinkError as e:           # an attribute too long for nla_len
            raise OdpParseError(text, start, e.msg, cur.i) from None
        kparts.append(k)
        mparts.append(m)
    key, mask = b"".join(kparts), b"".join(mparts)
    if len(key) > MAX_ATTR_PAYLOAD:
        raise OdpParseError(text, 0, f"a key of {len(key)} bytes does not fit one attribute "
                                     f"({MAX_ATTR_PAYLOAD} bytes at most)")
    return key, mask


def _is_uuid(u):
    import uuid

    try:
        uuid.UUID(u)
    except ValueError:
        return False
    return len(u) == 36
