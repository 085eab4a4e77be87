"""A raw client connection to the daemon, and what one input's answers must look like."""

import collections
import errno
import select
import socket
import struct
import time

from ovsdp import uapi as U
from ovsdp.netlink.message import build, parse_error, split

from .consts import MAX_DGRAM, PING_SEQ
from .wire import join_msgs, sockopt_msg


class Result:
    """What came back for one input: the answers, and whether the connection closed."""

    def __init__(self):
        self.datagrams = []
        self.msgs = []            # (Header, raw) in arrival order, without the pong
        self.closed = False
        self.timed_out = False
        self.malformed = []
        self.elapsed = 0.0

    def terminals(self):
        """{seq: [(type, errno, text, offset)]} of NLMSG_ERROR and NLMSG_DONE."""
        out = collections.defaultdict(list)
        for h, raw in self.msgs:
            if h.type in (U.NLMSG_ERROR, U.NLMSG_DONE) and len(raw) >= 20:
                try:
                    err, text, off = parse_error(raw)
                except (struct.error, UnicodeDecodeError):
                    err, text, off = None, None, None
                out[h.seq].append((h.type, err, text, off))
        return out

    def ack(self, seq):
        """(errno, text, offset) of the answer to request ``seq``, or None."""
        t = self.terminals().get(seq)
        return t[0][1:] if t else None


def ping_datagram(seq):
    """Re-enable extended acks and full echoes, then ask for a pong."""
    return join_msgs([sockopt_msg(seq, U.NETLINK_EXT_ACK, 1),
                      sockopt_msg(seq, U.NETLINK_CAP_ACK, 0),
                      build(U.NLMSG_NOOP, U.NLM_F_REQUEST | U.NLM_F_ACK, seq, 0, b"")])


def expectations(datagram):
    """What a well-behaved daemon answers to ``datagram`` (docs/protocol.md 1.2, 3.2).

    Returns (well_framed, {seq: (min, max)} terminal counts).
    """
    if not datagram or len(datagram) > MAX_DGRAM:
        return False, {}
    msgs, consumed = split(datagram)
    framed = bool(msgs) and len(datagram) - consumed < U.NLMSG_HDRLEN
    exp = {}
    for h, _raw in msgs:
        lo, hi = exp.get(h.seq, (0, 0))
        must = bool(h.flags & U.NLM_F_ACK) or (
            h.flags & U.NLM_F_REQUEST and h.type >= U.NLMSG_MIN_TYPE
            and (h.flags & U.NLM_F_DUMP) == U.NLM_F_DUMP)
        exp[h.seq] = (lo + must, hi + 1)
    return framed, exp


class Conn:
    """A raw client connection (one netlink socket of the daemon's)."""

    _pings = 0

    def __init__(self, path, timeout=10.0):
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
            except OSError:
                pass
        self.sock.connect(path)
        self.closed = False
        self.portid = None
        self.backlog = []

    def peer_pid(self):
        creds = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        return struct.unpack("3i", creds)[0]

    def close(self):
        self.closed = True
        self.sock.close()

    def send(self, data):
        try:
            self.sock.send(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ConnectionRefusedError):
            self.closed = True
            return False

    def recv(self, timeout):
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return None
        try:
            return self.sock.recv(1 << 18)
        except (ConnectionResetError, BrokenPipeError):
            return b""

    def transact(self, datagram, timeout=None):
        """Send ``datagram`` and a ping; read until the pong, pending dumps and EOF."""
        timeout = self.timeout if timeout is None else timeout
        res = Result()
        t0 = time.monotonic()
        Conn._pings = (Conn._pings + 1) & 0xFFFFFF
        pseq = PING_SEQ + Conn._pings
        framed, exp = expectations(datagram)
        if self.send(datagram):
            self.send(ping_datagram(pseq))
        deadline = t0 + timeout
        got_pong = False
        seen = collections.Counter()
        while True:
            if got_pong and all(seen[s] >= lo for s, (lo, _) in exp.items()):
                break
            d = self.recv(deadline - time.monotonic())
            if d is None:
                res.timed_out = True
                break
            if not d:
                res.closed = True
                self.closed = True
                break
            res.datagrams.append(d)
            msgs, consumed = split(d)
            if consumed != len(d):
                res.malformed.append(d)
            for h, raw in msgs:
                if h.seq == pseq and h.type in (U.NLMSG_ERROR, U.NLMSG_DONE):
                    inner = struct.unpack_from("=H", raw, 24)[0] if len(raw) >= 26 else None
                    if h.type == U.NLMSG_ERROR and inner == U.NLMSG_NOOP:
                        got_pong = True
                        if self.portid is None:
                            self.portid = h.pid
                    continue
                if h.type in (U.NLMSG_ERROR, U.NLMSG_DONE):
                    seen[h.seq] += 1
                    if self.portid is None and h.type == U.NLMSG_ERROR:
                        self.portid = h.pid
                res.msgs.append((h, raw))
        res.got_pong = got_pong
        res.framed = framed
        res.expected = exp
        res.elapsed = time.monotonic() - t0
        return res


def new_conn(path, timeout):
    """A connection that has answered a ping (so its port id is known)."""
    c = Conn(path, timeout)
    res = c.transact(build(U.NLMSG_NOOP, U.NLM_F_REQUEST, 1, 0, b""))
    if not res.got_pong:
        raise OSError(errno.ETIMEDOUT, "no pong from the daemon")
    return c
