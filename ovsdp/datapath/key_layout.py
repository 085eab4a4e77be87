"""The internal flow key (struct sw_flow_key) as one Python int.

A flow key is an ``int`` whose bit ranges hold the fields of the kernel's
``struct sw_flow_key``; a mask is an int of the same layout (1 = the bit
matters).  Masking is one ``&``, comparing is ``==``, a megaflow subtable is a
dict from ``key & mask`` to the flow.

The low 432 bits are laid out like the first 54 bytes of an untagged
Ethernet + IPv4 (no options) + TCP frame read as one big-endian number, so
that the common case is extracted with a single ``int.from_bytes`` and one
``&`` (see flow_key.extract).  Bytes of that image which a key never needs
(IP total length, id, checksum, TCP sequence numbers, ...) hold other fields
which are zero in that common case.  Everything else sits above bit 432, the
rarely-set fields highest, so that typical keys stay short ints.

Field values are numbers in network order (a MAC is the 48-bit number its
six bytes spell; an IPv6 address the 128-bit number of its bytes).  Fields
that mean the same as in the kernel keep the kernel's conventions:

- ``vlan_tci``/``cvlan_tci`` hold the TCI with VLAN_CFI_MASK (0x1000) set
  when a tag is present, 0 when not; ``vlan_tpid``/``cvlan_tpid`` the TPID.
- ``eth_type`` is the type after any VLAN tags; ETH_P_802_2 (0x0004) for
  802.2 frames.
- ``ip_proto``, ``ip_tos``, ``ip_ttl``, ``ip_frag`` are shared by IPv4 and
  IPv6 (proto/tclass/hlimit); for ARP ``ip_proto`` holds the opcode.
- ``ipv4_src``/``ipv4_dst`` also hold ARP's sip/tip.
- ``tp_src``/``tp_dst`` hold L4 ports, or ICMP/ICMPv6 type and code.
- ``tcp_flags`` is the low 12 bits of the TCP offset/flags word.
- ``no_eth`` is 1 for a packet without an Ethernet header
  (MAC_PROTO_NONE), 0 for Ethernet (MAC_PROTO_ETHERNET).
- ``mpls_labels`` is the kernel's num_labels_mask: bit i set when label i
  (``mpls_lse0``..``mpls_lse2``) is present.
- ``nsh_*`` are struct ovs_key_nsh (the kernel overlays it on the IPv4/IPv6
  fields; here it has its own bits): flags (the 2 O/U bits), ttl, mdtype (the
  whole byte), np, path_hdr (SPI << 8 | SI) and ``nsh_context``, the four
  MD type 1 context words as one big-endian number (zero for MD type 2).
- ``tun_flags`` uses the TUN_F_* bits below; ``tun_proto`` is 0, AF_INET
  (2) or AF_INET6 (10); ``tun_opts`` holds ``tun_opts_len`` bytes of tunnel
  options as a big-endian number.
"""

from ..uapi.headers import (  # noqa: F401 - the ethertypes, as K.ETH_P_*
    ETH_P_802_2,
    ETH_P_8021AD,
    ETH_P_8021Q,
    ETH_P_ARP,
    ETH_P_IP,
    ETH_P_IPV6,
    ETH_P_MPLS_MC,
    ETH_P_MPLS_UC,
    ETH_P_NSH,
    ETH_P_RARP,
    ETH_P_TEB,
)

# name: (shift, width in bits)
FIELDS = {}


def _image(name, first_byte, nbytes):
    FIELDS[name] = ((54 - first_byte - nbytes) * 8, nbytes * 8)


# -- the 54-byte frame image (bits 0..431)
_image("eth_dst", 0, 6)
_image("eth_src", 6, 6)
_image("eth_type", 12, 2)
_image("ip_frag", 14, 1)          # IPv4 version/ihl byte in the image
_image("ip_tos", 15, 1)
_image("vlan_tci", 16, 2)         # IPv4 total length
_image("vlan_tpid", 18, 2)        # IPv4 id
_image("cvlan_tci", 20, 2)        # IPv4 flags/fragment offset
_image("ip_ttl", 22, 1)
_image("ip_proto", 23, 1)
_image("cvlan_tpid", 24, 2)       # IPv4 checksum
_image("ipv4_src", 26, 4)
_image("ipv4_dst", 30, 4)
_image("tp_src", 34, 2)
_image("tp_dst", 36, 2)
_image("arp_sha", 38, 6)          # TCP sequence number and first ack bytes
_image("ipv6_exthdrs", 44, 2)     # TCP ack, last bytes
_image("tcp_flags", 46, 2)        # TCP data offset + flags (low 12 bits used)
_image("arp_tha", 48, 6)          # TCP window, checksum, urgent pointer

