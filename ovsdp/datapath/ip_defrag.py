"""IP fragment reassembly before conntrack, sans I/O: net/ipv4/ip_fragment.c
(``ip_defrag()`` with user IP_DEFRAG_CONNTRACK_IN + zone),
net/ipv6/netfilter/nf_conntrack_reasm.c (``nf_ct_frag6_gather()``), the
queue machinery they share (net/ipv4/inet_fragment.c) and the CT action's
use of them (net/openvswitch/conntrack.c ``ovs_ct_handle_fragments()``).

:class:`Defrag` is what a network namespace holds: one :class:`FqDir` per
family (net->ipv4.fqdir and the netfilter IPv6 one), each with its queues,
memory budget, timeout and :class:`ReasmStats` (the MIB counters
ReasmReqds/OKs/Fails/Timeout/Overlaps).  ``ip_defrag`` and ``frag6_gather``
take a packet from its IP header on (bytes) and say what became of it:

- ``(0, datagram, frag_max_size)``: this fragment completed the datagram;
- ``(EINPROGRESS, None, 0)``: the fragment is kept (stolen) until the rest
  comes;
- ``(errno, None, 0)``: the fragment is dropped;
- IPv6 only, ``(0, None, 0)``: the packet goes on as it is (a jumbogram,
  no fragment header, a first fragment without its whole L4 header, a
  non-last fragment whose length is not a multiple of 8), as
  nf_ct_frag6_gather() returns 0 for those.

A queue is keyed as Linux keys it: IPv4 (user, saddr, daddr, id,
protocol); IPv6 (user, saddr, daddr, id, input ifindex); the user is
IP_DEFRAG_CONNTRACK_IN / IP6_DEFRAG_CONNTRACK_IN plus the zone, so zones
never mix.  Fragments are checked and placed as ip_frag_queue() /
nf_ct_frag6_queue() and inet_frag_queue_insert() do: runs of adjacent
fragments, a fragment inside one run is a duplicate (dropped, the queue
kept), any other overlap discards the whole queue (RFC 5722, IPv4 too since
Linux 4.19).  A queue lives ``timeout`` seconds from its first fragment
(30 s for IPv4, ipfrag_time; 60 s for IPv6, nf_conntrack_frag6_timeout).

Where ovsdp differs from Linux, on purpose:

- Memory: fragments are accounted as their length plus a fixed
  SKB_TRUESIZE overhead, and each queue as its own size.  Above
  ``high_thresh`` (4 MiB) the oldest queues are evicted down to
  ``low_thresh`` (3 MiB), counted in ``evictions`` and ReasmFails, as
  Linux did before 4.17; today's Linux refuses new fragments instead until
  timeouts free memory.
- Timeouts are found by the clock on the next call (or ``expire()``, the
  daemon's timer) rather than by a timer per queue; no ICMP "fragment
  reassembly time exceeded" is sent (the kernel skips it for conntrack
  users unless the packet was for the host itself).
- ipfrag_max_dist (the inet_peer distance check) is not reproduced.
- The reassembled packet keeps the L2 header (and VLAN tags) of the
  fragment that completed it, which is what its flow key describes; the
  kernel's skb_morph() leaves the first fragment's in the buffer.
- The IPv6 path counts its outcomes too (the kernel's netfilter
  reassembly updates no MIB); an IPv6 fragment shorter than its
  payload_len says is dropped rather than queued short.
"""

import collections
import errno
import struct

from .. import uapi as U
from ..uapi import headers as H
from . import checksum as CS
from . import flow_key as FK
from . import key_layout as K
from .nf_conntrack import ipv6_skip_exthdr

IPFRAG_HIGH_THRESH = 4 * 1024 * 1024      # ipfrag_high_thresh / nf_conntrack_frag6_high_thresh
IPFRAG_LOW_THRESH = 3 * 1024 * 1024       # ipfrag_low_thresh / nf_conntrack_frag6_low_thresh
IP_FRAG_TIME = 30.0                       # ipfrag_time (IP_FRAG_TIME = 30 * HZ)
IPV6_FRAG_TIMEOUT = 60.0                  # nf_conntrack_frag6_timeout (IPV6_FRAG_TIMEOUT)
IPV6_MAXPLEN = 65535
IP_MAX_LEN = 65535

