"""The text of the key attributes that are one fixed struct, one row each.

A row names the attribute's uapi layout (its fields, declared once in
uapi/openvswitch.py) and, in the order Open vSwitch prints them, which of
its fields appear under which text name and of which kind.  A kind is a
formatter and a scanner of one field (odp-util.c's format_u8u/format_be16/
format_ipv6... and SCAN_FIELD with its scanners), so the formatter
(:mod:`.keys`) and the scanner (:mod:`.keys_scan`) read the same rows::

    ipv4(src=10.0.0.1,dst=10.0.0.2,proto=6,tos=0,ttl=64,frag=no)

The attributes with a form of their own (vlan/encap, mpls, in_port, the
flags, tunnel, NSH, ct_state...) stay hand-written in those modules.
"""

from .. import uapi as U
from ._util import (
    chomp,
    fmt_eth,
    fmt_hex_x,
    fmt_in6,
    fmt_ip,
    scan_masked_eth,
    scan_masked_in6,
    scan_masked_ipv4,
    scan_masked_uint,
    scan_uint,
)

_FRAG_NAMES = {U.OVS_FRAG_TYPE_NONE: "no", U.OVS_FRAG_TYPE_FIRST: "first",
               U.OVS_FRAG_TYPE_LATER: "later"}
_FRAG_BY_NAME = {v: k for k, v in _FRAG_NAMES.items()}


# ------------------------------------------------------- field formatters
def _f_u(name, v, m, full, verbose, hexfmt=False):
    """format_u8u/format_be16/...: ``name=value[/mask],`` or nothing."""
    if verbose or m is None or m:
        s = f"{name}={fmt_hex_x(v) if hexfmt else v}"
        if m is not None and m != full:
            s += "/" + fmt_hex_x(m)
        return s + ","
    return ""


def _f_be64(name, v, m, verbose):
    if verbose or m is None or m:
        s = f"{name}=0x{v:x}"
        if m is not None and m != 0xFFFFFFFFFFFFFFFF:
            s += "/" + fmt_hex_x(m)
        return s + ","
    return ""


def _f_addr(fmt, width):
    """A formatter of an address field (IPv4, IPv6, Ethernet): ``name=value``,
    then ``/mask`` unless exact; nothing when wildcarded, unless verbose."""
    exact = b"\xff" * width

    def f(name, v, m, verbose):
        if verbose or m is None or any(m):
            s = f"{name}={fmt(v)}"
            if m is not None and m != exact:
                s += "/" + fmt(m)
            return s + ","
        return ""
    return f


_f_ipv4 = _f_addr(fmt_ip, 4)
_f_in6 = _f_addr(fmt_in6, 16)
_f_eth = _f_addr(fmt_eth, 6)


def _f_label(name, v, m, verbose):
    if verbose or m is None or m:
        s = f"{name}={fmt_hex_x(v)}"
        if m is not None and (m & 0xFFFFF) != 0xFFFFF:
            s += "/" + fmt_hex_x(m)
        return s + ","
    return ""


def _f_frag(name, v, m):
    if m is not None and m not in (0, 0xFF):
        return f"error: partial mask not supported for frag ({fmt_hex_x(m)}),"
    if m is None or m:
        return f"{name}={_FRAG_NAMES.get(v, '<error>')},"
    return ""


# --------------------------------------------------------- field scanners
def _u(bits):
    return lambda cur: scan_masked_uint(cur, bits)


def _frag(cur):
    s = cur.s
    j = cur.i
    while j < len(s) and "a" <= s[j] <= "z" and j - cur.i < 7:
        j += 1
    word = s[cur.i:j]
    if word.lower() not in _FRAG_BY_NAME:
        cur.fail("frag must be no, first or later")
    cur.i = j
    return _FRAG_BY_NAME[word.lower()], 0xFF


def _label(cur):
    v = scan_uint(cur, 0, 32, "label")
    if v & ~0xFFFFF:
        cur.fail("label out of range")
    m = 0xFFFFF
    if cur.accept("/"):
        m = scan_uint(cur, 0, 32, "label mask")
        if m & ~0xFFFFF:
            cur.fail("label mask out of range")
    return v, m



# ------------------------------------------------------------------ kinds
class Kind:
    """How one field is printed and read: ``format(name, value, mask or None,
    verbose)`` -> ``"name=value[/mask],"`` or ""; ``scan(cur)`` -> (value,
    mask), both in the field's own type (an int, or bytes for ``Ns``)."""

    __slots__ = ("name", "format", "scan")

    def __init__(self, name, format, scan):  # noqa: A002 - the kind's formatter
        self.name = name
        self.format = format
        self.scan = scan

    def __repr__(self):
        return f"<Kind {self.name}>"


def _uint(bits, hexfmt=False):
    full = (1 << bits) - 1
    return Kind(f"u{bits}{'x' if hexfmt else ''}",
                lambda n, v, m, verbose: _f_u(n, v, m, full, verbose, hexfmt), _u(bits))


def _ipv4_int_format(n, v, m, verbose):
    return _f_ipv4(n, v.to_bytes(4, "big"), None if m is None else m.to_bytes(4, "big"),
                   verbose)


def _ipv4_int_scan(cur):
    v, m = scan_masked_ipv4(cur)
    return int.from_bytes(v, "big"), int.from_bytes(m, "big")


def _hex_always(n, v, _m, _verbose):
    return f"{n}=0x{v:x},"                # nd_reserved: printed even when wildcarded


