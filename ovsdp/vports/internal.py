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
from ..datapath.conntrack import host_track
from ..datapath.offload import VNET_HDR_LEN, ZERO_VNET
from ..datapath.vport import Vport, VportOps
from ..netlink.attr import NetlinkError
from . import netdev_util

log = logging.getLogger(__name__)

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
READ_BATCH = 64


class InternalVport(Vport):
    fd = -1
    loop = None

    def __init__(self, ops, parms):
        super().__init__(ops, parms)
        self.delivered = collections.deque(maxlen=4096)

    # datapath -> host: the device receives
    def send(self, packet):
        if self.in_dp_netns:
            host_track(self.dp.conntrack, packet)       # the host's PREROUTING and INPUT
        if self.fd < 0:
            self.rx_packets += 1
            self.rx_bytes += len(packet)
            self.delivered.append(bytes(packet))
            return
        self._write(ZERO_VNET + packet, len(packet))

    def send_vnet(self, data, vnet):
        if self.in_dp_netns:
            host_track(self.dp.conntrack, data)
        if len(data) < 4096:
            self._write(vnet + data, len(data))
        else:
            self._writev((vnet, data), len(data))

    def _write(self, buf, n):
        try:
            os.write(self.fd, buf)
        except OSError as e:
            self._drop(e)
            return
        self.rx_packets += 1
        self.rx_bytes += n

    def _writev(self, bufs, n):
        try:
            os.writev(self.fd, bufs)
        except OSError as e:
            self._drop(e)
            return
        self.rx_packets += 1
        self.rx_bytes += n

    def _drop(self, e):
        # EIO: the device is down; EAGAIN: its queue is full.
        self.rx_dropped += 1
        if e.errno not in (errno.EIO, errno.EAGAIN):
            log.warning("%s: write failed: %s", self.name, e)

    # host -> datapath: the device transmits
    def start(self, loop):
        if self.fd >= 0:
            self.loop = loop
            loop.add_reader(self.fd, self._readable)

    def _readable(self):
        fd = self.fd
        frames = []
        vnets = None
        nbytes = 0
        for _ in range(READ_BATCH):
            try:
                buf = os.read(fd, 65600)
            except BlockingIOError:
                break
            except OSError as e:
                log.warning("%s: read failed: %s", self.name, e)
                break
            vnet = buf[:VNET_HDR_LEN]
            data = buf[VNET_HDR_LEN:]
            nbytes += len(data)
            frames.append(data)
            if vnet != ZERO_VNET:
                if vnets is None:
                    vnets = [None] * (len(frames) - 1)
                vnets.append(vnet)
            elif vnets is not None:
                vnets.append(None)
        if frames:
            self.tx_packets += len(frames)
            self.tx_bytes += nbytes
            self.dp.receive_local(frames, self, vnets)
            if len(frames) == READ_BATCH:
                self.loop.call_soon(self._readable)

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
        if name in parms.dp.net.vports_by_name:
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
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode("utf-8", "surrogateescape"),
                                                   IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
            # the host may hand over frames with partial checksums and TSO
            fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)
        except OSError as e:
            os.close(fd)
            raise NetlinkError(e.errno, f"cannot create TAP device {name}: {e.strerror}") \
                from None
        vport.fd = fd
        vport.vnet_ok = True
        vport.ifindex = netdev_util.ifindex(name) or 0
        vport.mtu = netdev_util.mtu(name)
        return vport