# enum ip_defrag_users / ip6_defrag_users: the conntrack users, zone added
IP_DEFRAG_CONNTRACK_IN = 1
IP6_DEFRAG_CONNTRACK_IN = 1

# skb->truesize beyond the data (SKB_DATA_ALIGN(sizeof(sk_buff)) + shared
# info), and the size of a queue (struct ipq / frag_queue), for the budget
SKB_TRUESIZE_OVERHEAD = 576
FRAG_QUEUE_SIZE = 256

IP_MF = 0x2000
IP_DF = H.IP_DF
IP_OFFSET = 0x1FFF
IP6_MF = 0x0001
FRAG_HDR_LEN = 8                          # struct frag_hdr

# ip4_frag_ecn() / ip6_frag_ecn() bits and ip_frag_ecn_table[] (RFC 3168 5.3)
IPFRAG_ECN_NOT_ECT, IPFRAG_ECN_ECT_1, IPFRAG_ECN_ECT_0, IPFRAG_ECN_CE = 1, 2, 4, 8
INET_ECN_CE = 3
_ECN_TABLE = [0] * 16
for _ce in (IPFRAG_ECN_ECT_0, IPFRAG_ECN_ECT_1, IPFRAG_ECN_ECT_0 | IPFRAG_ECN_ECT_1):
    _ECN_TABLE[IPFRAG_ECN_CE | _ce] = INET_ECN_CE
for _v in range(16):
    if _v & IPFRAG_ECN_NOT_ECT and _v & ~IPFRAG_ECN_NOT_ECT:
        _ECN_TABLE[_v] = 0xFF                 # not-ECT mixed with ECT or CE: drop
del _ce, _v

# inet_frag_queue_insert() results
IPFRAG_OK, IPFRAG_DUP, IPFRAG_OVERLAP = 0, 1, 2

_IPV6_EXT = frozenset((H.IPPROTO_HOPOPTS, H.IPPROTO_ROUTING, H.IPPROTO_FRAGMENT,
                       H.IPPROTO_ESP, H.IPPROTO_AH, H.IPPROTO_NONE, H.IPPROTO_DSTOPTS))
_L4_MIN = {H.IPPROTO_TCP: 20, H.IPPROTO_UDP: 8, H.IPPROTO_ICMPV6: 8}
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class ReasmStats:
    """The reassembly MIB counters of one family (IPSTATS_MIB_REASM*), and
    the evictions of the memory bound and the duplicates dropped."""

    __slots__ = ("reqds", "oks", "fails", "timeouts", "overlaps", "evictions", "dups")
    MIB = (("ReasmReqds", "reqds"), ("ReasmOKs", "oks"), ("ReasmFails", "fails"),
           ("ReasmTimeout", "timeouts"), ("ReasmOverlaps", "overlaps"),
           ("ReasmEvictions", "evictions"), ("ReasmDuplicates", "dups"))

    def __init__(self):
        for n in self.__slots__:
            setattr(self, n, 0)

    def as_dict(self):
        return {name: getattr(self, attr) for name, attr in self.MIB}

    def __repr__(self):
        return "ReasmStats(%s)" % ", ".join(f"{k}={v}" for k, v in self.as_dict().items())


