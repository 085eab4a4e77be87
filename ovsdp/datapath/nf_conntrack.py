"""The connection tracker core, as net/netfilter/nf_conntrack_core.c.

``ConnTracker.process()`` is ``nf_conntrack_in()`` on a packet given as bytes
from its network header; ``confirm()`` is ``nf_conntrack_confirm()`` (the
commit of the OVS ct action).  Connections live in one table keyed by
(zone, tuple) for both directions, as the kernel's hash holds both
tuplehash entries; the table never holds more than ``max_conns``
connections (``nf_conntrack_max``), making room by early drop of an
unassured connection.  Expiry is checked on lookup (``nf_ct_is_expired``)
and by ``gc(budget)``, which takes expired connections off a heap in expiry
order (lazy deletion; the heap is rebuilt when stale entries outnumber the
live ones, so its size stays O(max_conns)).

Sans I/O: no sockets, no threads; time comes from the injected ``clock``
(seconds, monotonic).  Bad input never raises: it gives an invalid result
with a reason.  The per-protocol trackers are in nf_conntrack_tcp.py and
nf_conntrack_proto.py; tuples and packet parsing in nf_conntrack_tuple.py and
the numbers in nf_conntrack_common.py (both re-exported).
"""

import heapq
import random
from dataclasses import dataclass

from .nf_conntrack_common import *  # noqa: F403  (the public numbers, re-exported)
from .nf_conntrack_common import (
    IP_CT_ESTABLISHED,
    IP_CT_ESTABLISHED_REPLY,
    IP_CT_IS_REPLY,
    IP_CT_NEW,
    IP_CT_RELATED,
    IP_CT_UNTRACKED,
    IPPROTO_GRE,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_UDP,
    IPPROTO_UDPLITE,
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_DYING,
    IPS_EXPECTED,
    IPS_FIXED_TIMEOUT,
    IPS_SEEN_REPLY,
    IPS_SRC_NAT_DONE,
    NFPROTO_IPV4,
    NFPROTO_IPV6,
    V_INVALID,
    V_REPEAT,
)
from .nf_conntrack_ecache import (
    IPCT_DESTROY,
    IPCT_HELPER,
    IPCT_NEW,
    IPCT_RELATED,
    NF_CT_EVENTS_DEFAULT,
    deliver_cached_events,
    ecache_ext_add,
    event_report,
    packet_events,
    proto_state,
)
from .nf_conntrack_expect import expectation_gc, find_expectation, remove_expectations
from .nf_conntrack_helper import helper_ext_add, try_assign_helper
from .nf_conntrack_proto import (
    GENERIC_TIMEOUT,
    GRE_TIMEOUTS,
    ICMP_TIMEOUT,
    ICMPV6_TIMEOUT,
    SCTP_TIMEOUTS,
    UDP_TIMEOUTS,
    l4proto_find,
)
from .nf_conntrack_tcp import TCP_MAX_RETRANS, TCP_TIMEOUTS
from .nf_conntrack_tuple import (  # noqa: F401 - re-exported: the tracker's API
    Pkt,
    Tuple,
    get_l4proto,
    get_tuple,
    ipv6_skip_exthdr,
    parse_l3,
)

NF_CT_EVICTION_RANGE = 8
_ALLOW_CLASH = frozenset({IPPROTO_UDP, IPPROTO_UDPLITE, IPPROTO_GRE})   # l4proto->allow_clash


def nat_bysource_key(zone, tup):
    """hash_by_src()/same_src(): what connections from the same source share
    (the source address and port, or ICMP id), for source NAT's reuse."""
    l4 = tup.icmp_id if tup.protonum in (IPPROTO_ICMP, IPPROTO_ICMPV6) else tup.sport
    return (zone, tup.l3num, tup.protonum, tup.src, l4)


