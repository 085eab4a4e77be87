"""Generic netlink core (net/netlink/genetlink.c) and the nlctrl family.

Sans-IO: :class:`GenlCore` takes a datagram from a :class:`Peer` and answers
through the peer's ``send`` and the core's multicast hook.  The transport
(server/) supplies peers and delivers bytes.
"""

import errno
import logging

from .. import uapi as U
from . import attr as A
from .attr import NetlinkError, nla_nest, nla_string, nla_u16, nla_u32
from .message import GENLMSGHDR, NLMSGHDR, build_done, build_error, build_genl, split, well_framed

log = logging.getLogger(__name__)

GENL_START_ALLOC = 0x13          # GENL_ID_PMCRAID + 1
# Multicast group ids reserved by Linux: 0, 1, GENL_ID_CTRL, VFS_DQUOT, PMCRAID.
_RESERVED_GROUPS = {0, 1, 0x10, 0x11, 0x12}
NLMSG_GOODSIZE = 8192            # default bytes per dump datagram
# genl_multicast_group.flags (net/genetlink.h): who may join the group
GENL_MCAST_CAP_NET_ADMIN = 0x01
GENL_MCAST_CAP_SYS_ADMIN = 0x02
DUMP_SIZE_MAX = 32768


class Op:
    """A genl_ops entry."""

    __slots__ = ("cmd", "flags", "policy", "doit", "dumpit")

    def __init__(self, cmd, flags=0, doit=None, dumpit=None, policy=True):
        self.cmd = cmd
        self.flags = flags
        self.doit = doit
        self.dumpit = dumpit
        self.policy = policy

    def ctrl_flags(self):
        f = self.flags
        if self.dumpit is not None:
            f |= U.GENL_CMD_CAP_DUMP
        if self.doit is not None:
            f |= U.GENL_CMD_CAP_DO
        if self.policy:
            f |= U.GENL_CMD_CAP_HASPOL
        return f


class Family:
    """A genl_family: name, version, fixed header size, policy, ops, groups.

    ``mcgrp_flags`` maps a group's name to its GENL_MCAST_CAP_* flags.
    """

    def __init__(self, name, version, maxattr, policy=None, hdrsize=0, mcgrps=(),
                 mcgrp_flags=None):
        self.name = name
        self.version = version
        self.maxattr = maxattr
        self.policy = policy or {}
        self.hdrsize = hdrsize
        self.mcgrp_names = list(mcgrps)
        self.mcgrp_ids = {}
        self.mcgrp_flags = dict(mcgrp_flags or {})
        self.ops = {}
        self.id = None
        self.core = None

    def add_op(self, op):
        self.ops[op.cmd] = op

    def group_id(self, name=None):
        return self.mcgrp_ids[name or self.mcgrp_names[0]]

    def message(self, cmd, flags, seq, pid, body, version=None):
        """Build one message of this family."""
        return build_genl(self.id, cmd, self.version if version is None else version,
                          flags, seq, pid, body)

    def has_listeners(self, group=None, net=None):
        """genl_has_listeners(): members of the group (in ``net`` when given)."""
        return self.core.has_listeners(self.group_id(group), net)


class Peer:
    """One client of the control protocol, as the genl core sees it.

    The transport subclasses this and implements :meth:`send`.  ``portid`` is
    the netlink port id the peer is known by (unique within its ``net``);
    ``net_admin`` is whether it holds CAP_NET_ADMIN.  ``net`` is the network
    namespace the peer's socket belongs to (sock_net()): opaque here, it
    scopes multicast and is set by whoever adds the peer.
    """

    def __init__(self, portid, net_admin=False, uid=None, pid=None, net=None):
        self.portid = portid
        self.net = net
        self.net_admin = net_admin
        self.uid = uid
        self.pid = pid
        self.groups = set()
        self.ext_ack = True
        self.cap_ack = False
        self.dump_size = NLMSG_GOODSIZE
        self.dump = None
        self.used = False            # sent something: bind() may not change the port id

    def send(self, data, kind="reply"):
        """Deliver one datagram; ``kind`` is reply, notify, upcall or dump.

        Returns 0, EAGAIN when a dump datagram was queued behind a full
        socket (the dump should wait), or another positive errno when the
        datagram was not delivered.
        """
        raise NotImplementedError

    def bind(self, portid):
        """netlink_bind() with a chosen nl_pid: take ``portid`` as this peer's id."""
        raise NetlinkError(errno.EOPNOTSUPP, "this transport cannot bind a port id")

    def start_dump(self):
        """A dump was set up in ``self.dump``: send it (default: all at once).

        A transport that serves many peers overrides this to send the dump
        a part at a time, between other work (netlink_dump_start sends the
        first part, the rest follows as the reader reads).
        """
        pump_dump(self)


