"""Per-protocol trackers other than TCP (nf_conntrack_l4proto instances).

UDP and UDP-Lite as net/netfilter/nf_conntrack_proto_udp.c, ICMP as
nf_conntrack_proto_icmp.c, ICMPv6 as nf_conntrack_proto_icmpv6.c (with the
error messages RELATED to a connection through their embedded header,
nf_conntrack_inet_error), the generic tracker as
nf_conntrack_proto_generic.c, GRE as nf_conntrack_proto_gre.c (30 s until
replied, then 180 s and ASSURED; no PPTP helper, so no keymap and no key in
the tuple).  DCCP has no state machine here: its ports are in the tuple and
it is timed like the generic tracker.  TCP lives in nf_conntrack_tcp.py,
SCTP in nf_conntrack_sctp.py.

Each tracker has ``packet(tr, ct, pkt, direction, ctinfo) -> (verdict, reason)``
and may have ``error(tr, pkt, zone)`` (run before the lookup, as the ICMP
trackers' error callbacks are).  ``tr`` is the ConnTracker: it gives the clock
reading (``tr.now``), the settings, ``refresh_acct``, ``find`` and
``get_tuplepr``.  Sans I/O.
"""

import struct

from . import nf_conntrack_sctp as sctp
from . import nf_conntrack_tcp as tcp
from .nf_conntrack_common import (
    IPPROTO_DCCP,
    IPPROTO_GRE,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPPROTO_UDPLITE,
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_NAT_CLASH,
    IPS_SEEN_REPLY,
    NFPROTO_IPV4,
    NFPROTO_IPV6,
    V_ACCEPT,
    V_INVALID,
)
from .nf_conntrack_timeout import timeout_lookup

UDP_CT_UNREPLIED = 0
UDP_CT_REPLIED = 1
UDP_TIMEOUTS = (30, 120)            # udp_timeouts[]
UDP_STREAM_DELAY = 2                # stream_ts = 2 * HZ + jiffies
ICMP_TIMEOUT = 30                   # nf_ct_icmp_timeout
ICMPV6_TIMEOUT = 30                 # nf_ct_icmpv6_timeout
GENERIC_TIMEOUT = 600               # nf_ct_generic_timeout
GRE_CT_UNREPLIED, GRE_CT_REPLIED = 0, 1
GRE_TIMEOUTS = (30, 180)            # gre_timeouts[]
SCTP_TIMEOUTS = sctp.SCTP_TIMEOUTS  # sctp_timeouts[], re-exported for the tracker

# ICMP types
ICMP_ECHOREPLY, ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_REDIRECT = 0, 3, 4, 5
ICMP_ECHO, ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB = 8, 11, 12
ICMP_TIMESTAMP, ICMP_TIMESTAMPREPLY, ICMP_INFO_REQUEST, ICMP_INFO_REPLY = 13, 14, 15, 16
ICMP_ADDRESS, ICMP_ADDRESSREPLY = 17, 18
NR_ICMP_TYPES = 18
ICMP_ERRORS = frozenset({ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_REDIRECT,
                         ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB})     # icmp_is_err()

# invmap[] of nf_conntrack_proto_icmp.c: request <-> reply
ICMP_INVMAP = {ICMP_ECHO: ICMP_ECHOREPLY, ICMP_ECHOREPLY: ICMP_ECHO,
               ICMP_TIMESTAMP: ICMP_TIMESTAMPREPLY, ICMP_TIMESTAMPREPLY: ICMP_TIMESTAMP,
               ICMP_INFO_REQUEST: ICMP_INFO_REPLY, ICMP_INFO_REPLY: ICMP_INFO_REQUEST,
               ICMP_ADDRESS: ICMP_ADDRESSREPLY, ICMP_ADDRESSREPLY: ICMP_ADDRESS}
# valid_new[] of nf_conntrack_icmp_packet: the types that can create a connection
ICMP_VALID_NEW = frozenset({ICMP_ECHO, ICMP_TIMESTAMP, ICMP_INFO_REQUEST, ICMP_ADDRESS})

