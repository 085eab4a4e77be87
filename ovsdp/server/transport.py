"""The control-socket transport: AF_UNIX SOCK_SEQPACKET carrying netlink.

Each accepted connection is a netlink "socket" of the kernel's: it gets a
port id (the peer process's pid for its first connection, then descending
ids from 0xFFFFF000 like netlink_autobind), which is carried in nlmsg_pid of
every reply.

Who may change things (docs/protocol.md, section 1.4).  Linux decides with
the credentials of whoever opened the netlink socket, and nothing later
widens them.  A process's capabilities cannot be captured at connect()
(only its pid, uid and gid, by SO_PEERCRED), and reading them later from
/proc races with an exec of a setuid program.  So the right comes from the
socket a client could open, which file permissions guard:

- the admin socket (the documented path) is mode 0600, or 0660 with
  ``group``: a connection there may change things if its uid at connect()
  is not 0 (it could open the socket: the owner or the group), or if it is
  root and holds CAP_NET_ADMIN when accepted (a root process cannot gain a
  capability its bounding set lacks by exec, so this opens no window);
- the read-only socket beside it (``<path>.ro``, mode 0666) takes anyone;
  its connections may look, never change.

The resource model (docs/protocol.md, sections 1.5 and 1.6):

- Output a connection cannot take right now is queued, up to
  ``OUTQ_BYTES`` beyond the socket's own buffer (and ``UPCALL_QUEUE_MAX``
  upcalls), each entry counted with an overhead as the kernel counts an
  skb's truesize; past that, replies, notifications and upcalls are
  dropped, as a full netlink receive buffer drops them, and the client is
  told in band with an NLMSG_OVERRUN message at the point of the loss.
- Dumps are never dropped, and are produced only as the client reads
  them: a part goes out while the client has at most a quarter of the
  socket's buffer unread (the point where the socket becomes writable
  again, so EPOLLOUT says when to go on), as netlink_dump() runs again only
  once the reader has made room.
- What a slice of work sends (replies, notifications, upcalls) is held
  until the slice ends, up to ``CORK_BYTES`` per connection, then sent in
  order, one datagram per message: a datagram of requests is answered in
  one burst, as the kernel has answered all of them by the time sendmsg()
  returns, and a reader that sleeps is woken once per burst.
- Each turn of the event loop does a bounded slice of work per connection
  (``SLICE_MESSAGES`` requests, ``SLICE_DUMP_PARTS`` dump datagrams,
  ``SLICE_NS`` of time), and all connections together at most ``TURN_NS``;
  a connection with more to do waits in line for its next slice with its
  socket unread, so no client holds up the others or the packet path.
"""

import collections
import errno
import fcntl
import logging
import os
import socket
import stat
import struct
import termios
import time

from .. import uapi as U
from ..netlink.genl import Peer, pump_dump
from ..netlink.message import build_overrun, next_message, well_framed

log = logging.getLogger(__name__)

RECV_BUF = 1 << 17
CAP_NET_ADMIN = 12
SNDBUF = 256 << 10               # the kernel doubles it; must take a 128 KiB echo
OUTQ_BYTES = 2 << 20             # queued bytes beyond which output is dropped
ENTRY_OVERHEAD = 160             # what a queued message costs besides its bytes
UPCALL_QUEUE_MAX = 4096          # queued upcalls per connection
SLICE_MESSAGES = 64              # requests handled per connection per turn
SLICE_DUMP_PARTS = 4             # dump datagrams sent per connection per turn
SLICE_NS = 250_000               # time one connection's slice may take
TURN_NS = 1_000_000              # time all connections together may take per turn
CORK_BYTES = 64 << 10           # output a slice holds per connection before sending it
AUTOBIND_START = 0xFFFFF000
_OVERRUN = object()              # the queue entry that becomes an NLMSG_OVERRUN
_OUTQ = struct.Struct("i")

_monotonic_ns = time.monotonic_ns


