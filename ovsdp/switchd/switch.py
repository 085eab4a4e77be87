"""A minimal ovs-vswitchd for one datapath: the OpenFlow NORMAL action.

It registers itself as the upcall handler of every port (and of ports added
later, which it hears about on the ``ovs_vport`` multicast group), learns
source MAC -> port per VLAN, and answers each MISS upcall like OVS's
xlate_normal(): output to the learned port, or flood (every other port,
LOCAL included) for broadcast, multicast and unknown destinations.  It
installs a megaflow with the narrowest mask that keeps that decision right
(in_port, Ethernet source and destination, the VLAN, the Ethernet type; the
kernel always matches the VLAN TCI and the Ethernet type exactly) and sends
the packet itself back with EXECUTE.

Learning a MAC, or seeing it move, deletes the installed flows that were
decided without that knowledge (OVS's revalidators do the same by
re-translating).  Flows idle longer than ``flow_idle`` seconds are deleted,
MAC entries not seen for ``mac_aging`` seconds forgotten; a flow that carries
traffic counts as seeing its source MAC, since such traffic never reaches
switchd.
"""

import errno
import logging
import os
import select
import time

from .. import uapi as U
from ..client.dpif import Dpif, VportInfo
from ..netlink import attr as A
from ..netlink.attr import nla, nla_be16, nla_nest, nla_u32

log = logging.getLogger(__name__)

BROADCAST = b"\xff" * 6


class PacketKey:
    """The fields of an upcall key that NORMAL looks at."""

    __slots__ = ("in_port", "src", "dst", "eth_type", "vlan_tci", "inner_type", "tpid")

    def __init__(self, key_attrs):
        self.in_port = None
        self.src = self.dst = None
        self.eth_type = None
        self.vlan_tci = 0
        self.tpid = 0
        self.inner_type = None
        for t, p, _ in A.iter_attrs(key_attrs):
            t &= U.NLA_TYPE_MASK
            if t == U.OVS_KEY_ATTR_IN_PORT:
                self.in_port = A.get_u32(p)
            elif t == U.OVS_KEY_ATTR_ETHERNET:
                self.src, self.dst = p[0:6], p[6:12]
            elif t == U.OVS_KEY_ATTR_ETHERTYPE:
                self.eth_type = A.get_be16(p)
            elif t == U.OVS_KEY_ATTR_VLAN:
                self.vlan_tci = A.get_be16(p)
            elif t == U.OVS_KEY_ATTR_ENCAP:
                for t2, p2, _ in A.iter_attrs(p):
                    if t2 & U.NLA_TYPE_MASK == U.OVS_KEY_ATTR_ETHERTYPE:
                        self.inner_type = A.get_be16(p2)
        if self.vlan_tci:
            self.tpid = self.eth_type

    @property
    def vid(self):
        return self.vlan_tci & 0x0FFF

    def flow_key_and_mask(self):
        """The megaflow for this decision: key and mask attribute streams.

        The datapath wants the L3 attribute of an IP or ARP frame present; it
        is given all-zero (wildcarded) except IP's fragment type, which OVS's
        NORMAL flows match exactly (``ipv4(frag=no)``).
        """
        key = [nla_u32(U.OVS_KEY_ATTR_IN_PORT, self.in_port),
               nla(U.OVS_KEY_ATTR_ETHERNET, U.OVS_KEY_ETHERNET.pack(self.src, self.dst))]
        mask = [nla_u32(U.OVS_KEY_ATTR_IN_PORT, 0xFFFFFFFF),
                nla(U.OVS_KEY_ATTR_ETHERNET, U.OVS_KEY_ETHERNET.pack(_ONES6, _ONES6))]
        if self.vlan_tci:
            ikey, imask = _l3_attrs(self.inner_type)
            key += [nla_be16(U.OVS_KEY_ATTR_ETHERTYPE, self.tpid),
                    nla_be16(U.OVS_KEY_ATTR_VLAN, self.vlan_tci),
                    nla_nest(U.OVS_KEY_ATTR_ENCAP, ikey)]
            # the VID decides; the priority bits do not (CFI must match)
            mask += [nla_be16(U.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF),
                     nla_be16(U.OVS_KEY_ATTR_VLAN, 0x1FFF),
                     nla_nest(U.OVS_KEY_ATTR_ENCAP, imask)]
        elif self.eth_type is not None:
            k, m = _l3_attrs(self.eth_type)
            key.append(k)
            mask.append(m)
        return b"".join(key), b"".join(mask)


