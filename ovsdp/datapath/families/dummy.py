"""``ovsdp_dummy``: an ovsdp extension family to drive dummy vports remotely.

INJECT hands a frame to a dummy port as if its device had received it;
FETCH (a dump) returns, and forgets, the frames the datapath sent out of it.
Both need CAP_NET_ADMIN.  Documented in docs/protocol.md.
"""

import errno

from ... import uapi as U
from ...netlink import attr as A
from ...netlink.attr import NetlinkError, nla, nla_string
from ...netlink.genl import Family, Op

POLICY = {
    U.OVSDP_DUMMY_ATTR_PORT_NAME: A.Policy(A.NUL_STRING, U.IFNAMSIZ - 1),
    U.OVSDP_DUMMY_ATTR_PACKET: A.Policy(A.UNSPEC, 14),
}


def make_family(module):
    fam = Family(U.OVSDP_DUMMY_FAMILY, U.OVSDP_DUMMY_VERSION, U.OVSDP_DUMMY_ATTR_MAX, POLICY,
                 hdrsize=U.OVS_HEADER_LEN)

    def port(req):
        a = req.attrs
        if U.OVSDP_DUMMY_ATTR_PORT_NAME not in a:
            raise NetlinkError(errno.EINVAL, "PORT_NAME required")
        vport = req.net.vports_by_name.get(A.get_string(a[U.OVSDP_DUMMY_ATTR_PORT_NAME]))
        if vport is None:
            raise req.error(errno.ENODEV, "no such port", U.OVSDP_DUMMY_ATTR_PORT_NAME)
        if vport.type != U.OVS_VPORT_TYPE_DUMMY:
            raise req.error(errno.EOPNOTSUPP, "not a dummy port", U.OVSDP_DUMMY_ATTR_PORT_NAME)
        return vport

    def inject(req):
        vport = port(req)
        if U.OVSDP_DUMMY_ATTR_PACKET not in req.attrs:
            raise NetlinkError(errno.EINVAL, "PACKET required")
        vport.inject(req.attrs[U.OVSDP_DUMMY_ATTR_PACKET])

    def fetch(req):
        vport = port(req)
        name = nla_string(U.OVSDP_DUMMY_ATTR_PORT_NAME, vport.name)
        hdr = U.OVS_HEADER.pack(vport.dp.ifindex)
        for frame in vport.fetch():
            yield fam.message(U.OVSDP_DUMMY_CMD_FETCH, U.NLM_F_MULTI, req.seq, req.portid,
                              hdr + name + nla(U.OVSDP_DUMMY_ATTR_PACKET, frame))

    fam.add_op(Op(U.OVSDP_DUMMY_CMD_INJECT, U.GENL_UNS_ADMIN_PERM, doit=inject))
    fam.add_op(Op(U.OVSDP_DUMMY_CMD_FETCH, U.GENL_UNS_ADMIN_PERM, dumpit=fetch))
    return fam
