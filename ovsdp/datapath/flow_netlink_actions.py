"""Action lists <-> netlink attributes: the action half of net/openvswitch/flow_netlink.c.

:func:`copy_actions` is ``ovs_nla_copy_actions()``: the validation of an
action list against the (masked) flow key, every rule and errno of the
kernel, giving an ActionList (a tuple of (OVS_ACTION_ATTR_* type, argument)
pairs; docs/architecture.md); :func:`put_actions` turns one back into
attributes as ``ovs_nla_put_actions()`` does.  The keys of set actions and
the tunnel keys are checked with the key half (:mod:`.flow_netlink`); what
the kernel deliberately does differently is in that module's docstring.
"""

import dataclasses
import errno

from .. import uapi as U
from ..netlink.attr import (
    NESTED,
    U16,
    U32,
    UNSPEC,
    NetlinkError,
    Policy,
    align,
    nla,
    nla_nest,
    nla_u32,
    validate_nla,
)
from ..uapi import attrs as ATTRS
from . import conntrack, psample
from . import key_layout as K
from .flow_netlink_match import (
    _ALL_TUN_MASK,
    _BE16,
    _BE32,
    _FIELD,
    _IPV4,
    _IPV6,
    _KEY,
    _NESTED,
    _NLA,
    _TYPE_MASK,
    _U16,
    _U32,
    _VARIABLE,
    ETH_HLEN,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    OVS_KEY_ATTR_MAX,
    TUN_F_CRIT_OPT,
    Match,
    _err,
    _get,
    _popcount,
    _walk,
    eth_p_mpls,
    eth_type_vlan,
)
from .flow_netlink_nsh import validate_push_nsh
from .flow_netlink_put import put_tunnel_info
from .flow_netlink_tunnel import ip_tun_from_nlattr
from .nf_conntrack_ovs import add_helper
from .skb import TunnelInfo

GENEVE_CRIT_OPT_TYPE = 0x80
OVS_COPY_ACTIONS_MAX_DEPTH = 16
MAX_ACTIONS_BUFSIZE = 32 * 1024
_SFA_HEADER = 28                 # offsetof(struct sw_flow_actions, actions) on 64-bit
# What the kernel adds when it rewrites an action into its own form:
_NEST_HDR = 4                    # add_nested_action_start()
_SAMPLE_ARG = 12                 # nla_total_size(sizeof(struct sample_arg))
_CLONE_ARG = 8                   # nla_total_size(sizeof(u32))
_CPL_ARG = 8                     # nla_total_size(sizeof(struct check_pkt_len_arg))
_TUNNEL_INFO = 12                # nla_total_size(sizeof(struct ovs_tunnel_info))
OVS_ACTION_ATTR_MAX = U.OVS_ACTION_ATTR_MAX


@dataclasses.dataclass(frozen=True, slots=True)
class Userspace:
    """The validated OVS_ACTION_ATTR_USERSPACE argument.

    ``raw`` is the attribute's payload as given, which the kernel copies and
    puts back verbatim when it dumps the action; it takes no part in
    comparisons.
    """

    pid: int
    userdata: bytes
    egress_tun_port: int
    actions: bool
    raw: bytes = dataclasses.field(default=None, compare=False, repr=False)


# An ActionList is a tuple of (OVS_ACTION_ATTR_* type, argument) pairs.
ActionList = tuple

# action_lens[] (uapi/attrs.py): absent types (UNSPEC) are 0.
_ACTION = ATTRS.ACTION

_USERSPACE_POLICY = {
    U.OVS_USERSPACE_ATTR_PID: Policy(U32),
    U.OVS_USERSPACE_ATTR_USERDATA: Policy(UNSPEC),
    U.OVS_USERSPACE_ATTR_EGRESS_TUN_PORT: Policy(U32),
}
_CPL_POLICY = {
    U.OVS_CHECK_PKT_LEN_ATTR_PKT_LEN: Policy(U16),
    U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_GREATER: Policy(NESTED),
    U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_LESS_EQUAL: Policy(NESTED),
}

_ACTION_NAMES = {v: k[len("OVS_ACTION_ATTR_"):] for k, v in vars(U).items()
                 if k.startswith("OVS_ACTION_ATTR_") and v <= OVS_ACTION_ATTR_MAX
                 and not k.startswith("OVS_ACTION_ATTR_MAX")}


