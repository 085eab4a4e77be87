"""ctnetlink's event messages: the CONFIG_NF_CONNTRACK_EVENTS part of
net/netfilter/nf_conntrack_netlink.c (``ctnetlink_conntrack_event()``).

:class:`CtEventNotifier` is a namespace's ``nf_conntrack_event_cb``: the
event cache (:mod:`.nf_conntrack_ecache`) hands it an event set of one
connection, it picks the message and group, builds the message and
multicasts it to the group's members in that namespace (nfnetlink's
``nfnetlink_send()``), and to the requester of a ctnetlink change that
asked for NLM_F_ECHO.  As Linux 6.x:

- a set with IPCT_DESTROY is IPCTNL_MSG_CT_DELETE to NFNLGRP_CONNTRACK_DESTROY;
  one with IPCT_NEW or IPCT_RELATED is IPCTNL_MSG_CT_NEW with
  NLM_F_CREATE|NLM_F_EXCL to NFNLGRP_CONNTRACK_NEW; any other is
  IPCTNL_MSG_CT_NEW to NFNLGRP_CONNTRACK_UPDATE; nothing is built when the
  group has no member in the namespace (and no echo is asked for);
- the message: CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_ZONE (not 0), CTA_ID,
  CTA_STATUS; for a destroy then CTA_TIMEOUT unless 0 (an expired
  connection has none), the counters (with accounting on) and
  CTA_PROTOINFO with the state only; otherwise CTA_TIMEOUT, CTA_PROTOINFO
  when IPCT_PROTOINFO is in the set, CTA_LABELS when IPCT_LABEL is (and
  some label is set), CTA_TUPLE_MASTER when IPCT_RELATED is; last
  CTA_MARK, when not 0 or IPCT_MARK is in the set.  nlmsg_seq is 0,
  nlmsg_pid the requester's port id (0 for what packets caused).

Expectations' events (``ctnetlink_expect_event()``): IPEXP_NEW is
IPCTNL_MSG_EXP_NEW with NLM_F_CREATE|NLM_F_EXCL to
NFNLGRP_CONNTRACK_EXP_NEW, IPEXP_DESTROY IPCTNL_MSG_EXP_DELETE to
NFNLGRP_CONNTRACK_EXP_DESTROY, the expectation as ctnetlink dumps it.

Differs from Linux: no CTA_SECCTX, CTA_SYNPROXY or CTA_TIMESTAMP (no
security marks, synproxy or timestamp extension).
"""

from .. import uapi as U
from ..netlink.attr import nla, nla_be16, nla_be32, nla_nest
from ..netlink.nfnetlink import nfnl_msg
from ..uapi import nfnetlink as N
from .nf_conntrack_ecache import (
    IPCT_DESTROY,
    IPCT_HELPER,
    IPCT_LABEL,
    IPCT_MARK,
    IPCT_NEW,
    IPCT_PROTOINFO,
    IPCT_RELATED,
    IPCT_SEQADJ,
    IPEXP_DESTROY,
    IPEXP_NEW,
)
from .nf_conntrack_netlink import (
    accounting,
    ct_id,
    dump_counters,
    dump_helpinfo,
    dump_master,
    dump_protoinfo,
    dump_seq_adj,
    dump_tuple,
)
from .nf_conntrack_netlink_exp import exp_fill_info

NESTED = U.NLA_F_NESTED
_DESTROY = 1 << IPCT_DESTROY
_NEW = (1 << IPCT_NEW) | (1 << IPCT_RELATED)


def event_type(events):
    """(message type, flags, group) of an event set, or None for no events."""
    if events & _DESTROY:
        return N.IPCTNL_MSG_CT_DELETE, 0, N.NFNLGRP_CONNTRACK_DESTROY
    if events & _NEW:
        return (N.IPCTNL_MSG_CT_NEW, U.NLM_F_CREATE | U.NLM_F_EXCL,
                N.NFNLGRP_CONNTRACK_NEW)
    if events:
        return N.IPCTNL_MSG_CT_NEW, 0, N.NFNLGRP_CONNTRACK_UPDATE
    return None


