"""Shared helpers for the datapath flow text format (lib/odp-util.c style).

Formatting helpers return text pieces that, like OVS's ``ds_put_*`` calls,
usually end with a ``,`` separator; :func:`chomp` removes one trailing
separator the way ``ds_chomp`` does.  Parsing works on a :class:`Cursor`
over the input text: scanning primitives mimic OVS's ``ovs_scan`` (``%i``
accepts decimal, ``0x`` hex and leading-zero octal) and raise
:class:`OdpParseError` on failure.
"""

import struct

DELIMITERS = ", \t\r\n"
DELIMITERS_END = ", \t\r\n)"


class OdpParseError(ValueError):
    """A flow key or action string that does not parse.

    ``str()`` reads like OVS's odp_flow_from_string() error, ``syntax error
    at <text>``, followed by the reason.  ``offset`` is the index in the
    input where the failing element starts and ``pos`` the index of the
    exact character that could not be consumed.
    """

    def __init__(self, text, offset, reason, pos=None):
        self.text = text
        self.offset = offset
        self.pos = offset if pos is None else pos
        self.reason = reason
        super().__init__(f"syntax error at {text[offset:]} ({reason})")


class _Fail(Exception):
    """Internal: a scan failed at ``pos`` for ``reason``."""

    def __init__(self, pos, reason):
        super().__init__(reason)
        self.pos = pos
        self.reason = reason


# --------------------------------------------------------------- formatting
def chomp(s, ch=","):
    return s[:-1] if s.endswith(ch) else s


def fmt_hex_x(v):
    """C ``%#x``: 0 prints as ``0``."""
    return "0" if v == 0 else f"{v:#x}"


def fmt_ip(b):
    return "%d.%d.%d.%d" % tuple(b[:4])


def fmt_eth(b):
    return ":".join(f"{x:02x}" for x in b[:6])


def fmt_in6(b):
    """inet_ntop(AF_INET6) as glibc prints it (BIND algorithm)."""
    words = struct.unpack("!8H", b[:16])
    best_base, best_len = -1, 0
    cur_base, cur_len = -1, 0
    for i, w in enumerate(words):
        if w == 0:
            if cur_base < 0:
                cur_base, cur_len = i, 1
            else:
                cur_len += 1
        elif cur_base >= 0:
            if best_base < 0 or cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if cur_base >= 0 and (best_base < 0 or cur_len > best_len):
        best_base, best_len = cur_base, cur_len
    if best_base >= 0 and best_len < 2:
        best_base = -1
    out = []
    i = 0
    while i < 8:
        if best_base >= 0 and best_base <= i < best_base + best_len:
            if i == best_base:
                out.append(":")
            i += 1
            continue
        if i != 0:
            out.append(":")
        if (i == 6 and best_base == 0
                and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF))):
            out.append(fmt_ip(b[12:16]))
            break
        out.append(f"{words[i]:x}")
        i += 1
    if best_base >= 0 and best_base + best_len == 8:
        out.append(":")
    return "".join(out)


def put_hex(b):
    """ds_put_hex(): ``0x`` and the bytes without leading zero bytes, or ``0``."""
    i = 0
    while i < len(b) and b[i] == 0:
        i += 1
    if i == len(b):
        return "0"
    return f"0x{b[i]:x}" + b[i + 1:].hex()


def spaced_hex(b):
    """format_generic_odp_key(): bytes as ``xx xx xx``."""
    return " ".join(f"{x:02x}" for x in b)


def format_flags(bit_to_string, flags, delim):
    """format_flags() from lib/util.c."""
    if not flags:
        return "0"
    out = []
    bad = 0
    while flags:
        bit = flags & -flags
        name = bit_to_string(bit)
        if name:
            out.append(name)
        else:
            bad |= bit
        flags &= ~bit
    if bad:
        out.append(f"0x{bad:x}")
    return delim.join(out)


def format_flags_masked(bit_to_string, flags, mask, max_mask):
    """format_flags_masked() without a field name."""
    if mask == max_mask:
        return format_flags(bit_to_string, flags, "|")
    if not mask:
        return "0/0"
    out = []
    while mask:
        bit = mask & -mask
        name = bit_to_string(bit)
        out.append(("+" if flags & bit else "-") + (name or "[Unknown]"))
        mask &= ~bit
    return "".join(out)


def is_all(b, val):
    return all(x == val for x in b)


