"""Packet sampling: net/psample/psample.c and OVS's psample action.

:class:`Psample` is the psample module's state: its sampling groups (a
``struct psample_group`` per (namespace, group number) some user holds,
``psample_group_get``/``_take``/``_put``, each appearance and disappearance
told to the family's "config" group) and :meth:`Psample.sample_packet`,
which builds the PSAMPLE_CMD_SAMPLE message and multicasts it to the
"packets" group of the group's namespace (nothing is built when nobody
there listens).  The generic netlink family is :mod:`.families.psample`.

The OVS side is as in Linux 6.11+ (actions.c ``execute_psample``,
flow_netlink.c ``validate_psample``):

- :func:`validate_psample` checks the action as ``nla_parse_nested()``
  does (NLA_F_NESTED required, strict policy: a u32 group, a cookie of at
  most 16 bytes, nothing unknown) and gives the ActionList argument; the
  flow keeps the attribute as it came and dumps it back unchanged.
- :func:`execute_psample` builds its ``struct psample_group`` on the stack,
  as the kernel does: OVS takes no group, so no NEW_GROUP/DEL_GROUP is
  told, GET_GROUP does not list it, and every sample's GROUP_SEQ is 0.  The
  rate is the probability of the sample() action around it, 2^32-1 when
  there is none, always with PSAMPLE_ATTR_SAMPLE_PROBABILITY; the data is
  the packet as ``skb->len`` sees it (an outer VLAN tag is outside it),
  cut by a preceding trunc().

Sans I/O: multicast goes through the genl core, whose transport queues
each member's copy within its bounds (a full member loses it, as a full
netlink socket does).
"""

import time

from .. import uapi as U
from ..netlink.attr import (
    BINARY,
    U32,
    NetlinkError,
    Policy,
    align,
    nla,
    nla_be16,
    nla_be32,
    nla_be64,
    nla_flag,
    nla_u8,
    nla_u16,
    nla_u32,
    nla_u64,
    validate_nla,
)
from . import key_layout as K
from .actions_headers import hwaccel_len, layers, no_eth
from .flow_netlink_match import _err, _walk

PSAMPLE_MAX_PACKET_SIZE = 0xFFFF
U32_MAX = 0xFFFFFFFF
AF_INET, AF_INET6 = 2, 10
_NESTED = U.NLA_F_NESTED
_TYPE_MASK = U.NLA_TYPE_MASK

_ACTION_POLICY = {
    U.OVS_PSAMPLE_ATTR_GROUP: Policy(U32),
    U.OVS_PSAMPLE_ATTR_COOKIE: Policy(BINARY, U.OVS_PSAMPLE_COOKIE_MAX_SIZE),
}


class PsampleGroup:
    """struct psample_group."""

    __slots__ = ("net", "group_num", "refcount", "seq")

    def __init__(self, net, group_num):
        self.net = net
        self.group_num = group_num
        self.refcount = 0
        self.seq = 0

    def __repr__(self):
        return f"<PsampleGroup {self.group_num} refs={self.refcount} seq={self.seq}>"


class PsampleMetadata:
    """struct psample_metadata: what a sampler says of the packet."""

    __slots__ = ("in_ifindex", "out_ifindex", "trunc_size", "user_cookie",
                 "rate_as_probability")

    def __init__(self, in_ifindex=0, out_ifindex=0, trunc_size=U32_MAX, user_cookie=None,
                 rate_as_probability=False):
        self.in_ifindex = in_ifindex
        self.out_ifindex = out_ifindex
        self.trunc_size = trunc_size
        self.user_cookie = user_cookie
        self.rate_as_probability = rate_as_probability


