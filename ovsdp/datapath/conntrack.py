"""The CT action, as net/openvswitch/conntrack.c does it on netfilter's
conntrack (here :mod:`.nf_conntrack`).

``parse_ct`` / ``parse_nat`` are ``ovs_ct_copy_action()``'s validation;
``ct_execute`` is ``ovs_ct_execute()``: the packet through the namespace's
connection tracker in the action's zone (once per zone: a recirculated
packet keeps its connection, and one whose connection an upcall lost finds
it again from what its key says), commit with mark and labels, and the
flow key's ct_* fields filled as ``ovs_ct_update_key()`` fills them.
NAT is ``ovs_ct_nat()`` on :mod:`.nf_nat_ovs`, done once per packet and
zone (the key's snat/dnat bits say it was), for a new connection only when
it is committed.  A connection's helper (nf_conntrack_ovs.ct_helper) runs
once per lookup of a confirmed connection, and for a new one at its
commit, before the confirmation.  A timeout policy the flow install bound
(conntrack_timeout.set_timeouts) goes to the connections the action makes,
and a cached connection without it is looked up again.  Sans I/O.
"""

import errno
import logging
import struct

from .. import uapi as U
from ..netlink.attr import NetlinkError, iter_attrs, leftover, nla
from . import key_layout as K
from . import nf_nat_core as NAT
from .families.ct_limit import net_ratelimit
from .ip_defrag import ct_handle_fragments
from .nf_conntrack import (
    IP_CT_ESTABLISHED,
    IP_CT_ESTABLISHED_REPLY,
    IP_CT_NEW,
    IP_CT_RELATED,
    IP_CT_RELATED_REPLY,
    IPS_DST_NAT,
    IPS_SRC_NAT,
    get_l4proto,
)
from .nf_conntrack_ecache import IPCT_LABEL, IPCT_MARK
from .nf_conntrack_helper import try_assign_helper
from .nf_conntrack_ovs import NF_ACCEPT, ct_helper
from .nf_conntrack_seqadj import SeqAdj
from .nf_nat_ovs import BIT_DST, BIT_SRC, ct_nat

log = logging.getLogger(__name__)

NF_CT_HELPER_NAME_LEN = 16
CTNL_TIMEOUT_NAME_MAX = 32
NFPROTO_IPV4 = 2
NFPROTO_IPV6 = 10

# ovs_ct_attr_lens[]: (minlen, maxlen) of each OVS_CT_ATTR_*
_CT_LENS = {
    U.OVS_CT_ATTR_UNSPEC: (0, 0),
    U.OVS_CT_ATTR_COMMIT: (0, 0),
    U.OVS_CT_ATTR_FORCE_COMMIT: (0, 0),
    U.OVS_CT_ATTR_ZONE: (2, 2),
    U.OVS_CT_ATTR_MARK: (8, 8),                   # struct md_mark: value, mask
    U.OVS_CT_ATTR_LABELS: (32, 32),               # struct md_labels: value, mask
    U.OVS_CT_ATTR_HELPER: (1, NF_CT_HELPER_NAME_LEN),
    U.OVS_CT_ATTR_NAT: (0, 0x7FFFFFFF),           # checked by parse_nat()
    U.OVS_CT_ATTR_EVENTMASK: (4, 4),
    U.OVS_CT_ATTR_TIMEOUT: (1, CTNL_TIMEOUT_NAME_MAX),
}

