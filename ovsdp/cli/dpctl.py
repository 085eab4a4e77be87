"""``ovsdp dpctl``: Open vSwitch's ovs-dpctl for ovsdp (lib/dpctl.c, utilities/ovs-dpctl.c).

Commands, argument rules, output formats, messages and exit statuses follow
OVS 3.1's ``ovs-dpctl`` (the messages say ``ovsdp dpctl:`` instead of
``ovs-dpctl:``).  The only datapath type is ``system``: ``dp0`` and
``system@dp0`` name the same datapath.

As a library::

    from ovsdp.cli import dpctl
    rc = dpctl.run(["add-dp", "dp0", "p1,type=dummy"], socket=path)
    with dpctl.DpctlSession(socket=path) as s:      # one connection, many commands
        s.run(["add-flow", "in_port(1),eth(),eth_type(0x0800)", "2"])
        text = s.output("dump-flows", "-m")         # DpctlError on failure

UFIDs.  ``add-flow`` without ``ufid:`` gives the flow a UFID derived from the
flow itself: BLAKE2b-128 over the masked key and mask (attributes in a
canonical order, fully wildcarded ones left out), stamped as a version-4
UUID like OVS's odp_flow_key_hash().  OVS hashes the raw key with a random
per-process basis (so only ``ovs-appctl dpctl/add-flow`` uses it and
``ovs-dpctl`` sends no UFID); ovsdp's hash is stable, so ``mod-flow`` and
``del-flow`` given the same flow text find the flow by the same UFID.  They
fall back to the key (the kernel's lookup of key-identified flows) when no
flow has that UFID.
"""

import contextlib
import dataclasses
import errno
import hashlib
import io
import ipaddress
import os
import re
import struct
import sys
import time

from .. import uapi as U
from ..client.dpif import Dpif
from ..client.netlink import default_socket_path
from ..netlink import attr as A
from ..odp import OdpParseError, format_actions, format_key, parse_actions, parse_key
from ..uapi import attrs as ATTRS
from . import dpctl_meter

PROGRAM = "ovsdp dpctl"
DP_TYPE = "system"

EXIT_SUCCESS = 0
EXIT_FAILURE = 1

# OVS's names for vport types (get_vport_type()); "system" ports print no type.
PORT_TYPE_NAMES = {
    U.OVS_VPORT_TYPE_NETDEV: "system",
    U.OVS_VPORT_TYPE_INTERNAL: "internal",
    U.OVS_VPORT_TYPE_GRE: "gre",
    U.OVS_VPORT_TYPE_VXLAN: "vxlan",
    U.OVS_VPORT_TYPE_GENEVE: "geneve",
    U.OVS_VPORT_TYPE_DUMMY: "dummy",
}
# netdev_to_ovs_vport_type(), plus ovsdp's own names.
PORT_TYPES = {
    "system": U.OVS_VPORT_TYPE_NETDEV,
    "netdev": U.OVS_VPORT_TYPE_NETDEV,
    "tap": U.OVS_VPORT_TYPE_NETDEV,
    "internal": U.OVS_VPORT_TYPE_INTERNAL,
    "gre": U.OVS_VPORT_TYPE_GRE,
    "vxlan": U.OVS_VPORT_TYPE_VXLAN,
    "geneve": U.OVS_VPORT_TYPE_GENEVE,
    "dummy": U.OVS_VPORT_TYPE_DUMMY,
}
DEFAULT_DST_PORT = {"vxlan": 4789, "geneve": 6081}      # VXLAN_DST_PORT, GENEVE_DST_PORT

USAGE = """\
{prog}: Open vSwitch datapath management utility (for the ovsdp daemon)
usage: {prog} [OPTIONS] COMMAND [ARG...]
  add-dp DP [IFACE...]     add new datapath DP (with IFACEs)
  del-dp DP                delete local datapath DP
  add-if DP IFACE...       add each IFACE as a port on DP
  set-if DP IFACE...       reconfigure each IFACE within DP
  del-if DP IFACE...       delete each IFACE from DP
  dump-dps                 display names of all datapaths
  show                     show basic info on all datapaths
  show DP...               show basic info on each DP
  dump-flows [DP]          display flows in DP
  add-flow [DP] FLOW ACTIONS add FLOW with ACTIONS to DP
  mod-flow [DP] FLOW ACTIONS change FLOW actions to ACTIONS in DP
  get-flow [DP] ufid:UFID    fetch flow corresponding to UFID
  del-flow [DP] FLOW         delete FLOW from DP
  del-flows [DP]             delete all flows from DP
  add-flows [DP] FILE        add flows listed in FILE ("-" for stdin)
  mod-flows [DP] FILE        modify flows listed in FILE
  del-flows [DP] FILE        delete flows listed in FILE
{meters}Each IFACE on add-dp, add-if, and set-if may be followed by
comma-separated options: type=TYPE (system, internal, vxlan, geneve,
gre, dummy), port_no=N, and for vxlan/geneve dst_port=N (vxlan also
exts=gbp).  For COMMAND dump-flows, add-flow, mod-flow, del-flow and
del-flows, DP is optional if there is only one datapath.

Options for show and mod-flow:
  -s,  --statistics           print statistics for port or flow

Options for dump-flows:
  -m, --more                  increase verbosity of output
  --names                     use port names in output
  --no-names                  use port numbers in output

Options for mod-flow:
  --may-create                create flow if it doesn't exist
  --read-only                 do not run read/write commands
  --clear                     reset existing stats to zero

Other options:
  --socket=PATH               control socket of the ovsdp daemon
                              (default: $OVSDP_SOCKET or {default})
  -t, --timeout=SECS          give up after SECS seconds
  -h, --help                  display this help message
  -V, --version               display version information
"""


class DpctlError(Exception):
    """A dpctl command failed (raised by :meth:`DpctlSession.output`)."""

    def __init__(self, status, stderr="", err=0):
        super().__init__(stderr.strip() or f"dpctl failed with status {status}")
        self.status = status
        self.stderr = stderr
        self.errno = err


