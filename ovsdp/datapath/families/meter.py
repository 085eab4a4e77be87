"""The ovs_meter generic netlink family (meter.c, OVS_METER_CMD_*).

FEATURES and GET are for anyone, SET and DEL need CAP_NET_ADMIN.  Meters
belong to the datapath named by the ovs_header's dp_ifindex.  Each reply
is one message with the request's command; SET and DEL carry the old
meter's statistics when there was one (SET only if it kept them).
"""

import errno

from ... import uapi as U
from ...netlink import attr as A
from ...netlink.attr import NetlinkError, nla_u32
from ...netlink.genl import Family, Op
from .. import meter as M
from ..meter import now_ms

POLICY = {
    U.OVS_METER_ATTR_ID: A.Policy(A.U32),
    U.OVS_METER_ATTR_KBPS: A.Policy(A.FLAG),
    U.OVS_METER_ATTR_STATS: A.Policy(A.UNSPEC, U.OVS_FLOW_STATS.size),
    U.OVS_METER_ATTR_BANDS: A.Policy(A.NESTED),
    U.OVS_METER_ATTR_USED: A.Policy(A.U64),
    U.OVS_METER_ATTR_CLEAR: A.Policy(A.FLAG),
    U.OVS_METER_ATTR_MAX_METERS: A.Policy(A.U32),
    U.OVS_METER_ATTR_MAX_BANDS: A.Policy(A.U32),
}


def make_family(module):
    fam = Family(U.OVS_METER_FAMILY, U.OVS_METER_VERSION, U.OVS_METER_ATTR_MAX, POLICY,
                 hdrsize=U.OVS_HEADER_LEN, mcgrps=[U.OVS_METER_MCGROUP])
    h = MeterCommands(module, fam)
    admin = U.GENL_UNS_ADMIN_PERM
    fam.add_op(Op(U.OVS_METER_CMD_FEATURES, 0, doit=h.features))
    fam.add_op(Op(U.OVS_METER_CMD_SET, admin, doit=h.set))
    fam.add_op(Op(U.OVS_METER_CMD_GET, 0, doit=h.get))
    fam.add_op(Op(U.OVS_METER_CMD_DEL, admin, doit=h.delete))
    return fam


class MeterCommands:
    def __init__(self, module, family):
        self.module = module
        self.family = family

    def reply(self, req, cmd, attrs):
        """ovs_meter_cmd_reply_start() + genlmsg_reply(): the request's dp_ifindex."""
        body = req.userhdr[:U.OVS_HEADER_LEN] + attrs
        req.peer.send(self.family.message(cmd, 0, req.seq, req.portid, body))

    def _dp(self, req):
        dp = self.module.get_dp(req.net, U.OVS_HEADER.unpack(req.userhdr)[0])
        if dp is None:
            raise NetlinkError(errno.ENODEV, "datapath not found")
        return dp

    @staticmethod
    def _id(req):
        p = req.attrs.get(U.OVS_METER_ATTR_ID)
        if p is None:
            raise req.error(errno.EINVAL, "OVS_METER_ATTR_ID required")
        return A.get_u32(p)

    def features(self, req):
        self.reply(req, U.OVS_METER_CMD_FEATURES, M.features_attrs())

    def set(self, req):
        """ovs_meter_cmd_set(): create or replace a meter."""
        meter_id = self._id(req)
        meter = M.create(req.attrs, now_ms())
        dp = self._dp(req)
        old = dp.meters.pop(meter_id, None)
        if old is None and len(dp.meters) >= M.DP_METER_NUM_MAX:
            raise NetlinkError(errno.EFBIG, f"at most {M.DP_METER_NUM_MAX} meters")
        dp.meters[meter_id] = meter
        attrs = nla_u32(U.OVS_METER_ATTR_ID, meter_id)
        if old is not None and old.keep_stats:
            attrs += old.stats_attrs()
        self.reply(req, U.OVS_METER_CMD_SET, attrs)

    def get(self, req):
        meter_id = self._id(req)
        meter = self._dp(req).meters.get(meter_id)
        if meter is None:
            raise NetlinkError(errno.ENOENT, f"no meter {meter_id}")
        self.reply(req, U.OVS_METER_CMD_GET,
                   nla_u32(U.OVS_METER_ATTR_ID, meter_id) + meter.stats_attrs())

    def delete(self, req):
        """ovs_meter_cmd_del(): no meter of that id is not an error."""
        meter_id = self._id(req)
        old = self._dp(req).meters.pop(meter_id, None)
        attrs = nla_u32(U.OVS_METER_ATTR_ID, meter_id)
        if old is not None:
            attrs += old.stats_attrs()
        self.reply(req, U.OVS_METER_CMD_DEL, attrs)
