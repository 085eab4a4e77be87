"""The control-socket transport: AF_UNIX SOCK_SEQPACKET carrying netlink.

Each accepted connection is a netlink "socket" of the kernel's: it gets a
port id (the peer process's pid for its first connection, then descending
ids from 0xFFFFF000 like netlink_autobind), which is carried in nlmsg_pid of
every reply.  Credentials come from SO_PEERCRED; CAP_NET_ADMIN is read from
the peer's effective capabilities when it connects, the way a netlink
socket's opener credentials are checked.

Output to a connection that cannot take it right now is queued (and the
connection watched for EPOLLOUT); replies and dumps always queue, while
notifications and upcalls beyond a bound are dropped (ENOBUFS), so a slow
client costs lost upcalls, not memory.
"""

import collections
import errno
import logging
import os
import socket
import stat
import struct

from ..netlink.genl import Peer, pump_dump

log = logging.getLogger(__name__)

RECV_BUF = 1 << 17
CAP_NET_ADMIN = 12
UPCALL_QUEUE_MAX = 4096          # queued upcalls per connection
NOTIFY_QUEUE_BYTES = 8 << 20     # queued bytes beyond which notifications drop
SNDBUF = 4 << 20
AUTOBIND_START = 0xFFFFF000


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

    def __init__(self, server, sock, portid, pid, uid, net_admin):
        super().__init__(portid, net_admin, uid, pid)
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.outq = collections.deque()
        self.outq_bytes = 0
        self.upcalls_queued = 0
        self.closed = False
        self.close_when_flushed = False
        self.overruns = 0

    def send(self, data, kind="reply"):
        if self.closed:
            return errno.ECONNREFUSED
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
        if kind == "upcall":
            if self.upcalls_queued >= UPCALL_QUEUE_MAX:
                self.overruns += 1
                return errno.ENOBUFS
            self.upcalls_queued += 1
        elif kind == "notify" and self.outq_bytes > NOTIFY_QUEUE_BYTES:
            self.overruns += 1
            return errno.ENOBUFS
        self.outq.append((data, kind))
        self.outq_bytes += len(data)
        if len(self.outq) == 1:
            self.server.loop.add_writer(self.fd, self._writable)
        return errno.EAGAIN if kind == "dump" else 0

    def _writable(self):
        q = self.outq
        send = self.sock.send
        while q:
            data, kind = q[0]
            try:
                send(data)
            except BlockingIOError:
                return
            except OSError as e:
                log.debug("connection %d: send failed: %s", self.portid, e)
                self.server.close(self)
                return
            q.popleft()
            self.outq_bytes -= len(data)
            if kind == "upcall":
                self.upcalls_queued -= 1
        self.server.loop.remove_writer(self.fd)
        if self.dump is not None:
            pump_dump(self)
        if self.close_when_flushed and not self.outq:
            self.server.close(self)

    def _readable(self):
        buf = self.server.rbuf
        for _ in range(64):
            try:
                n = self.sock.recv_into(buf, len(buf), socket.MSG_TRUNC)
            except BlockingIOError:
                return
            except OSError as e:
                log.debug("connection %d: recv failed: %s", self.portid, e)
                self.server.close(self)
                return
            if n == 0:
                self.server.close(self)
                return
            if n > len(buf):
                log.warning("connection %d: %d-byte datagram is too large; closing",
                            self.portid, n)
                self.server.close(self)
                return
            if not self.server.module.receive(self, bytes(buf[:n])):
                log.info("connection %d sent a datagram that is not netlink; closing",
                         self.portid)
                self._finish()
                return
            if self.closed or self.close_when_flushed:
                return

    def _finish(self):
        """Close once what is queued has been written."""
        self.server.loop.remove_reader(self.fd)
        if self.outq:
            self.close_when_flushed = True
        else:
            self.server.close(self)


class Server:
    """Accepts connections on the control socket and feeds them to the module."""

    def __init__(self, module, loop, path):
        self.module = module
        self.loop = loop
        self.path = path
        self.rbuf = bytearray(RECV_BUF)
        self.conns = {}
        self._next_autobind = AUTOBIND_START
        self.sock = self._listen(path)
        loop.add_reader(self.sock.fileno(), self._accept)

    @staticmethod
    def _listen(path):
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
        os.chmod(path, 0o666)       # anyone may connect and look; changes need CAP_NET_ADMIN
        s.listen(1024)
        s.setblocking(False)
        return s

    def _portid(self, pid):
        used = self.module.peers
        if pid and pid not in used:
            return pid
        while True:
            p = self._next_autobind
            self._next_autobind -= 1
            if self._next_autobind <= 0x80000000:
                self._next_autobind = AUTOBIND_START
            if p not in used:
                return p

    def _accept(self):
        for _ in range(64):
            try:
                s, _ = self.sock.accept()
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
            conn = Connection(self, s, self._portid(pid), pid, uid, peer_has_net_admin(pid))
            self.conns[conn.fd] = conn
            self.module.add_peer(conn)
            self.loop.add_reader(conn.fd, conn._readable)
            log.debug("connection from pid %d uid %d: port id %d%s", pid, uid, conn.portid,
                      " (CAP_NET_ADMIN)" if conn.net_admin else "")

    def close(self, conn):
        if conn.closed:
            return
        conn.closed = True
        self.loop.remove_reader(conn.fd)
        self.loop.remove_writer(conn.fd)
        self.conns.pop(conn.fd, None)
        self.module.remove_peer(conn)
        conn.outq.clear()
        try:
            conn.sock.close()
        except OSError:
            pass

    def shutdown(self):
        for conn in list(self.conns.values()):
            self.close(conn)
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
