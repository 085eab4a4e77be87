"""The ovs_flow generic netlink family (datapath.c, OVS_FLOW_CMD_*)."""

import errno
import logging

from ... import uapi as U
from ...netlink import attr as A
from ...netlink.attr import NetlinkError, nla, nla_nest, nla_u8, nla_u64
from ...netlink.genl import Family, Op
from .. import flow_netlink as FN
from .. import flow_netlink_actions as FA
from .. import flow_netlink_put as FNP
from ..conntrack_timeout import set_timeouts
from ..flow_table import Flow

log = logging.getLogger("ovsdp.datapath.flow_netlink")

POLICY = {
    U.OVS_FLOW_ATTR_KEY: A.Policy(A.NESTED),
    U.OVS_FLOW_ATTR_MASK: A.Policy(A.NESTED),
    U.OVS_FLOW_ATTR_ACTIONS: A.Policy(A.NESTED),
    U.OVS_FLOW_ATTR_CLEAR: A.Policy(A.FLAG),
    U.OVS_FLOW_ATTR_PROBE: A.Policy(A.FLAG),
    U.OVS_FLOW_ATTR_UFID: A.Policy(A.UNSPEC, 1),
    U.OVS_FLOW_ATTR_UFID_FLAGS: A.Policy(A.U32),
}


def make_family(module):
    fam = Family(U.OVS_FLOW_FAMILY, U.OVS_FLOW_VERSION, U.OVS_FLOW_ATTR_MAX, POLICY,
                 hdrsize=U.OVS_HEADER_LEN, mcgrps=[U.OVS_FLOW_MCGROUP])
    h = FlowCommands(module, fam)
    admin = U.GENL_UNS_ADMIN_PERM
    fam.add_op(Op(U.OVS_FLOW_CMD_NEW, admin, doit=h.new))
    fam.add_op(Op(U.OVS_FLOW_CMD_DEL, admin, doit=h.delete))
    fam.add_op(Op(U.OVS_FLOW_CMD_GET, 0, doit=h.get, dumpit=h.dump))
    fam.add_op(Op(U.OVS_FLOW_CMD_SET, admin, doit=h.set))
    return fam


def fill_info(family, flow, dp_ifindex, portid, seq, flags, cmd, ufid_flags):
    """ovs_flow_cmd_fill_info() as one message."""
    parts = [U.OVS_HEADER.pack(dp_ifindex)]
    # ovs_nla_put_identifier(): the UFID, or the unmasked key
    if flow.ufid is not None:
        parts.append(nla(U.OVS_FLOW_ATTR_UFID, flow.ufid))
    else:
        parts.append(nla_nest(U.OVS_FLOW_ATTR_KEY,
                              FNP.put_key(flow.unmasked_key, flow.unmasked_key, False)))
    if flow.ufid is not None and not ufid_flags & U.OVS_UFID_F_OMIT_KEY:
        parts.append(nla_nest(U.OVS_FLOW_ATTR_KEY, FNP.put_key(flow.key, flow.key, False)))
    if not ufid_flags & U.OVS_UFID_F_OMIT_MASK:
        parts.append(nla_nest(U.OVS_FLOW_ATTR_MASK, FNP.put_key(flow.key, flow.mask_key, True)))
    if flow.used:
        parts.append(nla_u64(U.OVS_FLOW_ATTR_USED, flow.used))
    if flow.packets:
        parts.append(nla(U.OVS_FLOW_ATTR_STATS, U.OVS_FLOW_STATS.pack(flow.packets, flow.bytes)))
    if flow.tcp_flags & 0xFF:
        parts.append(nla_u8(U.OVS_FLOW_ATTR_TCP_FLAGS, flow.tcp_flags & 0xFF))
    if not ufid_flags & U.OVS_UFID_F_OMIT_ACTIONS:
        parts.append(nla_nest(U.OVS_FLOW_ATTR_ACTIONS, flow.acts_bytes))
    return family.message(cmd, flags, seq, portid, b"".join(parts))


