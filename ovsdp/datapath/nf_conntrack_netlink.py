"""ctnetlink: the netlink view of the connection tracker
(net/netfilter/nf_conntrack_netlink.c), the nfnetlink subsystem 1.

Sans I/O.  Each network namespace's tracker (``OvsNet.conntrack``) is seen
by the peers of that namespace.  What the kernel of Linux 6.x does:

- an entry is CTA_TUPLE_ORIG, CTA_TUPLE_REPLY (each CTA_TUPLE_IP and
  CTA_TUPLE_PROTO), CTA_ZONE when not 0, CTA_STATUS, CTA_MARK, CTA_ID,
  CTA_USE, CTA_TIMEOUT, CTA_PROTOINFO (TCP; SCTP: dump only), then the extensions: counters
  when accounting is on (off by default, as ``nf_conntrack_acct``), labels
  when set; every nest has NLA_F_NESTED; an entry's message is
  IPCTNL_MSG_CT_NEW with NLM_F_MULTI whatever asked for it;
- GET dumps the table (filtered by nfgen_family, CTA_ZONE, CTA_MARK[_MASK],
  CTA_STATUS[_MASK] and CTA_FILTER with CTA_TUPLE_ORIG/REPLY, the parts
  then flagged NLM_F_DUMP_FILTERED) or answers one tuple (ENOENT);
- DELETE removes one tuple (CTA_ID must then match) or flushes: everything,
  or what the same filter selects (the family only with version 1 or a
  CTA_FILTER, as the kernel);
- GET_CTRZERO is GET that zeroes the counters it reports;
- GET_STATS_CPU dumps one message per CPU (ovsdp has one: CPU 0),
  GET_STATS answers the global count and maximum;
- GET_DYING and GET_UNCONFIRMED dump nothing (ovsdp keeps no such lists);
- NEW changes a connection (timeout, status bits that may be set, TCP
  state and flags, mark, labels) or, with NLM_F_CREATE, creates one
  (without helpers, NAT or a master: EOPNOTSUPP).
"""

import errno
import struct

from .. import uapi as U
from ..netlink.attr import (
    NetlinkError,
    iter_attrs,
    nla,
    nla_be16,
    nla_be32,
    nla_be64,
    nla_nest,
    nla_u8,
)
from ..netlink.nfnetlink import Callback, Subsystem, nfnl_msg, parse, validate
from ..uapi import nfnetlink as N
from . import nf_conntrack_ecache as EC
from .nf_conntrack import Conn, CtResult, Tuple
from .nf_conntrack_common import (
    IP_CT_TCP_FLAG_WINDOW_SCALE,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_DYING,
    IPS_EXPECTED,
    IPS_OFFLOAD,
    IPS_SEEN_REPLY,
    IPS_SEQ_ADJUST,
    NFPROTO_IPV4,
    NFPROTO_IPV6,
    TCP_CONNTRACK_MAX,
)
from .nf_conntrack_proto import UdpState, icmp_invert_type, l4proto_find
from .nf_conntrack_sctp import SctpState
from .nf_conntrack_tcp import TcpState

NESTED = U.NLA_F_NESTED
AF_UNSPEC = 0
_BE32 = struct.Struct("!I")
_BE16 = struct.Struct("!H")


def ct_id(conn):
    """nf_ct_get_id(): a 32-bit id, fixed for the connection's life (the
    kernel hashes the nf_conn's address and its tuples; ovsdp the object's
    identity, zone and original tuple).  Never 0."""
    h = hash((id(conn), conn.zone, conn.tuple[0])) & 0xFFFFFFFF
    return h or 1


def accounting(tracker):
    """Whether connections carry the accounting extension (nf_conntrack_acct)."""
    return bool(getattr(tracker, "acct", False))   # ConnTracker.acct


# ---------------------------------------------------------------- encoding
def dump_tuple(t):
    """ctnetlink_dump_tuples(): CTA_TUPLE_IP and CTA_TUPLE_PROTO of ``t``."""
    if t.l3num == NFPROTO_IPV4:
        ip = nla_be32(N.CTA_IP_V4_SRC, t.src) + nla_be32(N.CTA_IP_V4_DST, t.dst)
    elif t.l3num == NFPROTO_IPV6:
        ip = (nla(N.CTA_IP_V6_SRC, t.src.to_bytes(16, "big")) +
              nla(N.CTA_IP_V6_DST, t.dst.to_bytes(16, "big")))
    else:
        ip = b""
    proto = nla_u8(N.CTA_PROTO_NUM, t.protonum)
    if t.protonum == IPPROTO_ICMP:
        proto += (nla_be16(N.CTA_PROTO_ICMP_ID, t.icmp_id) +
                  nla_u8(N.CTA_PROTO_ICMP_TYPE, t.icmp_type) +
                  nla_u8(N.CTA_PROTO_ICMP_CODE, t.icmp_code))
    elif t.protonum == IPPROTO_ICMPV6:
        proto += (nla_be16(N.CTA_PROTO_ICMPV6_ID, t.icmp_id) +
                  nla_u8(N.CTA_PROTO_ICMPV6_TYPE, t.icmp_type) +
                  nla_u8(N.CTA_PROTO_ICMPV6_CODE, t.icmp_code))
    elif l4proto_find(t.protonum).ports:
        proto += nla_be16(N.CTA_PROTO_SRC_PORT, t.sport) + nla_be16(N.CTA_PROTO_DST_PORT, t.dport)
    return nla_nest(N.CTA_TUPLE_IP | NESTED, ip) + nla_nest(N.CTA_TUPLE_PROTO | NESTED, proto)


