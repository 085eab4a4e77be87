"""Tunnel vport types: gre, vxlan, geneve (vport-gre.c, vport-vxlan.c, vport-geneve.c).

Creation rules and options are the kernel's: VXLAN and Geneve need
OVS_TUNNEL_ATTR_DST_PORT (a u16), VXLAN may carry the GBP extension, GRE has
no options, and none of them can change options after creation.
"""

import errno
import struct

from .. import uapi as U
from ..datapath.vport import Vport, VportOps
from ..netlink import attr as A
from ..netlink.attr import NetlinkError, nla_flag, nla_nest, nla_u16


def find_nested(payload, atype):
    """nla_find_nested(): the first attribute of ``atype`` in a nest."""
    for raw, data, _ in A.iter_attrs(payload or b""):
        if raw & U.NLA_TYPE_MASK == atype:
            return data
    return None


class TunnelVport(Vport):
    """A tunnel port.  ovsdp does not carry tunnel traffic yet: a frame sent
    out of a tunnel port is dropped and counted in tx_dropped."""

    dst_port = 0
    gbp = False

    def send(self, packet):
        self.tx_dropped += 1

    def get_options(self):
        return None


class GreOps(VportOps):
    type = U.OVS_VPORT_TYPE_GRE
    name = "gre"

    def create(self, parms):
        check_name(self.module, parms.name)
        vport = TunnelVport(self, parms)
        vport.ifindex = self.module.virtual_ifindex()
        return vport


class _UdpTunnelVport(TunnelVport):
    def get_options(self):
        parts = [nla_u16(U.OVS_TUNNEL_ATTR_DST_PORT, self.dst_port)]
        if self.gbp:
            parts.append(nla_nest(U.OVS_TUNNEL_ATTR_EXTENSION, nla_flag(U.OVS_VXLAN_EXT_GBP)))
        return b"".join(parts)


class _UdpTunnelOps(VportOps):
    def create(self, parms):
        if parms.options is None:
            raise NetlinkError(errno.EINVAL, f"{self.name} ports need OPTIONS with DST_PORT")
        port = find_nested(parms.options, U.OVS_TUNNEL_ATTR_DST_PORT)
        if port is None or len(port) != 2:
            raise NetlinkError(errno.EINVAL, f"{self.name} ports need a u16 DST_PORT option")
        check_name(self.module, parms.name)
        vport = _UdpTunnelVport(self, parms)
        vport.dst_port = struct.unpack("=H", port)[0]
        self.configure(vport, parms.options)
        vport.ifindex = self.module.virtual_ifindex()
        return vport

    def configure(self, vport, options):
        pass


class VxlanOps(_UdpTunnelOps):
    type = U.OVS_VPORT_TYPE_VXLAN
    name = "vxlan"

    def configure(self, vport, options):
        ext = find_nested(options, U.OVS_TUNNEL_ATTR_EXTENSION)
        if ext is not None:
            exts = A.parse(ext, 1, {U.OVS_VXLAN_EXT_GBP: A.Policy(A.FLAG)})
            vport.gbp = U.OVS_VXLAN_EXT_GBP in exts


class GeneveOps(_UdpTunnelOps):
    type = U.OVS_VPORT_TYPE_GENEVE
    name = "geneve"


def check_name(module, name):
    if name in module.vports_by_name:
        raise NetlinkError(errno.EEXIST, f"a port named {name} exists")