class FlowCommands:
    def __init__(self, module, family):
        self.module = module
        self.family = family

    def _dp(self, req):
        dp = self.module.get_dp(req.net, self._ifindex(req))
        if dp is None:
            raise NetlinkError(errno.ENODEV, "datapath not found")
        return dp

    @staticmethod
    def _ifindex(req):
        return U.OVS_HEADER.unpack(req.userhdr)[0]

    @staticmethod
    def _ufid(req):
        """ovs_nla_get_ufid(): a UFID of 1..16 bytes, else none (silently)."""
        p = req.attrs.get(U.OVS_FLOW_ATTR_UFID)
        return FN.get_ufid(p) if p is not None else None

    @staticmethod
    def _ufid_flags(req):
        p = req.attrs.get(U.OVS_FLOW_ATTR_UFID_FLAGS)
        return FN.get_ufid_flags(p) if p is not None else 0

    def _must_notify(self, req):
        return bool(req.flags & U.NLM_F_ECHO) or self.family.has_listeners()

    def _reply(self, req, flow, cmd, ufid_flags):
        return fill_info(self.family, flow, self._ifindex(req), req.portid, req.seq, 0, cmd,
                         ufid_flags)

    def _match(self, req, with_mask):
        """ovs_nla_get_match(): (key, mask); without the mask, just the key."""
        a = req.attrs
        log = U.OVS_FLOW_ATTR_PROBE not in a
        try:
            if not with_mask:
                return FN.get_key(a[U.OVS_FLOW_ATTR_KEY], log)
            return FN.get_match(a[U.OVS_FLOW_ATTR_KEY], a.get(U.OVS_FLOW_ATTR_MASK), log)
        except NetlinkError as e:
            if e.offset is None:
                e.offset = req.offset(U.OVS_FLOW_ATTR_KEY)
            raise

    def _actions(self, req, masked_key, nlerr):
        """ovs_nla_copy_actions(); a refusal logs ``nlerr`` as OVS_NLERR() does."""
        a = req.attrs
        probe = U.OVS_FLOW_ATTR_PROBE in a
        try:
            acts = FA.copy_actions(a[U.OVS_FLOW_ATTR_ACTIONS], masked_key, not probe)
        except NetlinkError as e:
            if not probe:
                log.info("netlink: %s", nlerr)
            if e.offset is None:
                e.offset = req.offset(U.OVS_FLOW_ATTR_ACTIONS)
            raise
        return set_timeouts(acts, req.net.conntrack, masked_key)   # ovs_ct_copy_action()

    # ------------------------------------------------------------ commands
    def new(self, req):
        a = req.attrs
        if U.OVS_FLOW_ATTR_KEY not in a:
            raise NetlinkError(errno.EINVAL, "Flow key attr not present in new flow.")
        if U.OVS_FLOW_ATTR_ACTIONS not in a:
            raise NetlinkError(errno.EINVAL, "Flow actions attr not present in new flow.")
        ufid_flags = self._ufid_flags(req)
        key, mask = self._match(req, True)
        ufid = self._ufid(req)
        masked = key & mask
        acts = self._actions(req, masked, "Flow actions may not be safe on all matching packets.")
        dp = self._dp(req)
        table = dp.table
        match_key = key if ufid is None else masked
        flow = table.lookup_ufid(ufid) if ufid is not None else None
        if flow is None:
            flow = table.lookup(masked)
        if flow is None:
            flow = Flow(masked, key if ufid is None else None, ufid, acts)
            table.insert(flow, mask)
        else:
            if req.flags & (U.NLM_F_CREATE | U.NLM_F_EXCL):
                raise NetlinkError(errno.EEXIST, "flow already exists")
            same = (flow.key == match_key) if flow.ufid is not None \
                else (flow.unmasked_key == match_key)
            if not same:
                flow = table.lookup_exact(match_key) if flow.ufid is None else None
                if flow is None:
                    raise NetlinkError(errno.ENOENT, "flow identifier does not match the key")
            flow.set_actions(acts)
        if self._must_notify(req):
            self.module.genl.notify(self.family, req,
                                    self._reply(req, flow, U.OVS_FLOW_CMD_NEW, ufid_flags))

    def set(self, req):
        a = req.attrs
        ufid = self._ufid(req)
        ufid_flags = self._ufid_flags(req)
        if U.OVS_FLOW_ATTR_KEY not in a and ufid is None:
            raise NetlinkError(errno.EINVAL, "Flow set message rejected, Key attribute missing.")
        key = None
        acts = None
        if U.OVS_FLOW_ATTR_KEY in a:
            key, mask = self._match(req, True)
        if U.OVS_FLOW_ATTR_ACTIONS in a:
            if key is None:
                raise NetlinkError(errno.EINVAL, "Flow key attribute not present in set flow.")
            acts = self._actions(req, key & mask, "Actions may not be safe on all matching packets")
        dp = self._dp(req)
        flow = dp.table.lookup_ufid(ufid) if ufid is not None else dp.table.lookup_exact(key)
        if flow is None:
            raise NetlinkError(errno.ENOENT, "flow not found")
        if acts is not None:
            flow.set_actions(acts)
        reply = None
        if self._must_notify(req):
            reply = self._reply(req, flow, U.OVS_FLOW_CMD_SET, ufid_flags)
        if U.OVS_FLOW_ATTR_CLEAR in a:
            flow.clear_stats()
        if reply is not None:
            self.module.genl.notify(self.family, req, reply)

    def get(self, req):
        a = req.attrs
        ufid = self._ufid(req)
        ufid_flags = self._ufid_flags(req)
        key = None
        if U.OVS_FLOW_ATTR_KEY in a:
            key = self._match(req, False)
        elif ufid is None:
            raise NetlinkError(errno.EINVAL, "Flow get message rejected, Key attribute missing.")
        dp = self._dp(req)
        flow = dp.table.lookup_ufid(ufid) if ufid is not None else dp.table.lookup_exact(key)
        if flow is None:
            raise NetlinkError(errno.ENOENT, "flow not found")
        req.peer.send(self._reply(req, flow, U.OVS_FLOW_CMD_GET, ufid_flags))

    def delete(self, req):
        a = req.attrs
        ufid = self._ufid(req)
        ufid_flags = self._ufid_flags(req)
        key = None
        if U.OVS_FLOW_ATTR_KEY in a:
            key = self._match(req, False)
        dp = self._dp(req)
        if key is None and ufid is None:
            dp.table.flush()
            return
        flow = dp.table.lookup_ufid(ufid) if ufid is not None else dp.table.lookup_exact(key)
        if flow is None:
            raise NetlinkError(errno.ENOENT, "flow not found")
        dp.table.remove(flow)
        if self._must_notify(req):
            self.module.genl.notify(self.family, req,
                                    self._reply(req, flow, U.OVS_FLOW_CMD_DEL, ufid_flags))

    def dump(self, req):
        if req.parse_error is not None:
            raise req.parse_error
        ufid_flags = self._ufid_flags(req)
        dp = self._dp(req)
        ifindex = self._ifindex(req)
        live = dp.table.flows
        for flow in dp.table:
            if id(flow) not in live:
                continue        # removed while the dump was running
            yield fill_info(self.family, flow, ifindex, req.portid, req.seq, U.NLM_F_MULTI,
                            U.OVS_FLOW_CMD_GET, ufid_flags)