def dump_protoinfo(conn, destroy=False):
    """ctnetlink_dump_protoinfo(): TCP's state, window scales and flags;
    SCTP's state and verification tags (sctp_to_nlattr); only the state
    for a destroy event."""
    st = conn.proto
    if conn.protonum == IPPROTO_SCTP:
        st = st if st is not None else SctpState()
        sctp = nla_u8(N.CTA_PROTOINFO_SCTP_STATE, st.state)
        if not destroy:
            sctp += (nla_be32(N.CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, st.vtag[0]) +
                     nla_be32(N.CTA_PROTOINFO_SCTP_VTAG_REPLY, st.vtag[1]))
        return nla_nest(N.CTA_PROTOINFO | NESTED, nla_nest(N.CTA_PROTOINFO_SCTP | NESTED, sctp))
    if conn.protonum != IPPROTO_TCP or st is None:
        return b""
    seen = st.seen
    flags = N.NF_CT_TCP_FLAGS
    tcp = nla_u8(N.CTA_PROTOINFO_TCP_STATE, st.state)
    if destroy:
        return nla_nest(N.CTA_PROTOINFO | NESTED, nla_nest(N.CTA_PROTOINFO_TCP | NESTED, tcp))
    tcp += (nla_u8(N.CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, seen[0].td_scale) +
            nla_u8(N.CTA_PROTOINFO_TCP_WSCALE_REPLY, seen[1].td_scale) +
            nla(N.CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, flags.pack(seen[0].flags & 0xFF, 0)) +
            nla(N.CTA_PROTOINFO_TCP_FLAGS_REPLY, flags.pack(seen[1].flags & 0xFF, 0)))
    return nla_nest(N.CTA_PROTOINFO | NESTED, nla_nest(N.CTA_PROTOINFO_TCP | NESTED, tcp))


def dump_counters(conn, zero=False):
    """ctnetlink_dump_acct(): packets and bytes of both directions."""
    out = []
    for d, atype in ((0, N.CTA_COUNTERS_ORIG), (1, N.CTA_COUNTERS_REPLY)):
        pkts, nbytes = conn.counters[d]
        if zero:
            conn.counters[d][0] = conn.counters[d][1] = 0
        out.append(nla_nest(atype | NESTED, nla_be64(N.CTA_COUNTERS_PACKETS, pkts),
                            nla_be64(N.CTA_COUNTERS_BYTES, nbytes)))
    return b"".join(out)


def dump_master(conn):
    """ctnetlink_dump_master(): an expected connection's master, or nothing."""
    if not conn.status & IPS_EXPECTED or conn.master is None:
        return b""
    return nla_nest(N.CTA_TUPLE_MASTER | NESTED, dump_tuple(conn.master.tuple[0]))


def dump_helpinfo(conn):
    """ctnetlink_dump_helpinfo(): the helper's name, or nothing."""
    if conn.help is None or conn.help.helper is None:
        return b""
    return nla_nest(N.CTA_HELP | NESTED, nla(N.CTA_HELP_NAME, conn.help.helper.name.encode()
                                             + b"\0"))


def dump_seq_adj(conn):
    """ctnetlink_dump_ct_seq_adj(): both directions' corrections, or nothing."""
    if not conn.status & IPS_SEQ_ADJUST or conn.seqadj is None:
        return b""
    return b"".join(nla_nest(t | NESTED, b"".join(
        nla_be32(a, v & 0xFFFFFFFF) for a, v in ((N.CTA_SEQADJ_CORRECTION_POS, w.correction_pos),
                                                 (N.CTA_SEQADJ_OFFSET_BEFORE, w.offset_before),
                                                 (N.CTA_SEQADJ_OFFSET_AFTER, w.offset_after))))
        for t, w in zip((N.CTA_SEQ_ADJ_ORIG, N.CTA_SEQ_ADJ_REPLY), conn.seqadj.seq, strict=True))


