"""dpif: typed calls for the datapath families (lib/dpif-netlink.c's role).

Every call sends one request over a :class:`NetlinkSocket` and returns
parsed replies; errors raise ``OSError`` with the daemon's errno and
extended-ack text.  Datapaths are named by name or by dp_ifindex.
"""

import dataclasses

from .. import uapi as U
from ..netlink import attr as A
from ..netlink.attr import (
    nla,
    nla_flag,
    nla_nest,
    nla_s32,
    nla_string,
    nla_u16,
    nla_u32,
    nla_u32_array,
    nla_u64,
)
from .netlink import Message, NetlinkSocket

DEFAULT_FEATURES = U.OVS_DP_F_UNALIGNED | U.OVS_DP_F_VPORT_PIDS


@dataclasses.dataclass
class DatapathInfo:
    ifindex: int
    name: str
    n_hit: int = 0
    n_missed: int = 0
    n_lost: int = 0
    n_flows: int = 0
    n_mask_hit: int = 0
    n_masks: int = 0
    n_cache_hit: int = 0
    user_features: int = 0
    masks_cache_size: int = 0
    per_cpu_pids: tuple = ()

    @classmethod
    def from_msg(cls, m):
        a = m.attrs
        info = cls(m.dp_ifindex, A.get_string(a.get(U.OVS_DP_ATTR_NAME, b"")))
        if U.OVS_DP_ATTR_STATS in a:
            info.n_hit, info.n_missed, info.n_lost, info.n_flows = \
                U.OVS_DP_STATS.unpack_from(a[U.OVS_DP_ATTR_STATS])
        if U.OVS_DP_ATTR_MEGAFLOW_STATS in a:
            info.n_mask_hit, info.n_masks, _, info.n_cache_hit, _ = \
                U.OVS_DP_MEGAFLOW_STATS.unpack_from(a[U.OVS_DP_ATTR_MEGAFLOW_STATS])
        if U.OVS_DP_ATTR_USER_FEATURES in a:
            info.user_features = A.get_u32(a[U.OVS_DP_ATTR_USER_FEATURES])
        if U.OVS_DP_ATTR_MASKS_CACHE_SIZE in a:
            info.masks_cache_size = A.get_u32(a[U.OVS_DP_ATTR_MASKS_CACHE_SIZE])
        if U.OVS_DP_ATTR_PER_CPU_PIDS in a:
            info.per_cpu_pids = tuple(A.get_u32_array(a[U.OVS_DP_ATTR_PER_CPU_PIDS]))
        return info


VPORT_STAT_NAMES = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors",
                    "tx_errors", "rx_dropped", "tx_dropped")


@dataclasses.dataclass
class VportInfo:
    dp_ifindex: int
    port_no: int
    type: int
    name: str
    ifindex: int = 0
    netnsid: int = None
    stats: dict = dataclasses.field(default_factory=dict)
    upcall_pids: tuple = ()
    upcall_success: int = 0
    upcall_fail: int = 0
    options: bytes = None

    @property
    def type_name(self):
        return U.VPORT_TYPE_NAMES.get(self.type, f"type{self.type}")

    @property
    def dst_port(self):
        for t, p, _ in A.iter_attrs(self.options or b""):
            if t & U.NLA_TYPE_MASK == U.OVS_TUNNEL_ATTR_DST_PORT:
                return A.get_u16(p)
        return None

    @classmethod
    def from_msg(cls, m):
        a = m.attrs
        info = cls(m.dp_ifindex, A.get_u32(a[U.OVS_VPORT_ATTR_PORT_NO]),
                   A.get_u32(a[U.OVS_VPORT_ATTR_TYPE]),
                   A.get_string(a[U.OVS_VPORT_ATTR_NAME]))
        if U.OVS_VPORT_ATTR_IFINDEX in a:
            info.ifindex = A.get_u32(a[U.OVS_VPORT_ATTR_IFINDEX])
        if U.OVS_VPORT_ATTR_NETNSID in a:
            info.netnsid = A.get_s32(a[U.OVS_VPORT_ATTR_NETNSID])
        if U.OVS_VPORT_ATTR_STATS in a:
            values = U.OVS_VPORT_STATS.unpack_from(a[U.OVS_VPORT_ATTR_STATS])
            info.stats = dict(zip(VPORT_STAT_NAMES, values, strict=True))
        if U.OVS_VPORT_ATTR_UPCALL_PID in a:
            info.upcall_pids = tuple(A.get_u32_array(a[U.OVS_VPORT_ATTR_UPCALL_PID]))
        if U.OVS_VPORT_ATTR_UPCALL_STATS in a:
            for t, p, _ in A.iter_attrs(a[U.OVS_VPORT_ATTR_UPCALL_STATS]):
                if t == U.OVS_VPORT_UPCALL_ATTR_SUCCESS:
                    info.upcall_success = A.get_u64(p)
                elif t == U.OVS_VPORT_UPCALL_ATTR_FAIL:
                    info.upcall_fail = A.get_u64(p)
        if U.OVS_VPORT_ATTR_OPTIONS in a:
            info.options = a[U.OVS_VPORT_ATTR_OPTIONS]
        return info


