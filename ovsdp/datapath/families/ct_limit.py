"""The ovs_ct_limit generic netlink family and the zone limits it sets
(conntrack.c: ``ovs_ct_limit_*``, ``ovs_ct_check_limit``).

Each network namespace has a :class:`CtLimitInfo` (``ovs_net->ct_limit_info``):
a default limit and per-zone limits on how many connections the CT action
may commit in a zone; 0 is unlimited, and the default is 0.  The family's
one attribute, ``OVS_CT_LIMIT_ATTR_ZONE_LIMIT``, is a packed array of
``struct ovs_zone_limit {s32 zone_id; u32 limit; u32 count;}``; zone id -1
(``OVS_ZONE_LIMIT_DEFAULT_ZONE``) stands for the default.

As in the kernel, SET, DEL and GET walk the array in steps of 12 bytes over
the attribute's length rounded up to 4, and what does not fit a whole entry,
like an entry whose zone id is neither -1 nor 0..65535, is only logged
(OVS_NLERR): the request still succeeds.  SET and DEL reply with the bare
``ovs_header``; GET replies with the array: with no attribute, the default
then every zone with a limit of its own (in the kernel's hash-table order);
with one, an entry per requested zone (its own limit, or the default's),
the default's entry where -1 was asked.  SET and DEL need CAP_NET_ADMIN.

Enforcement is in :func:`..conntrack._commit`: a connection the CT action is
about to confirm, in a zone whose limit (its own, else the default) is not
0, is refused with ENOMEM (the packet is dropped) when the zone already has
as many confirmed connections as the limit.  The count is the namespace's
tracker's confirmed connections in the zone (``ConnTracker.count``), the
same number GET reports.  Sans I/O.
"""

import errno
import logging
import time

from ... import uapi as U
from ...netlink import attr as A
from ...netlink.attr import align, nla_nest
from ...netlink.genl import Family, Op

log = logging.getLogger(__name__)

OVS_CT_LIMIT_UNLIMITED = 0
OVS_CT_LIMIT_DEFAULT = OVS_CT_LIMIT_UNLIMITED
CT_LIMIT_HASH_BUCKETS = 512
ZONE_LIMIT = U.OVS_ZONE_LIMIT                 # struct ovs_zone_limit, 12 bytes
ENTRY = align(ZONE_LIMIT.size)
DEFAULT_ZONE = U.OVS_ZONE_LIMIT_DEFAULT_ZONE

# The GET reply is built in genlmsg_new(NLMSG_DEFAULT_SIZE): on x86-64 with
# 4 KiB pages its 3780-byte head plus skb_shared_info (320) is rounded up by
# kmalloc to 8 KiB, leaving 8192 - 320 bytes for the message.  An entry that
# no longer fits fails the request with EMSGSIZE.
REPLY_ROOM = 8192 - 320
_REPLY_HEAD = U.NLMSG_HDRLEN + U.GENL_HDRLEN + U.OVS_HEADER_LEN + U.NLA_HDRLEN
MAX_REPLY_ENTRIES = (REPLY_ROOM - _REPLY_HEAD) // ENTRY

POLICY = {U.OVS_CT_LIMIT_ATTR_ZONE_LIMIT: A.Policy(A.NESTED)}


class RateLimit:
    """net_ratelimit(): at most ``burst`` messages every ``interval`` seconds."""

    def __init__(self, interval=5.0, burst=10, clock=time.monotonic):
        self.interval = interval
        self.burst = burst
        self.clock = clock
        self.begin = None
        self.printed = 0
        self.missed = 0

    def __call__(self):
        now = self.clock()
        if self.begin is None or now - self.begin >= self.interval:
            if self.missed:
                log.warning("openvswitch: %d messages suppressed", self.missed)
            self.begin, self.printed, self.missed = now, 0, 0
        if self.printed < self.burst:
            self.printed += 1
            return True
        self.missed += 1
        return False


net_ratelimit = RateLimit()


def ovs_nlerr(fmt, *args):
    """OVS_NLERR(true, ...): a rate-limited kernel log line, never an error."""
    if net_ratelimit():
        log.info("netlink: " + fmt, *args)


class CtLimitInfo:
    """struct ovs_ct_limit_info: one namespace's default and zone limits."""

    def __init__(self):
        self.default_limit = OVS_CT_LIMIT_DEFAULT
        self.limits = {}             # zone -> limit (the hash table's entries)
        self._added = {}             # zone -> when it entered the table (its list position)
        self._seq = 0
        self.enabled = False         # ovs_ct_limit_enabled: a SET has been done

    def get(self, zone):
        """ct_limit_get(): the zone's own limit, else the default."""
        return self.limits.get(zone, self.default_limit)

    def set(self, zone, limit):
        """ct_limit_set(): a zone already in the table keeps its place."""
        if zone not in self.limits:
            self._seq += 1
            self._added[zone] = self._seq
        self.limits[zone] = limit

    def delete(self, zone):
        """ct_limit_del()."""
        if self.limits.pop(zone, None) is not None:
            del self._added[zone]

    def zones(self):
        """The zones with a limit of their own, as the kernel walks its table:
        bucket by bucket (zone modulo 512), the latest added first in each."""
        return sorted(self.limits, key=lambda z: (z & (CT_LIMIT_HASH_BUCKETS - 1),
                                                  -self._added[z]))

    def check(self, tracker, zone):
        """ovs_ct_check_limit(): 0, or ENOMEM when a new connection in
        ``zone`` would take it over its limit.

        The kernel counts the connection being committed with those already
        there and refuses when that is more than the limit.  Expired
        connections the tracker has not reaped yet do not count (conncount
        evicts what conntrack no longer finds)."""
        limit = self.limits.get(zone, self.default_limit)
        if limit == OVS_CT_LIMIT_UNLIMITED:
            return 0
        if tracker.count(zone) + 1 > limit:
            tracker.gc(len(tracker))
            if tracker.count(zone) + 1 > limit:
                return errno.ENOMEM
        return 0


