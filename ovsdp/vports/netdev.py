"""The netdev vport: an existing Linux interface attached to the datapath.

vport-netdev.c hooks the device's receive path (netdev_frame_hook) so every
frame it receives enters the datapath, and transmits with dev_queue_xmit.
ovsdp does the same from userspace with an AF_PACKET socket bound to the
device, in promiscuous mode, ignoring its own transmissions.
"""

import errno
import logging
import socket

from .. import uapi as U
from ..datapath.vport import Vport, VportOps
from ..netlink.attr import NetlinkError
from . import netdev_util

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_IGNORE_OUTGOING = 23
READ_BATCH = 64


class NetdevVport(Vport):
    sock = None
    loop = None

    def send(self, packet):
        s = self.sock
        if s is None:
            self.tx_dropped += 1
            return
        try:
            s.send(packet)
        except OSError as e:
            if e.errno == errno.EMSGSIZE:
                self.tx_errors += 1
            else:
                self.tx_dropped += 1
            return
        self.tx_packets += 1
        self.tx_bytes += len(packet)

    def start(self, loop):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            s.bind((self.name, ETH_P_ALL))
            mreq = self.ifindex.to_bytes(4, "little") + PACKET_MR_PROMISC.to_bytes(2, "little") \
                + b"\0" * 10
            s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        self.sock = s
        self.loop = loop
        loop.add_reader(s.fileno(), self._readable)

    def _readable(self):
        recv = self.sock.recv
        frames = []
        for _ in range(READ_BATCH):
            try:
                frames.append(recv(65536))
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
                    self.loop.call_soon(self.dp.module.device_gone, self)
                    break
                log.warning("%s: receive failed: %s", self.name, e)
                break
        if frames:
            n = 0
            for f in frames:
                n += len(f)
            self.rx_packets += len(frames)
            self.rx_bytes += n
            self.dp.receive_batch(frames, self)

    def destroy(self):
        super().destroy()
        if self.sock is not None:
            if self.loop is not None:
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None


class NetdevOps(VportOps):
    type = U.OVS_VPORT_TYPE_NETDEV
    name = "netdev"

    def create(self, parms):
        module = self.module
        name = parms.name
        vport = NetdevVport(self, parms)     # ovs_vport_alloc: upcall pids checked first
        existing = module.vports_by_name.get(name)
        if existing is not None:
            if existing.type == U.OVS_VPORT_TYPE_INTERNAL:
                raise NetlinkError(errno.EINVAL, f"{name} is a datapath internal device")
            raise NetlinkError(errno.EBUSY, f"{name} is already attached to a datapath")
        ifindex = netdev_util.ifindex(name)
        if ifindex is None:
            raise NetlinkError(errno.ENODEV, f"no network device named {name}")
        try:
            flags = netdev_util.flags(name)
            hw = netdev_util.arphrd(name)
        except (OSError, ValueError):
            raise NetlinkError(errno.ENODEV, f"no network device named {name}") from None
        if flags & netdev_util.IFF_LOOPBACK or hw not in (netdev_util.ARPHRD_ETHER,
                                                          netdev_util.ARPHRD_NONE):
            raise NetlinkError(errno.EINVAL, f"{name} cannot be attached (loopback or not "
                               "Ethernet)")
        vport.ifindex = ifindex
        vport.mtu = netdev_util.mtu(name)
        vport.ethernet = hw == netdev_util.ARPHRD_ETHER
        return vport