# ICMPv6 types
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
ICMPV6_NI_QUERY, ICMPV6_NI_REPLY = 139, 140
NDISC_REDIRECT = 137
ND_OPT_REDIRECT_HDR = 4
ICMPV6_INVMAP = {ICMPV6_ECHO_REQUEST: ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REPLY: ICMPV6_ECHO_REQUEST,
                 ICMPV6_NI_QUERY: ICMPV6_NI_REPLY, ICMPV6_NI_REPLY: ICMPV6_NI_QUERY}
ICMPV6_VALID_NEW = frozenset({ICMPV6_ECHO_REQUEST, ICMPV6_NI_QUERY})
# noct_valid_new[]: MLD queries/reports/reductions, RS, RA, NS, NA, MLDv2 report,
# multicast router advertisement/solicitation: never tracked
ICMPV6_NOCT = frozenset({130, 131, 132, 133, 134, 135, 136, 143, 151, 152})


def icmp_invert_type(protonum, icmp_type):
    """nf_conntrack_invert_icmp_tuple / nf_conntrack_invert_icmpv6_tuple (chosen
    by the protocol number, as nf_ct_invert_tuple does): the type of the
    inverted tuple, or None if this type has no inverse."""
    if protonum == IPPROTO_ICMP:
        return ICMP_INVMAP.get(icmp_type)
    return ICMPV6_INVMAP.get(icmp_type)


class UdpState:
    """ct->proto.udp: when a replied flow counts as a stream."""

    __slots__ = ("stream_ts",)

    def __init__(self, stream_ts=0.0):
        self.stream_ts = stream_ts

    def __repr__(self):
        return f"UdpState(stream_ts={self.stream_ts})"


class L4Proto:
    """struct nf_conntrack_l4proto: the generic tracker is the base."""

    protonum = 0
    name = "unknown"
    ports = False           # the tuple carries source/destination ports
    error = None            # error(tr, pkt, zone) for ICMP / ICMPv6

    def packet(self, tr, ct, pkt, direction, ctinfo):
        """nf_conntrack_generic_packet(): refresh with the generic timeout
        (the connection's timeout policy's, if it has one)."""
        t = timeout_lookup(ct)
        tr.refresh_acct(ct, pkt, direction, t[0] if t else tr.generic_timeout)
        return V_ACCEPT, None

    def can_early_drop(self, ct):
        return False


class PortsGeneric(L4Proto):
    """DCCP without its state machine: ports in the tuple, generic timing."""

    ports = True

    def __init__(self, protonum, name):
        self.protonum, self.name = protonum, name


class Tcp(L4Proto):
    """nf_conntrack_l4proto_tcp."""

    protonum, name, ports = IPPROTO_TCP, "tcp", True

    def packet(self, tr, ct, pkt, direction, ctinfo):
        return tcp.tcp_packet(tr, ct, pkt, direction, ctinfo)

    def can_early_drop(self, ct):
        return tcp.tcp_can_early_drop(ct)


class Sctp(L4Proto):
    """nf_conntrack_l4proto_sctp."""

    protonum, name, ports = IPPROTO_SCTP, "sctp", True

    def packet(self, tr, ct, pkt, direction, ctinfo):
        return sctp.sctp_packet(tr, ct, pkt, direction, ctinfo)

    def can_early_drop(self, ct):
        return sctp.sctp_can_early_drop(ct)


class GreState:
    """ct->proto.gre: the timeouts taken at creation (a PPTP helper would raise them)."""

    __slots__ = ("timeout", "stream_timeout")

    def __init__(self, timeout, stream_timeout):
        self.timeout, self.stream_timeout = timeout, stream_timeout

    def __repr__(self):
        return f"GreState(timeout={self.timeout}, stream_timeout={self.stream_timeout})"


class Gre(L4Proto):
    """nf_conntrack_l4proto_gre: addresses only in the tuple (no PPTP keymap)."""

    protonum, name = IPPROTO_GRE, "gre"

    def packet(self, tr, ct, pkt, direction, ctinfo):
        """nf_conntrack_gre_packet(): 30 s until a reply was seen, then 180 s
        and ASSURED (never for a NAT clash entry)."""
        if not ct.status & IPS_CONFIRMED or ct.proto is None:
            t = timeout_lookup(ct) or tr.gre_timeouts
            ct.proto = GreState(t[GRE_CT_UNREPLIED], t[GRE_CT_REPLIED])
        status = ct.status
        if status & IPS_SEEN_REPLY:
            tr.refresh_acct(ct, pkt, direction, ct.proto.stream_timeout)
            if not status & IPS_NAT_CLASH:
                ct.status |= IPS_ASSURED
        else:
            tr.refresh_acct(ct, pkt, direction, ct.proto.timeout)
        return V_ACCEPT, None


