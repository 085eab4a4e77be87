"""NSH push and pop on a packet (net/nsh/nsh.c: nsh_push(), nsh_pop(); the
push_nsh()/pop_nsh() of net/openvswitch/actions.c; include/net/nsh.h and
include/net/tun_proto.h).

- :func:`push_nsh` prepends the header the action was validated into
  (flow_netlink_nsh.nsh_hdr_from_nlattr()).  Its next protocol is not the
  action's: Ethernet (3) for a packet with an Ethernet header, else
  tun_p_from_eth_p(skb->protocol) (EAFNOSUPPORT when there is none).  The
  packet then has no Ethernet header and protocol ETH_P_NSH.
- :func:`pop_nsh` removes the NSH header at the start of the packet
  (ENOMEM when the base header or the whole header is not there, EINVAL
  for a length below the base header, EAFNOSUPPORT for an unknown next
  protocol); the packet becomes Ethernet for next protocol 3 (ETH_P_TEB),
  else a packet without Ethernet header of the next protocol's ethertype.

Both invalidate the flow key (the kernel's invalidate_flow_key(); it is
extracted again before recirculation or conntrack).

Differences from Linux: ovsdp keeps the outer VLAN tag inside the frame
where the kernel holds it outside (hwaccel), so push_nsh on a tagged
Ethernet packet puts the tag inside the NSH payload, where the kernel would
keep it on the skb; pop_nsh works at the start of the frame, which for a
tagged Ethernet packet (only reachable with hand-made actions) is where the
kernel's skb->data is only without the tag.  The skb hash (flow_hash.py,
from the key) does not look past the NSH header, where the kernel's flow
dissector goes on to the next protocol's headers.
"""

import errno

from . import key_layout as K
from .actions_headers import _insert, _remove, no_eth

NSH_BASE_HDR_LEN = 8

# include/net/tun_proto.h
TUN_P_IPV4 = 1
TUN_P_IPV6 = 2
TUN_P_ETHERNET = 3
TUN_P_NSH = 4
TUN_P_MPLS_UC = 5
_FROM_ETH_P = {K.ETH_P_IP: TUN_P_IPV4, K.ETH_P_IPV6: TUN_P_IPV6, K.ETH_P_NSH: TUN_P_NSH,
               K.ETH_P_MPLS_UC: TUN_P_MPLS_UC, K.ETH_P_TEB: TUN_P_ETHERNET}
_TO_ETH_P = {v: k for k, v in _FROM_ETH_P.items()}

_M_NO_ETH = K.M_NO_ETH
_S_NO_ETH = K.S_NO_ETH


def tun_p_from_eth_p(proto):
    return _FROM_ETH_P.get(proto, 0)


def tun_p_to_eth_p(np_):
    return _TO_ETH_P.get(np_, 0)


def nsh_hdr_len(data, off=0):
    """nsh_hdr_len(): the header's length field in bytes."""
    return (data[off + 1] & 0x3F) << 2


def push_nsh(skb, kx, hdr):
    """push_nsh() / nsh_push(): prepend ``hdr`` (bytes of a validated header)."""
    if not no_eth(kx):
        next_proto = TUN_P_ETHERNET
    else:
        next_proto = tun_p_from_eth_p(kx.proto)
        if not next_proto:
            return errno.EAFNOSUPPORT
    if len(hdr) >= 4:
        h = bytearray(hdr)
        h[3] = next_proto
        _insert(skb, 0, bytes(h))
    else:
        # a header whose 6-bit length wrapped to 0 (248 bytes of MD2): the
        # kernel pushes nothing and still writes np at data[3]
        data = skb.writable()
        if len(data) > 3:
            data[3] = next_proto
    kx.proto = K.ETH_P_NSH
    kx.k |= 1 << _S_NO_ETH              # key->mac_proto = MAC_PROTO_NONE
    kx.invalidate()
    return 0


def pop_nsh(skb, kx):
    """pop_nsh() / nsh_pop(): remove the NSH header at the start of the packet."""
    data = skb.data
    if len(data) < NSH_BASE_HDR_LEN:
        return errno.ENOMEM
    length = nsh_hdr_len(data)
    if length < NSH_BASE_HDR_LEN:
        return errno.EINVAL
    inner = tun_p_to_eth_p(data[3])
    if len(data) < length:
        return errno.ENOMEM
    if not inner:
        return errno.EAFNOSUPPORT
    _remove(skb, 0, length)
    kx.proto = inner
    if inner == K.ETH_P_TEB:
        kx.k &= ~_M_NO_ETH              # MAC_PROTO_ETHERNET
    else:
        kx.k |= 1 << _S_NO_ETH
    kx.invalidate()
    return 0
