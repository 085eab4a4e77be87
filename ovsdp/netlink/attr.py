"""Netlink attribute codec and policy validation (lib/nlattr.c).

Encoding: small functions returning ``bytes`` (header + payload + padding), so
that a message is built by joining pieces.  Decoding: :func:`parse` walks an
attribute stream, validates each attribute against a policy the way the
kernel's liberal (``genlmsg_parse_deprecated``) parser does, and returns a
dict from attribute type to payload ``bytes``.  Errors raise
:class:`NetlinkError` carrying errno, an extended-ack message and the offset of
the offending attribute.
"""

import errno
import struct

from ..uapi import NLA_ALIGNTO, NLA_F_NESTED, NLA_HDRLEN, NLA_TYPE_MASK

_NLA = struct.Struct("=HH")
MAX_ATTR_PAYLOAD = 0xFFFF - NLA_HDRLEN     # what one attribute can carry
_U8 = struct.Struct("=B")
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_S8 = struct.Struct("=b")
_S16 = struct.Struct("=h")
_S32 = struct.Struct("=i")
_S64 = struct.Struct("=q")
_BE16 = struct.Struct("!H")
_BE32 = struct.Struct("!I")
_BE64 = struct.Struct("!Q")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


class NetlinkError(Exception):
    """An errno with an extended-ack message, as a netlink request fails.

    ``offset`` is the byte offset of the offending attribute from the start
    of the netlink message when known (NLMSGERR_ATTR_OFFS), else None.
    """

    def __init__(self, err, msg=None, offset=None):
        super().__init__(err, msg or "")
        self.errno = err
        self.msg = msg
        self.offset = offset

    def __str__(self):
        text = errno.errorcode.get(self.errno, str(self.errno))
        return f"{text}: {self.msg}" if self.msg else text


def align(n):
    return (n + NLA_ALIGNTO - 1) & ~(NLA_ALIGNTO - 1)


# ----------------------------------------------------------------- encoding
def nla(atype, payload=b""):
    """One attribute: header, payload, zero padding to 4 bytes."""
    n = len(payload)
    try:
        return _NLA.pack(NLA_HDRLEN + n, atype) + payload + _PAD[n & 3]
    except struct.error:
        raise _too_long(atype, n) from None


def nla_nest(atype, *parts, flag=False):
    """A nested attribute holding the already-encoded ``parts``.

    The kernel sets NLA_F_NESTED only where it uses nla_nest_start (not the
    _noflag variant); OVS uses _noflag everywhere, so ``flag`` defaults off.
    """
    body = b"".join(parts)
    try:
        return _NLA.pack(NLA_HDRLEN + len(body), atype | (NLA_F_NESTED if flag else 0)) + body
    except struct.error:
        raise _too_long(atype, len(body)) from None


def _too_long(atype, n):
    """An attribute whose length does not fit nla_len (a u16): EMSGSIZE."""
    if not 0 <= atype <= 0xFFFF:
        return NetlinkError(errno.EINVAL, f"attribute type {atype} is out of range")
    return NetlinkError(errno.EMSGSIZE, f"attribute {atype & NLA_TYPE_MASK} of {n} bytes "
                                        f"exceeds the {MAX_ATTR_PAYLOAD}-byte maximum")


def nla_flag(atype):
    return _NLA.pack(NLA_HDRLEN, atype)


def nla_u8(atype, v):
    return _NLA.pack(5, atype) + _U8.pack(v) + b"\0\0\0"


def nla_u16(atype, v):
    return _NLA.pack(6, atype) + _U16.pack(v) + b"\0\0"


def nla_u32(atype, v):
    return _NLA.pack(8, atype) + _U32.pack(v)


def nla_s32(atype, v):
    return _NLA.pack(8, atype) + _S32.pack(v)


def nla_u64(atype, v):
    return _NLA.pack(12, atype) + _U64.pack(v)


def nla_be16(atype, v):
    return _NLA.pack(6, atype) + _BE16.pack(v) + b"\0\0"


def nla_be32(atype, v):
    return _NLA.pack(8, atype) + _BE32.pack(v)


def nla_be64(atype, v):
    return _NLA.pack(12, atype) + _BE64.pack(v)


