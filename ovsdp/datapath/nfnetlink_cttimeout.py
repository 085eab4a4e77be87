"""cttimeout: conntrack timeout policies over netlink
(net/netfilter/nfnetlink_cttimeout.c), the nfnetlink subsystem 8.

Sans I/O.  The policies of a network namespace live with its tracker
(``OvsNet.conntrack.timeout_policies``); :mod:`.nf_conntrack_timeout` has
the policy objects and the per-protocol conversion.  What Linux 6.x does:

- NEW needs CTA_TIMEOUT_NAME, _L3PROTO, _L4PROTO and _DATA (EINVAL); a
  name in use is EEXIST with NLM_F_EXCL, replaced in place with
  NLM_F_REPLACE (a policy of another l3/l4 protocol: EINVAL; the new
  timeouts are the namespace's defaults overlaid with the given ones), else
  EBUSY; a protocol without a tracker is EOPNOTSUPP;
- GET answers one policy by name (ENOENT; no name: EINVAL) or dumps them
  all, each as IPCTNL_MSG_TIMEOUT_NEW (NLM_F_MULTI), with CTA_TIMEOUT_USE
  the reference count (1, plus one per CT action of a flow that uses it);
- DELETE removes one by name (EBUSY while used, ENOENT) or, without a name,
  every unused one;
- DEFAULT_SET changes the namespace's defaults of a protocol (the given
  attributes only), DEFAULT_GET answers them as IPCTNL_MSG_TIMEOUT_DEFAULT_SET
  with the l3 protocol asked for;
- every message needs CAP_NET_ADMIN (the nfnetlink core checks it).

Differs from Linux: no DCCP (ovsdp has no DCCP tracker: EOPNOTSUPP, as a
kernel without CONFIG_NF_CT_PROTO_DCCP); timeouts are whole seconds, kept
as given (the kernel multiplies by HZ in 32 bits).
"""

import errno

from ..netlink.attr import (
    NetlinkError,
    get_be16,
    get_be32,
    nla_be16,
    nla_be32,
    nla_nest,
    nla_string,
    nla_u8,
)
from ..netlink.nfnetlink import Callback, Subsystem, nfnl_msg, parse
from ..uapi import NLA_F_NESTED, NLA_HDRLEN, NLM_F_DUMP, NLM_F_EXCL, NLM_F_MULTI, NLM_F_REPLACE
from ..uapi import nfnetlink as N
from . import nf_conntrack_timeout as T

AF_UNSPEC = 0


# ---------------------------------------------------------------- encoding
def data_attrs(proto, data):
    """CTA_TIMEOUT_DATA: <proto>_timeout_obj_to_nlattr() in its nest."""
    return nla_nest(N.CTA_TIMEOUT_DATA | NLA_F_NESTED,
                    *(nla_be32(t, v & 0xFFFFFFFF) for t, v in T.obj_to_nlattr(proto, data)))


def fill_info(policy, portid, seq):
    """ctnl_timeout_fill_info(): one policy as IPCTNL_MSG_TIMEOUT_NEW."""
    body = (nla_string(N.CTA_TIMEOUT_NAME, policy.name) +
            nla_be16(N.CTA_TIMEOUT_L3PROTO, policy.l3num) +
            nla_u8(N.CTA_TIMEOUT_L4PROTO, policy.l4num) +
            nla_be32(N.CTA_TIMEOUT_USE, policy.use) +
            data_attrs(policy.proto, policy.data))
    return nfnl_msg(N.NFNL_SUBSYS_CTNETLINK_TIMEOUT, N.IPCTNL_MSG_TIMEOUT_NEW,
                    NLM_F_MULTI if portid else 0, seq, portid, AF_UNSPEC, body)


def default_fill_info(tracker, l3num, proto, portid, seq):
    """cttimeout_default_fill_info(): a protocol's defaults as
    IPCTNL_MSG_TIMEOUT_DEFAULT_SET."""
    body = (nla_be16(N.CTA_TIMEOUT_L3PROTO, l3num) +
            nla_u8(N.CTA_TIMEOUT_L4PROTO, proto.l4num) +
            data_attrs(proto, T.get_defaults(tracker, proto.l4num)))
    return nfnl_msg(N.NFNL_SUBSYS_CTNETLINK_TIMEOUT, N.IPCTNL_MSG_TIMEOUT_DEFAULT_SET,
                    NLM_F_MULTI if portid else 0, seq, portid, AF_UNSPEC, body)


# ----------------------------------------------------------------- parsing
def _need(info, *types):
    if any(t not in info.attrs for t in types):
        raise NetlinkError(errno.EINVAL, "missing timeout policy attributes")


def _name(info):
    return info.attrs[N.CTA_TIMEOUT_NAME].split(b"\0", 1)[0]


def _protocols(info):
    """(l3num, the l4 protocol's TimeoutProto); EOPNOTSUPP without a tracker."""
    l3num = get_be16(info.attrs[N.CTA_TIMEOUT_L3PROTO])
    l4num = info.attrs[N.CTA_TIMEOUT_L4PROTO][0]
    proto = T.l4proto_of(l4num)
    if proto is None:
        raise info.error(errno.EOPNOTSUPP, f"no conntrack timeouts for protocol {l4num}",
                         N.CTA_TIMEOUT_L4PROTO)
    return l3num, proto