class FragQueue:
    """struct inet_frag_queue with what ipq / frag_queue add."""

    __slots__ = ("key", "deadline", "first_in", "last_in", "len", "meat", "frags", "runs",
                 "max_size", "max_df_size", "ecn", "head", "nhoffset", "truesize")

    def __init__(self, key, deadline):
        self.key = key
        self.deadline = deadline
        self.first_in = self.last_in = False
        self.len = 0              # the datagram's payload length, as far as known
        self.meat = 0             # payload bytes received
        self.frags = []           # (offset, payload bytes)
        self.runs = []            # [start, end] of runs of adjacent fragments, in order
        self.max_size = 0         # the largest fragment (IPv4: IP length; IPv6: payload_len)
        self.max_df_size = 0      # IPv4: the largest fragment with DF
        self.ecn = 0
        self.head = None          # IPv4: the first fragment's IP header; IPv6: its
        self.nhoffset = 0         # unfragmentable part, where its next header is, and
        self.truesize = FRAG_QUEUE_SIZE

    def insert(self, offset, end):
        """inet_frag_queue_insert(): where [offset, end) goes, or DUP/OVERLAP."""
        runs = self.runs
        if not runs:
            runs.append([offset, end])
        elif runs[-1][1] < end:
            last_end = runs[-1][1]      # the common case: at the end
            if offset < last_end:
                return IPFRAG_OVERLAP
            if offset == last_end:
                runs[-1][1] = end      # fragrun_append_to_last()
            else:
                runs.append([offset, end])
        else:
            lo, hi = 0, len(runs)
            while lo < hi:              # the first run ending after offset
                mid = (lo + hi) // 2
                if runs[mid][1] <= offset:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < len(runs) and runs[lo][0] < end:
                start, run_end = runs[lo]
                if offset >= start and end <= run_end:
                    return IPFRAG_DUP
                return IPFRAG_OVERLAP
            runs.insert(lo, [offset, end])   # a new run (never the last)
        return IPFRAG_OK

    def payload(self):
        self.frags.sort(key=lambda f: f[0])
        return b"".join(p for _o, p in self.frags)


class FqDir:
    """struct fqdir: one family's queues in one namespace, its memory budget,
    timeout and counters.  Queues are kept in creation order, which is also
    the order of their deadlines (one timeout per directory) and the age
    eviction goes by."""

    def __init__(self, timeout, clock, high_thresh=IPFRAG_HIGH_THRESH,
                 low_thresh=IPFRAG_LOW_THRESH):
        self.timeout = timeout
        self.clock = clock
        self.high_thresh = high_thresh
        self.low_thresh = low_thresh
        self.queues = collections.OrderedDict()
        self.mem = 0
        self.stats = ReasmStats()

    def __len__(self):
        return len(self.queues)

    def expire(self, now=None):
        """ip_expire() of every queue whose time is up; how many."""
        if now is None:
            now = self.clock()
        n = 0
        queues = self.queues
        while queues:
            q = next(iter(queues.values()))
            if q.deadline > now:
                break
            self.kill(q)
            self.stats.timeouts += 1
            self.stats.fails += 1
            n += 1
        return n

    def evict(self):
        """The evictor: the oldest queues go until memory is under low_thresh."""
        while self.queues and self.mem > self.low_thresh:
            self.kill(next(iter(self.queues.values())))
            self.stats.evictions += 1
            self.stats.fails += 1

    def find(self, key):
        """inet_frag_find(): the queue of ``key``, a new one if none."""
        now = self.clock()
        self.expire(now)
        if self.mem > self.high_thresh:
            self.evict()
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = FragQueue(key, now + self.timeout)
            self.mem += q.truesize
        return q

    def kill(self, q):
        """inet_frag_kill() and the release of its fragments."""
        if self.queues.get(q.key) is q:
            del self.queues[q.key]
            self.mem -= q.truesize

    def add(self, q, offset, payload, size):
        """Account a queued fragment of ``size`` bytes on the wire."""
        q.frags.append((offset, payload))
        q.meat += len(payload)
        truesize = size + SKB_TRUESIZE_OVERHEAD
        q.truesize += truesize
        self.mem += truesize