def _l3_attrs(eth_type):
    """ETHERTYPE plus a wildcarded L3 attribute for ``eth_type`` (key, mask)."""
    if eth_type is None:
        return b"", b""
    key = nla_be16(U.OVS_KEY_ATTR_ETHERTYPE, eth_type)
    mask = nla_be16(U.OVS_KEY_ATTR_ETHERTYPE, 0xFFFF)
    if eth_type == 0x0800:          # src, dst, proto, tos, ttl: any; frag: exactly "no"
        key += nla(U.OVS_KEY_ATTR_IPV4, U.OVS_KEY_IPV4.pack(0, 0, 0, 0, 0, U.OVS_FRAG_TYPE_NONE))
        mask += nla(U.OVS_KEY_ATTR_IPV4, U.OVS_KEY_IPV4.pack(0, 0, 0, 0, 0, 0xFF))
    elif eth_type == 0x86DD:
        key += nla(U.OVS_KEY_ATTR_IPV6,
                   U.OVS_KEY_IPV6.pack(b"", b"", 0, 0, 0, 0, U.OVS_FRAG_TYPE_NONE))
        mask += nla(U.OVS_KEY_ATTR_IPV6, U.OVS_KEY_IPV6.pack(b"", b"", 0, 0, 0, 0, 0xFF))
    elif eth_type in (0x0806, 0x8035):
        wild = U.OVS_KEY_ARP.pack(0, 0, 0, b"", b"")
        key += nla(U.OVS_KEY_ATTR_ARP, wild)
        mask += nla(U.OVS_KEY_ATTR_ARP, wild)
    return key, mask


_ONES6 = b"\xff" * 6


def mac_str(b):
    return ":".join(f"{x:02x}" for x in b)


