"""TCP sequence number adjustment, as net/netfilter/nf_conntrack_seqadj.c.

When NAT rewrites a helper's text (an FTP PORT command whose address
grows or shrinks), the sender's later sequence numbers and the receiver's
acknowledgements no longer agree: :class:`SeqAdj` (``struct
nf_conn_seqadj``) keeps, per direction, where the change happened and the
offset before and after it; ``seq_adjust()`` rewrites a packet's sequence,
acknowledgement and SACK blocks (checksum updated incrementally);
``offset()`` is what the TCP tracker subtracts from an acknowledgement.
Sans I/O.
"""

from . import checksum as CS
from .nf_conntrack_common import IP_CT_IS_REPLY, IPS_SEQ_ADJUST

_M32 = 0xFFFFFFFF
TCPOPT_EOL, TCPOPT_NOP, TCPOPT_SACK = 0, 1, 5
TCPOLEN_SACK_PERBLOCK = 8


def _after(a, b):
    """after(): a is later than b, in 32-bit sequence space."""
    return ((b - a) & _M32) >= 0x80000000


class Way:
    """struct nf_ct_seqadj: one direction's correction."""

    __slots__ = ("correction_pos", "offset_before", "offset_after")

    def __init__(self):
        self.correction_pos = self.offset_before = self.offset_after = 0

    def off(self, seq):
        return self.offset_after if _after(seq, self.correction_pos) else self.offset_before


class SeqAdj:
    """struct nf_conn_seqadj: the two directions' corrections."""

    __slots__ = ("seq",)

    def __init__(self):
        self.seq = (Way(), Way())

    def offset(self, direction, seq):
        """nf_ct_seq_offset()."""
        return self.seq[direction].off(seq)


def _dir(ctinfo):
    return 1 if ctinfo >= IP_CT_IS_REPLY else 0


def seqadj_init(conn, ctinfo, off):
    """nf_ct_seqadj_init()."""
    if off == 0:
        return
    conn.status |= IPS_SEQ_ADJUST
    if conn.seqadj is None:
        conn.seqadj = SeqAdj()
    way = conn.seqadj.seq[_dir(ctinfo)]
    way.offset_before = way.offset_after = off


def seqadj_set(conn, ctinfo, seq, off):
    """nf_ct_seqadj_set(): the payload of the packet at ``seq`` changed by
    ``off`` bytes.  A connection without the extension is left alone (the
    kernel warns: nfct_seqadj_ext_add() was not called)."""
    if off == 0 or conn.seqadj is None:
        return
    conn.status |= IPS_SEQ_ADJUST
    way = conn.seqadj.seq[_dir(ctinfo)]
    if way.offset_before == way.offset_after or _after(seq, way.correction_pos):
        way.correction_pos = seq
        way.offset_before = way.offset_after
        way.offset_after += off


def _get32(d, off):
    return int.from_bytes(d[off:off + 4], "big")


def _replace32(d, field, check, new, partial):
    old = _get32(d, field)
    CS.inet_proto_csum_replace(d, check, old, new, 1, partial, False)
    d[field:field + 4] = new.to_bytes(4, "big")


def _sack_adjust(d, protoff, way, partial):
    """nf_ct_sack_adjust(): the SACK blocks acknowledge the other side's
    numbers; 1 on success, 0 for a malformed option."""
    doff = (d[protoff + 12] >> 4) * 4
    optoff, optend = protoff + 20, protoff + doff
    if optend > len(d):
        return 0
    check = protoff + 16
    while optoff < optend:
        kind = d[optoff]
        if kind == TCPOPT_EOL:
            return 1
        if kind == TCPOPT_NOP:
            optoff += 1
            continue
        if optoff + 1 == optend or optoff + d[optoff + 1] > optend or d[optoff + 1] < 2:
            return 0
        olen = d[optoff + 1]
        if (kind == TCPOPT_SACK and olen >= 2 + TCPOLEN_SACK_PERBLOCK
                and (olen - 2) % TCPOLEN_SACK_PERBLOCK == 0):
            for blk in range(optoff + 2, optoff + olen, TCPOLEN_SACK_PERBLOCK):
                for edge in (blk, blk + 4):     # start_seq, end_seq
                    v = _get32(d, edge)
                    if _after((v - way.offset_before) & _M32, way.correction_pos):
                        new = (v - way.offset_after) & _M32
                    else:
                        new = (v - way.offset_before) & _M32
                    _replace32(d, edge, check, new, partial)
        optoff += olen
    return 1


def seq_adjust(d, protoff, conn, ctinfo, partial=False):
    """nf_ct_seq_adjust() on the TCP segment at ``protoff`` of the datagram
    ``d`` (a bytearray, rewritten in place): 1 on success, 0 to drop."""
    adj = conn.seqadj
    if adj is None or len(d) < protoff + 20:
        return 0
    direction = _dir(ctinfo)
    this_way, other_way = adj.seq[direction], adj.seq[1 - direction]
    check = protoff + 16
    seq = _get32(d, protoff + 4)
    _replace32(d, protoff + 4, check, (seq + this_way.off(seq)) & _M32, partial)
    if not d[protoff + 13] & 0x10:          # no ACK
        return 1
    ack = _get32(d, protoff + 8)
    if _after((ack - other_way.offset_before) & _M32, other_way.correction_pos):
        ackoff = other_way.offset_after
    else:
        ackoff = other_way.offset_before
    _replace32(d, protoff + 8, check, (ack - ackoff) & _M32, partial)
    return _sack_adjust(d, protoff, other_way, partial)
