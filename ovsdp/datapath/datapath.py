"""A datapath: ports, flow table, statistics and the packet path (datapath.c).

``Datapath.receive_batch`` is ovs_vport_receive + ovs_dp_process_packet for
each received frame: extract the key, look the flow up, run its actions or
send a MISS upcall.  It is the hot path of ovsdp, written once (a single
frame is a batch of one) and for speed: flows whose actions are only
outputs skip the Skb and the action interpreter altogether.  ``process`` is
the same step for a packet already in an Skb (recirculation, layer 3).
"""

import collections
import errno
import logging
import os
import time

from .. import uapi as U
from ..netlink.attr import nla, nla_nest, nla_string, nla_u16, nla_u32, nla_u64
from . import conntrack as CT
from . import flow_hash, flow_key, flow_netlink_actions, flow_netlink_put, offload
from . import key_layout as K
from .actions import execute_actions
from .actions_headers import Key
from .flow_table import FlowTable
from .skb import Skb

log = logging.getLogger(__name__)

_S_TCP_FLAGS = K.S_TCP_FLAGS
_NR_CPUS = os.cpu_count() or 1
_monotonic_ns = time.monotonic_ns
_extract = flow_key.extract
# ovs_vport_receive(): a packet whose key cannot be extracted is freed
# (kfree_skb(), no OVS drop reason); ovsdp counts it under this name.
EXTRACT_DROP = "flow_key_extract"

# Packet sizes (nla_attr_size(len) must fit a u16 netlink attribute length)
_MAX_UPCALL_PACKET = 0xFFFF - 4


def _used(flow, packets, nbytes, tcp_flags, now):
    """ovs_flow_stats_update(): the one place a flow's statistics change."""
    flow.packets += packets
    flow.bytes += nbytes
    flow.used = now
    flow.tcp_flags |= tcp_flags