class Udp(L4Proto):
    """nf_conntrack_l4proto_udp."""

    protonum, name, ports = IPPROTO_UDP, "udp", True

    def udp_error(self, tr, pkt):
        """udp_error(): header present, length field sane, checksum if enabled."""
        udplen = len(pkt.data) - pkt.dataoff
        if udplen < 8:
            return "short packet"
        length, check = struct.unpack_from("!HH", pkt.data, pkt.dataoff + 4)
        if length > udplen or length < 8:
            return "truncated/malformed packet"
        if check and tr.checksum and pkt.l4_csum_bad():
            return "bad checksum"
        return None

    def packet(self, tr, ct, pkt, direction, ctinfo):
        """nf_conntrack_udp_packet(): 30 s until replied; a flow replied and
        still active 2 s after its start is a stream: 120 s and ASSURED."""
        err = self.udp_error(tr, pkt)
        if err:
            return V_INVALID, err
        t = timeout_lookup(ct) or tr.udp_timeouts
        status = ct.status
        if not status & IPS_CONFIRMED:
            ct.proto = UdpState(tr.now + UDP_STREAM_DELAY)
        if status & IPS_SEEN_REPLY:
            extra, stream = t[UDP_CT_UNREPLIED], False
            if tr.now > ct.proto.stream_ts:
                extra = t[UDP_CT_REPLIED]
                stream = not status & IPS_ASSURED
            tr.refresh_acct(ct, pkt, direction, extra)
            if stream:
                ct.status |= IPS_ASSURED
        else:
            tr.refresh_acct(ct, pkt, direction, t[UDP_CT_UNREPLIED])
        return V_ACCEPT, None


class UdpLite(Udp):
    """nf_conntrack_l4proto_udplite."""

    protonum, name = IPPROTO_UDPLITE, "udplite"

    def udp_error(self, tr, pkt):
        """udplite_error(): checksum coverage and a mandatory checksum."""
        udplen = len(pkt.data) - pkt.dataoff
        if udplen < 8:
            return "short packet"
        cscov, check = struct.unpack_from("!HH", pkt.data, pkt.dataoff + 4)
        if cscov == 0:
            cscov = udplen
        elif cscov < 8 or cscov > udplen:
            return "invalid checksum coverage"
        if not check:
            return "checksum missing"
        return None

    def packet(self, tr, ct, pkt, direction, ctinfo):
        """nf_conntrack_udplite_packet(): replied means stream and ASSURED."""
        err = self.udp_error(tr, pkt)
        if err:
            return V_INVALID, err
        t = timeout_lookup(ct) or tr.udp_timeouts
        if ct.status & IPS_SEEN_REPLY:
            tr.refresh_acct(ct, pkt, direction, t[UDP_CT_REPLIED])
            ct.status |= IPS_ASSURED
        else:
            tr.refresh_acct(ct, pkt, direction, t[UDP_CT_UNREPLIED])
        return V_ACCEPT, None


def inet_error(tr, pkt, zone, inner_off, outer_daddr):
    """nf_conntrack_inet_error(): find the connection the embedded header
    talks about (its tuple inverted); ("related", conn, dir) or ("invalid", why)."""
    orig, why = tr.get_tuplepr(pkt.data, inner_off, pkt.l3num)
    if orig is None:
        return "invalid", "embedded packet: " + why
    inner = orig.invert()
    if inner is None:
        return "invalid", "embedded packet: can't invert tuple"
    found = tr.find(zone, inner)
    if found is None:
        return "invalid", "embedded packet matches no connection"
    ct, d = found
    if ct.tuple[d].dst != outer_daddr:
        return "invalid", "outer daddr != inner"
    return "related", ct, d