# ovs_nat_attr_lens[]: the exact length of each OVS_NAT_ATTR_*, (IPv4, IPv6)
_NAT_LENS = {
    U.OVS_NAT_ATTR_UNSPEC: (0, 0),
    U.OVS_NAT_ATTR_SRC: (0, 0),
    U.OVS_NAT_ATTR_DST: (0, 0),
    U.OVS_NAT_ATTR_IP_MIN: (4, 16),
    U.OVS_NAT_ATTR_IP_MAX: (4, 16),
    U.OVS_NAT_ATTR_PROTO_MIN: (2, 2),
    U.OVS_NAT_ATTR_PROTO_MAX: (2, 2),
    U.OVS_NAT_ATTR_PERSISTENT: (0, 0),
    U.OVS_NAT_ATTR_PROTO_HASH: (0, 0),
    U.OVS_NAT_ATTR_PROTO_RANDOM: (0, 0),
}
# the flag of the NAT range (nf_nat_range2.flags) each attribute sets
_NAT_RANGE_FLAGS = {
    U.OVS_NAT_ATTR_IP_MIN: NAT.NF_NAT_RANGE_MAP_IPS,
    U.OVS_NAT_ATTR_IP_MAX: NAT.NF_NAT_RANGE_MAP_IPS,
    U.OVS_NAT_ATTR_PROTO_MIN: NAT.NF_NAT_RANGE_PROTO_SPECIFIED,
    U.OVS_NAT_ATTR_PROTO_MAX: NAT.NF_NAT_RANGE_PROTO_SPECIFIED,
    U.OVS_NAT_ATTR_PERSISTENT: NAT.NF_NAT_RANGE_PERSISTENT,
    U.OVS_NAT_ATTR_PROTO_HASH: NAT.NF_NAT_RANGE_PROTO_RANDOM,
    U.OVS_NAT_ATTR_PROTO_RANDOM: NAT.NF_NAT_RANGE_PROTO_RANDOM_FULLY,
}
# ovs_ct_nat_to_attr(): the flag attributes, in the order a dump gives them
_NAT_FLAG_ATTRS = ((NAT.NF_NAT_RANGE_PERSISTENT, U.OVS_NAT_ATTR_PERSISTENT),
                   (NAT.NF_NAT_RANGE_PROTO_RANDOM, U.OVS_NAT_ATTR_PROTO_HASH),
                   (NAT.NF_NAT_RANGE_PROTO_RANDOM_FULLY, U.OVS_NAT_ATTR_PROTO_RANDOM))


class CtInfo:
    """What parse_ct() takes out of the attributes (struct ovs_conntrack_info)."""

    __slots__ = ("family", "commit", "force", "zone", "mark", "labels", "helper", "nat",
                 "range", "eventmask", "timeout", "ct_helper",
                 "timeout_policy", "__weakref__")

    def __init__(self, family):
        self.family = family
        self.commit = self.force = False
        self.zone = 0
        self.mark = None             # (value, mask)
        self.labels = None           # (value bytes, mask bytes)
        self.helper = None           # the helper's name (bytes) ...
        self.ct_helper = None        # ... and the helper (nf_conntrack_helper.Helper)
        self.nat = None              # None, "nat" (existing connections), "src" or "dst"
        self.range = NAT.NatRange()  # nf_nat_range2
        self.eventmask = None
        self.timeout = None          # the timeout policy's name (bytes) ...
        self.timeout_policy = None   # ... and the policy, if the flow install found it


def action_to_attrs(info):
    """ovs_ct_action_to_attr(): a validated CT action's attributes, as a
    flow dump shows them."""
    out = []
    if info.commit:
        out.append(nla(U.OVS_CT_ATTR_FORCE_COMMIT if info.force else U.OVS_CT_ATTR_COMMIT))
    out.append(nla(U.OVS_CT_ATTR_ZONE, struct.pack("=H", info.zone)))
    if info.mark is not None:
        out.append(nla(U.OVS_CT_ATTR_MARK, struct.pack("=II", *info.mark)))
    if info.labels is not None:
        out.append(nla(U.OVS_CT_ATTR_LABELS, info.labels[0] + info.labels[1]))
    if info.helper is not None:
        out.append(nla(U.OVS_CT_ATTR_HELPER, info.helper + b"\0"))
    if info.eventmask is not None:
        out.append(nla(U.OVS_CT_ATTR_EVENTMASK, struct.pack("=I", info.eventmask)))
    if info.timeout is not None:
        out.append(nla(U.OVS_CT_ATTR_TIMEOUT, info.timeout + b"\0"))
    if info.nat is not None:
        out.append(nla(U.OVS_CT_ATTR_NAT, _nat_to_attrs(info)))
    return b"".join(out)


