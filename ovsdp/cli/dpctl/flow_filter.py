"""dump-flows filters: OpenFlow-style field=value[/mask] text matched against
datapath flows (dpctl.c's flow filter over odp_flow_key_to_flow()).
"""

import dataclasses
import ipaddress
import re
import struct

from ... import uapi as U
from .ufid import attr_list


class FilterError(ValueError):
    """parse_ofp_exact_flow() failed; ``str()`` is OVS's message."""


class _BadValue(ValueError):
    pass


def _c_uint(s, nbytes, name, what="value"):
    """parse_int_string() as mf_from_integer_string() uses it (strtoull base 0)."""
    m = re.fullmatch(r"([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", s)
    if not m:
        raise _BadValue(f"bad syntax for {what}")
    digits = m.group(2)
    v = int(digits, 16) if digits[:2] in ("0x", "0X") else \
        int(digits, 8) if digits.startswith("0") else int(digits)
    if m.group(1) == "-" and v:
        v = (1 << 64) - v
    if v >= 1 << (8 * nbytes):
        raise _BadValue(f"{what} too large for {nbytes}-byte field {name}")
    return v


def _parse_int(s, nbytes, name):
    value_s, sep, mask_s = s.partition("/")
    try:
        v = _c_uint(value_s, nbytes, name, "value")
        full = (1 << (8 * nbytes)) - 1
        m = _c_uint(mask_s, nbytes, name, "mask") if sep else full
    except _BadValue as e:
        msg = str(e)
        if msg.startswith("bad syntax"):
            msg = f"bad syntax for {name} {msg.split()[-1]}"
        raise _BadValue(f"{s}: {msg}") from None
    if m != full:
        raise _BadValue(f"{s}: wildcards not allowed here")
    return v, m


def _parse_mac(s):
    def one(t):
        parts = t.split(":")
        if len(parts) != 6 or not all(re.fullmatch(r"[0-9a-fA-F]{1,2}", p) for p in parts):
            raise _BadValue(f"{s}: invalid Ethernet address")
        return int.from_bytes(bytes(int(p, 16) for p in parts), "big")
    value_s, sep, mask_s = s.partition("/")
    return one(value_s), one(mask_s) if sep else (1 << 48) - 1


def _parse_ip(s, version):
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    bits = 32 if version == 4 else 128
    err = f"{s}: invalid IP address" if version == 4 else f"{s}: invalid IPv6 address"
    value_s, sep, mask_s = s.partition("/")
    try:
        v = int(cls(value_s))
        if not sep:
            return v, (1 << bits) - 1
        if mask_s.isdigit():
            plen = int(mask_s)
            if plen > bits:
                raise ValueError(mask_s)
            return v, ((1 << bits) - 1) ^ ((1 << (bits - plen)) - 1)
        return v, int(cls(mask_s))
    except ValueError:
        raise _BadValue(err) from None


# ofputil_port_from_string()'s reserved OpenFlow port names.
_OFP_PORT_NAMES = {"IN_PORT": 0xFFF8, "TABLE": 0xFFF9, "NORMAL": 0xFFFA, "FLOOD": 0xFFFB,
                   "ALL": 0xFFFC, "CONTROLLER": 0xFFFD, "LOCAL": 0xFFFE, "ANY": 0xFFFF,
                   "NONE": 0xFFFF}


def _parse_port(s, port_map):
    name = s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s
    if re.fullmatch(r"\d+", name):
        v = int(name)
        if v <= 0xFFFF:
            return v, 0xFFFF
    elif name in (port_map or {}):
        return port_map[name] & 0xFFFF, 0xFFFF
    elif name.upper() in _OFP_PORT_NAMES:
        return _OFP_PORT_NAMES[name.upper()], 0xFFFF
    raise _BadValue(f"{s}: invalid or unknown port for in_port")


FLOW_NW_FRAG_ANY = 1
FLOW_NW_FRAG_LATER = 2
_FRAG_VALUES = {"no": 0, "first": 1, "yes": 1, "later": 3, "not_later": 0}


def _parse_frag(s):
    if s not in _FRAG_VALUES:
        # (sic) OVS's message has no closing parenthesis of its own.
        raise _BadValue(f'{s}: unknown fragment type (valid types are "no", "yes", "first", '
                        f'"later", "not_later"')
    return _FRAG_VALUES[s], 3


