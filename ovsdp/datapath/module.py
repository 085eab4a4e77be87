"""Module init (dp_init): vport types, generic netlink families, datapaths.

:class:`Module` is the whole "kernel module" of ovsdp, sans I/O: it holds the
registered vport types and families, the network namespaces with their
datapaths and ports, and answers control messages through its
:class:`~ovsdp.netlink.genl.GenlCore`.  The transport plugs peers in
(``add_peer``/``remove_peer``, each in an :class:`OvsNet`) and an event loop
(``loop``) for vport types that do real I/O.

Network namespaces are as in the kernel (``struct ovs_net``, pernet
operations): each has its own datapaths, vport names, device ifindexes and
netlink port ids; a request sees only its own namespace's, notifications
and upcalls stay in the datapath's.  The I/O side gives a namespace other
than the daemon's own an ``enter`` that switches into it, and the vport
types create their devices and sockets inside it.
"""

import contextlib
import errno
import itertools
import logging
import time

from .. import uapi as U
from ..netlink.attr import NetlinkError
from ..netlink.genl import GenlCore
from ..netlink.message import split, well_framed
from ..netlink.nfnetlink import NfnlCore, is_protocol_option, protocol_of
from ..uapi.nfnetlink import NETLINK_NETFILTER
from .datapath import Datapath
from .families import vport as vport_family
from .families.ct_limit import CtLimitInfo
from .ip_defrag import Defrag
from .nf_conntrack import ConnTracker
from .nf_conntrack_netlink import Ctnetlink
from .nf_conntrack_netlink_events import CtEventNotifier
from .nf_conntrack_netlink_exp import CtnetlinkExp
from .nfnetlink_cttimeout import Cttimeout
from .psample import Psample

log = logging.getLogger(__name__)

# ifindexes handed to devices that are not real Linux interfaces (in-memory
# internal ports, dummy ports) start here, far above what a host uses.
VIRTUAL_IFINDEX_BASE = 0x40000000


class OvsNet:
    """struct ovs_net: what one network namespace holds of ovsdp.

    ``key`` names the namespace (None for the daemon's own); ``enter()``
    gives a context in which sockets and devices are made in it (the I/O
    side provides it; the daemon's own namespace needs none).
    """

    def __init__(self, key=None, enter=None, name="init_net"):
        self.key = key
        self.name = name
        self.enter = enter or contextlib.nullcontext
        self.datapaths = []
        self.vports_by_name = {}         # ovs_vport_locate(net, name)
        self.ifindex_vports = {}         # ifindex -> internal Vport (get_dp)
        self.peers = {}                  # netlink port id -> Peer
        self.conntrack = ConnTracker(clock=time.monotonic)    # the namespace's conntrack
        self.defrag = Defrag(clock=time.monotonic)    # its fragment queues (fqdirs)
        self.ct_limit_info = CtLimitInfo()                    # ovs_ct_limit_init()
        self.conntrack.ct_limit_info = self.ct_limit_info     # what the CT action's commit checks
        self.closed = False

    def __repr__(self):
        return f"<OvsNet {self.name}>"

    def in_use(self):
        return bool(self.datapaths or self.peers)