class Psample:
    """The psample module: its groups and the sampling channel."""

    def __init__(self, family, clock=time.time_ns):
        self.family = family
        self.clock = clock               # ktime_get_real(), in ns
        self.groups = []                 # psample_groups_list, oldest first

    # ------------------------------------------------------------- groups
    def group_fill(self, group, cmd, portid, seq, flags):
        """psample_group_nl_fill()."""
        body = (nla_u32(U.PSAMPLE_ATTR_SAMPLE_GROUP, group.group_num)
                + nla_u32(U.PSAMPLE_ATTR_GROUP_REFCOUNT, group.refcount)
                + nla_u32(U.PSAMPLE_ATTR_GROUP_SEQ, group.seq))
        return self.family.message(cmd, flags, seq, portid, body)

    def _notify(self, group, cmd):
        """psample_group_notify(): to "config" of the group's namespace."""
        msg = self.group_fill(group, cmd, 0, 0, U.NLM_F_MULTI)
        self.family.core.multicast(self.family.group_id(U.PSAMPLE_NL_MCGRP_CONFIG_NAME),
                                   msg, group.net)

    def lookup(self, net, group_num):
        for g in self.groups:
            if g.group_num == group_num and g.net is net:
                return g
        return None

    def group_get(self, net, group_num):
        """psample_group_get(): the group, created (and told) if new; one more user."""
        group = self.lookup(net, group_num)
        if group is None:
            group = PsampleGroup(net, group_num)
            self.groups.append(group)
            self._notify(group, U.PSAMPLE_CMD_NEW_GROUP)
        group.refcount += 1
        return group

    def group_take(self, group):
        group.refcount += 1

    def group_put(self, group):
        """psample_group_put(): the last user gone, the group goes (and is told)."""
        group.refcount -= 1
        if group.refcount == 0:
            self._notify(group, U.PSAMPLE_CMD_DEL_GROUP)
            self.groups.remove(group)

    def groups_of(self, net):
        return [g for g in self.groups if g.net is net]

    def forget_net(self, net):
        """A namespace went away: its groups with it (their users are gone too)."""
        self.groups = [g for g in self.groups if g.net is not net]

    # ------------------------------------------------------------ sampling
    def has_listeners(self, net):
        return self.family.has_listeners(U.PSAMPLE_NL_MCGRP_SAMPLE_NAME, net)

    def sample_packet(self, group, data, protocol, sample_rate, md, tunnel=None):
        """psample_sample_packet(): the PSAMPLE_CMD_SAMPLE message, sent.

        ``data`` is the packet from skb->data on (its length is skb->len),
        ``protocol`` skb->protocol, ``tunnel`` the tun_* key of
        skb_tunnel_info() with its (proto, bridge) mode, or None.  Returns
        the message, or None when the namespace has no listener.
        """
        if not self.has_listeners(group.net):
            return None
        skb_len = len(data)
        head = []
        if md.in_ifindex:
            head.append(nla_u16(U.PSAMPLE_ATTR_IIFINDEX, md.in_ifindex & 0xFFFF))
        if md.out_ifindex:
            head.append(nla_u16(U.PSAMPLE_ATTR_OIFINDEX, md.out_ifindex & 0xFFFF))
        head += [nla_u32(U.PSAMPLE_ATTR_SAMPLE_RATE, sample_rate),
                 nla_u32(U.PSAMPLE_ATTR_ORIGSIZE, skb_len),
                 nla_u32(U.PSAMPLE_ATTR_SAMPLE_GROUP, group.group_num),
                 nla_u32(U.PSAMPLE_ATTR_GROUP_SEQ, group.seq),
                 # 64-bit attributes need no PSAMPLE_ATTR_PAD where unaligned
                 # access is cheap (x86-64)
                 nla_u64(U.PSAMPLE_ATTR_TIMESTAMP, self.clock()),
                 nla_u16(U.PSAMPLE_ATTR_PROTO, protocol)]
        group.seq = (group.seq + 1) & U32_MAX
        tail = []
        if tunnel is not None:
            tail.append(nla(U.PSAMPLE_ATTR_TUNNEL, tunnel_attrs(*tunnel)))
        if md.user_cookie:
            tail.append(nla(U.PSAMPLE_ATTR_USER_COOKIE, md.user_cookie))
        head = b"".join(head)
        tail = b"".join(tail)
        meta_len = len(head) + len(tail)
        data_len = min(skb_len, md.trunc_size)
        if meta_len + align(U.NLA_HDRLEN + data_len) > PSAMPLE_MAX_PACKET_SIZE:
            data_len = PSAMPLE_MAX_PACKET_SIZE - meta_len - U.NLA_HDRLEN - U.NLA_ALIGNTO
        body = head + (nla(U.PSAMPLE_ATTR_DATA, bytes(data[:data_len])) if data_len > 0
                       else b"") + tail
        if md.rate_as_probability:
            body += nla_flag(U.PSAMPLE_ATTR_SAMPLE_PROBABILITY)
        msg = self.family.message(U.PSAMPLE_CMD_SAMPLE, 0, 0, 0, body)
        self.family.core.multicast(self.family.group_id(U.PSAMPLE_NL_MCGRP_SAMPLE_NAME),
                                   msg, group.net)
        return msg