# tun_p_from_eth_p(): what NSH can carry next when there is no Ethernet header
_TUN_P_ETH_TYPES = (K.ETH_P_IP, K.ETH_P_IPV6, K.ETH_P_NSH, K.ETH_P_MPLS_UC, K.ETH_P_TEB)
# tun_p_to_eth_p(): the next protocols pop_nsh can go to
_TUN_P_TO_ETH_P = {1: K.ETH_P_IP, 2: K.ETH_P_IPV6, 3: K.ETH_P_TEB, 4: K.ETH_P_NSH,
                   5: K.ETH_P_MPLS_UC}
TUN_P_ETHERNET = 3


def _parse_deprecated_strict(payload, maxtype, policy, log, what):
    """nla_parse_deprecated_strict(): unknown types and trailing bytes are errors."""
    tb = {}
    items, rem = _walk(payload)
    for raw, p, _alen, _rem in items:
        t = raw & _TYPE_MASK
        if t == 0 or t > maxtype:
            raise _err(log, f"{what}: Unknown attribute type {t}")
        pt = policy.get(t)
        if pt is not None:
            validate_nla(t, p, pt, None)
        tb[t] = p
    if rem > 0:
        raise _err(log, f"{what}: bytes leftover after parsing attributes")
    return tb


def _validate_userspace(payload, log):
    a = _parse_deprecated_strict(payload, U.OVS_USERSPACE_ATTR_MAX, _USERSPACE_POLICY, log,
                                 "userspace action")
    pid = a.get(U.OVS_USERSPACE_ATTR_PID)
    if pid is None or not _U32.unpack_from(pid)[0]:
        raise _err(log, "userspace action needs a non-zero OVS_USERSPACE_ATTR_PID")
    port = a.get(U.OVS_USERSPACE_ATTR_EGRESS_TUN_PORT)
    return Userspace(_U32.unpack_from(pid)[0], a.get(U.OVS_USERSPACE_ATTR_USERDATA),
                     _U32.unpack_from(port)[0] if port is not None else None,
                     U.OVS_USERSPACE_ATTR_ACTIONS in a, bytes(payload))


def _validate_geneve_opts(opts, log):
    """validate_geneve_opts(): True when an option has the critical bit."""
    crit = False
    off = 0
    n = len(opts)
    while n - off > 0:
        if n - off < 4:
            raise _err(log, "Geneve option header truncated")
        length = 4 + (opts[off + 3] & 0x1F) * 4
        if length > n - off:
            raise _err(log, "Geneve option length exceeds the options")
        crit |= bool(opts[off + 2] & GENEVE_CRIT_OPT_TYPE)
        off += length
    return crit


def _validate_and_copy_set_tun(payload, log):
    """validate_and_copy_set_tun(): the set(tunnel(...)) TunnelInfo."""
    m = Match(False)
    opts_type = ip_tun_from_nlattr(payload, m, False, log)
    key = m.key & _ALL_TUN_MASK
    opts_len = _get(key, "tun_opts_len")
    if opts_len:
        # only tun_opts_len bytes of options are kept
        s, _w = _FIELD["tun_opts"]
        opts = _get(key, "tun_opts") & ((1 << (8 * opts_len)) - 1)
        key = (key & ~K.ones("tun_opts")) | (opts << s)
        if opts_type == U.OVS_TUNNEL_KEY_ATTR_GENEVE_OPTS:
            if _validate_geneve_opts(opts.to_bytes(opts_len, "big"), log):
                key |= TUN_F_CRIT_OPT << _FIELD["tun_flags"][0]
    return TunnelInfo(key)


def _validate_masked(data, key_len):
    for i in range(key_len):
        if data[i] & ~data[key_len + i] & 0xFF:
            return False
    return True