def parse_policy(info, proto):
    """ctnl_timeout_parse_policy()'s parse: {attribute type: seconds} of
    CTA_TIMEOUT_DATA against the protocol's policy (all NLA_U32)."""
    base = info.offsets[N.CTA_TIMEOUT_DATA] + NLA_HDRLEN
    tb, _ = parse(info.attrs[N.CTA_TIMEOUT_DATA], proto.table(), base)
    return {t: get_be32(p) for t, p in tb.items()}


# ---------------------------------------------------------------- handlers
class Cttimeout:
    """The subsystem's callbacks over the policies of the peers' namespaces."""

    def __init__(self, nfnl):
        self.nfnl = nfnl
        cb = {m: Callback(h, N.CTA_TIMEOUT_TABLE) for m, h in (
            (N.IPCTNL_MSG_TIMEOUT_NEW, self.new_timeout),
            (N.IPCTNL_MSG_TIMEOUT_GET, self.get_timeout),
            (N.IPCTNL_MSG_TIMEOUT_DELETE, self.del_timeout),
            (N.IPCTNL_MSG_TIMEOUT_DEFAULT_SET, self.default_set),
            (N.IPCTNL_MSG_TIMEOUT_DEFAULT_GET, self.default_get))}
        self.subsystem = Subsystem("conntrack_timeout", N.NFNL_SUBSYS_CTNETLINK_TIMEOUT, cb)

    @staticmethod
    def new_timeout(info):
        """cttimeout_new_timeout()."""
        _need(info, N.CTA_TIMEOUT_NAME, N.CTA_TIMEOUT_L3PROTO, N.CTA_TIMEOUT_L4PROTO,
              N.CTA_TIMEOUT_DATA)
        tracker = info.net.conntrack
        policies = tracker.timeout_policies
        name = _name(info)
        l3num = get_be16(info.attrs[N.CTA_TIMEOUT_L3PROTO])
        l4num = info.attrs[N.CTA_TIMEOUT_L4PROTO][0]
        matching = policies.get(name)
        if matching is not None:
            if info.hdr.flags & NLM_F_EXCL:
                raise NetlinkError(errno.EEXIST, "the timeout policy exists")
            if not info.hdr.flags & NLM_F_REPLACE:
                raise NetlinkError(errno.EBUSY, "the timeout policy exists")
            if matching.l3num != l3num or matching.l4num != l4num:
                raise NetlinkError(errno.EINVAL, "a policy of another protocol has this name")
            T.nlattr_to_obj(tracker, matching.proto, parse_policy(info, matching.proto),
                            matching.data)
            return False
        l3num, proto = _protocols(info)
        data = T.nlattr_to_obj(tracker, proto, parse_policy(info, proto), [0] * proto.size)
        policies[name] = T.TimeoutPolicy(name, l3num, proto, data)
        return False

    def get_timeout(self, info):
        """cttimeout_get_timeout(): one by name, or a dump."""
        policies = info.net.conntrack.timeout_policies
        T.drop_dead_holders(policies)
        if info.hdr.flags & NLM_F_DUMP:
            return self.nfnl.start_dump(info, self._dump(info, policies))
        _need(info, N.CTA_TIMEOUT_NAME)
        policy = T.find(policies, _name(info))
        if policy is None:
            raise NetlinkError(errno.ENOENT, "no such timeout policy")
        info.peer.send(fill_info(policy, info.peer.portid, info.hdr.seq))
        return False

    @staticmethod
    def _dump(info, policies):
        """ctnl_timeout_dump(): oldest first; one deleted meanwhile is skipped."""
        for policy in list(policies.values()):
            if policies.get(policy.name) is policy:
                yield fill_info(policy, info.peer.portid, info.hdr.seq)

    @staticmethod
    def del_timeout(info):
        """cttimeout_del_timeout()."""
        policies = info.net.conntrack.timeout_policies
        T.drop_dead_holders(policies)
        if N.CTA_TIMEOUT_NAME not in info.attrs:
            for policy in list(policies.values()):
                policy.try_del(policies)
            return False
        policy = T.find(policies, _name(info))
        if policy is None:
            raise NetlinkError(errno.ENOENT, "no such timeout policy")
        if not policy.try_del(policies):
            raise NetlinkError(errno.EBUSY, "the timeout policy is in use")
        return False

    @staticmethod
    def default_set(info):
        """cttimeout_default_set(): the namespace's defaults of a protocol."""
        _need(info, N.CTA_TIMEOUT_L3PROTO, N.CTA_TIMEOUT_L4PROTO, N.CTA_TIMEOUT_DATA)
        _l3num, proto = _protocols(info)
        tracker = info.net.conntrack
        T.nlattr_to_obj(tracker, proto, parse_policy(info, proto))
        return False

    @staticmethod
    def default_get(info):
        """cttimeout_default_get()."""
        _need(info, N.CTA_TIMEOUT_L3PROTO, N.CTA_TIMEOUT_L4PROTO)
        l3num, proto = _protocols(info)
        info.peer.send(default_fill_info(info.net.conntrack, l3num, proto, info.peer.portid,
                                         info.hdr.seq))
        return False