def _nat_to_attrs(info):
    """ovs_ct_nat_to_attr()."""
    if info.nat == "src":
        out = [nla(U.OVS_NAT_ATTR_SRC)]
    elif info.nat == "dst":
        out = [nla(U.OVS_NAT_ATTR_DST)]
    else:
        return b""
    r = info.range
    if r.flags & NAT.NF_NAT_RANGE_MAP_IPS:
        n = 16 if info.family == NFPROTO_IPV6 else 4
        out.append(nla(U.OVS_NAT_ATTR_IP_MIN, r.min_addr.to_bytes(n, "big")))
        if r.max_addr != r.min_addr:
            out.append(nla(U.OVS_NAT_ATTR_IP_MAX, r.max_addr.to_bytes(n, "big")))
    if r.flags & NAT.NF_NAT_RANGE_PROTO_SPECIFIED:
        out.append(nla(U.OVS_NAT_ATTR_PROTO_MIN, struct.pack("=H", r.min_proto)))
        if r.max_proto != r.min_proto:
            out.append(nla(U.OVS_NAT_ATTR_PROTO_MAX, struct.pack("=H", r.max_proto)))
    for flag, attr in _NAT_FLAG_ATTRS:
        if r.flags & flag:
            out.append(nla(attr))
    return b"".join(out)


def _fail(msg, err=errno.EINVAL):
    return NetlinkError(err, msg)


def _terminated(p):
    """string_is_terminated(): a NUL within the attribute."""
    return b"\0" in p


_NFPROTO = {K.ETH_P_IP: NFPROTO_IPV4, K.ETH_P_IPV6: NFPROTO_IPV6}


def key_to_nfproto(eth_type):
    """The conntrack family of a flow's eth_type, or None (NFPROTO_UNSPEC)."""
    return _NFPROTO.get(eth_type)


def parse_ct(payload, eth_type):
    """ovs_ct_copy_action()'s checks: a :class:`CtInfo`, or NetlinkError."""
    family = key_to_nfproto(eth_type)
    if family is None:
        raise _fail("ct family unspecified")
    info = CtInfo(family)
    for raw, p, _off in iter_attrs(payload):
        t = raw & U.NLA_TYPE_MASK
        if t > U.OVS_CT_ATTR_MAX:
            raise _fail(f"Unknown conntrack attr (type={t}, max={U.OVS_CT_ATTR_MAX})")
        lo, hi = _CT_LENS[t]
        if not lo <= len(p) <= hi:
            raise _fail(f"Conntrack attr type has unexpected length (type={t}, "
                        f"length={len(p)}, expected={hi})")
        if t in (U.OVS_CT_ATTR_FORCE_COMMIT, U.OVS_CT_ATTR_COMMIT):
            info.commit = True
            info.force = info.force or t == U.OVS_CT_ATTR_FORCE_COMMIT
        elif t == U.OVS_CT_ATTR_ZONE:
            info.zone = struct.unpack("=H", p)[0]
        elif t == U.OVS_CT_ATTR_MARK:
            value, mask = struct.unpack("=II", p)
            if not mask:
                raise _fail("ct_mark mask cannot be 0")
            info.mark = (value, mask)
        elif t == U.OVS_CT_ATTR_LABELS:
            if not any(p[16:]):
                raise _fail("ct_labels mask cannot be 0")
            info.labels = (bytes(p[:16]), bytes(p[16:]))
        elif t == U.OVS_CT_ATTR_HELPER:
            if not _terminated(p):
                raise _fail("Invalid conntrack helper")
            info.helper = bytes(p[:p.index(b"\0")])
        elif t == U.OVS_CT_ATTR_NAT:
            _parse_nat(p, info)
        elif t == U.OVS_CT_ATTR_EVENTMASK:
            info.eventmask = struct.unpack("=I", p)[0]
        elif t == U.OVS_CT_ATTR_TIMEOUT:
            if not _terminated(p):
                raise _fail("Invalid conntrack timeout")
            info.timeout = bytes(p[:p.index(b"\0")])
        else:
            raise _fail(f"Unknown conntrack attr ({t})")
    if not info.commit and info.mark is not None:
        raise _fail("Setting conntrack mark requires 'commit' flag.")
    if not info.commit and info.labels is not None:
        raise _fail("Setting conntrack labels requires 'commit' flag.")
    rem = leftover(payload)
    if rem > 0:
        raise _fail(f"Conntrack attr has {rem} unknown bytes")
    return info


