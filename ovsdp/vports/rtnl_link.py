"""What kind of Linux device a name is, from rtnetlink (RTM_GETLINK).

A netdev vport on a tunnel device in collect_md ("external") mode is a
tunnel port to the kernel datapath: the device hands every packet over
with its tunnel metadata and encapsulates by the metadata set on output.
Open vSwitch on an in-tree kernel creates such devices (vxlan_sys_4789,
genev_sys_6081, gre_sys) over rtnetlink and attaches them as netdev
vports; :func:`tunnel_device` says whether a device is one of them, and
with which parameters (include/uapi/linux/if_link.h numbers).
"""

import socket
import struct

from ..netlink.attr import iter_attrs

RTM_NEWLINK = 16
RTM_GETLINK = 18
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_VXLAN_PORT = 15            # __be16
IFLA_VXLAN_GBP = 23             # flag
IFLA_VXLAN_COLLECT_METADATA = 25    # u8
IFLA_VXLAN_GPE = 27             # flag
IFLA_GENEVE_PORT = 5            # __be16
IFLA_GENEVE_COLLECT_METADATA = 6    # flag
IFLA_GRE_COLLECT_METADATA = 18  # flag

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")


class TunnelDevice:
    """A collect_md tunnel device: its kind and what the vport needs of it."""

    def __init__(self, kind, dst_port=0, gbp=False, gpe=False):
        self.kind = kind            # "vxlan", "geneve", "gretap", ... (IFLA_INFO_KIND)
        self.dst_port = dst_port
        self.gbp = gbp
        self.gpe = gpe

    def __repr__(self):
        return f"TunnelDevice({self.kind!r}, dst_port={self.dst_port})"


def link_info(ifindex):
    """(kind, {IFLA_INFO_DATA attribute: payload}) of a device, or None when
    it has no IFLA_LINKINFO (a physical or veth-less device) or is gone."""
    req = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, ifindex, 0, 0)
    msg = _NLMSGHDR.pack(_NLMSGHDR.size + len(req), RTM_GETLINK, NLM_F_REQUEST, 1, 0) + req
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       socket.NETLINK_ROUTE) as s:
        s.settimeout(2)
        s.send(msg)
        data = s.recv(65536)
    if len(data) < _NLMSGHDR.size:
        return None
    length, mtype = _NLMSGHDR.unpack_from(data)[:2]
    if mtype != RTM_NEWLINK or length > len(data):
        return None
    body = data[_NLMSGHDR.size + _IFINFOMSG.size:length]
    for atype, payload, _ in iter_attrs(body):
        if atype & 0x3FFF != IFLA_LINKINFO:
            continue
        kind, info = None, {}
        for t, p, _ in iter_attrs(payload):
            if t & 0x3FFF == IFLA_INFO_KIND:
                kind = p.rstrip(b"\0").decode("ascii", "replace")
            elif t & 0x3FFF == IFLA_INFO_DATA:
                info = {tt & 0x3FFF: pp for tt, pp, _ in iter_attrs(p)}
        return kind, info
    return None


def tunnel_device(ifindex):
    """A :class:`TunnelDevice` when ``ifindex`` is a tunnel device in
    collect_md mode, else None (any other device: a plain netdev)."""
    try:
        li = link_info(ifindex)
    except OSError:
        return None
    if li is None:
        return None
    kind, info = li
    if kind == "vxlan":
        md = info.get(IFLA_VXLAN_COLLECT_METADATA)
        if not md or not md[0]:
            return None
        port = info.get(IFLA_VXLAN_PORT)
        return TunnelDevice(kind, struct.unpack("!H", port)[0] if port else 4789,
                            gbp=IFLA_VXLAN_GBP in info, gpe=IFLA_VXLAN_GPE in info)
    if kind == "geneve":
        if IFLA_GENEVE_COLLECT_METADATA not in info:
            return None
        port = info.get(IFLA_GENEVE_PORT)
        return TunnelDevice(kind, struct.unpack("!H", port)[0] if port else 6081)
    if kind in ("gretap", "ip6gretap", "erspan", "ip6erspan", "gre", "ip6gre"):
        return TunnelDevice(kind) if IFLA_GRE_COLLECT_METADATA in info else None
    if kind == "bareudp":           # always collect_md
        return TunnelDevice(kind)
    return None