@dataclasses.dataclass(frozen=True)
class _Field:
    """One meta-flow field: where it lives in the flow view and how it is written."""

    name: str                   # canonical name (in integer-syntax errors)
    kind: str                   # int, mac, ipv4, ipv6, port, frag
    nbytes: int
    prereq: str
    slot: str
    set_mask: int               # the bits mf_is_set() looks at
    encode: object = None       # int value -> (slot value, slot mask)


def _enc_full(bits):
    full = (1 << bits) - 1
    return lambda v: (v & full, full)


def _f(name, kind, nbytes, prereq, slot, set_mask=None, encode=None):
    if set_mask is None:
        set_mask = (1 << (8 * nbytes)) - 1
    return _Field(name, kind, nbytes, prereq, slot, set_mask,
                  encode or _enc_full(8 * nbytes))


_FIELDS = {}


def _add(names, field):
    for n in names:
        _FIELDS[n] = field


_add(["in_port"], _f("in_port", "port", 2, "", "in_port"))
_add(["eth_src", "dl_src"], _f("eth_src", "mac", 6, "", "dl_src"))
_add(["eth_dst", "dl_dst"], _f("eth_dst", "mac", 6, "", "dl_dst"))
_add(["eth_type", "dl_type"], _f("eth_type", "int", 2, "", "dl_type"))
_add(["dl_vlan"], _f("dl_vlan", "int", 2, "", "vlan_tci", 0x0FFF,
                     lambda v: (0 if v == 0xFFFF else (v & 0x0FFF) | 0x1000, 0x1FFF)))
_add(["dl_vlan_pcp"], _f("dl_vlan_pcp", "int", 1, "", "vlan_tci", 0xE000,
                         lambda v: (((v & 7) << 13) | 0x1000, 0xF000)))
_add(["vlan_pcp"], _f("vlan_pcp", "int", 1, "", "vlan_tci", 0xE000,
                      lambda v: (((v & 7) << 13) | 0x1000, 0xF000)))
_add(["vlan_vid"], _f("vlan_vid", "int", 2, "", "vlan_tci", 0x1FFF,
                      lambda v: (v & 0x1FFF, 0x1FFF)))
_add(["vlan_tci"], _f("vlan_tci", "int", 2, "", "vlan_tci"))
_add(["ip_src", "nw_src"], _f("ip_src", "ipv4", 4, "ipv4", "nw_src"))
_add(["ip_dst", "nw_dst"], _f("ip_dst", "ipv4", 4, "ipv4", "nw_dst"))
_add(["ipv6_src"], _f("ipv6_src", "ipv6", 16, "ipv6", "ipv6_src"))
_add(["ipv6_dst"], _f("ipv6_dst", "ipv6", 16, "ipv6", "ipv6_dst"))
_add(["ipv6_label"], _f("ipv6_label", "int", 4, "ipv6", "ipv6_label", 0xFFFFF,
                        lambda v: (v & 0xFFFFF, 0xFFFFF)))
_add(["nw_proto", "ip_proto"], _f("nw_proto", "int", 1, "ip", "nw_proto"))
_add(["nw_tos"], _f("nw_tos", "int", 1, "ip", "nw_tos", 0xFC, lambda v: (v & 0xFC, 0xFC)))
_add(["ip_dscp"], _f("ip_dscp", "int", 1, "ip", "nw_tos", 0xFC,
                     lambda v: ((v << 2) & 0xFC, 0xFC)))