class LearningSwitch:
    def __init__(self, dp_name, path=None, flow_idle=10.0, mac_aging=300.0, handlers=1):
        self.dp_name = dp_name
        self.path = path
        self.flow_idle = flow_idle
        self.mac_aging = mac_aging
        self.ctl = Dpif(path)                       # requests
        self.events = Dpif(path)                    # vport notifications
        self.handlers = [Dpif(path) for _ in range(max(1, handlers))]   # upcalls
        self.dp = self.ctl.dp_get(dp_name)
        self.dp_ifindex = self.dp.ifindex
        self.pids = [h.portid for h in self.handlers]
        self.macs = {}          # (vid, mac) -> (port, learned at)
        self.flows = {}         # ufid -> (in_port, vid, src, dst)
        self.ports = set()
        self.running = False
        self.n_upcalls = 0
        self.n_installed = 0
        self._born = {}         # ufid -> ms when first seen idle-less (used == 0)

    # --------------------------------------------------------------- setup
    def start(self):
        self.events.subscribe(U.OVS_VPORT_FAMILY)
        self.events.subscribe(U.OVS_DATAPATH_FAMILY)
        for v in self.ctl.vport_dump(self.dp_ifindex):
            self._claim_port(v)
        self.ctl.flow_flush(self.dp_ifindex)
        log.info("switchd: handling datapath %s (%d ports), upcall pids %s",
                 self.dp_name, len(self.ports), self.pids)

    def _claim_port(self, v):
        if v.port_no not in self.ports and self.flows:
            # flood decisions did not include the new port
            self.ctl.flow_flush(self.dp_ifindex)
            self.flows.clear()
        self.ports.add(v.port_no)
        if tuple(v.upcall_pids) != tuple(self.pids):
            try:
                self.ctl.vport_set(self.dp_ifindex, port_no=v.port_no, upcall_pids=self.pids)
            except OSError as e:
                log.warning("switchd: cannot take upcalls of port %s: %s", v.name, e)

    # ---------------------------------------------------------------- loop
    def fds(self):
        return [self.events.sock.fileno()] + [h.sock.fileno() for h in self.handlers]

    def run(self, stop_fd=None):
        self.running = True
        next_sweep = time.monotonic() + 1.0
        fds = self.fds() + ([stop_fd] if stop_fd is not None else [])
        while self.running:
            timeout = max(0.0, next_sweep - time.monotonic())
            ready, _, _ = select.select(fds, [], [], timeout)
            if stop_fd is not None and stop_fd in ready:
                break
            for h in self.handlers:
                if h.sock.fileno() in ready or h.sock.backlog:
                    self._drain_upcalls(h)
            if self.events.sock.fileno() in ready:
                self._drain_events()
            if time.monotonic() >= next_sweep:
                self.sweep()
                next_sweep = time.monotonic() + 1.0

    def stop(self):
        self.running = False

    def close(self):
        for c in [self.ctl, self.events] + self.handlers:
            c.close()

    def _drain_events(self):
        while True:
            try:
                n = self.events.recv_notification(0)
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                log.warning("switchd: port notifications were lost (%s); resyncing", e)
                self._resync_ports()
                continue
            if n is None:
                return
            family, cmd, msg = n
            if family == U.OVS_VPORT_FAMILY and msg.dp_ifindex == self.dp_ifindex:
                v = VportInfo.from_msg(msg)
                if cmd == U.OVS_VPORT_CMD_NEW:
                    log.info("switchd: new port %d (%s)", v.port_no, v.name)
                    self._claim_port(v)
                elif cmd == U.OVS_VPORT_CMD_DEL:
                    log.info("switchd: port %d (%s) removed", v.port_no, v.name)
                    self._forget_port(v.port_no)
            elif family == U.OVS_DATAPATH_FAMILY and cmd == U.OVS_DP_CMD_DEL \
                    and msg.dp_ifindex == self.dp_ifindex:
                log.info("switchd: datapath %s deleted; exiting", self.dp_name)
                self.running = False

    def _resync_ports(self):
        """Take the port list from the datapath again (after lost notifications)."""
        now = {v.port_no: v for v in self.ctl.vport_dump(self.dp_ifindex)}
        for port_no in list(self.ports):
            if port_no not in now:
                self._forget_port(port_no)
        for v in now.values():
            self._claim_port(v)

    def _drain_upcalls(self, h):
        for _ in range(256):
            try:
                u = h.recv_upcall(0)
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                log.warning("switchd: upcalls were lost: %s", e)   # their packets are gone
                continue
            if u is None:
                return
            self.n_upcalls += 1
            try:
                self.handle_miss(u)
            except OSError as e:
                log.warning("switchd: upcall handling failed: %s", e)

    # ---------------------------------------------------------- decisions
    def learn(self, k, now):
        entry = self.macs.get((k.vid, k.src))
        if k.src[0] & 1:
            return                          # never learn a multicast source
        if entry is None or entry[0] != k.in_port:
            if entry is None:
                log.debug("switchd: learned %s on port %d vlan %d", mac_str(k.src), k.in_port,
                          k.vid)
            else:
                log.debug("switchd: %s moved from port %d to %d vlan %d", mac_str(k.src),
                          entry[0], k.in_port, k.vid)
            self._revalidate(k.vid, k.src)
        self.macs[(k.vid, k.src)] = (k.in_port, now)

    def decide(self, k):
        """The output ports for this packet (NORMAL)."""
        if k.dst[0] & 1:
            return self._flood(k.in_port)
        entry = self.macs.get((k.vid, k.dst))
        if entry is None:
            return self._flood(k.in_port)
        if entry[0] == k.in_port:
            return []
        return [entry[0]]

    def _flood(self, in_port):
        return sorted(p for p in self.ports if p != in_port)

    def handle_miss(self, u):
        k = PacketKey(u.key)
        if k.in_port is None or k.src is None or k.in_port not in self.ports:
            return
        now = time.monotonic()
        self.learn(k, now)
        outs = self.decide(k)
        actions = b"".join(nla_u32(U.OVS_ACTION_ATTR_OUTPUT, p) for p in outs)
        key, mask = k.flow_key_and_mask()
        ufid = os.urandom(16)
        try:
            self.ctl.flow_new(self.dp_ifindex, key, actions, mask=mask, ufid=ufid, echo=False)
            self.flows[ufid] = (k.in_port, k.vid, k.src, k.dst)
            self.n_installed += 1
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise
        if outs:
            self.ctl.execute(self.dp_ifindex, u.packet, u.key, actions)

    # -------------------------------------------------------- maintenance
    def _revalidate(self, vid, mac):
        """Delete flows decided before ``mac`` was known where it is now."""
        stale = [ufid for ufid, (_, fvid, src, dst) in self.flows.items()
                 if fvid == vid and (dst == mac or src == mac)]
        for ufid in stale:
            self._delete(ufid)

    def _forget_port(self, port_no):
        self.ports.discard(port_no)
        for key in [k for k, v in self.macs.items() if v[0] == port_no]:
            del self.macs[key]
        for ufid in [u for u, f in self.flows.items() if f[0] == port_no]:
            self._delete(ufid)
        # flows that output to the port are stale too
        self.ctl.flow_flush(self.dp_ifindex)
        self.flows.clear()

    def _delete(self, ufid):
        self.flows.pop(ufid, None)
        try:
            self.ctl.flow_del(self.dp_ifindex, ufid=ufid, echo=False)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise

    def sweep(self):
        """Expire idle flows and aged MAC entries.

        A flow that carried traffic since the last look keeps alive the MAC
        entry it was decided from (its source, on its input port), as OVS's
        revalidators re-run the learning of flows in use: steady traffic
        that only hits flows never reaches switchd, and must not age out.
        """
        now = time.monotonic()
        now_ms = time.monotonic_ns() // 1_000_000
        try:
            flows = self.ctl.flow_dump(self.dp_ifindex, ufid_flags=U.OVS_UFID_F_OMIT_KEY
                                       | U.OVS_UFID_F_OMIT_MASK | U.OVS_UFID_F_OMIT_ACTIONS)
        except OSError as e:
            log.warning("switchd: flow dump failed: %s", e)
            flows = None
        if flows is not None:
            present = set()
            for f in flows:
                if f.ufid is None:
                    continue
                present.add(f.ufid)
                born = self._born.setdefault(f.ufid, now_ms)
                last = f.used or born
                if now_ms - last > self.flow_idle * 1000:
                    log.debug("switchd: expiring idle flow %s", f.ufid.hex())
                    self._delete(f.ufid)
                    del self._born[f.ufid]
                    continue
                info = self.flows.get(f.ufid)
                if info is not None and f.used:
                    in_port, vid, src, _ = info
                    entry = self.macs.get((vid, src))
                    used_at = now - (now_ms - f.used) / 1000
                    if entry is not None and entry[0] == in_port and used_at > entry[1]:
                        self.macs[(vid, src)] = (in_port, used_at)
            for ufid in [u for u in self._born if u not in present]:
                del self._born[ufid]            # deleted, by us or by someone else
        for key in [k for k, v in self.macs.items() if now - v[1] > self.mac_aging]:
            log.debug("switchd: %s on vlan %d aged out", mac_str(key[1]), key[0])
            del self.macs[key]
            self._revalidate(key[0], key[1])