def _parse_nat(payload, info):
    """parse_nat(): one of SRC or DST, a range, flags only with a type, after COMMIT."""
    v6 = info.family == NFPROTO_IPV6
    kind = None
    r = info.range
    have_ip_max = have_proto_max = False
    for raw, p, _off in iter_attrs(payload):
        t = raw & U.NLA_TYPE_MASK
        if t > U.OVS_NAT_ATTR_MAX:
            raise _fail(f"Unknown NAT attribute (type={t}, max={U.OVS_NAT_ATTR_MAX})")
        want = _NAT_LENS[t][v6]
        if len(p) != want:
            raise _fail(f"NAT attribute type {t} has unexpected length ({len(p)} != {want})")
        if t in (U.OVS_NAT_ATTR_SRC, U.OVS_NAT_ATTR_DST):
            if kind is not None:
                raise _fail("Only one type of NAT may be specified", errno.ERANGE)
            kind = "src" if t == U.OVS_NAT_ATTR_SRC else "dst"
        elif t in _NAT_RANGE_FLAGS:
            r.flags |= _NAT_RANGE_FLAGS[t]
            if t == U.OVS_NAT_ATTR_IP_MIN:
                r.min_addr = int.from_bytes(p, "big")
            elif t == U.OVS_NAT_ATTR_IP_MAX:
                r.max_addr, have_ip_max = int.from_bytes(p, "big"), True
            elif t == U.OVS_NAT_ATTR_PROTO_MIN:
                r.min_proto = struct.unpack("=H", p)[0]
            elif t == U.OVS_NAT_ATTR_PROTO_MAX:
                r.max_proto, have_proto_max = struct.unpack("=H", p)[0], True
        else:
            raise _fail(f"Unknown nat attribute ({t})")
    rem = leftover(payload)
    if rem > 0:
        raise _fail(f"NAT attribute has {rem} unknown bytes")
    if kind is None:
        if r.flags:
            raise _fail("NAT flags may be given only when NAT range (SRC or DST) is also "
                        "specified.")
        info.nat = "nat"             # NAT existing connections
    elif not info.commit:
        raise _fail("NAT attributes may be specified only when CT COMMIT flag is also "
                    "specified.")
    else:
        info.nat = kind
    if r.flags & NAT.NF_NAT_RANGE_MAP_IPS and not have_ip_max:
        r.max_addr = r.min_addr           # a missing IP_MAX is the minimum
    if r.flags & NAT.NF_NAT_RANGE_PROTO_SPECIFIED and not have_proto_max:
        r.max_proto = r.min_proto