def _validate_set(payload, key, mac_proto_none, eth_type, masked, log):
    """validate_set(): returns the ActionList entry."""
    what = "set_masked" if masked else "set"
    n = len(payload)
    if n < 4:
        raise _err(log, f"{what} action needs exactly one key attribute")
    klen, kraw = _NLA.unpack_from(payload, 0)
    if klen < 4 or klen > n or align(klen) != n:
        raise _err(log, f"{what} action needs exactly one key attribute")
    key_type = kraw & _TYPE_MASK
    data = payload[4:klen]
    key_len = len(data)
    if masked:
        key_len //= 2
    if key_type > OVS_KEY_ATTR_MAX:
        raise _err(log, f"{what} action: key type {key_type} out of range")
    expected = _KEY.length(key_type) or 0
    if expected not in (_NESTED, _VARIABLE) and key_len != expected:
        raise _err(log, f"{what} action: key {key_type} has unexpected len {key_len} "
                        f"expected {expected}")
    if masked and not _validate_masked(data, key_len):
        raise _err(log, "Set action: key bits outside the mask must be zero")

    A = U
    ip_eth = eth_type in (K.ETH_P_IP, K.ETH_P_IPV6)
    if key_type in (A.OVS_KEY_ATTR_PRIORITY, A.OVS_KEY_ATTR_SKB_MARK,
                    A.OVS_KEY_ATTR_CT_MARK, A.OVS_KEY_ATTR_CT_LABELS):
        pass
    elif key_type == A.OVS_KEY_ATTR_ETHERNET:
        if mac_proto_none:
            raise _err(log, "set(eth) on a packet without Ethernet header")
    elif key_type == A.OVS_KEY_ATTR_TUNNEL:
        if masked:
            raise _err(log, "Masked tunnel set is not supported")
        return (A.OVS_ACTION_ATTR_SET, _validate_and_copy_set_tun(data, log))
    elif key_type == A.OVS_KEY_ATTR_IPV4:
        if eth_type != K.ETH_P_IP:
            raise _err(log, f"set(ipv4) on a flow with eth_type {eth_type:#06x}")
        _s, _d, proto, _tos, _ttl, frag = _IPV4.unpack_from(data)
        if masked:
            _s, _d, mproto, _tos, _ttl, mfrag = _IPV4.unpack_from(data, key_len)
            if mproto or mfrag:
                raise _err(log, "set(ipv4): the protocol and frag fields are not writable")
        else:
            if proto != _get(key, "ip_proto"):
                raise _err(log, "set(ipv4) may not change the IP protocol")
            if frag != _get(key, "ip_frag"):
                raise _err(log, "set(ipv4) may not change the frag type")
    elif key_type == A.OVS_KEY_ATTR_IPV6:
        if eth_type != K.ETH_P_IPV6:
            raise _err(log, f"set(ipv6) on a flow with eth_type {eth_type:#06x}")
        _s, _d, label, proto, _tc, _hl, frag = _IPV6.unpack_from(data)
        if masked:
            _s, _d, mlabel, mproto, _tc, _hl, mfrag = _IPV6.unpack_from(data, key_len)
            if mproto or mfrag:
                raise _err(log, "set(ipv6): the protocol and frag fields are not writable")
            if mlabel & 0xFFF00000:
                raise _err(log, "set(ipv6): flow label mask has bits above 20")
        else:
            if proto != _get(key, "ip_proto"):
                raise _err(log, "set(ipv6) may not change the IP protocol")
            if frag != _get(key, "ip_frag"):
                raise _err(log, "set(ipv6) may not change the frag type")
        if label & 0xFFF00000:
            raise _err(log, f"set(ipv6): flow label {label:#x} is out of range")
    elif key_type in (A.OVS_KEY_ATTR_TCP, A.OVS_KEY_ATTR_UDP, A.OVS_KEY_ATTR_SCTP):
        want = {A.OVS_KEY_ATTR_TCP: IPPROTO_TCP, A.OVS_KEY_ATTR_UDP: IPPROTO_UDP,
                A.OVS_KEY_ATTR_SCTP: IPPROTO_SCTP}[key_type]
        if not ip_eth or _get(key, "ip_proto") != want:
            raise _err(log, f"set of L4 key {key_type} does not match the flow's protocol")
    elif key_type == A.OVS_KEY_ATTR_MPLS:
        if not eth_p_mpls(eth_type):
            raise _err(log, f"set(mpls) on a flow with eth_type {eth_type:#06x}")
        # Only the top label stack entry can be set.  The kernel's length
        # table says "variable" for MPLS and its set_mpls() then reads one
        # ovs_key_mpls and its mask whatever the length; ovsdp takes exactly one.
        if key_len != U.OVS_KEY_MPLS.size:
            raise _err(log, f"{what}(mpls) key has length {key_len}, expected "
                            f"{U.OVS_KEY_MPLS.size}")
    elif key_type == A.OVS_KEY_ATTR_NSH:
        # validate_set() has no NSH case since Linux commit dfe28c4167a9
        raise _err(log, "set(nsh) is not supported (removed from Linux)")
    else:
        raise _err(log, f"key type {key_type} cannot be set")

    value = bytes(data[:key_len])
    if masked:
        mask = bytes(data[key_len:2 * key_len])
    else:
        # Non-masked set actions become masked ones with an all-ones mask.
        mask = bytearray(b"\xff" * key_len)
        if key_type == A.OVS_KEY_ATTR_IPV6:
            # clear the non-writable bits of the flow label
            mask[32:36] = _BE32.pack(0x000FFFFF)
        mask = bytes(mask)
    return (A.OVS_ACTION_ATTR_SET_MASKED if masked else A.OVS_ACTION_ATTR_SET_TO_MASKED,
            (key_type, value, mask))