def nla_string(atype, s):
    """NUL-terminated string attribute (nla_put_string).

    Names are bytes on the wire; a str is encoded back the way
    :func:`get_string` decoded it, so names that are not UTF-8 survive.
    """
    if isinstance(s, str):
        s = s.encode("utf-8", "surrogateescape")
    return nla(atype, s + b"\0")


def nla_u32_array(atype, values):
    return nla(atype, struct.pack(f"={len(values)}I", *values))


# ----------------------------------------------------------------- decoding
def iter_attrs(buf, base=0):
    """Yield (type_with_flags, payload, offset) for each well-formed attribute.

    Stops at the first attribute whose header is short or whose length runs
    past the buffer, exactly like nla_for_each_attr + nla_ok; the caller can
    learn how many bytes were left over from the last offset.  ``base`` is
    added to offsets (to make them relative to the message).
    """
    n = len(buf)
    off = 0
    unpack = _NLA.unpack_from
    while n - off >= NLA_HDRLEN:
        alen, atype = unpack(buf, off)
        if alen < NLA_HDRLEN or alen > n - off:
            return
        yield atype, bytes(buf[off + NLA_HDRLEN:off + alen]), base + off
        off += align(alen)


def attr_list(buf):
    """[(type, payload)] of an attribute stream (flags masked off), and the
    bytes nla_for_each_attr leaves unparsed after the last good one."""
    out = []
    end = 0
    for raw, payload, off in iter_attrs(buf):
        out.append((raw & NLA_TYPE_MASK, payload))
        end = off + align(NLA_HDRLEN + len(payload))
    return out, bytes(buf[end:]) if end < len(buf) else b""


def find(buf, atype):
    """nla_find(): the payload of the first attribute of ``atype`` (flags
    masked off) in ``buf``, or None."""
    for raw, payload, _ in iter_attrs(buf or b""):
        if raw & NLA_TYPE_MASK == atype:
            return payload
    return None


def leftover(buf):
    """Bytes that nla_for_each_attr would leave unparsed (0 when clean)."""
    n = len(buf)
    off = 0
    while n - off >= NLA_HDRLEN:
        alen, _ = _NLA.unpack_from(buf, off)
        if alen < NLA_HDRLEN or alen > n - off:
            return n - off
        off += align(alen)
    return max(0, n - off)


# Policy kinds (enum nla_policy type, the subset the OVS families use).
UNSPEC = "unspec"
FLAG = "flag"
U8, U16, U32, U64 = "u8", "u16", "u32", "u64"
S8, S16, S32, S64 = "s8", "s16", "s32", "s64"
BE16, BE32, BE64 = "be16", "be32", "be64"
STRING = "string"
NUL_STRING = "nul_string"
BINARY = "binary"
NESTED = "nested"

_MINLEN = {U8: 1, U16: 2, U32: 4, U64: 8, S8: 1, S16: 2, S32: 4, S64: 8,
           BE16: 2, BE32: 4, BE64: 8, NESTED: NLA_HDRLEN}
_RANGE_UNPACK = {U8: _U8, U16: _U16, U32: _U32, U64: _U64, S8: _S8, S16: _S16,
                 S32: _S32, S64: _S64, BE16: _BE16, BE32: _BE32, BE64: _BE64}


class Policy:
    """One entry of an nla_policy table."""

    __slots__ = ("kind", "len", "min", "max")

    def __init__(self, kind, length=0, min=None, max=None):
        self.kind = kind
        self.len = length
        self.min = min
        self.max = max

    def __repr__(self):
        return f"Policy({self.kind!r}, len={self.len}, min={self.min}, max={self.max})"


POLICY_FAILED = "Attribute failed policy validation"