# ------------------------------------------------------------------ execution
_TRK = U.OVS_CS_F_TRACKED
_NAT_MASK = U.OVS_CS_F_SRC_NAT | U.OVS_CS_F_DST_NAT
# ovs_ct_get_state()
_STATE_OF = {
    IP_CT_ESTABLISHED: _TRK | U.OVS_CS_F_ESTABLISHED,
    IP_CT_ESTABLISHED_REPLY: _TRK | U.OVS_CS_F_ESTABLISHED | U.OVS_CS_F_REPLY_DIR,
    IP_CT_RELATED: _TRK | U.OVS_CS_F_RELATED,
    IP_CT_RELATED_REPLY: _TRK | U.OVS_CS_F_RELATED | U.OVS_CS_F_REPLY_DIR,
    IP_CT_NEW: _TRK | U.OVS_CS_F_NEW,
}
# what __ovs_ct_update_key() always writes; the original-direction addresses and
# ports only when there is a connection of the packet's family (else they keep
# what they held, as in the kernel, and ct_orig_proto 0 says they mean nothing)
_M_CT = K.M_CT_STATE | K.M_CT_ZONE | K.M_CT_MARK | K.M_CT_LABELS | K.M_CT_ORIG_PROTO
_M_CT_ORIG = K.M_CT_ORIG_TP_SRC | K.M_CT_ORIG_TP_DST | K.M_CT_ORIG_SRC | K.M_CT_ORIG_DST
_ICMP_OF = {NFPROTO_IPV4: 1, NFPROTO_IPV6: 58}
_ND_TYPES = (135, 136)                  # NDISC_NEIGHBOUR_SOLICITATION, _ADVERTISEMENT


def _is_nd(k):
    """sw_flow_key_is_nd()."""
    return ((k >> K.S_ETH_TYPE) & 0xFFFF == K.ETH_P_IPV6 and (k >> K.S_IP_PROTO) & 0xFF == 58
            and (k >> K.S_TP_DST) & 0xFFFF == 0 and (k >> K.S_TP_SRC) & 0xFFFF in _ND_TYPES)


# the ct_* fields are contiguous in the key, ct_state lowest: each is put at
# its offset from ct_state, and the whole group written with one mask
_S0 = K.S_CT_STATE
_R_ZONE, _R_MARK, _R_LABELS = K.S_CT_ZONE - _S0, K.S_CT_MARK - _S0, K.S_CT_LABELS - _S0
_R_ORIG = (K.S_CT_ORIG_PROTO - _S0, K.S_CT_ORIG_SRC - _S0, K.S_CT_ORIG_DST - _S0,
           K.S_CT_ORIG_TP_SRC - _S0, K.S_CT_ORIG_TP_DST - _S0)
_M_CT_ALL = _M_CT | _M_CT_ORIG


def _orig_image(conn):
    """The original-direction fields of ``conn``, placed relative to ct_state
    (computed once per connection: its original tuple never changes)."""
    img = conn.key_image
    if img is None:
        orig = conn.tuple[0]
        if orig.protonum == _ICMP_OF[orig.l3num]:
            tp_src, tp_dst = orig.icmp_type, orig.icmp_code
        else:
            tp_src, tp_dst = orig.sport, orig.dport
        rp, rs, rd, rts, rtd = _R_ORIG
        img = conn.key_image = (orig.protonum << rp | orig.src << rs | orig.dst << rd
                                | tp_src << rts | tp_dst << rtd)
    return img


def _put_ct_key(k, state, zone, conn):
    """__ovs_ct_update_key(): the key ``k`` with the connection's fields."""
    v = state | zone << _R_ZONE
    if conn is None:
        return k & ~_M_CT | v << _S0
    master = conn.master
    labels = conn.labels if master is None or conn.confirmed else master.labels
    v |= conn.mark << _R_MARK | labels << _R_LABELS
    if master is not None:              # a related connection shows its master's tuple
        conn = master
    l3num = conn.tuple[0].l3num
    eth_type = (k >> K.S_ETH_TYPE) & 0xFFFF
    if not ((eth_type == K.ETH_P_IP and l3num == NFPROTO_IPV4)
            or (eth_type == K.ETH_P_IPV6 and l3num == NFPROTO_IPV6 and not _is_nd(k))):
        return k & ~_M_CT | v << _S0    # ct_orig_proto 0: no original-direction fields
    return k & ~_M_CT_ALL | (v | _orig_image(conn)) << _S0


