"""The text form of tnl_push's header (struct ovs_action_push_tnl).

tnl_push is an action of Open vSwitch's userspace datapath: the whole
outer header (Ethernet, IPv4 or IPv6, then UDP with VXLAN, Geneve or GTP-U,
GRE, ERSPAN or an SRv6 routing header) is carried in the action, and the
text shows it field by field (odp-util.c format_odp_tnl_push_header() and
ovs_parse_tnl_push()).  The kernel refuses the action; ovsdp reads and
writes its text so that ``ovsdp odp`` and dpctl handle what OVS prints.

Two places where Open vSwitch's own parser cannot read what it prints
(its ERSPAN and GTP-U scans never match) read it here.
"""

import struct

from .. import uapi as U
from ..datapath.checksum import inet_csum
from ..uapi import headers as H
from ._util import fmt_eth, fmt_hex_x, fmt_in6, fmt_ip, scan_eth, scan_in6, scan_ipv4, scan_uint
from .keys import format_geneve_opts
from .keys_scan import _scan_geneve

__all__ = ["format_header", "parse_tnl_push"]

PUSH_TNL = U.OVS_ACTION_PUSH_TNL
_BE16 = struct.Struct("!H")
_BE32 = struct.Struct("!I")
_IN6 = struct.Struct("16s")
_GRE_TYPES = (U.OVS_VPORT_TYPE_GRE, U.OVS_VPORT_TYPE_IP6GRE)
_ERSPAN_TYPES = (U.OVS_VPORT_TYPE_ERSPAN, U.OVS_VPORT_TYPE_IP6ERSPAN)


class _Short(Exception):
    """The header ends before what its fields say follows."""


def _at(layout, buf, off):
    if off + layout.size > len(buf):
        raise _Short
    return layout.unpack_from(buf, off)


def _udp(buf, off):
    src, dst, _len, csum = _at(H.UDPHDR, buf, off)
    return f"udp(src={src},dst={dst},csum=0x{csum:x}),", off + H.UDPHDR.size


def _tunnel(tnl_type, hdr, l4):
    """The text of what follows the IP header."""
    if tnl_type == U.OVS_VPORT_TYPE_VXLAN:
        s, off = _udp(hdr, l4)
        flags, vni = _at(H.VXLANHDR, hdr, off)
        return s + f"vxlan(flags=0x{flags:x},vni=0x{vni >> 8:x})"
    if tnl_type == U.OVS_VPORT_TYPE_GENEVE:
        s, off = _udp(hdr, l4)
        ver_len, bits, _proto, vni = _at(H.GENEVEHDR, hdr, off)
        s += "geneve(" + ("oam," if bits & H.GENEVE_OAM else "") \
            + ("crit," if bits & H.GENEVE_CRITICAL else "") + f"vni=0x{vni >> 8:x}"
        opt_len = (ver_len & H.GENEVE_OPT_LEN_MASK) * 4
        if opt_len:
            opts = hdr[off + H.GENEVEHDR.size:off + H.GENEVEHDR.size + opt_len]
            s += ",options(" + format_geneve_opts(opts, None, False) + ")"
        return s + ")"
    if tnl_type == U.OVS_VPORT_TYPE_GTPU:
        s, off = _udp(hdr, l4)
        flags, msgtype, _len, teid = _at(H.GTPU_HDR, hdr, off)
        return s + f"gtpu(flags=0x{flags:x},msgtype={msgtype},teid=0x{teid:x})"
    if tnl_type == U.OVS_VPORT_TYPE_SRV6:
        srh = H.IPV6_SR_HDR.as_dict(*_need(hdr, l4, H.IPV6_SR_HDR.size))
        n = srh["first_segment"] + 1
        first = l4 + H.IPV6_SR_HDR.size
        _need(hdr, first, 16 * n)
        segs = [fmt_in6(hdr[first + 16 * i:first + 16 * i + 16]) for i in reversed(range(n))]
        return f"srv6(segments_left={srh['segments_left']},segs({','.join(segs)}))"
    if tnl_type in _GRE_TYPES:
        flags, proto = _at(H.GRE_BASE_HDR, hdr, l4)
        s = f"gre((flags=0x{flags:x},proto=0x{proto:x})"
        off = l4 + H.GRE_BASE_HDR.size
        if flags & H.GRE_CSUM:
            s += f",csum=0x{_at(_BE16, hdr, off)[0]:x}"
            off += 4
        for bit, name in ((H.GRE_KEY, "key"), (H.GRE_SEQ, "seq")):
            if flags & bit:
                s += f",{name}=0x{_at(_BE32, hdr, off)[0]:x}"
                off += 4
        return s + ")"
    if tnl_type in _ERSPAN_TYPES:
        off = l4 + H.ERSPAN_GREHDR_LEN
        ver_vlan, sid = _at(H.ERSPAN_BASE_HDR, hdr, off)
        ver, sid = ver_vlan >> 12, sid & H.ERSPAN_SID_MASK
        off += H.ERSPAN_BASE_HDR.size
        if ver == 1:
            return f"erspan(ver=1,sid=0x{sid:x},idx=0x{_at(_BE32, hdr, off)[0]:x})"
        if ver == 2:
            _ts, _sgt, upper, low = _at(H.ERSPAN_MD2, hdr, off)
            hwid = ((upper & 0x3) << 4) | (low >> 4)
            return f"erspan(ver=2,sid=0x{sid:x},dir={(low >> 3) & 1},hwid=0x{hwid:x})"
        return ""                      # Open vSwitch logs "Invalid ERSPAN version"
    return ""


