"""Packet hashes: the skb hash the datapath uses, its symmetric form, and
the kernel's jhash (include/linux/jhash.h).

The kernel's skb_get_hash() (net/core/flow_dissector.c) hashes the
dissector's keys with a boot-time random seed; :func:`packet_hash` hashes the
same fields of the flow key deterministically.  The HASH action
(actions.c execute_hash) and the mask cache's recirculation index
(flow_table.c) finish with :func:`jhash_1word`, as the kernel does.
"""

from .. import uapi as U
from ..uapi import headers as H
from . import key_layout as K

ETH_P_IP = K.ETH_P_IP
ETH_P_IPV6 = K.ETH_P_IPV6
FRAG_LATER = U.OVS_FRAG_TYPE_LATER
IPPROTO_TCP = H.IPPROTO_TCP
IPPROTO_UDP = H.IPPROTO_UDP
IPPROTO_SCTP = H.IPPROTO_SCTP
_S_ETH_TYPE = K.S_ETH_TYPE
_S_IPV4_DST = K.S_IPV4_DST
_S_IPV4_SRC = K.S_IPV4_SRC
_S_IPV6_DST = K.S_IPV6_DST
_S_IPV6_LABEL = K.S_IPV6_LABEL
_S_IPV6_SRC = K.S_IPV6_SRC
_S_IP_FRAG = K.S_IP_FRAG
_S_IP_PROTO = K.S_IP_PROTO
_S_TP_DST = K.S_TP_DST
_S_TP_SRC = K.S_TP_SRC
_S_VLAN_TCI = K.S_VLAN_TCI
_S_TP_PAIR = K.S_TP_DST         # tp_src directly above tp_dst: one 32-bit field


def _rol32(x, k):
    return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF


def _jhash_final(a, b, c):
    M = 0xFFFFFFFF
    c ^= b
    c = (c - _rol32(b, 14)) & M
    a ^= c
    a = (a - _rol32(c, 11)) & M
    b ^= a
    b = (b - _rol32(a, 25)) & M
    c ^= b
    c = (c - _rol32(b, 16)) & M
    a ^= c
    a = (a - _rol32(c, 4)) & M
    b ^= a
    b = (b - _rol32(a, 14)) & M
    c ^= b
    c = (c - _rol32(b, 24)) & M
    return c


JHASH_INITVAL = 0xDEADBEEF


def jhash_3words(a, b, c, initval):
    """jhash_3words() of include/linux/jhash.h."""
    iv = (initval + JHASH_INITVAL + (3 << 2)) & 0xFFFFFFFF
    return _jhash_final((a + iv) & 0xFFFFFFFF, (b + iv) & 0xFFFFFFFF,
                        (c + iv) & 0xFFFFFFFF)


def jhash_1word(a, initval):
    """jhash_1word() of include/linux/jhash.h (the HASH action's final step)."""
    iv = (initval + JHASH_INITVAL + (1 << 2)) & 0xFFFFFFFF
    return _jhash_final((a + iv) & 0xFFFFFFFF, iv, iv)


_M_TP = 0xFFFFFFFF << _S_TP_PAIR
_M16 = 0xFFFF
_M32 = 0xFFFFFFFF
_M128 = (1 << 128) - 1
_FLOW_L4 = (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP)


def _hash_fields(key):
    eth_type = (key >> _S_ETH_TYPE) & _M16
    vid = (key >> _S_VLAN_TCI) & 0x0FFF
    if eth_type == ETH_P_IP:
        return (eth_type, vid, (key >> _S_IP_PROTO) & 0xFF, (key >> _S_IPV4_SRC) & _M32,
                (key >> _S_IPV4_DST) & _M32, (key >> _S_TP_SRC) & _M16,
                (key >> _S_TP_DST) & _M16)
    if eth_type == ETH_P_IPV6:
        return (eth_type, vid, (key >> _S_IP_PROTO) & 0xFF, (key >> _S_IPV6_SRC) & _M128,
                (key >> _S_IPV6_DST) & _M128, (key >> _S_TP_SRC) & _M16,
                (key >> _S_TP_DST) & _M16)
    return (eth_type, vid, 0, 0, 0, 0, 0)


_HASH_L2 = K.M_ETH_TYPE | (0x0FFF << _S_VLAN_TCI)
_HASH_IPV4 = _HASH_L2 | K.M_IP_PROTO | K.M_IPV4_SRC | K.M_IPV4_DST | K.M_TP_SRC | K.M_TP_DST
_HASH_IPV6 = _HASH_L2 | K.M_IP_PROTO | K.M_IPV6_SRC | K.M_IPV6_DST | K.M_TP_SRC | K.M_TP_DST


def packet_hash(key):
    """A 32-bit packet hash standing in for skb_get_hash() (never 0).

    The kernel hashes the flow dissector's keys (addresses, ports, protocol,
    VLAN id) with a random boot-time seed, so its values cannot be
    reproduced; this one hashes the same fields deterministically (Python's
    hash of the key masked to them; int and tuple hashes are not seeded per
    process), so a flow always gets the same value.
    """
    eth_type = (key >> _S_ETH_TYPE) & _M16
    # (a 1-tuple: the tuple hash mixes the int's hash well in every bit)
    if eth_type == ETH_P_IP:
        h = hash((key & _HASH_IPV4,))
    elif eth_type == ETH_P_IPV6:
        h = hash((key & _HASH_IPV6,))
    else:
        h = hash((key & _HASH_L2,))
    return (h & 0xFFFFFFFF) or 1


def symmetric_hash(key):
    """Like :func:`packet_hash` but equal for both directions of a flow
    (__skb_get_hash_symmetric(): addresses and ports ordered first)."""
    t, vid, proto, src, dst, sp, dp = _hash_fields(key)
    if dst < src or (dst == src and dp < sp):
        src, dst, sp, dp = dst, src, dp, sp
    h = hash((t, vid, proto, src, dst, sp, dp, 0x5EED)) & 0xFFFFFFFF
    return h or 1


def has_l4(key):
    """flow_keys_have_l4(): the hash covers L4 ports (or an IPv6 flow label)."""
    eth_type = (key >> _S_ETH_TYPE) & _M16
    if eth_type == ETH_P_IP or eth_type == ETH_P_IPV6:
        if (key >> _S_IP_FRAG) & 0xFF != FRAG_LATER \
                and (key >> _S_IP_PROTO) & 0xFF in _FLOW_L4 and key & _M_TP:
            return True
        if eth_type == ETH_P_IPV6 and (key >> _S_IPV6_LABEL) & 0xFFFFF:
            return True
    return False