class Defrag:
    """A namespace's reassembly state (net->ipv4.fqdir and nf_frag's fqdir)."""

    def __init__(self, clock, high_thresh=IPFRAG_HIGH_THRESH, low_thresh=IPFRAG_LOW_THRESH):
        self.ipv4 = FqDir(IP_FRAG_TIME, clock, high_thresh, low_thresh)
        self.ipv6 = FqDir(IPV6_FRAG_TIMEOUT, clock, high_thresh, low_thresh)

    def __len__(self):
        return len(self.ipv4) + len(self.ipv6)

    def expire(self):
        """Every family's expired queues (the daemon's timer); how many."""
        return self.ipv4.expire() + self.ipv6.expire()

    # ---------------------------------------------------------------- IPv4
    def ip_defrag(self, pkt, user):
        """ip_defrag(): the IPv4 fragment ``pkt`` (from its IP header, the
        header known good) into its queue."""
        fqdir = self.ipv4
        st = fqdir.stats
        st.reqds += 1
        ihl = (pkt[0] & 0x0F) * 4
        tot_len = _U16.unpack_from(pkt, 2)[0]
        n = len(pkt)
        if tot_len < n:                 # ovs_skb_network_trim(): no L2 padding
            n = tot_len
        if n < ihl:
            st.fails += 1
            return errno.EINVAL, None, 0
        frag_off = _U16.unpack_from(pkt, 6)[0]
        key = (user, pkt[12:16], pkt[16:20], pkt[4:6], pkt[9])
        q = fqdir.find(key)
        return self._ip_frag_queue(fqdir, q, pkt, n, ihl, frag_off)

    def _ip_frag_queue(self, fqdir, q, pkt, n, ihl, frag_off):
        """ip_frag_queue()."""
        st = fqdir.stats
        offset = (frag_off & IP_OFFSET) << 3
        end = offset + n - ihl
        if not frag_off & IP_MF:
            # the last fragment: nothing may lie beyond it, nor another end
            if end < q.len or (q.last_in and end != q.len):
                return self._discard(fqdir, q, errno.EINVAL)
            q.last_in = True
            q.len = end
        else:
            end &= ~7                   # non-last fragments hold multiples of 8
            if end > q.len:
                if q.last_in:
                    return self._discard(fqdir, q, errno.EINVAL)
                q.len = end
        if end == offset:
            return self._discard(fqdir, q, errno.EINVAL)
        r = q.insert(offset, end)
        if r == IPFRAG_DUP:
            st.dups += 1
            return errno.EINVAL, None, 0
        if r == IPFRAG_OVERLAP:
            st.overlaps += 1
            return self._discard(fqdir, q, errno.EINVAL)
        fqdir.add(q, offset, bytes(pkt[ihl:ihl + end - offset]), n)
        q.ecn |= 1 << (pkt[1] & 3)
        if offset == 0:
            q.first_in = True
            q.head = bytes(pkt[:ihl])
        fragsize = end - offset + ihl
        if fragsize > q.max_size:
            q.max_size = fragsize
        if frag_off & IP_DF and fragsize > q.max_df_size:
            q.max_df_size = fragsize
        if q.first_in and q.last_in and q.meat == q.len:
            return self._ip_frag_reasm(fqdir, q)
        return errno.EINPROGRESS, None, 0

    @staticmethod
    def _discard(fqdir, q, err):
        fqdir.kill(q)
        fqdir.stats.fails += 1
        return err, None, 0

    def _ip_frag_reasm(self, fqdir, q):
        """ip_frag_reasm(): the datagram, with the first fragment's header."""
        fqdir.kill(q)
        st = fqdir.stats
        ihl = len(q.head)
        total = ihl + q.len
        if total > IP_MAX_LEN:
            st.fails += 1
            return errno.E2BIG, None, 0
        ecn = _ECN_TABLE[q.ecn]
        if ecn == 0xFF:
            st.fails += 1
            return errno.EINVAL, None, 0
        hdr = bytearray(q.head)
        hdr[1] |= ecn
        _U16.pack_into(hdr, 2, total)
        # DF only when the largest fragment had it (IPSKB_FRAG_PMTU)
        _U16.pack_into(hdr, 6, IP_DF if q.max_df_size == q.max_size else 0)
        _U16.pack_into(hdr, 10, 0)
        _U16.pack_into(hdr, 10, CS.inet_csum(hdr))
        st.oks += 1
        return 0, bytes(hdr) + q.payload(), max(q.max_df_size, q.max_size)

    # ---------------------------------------------------------------- IPv6
    def frag6_gather(self, pkt, user, iif=0):
        """nf_ct_frag6_gather(): the IPv6 packet ``pkt`` (from its IPv6 header)
        into its queue; returns a fourth item, the fragment id."""
        payload_len = _U16.unpack_from(pkt, 4)[0]
        if payload_len == 0:
            return 0, None, 0, None       # a jumbogram has no fragment header
        n = len(pkt)
        if 40 + payload_len < n:
            n = 40 + payload_len          # ovs_skb_network_trim()
        found = find_prev_fhdr(pkt, n)
        if found is None:
            return 0, None, 0, None
        prevhoff, fhoff = found
        if _thdr_truncated(pkt, n, fhoff):
            return 0, None, 0, None       # RFC 8200 4.5: not reassembled, goes on
        fqdir = self.ipv6
        st = fqdir.stats
        st.reqds += 1
        if fhoff + FRAG_HDR_LEN > n:
            st.fails += 1
            return errno.ENOMEM, None, 0, None
        frag_id = _U32.unpack_from(pkt, fhoff + 4)[0]
        q = fqdir.find((user, pkt[8:24], pkt[24:40], frag_id, iif))
        err, dgram, max_size = self._frag6_queue(fqdir, q, pkt, n, payload_len, prevhoff,
                                                 fhoff)
        return err, dgram, max_size, frag_id

    def _frag6_queue(self, fqdir, q, pkt, n, payload_len, prevhoff, fhoff):
        """nf_ct_frag6_queue()."""
        st = fqdir.stats
        frag_off = _U16.unpack_from(pkt, fhoff + 2)[0]
        offset = frag_off & ~7
        data_at = fhoff + FRAG_HDR_LEN
        end = offset + payload_len - (data_at - 40)
        if end > IPV6_MAXPLEN or end < offset:
            st.fails += 1
            return errno.EINVAL, None, 0
        if not frag_off & IP6_MF:
            if end < q.len or (q.last_in and end != q.len):
                st.fails += 1
                return errno.EINVAL, None, 0
            q.last_in = True
            q.len = end
        else:
            if end & 7:
                # RFC 8200: a parameter problem; the queue goes and the
                # packet passes on as it is (-EPROTO, then 0)
                fqdir.kill(q)
                st.fails += 1
                return 0, None, 0
            if end > q.len:
                if q.last_in:
                    st.fails += 1
                    return errno.EINVAL, None, 0
                q.len = end
        if end == offset or data_at + end - offset > n:
            st.fails += 1
            return errno.EINVAL, None, 0
        r = q.insert(offset, end)
        if r == IPFRAG_DUP:
            st.dups += 1                  # no error for duplicates: as if queued
            return errno.EINPROGRESS, None, 0
        if r == IPFRAG_OVERLAP:
            st.overlaps += 1
            return self._discard(fqdir, q, errno.EINVAL)
        fqdir.add(q, offset, bytes(pkt[data_at:data_at + end - offset]), n)
        q.ecn |= 1 << ((pkt[1] >> 4) & 3)
        if payload_len > q.max_size:
            q.max_size = payload_len
        if offset == 0:
            q.first_in = True
            q.nhoffset = prevhoff
            q.head = bytes(pkt[:fhoff + 1])   # the unfragmentable part + next header
        if q.first_in and q.last_in and q.meat == q.len:
            # once the queue holds the packet only 0 or EINPROGRESS is returned
            return self._frag6_reasm(fqdir, q)
        return errno.EINPROGRESS, None, 0

    def _frag6_reasm(self, fqdir, q):
        """nf_ct_frag6_reasm(): the fragment header out, the next header
        before it set to what it carried."""
        fqdir.kill(q)
        st = fqdir.stats
        ecn = _ECN_TABLE[q.ecn]
        unfrag = bytearray(q.head[:-1])
        payload_len = len(unfrag) - 40 + q.len
        if ecn == 0xFF or payload_len > IPV6_MAXPLEN:
            st.fails += 1
            return errno.EINPROGRESS, None, 0
        unfrag[q.nhoffset] = q.head[-1]
        _U16.pack_into(unfrag, 4, payload_len)
        unfrag[1] |= ecn << 4             # ipv6_change_dsfield(hdr, 0xff, ecn)
        st.oks += 1
        return 0, bytes(unfrag) + q.payload(), 40 + q.max_size