class _Fatal(Exception):
    """Stop the command: the message is already printed; ``err`` is its errno."""

    def __init__(self, err):
        super().__init__(err)
        self.err = err


@dataclasses.dataclass
class Params:
    """struct dpctl_params: the global options."""

    print_statistics: bool = False
    zero_statistics: bool = False
    may_create: bool = False
    read_only: bool = False
    verbosity: int = 0
    names: bool | None = None          # None: names when verbosity > 0
    timeout: float | None = None


# =================================================================== helpers
def _strerror(err):
    return os.strerror(err) if err else ""


def _errno_of(exc):
    if exc.errno:
        return exc.errno
    return errno.ETIMEDOUT if isinstance(exc, TimeoutError) else errno.EIO


def atoi(s):
    """C atoi(): leading white space, a sign, then digits; 0 when none."""
    m = re.match(r"\s*([+-]?\d+)", s)
    if not m:
        return 0
    return int(m.group(1))


def dp_parse_name(arg):
    """dp_parse_name(): ``TYPE@NAME`` or ``NAME`` (type ``system``)."""
    if "@" in arg:
        dtype, name = arg.split("@", 1)
        return name, dtype or DP_TYPE
    return arg, DP_TYPE


def human_size(value):
    """print_human_size()."""
    for scale, unit in ((1024 ** 4, "TiB"), (1024 ** 3, "GiB"), (1024 ** 2, "MiB"),
                        (1024, "KiB")):
        if value >= scale:
            return f" ({value / scale:.1f} {unit})"
    return ""


def format_tcp_flags(flags):
    """packet_format_tcp_flags()."""
    if not flags:
        return "none"
    out = ""
    for bit, ch in ((0x002, "S"), (0x001, "F"), (0x008, "P"), (0x004, "R"), (0x020, "U"),
                    (0x010, "."), (0x040, "E"), (0x080, "C"), (0x100, "N"), (0x200, "[200]"),
                    (0x400, "[400]"), (0x800, "[800]")):
        if flags & bit:
            out += ch
    return out


def format_stats(packets, nbytes, used, tcp_flags, now_ms=None):
    """dpif_flow_stats_format(): ``packets:N, bytes:N, used:T[, flags:F]``."""
    s = f"packets:{packets}, bytes:{nbytes}, used:"
    if used:
        if now_ms is None:
            now_ms = time.monotonic_ns() // 1_000_000
        s += f"{(now_ms - used) / 1000.0:.3f}s"
    else:
        s += "never"
    if tcp_flags:
        s += ", flags:" + format_tcp_flags(tcp_flags)
    return s


# --------------------------------------------------------------------- UFIDs
UUID_LEN = 36
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                      r"[0-9a-fA-F]{12}")


def format_ufid(ufid):
    """odp_format_ufid(): ``ufid:`` + the UUID of the 16 bytes as an ovs_u128."""
    ufid = bytes(ufid[:16]).ljust(16, b"\0")
    p0, p1, p2, p3 = struct.unpack("=4I", ufid)
    return f"ufid:{p0:08x}-{p1 >> 16:04x}-{p1 & 0xFFFF:04x}-{p2 >> 16:04x}-{p2 & 0xFFFF:04x}" \
           f"{p3:08x}"


def ufid_from_string(s):
    """odp_ufid_from_string(): (chars consumed, ufid bytes); (0, None) without ``ufid:``.

    Raises ValueError for ``ufid:`` followed by something that is not a UUID.
    """
    if not s.startswith("ufid:"):
        return 0, None
    u = s[5:5 + UUID_LEN]
    if len(u) != UUID_LEN or not _UUID_RE.fullmatch(u):
        raise ValueError(s)
    p0 = int(u[0:8], 16)
    p1 = int(u[9:13], 16) << 16 | int(u[14:18], 16)
    p2 = int(u[19:23], 16) << 16 | int(u[24:28], 16)
    p3 = int(u[28:36], 16)
    return 5 + UUID_LEN, struct.pack("=4I", p0, p1, p2, p3)


# Key attributes whose payload is itself a stream of attributes.
_NESTED_KEY = ATTRS.KEY.nested_types()


def _attr_list(buf):
    return [(t & U.NLA_TYPE_MASK, p) for t, p, _ in A.iter_attrs(buf or b"")]


def _canonical(key, mask, nested):
    masks = dict(_attr_list(mask))
    out = []
    for t, p in sorted(_attr_list(key), key=lambda tp: tp[0]):
        m = masks.get(t)
        if t in nested:
            inner = _canonical(p, m or b"", ())
            if inner:
                out.append(struct.pack("=HH", t, len(inner)) + inner)
            continue
        if m is None or len(m) != len(p):
            m = b"\xff" * len(p)
        if p and not any(m):
            continue                    # fully wildcarded: not part of the flow
        v = bytes(a & b for a, b in zip(p, m, strict=True))
        out.append(struct.pack("=HH", t, len(p)) + v + m)
    return b"".join(out)


def flow_ufid(key, mask):
    """The UFID ovsdp gives a flow added without one (see the module docstring)."""
    canon = _canonical(key, mask if mask is not None else b"", _NESTED_KEY)
    digest = hashlib.blake2b(canon, digest_size=16, person=b"ovsdp-ufid").digest()
    p0, p1, p2, p3 = struct.unpack("=4I", digest)
    p2 = (p2 & ~0xC0000000 & 0xFFFFFFFF) | 0x80000000      # uuid_set_bits_v4()
    p1 = (p1 & ~0x0000F000 & 0xFFFFFFFF) | 0x00004000
    return struct.pack("=4I", p0, p1, p2, p3)


