"""The internal vport: a host-visible device implemented by the datapath.

vport-internal_dev.c: what the host transmits on the device enters the
datapath (counted as the device's TX), what the datapath sends to the port
is delivered to the host stack (counted as the device's RX; dropped, with
rx_dropped, when the device is down).  Port 0 of every datapath is an
internal port named after the datapath.

With real devices (the daemon), the device is a TAP interface; in memory
(``Module(real_devices=False)``, for tests) the port keeps what it would
deliver to the host in :attr:`InternalVport.delivered`.
"""

import collections
import errno
import fcntl
import logging
import os
import struct

from .. import uapi as U
from ..datapath.vport import Vport, VportOps
from ..netlink.attr import NetlinkError
from . import netdev_util

log = logging.getLogger(__name__)

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
READ_BATCH = 64


class InternalVport(Vport):
    fd = -1
    loop = None

    def __init__(self, ops, parms):
        super().__init__(ops, parms)
        self.delivered = collections.deque(maxlen=4096)

    # datapath -> host: the device receives
    def send(self, packet):
        if self.fd < 0:
            self.rx_packets += 1
            self.rx_bytes += len(packet)
            self.delivered.append(bytes(packet))
            return
        try:
            os.write(self.fd, packet)
        except OSError as e:
            # EIO: the device is down; EAGAIN: its queue is full.
            self.rx_dropped += 1
            if e.errno not in (errno.EIO, errno.EAGAIN):
                log.warning("%s: write failed: %s", self.name, e)
            return
        self.rx_packets += 1
        self.rx_bytes += len(packet)

    # host -> datapath: the device transmits
    def host_transmit(self, frame):
        self.tx_packets += 1
        self.tx_bytes += len(frame)
        self.dp.receive(frame, self)

    def start(self, loop):
        if self.fd >= 0:
            self.loop = loop
            loop.add_reader(self.fd, self._readable)

    def _readable(self):
        fd = self.fd
        frames = []
        for _ in range(READ_BATCH):
            try:
                frames.append(os.read(fd, 65536))
            except BlockingIOError:
                break
            except OSError as e:
                log.warning("%s: read failed: %s", self.name, e)
                break
        if frames:
            n = 0
            for f in frames:
                n += len(f)
            self.tx_packets += len(frames)
            self.tx_bytes += n
            self.dp.receive_batch(frames, self)

    def destroy(self):
        super().destroy()
        if self.fd >= 0:
            if self.loop is not None:
                self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


class InternalOps(VportOps):
    type = U.OVS_VPORT_TYPE_INTERNAL
    name = "internal"

    def create(self, parms):
        module = self.module
        name = parms.name
        if name in module.vports_by_name:
            raise NetlinkError(errno.EEXIST, f"a port named {name} exists")
        vport = InternalVport(self, parms)
        if not module.real_devices:
            vport.ifindex = module.virtual_ifindex(parms.desired_ifindex)
            return vport
        if netdev_util.exists(name):
            raise NetlinkError(errno.EEXIST, f"a network device named {name} exists")
        if parms.desired_ifindex:
            raise NetlinkError(errno.EOPNOTSUPP,
                               "ovsdp cannot choose the ifindex of a TAP device")
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise NetlinkError(e.errno, f"cannot open /dev/net/tun: {e.strerror}") from None
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
        except OSError as e:
            os.close(fd)
            raise NetlinkError(e.errno, f"cannot create TAP device {name}: {e.strerror}") \
                from None
        vport.fd = fd
        vport.ifindex = netdev_util.ifindex(name) or 0
        vport.mtu = netdev_util.mtu(name)
        return vport