class _State:
    """The values __ovs_nla_copy_actions() threads through a list."""

    __slots__ = ("eth_type", "vlan_tci", "mpls_label_count", "sfa")

    def __init__(self, eth_type, vlan_tci, mpls_label_count, sfa):
        self.eth_type = eth_type
        self.vlan_tci = vlan_tci
        self.mpls_label_count = mpls_label_count
        self.sfa = sfa

    def reserve(self, n, log):
        """reserve_sfa_size(): ``n`` more bytes of the kernel's copy of the list.

        The kernel keeps the validated list as netlink attributes in a
        struct sw_flow_actions (a 28-byte header, then the actions) of at
        most MAX_ACTIONS_BUFSIZE bytes; a list whose copy would not fit is
        EMSGSIZE.  ``sfa`` is a one-item list shared by every nesting level.
        """
        used = self.sfa[0] + n
        if _SFA_HEADER + used > MAX_ACTIONS_BUFSIZE:
            raise _err(log, f"Flow action size exceeds max {MAX_ACTIONS_BUFSIZE}",
                       errno.EMSGSIZE)
        self.sfa[0] = used


def _copy_sample(payload, key, st, log, depth):
    attrs = {}
    items, rem = _walk(payload)
    for raw, p, _alen, _rem in items:
        t = raw & _TYPE_MASK
        if not t or t > U.OVS_SAMPLE_ATTR_MAX or t in attrs:
            raise _err(log, f"sample action: invalid or duplicate attribute {t}")
        attrs[t] = p
    if rem:
        raise _err(log, f"sample action has {rem} unknown bytes")
    prob = attrs.get(U.OVS_SAMPLE_ATTR_PROBABILITY)
    if prob is None or len(prob) != 4:
        raise _err(log, "sample action needs a u32 probability")
    acts = attrs.get(U.OVS_SAMPLE_ATTR_ACTIONS)
    if acts is None or (len(acts) and len(acts) < 4):
        raise _err(log, "sample action needs an actions attribute")
    st.reserve(_NEST_HDR + _SAMPLE_ARG, log)
    nested = _copy_actions(acts, key, st.eth_type, st.vlan_tci, st.mpls_label_count, log,
                           depth + 1, st.sfa)
    return (_U32.unpack(prob)[0], nested)


def _copy_dec_ttl(payload, key, st, log, depth):
    attrs = {}
    items, rem = _walk(payload)
    for raw, p, _alen, _rem in items:
        t = raw & _TYPE_MASK
        if t > U.OVS_DEC_TTL_ATTR_MAX:
            continue            # ignored, to be future proof
        if not t or t in attrs:
            raise _err(log, f"Duplicate or invalid key (type {t}).")
        attrs[t] = p
    if rem:
        raise _err(log, f"Message has {rem} unknown bytes.")
    acts = attrs.get(U.OVS_DEC_TTL_ATTR_ACTION)
    if acts is None or (len(acts) and len(acts) < 4):
        raise _err(log, "Missing valid actions attribute.")
    st.reserve(2 * _NEST_HDR, log)
    return _copy_actions(acts, key, st.eth_type, st.vlan_tci, st.mpls_label_count, log,
                         depth + 1, st.sfa)