class Conn:
    """struct nf_conn: one connection, unconfirmed until ``confirm()``.

    ``tuple[0]`` is the original direction, ``tuple[1]`` the reply direction
    (a list, so NAT may set the reply tuple before confirmation).  ``timeout``
    is the absolute expiry time on the tracker's clock; ``counters`` is
    ``[[packets, bytes] original, [packets, bytes] reply]``; ``proto`` the
    protocol tracker's state (TcpState, UdpState or None)."""

    __slots__ = ("zone", "tuple", "status", "mark", "labels", "proto", "timeout", "counters",
                 "created", "key_image", "_in_table", "_heap_key",
                 # the extensions (struct nf_ct_ext): None when the connection has none
                 "help",            # nf_conn_help: the helper and its state (nf_conntrack_helper)
                 "master",          # the connection whose expectation made this one
                 "seqadj",          # nf_conn_seqadj: NAT'd payload's sequence offsets
                 "timeout_ext",     # nf_conn_timeout: a timeout policy's timeouts
                 "ecache")          # nf_conntrack_ecache: event mask and cache

    def __init__(self, zone, orig, reply, now):
        self.zone = zone
        self.tuple = [orig, reply]
        self.status = 0
        self.mark = 0
        self.labels = 0
        self.proto = None
        self.timeout = now
        self.counters = [[0, 0], [0, 0]]
        self.created = now
        self.key_image = None       # the CT action's cache of its original tuple in key form
        self._in_table = False
        self._heap_key = None
        self.help = self.master = self.seqadj = self.timeout_ext = self.ecache = None

    confirmed = property(lambda self: bool(self.status & IPS_CONFIRMED))
    assured = property(lambda self: bool(self.status & IPS_ASSURED))
    seen_reply = property(lambda self: bool(self.status & IPS_SEEN_REPLY))
    dying = property(lambda self: bool(self.status & IPS_DYING))
    protonum = property(lambda self: self.tuple[0].protonum)

    def __repr__(self):
        return (f"Conn(zone={self.zone}, {self.tuple[0]}, status={self.status:#x}, "
                f"timeout={self.timeout}, proto={self.proto!r})")


@dataclass(slots=True)
class CtResult:
    """What nf_conntrack_in() leaves on the skb: the connection and ctinfo.

    ``invalid`` is the reason (a string) when the packet is not a valid part of
    a connection, then ``conn`` is None; ``untracked`` for packets conntrack
    leaves alone (ICMPv6 ND/MLD); ``note`` tells why a packet was accepted
    without refreshing its connection (TCP packets the tracker ignores)."""

    conn: Conn | None = None
    ctinfo: int | None = None
    reply: bool = False
    untracked: bool = False
    invalid: str | None = None
    note: str | None = None

    @property
    def new(self):
        return self.ctinfo == IP_CT_NEW

    @property
    def established(self):
        return self.ctinfo in (IP_CT_ESTABLISHED, IP_CT_ESTABLISHED_REPLY)

    @property
    def related(self):
        return self.ctinfo in (IP_CT_RELATED, IP_CT_RELATED + IP_CT_IS_REPLY)


class Stats:
    """The per-net counters (struct ip_conntrack_stat; CTA_STATS_* names)."""

    FIELDS = ("found", "invalid", "ignore", "insert", "insert_failed", "drop", "early_drop",
              "error", "search_restart", "clash_resolve",
              "expect_new", "expect_create", "expect_delete")
    __slots__ = FIELDS

    def __init__(self):
        for f in self.FIELDS:
            setattr(self, f, 0)

    def as_dict(self):
        return {f: getattr(self, f) for f in self.FIELDS}

    def __getitem__(self, name):
        return getattr(self, name)

    def __repr__(self):
        return f"Stats({self.as_dict()})"