class Request:
    """genl_info: the parsed request as handlers see it."""

    __slots__ = ("peer", "hdr", "msg", "cmd", "version", "userhdr", "attrs",
                 "family", "offsets", "parse_error")

    def __init__(self, peer, hdr, msg, cmd, version, userhdr, attrs, family, offsets):
        self.peer = peer
        self.hdr = hdr
        self.msg = msg
        self.cmd = cmd
        self.version = version
        self.userhdr = userhdr
        self.attrs = attrs
        self.family = family
        self.offsets = offsets
        self.parse_error = None

    @property
    def portid(self):
        return self.peer.portid

    @property
    def net(self):
        """genl_info_net(): the requester's network namespace."""
        return self.peer.net

    @property
    def seq(self):
        return self.hdr.seq

    @property
    def flags(self):
        return self.hdr.flags

    def offset(self, atype):
        return self.offsets.get(atype)

    def error(self, err, msg=None, atype=None):
        """A NetlinkError pointing at attribute ``atype`` of this request."""
        return NetlinkError(err, msg, self.offsets.get(atype) if atype is not None else None)


class Dump:
    """A dump in progress: messages from ``gen`` packed into datagrams.

    Like netlink_dump(): each datagram holds as many whole messages as fit in
    the peer's dump size (a message larger than that goes alone); the
    NLMSG_DONE (carrying the dump's errno, 0 on success) comes last, in a
    datagram of its own.
    """

    def __init__(self, peer, hdr, gen):
        self.peer = peer
        self.seq = hdr.seq
        self.gen = gen
        self.pending = None      # a message that did not fit the last datagram
        self.end = None          # the NLMSG_DONE, once the generator is through
        self.done = False

    def next_datagram(self):
        """The next datagram of the dump, or None once NLMSG_DONE went out."""
        if self.done:
            return None
        size = self.peer.dump_size
        parts = []
        used = 0
        if self.pending is not None:
            parts.append(self.pending)
            used = len(self.pending)
            self.pending = None
        while self.end is None:
            try:
                msg = next(self.gen)
            except StopIteration:
                self.end = build_done(self.seq, self.peer.portid)
            except NetlinkError as e:
                self.end = build_done(self.seq, self.peer.portid, e.errno, e.msg,
                                      self.peer.ext_ack)
            except Exception:  # noqa: BLE001 - a dump that fails ends, it does not wedge
                log.exception("dump failed")
                self.end = build_done(self.seq, self.peer.portid, errno.EINVAL,
                                      "internal error", self.peer.ext_ack)
            else:
                if parts and used + len(msg) > size:
                    self.pending = msg
                    break
                parts.append(msg)
                used += len(msg)
        if parts:
            return b"".join(parts)
        self.done = True
        return self.end

    def only_done_left(self):
        """Whether every message went out and only the NLMSG_DONE remains."""
        return self.end is not None and self.pending is None and not self.done

    def close(self):
        self.done = True
        self.gen.close()


