"""Conntrack events: the event cache, as net/netfilter/nf_conntrack_ecache.c
(with include/net/netfilter/nf_conntrack_ecache.h).

A connection that has the event cache extension (``conn.ecache``, an
:class:`Ecache`; None without) collects the events that happen to it while
a packet is handled (:func:`event_cache`: a bit per ``IPCT_*``), and they are
reported together when the packet's connection is confirmed
(:func:`deliver_cached_events`, from ``nf_conntrack_confirm()``: the commit
of the OVS ct action, or the host stack's hooks).  A few are reported at
once (:func:`eventmask_report`): the destroy of a connection
(``nf_ct_delete()``) and what ctnetlink changes.  The report goes to the
tracker's notifier (``tracker.event_cb``, ``nf_conntrack_event_cb``:
ctnetlink's :class:`~.nf_conntrack_netlink_events.CtEventNotifier`, set by
the namespace), which builds the IPCTNL_MSG_CT_NEW / _DELETE message and
multicasts it to the NFNLGRP_CONNTRACK_* members of the connection's
namespace.

The tracker caches IPCT_NEW / _RELATED at confirm, IPCT_DESTROY at
``nf_ct_delete()`` (``ConnTracker._remove``: kill, expiry met by a lookup or
the gc, early drop, flush), and, for each packet of a connection with the
extension, what the packet changed (:func:`packet_events`): IPCT_REPLY,
IPCT_ASSURED and IPCT_PROTOINFO, which the kernel caches in
``nf_conntrack_in()`` and in each l4 tracker's ``packet()`` and ovsdp finds
in one place by comparing the status and protocol state before and after;
the CT action's commit caches IPCT_MARK and IPCT_LABEL (``conntrack.py``).

Whether a connection has the extension is decided when it is made
(:func:`ecache_ext_add`, from ``init_conntrack()`` and ctnetlink's create),
by the namespace's ``nf_conntrack_events`` sysctl (``tracker.sysctl_events``):
0 none, 1 every connection, 2 (the default since Linux 6.0) only while some
socket is a member of a conntrack or expectation group
(``nf_ctnetlink_has_listener``: a bit per group 1..6, of every namespace as
in the kernel, kept by the nfnetlink core).  So with nobody listening no
connection has an ``Ecache`` and every hook is one ``is None`` test; a
connection made while nobody listened stays silent for its whole life,
destroy included, as on Linux.

``ctmask`` filters what is reported: an event set is reported whole when
one of its bits (or a missed one) is in the mask, else not at all (the OVS
ct action's ``eventmask`` sets it at commit, ``ovs_ct_commit()``).  A report
the notifier could not deliver (a negative return: a member that asked for
NETLINK_BROADCAST_ERROR) is kept in ``missed`` and sent with the next one.

Differs from Linux: a destroy event that could not be delivered is not put
on a dying list for redelivery (``ecache_work``); the preload library keeps
NETLINK_BROADCAST_ERROR on the client's side, so ovsdp's notifier never
fails and a full member loses the message (NLMSG_OVERRUN, ENOBUFS on its
socket), as a member without NETLINK_BROADCAST_ERROR does on Linux.  The
expectation events (groups 4-6, ``nf_ct_expect_event_report()``, by
``expmask``) have their place here (:func:`expect_event_report`) for the
expectation code to call.
"""

from .nf_conntrack_common import IPS_ASSURED as _IPS_ASSURED
from .nf_conntrack_common import IPS_CONFIRMED as _IPS_CONFIRMED
from .nf_conntrack_common import IPS_DYING as _IPS_DYING
from .nf_conntrack_common import IPS_SEEN_REPLY as _IPS_SEEN_REPLY

# enum ip_conntrack_events (include/uapi/linux/netfilter/nf_conntrack_common.h)
IPCT_NEW = 0             # a new connection
IPCT_RELATED = 1         # a new connection an expectation foresaw
IPCT_DESTROY = 2         # the connection is gone
IPCT_REPLY = 3           # the first reply was seen
IPCT_ASSURED = 4         # the connection became ASSURED
IPCT_PROTOINFO = 5       # the protocol's state changed
IPCT_HELPER = 6          # a helper was assigned
IPCT_MARK = 7            # the mark changed
IPCT_SEQADJ = 8          # the sequence adjustment changed
IPCT_NATSEQADJ = IPCT_SEQADJ
IPCT_SECMARK = 9         # the security mark was set
IPCT_LABEL = 10          # the labels changed
IPCT_SYNPROXY = 11       # synproxy's state was set
IPCT_MAX = 12

# enum ip_conntrack_expect_events
IPEXP_NEW = 0
IPEXP_DESTROY = 1

IPCT_NAMES = ("NEW", "RELATED", "DESTROY", "REPLY", "ASSURED", "PROTOINFO", "HELPER",
              "MARK", "SEQADJ", "SECMARK", "LABEL", "SYNPROXY")

# the sysctl's default (NF_CT_EVENTS_DEFAULT) and the ext's masks (u16 in the kernel)
NF_CT_EVENTS_DEFAULT = 2
_ALL = 0xFFFF

# what a ctnetlink change reports, ctnetlink_new_conntrack()
CHANGE_EVENTS = ((1 << IPCT_REPLY) | (1 << IPCT_ASSURED) | (1 << IPCT_HELPER) |
                 (1 << IPCT_LABEL) | (1 << IPCT_PROTOINFO) | (1 << IPCT_SEQADJ) |
                 (1 << IPCT_MARK) | (1 << IPCT_SYNPROXY))
