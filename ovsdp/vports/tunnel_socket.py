"""The raw sockets tunnel ports send and receive on, and the host facts
they need.

A raw socket receives a copy of every packet of its protocol, so each gets a
classic BPF filter (SO_ATTACH_FILTER) that keeps only its UDP port, or
nothing at all for a socket that only sends; receive buffers are made big
enough for the bursts between two turns of the event loop.
"""

import ctypes
import socket
import struct

from . import encap as E

SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
RCVBUF = 4 << 20                    # room for bursts between two turns of the loop


def _bpf(*insns):
    """SO_ATTACH_FILTER argument for classic BPF ``(code, jt, jf, k)`` tuples;
    returns (sock_fprog bytes, the buffer that must outlive the call)."""
    prog = b"".join(struct.pack("=HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(prog, len(prog))
    return struct.pack("@HP", len(insns), ctypes.addressof(buf)), buf


def _attach(sock, *insns):
    fprog, buf = _bpf(*insns)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    del buf


RET_ALL = (0x06, 0, 0, 0x40000)         # ret #262144: the whole packet
_RET_NONE = (0x06, 0, 0, 0)              # ret #0: drop


def udp_port_filter_v4(port):
    """Raw IPv4 socket (data from the IP header): UDP destination port == port."""
    return ((0xB1, 0, 0, 0),             # ldxb 4*([0]&0xf)
            (0x48, 0, 0, 2),             # ldh [x+2]
            (0x15, 0, 1, port),          # jeq #port
            RET_ALL, _RET_NONE)


def udp_port_filter_v6(port):
    """Raw IPv6 socket (data from the transport header): dst port == port."""
    return ((0x28, 0, 0, 2),             # ldh [2]
            (0x15, 0, 1, port),
            RET_ALL, _RET_NONE)


def raw_socket(family, proto, recv_filter=None):
    """A non-blocking raw socket; one only sending gets a drop-all filter
    (raw sockets receive a copy of every packet of their protocol)."""
    s = socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                      proto)
    try:
        _attach(s, *(recv_filter or (_RET_NONE,)))
    except OSError:
        s.close()
        raise
    try:
        while True:                     # what came before the filter
            s.recv(65536)
    except OSError:
        pass
    return s


def big_rcvbuf(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)


def addr_text(family, a):
    return socket.inet_ntop(family, a.to_bytes(4 if family == E.AF_INET else 16, "big"))


def addr_int(family, s):
    return int.from_bytes(socket.inet_pton(family, s), "big")


def ipv6_available():
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
        return True
    except OSError:
        return False


def local_port_range():
    """net.ipv4.ip_local_port_range (inet_get_local_port_range())."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999
