"""Facts about Linux network interfaces read without rtnetlink: /sys and ioctls."""

import fcntl
import os
import socket
import struct

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
ARPHRD_ETHER = 1
ARPHRD_NONE = 0xFFFE
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914


def ifindex(name):
    """The interface's ifindex, or None when there is no such interface."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def _sys(name, attr):
    with open(f"/sys/class/net/{name}/{attr}") as f:
        return f.read().strip()


def flags(name):
    return int(_sys(name, "flags"), 16)


def arphrd(name):
    return int(_sys(name, "type"))


def mtu(name, default=1500):
    try:
        return int(_sys(name, "mtu"))
    except (OSError, ValueError):
        return default


def is_up(name):
    try:
        return bool(flags(name) & IFF_UP)
    except (OSError, ValueError):
        return False


def set_up(name, up=True):
    """Bring an interface up or down (SIOCSIFFLAGS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        raw = name.encode("utf-8", "surrogateescape")
        cur = struct.unpack_from("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS,
                                                     struct.pack("16sH", raw, 0)))[1]
        new = (cur | IFF_UP) if up else (cur & ~IFF_UP)
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH", raw, new))


def exists(name):
    return os.path.exists(f"/sys/class/net/{name}")
