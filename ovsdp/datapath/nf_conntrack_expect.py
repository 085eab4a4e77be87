"""Expectations, as net/netfilter/nf_conntrack_expect.c.

A helper that reads a control connection (FTP's PORT, TFTP's read
request) expects a connection to come: :class:`Expect` is ``struct
nf_conntrack_expect``, a tuple whose source may be wildcarded (a mask on
the source address and port; the destination and protocols are always
exact), in the master's zone, with the policy's timeout.  The tracker
keeps them in ``tracker.expect_hash`` by destination, as
``nf_ct_expect_hash`` does, and counts them (``expect_count``, at most
``expect_max``).

``related()`` is ``nf_ct_expect_related()`` (the clash and duplicate
checks, the per-master ``max_expected`` with eviction of the oldest);
``find_expectation()`` is what ``init_conntrack()`` asks for each new
connection; ``remove_expectations()`` runs when a master goes.  Expired
expectations are unlinked when a search meets one and by the tracker's
``gc()`` (``expectation_gc()``, in expiry order from a heap, where Linux's
gc worker visits each connection with a helper).  Sans I/O; time is the
tracker's clock.
"""

import errno
import heapq
import itertools

from .nf_conntrack_ecache import IPEXP_DESTROY, IPEXP_NEW, expect_event_report

NF_CT_EXPECT_PERMANENT = 0x1
NF_CT_EXPECT_INACTIVE = 0x2
NF_CT_EXPECT_USERSPACE = 0x4
NF_CT_EXPECT_DEAD = 0x8
NF_CT_EXPECT_CLASS_DEFAULT = 0
NF_CT_EXPECT_MAX_CNT = 4                # a helper's expectation classes
_ids = itertools.count(1)


class Expect:
    """struct nf_conntrack_expect: what is expected (``l3num``, ``protonum``,
    ``src``/``src_mask``, ``sport``/``sport_mask``, ``dst``, ``dport``),
    by whom (``master``, ``zone``, ``helper``), until when (``expires``),
    and for NAT what to do when it comes (``expectfn``, ``saved_proto``,
    ``dir``)."""

    __slots__ = ("master", "zone", "cls", "flags", "l3num", "protonum", "src", "src_mask",
                 "sport", "sport_mask", "dst", "dport", "expires", "helper", "assign_helper",
                 "expectfn", "saved_proto", "saved_addr", "dir", "linked", "id")

    def __init__(self, master):
        self.master = master                # nf_ct_expect_alloc()
        self.zone = master.zone
        self.cls = NF_CT_EXPECT_CLASS_DEFAULT
        self.flags = 0
        self.l3num = self.protonum = 0
        self.src = self.src_mask = self.sport = self.sport_mask = 0
        self.dst = self.dport = 0
        self.expires = 0.0
        self.helper = self.assign_helper = self.expectfn = None
        self.saved_proto = self.saved_addr = 0
        self.dir = 0
        self.linked = False
        self.id = next(_ids)                # CTA_EXPECT_ID: ovsdp's own, never 0

    def init(self, cls, family, saddr, daddr, proto, sport, dport):
        """nf_ct_expect_init(): ``saddr``/``sport`` None is any."""
        help_ = self.master.help
        self.flags = 0
        self.cls = cls
        self.expectfn = None
        self.helper = help_.helper if help_ is not None else None
        self.assign_helper = None
        self.l3num, self.protonum = family, proto
        bits = 32 if family == 2 else 128
        self.src, self.src_mask = (0, 0) if saddr is None else (saddr, (1 << bits) - 1)
        self.sport, self.sport_mask = (0, 0) if sport is None else (sport, 0xFFFF)
        self.dst, self.dport = daddr, dport
        self.saved_proto = self.saved_addr = 0
        self.dir = 0

    def matches_tuple(self, tup):
        """nf_ct_tuple_mask_cmp(): the source under the mask, the rest exact."""
        return ((tup.src ^ self.src) & self.src_mask == 0
                and (tup.sport ^ self.sport) & self.sport_mask == 0
                and tup.l3num == self.l3num and tup.protonum == self.protonum
                and tup.dst == self.dst and tup.dport == self.dport)

    def expired(self, now):
        """nf_ct_exp_is_expired()."""
        return bool(self.flags & NF_CT_EXPECT_DEAD) or self.expires <= now

    def __repr__(self):
        return (f"Expect(zone={self.zone}, proto={self.protonum}, src={self.src:#x}/"
                f"{self.src_mask:#x}:{self.sport}/{self.sport_mask:#x}, dst={self.dst:#x}:"
                f"{self.dport}, master={self.master.tuple[0]})")