# ------------------------------------------------------------------ parsing
class Cursor:
    """A position in the text being parsed."""

    __slots__ = ("s", "i")

    def __init__(self, s, i=0):
        self.s = s
        self.i = i

    def peek(self, n=1):
        return self.s[self.i:self.i + n]

    def startswith(self, prefix):
        return self.s.startswith(prefix, self.i)

    def accept(self, prefix):
        if self.s.startswith(prefix, self.i):
            self.i += len(prefix)
            return True
        return False

    def expect(self, prefix, what=None):
        if not self.accept(prefix):
            raise _Fail(self.i, f"expected '{prefix}'" + (f" {what}" if what else ""))

    def skip_delims(self, delims=DELIMITERS):
        n = len(self.s)
        while self.i < n and self.s[self.i] in delims:
            self.i += 1

    def at_end(self):
        return self.i >= len(self.s)

    def fail(self, reason, pos=None):
        raise _Fail(self.i if pos is None else pos, reason)


_DIGITS = "0123456789abcdefABCDEF"


def scan_uint(cur, base=0, bits=32, what="number"):
    """strtoull-style unsigned integer (``%i`` when base is 0)."""
    s = cur.s
    i = start = cur.i
    n = len(s)
    if i < n and s[i] == "+":
        i += 1
    b = base
    if b in (0, 16) and s.startswith(("0x", "0X"), i) and i + 2 < n and s[i + 2] in _DIGITS:
        i += 2
        b = 16
    elif b == 0:
        b = 8 if (i < n and s[i] == "0") else 10
    digits = _DIGITS[:b] if b <= 10 else _DIGITS
    j = i
    while j < n and s[j] in digits:
        j += 1
    if j == i:
        raise _Fail(start, f"expected {what}")
    v = int(s[i:j], b)
    if v >> bits:
        raise _Fail(start, f"{what} {s[start:j]} out of range")
    cur.i = j
    return v


def scan_masked_uint(cur, bits, what="number", want_mask=True):
    """``value[/mask]``; the mask defaults to all ones."""
    v = scan_uint(cur, 0, bits, what)
    m = (1 << bits) - 1
    if want_mask and cur.accept("/"):
        m = scan_uint(cur, 0, bits, what + " mask")
    return v, m


def scan_ipv4(cur, what="IPv4 address"):
    s = cur.s
    start = cur.i
    parts = []
    for k in range(4):
        if k:
            if not cur.accept("."):
                raise _Fail(start, f"invalid {what}")
        j = cur.i
        while j < len(s) and s[j].isdigit() and j - cur.i < 3:
            j += 1
        if j == cur.i:
            raise _Fail(start, f"invalid {what}")
        val = int(s[cur.i:j])
        if val > 255:
            raise _Fail(start, f"invalid {what}")
        parts.append(val)
        cur.i = j
    return bytes(parts)


def scan_masked_ipv4(cur, want_mask=True):
    v = scan_ipv4(cur)
    m = b"\xff" * 4
    if want_mask and cur.accept("/"):
        m = scan_ipv4(cur, "IPv4 mask")
    return v, m


_IPV6_CHARS = set("0123456789abcdefABCDEF:.")


def _pton6(text):
    import ipaddress

    if "%" in text or not text:
        return None
    try:
        return ipaddress.IPv6Address(text).packed
    except ValueError:
        return None


def scan_in6(cur, what="IPv6 address"):
    s = cur.s
    j = cur.i
    while j < len(s) and s[j] in _IPV6_CHARS and j - cur.i < 46:
        j += 1
    b = _pton6(s[cur.i:j])
    if b is None:
        raise _Fail(cur.i, f"invalid {what}")
    cur.i = j
    return b


def scan_masked_in6(cur, want_mask=True):
    v = scan_in6(cur)
    m = b"\xff" * 16
    if want_mask and cur.i < len(cur.s) and cur.s[cur.i] == "/":
        save = cur.i
        cur.i += 1
        try:
            m = scan_in6(cur, "IPv6 mask")
        except _Fail:
            cur.i = save
            m = b"\xff" * 16
    return v, m


def scan_eth(cur, what="Ethernet address"):
    s = cur.s
    start = cur.i
    out = []
    for k in range(6):
        if k and not cur.accept(":"):
            raise _Fail(start, f"invalid {what}")
        j = cur.i
        while j < len(s) and s[j] in _DIGITS and j - cur.i < 2:
            j += 1
        if j == cur.i:
            raise _Fail(start, f"invalid {what}")
        out.append(int(s[cur.i:j], 16))
        cur.i = j
    return bytes(out)