def _need(buf, off, n):
    if off + n > len(buf):
        raise _Short
    return buf, off


def format_header(p):
    """``header(size=...,type=...,eth(...),ipv4(...),...)`` of a tnl_push
    payload ``p`` (the struct and its header_len bytes), or None if the
    payload is shorter than what it declares."""
    if len(p) < PUSH_TNL.size:
        return None
    _tnl, _out, header_len, tnl_type = PUSH_TNL.unpack_from(p)
    hdr = p[PUSH_TNL.size:PUSH_TNL.size + header_len]
    if len(hdr) != header_len or header_len > U.TNL_PUSH_HEADER_SIZE:
        return None
    try:
        dst, src, eth_type = _at(H.ETHHDR, hdr, 0)
        s = (f"header(size={header_len},type={tnl_type},eth(dst={fmt_eth(dst)},"
             f"src={fmt_eth(src)},dl_type=0x{eth_type:04x}),")
        l3 = H.ETHHDR.size
        if eth_type == H.ETH_P_IP:
            ip = H.IPHDR.as_dict(*_need(hdr, l3, H.IPHDR.size))
            s += (f"ipv4(src={fmt_ip(_BE32.pack(ip['saddr']))},"
                  f"dst={fmt_ip(_BE32.pack(ip['daddr']))},proto={ip['protocol']},"
                  f"tos={fmt_hex_x(ip['tos'])},ttl={ip['ttl']},frag=0x{ip['frag_off']:x}),")
            l4 = l3 + H.IPHDR.size
        else:
            ip6 = H.IPV6HDR.as_dict(*_need(hdr, l3, H.IPV6HDR.size))
            flow = ip6["ver_tc_flow"]
            s += (f"ipv6(src={fmt_in6(ip6['saddr'])},dst={fmt_in6(ip6['daddr'])},"
                  f"label={flow & H.IPV6_FLOWLABEL_MASK},proto={ip6['nexthdr']},"
                  f"tclass=0x{(flow >> 20) & 0xFF:x},hlimit={ip6['hop_limit']}),")
            l4 = l3 + H.IPV6HDR.size
        return s + _tunnel(tnl_type, hdr, l4) + ")"
    except _Short:
        return None


# ---- text -> struct ovs_action_push_tnl

def _u(cur, bits, what, base=0):
    return scan_uint(cur, base, bits, what)


def _hex(cur, bits, what):
    cur.expect("0x")
    return scan_uint(cur, 16, bits, what)