def fill_info(conn, tracker, portid, seq, msg_type=N.IPCTNL_MSG_CT_GET, flags=0, use=1):
    """ctnetlink_fill_info(): one connection as an IPCTNL_MSG_CT_NEW message."""
    if portid:
        flags |= U.NLM_F_MULTI
    parts = [nla_nest(N.CTA_TUPLE_ORIG | NESTED, dump_tuple(conn.tuple[0])),
             nla_nest(N.CTA_TUPLE_REPLY | NESTED, dump_tuple(conn.tuple[1]))]
    if conn.zone:
        parts.append(nla_be16(N.CTA_ZONE, conn.zone))
    # ctnetlink_dump_info()
    parts += [nla_be32(N.CTA_STATUS, conn.status & 0xFFFFFFFF),
              nla_be32(N.CTA_MARK, conn.mark & 0xFFFFFFFF),
              nla_be32(N.CTA_ID, ct_id(conn)),
              nla_be32(N.CTA_USE, use)]
    parts.append(dump_master(conn))
    if not conn.status & IPS_OFFLOAD:
        parts += [nla_be32(N.CTA_TIMEOUT, int(tracker.expires(conn))), dump_protoinfo(conn)]
    # ctnetlink_dump_extinfo()
    if accounting(tracker):
        parts.append(dump_counters(conn, msg_type == N.IPCTNL_MSG_CT_GET_CTRZERO))
    parts.append(dump_helpinfo(conn))
    if conn.labels:
        parts.append(nla(N.CTA_LABELS, conn.labels.to_bytes(N.NF_CT_LABELS_MAX_SIZE, "big")))
    parts.append(dump_seq_adj(conn))
    return nfnl_msg(N.NFNL_SUBSYS_CTNETLINK, N.IPCTNL_MSG_CT_NEW, flags, seq, portid,
                    conn.tuple[0].l3num, b"".join(parts))


def stat_cpu_fill_info(stats, portid, seq, cpu=0):
    """ctnetlink_ct_stat_cpu_fill_info()."""
    body = b"".join(nla_be32(atype, getattr(stats, name, 0) & 0xFFFFFFFF)
                    for atype, name in N.CTA_STATS_CPU_ORDER)
    return nfnl_msg(N.NFNL_SUBSYS_CTNETLINK, N.IPCTNL_MSG_CT_GET_STATS_CPU,
                    U.NLM_F_MULTI if portid else 0, seq, portid, AF_UNSPEC, body, res_id=cpu)


def stat_fill_info(tracker, portid, seq):
    """ctnetlink_stat_ct_fill_info()."""
    body = (nla_be32(N.CTA_STATS_GLOBAL_ENTRIES, len(tracker)) +
            nla_be32(N.CTA_STATS_GLOBAL_MAX_ENTRIES, tracker.max_conns))
    return nfnl_msg(N.NFNL_SUBSYS_CTNETLINK, N.IPCTNL_MSG_CT_GET_STATS,
                    U.NLM_F_MULTI if portid else 0, seq, portid, AF_UNSPEC, body)


# ----------------------------------------------------------------- parsing
class Filter:
    """struct ctnetlink_filter."""

    __slots__ = ("family", "zone", "orig_flags", "reply_flags", "orig", "reply",
                 "mark", "mark_mask", "status", "status_mask")

    def __init__(self, family):
        self.family = family
        self.zone = None
        self.orig_flags = self.reply_flags = 0
        self.orig = self.reply = None
        self.mark = self.mark_mask = 0
        self.status = self.status_mask = 0

    def match(self, conn):
        """ctnetlink_filter_match()."""
        if self.family and conn.tuple[0].l3num != self.family:
            return False
        if self.zone is not None and conn.zone != self.zone:
            return False
        if self.orig_flags and not _match_tuple(self.orig, conn.tuple[0], self.orig_flags,
                                                self.family):
            return False
        if self.reply_flags and not _match_tuple(self.reply, conn.tuple[1], self.reply_flags,
                                                 self.family):
            return False
        if conn.mark & self.mark_mask != self.mark:
            return False
        return conn.status & self.status_mask == self.status


# the filter flag and attribute of an ICMP / ICMPv6 tuple's type, code and id
_ICMP_FIELDS = {
    IPPROTO_ICMP: ((N.CTA_FILTER_F_CTA_PROTO_ICMP_TYPE, N.CTA_PROTO_ICMP_TYPE),
                   (N.CTA_FILTER_F_CTA_PROTO_ICMP_CODE, N.CTA_PROTO_ICMP_CODE),
                   (N.CTA_FILTER_F_CTA_PROTO_ICMP_ID, N.CTA_PROTO_ICMP_ID)),
    IPPROTO_ICMPV6: ((N.CTA_FILTER_F_CTA_PROTO_ICMPV6_TYPE, N.CTA_PROTO_ICMPV6_TYPE),
                     (N.CTA_FILTER_F_CTA_PROTO_ICMPV6_CODE, N.CTA_PROTO_ICMPV6_CODE),
                     (N.CTA_FILTER_F_CTA_PROTO_ICMPV6_ID, N.CTA_PROTO_ICMPV6_ID)),
}