_add(["nw_ecn", "ip_ecn"], _f("nw_ecn", "int", 1, "ip", "nw_tos", 0x03, lambda v: (v & 3, 3)))
_add(["nw_ttl"], _f("nw_ttl", "int", 1, "ip", "nw_ttl"))
_add(["ip_frag", "nw_frag"], _f("ip_frag", "frag", 1, "ip", "nw_frag", 0x03))
_add(["arp_op"], _f("arp_op", "int", 2, "arp", "nw_proto", 0xFF, lambda v: (v & 0xFF, 0xFF)))
_add(["arp_spa"], _f("arp_spa", "ipv4", 4, "arp", "nw_src"))
_add(["arp_tpa"], _f("arp_tpa", "ipv4", 4, "arp", "nw_dst"))
_add(["arp_sha"], _f("arp_sha", "mac", 6, "arp", "arp_sha"))
_add(["arp_tha"], _f("arp_tha", "mac", 6, "arp", "arp_tha"))
_add(["tcp_src", "tp_src"], _f("tcp_src", "int", 2, "tcp", "tp_src"))
_add(["tcp_dst", "tp_dst"], _f("tcp_dst", "int", 2, "tcp", "tp_dst"))
_add(["udp_src"], _f("udp_src", "int", 2, "udp", "tp_src"))
_add(["udp_dst"], _f("udp_dst", "int", 2, "udp", "tp_dst"))
_add(["sctp_src"], _f("sctp_src", "int", 2, "sctp", "tp_src"))
_add(["sctp_dst"], _f("sctp_dst", "int", 2, "sctp", "tp_dst"))
_add(["icmp_type"], _f("icmp_type", "int", 1, "icmp", "tp_src"))
_add(["icmp_code"], _f("icmp_code", "int", 1, "icmp", "tp_dst"))
_add(["icmpv6_type"], _f("icmpv6_type", "int", 1, "icmp6", "tp_src"))
_add(["icmpv6_code"], _f("icmpv6_code", "int", 1, "icmp6", "tp_dst"))
_add(["pkt_mark"], _f("pkt_mark", "int", 4, "", "pkt_mark"))
_add(["skb_priority"], _f("skb_priority", "int", 4, "", "skb_priority"))
_add(["recirc_id"], _f("recirc_id", "int", 4, "", "recirc_id"))
_add(["dp_hash"], _f("dp_hash", "int", 4, "", "dp_hash"))

# ofp_parse_protocol(): name -> (dl_type, nw_proto)
PROTOCOLS = {
    "ip": (0x0800, 0), "ipv4": (0x0800, 0), "ip4": (0x0800, 0), "arp": (0x0806, 0),
    "icmp": (0x0800, 1), "tcp": (0x0800, 6), "udp": (0x0800, 17), "sctp": (0x0800, 132),
    "ipv6": (0x86DD, 0), "ip6": (0x86DD, 0), "icmp6": (0x86DD, 58), "tcp6": (0x86DD, 6),
    "udp6": (0x86DD, 17), "sctp6": (0x86DD, 132), "rarp": (0x8035, 0),
    "mpls": (0x8847, 0), "mplsm": (0x8848, 0),
}

# Fields for which a mask (/prefix or /mask) is accepted: an ovsdp extension,
# OVS's exact-flow parser says "wildcards not allowed here".
MASKABLE_KINDS = ("mac", "ipv4", "ipv6")


def _prereqs_ok(prereq, flow):
    dl = flow.get("dl_type", 0)
    proto = flow.get("nw_proto", 0)
    ip_any = dl in (0x0800, 0x86DD)
    later = flow.get("nw_frag", 0) & FLOW_NW_FRAG_LATER
    return {
        "": True,
        "ipv4": dl == 0x0800,
        "ipv6": dl == 0x86DD,
        "ip": ip_any,
        "arp": dl in (0x0806, 0x8035),
        "tcp": ip_any and proto == 6 and not later,
        "udp": ip_any and proto == 17 and not later,
        "sctp": ip_any and proto == 132 and not later,
        "icmp": dl == 0x0800 and proto == 1,
        "icmp6": dl == 0x86DD and proto == 58,
    }[prereq]


def _parse_value(s, i, delimiters):
    """parse_value(): the length of a value, skipping balanced parentheses."""
    n = i
    while n < len(s) and s[n] not in delimiters:
        if s[n] == "(":
            level = 0
            while True:
                if n >= len(s):
                    return n
                if s[n] == "(":
                    level += 1
                elif s[n] == ")":
                    level -= 1
                n += 1
                if level <= 0:
                    break
        else:
            n += 1
    return n


def key_values(s):
    """ofputil_parse_key_value(): yield (key, value) pairs of a match string."""
    i = 0
    while True:
        while i < len(s) and s[i] in ", \t\r\n":
            i += 1
        if i >= len(s):
            return
        j = i
        while j < len(s) and s[j] not in ":=(, \t\r\n":
            j += 1
        key = s[i:j]
        delim = s[j] if j < len(s) else ""
        i = j + (1 if delim else 0)
        if delim in (":", "="):
            vdelims = ", \t\r\n"
        elif delim == "(":
            vdelims = ")"
        else:
            yield key, ""
            continue
        n = _parse_value(s, i, vdelims)
        yield key, s[i:n]
        i = n + (1 if n < len(s) else 0)