def scan_masked_eth(cur, want_mask=True):
    v = scan_eth(cur)
    m = b"\xff" * 6
    if want_mask and cur.accept("/"):
        m = scan_eth(cur, "Ethernet mask")
    return v, m


def scan_int_string(cur, nbytes, what="value"):
    """parse_int_string(): a hex (``0x``) or decimal number as big-endian bytes."""
    s = cur.s
    start = cur.i
    if s.startswith(("0x", "0X"), cur.i):
        j = cur.i + 2
        while j < len(s) and s[j] in _DIGITS:
            j += 1
        if j == cur.i + 2:
            raise _Fail(start, f"expected hexadecimal {what}")
        v = int(s[cur.i + 2:j], 16)
    else:
        j = cur.i
        while j < len(s) and s[j].isdigit():
            j += 1
        if j == cur.i:
            raise _Fail(start, f"expected {what}")
        v = int(s[cur.i:j])
    if v.bit_length() > nbytes * 8:
        raise _Fail(start, f"{what} too large for {nbytes} bytes")
    cur.i = j
    return v.to_bytes(nbytes, "big")


def scan_flags(cur, bit_to_string, end, allowed, want_mask, what="flag"):
    """parse_flags(): ``a|b``, ``+a-b`` (masked) or ``value/mask`` numbers.

    Returns (flags, mask); an unmasked form gives mask 0xffffffff.
    """
    s = cur.s
    start = cur.i
    if want_mask:
        save = cur.i
        try:
            v = scan_uint(cur, 0, 32)
            if cur.accept("/"):
                m = scan_uint(cur, 0, 32)
                if v & ~allowed or m & ~allowed:
                    raise _Fail(start, f"unknown {what}(s)")
                return v, m
        except _Fail as e:
            if "unknown" in e.reason:
                raise
        cur.i = save
    if want_mask and cur.peek() in ("+", "-"):
        flags = mask = 0
        while not cur.startswith(end):
            c = cur.peek()
            if c not in ("+", "-"):
                raise _Fail(cur.i, f"{what} must be preceded by '+' (for SET) or '-' (NOT SET)")
            cur.i += 1
            bit = 1
            found = 0
            while bit < (1 << 32):
                name = bit_to_string(bit)
                if name and s.startswith(name, cur.i):
                    nxt = s[cur.i + len(name):cur.i + len(name) + 1]
                    if nxt in ("+", "-") or s.startswith(end, cur.i + len(name)):
                        found = bit
                        break
                bit <<= 1
            if not found:
                raise _Fail(cur.i, f"unknown {what}")
            if mask & found:
                raise _Fail(cur.i, f"each {what} can be specified only once")
            if not found & allowed:
                raise _Fail(cur.i, f"unknown {what}")
            if c == "+":
                flags |= found
            mask |= found
            cur.i += len(bit_to_string(found))
        return flags, mask
    result = 0
    while not cur.startswith(end):
        if cur.at_end():
            raise _Fail(cur.i, f"expected '{end}'")
        if s[cur.i].isdigit():
            v = scan_uint(cur, 0, 64)
            if v & ~allowed:
                raise _Fail(start, f"unknown {what}(s)")
            result |= v
            cur.accept("|")
            continue
        bit = 1
        found = 0
        while bit < (1 << 32):
            name = bit_to_string(bit)
            if name and s.startswith(name, cur.i):
                nxt_i = cur.i + len(name)
                if s.startswith("|", nxt_i) or s.startswith(end, nxt_i):
                    found = bit
                    break
            bit <<= 1
        if not found or not found & allowed:
            raise _Fail(cur.i, f"unknown {what}")
        result |= found
        cur.i += len(bit_to_string(found))
        cur.accept("|")
    return result, 0xFFFFFFFF


def scan_hex_bytes(cur):
    """ofpbuf_put_hex(): pairs of hex digits, optionally separated by spaces."""
    s = cur.s
    out = bytearray()
    while True:
        while cur.i < len(s) and s[cur.i] == " ":
            cur.i += 1
        if cur.i + 1 < len(s) and s[cur.i] in _DIGITS and s[cur.i + 1] in _DIGITS:
            out.append(int(s[cur.i:cur.i + 2], 16))
            cur.i += 2
        else:
            break
    return bytes(out)


def scan_name(cur, stop=DELIMITERS_END):
    """strcspn()-style token up to one of the ``stop`` characters."""
    s = cur.s
    j = cur.i
    while j < len(s) and s[j] not in stop:
        j += 1
    tok = s[cur.i:j]
    cur.i = j
    return tok
