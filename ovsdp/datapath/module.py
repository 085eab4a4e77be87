"""Module init (dp_init): vport types, generic netlink families, datapaths.

:class:`Module` is the whole "kernel module" of ovsdp, sans I/O: it holds the
registered vport types and families, the datapaths and their ports, and
answers control messages through its :class:`~ovsdp.netlink.genl.GenlCore`.
The transport plugs peers in (``add_peer``/``remove_peer``) and an event
loop (``loop``) for vport types that do real I/O.
"""

import errno
import itertools
import logging

from .. import uapi as U
from ..netlink.attr import NetlinkError
from ..netlink.genl import GenlCore
from .datapath import Datapath

log = logging.getLogger(__name__)

# ifindexes handed to devices that are not real Linux interfaces (in-memory
# internal ports, dummy ports) start here, far above what a host uses.
VIRTUAL_IFINDEX_BASE = 0x40000000


class Module:
    def __init__(self, real_devices=False, loop=None):
        self.real_devices = real_devices
        self.loop = loop
        self.genl = GenlCore()
        self.vport_types = {}
        self.datapaths = []
        self.vports_by_name = {}
        self.ifindex_vports = {}         # ifindex -> internal Vport (get_dp)
        self.peers = {}                  # portid -> Peer
        self._virtual_ifindex = itertools.count(VIRTUAL_IFINDEX_BASE)
        self._load_packet_path()
        self._register_vport_types()
        self._register_families()

    # ------------------------------------------------------------ dp_init
    def _load_packet_path(self):
        from . import actions, flow_key, flow_netlink, offload
        self.extract = flow_key.extract
        self.extract_l3 = flow_key.extract_l3
        self.packet_hash = flow_key.packet_hash
        self.has_l4 = flow_key.has_l4
        self.execute_actions = actions.execute_actions
        self.put_key = flow_netlink.put_key
        self.put_actions = flow_netlink.put_actions
        self.put_tunnel_info = flow_netlink.put_tunnel_info
        self.resolve_offloads = offload.resolve
        self.OffloadError = offload.OffloadError

    def _register_vport_types(self):
        from ..vports import dummy, internal, netdev, tunnel
        for ops in (netdev.NetdevOps(self), internal.InternalOps(self),
                    tunnel.GreOps(self), tunnel.VxlanOps(self), tunnel.GeneveOps(self),
                    dummy.DummyOps(self)):
            self.register_vport_ops(ops)

    def register_vport_ops(self, ops):
        """__ovs_vport_ops_register()."""
        if ops.type in self.vport_types:
            raise ValueError(f"vport type {ops.type} already registered")
        self.vport_types[ops.type] = ops

    def _register_families(self):
        from .families import dp, dummy, flow, meter, packet, vport
        g = self.genl
        self.datapath_family = g.register(dp.make_family(self))
        self.vport_family = g.register(vport.make_family(self))
        self.flow_family = g.register(flow.make_family(self))
        self.packet_family = g.register(packet.make_family(self))
        self.dummy_family = g.register(dummy.make_family(self))
        self.meter_family = g.register(meter.make_family(self))

    # ----------------------------------------------------------- transport
    def add_peer(self, peer):
        self.peers[peer.portid] = peer

    def remove_peer(self, peer):
        if self.peers.get(peer.portid) is peer:
            del self.peers[peer.portid]
        self.genl.forget(peer)

    def rebind(self, peer, portid):
        """netlink_bind() with nl_pid ``portid`` for ``peer``.

        As on Linux: 0 keeps the id; an id in use is EADDRINUSE; once the
        peer has sent a message (its id was autobound) or bound, another id
        is EINVAL.
        """
        if portid == 0 or portid == peer.portid:
            return
        if peer.used:
            raise NetlinkError(errno.EINVAL, f"already bound to port id {peer.portid}")
        if portid in self.peers:
            raise NetlinkError(errno.EADDRINUSE, f"port id {portid} is in use")
        if self.peers.get(peer.portid) is peer:
            del self.peers[peer.portid]
        peer.portid = portid
        peer.used = True
        self.peers[portid] = peer

    def unicast(self, portid, data, kind="reply"):
        """genlmsg_unicast(): 0, or ECONNREFUSED when nobody has ``portid``."""
        peer = self.peers.get(portid)
        if peer is None:
            return errno.ECONNREFUSED
        return peer.send(data, kind)

    def receive(self, peer, data):
        return self.genl.receive(peer, data)

    # ----------------------------------------------------------- datapaths
    def new_datapath(self, name):
        return Datapath(self, name)

    def add_datapath(self, dp):
        self.datapaths.append(dp)

    def get_dp(self, dp_ifindex):
        """get_dp(): the datapath of the internal device with that ifindex."""
        vport = self.ifindex_vports.get(dp_ifindex)
        return vport.dp if vport is not None else None

    def destroy_datapath(self, dp):
        """__dp_destroy(): detach every port, the local one last."""
        for port_no in sorted(dp.ports):
            if port_no != U.OVSP_LOCAL:
                self.detach_port(dp.ports[port_no])
        if dp in self.datapaths:
            self.datapaths.remove(dp)
        local = dp.ports.get(U.OVSP_LOCAL)
        if local is not None:
            self.detach_port(local)
        dp.table.flush()

    def find_datapath(self, name):
        vport = self.vports_by_name.get(name)
        if vport is not None and vport.port_no == U.OVSP_LOCAL:
            return vport.dp
        return None

    # --------------------------------------------------------------- vports
    def virtual_ifindex(self, desired=0):
        """An ifindex for a device that is not a real Linux interface.

        One no port has (of any type: internal, dummy, tunnel, netdev).
        """
        used = {v.ifindex for v in self.vports_by_name.values()}
        if desired:
            if desired in used:
                raise NetlinkError(errno.EBUSY, f"ifindex {desired} is in use")
            return desired
        while True:
            i = next(self._virtual_ifindex)
            if i not in used:
                return i

    def new_vport(self, parms):
        """new_vport() / ovs_vport_add(): create through the type's ops."""
        ops = self.vport_types.get(parms.type)
        if ops is None:
            raise NetlinkError(errno.EAFNOSUPPORT, f"unknown vport type {parms.type}")
        vport = ops.create(parms)
        self.vports_by_name[vport.name] = vport
        if vport.type == U.OVS_VPORT_TYPE_INTERNAL:
            self.ifindex_vports[vport.ifindex] = vport
        parms.dp.ports[vport.port_no] = vport
        parms.dp.ports_gen += 1
        if self.loop is not None:
            try:
                vport.start(self.loop)
            except Exception:
                self.detach_port(vport)
                raise
        log.info("%s: added port %d: %s (%s)", parms.dp.name, vport.port_no, vport.name,
                 ops.name)
        return vport

    def detach_port(self, vport):
        """ovs_dp_detach_port()."""
        dp = vport.dp
        if dp.ports.get(vport.port_no) is vport:
            del dp.ports[vport.port_no]
            dp.ports_gen += 1
        if self.vports_by_name.get(vport.name) is vport:
            del self.vports_by_name[vport.name]
        if self.ifindex_vports.get(vport.ifindex) is vport:
            del self.ifindex_vports[vport.ifindex]
        try:
            vport.destroy()
        except Exception:  # noqa: BLE001 - a device that will not go quietly must not stop us
            log.exception("destroying %s", vport.name)

    def device_gone(self, vport):
        """dp_notify: the Linux device under a netdev vport disappeared."""
        if self.vports_by_name.get(vport.name) is not vport:
            return
        log.info("%s: device %s went away, detaching port %d", vport.dp.name, vport.name,
                 vport.port_no)
        self.vport_commands.notify_del(vport)
        self.detach_port(vport)

    def shutdown(self):
        """Tear everything down (module exit)."""
        for dp in list(self.datapaths):
            self.destroy_datapath(dp)

