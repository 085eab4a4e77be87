"""The actions that rewrite a packet's headers (net/openvswitch/actions.c):
set and set_masked of every key field, push/pop of VLAN tags, MPLS labels
and Ethernet headers, with the kernel's checksum updates; and the flow key
state (:class:`Key`) the interpreter in :mod:`.actions` keeps beside the
packet.  Each keeps the key in step with the packet as the kernel does.
"""

import errno
import struct

from .. import uapi as U
from ..uapi import headers as H
from . import checksum as CS
from . import flow_key as FK
from . import key_layout as K

ETH_HLEN = 14
VLAN_HLEN = 4
MPLS_HLEN = 4
MAX_L2_LEN = ETH_HLEN + VLAN_HLEN + 3 * MPLS_HLEN
VLAN_CFI_MASK = K.VLAN_CFI_MASK
_VLAN_TPIDS = (K.ETH_P_8021Q, K.ETH_P_8021AD)
_MPLS_TYPES = (K.ETH_P_MPLS_UC, K.ETH_P_MPLS_MC)

IPPROTO_TCP = H.IPPROTO_TCP
IPPROTO_UDP = H.IPPROTO_UDP
IPPROTO_ICMPV6 = H.IPPROTO_ICMPV6
NEXTHDR_ROUTING = 43

_S_NO_ETH = K.S_NO_ETH
_M_NO_ETH = K.M_NO_ETH

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_NATIVE_U32 = struct.Struct("=I")
_TP = struct.Struct("!HH")
_VLAN = struct.Struct("!HH")
_KEY_IPV4 = U.OVS_KEY_IPV4
_KEY_IPV6 = U.OVS_KEY_IPV6
_M128 = (1 << 128) - 1


# ------------------------------------------------------------- flow key state
class Key:
    """The sw_flow_key being acted on: a mutable cell around the key int.

    ``valid`` is cleared by actions that change the packet layout
    (SW_FLOW_KEY_INVALID); ``proto`` is skb->protocol for a packet without
    Ethernet header; ``ly`` caches the packet's Layers (header offsets)
    until the layout changes.
    """

    __slots__ = ("k", "valid", "proto", "ly")

    def __init__(self, k, valid=True, proto=0, ly=None):
        self.k = k
        self.valid = valid
        self.proto = proto
        self.ly = ly

    def copy(self):
        return Key(self.k, self.valid, self.proto, self.ly)

    def put(self, mask, shift, value):
        self.k = (self.k & ~mask) | (value << shift)

    def invalidate(self):
        self.valid = False
        self.ly = None


def no_eth(kx):
    return (kx.k >> _S_NO_ETH) & 0xFF != 0


def layers(skb, kx):
    ly = kx.ly
    if ly is None:
        if (kx.k >> _S_NO_ETH) & 0xFF:
            ly = FK.layers(skb.data, True, kx.proto)
        else:
            ly = FK.layers(skb.data)
        kx.ly = ly
    return ly


def current_key(skb, kx):
    """The key of the packet as it is now (the key itself when valid)."""
    if kx.valid:
        return kx.k
    try:
        return FK.parse(skb.data, kx.k & FK.META_MASK, no_eth(kx), kx.proto)[0]
    except FK.ExtractError as e:        # what could be parsed (only hashes use it)
        return e.result[0]


def hwaccel_len(skb, kx):
    """VLAN_HLEN when the kernel would hold the outer tag outside the frame."""
    if (kx.k >> _S_NO_ETH) & 0xFF:
        return 0
    return VLAN_HLEN if layers(skb, kx).vlan else 0


def _clear_hash(skb):
    skb.hash = 0
    skb.l4_hash = False
    skb.sw_hash = False


def ct_clear_skb(skb):
    """ovs_ct_clear(skb, NULL): detach the packet's conntrack entry."""
    skb.nfct = None


def _shift_csum_start(skb, at, delta):
    cp = skb.csum_partial
    if cp is not None and cp[0] >= at:
        skb.csum_partial = (cp[0] + delta, cp[1])


def _share_data(skb):
    """Make skb.data immutable so that a clone can share it (skb_clone)."""
    d = skb.data
    if type(d) is not bytes:
        d = skb.data = bytes(d)
    return d