def _copy_check_pkt_len(payload, key, st, log, depth):
    a = _parse_deprecated_strict(payload, U.OVS_CHECK_PKT_LEN_ATTR_MAX, _CPL_POLICY, log,
                                 "check_pkt_len action")
    pl = a.get(U.OVS_CHECK_PKT_LEN_ATTR_PKT_LEN)
    if pl is None or not _U16.unpack_from(pl)[0]:
        raise _err(log, "check_pkt_len action needs a non-zero packet length")
    le = a.get(U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_LESS_EQUAL)
    gt = a.get(U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_GREATER)
    if gt is None or le is None:
        raise _err(log, "check_pkt_len action needs both nested action lists")
    st.reserve(_NEST_HDR + _CPL_ARG + _NEST_HDR, log)
    acts_le = _copy_actions(le, key, st.eth_type, st.vlan_tci, st.mpls_label_count, log,
                            depth + 1, st.sfa)
    st.reserve(_NEST_HDR, log)
    acts_gt = _copy_actions(gt, key, st.eth_type, st.vlan_tci, st.mpls_label_count, log,
                            depth + 1, st.sfa)
    return (_U16.unpack_from(pl)[0], acts_gt, acts_le)


_PUSH_MPLS_ETH_TYPES = (K.ETH_P_IP, K.ETH_P_IPV6, K.ETH_P_ARP, K.ETH_P_RARP)
# actions the kernel stores in a form of its own (skip_copy), sized where they are handled
_REWRITTEN = frozenset((U.OVS_ACTION_ATTR_SET, U.OVS_ACTION_ATTR_SAMPLE,
                        U.OVS_ACTION_ATTR_CLONE, U.OVS_ACTION_ATTR_CHECK_PKT_LEN,
                        U.OVS_ACTION_ATTR_DEC_TTL))