@dataclasses.dataclass
class FlowInfo:
    dp_ifindex: int
    ufid: bytes = None
    key: bytes = None            # masked key (or unmasked when the flow has no UFID)
    unmasked_key: bytes = None
    mask: bytes = None
    actions: bytes = None
    packets: int = 0
    bytes: int = 0
    used: int = 0
    tcp_flags: int = 0

    @classmethod
    def from_msg(cls, m):
        info = cls(m.dp_ifindex)
        keys = []
        for t, p, _ in A.iter_attrs(m.raw[U.NLMSG_HDRLEN + U.GENL_HDRLEN + 4:m.hdr.len]):
            t &= U.NLA_TYPE_MASK
            if t == U.OVS_FLOW_ATTR_KEY:
                keys.append(p)
            elif t == U.OVS_FLOW_ATTR_UFID:
                info.ufid = p
            elif t == U.OVS_FLOW_ATTR_MASK:
                info.mask = p
            elif t == U.OVS_FLOW_ATTR_ACTIONS:
                info.actions = p
            elif t == U.OVS_FLOW_ATTR_STATS:
                info.packets, info.bytes = U.OVS_FLOW_STATS.unpack_from(p)
            elif t == U.OVS_FLOW_ATTR_USED:
                info.used = A.get_u64(p)
            elif t == U.OVS_FLOW_ATTR_TCP_FLAGS:
                info.tcp_flags = p[0]
        if info.ufid is None and keys:
            info.unmasked_key = info.key = keys[0]
        elif keys:
            info.key = keys[-1]
        return info


@dataclasses.dataclass
class Upcall:
    cmd: int
    dp_ifindex: int
    packet: bytes
    key: bytes
    userdata: bytes = None
    actions: bytes = None
    egress_tun_key: bytes = None
    mru: int = 0
    len: int = 0
    hash: int = 0
    portid: int = 0

    @classmethod
    def from_msg(cls, m):
        a = m.attrs
        u = cls(m.cmd, m.dp_ifindex, a.get(U.OVS_PACKET_ATTR_PACKET, b""),
                a.get(U.OVS_PACKET_ATTR_KEY, b""))
        u.userdata = a.get(U.OVS_PACKET_ATTR_USERDATA)
        u.actions = a.get(U.OVS_PACKET_ATTR_ACTIONS)
        u.egress_tun_key = a.get(U.OVS_PACKET_ATTR_EGRESS_TUN_KEY)
        if U.OVS_PACKET_ATTR_MRU in a:
            u.mru = A.get_u16(a[U.OVS_PACKET_ATTR_MRU])
        if U.OVS_PACKET_ATTR_LEN in a:
            u.len = A.get_u32(a[U.OVS_PACKET_ATTR_LEN])
        if U.OVS_PACKET_ATTR_HASH in a:
            u.hash = A.get_u64(a[U.OVS_PACKET_ATTR_HASH])
        return u


