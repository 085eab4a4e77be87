"""Facts about Linux network interfaces, read with ioctls on a socket.

Everything here answers for the network namespace the calling thread is in
(the socket it opens belongs to that namespace), never through /sys, whose
view is the namespace of whoever mounted it.
"""

import fcntl
import socket
import struct

IFF_LOOPBACK = 0x8
ARPHRD_ETHER = 1
ARPHRD_NONE = 0xFFFE
SIOCGIFFLAGS = 0x8913
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927
_IFREQ = struct.Struct("16s16s")      # struct ifreq: ifr_name, the union


def ifindex(name):
    """The interface's ifindex, or None when there is no such interface."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def _ifreq(request, name):
    """One SIOC* ioctl on ``name``; the 16 bytes of the ifreq union back."""
    raw = name.encode("utf-8", "surrogateescape")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        return _IFREQ.unpack(fcntl.ioctl(s.fileno(), request, _IFREQ.pack(raw, b"")))[1]


def flags(name):
    return struct.unpack_from("H", _ifreq(SIOCGIFFLAGS, name))[0]


def arphrd(name):
    """The device type (ifr_hwaddr.sa_family: ARPHRD_*)."""
    return struct.unpack_from("H", _ifreq(SIOCGIFHWADDR, name))[0]


def mtu(name, default=1500):
    try:
        return struct.unpack_from("i", _ifreq(SIOCGIFMTU, name))[0]
    except OSError:
        return default


def exists(name):
    return ifindex(name) is not None