def parse_filter(s, port_map=None):
    """parse_ofp_exact_flow(): (values, masks) over flow-view fields.

    Raises :class:`FilterError` with OVS's message.  ``port_map`` maps port
    names to numbers for ``in_port=NAME``.
    """
    flow, wc = {}, {}
    for key, value in key_values(s):
        proto = PROTOCOLS.get(key)
        if proto is not None:
            if flow.get("dl_type"):
                raise FilterError(f"{s}: Ethernet type set multiple times")
            flow["dl_type"], wc["dl_type"] = proto[0], 0xFFFF
            if proto[1]:
                if flow.get("nw_proto"):
                    raise FilterError(f"{s}: network protocol set multiple times")
                flow["nw_proto"], wc["nw_proto"] = proto[1], 0xFF
            continue
        field = _FIELDS.get(key)
        if field is None:
            raise FilterError(f"{s}: unknown field {key}")
        if not _prereqs_ok(field.prereq, flow):
            raise FilterError(f"{s}: prerequisites not met for setting {key}")
        if flow.get(field.slot, 0) & field.set_mask:
            raise FilterError(f"{s}: field {key} set multiple times")
        try:
            if field.kind == "int":
                v, m = field.encode(_parse_int(value, field.nbytes, field.name)[0])
            elif field.kind == "port":
                v, m = _parse_port(value, port_map)
            elif field.kind == "frag":
                v, m = _parse_frag(value)
            else:
                if field.kind == "mac":
                    v, m = _parse_mac(value)
                else:
                    v, m = _parse_ip(value, 4 if field.kind == "ipv4" else 6)
                full = (1 << (8 * field.nbytes)) - 1
                if m != full and field.kind not in MASKABLE_KINDS:
                    raise _BadValue(f"{value}: wildcards not allowed here")
        except _BadValue as e:
            raise FilterError(f"{s}: bad value for {key} ({e})") from None
        flow[field.slot] = (flow.get(field.slot, 0) & ~m) | (v & m)
        wc[field.slot] = wc.get(field.slot, 0) | m
    return flow, wc


def _be(p):
    return int.from_bytes(p, "big")


