"""The ovs_datapath generic netlink family (datapath.c, OVS_DP_CMD_*)."""

import errno

from ... import uapi as U
from ...netlink import attr as A
from ...netlink.attr import NetlinkError
from ...netlink.genl import Family, Op
from ..vport import VportParms

POLICY = {
    U.OVS_DP_ATTR_NAME: A.Policy(A.NUL_STRING, U.IFNAMSIZ - 1),
    U.OVS_DP_ATTR_UPCALL_PID: A.Policy(A.U32),
    U.OVS_DP_ATTR_USER_FEATURES: A.Policy(A.U32),
    U.OVS_DP_ATTR_MASKS_CACHE_SIZE: A.Policy(A.U32, min=0, max=U.DP_MASKS_CACHE_MAX),
    U.OVS_DP_ATTR_IFINDEX: A.Policy(A.S32, min=0),
}


def make_family(module):
    fam = Family(U.OVS_DATAPATH_FAMILY, U.OVS_DATAPATH_VERSION, U.OVS_DP_ATTR_MAX, POLICY,
                 hdrsize=U.OVS_HEADER_LEN, mcgrps=[U.OVS_DATAPATH_MCGROUP])
    h = DatapathCommands(module, fam)
    admin = U.GENL_UNS_ADMIN_PERM
    fam.add_op(Op(U.OVS_DP_CMD_NEW, admin, doit=h.new))
    fam.add_op(Op(U.OVS_DP_CMD_DEL, admin, doit=h.delete))
    fam.add_op(Op(U.OVS_DP_CMD_GET, 0, doit=h.get, dumpit=h.dump))
    fam.add_op(Op(U.OVS_DP_CMD_SET, admin, doit=h.set))
    return fam


class DatapathCommands:
    def __init__(self, module, family):
        self.module = module
        self.family = family

    def fill(self, dp, portid, seq, flags, cmd):
        """ovs_dp_cmd_fill_info() as one message."""
        body = U.OVS_HEADER.pack(dp.ifindex) + dp.fill_attrs()
        return self.family.message(cmd, flags, seq, portid, body)

    def lookup(self, req):
        """lookup_datapath(): by NAME (the local port's name) or dp_ifindex."""
        a = req.attrs
        if U.OVS_DP_ATTR_NAME in a:
            vport = req.net.vports_by_name.get(A.get_string(a[U.OVS_DP_ATTR_NAME]))
            dp = vport.dp if vport is not None and vport.port_no == U.OVSP_LOCAL else None
        else:
            dp = self.module.get_dp(req.net, U.OVS_HEADER.unpack(req.userhdr)[0])
        if dp is None:
            raise NetlinkError(errno.ENODEV, "datapath not found")
        return dp

    def change(self, dp, req):
        """ovs_dp_change()."""
        a = req.attrs
        features = 0
        if U.OVS_DP_ATTR_USER_FEATURES in a:
            features = A.get_u32(a[U.OVS_DP_ATTR_USER_FEATURES])
            if features & ~U.OVS_DP_F_ALL:
                raise req.error(errno.EOPNOTSUPP, "unknown user features",
                                U.OVS_DP_ATTR_USER_FEATURES)
        if U.OVS_DP_ATTR_MASKS_CACHE_SIZE in a:
            size = A.get_u32(a[U.OVS_DP_ATTR_MASKS_CACHE_SIZE])
            if not dp.table.resize_cache(size):
                raise req.error(errno.EINVAL, "masks cache size must be 0 or a power of two",
                                U.OVS_DP_ATTR_MASKS_CACHE_SIZE)
        dp.user_features = features
        if features & U.OVS_DP_F_DISPATCH_UPCALL_PER_CPU and U.OVS_DP_ATTR_PER_CPU_PIDS in a:
            ids = a[U.OVS_DP_ATTR_PER_CPU_PIDS]
            if not ids or len(ids) % 4:
                raise req.error(errno.EINVAL, "per-CPU pids must be a non-empty u32 array",
                                U.OVS_DP_ATTR_PER_CPU_PIDS)
            dp.per_cpu_pids = A.get_u32_array(ids)

    # ------------------------------------------------------------ commands
    def new(self, req):
        a = req.attrs
        if U.OVS_DP_ATTR_NAME not in a or U.OVS_DP_ATTR_UPCALL_PID not in a:
            raise NetlinkError(errno.EINVAL, "datapath NAME and UPCALL_PID are required")
        module = self.module
        name = A.get_string(a[U.OVS_DP_ATTR_NAME])
        desired = A.get_s32(a[U.OVS_DP_ATTR_IFINDEX]) if U.OVS_DP_ATTR_IFINDEX in a else 0
        dp = module.new_datapath(req.net, name)
        self.change(dp, req)
        parms = VportParms(name, U.OVS_VPORT_TYPE_INTERNAL, None, dp, U.OVSP_LOCAL,
                           a[U.OVS_DP_ATTR_UPCALL_PID], desired)
        try:
            module.new_vport(parms)
        except NetlinkError as e:
            if e.errno == errno.EBUSY:
                e = NetlinkError(errno.EEXIST, e.msg, e.offset)
            if e.errno == errno.EEXIST and req.version < U.OVS_DP_VER_FEATURES:
                # An old userspace re-creating "its" datapath: drop features.
                try:
                    self.lookup(req).user_features = 0
                except NetlinkError:
                    pass
            raise e
        module.add_datapath(dp)
        msg = self.fill(dp, req.portid, req.seq, 0, U.OVS_DP_CMD_NEW)
        module.genl.notify(self.family, req, msg)

    def delete(self, req):
        dp = self.lookup(req)
        msg = self.fill(dp, req.portid, req.seq, 0, U.OVS_DP_CMD_DEL)
        self.module.destroy_datapath(dp)
        self.module.genl.notify(self.family, req, msg)

    def set(self, req):
        dp = self.lookup(req)
        self.change(dp, req)
        msg = self.fill(dp, req.portid, req.seq, 0, U.OVS_DP_CMD_SET)
        self.module.genl.notify(self.family, req, msg)

    def get(self, req):
        dp = self.lookup(req)
        req.peer.send(self.fill(dp, req.portid, req.seq, 0, U.OVS_DP_CMD_GET))

    def dump(self, req):
        for dp in list(req.net.datapaths):
            yield self.fill(dp, req.portid, req.seq, U.NLM_F_MULTI, U.OVS_DP_CMD_GET)