def clone_skb(skb):
    _share_data(skb)
    return skb.clone()



def _get16(d, off):
    return (d[off] << 8) | d[off + 1]


def _put16(d, off, v):
    d[off] = v >> 8
    d[off + 1] = v & 0xFF


# ---------------------------------------------------------------- set actions
def _masked(old, key, mask):
    """OVS_MASKED(): the key's bits where the mask is set."""
    return key | (old & ~mask)


def _set_priority(skb, kx, value, mask):
    v = _NATIVE_U32.unpack_from(value)[0]
    m = _NATIVE_U32.unpack_from(mask)[0]
    skb.priority = _masked(skb.priority, v, m) & 0xFFFFFFFF
    kx.put(K.M_PRIORITY, K.S_PRIORITY, skb.priority)
    return 0


def _set_skb_mark(skb, kx, value, mask):
    v = _NATIVE_U32.unpack_from(value)[0]
    m = _NATIVE_U32.unpack_from(mask)[0]
    skb.mark = _masked(skb.mark, v, m) & 0xFFFFFFFF
    kx.put(K.M_SKB_MARK, K.S_SKB_MARK, skb.mark)
    return 0


def _set_eth_addr(skb, kx, value, mask):
    if len(skb.data) < ETH_HLEN:
        return errno.ENOMEM
    d = skb.writable()
    ksrc = int.from_bytes(value[0:6], "big")
    kdst = int.from_bytes(value[6:12], "big")
    msrc = int.from_bytes(mask[0:6], "big")
    mdst = int.from_bytes(mask[6:12], "big")
    dst = _masked(int.from_bytes(d[0:6], "big"), kdst, mdst) & 0xFFFFFFFFFFFF
    src = _masked(int.from_bytes(d[6:12], "big"), ksrc, msrc) & 0xFFFFFFFFFFFF
    d[0:6] = dst.to_bytes(6, "big")
    d[6:12] = src.to_bytes(6, "big")
    kx.put(K.M_ETH_DST, K.S_ETH_DST, dst)
    kx.put(K.M_ETH_SRC, K.S_ETH_SRC, src)
    return 0


def _update_ip_l4_checksum(skb, d, ly, nh, old, new):
    """update_ip_l4_checksum(): the pseudo-header part of TCP/UDP checksums."""
    if _get16(d, nh + 6) & 0x1FFF:
        return
    th = ly.transport
    if th < 0:
        return
    tlen = len(d) - th
    proto = d[nh + 9]
    partial = skb.csum_partial is not None
    if proto == IPPROTO_TCP:
        if tlen >= 20:
            CS.inet_proto_csum_replace(d, th + 16, old, new, 1, partial, True)
    elif proto == IPPROTO_UDP:
        if tlen >= 8:
            if _get16(d, th + 6) or partial:
                CS.inet_proto_csum_replace(d, th + 6, old, new, 1, partial, True)
                if not _get16(d, th + 6):
                    _put16(d, th + 6, 0xFFFF)         # CSUM_MANGLED_0


def _set_ip_addr(skb, d, ly, nh, off, old, new):
    _update_ip_l4_checksum(skb, d, ly, nh, old, new)
    CS.csum_replace4(d, nh + 10, old, new)
    _clear_hash(skb)
    ct_clear_skb(skb)
    d[off:off + 4] = new.to_bytes(4, "big")


def _ipv4_change_dsfield(d, nh, mask, value):
    """ipv4_change_dsfield(), with its own checksum arithmetic."""
    tos = d[nh + 1]
    check = _get16(d, nh + 10)
    dsfield = (tos & mask) | value
    check += tos
    if (check + 1) >> 16:
        check = (check + 1) & 0xFFFF
    check = (check - dsfield) & 0xFFFFFFFF
    check = (check + (check >> 16)) & 0xFFFFFFFF
    _put16(d, nh + 10, check & 0xFFFF)
    d[nh + 1] = dsfield


