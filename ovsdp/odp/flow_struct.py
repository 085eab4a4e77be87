"""Open vSwitch's ``struct flow`` (lib/flow.h), as odp-util's key
conversions (:mod:`.flow`) fill and read it, and how well a key fits it
(``enum odp_key_fitness``)."""

import dataclasses
import enum
import struct

from .. import uapi as U
from ._util import OdpParseError

__all__ = ["Fitness", "Flow", "FlowKeyError", "FlowTunnel"]


class Fitness(enum.IntEnum):
    """enum odp_key_fitness."""

    PERFECT = 0         # the key is exactly what was expected
    TOO_MUCH = 1        # it has attributes Open vSwitch does not expect
    TOO_LITTLE = 2      # it lacks attributes Open vSwitch expects
    ERROR = 3           # it does not convert


class FlowKeyError(OdpParseError):
    """A key that odp_flow_key_to_flow() refuses (fitness ERROR)."""

    fitness = Fitness.ERROR

    def __init__(self, message):        # not OdpParseError.__init__: no text position
        ValueError.__init__(self, message)
        self.text = ""
        self.offset = self.pos = 0
        self.reason = message


# ----------------------------------------------------------------- numbers
ETH_TYPE_MIN = 0x600
FLOW_DL_TYPE_NONE = 0x5FF
ETH_TYPE_IP, ETH_TYPE_IPV6, ETH_TYPE_ARP, ETH_TYPE_RARP = 0x0800, 0x86DD, 0x0806, 0x8035
ETH_TYPE_MPLS, ETH_TYPE_MPLS_MCAST, ETH_TYPE_NSH = 0x8847, 0x8848, 0x894F
ETH_TYPE_VLANS = (0x8100, 0x88A8)
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, IPPROTO_SCTP = 1, 6, 17, 58, 132
ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT = 135, 136
VLAN_CFI = 0x1000
MPLS_BOS_MASK = 0x100
FLOW_MAX_MPLS_LABELS = 3
FLOW_MAX_VLAN_HEADERS = 2          # flow_vlan_limit, as test-odp leaves it
FLOW_NW_FRAG_ANY, FLOW_NW_FRAG_LATER, FLOW_NW_FRAG_MASK = 1, 2, 3
ODPP_NONE = 0xFFFFFFFF
PT_ETH = 0                         # packet_type (ns=0,id=0)
OFPHTN_ETHERTYPE = 1
NSH_M_TYPE1 = 1
ODPUTIL_FLOW_KEY_BYTES = 640       # what a flow key is expected to fit in

FLOW_TNL_F_OAM, FLOW_TNL_F_DONT_FRAGMENT, FLOW_TNL_F_CSUM, FLOW_TNL_F_KEY = 1, 2, 4, 8
FLOW_TNL_F_UDPIF = 1 << 4

# Open vSwitch's numbering where it differs from or extends ovsdp's uapi:
# its key table ends at ND_EXTENSIONS, and its tunnel table goes on to GTPU_OPTS.
OVS_KEY_ATTR_MAX = U.OVS_KEY_ATTR_ND_EXTENSIONS
OVS_TUNNEL_KEY_ATTR_GTPU_OPTS = U.OVS_TUNNEL_KEY_ATTR_GTPU_OPTS
OVS_TUNNEL_KEY_ATTR_MAX = U.OVS_TUNNEL_KEY_ATTR_GTPU_OPTS