class GenlCore:
    """Family registry, request dispatch, nlctrl, multicast bookkeeping."""

    def __init__(self):
        self.families = {}
        self.by_name = {}
        self._next_id = GENL_START_ALLOC
        self._groups_used = set(_RESERVED_GROUPS)
        self.members = {}            # group id -> set of peers
        self.group_flags = {}        # group id -> GENL_MCAST_CAP_* flags
        self.ctrl = self._make_ctrl()

    # ------------------------------------------------------------ registry
    def register(self, family, family_id=None):
        if family.name in self.by_name:
            raise ValueError(f"family {family.name} already registered")
        if family_id is None:
            while self._next_id in self.families:
                self._next_id += 1
            family_id = self._next_id
            self._next_id += 1
        family.id = family_id
        family.core = self
        for name in family.mcgrp_names:
            if family_id == U.GENL_ID_CTRL:
                gid = U.GENL_ID_CTRL
            else:
                gid = 2
                while gid in self._groups_used:
                    gid += 1
            self._groups_used.add(gid)
            family.mcgrp_ids[name] = gid
            self.group_flags[gid] = family.mcgrp_flags.get(name, 0)
        self.families[family_id] = family
        self.by_name[family.name] = family
        return family

    def group_exists(self, gid):
        return any(gid in f.mcgrp_ids.values() for f in self.families.values())

    # ----------------------------------------------------------- multicast
    def join(self, peer, gid):
        """NETLINK_ADD_MEMBERSHIP: genl_bind() refuses a group flagged
        GENL_MCAST_CAP_*_ADMIN to a socket without the capability (EPERM)."""
        if not self.group_exists(gid):
            raise NetlinkError(errno.EINVAL, f"no multicast group {gid}")
        if self.group_flags.get(gid, 0) and not peer.net_admin:
            raise NetlinkError(errno.EPERM, f"multicast group {gid} needs CAP_NET_ADMIN")
        peer.groups.add(gid)
        self.members.setdefault(gid, set()).add(peer)

    def leave(self, peer, gid):
        peer.groups.discard(gid)
        s = self.members.get(gid)
        if s:
            s.discard(peer)

    def forget(self, peer):
        """A peer went away: drop its memberships and its dump."""
        for gid in list(peer.groups):
            self.leave(peer, gid)
        if peer.dump is not None:
            peer.dump.close()
            peer.dump = None

    def has_listeners(self, gid, net=None):
        members = self.members.get(gid)
        if not members or net is None:
            return bool(members)
        return any(p.net is net for p in members)

    def multicast(self, gid, data, net, exclude=None):
        """genlmsg_multicast_netns(): to the group's members in ``net``."""
        for p in list(self.members.get(gid, ())):
            if p.net is net and p is not exclude:
                p.send(data, "notify")

    def notify(self, family, req, data, group=None):
        """genl_notify(): multicast to the group in the requester's
        namespace, echo to the requester."""
        echo = req.hdr.flags & U.NLM_F_ECHO
        exclude = req.peer if echo else None
        if family.mcgrp_names:
            self.multicast(family.group_id(group), data, req.peer.net, exclude)
        if echo:
            req.peer.send(data, "reply")

    # ------------------------------------------------------------- receive
    def receive(self, peer, data):
        """Handle one datagram from ``peer`` (netlink_rcv_skb).

        Returns False when the datagram is not framed as netlink messages
        (the transport then closes the connection), else True.
        """
        msgs, consumed = split(data)
        for hdr, msg in msgs:
            self.handle(peer, hdr, msg)
        return well_framed(data, consumed, bool(msgs))

    def handle(self, peer, hdr, msg):
        """One message of a datagram: dispatch it, then ack or report its error."""
        err = 0
        extmsg = None
        offset = None
        if hdr.type != U.OVSDP_MSG_SOCKOPT:
            peer.used = True            # netlink_autobind(): the port id is fixed now
        if hdr.flags & U.NLM_F_REQUEST:
            try:
                if hdr.type < U.NLMSG_MIN_TYPE:
                    if hdr.type == U.OVSDP_MSG_SOCKOPT:
                        self.sockopt(peer, msg)
                elif self.rcv_msg(peer, hdr, msg):
                    return          # a dump started: no ack
            except NetlinkError as e:
                err, extmsg, offset = e.errno, e.msg, e.offset
            except Exception:  # noqa: BLE001 - a handler bug must not take the daemon down
                log.exception("handler failed for message type %#x", hdr.type)
                err, extmsg = errno.EINVAL, "internal error"
        if hdr.flags & U.NLM_F_ACK or err:
            peer.send(build_error(msg, err, peer.portid, extmsg, offset,
                                  peer.cap_ack, peer.ext_ack))

    def rcv_msg(self, peer, hdr, msg):
        """genl_rcv_msg: returns True when a dump was started."""
        family = self.families.get(hdr.type)
        if family is None:
            raise NetlinkError(errno.ENOENT, "unknown generic netlink family")
        hdrlen = U.GENL_HDRLEN + family.hdrsize
        if hdr.len < U.NLMSG_HDRLEN + hdrlen:
            raise NetlinkError(errno.EINVAL, "message too short for the family header")
        cmd, version, _ = GENLMSGHDR.unpack_from(msg, U.NLMSG_HDRLEN)
        op = family.ops.get(cmd)
        if op is None:
            raise NetlinkError(errno.EOPNOTSUPP, "unknown command")
        if op.flags & (U.GENL_ADMIN_PERM | U.GENL_UNS_ADMIN_PERM) and not peer.net_admin:
            raise NetlinkError(errno.EPERM, "CAP_NET_ADMIN required")
        base = U.NLMSG_HDRLEN + hdrlen
        userhdr = msg[U.NLMSG_HDRLEN + U.GENL_HDRLEN:base]
        is_dump = (hdr.flags & U.NLM_F_DUMP) == U.NLM_F_DUMP
        if is_dump:
            if op.dumpit is None:
                raise NetlinkError(errno.EOPNOTSUPP, "command cannot dump")
            if peer.dump is not None and not peer.dump.done:
                raise NetlinkError(errno.EBUSY, "a dump is already running on this socket")
            # GENL_DONT_VALIDATE_DUMP: the dump handler decides whether a
            # policy failure matters (req.parse_error).
            parse_error = None
            try:
                tb = A.parse_with_offsets(msg[base:], family.maxattr, family.policy, base)
            except NetlinkError as e:
                tb, parse_error = {}, e
            req = Request(peer, hdr, msg, cmd, version, userhdr,
                          {k: v[0] for k, v in tb.items()}, family,
                          {k: v[1] for k, v in tb.items()})
            req.parse_error = parse_error
            gen = op.dumpit(req)
            peer.dump = Dump(peer, hdr, iter(gen))
            peer.start_dump()
            return True
        if op.doit is None:
            raise NetlinkError(errno.EOPNOTSUPP, "command has no doit")
        attrs, offsets = A.parse_split(msg[base:], family.maxattr, family.policy, base)
        req = Request(peer, hdr, msg, cmd, version, userhdr, attrs, family, offsets)
        op.doit(req)
        return False

    # ------------------------------------------------------------- sockopt
    def sockopt(self, peer, msg):
        """The ovsdp socket-option message (see docs/protocol.md)."""
        body = msg[U.NLMSG_HDRLEN:]
        if len(body) < U.OVSDP_SOCKOPT.size:
            raise NetlinkError(errno.EINVAL, "socket option message too short")
        level, optname = U.OVSDP_SOCKOPT.unpack_from(body)
        value = body[U.OVSDP_SOCKOPT.size:]
        if level != U.SOL_NETLINK:
            raise NetlinkError(errno.ENOPROTOOPT, "unknown socket option level")
        if len(value) < 4:
            raise NetlinkError(errno.EINVAL, "socket option value too short")
        v = A.get_u32(value)
        if optname == U.NETLINK_ADD_MEMBERSHIP:
            self.join(peer, v)
        elif optname == U.NETLINK_DROP_MEMBERSHIP:
            self.leave(peer, v)
        elif optname == U.NETLINK_EXT_ACK:
            peer.ext_ack = bool(v)
        elif optname == U.NETLINK_CAP_ACK:
            peer.cap_ack = bool(v)
        elif optname == U.OVSDP_SO_BIND_PORTID:
            peer.bind(v)
        elif optname == U.OVSDP_SO_DUMP_SIZE:
            if not 1024 <= v <= DUMP_SIZE_MAX:
                raise NetlinkError(errno.EINVAL, f"dump size must be 1024..{DUMP_SIZE_MAX}")
            peer.dump_size = v
        else:
            raise NetlinkError(errno.ENOPROTOOPT, "unknown socket option")

    # --------------------------------------------------------------- nlctrl
    def _make_ctrl(self):
        policy = {
            U.CTRL_ATTR_FAMILY_ID: A.Policy(A.U16),
            U.CTRL_ATTR_FAMILY_NAME: A.Policy(A.NUL_STRING, U.GENL_NAMSIZ - 1),
        }
        fam = Family(U.GENL_CTRL_NAME, U.GENL_CTRL_VERSION, U.CTRL_ATTR_MAX, policy,
                     mcgrps=[U.GENL_CTRL_MCGRP])
        fam.add_op(Op(U.CTRL_CMD_GETFAMILY, 0, doit=self._ctrl_getfamily,
                      dumpit=self._ctrl_dumpfamily))
        return self.register(fam, U.GENL_ID_CTRL)

    def _ctrl_fill(self, family, pid, seq, flags, cmd):
        parts = [nla_string(U.CTRL_ATTR_FAMILY_NAME, family.name),
                 nla_u16(U.CTRL_ATTR_FAMILY_ID, family.id),
                 nla_u32(U.CTRL_ATTR_VERSION, family.version),
                 nla_u32(U.CTRL_ATTR_HDRSIZE, family.hdrsize),
                 nla_u32(U.CTRL_ATTR_MAXATTR, family.maxattr)]
        if family.ops:
            ops = [nla_nest(i + 1, nla_u32(U.CTRL_ATTR_OP_ID, op.cmd),
                            nla_u32(U.CTRL_ATTR_OP_FLAGS, op.ctrl_flags()))
                   for i, op in enumerate(family.ops.values())]
            parts.append(nla_nest(U.CTRL_ATTR_OPS, *ops))
        if family.mcgrp_names:
            grps = [nla_nest(i + 1, nla_u32(U.CTRL_ATTR_MCAST_GRP_ID, family.mcgrp_ids[n]),
                             nla_string(U.CTRL_ATTR_MCAST_GRP_NAME, n))
                    for i, n in enumerate(family.mcgrp_names)]
            parts.append(nla_nest(U.CTRL_ATTR_MCAST_GROUPS, *grps))
        return self.ctrl.message(cmd, flags, seq, pid, b"".join(parts))

    def _ctrl_getfamily(self, req):
        a = req.attrs
        family = None
        if U.CTRL_ATTR_FAMILY_ID in a:
            family = self.families.get(A.get_u16(a[U.CTRL_ATTR_FAMILY_ID]))
        elif U.CTRL_ATTR_FAMILY_NAME in a:
            family = self.by_name.get(A.get_string(a[U.CTRL_ATTR_FAMILY_NAME]))
        else:
            raise NetlinkError(errno.EINVAL, "family id or name required")
        if family is None:
            raise NetlinkError(errno.ENOENT, "generic netlink family not found")
        req.peer.send(self._ctrl_fill(family, req.portid, req.seq, 0, U.CTRL_CMD_NEWFAMILY))

    def _ctrl_dumpfamily(self, req):
        for family in list(self.families.values()):
            yield self._ctrl_fill(family, req.portid, req.seq, U.NLM_F_MULTI,
                                  U.CTRL_CMD_NEWFAMILY)


def pump_dump(peer, limit=None):
    """Send datagrams of ``peer``'s dump until it ends or the peer pushes back.

    ``peer.send`` queues what it cannot write at once and answers EAGAIN;
    the pump then stops, and the transport calls it again once the socket
    has drained.  At most ``limit`` datagrams go out when it is given, not
    counting the NLMSG_DONE of a dump whose messages have all gone (as
    netlink_dump() ends a dump that fits its first part at once).  Returns
    True when the dump is finished.
    """
    d = peer.dump
    while d is not None:
        if limit is not None and not d.only_done_left():
            if limit <= 0:
                return False
            limit -= 1
        data = d.next_datagram()
        if data is None:
            break
        err = peer.send(data, "dump")
        if d.done:
            break
        if err == errno.EAGAIN:
            return False
    peer.dump = None
    return True


def header_fields(msg):
    """(len, type, flags, seq, pid) of a message's nlmsghdr."""
    return NLMSGHDR.unpack_from(msg)