def _set_ipv4(skb, kx, value, mask):
    ly = layers(skb, kx)
    nh = ly.network
    if len(skb.data) < nh + 20:
        return errno.ENOMEM
    d = skb.writable()
    ksrc, kdst, _kp, ktos, kttl, _kf = _KEY_IPV4.unpack(value)
    msrc, mdst, _mp, mtos, mttl, _mf = _KEY_IPV4.unpack(mask)
    if msrc:
        old = _U32.unpack_from(d, nh + 12)[0]
        new = _masked(old, ksrc, msrc) & 0xFFFFFFFF
        if new != old:
            _set_ip_addr(skb, d, ly, nh, nh + 12, old, new)
            kx.put(K.M_IPV4_SRC, K.S_IPV4_SRC, new)
    if mdst:
        old = _U32.unpack_from(d, nh + 16)[0]
        new = _masked(old, kdst, mdst) & 0xFFFFFFFF
        if new != old:
            _set_ip_addr(skb, d, ly, nh, nh + 16, old, new)
            kx.put(K.M_IPV4_DST, K.S_IPV4_DST, new)
    if mtos:
        _ipv4_change_dsfield(d, nh, ~mtos & 0xFF, ktos)
        kx.put(K.M_IP_TOS, K.S_IP_TOS, d[nh + 1])
    if mttl:
        ttl = d[nh + 8]
        new = _masked(ttl, kttl, mttl) & 0xFF
        CS.csum_replace2(d, nh + 10, ttl << 8, new << 8)
        d[nh + 8] = new
        kx.put(K.M_IP_TTL, K.S_IP_TTL, new)
    return 0


def _update_ipv6_checksum(skb, d, ly, l4_proto, old, new):
    th = ly.transport
    if th < 0:
        return
    tlen = len(d) - th
    partial = skb.csum_partial is not None
    if l4_proto == IPPROTO_TCP:
        if tlen >= 20:
            CS.inet_proto_csum_replace(d, th + 16, old, new, 4, partial, True)
    elif l4_proto == IPPROTO_UDP:
        if tlen >= 8 and (_get16(d, th + 6) or partial):
            CS.inet_proto_csum_replace(d, th + 6, old, new, 4, partial, True)
            if not _get16(d, th + 6):
                _put16(d, th + 6, 0xFFFF)
    elif l4_proto == IPPROTO_ICMPV6:
        if tlen >= 8:
            CS.inet_proto_csum_replace(d, th + 2, old, new, 4, partial, True)


def _set_ipv6(skb, kx, value, mask):
    ly = layers(skb, kx)
    nh = ly.network
    if len(skb.data) < nh + 40:
        return errno.ENOMEM
    d = skb.writable()
    ksrc, kdst, klabel, _kp, ktc, khl, _kf = _KEY_IPV6.unpack(value)
    msrc, mdst, mlabel, _mp, mtc, mhl, _mf = _KEY_IPV6.unpack(mask)
    l4_proto = (kx.k >> K.S_IP_PROTO) & 0xFF          # flow_key->ip.proto
    msrc = int.from_bytes(msrc, "big")
    mdst = int.from_bytes(mdst, "big")
    if msrc:
        old = int.from_bytes(d[nh + 8:nh + 24], "big")
        new = _masked(old, int.from_bytes(ksrc, "big"), msrc) & _M128
        if new != old:
            _update_ipv6_checksum(skb, d, ly, l4_proto, old, new)
            _clear_hash(skb)
            ct_clear_skb(skb)
            d[nh + 8:nh + 24] = new.to_bytes(16, "big")
            kx.put(K.M_IPV6_SRC, K.S_IPV6_SRC, new)
    if mdst:
        old = int.from_bytes(d[nh + 24:nh + 40], "big")
        new = _masked(old, int.from_bytes(kdst, "big"), mdst) & _M128
        if new != old:
            recalc = True
            if d[nh + 6] in FK._IPV6_EXT:
                # A routing header with segments left carries the final
                # destination: the pseudo-header does not change.
                recalc = FK.ipv6_find_hdr(d, nh, NEXTHDR_ROUTING,
                                          FK.IP6_FH_F_SKIP_RH)[0] != NEXTHDR_ROUTING
            if recalc:
                _update_ipv6_checksum(skb, d, ly, l4_proto, old, new)
            _clear_hash(skb)
            ct_clear_skb(skb)
            d[nh + 24:nh + 40] = new.to_bytes(16, "big")
            kx.put(K.M_IPV6_DST, K.S_IPV6_DST, new)
    if mtc:
        old_tc = (_get16(d, nh) >> 4) & 0xFF
        tc = _masked(old_tc, ktc, mtc) & 0xFF
        # ipv6_change_dsfield(nh, ~mask, tc)
        w = (_get16(d, nh) & ((((~mtc & 0xFF) << 4) | 0xF00F))) | (tc << 4)
        _put16(d, nh, w & 0xFFFF)
        kx.put(K.M_IP_TOS, K.S_IP_TOS, (_get16(d, nh) >> 4) & 0xFF)
    if mlabel:
        ofl = (d[nh + 1] << 16) | (d[nh + 2] << 8) | d[nh + 3]
        fl = _masked(ofl, klabel, mlabel) & 0xFFFFFF   # bits 21-24 are never masked
        d[nh + 1] = fl >> 16
        d[nh + 2] = (fl >> 8) & 0xFF
        d[nh + 3] = fl & 0xFF
        kx.put(K.M_IPV6_LABEL, K.S_IPV6_LABEL, _U32.unpack_from(d, nh)[0] & 0xFFFFF)
    if mhl:
        new = _masked(d[nh + 7], khl, mhl) & 0xFF
        d[nh + 7] = new
        kx.put(K.M_IP_TTL, K.S_IP_TTL, new)
    return 0


