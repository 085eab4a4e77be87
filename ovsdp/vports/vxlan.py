"""The vxlan vport type (vport-vxlan.c), and VXLAN-GPE devices.

See :mod:`.tunnel` for what all tunnel ports share (receive, transmit, the
sockets); the wire format is :mod:`.encap`'s.
"""

from .. import uapi as U
from ..netlink import attr as A
from . import encap as E
from .tunnel import (
    F_KEY,
    F_VXLAN_OPT,
    TxError,
    UdpTunnelOps,
    UdpTunnelVport,
    vlan_inet_prepare,
)
from .tunnel_socket import local_port_range

VXLAN_MTU = 65535                    # vxlan: IP_MAX_MTU (no lower device to bound it)


class VxlanVport(UdpTunnelVport):
    mtu_default = VXLAN_MTU

    def __init__(self, ops, parms):
        super().__init__(ops, parms)
        self.port_range = local_port_range()   # VXLAN's port_min/max 0: the local range

    def no_tun_info(self):
        pass                                    # vxlan_xmit(): kfree_skb, no counter

    def decap(self, udp, flags):
        vni, gbp, inner = E.vxlan_decap(udp, self.gbp)
        flags |= F_KEY
        opts = b""
        if gbp is not None:
            flags |= F_VXLAN_OPT
            opts = E.vxlan_opts(gbp)
        return vni, flags, opts, inner, 0

    def encapsulate(self, frame, tk):
        if tk.family == E.AF_INET and not tk.dst:
            # IP_TUNNEL_INFO_BRIDGE: the VNI's FDB, empty in a collect_md device
            raise TxError("tx_dropped", "bridge mode without FDB")
        if not vlan_inet_prepare(frame):
            raise TxError("tx_dropped", "inner IP header cut short")
        gbp = None
        if tk.flags & F_VXLAN_OPT:
            if len(tk.opts) < 4:
                raise TxError("tx_dropped", "VXLAN options too short")
            if self.gbp:
                gbp = E.vxlan_gbp(tk.opts)
        dport = tk.tp_dst or self.dst_port
        return self._udp_encap(frame, tk, dport, E.vxlan_header(tk.tun_id, gbp))

    def fill_key(self, tk, frame):
        self._fill_udp(tk, frame, tk.tp_dst or self.dst_port)


class VxlanGpeVport(VxlanVport):
    """A VXLAN-GPE device in collect_md mode (Linux's vxlan with ``gpe``): a
    layer 3 device (ARPHRD_NONE), whose payload's type is the GPE header's
    next protocol; an Ethernet payload is ETH_P_TEB (MAC_PROTO_ETHERNET).
    Linux has it as a device only (no vport type), so this is reached
    through a netdev vport on such a device."""

    def __init__(self, ops, parms):
        super().__init__(ops, parms)
        self.ethernet = False

    def decap(self, udp, flags):
        vni, proto, inner = E.vxlan_gpe_decap(udp)
        if proto == E.ETH_P_TEB:
            return vni, flags | F_KEY, b"", inner, 0
        return vni, flags | F_KEY, b"", E.as_frame(proto, inner), proto

    def encapsulate(self, frame, tk):
        return self._gpe_encap(frame, tk, E.ETH_P_TEB, frame)

    def encapsulate_l3(self, packet, tk, proto):
        return self._gpe_encap(packet, tk, proto, E.as_frame(proto, packet))

    def _gpe_encap(self, payload, tk, proto, shape):
        if tk.family == E.AF_INET and not tk.dst:
            raise TxError("tx_dropped", "bridge mode without FDB")
        if not vlan_inet_prepare(shape):
            raise TxError("tx_dropped", "inner IP header cut short")
        hdr = E.vxlan_gpe_header(tk.tun_id, proto)
        if hdr is None:                         # -EPFNOSUPPORT
            raise TxError("tx_errors", f"VXLAN-GPE carries no ethertype {proto:#06x}")
        return self._udp_encap(payload, tk, tk.tp_dst or self.dst_port, hdr, shape)


class VxlanOps(UdpTunnelOps):
    type = U.OVS_VPORT_TYPE_VXLAN
    name = "vxlan"
    vport_class = VxlanVport

    def configure(self, vport, options):
        ext = A.find(options, U.OVS_TUNNEL_ATTR_EXTENSION)
        if ext is not None:
            exts = A.parse(ext, 1, {U.OVS_VXLAN_EXT_GBP: A.Policy(A.FLAG)})
            vport.gbp = U.OVS_VXLAN_EXT_GBP in exts