def _match_tuple(f, t, flags, family):
    """ctnetlink_filter_match_tuple()."""
    F = N
    if family in (NFPROTO_IPV4, NFPROTO_IPV6):
        if flags & F.CTA_FILTER_F_CTA_IP_SRC and f.src != t.src:
            return False
        if flags & F.CTA_FILTER_F_CTA_IP_DST and f.dst != t.dst:
            return False
    if flags & F.CTA_FILTER_F_CTA_PROTO_NUM and f.protonum != t.protonum:
        return False
    if t.protonum in (IPPROTO_TCP, IPPROTO_UDP):
        if flags & F.CTA_FILTER_F_CTA_PROTO_SRC_PORT and f.sport != t.sport:
            return False
        if flags & F.CTA_FILTER_F_CTA_PROTO_DST_PORT and f.dport != t.dport:
            return False
    elif t.protonum in _ICMP_FIELDS:
        (ft, _), (fc, _), (fi, _) = _ICMP_FIELDS[t.protonum]
        if flags & ft and f.icmp_type != t.icmp_type:
            return False
        if flags & fc and f.icmp_code != t.icmp_code:
            return False
        if flags & fi and f.icmp_id != t.icmp_id:
            return False
    return True


def _einval(msg, offset=None):
    return NetlinkError(errno.EINVAL, msg, offset)


def parse_zone(info):
    """ctnetlink_parse_zone() of CTA_ZONE: the zone id, 0 by default."""
    p = info.attrs.get(N.CTA_ZONE)
    return _BE16.unpack_from(p)[0] if p is not None else 0


def parse_tuple(info, atype, l3num, flags=N.CTA_FILTER_F_ALL, zone=0):
    """ctnetlink_parse_tuple_filter(): (Tuple, zone) from CTA_TUPLE_ORIG/REPLY."""
    base = info.offsets[atype] + U.NLA_HDRLEN
    tb, offs = parse(info.attrs[atype], N.CTA_TUPLE, base)
    if l3num not in (NFPROTO_IPV4, NFPROTO_IPV6):
        raise NetlinkError(errno.EOPNOTSUPP, f"address family {l3num} has no tuples",
                           info.offsets[atype])
    src = dst = 0
    if flags & (N.CTA_FILTER_F_CTA_IP_SRC | N.CTA_FILTER_F_CTA_IP_DST):
        if N.CTA_TUPLE_IP not in tb:
            raise _einval("tuple without CTA_TUPLE_IP", info.offsets[atype])
        ip, ipoffs = parse(tb[N.CTA_TUPLE_IP], N.CTA_IP, offs[N.CTA_TUPLE_IP] + U.NLA_HDRLEN)
        s_t, d_t = ((N.CTA_IP_V4_SRC, N.CTA_IP_V4_DST) if l3num == NFPROTO_IPV4 else
                    (N.CTA_IP_V6_SRC, N.CTA_IP_V6_DST))
        for bit, t in ((N.CTA_FILTER_F_CTA_IP_SRC, s_t), (N.CTA_FILTER_F_CTA_IP_DST, d_t)):
            if not flags & bit:
                continue
            if t not in ip:
                raise _einval("tuple without its address", offs[N.CTA_TUPLE_IP])
            v = (_BE32.unpack_from(ip[t])[0] if l3num == NFPROTO_IPV4
                 else int.from_bytes(ip[t][:16], "big"))
            if t == s_t:
                src = v
            else:
                dst = v
    protonum = sport = dport = icmp_id = icmp_type = icmp_code = 0
    if flags & N.CTA_FILTER_F_CTA_PROTO_NUM:
        if N.CTA_TUPLE_PROTO not in tb:
            raise _einval("tuple without CTA_TUPLE_PROTO", info.offsets[atype])
        pbase = offs[N.CTA_TUPLE_PROTO] + U.NLA_HDRLEN
        pr, proffs = parse(tb[N.CTA_TUPLE_PROTO], N.CTA_PROTO, pbase)
        if N.CTA_PROTO_NUM not in pr:
            raise _einval("tuple without CTA_PROTO_NUM", offs[N.CTA_TUPLE_PROTO])
        protonum = pr[N.CTA_PROTO_NUM][0]
        poff = offs[N.CTA_TUPLE_PROTO]

        def need(bit, t, get):
            if not flags & bit:
                return 0
            if t not in pr:
                raise _einval("tuple without " + N.CTA_PROTO[t].name, poff)
            return get(pr[t])

        be16 = lambda p: _BE16.unpack_from(p)[0]  # noqa: E731
        u8 = lambda p: p[0]  # noqa: E731
        if protonum in _ICMP_FIELDS:
            (f_type, t_type), (f_code, t_code), (f_id, t_id) = _ICMP_FIELDS[protonum]
            icmp_type = need(f_type, t_type, u8)
            if flags & f_type and icmp_invert_type(protonum, icmp_type) is None:
                raise _einval(f"ICMP type {icmp_type} has no reply type", proffs.get(t_type))
            icmp_code = need(f_code, t_code, u8)
            icmp_id = need(f_id, t_id, be16)
        elif l4proto_find(protonum).ports:
            sport = need(N.CTA_FILTER_F_CTA_PROTO_SRC_PORT, N.CTA_PROTO_SRC_PORT, be16)
            dport = need(N.CTA_FILTER_F_CTA_PROTO_DST_PORT, N.CTA_PROTO_DST_PORT, be16)
    elif flags & N.CTA_FILTER_F_ALL_CTA_PROTO:
        raise _einval("protocol fields of a filter need CTA_PROTO_NUM", info.offsets[atype])
    if flags & N.CTA_FILTER_F_CTA_TUPLE_ZONE and N.CTA_TUPLE_ZONE in tb:
        if zone:
            raise _einval("two zones", offs[N.CTA_TUPLE_ZONE])
        zone = _BE16.unpack_from(tb[N.CTA_TUPLE_ZONE])[0]
    return Tuple(l3num, src, dst, protonum, sport, dport, icmp_id, icmp_type, icmp_code), zone