def _set_tp_port(skb, d, off, new, check_off):
    ct_clear_skb(skb)
    old = _get16(d, off)
    CS.inet_proto_csum_replace(d, check_off, old, new, 1, skb.csum_partial is not None, False)
    _put16(d, off, new)


def _set_tcp(skb, kx, value, mask):
    th = layers(skb, kx).transport
    if th < 0 or len(skb.data) < th + 20:
        return errno.ENOMEM
    d = skb.writable()
    ksrc, kdst = _TP.unpack(value)
    msrc, mdst = _TP.unpack(mask)
    old_src, old_dst = _TP.unpack_from(d, th)
    src = _masked(old_src, ksrc, msrc) & 0xFFFF
    if src != old_src:
        _set_tp_port(skb, d, th, src, th + 16)
        kx.put(K.M_TP_SRC, K.S_TP_SRC, src)
    dst = _masked(old_dst, kdst, mdst) & 0xFFFF
    if dst != old_dst:
        _set_tp_port(skb, d, th + 2, dst, th + 16)
        kx.put(K.M_TP_DST, K.S_TP_DST, dst)
    _clear_hash(skb)
    return 0


def _set_udp(skb, kx, value, mask):
    th = layers(skb, kx).transport
    if th < 0 or len(skb.data) < th + 8:
        return errno.ENOMEM
    d = skb.writable()
    ksrc, kdst = _TP.unpack(value)
    msrc, mdst = _TP.unpack(mask)
    old_src = _get16(d, th)
    old_dst = _get16(d, th + 2)
    src = _masked(old_src, ksrc, msrc) & 0xFFFF
    dst = _masked(old_dst, kdst, mdst) & 0xFFFF
    if _get16(d, th + 6) and skb.csum_partial is None:
        if src != old_src:
            _set_tp_port(skb, d, th, src, th + 6)
            kx.put(K.M_TP_SRC, K.S_TP_SRC, src)
        if dst != old_dst:
            _set_tp_port(skb, d, th + 2, dst, th + 6)
            kx.put(K.M_TP_DST, K.S_TP_DST, dst)
        if not _get16(d, th + 6):
            _put16(d, th + 6, 0xFFFF)                 # CSUM_MANGLED_0
    else:
        _put16(d, th, src)
        _put16(d, th + 2, dst)
        kx.put(K.M_TP_SRC, K.S_TP_SRC, src)
        kx.put(K.M_TP_DST, K.S_TP_DST, dst)
        ct_clear_skb(skb)
    _clear_hash(skb)
    return 0