def peer_has_net_admin(pid):
    """Whether process ``pid`` holds CAP_NET_ADMIN in its effective set."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except (OSError, ValueError):
        pass
    return False


class Connection(Peer):
    """One client connection."""

    def __init__(self, server, sock, portid, pid, uid, net_admin, net=None):
        super().__init__(portid, net_admin, uid, pid, net)
        self.protocol = U.NETLINK_GENERIC    # or NETLINK_NETFILTER (OVSDP_SO_PROTOCOL)
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        try:
            self.dump_room = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 4
        except OSError:
            self.dump_room = 0
        self.outq = collections.deque()
        self.outq_bytes = 0
        self.cork = []               # output of the running slice, sent when it ends
        self.cork_bytes = 0
        self.upcalls_queued = 0
        self.lost = 0                # messages dropped since the last overrun notice
        self.overrun_queued = False
        self.overruns = 0            # messages dropped in all
        self.closed = False
        self.close_when_flushed = False
        self.rx = None               # a datagram being handled, a slice at a time
        self.rx_off = 0
        self.rx_any = False
        self.scheduled = False       # in the server's backlog
        self.reading = True          # the reader is registered (not paused)

    # ---------------------------------------------------------------- output
    def send(self, data, kind="reply"):
        if self.closed:
            return errno.ECONNREFUSED
        srv = self.server
        if srv.corked:
            if self.cork and (kind == "dump" or self.cork_bytes + len(data) > CORK_BYTES):
                self.uncork()
            if kind != "dump" and not self.outq:
                # Held until the slice that produced it ends (Server.uncork).
                if not self.cork:
                    srv.corked_conns.append(self)
                self.cork.append((data, kind))
                self.cork_bytes += len(data)
                return 0
        return self._send(data, kind)

    def uncork(self):
        """Send what a slice produced for this connection, in order; what the
        socket cannot take now joins the queue (it was accepted already)."""
        held = self.cork
        self.cork = []
        self.cork_bytes = 0
        for i, (data, kind) in enumerate(held):
            if self.outq or self.closed:
                if self.closed:
                    return
                for data, kind in held[i:]:
                    self._enqueue(data, kind)
                return
            self._send(data, kind)

    def _send(self, data, kind):
        if not self.outq:
            try:
                self.sock.send(data)
                return 0
            except BlockingIOError:
                pass
            except OSError as e:
                log.debug("connection %d: send failed: %s", self.portid, e)
                self.server.close(self)
                return errno.ECONNREFUSED
        if kind == "dump":
            pass                     # a dump waits behind its queued part: never dropped
        elif self.outq_bytes >= OUTQ_BYTES or (kind == "upcall" and
                                               self.upcalls_queued >= UPCALL_QUEUE_MAX):
            self._overrun()
            return errno.ENOBUFS
        self._enqueue(data, kind)
        return errno.EAGAIN if kind == "dump" else 0

    def _enqueue(self, data, kind):
        if kind == "upcall":
            self.upcalls_queued += 1
        self.outq.append((data, kind))
        self.outq_bytes += len(data) + ENTRY_OVERHEAD
        if len(self.outq) == 1:
            self.server.loop.add_writer(self.fd, self._writable)

    def _overrun(self):
        """A message was dropped: count it, and tell the client where."""
        self.lost += 1
        self.overruns += 1
        if not self.overrun_queued:
            self.overrun_queued = True
            self.outq.append((_OVERRUN, "overrun"))

    def _writable(self):
        q = self.outq
        send = self.sock.send
        while q:
            data, kind = q[0]
            if data is _OVERRUN:
                data = build_overrun(self.portid, self.lost)
            try:
                send(data)
            except BlockingIOError:
                return
            except OSError as e:
                log.debug("connection %d: send failed: %s", self.portid, e)
                self.server.close(self)
                return
            q.popleft()
            if kind == "overrun":
                self.lost = 0
                self.overrun_queued = False
                continue
            self.outq_bytes -= len(data) + ENTRY_OVERHEAD
            if kind == "upcall":
                self.upcalls_queued -= 1
        self.server.loop.remove_writer(self.fd)
        if self.dump is not None:
            self.server.schedule(self)
        else:
            self._close_if_through()

    def bind(self, portid):
        self.server.module.rebind(self, portid)

    def start_dump(self):
        """netlink_dump_start(): the first part now, the rest in later turns."""
        if not self.outq:
            pump_dump(self, 1)
        if self._dump_can_go():
            self.server.schedule(self)

    def _dump_can_go(self):
        """Whether the dump may send a part now; if it must wait, wait for EPOLLOUT.

        A part goes out while the client has at most ``dump_room`` bytes
        unread (SIOCOUTQ), a quarter of the socket's buffer: above that the
        socket is not writable, so EPOLLOUT comes when the client has read
        enough.  A client that never reads so costs one socket's worth.
        """
        if self.dump is None or self.outq:
            return False             # nothing to do, or _writable goes on once drained
        try:
            unread = _OUTQ.unpack(fcntl.ioctl(self.fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except OSError:
            return True
        if unread <= self.dump_room:
            return True
        self.server.loop.add_writer(self.fd, self._writable)
        return False

    # ----------------------------------------------------------------- input
    def _readable(self):
        srv = self.server
        if srv.backlog or not srv.budget_left():
            srv.schedule(self)       # wait in line
        elif self.work(read=True):
            srv.schedule(self)

    def work(self, read=False):
        """One turn's slice: handle requests, send dump parts, maybe read.

        Returns True when work is left that waits for nothing but a turn.
        """
        start = _monotonic_ns()
        deadline = start + SLICE_NS
        messages = SLICE_MESSAGES
        parts = SLICE_DUMP_PARTS
        handle = self.server.module.handle
        self.server.corked = True
        try:
            parts = self._slice(read, deadline, messages, parts, handle)
        finally:
            self.server.uncork()
        self.server.charge(_monotonic_ns() - start)
        return self._after_slice(parts)

    def _slice(self, read, deadline, messages, parts, handle):
        """The slice's work; returns the dump parts it had left."""
        while not self.closed:
            if self.rx is not None:
                data = self.rx
                off = self.rx_off
                while True:
                    m = next_message(data, off)
                    if m is None:
                        break
                    if not messages:             # out of budget: the rest next turn
                        self.rx_off = off
                        break
                    hdr, msg, off = m
                    self.rx_any = True
                    messages -= 1
                    handle(self, hdr, msg)
                    if self.closed or _monotonic_ns() > deadline:
                        messages = 0
                if m is not None:
                    break
                self.rx = None
                if not well_framed(data, off, self.rx_any):
                    log.info("connection %d sent a datagram that is not netlink; closing",
                             self.portid)
                    self._finish()
                    read = False
            elif parts and self._dump_can_go():
                parts -= 1
                pump_dump(self, 1)
                if _monotonic_ns() > deadline:
                    parts = messages = 0
            elif read and messages and not self.close_when_flushed:
                if not self._recv():
                    read = False
            else:
                break
        return parts

    def _after_slice(self, parts):
        """What is left once the slice's output went: True to be served again."""
        if self.close_when_flushed:
            self._close_if_through()
            return not self.closed and parts == 0 and self._dump_can_go()
        if self.closed:
            return False
        if self.rx is not None:
            if self.reading:
                self.server.loop.pause_reader(self.fd)
                self.reading = False
            return True
        if not self.reading:
            self.server.loop.resume_reader(self.fd)
            self.reading = True
        return parts == 0 and self._dump_can_go()

    def _recv(self):
        """Read one datagram into ``rx``; False when there is none."""
        buf = self.server.rbuf
        try:
            n = self.sock.recv_into(buf, len(buf), socket.MSG_TRUNC)
        except BlockingIOError:
            return False
        except OSError as e:
            log.debug("connection %d: recv failed: %s", self.portid, e)
            self.server.close(self)
            return False
        if n == 0:
            self.server.close(self)
            return False
        if n > len(buf):
            log.warning("connection %d: %d-byte datagram is too large; closing",
                        self.portid, n)
            self.server.close(self)
            return False
        self.rx = bytes(buf[:n])
        self.rx_off = 0
        self.rx_any = False
        return True

    def _finish(self):
        """Read no more; close once a running dump and the queue are through.

        The messages in front of a bad part of a datagram are answered in
        full first, a dump they started included.
        """
        self.server.loop.remove_reader(self.fd)
        self.reading = False
        self.close_when_flushed = True
        self._close_if_through()

    def _close_if_through(self):
        if self.close_when_flushed and not self.outq and not self.cork and self.dump is None:
            # What the client sent after the bad datagram is dropped unread:
            # closing with it queued would make the client's next recv fail
            # with ECONNRESET ahead of the answers it has not read yet.
            for _ in range(1024):
                try:
                    self.sock.recv(1, socket.MSG_DONTWAIT)
                except OSError:
                    break
            self.server.close(self)


