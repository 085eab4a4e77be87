"""The nfnetlink core (net/netfilter/nfnetlink.c): NETLINK_NETFILTER sockets.

Sans I/O, like :mod:`.genl`: :class:`NfnlCore` takes the messages of peers
whose socket is a NETLINK_NETFILTER one and hands each to the subsystem its
``nlmsg_type`` names (``subsys_id << 8 | msg``), behind the ``nfgenmsg``
header.  As nfnetlink_rcv() / nfnetlink_rcv_msg():

- every request needs CAP_NET_ADMIN (EPERM), whatever it asks;
- a message too short for ``nfgenmsg`` is accepted and does nothing;
- an unknown subsystem or message is EINVAL; a batch (NFNL_MSG_BATCH_BEGIN)
  is EOPNOTSUPP, as for every subsystem without commit/abort;
- attributes are parsed the liberal way against the callback's policy;
- acks, errors, extended acks and dumps are netlink's, as for genl.

Socket options are generic netlink's but for multicast groups, which are
nfnetlink's own (1..32 may be joined, as netlink_setsockopt allows on a
kernel socket of NFNLGRP_MAX groups).  The transport option that makes a
connection a NETLINK_NETFILTER socket (OVSDP_SO_PROTOCOL) is handled here
for both protocols.
"""

import errno
import logging

from .. import uapi as U
from ..uapi import nfnetlink as N
from . import attr as A
from .attr import NetlinkError
from .genl import Dump
from .message import build, build_error

log = logging.getLogger(__name__)

PROTOCOLS = (U.NETLINK_GENERIC, N.NETLINK_NETFILTER)
_CT_GROUP_MAX = N.NFNLGRP_CONNTRACK_EXP_DESTROY     # the groups of ctnetlink and ctnetlink_exp


def protocol_of(peer):
    """The netlink protocol of a peer's socket (generic netlink unless it said)."""
    return getattr(peer, "protocol", U.NETLINK_GENERIC)


def is_protocol_option(msg):
    """Whether a message is the OVSDP_SO_PROTOCOL socket option."""
    body = msg[U.NLMSG_HDRLEN:]
    if len(body) < U.OVSDP_SOCKOPT.size:
        return False
    level, optname = U.OVSDP_SOCKOPT.unpack_from(body)
    return level == U.SOL_NETLINK and optname == U.OVSDP_SO_PROTOCOL


def set_protocol(peer, protocol):
    """OVSDP_SO_PROTOCOL: the connection's socket is of netlink ``protocol``."""
    if protocol == protocol_of(peer):
        return
    if protocol not in PROTOCOLS:
        raise NetlinkError(errno.EPROTONOSUPPORT, f"netlink protocol {protocol} is not served")
    if peer.used or peer.groups:
        raise NetlinkError(errno.EINVAL, "the protocol is chosen before any other message")
    peer.protocol = protocol


class Callback:
    """An nfnl_callback: the handler, its attribute count and policy.

    ``call(info)`` returns True when it started a dump (no ack then).
    ``policy`` is an :class:`~ovsdp.uapi.nfnetlink.NfTable` (its rows with
    ``policy`` set are checked) or None.
    """

    __slots__ = ("call", "table", "maxattr")

    def __init__(self, call, table=None):
        self.call = call
        self.table = table
        self.maxattr = table.max_type if table is not None else 0


class Subsystem:
    """An nfnetlink_subsystem: its id, name and callbacks by message type."""

    def __init__(self, name, subsys_id, callbacks):
        self.name = name
        self.subsys_id = subsys_id
        self.cb = dict(callbacks)


class Info:
    """struct nfnl_info: the request as a subsystem's callback sees it."""

    __slots__ = ("peer", "hdr", "msg", "family", "version", "res_id", "attrs", "offsets")

    def __init__(self, peer, hdr, msg, family, version, res_id, attrs, offsets):
        self.peer = peer
        self.hdr = hdr
        self.msg = msg
        self.family = family
        self.version = version
        self.res_id = res_id
        self.attrs = attrs
        self.offsets = offsets

    @property
    def net(self):
        return self.peer.net

    @property
    def msg_type(self):
        return self.hdr.type & 0xFF

    def error(self, err, msg=None, atype=None):
        return NetlinkError(err, msg, self.offsets.get(atype) if atype is not None else None)


