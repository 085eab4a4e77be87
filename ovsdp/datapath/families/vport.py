"""The ovs_vport generic netlink family (datapath.c, OVS_VPORT_CMD_*)."""

import errno

from ... import uapi as U
from ...netlink import attr as A
from ...netlink.attr import NetlinkError
from ...netlink.genl import Family, Op
from ..vport import VportParms, parse_upcall_portids

POLICY = {
    U.OVS_VPORT_ATTR_NAME: A.Policy(A.NUL_STRING, U.IFNAMSIZ - 1),
    U.OVS_VPORT_ATTR_STATS: A.Policy(A.UNSPEC, U.OVS_VPORT_STATS.size),
    U.OVS_VPORT_ATTR_PORT_NO: A.Policy(A.U32),
    U.OVS_VPORT_ATTR_TYPE: A.Policy(A.U32),
    U.OVS_VPORT_ATTR_UPCALL_PID: A.Policy(A.UNSPEC),
    U.OVS_VPORT_ATTR_OPTIONS: A.Policy(A.NESTED),
    U.OVS_VPORT_ATTR_IFINDEX: A.Policy(A.S32, min=0),
    U.OVS_VPORT_ATTR_NETNSID: A.Policy(A.S32),
    U.OVS_VPORT_ATTR_UPCALL_STATS: A.Policy(A.NESTED),
}


def make_family(module):
    fam = Family(U.OVS_VPORT_FAMILY, U.OVS_VPORT_VERSION, U.OVS_VPORT_ATTR_MAX, POLICY,
                 hdrsize=U.OVS_HEADER_LEN, mcgrps=[U.OVS_VPORT_MCGROUP])
    h = VportCommands(module, fam)
    admin = U.GENL_UNS_ADMIN_PERM
    fam.add_op(Op(U.OVS_VPORT_CMD_NEW, admin, doit=h.new))
    fam.add_op(Op(U.OVS_VPORT_CMD_DEL, admin, doit=h.delete))
    fam.add_op(Op(U.OVS_VPORT_CMD_GET, 0, doit=h.get, dumpit=h.dump))
    fam.add_op(Op(U.OVS_VPORT_CMD_SET, admin, doit=h.set))
    return fam


def fill_info(family, vport, portid, seq, flags, cmd):
    """ovs_vport_cmd_fill_info() as one message."""
    body = U.OVS_HEADER.pack(vport.dp.ifindex) + vport.fill_attrs()
    return family.message(cmd, flags, seq, portid, body)


def notify_del(module, vport):
    """dp_notify: a device vanished under a port; tell the vport group of
    the datapath's namespace."""
    family = module.vport_family
    msg = fill_info(family, vport, 0, 0, 0, U.OVS_VPORT_CMD_DEL)
    module.genl.multicast(family.group_id(), msg, vport.dp.net)