def find_prev_fhdr(pkt, n):
    """find_prev_fhdr(): (offset of the next-header byte that says
    fragment, offset of the fragment header), or None."""
    nexthdr = pkt[6]
    prev_nhoff = 6
    start = 40
    length = n - start
    while nexthdr != H.IPPROTO_FRAGMENT:
        if nexthdr not in _IPV6_EXT or nexthdr == H.IPPROTO_NONE or nexthdr == H.IPPROTO_ESP:
            return None
        if length < 2:
            return None
        if nexthdr == H.IPPROTO_AH:
            hdrlen = (pkt[start + 1] + 2) << 2
        else:
            hdrlen = (pkt[start + 1] + 1) << 3
        prev_nhoff = start
        nexthdr = pkt[start]
        length -= hdrlen
        start += hdrlen
    if length < 0:
        return None
    return prev_nhoff, start


def _thdr_truncated(pkt, n, fhoff):
    """ipv6frag_thdr_truncated(): a first fragment without all of its L4 header."""
    offset, nexthdr, frag_off = ipv6_skip_exthdr(pkt[:n], fhoff, H.IPPROTO_FRAGMENT)
    if offset < 0 or frag_off & ~7:
        return False
    return offset + _L4_MIN.get(nexthdr, 1) > n


# ------------------------------------------------- the CT action's use of it
NFPROTO_IPV4 = 2
NFPROTO_IPV6 = 10


