"""A generic netlink client over the ovsdp control socket.

:class:`NetlinkSocket` is what a netlink socket is to a Linux program: send
requests, read replies, acks, dumps and notifications.  Families are resolved
through nlctrl exactly as on Linux.  Errors raise ``OSError`` with the errno
and, when the daemon gave one, the extended-ack message.
"""

import errno
import itertools
import os
import select
import socket
import struct
import time

from .. import uapi as U
from ..netlink import attr as A
from ..netlink.attr import nla_string, nla_u16
from ..netlink.message import GENLMSGHDR, NLMSGHDR, Header, build, build_genl, parse_error, split


def default_socket_path(path=None):
    return path or os.environ.get("OVSDP_SOCKET") or U.OVSDP_DEFAULT_SOCKET


def connect(path):
    """A connected control socket: the admin socket, or else the read-only one.

    Who may not open the admin socket (its file mode says who may) gets
    the read-only socket beside it, where GETs and dumps work and changes
    are EPERM, as on Linux for a process without CAP_NET_ADMIN.
    """
    err = None
    for p in (path, path + U.OVSDP_READ_ONLY_SUFFIX):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            s.connect(p)
            return s
        except OSError as e:
            s.close()
            if err is None:
                err = e
            if e.errno != errno.EACCES:
                break
    raise OSError(err.errno, f"cannot connect to the ovsdp daemon at {path}: "
                             f"{err.strerror}") from None


def overrun_error(raw):
    """The daemon dropped messages to us (NLMSG_OVERRUN, docs/protocol.md 1.5):
    what a netlink socket with a full receive buffer gives, ENOBUFS once."""
    lost = struct.unpack_from("=I", raw, U.NLMSG_HDRLEN)[0] \
        if len(raw) >= U.NLMSG_HDRLEN + 4 else 0
    return OSError(errno.ENOBUFS, f"{os.strerror(errno.ENOBUFS)} ({lost} messages lost)")


def netlink_error(err, text=None):
    """An OSError for ``err`` with the extended-ack text appended."""
    msg = os.strerror(err)
    if text:
        msg = f"{msg} ({text})"
    e = OSError(err, msg)
    e.ext_ack = text
    return e


class Message:
    """A received generic netlink message, parsed one level."""

    __slots__ = ("hdr", "cmd", "version", "userhdr", "attrs", "raw")

    def __init__(self, hdr, raw, hdrsize):
        self.hdr = hdr
        self.raw = raw
        self.cmd, self.version, _ = GENLMSGHDR.unpack_from(raw, U.NLMSG_HDRLEN)
        base = U.NLMSG_HDRLEN + U.GENL_HDRLEN
        self.userhdr = raw[base:base + hdrsize]
        self.attrs = {}
        for atype, payload, _ in A.iter_attrs(raw[base + hdrsize:hdr.len]):
            self.attrs[atype & U.NLA_TYPE_MASK] = payload

    @property
    def dp_ifindex(self):
        return U.OVS_HEADER.unpack_from(self.userhdr)[0] if len(self.userhdr) >= 4 else 0

    def __repr__(self):
        return f"<Message type={self.hdr.type:#x} cmd={self.cmd} attrs={sorted(self.attrs)}>"


class FamilyInfo:
    def __init__(self, msg):
        a = msg.attrs
        self.name = A.get_string(a[U.CTRL_ATTR_FAMILY_NAME])
        self.id = A.get_u16(a[U.CTRL_ATTR_FAMILY_ID])
        self.version = A.get_u32(a[U.CTRL_ATTR_VERSION])
        self.hdrsize = A.get_u32(a[U.CTRL_ATTR_HDRSIZE])
        self.maxattr = A.get_u32(a[U.CTRL_ATTR_MAXATTR])
        self.ops = {}
        for _, op, _ in A.iter_attrs(a.get(U.CTRL_ATTR_OPS, b"")):
            o = {t & U.NLA_TYPE_MASK: p for t, p, _ in A.iter_attrs(op)}
            self.ops[A.get_u32(o[U.CTRL_ATTR_OP_ID])] = A.get_u32(o[U.CTRL_ATTR_OP_FLAGS])
        self.groups = {}
        for _, grp, _ in A.iter_attrs(a.get(U.CTRL_ATTR_MCAST_GROUPS, b"")):
            g = {t & U.NLA_TYPE_MASK: p for t, p, _ in A.iter_attrs(grp)}
            self.groups[A.get_string(g[U.CTRL_ATTR_MCAST_GRP_NAME])] = \
                A.get_u32(g[U.CTRL_ATTR_MCAST_GRP_ID])

    def __repr__(self):
        return f"<Family {self.name} id={self.id:#x} groups={self.groups}>"