def _set_sctp(skb, kx, value, mask):
    th = layers(skb, kx).transport
    if th < 0 or len(skb.data) < th + 12:
        return errno.ENOMEM
    d = skb.writable()
    ksrc, kdst = _TP.unpack(value)
    msrc, mdst = _TP.unpack(mask)
    old_csum = bytes(d[th + 8:th + 12])
    old_correct = CS.sctp_compute_cksum(d, th)
    _put16(d, th, _masked(_get16(d, th), ksrc, msrc) & 0xFFFF)
    _put16(d, th + 2, _masked(_get16(d, th + 2), kdst, mdst) & 0xFFFF)
    new_csum = CS.sctp_compute_cksum(d, th)
    # Carry any checksum error through.
    x = (int.from_bytes(old_csum, "big") ^ int.from_bytes(old_correct, "big")
         ^ int.from_bytes(new_csum, "big"))
    d[th + 8:th + 12] = x.to_bytes(4, "big")
    _clear_hash(skb)
    ct_clear_skb(skb)
    kx.put(K.M_TP_SRC, K.S_TP_SRC, _get16(d, th))
    kx.put(K.M_TP_DST, K.S_TP_DST, _get16(d, th + 2))
    return 0


def _set_mpls(skb, kx, value, mask):
    ly = layers(skb, kx)
    nh = ly.network
    if len(skb.data) < nh + MPLS_HLEN:
        return errno.ENOMEM
    both = bytes(value) + bytes(mask)          # the mask follows the first LSE
    k = _U32.unpack_from(both, 0)[0]
    m = _U32.unpack_from(both, 4)[0]
    lse = _masked(_U32.unpack_from(skb.data, nh)[0], k, m) & 0xFFFFFFFF
    # skb_mpls_update_lse()
    if ly.protocol not in _MPLS_TYPES:
        return errno.EINVAL
    if len(skb.data) < ly.mac_len + MPLS_HLEN:
        return errno.ENOMEM
    d = skb.writable()
    d[nh:nh + 4] = lse.to_bytes(4, "big")
    kx.put(K.M_MPLS_LSE0, K.S_MPLS_LSE0, lse)
    return 0


def _set_einval(skb, kx, value, mask):
    return errno.EINVAL


_SETTERS = {
    U.OVS_KEY_ATTR_PRIORITY: _set_priority,
    U.OVS_KEY_ATTR_SKB_MARK: _set_skb_mark,
    U.OVS_KEY_ATTR_TUNNEL_INFO: _set_einval,      # masked tunnel set: not supported
    U.OVS_KEY_ATTR_ETHERNET: _set_eth_addr,
    U.OVS_KEY_ATTR_IPV4: _set_ipv4,
    U.OVS_KEY_ATTR_IPV6: _set_ipv6,
    U.OVS_KEY_ATTR_TCP: _set_tcp,
    U.OVS_KEY_ATTR_UDP: _set_udp,
    U.OVS_KEY_ATTR_SCTP: _set_sctp,
    U.OVS_KEY_ATTR_MPLS: _set_mpls,
    # The kernel accepts set(ct_mark/ct_labels) at validation but its
    # execute_masked_set_action() answers -EINVAL for every ct field.
    U.OVS_KEY_ATTR_CT_STATE: _set_einval,
    U.OVS_KEY_ATTR_CT_ZONE: _set_einval,
    U.OVS_KEY_ATTR_CT_MARK: _set_einval,
    U.OVS_KEY_ATTR_CT_LABELS: _set_einval,
    U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4: _set_einval,
    U.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6: _set_einval,
    # set(nsh) never passes validation (removed from Linux); its
    # execute_masked_set_action() case answers -EINVAL.
    U.OVS_KEY_ATTR_NSH: _set_einval,
}


def execute_masked_set(skb, kx, arg):
    ktype, value, mask = arg
    setter = _SETTERS.get(ktype)
    if setter is None:
        return 0                    # no case in the kernel's switch: nothing done
    return setter(skb, kx, value, mask)


# ------------------------------------------------------ VLAN / MPLS / Ethernet
def _insert(skb, at, raw):
    d = skb.writable()
    d[at:at] = raw
    _shift_csum_start(skb, at, len(raw))


