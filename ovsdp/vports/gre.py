"""The gre vport type (vport-gre.c): Ethernet over GRE, IPv4.

See :mod:`.tunnel` for what all tunnel ports share; the wire format is
:mod:`.encap`'s.
"""

import errno
import socket

from .. import uapi as U
from ..datapath.checksum import inet_csum
from ..datapath.vport import VportOps
from ..netlink.attr import NetlinkError
from . import encap as E
from .tunnel import (
    F_CSUM,
    F_DF,
    F_KEY,
    Encap,
    TunnelVport,
    TxError,
    check_ip_size,
    check_name,
    vlan_inet_prepare,
)
from .tunnel_socket import RET_ALL, big_rcvbuf, raw_socket

GRE_MTU = 65535 - 4 - 20 - 14        # gretap: IP_MAX_MTU - GRE - IPv4 - ETH


class GreVport(TunnelVport):
    mtu_default = GRE_MTU

    def __init__(self, ops, parms):
        super().__init__(ops, parms)
        self._rx = None

    def open_sockets(self):
        for v in self.dp.net.vports_by_name.values():
            if v is not self and isinstance(v, GreVport) and v._rx is not None:
                raise NetlinkError(errno.EEXIST, f"{v.name} is this namespace's GRE port")
        self._rx = self._sock(raw_socket(socket.AF_INET, E.IPPROTO_GRE, (RET_ALL,)))
        big_rcvbuf(self._rx)
        self._reader(self._rx, self._read)

    def destroy(self):
        super().destroy()
        self._rx = None

    def _read(self):
        if self._read_raw4("_rx"):
            self.loop.call_soon(self._read)

    def receive_ipv4(self, pkt):
        """A whole IPv4 packet (a raw socket's read) carrying GRE."""
        ip = E.parse_ipv4(pkt)
        if ip is None:
            return
        ihl, tos, df, ttl, proto, src, dst, tot = ip
        if proto != E.IPPROTO_GRE:
            return
        try:
            gre = pkt[ihl:tot]
            gflags, key, gproto, hlen, inner, csum_ok = E.gre_decap(gre)
            if not csum_ok:
                full = E.complete_partial_csum(inner)
                if full is inner or inet_csum(gre[:hlen], full):
                    raise E.Drop(None, "bad GRE checksum")
                inner = full
            if gproto != E.ETH_P_TEB:
                raise E.Drop(None, "not Ethernet over GRE")
            if len(inner) < E.ETH_HLEN:
                raise E.Drop(None, "inner frame shorter than an Ethernet header")
            if gflags & E.GRE_CSUM:
                # ip_tunnel_rcv(): the collect_md device's i_flags have no
                # CSUM, so a checksummed packet is a CRC error
                raise E.Drop("rx_errors", "GRE checksum present")
        except E.Drop as d:
            self._drop(d)
            return
        flags = (F_KEY if key is not None else 0) | (F_DF if df else 0)
        meta = E.tunnel_meta(E.AF_INET, src, dst, tos, ttl, 0, 0, flags, key or 0)
        self.deliver(meta, inner, tos, len)

    def encapsulate(self, frame, tk):
        if tk.family != E.AF_INET:
            raise TxError("tx_dropped", "GRE tunnels are IPv4")
        if not vlan_inet_prepare(frame):
            raise TxError("tx_dropped", "inner IP header cut short")
        if not tk.dst:
            raise TxError("tx_errors", "no destination")
        inherit = E.inner_ttl_tos(frame)
        tos = tk.tos
        if tos == 1 and inherit is not None:
            tos = inherit[1]
        ttl = tk.ttl
        if not ttl and inherit is not None:
            ttl = inherit[0]
        key = tk.tun_id & 0xFFFFFFFF if tk.flags & F_KEY else None
        payload = E.gre_header(E.ETH_P_TEB, key, tk.flags & F_CSUM, frame) + frame
        check_ip_size(E.AF_INET, len(payload))
        return Encap(E.AF_INET, tk.src, tk.dst, E.ecn_encapsulate(tos, frame), ttl,
                     bool(tk.flags & F_DF), E.IPPROTO_GRE, payload)

    def fill_key(self, tk, frame):
        if tk.family != E.AF_INET:
            raise TxError(None, "GRE tunnels are IPv4")
        if not tk.src:
            tk.src = self.route_source(tk.family, tk.dst)

    def fill_metadata_dst(self, skb):
        if skb.tun_info is not None and E.TunKey(skb.tun_info.key).family != E.AF_INET:
            return errno.EINVAL
        return super().fill_metadata_dst(skb)


class GreOps(VportOps):
    type = U.OVS_VPORT_TYPE_GRE
    name = "gre"

    def create(self, parms):
        check_name(parms.dp.net, parms.name)
        vport = GreVport(self, parms)
        vport.ifindex = self.module.virtual_ifindex()
        return vport