# ================================================================== filter=
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
        return dict(_attr_list(kbuf)), (None if exact else dict(_attr_list(mbuf)))

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

    p = ka.get(U.OVS_KEY_ATTR_IPV4)
    if p is not None and len(p) == 12:
        m = mask_of(ma, U.OVS_KEY_ATTR_IPV4, p)
        put("nw_src", _be(p[0:4]), _be(m[0:4]))
        put("nw_dst", _be(p[4:8]), _be(m[4:8]))
        put("nw_proto", p[8], m[8])
        put("nw_tos", p[9], m[9])
        put("nw_ttl", p[10], m[10])
        put("nw_frag", (0, 1, 3)[p[11]] if p[11] < 3 else 0, 3 if m[11] else 0)
    p = ka.get(U.OVS_KEY_ATTR_IPV6)
    if p is not None and len(p) == 40:
        m = mask_of(ma, U.OVS_KEY_ATTR_IPV6, p)
        put("ipv6_src", _be(p[0:16]), _be(m[0:16]))
        put("ipv6_dst", _be(p[16:32]), _be(m[16:32]))
        put("ipv6_label", _be(p[32:36]) & 0xFFFFF, _be(m[32:36]) & 0xFFFFF)
        put("nw_proto", p[36], m[36])
        put("nw_tos", p[37], m[37])
        put("nw_ttl", p[38], m[38])
        put("nw_frag", (0, 1, 3)[p[39]] if p[39] < 3 else 0, 3 if m[39] else 0)
    p = ka.get(U.OVS_KEY_ATTR_ARP)
    if p is not None and len(p) == 24:
        m = mask_of(ma, U.OVS_KEY_ATTR_ARP, p)
        put("nw_src", _be(p[0:4]), _be(m[0:4]))
        put("nw_dst", _be(p[4:8]), _be(m[4:8]))
        put("nw_proto", _be(p[8:10]) & 0xFF, _be(m[8:10]) & 0xFF)
        put("arp_sha", _be(p[10:16]), _be(m[10:16]))
        put("arp_tha", _be(p[16:22]), _be(m[16:22]))
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
DPCTL_FLOWS_ADD, DPCTL_FLOWS_DEL, DPCTL_FLOWS_MOD = range(3)


def preprocessed_lines(stream):
    """ds_get_preprocessed_line(): (line number, text) of the non-blank lines, comments cut."""
    for n, raw in enumerate(stream, 1):
        line = raw.rstrip("\n")
        i = line.find("#")
        if i >= 0:
            line = line[:i]
        if line.strip(" \t\n"):
            yield n, line


def parse_flow_line(command, line):
    """dpctl_parse_flow_line(): (command, flow or None, actions or None)."""
    ws = " \t\r\n"
    i = len(line) - len(line.lstrip(ws))
    j = i
    while j < len(line) and line[j] not in ", \t\r\n":
        j += 1
    word = line[i:j]
    for name, cmd in (("add", DPCTL_FLOWS_ADD), ("delete", DPCTL_FLOWS_DEL),
                      ("modify", DPCTL_FLOWS_MOD)):
        if name.startswith(word):
            command = cmd
            break
    else:
        j = i
    rest = line[j:].lstrip(ws)
    k = 0
    while k < len(rest) and rest[k] not in ws:
        k += 1
    if not k:
        return command, None, None
    flow = rest[:k]
    actions = rest[k:].lstrip(ws).rstrip(ws)
    return command, flow, actions or None


# ================================================================ options
_LONG_OPTIONS = {
    # name: (takes an argument, key)
    "statistics": (False, "s"),
    "clear": (False, "clear"),
    "may-create": (False, "may-create"),
    "read-only": (False, "read-only"),
    "more": (False, "m"),
    "names": (False, "names"),
    "no-names": (False, "no-names"),
    "timeout": (True, "t"),
    "help": (False, "h"),
    "version": (False, "V"),
    "socket": (True, "socket"),
}
_SHORT_OPTIONS = {"s": False, "m": False, "t": True, "h": False, "V": False}


class _UsageError(Exception):
    pass


def getopt(argv):
    """GNU getopt_long() with argument permutation: (options [(key, arg)], operands)."""
    opts, operands = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            operands.extend(argv[i:])
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name in _LONG_OPTIONS:
                matches = [name]
            else:
                matches = [n for n in _LONG_OPTIONS if n.startswith(name)]
            if not matches:
                raise _UsageError(f"unrecognized option '--{name}'")
            if len(matches) > 1:
                raise _UsageError(f"option '--{name}' is ambiguous; possibilities: "
                                  + " ".join(f"'--{m}'" for m in matches))
            full = matches[0]
            has_arg, key = _LONG_OPTIONS[full]
            if has_arg:
                if not eq:
                    if i >= len(argv):
                        raise _UsageError(f"option '--{full}' requires an argument")
                    value = argv[i]
                    i += 1
                opts.append((key, value))
            else:
                if eq:
                    raise _UsageError(f"option '--{full}' doesn't allow an argument")
                opts.append((key, None))
            continue
        if arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                c = arg[j]
                j += 1
                if c not in _SHORT_OPTIONS:
                    raise _UsageError(f"invalid option -- '{c}'")
                if _SHORT_OPTIONS[c]:
                    if j < len(arg):
                        value = arg[j:]
                    elif i < len(argv):
                        value = argv[i]
                        i += 1
                    else:
                        raise _UsageError(f"option requires an argument -- '{c}'")
                    opts.append((c, value))
                    break
                opts.append((c, None))
            continue
        operands.append(arg)
    return opts, operands


# ================================================================ session
@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    usage: str
    min_args: int
    max_args: int
    handler: str
    read_write: bool