def _copy_actions(buf, key, eth_type, vlan_tci, mpls_label_count, log, depth, sfa):
    """__ovs_nla_copy_actions()."""
    mac_proto_none = bool(_get(key, "no_eth"))
    if depth > OVS_COPY_ACTIONS_MAX_DEPTH:
        raise _err(log, f"Actions nested deeper than {OVS_COPY_ACTIONS_MAX_DEPTH} levels",
                   errno.EOVERFLOW)
    st = _State(eth_type, vlan_tci, mpls_label_count, sfa)
    out = []
    A = U
    items, rem = _walk(buf)
    for raw, p, alen, rem_before in items:
        t = raw & _TYPE_MASK
        if t > OVS_ACTION_ATTR_MAX:
            raise _err(log, f"Unknown Action type {t}")
        expected = _ACTION.length(t)
        if expected is not _VARIABLE and len(p) != expected:
            raise _err(log, f"Action {_ACTION_NAMES.get(t, t)} has unexpected len {len(p)} "
                            f"expected {expected}")
        is_last = alen == rem_before        # nla_is_last()

        if t == A.OVS_ACTION_ATTR_UNSPEC:
            raise _err(log, "Unknown Action type 0")
        elif t == A.OVS_ACTION_ATTR_USERSPACE:
            out.append((t, _validate_userspace(p, log)))
        elif t == A.OVS_ACTION_ATTR_OUTPUT:
            port = _U32.unpack(p)[0]
            if port >= K.DP_MAX_PORTS:
                raise _err(log, f"output port {port} exceeds max allowable {K.DP_MAX_PORTS}")
            out.append((t, port))
        elif t == A.OVS_ACTION_ATTR_TRUNC:
            max_len = _U32.unpack(p)[0]
            if max_len < ETH_HLEN:
                raise _err(log, f"trunc max_len {max_len} is less than {ETH_HLEN}")
            out.append((t, max_len))
        elif t == A.OVS_ACTION_ATTR_HASH:
            alg, basis = U.OVS_ACTION_HASH.unpack(p)
            if alg not in (U.OVS_HASH_ALG_L4, U.OVS_HASH_ALG_SYM_L4):
                raise _err(log, f"Unknown hash algorithm {alg}")
            out.append((t, (alg, basis)))
        elif t == A.OVS_ACTION_ATTR_POP_VLAN:
            if mac_proto_none:
                raise _err(log, "pop_vlan on a packet without Ethernet header")
            st.vlan_tci = 0
            out.append((t, None))
        elif t == A.OVS_ACTION_ATTR_PUSH_VLAN:
            if mac_proto_none:
                raise _err(log, "push_vlan on a packet without Ethernet header")
            tpid, tci = U.OVS_ACTION_PUSH_VLAN.unpack(p)
            if not eth_type_vlan(tpid):
                raise _err(log, f"push_vlan TPID {tpid:#06x} is not 802.1Q or 802.1ad")
            if not tci & K.VLAN_CFI_MASK:
                raise _err(log, "push_vlan TCI does not have the VLAN_CFI_MASK bit set")
            st.vlan_tci = tci
            out.append((t, (tpid, tci)))
        elif t == A.OVS_ACTION_ATTR_RECIRC:
            out.append((t, _U32.unpack(p)[0]))
        elif t == A.OVS_ACTION_ATTR_ADD_MPLS:
            lse, ethertype = U.OVS_ACTION_ADD_MPLS.unpack_from(p)
            tun_flags = _U16.unpack_from(p, 6)[0]
            if not eth_p_mpls(ethertype):
                raise _err(log, f"add_mpls ethertype {ethertype:#06x} is not MPLS")
            if tun_flags & U.OVS_MPLS_L3_TUNNEL_FLAG_MASK:
                if (st.vlan_tci & K.VLAN_CFI_MASK
                        or (st.eth_type not in _PUSH_MPLS_ETH_TYPES
                            and not eth_p_mpls(st.eth_type))):
                    raise _err(log, "add_mpls is not allowed on this packet type")
                st.mpls_label_count = (st.mpls_label_count + 1) & 0xFFFFFFFF
            else:
                if not mac_proto_none:
                    st.mpls_label_count = 1
                    mac_proto_none = True
                else:
                    st.mpls_label_count = (st.mpls_label_count + 1) & 0xFFFFFFFF
            st.eth_type = ethertype
            out.append((t, (lse, ethertype, tun_flags)))
        elif t == A.OVS_ACTION_ATTR_PUSH_MPLS:
            lse, ethertype = U.OVS_ACTION_PUSH_MPLS.unpack(p)
            if not eth_p_mpls(ethertype):
                raise _err(log, f"push_mpls ethertype {ethertype:#06x} is not MPLS")
            if (st.vlan_tci & K.VLAN_CFI_MASK
                    or (st.eth_type not in _PUSH_MPLS_ETH_TYPES and not eth_p_mpls(st.eth_type))):
                raise _err(log, "push_mpls is not allowed on this packet type")
            st.eth_type = ethertype
            st.mpls_label_count = (st.mpls_label_count + 1) & 0xFFFFFFFF
            out.append((t, (lse, ethertype)))
        elif t == A.OVS_ACTION_ATTR_POP_MPLS:
            if st.vlan_tci & K.VLAN_CFI_MASK or not eth_p_mpls(st.eth_type):
                raise _err(log, "pop_mpls on a packet that is not MPLS")
            proto = _BE16.unpack(p)[0]
            if proto == K.ETH_P_TEB and not mac_proto_none:
                raise _err(log, "pop_mpls to Ethernet (TEB) on a packet with Ethernet header")
            st.mpls_label_count = (st.mpls_label_count - 1) & 0xFFFFFFFF
            if not eth_p_mpls(proto) or not st.mpls_label_count:
                st.eth_type = 0
            else:
                st.eth_type = proto
            out.append((t, proto))
        elif t == A.OVS_ACTION_ATTR_SET:
            entry = _validate_set(p, key, mac_proto_none, st.eth_type, False, log)
            if entry[0] == A.OVS_ACTION_ATTR_SET:        # tunnel: a tunnel_info pointer
                st.reserve(_NEST_HDR + _TUNNEL_INFO, log)
            else:                                        # widened to key and mask
                st.reserve(_NEST_HDR + align(4 + 2 * len(entry[1][1])), log)
            out.append(entry)
        elif t == A.OVS_ACTION_ATTR_SET_MASKED:
            out.append(_validate_set(p, key, mac_proto_none, st.eth_type, True, log))
        elif t == A.OVS_ACTION_ATTR_SAMPLE:
            out.append((t, _copy_sample(p, key, st, log, depth)))
        elif t == A.OVS_ACTION_ATTR_CT:
            try:
                info = conntrack.parse_ct(p, _get(key, "eth_type"))   # the kernel's errno
            except NetlinkError as e:
                raise _err(log, e.msg, e.errno) from None
            if info.helper is not None:                     # nf_ct_add_helper()
                info.ct_helper, why = add_helper(info.helper, info.family,
                                                 _get(key, "ip_proto"), info.nat is not None)
                if why is not None:
                    raise _err(log, why[1], why[0])
            out.append((t, info))
        elif t == A.OVS_ACTION_ATTR_CT_CLEAR:
            out.append((t, None))
        elif t == A.OVS_ACTION_ATTR_PUSH_ETH:
            if not mac_proto_none:
                raise _err(log, "push_eth on a packet that already has an Ethernet header")
            mac_proto_none = False
            out.append((t, (bytes(p[0:6]), bytes(p[6:12]))))
        elif t == A.OVS_ACTION_ATTR_POP_ETH:
            if mac_proto_none:
                raise _err(log, "pop_eth on a packet without Ethernet header")
            if st.vlan_tci & K.VLAN_CFI_MASK:
                raise _err(log, "pop_eth on a VLAN tagged packet")
            mac_proto_none = True
            out.append((t, None))
        elif t == A.OVS_ACTION_ATTR_PSAMPLE:
            out.append((t, psample.validate_psample(raw, p, log)))
        elif t == A.OVS_ACTION_ATTR_POP_NSH:
            if st.eth_type != K.ETH_P_NSH:
                raise _err(log, f"pop_nsh on a flow with eth_type {st.eth_type:#06x}")
            np_ = _get(key, "nsh_np")
            if np_ not in _TUN_P_TO_ETH_P:
                raise _err(log, f"pop_nsh: the flow's NSH next protocol {np_} is unknown")
            mac_proto_none = np_ != TUN_P_ETHERNET
            out.append((t, None))
        elif t == A.OVS_ACTION_ATTR_PUSH_NSH:
            if mac_proto_none and st.eth_type not in _TUN_P_ETH_TYPES:
                raise _err(log, f"push_nsh on a packet of eth_type {st.eth_type:#06x}")
            mac_proto_none = True
            out.append((t, (validate_push_nsh(p, log), bytes(p))))
        elif t == A.OVS_ACTION_ATTR_METER:
            # any meter id: a missing meter is ignored when the packet comes
            out.append((t, _U32.unpack(p)[0]))
        elif t == A.OVS_ACTION_ATTR_CLONE:
            if len(p) and len(p) < 4:
                raise _err(log, "clone action payload is not an action list")
            st.reserve(_NEST_HDR + _CLONE_ARG, log)
            out.append((t, _copy_actions(p, key, st.eth_type, st.vlan_tci,
                                         st.mpls_label_count, log, depth + 1, st.sfa)))
        elif t == A.OVS_ACTION_ATTR_CHECK_PKT_LEN:
            out.append((t, _copy_check_pkt_len(p, key, st, log, depth)))
        elif t == A.OVS_ACTION_ATTR_DEC_TTL:
            out.append((t, _copy_dec_ttl(p, key, st, log, depth)))
        elif t == A.OVS_ACTION_ATTR_DROP:
            if not is_last:
                raise _err(log, "drop action must be the last action")
            out.append((t, _U32.unpack(p)[0]))
        else:  # pragma: no cover - every type 0..MAX is handled above
            raise _err(log, f"Unknown Action type {t}")
        if t not in _REWRITTEN:         # copy_action(): kept as it came
            st.reserve(align(alen), log)
    if rem > 0:
        raise _err(log, f"Action list has {rem} unknown bytes.")
    return tuple(out)


