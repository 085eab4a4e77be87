"""Notice Linux devices vanishing under netdev vports (dp_notify.c's role).

The kernel datapath hears NETDEV_UNREGISTER through a netdevice notifier
and detaches the port.  ovsdp listens to the rtnetlink link group instead:
an RTM_DELLINK (sent when a device is deleted or moved to another network
namespace) for the ifindex of a netdev vport detaches that port, and the
``ovs_vport`` multicast group hears an OVS_VPORT_CMD_DEL for it
(:meth:`Module.device_gone`).  When the kernel dropped notifications (the
socket overran), every netdev port is checked by name and ifindex instead.

rtnetlink speaks for one network namespace, so there is one watch per
namespace that has datapaths (``net``), its socket made in that namespace.
"""

import errno
import logging
import socket
import struct

from .. import uapi as U
from . import netdev_util

log = logging.getLogger(__name__)

RTMGRP_LINK = 0x1
RTM_DELLINK = 17
_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHi")     # ifi_family, ifi_type, ifi_index (of struct ifinfomsg)


class LinkWatch:
    def __init__(self, module, loop, net):
        self.module = module
        self.loop = loop
        self.net = net
        with net.enter():
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                              | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            s.bind((0, RTMGRP_LINK))
        except OSError:
            s.close()
            raise
        self.sock = s
        loop.add_reader(s.fileno(), self._readable)

    def _netdev_vports(self):
        for dp in self.net.datapaths:
            for vport in list(dp.ports.values()):
                if vport.type == U.OVS_VPORT_TYPE_NETDEV:
                    yield vport

    def _readable(self):
        gone = set()
        for _ in range(64):
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:        # notifications were lost
                    self._rescan()
                    continue
                log.warning("rtnetlink link watch: %s", e)
                break
            off = 0
            while off + _NLMSGHDR.size <= len(data):
                length, mtype = _NLMSGHDR.unpack_from(data, off)[:2]
                if length < _NLMSGHDR.size:
                    break
                if mtype == RTM_DELLINK and length >= _NLMSGHDR.size + _IFINFOMSG.size:
                    family, _, index = _IFINFOMSG.unpack_from(data, off + _NLMSGHDR.size)
                    # AF_BRIDGE ones only say a device left a bridge
                    if family == socket.AF_UNSPEC:
                        gone.add(index)
                off += (length + 3) & ~3
        if gone:
            for vport in list(self._netdev_vports()):
                if vport.ifindex in gone:
                    self.module.device_gone(vport)
            for dp in self.net.datapaths:
                for vport in dp.ports.values():
                    if vport.type == U.OVS_VPORT_TYPE_INTERNAL and vport.ifindex in gone:
                        # moved to another namespace (the port stays): its
                        # host is not the datapath's any more
                        vport.in_dp_netns = False

    def _rescan(self):
        with self.net.enter():
            gone = [v for v in self._netdev_vports() if netdev_util.ifindex(v.name) != v.ifindex]
        for vport in gone:
            self.module.device_gone(vport)

    def close(self):
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
