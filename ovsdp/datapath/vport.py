"""Vports and the vport-ops registry (net/openvswitch/vport.c).

A :class:`VportOps` is a vport type: it creates :class:`Vport` objects and
knows the type's options.  The I/O of real types (AF_PACKET, TAP, UDP
tunnels) lives in ``ovsdp.vports``; this module is the common part: names,
port numbers, upcall port ids, statistics and the receive entry point.
"""

import errno
import struct

from .. import uapi as U
from ..netlink.attr import NetlinkError, nla, nla_nest, nla_string, nla_u32, nla_u32_array, nla_u64
from .key_layout import S_IN_PORT
from .offload import OffloadError, is_gso, resolve

_VLAN_TPIDS = (b"\x81\x00", b"\x88\xa8")


class VportParms:
    """struct vport_parms."""

    __slots__ = ("name", "type", "options", "dp", "port_no", "upcall_portids",
                 "desired_ifindex")

    def __init__(self, name, vtype, options, dp, port_no, upcall_portids,
                 desired_ifindex=0):
        self.name = name
        self.type = vtype
        self.options = options
        self.dp = dp
        self.port_no = port_no
        self.upcall_portids = upcall_portids
        self.desired_ifindex = desired_ifindex


def parse_upcall_portids(payload):
    """ovs_vport_set_upcall_portids(): a non-empty array of u32."""
    if not payload or len(payload) % 4:
        raise NetlinkError(errno.EINVAL, "upcall pids must be a non-empty array of u32")
    return list(struct.unpack(f"={len(payload) // 4}I", payload))


class Vport:
    """struct vport: one port of a datapath."""

    def __init__(self, ops, parms):
        self.ops = ops
        self.type = ops.type
        self.dp = parms.dp
        self.port_no = parms.port_no
        self.name = parms.name
        self.upcall_portids = parse_upcall_portids(parms.upcall_portids)
        # The key bits this port contributes to every packet it receives.
        self.key_meta = parms.port_no << S_IN_PORT
        self.ifindex = 0
        self.mtu = 1500
        self.in_dp_netns = True      # the device is in the datapath's namespace
        self.rx_packets = self.tx_packets = 0
        self.rx_bytes = self.tx_bytes = 0
        self.rx_errors = self.tx_errors = 0
        self.rx_dropped = self.tx_dropped = 0
        self.upcall_success = 0
        self.upcall_fail = 0
        self.alive = True
        self.ethernet = True         # dev->type == ARPHRD_ETHER
        self.vnet_ok = False         # send_vnet() takes checksum/GSO offloads
        self.tunnel = False          # a tunnel port: output() takes tun_info
        self.batch = []              # plain frames the datapath is gathering for output_batch()

    # ----------------------------------------------------------- type hooks
    def send(self, packet):
        """Transmit ``packet`` (bytes) out of this port, counting it."""
        raise NotImplementedError

    def output(self, data, vnet=None, l3=0, tun_info=None):
        """ovs_vport_send(): the common checks, then the type's send.

        ``vnet`` is the frame's virtio_net_hdr when it carries a partial
        checksum or is a GSO super-frame; a port whose I/O cannot take one
        gets the frame checksummed and segmented first.  A packet without an
        Ethernet header (``l3``: its ethertype, skb->protocol; 0 for an
        Ethernet frame) cannot go out of an Ethernet port; a frame
        longer than the MTU allows (ignoring one VLAN tag, like
        packet_length(); GSO frames are exempt) counts as tx_errors.  Both
        are dropped.  ``tun_info`` is the egress tunnel metadata (the
        skb's set(tunnel(...))), only given to tunnel ports.
        """
        n = len(data)
        if l3 and self.ethernet:
            self.tx_dropped += 1
            return
        if vnet is not None:
            if is_gso(vnet):
                if self.vnet_ok:
                    self.send_vnet(data, vnet)
                    return
            elif self.vnet_ok and n <= self.mtu + 18:
                self.send_vnet(data, vnet)
                return
            try:
                frames = resolve(data, vnet)
            except OffloadError:
                self.tx_errors += 1
                return
            for f in frames:
                self.output(f)
            return
        if n > self.mtu + 14:
            length = n - 14
            if data[12:14] in _VLAN_TPIDS:
                length -= 4
            if length > self.mtu:
                self.tx_errors += 1
                return
        self.send(data)

    def send_vnet(self, data, vnet):
        """Transmit a frame with its virtio_net_hdr (ports with ``vnet_ok``)."""
        raise NotImplementedError

    def output_batch(self, frames):
        """Output plain frames (no offloads pending), in order."""
        for data in frames:
            self.output(data)

    def destroy(self):
        """Release the port's resources (device, sockets)."""
        self.alive = False

    def get_options(self):
        """Nested OVS_VPORT_ATTR_OPTIONS content, or None for no attribute."""
        return None

    def set_options(self, payload):
        raise NetlinkError(errno.EOPNOTSUPP, f"{self.ops.name} vports have no settable options")

    def start(self, loop):
        """Attach the port's I/O to the event loop (real types only)."""

    # -------------------------------------------------------------- upcalls
    def set_upcall_portids(self, payload):
        self.upcall_portids = parse_upcall_portids(payload)

    def find_upcall_portid(self, skb_hash):
        """ovs_vport_find_upcall_portid(): choose a pid by packet hash."""
        ids = self.upcall_portids
        if len(ids) == 1:
            return ids[0]
        return ids[skb_hash % len(ids)]

    # ---------------------------------------------------------- attributes
    def stats_bytes(self):
        return U.OVS_VPORT_STATS.pack(self.rx_packets, self.tx_packets, self.rx_bytes,
                                      self.tx_bytes, self.rx_errors, self.tx_errors,
                                      self.rx_dropped, self.tx_dropped)

    def fill_attrs(self):
        """Reply attributes in ovs_vport_cmd_fill_info() order."""
        parts = [nla_u32(U.OVS_VPORT_ATTR_PORT_NO, self.port_no),
                 nla_u32(U.OVS_VPORT_ATTR_TYPE, self.type),
                 nla_string(U.OVS_VPORT_ATTR_NAME, self.name),
                 nla_u32(U.OVS_VPORT_ATTR_IFINDEX, self.ifindex & 0xFFFFFFFF),
                 nla(U.OVS_VPORT_ATTR_STATS, self.stats_bytes()),
                 nla_nest(U.OVS_VPORT_ATTR_UPCALL_STATS,
                          nla_u64(U.OVS_VPORT_UPCALL_ATTR_SUCCESS, self.upcall_success),
                          nla_u64(U.OVS_VPORT_UPCALL_ATTR_FAIL, self.upcall_fail))]
        if self.dp.user_features & U.OVS_DP_F_VPORT_PIDS:
            parts.append(nla_u32_array(U.OVS_VPORT_ATTR_UPCALL_PID, self.upcall_portids))
        else:
            parts.append(nla_u32(U.OVS_VPORT_ATTR_UPCALL_PID, self.upcall_portids[0]))
        opts = self.get_options()
        if opts is not None:
            parts.append(nla_nest(U.OVS_VPORT_ATTR_OPTIONS, opts))
        return b"".join(parts)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name} port {self.port_no}>"


class VportOps:
    """struct vport_ops: a vport type."""

    type = U.OVS_VPORT_TYPE_UNSPEC
    name = "unspec"

    def __init__(self, module):
        self.module = module

    def create(self, parms):
        """Create and return a Vport, or raise NetlinkError."""
        raise NotImplementedError