IMAGE_BITS = 54 * 8

_upper = [
    ("in_port", 32),
    ("recirc_id", 32),
    ("dp_hash", 32),
    ("priority", 32),
    ("skb_mark", 32),
    ("no_eth", 8),
    ("ct_state", 8),
    ("ct_zone", 16),
    ("ct_mark", 32),
    ("ct_labels", 128),
    ("ct_orig_proto", 8),
    ("ct_orig_tp_src", 16),
    ("ct_orig_tp_dst", 16),
    ("ct_orig_src", 128),         # IPv4 address in the low 32 bits, or IPv6
    ("ct_orig_dst", 128),
    ("ipv6_src", 128),
    ("ipv6_dst", 128),
    ("ipv6_label", 32),
    ("nd_target", 128),
    ("nd_sll", 48),
    ("nd_tll", 48),
    ("mpls_lse0", 32),
    ("mpls_lse1", 32),
    ("mpls_lse2", 32),
    ("mpls_labels", 8),
    ("nsh_flags", 8),             # struct ovs_key_nsh: the base header...
    ("nsh_ttl", 8),
    ("nsh_mdtype", 8),
    ("nsh_np", 8),
    ("nsh_path_hdr", 32),         # SPI << 8 | SI
    ("nsh_context", 128),         # ...and the MD type 1 context, c1 highest
    ("tun_id", 64),
    ("tun_ipv4_src", 32),
    ("tun_ipv4_dst", 32),
    ("tun_ipv6_src", 128),
    ("tun_ipv6_dst", 128),
    ("tun_tos", 8),
    ("tun_ttl", 8),
    ("tun_tp_src", 16),
    ("tun_tp_dst", 16),
    ("tun_flags", 16),
    ("tun_proto", 8),
    ("tun_opts_len", 8),
    ("tun_opts", 255 * 8),
]
_shift = IMAGE_BITS
for _name, _width in _upper:
    FIELDS[_name] = (_shift, _width)
    _shift += _width
KEY_BITS = _shift
del _name, _width, _shift, _upper

# Convenience: shift and all-ones mask of each field, as module constants
# usable in hot code (e.g. S_IN_PORT, M_IN_PORT).
for _name, (_s, _w) in FIELDS.items():
    globals()["S_" + _name.upper()] = _s
    globals()["M_" + _name.upper()] = ((1 << _w) - 1) << _s
del _name, _s, _w

FULL_MASK = (1 << KEY_BITS) - 1

# Tunnel flag bits in the tun_flags field (kernel TUNNEL_* meanings).
TUN_F_DONT_FRAGMENT = 1 << 0
TUN_F_CSUM = 1 << 1
TUN_F_OAM = 1 << 2
TUN_F_KEY = 1 << 3
TUN_F_GENEVE_OPT = 1 << 4
TUN_F_VXLAN_OPT = 1 << 5
TUN_F_ERSPAN_OPT = 1 << 6
# Not a key bit: the kernel's IP_TUNNEL_CRIT_OPT, set only in a set(tunnel())
# action's TunnelInfo when a Geneve option has the critical bit
# (validate_geneve_opts); the Geneve sender copies it into the header's C bit.
TUN_F_CRIT_OPT = 1 << 7

VLAN_CFI_MASK = 0x1000
DP_MAX_PORTS = 65535


def get(key, name):
    """The value of field ``name`` in ``key``."""
    s, w = FIELDS[name]
    return (key >> s) & ((1 << w) - 1)


def put(key, name, value):
    """``key`` with field ``name`` replaced by ``value``."""
    s, w = FIELDS[name]
    m = (1 << w) - 1
    if value < 0 or value > m:
        raise ValueError(f"{name}={value} does not fit {w} bits")
    return (key & ~(m << s)) | (value << s)


def ones(name):
    """A mask with every bit of field ``name`` set."""
    s, w = FIELDS[name]
    return ((1 << w) - 1) << s


def make(**fields):
    """Build a key (or mask) from field values."""
    k = 0
    for name, value in fields.items():
        k = put(k, name, value)
    return k


def fields_of(key):
    """{name: value} of the non-zero fields of ``key`` (for debugging/tests)."""
    out = {}
    for name, (s, w) in FIELDS.items():
        v = (key >> s) & ((1 << w) - 1)
        if v:
            out[name] = v
    return out


def mac_int(mac):
    """'aa:bb:..' or 6 bytes -> 48-bit int."""
    if isinstance(mac, str):
        return int(mac.replace(":", ""), 16)
    return int.from_bytes(mac, "big")


def int_mac(v):
    return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))
