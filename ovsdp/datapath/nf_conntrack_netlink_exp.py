"""ctnetlink's expectations (the expectation half of
net/netfilter/nf_conntrack_netlink.c), the nfnetlink subsystem 2.

``IPCTNL_MSG_EXP_GET`` dumps the namespace's expectations (all, or one
master's: CTA_EXPECT_MASTER) or gets the one a tuple would fulfil;
``IPCTNL_MSG_EXP_DELETE`` removes one (CTA_EXPECT_TUPLE), a helper's
(CTA_EXPECT_HELP_NAME) or all; ``IPCTNL_MSG_EXP_NEW`` changes an
expectation's timeout or, with NLM_F_CREATE, makes one for a master that
has a helper; ``IPCTNL_MSG_EXP_GET_STATS_CPU`` gives the expectation
counters (in a message typed as the conntrack subsystem's, as Linux does).
``conntrack -L expect``, ``-D expect``, ``-I expect`` work through it.

Differences from Linux: ``CTA_EXPECT_ID`` is ovsdp's own number (Linux
hashes kernel addresses); one CPU's statistics.  Sans I/O.
"""

import errno
import heapq
import struct

from .. import uapi as U
from ..netlink.attr import NetlinkError, nla, nla_nest
from ..netlink.nfnetlink import Callback, Subsystem, nfnl_msg, parse
from ..uapi import nfnetlink as N
from .nf_conntrack_expect import Expect, expectations, find_get, related, unlink
from .nf_conntrack_netlink import dump_tuple, parse_tuple
from .nf_conntrack_tuple import Tuple
from .nf_nat_helper import EXPECTFNS

NESTED = U.NLA_F_NESTED
_BE16, _BE32 = struct.Struct("!H"), struct.Struct("!I")
AF_UNSPEC = 0


def _be32(t, v):
    return nla(t, _BE32.pack(v & 0xFFFFFFFF))


def _mask_tuple(exp):
    """The mask as ctnetlink_exp_dump_mask() shows it: a tuple of all ones
    but for the source address and port (or ICMP id) masks."""
    ones = (1 << (32 if exp.l3num == 2 else 128)) - 1
    return Tuple(exp.l3num, exp.src_mask, ones, exp.protonum, exp.sport_mask, 0xFFFF,
                 exp.sport_mask, 0xFF, 0xFF)


def _exp_tuple(exp):
    return Tuple(exp.l3num, exp.src, exp.dst, exp.protonum, exp.sport, exp.dport, exp.sport)


def dump_expect(tracker, exp):
    """ctnetlink_exp_dump_expect(): the attributes of one expectation."""
    master = exp.master
    parts = [nla_nest(N.CTA_EXPECT_TUPLE | NESTED, dump_tuple(_exp_tuple(exp))),
             nla_nest(N.CTA_EXPECT_MASK | NESTED, dump_tuple(_mask_tuple(exp))),
             nla_nest(N.CTA_EXPECT_MASTER | NESTED, dump_tuple(master.tuple[0]))]
    if exp.saved_addr or exp.saved_proto:
        m = master.tuple[0]
        nat = Tuple(m.l3num, exp.saved_addr, 0, m.protonum, exp.saved_proto, 0, exp.saved_proto)
        parts.append(nla_nest(N.CTA_EXPECT_NAT | NESTED, _be32(N.CTA_EXPECT_NAT_DIR, exp.dir)
                              + nla_nest(N.CTA_EXPECT_NAT_TUPLE | NESTED, dump_tuple(nat))))
    timeout = max(0, int(exp.expires - tracker.now))
    parts += [_be32(N.CTA_EXPECT_TIMEOUT, timeout), _be32(N.CTA_EXPECT_ID, exp.id),
              _be32(N.CTA_EXPECT_FLAGS, exp.flags & N.NF_CT_EXPECT_MASK),
              _be32(N.CTA_EXPECT_CLASS, exp.cls)]
    if exp.helper is not None:
        parts.append(nla(N.CTA_EXPECT_HELP_NAME, exp.helper.name.encode() + b"\0"))
    name = next((n for n, fn in EXPECTFNS.items() if fn is exp.expectfn), None)
    if name is not None:
        parts.append(nla(N.CTA_EXPECT_FN, name.encode() + b"\0"))
    return b"".join(parts)


def exp_fill_info(tracker, exp, portid, seq, msg_type=N.IPCTNL_MSG_EXP_NEW, flags=0):
    """ctnetlink_exp_fill_info(): one expectation as a message."""
    if portid:
        flags |= U.NLM_F_MULTI
    return nfnl_msg(N.NFNL_SUBSYS_CTNETLINK_EXP, msg_type, flags, seq, portid, exp.l3num,
                    dump_expect(tracker, exp))


def _echo(info):
    """nlmsg_report(): the requester asked for a copy (NLM_F_ECHO)."""
    return bool(info.hdr.flags & U.NLM_F_ECHO)