def alloc_filter(info, family):
    """ctnetlink_alloc_filter()."""
    a = info.attrs
    f = Filter(family)
    if N.CTA_MARK in a:
        f.mark = _BE32.unpack_from(a[N.CTA_MARK])[0]
        f.mark_mask = (_BE32.unpack_from(a[N.CTA_MARK_MASK])[0] if N.CTA_MARK_MASK in a
                       else 0xFFFFFFFF)
    elif N.CTA_MARK_MASK in a:
        raise info.error(errno.EINVAL, "CTA_MARK_MASK without CTA_MARK", N.CTA_MARK_MASK)
    if N.CTA_STATUS in a:
        f.status = _BE32.unpack_from(a[N.CTA_STATUS])[0]
        f.status_mask = (_BE32.unpack_from(a[N.CTA_STATUS_MASK])[0] if N.CTA_STATUS_MASK in a
                         else f.status)
        if not f.status_mask:
            raise info.error(errno.EINVAL, "a status mask of 0 matches nothing", N.CTA_STATUS)
    elif N.CTA_STATUS_MASK in a:
        raise info.error(errno.EINVAL, "CTA_STATUS_MASK without CTA_STATUS", N.CTA_STATUS_MASK)
    if N.CTA_ZONE in a:
        f.zone = parse_zone(info)
    if N.CTA_FILTER not in a:
        return f
    base = info.offsets[N.CTA_FILTER] + U.NLA_HDRLEN
    fl, _ = parse(a[N.CTA_FILTER], N.CTA_FILTER_TABLE, base)
    for t in (N.CTA_FILTER_ORIG_FLAGS, N.CTA_FILTER_REPLY_FLAGS):
        if t in fl:
            v = struct.unpack_from("=I", fl[t])[0]
            if v & ~N.CTA_FILTER_F_ALL:
                raise info.error(errno.EOPNOTSUPP, "unknown filter flags", N.CTA_FILTER)
            if t == N.CTA_FILTER_ORIG_FLAGS:
                f.orig_flags = v
            else:
                f.reply_flags = v
    zone = f.zone or 0
    for flags, atype, slot in ((f.orig_flags, N.CTA_TUPLE_ORIG, "orig"),
                               (f.reply_flags, N.CTA_TUPLE_REPLY, "reply")):
        if not flags:
            continue
        if atype not in a:
            raise info.error(errno.EINVAL, "filter flags without their tuple", N.CTA_FILTER)
        tup, zone = parse_tuple(info, atype, family, flags, zone)
        setattr(f, slot, tup)
    if zone and f.zone is None:
        f.zone = zone
    return f


def needs_filter(family, attrs):
    """ctnetlink_needs_filter()."""
    return bool(family) or any(t in attrs for t in (N.CTA_MARK, N.CTA_FILTER, N.CTA_STATUS,
                                                    N.CTA_ZONE))


def _lookup_tuple(info, l3num):
    """The tuple of a single GET or DELETE: (Tuple, zone), or None without one."""
    zone = parse_zone(info)
    for atype in (N.CTA_TUPLE_ORIG, N.CTA_TUPLE_REPLY):
        if atype in info.attrs:
            return parse_tuple(info, atype, l3num, zone=zone)
    return None