INT_MAX = 2 ** 31 - 1
COMMANDS = [
    Command("add-dp", "dp [iface...]", 1, INT_MAX, "add_dp", True),
    Command("del-dp", "dp", 1, 1, "del_dp", True),
    Command("add-if", "dp iface...", 2, INT_MAX, "add_if", True),
    Command("del-if", "dp iface...", 2, INT_MAX, "del_if", True),
    Command("set-if", "dp iface...", 2, INT_MAX, "set_if", True),
    Command("dump-dps", "", 0, 0, "dump_dps", False),
    Command("show", "[-s] [dp...]", 0, INT_MAX, "show", False),
    Command("dump-flows", "[-m] [--names] [dp] [filter=..] [type=..]", 0, 6, "dump_flows",
            False),
    Command("add-flow", "[dp] flow actions", 2, 3, "add_flow", True),
    Command("mod-flow", "[dp] flow actions", 2, 3, "mod_flow", True),
    Command("get-flow", "[dp] ufid", 1, 2, "get_flow", False),
    Command("del-flow", "[dp] flow", 1, 2, "del_flow", True),
    Command("add-flows", "[dp] file", 1, 2, "process_flows", True),
    Command("mod-flows", "[dp] file", 1, 2, "process_flows", True),
    Command("del-flows", "[dp] [file]", 0, 2, "del_flows", True),
    *(Command(*c) for c in dpctl_meter.COMMANDS),
    Command("help", "", 0, INT_MAX, "help", False),
    Command("list-commands", "", 0, INT_MAX, "list_commands", False),
]
COMMANDS_BY_NAME = {c.name: c for c in COMMANDS}

# dump-flows type=: ovsdp flows are all "ovs", never offloaded.
_DUMP_TYPES = {"ovs": True, "tc": False, "dpdk": False, "offloaded": False,
               "non-offloaded": True, "partially-offloaded": False, "all": True}


def _version():
    try:
        from importlib.metadata import version
        return version("ovsdp")
    except Exception:  # noqa: BLE001 - not installed: fall back
        return "0.1.0"