@dataclasses.dataclass
class MeterStats:
    """A meter's statistics (OVS_METER_CMD_GET/DEL/SET replies)."""

    meter_id: int
    packets: int = 0
    bytes: int = 0
    used_ms: int = 0
    bands: list = dataclasses.field(default_factory=list)    # [(packets, bytes)]

    @classmethod
    def from_msg(cls, m):
        st = cls(A.get_u32(m.attrs[U.OVS_METER_ATTR_ID]))
        if U.OVS_METER_ATTR_STATS in m.attrs:
            st.packets, st.bytes = U.OVS_FLOW_STATS.unpack(m.attrs[U.OVS_METER_ATTR_STATS])
        if U.OVS_METER_ATTR_USED in m.attrs:
            st.used_ms = A.get_u64(m.attrs[U.OVS_METER_ATTR_USED])
        for _, band, _ in A.iter_attrs(m.attrs.get(U.OVS_METER_ATTR_BANDS, b"")):
            for t, p, _ in A.iter_attrs(band):
                if t & U.NLA_TYPE_MASK == U.OVS_BAND_ATTR_STATS:
                    st.bands.append(U.OVS_FLOW_STATS.unpack(p))
        return st


class Dpif:
    """The datapath interface over one control connection."""

    def __init__(self, path=None, timeout=10.0, sock=None):
        self.sock = sock or NetlinkSocket(path, timeout)
        self._dp_ifindex = {}

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def portid(self):
        return self.sock.learn_portid()

    def _req(self, family, cmd, dp_ifindex, attrs=b"", flags=0, dump=False):
        body = U.OVS_HEADER.pack(dp_ifindex) + attrs
        return self.sock.genl_request(family, cmd, body, flags, dump)

    def ifindex(self, dp):
        """dp_ifindex of a datapath given by name (or an int, returned as is)."""
        if isinstance(dp, int):
            return dp
        idx = self._dp_ifindex.get(dp)
        if idx is None:
            idx = self._dp_ifindex[dp] = self.dp_get(dp).ifindex
        return idx

    # ----------------------------------------------------------- datapaths
    def dp_new(self, name, upcall_pid=None, user_features=DEFAULT_FEATURES,
               masks_cache_size=None, per_cpu_pids=None, ifindex=None):
        attrs = [nla_string(U.OVS_DP_ATTR_NAME, name),
                 nla_u32(U.OVS_DP_ATTR_UPCALL_PID, self.portid if upcall_pid is None
                         else upcall_pid)]
        if user_features is not None:
            attrs.append(nla_u32(U.OVS_DP_ATTR_USER_FEATURES, user_features))
        if masks_cache_size is not None:
            attrs.append(nla_u32(U.OVS_DP_ATTR_MASKS_CACHE_SIZE, masks_cache_size))
        if per_cpu_pids is not None:
            attrs.append(nla_u32_array(U.OVS_DP_ATTR_PER_CPU_PIDS, per_cpu_pids))
        if ifindex is not None:
            attrs.append(nla_s32(U.OVS_DP_ATTR_IFINDEX, ifindex))
        msgs = self._req(U.OVS_DATAPATH_FAMILY, U.OVS_DP_CMD_NEW, 0, b"".join(attrs),
                         U.NLM_F_ECHO)
        info = DatapathInfo.from_msg(msgs[0])
        self._dp_ifindex[name] = info.ifindex
        return info

    def _dp_attrs(self, dp):
        if isinstance(dp, str):
            return 0, nla_string(U.OVS_DP_ATTR_NAME, dp)
        return dp, b""

    def dp_del(self, dp):
        idx, attrs = self._dp_attrs(dp)
        msgs = self._req(U.OVS_DATAPATH_FAMILY, U.OVS_DP_CMD_DEL, idx, attrs, U.NLM_F_ECHO)
        if isinstance(dp, str):
            self._dp_ifindex.pop(dp, None)
        return DatapathInfo.from_msg(msgs[0]) if msgs else None

    def dp_get(self, dp):
        idx, attrs = self._dp_attrs(dp)
        return DatapathInfo.from_msg(self._req(U.OVS_DATAPATH_FAMILY, U.OVS_DP_CMD_GET, idx,
                                               attrs)[0])

    def dp_set(self, dp, user_features=None, masks_cache_size=None, per_cpu_pids=None):
        idx, attrs = self._dp_attrs(dp)
        parts = [attrs]
        if user_features is not None:
            parts.append(nla_u32(U.OVS_DP_ATTR_USER_FEATURES, user_features))
        if masks_cache_size is not None:
            parts.append(nla_u32(U.OVS_DP_ATTR_MASKS_CACHE_SIZE, masks_cache_size))
        if per_cpu_pids is not None:
            parts.append(nla_u32_array(U.OVS_DP_ATTR_PER_CPU_PIDS, per_cpu_pids))
        msgs = self._req(U.OVS_DATAPATH_FAMILY, U.OVS_DP_CMD_SET, idx, b"".join(parts),
                         U.NLM_F_ECHO)
        return DatapathInfo.from_msg(msgs[0])

    def dp_dump(self):
        return [DatapathInfo.from_msg(m)
                for m in self._req(U.OVS_DATAPATH_FAMILY, U.OVS_DP_CMD_GET, 0, dump=True)]

    # -------------------------------------------------------------- vports
    @staticmethod
    def tunnel_options(dst_port=None, gbp=False):
        parts = []
        if dst_port is not None:
            parts.append(nla_u16(U.OVS_TUNNEL_ATTR_DST_PORT, dst_port))
        if gbp:
            parts.append(nla_nest(U.OVS_TUNNEL_ATTR_EXTENSION, nla_flag(U.OVS_VXLAN_EXT_GBP)))
        return b"".join(parts)

    def vport_new(self, dp, name, vtype, port_no=None, options=None, upcall_pids=None):
        if isinstance(vtype, str):
            vtype = U.VPORT_TYPE_BY_NAME[vtype]
        pids = [self.portid] if upcall_pids is None else list(upcall_pids)
        attrs = [nla_string(U.OVS_VPORT_ATTR_NAME, name), nla_u32(U.OVS_VPORT_ATTR_TYPE, vtype),
                 nla_u32_array(U.OVS_VPORT_ATTR_UPCALL_PID, pids)]
        if port_no is not None:
            attrs.append(nla_u32(U.OVS_VPORT_ATTR_PORT_NO, port_no))
        if options is not None:
            attrs.append(nla_nest(U.OVS_VPORT_ATTR_OPTIONS, options))
        msgs = self._req(U.OVS_VPORT_FAMILY, U.OVS_VPORT_CMD_NEW, self.ifindex(dp),
                         b"".join(attrs), U.NLM_F_ECHO)
        return VportInfo.from_msg(msgs[0])

    def _vport_ident(self, dp, name, port_no):
        if name is not None:
            return (self.ifindex(dp) if dp is not None else 0,
                    nla_string(U.OVS_VPORT_ATTR_NAME, name))
        return self.ifindex(dp), nla_u32(U.OVS_VPORT_ATTR_PORT_NO, port_no)

    def vport_del(self, dp=None, name=None, port_no=None):
        idx, attrs = self._vport_ident(dp, name, port_no)
        msgs = self._req(U.OVS_VPORT_FAMILY, U.OVS_VPORT_CMD_DEL, idx, attrs, U.NLM_F_ECHO)
        return VportInfo.from_msg(msgs[0]) if msgs else None

    def vport_get(self, dp=None, name=None, port_no=None):
        idx, attrs = self._vport_ident(dp, name, port_no)
        return VportInfo.from_msg(self._req(U.OVS_VPORT_FAMILY, U.OVS_VPORT_CMD_GET, idx,
                                            attrs)[0])

    def vport_set(self, dp=None, name=None, port_no=None, vtype=None, options=None,
                  upcall_pids=None):
        idx, attrs = self._vport_ident(dp, name, port_no)
        parts = [attrs]
        if vtype is not None:
            if isinstance(vtype, str):
                vtype = U.VPORT_TYPE_BY_NAME[vtype]
            parts.append(nla_u32(U.OVS_VPORT_ATTR_TYPE, vtype))
        if options is not None:
            parts.append(nla_nest(U.OVS_VPORT_ATTR_OPTIONS, options))
        if upcall_pids is not None:
            parts.append(nla_u32_array(U.OVS_VPORT_ATTR_UPCALL_PID, list(upcall_pids)))
        msgs = self._req(U.OVS_VPORT_FAMILY, U.OVS_VPORT_CMD_SET, idx, b"".join(parts),
                         U.NLM_F_ECHO)
        return VportInfo.from_msg(msgs[0])

    def vport_dump(self, dp):
        return [VportInfo.from_msg(m) for m in
                self._req(U.OVS_VPORT_FAMILY, U.OVS_VPORT_CMD_GET, self.ifindex(dp), dump=True)]

    # --------------------------------------------------------------- flows
    @staticmethod
    def _flow_attrs(key=None, mask=None, actions=None, ufid=None, ufid_flags=None,
                    clear=False, probe=False):
        parts = []
        if key is not None:
            parts.append(nla_nest(U.OVS_FLOW_ATTR_KEY, key))
        if actions is not None:
            parts.append(nla_nest(U.OVS_FLOW_ATTR_ACTIONS, actions))
        if clear:
            parts.append(nla_flag(U.OVS_FLOW_ATTR_CLEAR))
        if mask is not None:
            parts.append(nla_nest(U.OVS_FLOW_ATTR_MASK, mask))
        if probe:
            parts.append(nla_flag(U.OVS_FLOW_ATTR_PROBE))
        if ufid is not None:
            parts.append(nla(U.OVS_FLOW_ATTR_UFID, ufid))
        if ufid_flags is not None:
            parts.append(nla_u32(U.OVS_FLOW_ATTR_UFID_FLAGS, ufid_flags))
        return b"".join(parts)

    def flow_new(self, dp, key, actions, mask=None, ufid=None, create=True, echo=True,
                 probe=False):
        """OVS_FLOW_CMD_NEW; with ``create`` an existing flow is EEXIST."""
        flags = (U.NLM_F_CREATE | U.NLM_F_EXCL if create else 0) | (U.NLM_F_ECHO if echo else 0)
        msgs = self._req(U.OVS_FLOW_FAMILY, U.OVS_FLOW_CMD_NEW, self.ifindex(dp),
                         self._flow_attrs(key, mask, actions, ufid, probe=probe), flags)
        return FlowInfo.from_msg(msgs[0]) if msgs else None

    def flow_set(self, dp, key=None, actions=None, mask=None, ufid=None, clear=False,
                 echo=True):
        msgs = self._req(U.OVS_FLOW_FAMILY, U.OVS_FLOW_CMD_SET, self.ifindex(dp),
                         self._flow_attrs(key, mask, actions, ufid, clear=clear),
                         U.NLM_F_ECHO if echo else 0)
        return FlowInfo.from_msg(msgs[0]) if msgs else None

    def flow_get(self, dp, key=None, ufid=None, ufid_flags=None):
        msgs = self._req(U.OVS_FLOW_FAMILY, U.OVS_FLOW_CMD_GET, self.ifindex(dp),
                         self._flow_attrs(key, ufid=ufid, ufid_flags=ufid_flags))
        return FlowInfo.from_msg(msgs[0])

    def flow_del(self, dp, key=None, ufid=None, echo=True):
        msgs = self._req(U.OVS_FLOW_FAMILY, U.OVS_FLOW_CMD_DEL, self.ifindex(dp),
                         self._flow_attrs(key, ufid=ufid), U.NLM_F_ECHO if echo else 0)
        return FlowInfo.from_msg(msgs[0]) if msgs else None

    def flow_flush(self, dp):
        self._req(U.OVS_FLOW_FAMILY, U.OVS_FLOW_CMD_DEL, self.ifindex(dp))

    def flow_dump(self, dp, ufid_flags=None):
        attrs = self._flow_attrs(ufid_flags=ufid_flags)
        return [FlowInfo.from_msg(m) for m in
                self._req(U.OVS_FLOW_FAMILY, U.OVS_FLOW_CMD_GET, self.ifindex(dp), attrs,
                          dump=True)]

    # -------------------------------------------------------------- meters
    def meter_features(self, dp=0):
        """(max meters, max bands per meter, [band types])."""
        m = self._req(U.OVS_METER_FAMILY, U.OVS_METER_CMD_FEATURES, self.ifindex(dp))[0]
        types = []
        for _, band, _ in A.iter_attrs(m.attrs.get(U.OVS_METER_ATTR_BANDS, b"")):
            for t, p, _ in A.iter_attrs(band):
                if t & U.NLA_TYPE_MASK == U.OVS_BAND_ATTR_TYPE:
                    types.append(A.get_u32(p))
        return (A.get_u32(m.attrs[U.OVS_METER_ATTR_MAX_METERS]),
                A.get_u32(m.attrs[U.OVS_METER_ATTR_MAX_BANDS]), types)

    def meter_set(self, dp, meter_id, bands, kbps=False, clear=False):
        """OVS_METER_CMD_SET: ``bands`` is [(type, rate, burst)]; returns the
        :class:`MeterStats` carried over from a meter it replaced (if any)."""
        parts = [nla_u32(U.OVS_METER_ATTR_ID, meter_id)]
        if kbps:
            parts.append(nla_flag(U.OVS_METER_ATTR_KBPS))
        if clear:
            parts.append(nla_flag(U.OVS_METER_ATTR_CLEAR))
        parts.append(nla_nest(U.OVS_METER_ATTR_BANDS, *[
            nla_nest(U.OVS_BAND_ATTR_UNSPEC, nla_u32(U.OVS_BAND_ATTR_TYPE, t),
                     nla_u32(U.OVS_BAND_ATTR_RATE, r), nla_u32(U.OVS_BAND_ATTR_BURST, b))
            for t, r, b in bands]))
        m = self._req(U.OVS_METER_FAMILY, U.OVS_METER_CMD_SET, self.ifindex(dp),
                      b"".join(parts))[0]
        return MeterStats.from_msg(m)

    def meter_get(self, dp, meter_id):
        m = self._req(U.OVS_METER_FAMILY, U.OVS_METER_CMD_GET, self.ifindex(dp),
                      nla_u32(U.OVS_METER_ATTR_ID, meter_id))[0]
        return MeterStats.from_msg(m)

    def meter_del(self, dp, meter_id):
        """OVS_METER_CMD_DEL: the deleted meter's last statistics."""
        m = self._req(U.OVS_METER_FAMILY, U.OVS_METER_CMD_DEL, self.ifindex(dp),
                      nla_u32(U.OVS_METER_ATTR_ID, meter_id))[0]
        return MeterStats.from_msg(m)

    # -------------------------------------------------- conntrack zone limits
    @staticmethod
    def _zone_limits(entries):
        """OVS_CT_LIMIT_ATTR_ZONE_LIMIT of [(zone_id, limit)] (zone -1: the default)."""
        return nla(U.OVS_CT_LIMIT_ATTR_ZONE_LIMIT,
                   b"".join(U.OVS_ZONE_LIMIT.pack(z, lim, 0) for z, lim in entries))

    def ct_set_limits(self, limits, dp=0):
        """OVS_CT_LIMIT_CMD_SET of [(zone_id, limit)]; -1 is the default limit."""
        self._req(U.OVS_CT_LIMIT_FAMILY, U.OVS_CT_LIMIT_CMD_SET, dp,
                  self._zone_limits(limits), U.NLM_F_ECHO)

    def ct_del_limits(self, zones, dp=0):
        """OVS_CT_LIMIT_CMD_DEL of zone ids; -1 sets the default back to 0
        (unlimited).  No zones: no attribute (as dpif-netlink; EINVAL)."""
        zones = list(zones)
        attrs = self._zone_limits((z, 0) for z in zones) if zones else b""
        self._req(U.OVS_CT_LIMIT_FAMILY, U.OVS_CT_LIMIT_CMD_DEL, dp, attrs, U.NLM_F_ECHO)

    def ct_get_limits(self, zones=None, dp=0):
        """OVS_CT_LIMIT_CMD_GET: [(zone_id, limit, count)] of ``zones`` (None: the
        default and every zone with a limit of its own), in the reply's order."""
        attrs = b"" if zones is None else self._zone_limits((z, 0) for z in zones)
        m = self._req(U.OVS_CT_LIMIT_FAMILY, U.OVS_CT_LIMIT_CMD_GET, dp, attrs,
                      U.NLM_F_ECHO)[0]
        p = m.attrs.get(U.OVS_CT_LIMIT_ATTR_ZONE_LIMIT, b"")
        n = len(p) // U.OVS_ZONE_LIMIT.size
        return [U.OVS_ZONE_LIMIT.unpack_from(p, i * U.OVS_ZONE_LIMIT.size) for i in range(n)]

    # ------------------------------------------------------------- packets
    def execute(self, dp, packet, key, actions, mru=None, hash=None, upcall_pid=None,
                probe=False):
        parts = [nla(U.OVS_PACKET_ATTR_PACKET, packet), nla_nest(U.OVS_PACKET_ATTR_KEY, key),
                 nla_nest(U.OVS_PACKET_ATTR_ACTIONS, actions)]
        if probe:
            parts.append(nla_flag(U.OVS_PACKET_ATTR_PROBE))
        if mru is not None:
            parts.append(nla_u16(U.OVS_PACKET_ATTR_MRU, mru))
        if hash is not None:
            parts.append(nla_u64(U.OVS_PACKET_ATTR_HASH, hash))
        if upcall_pid is not None:
            parts.append(nla_u32(U.OVS_PACKET_ATTR_UPCALL_PID, upcall_pid))
        self._req(U.OVS_PACKET_FAMILY, U.OVS_PACKET_CMD_EXECUTE, self.ifindex(dp),
                  b"".join(parts))

    # ----------------------------------------------------- upcalls, events
    def recv_upcall(self, timeout=5.0):
        """The next MISS/ACTION upcall sent to this connection, or None."""
        fid = self.sock.family(U.OVS_PACKET_FAMILY).id
        got = self.sock.take(lambda h, raw: h.type == fid, timeout)
        if got is None:
            return None
        u = Upcall.from_msg(Message(got[0], got[1], U.OVS_HEADER_LEN))
        u.portid = self.sock.portid or 0
        return u

    def subscribe(self, family):
        """Join the multicast group of ``family`` (ovs_datapath, ovs_vport, ovs_flow)."""
        return self.sock.join(family)

    def recv_notification(self, timeout=5.0):
        """(family name, cmd, Message) of the next notification, or None."""
        ids = {f.id: f for f in self.sock.families.values() if f.groups}
        got = self.sock.take(lambda h, raw: h.type in ids, timeout)
        if got is None:
            return None
        fam = ids[got[0].type]
        m = Message(got[0], got[1], fam.hdrsize)
        return fam.name, m.cmd, m