def copy_actions(actions, key, log=True):
    """ovs_nla_copy_actions(): validate an action list against the flow key.

    ``actions`` is the payload of OVS_FLOW_ATTR_ACTIONS/OVS_PACKET_ATTR_ACTIONS;
    ``key`` must be the masked flow key (for EXECUTE: the packet's key).
    Returns the ActionList described in docs/architecture.md.
    """
    eth_type = _get(key, "eth_type")
    count = _popcount(_get(key, "mpls_labels")) if eth_p_mpls(eth_type) else 0
    return _copy_actions(actions, key, eth_type, _get(key, "vlan_tci"), count, log, 0, [0])


# ---------------------------------------------------------- put_actions
def _put_userspace(us):
    if us.raw is not None:
        return us.raw
    parts = [nla_u32(U.OVS_USERSPACE_ATTR_PID, us.pid)]
    if us.userdata is not None:
        parts.append(nla(U.OVS_USERSPACE_ATTR_USERDATA, us.userdata))
    if us.egress_tun_port is not None:
        parts.append(nla_u32(U.OVS_USERSPACE_ATTR_EGRESS_TUN_PORT, us.egress_tun_port))
    if us.actions:
        parts.append(nla(U.OVS_USERSPACE_ATTR_ACTIONS))
    return b"".join(parts)