def _zone(info):
    p = info.attrs.get(N.CTA_EXPECT_ZONE)
    return _BE16.unpack_from(p)[0] if p is not None else 0


def _check_id(info, exp):
    p = info.attrs.get(N.CTA_EXPECT_ID)
    if p is not None and _BE32.unpack_from(p)[0] != exp.id:
        raise NetlinkError(errno.ENOENT, "the expectation has another id")


class CtnetlinkExp:
    """The subsystem's callbacks over the trackers of the peers' namespaces."""

    def __init__(self, nfnl):
        self.nfnl = nfnl
        cb = {
            N.IPCTNL_MSG_EXP_NEW: Callback(self.new_expect, N.CTA_EXPECT),
            N.IPCTNL_MSG_EXP_GET: Callback(self.get_expect, N.CTA_EXPECT),
            N.IPCTNL_MSG_EXP_DELETE: Callback(self.del_expect, N.CTA_EXPECT),
            N.IPCTNL_MSG_EXP_GET_STATS_CPU: Callback(self.stat_exp_cpu),
        }
        self.subsystem = Subsystem("conntrack_expect", N.NFNL_SUBSYS_CTNETLINK_EXP, cb)

    def get_expect(self, info):
        """ctnetlink_get_expect()."""
        tracker = info.net.conntrack
        tracker.now = tracker._clock()
        a = info.attrs
        if info.hdr.flags & U.NLM_F_DUMP:
            if N.CTA_EXPECT_MASTER in a:            # ctnetlink_dump_exp_ct()
                tup, _z = parse_tuple(info, N.CTA_EXPECT_MASTER, info.family)
                conn = tracker.get(_zone(info), tup)
                if conn is None:
                    raise NetlinkError(errno.ENOENT, "no such master connection")
                if conn.help is None:
                    return False
                exps = [e for e in conn.help.expectations if not e.expired(tracker.now)]
            else:
                exps = expectations(tracker)
            fam = info.family
            portid, seq = info.peer.portid, info.hdr.seq
            return self.nfnl.start_dump(info, (exp_fill_info(tracker, e, portid, seq)
                                               for e in exps if not fam or e.l3num == fam))
        zone = _zone(info)
        atype = next((t for t in (N.CTA_EXPECT_TUPLE, N.CTA_EXPECT_MASTER) if t in a), None)
        if atype is None:
            raise NetlinkError(errno.EINVAL, "CTA_EXPECT_TUPLE or CTA_EXPECT_MASTER required")
        tup, _z = parse_tuple(info, atype, info.family)
        exp = find_get(tracker, zone, tup)
        if exp is None:
            raise NetlinkError(errno.ENOENT, "no such expectation")
        _check_id(info, exp)
        info.peer.send(exp_fill_info(tracker, exp, info.peer.portid, info.hdr.seq))
        return False

    @staticmethod
    def del_expect(info):
        """ctnetlink_del_expect()."""
        tracker = info.net.conntrack
        tracker.now = tracker._clock()
        a = info.attrs
        if N.CTA_EXPECT_TUPLE in a:
            tup, _z = parse_tuple(info, N.CTA_EXPECT_TUPLE, info.family)
            exp = find_get(tracker, _zone(info), tup)
            if exp is None:
                raise NetlinkError(errno.ENOENT, "no such expectation")
            _check_id(info, exp)
            unlink(tracker, exp, info.peer.portid, _echo(info))
            return False
        name = a.get(N.CTA_EXPECT_HELP_NAME)
        if name is not None:
            name = bytes(name).split(b"\0", 1)[0].decode("latin-1")
        for exp in [e for b in tracker.expect_hash.values() for e in b]:
            if name is None or (exp.helper is not None and exp.helper.name == name):
                unlink(tracker, exp, info.peer.portid, _echo(info))
        return False

    @staticmethod
    def new_expect(info):
        """ctnetlink_new_expect(): change (the timeout) or create."""
        tracker = info.net.conntrack
        tracker.now = tracker._clock()
        a = info.attrs
        if not all(t in a for t in (N.CTA_EXPECT_TUPLE, N.CTA_EXPECT_MASK, N.CTA_EXPECT_MASTER)):
            raise NetlinkError(errno.EINVAL, "CTA_EXPECT_TUPLE, _MASK and _MASTER required")
        zone = _zone(info)
        tup, _z = parse_tuple(info, N.CTA_EXPECT_TUPLE, info.family)
        exp = find_get(tracker, zone, tup)
        if exp is not None:
            if info.hdr.flags & U.NLM_F_EXCL:
                raise NetlinkError(errno.EEXIST, "the expectation exists")
            if N.CTA_EXPECT_TIMEOUT in a:           # ctnetlink_change_expect()
                exp.expires = tracker.now + _BE32.unpack_from(a[N.CTA_EXPECT_TIMEOUT])[0]
                heapq.heappush(tracker.expect_heap, (exp.expires, exp.id, exp))
            return False
        if not info.hdr.flags & U.NLM_F_CREATE:
            raise NetlinkError(errno.ENOENT, "no such expectation")
        _create(info, tracker, zone, tup)
        return False

    def stat_exp_cpu(self, info):
        """ctnetlink_stat_exp_cpu(): a dump, one message per CPU; else nothing."""
        if not info.hdr.flags & U.NLM_F_DUMP:
            return False
        st = info.net.conntrack.stats
        body = (_be32(N.CTA_STATS_EXP_NEW, st.expect_new)
                + _be32(N.CTA_STATS_EXP_CREATE, st.expect_create)
                + _be32(N.CTA_STATS_EXP_DELETE, st.expect_delete))
        msg = nfnl_msg(N.NFNL_SUBSYS_CTNETLINK, N.IPCTNL_MSG_EXP_GET_STATS_CPU,
                       U.NLM_F_MULTI if info.peer.portid else 0, info.hdr.seq,
                       info.peer.portid, AF_UNSPEC, body)
        return self.nfnl.start_dump(info, iter([msg]))


