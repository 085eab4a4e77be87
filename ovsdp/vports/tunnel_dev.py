"""Netdev vports on Linux tunnel devices in collect_md mode.

The kernel datapath attaches any device as a netdev vport (vport-netdev.c),
and a vxlan, geneve or gretap device in collect_md ("external") mode hands
it every packet with the packet's tunnel metadata, and encapsulates by the
metadata a flow sets on output.  That is how Open vSwitch uses tunnels on
an in-tree kernel: it creates ``vxlan_sys_4789``, ``genev_sys_6081`` or
``gre_sys`` over rtnetlink and adds it as a netdev vport (as the kernel
selftests' ``ovs-dpctl.py add-if -t vxlan`` does).

A packet socket on such a device would see inner frames without their
metadata, so ovsdp treats the port as the tunnel port it is: the port is
reported as a netdev vport with the device's name, ifindex and MTU, and its
I/O is the tunnel vport's (:mod:`.tunnel`), on the device's UDP port.  The
device keeps that port bound, so the host sends no "port unreachable"; the
copy the device decapsulates itself goes up the device's own stack, where
nothing takes it.
"""

import errno

from ..netlink.attr import NetlinkError
from . import geneve, gre, vxlan


class _OnDevice:
    claims_port = False             # the Linux device holds the UDP port

    def get_options(self):
        return None                 # a netdev vport has no options


class VxlanDeviceVport(_OnDevice, vxlan.VxlanVport):
    pass


class VxlanGpeDeviceVport(_OnDevice, vxlan.VxlanGpeVport):
    """The device also decapsulates its own copy of every packet, and a
    layer 3 device hands that copy to the host's IP stack, where on Linux the
    datapath's rx_handler would have consumed it (an Ethernet device's copy
    goes nowhere: it is not addressed to the host).  So while the port is
    attached the device drops it: strict reverse-path filtering for IPv4 (the
    inner source routes back elsewhere) and IPv6 disabled on it; the
    settings are put back when the port goes."""

    _SYSCTLS = (("ipv4", "rp_filter", "1"), ("ipv6", "disable_ipv6", "1"))

    def start(self, loop):
        super().start(loop)
        self._saved = []
        if self.loop is None:
            return                          # in memory: no device
        for family, name, value in self._SYSCTLS:
            path = f"/proc/sys/net/{family}/conf/{self.name}/{name}"
            try:
                with open(path) as f:
                    old = f.read().strip()
                with open(path, "w") as f:
                    f.write(value)
            except OSError:
                continue                    # no IPv6 here, or the device is going
            self._saved.append((path, old))

    def destroy(self):
        for path, old in getattr(self, "_saved", ()):
            try:
                with open(path, "w") as f:
                    f.write(old)
            except OSError:
                pass                        # the device went first
        self._saved = []
        super().destroy()


class GeneveDeviceVport(_OnDevice, geneve.GeneveVport):
    pass


class GreDeviceVport(_OnDevice, gre.GreVport):
    pass


def create(ops, parms, dev, ifindex, mtu):
    """The vport for netdev ``parms.name``, a collect_md tunnel device ``dev``
    (:class:`.rtnl_link.TunnelDevice`)."""
    if dev.kind == "vxlan":
        vport = (VxlanGpeDeviceVport if dev.gpe else VxlanDeviceVport)(ops, parms)
        vport.dst_port = dev.dst_port
        vport.gbp = dev.gbp and not dev.gpe
    elif dev.kind == "geneve":
        vport = GeneveDeviceVport(ops, parms)
        vport.dst_port = dev.dst_port
    elif dev.kind == "gretap":
        vport = GreDeviceVport(ops, parms)
    else:
        raise NetlinkError(errno.EOPNOTSUPP, f"{parms.name} is a {dev.kind} device in "
                           f"external mode: ovsdp has no {dev.kind} tunnels")
    vport.ifindex = ifindex
    vport.mtu = mtu
    return vport