def update_key(skb, kx, zone, post_ct, keep_nat_flags):
    """ovs_ct_update_key(): the key's ct_* fields from the skb's connection."""
    nf = skb.nfct
    conn = None
    if nf is not None:
        conn = nf.conn
        state = _STATE_OF.get(nf.ctinfo, _TRK)
        if not conn.confirmed:
            state |= U.OVS_CS_F_NEW         # all unconfirmed entries are new
        if conn.master is not None:
            state |= U.OVS_CS_F_RELATED     # for the whole life of the connection
        if keep_nat_flags:
            state |= (kx.k >> K.S_CT_STATE) & _NAT_MASK
        else:
            if conn.status & IPS_SRC_NAT:
                state |= U.OVS_CS_F_SRC_NAT
            if conn.status & IPS_DST_NAT:
                state |= U.OVS_CS_F_DST_NAT
        zone = conn.zone
    elif post_ct:
        state = _TRK | U.OVS_CS_F_INVALID
    else:
        state = zone = 0
    kx.k = _put_ct_key(kx.k, state, zone, conn)


def _nfct_cached(tracker, skb, kx, info, l3):
    """skb_nfct_cached(): whether the skb's connection (or the one an upcall
    lost, found again from the key) is this action's; a forced commit of a
    reply-direction packet drops the connection instead."""
    nf = skb.nfct
    executed = True
    if nf is None:
        state = (kx.k >> K.S_CT_STATE) & 0xFF
        executed = bool(state & _TRK and not state & U.OVS_CS_F_INVALID
                        and (kx.k >> K.S_CT_ZONE) & 0xFFFF == info.zone)
        if executed or (not state and info.force):
            nf = skb.nfct = tracker.find_existing(l3, info.family, info.zone,
                                                  bool(state & _NAT_MASK))
        if nf is None:
            return False
    if nf.conn.zone != info.zone:
        return False
    help_ = nf.conn.help
    if info.ct_helper is not None and help_ is not None and help_.helper is not info.ct_helper:
        return False
    if info.timeout_policy is not None:
        ext = nf.conn.timeout_ext
        if ext is None or ext.timeout is not info.timeout_policy:
            return False
    if info.force and nf.reply:
        if nf.conn.confirmed:
            tracker.kill(nf.conn)
        skb.nfct = None
        return False
    return executed


def _lookup(tracker, skb, kx, info, l3, nh):
    """__ovs_ct_lookup(): 0 or an errno."""
    cached = _nfct_cached(tracker, skb, kx, info, l3)
    if not cached:
        tp = info.timeout_policy
        res = tracker.process(l3, info.family, info.zone,
                              timeout_ext=tp.ext if tp is not None else None, tmpl=info)
        skb.nfct = res if res.conn is not None else None
        kx.k &= ~K.M_CT_STATE
        update_key(skb, kx, info.zone, True, True)
    nf = skb.nfct
    if nf is None:
        return 0
    conn = nf.conn
    # NAT once per packet and zone (the key's NAT bits say it was done), and
    # a new connection's only when the action commits it
    if (info.nat is not None and not (kx.k >> K.S_CT_STATE) & _NAT_MASK
            and (conn.confirmed or info.commit)):
        if not _nat(tracker, skb, kx, info, nf, l3, nh):
            return errno.EINVAL
    # a lookup without a helper may be followed by a commit with one
    if not conn.confirmed and info.commit and info.ct_helper is not None and conn.help is None:
        try_assign_helper(conn, info.ct_helper)
        if info.nat is not None and conn.seqadj is None:
            conn.seqadj = SeqAdj()
    # the helper of a confirmed connection runs here, once per lookup; a new
    # connection's at its commit, when everything else is in place
    if conn.confirmed and not cached and conn.help is not None:
        return _helper(tracker, skb, nf, info.family, nh)
    return 0