class Datapath:
    """struct datapath."""

    def __init__(self, module, net, name, ifindex_hint=0):
        self.module = module
        self.net = net                   # ovs_dp_get_net(): the namespace it was made in
        self.name = name
        self.ports = {}                  # port_no -> Vport
        self.ports_gen = 0               # bumped when ports come and go (flows cache vports)
        self.table = FlowTable()
        self.user_features = 0
        self.per_cpu_pids = []           # OVS_DP_ATTR_PER_CPU_PIDS
        self.n_hit = 0
        self.n_missed = 0
        self.n_lost = 0
        self.n_mask_hit = 0
        self.n_cache_hit = 0
        self.drop_reasons = collections.Counter()
        self.ifindex_hint = ifindex_hint
        self.exec_level = 0              # actions recursion (actions.c exec_actions_level)
        self.deferred = collections.deque()
        self.meters = {}                 # meter id -> meter.Meter (ovs_meter family)

    # ------------------------------------------------------------------ ids
    @property
    def local(self):
        return self.ports.get(U.OVSP_LOCAL)

    @property
    def ifindex(self):
        """get_dpifindex(): the local port's device ifindex."""
        lp = self.ports.get(U.OVSP_LOCAL)
        return lp.ifindex if lp is not None else 0

    # --------------------------------------------------------------- stats
    def stats_bytes(self):
        return U.OVS_DP_STATS.pack(self.n_hit, self.n_missed, self.n_lost, len(self.table))

    def megaflow_stats_bytes(self):
        return U.OVS_DP_MEGAFLOW_STATS.pack(self.n_mask_hit, self.table.n_masks, 0,
                                            self.n_cache_hit, 0)

    def fill_attrs(self):
        """ovs_dp_cmd_fill_info() attributes (after the ovs_header)."""
        parts = [nla_string(U.OVS_DP_ATTR_NAME, self.name),
                 nla(U.OVS_DP_ATTR_STATS, self.stats_bytes()),
                 nla(U.OVS_DP_ATTR_MEGAFLOW_STATS, self.megaflow_stats_bytes()),
                 nla_u32(U.OVS_DP_ATTR_USER_FEATURES, self.user_features),
                 nla_u32(U.OVS_DP_ATTR_MASKS_CACHE_SIZE, self.table.cache_size)]
        if self.user_features & U.OVS_DP_F_DISPATCH_UPCALL_PER_CPU and self.per_cpu_pids:
            pids = self.per_cpu_pids[:_NR_CPUS]
            parts.append(nla(U.OVS_DP_ATTR_PER_CPU_PIDS,
                             b"".join(p.to_bytes(4, "little") for p in pids)))
        return b"".join(parts)

    # --------------------------------------------------------- packet path
    @property
    def conntrack(self):
        """The connection tracker of the datapath's namespace (netns_ct)."""
        return self.net.conntrack

    @property
    def defrag(self):
        """The fragment queues of the datapath's namespace (ip_defrag.Defrag)."""
        return self.net.defrag

    @property
    def psample(self):
        """The module's psample (groups, the sampling channel)."""
        return self.module.psample

    def receive(self, data, vport, vnet=None, meta=None):
        """A frame arrived on ``vport`` (netdev_frame_hook -> ovs_vport_receive).

        The vport's I/O side has counted it in the port's statistics.
        ``vnet`` is its virtio_net_hdr when it has offloads pending; ``meta``
        the key metadata when it is more than the port's (tunnel metadata of
        a decapsulated frame).  One frame is a batch of one: there is one
        packet path.
        """
        self.receive_batch((data,), vport, None if vnet is None else (vnet,), meta)

    def receive_local(self, frames, vport, vnets=None):
        """Frames the host stack transmitted on an internal port.  With the
        namespace's conntrack on (and the device still in the datapath's
        namespace: crossing namespaces scrubs the skb), each comes with the
        host's zone-0 connection, which the key shows (ovs_ct_fill_key());
        else they are a batch like any port's."""
        tracker = self.conntrack
        if not tracker.local_stack or not vport.in_dp_netns:
            self.receive_batch(frames, vport, vnets)
            return
        meta = vport.key_meta
        for i, data in enumerate(frames):
            try:
                for frame in self._resolve(data, None if vnets is None else vnets[i], vport):
                    skb = Skb(frame, vport)
                    key = _extract(frame, meta)
                    res = CT.host_track(tracker, frame)
                    if res is not None:
                        skb.nfct = res
                        kx = Key(key)
                        CT.update_key(skb, kx, 0, False, False)
                        key = kx.k
                    self.process(frame, key, vport, skb)
            except flow_key.ExtractError:
                self.drop_reasons[EXTRACT_DROP] += 1
            except Exception:  # noqa: BLE001 - one packet's bug must not take the port down
                self._internal_error(vport)

    def receive_l3(self, data, vport, eth_type, meta=None):
        """A packet without Ethernet header arrived on ``vport`` (a layer 3
        device: MAC_PROTO_NONE, skb->protocol ``eth_type``)."""
        try:
            key = flow_key.extract_l3(data, eth_type, vport.key_meta if meta is None else meta)
            self.process(data, key, vport, Skb(data, vport))
        except flow_key.ExtractError:
            self.drop_reasons[EXTRACT_DROP] += 1
        except Exception:  # noqa: BLE001 - one packet's bug must not take the port down
            self._internal_error(vport)

    def receive_batch(self, frames, vport, vnets=None, meta=None):
        """ovs_vport_receive + ovs_dp_process_packet for each of ``frames``.

        ``vnets``, when given, holds each frame's virtio_net_hdr or None.
        Per frame: extract the key; the exact-match cache, else the megaflow
        table; a MISS upcall, or the flow's statistics and actions.  A flow
        whose actions are only outputs skips the Skb and the interpreter:
        its frames are gathered on their ports and handed over together at
        the end (in order), and consecutive frames of one flow (the common
        case) update its statistics once per run.
        """
        extract = _extract
        emc = self.table.emc
        now = _monotonic_ns() // 1_000_000
        if meta is None:
            meta = vport.key_meta
        ports = self.ports
        hits = slow_hits = 0        # all hits; those the megaflow table answered
        last = None                 # the flow of the current run, and its counts
        run_pkts = run_bytes = run_flags = 0
        touched = []                # ports with frames in their .batch
        gather = len(frames) > 1    # a frame alone goes straight out
        vnet = None
        i = -1
        for data in frames:
            i += 1
            try:
                if vnets is not None:
                    vnet = vnets[i]
                key = extract(data, meta)
                flow = emc.get(key)
                if flow is None:
                    h = flow_hash.packet_hash(key)
                    flow = self._classify(key, h)
                    if flow is None:
                        self._flush_batches(touched)
                        self._miss_frame(data, key, vport, vnet, h)
                        continue
                    slow_hits += 1
                hits += 1
                if flow is not last:
                    if last is not None:         # _used(), inline: the hot path
                        last.packets += run_pkts
                        last.bytes += run_bytes
                        last.used = now
                        last.tcp_flags |= run_flags
                        last = None
                    if flow.outputs is None:     # actions beyond outputs: one frame at a time
                        _used(flow, 1, len(data), (key >> _S_TCP_FLAGS) & 0xFFF, now)
                        self._flush_batches(touched)
                        self._execute(flow, data, key, vport, vnet)
                        continue
                    last = flow
                    run_pkts = run_bytes = run_flags = 0
                    outv = flow.out_vports
                    if flow.out_ports_gen != self.ports_gen:
                        outv = flow.out_vports = tuple(ports.get(p) for p in flow.outputs)
                        flow.out_ports_gen = self.ports_gen
                run_pkts += 1
                run_bytes += len(data)
                run_flags |= (key >> _S_TCP_FLAGS) & 0xFFF
                for v in outv:
                    if v is None:
                        self.drop_reasons["no_port"] += 1
                    elif vnet is None and gather:
                        b = v.batch
                        if not b:
                            touched.append(v)
                        b.append(data)
                    else:
                        if v.batch:
                            v.output_batch(v.batch)
                            v.batch = []
                        v.output(data, vnet)
            except flow_key.ExtractError:
                self.drop_reasons[EXTRACT_DROP] += 1
            except Exception:  # noqa: BLE001 - one frame's bug must not take the port down
                self._internal_error(vport)
        if last is not None:
            last.packets += run_pkts         # _used(), inline: once per batch
            last.bytes += run_bytes
            last.used = now
            last.tcp_flags |= run_flags
        if touched:
            for v in touched:                # _flush_batches(), inline
                b = v.batch
                if b:
                    v.batch = []
                    if len(b) == 1:
                        v.output(b[0])
                    else:
                        v.output_batch(b)
        self.n_hit += hits
        emc_hits = hits - slow_hits
        self.n_mask_hit += emc_hits
        if self.table.cache_size:
            self.n_cache_hit += emc_hits

    def _internal_error(self, vport):
        """A frame hit a bug of ours: it is dropped and counted, the rest goes on."""
        self.drop_reasons["internal_error"] += 1
        n = self.drop_reasons["internal_error"]
        if n & (n - 1) == 0:         # the 1st, 2nd, 4th, 8th...: a log that cannot flood
            log.exception("%s: frame from %s dropped (internal error %d)", self.name,
                          vport.name, n)

    @staticmethod
    def _flush_batches(touched):
        for v in touched:
            b = v.batch
            if b:
                v.batch = []
                v.output_batch(b)
        touched.clear()

    def _classify(self, key, h):
        """The megaflow table behind the exact-match cache (ovs_flow_tbl_lookup_stats)."""
        table = self.table
        flow, mask_hit, cache_hit = table.lookup_stats(key, h)
        self.n_mask_hit += mask_hit
        self.n_cache_hit += cache_hit
        if flow is not None:
            table.emc_insert(key, flow)
        return flow

    def _miss_frame(self, data, key, vport, vnet, h):
        """No flow for a received frame: a MISS upcall of it."""
        self.n_missed += 1
        for s in self._skbs(data, vnet, vport, key, h):
            self.miss(s, key)

    def _execute(self, flow, data, key, vport, vnet):
        """A received frame through ``flow``'s actions.

        A frame with offloads pending keeps them only on the way out of a
        port (the outputs-only path); an upcall or actions other than
        outputs see it checksummed and segmented, as the kernel's upcall
        path and GSO segmentation do.
        """
        for s in self._skbs(data, vnet, vport, key, flow_hash.packet_hash(key)):
            execute_actions(self, s, key, flow.acts)

    def _skbs(self, data, vnet, vport, key, h):
        """The received frame in Skbs of its own, its offloads done in
        software, with the skb hash the lookup set (``h``)."""
        l4 = flow_hash.has_l4(key)
        for frame in self._resolve(data, vnet, vport):
            s = Skb(frame, vport)
            s.hash = h
            s.sw_hash = True
            s.l4_hash = l4
            yield s

    def process(self, data, key, vport, skb):
        """ovs_dp_process_packet() for a packet already in an Skb (a layer 3
        packet, a recirculation): look ``key`` up and act, or send a MISS
        upcall."""
        flow = self.table.emc.get(key)
        if flow is not None:
            self.n_mask_hit += 1
            if self.table.cache_size:
                self.n_cache_hit += 1
        else:
            h = skb.hash or flow_hash.packet_hash(key)
            flow = self._classify(key, h)
            if flow is None:
                self.n_missed += 1
                if not skb.hash:
                    skb.hash = h
                    skb.sw_hash = True
                    skb.l4_hash = flow_hash.has_l4(key)
                self.miss(skb, key)
                return
        self.n_hit += 1
        _used(flow, 1, len(data), (key >> _S_TCP_FLAGS) & 0xFFF,
              _monotonic_ns() // 1_000_000)
        execute_actions(self, skb, key, flow.acts)

    def _resolve(self, data, vnet, vport):
        """The frame with its pending offloads done in software."""
        if vnet is None:
            return (data,)
        try:
            return offload.resolve(data, vnet)
        except offload.OffloadError:
            vport.rx_errors += 1
            self.drop_reasons["bad_offload"] += 1
            return ()

    def recirc(self, skb, key):
        """RECIRC: ovs_dp_process_packet() again with the new key."""
        self.process(skb.data, key, skb.input_vport, skb)

    def drop(self, skb, reason):
        self.drop_reasons[reason] += 1

    # -------------------------------------------------------------- upcalls
    def miss(self, skb, key):
        """Send an OVS_PACKET_CMD_MISS upcall for ``skb``."""
        vport = skb.input_vport
        pid = skb.upcall_pid
        if not pid:
            if self.user_features & U.OVS_DP_F_DISPATCH_UPCALL_PER_CPU:
                pid = self.get_upcall_portid(skb.hash % _NR_CPUS)
            elif vport is not None:
                pid = vport.find_upcall_portid(skb.hash)
        self.upcall(skb, key, U.OVS_PACKET_CMD_MISS, pid)

    def get_upcall_portid(self, cpu):
        """ovs_dp_get_upcall_portid()."""
        pids = self.per_cpu_pids
        if not pids:
            return 0
        return pids[cpu % len(pids)]

    def upcall(self, skb, key, cmd, portid, userdata=None, actions=None,
               egress_tun_info=None, cutlen=0):
        """ovs_dp_upcall(): queue the packet to a userspace port id.

        Returns 0 or a positive errno; a failure counts n_lost, and for MISS
        and ACTION the input port's upcall FAIL counter (SUCCESS otherwise).
        """
        if portid == 0:
            err = errno.ENOTCONN
        else:
            err = self._queue_userspace_packet(skb, key, cmd, portid, userdata, actions,
                                               egress_tun_info, cutlen)
        if err:
            self.n_lost += 1
        vport = skb.input_vport
        if vport is not None and cmd in (U.OVS_PACKET_CMD_MISS, U.OVS_PACKET_CMD_ACTION):
            if err:
                vport.upcall_fail += 1
            else:
                vport.upcall_success += 1
        return err

    def _queue_userspace_packet(self, skb, key, cmd, portid, userdata, actions,
                                egress_tun_info, cutlen):
        module = self.module
        dp_ifindex = self.ifindex
        if not dp_ifindex:
            return errno.ENODEV
        data = skb.data
        if len(data) > _MAX_UPCALL_PACKET:
            return errno.EFBIG
        parts = [nla_nest(U.OVS_PACKET_ATTR_KEY, flow_netlink_put.put_key(key, key, False))]
        if userdata is not None:
            parts.append(nla(U.OVS_PACKET_ATTR_USERDATA, userdata))
        if egress_tun_info is not None:
            parts.append(nla_nest(U.OVS_PACKET_ATTR_EGRESS_TUN_KEY,
                                  flow_netlink_put.put_tunnel_info(egress_tun_info)))
        if actions:
            parts.append(nla_nest(U.OVS_PACKET_ATTR_ACTIONS,
                                  flow_netlink_actions.put_actions(actions)))
        if skb.mru:
            parts.append(nla_u16(U.OVS_PACKET_ATTR_MRU, skb.mru))
        if cutlen > 0:
            parts.append(nla_u32(U.OVS_PACKET_ATTR_LEN, len(data)))
        h = skb.hash
        if skb.sw_hash:
            h |= U.OVS_PACKET_HASH_SW_BIT
        if skb.l4_hash:
            h |= U.OVS_PACKET_HASH_L4_BIT
        parts.append(nla_u64(U.OVS_PACKET_ATTR_HASH, h))
        pkt = bytes(data[:len(data) - cutlen]) if cutlen else bytes(data)
        if self.user_features & U.OVS_DP_F_UNALIGNED:
            parts.append((len(pkt) + 4).to_bytes(2, "little")
                         + U.OVS_PACKET_ATTR_PACKET.to_bytes(2, "little") + pkt)
        else:
            parts.append(nla(U.OVS_PACKET_ATTR_PACKET, pkt))
        body = U.OVS_HEADER.pack(dp_ifindex) + b"".join(parts)
        msg = module.packet_family.message(cmd, 0, 0, 0, body)
        return module.unicast(self.net, portid, msg, "upcall")