# ---------------------------------------------------------------- handlers
class Ctnetlink:
    """The subsystem's callbacks over the trackers of the peers' namespaces."""

    def __init__(self, nfnl):
        self.nfnl = nfnl
        cb = {
            N.IPCTNL_MSG_CT_NEW: Callback(self.new_conntrack, N.CTA),
            N.IPCTNL_MSG_CT_GET: Callback(self.get_conntrack, N.CTA),
            N.IPCTNL_MSG_CT_DELETE: Callback(self.del_conntrack, N.CTA),
            N.IPCTNL_MSG_CT_GET_CTRZERO: Callback(self.get_conntrack, N.CTA),
            N.IPCTNL_MSG_CT_GET_STATS_CPU: Callback(self.stat_ct_cpu),
            N.IPCTNL_MSG_CT_GET_STATS: Callback(self.stat_ct),
            N.IPCTNL_MSG_CT_GET_DYING: Callback(self.get_empty_list),
            N.IPCTNL_MSG_CT_GET_UNCONFIRMED: Callback(self.get_empty_list),
        }
        self.subsystem = Subsystem("conntrack", N.NFNL_SUBSYS_CTNETLINK, cb)

    @staticmethod
    def _is_dump(info):
        return bool(info.hdr.flags & U.NLM_F_DUMP)

    def get_conntrack(self, info):
        """ctnetlink_get_conntrack() (also GET_CTRZERO)."""
        tracker = info.net.conntrack
        if self._is_dump(info):
            filt = None
            if needs_filter(info.family, info.attrs):
                filt = alloc_filter(info, info.family)
            return self.nfnl.start_dump(info, self._dump_table(info, tracker, filt))
        found = _lookup_tuple(info, info.family)
        if found is None:
            raise NetlinkError(errno.EINVAL, "CTA_TUPLE_ORIG or CTA_TUPLE_REPLY required")
        conn = tracker.get(found[1], found[0])
        if conn is None:
            raise NetlinkError(errno.ENOENT, "no such connection")
        # nf_conntrack_find_get() holds a reference while the entry is filled
        info.peer.send(fill_info(conn, tracker, info.peer.portid, info.hdr.seq, info.msg_type,
                                 use=2))
        return False

    @staticmethod
    def _dump_table(info, tracker, filt):
        """ctnetlink_dump_table()."""
        flags = N.NLM_F_DUMP_FILTERED if filt is not None else 0
        portid, seq, mtype = info.peer.portid, info.hdr.seq, info.msg_type
        for conn in tracker:
            if filt is not None and not filt.match(conn):
                continue
            yield fill_info(conn, tracker, portid, seq, mtype, flags)

    def del_conntrack(self, info):
        """ctnetlink_del_conntrack()."""
        tracker = info.net.conntrack
        a = info.attrs
        zone = parse_zone(info)
        atype = None
        if N.CTA_FILTER not in a:
            atype = next((t for t in (N.CTA_TUPLE_ORIG, N.CTA_TUPLE_REPLY) if t in a), None)
        if atype is None:
            family = info.family if info.version or N.CTA_FILTER in a else AF_UNSPEC
            filt = alloc_filter(info, family) if needs_filter(family, a) else None
            victims = [c for c in tracker if filt is None or filt.match(c)]
            for conn in victims:
                tracker.kill(conn, info.peer.portid, _echo(info))
            return False
        tup, zone = parse_tuple(info, atype, info.family, zone=zone)
        conn = tracker.get(zone, tup)
        if conn is None:
            raise NetlinkError(errno.ENOENT, "no such connection")
        if N.CTA_ID in a and _BE32.unpack_from(a[N.CTA_ID])[0] != ct_id(conn):
            raise NetlinkError(errno.ENOENT, "the connection has another id")
        tracker.kill(conn, info.peer.portid, _echo(info))
        return False

    def stat_ct_cpu(self, info):
        """ctnetlink_stat_ct_cpu(): a dump, one message per CPU; else nothing."""
        if not self._is_dump(info):
            return False
        tracker = info.net.conntrack
        return self.nfnl.start_dump(info, iter([stat_cpu_fill_info(
            tracker.stats, info.peer.portid, info.hdr.seq)]))

    @staticmethod
    def stat_ct(info):
        """ctnetlink_stat_ct(): always a single answer, dump flag or not."""
        info.peer.send(stat_fill_info(info.net.conntrack, info.peer.portid, info.hdr.seq))
        return False

    def get_empty_list(self, info):
        """ctnetlink_get_ct_dying() / _unconfirmed(): nothing to dump."""
        if not self._is_dump(info):
            raise NetlinkError(errno.EOPNOTSUPP, "this list can only be dumped")
        return self.nfnl.start_dump(info, iter(()))

    def new_conntrack(self, info):
        """ctnetlink_new_conntrack(): change a connection, or create one
        (NLM_F_CREATE) that the tables do not have."""
        tracker = info.net.conntrack
        a = info.attrs
        zone = parse_zone(info)
        otuple = rtuple = None
        if N.CTA_TUPLE_ORIG in a:
            otuple, zone = parse_tuple(info, N.CTA_TUPLE_ORIG, info.family, zone=zone)
        if N.CTA_TUPLE_REPLY in a:
            rtuple, zone = parse_tuple(info, N.CTA_TUPLE_REPLY, info.family, zone=zone)
        conn = None
        if otuple is not None or rtuple is not None:
            conn = tracker.get(zone, otuple if otuple is not None else rtuple)
        if conn is None:
            if not info.hdr.flags & U.NLM_F_CREATE:
                raise NetlinkError(errno.ENOENT, "no such connection")
            if otuple is None or rtuple is None:
                raise NetlinkError(errno.EINVAL, "a new connection needs both tuples")
            if otuple.protonum != rtuple.protonum:
                raise NetlinkError(errno.EINVAL, "the tuples' protocols differ")
            conn, events = _create(info, tracker, zone, otuple, rtuple)
            EC.ecache_ext_add(tracker, conn)    # (after the insert, which reports nothing)
        else:
            if info.hdr.flags & U.NLM_F_EXCL:
                raise NetlinkError(errno.EEXIST, "the connection exists")
            _change(info, tracker, conn)
            events = EC.CHANGE_EVENTS
        EC.eventmask_report(tracker, events, conn, info.peer.portid, _echo(info))
        return False