def ct_handle_fragments(defrag, skb, kx, zone, family, nh):
    """ovs_ct_handle_fragments(): 0 when ``skb`` now holds the whole
    datagram (or an IPv6 packet passes on as it is), EINPROGRESS when the
    fragment was stolen, else the errno it was dropped with.

    On 0 the packet's L2 header (the completing fragment's) is kept in
    front of the datagram, the key's L3/L4 fields are extracted again
    (ovs_flow_key_update_l3l4()) with ip_frag NONE, the skb hash cleared
    and skb.mru set to the largest fragment seen."""
    data = skb.data
    l3 = bytes(data[nh:])
    frag_id = None
    if family == NFPROTO_IPV4:
        err, dgram, mru = defrag.ip_defrag(l3, IP_DEFRAG_CONNTRACK_IN + zone)
    elif family == NFPROTO_IPV6:
        vport = skb.input_vport
        iif = getattr(vport, "ifindex", 0) or 0
        err, dgram, mru, frag_id = defrag.frag6_gather(l3, IP6_DEFRAG_CONNTRACK_IN + zone, iif)
    else:
        return errno.EPFNOSUPPORT
    if err:
        return err
    if dgram is not None:
        skb.data = bytes(data[:nh]) + dgram
        skb.csum_partial = None
        if frag_id is not None:
            skb.frag_id = frag_id
    skb.mru = mru
    skb.hash = 0                          # skb_clear_hash()
    skb.sw_hash = skb.l4_hash = False
    no_eth = (kx.k >> K.S_NO_ETH) & 0xFF != 0
    k = FK.parse(skb.data, kx.k & FK.META_MASK, no_eth, kx.proto)[0]
    kx.k = (k & ~K.M_IP_FRAG) | (U.OVS_FRAG_TYPE_NONE << K.S_IP_FRAG)
    kx.valid = True
    kx.ly = None
    return 0