def validate(payload, kind, length, offset):
    """One attribute against its row's kind (validate_nla(), liberal)."""
    if kind == "reject":
        raise NetlinkError(errno.EINVAL, "Attribute not allowed", offset)
    pt = A.Policy(kind if kind != "unspec" else A.UNSPEC, length)
    A.validate_nla(0, payload, pt, offset)


def parse(buf, table, base=0):
    """nla_parse_deprecated() against an NfTable: {type: payload}, {type: offset}.

    Types 0 and above the table's maximum are ignored, the last of a
    repeated type wins, parsing stops at a bad header; rows the kernel's
    policy has are checked.
    """
    attrs, offsets = {}, {}
    for raw, payload, off in A.iter_attrs(buf, base):
        atype = raw & U.NLA_TYPE_MASK
        if atype == 0 or atype > table.max_type:
            continue
        row = table.rows.get(atype)
        if row is not None and row.policy:
            validate(payload, row.kind, row.len, off)
        attrs[atype] = payload
        offsets[atype] = off
    return attrs, offsets


def nfnl_msg(subsys, msg_type, flags, seq, pid, family, body, version=N.NFNETLINK_V0, res_id=0):
    """nfnl_msg_put() + the attributes: one nfnetlink message."""
    return build(subsys << 8 | msg_type, flags, seq, pid,
                 N.NFGENMSG.pack(family, version, res_id) + body)