def zone_entries(payload):
    """The (zone_id, limit) of each whole entry the kernel's loop visits, and
    how many bytes were left over: it steps over NLA_ALIGN(nla_len), so the
    last entry may take its count from the attribute's padding."""
    rem = align(len(payload))
    buf = bytes(payload) + bytes(rem - len(payload))
    out = []
    off = 0
    while rem >= ZONE_LIMIT.size:
        zone_id, limit, _count = ZONE_LIMIT.unpack_from(buf, off)
        out.append((zone_id, limit))
        rem -= ENTRY
        off += ENTRY
    return out, rem


def check_zone_id(zone_id):
    """check_zone_id(): 0..65535."""
    return 0 <= zone_id <= 65535


def make_family(module):
    fam = Family(U.OVS_CT_LIMIT_FAMILY, U.OVS_CT_LIMIT_VERSION, U.OVS_CT_LIMIT_ATTR_MAX,
                 POLICY, hdrsize=U.OVS_HEADER_LEN, mcgrps=[U.OVS_CT_LIMIT_MCGROUP])
    h = CtLimitCommands(module, fam)
    admin = U.GENL_UNS_ADMIN_PERM
    fam.add_op(Op(U.OVS_CT_LIMIT_CMD_SET, admin, doit=h.set))
    fam.add_op(Op(U.OVS_CT_LIMIT_CMD_DEL, admin, doit=h.delete))
    fam.add_op(Op(U.OVS_CT_LIMIT_CMD_GET, 0, doit=h.get))
    return fam


class CtLimitCommands:
    def __init__(self, module, family):
        self.module = module
        self.family = family

    def reply(self, req, cmd, attrs=b""):
        """ovs_ct_limit_cmd_reply_start() + genlmsg_reply(): the request's dp_ifindex."""
        body = req.userhdr[:U.OVS_HEADER_LEN] + attrs
        req.peer.send(self.family.message(cmd, 0, req.seq, req.portid, body))

    @staticmethod
    def _array(req):
        p = req.attrs.get(U.OVS_CT_LIMIT_ATTR_ZONE_LIMIT)
        if p is None:
            raise A.NetlinkError(errno.EINVAL)
        return p

    def set(self, req):
        """ovs_ct_limit_cmd_set() / ovs_ct_limit_set_zone_limit()."""
        info = req.net.ct_limit_info
        entries, rem = zone_entries(self._array(req))
        for zone_id, limit in entries:
            if zone_id == DEFAULT_ZONE:
                info.default_limit = limit
            elif not check_zone_id(zone_id):
                ovs_nlerr("zone id is out of range")
            else:
                info.set(zone_id, limit)
        if rem:
            ovs_nlerr("set zone limit has %d unknown bytes", rem)
        info.enabled = True
        self.reply(req, U.OVS_CT_LIMIT_CMD_SET)

    def delete(self, req):
        """ovs_ct_limit_cmd_del() / ovs_ct_limit_del_zone_limit(): deleting
        the default sets it back to unlimited."""
        info = req.net.ct_limit_info
        entries, rem = zone_entries(self._array(req))
        for zone_id, _limit in entries:
            if zone_id == DEFAULT_ZONE:
                info.default_limit = OVS_CT_LIMIT_DEFAULT
            elif not check_zone_id(zone_id):
                ovs_nlerr("zone id is out of range")
            else:
                info.delete(zone_id)
        if rem:
            ovs_nlerr("del zone limit has %d unknown bytes", rem)
        self.reply(req, U.OVS_CT_LIMIT_CMD_DEL)

    def get(self, req):
        """ovs_ct_limit_cmd_get(): the limits asked for, or all of them."""
        net = req.net
        info = net.ct_limit_info
        tracker = net.conntrack
        tracker.gc(len(tracker))              # what conncount would no longer find
        out = []

        def put(zone_id, limit, count):
            if len(out) >= MAX_REPLY_ENTRIES:
                raise A.NetlinkError(errno.EMSGSIZE)
            out.append(ZONE_LIMIT.pack(zone_id, limit, count))

        p = req.attrs.get(U.OVS_CT_LIMIT_ATTR_ZONE_LIMIT)
        if p is None:                         # ovs_ct_limit_get_all_zone_limit()
            put(DEFAULT_ZONE, info.default_limit, 0)
            for zone in info.zones():
                put(zone, info.limits[zone], tracker.count(zone))
        else:                                 # ovs_ct_limit_get_zone_limit()
            entries, rem = zone_entries(p)
            for zone_id, _limit in entries:
                if zone_id == DEFAULT_ZONE:
                    put(DEFAULT_ZONE, info.default_limit, 0)
                elif not check_zone_id(zone_id):
                    ovs_nlerr("zone id is out of range")
                else:
                    put(zone_id, info.get(zone_id), tracker.count(zone_id))
            if rem:
                ovs_nlerr("get zone limit has %d unknown bytes", rem)
        self.reply(req, U.OVS_CT_LIMIT_CMD_GET,
                   nla_nest(U.OVS_CT_LIMIT_ATTR_ZONE_LIMIT, *out))