def _key(l3num, protonum, dst, dport):
    """nf_ct_expect_dst_hash()'s inputs: the bucket of an expectation."""
    return (l3num, protonum, dst, dport)


def _bucket(tracker, exp):
    return tracker.expect_hash.get(_key(exp.l3num, exp.protonum, exp.dst, exp.dport))


def unlink(tracker, exp, portid=0, report=False):
    """nf_ct_unlink_expect_report(): out of the tables, its IPEXP_DESTROY event."""
    if not exp.linked:
        return
    exp.linked = False
    k = _key(exp.l3num, exp.protonum, exp.dst, exp.dport)
    bucket = tracker.expect_hash.get(k)
    if bucket is not None:
        try:
            bucket.remove(exp)
        except ValueError:
            pass
        if not bucket:
            del tracker.expect_hash[k]
    tracker.expect_count -= 1
    help_ = exp.master.help
    if help_ is not None:
        try:
            help_.expectations.remove(exp)
        except ValueError:
            pass
        help_.expecting[exp.cls] -= 1
    expect_event_report(tracker, IPEXP_DESTROY, exp, portid, report)
    tracker.stats.expect_delete += 1


def _clash(a, b):
    """expect_clash(): equal where both masks look, in the same zone."""
    src_mask = a.src_mask & b.src_mask
    sport_mask = a.sport_mask & b.sport_mask
    return ((a.src ^ b.src) & src_mask == 0 and (a.sport ^ b.sport) & sport_mask == 0
            and a.l3num == b.l3num and a.protonum == b.protonum and a.dst == b.dst
            and a.dport == b.dport and a.master.zone == b.master.zone)


def _matches(a, b):
    """expect_matches(): the same tuple and mask, in the same zone."""
    return (a.src == b.src and a.src_mask == b.src_mask and a.sport == b.sport
            and a.sport_mask == b.sport_mask and a.l3num == b.l3num
            and a.protonum == b.protonum and a.dst == b.dst and a.dport == b.dport
            and a.master.zone == b.master.zone)


def _evict_oldest(tracker, help_, new, max_expected):
    """evict_oldest_expect(): the master's oldest expectation of the class."""
    now = tracker.now
    last = None
    for exp in list(help_.expectations):
        if exp.expired(now):
            unlink(tracker, exp)
        elif exp.cls == new.cls:
            last = exp                      # hlist_add_head: the list's last is the oldest
    if last is not None and help_.expecting[last.cls] >= max_expected:
        unlink(tracker, last)


def _check(tracker, exp):
    """__nf_ct_expect_check(): 0 or a negative errno."""
    help_ = exp.master.help
    if help_ is None:
        return -errno.ESHUTDOWN
    now = tracker.now
    for i in list(_bucket(tracker, exp) or ()):
        if i.expired(now):
            unlink(tracker, i)
            continue
        if i.master is exp.master and _matches(i, exp):
            if i.cls != exp.cls:
                return -errno.EALREADY
            unlink(tracker, i)
            break
        if _clash(i, exp):
            return -errno.EBUSY
    helper = help_.helper
    if helper is not None:
        p = helper.policy[exp.cls]
        if p.max_expected and help_.expecting[exp.cls] >= p.max_expected:
            _evict_oldest(tracker, help_, exp, p.max_expected)
    if tracker.expect_count >= tracker.expect_max:
        return -errno.EMFILE                # "nf_conntrack: expectation table full"
    return 0