U8 = _uint(8)
U8X = _uint(8, hexfmt=True)
U16 = _uint(16)
U16X = _uint(16, hexfmt=True)
U32 = _uint(32)
IPV4 = Kind("ipv4", _ipv4_int_format, _ipv4_int_scan)        # a __be32 field
IN6 = Kind("in6", lambda n, v, m, verbose: _f_in6(n, v, m, verbose), scan_masked_in6)
ETH = Kind("eth", lambda n, v, m, verbose: _f_eth(n, v, m, verbose), scan_masked_eth)
LABEL = Kind("label", lambda n, v, m, verbose: _f_label(n, v, m, verbose), _label)
FRAG = Kind("frag", lambda n, v, m, _verbose: _f_frag(n, v, m), _frag)
HEX_ALWAYS = Kind("hex", _hex_always, _u(32))


# ------------------------------------------------------------------- rows
class StructText:
    """The text of one struct attribute: its layout and its fields as
    ``(text name, layout field, kind)``, in print order; ``aliases`` are
    further text names the scanner accepts, ``(text name, layout field)``."""

    __slots__ = ("layout", "fields", "aliases", "_positions", "_scan")

    def __init__(self, layout, fields, aliases=()):
        self.layout = layout
        self.fields = tuple(fields)
        self.aliases = tuple(aliases)
        self._positions = tuple(layout.index[f] for _t, f, _k in self.fields)
        kinds = {f: k for _t, f, k in self.fields}
        self._scan = {f"{t}=": (f, kinds[f].scan) for t, f, _k in self.fields}
        self._scan.update({f"{t}=": (f, kinds[f].scan) for t, f in self.aliases})

    def format(self, key, mask, verbose):
        """The fields of ``key`` (``mask``: its mask, or None), ``a=1,b=2``."""
        vals = self.layout.unpack(key)
        masks = self.layout.unpack(mask) if mask is not None else None
        out = []
        for (name, _f, kind), i in zip(self.fields, self._positions, strict=True):
            out.append(kind.format(name, vals[i], None if masks is None else masks[i],
                                   verbose))
        return chomp("".join(out))

    @property
    def scanners(self):
        """``"name="`` -> (layout field, scanner): what the SCAN_FIELD loop takes."""
        return self._scan


_T = StructText
STRUCTS = {
    U.OVS_KEY_ATTR_ETHERNET: _T(U.OVS_KEY_ETHERNET, (("src", "eth_src", ETH),
                                                      ("dst", "eth_dst", ETH))),
    U.OVS_KEY_ATTR_IPV4: _T(U.OVS_KEY_IPV4, (
        ("src", "ipv4_src", IPV4), ("dst", "ipv4_dst", IPV4), ("proto", "ipv4_proto", U8),
        ("tos", "ipv4_tos", U8X), ("ttl", "ipv4_ttl", U8), ("frag", "ipv4_frag", FRAG))),
    U.OVS_KEY_ATTR_IPV6: _T(U.OVS_KEY_IPV6, (
        ("src", "ipv6_src", IN6), ("dst", "ipv6_dst", IN6), ("label", "ipv6_label", LABEL),
        ("proto", "ipv6_proto", U8), ("tclass", "ipv6_tclass", U8X),
        ("hlimit", "ipv6_hlimit", U8), ("frag", "ipv6_frag", FRAG))),
    U.OVS_KEY_ATTR_TCP: _T(U.OVS_KEY_TCP, (("src", "tcp_src", U16), ("dst", "tcp_dst", U16))),
    U.OVS_KEY_ATTR_UDP: _T(U.OVS_KEY_UDP, (("src", "udp_src", U16), ("dst", "udp_dst", U16))),
    U.OVS_KEY_ATTR_SCTP: _T(U.OVS_KEY_SCTP, (("src", "sctp_src", U16),
                                              ("dst", "sctp_dst", U16))),
    U.OVS_KEY_ATTR_ICMP: _T(U.OVS_KEY_ICMP, (("type", "icmp_type", U8),
                                              ("code", "icmp_code", U8))),
    U.OVS_KEY_ATTR_ICMPV6: _T(U.OVS_KEY_ICMPV6, (("type", "icmpv6_type", U8),
                                                  ("code", "icmpv6_code", U8))),
    U.OVS_KEY_ATTR_ARP: _T(U.OVS_KEY_ARP, (
        ("sip", "arp_sip", IPV4), ("tip", "arp_tip", IPV4), ("op", "arp_op", U16),
        ("sha", "arp_sha", ETH), ("tha", "arp_tha", ETH))),
    U.OVS_KEY_ATTR_ND: _T(U.OVS_KEY_ND, (("target", "nd_target", IN6), ("sll", "nd_sll", ETH),
                                          ("tll", "nd_tll", ETH))),
    U.OVS_KEY_ATTR_ND_EXTENSIONS: _T(U.OVS_KEY_ND_EXTENSIONS, (
        ("nd_reserved", "nd_reserved", HEX_ALWAYS),
        ("nd_options_type", "nd_options_type", U8))),
    U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4: _T(U.OVS_KEY_CT_TUPLE_IPV4, (
        ("src", "ipv4_src", IPV4), ("dst", "ipv4_dst", IPV4), ("proto", "ipv4_proto", U8),
        ("tp_src", "src_port", U16), ("tp_dst", "dst_port", U16))),
    # Open vSwitch prints the IPv6 tuple's ports as src_port/dst_port; both
    # spellings are read
    U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6: _T(U.OVS_KEY_CT_TUPLE_IPV6, (
        ("src", "ipv6_src", IN6), ("dst", "ipv6_dst", IN6), ("proto", "ipv6_proto", U8),
        ("src_port", "src_port", U16), ("dst_port", "dst_port", U16)),
        aliases=(("tp_src", "src_port"), ("tp_dst", "dst_port"))),
    U.OVS_KEY_ATTR_PACKET_TYPE: _T(U.OVS_KEY_PACKET_TYPE, (("ns", "ns", U16),
                                                            ("id", "ns_type", U16X))),
}