def _helper(tracker, skb, nf, family, nh):
    """nf_ct_helper() on the skb's datagram (rewritten when the helper or
    the sequence adjustment changed it): 0 or EINVAL (drop)."""
    data = skb.data
    d = bytearray(data[nh:])
    verdict = ct_helper(tracker, d, nf.conn, nf.ctinfo, family, skb.csum_partial is not None)
    if d != data[nh:]:
        w = skb.writable()
        w[nh:] = d
    return 0 if verdict == NF_ACCEPT else errno.EINVAL


# ovs_nat_update_key(): the key fields a manip changes, (IPv4, IPv6) by side
_NAT_KEY = {
    BIT_SRC: (U.OVS_CS_F_SRC_NAT, (K.M_IPV4_SRC, K.S_IPV4_SRC, 12, 4),
              (K.M_IPV6_SRC, K.S_IPV6_SRC, 8, 16), (K.M_TP_SRC, K.S_TP_SRC, 0)),
    BIT_DST: (U.OVS_CS_F_DST_NAT, (K.M_IPV4_DST, K.S_IPV4_DST, 16, 4),
              (K.M_IPV6_DST, K.S_IPV6_DST, 24, 16), (K.M_TP_DST, K.S_TP_DST, 2)),
}
_NAT_PORTS = frozenset({6, 17, 132})    # UDP, TCP, SCTP: the ports the key follows


def _nat(tracker, skb, kx, info, nf, l3, nh):
    """ovs_ct_nat(): translate the packet in place; False to drop it."""
    action = (BIT_SRC if info.nat == "src" else 0) | (BIT_DST if info.nat == "dst" else 0)
    d = bytearray(l3)
    partial = skb.csum_partial is not None
    verdict, done = ct_nat(tracker, d, info.family, nf.conn, nf.ctinfo, action, info.range,
                           info.commit, partial)
    if d != l3:
        data = skb.writable()
        data[nh:nh + len(d)] = d
    if verdict != NAT.NF_ACCEPT:
        return False
    k = kx.k
    eth_type = (k >> K.S_ETH_TYPE) & 0xFFFF
    for bit, (flag, v4, v6, tp) in _NAT_KEY.items():
        if not done & bit:
            continue
        k |= flag << K.S_CT_STATE
        if eth_type == K.ETH_P_IP:
            mask, shift, off, n = v4
        elif eth_type == K.ETH_P_IPV6:
            mask, shift, off, n = v6
        else:
            continue
        k = k & ~mask | int.from_bytes(d[off:off + n], "big") << shift
        proto = (k >> K.S_IP_PROTO) & 0xFF
        if proto in _NAT_PORTS:
            l4 = _l4_offset(d, info.family)
            if l4 is not None and l4 + 4 <= len(d):
                mask, shift, poff = tp
                k = k & ~mask | int.from_bytes(d[l4 + poff:l4 + poff + 2], "big") << shift
    kx.k = k
    return True


def _l4_offset(d, family):
    res, _why = get_l4proto(d, 0, family)
    return None if res is None else res[0]