def related(tracker, exp, portid=0, report=False):
    """nf_ct_expect_related_report(): 0, or a negative errno (-EBUSY: it
    clashes with another master's; -EMFILE: the table is full); the
    IPEXP_NEW event."""
    tracker.now = tracker._clock()
    err = _check(tracker, exp)
    if err < 0:
        return err
    help_ = exp.master.help
    help_.expecting[exp.cls] += 1
    helper = help_.helper                   # nf_ct_expect_insert()
    exp.expires = tracker.now + (helper.policy[exp.cls].timeout if helper is not None else 0)
    help_.expectations.insert(0, exp)
    heap = tracker.expect_heap
    heapq.heappush(heap, (exp.expires, exp.id, exp))
    if len(heap) > 2 * tracker.expect_count + 64:     # stale entries outnumber live ones
        heap[:] = [(e.expires, e.id, e) for e in expectations(tracker)]
        heapq.heapify(heap)
    tracker.expect_hash.setdefault(_key(exp.l3num, exp.protonum, exp.dst, exp.dport),
                                   []).insert(0, exp)
    exp.linked = True
    tracker.expect_count += 1
    tracker.stats.expect_create += 1
    expect_event_report(tracker, IPEXP_NEW, exp, portid, report)
    return 0


def unexpect_related(exp):
    """nf_ct_unexpect_related(): the expectation is dead (unlinked when met)."""
    exp.flags |= NF_CT_EXPECT_DEAD


def find_expectation(tracker, zone, tup, unlink_it):
    """nf_ct_find_expectation(): the expectation a new connection with
    original tuple ``tup`` fulfils, or None.  Only a confirmed, live
    master's counts; it is unlinked when ``unlink_it`` (the CT action
    commits, or there is no template) unless it is permanent."""
    now = tracker.now
    found = None
    for i in list(tracker.expect_hash.get(_key(tup.l3num, tup.protonum, tup.dst, tup.dport),
                                          ())):
        if i.expired(now):
            unlink(tracker, i)
            continue
        if not i.flags & NF_CT_EXPECT_INACTIVE and i.zone == zone and i.matches_tuple(tup):
            found = i
            break
    if found is None:
        return None
    master = found.master
    if not master.confirmed or master.dying:
        return None
    if unlink_it and not found.flags & NF_CT_EXPECT_PERMANENT:
        unlink(tracker, found)
    return found


def expectation_gc(tracker, budget):
    """Unlink up to ``budget`` expired expectations, earliest first; an
    expectation whose timeout ctnetlink moved goes back in at its new time."""
    heap, now, n = tracker.expect_heap, tracker.now, 0
    while heap and n < budget and heap[0][0] <= now:
        when, _id, exp = heapq.heappop(heap)
        if not exp.linked:
            continue
        if not exp.expired(now):
            heapq.heappush(heap, (exp.expires, exp.id, exp))
            continue
        unlink(tracker, exp)
        n += 1
    return n


def find_get(tracker, zone, tup):
    """nf_ct_expect_find_get(): the live expectation ``tup`` would fulfil
    in ``zone`` (nothing unlinked), or None."""
    now = tracker.now
    for i in tracker.expect_hash.get(_key(tup.l3num, tup.protonum, tup.dst, tup.dport), ()):
        if not i.expired(now) and i.zone == zone and i.matches_tuple(tup):
            return i
    return None


def remove_expectations(tracker, conn):
    """nf_ct_remove_expectations(): all of a (dying) master's expectations."""
    help_ = conn.help
    if help_ is None or not help_.expectations:
        return
    for exp in list(help_.expectations):
        unlink(tracker, exp)


def expectations(tracker):
    """Every linked, unexpired expectation (ctnetlink's dump order aside)."""
    now = tracker.now
    return [e for bucket in tracker.expect_hash.values() for e in bucket if not e.expired(now)]