def _icmp_type(tr, pkt, bad_csum):
    """(type, None), or (None, an invalid verdict): how both ICMP error checks start."""
    if len(pkt.data) - pkt.dataoff < 8:
        return None, ("invalid", "short packet")
    if tr.checksum and pkt.l4_csum_bad():
        return None, ("invalid", bad_csum)
    return pkt.data[pkt.dataoff], None


class Icmp(L4Proto):
    """nf_conntrack_l4proto_icmp."""

    protonum, name = IPPROTO_ICMP, "icmp"

    def error(self, tr, pkt, zone):
        """nf_conntrack_icmpv4_error(): None to track the packet normally."""
        icmp_type, bad = _icmp_type(tr, pkt, "bad hw icmp checksum")
        if bad:
            return bad
        if icmp_type > NR_ICMP_TYPES:
            return "invalid", "invalid icmp type"
        if icmp_type not in ICMP_ERRORS:
            return None
        return inet_error(tr, pkt, zone, pkt.dataoff + 8, pkt.dst)

    def packet(self, tr, ct, pkt, direction, ctinfo):
        """nf_conntrack_icmp_packet(): only requests create; 30 s; never ASSURED."""
        if pkt.l3num != NFPROTO_IPV4:
            return V_INVALID, "icmp in a non-IPv4 packet"
        if ct.tuple[0].icmp_type not in ICMP_VALID_NEW:
            return V_INVALID, "can't create new conn with icmp type %d" % ct.tuple[0].icmp_type
        t = timeout_lookup(ct)
        tr.refresh_acct(ct, pkt, direction, t[0] if t else tr.icmp_timeout)
        return V_ACCEPT, None


class Icmpv6(L4Proto):
    """nf_conntrack_l4proto_icmpv6."""

    protonum, name = IPPROTO_ICMPV6, "icmpv6"

    def error(self, tr, pkt, zone):
        """nf_conntrack_icmpv6_error(): ND/MLD untracked, errors RELATED."""
        icmp_type, bad = _icmp_type(tr, pkt, "ICMPv6 checksum failed")
        if bad:
            return bad
        if icmp_type in ICMPV6_NOCT:
            return ("untracked",)
        if icmp_type == NDISC_REDIRECT:
            return self.redirect(tr, pkt, zone)
        if icmp_type >= 128:
            return None
        return inet_error(tr, pkt, zone, pkt.dataoff + 8, pkt.dst)

    def redirect(self, tr, pkt, zone):
        """nf_conntrack_icmpv6_redirect(): the redirected header option."""
        off = pkt.dataoff
        if len(pkt.data) - off < 40:             # struct rd_msg
            return "invalid", "short redirect"
        if pkt.data[off + 1] != 0:
            return None
        if pkt.hop_limit != 255 or pkt.src >> 118 != 0x3FA:      # fe80::/10
            return "invalid", "invalid saddr or hoplimit for redirect"
        off += 40
        if len(pkt.data) - off < 2 or pkt.data[off + 1] == 0:
            return "invalid", "redirect without options"
        if pkt.data[off] != ND_OPT_REDIRECT_HDR:
            return None
        return inet_error(tr, pkt, zone, off + 8, pkt.dst)

    def packet(self, tr, ct, pkt, direction, ctinfo):
        """nf_conntrack_icmpv6_packet(): only queries create; 30 s."""
        if pkt.l3num != NFPROTO_IPV6:
            return V_INVALID, "icmpv6 in a non-IPv6 packet"
        if not ct.status & IPS_CONFIRMED and ct.tuple[0].icmp_type not in ICMPV6_VALID_NEW:
            return V_INVALID, "can't create new conn with icmpv6 type %d" % (
                ct.tuple[0].icmp_type)
        t = timeout_lookup(ct)
        tr.refresh_acct(ct, pkt, direction, t[0] if t else tr.icmpv6_timeout)
        return V_ACCEPT, None


GENERIC = L4Proto()
L4PROTOS = {p.protonum: p for p in (Tcp(), Udp(), UdpLite(), Icmp(), Icmpv6(), Sctp(), Gre(),
                                    PortsGeneric(IPPROTO_DCCP, "dccp"))}


def l4proto_find(protonum):
    """nf_ct_l4proto_find(): the tracker for a protocol, generic if none."""
    return L4PROTOS.get(protonum, GENERIC)