def _scan_udp_tunnel(cur):
    """After ``udp(``: the UDP header and what it carries."""
    src = _u(cur, 16, "udp src")
    cur.expect(",dst=")
    dst = _u(cur, 16, "udp dst")
    cur.expect(",csum=")
    csum = _hex(cur, 16, "udp csum")
    cur.expect("),")
    udp = H.UDPHDR.pack(src, dst, 0, csum)
    if cur.accept("vxlan(flags="):
        flags = _hex(cur, 32, "vxlan flags")
        cur.expect(",vni=")
        vni = _hex(cur, 32, "vni")
        cur.expect("))")
        return U.OVS_VPORT_TYPE_VXLAN, udp + H.VXLANHDR.pack(flags, (vni << 8) & 0xFFFFFFFF)
    if cur.accept("geneve("):
        bits = (H.GENEVE_OAM if cur.accept("oam,") else 0) \
            | (H.GENEVE_CRITICAL if cur.accept("crit,") else 0)
        cur.expect("vni=")
        vni = _u(cur, 32, "vni")
        opts = b""
        if cur.accept(",options("):
            opts, _mask = _scan_geneve(cur)
        cur.expect("))")
        gnh = H.GENEVEHDR.pack(len(opts) // 4, bits, H.ETH_P_TEB, (vni << 8) & 0xFFFFFFFF)
        return U.OVS_VPORT_TYPE_GENEVE, udp + gnh + opts
    if cur.accept("gtpu(flags="):
        flags = _u(cur, 8, "gtpu flags")
        cur.expect(",msgtype=")
        msgtype = _u(cur, 8, "gtpu msgtype", 10)
        cur.expect(",teid=")
        teid = _hex(cur, 32, "teid")
        cur.expect("))")
        return U.OVS_VPORT_TYPE_GTPU, udp + H.GTPU_HDR.pack(flags, msgtype, 0, teid)
    cur.fail("expected vxlan(, geneve( or gtpu(")


def _scan_gre(cur, ipv4):
    """After ``gre((flags=``."""
    flags = scan_uint(cur, 16, 16, "gre flags")
    cur.expect(",proto=")
    proto = _hex(cur, 16, "gre proto")
    cur.expect(")")
    out = [H.GRE_BASE_HDR.pack(flags, proto)]
    if flags & H.GRE_CSUM:
        cur.expect(",csum=")
        out.append(_BE16.pack(_hex(cur, 16, "gre csum")) + bytes(2))
    for bit, name in ((H.GRE_KEY, "key"), (H.GRE_SEQ, "seq")):
        if flags & bit:
            cur.expect(f",{name}=")
            out.append(_BE32.pack(_hex(cur, 32, f"gre {name}")))
    cur.expect("))")
    return (U.OVS_VPORT_TYPE_GRE if ipv4 else U.OVS_VPORT_TYPE_IP6GRE), b"".join(out)


def _scan_erspan(cur, ipv4):
    """After ``erspan(ver=``: the GRE header (sequenced) and the ERSPAN ones."""
    ver = _u(cur, 4, "erspan version")
    cur.expect(",sid=")
    sid = _hex(cur, 10, "erspan sid")
    if ver == 1:
        cur.expect(",idx=")
        md = _BE32.pack(_hex(cur, 32, "erspan idx"))
        proto = H.ETH_P_ERSPAN
    elif ver == 2:
        cur.expect(",dir=")
        direction = _u(cur, 1, "erspan dir", 10)
        cur.expect(",hwid=")
        hwid = _hex(cur, 6, "erspan hwid")
        md = H.ERSPAN_MD2.pack(0, 0, hwid >> 4, ((hwid & 0xF) << 4) | (direction << 3))
        proto = H.ETH_P_ERSPAN2
    else:
        cur.fail(f"erspan version {ver} is not 1 or 2")
    cur.expect("))")
    gre = H.GRE_BASE_HDR.pack(H.GRE_SEQ, proto) + bytes(4)
    tnl_type = U.OVS_VPORT_TYPE_ERSPAN if ipv4 else U.OVS_VPORT_TYPE_IP6ERSPAN
    return tnl_type, gre + H.ERSPAN_BASE_HDR.pack(ver << 12, sid) + md


def _scan_srv6(cur):
    """After ``srv6(segments_left=``: the routing header and its segments,
    which the text lists last one first."""
    start = cur.i
    left = _u(cur, 8, "segments_left", 10)
    if left + 1 > H.SRV6_MAX_SEGS:
        cur.fail(f"{left + 1} segments, more than {H.SRV6_MAX_SEGS}", start)
    cur.expect(",segs(")
    segs = []
    while cur.peek() not in ("", ")"):
        if len(segs) == left + 1:
            cur.fail(f"more than segments_left + 1 = {left + 1} segments")
        segs.append(scan_in6(cur, "segment"))
        cur.accept(",")
    if len(segs) != left + 1:
        cur.fail(f"{len(segs)} segments for segments_left={left}")
    cur.expect(")))")
    srh = H.IPV6_SR_HDR.pack(0, 2 * (left + 1), H.IPV6_SRCRT_TYPE_4, left, left, 0, 0)
    return U.OVS_VPORT_TYPE_SRV6, srh + b"".join(reversed(segs))


def parse_tnl_push(cur):
    """ovs_parse_tnl_push() from just after ``tnl_push(``: the action's payload."""
    cur.expect("tnl_port(")
    tnl_port = _u(cur, 32, "tnl_port")
    cur.expect("),header(size=")
    at_size = cur.i
    size = _u(cur, 32, "header size")
    cur.expect(",type=")
    at_type = cur.i
    want_type = _u(cur, 32, "tunnel type")
    cur.expect(",eth(dst=")
    dst = scan_eth(cur)
    cur.expect(",src=")
    src = scan_eth(cur)
    cur.expect(",dl_type=")
    eth_type = _hex(cur, 16, "dl_type")
    cur.expect("),")
    eth = H.ETHHDR.pack(dst, src, eth_type)
    ipv4 = eth_type == H.ETH_P_IP
    if ipv4:
        cur.expect("ipv4(src=")
        sip = scan_ipv4(cur)
        cur.expect(",dst=")
        dip = scan_ipv4(cur)
        cur.expect(",proto=")
        proto = _u(cur, 8, "proto")
        cur.expect(",tos=")
        tos = _u(cur, 8, "tos")
        cur.expect(",ttl=")
        ttl = _u(cur, 8, "ttl")
        cur.expect(",frag=")
        frag = _hex(cur, 16, "frag")
        cur.expect("),")
        ip = bytearray(H.IPHDR.pack(0x45, tos, 0, 0, frag, ttl, proto, 0,
                                    _BE32.unpack(sip)[0], _BE32.unpack(dip)[0]))
        ip[10:12] = _BE16.pack(inet_csum(ip))
    else:
        cur.expect("ipv6(src=")
        sip6 = scan_in6(cur)
        cur.expect(",dst=")
        dip6 = scan_in6(cur)
        cur.expect(",label=")
        at_label = cur.i
        label = _u(cur, 32, "label")
        if label & ~H.IPV6_FLOWLABEL_MASK:
            cur.fail(f"label {label:#x} wider than 20 bits", at_label)
        cur.expect(",proto=")
        proto = _u(cur, 8, "proto")
        cur.expect(",tclass=")
        tclass = _hex(cur, 8, "tclass")
        cur.expect(",hlimit=")
        hlimit = _u(cur, 8, "hlimit")
        cur.expect("),")
        ip = [6 << 28 | tclass << 20 | label, 0, proto, hlimit, sip6, dip6]
    if cur.accept("udp(src="):
        tnl_type, rest = _scan_udp_tunnel(cur)
    elif cur.accept("gre((flags=0x"):
        tnl_type, rest = _scan_gre(cur, ipv4)
    elif cur.accept("erspan(ver="):
        tnl_type, rest = _scan_erspan(cur, ipv4)
    elif not ipv4 and cur.accept("srv6(segments_left="):
        tnl_type, rest = _scan_srv6(cur)
        ip[2] = H.IPPROTO_ROUTING
    else:
        cur.fail("expected udp(, gre(, erspan( or srv6(")
    if not ipv4:
        ip = H.IPV6HDR.pack(*ip)
    header = eth + bytes(ip) + rest
    if tnl_type != want_type:
        cur.fail(f"type={want_type} but the header is of tunnel type {tnl_type}", at_type)
    if size != len(header):
        cur.fail(f"size={size} but the header is {len(header)} bytes", at_size)
    cur.expect(",out_port(")
    out_port = _u(cur, 32, "out_port")
    cur.expect("))")
    return PUSH_TNL.pack(tnl_port, out_port, size, tnl_type) + header

