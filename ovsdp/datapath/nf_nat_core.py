"""NAT bindings, as net/netfilter/nf_nat_core.c: choosing the translated
tuple of a new connection.

``setup_info`` is ``nf_nat_setup_info()``: it picks a tuple for one side
(source or destination) of an unconfirmed connection within a
:class:`NatRange`, unique in the connection's zone, and alters the
connection's reply tuple so that replies are recognised; the connection is
marked SRC_NAT/DST_NAT when its tuple changed and SRC/DST_NAT_DONE either
way.  ``alloc_null_binding`` is the identity mapping (which still moves a
port when the tuple is taken).  The choice follows the kernel's order:
keep the tuple when it fits and is free; reuse the mapping of an existing
connection from the same source (``find_appropriate_src``, source NAT
only); else an address by a hash of the addresses, then a port (or ICMP
id) from a random offset, at most ``NF_NAT_MAX_ATTEMPTS`` tries, halving.

The source-mapping index (the kernel's ``nf_nat_bysource``) is the
tracker's ``nat_bysource``, maintained as connections are confirmed and
removed.  Addresses are ints (IPv4 32-bit, IPv6 128-bit), as in
:class:`~.nf_conntrack.Tuple`.  Sans I/O.
"""

from .nf_conntrack import nat_bysource_key
from .nf_conntrack_common import (
    IPPROTO_DCCP,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPPROTO_UDPLITE,
    IPS_CONFIRMED,
    IPS_DST_NAT,
    IPS_DST_NAT_DONE,
    IPS_SRC_NAT,
    IPS_SRC_NAT_DONE,
    NFPROTO_IPV4,
)
from .nf_conntrack_seqadj import SeqAdj

NF_NAT_MANIP_SRC = 0
NF_NAT_MANIP_DST = 1

# enum nf_nat_range_flags (include/uapi/linux/netfilter/nf_nat.h)
NF_NAT_RANGE_MAP_IPS = 1 << 0
NF_NAT_RANGE_PROTO_SPECIFIED = 1 << 1
NF_NAT_RANGE_PROTO_RANDOM = 1 << 2
NF_NAT_RANGE_PERSISTENT = 1 << 3
NF_NAT_RANGE_PROTO_RANDOM_FULLY = 1 << 4
NF_NAT_RANGE_PROTO_OFFSET = 1 << 5
NF_NAT_RANGE_NETMAP = 1 << 6
NF_NAT_RANGE_PROTO_RANDOM_ALL = NF_NAT_RANGE_PROTO_RANDOM | NF_NAT_RANGE_PROTO_RANDOM_FULLY

NF_NAT_MAX_ATTEMPTS = 128
NF_ACCEPT, NF_DROP = 1, 0

_PORTED = frozenset({IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, IPPROTO_SCTP, IPPROTO_DCCP})
_ICMPS = (IPPROTO_ICMP, IPPROTO_ICMPV6)
_DONE = (IPS_SRC_NAT_DONE, IPS_DST_NAT_DONE)
_NAT_BIT = (IPS_SRC_NAT, IPS_DST_NAT)


class NatRange:
    """struct nf_nat_range2 as parse_nat() fills it: flags, the address range
    (ints) and the L4 range (host-order ports or ICMP ids)."""

    __slots__ = ("flags", "min_addr", "max_addr", "min_proto", "max_proto")

    def __init__(self, flags=0, min_addr=0, max_addr=0, min_proto=0, max_proto=0):
        self.flags, self.min_addr, self.max_addr = flags, min_addr, max_addr
        self.min_proto, self.max_proto = min_proto, max_proto

    def __eq__(self, other):
        return isinstance(other, NatRange) and all(
            getattr(self, f) == getattr(other, f) for f in self.__slots__)

    def __repr__(self):
        return ("NatRange(flags=%#x, addr=%#x-%#x, proto=%d-%d)"
                % (self.flags, self.min_addr, self.max_addr, self.min_proto, self.max_proto))


def initialized(conn, manip):
    """nf_nat_initialized()."""
    return bool(conn.status & _DONE[manip])


# -- tuples ---------------------------------------------------------------------------------