CREATE_EVENTS = CHANGE_EVENTS & ~(1 << IPCT_LABEL)      # labels only when attached


class Ecache:
    """struct nf_conntrack_ecache: the events cached, missed, and the masks."""

    __slots__ = ("cache", "missed", "ctmask", "expmask", "portid")

    def __init__(self, ctmask, expmask):
        self.cache = 0
        self.missed = 0
        self.ctmask = ctmask & _ALL
        self.expmask = expmask & _ALL
        self.portid = 0

    def __repr__(self):
        return (f"Ecache(cache={self.cache:#x}, missed={self.missed:#x}, "
                f"ctmask={self.ctmask:#x}, expmask={self.expmask:#x})")


def events_names(events):
    """The IPCT_* names of an event set, for logs and tests."""
    return [n for i, n in enumerate(IPCT_NAMES) if events & (1 << i)]


def ecache_ext_add(tracker, conn, ctmask=0, expmask=0):
    """nf_ct_ecache_ext_add(): give ``conn`` the extension as the namespace's
    nf_conntrack_events says (a template's or ruleset's masks count even
    when it is 0); returns the Ecache or None."""
    cb = tracker.event_cb
    if cb is None:
        return None                 # no notifier: nothing to report to
    mode = tracker.sysctl_events
    if mode == 0:
        if not (ctmask or expmask):
            return None
    elif mode == 2 and not cb.has_listener:
        return None                 # autodetect: nobody listens
    elif not (ctmask or expmask):
        ctmask = expmask = _ALL
    e = conn.ecache = Ecache(ctmask, expmask)
    return e


def event_cache(conn, event):
    """nf_conntrack_event_cache(): remember ``event`` until the packet is done."""
    e = conn.ecache
    if e is not None:
        e.cache |= 1 << event


def _report(tracker, e, conn, events, missed, portid, report):
    """__nf_conntrack_eventmask_report(): the notifier's return (< 0: not
    delivered, the events are then kept as missed)."""
    if not (events | missed) & e.ctmask:
        return 0
    cb = tracker.event_cb
    if cb is None:
        return 0
    ret = cb.conntrack_event(tracker, events | missed, conn, portid, report)
    if ret >= 0 and not missed:
        return 0
    if ret < 0:
        e.missed |= events
    else:
        e.missed &= ~missed
    return ret


def eventmask_report(tracker, events, conn, portid=0, report=False):
    """nf_conntrack_eventmask_report(): report ``events`` (a mask) now, for a
    confirmed connection with the extension.  ``portid`` / ``report``: the
    ctnetlink request that caused it (NLM_F_ECHO: it gets the event too)."""
    e = conn.ecache
    if e is None or not conn.status & _IPS_CONFIRMED:
        return 0
    pid = e.portid or portid
    missed = 0 if e.portid else e.missed     # a destroy being resent skips the missed
    ret = _report(tracker, e, conn, events, missed, pid, report)
    if ret < 0 and events & (1 << IPCT_DESTROY) and not e.portid and portid:
        e.portid = portid
    return ret


def event_report(tracker, event, conn, portid=0, report=False):
    """nf_conntrack_event_report(): one event now."""
    if conn.ecache is None:
        return 0
    return eventmask_report(tracker, 1 << event, conn, portid, report)


def deliver_cached_events(tracker, conn):
    """nf_ct_deliver_cached_events(): report and clear what the packet cached
    (a confirmed, live connection; the missed events go along)."""
    e = conn.ecache
    if e is None or not conn.status & _IPS_CONFIRMED or conn.status & _IPS_DYING:
        return
    events, e.cache = e.cache, 0
    _report(tracker, e, conn, events, e.missed, 0, False)


def expect_event_report(tracker, event, exp, portid=0, report=False):
    """nf_ct_expect_event_report(): an expectation's IPEXP_* event, when its
    master's extension wants it (``expmask``) and the notifier takes
    expectation events (``expect_event``)."""
    e = exp.master.ecache
    cb = tracker.event_cb
    if e is None or cb is None or not e.expmask & (1 << event):
        return 0
    fn = getattr(cb, "expect_event", None)
    return fn(tracker, 1 << event, exp, portid, report) if fn is not None else 0


def proto_state(conn):
    """The protocol tracker's state number (TCP, SCTP), None for the others:
    what IPCT_PROTOINFO follows."""
    return getattr(conn.proto, "state", None)


def packet_events(conn, old_status, old_state):
    """The events nf_conntrack_in() and the l4 trackers cache for one packet
    of a connection with the extension: IPCT_REPLY when it is the first
    reply, IPCT_ASSURED when the connection became ASSURED (tcp, udp, sctp,
    gre ``packet()``), IPCT_PROTOINFO when TCP's or SCTP's state moved."""
    e = conn.ecache
    became = conn.status & ~old_status
    if became & _IPS_SEEN_REPLY:
        e.cache |= 1 << IPCT_REPLY
    if became & _IPS_ASSURED:
        e.cache |= 1 << IPCT_ASSURED
    if proto_state(conn) != old_state:
        e.cache |= 1 << IPCT_PROTOINFO