def _create(info, tracker, zone, tup):
    """ctnetlink_create_expect() / ctnetlink_alloc_expect()."""
    a = info.attrs
    mask, _z = parse_tuple(info, N.CTA_EXPECT_MASK, info.family)
    mtup, _z = parse_tuple(info, N.CTA_EXPECT_MASTER, info.family)
    master = tracker.get(zone, mtup)
    if master is None:
        raise NetlinkError(errno.ENOENT, "no such master connection")
    help_ = master.help
    if help_ is None or help_.helper is None:
        raise NetlinkError(errno.EOPNOTSUPP, "the master connection has no helper")
    cls = 0
    if N.CTA_EXPECT_CLASS in a:
        cls = _BE32.unpack_from(a[N.CTA_EXPECT_CLASS])[0]
        if cls >= len(help_.helper.policy):        # > expect_class_max
            raise NetlinkError(errno.EINVAL, f"expectation class {cls} out of range")
    exp = Expect(master)
    exp.helper = help_.helper
    exp.cls = cls
    if N.CTA_EXPECT_FLAGS in a:
        flags = _BE32.unpack_from(a[N.CTA_EXPECT_FLAGS])[0]
        if flags & ~N.NF_CT_EXPECT_MASK:
            raise info.error(errno.EINVAL, "unknown expectation flags", N.CTA_EXPECT_FLAGS)
        exp.flags = flags & ~0x4               # not NF_CT_EXPECT_USERSPACE
    if N.CTA_EXPECT_FN in a:
        name = bytes(a[N.CTA_EXPECT_FN]).split(b"\0", 1)[0].decode("latin-1")
        if name not in EXPECTFNS:
            raise NetlinkError(errno.EINVAL, f"no expectation function {name!r}")
        exp.expectfn = EXPECTFNS[name]
    exp.l3num, exp.protonum = tup.l3num, tup.protonum
    exp.src, exp.dst, exp.sport, exp.dport = tup.src, tup.dst, tup.sport, tup.dport
    exp.src_mask, exp.sport_mask = mask.src, mask.sport
    if N.CTA_EXPECT_NAT in a:                   # ctnetlink_parse_expect_nat()
        base = info.offsets[N.CTA_EXPECT_NAT] + U.NLA_HDRLEN
        tb, offs = parse(a[N.CTA_EXPECT_NAT], N.CTA_EXPECT_NAT_TABLE, base)
        if N.CTA_EXPECT_NAT_DIR not in tb or N.CTA_EXPECT_NAT_TUPLE not in tb:
            raise NetlinkError(errno.EINVAL, "CTA_EXPECT_NAT needs its direction and tuple")
        d = _BE32.unpack_from(tb[N.CTA_EXPECT_NAT_DIR])[0]
        if d > 1:
            raise NetlinkError(errno.ERANGE, "CTA_EXPECT_NAT_DIR above IP_CT_DIR_REPLY")
        sub = _Sub(info, tb, offs)
        nat, _z = parse_tuple(sub, N.CTA_EXPECT_NAT_TUPLE, master.tuple[0].l3num)
        exp.saved_addr, exp.saved_proto, exp.dir = nat.src, nat.sport, d
    err = related(tracker, exp, info.peer.portid, _echo(info))
    if err:
        raise NetlinkError(-err, "the expectation cannot be added")


class _Sub:
    """A nested level's attributes in the shape parse_tuple() reads."""

    __slots__ = ("attrs", "offsets", "peer", "hdr")

    def __init__(self, info, attrs, offsets):
        self.attrs, self.offsets, self.peer, self.hdr = attrs, offsets, info.peer, info.hdr