def _echo(info):
    """nlmsg_report(): the request wants the events it causes (NLM_F_ECHO)."""
    return bool(info.hdr.flags & U.NLM_F_ECHO)


# ------------------------------------------------------ changing connections
# IPS_UNCHANGEABLE_MASK: NAT bits, EXPECTED, CONFIRMED, DYING, SEQ_ADJUST,
# TEMPLATE, UNTRACKED, OFFLOAD, HW_OFFLOAD
_UNCHANGEABLE = 0x30 | 0x180 | 0x1 | 0x8 | 0x200 | 0x40 | 0x800 | 0x1000 | 0x4000 | 0x8000


def _change_status(info, current):
    """nf_ct_change_status_common(): the new status, or EBUSY."""
    status = _BE32.unpack_from(info.attrs[N.CTA_STATUS])[0]
    d = current ^ status
    if d & (IPS_EXPECTED | IPS_CONFIRMED | IPS_DYING):
        raise info.error(errno.EBUSY, "EXPECTED, CONFIRMED and DYING cannot change", N.CTA_STATUS)
    if d & IPS_SEEN_REPLY and not status & IPS_SEEN_REPLY:
        raise info.error(errno.EBUSY, "SEEN_REPLY can only be set", N.CTA_STATUS)
    if d & IPS_ASSURED and not status & IPS_ASSURED:
        raise info.error(errno.EBUSY, "ASSURED can only be set", N.CTA_STATUS)
    return current | (status & ~_UNCHANGEABLE)


def _change_protoinfo(info, conn):
    """ctnetlink_change_protoinfo() with TCP's nlattr_to_tcp()."""
    base = info.offsets[N.CTA_PROTOINFO] + U.NLA_HDRLEN
    tb, offs = parse(info.attrs[N.CTA_PROTOINFO], N.CTA_PROTOINFO_TABLE, base)
    if conn.protonum != IPPROTO_TCP or N.CTA_PROTOINFO_TCP not in tb:
        return
    t, _ = parse(tb[N.CTA_PROTOINFO_TCP], N.CTA_PROTOINFO_TCP_TABLE,
                 offs[N.CTA_PROTOINFO_TCP] + U.NLA_HDRLEN)
    if N.CTA_PROTOINFO_TCP_STATE in t and t[N.CTA_PROTOINFO_TCP_STATE][0] >= TCP_CONNTRACK_MAX:
        raise info.error(errno.EINVAL, "no such TCP state", N.CTA_PROTOINFO)
    st = conn.proto if conn.proto is not None else TcpState()
    conn.proto = st
    if N.CTA_PROTOINFO_TCP_STATE in t:
        st.state = t[N.CTA_PROTOINFO_TCP_STATE][0]
    for d, atype in ((0, N.CTA_PROTOINFO_TCP_FLAGS_ORIGINAL), (1, N.CTA_PROTOINFO_TCP_FLAGS_REPLY)):
        if atype in t:
            flags, mask = N.NF_CT_TCP_FLAGS.unpack_from(t[atype])
            st.seen[d].flags = (st.seen[d].flags & ~mask) | (flags & mask)
    if (N.CTA_PROTOINFO_TCP_WSCALE_ORIGINAL in t and N.CTA_PROTOINFO_TCP_WSCALE_REPLY in t
            and st.seen[0].flags & IP_CT_TCP_FLAG_WINDOW_SCALE
            and st.seen[1].flags & IP_CT_TCP_FLAG_WINDOW_SCALE):
        st.seen[0].td_scale = t[N.CTA_PROTOINFO_TCP_WSCALE_ORIGINAL][0]
        st.seen[1].td_scale = t[N.CTA_PROTOINFO_TCP_WSCALE_REPLY][0]


def _change_mark(info, conn):
    """ctnetlink_change_mark()."""
    a = info.attrs
    mask = ~_BE32.unpack_from(a[N.CTA_MARK_MASK])[0] & 0xFFFFFFFF if N.CTA_MARK_MASK in a else 0
    conn.mark = (conn.mark & mask) ^ _BE32.unpack_from(a[N.CTA_MARK])[0]


def _attach_labels(info, conn):
    """ctnetlink_attach_labels() / nf_connlabels_replace()."""
    a = info.attrs
    data = a[N.CTA_LABELS]
    if len(data) % 4:
        raise info.error(errno.EINVAL, "labels are whole 32-bit words", N.CTA_LABELS)
    mask = a.get(N.CTA_LABELS_MASK)
    if mask is not None and (not mask or len(mask) != len(data)):
        raise info.error(errno.EINVAL, "the labels' mask has another length", N.CTA_LABELS_MASK)
    old = conn.labels.to_bytes(N.NF_CT_LABELS_MAX_SIZE, "big")
    keep = bytes(~m & 0xFF for m in mask) if mask is not None else bytes(len(data))
    new = bytes((o & k) ^ v for o, v, k in zip(old[:len(data)], data, keep, strict=True))
    conn.labels = int.from_bytes(new + bytes(N.NF_CT_LABELS_MAX_SIZE - len(new)), "big")


