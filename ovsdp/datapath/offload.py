"""Checksum and segmentation offloads carried by a virtio_net_hdr.

Frames read from AF_PACKET (PACKET_VNET_HDR) or TAP (IFF_VNET_HDR) come with
a 10-byte virtio_net_hdr telling whether the L4 checksum still has to be
filled in (CHECKSUM_PARTIAL: csum_start, csum_offset) and whether the frame
is a GSO super-frame to be cut into gso_size segments.  ovsdp hands that
header on unchanged when a frame goes out of a port that takes one, which
is what keeps TCP fast; everywhere else (an upcall, a dummy port, actions
that rewrite headers) :func:`resolve` first completes the checksum and
segments the frame in software, as the kernel's skb_checksum_help() and
skb_gso_segment() would.
"""

import struct

from .checksum import csum16, fold_add

# flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_HDR = struct.Struct("<BBHHHH")
VNET_HDR_LEN = 10
ZERO_VNET = bytes(VNET_HDR_LEN)

F_NEEDS_CSUM = 1
F_DATA_VALID = 2
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP = 3
GSO_TCPV6 = 4
GSO_UDP_L4 = 5
GSO_ECN = 0x80

_BE16 = struct.Struct("!H")
_BE32 = struct.Struct("!I")


class OffloadError(Exception):
    """A frame whose offload request cannot be carried out."""


def is_gso(vnet):
    return vnet is not None and (vnet[1] & ~GSO_ECN) != GSO_NONE


def vlan_shift(vnet, n):
    """The header with csum_start/hdr_len moved by ``n`` bytes (a VLAN tag put back)."""
    flags, gso, hdr_len, gso_size, start, offset = VNET_HDR.unpack(vnet)
    if flags & F_NEEDS_CSUM:
        start += n
    if gso & ~GSO_ECN:
        hdr_len += n
    return VNET_HDR.pack(flags, gso, hdr_len, gso_size, start, offset)


def complete_csum(data, vnet):
    """skb_checksum_help(): fill in a partial L4 checksum; returns the frame."""
    flags, _, _, _, start, offset = VNET_HDR.unpack(vnet)
    if not flags & F_NEEDS_CSUM:
        return data
    where = start + offset
    if where + 2 > len(data) or start >= len(data):
        raise OffloadError("checksum offsets beyond the frame")
    d = bytearray(data)
    c = ~csum16(memoryview(d)[start:]) & 0xFFFF
    _BE16.pack_into(d, where, c or 0xFFFF)
    return bytes(d)


def _l3(data):
    """(offset of the IP header, ethertype) after Ethernet and VLAN tags."""
    off = 12
    et = _BE16.unpack_from(data, off)[0]
    while et in (0x8100, 0x88A8):
        off += 4
        et = _BE16.unpack_from(data, off)[0]
    return off + 2, et


def _pseudo(data, l3, et, l4_len, proto):
    if et == 0x0800:
        return fold_add(csum16(data[l3 + 12:l3 + 20]), proto, l4_len)
    return fold_add(csum16(data[l3 + 8:l3 + 40]), proto, l4_len)


def segment(data, vnet):
    """skb_gso_segment() for TCP (v4/v6) and UDP_L4: the list of segments.

    Every segment carries complete checksums.
    """
    _, gso, _, gso_size, _, _ = VNET_HDR.unpack(vnet)
    gso &= ~GSO_ECN
    if not gso_size:
        raise OffloadError("GSO frame without a segment size")
    l3, et = _l3(data)
    if et == 0x0800:
        ihl = (data[l3] & 0x0F) * 4
        l4 = l3 + ihl
        proto = data[l3 + 9]
    elif et == 0x86DD:
        l4 = l3 + 40
        proto = data[l3 + 6]
    else:
        raise OffloadError(f"cannot segment ethertype {et:#06x}")
    if gso in (GSO_TCPV4, GSO_TCPV6) and proto == 6:
        hlen = l4 + (data[l4 + 12] >> 4) * 4
    elif gso == GSO_UDP_L4 and proto == 17:
        hlen = l4 + 8
    else:
        raise OffloadError(f"unsupported GSO type {gso} for IP protocol {proto}")
    payload = memoryview(data)[hlen:]
    if len(payload) <= gso_size:
        return [complete_csum(data, VNET_HDR.pack(F_NEEDS_CSUM, 0, 0, 0, l4,
                                                  16 if proto == 6 else 6))]
    segs = []
    n = (len(payload) + gso_size - 1) // gso_size
    if proto == 6:
        seq = _BE32.unpack_from(data, l4 + 4)[0]
        flags = data[l4 + 13]
    ip_id = _BE16.unpack_from(data, l3 + 4)[0] if et == 0x0800 else 0
    for i in range(n):
        chunk = payload[i * gso_size:(i + 1) * gso_size]
        d = bytearray(data[:hlen])
        d += chunk
        l4_len = len(d) - l4
        if et == 0x0800:
            _BE16.pack_into(d, l3 + 2, len(d) - l3)
            _BE16.pack_into(d, l3 + 4, (ip_id + i) & 0xFFFF)
            _BE16.pack_into(d, l3 + 10, 0)
            _BE16.pack_into(d, l3 + 10, ~csum16(d[l3:l4]) & 0xFFFF)
        else:
            _BE16.pack_into(d, l3 + 4, len(d) - l4)
        if proto == 6:
            _BE32.pack_into(d, l4 + 4, (seq + i * gso_size) & 0xFFFFFFFF)
            f = flags
            if i != n - 1:
                f &= ~0x09              # FIN, PSH only on the last segment
            if i != 0:
                f &= ~0x80              # CWR only on the first
            d[l4 + 13] = f
            csum_at = l4 + 16
        else:
            _BE16.pack_into(d, l4 + 4, l4_len)
            csum_at = l4 + 6
        _BE16.pack_into(d, csum_at, 0)
        c = ~fold_add(_pseudo(d, l3, et, l4_len, proto), csum16(d[l4:])) & 0xFFFF
        if proto == 17 and c == 0:
            c = 0xFFFF
        _BE16.pack_into(d, csum_at, c)
        segs.append(bytes(d))
    return segs


def resolve(data, vnet):
    """The plain frames ``data`` stands for: segmented, checksums completed."""
    if vnet is None:
        return [data]
    if is_gso(vnet):
        return segment(data, vnet)
    return [complete_csum(data, vnet)]