def tunnel_attrs(k, proto, bridge=False):
    """__psample_ip_tun_to_nlattr(): the nest's attributes for tun_* key ``k``."""
    g = K.get
    flags = g(k, "tun_flags")
    parts = []
    if flags & K.TUN_F_KEY:
        parts.append(nla_be64(U.PSAMPLE_TUNNEL_KEY_ATTR_ID, g(k, "tun_id")))
    if bridge:
        parts.append(nla_flag(U.PSAMPLE_TUNNEL_KEY_ATTR_IPV4_INFO_BRIDGE))
    if proto == AF_INET:
        for name, atype in (("tun_ipv4_src", U.PSAMPLE_TUNNEL_KEY_ATTR_IPV4_SRC),
                            ("tun_ipv4_dst", U.PSAMPLE_TUNNEL_KEY_ATTR_IPV4_DST)):
            if g(k, name):
                parts.append(nla_be32(atype, g(k, name)))
    else:
        for name, atype in (("tun_ipv6_src", U.PSAMPLE_TUNNEL_KEY_ATTR_IPV6_SRC),
                            ("tun_ipv6_dst", U.PSAMPLE_TUNNEL_KEY_ATTR_IPV6_DST)):
            if g(k, name):
                parts.append(nla(atype, g(k, name).to_bytes(16, "big")))
    if g(k, "tun_tos"):
        parts.append(nla_u8(U.PSAMPLE_TUNNEL_KEY_ATTR_TOS, g(k, "tun_tos")))
    parts.append(nla_u8(U.PSAMPLE_TUNNEL_KEY_ATTR_TTL, g(k, "tun_ttl")))
    if flags & K.TUN_F_DONT_FRAGMENT:
        parts.append(nla_flag(U.PSAMPLE_TUNNEL_KEY_ATTR_DONT_FRAGMENT))
    if flags & K.TUN_F_CSUM:
        parts.append(nla_flag(U.PSAMPLE_TUNNEL_KEY_ATTR_CSUM))
    if g(k, "tun_tp_src"):
        parts.append(nla_be16(U.PSAMPLE_TUNNEL_KEY_ATTR_TP_SRC, g(k, "tun_tp_src")))
    if g(k, "tun_tp_dst"):
        parts.append(nla_be16(U.PSAMPLE_TUNNEL_KEY_ATTR_TP_DST, g(k, "tun_tp_dst")))
    if flags & K.TUN_F_OAM:
        parts.append(nla_flag(U.PSAMPLE_TUNNEL_KEY_ATTR_OAM))
    n = g(k, "tun_opts_len")
    if n and flags & (K.TUN_F_GENEVE_OPT | K.TUN_F_ERSPAN_OPT):
        opts = (g(k, "tun_opts") & ((1 << (8 * n)) - 1)).to_bytes(n, "big")
        atype = (U.PSAMPLE_TUNNEL_KEY_ATTR_GENEVE_OPTS if flags & K.TUN_F_GENEVE_OPT
                 else U.PSAMPLE_TUNNEL_KEY_ATTR_ERSPAN_OPTS)
        parts.append(nla(atype, opts))
    return b"".join(parts)


