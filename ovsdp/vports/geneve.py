"""The geneve vport type (vport-geneve.c).

See :mod:`.tunnel` for what all tunnel ports share; the wire format is
:mod:`.encap`'s.
"""

import errno

from .. import uapi as U
from ..netlink.attr import NetlinkError
from . import encap as E
from .tunnel import (
    F_CRIT_OPT,
    F_GENEVE_OPT,
    F_KEY,
    F_OAM,
    TxError,
    UdpTunnelOps,
    UdpTunnelVport,
    vlan_inet_prepare,
)

GENEVE_MTU = 65535 - 16 - 14 - 40    # geneve: IP_MAX_MTU - base hlen - ETH - IPv6


class GeneveVport(UdpTunnelVport):
    mtu_default = GENEVE_MTU
    zero_csum6_ok = False                       # use_udp6_rx_checksums
    port_range = (1, 65535)

    def open_sockets(self):
        for v in self.dp.net.vports_by_name.values():
            if (v is not self and isinstance(v, GeneveVport) and v.dst_port == self.dst_port
                    and v._claim is not None):
                raise NetlinkError(errno.EPERM, "there can be only one externally controlled "
                                   f"Geneve device on port {self.dst_port} ({v.name})")
        super().open_sockets()

    def decap(self, udp, flags):
        vni, oam, crit, opts, inner = E.geneve_decap(udp)
        flags |= F_KEY | (F_OAM if oam else 0) | (F_CRIT_OPT if crit else 0)
        if opts:
            flags |= F_GENEVE_OPT
        return vni, flags, opts, inner, 0

    def encapsulate(self, frame, tk):
        if tk.family == E.AF_INET and not tk.dst:
            raise TxError("tx_errors", "no destination")
        if not vlan_inet_prepare(frame):
            raise TxError("tx_errors", "inner IP header cut short")
        # options_len / 4 words; options copied only with TUN_F_GENEVE_OPT
        opts = tk.opts if tk.flags & F_GENEVE_OPT else bytes(len(tk.opts))
        opts += bytes(-len(opts) % 4)
        hdr = E.geneve_header(tk.tun_id, tk.flags & F_OAM, tk.flags & F_CRIT_OPT, opts)
        return self._udp_encap(frame, tk, self.dst_port, hdr)

    def fill_key(self, tk, frame):
        self._fill_udp(tk, frame, self.dst_port)


class GeneveOps(UdpTunnelOps):
    type = U.OVS_VPORT_TYPE_GENEVE
    name = "geneve"
    vport_class = GeneveVport