def _check_help(info):
    """ctnetlink_parse_help() and the helper lookup: ovsdp has no helpers."""
    p = info.attrs[N.CTA_HELP]
    name = None
    for raw, payload, off in iter_attrs(p, info.offsets[N.CTA_HELP] + U.NLA_HDRLEN):
        if raw & U.NLA_TYPE_MASK == 1:                  # CTA_HELP_NAME, NUL string < 16
            validate(payload, "nul_string", 15, off)
            name = payload.split(b"\0", 1)[0]
    if name is None:
        raise info.error(errno.EINVAL, "CTA_HELP without CTA_HELP_NAME", N.CTA_HELP)
    return name


def _change(info, tracker, conn):
    """ctnetlink_change_conntrack()."""
    a = info.attrs
    for t in (N.CTA_NAT_SRC, N.CTA_NAT_DST, N.CTA_TUPLE_MASTER):
        if t in a:
            raise info.error(errno.EOPNOTSUPP, "NAT and a master only for a new connection", t)
    if N.CTA_HELP in a and _check_help(info):
        raise info.error(errno.EOPNOTSUPP, "ovsdp has no conntrack helpers", N.CTA_HELP)
    if N.CTA_TIMEOUT in a:
        tracker.set_timeout(conn, _BE32.unpack_from(a[N.CTA_TIMEOUT])[0])
    if N.CTA_STATUS in a:
        conn.status = _change_status(info, conn.status)
    if N.CTA_PROTOINFO in a:
        _change_protoinfo(info, conn)
    if N.CTA_MARK in a:
        _change_mark(info, conn)
    if N.CTA_LABELS in a:
        _attach_labels(info, conn)


def _create(info, tracker, zone, otuple, rtuple):
    """ctnetlink_create_conntrack()."""
    a = info.attrs
    if N.CTA_TIMEOUT not in a:
        raise NetlinkError(errno.EINVAL, "a new connection needs CTA_TIMEOUT")
    if N.CTA_HELP in a:
        _check_help(info)
        raise info.error(errno.EOPNOTSUPP, "ovsdp has no conntrack helpers", N.CTA_HELP)
    for t in (N.CTA_NAT_SRC, N.CTA_NAT_DST, N.CTA_TUPLE_MASTER):
        if t in a:
            raise info.error(errno.EOPNOTSUPP, "ovsdp creates no NAT or expected connections "
                             "through ctnetlink", t)
    now = tracker.now                       # tracker.get() above read the clock
    conn = Conn(zone, otuple, rtuple, now)
    status = IPS_CONFIRMED
    if N.CTA_STATUS in a:
        status = _change_status(info, status)
    if otuple.protonum == IPPROTO_TCP:
        conn.proto = TcpState()
    elif l4proto_find(otuple.protonum).name in ("udp", "udplite"):
        conn.proto = UdpState(0.0)
    if N.CTA_PROTOINFO in a:
        _change_protoinfo(info, conn)
    if N.CTA_MARK in a:
        _change_mark(info, conn)
    if tracker.get(zone, otuple) is not None or tracker.get(zone, rtuple) is not None:
        raise NetlinkError(errno.EEXIST, "a connection has one of these tuples")
    conn.status = status & ~IPS_CONFIRMED
    conn.timeout = tracker.now + _BE32.unpack_from(a[N.CTA_TIMEOUT])[0]
    if not tracker.confirm(CtResult(conn)):
        raise NetlinkError(errno.ENOMEM, "the connection table is full")
    events = EC.CREATE_EVENTS | 1 << (EC.IPCT_RELATED if status & IPS_EXPECTED
                                      else EC.IPCT_NEW)
    if N.CTA_LABELS in a:
        try:
            _attach_labels(info, conn)
            events |= 1 << EC.IPCT_LABEL
        except NetlinkError:
            pass                                        # as the kernel: the entry stays
    return conn, events


# --------------------------------------------------------------- decoding
def decode_tuple(buf):
    """The attributes of a CTA_TUPLE_* payload as a dict (for clients and tests)."""
    out = {}
    for raw, payload, _ in iter_attrs(buf):
        t = raw & U.NLA_TYPE_MASK
        if t == N.CTA_TUPLE_IP:
            for r2, p2, _ in iter_attrs(payload):
                row = N.CTA_IP.rows.get(r2 & U.NLA_TYPE_MASK)
                if row is not None:
                    out[row.name] = (_BE32.unpack_from(p2)[0] if row.kind == "be32"
                                     else int.from_bytes(p2[:16], "big"))
        elif t == N.CTA_TUPLE_PROTO:
            for r2, p2, _ in iter_attrs(payload):
                row = N.CTA_PROTO.rows.get(r2 & U.NLA_TYPE_MASK)
                if row is not None:
                    out[row.name] = _BE16.unpack_from(p2)[0] if row.kind == "be16" else p2[0]
        elif t == N.CTA_TUPLE_ZONE:
            out["zone"] = _BE16.unpack_from(payload)[0]
    return out
