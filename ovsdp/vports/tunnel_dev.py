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
from . import tunnel as T


class _OnDevice:
    claims_port = False             # the Linux device holds the UDP port

    def get_options(self):
        return None                 # a netdev vport has no options


class VxlanDeviceVport(_OnDevice, T.VxlanVport):
    pass


class GeneveDeviceVport(_OnDevice, T.GeneveVport):
    pass


class GreDeviceVport(_OnDevice, T.GreVport):
    pass


def create(ops, parms, dev, ifindex, mtu):
    """The vport for netdev ``parms.name``, a collect_md tunnel device ``dev``
    (:class:`.rtnl_link.TunnelDevice`)."""
    if dev.kind == "vxlan" and not dev.gpe:
        vport = VxlanDeviceVport(ops, parms)
        vport.dst_port = dev.dst_port
        vport.gbp = dev.gbp
    elif dev.kind == "geneve":
        vport = GeneveDeviceVport(ops, parms)
        vport.dst_port = dev.dst_port
    elif dev.kind == "gretap":
        vport = GreDeviceVport(ops, parms)
    else:
        what = "vxlan-gpe" if dev.kind == "vxlan" else dev.kind
        raise NetlinkError(errno.EOPNOTSUPP, f"{parms.name} is a {what} device in external "
                           f"mode: ovsdp has no {what} tunnels")
    vport.ifindex = ifindex
    vport.mtu = mtu
    return vport