class Module:
    def __init__(self, real_devices=False, loop=None, local_conntrack=True):
        self.real_devices = real_devices
        self.loop = loop
        # each namespace's host stack has conntrack on (internal ports' traffic
        # tracked in zone 0, conntrack.host_track), as on most kernel hosts
        self.local_conntrack = local_conntrack
        self.genl = GenlCore()
        self.nfnl = NfnlCore(self.genl)         # NETLINK_NETFILTER sockets (nfnetlink.c)
        self.nfnl.register(Ctnetlink(self.nfnl).subsystem)
        self.nfnl.register(CtnetlinkExp(self.nfnl).subsystem)  # expectations
        self.nfnl.register(Cttimeout(self.nfnl).subsystem)    # timeout policies
        self.vport_types = {}
        self.init_net = OvsNet()
        self.init_net.conntrack.local_stack = local_conntrack
        self.init_net.conntrack.event_cb = CtEventNotifier(self.nfnl, self.init_net)
        self.nets = {None: self.init_net}     # key -> OvsNet
        self.net_unused = None           # callback(net): a namespace holds nothing any more
        self._virtual_ifindex = itertools.count(VIRTUAL_IFINDEX_BASE)
        self._register_families()

    # ------------------------------------------------------------ dp_init
    def register_vport_ops(self, ops):
        """__ovs_vport_ops_register(): the vport types (the I/O side's
        vports.register() registers ovsdp's, as each vport-*.c does at
        module init)."""
        if ops.type in self.vport_types:
            raise ValueError(f"vport type {ops.type} already registered")
        self.vport_types[ops.type] = ops

    def _register_families(self):
        from .families import ct_limit, dp, dummy, flow, meter, packet, psample, vport
        g = self.genl
        self.datapath_family = g.register(dp.make_family(self))
        self.vport_family = g.register(vport.make_family(self))
        self.flow_family = g.register(flow.make_family(self))
        self.packet_family = g.register(packet.make_family(self))
        self.dummy_family = g.register(dummy.make_family(self))
        self.meter_family = g.register(meter.make_family(self))
        self.ct_limit_family = g.register(ct_limit.make_family(self))
        self.psample_family = g.register(psample.make_family(self))
        self.psample = Psample(self.psample_family)     # net/psample: groups, sampling

    # ----------------------------------------------------------- namespaces
    @property
    def datapaths(self):
        """Every datapath, of every namespace."""
        return [dp for net in self.nets.values() for dp in net.datapaths]

    def add_net(self, net):
        """ovs_init_net(): a namespace starts holding datapaths or peers."""
        if net.key in self.nets:
            raise ValueError(f"namespace {net.name} is already known")
        net.conntrack.local_stack = self.local_conntrack
        # ctnetlink's conntrack events to the namespace's peers (nf_conntrack_event_cb)
        net.conntrack.event_cb = CtEventNotifier(self.nfnl, net)
        self.nets[net.key] = net
        return net

    def exit_net(self, net):
        """ovs_exit_net(): the namespace went away; so do its datapaths."""
        for dp in list(net.datapaths):
            log.info("%s: namespace %s is gone, destroying the datapath", dp.name, net.name)
            self.destroy_datapath(dp)
        self._release(net)

    def _release(self, net):
        if net is self.init_net or net.in_use() or net.closed:
            return
        net.closed = True
        self.psample.forget_net(net)
        if self.nets.get(net.key) is net:
            del self.nets[net.key]
        if self.net_unused is not None:
            self.net_unused(net)

    # ----------------------------------------------------------- transport
    def add_peer(self, peer):
        if peer.net is None:
            peer.net = self.init_net
        peer.net.peers[peer.portid] = peer

    def remove_peer(self, peer):
        peers = peer.net.peers
        if peers.get(peer.portid) is peer:
            del peers[peer.portid]
        self.genl.forget(peer)
        self.nfnl.forget(peer)
        self._release(peer.net)

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
        peers = peer.net.peers
        if portid in peers:
            raise NetlinkError(errno.EADDRINUSE, f"port id {portid} is in use")
        if peers.get(peer.portid) is peer:
            del peers[peer.portid]
        peer.portid = portid
        peer.used = True
        peers[portid] = peer

    def unicast(self, net, portid, data, kind="reply"):
        """genlmsg_unicast(net, ...): 0, or ECONNREFUSED when nobody in
        ``net`` has ``portid``."""
        peer = net.peers.get(portid)
        if peer is None:
            return errno.ECONNREFUSED
        return peer.send(data, kind)

    def receive(self, peer, data):
        """One datagram from ``peer`` (netlink_rcv_skb): False when it is not netlink."""
        msgs, consumed = split(data)
        for hdr, msg in msgs:
            self.handle(peer, hdr, msg)
        return well_framed(data, consumed, bool(msgs))

    def handle(self, peer, hdr, msg):
        """One message, to the core of the peer's netlink protocol: generic
        netlink, or nfnetlink for a NETLINK_NETFILTER socket (the transport's
        OVSDP_SO_PROTOCOL option says which; nfnetlink's core handles it)."""
        if protocol_of(peer) == NETLINK_NETFILTER or (
                hdr.type == U.OVSDP_MSG_SOCKOPT and is_protocol_option(msg)):
            self.nfnl.handle(peer, hdr, msg)
        else:
            self.genl.handle(peer, hdr, msg)

    # ----------------------------------------------------------- datapaths
    def new_datapath(self, net, name):
        return Datapath(self, net, name)

    def add_datapath(self, dp):
        dp.net.datapaths.append(dp)

    @staticmethod
    def get_dp(net, dp_ifindex):
        """get_dp(): the datapath of the internal device with that ifindex in ``net``."""
        vport = net.ifindex_vports.get(dp_ifindex)
        return vport.dp if vport is not None else None

    def destroy_datapath(self, dp):
        """__dp_destroy(): detach every port, the local one last."""
        for port_no in sorted(dp.ports):
            if port_no != U.OVSP_LOCAL:
                self.detach_port(dp.ports[port_no])
        if dp in dp.net.datapaths:
            dp.net.datapaths.remove(dp)
        local = dp.ports.get(U.OVSP_LOCAL)
        if local is not None:
            self.detach_port(local)
        dp.table.flush()
        self._release(dp.net)

    @staticmethod
    def find_datapath(net, name):
        vport = net.vports_by_name.get(name)
        if vport is not None and vport.port_no == U.OVSP_LOCAL:
            return vport.dp
        return None

    # --------------------------------------------------------------- vports
    def virtual_ifindex(self, desired=0):
        """An ifindex for a device that is not a real Linux interface.

        One no port of any namespace has (of any type: internal, dummy,
        tunnel, netdev).
        """
        used = {v.ifindex for net in self.nets.values() for v in net.vports_by_name.values()}
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
        net = parms.dp.net
        with net.enter():                    # devices and sockets of the dp's namespace
            vport = ops.create(parms)
            net.vports_by_name[vport.name] = vport
            if vport.type == U.OVS_VPORT_TYPE_INTERNAL:
                net.ifindex_vports[vport.ifindex] = vport
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
        net = dp.net
        if dp.ports.get(vport.port_no) is vport:
            del dp.ports[vport.port_no]
            dp.ports_gen += 1
        if net.vports_by_name.get(vport.name) is vport:
            del net.vports_by_name[vport.name]
        if net.ifindex_vports.get(vport.ifindex) is vport:
            del net.ifindex_vports[vport.ifindex]
        try:
            with net.enter():
                vport.destroy()
        except Exception:  # noqa: BLE001 - a device that will not go quietly must not stop us
            log.exception("destroying %s", vport.name)

    def device_gone(self, vport):
        """dp_notify: the Linux device under a netdev vport disappeared."""
        if vport.dp.net.vports_by_name.get(vport.name) is not vport:
            return
        log.info("%s: device %s went away, detaching port %d", vport.dp.name, vport.name,
                 vport.port_no)
        vport_family.notify_del(self, vport)
        self.detach_port(vport)

    def shutdown(self):
        """Tear everything down (module exit)."""
        for net in list(self.nets.values()):
            for dp in list(net.datapaths):
                self.destroy_datapath(dp)