class DpctlSession(dpctl_meter.MeterCommands):
    """Runs dpctl commands against one ovsdp daemon over one connection.

    ``stdout``/``stderr`` are text streams (default: the process's).  The
    connection is opened on first use and kept until :meth:`close`; pass
    ``dpif`` to use an existing :class:`~ovsdp.client.dpif.Dpif`.
    """

    def __init__(self, socket=None, *, stdout=None, stderr=None, dpif=None, timeout=None,
                 program=PROGRAM):
        self.socket = socket
        self.stdout = stdout
        self.stderr = stderr
        self.timeout = timeout
        self.program = program
        self._dpif = dpif
        self._own_dpif = dpif is None
        self.params = Params()
        self.last_errno = 0

    # ------------------------------------------------------------ plumbing
    def close(self):
        if self._dpif is not None and self._own_dpif:
            self._dpif.close()
        self._dpif = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _out(self):
        return self.stdout if self.stdout is not None else sys.stdout

    def _err(self):
        return self.stderr if self.stderr is not None else sys.stderr

    def print(self, text):
        """dpctl_print()."""
        self._out().write(text)

    def error(self, err, msg, ext_ack=None):
        """dpctl_error(): ``PROGRAM: MSG[ (strerror)]``.

        The datapath's extended ack, when it sent one, follows on a line of
        its own (OVS only logs it).
        """
        line = f"{self.program}: {msg}"
        if err:
            line += f" ({_strerror(err)})"
        self._err().write(line + "\n")
        if ext_ack:
            self._err().write(f"{self.program}: extended ack: {ext_ack}\n")

    def oserror(self, exc, msg):
        """Report an OSError from the daemon and return its errno."""
        err = _errno_of(exc)
        self.error(err, msg, getattr(exc, "ext_ack", None))
        return err

    @property
    def dpif(self):
        if self._dpif is None:
            path = default_socket_path(self.socket)
            timeout = self.params.timeout or self.timeout or 10.0
            try:
                self._dpif = Dpif(path, timeout=timeout)
            except OSError as e:
                self.error(_errno_of(e), f'cannot connect to "{path}"')
                raise _Fatal(_errno_of(e)) from None
            self._own_dpif = True
        return self._dpif

    # ---------------------------------------------------------- entry points
    def run(self, argv):
        """Parse options and run one command; returns the exit status (0 or 1)."""
        self.last_errno = 0
        try:
            opts, operands = getopt(list(argv))
        except _UsageError as e:
            self.error(0, str(e))
            self.last_errno = errno.EINVAL
            return EXIT_FAILURE
        params = Params()
        set_names = False
        for key, value in opts:
            if key == "s":
                params.print_statistics = True
            elif key == "clear":
                params.zero_statistics = True
            elif key == "may-create":
                params.may_create = True
            elif key == "read-only":
                params.read_only = True
            elif key == "m":
                params.verbosity += 1
            elif key in ("names", "no-names"):
                params.names = key == "names"
                set_names = True
            elif key == "t":
                if not re.fullmatch(r"\d+", value) or not int(value):
                    self.error(0, f"value {value} on -t or --timeout is invalid")
                    self.last_errno = errno.EINVAL
                    return EXIT_FAILURE
                params.timeout = int(value)
                if self._dpif is not None and self._own_dpif:
                    self._dpif.sock.timeout = params.timeout
            elif key == "h":
                self.usage()
                return EXIT_SUCCESS
            elif key == "V":
                self.print(f"{self.program} (ovsdp) {_version()}\n")
                return EXIT_SUCCESS
            elif key == "socket":
                if self.socket != value:
                    self.close()
                self.socket = value
        if not set_names:
            params.names = params.verbosity > 0
        self.params = params
        err = self.run_command(operands)
        self.last_errno = err
        return EXIT_FAILURE if err else EXIT_SUCCESS

    def __call__(self, *argv):
        return self.run(argv)

    def output(self, *argv):
        """Run a command and return what it printed; :class:`DpctlError` if it failed."""
        out, err = io.StringIO(), io.StringIO()
        saved = self.stdout, self.stderr
        self.stdout, self.stderr = out, err
        try:
            status = self.run(argv)
        finally:
            self.stdout, self.stderr = saved
        if status:
            raise DpctlError(status, err.getvalue(), self.last_errno)
        if err.getvalue():
            self._err().write(err.getvalue())
        return out.getvalue()

    def run_command(self, argv):
        """dpctl_run_command(): argv[0] is the command; returns an errno (0: success)."""
        if not argv:
            self.error(0, "missing command name; use --help for help")
            return errno.EINVAL
        cmd = COMMANDS_BY_NAME.get(argv[0])
        if cmd is None:
            self.error(0, f"unknown command '{argv[0]}'; use --help for help")
            return errno.EINVAL
        n_arg = len(argv) - 1
        if n_arg < cmd.min_args:
            self.error(0, f"'{cmd.name}' command requires at least {cmd.min_args} arguments")
            return errno.EINVAL
        if n_arg > cmd.max_args:
            self.error(0, f"'{cmd.name}' command takes at most {cmd.max_args} arguments")
            return errno.EINVAL
        if cmd.read_write and self.params.read_only:
            self.error(0, f"'{cmd.name}' command does not work in read only mode")
            return errno.EINVAL
        try:
            return getattr(self, "cmd_" + cmd.handler)(list(argv))
        except _Fatal as e:
            return e.err
        except (OSError, TimeoutError) as e:
            # A failure not reported by the command (e.g. the daemon went away).
            return self.oserror(e, f"{cmd.name} failed")

    def usage(self):
        self.print(USAGE.format(prog=self.program, default=U.OVSDP_DEFAULT_SOCKET,
                                meters=dpctl_meter.USAGE))

    # ------------------------------------------------------ datapath lookup
    def dp_names(self):
        """dp_enumerate_names() for the one type: the datapath names, sorted."""
        return sorted(info.name for info in self.dpif.dp_dump())

    def dp_exists(self, arg):
        name, dtype = dp_parse_name(arg)
        if dtype != DP_TYPE:
            return False
        try:
            return name in self.dp_names()
        except OSError:
            return False

    def get_one_dp(self):
        """get_one_dp(): ``system@NAME`` of the only datapath, else None (reported)."""
        try:
            names = self.dp_names()
        except OSError:
            names = []
        if not names:
            self.error(0, "no datapaths exist")
        elif len(names) > 1:
            self.error(0, "multiple datapaths, specify one")
        else:
            return f"{DP_TYPE}@{names[0]}"
        return None

    def dpif_open(self, arg):
        """parsed_dpif_open(): the DatapathInfo; raises OSError (EAFNOSUPPORT, ENODEV...)."""
        name, dtype = dp_parse_name(arg)
        if dtype != DP_TYPE:
            raise OSError(errno.EAFNOSUPPORT, _strerror(errno.EAFNOSUPPORT))
        return self.dpif.dp_get(name)

    def open_or_fail(self, arg, msg="opening datapath"):
        try:
            return self.dpif_open(arg)
        except OSError as e:
            raise _Fatal(self.oserror(e, msg)) from None

    def opt_dpif_open(self, argv, max_args):
        """opt_dpif_open(): the optional DP argument, or the only datapath."""
        argc = len(argv)
        if argc > 1 and self.dp_exists(argv[1]):
            dpname = argv[1]
        elif argc != max_args:
            dpname = self.get_one_dp()
        else:
            dpname = None
        if dpname is None:
            self.error(errno.EINVAL, "datapath not found")
            raise _Fatal(errno.EINVAL)
        return self.open_or_fail(dpname)

    def ports(self, dp):
        """The datapath's vports sorted by port number."""
        return sorted(self.dpif.vport_dump(dp.ifindex), key=lambda v: v.port_no)

    def port_names(self, dp):
        """name -> number, for parsing."""
        return {v.name: v.port_no for v in self.ports(dp)}

    def portno_names(self, dp):
        """dpctl_get_portno_names(): number -> name when names are on, else None."""
        if not self.params.names:
            return None
        return {v.port_no: v.name for v in self.ports(dp)}

    # --------------------------------------------------------- datapaths
    def cmd_add_dp(self, argv):
        name, dtype = dp_parse_name(argv[1])
        if dtype != DP_TYPE:
            self.error(errno.EAFNOSUPPORT, "add_dp")
            return errno.EAFNOSUPPORT
        try:
            self.dpif.dp_new(name, upcall_pid=0)
        except OSError as e:
            return self.oserror(e, "add_dp")
        if len(argv) > 2:
            return self.cmd_add_if(argv)
        return 0

    def cmd_del_dp(self, argv):
        dp = self.open_or_fail(argv[1])
        try:
            self.dpif.dp_del(dp.ifindex)
        except OSError as e:
            return self.oserror(e, "del_dp")
        return 0

    def _dps_for_each(self, fn):
        """dps_for_each()."""
        try:
            names = self.dp_names()
        except OSError as e:
            return self.oserror(e, "enumerating datapaths")
        openerror = 0
        for name in names:
            try:
                dp = self.dpif.dp_get(name)
            except OSError as e:
                openerror = self.oserror(e, f"opening datapath {name} failed")
                continue
            fn(dp)
        return openerror

    def cmd_dump_dps(self, argv):
        return self._dps_for_each(lambda dp: self.print(f"{DP_TYPE}@{dp.name}\n"))

    # -------------------------------------------------------------- ports
    @staticmethod
    def _split_iface(spec):
        """strtok_r(spec, ","): name and KEY=VALUE options (empty tokens skipped)."""
        tokens = [t for t in spec.split(",") if t]
        if not tokens:
            return None, []
        opts = []
        for opt in tokens[1:]:
            stripped = opt.lstrip("=")
            if not stripped:
                opts.append((None, ""))
                continue
            key, _, value = stripped.partition("=")
            opts.append((key, value))
        return tokens[0], opts

    def _tunnel_options(self, name, ptype, args):
        """netdev_set_config() for ovsdp: OVS_VPORT_ATTR_OPTIONS bytes (or None).

        Raises _Fatal(EINVAL) for options the port type does not take.
        """
        bad = []
        dst_port = DEFAULT_DST_PORT.get(ptype)
        gbp = False
        for key, value in args.items():
            if key == "dst_port" and ptype in DEFAULT_DST_PORT:
                dst_port = atoi(value) & 0xFFFF
            elif key == "exts" and ptype == "vxlan":
                for ext in (e for e in value.split(",") if e):
                    if ext == "gbp":
                        gbp = True
                    else:
                        bad.append(f"{name}: unknown extension '{ext}'")
            else:
                bad.append(f"{name}: unknown {ptype} argument '{key}'")
        if bad:
            for msg in bad:
                self.error(0, msg)
            self.error(errno.EINVAL, f"{name}: could not set configuration")
            raise _Fatal(errno.EINVAL)
        if ptype not in DEFAULT_DST_PORT:
            return None
        if not dst_port and not gbp:
            return None
        return Dpif.tunnel_options(dst_port or None, gbp)

    @staticmethod
    def port_config(vport):
        """netdev_get_config(): the port's options as {key: value}."""
        cfg = {}
        ptype = PORT_TYPE_NAMES.get(vport.type)
        if ptype in DEFAULT_DST_PORT:
            if vport.dst_port is not None:
                cfg["dst_port"] = str(vport.dst_port)
            for t, p, _ in A.iter_attrs(vport.options or b""):
                if t & U.NLA_TYPE_MASK == U.OVS_TUNNEL_ATTR_EXTENSION:
                    exts = [e & U.NLA_TYPE_MASK for e, _, _ in A.iter_attrs(p)]
                    if U.OVS_VXLAN_EXT_GBP in exts:
                        cfg["exts"] = "gbp"
        return cfg

    def cmd_add_if(self, argv):
        dp = self.open_or_fail(argv[1])
        lasterror = 0
        for spec in argv[2:]:
            error = self._add_if(dp, argv[1], spec)
            if error:
                lasterror = error
        return lasterror

    def _add_if(self, dp, dp_arg, spec):
        name, opts = self._split_iface(spec)
        if name is None:
            self.error(0, f"{spec} is not a valid network device name")
            return errno.EINVAL
        ptype, port_no, args = "system", None, {}
        for key, value in opts:
            if key is None:
                self.error(0, "Invalid option format")
                return errno.EINVAL
            if key == "type":
                ptype = value
            elif key == "port_no":
                port_no = atoi(value) & 0xFFFFFFFF
            elif key in args:
                self.error(0, f'duplicate "{key}" option')
            else:
                args[key] = value
        vtype = PORT_TYPES.get(ptype)
        if vtype is None:
            self.error(errno.EAFNOSUPPORT, f"{name}: failed to open network device")
            return errno.EAFNOSUPPORT
        type_name = PORT_TYPE_NAMES[vtype]
        try:
            options = self._tunnel_options(name, type_name, args)
        except _Fatal as e:
            return e.err
        try:
            self.dpif.vport_new(dp.ifindex, name, vtype, port_no=port_no, options=options,
                                upcall_pids=[0])
        except OSError as e:
            return self.oserror(e, f"adding {name} to {dp_arg} failed")
        return 0

    def cmd_set_if(self, argv):
        dp = self.open_or_fail(argv[1])
        lasterror = 0
        for spec in argv[2:]:
            error = self._set_if(dp, argv[1], spec)
            if error:
                lasterror = error
        return lasterror

    def _set_if(self, dp, dp_arg, spec):
        name, opts = self._split_iface(spec)
        if name is None:
            # (sic) OVS reports this but does not count it as a failure.
            self.error(0, f"{spec} is not a valid network device name")
            return 0
        try:
            vport = self.dpif.vport_get(dp.ifindex, name=name)
        except OSError as e:
            return self.oserror(e, f"{name}: failed to query port in {dp_arg}")
        ptype = PORT_TYPE_NAMES.get(vport.type, "unknown")
        current = self.port_config(vport)
        args = dict(current)
        for key, value in opts:
            if key is None:
                self.error(0, "Invalid option format")
                return errno.EINVAL
            if key == "type":
                if PORT_TYPES.get(value) != vport.type and value != ptype:
                    self.error(0, f"{name}: can't change type from {ptype} to {value}")
                    return errno.EINVAL
            elif key == "port_no":
                if vport.port_no != atoi(value) & 0xFFFFFFFF:
                    self.error(0, f"{name}: can't change port number from {vport.port_no} "
                                  f"to {atoi(value)}")
                    return errno.EINVAL
            elif value == "":
                args.pop(key, None)
            else:
                args[key] = value
        try:
            options = self._tunnel_options(name, ptype, args)
        except _Fatal as e:
            return e.err
        if args == current or options == self._tunnel_options(name, ptype, current):
            return 0
        try:
            self.dpif.vport_set(dp.ifindex, name=name, options=options or b"")
        except OSError as e:
            return self.oserror(e, "Error updating configuration")
        return 0

    def cmd_del_if(self, argv):
        dp = self.open_or_fail(argv[1])
        lasterror = 0
        for name in argv[2:]:
            if re.fullmatch(r"\d*", name):
                port = atoi(name) & 0xFFFFFFFF
            else:
                try:
                    vport = self.dpif.vport_get(dp.ifindex, name=name)
                except OSError:
                    self.error(0, f"no port named {name}")
                    lasterror = errno.ENOENT
                    continue
                port = vport.port_no
            try:
                self.dpif.vport_get(dp.ifindex, port_no=port)
                self.dpif.vport_del(dp.ifindex, port_no=port)
            except OSError as e:
                lasterror = self.oserror(e, f"deleting port {name} from {argv[1]} failed")
        return lasterror

    # --------------------------------------------------------------- show
    def cmd_show(self, argv):
        if len(argv) > 1:
            lasterror = 0
            for name in argv[1:]:
                try:
                    dp = self.dpif_open(name)
                except OSError as e:
                    lasterror = self.oserror(e, f"opening datapath {name} failed")
                    continue
                self.show_dpif(dp)
            return lasterror
        return self._dps_for_each(self.show_dpif)

    def show_dpif(self, dp):
        """show_dpif()."""
        out = [f"{DP_TYPE}@{dp.name}:\n",
               f"  lookups: hit:{dp.n_hit} missed:{dp.n_missed} lost:{dp.n_lost}\n",
               f"  flows: {dp.n_flows}\n"]
        n_pkts = dp.n_hit + dp.n_missed
        avg = dp.n_mask_hit / n_pkts if n_pkts else 0.0
        out.append(f"  masks: hit:{dp.n_mask_hit} total:{dp.n_masks} hit/pkt:{avg:.2f}\n")
        if dp.n_cache_hit:          # dpif-netlink takes 0 for "not supported"
            rate = dp.n_cache_hit / n_pkts * 100 if n_pkts else 0.0
            out.append(f"  cache: hit:{dp.n_cache_hit} hit-rate:{rate:.2f}%\n")
        out.append("  caches:\n")
        out.append(f"    masks-cache: size:{dp.masks_cache_size}\n")
        try:
            ports = self.ports(dp)
        except OSError as e:
            self.print("".join(out))
            self.oserror(e, f"dumping ports of {dp.name} failed")
            return
        for vport in ports:
            ptype = PORT_TYPE_NAMES.get(vport.type, "unknown")
            line = f"  port {vport.port_no}: {vport.name}"
            if ptype != "system":
                line += f" ({ptype}"
                for j, (key, value) in enumerate(sorted(self.port_config(vport).items())):
                    line += f"{',' if j else ':'} {key}={value}"
                line += ")"
            out.append(line + "\n")
            if self.params.print_statistics:
                s = vport.stats
                g = s.get
                out.append(f"    RX packets:{g('rx_packets', 0)} errors:{g('rx_errors', 0)} "
                           f"dropped:{g('rx_dropped', 0)} overruns:0 frame:0\n")
                out.append(f"    TX packets:{g('tx_packets', 0)} errors:{g('tx_errors', 0)} "
                           f"dropped:{g('tx_dropped', 0)} aborted:0 carrier:0\n")
                out.append("    collisions:0\n")
                rx, tx = g("rx_bytes", 0), g("tx_bytes", 0)
                out.append(f"    RX bytes:{rx}{human_size(rx)}  TX bytes:{tx}{human_size(tx)}\n")
        self.print("".join(out))

    # -------------------------------------------------------------- flows
    def format_flow(self, f, names, now_ms=None):
        """format_dpif_flow(): one dump-flows line (without the newline)."""
        verbose = self.params.verbosity > 0
        s = ""
        if verbose and f.ufid is not None:
            s += format_ufid(f.ufid) + ", "
        s += format_key(f.key or b"", f.mask, verbose=verbose, port_names=names)
        s += ", " + format_stats(f.packets, f.bytes, f.used, f.tcp_flags, now_ms)
        if verbose:
            s += ", dp:ovs"
        s += ", actions:" + format_actions(f.actions or b"", names)
        return s

    def cmd_dump_flows(self, argv):
        flt_s = types = None
        argc, lastargc = len(argv), 0
        while argc > 1 and lastargc != argc:
            lastargc = argc
            last = argv[argc - 1]
            if last.startswith("filter=") and flt_s is None:
                flt_s = last[7:]
                argc -= 1
            elif last.startswith("type=") and types is None:
                types = last[5:]
                argc -= 1
        argv = argv[:argc]
        dp = self.opt_dpif_open(argv, 2)
        names = self.portno_names(dp)
        flt = None
        if flt_s is not None:
            try:
                flt = parse_filter(flt_s, self.port_names(dp))
            except FilterError as e:
                self.error(0, f"Failed to parse filter ({e})")
                return errno.EINVAL
        show = True
        if types is not None:
            show = False
            for t in (t for t in types.split(",") if t):
                if t not in _DUMP_TYPES:
                    self.error(errno.EINVAL, f"Failed to parse type ({t})")
                    return errno.EINVAL
                show = show or _DUMP_TYPES[t]
        try:
            flows = self.dpif.flow_dump(dp.ifindex)
        except OSError as e:
            return self.oserror(e, "Failed to dump flows from datapath")
        now_ms = time.monotonic_ns() // 1_000_000
        out = []
        for f in flows:
            if not show:
                continue
            if flt is not None and not filter_matches(flt, f.key or b"", f.mask):
                continue
            out.append(self.format_flow(f, names, now_ms) + "\n")
        self.print("".join(out))
        return 0

    def _parse_flow(self, dp, key_s, with_actions=None):
        """UFID, key, mask (and actions) of a FLOW argument; reports and raises on errors."""
        try:
            n, ufid = ufid_from_string(key_s)
        except ValueError:
            self.error(errno.EINVAL, "parsing flow ufid")
            raise _Fatal(errno.EINVAL) from None
        key_s = key_s[n:]
        names = self.port_names(dp)
        try:
            key, mask = parse_key(key_s, names)
        except OdpParseError as e:
            if with_actions is None:
                self.error(errno.EINVAL, str(e))              # del-flow's wording
            else:
                self.error(errno.EINVAL, f"parsing flow key ({e})")
            raise _Fatal(errno.EINVAL) from None
        actions = None
        if with_actions is not None:
            try:
                actions = parse_actions(with_actions, names)
            except OdpParseError as e:
                self.error(errno.EINVAL, f"parsing actions ({e})")
                raise _Fatal(errno.EINVAL) from None
        return ufid, key or None, mask or None, actions

    def put_flow(self, dp, key_s, actions_s, modify, create, clear=False):
        """dpctl_put_flow_dpif(): add (create) or modify (modify [+ create]) a flow."""
        try:
            ufid, key, mask, actions = self._parse_flow(dp, key_s, actions_s)
        except _Fatal as e:
            return e.err
        generated = ufid is None
        if generated:
            ufid = flow_ufid(key or b"", mask)
        d = self.dpif
        try:
            if not modify:
                info = d.flow_new(dp.ifindex, key, actions, mask=mask, ufid=ufid, create=True)
            else:
                info = self._modify(dp, key, mask, actions, ufid, generated, clear, create)
        except OSError as e:
            return self.oserror(e, "updating flow table")
        if self.params.print_statistics:
            info = info or _NO_STATS
            self.print(format_stats(info.packets, info.bytes, info.used, info.tcp_flags) + "\n")
        return 0

    def _modify(self, dp, key, mask, actions, ufid, generated, clear, create):
        d = self.dpif
        tries = [ufid, None] if generated else [ufid]
        for i, u in enumerate(tries):
            try:
                return d.flow_set(dp.ifindex, key=key, actions=actions, mask=mask, ufid=u,
                                  clear=clear)
            except OSError as e:
                if e.errno != errno.ENOENT or (i == len(tries) - 1 and not create):
                    raise
        return d.flow_new(dp.ifindex, key, actions, mask=mask, ufid=ufid, create=True)

    def cmd_add_flow(self, argv):
        dp = self.opt_dpif_open(argv, 4)
        return self.put_flow(dp, argv[-2], argv[-1], modify=False, create=True)

    def cmd_mod_flow(self, argv):
        dp = self.opt_dpif_open(argv, 4)
        return self.put_flow(dp, argv[-2], argv[-1], modify=True,
                             create=self.params.may_create, clear=self.params.zero_statistics)

    def cmd_get_flow(self, argv):
        dp = self.opt_dpif_open(argv, 3)
        names = self.portno_names(dp)
        try:
            n, ufid = ufid_from_string(argv[-1])
        except ValueError:
            n = -1
        if n <= 0:
            self.error(errno.EINVAL, "parsing flow ufid")
            return errno.EINVAL
        try:
            f = self.dpif.flow_get(dp.ifindex, ufid=ufid)
        except OSError as e:
            return self.oserror(e, "getting flow")
        self.print(self.format_flow(f, names) + "\n")
        return 0

    def del_flow(self, dp, key_s):
        """dpctl_del_flow_dpif()."""
        try:
            ufid, key, mask, _ = self._parse_flow(dp, key_s)
        except _Fatal as e:
            return e.err
        generated = ufid is None
        tries = [flow_ufid(key or b"", mask), None] if generated else [ufid]
        info = None
        for i, u in enumerate(tries):
            try:
                info = self.dpif.flow_del(dp.ifindex, key=key, ufid=u)
                break
            except OSError as e:
                if e.errno == errno.ENOENT and i < len(tries) - 1:
                    continue
                err = self.oserror(e, "deleting flow")
                if err == errno.ENOENT and generated:
                    self.print("Perhaps you need to specify a UFID?\n")
                return err
        if self.params.print_statistics:
            info = info or _NO_STATS
            self.print(format_stats(info.packets, info.bytes, info.used, info.tcp_flags) + "\n")
        return 0

    def cmd_del_flow(self, argv):
        dp = self.opt_dpif_open(argv, 3)
        return self.del_flow(dp, argv[-1])

    def cmd_del_flows(self, argv):
        argc = len(argv)
        if (argc == 2 and not self.dp_exists(argv[1])) or argc > 2:
            return self.cmd_process_flows(argv)
        dp = self.opt_dpif_open(argv, 2)
        try:
            self.dpif.flow_flush(dp.ifindex)
        except OSError as e:
            return self.oserror(e, "deleting all flows")
        return 0

    def cmd_process_flows(self, argv):
        """dpctl_process_flows(): add-flows, mod-flows, del-flows FILE."""
        file_name = argv[-1]
        def_cmd = {"mod-flows": DPCTL_FLOWS_MOD, "del-flows": DPCTL_FLOWS_DEL}.get(
            argv[0], DPCTL_FLOWS_ADD)
        dp = self.opt_dpif_open(argv, 4)
        if file_name == "-":
            stream_cm = contextlib.nullcontext(sys.stdin)
        else:
            try:
                stream_cm = open(file_name)  # noqa: SIM115 - closed by the with below
            except OSError as e:
                self.error(e.errno, f'Opening file "{file_name}" failed')
                return e.errno
        lasterror = 0
        with stream_cm as stream:
            for number, line in preprocessed_lines(stream):
                cmd, flow, actions = parse_flow_line(def_cmd, line)
                if ((flow is None and actions is None)
                        or (cmd in (DPCTL_FLOWS_ADD, DPCTL_FLOWS_MOD) and actions is None)
                        or (cmd == DPCTL_FLOWS_DEL and actions is not None)):
                    self.error(0, f"Failed parsing line number {number}, skipped!")
                    lasterror = errno.EINVAL
                    continue
                if cmd == DPCTL_FLOWS_ADD:
                    err = self.put_flow(dp, flow, actions, modify=False, create=True)
                elif cmd == DPCTL_FLOWS_MOD:
                    err = self.put_flow(dp, flow, actions, modify=True, create=False)
                else:
                    err = self.del_flow(dp, flow)
                if err:
                    lasterror = err
        return lasterror

    # ----------------------------------------------------------- help
    def cmd_help(self, argv):
        self.usage()
        return 0

    def cmd_list_commands(self, argv):
        out = ["The available commands are:\n"]
        for c in COMMANDS:
            out.append(f"  {c.name:<23} {c.usage}\n")
        self.print("".join(out))
        return 0


@dataclasses.dataclass
class _Stats:
    packets: int = 0
    bytes: int = 0
    used: int = 0
    tcp_flags: int = 0


_NO_STATS = _Stats()


# ============================================================ module API
def run(argv, socket=None, stdout=None, stderr=None, *, dpif=None, timeout=None):
    """Run one dpctl command line (options included); returns the exit status."""
    with DpctlSession(socket, stdout=stdout, stderr=stderr, dpif=dpif,
                      timeout=timeout) as session:
        return session.run(argv)


def check_output(argv, socket=None, *, dpif=None, timeout=None):
    """Run a command and return its output; raises :class:`DpctlError` if it fails."""
    with DpctlSession(socket, dpif=dpif, timeout=timeout) as session:
        return session.output(*argv)


def main(argv=None):
    """The ``ovsdp dpctl`` command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(argv)
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