class NetlinkSocket:
    """One connection to the daemon: a netlink socket with a port id."""

    def __init__(self, path=None, timeout=None, sock=None):
        self.path = default_socket_path(path)
        self.sock = connect(self.path) if sock is None else sock
        self.timeout = timeout
        self._seq = itertools.count(1)
        self.portid = None
        self.families = {}
        self.backlog = []            # messages that were not replies we waited for
        self._recv_size = 1 << 17

    # ------------------------------------------------------------- basics
    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_seq(self):
        return next(self._seq)

    def send(self, data):
        self.sock.send(data)

    def recv(self, timeout=-1):
        """One datagram as a list of (Header, bytes); [] on timeout."""
        t = self.timeout if timeout == -1 else timeout
        if t is not None:
            r, _, _ = select.select([self.sock], [], [], t)
            if not r:
                return []
        data = self.sock.recv(self._recv_size)
        if not data:
            raise ConnectionResetError(errno.ECONNRESET, "the ovsdp daemon closed the connection")
        msgs, _ = split(data)
        for h, raw in msgs:
            if self.portid is None and h.pid and h.type != U.NLMSG_DONE:
                self.portid = h.pid
            if h.type == U.NLMSG_OVERRUN:
                raise overrun_error(raw)
        return msgs

    # ---------------------------------------------------------- requests
    def request(self, mtype, flags, payload, hdrsize=0, dump=False):
        """Send one request and collect its answer.

        Returns the list of reply :class:`Message` objects.  Non-dump
        requests ask for an ack, so that the call knows when it is done.
        """
        seq = self.next_seq()
        flags |= U.NLM_F_REQUEST
        flags |= U.NLM_F_DUMP if dump else U.NLM_F_ACK
        self.send(build(mtype, flags, seq, 0, payload))
        return self.collect(seq, hdrsize, dump)

    def collect(self, seq, hdrsize=0, dump=False):
        out = []
        while True:
            msgs = self.recv()
            if not msgs:
                raise TimeoutError(errno.ETIMEDOUT, "no answer from the ovsdp daemon")
            for h, raw in msgs:
                if h.seq != seq or (self.portid is not None and h.pid not in (self.portid, 0)):
                    self.backlog.append((h, raw))
                    continue
                if h.type == U.NLMSG_ERROR:
                    err, text, _ = parse_error(raw)
                    if err:
                        raise netlink_error(err, text)
                    if not dump:
                        return out
                    continue
                if h.type == U.NLMSG_DONE:
                    err, text, _ = parse_error(raw)
                    if err:
                        raise netlink_error(err, text)
                    return out
                if h.type == U.NLMSG_NOOP:
                    continue
                out.append(Message(h, raw, hdrsize))

    def genl_request(self, family, cmd, body=b"", flags=0, dump=False, version=None):
        fam = self.family(family) if isinstance(family, str) else family
        seq = self.next_seq()
        flags |= U.NLM_F_REQUEST
        flags |= U.NLM_F_DUMP if dump else U.NLM_F_ACK
        self.send(build_genl(fam.id, cmd, fam.version if version is None else version, flags,
                             seq, 0, body))
        return self.collect(seq, fam.hdrsize, dump)

    # ----------------------------------------------------------- nlctrl
    def family(self, name):
        """Resolve a generic netlink family by name (CTRL_CMD_GETFAMILY)."""
        fam = self.families.get(name)
        if fam is None:
            body = nla_string(U.CTRL_ATTR_FAMILY_NAME, name)
            seq = self.next_seq()
            self.send(build_genl(U.GENL_ID_CTRL, U.CTRL_CMD_GETFAMILY, 1,
                                 U.NLM_F_REQUEST | U.NLM_F_ACK, seq, 0, body))
            msgs = self.collect(seq, 0)
            fam = self.families[name] = FamilyInfo(msgs[0])
        return fam

    def family_by_id(self, fid):
        seq = self.next_seq()
        self.send(build_genl(U.GENL_ID_CTRL, U.CTRL_CMD_GETFAMILY, 1,
                             U.NLM_F_REQUEST | U.NLM_F_ACK, seq, 0,
                             nla_u16(U.CTRL_ATTR_FAMILY_ID, fid)))
        return FamilyInfo(self.collect(seq, 0)[0])

    def all_families(self):
        seq = self.next_seq()
        self.send(build_genl(U.GENL_ID_CTRL, U.CTRL_CMD_GETFAMILY, 1,
                             U.NLM_F_REQUEST | U.NLM_F_DUMP, seq, 0, b""))
        return [FamilyInfo(m) for m in self.collect(seq, 0, dump=True)]

    # ------------------------------------------------------ socket options
    def setsockopt(self, optname, value, level=U.SOL_NETLINK):
        """setsockopt(SOL_NETLINK, ...) for the ovsdp transport (acked)."""
        payload = U.OVSDP_SOCKOPT.pack(level, optname) + struct.pack("=I", value)
        self.request(U.OVSDP_MSG_SOCKOPT, 0, payload)

    def add_membership(self, group_id):
        self.setsockopt(U.NETLINK_ADD_MEMBERSHIP, group_id)

    def drop_membership(self, group_id):
        self.setsockopt(U.NETLINK_DROP_MEMBERSHIP, group_id)

    def join(self, family, group=None):
        """Subscribe to a family's multicast group (its first one by default)."""
        fam = self.family(family)
        gid = fam.groups[group or next(iter(fam.groups))]
        self.add_membership(gid)
        return gid

    def learn_portid(self):
        """Ask for an ack just to learn this connection's port id."""
        if self.portid is None:
            self.request(U.NLMSG_NOOP, 0, b"")
        return self.portid

    # ------------------------------------------------------ notifications
    def take(self, match, timeout=-1):
        """The first unsolicited message (notification, upcall) that ``match``
        accepts, or None after ``timeout`` seconds.

        Messages that do not match stay queued for a later call.
        """
        t = self.timeout if timeout == -1 else timeout
        deadline = None if t is None else time.monotonic() + t
        scanned = 0
        while True:
            for i in range(scanned, len(self.backlog)):
                h, raw = self.backlog[i]
                if match(h, raw):
                    del self.backlog[i]
                    return h, raw
            scanned = len(self.backlog)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            msgs = self.recv(left)
            if not msgs:
                return None
            self.backlog.extend(msgs)


def parse_header(raw):
    return Header(*NLMSGHDR.unpack_from(raw))