def _l4_value(tup, manip):
    """The per-protocol part a manip changes: the ICMP id (either manip),
    the source or destination port, or None (not manipulable)."""
    if tup.protonum in _ICMPS:
        return tup.icmp_id
    if tup.protonum in _PORTED:
        return tup.sport if manip == NF_NAT_MANIP_SRC else tup.dport
    return None


def _with_l4(tup, manip, value):
    if tup.protonum in _ICMPS:
        return tup._replace(icmp_id=value)
    if manip == NF_NAT_MANIP_SRC:
        return tup._replace(sport=value)
    return tup._replace(dport=value)


def _addr(tup, manip):
    return tup.src if manip == NF_NAT_MANIP_SRC else tup.dst


def _l4proto_in_range(tup, manip, lo, hi):
    """nf_nat_l4proto_in_range()."""
    v = _l4_value(tup, manip)
    return v is None or lo <= v <= hi


def _in_range(tup, rng):
    """nf_in_range() for a source manip: the source address and (when the
    range names one) the port within ``rng``."""
    if rng.flags & NF_NAT_RANGE_MAP_IPS and not rng.min_addr <= tup.src <= rng.max_addr:
        return False
    return (not rng.flags & NF_NAT_RANGE_PROTO_SPECIFIED
            or _l4proto_in_range(tup, NF_NAT_MANIP_SRC, rng.min_proto, rng.max_proto))


def used_tuple(tracker, tup, conn):
    """nf_nat_used_tuple(): whether a connection other than ``conn`` (and not
    one with the same original tuple, left to clash resolution) would
    receive replies to ``tup``."""
    reply = tup.invert()
    if reply is None:
        return False
    hit = tracker.find(conn.zone, reply)
    if hit is None or hit[0] is conn:
        return False
    return hit[0].tuple[0] != conn.tuple[0]


# -- the source index -------------------------------------------------------------------------

def _find_appropriate_src(tracker, conn, tup, rng):
    """find_appropriate_src(): the mapping an existing connection from the
    same source got, when it fits ``rng``."""
    for other in tracker.nat_bysource.get(nat_bysource_key(conn.zone, tup), ()):
        res = other.tuple[1].invert()
        if res is None:
            continue
        res = res._replace(dst=tup.dst, dport=tup.dport, icmp_type=tup.icmp_type,
                           icmp_code=tup.icmp_code)
        if _in_range(res, rng):
            return res
    return None


# -- choosing ---------------------------------------------------------------------------------

def _hash32(*words):
    """A 32-bit mix of 32-bit words (the kernel uses jhash2; any stable,
    well-spread hash keeps its property: the same hosts map alike)."""
    h = 0x9E3779B9
    for w in words:
        h = ((h ^ (w & 0xFFFFFFFF)) * 0x01000193) & 0xFFFFFFFF
        h ^= h >> 15
    return h


def _words(addr, l3num):
    n = 1 if l3num == NFPROTO_IPV4 else 4
    return [(addr >> (32 * (n - 1 - i))) & 0xFFFFFFFF for i in range(n)]


def _find_best_ips(tup, rng, zone, manip):
    """find_best_ips_proto(): an address in the range, by a hash of the
    source (and, unless PERSISTENT, the destination) address."""
    if not rng.flags & NF_NAT_RANGE_MAP_IPS:
        return tup
    if rng.min_addr == rng.max_addr:
        addr = rng.min_addr
    else:
        src_w, dst_w = _words(tup.src, tup.l3num), _words(tup.dst, tup.l3num)
        persistent = rng.flags & NF_NAT_RANGE_PERSISTENT
        j = _hash32(*src_w, 0 if persistent else dst_w[-1] ^ zone)
        lo_w, hi_w = _words(rng.min_addr, tup.l3num), _words(rng.max_addr, tup.l3num)
        out, full = [], False
        for i in range(len(lo_w)):
            if not full:
                lo, dist = lo_w[i], (hi_w[i] - lo_w[i]) % (1 << 32) + 1
            else:
                lo, dist = 0, 0xFFFFFFFF
            w = (lo + ((j * dist) >> 32)) & 0xFFFFFFFF       # reciprocal_scale()
            out.append(w)
            if w != hi_w[i]:
                full = True
            if not persistent:
                j ^= dst_w[i]
        addr = 0
        for w in out:
            addr = addr << 32 | w
    return tup._replace(src=addr) if manip == NF_NAT_MANIP_SRC else tup._replace(dst=addr)