# ------------------------------------------------------------ the OVS action
class PsampleAction:
    """The ActionList argument of OVS_ACTION_ATTR_PSAMPLE: the attribute's
    payload as it came (``raw``, what a flow dump gives back) and what
    execute_psample() reads of it."""

    __slots__ = ("group", "cookie", "raw")

    def __init__(self, group, cookie, raw):
        self.group = group
        self.cookie = cookie
        self.raw = raw

    def __eq__(self, other):
        return isinstance(other, PsampleAction) and other.raw == self.raw

    def __hash__(self):
        return hash(self.raw)

    def __repr__(self):
        return f"PsampleAction(group={self.group}, cookie={self.cookie!r})"


def validate_psample(raw_type, payload, log):
    """validate_psample(): nla_parse_nested() with the action's policy.

    EINVAL for a missing NLA_F_NESTED, an unknown or flagged attribute, a
    group that is not exactly a u32, trailing bytes or no group; ERANGE for
    a cookie over 16 bytes.  Returns the :class:`PsampleAction`.
    """
    if not raw_type & _NESTED:
        raise _err(log, "psample action: NLA_F_NESTED is missing")
    group = cookie = None
    items, rem = _walk(payload)
    for raw, p, _alen, _rem in items:
        t = raw & _TYPE_MASK
        if t == 0 or t > U.OVS_PSAMPLE_ATTR_MAX:
            raise _err(log, f"psample action: Unknown attribute type {t}")
        if raw & _NESTED:
            raise _err(log, "psample action: NLA_F_NESTED not expected")
        if t == U.OVS_PSAMPLE_ATTR_GROUP:
            if len(p) != 4:
                raise _err(log, "psample action: invalid attribute length")
            group = int.from_bytes(p, "little")
        else:
            try:
                validate_nla(t, p, _ACTION_POLICY[t], None)
            except NetlinkError as e:
                raise _err(log, "psample action: cookie longer than 16 bytes",
                           e.errno) from None
            cookie = bytes(p)
    if rem > 0:
        raise _err(log, "psample action: bytes leftover after parsing attributes")
    if group is None:
        raise _err(log, "psample action needs OVS_PSAMPLE_ATTR_GROUP")
    return PsampleAction(group, cookie, bytes(payload))


def _tunnel(skb, kx):
    """skb_tunnel_info(): a set(tunnel()) action's, else a tunnel port's rx metadata."""
    if skb.tun_info is not None:
        k = skb.tun_info.key
        proto = AF_INET6 if K.get(k, "tun_proto") == AF_INET6 else AF_INET
        return k, proto, proto == AF_INET and not K.get(k, "tun_ipv4_dst")
    vport = skb.input_vport
    proto = K.get(kx.k, "tun_proto")
    if vport is not None and getattr(vport, "tunnel", False) and proto:
        return kx.k, AF_INET6 if proto == AF_INET6 else AF_INET, False
    return None


def execute_psample(dp, skb, kx, arg):
    """execute_psample(): sample the packet to the action's group in the
    datapath's namespace (nothing when the module has no psample or the
    namespace no listener)."""
    ps = getattr(dp, "psample", None)
    if ps is None or not ps.has_listeners(dp.net):
        return
    data = skb.data
    hw = hwaccel_len(skb, kx)
    if hw:
        data = bytes(data[:12]) + bytes(data[12 + hw:])     # the tag is outside skb->data
    protocol = kx.proto if no_eth(kx) else layers(skb, kx).protocol
    vport = skb.input_vport
    md = PsampleMetadata(in_ifindex=getattr(vport, "ifindex", 0) if vport else 0,
                         trunc_size=len(data) - skb.cutlen,
                         user_cookie=arg.cookie, rate_as_probability=True)
    rate = skb.probability or U32_MAX
    ps.sample_packet(PsampleGroup(dp.net, arg.group), data, protocol, rate, md,
                     _tunnel(skb, kx))

