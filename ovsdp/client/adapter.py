"""A socket adapter so netlink libraries written for AF_NETLINK can use ovsdp.

:class:`OvsdpNetlinkSocket` is a connected control socket that presents
itself like a netlink datagram socket: ``type`` is SOCK_DGRAM (asyncio's
datagram transport insists), ``bind((pid, groups))`` joins the multicast
groups of the ``groups`` bitmap, ``setsockopt(SOL_NETLINK, ...)`` becomes the
ovsdp socket-option message, ``recvfrom``/``sendto`` ignore addresses.

Use it with pyroute2 0.9's ``use_socket=``::

    from pyroute2.netlink.generic import GenericNetlinkSocket
    sock = GenericNetlinkSocket(use_socket=OvsdpNetlinkSocket())
    sock.bind("ovs_datapath", ovs_datapath_msg)
"""

import errno
import os
import socket
import struct

from .. import uapi as U
from ..netlink.message import build
from .netlink import default_socket_path, overrun_error


class OvsdpNetlinkSocket(socket.socket):
    def __init__(self, path=None):
        super().__init__(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.path = default_socket_path(path)
        try:
            self.connect(self.path)
        except PermissionError:         # not ours to change: the read-only socket
            self.connect(self.path + U.OVSDP_READ_ONLY_SUFFIX)
        self._seq = 0x7F000000
        self.portid = 0              # known once bound with a port id

    @property
    def type(self):
        return socket.SOCK_DGRAM

    def _sockopt(self, optname, value):
        """Send the socket-option message; errors come back as NLMSG_ERROR."""
        self._seq += 1
        payload = U.OVSDP_SOCKOPT.pack(U.SOL_NETLINK, optname) + struct.pack("=I", value)
        self.send(build(U.OVSDP_MSG_SOCKOPT, U.NLM_F_REQUEST, self._seq, 0, payload))

    def bind(self, address):
        """Netlink bind((pid, groups)): take port id ``pid`` (0: the daemon's choice).

        A library that computes its own port id (pyroute2: pid + n << 22)
        then uses the one the daemon knows it by; an id in use fails with
        EADDRINUSE, as on Linux, so the library tries its next one.
        """
        pid, groups = address
        if pid:
            self._bind_portid(pid)
        for bit in range(32):
            if groups & (1 << bit):
                self._sockopt(U.NETLINK_ADD_MEMBERSHIP, bit + 1)

    def _bind_portid(self, pid):
        """The bind option message, acked: its answer is read here."""
        self._seq += 1
        seq = self._seq
        payload = U.OVSDP_SOCKOPT.pack(U.SOL_NETLINK, U.OVSDP_SO_BIND_PORTID) + \
            struct.pack("=I", pid)
        timeout = self.gettimeout()
        super().settimeout(10)
        try:
            self.send(build(U.OVSDP_MSG_SOCKOPT, U.NLM_F_REQUEST | U.NLM_F_ACK, seq, 0, payload))
            while True:
                d = super().recv(1 << 16)
                if not d:
                    raise ConnectionResetError(errno.ECONNRESET, "the ovsdp daemon went away")
                mtype, _flags, rseq = struct.unpack_from("=HHI", d, 4)
                if mtype == U.NLMSG_ERROR and rseq == seq:
                    err = -struct.unpack_from("=i", d, 16)[0]
                    if err:
                        raise OSError(err, os.strerror(err))
                    self.portid = pid
                    return
        finally:
            super().settimeout(timeout)

    def setsockopt(self, level, optname, value, *rest):
        if level == U.SOL_NETLINK:
            if isinstance(value, (bytes, bytearray)):
                value = struct.unpack("=I", bytes(value)[:4])[0]
            if optname in (U.NETLINK_ADD_MEMBERSHIP, U.NETLINK_DROP_MEMBERSHIP,
                           U.NETLINK_EXT_ACK, U.NETLINK_CAP_ACK):
                self._sockopt(optname, int(value))
            return None
        if level == socket.SOL_SOCKET and optname in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            return super().setsockopt(level, optname, value)
        return None

    # The daemon's in-band NLMSG_OVERRUN becomes what a netlink socket whose
    # receive buffer overflowed gives: one recv failing with ENOBUFS.
    def recv(self, bufsize, flags=0):
        data = super().recv(bufsize, flags)
        _check_overrun(data)
        return data

    def recv_into(self, buf, nbytes=0, flags=0):
        n = super().recv_into(buf, nbytes, flags)
        _check_overrun(bytes(memoryview(buf)[:min(n, U.NLMSG_HDRLEN + 4)]))
        return n

    def recvfrom(self, bufsize, flags=0):
        return self.recv(bufsize, flags), (0, 0)

    def recvfrom_into(self, buf, nbytes=0, flags=0):
        return self.recv_into(buf, nbytes, flags), (0, 0)

    def sendto(self, data, *args):
        return self.send(data)

    def getsockname(self):
        return (self.portid, 0)


def _check_overrun(data):
    if len(data) >= U.NLMSG_HDRLEN and struct.unpack_from("=H", data, 4)[0] == U.NLMSG_OVERRUN:
        raise overrun_error(data)