def read_only_path(path):
    """The read-only socket that goes with admin socket ``path``."""
    return path + U.OVSDP_READ_ONLY_SUFFIX


class Server:
    """Accepts connections on the two control sockets and feeds them to the module."""

    def __init__(self, module, loop, path, group=None, namespaces=None):
        self.module = module
        self.loop = loop
        self.namespaces = namespaces         # netns.Namespaces, or all clients in init_net
        self.path = path
        self.ro_path = read_only_path(path)
        self.rbuf = bytearray(RECV_BUF)
        self.conns = {}
        self.backlog = collections.deque()   # connections with work left for a turn
        # While a slice runs, what it sends (replies, notifications, upcalls)
        # is held and sent when it ends: a datagram of requests is answered
        # in one burst, as the kernel has answered them all by the time
        # sendmsg() returns, and a reader that sleeps is woken once per
        # burst rather than once per message.
        self.corked = False
        self.corked_conns = []
        self._serving = False
        self._turn = -1
        self._spent = 0                      # ns of connection work in this turn
        self._next_autobind = AUTOBIND_START
        gid = _group_id(group) if group is not None else None
        self.sock = self._listen(path, 0o600 if gid is None else 0o660, gid)
        try:
            self.ro_sock = self._listen(self.ro_path, 0o666)
        except OSError:
            self.sock.close()
            os.unlink(path)
            raise
        loop.add_reader(self.sock.fileno(), self._accept, self.sock, True)
        loop.add_reader(self.ro_sock.fileno(), self._accept, self.ro_sock, False)

    @staticmethod
    def _listen(path, mode, gid=None):
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)
        if os.path.exists(path):
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)      # stale: nobody listens
            else:
                raise OSError(errno.EADDRINUSE, f"an ovsdp daemon already serves {path}")
            finally:
                probe.close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        s.bind(path)
        # nobody can connect before listen(), so the mode is in place first
        if gid is not None:
            os.chown(path, -1, gid)
        os.chmod(path, mode)
        s.listen(1024)
        s.setblocking(False)
        return s

    def _portid(self, pid, net):
        used = net.peers
        if pid and pid not in used:
            return pid
        while True:
            p = self._next_autobind
            self._next_autobind -= 1
            if self._next_autobind <= 0x80000000:
                self._next_autobind = AUTOBIND_START
            if p not in used:
                return p

    def _accept(self, lsock, admin_socket):
        for _ in range(64):
            try:
                s, _ = lsock.accept()
            except BlockingIOError:
                return
            except OSError as e:
                log.warning("accept failed: %s", e)
                return
            s.setblocking(False)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
            except OSError:
                pass
            creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid, uid, _gid = struct.unpack("3i", creds)
            net_admin = admin_socket and (uid != 0 or peer_has_net_admin(pid))
            net = (self.namespaces.of_pid(pid) if self.namespaces is not None
                   else self.module.init_net)
            conn = Connection(self, s, self._portid(pid, net), pid, uid, net_admin, net)
            self.conns[conn.fd] = conn
            self.module.add_peer(conn)
            self.loop.add_reader(conn.fd, conn._readable)
            log.debug("connection from pid %d uid %d in %s: port id %d%s", pid, uid, net.name,
                      conn.portid, " (CAP_NET_ADMIN)" if conn.net_admin else "")

    def uncork(self):
        """End of a slice: send what it held, connection by connection."""
        self.corked = False
        conns = self.corked_conns
        if conns:
            self.corked_conns = []
            for conn in conns:
                conn.uncork()

    def budget_left(self):
        """Whether this turn of the loop has time left for connections."""
        if self.loop.turn != self._turn:
            self._turn = self.loop.turn
            self._spent = 0
        return self._spent < TURN_NS

    def charge(self, ns):
        """Count a slice's time against this turn (budget_left() began the turn)."""
        self._spent += ns

    def schedule(self, conn):
        """Put ``conn`` in line for a slice (this turn if there is time, else later)."""
        if conn.scheduled or conn.closed:
            return
        conn.scheduled = True
        self.backlog.append(conn)
        if not self._serving:
            self._serving = True
            self.loop.call_soon(self._serve)

    def _serve(self):
        """Slices for the connections in line, round robin, within the turn's time."""
        self._serving = False
        backlog = self.backlog
        for _ in range(len(backlog)):
            if not self.budget_left():
                break
            conn = backlog.popleft()
            conn.scheduled = False
            if not conn.closed and conn.work(read=True):
                self.schedule(conn)
        if backlog and not self._serving:
            self._serving = True
            self.loop.call_soon(self._serve)

    def close(self, conn):
        if conn.closed:
            return
        conn.closed = True
        self.loop.remove_reader(conn.fd)
        self.loop.remove_writer(conn.fd)
        self.conns.pop(conn.fd, None)
        self.module.remove_peer(conn)
        conn.outq.clear()
        conn.outq_bytes = 0
        conn.cork = []
        conn.cork_bytes = 0
        conn.rx = None
        try:
            conn.sock.close()
        except OSError:
            pass

    def shutdown(self):
        for conn in list(self.conns.values()):
            self.close(conn)
        for lsock, path in ((self.sock, self.path), (self.ro_sock, self.ro_path)):
            self.loop.remove_reader(lsock.fileno())
            lsock.close()
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def _group_id(group):
    """A group name or number, as ``--group`` takes it."""
    import grp
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if str(group).isdigit():
            return int(group)
        raise OSError(errno.EINVAL, f"no group {group!r}") from None