_U16, _U32, _I32 = struct.Struct("=H"), struct.Struct("=I"), struct.Struct("=i")
_BE16, _BE32, _BE64 = struct.Struct("!H"), struct.Struct("!I"), struct.Struct("!Q")
# -------------------------------------------------------------------- flow
@dataclasses.dataclass
class FlowTunnel:
    """struct flow_tnl: addresses as bytes, the rest as numbers."""

    tun_id: int = 0
    ip_src: bytes = bytes(4)
    ip_dst: bytes = bytes(4)
    ipv6_src: bytes = bytes(16)
    ipv6_dst: bytes = bytes(16)
    flags: int = 0
    ip_tos: int = 0
    ip_ttl: int = 0
    tp_src: int = 0
    tp_dst: int = 0
    gbp_id: int = 0
    gbp_flags: int = 0
    erspan_ver: int = 0
    erspan_idx: int = 0
    erspan_dir: int = 0
    erspan_hwid: int = 0
    gtpu_flags: int = 0
    gtpu_msgtype: int = 0
    geneve: bytes = b""          # raw options (UDPIF form), with FLOW_TNL_F_UDPIF

    def is_set(self):
        """flow_tnl_dst_is_set() or flow_tnl_src_is_set()."""
        return any(a.strip(b"\0") for a in (self.ip_dst, self.ipv6_dst, self.ip_src,
                                             self.ipv6_src))


def _zeros(n):
    return dataclasses.field(default_factory=lambda: [0] * n)


@dataclasses.dataclass
class Flow:
    """The fields of struct flow that flow keys carry.

    Numbers are host order (``dl_type`` 0x0800, ``tp_src`` 80); addresses
    are bytes as on the wire; ``vlans`` is [[tpid, tci], ...] outermost
    first; ``nsh`` is (flags, ttl, mdtype, np, path_hdr, (c1, c2, c3, c4)).
    """

    recirc_id: int = 0
    dp_hash: int = 0
    skb_priority: int = 0
    pkt_mark: int = 0
    ct_state: int = 0
    ct_zone: int = 0
    ct_mark: int = 0
    ct_label: bytes = bytes(16)
    ct_nw_src: int = 0
    ct_nw_dst: int = 0
    ct_ipv6_src: bytes = bytes(16)
    ct_ipv6_dst: bytes = bytes(16)
    ct_nw_proto: int = 0
    ct_tp_src: int = 0
    ct_tp_dst: int = 0
    tunnel: FlowTunnel = dataclasses.field(default_factory=FlowTunnel)
    in_port: int = 0
    packet_type: int = 0
    dl_src: bytes = bytes(6)
    dl_dst: bytes = bytes(6)
    dl_type: int = 0
    vlans: list = dataclasses.field(default_factory=lambda: [[0, 0] for _ in
                                                             range(FLOW_MAX_VLAN_HEADERS)])
    mpls_lse: list = _zeros(FLOW_MAX_MPLS_LABELS)
    nw_src: int = 0
    nw_dst: int = 0
    ipv6_src: bytes = bytes(16)
    ipv6_dst: bytes = bytes(16)
    ipv6_label: int = 0
    nw_proto: int = 0
    nw_tos: int = 0
    nw_ttl: int = 0
    nw_frag: int = 0
    tp_src: int = 0
    tp_dst: int = 0
    tcp_flags: int = 0
    arp_sha: bytes = bytes(6)
    arp_tha: bytes = bytes(6)
    nd_target: bytes = bytes(16)
    igmp_group_ip4: int = 0
    nsh: tuple = (0, 0, 0, 0, 0, (0, 0, 0, 0))

    def get_dl_type(self):
        if self.packet_type == PT_ETH:
            return self.dl_type
        if self.packet_type >> 16 == OFPHTN_ETHERTYPE:
            return self.packet_type & 0xFFFF
        return FLOW_DL_TYPE_NONE

    def is_ip_any(self):
        return self.get_dl_type() in (ETH_TYPE_IP, ETH_TYPE_IPV6)

    def is_nd(self):
        return (self.get_dl_type() == ETH_TYPE_IPV6 and self.nw_proto == IPPROTO_ICMPV6
                and self.tp_dst == 0
                and self.tp_src in (ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT))

    def count_mpls_labels(self):
        """flow_count_mpls_labels()."""
        if self.dl_type not in (ETH_TYPE_MPLS, ETH_TYPE_MPLS_MCAST):
            return 0
        n = 0
        for i, lse in enumerate(self.mpls_lse):
            if lse & MPLS_BOS_MASK:
                return i + 1
            n += bool(lse)
        return n