class ConnTracker:
    """The conntrack table of one network namespace (struct netns_ct) with
    its settings (the nf_conntrack_* sysctls, Linux defaults)."""

    def __init__(self, max_conns=65536, clock=None, *, tcp_be_liberal=False, tcp_loose=True,
                 tcp_max_retrans=TCP_MAX_RETRANS, tcp_ignore_invalid_rst=False,
                 checksum=False):
        if clock is None:
            raise TypeError("ConnTracker needs a clock (e.g. time.monotonic)")
        self.max_conns = max_conns
        self._clock = clock
        self.tcp_be_liberal = tcp_be_liberal
        self.tcp_loose = tcp_loose
        self.tcp_max_retrans = tcp_max_retrans
        self.tcp_ignore_invalid_rst = tcp_ignore_invalid_rst
        self.checksum = checksum
        self.acct = False           # nf_conntrack_acct: ctnetlink reports the counters
        self.tcp_timeouts = list(TCP_TIMEOUTS)
        self.udp_timeouts = list(UDP_TIMEOUTS)
        self.sctp_timeouts, self.gre_timeouts = list(SCTP_TIMEOUTS), list(GRE_TIMEOUTS)
        self.icmp_timeout = ICMP_TIMEOUT
        self.icmpv6_timeout = ICMPV6_TIMEOUT
        self.generic_timeout = GENERIC_TIMEOUT
        self.timeout_policies = {}  # nfct_timeout_list: name -> TimeoutPolicy (cttimeout)
        self.stats = Stats()
        self.now = clock()
        self._hash = {}             # (zone, tuple) -> (conn, direction)
        self._conns = {}            # confirmed conns, insertion order
        self._unassured = {}        # confirmed, not ASSURED: early-drop candidates, oldest first
        self._zone_count = {}
        self._heap = []             # (expiry, seq, conn), lazily deleted
        self._seq = 0
        self.nat_bysource = {}      # nf_nat_bysource: source -> {conn: None} (nf_nat_core)
        # the expectations (nf_conntrack_expect): by destination, their number and
        # nf_ct_expect_max (nf_ct_expect_hsize * 4, the hash a 256th of the table's)
        self.expect_hash = {}
        self.expect_heap = []       # (expiry, id, Expect): what gc() reaps, lazily deleted
        self.expect_count = 0
        self.expect_max = max(1, max_conns // 256) * 4
        self.rng = random.Random()  # NAT's port choice (get_random_u16); tests may seed it
        # the namespace's host stack has conntrack on (netfilter's hooks): what
        # its internal ports carry is tracked in zone 0 (conntrack.host_track)
        self.local_stack = True
        # conntrack events (nf_conntrack_ecache): the notifier (nf_conntrack_event_cb,
        # ctnetlink's, set by the namespace) and the nf_conntrack_events sysctl
        self.event_cb = None
        self.sysctl_events = NF_CT_EVENTS_DEFAULT

    # -- packet path -----------------------------------------------------------------------

    def process(self, l3, family, zone=0, timeout_ext=None, tmpl=None):
        """nf_conntrack_in(): track one packet; returns a CtResult.  Never raises.
        ``timeout_ext``: the template's timeout policy extension, which a new
        connection takes (init_conntrack()).  ``tmpl``: the CT action's
        template otherwise (``ct_helper``: the helper a new connection gets;
        ``commit``: the template is confirmed, so an expectation a new
        connection fulfils is used up), None for the host stack's hooks."""
        try:
            return self._process(l3, family, zone, timeout_ext, tmpl)
        except Exception as e:         # a bug must not take the datapath down
            self.stats.invalid += 1
            return CtResult(invalid="internal error: %r" % (e,))

    def _invalid(self, why, stat="invalid"):
        setattr(self.stats, stat, getattr(self.stats, stat) + 1)
        return CtResult(invalid=why)

    def _process(self, l3, family, zone, timeout_ext=None, tmpl=None):
        self.now = self._clock()
        pkt, why = parse_l3(l3, family)
        if pkt is None:
            return self._invalid(why)
        l4 = l4proto_find(pkt.protonum)
        if l4.error is not None and (
                (family == NFPROTO_IPV4 and pkt.protonum == IPPROTO_ICMP) or
                (family == NFPROTO_IPV6 and pkt.protonum == IPPROTO_ICMPV6)):
            res = l4.error(self, pkt, zone)         # nf_conntrack_handle_icmp()
            if res is not None:
                if res[0] == "untracked":
                    return CtResult(ctinfo=IP_CT_UNTRACKED, untracked=True)
                if res[0] == "related":
                    conn, d = res[1], res[2]
                    return CtResult(conn, IP_CT_RELATED + (IP_CT_IS_REPLY if d else 0), d == 1)
                return self._invalid(res[1], "error")
        for _ in range(3):                          # -NF_REPEAT: TCP reopened a closed conn
            tup = get_tuple(pkt.data, 0, pkt.dataoff, family, pkt.protonum)
            if tup is None:
                return self._invalid("can't get tuple")
            conn, d, ctinfo = self._resolve_normal_ct(zone, tup, tmpl)
            if conn is None:
                return self._invalid("can't invert tuple")
            if timeout_ext is not None and not conn.status & IPS_CONFIRMED:
                conn.timeout_ext = timeout_ext      # nf_ct_timeout_ext_add()
            ec = conn.ecache                        # events: what the packet changes
            if ec is not None:
                old = (conn.status, proto_state(conn))
            verdict, reason = l4.packet(self, conn, pkt, d, ctinfo)
            if verdict != V_REPEAT:
                break
        else:
            return self._invalid("repeat loop")
        if verdict == V_INVALID:
            if reason == "drop":
                self.stats.drop += 1
            return self._invalid(reason)
        if ctinfo == IP_CT_ESTABLISHED_REPLY:
            conn.status |= IPS_SEEN_REPLY
        if ec is not None:
            packet_events(conn, *old)           # IPCT_REPLY, _ASSURED, _PROTOINFO
        if conn.status & IPS_ASSURED and conn._in_table:
            self._unassured.pop(conn, None)
        return CtResult(conn, ctinfo, d == 1, note=reason)

    def _resolve_normal_ct(self, zone, tup, tmpl=None):
        """resolve_normal_ct(): find the connection or make a new unconfirmed
        one (init_conntrack); (conn, direction, ctinfo), conn None if the tuple
        cannot be inverted."""
        found = self.find(zone, tup)
        if found is None:
            repl = tup.invert()
            if repl is None:
                return None, 0, None
            conn = Conn(zone, tup, repl, self.now)
            if self.event_cb is not None and self.sysctl_events:
                ecache_ext_add(self, conn)          # init_conntrack(): the event cache
            if self.expect_count or (tmpl is not None and tmpl.ct_helper is not None):
                return conn, 0, self._init_expected(conn, tmpl)
            return conn, 0, IP_CT_NEW
        conn, d = found
        self.stats.found += 1
        if d == 1:
            return conn, 1, IP_CT_ESTABLISHED_REPLY
        if conn.status & IPS_SEEN_REPLY:
            return conn, 0, IP_CT_ESTABLISHED
        if conn.status & IPS_EXPECTED:
            return conn, 0, IP_CT_RELATED
        return conn, 0, IP_CT_NEW

    def _init_expected(self, conn, tmpl):
        """init_conntrack()'s expectation and helper: a connection that an
        expectation foresaw is RELATED to its master (its mark, its NAT by
        the expectation's function); otherwise it gets the template's helper."""
        exp = None
        if self.expect_count:
            exp = find_expectation(self, conn.zone, conn.tuple[0],
                                   tmpl is None or tmpl.commit)
        if exp is not None:
            conn.status |= IPS_EXPECTED
            conn.master = exp.master
            if exp.assign_helper is not None:
                helper_ext_add(conn, exp.assign_helper)
            conn.mark = exp.master.mark
            self.stats.expect_new += 1
            if exp.expectfn is not None:
                exp.expectfn(self, conn, exp)
            return IP_CT_RELATED
        if tmpl is not None and tmpl.ct_helper is not None:
            try_assign_helper(conn, tmpl.ct_helper)
        return IP_CT_NEW

    # -- helpers the protocol trackers call --------------------------------------------------

    def get_tuplepr(self, data, nhoff, l3num):
        """nf_ct_get_tuplepr(): the tuple of the (embedded) packet at ``nhoff``;
        (Tuple, None) or (None, why)."""
        res, why = get_l4proto(data, nhoff, l3num)
        if res is None:
            return None, why
        tup = get_tuple(data, nhoff, res[0], l3num, res[1])
        if tup is None:
            return None, "can't get tuple"
        return tup, None

    def find(self, zone, tup):
        """__nf_conntrack_find_get(): (conn, direction) or None; an expired
        connection met on the way is removed (nf_ct_gc_expired)."""
        hit = self._hash.get((zone, tup))
        if hit is None:
            return None
        conn = hit[0]
        if conn.timeout <= self.now:
            self._remove(conn)
            return None
        return hit

    def refresh_acct(self, conn, pkt, direction, extra):
        """nf_ct_refresh_acct(): new timeout ``extra`` seconds from now (None:
        accounting only) and count the packet."""
        if extra is not None and not conn.status & IPS_FIXED_TIMEOUT:
            self._set_expiry(conn, self.now + extra)
        c = conn.counters[direction]
        c[0] += 1
        c[1] += len(pkt.data)

    def set_timeout(self, conn, seconds):
        """WRITE_ONCE(ct->timeout, seconds + nfct_time_stamp)."""
        self._set_expiry(conn, self.now + seconds)

    def expires(self, conn):
        """nf_ct_expires(): seconds left, 0 if expired."""
        return max(0, conn.timeout - self.now)

    def kill(self, conn, portid=0, report=False):
        """nf_ct_kill() / nf_ct_delete(): False if it was already dying.
        ``portid``/``report``: the ctnetlink request that deletes it (its
        destroy event goes to that socket too with NLM_F_ECHO)."""
        if conn.status & IPS_DYING:
            return False
        if conn._in_table:
            self._remove(conn, portid, report)
        conn.status |= IPS_DYING
        return True

    # -- the table ---------------------------------------------------------------------------

    def confirm(self, result):
        """nf_conntrack_confirm(): insert the packet's new connection.

        True if the connection is (now, or already was) confirmed; False if
        there is none, it is dying, it clashes with another entry, or the
        table is full and early drop freed nothing (counted as drop and
        insert_failed).  A UDP clash with an identical entry is resolved by
        adopting the existing connection into ``result`` (nf_ct_resolve_clash)."""
        conn = result.conn
        if conn is None:
            return False
        if conn.status & IPS_CONFIRMED:
            if conn.ecache is not None:
                deliver_cached_events(self, conn)
            return True
        self.now = self._clock()
        if conn.status & IPS_DYING:
            self.stats.insert_failed += 1
            return False
        if conn.help is not None and conn.help.expectations:
            # TFTP expects at the first packet: a connection that never gets
            # in takes its expectations with it (destroy_conntrack())
            ok = self._confirm_new(result, conn)
            if not ok or result.conn is not conn:
                remove_expectations(self, conn)
            return ok
        return self._confirm_new(result, conn)

    def _confirm_new(self, result, conn):
        for d in (0, 1):
            hit = self.find(conn.zone, conn.tuple[d])
            if hit is None:
                continue
            other = hit[0]
            if (conn.protonum in _ALLOW_CLASH and other.tuple == conn.tuple
                    and other.zone == conn.zone):
                other.counters[0][0] += conn.counters[0][0]
                other.counters[0][1] += conn.counters[0][1]
                result.conn = other
                self.stats.clash_resolve += 1
                if other.ecache is not None:
                    deliver_cached_events(self, other)
                return True
            self.stats.insert_failed += 1
            return False
        if len(self._conns) >= self.max_conns and not self._early_drop():
            self.stats.insert_failed += 1
            self.stats.drop += 1
            return False
        self._insert(conn)
        self.stats.insert += 1
        e = conn.ecache
        if e is not None:                   # __nf_conntrack_confirm(), then the delivery
            e.cache |= 1 << (IPCT_RELATED if conn.master is not None else IPCT_NEW)
            if conn.help is not None and conn.help.helper is not None:
                e.cache |= 1 << IPCT_HELPER
            deliver_cached_events(self, conn)
        return True

    def _insert(self, conn):
        conn.status |= IPS_CONFIRMED
        conn._in_table = True
        self._hash[(conn.zone, conn.tuple[0])] = (conn, 0)
        self._hash[(conn.zone, conn.tuple[1])] = (conn, 1)
        self._conns[conn] = None
        if not conn.status & IPS_ASSURED:
            self._unassured[conn] = None
        self._zone_count[conn.zone] = self._zone_count.get(conn.zone, 0) + 1
        if conn.status & IPS_SRC_NAT_DONE:
            key = nat_bysource_key(conn.zone, conn.tuple[0])
            self.nat_bysource.setdefault(key, {})[conn] = None
        conn._heap_key = None
        self._set_expiry(conn, conn.timeout)

    def _remove(self, conn, portid=0, report=False):
        """nf_ct_delete(): unlink both directions, mark it dying and report
        its destroy (every removal: kill, expiry met by a lookup or gc, early
        drop, flush)."""
        if not conn._in_table:
            return
        conn._in_table = False
        conn.status |= IPS_DYING
        if conn.help is not None:
            remove_expectations(self, conn)
        for d in (0, 1):
            key = (conn.zone, conn.tuple[d])
            hit = self._hash.get(key)
            if hit is not None and hit[0] is conn:
                del self._hash[key]
        del self._conns[conn]
        self._unassured.pop(conn, None)
        if conn.status & IPS_SRC_NAT_DONE:
            key = nat_bysource_key(conn.zone, conn.tuple[0])
            same = self.nat_bysource.get(key)
            if same is not None:
                same.pop(conn, None)
                if not same:
                    del self.nat_bysource[key]
        n = self._zone_count[conn.zone] - 1
        if n:
            self._zone_count[conn.zone] = n
        else:
            del self._zone_count[conn.zone]
        if conn.ecache is not None:
            event_report(self, IPCT_DESTROY, conn, portid, report)

    def _early_drop(self):
        """early_drop(): make room by reaping expired entries or, failing
        that, deleting the oldest connection that is not ASSURED."""
        if self.gc(NF_CT_EVICTION_RANGE):
            return True
        while self._unassured:
            conn = next(iter(self._unassured))
            if conn.status & IPS_ASSURED:
                del self._unassured[conn]
                continue
            self._remove(conn)
            self.stats.early_drop += 1
            return True
        return False

    def _set_expiry(self, conn, when):
        """Set ct->timeout; keep the heap's key for this conn <= its timeout
        (a later timeout is found when the old key pops, an earlier one
        needs a new heap entry)."""
        conn.timeout = when
        if not conn._in_table:
            return
        if conn._heap_key is None or when < conn._heap_key:
            conn._heap_key = when
            self._seq += 1
            heapq.heappush(self._heap, (when, self._seq, conn))
            if len(self._heap) > 2 * len(self._conns) + 64:
                self._rebuild_heap()

    def _rebuild_heap(self):
        heap = []
        for conn in self._conns:
            self._seq += 1
            conn._heap_key = conn.timeout
            heap.append((conn.timeout, self._seq, conn))
        heapq.heapify(heap)
        self._heap = heap

    def gc(self, budget=64):
        """gc_worker(): remove up to ``budget`` expired connections, earliest
        expiry first; returns how many were removed."""
        self.now = now = self._clock()
        heap = self._heap
        removed = 0
        while heap and removed < budget and heap[0][0] <= now:
            key, _, conn = heapq.heappop(heap)
            if not conn._in_table or conn._heap_key != key:
                continue                            # stale entry
            if conn.timeout != key:                 # refreshed since: requeue at its expiry
                self._seq += 1
                conn._heap_key = conn.timeout
                heapq.heappush(heap, (conn.timeout, self._seq, conn))
                continue
            self._remove(conn)
            removed += 1
        if self.expect_heap and self.expect_heap[0][0] <= now:
            expectation_gc(self, budget)            # nf_ct_expectation_gc()
        return removed

    def get(self, zone, tup):
        """nf_conntrack_find_get(): the confirmed connection with this tuple
        (either direction) in ``zone``, or None."""
        self.now = self._clock()
        hit = self.find(zone, tup)
        return hit[0] if hit else None

    def find_existing(self, l3, family, zone, natted=False):
        """ovs_ct_find_existing() (net/openvswitch/conntrack.c): the packet's
        confirmed connection without touching its state or counters, as a
        CtResult (ovs_ct_get_info() for ctinfo), or None.  ``natted``: the
        packet was translated, so its tuple is looked up inverted."""
        self.now = self._clock()
        pkt, _why = parse_l3(l3, family)
        if pkt is None:
            return None
        tup = get_tuple(pkt.data, 0, pkt.dataoff, family, pkt.protonum)
        if tup is not None and natted:
            tup = tup.invert()
        hit = self.find(zone, tup) if tup is not None else None
        if hit is None:
            return None
        conn, d = hit
        if natted:
            d = 1 - d
        if d == 1:
            ctinfo = IP_CT_ESTABLISHED_REPLY
        elif conn.status & IPS_SEEN_REPLY:
            ctinfo = IP_CT_ESTABLISHED
        elif conn.status & IPS_EXPECTED:
            ctinfo = IP_CT_RELATED
        else:
            ctinfo = IP_CT_NEW
        return CtResult(conn, ctinfo, d == 1)

    def flush(self, zone=None, tuple=None):
        """nf_ct_iterate_cleanup / ctnetlink delete: remove the connection
        with ``tuple`` (in ``zone``, default 0), or all connections of
        ``zone``, or all; returns how many were removed."""
        self.now = self._clock()
        if tuple is not None:
            hit = self.find(0 if zone is None else zone, tuple)
            if hit is None:
                return 0
            self._remove(hit[0])
            return 1
        victims = [c for c in self._conns if zone is None or c.zone == zone]
        for conn in victims:
            self._remove(conn)
        if zone is None:
            self._heap = []
        return len(victims)

    def count(self, zone):
        """Confirmed connections in ``zone`` (what a zone limit counts)."""
        return self._zone_count.get(zone, 0)

    def __len__(self):
        """nf_conntrack_count(): confirmed connections, expired but not yet
        reaped ones included."""
        return len(self._conns)

    def __iter__(self):
        """A dump (ctnetlink_dump_table): the live confirmed connections;
        expired ones met on the way are removed."""
        self.now = now = self._clock()
        for conn in list(self._conns):
            if not conn._in_table:
                continue
            if conn.timeout <= now:
                self._remove(conn)
                continue
            yield conn