def event_msg(tracker, events, conn, portid=0):
    """The message ctnetlink_conntrack_event() builds for ``events`` (bytes),
    or None for an empty set."""
    kind = event_type(events)
    if kind is None:
        return None
    mtype, flags, _group = kind
    parts = [nla_nest(N.CTA_TUPLE_ORIG | NESTED, dump_tuple(conn.tuple[0])),
             nla_nest(N.CTA_TUPLE_REPLY | NESTED, dump_tuple(conn.tuple[1]))]
    if conn.zone:
        parts.append(nla_be16(N.CTA_ZONE, conn.zone))
    parts += [nla_be32(N.CTA_ID, ct_id(conn)), nla_be32(N.CTA_STATUS, conn.status & 0xFFFFFFFF)]
    timeout = int(tracker.expires(conn))
    if events & _DESTROY:
        if timeout:
            parts.append(nla_be32(N.CTA_TIMEOUT, timeout))
        if accounting(tracker):
            parts.append(dump_counters(conn))
        parts.append(dump_protoinfo(conn, destroy=True))
    else:
        parts.append(nla_be32(N.CTA_TIMEOUT, timeout))
        if events & (1 << IPCT_PROTOINFO):
            parts.append(dump_protoinfo(conn))
        if events & (1 << IPCT_HELPER) or conn.help is not None:
            parts.append(dump_helpinfo(conn))
        if events & (1 << IPCT_LABEL) and conn.labels:
            parts.append(nla(N.CTA_LABELS, conn.labels.to_bytes(N.NF_CT_LABELS_MAX_SIZE, "big")))
        if events & (1 << IPCT_RELATED):
            parts.append(dump_master(conn))
        if events & (1 << IPCT_SEQADJ):
            parts.append(dump_seq_adj(conn))
    if conn.mark or events & (1 << IPCT_MARK):
        parts.append(nla_be32(N.CTA_MARK, conn.mark & 0xFFFFFFFF))
    return nfnl_msg(N.NFNL_SUBSYS_CTNETLINK, mtype, flags, 0, portid, conn.tuple[0].l3num,
                    b"".join(parts))


class CtEventNotifier:
    """A namespace's nf_conntrack_event_cb: ctnetlink over ``nfnl`` (the
    :class:`~ovsdp.netlink.nfnetlink.NfnlCore`) to the peers of ``net``."""

    __slots__ = ("nfnl", "net", "sent")

    def __init__(self, nfnl, net):
        self.nfnl = nfnl
        self.net = net
        self.sent = 0                   # event messages built (what tests count)

    @property
    def has_listener(self):
        """nf_ctnetlink_has_listener: any conntrack or expectation group member."""
        return self.nfnl.ct_listeners

    def conntrack_event(self, tracker, events, conn, portid=0, report=False):
        """ctnetlink_conntrack_event(): 0, or < 0 when not delivered."""
        kind = event_type(events)
        if kind is None:
            return 0
        group = kind[2]
        if not report and not self.nfnl.has_listeners(group, self.net):
            return 0
        msg = event_msg(tracker, events, conn, portid)
        self.sent += 1
        return self.nfnl.send(msg, self.net, portid, group, report)

    def expect_event(self, tracker, events, exp, portid=0, report=False):
        """ctnetlink_expect_event(): 0, or < 0 when not delivered."""
        if events & (1 << IPEXP_DESTROY):
            mtype, flags, group = N.IPCTNL_MSG_EXP_DELETE, 0, N.NFNLGRP_CONNTRACK_EXP_DESTROY
        elif events & (1 << IPEXP_NEW):
            mtype, flags = N.IPCTNL_MSG_EXP_NEW, U.NLM_F_CREATE | U.NLM_F_EXCL
            group = N.NFNLGRP_CONNTRACK_EXP_NEW
        else:
            return 0
        if not report and not self.nfnl.has_listeners(group, self.net):
            return 0
        self.sent += 1
        msg = exp_fill_info(tracker, exp, 0, 0, mtype, flags)
        if portid:                      # nfnl_msg_put(skb, item->portid, 0, ...)
            msg = msg[:12] + portid.to_bytes(4, "little") + msg[16:]
        return self.nfnl.send(msg, self.net, portid, group, report)