def validate_nla(atype, payload, pt, offset):
    """validate_nla() for liberal parsing: raise NetlinkError on failure."""
    kind = pt.kind
    alen = len(payload)
    if kind == FLAG:
        if alen > 0:
            raise NetlinkError(errno.ERANGE, POLICY_FAILED, offset)
    elif kind in (NUL_STRING, STRING):
        if kind == NUL_STRING:
            minlen = min(alen, pt.len + 1) if pt.len else alen
            if not minlen or b"\0" not in payload[:minlen]:
                raise NetlinkError(errno.EINVAL, POLICY_FAILED, offset)
        if alen < 1:
            raise NetlinkError(errno.ERANGE, POLICY_FAILED, offset)
        if pt.len:
            n = alen - 1 if payload[-1] == 0 else alen
            if n > pt.len:
                raise NetlinkError(errno.ERANGE, POLICY_FAILED, offset)
    elif kind == BINARY:
        if pt.len and alen > pt.len:
            raise NetlinkError(errno.ERANGE, POLICY_FAILED, offset)
    elif kind == NESTED:
        if alen and alen < NLA_HDRLEN:
            raise NetlinkError(errno.ERANGE, POLICY_FAILED, offset)
    elif kind == UNSPEC:
        if alen < pt.len:
            raise NetlinkError(errno.ERANGE, POLICY_FAILED, offset)
    else:
        minlen = pt.len or _MINLEN[kind]
        if alen < minlen:
            raise NetlinkError(errno.ERANGE, POLICY_FAILED, offset)
    if pt.min is not None or pt.max is not None:
        value = _RANGE_UNPACK[kind].unpack_from(payload)[0]
        if (pt.min is not None and value < pt.min) or (pt.max is not None and value > pt.max):
            raise NetlinkError(errno.ERANGE, "integer out of range", offset)


def parse(buf, maxtype, policy=None, base=0):
    """Parse an attribute stream like __nla_validate_parse(NL_VALIDATE_LIBERAL).

    Returns {type: payload bytes}.  Types 0 and above ``maxtype`` are ignored;
    a repeated type keeps the last occurrence; leftover bytes are ignored.
    ``policy`` maps type -> Policy; types without an entry are NLA_UNSPEC
    with no minimum length.  ``base`` is the offset of ``buf`` inside the
    netlink message, so that errors point at the right attribute.
    """
    tb = {}
    for raw, payload, off in iter_attrs(buf, base):
        atype = raw & NLA_TYPE_MASK
        if atype == 0 or atype > maxtype:
            continue
        if policy is not None:
            pt = policy.get(atype)
            if pt is not None:
                validate_nla(atype, payload, pt, off)
        tb[atype] = payload
    return tb


def parse_with_offsets(buf, maxtype, policy=None, base=0):
    """Like :func:`parse` but returns {type: (payload, offset)}."""
    attrs, offsets = parse_split(buf, maxtype, policy, base)
    return {t: (p, offsets[t]) for t, p in attrs.items()}


def parse_split(buf, maxtype, policy=None, base=0):
    """Like :func:`parse` but returns ``({type: payload}, {type: offset})``.

    This is what every request goes through (genl_rcv_msg), so the walk of
    :func:`iter_attrs` is written out here.
    """
    attrs = {}
    offsets = {}
    n = len(buf)
    off = 0
    unpack = _NLA.unpack_from
    get = policy.get if policy is not None else None
    while n - off >= NLA_HDRLEN:
        alen, raw = unpack(buf, off)
        if alen < NLA_HDRLEN or alen > n - off:
            break
        atype = raw & NLA_TYPE_MASK
        if atype and atype <= maxtype:
            payload = bytes(buf[off + NLA_HDRLEN:off + alen])
            if get is not None:
                pt = get(atype)
                if pt is not None:
                    validate_nla(atype, payload, pt, base + off)
            attrs[atype] = payload
            offsets[atype] = base + off
        off += (alen + 3) & ~3
    return attrs, offsets


# ------------------------------------------------------- payload accessors
def get_u8(p):
    return p[0]


def get_u16(p):
    return _U16.unpack_from(p)[0]


def get_u32(p):
    return _U32.unpack_from(p)[0]


def get_s32(p):
    return _S32.unpack_from(p)[0]


def get_u64(p):
    return _U64.unpack_from(p)[0]


def get_be16(p):
    return _BE16.unpack_from(p)[0]


def get_be32(p):
    return _BE32.unpack_from(p)[0]


def get_be64(p):
    return _BE64.unpack_from(p)[0]


def get_string(p):
    """nla_data() as a C string: up to the first NUL."""
    i = p.find(b"\0")
    return (p if i < 0 else p[:i]).decode("utf-8", "surrogateescape")


def get_u32_array(p):
    n = len(p) // 4
    return list(struct.unpack_from(f"={n}I", p))