def flow_view(key, mask):
    """A datapath flow as OVS's struct flow + wildcards sees it (odp_flow_key_to_flow/mask).

    Returns (values, masks) dicts over the field names parse_filter() uses.
    A missing mask means an exact-match flow.
    """
    values, masks = {}, {}
    exact = mask is None

    def level(kbuf, mbuf):
        return dict(attr_list(kbuf)), (None if exact else dict(attr_list(mbuf)))

    def mask_of(mattrs, t, p):
        if mattrs is None:
            return b"\xff" * len(p)
        m = mattrs.get(t)
        return m if m is not None and len(m) == len(p) else bytes(len(p))

    def put(slot, v, m):
        values[slot], masks[slot] = v, m

    ka, ma = level(key, mask)
    for t, slot in ((U.OVS_KEY_ATTR_IN_PORT, "in_port"), (U.OVS_KEY_ATTR_SKB_MARK, "pkt_mark"),
                    (U.OVS_KEY_ATTR_PRIORITY, "skb_priority"),
                    (U.OVS_KEY_ATTR_RECIRC_ID, "recirc_id"), (U.OVS_KEY_ATTR_DP_HASH, "dp_hash")):
        p = ka.get(t)
        if p is not None and len(p) == 4:
            put(slot, struct.unpack("=I", p)[0], struct.unpack("=I", mask_of(ma, t, p))[0])
    p = ka.get(U.OVS_KEY_ATTR_ETHERNET)
    if p is not None and len(p) == 12:
        m = mask_of(ma, U.OVS_KEY_ATTR_ETHERNET, p)
        put("dl_src", _be(p[0:6]), _be(m[0:6]))
        put("dl_dst", _be(p[6:12]), _be(m[6:12]))

    p = ka.get(U.OVS_KEY_ATTR_ETHERTYPE)
    if p is None or len(p) != 2:
        m = (ma or {}).get(U.OVS_KEY_ATTR_ETHERTYPE) if not exact else b"\xff\xff"
        put("dl_type", 0x05FF, _be(m) if m is not None and len(m) == 2 else 0)
        return values, masks
    outer = True
    while True:
        et, etm = _be(p), _be(mask_of(ma, U.OVS_KEY_ATTR_ETHERTYPE, p))
        vlan = ka.get(U.OVS_KEY_ATTR_VLAN)
        if et in (0x8100, 0x88A8) and vlan is not None and len(vlan) == 2:
            if outer:
                put("vlan_tci", _be(vlan), _be(mask_of(ma, U.OVS_KEY_ATTR_VLAN, vlan)))
            outer = False
            enc = ka.get(U.OVS_KEY_ATTR_ENCAP, b"")
            ka, ma = level(enc, None if exact else (ma or {}).get(U.OVS_KEY_ATTR_ENCAP, b""))
            p = ka.get(U.OVS_KEY_ATTR_ETHERTYPE)
            if p is None or len(p) != 2:
                put("dl_type", 0x05FF, 0)
                return values, masks
            continue
        put("dl_type", et, etm)
        if outer:
            put("vlan_tci", 0, 0xFFFF)      # a missing VLAN means "no VLAN", exactly
        break

    def frag(v):                        # OVS_FRAG_TYPE_* -> FLOW_NW_FRAG_* bits
        return (0, 1, 3)[v] if v < 3 else 0

    p = ka.get(U.OVS_KEY_ATTR_IPV4)
    if p is not None and len(p) == U.OVS_KEY_IPV4.size:
        m = mask_of(ma, U.OVS_KEY_ATTR_IPV4, p)
        (src, dst, proto, tos, ttl, fr), mk = (U.OVS_KEY_IPV4.unpack(x) for x in (p, m))
        put("nw_src", src, mk[0])
        put("nw_dst", dst, mk[1])
        put("nw_proto", proto, mk[2])
        put("nw_tos", tos, mk[3])
        put("nw_ttl", ttl, mk[4])
        put("nw_frag", frag(fr), 3 if mk[5] else 0)
    p = ka.get(U.OVS_KEY_ATTR_IPV6)
    if p is not None and len(p) == U.OVS_KEY_IPV6.size:
        m = mask_of(ma, U.OVS_KEY_ATTR_IPV6, p)
        (src, dst, label, proto, tclass, hlimit, fr), mk = (U.OVS_KEY_IPV6.unpack(x)
                                                            for x in (p, m))
        put("ipv6_src", _be(src), _be(mk[0]))
        put("ipv6_dst", _be(dst), _be(mk[1]))
        put("ipv6_label", label & 0xFFFFF, mk[2] & 0xFFFFF)
        put("nw_proto", proto, mk[3])
        put("nw_tos", tclass, mk[4])
        put("nw_ttl", hlimit, mk[5])
        put("nw_frag", frag(fr), 3 if mk[6] else 0)
    p = ka.get(U.OVS_KEY_ATTR_ARP)
    if p is not None and len(p) == U.OVS_KEY_ARP.size:
        m = mask_of(ma, U.OVS_KEY_ATTR_ARP, p)
        (sip, tip, op, sha, tha), mk = (U.OVS_KEY_ARP.unpack(x) for x in (p, m))
        put("nw_src", sip, mk[0])
        put("nw_dst", tip, mk[1])
        put("nw_proto", op & 0xFF, mk[2] & 0xFF)
        put("arp_sha", _be(sha), _be(mk[3]))
        put("arp_tha", _be(tha), _be(mk[4]))
    for t in (U.OVS_KEY_ATTR_TCP, U.OVS_KEY_ATTR_UDP, U.OVS_KEY_ATTR_SCTP):
        p = ka.get(t)
        if p is not None and len(p) == 4:
            m = mask_of(ma, t, p)
            put("tp_src", _be(p[0:2]), _be(m[0:2]))
            put("tp_dst", _be(p[2:4]), _be(m[2:4]))
    for t in (U.OVS_KEY_ATTR_ICMP, U.OVS_KEY_ATTR_ICMPV6):
        p = ka.get(t)
        if p is not None and len(p) == 2:
            m = mask_of(ma, t, p)
            put("tp_src", p[0], m[0])
            put("tp_dst", p[1], m[1])
    return values, masks


def filter_matches(flt, key, mask):
    """dpctl_dump_flows()'s test: the filter's fields agree with the flow where both match."""
    fvals, fmasks = flt
    values, masks = flow_view(key, mask)
    for slot, fm in fmasks.items():
        if (values.get(slot, 0) ^ fvals.get(slot, 0)) & masks.get(slot, 0) & fm:
            return False
    return True


# ============================================================ flow files