def _remove(skb, at, n):
    d = skb.writable()
    del d[at:at + n]
    _shift_csum_start(skb, at, -n)


def _tag_at_front(d):
    """The outer VLAN tag the kernel would hold as hwaccel tag: 1, 0, or -1
    for a VLAN TPID in a frame too short to pop it (skb_ensure_writable())."""
    if len(d) >= 14 and _get16(d, 12) in _VLAN_TPIDS:
        return 1 if len(d) >= 18 else -1
    return 0


def push_vlan(skb, kx, arg):
    tpid, tci = arg
    ly = layers(skb, kx)
    if ly.vlan:
        kx.invalidate()
    else:
        kx.put(K.M_VLAN_TCI, K.S_VLAN_TCI, tci)
        kx.put(K.M_VLAN_TPID, K.S_VLAN_TPID, tpid)
    _insert(skb, 12, _VLAN.pack(tpid, tci & ~VLAN_CFI_MASK & 0xFFFF))
    kx.ly = None
    return 0


def pop_vlan(skb, kx):
    err = 0
    if not no_eth(kx):
        ly = layers(skb, kx)
        if ly.vlan:
            _remove(skb, 12, VLAN_HLEN)
            kx.ly = None
            # move the next tag to the hwaccel place
            if _tag_at_front(skb.data) < 0:
                err = errno.ENOMEM
        elif ly.protocol in _VLAN_TPIDS:
            err = errno.ENOMEM       # a tag too short to pop
    if not err and not no_eth(kx) and _tag_at_front(skb.data) > 0:
        kx.invalidate()
    else:
        kx.put(K.M_VLAN_TCI, K.S_VLAN_TCI, 0)
        kx.put(K.M_VLAN_TPID, K.S_VLAN_TPID, 0)
    return err


def push_mpls(skb, kx, lse, ethertype, mac_len):
    """push_mpls() / skb_mpls_push()."""
    if ethertype not in _MPLS_TYPES:
        return errno.EINVAL
    ethernet = mac_len != 0
    hw = hwaccel_len(skb, kx)
    _insert(skb, mac_len, _U32.pack(lse))
    if ethernet and mac_len >= ETH_HLEN:
        # skb_mod_eth_type(eth_hdr(skb)): the type right after the MACs of
        # the frame without its hwaccel tag.
        _put16(skb.data, 12 + hw, ethertype)
    kx.proto = ethertype
    if not mac_len:
        kx.k |= 1 << _S_NO_ETH
    kx.invalidate()
    return 0


def pop_mpls(skb, kx, ethertype):
    """pop_mpls() / skb_mpls_pop()."""
    ly = layers(skb, kx)
    if ly.protocol in _MPLS_TYPES:
        mac_len = ly.mac_len
        if len(skb.data) < mac_len + MPLS_HLEN:
            return errno.ENOMEM
        _remove(skb, mac_len, MPLS_HLEN)
        if not no_eth(kx) and ethertype != K.ETH_P_TEB and mac_len >= 2:
            _put16(skb.data, mac_len - 2, ethertype)
        kx.proto = ethertype
    if ethertype == K.ETH_P_TEB:
        kx.k &= ~_M_NO_ETH
    kx.invalidate()
    return 0


def push_eth(skb, kx, arg):
    """push_eth() / skb_eth_push()."""
    src, dst = arg
    if not no_eth(kx):
        return errno.EPROTO         # skb_network_offset() != 0
    _insert(skb, 0, bytes(dst) + bytes(src) + _U16.pack(kx.proto))
    kx.k &= ~_M_NO_ETH
    kx.invalidate()
    return 0


def pop_eth(skb, kx):
    """pop_eth() / skb_eth_pop()."""
    if no_eth(kx) or len(skb.data) < ETH_HLEN:
        return errno.EPROTO
    ly = layers(skb, kx)
    if ly.vlan or ly.protocol in _VLAN_TPIDS or ly.network < ETH_HLEN:
        return errno.EPROTO
    _remove(skb, 0, ETH_HLEN)
    kx.proto = ly.protocol
    kx.k |= 1 << _S_NO_ETH
    kx.invalidate()
    return 0
