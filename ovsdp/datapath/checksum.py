"""Internet checksums (include/net/checksum.h, lib/checksum.c), sans I/O.

Whole sums (:func:`csum16`, :func:`fold_add`, :func:`inet_csum`) and the
kernel's incremental updates of a checksum field in a packet buffer
(:func:`csum_replace2`, :func:`csum_replace4`, :func:`inet_proto_csum_replace`),
which write the field in place as the kernel's take a pointer to it;
and SCTP's CRC32c (:func:`sctp_compute_cksum`).
Values are host integers; fields are big endian in the buffer.
"""


def csum16(data):
    """The 16-bit ones' complement sum of ``data`` (not inverted)."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    n = int.from_bytes(data, "big")
    s = n % 0xFFFF
    if s == 0 and n:
        s = 0xFFFF
    return s


def fold_add(*sums):
    """Ones' complement addition of 16-bit sums (end-around carry)."""
    s = sum(sums)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def inet_csum(*parts):
    """The Internet checksum (inverted ones' complement sum) of the byte
    strings ``parts``; every part but the last must have an even length."""
    return ~fold_add(*(csum16(p) for p in parts)) & 0xFFFF


def fold(s):
    """End-around-carry fold of a non-negative sum to 16 bits (0 stays 0)."""
    if s == 0:
        return 0
    return (s - 1) % 0xFFFF + 1


def _get16(d, off):
    return (d[off] << 8) | d[off + 1]


def _put16(d, off, v):
    d[off] = v >> 8
    d[off + 1] = v & 0xFF


def replace2(check, old, new):
    """RFC 1624: the checksum ``check`` after a 16-bit word went from
    ``old`` to ``new`` (may give 0xffff, as csum_replace2() does)."""
    return ~fold_add(~check & 0xFFFF, ~old & 0xFFFF, new) & 0xFFFF


def csum_replace2(d, off, old, new):
    """csum_replace2() on the checksum field at ``off`` of buffer ``d``."""
    _put16(d, off, replace2(_get16(d, off), old, new))


def csum_replace4(d, off, old, new):
    """csum_replace4(): the IPv4 header checksum for a changed 32-bit word."""
    c = _get16(d, off)
    _put16(d, off, ~fold(0xFFFF0000 + (~c & 0xFFFF) + (new - old) % 0xFFFF) & 0xFFFF)


def inet_proto_csum_replace(d, off, old, new, nwords, partial, pseudohdr):
    """inet_proto_csum_replace{2,4,16}() on the checksum field at ``off``.

    ``old``/``new`` are numbers of ``nwords`` 32-bit words (a 16-bit port is
    one word, as the kernel widens it); ``partial`` is CHECKSUM_PARTIAL.

    The kernel folds a sum of the field and the words (~old, new) with
    end-around carry; a positive sum folds to ((s - 1) % 0xffff) + 1, so only
    the sum modulo 0xffff matters, which is (field + new - old) since
    2**16 == 1 (mod 0xffff).
    """
    c = _get16(d, off)
    if not partial:
        # csum_fold(~field + ~old + new): the ~field term (0xffff0000 | ~c)
        # keeps the sum positive, so the result is never 0xffff.
        r = ~fold(0xFFFF0000 + (~c & 0xFFFF) + (new - old) % 0xFFFF) & 0xFFFF
    elif pseudohdr:
        # ~csum_fold(field + ~old + new): the unfolded pseudo-header sum
        if c == 0 and new == 0 and old == (1 << (32 * nwords)) - 1:
            r = 0
        else:
            r = (c + new - old - 1) % 0xFFFF + 1
    else:
        return
    _put16(d, off, r)


_CRC32C_TABLE = None


def crc32c(data):
    """CRC32c (Castagnoli), as crc32c() of lib/crc32c.c."""
    global _CRC32C_TABLE
    t = _CRC32C_TABLE
    if t is None:
        t = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            t.append(c)
        _CRC32C_TABLE = t
    crc = 0xFFFFFFFF
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def sctp_compute_cksum(d, off):
    """sctp_compute_cksum(): CRC32c of the SCTP packet at ``off`` with a zero
    checksum field, as the 4 bytes stored in the header (little endian)."""
    crc = crc32c(bytes(d[off:off + 8]) + b"\0\0\0\0" + bytes(d[off + 12:]))
    return crc.to_bytes(4, "little")