def _unique_l4(tracker, tup, rng, manip, conn):
    """nf_nat_l4proto_unique_tuple(): move the port (or ICMP id) to a free
    value of the range; the tuple unchanged when there is none."""
    value = _l4_value(tup, manip)
    if value is None:
        return tup
    specified = rng.flags & NF_NAT_RANGE_PROTO_SPECIFIED
    if tup.protonum in _ICMPS:
        if specified:
            lo, size = rng.min_proto, rng.max_proto - rng.min_proto + 1
        else:
            lo, size = 0, 65536
    elif not specified:
        if manip == NF_NAT_MANIP_DST:
            return tup                  # a destination port is not moved unasked
        if value < 1024:
            lo, size = (1, 511) if value < 512 else (600, 1023 - 600 + 1)
        else:
            lo, size = 1024, 65535 - 1024 + 1
    else:
        lo, hi = sorted((rng.min_proto, rng.max_proto))
        size = hi - lo + 1
    if size <= 0:
        return tup
    rand = tracker.rng.getrandbits
    if rng.flags & NF_NAT_RANGE_PROTO_OFFSET:
        off = 0
    elif rng.flags & NF_NAT_RANGE_PROTO_RANDOM_ALL or manip != NF_NAT_MANIP_DST:
        off = rand(16)
    else:
        off = 0
    attempts = min(size, NF_NAT_MAX_ATTEMPTS)
    while True:
        for _ in range(attempts):
            cand = _with_l4(tup, manip, lo + off % size)
            if not used_tuple(tracker, cand, conn):
                return cand
            off += 1
        if attempts >= size or attempts < 16:
            return cand                 # every try taken: the clash fails at confirm
        attempts //= 2
        off = rand(16)


def get_unique_tuple(tracker, orig, rng, conn, manip):
    """get_unique_tuple(): the translated tuple for ``orig``."""
    if manip == NF_NAT_MANIP_SRC and not rng.flags & NF_NAT_RANGE_PROTO_RANDOM_ALL:
        if _in_range(orig, rng):
            if not used_tuple(tracker, orig, conn):
                return orig
        else:
            found = _find_appropriate_src(tracker, conn, orig, rng)
            if found is not None and not used_tuple(tracker, found, conn):
                return found
    tup = _find_best_ips(orig, rng, conn.zone, manip)
    if not rng.flags & NF_NAT_RANGE_PROTO_RANDOM_ALL:
        if rng.flags & NF_NAT_RANGE_PROTO_SPECIFIED:
            if (not rng.flags & NF_NAT_RANGE_PROTO_OFFSET
                    and _l4proto_in_range(tup, manip, rng.min_proto, rng.max_proto)
                    and (rng.min_proto == rng.max_proto or not used_tuple(tracker, tup, conn))):
                return tup
        elif not used_tuple(tracker, tup, conn):
            return tup
    return _unique_l4(tracker, tup, rng, manip, conn)


def setup_info(tracker, conn, rng, manip):
    """nf_nat_setup_info(): NF_ACCEPT or NF_DROP."""
    if conn.status & IPS_CONFIRMED:
        return NF_ACCEPT                # can't set up NAT of a confirmed connection
    if initialized(conn, manip):
        return NF_DROP
    curr = conn.tuple[1].invert()
    if curr is None:
        return NF_DROP
    new = get_unique_tuple(tracker, curr, rng, conn, manip)
    if new != curr:
        reply = new.invert()
        if reply is None:
            return NF_DROP
        conn.tuple[1] = reply           # nf_conntrack_alter_reply()
        conn.status |= _NAT_BIT[manip]
        if conn.help is not None and conn.seqadj is None:
            conn.seqadj = SeqAdj()      # a helper's text may change length: nfct_seqadj_ext_add()
    conn.status |= _DONE[manip]
    return NF_ACCEPT


def alloc_null_binding(tracker, conn, manip):
    """nf_nat_alloc_null_binding(): map to the address the connection has."""
    reply = conn.tuple[1]
    addr = reply.dst if manip == NF_NAT_MANIP_SRC else reply.src
    return setup_info(tracker, conn, NatRange(NF_NAT_RANGE_MAP_IPS, addr, addr), manip)