def put_actions(acts):
    """ovs_nla_put_actions(): an ActionList back to its attribute stream.

    As in the kernel, a plain set() that became a masked one is put back as
    set() of the key alone, a tunnel set as set(tunnel(...)), and nested
    lists (sample, clone, check_pkt_len, dec_ttl) in their canonical layout.
    """
    out = []
    for t, arg in acts:
        if t == U.OVS_ACTION_ATTR_OUTPUT or t == U.OVS_ACTION_ATTR_RECIRC \
                or t == U.OVS_ACTION_ATTR_TRUNC or t == U.OVS_ACTION_ATTR_METER \
                or t == U.OVS_ACTION_ATTR_DROP:
            out.append(nla_u32(t, arg))
        elif t == U.OVS_ACTION_ATTR_USERSPACE:
            out.append(nla(t, _put_userspace(arg)))
        elif t == U.OVS_ACTION_ATTR_SET_TO_MASKED:
            key_type, value, _mask = arg
            out.append(nla_nest(U.OVS_ACTION_ATTR_SET, nla(key_type, value)))
        elif t == U.OVS_ACTION_ATTR_SET_MASKED:
            key_type, value, mask = arg
            out.append(nla_nest(t, nla(key_type, value + mask)))
        elif t == U.OVS_ACTION_ATTR_SET:
            out.append(nla_nest(t, nla_nest(U.OVS_KEY_ATTR_TUNNEL, put_tunnel_info(arg))))
        elif t == U.OVS_ACTION_ATTR_PUSH_VLAN:
            out.append(nla(t, U.OVS_ACTION_PUSH_VLAN.pack(*arg)))
        elif t in (U.OVS_ACTION_ATTR_POP_VLAN, U.OVS_ACTION_ATTR_POP_ETH,
                   U.OVS_ACTION_ATTR_CT_CLEAR, U.OVS_ACTION_ATTR_POP_NSH):
            out.append(nla(t))
        elif t == U.OVS_ACTION_ATTR_SAMPLE:
            prob, nested = arg
            out.append(nla_nest(t, nla_u32(U.OVS_SAMPLE_ATTR_PROBABILITY, prob),
                                nla_nest(U.OVS_SAMPLE_ATTR_ACTIONS, put_actions(nested))))
        elif t == U.OVS_ACTION_ATTR_HASH:
            out.append(nla(t, U.OVS_ACTION_HASH.pack(*arg)))
        elif t == U.OVS_ACTION_ATTR_PUSH_MPLS:
            out.append(nla(t, U.OVS_ACTION_PUSH_MPLS.pack(*arg)))
        elif t == U.OVS_ACTION_ATTR_ADD_MPLS:
            lse, ethertype, flags = arg
            out.append(nla(t, U.OVS_ACTION_ADD_MPLS.pack(lse, ethertype)
                           + flags.to_bytes(2, "little")))
        elif t == U.OVS_ACTION_ATTR_POP_MPLS:
            out.append(nla(t, arg.to_bytes(2, "big")))
        elif t == U.OVS_ACTION_ATTR_PUSH_ETH:
            src, dst = arg
            out.append(nla(t, src + dst))
        elif t == U.OVS_ACTION_ATTR_CLONE:
            out.append(nla_nest(t, put_actions(arg)))
        elif t == U.OVS_ACTION_ATTR_CHECK_PKT_LEN:
            pkt_len, gt, le = arg
            out.append(nla_nest(
                t, nla(U.OVS_CHECK_PKT_LEN_ATTR_PKT_LEN, pkt_len.to_bytes(2, "little")),
                nla_nest(U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_GREATER, put_actions(gt)),
                nla_nest(U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_LESS_EQUAL, put_actions(le))))
        elif t == U.OVS_ACTION_ATTR_DEC_TTL:
            out.append(nla_nest(t, nla_nest(U.OVS_DEC_TTL_ATTR_ACTION, put_actions(arg))))
        elif t == U.OVS_ACTION_ATTR_CT:
            out.append(nla_nest(t, conntrack.action_to_attrs(arg)))
        elif t == U.OVS_ACTION_ATTR_PUSH_NSH:       # as it came (copy_action())
            out.append(nla(t, arg[1]))
        elif t == U.OVS_ACTION_ATTR_PSAMPLE:        # as it came, without NLA_F_NESTED
            out.append(nla(t, arg.raw))
        else:
            raise ValueError(f"cannot put action type {t}")
    return b"".join(out)