class VportCommands:
    def __init__(self, module, family):
        self.module = module
        self.family = family

    def fill(self, vport, portid, seq, flags, cmd):
        return fill_info(self.family, vport, portid, seq, flags, cmd)

    def lookup(self, req):
        """lookup_vport(): by NAME, or by dp_ifindex + PORT_NO."""
        a = req.attrs
        module = self.module
        if U.OVS_VPORT_ATTR_IFINDEX in a:
            raise req.error(errno.EOPNOTSUPP, "vport lookup by ifindex is not supported",
                            U.OVS_VPORT_ATTR_IFINDEX)
        dp_ifindex = U.OVS_HEADER.unpack(req.userhdr)[0]
        if U.OVS_VPORT_ATTR_NAME in a:
            vport = req.net.vports_by_name.get(A.get_string(a[U.OVS_VPORT_ATTR_NAME]))
            if vport is None:
                raise req.error(errno.ENODEV, "no vport with that name", U.OVS_VPORT_ATTR_NAME)
            if dp_ifindex and dp_ifindex != vport.dp.ifindex:
                raise req.error(errno.ENODEV, "vport is not in that datapath",
                                U.OVS_VPORT_ATTR_NAME)
            return vport
        if U.OVS_VPORT_ATTR_PORT_NO in a:
            port_no = A.get_u32(a[U.OVS_VPORT_ATTR_PORT_NO])
            if port_no >= U.DP_MAX_PORTS:
                raise req.error(errno.EFBIG, "port number too large", U.OVS_VPORT_ATTR_PORT_NO)
            dp = module.get_dp(req.net, dp_ifindex)
            if dp is None:
                raise NetlinkError(errno.ENODEV, "datapath not found")
            vport = dp.ports.get(port_no)
            if vport is None:
                raise req.error(errno.ENODEV, "no such port", U.OVS_VPORT_ATTR_PORT_NO)
            return vport
        raise NetlinkError(errno.EINVAL, "vport NAME or PORT_NO required")

    # ------------------------------------------------------------ commands
    def new(self, req):
        a = req.attrs
        module = self.module
        for need in (U.OVS_VPORT_ATTR_NAME, U.OVS_VPORT_ATTR_TYPE, U.OVS_VPORT_ATTR_UPCALL_PID):
            if need not in a:
                raise NetlinkError(errno.EINVAL, "vport NAME, TYPE and UPCALL_PID are required")
        vtype = A.get_u32(a[U.OVS_VPORT_ATTR_TYPE])
        if U.OVS_VPORT_ATTR_IFINDEX in a and vtype != U.OVS_VPORT_TYPE_INTERNAL:
            raise req.error(errno.EOPNOTSUPP, "IFINDEX is only for internal vports",
                            U.OVS_VPORT_ATTR_IFINDEX)
        port_no = A.get_u32(a[U.OVS_VPORT_ATTR_PORT_NO]) if U.OVS_VPORT_ATTR_PORT_NO in a else 0
        if port_no >= U.DP_MAX_PORTS:
            raise req.error(errno.EFBIG, "port number too large", U.OVS_VPORT_ATTR_PORT_NO)
        dp = module.get_dp(req.net, U.OVS_HEADER.unpack(req.userhdr)[0])
        if dp is None:
            raise NetlinkError(errno.ENODEV, "datapath not found")
        if port_no:
            if port_no in dp.ports:
                raise req.error(errno.EBUSY, f"port {port_no} is in use",
                                U.OVS_VPORT_ATTR_PORT_NO)
        else:
            port_no = 1
            while port_no in dp.ports:
                port_no += 1
            if port_no >= U.DP_MAX_PORTS:
                raise NetlinkError(errno.EFBIG, "no free port number")
        desired = A.get_s32(a[U.OVS_VPORT_ATTR_IFINDEX]) if U.OVS_VPORT_ATTR_IFINDEX in a else 0
        parms = VportParms(A.get_string(a[U.OVS_VPORT_ATTR_NAME]), vtype,
                           a.get(U.OVS_VPORT_ATTR_OPTIONS), dp, port_no,
                           a[U.OVS_VPORT_ATTR_UPCALL_PID], desired)
        vport = module.new_vport(parms)
        msg = self.fill(vport, req.portid, req.seq, 0, U.OVS_VPORT_CMD_NEW)
        module.genl.notify(self.family, req, msg)

    def delete(self, req):
        vport = self.lookup(req)
        if vport.port_no == U.OVSP_LOCAL:
            raise NetlinkError(errno.EINVAL, "the local port is deleted with its datapath")
        msg = self.fill(vport, req.portid, req.seq, 0, U.OVS_VPORT_CMD_DEL)
        self.module.detach_port(vport)
        self.module.genl.notify(self.family, req, msg)

    def set(self, req):
        a = req.attrs
        vport = self.lookup(req)
        if U.OVS_VPORT_ATTR_TYPE in a and A.get_u32(a[U.OVS_VPORT_ATTR_TYPE]) != vport.type:
            raise req.error(errno.EINVAL, "vport type cannot change", U.OVS_VPORT_ATTR_TYPE)
        if U.OVS_VPORT_ATTR_OPTIONS in a:
            vport.set_options(a[U.OVS_VPORT_ATTR_OPTIONS])
        if U.OVS_VPORT_ATTR_UPCALL_PID in a:
            try:
                vport.upcall_portids = parse_upcall_portids(a[U.OVS_VPORT_ATTR_UPCALL_PID])
            except NetlinkError as e:
                raise req.error(e.errno, e.msg, U.OVS_VPORT_ATTR_UPCALL_PID) from None
        msg = self.fill(vport, req.portid, req.seq, 0, U.OVS_VPORT_CMD_SET)
        self.module.genl.notify(self.family, req, msg)

    def get(self, req):
        vport = self.lookup(req)
        req.peer.send(self.fill(vport, req.portid, req.seq, 0, U.OVS_VPORT_CMD_GET))

    def dump(self, req):
        dp = self.module.get_dp(req.net, U.OVS_HEADER.unpack(req.userhdr)[0])
        if dp is None:
            raise NetlinkError(errno.ENODEV, "datapath not found")
        for port_no in sorted(dp.ports):
            vport = dp.ports.get(port_no)
            if vport is not None:
                yield self.fill(vport, req.portid, req.seq, U.NLM_F_MULTI, U.OVS_VPORT_CMD_GET)
