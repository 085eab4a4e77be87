"""What NAT helpers share, as net/netfilter/nf_nat_helper.c.

``mangle_tcp_packet()`` replaces text in a TCP segment's payload (a PORT
command's address), fixing the IP length and checksum, the TCP checksum and
the connection's sequence adjustment when the length changed;
``follow_master()`` is the expectation function that NATs an expected
connection the way its master is; ``exp_find_port()`` registers an
expectation on the wanted port or a free one near it.  Sans I/O.
"""

import errno
import struct

from . import checksum as CS
from .nf_conntrack_common import NFPROTO_IPV4
from .nf_conntrack_expect import related
from .nf_conntrack_seqadj import seqadj_set
from .nf_nat_core import (
    NF_NAT_MANIP_DST,
    NF_NAT_MANIP_SRC,
    NF_NAT_RANGE_MAP_IPS,
    NF_NAT_RANGE_PROTO_SPECIFIED,
    NatRange,
    setup_info,
)

IPPROTO_TCP = 6
_MAX_ATTEMPTS = 128


def _tcp_checksum(d, protoff, v6):
    """The TCP checksum of the segment at ``protoff``, computed afresh (the
    wire result of the kernel's nf_nat_csum_recalc(), which leaves it to
    checksum offload)."""
    seg = bytes(d[protoff:protoff + 16]) + b"\0\0" + bytes(d[protoff + 18:])
    if v6:
        pseudo = bytes(d[8:40]) + struct.pack("!IxxxB", len(seg), IPPROTO_TCP)
    else:
        pseudo = bytes(d[12:20]) + struct.pack("!xBH", IPPROTO_TCP, len(seg))
    return CS.inet_csum(pseudo, seg)


def mangle_tcp_packet(d, conn, ctinfo, protoff, match_offset, match_len, rep,
                      partial=False, adjust=True):
    """__nf_nat_mangle_tcp_packet(): in the datagram ``d`` (a bytearray,
    changed in place), ``match_len`` bytes at ``match_offset`` into the TCP
    payload become ``rep``.  False if it cannot be done (too big)."""
    v6 = conn.tuple[0].l3num != NFPROTO_IPV4
    if len(d) < protoff + 20:
        return False
    doff = (d[protoff + 12] >> 4) * 4
    start = protoff + doff + match_offset
    if start + match_len > len(d) or len(d) + len(rep) - match_len > 65535:
        return False
    oldlen = len(d) - protoff
    d[start:start + match_len] = rep
    datalen = len(d) - protoff
    if v6:
        struct.pack_into("!H", d, 4, len(d) - 40)
    else:
        struct.pack_into("!H", d, 2, len(d))
        struct.pack_into("!H", d, 10, 0)
        struct.pack_into("!H", d, 10, CS.inet_csum(bytes(d[:(d[0] & 15) * 4])))
    check = protoff + 16
    if partial:                         # the pseudo header's length
        CS.inet_proto_csum_replace(d, check, oldlen, datalen, 1, True, True)
    else:
        struct.pack_into("!H", d, check, _tcp_checksum(d, protoff, v6))
    if adjust and len(rep) != match_len:
        seq = struct.unpack_from("!I", d, protoff + 4)[0]
        seqadj_set(conn, ctinfo, seq, len(rep) - match_len)
    return True


def follow_master(tracker, conn, exp):
    """nf_nat_follow_master(): the expected connection's source becomes
    where the master sends to, its destination where the expectation said
    (the master's address and the port saved before NAT chose another)."""
    master = conn.master
    way = master.tuple[1 - exp.dir]
    addr = way.dst
    setup_info(tracker, conn, NatRange(NF_NAT_RANGE_MAP_IPS, addr, addr), NF_NAT_MANIP_SRC)
    addr = way.src
    setup_info(tracker, conn, NatRange(NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED,
                                       addr, addr, exp.saved_proto, exp.saved_proto),
               NF_NAT_MANIP_DST)


# nf_ct_helper_expectfn_register(): the expectation functions ctnetlink names
EXPECTFNS = {"nat-follow-master": follow_master}


def exp_find_port(tracker, exp, port):
    """nf_nat_exp_find_port(): register ``exp`` on ``port``, or on one of
    up to 128 random ports above it when that one is taken; the port, or 0."""
    lo = port
    span = 0xFFFF - port
    attempts = min(span, _MAX_ATTEMPTS)
    while True:
        exp.dport = port
        res = related(tracker, exp)
        if res == 0:
            return port
        attempts -= 1
        if res != -errno.EBUSY or attempts < 0 or span <= 0:
            return 0
        port = lo + tracker.rng.randrange(span)
