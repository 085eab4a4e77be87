"""IPv4 header and TCP/UDP/ICMP/ICMPv6 checksums of whole frames: made right for the
frames the fuzzer sends, checked on the frames the daemon sends out."""

import struct

from ovsdp.vports.encap import inet_csum


def _l3_offsets(data):
    """(ethertype, L3 offset) after the Ethernet header and VLAN tags, or (None, None)."""
    if len(data) < 14:
        return None, None
    off = 12
    et = struct.unpack_from("!H", data, off)[0]
    off += 2
    while et in (0x8100, 0x88A8, 0x9100) and len(data) >= off + 4:
        et = struct.unpack_from("!H", data, off + 2)[0]
        off += 4
    return et, off


def _l4_of(data):
    """(proto, pseudo-header sum bytes, L4 offset, L4 length) of a whole, unfragmented IP
    packet inside ``data``, or None."""
    et, off = _l3_offsets(data)
    if et == 0x0800 and len(data) >= off + 20:
        ihl = (data[off] & 15) * 4
        total = struct.unpack_from("!H", data, off + 2)[0]
        if data[off] >> 4 != 4 or ihl < 20 or total < ihl or off + total != len(data):
            return None
        if struct.unpack_from("!H", data, off + 6)[0] & 0x3FFF:
            return None                        # a fragment
        proto = data[off + 9]
        l4 = off + ihl
        pseudo = data[off + 12:off + 20] + struct.pack("!BBH", 0, proto, total - ihl)
        return proto, pseudo, l4, total - ihl
    if et == 0x86DD and len(data) >= off + 40:
        plen = struct.unpack_from("!H", data, off + 4)[0]
        if data[off] >> 4 != 6 or off + 40 + plen != len(data):
            return None
        proto = data[off + 6]
        if proto not in (6, 17, 58):
            return None                        # extension headers: not checked
        pseudo = data[off + 8:off + 40] + struct.pack("!IxxxB", plen, proto)
        return proto, pseudo, off + 40, plen
    return None


_CSUM_AT = {6: 16, 17: 6, 58: 2, 1: 2}


def fix_checksums(frame):
    """Give an intact frame's TCP/UDP/ICMP/ICMPv6 header a correct checksum."""
    data = bytearray(frame.data)
    got = _l4_of(bytes(data))
    if got is None:
        return
    proto, pseudo, l4, ln = got
    at = _CSUM_AT.get(proto)
    if at is None or ln < at + 2:
        return
    struct.pack_into("!H", data, l4 + at, 0)
    body = bytes(data[l4:l4 + ln])
    c = inet_csum(body if proto == 1 else pseudo + body)
    if proto == 17 and c == 0:
        c = 0xFFFF
    struct.pack_into("!H", data, l4 + at, c)
    frame.data = bytes(data)


def checksum_errors(data):
    """What is wrong with the IPv4 header and L4 checksums of a frame, as a list."""
    out = []
    et, off = _l3_offsets(data)
    if et == 0x0800 and len(data) >= off + 20 and data[off] >> 4 == 4:
        ihl = (data[off] & 15) * 4
        if ihl >= 20 and len(data) >= off + ihl and inet_csum(data[off:off + ihl]) != 0:
            out.append("IPv4 header checksum")
    got = _l4_of(data)
    if got is not None:
        proto, pseudo, l4, ln = got
        at = _CSUM_AT.get(proto)
        # like Linux's update_ipv6_checksum()/set_ip_addr(): L4 headers shorter than
        # struct tcphdr/udphdr/icmp6hdr (20/8/8 bytes) are left alone
        if at is not None and ln >= {6: 20, 17: 8, 58: 8, 1: 4}[proto]:
            stored = struct.unpack_from("!H", data, l4 + at)[0]
            body = data[l4:l4 + ln]
            if not (proto == 17 and stored == 0 and et == 0x0800):
                if inet_csum(body if proto == 1 else pseudo + body) != 0:
                    out.append({6: "TCP", 17: "UDP", 58: "ICMPv6", 1: "ICMP"}[proto] +
                               " checksum")
    return out