class NfnlCore:
    """The subsystems and the multicast memberships of NETLINK_NETFILTER peers."""

    def __init__(self, genl):
        self.genl = genl                 # generic netlink's socket options are shared
        self.subsystems = {}
        self.members = {}                # group -> set of peers
        # nf_ctnetlink_has_listener: a bit per conntrack / expectation group
        # (1..6) someone is a member of, of any namespace (as in the kernel:
        # NETLINK_LISTEN_ALL_NSID keeps it from being per namespace)
        self.ct_listeners = 0

    def register(self, subsystem):
        """nfnetlink_subsys_register()."""
        if subsystem.subsys_id in self.subsystems:
            raise ValueError(f"nfnetlink subsystem {subsystem.subsys_id} already registered")
        self.subsystems[subsystem.subsys_id] = subsystem
        return subsystem

    # ------------------------------------------------------------ multicast
    def join(self, peer, group):
        if not 1 <= group <= N.NFNL_GROUPS:
            raise NetlinkError(errno.EINVAL, f"no multicast group {group}")
        peer.groups.add(group)
        self.members.setdefault(group, set()).add(peer)
        if group <= _CT_GROUP_MAX:                       # nfnetlink_bind_event()
            self.ct_listeners |= 1 << group

    def leave(self, peer, group):
        peer.groups.discard(group)
        s = self.members.get(group)
        if s:
            s.discard(peer)
        if group <= _CT_GROUP_MAX and not self.has_listeners(group, peer.net):
            self.ct_listeners &= ~(1 << group)           # nfnetlink_unbind()

    def forget(self, peer):
        """The socket closed: netlink_release() unbinds each of its groups."""
        for group in [g for g, s in self.members.items() if peer in s]:
            self.leave(peer, group)

    def has_listeners(self, group, net=None):
        """nfnetlink_has_listeners(): members of ``group`` (in ``net`` when given)."""
        members = self.members.get(group)
        if not members or net is None:
            return bool(members)
        return any(p.net is net for p in members)

    def multicast(self, group, data, net, exclude=None):
        """netlink_broadcast() to the members of ``group`` in ``net``: the
        transport queues the message or, for a member whose queue is full,
        drops it and tells the member (NLMSG_OVERRUN: ENOBUFS, netlink's
        overrun); one slow member holds up neither the datapath nor the
        others.  Returns 0 (delivered or nobody to deliver to, as for a
        member without NETLINK_BROADCAST_ERROR)."""
        for p in list(self.members.get(group, ())):
            if p.net is net and p is not exclude:
                p.send(data, "notify")
        return 0

    def send(self, data, net, portid, group, report):
        """nfnetlink_send() / nlmsg_notify(): multicast to ``group`` in ``net``
        and, for a request with NLM_F_ECHO (``report``), to its sender
        ``portid`` (which the multicast then skips)."""
        sender = net.peers.get(portid) if report and portid else None
        err = self.multicast(group, data, net, sender) if group else 0
        if sender is not None:
            sender.send(data, "reply")
        return err

    # ---------------------------------------------------------------- input
    def sockopt(self, peer, msg):
        body = msg[U.NLMSG_HDRLEN:]
        if len(body) >= U.OVSDP_SOCKOPT.size + 4:
            level, optname = U.OVSDP_SOCKOPT.unpack_from(body)
            value = A.get_u32(body[U.OVSDP_SOCKOPT.size:])
            if level == U.SOL_NETLINK and optname == U.OVSDP_SO_PROTOCOL:
                set_protocol(peer, value)
                return
            if (level == U.SOL_NETLINK and protocol_of(peer) == N.NETLINK_NETFILTER
                    and optname in (U.NETLINK_ADD_MEMBERSHIP, U.NETLINK_DROP_MEMBERSHIP)):
                if optname == U.NETLINK_ADD_MEMBERSHIP:
                    self.join(peer, value)
                else:
                    self.leave(peer, value)
                return
        self.genl.sockopt(peer, msg)

    def handle(self, peer, hdr, msg):
        """One message of a datagram (netlink_rcv_skb with nfnetlink_rcv_msg)."""
        err = 0
        extmsg = None
        offset = None
        if hdr.type != U.OVSDP_MSG_SOCKOPT:
            peer.used = True
        if hdr.flags & U.NLM_F_REQUEST:
            try:
                if hdr.type < U.NLMSG_MIN_TYPE:
                    if hdr.type == U.OVSDP_MSG_SOCKOPT:
                        self.sockopt(peer, msg)
                elif not peer.net_admin:
                    raise NetlinkError(errno.EPERM, "CAP_NET_ADMIN required")
                elif self.rcv_msg(peer, hdr, msg):
                    return                               # a dump started: no ack
            except NetlinkError as e:
                err, extmsg, offset = e.errno, e.msg, e.offset
            except Exception:  # noqa: BLE001 - a handler bug must not take the daemon down
                log.exception("nfnetlink handler failed for message type %#x", hdr.type)
                err, extmsg = errno.EINVAL, "internal error"
        if hdr.flags & U.NLM_F_ACK or err:
            peer.send(build_error(msg, err, peer.portid, extmsg, offset,
                                  peer.cap_ack, peer.ext_ack))

    def rcv_msg(self, peer, hdr, msg):
        """nfnetlink_rcv_msg(): True when the callback started a dump."""
        base = U.NLMSG_HDRLEN + N.NFGENMSG.size
        if hdr.len < base:
            return False                                 # accepted, ignored
        if hdr.type == N.NFNL_MSG_BATCH_BEGIN:
            raise NetlinkError(errno.EOPNOTSUPP, "no subsystem of ovsdp takes batches")
        ss = self.subsystems.get(hdr.type >> 8)
        if ss is None:
            raise NetlinkError(errno.EINVAL, f"unknown nfnetlink subsystem {hdr.type >> 8}")
        cb = ss.cb.get(hdr.type & 0xFF)
        if cb is None:
            raise NetlinkError(errno.EINVAL, f"unknown {ss.name} message {hdr.type & 0xFF}")
        family, version, res_id = N.NFGENMSG.unpack_from(msg, U.NLMSG_HDRLEN)
        if cb.table is not None:
            attrs, offsets = parse(msg[base:hdr.len], cb.table, base)
        else:
            attrs, offsets = {}, {}
        return cb.call(Info(peer, hdr, msg, family, version, res_id, attrs, offsets))

    @staticmethod
    def start_dump(info, gen):
        """netlink_dump_start(): EBUSY while a dump runs, else send it."""
        peer = info.peer
        if peer.dump is not None and not peer.dump.done:
            raise NetlinkError(errno.EBUSY, "a dump is already running on this socket")
        peer.dump = Dump(peer, info.hdr, iter(gen))
        peer.start_dump()
        return True