def _commit(tracker, skb, kx, info, nh):
    """ovs_ct_commit() after the lookup: mark and labels, then confirm."""
    nf = skb.nfct
    if nf is None:
        return 0                        # an invalid packet: nothing to commit
    conn = nf.conn
    limits = getattr(tracker, "ct_limit_info", None)     # the namespace's ovs_ct_limit_info
    if limits is not None and limits.enabled and not conn.confirmed:
        err = limits.check(tracker, info.zone)          # ovs_ct_check_limit()
        if err:
            if net_ratelimit():
                log.warning("openvswitch: zone: %d exceeds conntrack limit", info.zone)
            return err
    ec = conn.ecache                    # the event cache extension, if any
    if info.eventmask is not None and ec is not None:
        ec.ctmask = info.eventmask & 0xFFFF     # for the rest of the connection's life
    if info.mark is not None:           # ovs_ct_set_mark()
        value, mask = info.mark
        new = value | (conn.mark & ~mask & 0xFFFFFFFF)
        if new != conn.mark:
            conn.mark = new
            if ec is not None and conn.confirmed:
                ec.cache |= 1 << IPCT_MARK
            kx.put(K.M_CT_MARK, K.S_CT_MARK, new)
    if not conn.confirmed and conn.master is not None and conn.master.labels:
        conn.labels = conn.master.labels    # ovs_ct_init_labels(): the master's, inherited
        if ec is not None:
            ec.cache |= 1 << IPCT_LABEL
        if info.labels is None:
            kx.put(K.M_CT_LABELS, K.S_CT_LABELS, conn.labels)
    if info.labels is not None:         # ovs_ct_init_labels() / ovs_ct_set_labels()
        value, mask = (int.from_bytes(b, "big") for b in info.labels)
        old = conn.labels
        conn.labels = (conn.labels & ~mask) | (value & mask)
        # a new connection's NEW event carries its labels; later only a change
        if ec is not None and (not conn.confirmed or conn.labels != old):
            ec.cache |= 1 << IPCT_LABEL
        kx.put(K.M_CT_LABELS, K.S_CT_LABELS, conn.labels)
    if not conn.confirmed and conn.help is not None:
        err = _helper(tracker, skb, nf, info.family, nh)
        if err:
            return err
    if not tracker.confirm(nf):
        return errno.EINVAL
    return 0


def ct_execute(tracker, skb, kx, info, nh, defrag=None):
    """ovs_ct_execute(): 0 or an errno (the packet is then dropped), or
    EINPROGRESS: a fragment kept for reassembly (stolen, not a drop).

    ``nh`` is the network header's offset in ``skb.data``; the key must be
    current (the caller updates an invalid one first).  ``defrag`` is the
    namespace's fragment queues (:class:`.ip_defrag.Defrag`); without it a
    fragment is refused (EOPNOTSUPP)."""
    if (kx.k >> K.S_IP_FRAG) & 0xFF != U.OVS_FRAG_TYPE_NONE:
        if defrag is None:
            return errno.EOPNOTSUPP
        err = ct_handle_fragments(defrag, skb, kx, info.zone, info.family, nh)
        if err:
            return err
    l3 = _network_trim(skb, kx, nh)
    err = _lookup(tracker, skb, kx, info, l3, nh)
    if err:
        return err
    if info.commit:
        return _commit(tracker, skb, kx, info, nh)
    return 0


def _network_trim(skb, kx, nh):
    """ovs_skb_network_trim(): the skb cut to the IP datagram's length (no
    Ethernet padding after it); its network-layer bytes."""
    data = skb.data
    eth_type = (kx.k >> K.S_ETH_TYPE) & 0xFFFF
    n = len(data) - nh
    if eth_type == K.ETH_P_IP and n >= 20:
        want = (data[nh + 2] << 8) | data[nh + 3]
    elif eth_type == K.ETH_P_IPV6 and n >= 40:
        want = 40 + ((data[nh + 4] << 8) | data[nh + 5])
    else:
        want = n
    if want < n:
        data = skb.data = data[:nh + want]
    return bytes(data[nh:])


def host_track(tracker, frame):
    """The host stack's conntrack hooks on an Ethernet frame an internal port
    carries in the datapath's namespace: nf_conntrack_in() in the default
    zone and the confirm (OUTPUT and POSTROUTING for what the host sends,
    PREROUTING and INPUT for what it receives), as on a host whose
    conntrack is on.  The CtResult, or None for what the host would leave
    untracked (not IP, invalid, a later fragment) or not confirm."""
    if len(frame) < 34 or not tracker.local_stack:
        return None
    family = _NFPROTO.get((frame[12] << 8) | frame[13])
    if family is None:
        return None
    res = tracker.process(frame[14:], family, 0)
    if res.conn is None or not tracker.confirm(res):
        return None
    return res

