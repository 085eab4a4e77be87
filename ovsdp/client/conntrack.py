"""A ctnetlink client over the ovsdp control socket (libnetfilter_conntrack's
and lib/netlink-conntrack.c's role).

:class:`CtSocket` is a connection that said, with the ``OVSDP_SO_PROTOCOL``
option, that it is a NETLINK_NETFILTER socket (docs/protocol.md, section 2);
its requests are nfnetlink messages of the ctnetlink subsystem.  Entries come
back as :class:`CtEntry`, decoded through the tables of ovsdp.uapi.nfnetlink.
"""

import dataclasses
import struct

from .. import uapi as U
from ..netlink import attr as A
from ..netlink.attr import nla, nla_be16, nla_be32, nla_nest, nla_u8
from ..uapi import nfnetlink as N
from .netlink import NetlinkSocket

_NESTED = U.NLA_F_NESTED
AF_INET, AF_INET6 = 2, 10


@dataclasses.dataclass
class CtTuple:
    l3num: int = 0
    src: int = 0
    dst: int = 0
    protonum: int = 0
    sport: int = 0
    dport: int = 0
    icmp_id: int = 0
    icmp_type: int = 0
    icmp_code: int = 0
    zone: int | None = None


@dataclasses.dataclass
class CtEntry:
    """One connection as ctnetlink reports it."""

    family: int
    orig: CtTuple
    reply: CtTuple
    zone: int = 0
    status: int = 0
    timeout: int = 0
    mark: int = 0
    id: int = 0
    use: int = 0
    labels: bytes | None = None
    counters_orig: tuple = (0, 0)
    counters_reply: tuple = (0, 0)
    tcp_state: int | None = None
    tcp_wscale: tuple = (0, 0)
    tcp_flags: tuple = (0, 0)
    sctp_state: int | None = None       # the kernel's SCTP_CONNTRACK_*
    sctp_vtag: tuple = (0, 0)           # as the tags are on the wire (big endian)
    helper: str | None = None           # CTA_HELP's name
    master: CtTuple | None = None       # CTA_TUPLE_MASTER: the connection that expected this one
    attrs: dict = dataclasses.field(default_factory=dict, repr=False)


def _value(row, payload):
    k = row.kind
    if k == "u8":
        return payload[0]
    if k == "be16":
        return A.get_be16(payload)
    if k == "be32":
        return A.get_be32(payload)
    if k == "be64":
        return A.get_be64(payload)
    if k == "u32":
        return A.get_u32(payload)
    return bytes(payload)


def decode(buf, table):
    """{row name: value} of one attribute level (nested levels as dicts)."""
    out = {}
    for raw, payload, _ in A.iter_attrs(buf):
        row = table.rows.get(raw & U.NLA_TYPE_MASK)
        if row is None:
            continue
        if row.kind == "nested":
            out[row.name] = decode(payload, row.next) if row.next is not None else bytes(payload)
        else:
            out[row.name] = _value(row, payload)
    return out


def _tuple(d, family):
    ip = d.get("ip", {})
    pr = d.get("proto", {})
    if family == AF_INET6:
        src = int.from_bytes(ip.get("v6_src", bytes(16)), "big")
        dst = int.from_bytes(ip.get("v6_dst", bytes(16)), "big")
    else:
        src, dst = ip.get("v4_src", 0), ip.get("v4_dst", 0)
    return CtTuple(family, src, dst, pr.get("num", 0), pr.get("src_port", 0),
                   pr.get("dst_port", 0), pr.get("icmp_id", pr.get("icmpv6_id", 0)),
                   pr.get("icmp_type", pr.get("icmpv6_type", 0)),
                   pr.get("icmp_code", pr.get("icmpv6_code", 0)), d.get("zone"))


def parse_entry(raw):
    """A CtEntry from an IPCTNL_MSG_CT_NEW message."""
    family = N.NFGENMSG.unpack_from(raw, U.NLMSG_HDRLEN)[0]
    length = struct.unpack_from("=I", raw)[0]
    d = decode(raw[U.NLMSG_HDRLEN + N.NFGENMSG.size:length], N.CTA)
    e = CtEntry(family, _tuple(d.get("tuple_orig", {}), family),
                _tuple(d.get("tuple_reply", {}), family), attrs=d)
    e.zone = d.get("zone", 0)
    e.status = d.get("status", 0)
    e.timeout = d.get("timeout", 0)
    e.mark = d.get("mark", 0)
    e.id = d.get("id", 0)
    e.use = d.get("use", 0)
    e.labels = d.get("labels")
    name = d.get("help", {}).get("name") if isinstance(d.get("help"), dict) else None
    if name is not None:
        e.helper = name.split(b"\0", 1)[0].decode("latin-1")
    if "tuple_master" in d:
        e.master = _tuple(d["tuple_master"], family)
    for name in ("counters_orig", "counters_reply"):
        c = d.get(name)
        if c:
            setattr(e, name, (c.get("packets", c.get("packets32", 0)),
                              c.get("bytes", c.get("bytes32", 0))))
    tcp = d.get("protoinfo", {}).get("tcp")
    if tcp:
        e.tcp_state = tcp.get("state")
        e.tcp_wscale = (tcp.get("wscale_original", 0), tcp.get("wscale_reply", 0))
        e.tcp_flags = tuple(N.NF_CT_TCP_FLAGS.unpack_from(tcp[k])[0] if k in tcp else 0
                            for k in ("flags_original", "flags_reply"))
    sctp = d.get("protoinfo", {}).get("sctp")
    if sctp:
        e.sctp_state = sctp.get("state")
        e.sctp_vtag = (sctp.get("vtag_original", 0), sctp.get("vtag_reply", 0))
    return e


def tuple_attrs(t):
    """CTA_TUPLE_IP and CTA_TUPLE_PROTO for a CtTuple (as a request carries them)."""
    if t.l3num == AF_INET6:
        ip = (nla(N.CTA_IP_V6_SRC, t.src.to_bytes(16, "big")) +
              nla(N.CTA_IP_V6_DST, t.dst.to_bytes(16, "big")))
    else:
        ip = nla_be32(N.CTA_IP_V4_SRC, t.src) + nla_be32(N.CTA_IP_V4_DST, t.dst)
    proto = nla_u8(N.CTA_PROTO_NUM, t.protonum)
    if t.protonum == 1:
        proto += (nla_be16(N.CTA_PROTO_ICMP_ID, t.icmp_id) +
                  nla_u8(N.CTA_PROTO_ICMP_TYPE, t.icmp_type) +
                  nla_u8(N.CTA_PROTO_ICMP_CODE, t.icmp_code))
    elif t.protonum == 58:
        proto += (nla_be16(N.CTA_PROTO_ICMPV6_ID, t.icmp_id) +
                  nla_u8(N.CTA_PROTO_ICMPV6_TYPE, t.icmp_type) +
                  nla_u8(N.CTA_PROTO_ICMPV6_CODE, t.icmp_code))
    else:
        proto += nla_be16(N.CTA_PROTO_SRC_PORT, t.sport) + nla_be16(N.CTA_PROTO_DST_PORT, t.dport)
    return nla_nest(N.CTA_TUPLE_IP | _NESTED, ip) + nla_nest(N.CTA_TUPLE_PROTO | _NESTED, proto)


# --------------------------------------------------- timeout policies (cttimeout)
@dataclasses.dataclass
class CtTimeoutPolicy:
    """One policy as IPCTNL_MSG_TIMEOUT_NEW (or a protocol's defaults, as
    IPCTNL_MSG_TIMEOUT_DEFAULT_SET: no name, no use) reports it.  ``timeouts``
    is {attribute name: seconds}, the names of the protocol's table in
    ovsdp.uapi.nfnetlink (e.g. "unreplied", "replied" for UDP)."""

    name: str | None
    l3num: int
    l4num: int
    use: int | None = None
    timeouts: dict = dataclasses.field(default_factory=dict)


def parse_timeout_policy(raw):
    """A CtTimeoutPolicy from a cttimeout message."""
    length = struct.unpack_from("=I", raw)[0]
    d = decode(raw[U.NLMSG_HDRLEN + N.NFGENMSG.size:length], N.CTA_TIMEOUT_TABLE)
    name = d.get("name")
    tp = CtTimeoutPolicy(name.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                         if name is not None else None, d.get("l3proto", 0),
                         d.get("l4proto", 0), d.get("use"))
    proto = N.TIMEOUT_PROTOS.get(tp.l4num)
    if proto is not None and isinstance(d.get("data"), bytes):
        names = {r.type: r.name for r in proto.rows}
        for raw_t, p, _ in A.iter_attrs(d["data"]):
            n = names.get(raw_t & U.NLA_TYPE_MASK)
            if n is not None:
                tp.timeouts[n] = A.get_be32(p)
    return tp


def timeout_data(l4num, timeouts):
    """CTA_TIMEOUT_DATA of {attribute name: seconds} for protocol ``l4num``."""
    table = N.TIMEOUT_PROTOS[l4num].table()
    return nla_nest(N.CTA_TIMEOUT_DATA | _NESTED,
                    *(nla_be32(table.type_of(k), v) for k, v in timeouts.items()))


AF_UNSPEC = 0


class CtTimeoutMixin:
    """Requests of the cttimeout subsystem (lib/netlink-conntrack.c's
    nl_ct_*_timeout_policy), for a NETLINK_NETFILTER socket."""

    def tp_request(self, msg_type, body=b"", flags=0, dump=False):
        payload = N.NFGENMSG.pack(AF_UNSPEC, 0, 0) + body
        return self.request(N.NFNL_SUBSYS_CTNETLINK_TIMEOUT << 8 | msg_type, flags, payload,
                            dump=dump)

    def set_timeout_policy(self, name, l3num, l4num, timeouts,
                           flags=U.NLM_F_CREATE | U.NLM_F_REPLACE):
        """IPCTNL_MSG_TIMEOUT_NEW (by default as ovs-vswitchd sends it)."""
        body = (A.nla_string(N.CTA_TIMEOUT_NAME, name) + nla_be16(N.CTA_TIMEOUT_L3PROTO, l3num)
                + nla_u8(N.CTA_TIMEOUT_L4PROTO, l4num) + timeout_data(l4num, timeouts))
        self.tp_request(N.IPCTNL_MSG_TIMEOUT_NEW, body, flags)

    def get_timeout_policy(self, name):
        body = A.nla_string(N.CTA_TIMEOUT_NAME, name)
        return parse_timeout_policy(self.tp_request(N.IPCTNL_MSG_TIMEOUT_GET, body)[0].raw)

    def timeout_policies(self):
        """Every policy of the namespace (a dump)."""
        return [parse_timeout_policy(m.raw)
                for m in self.tp_request(N.IPCTNL_MSG_TIMEOUT_GET, dump=True)]

    def del_timeout_policy(self, name=None):
        """Delete the policy ``name``, or (None) every unused one."""
        body = A.nla_string(N.CTA_TIMEOUT_NAME, name) if name is not None else b""
        self.tp_request(N.IPCTNL_MSG_TIMEOUT_DELETE, body)

    def get_default_timeouts(self, l3num, l4num):
        body = nla_be16(N.CTA_TIMEOUT_L3PROTO, l3num) + nla_u8(N.CTA_TIMEOUT_L4PROTO, l4num)
        return parse_timeout_policy(
            self.tp_request(N.IPCTNL_MSG_TIMEOUT_DEFAULT_GET, body)[0].raw)

    def set_default_timeouts(self, l3num, l4num, timeouts):
        body = (nla_be16(N.CTA_TIMEOUT_L3PROTO, l3num) + nla_u8(N.CTA_TIMEOUT_L4PROTO, l4num)
                + timeout_data(l4num, timeouts))
        self.tp_request(N.IPCTNL_MSG_TIMEOUT_DEFAULT_SET, body)


class CtSocket(CtTimeoutMixin, NetlinkSocket):
    """A NETLINK_NETFILTER connection to the daemon (ctnetlink and cttimeout)."""

    def __init__(self, path=None, timeout=10.0, sock=None):
        super().__init__(path, timeout, sock)
        try:
            self.setsockopt(U.OVSDP_SO_PROTOCOL, N.NETLINK_NETFILTER)
        except BaseException:
            self.close()
            raise

    def ct_request(self, msg_type, body=b"", family=0, flags=0, dump=False, version=0):
        payload = N.NFGENMSG.pack(family, version, 0) + body
        return self.request(N.NFNL_SUBSYS_CTNETLINK << 8 | msg_type, flags, payload, dump=dump)

    def dump(self, zone=None, family=0, zero=False):
        """The connections (of ``zone``), as CtEntry objects."""
        body = nla_be16(N.CTA_ZONE, zone) if zone is not None else b""
        mtype = N.IPCTNL_MSG_CT_GET_CTRZERO if zero else N.IPCTNL_MSG_CT_GET
        return [parse_entry(m.raw) for m in self.ct_request(mtype, body, family, dump=True)]

    def get(self, orig, zone=0):
        body = nla_nest(N.CTA_TUPLE_ORIG | _NESTED, tuple_attrs(orig))
        if zone:
            body += nla_be16(N.CTA_ZONE, zone)
        return [parse_entry(m.raw) for m in
                self.ct_request(N.IPCTNL_MSG_CT_GET, body, orig.l3num)][0]

    def delete(self, orig, zone=0, ct_id=None):
        body = nla_nest(N.CTA_TUPLE_ORIG | _NESTED, tuple_attrs(orig))
        if zone:
            body += nla_be16(N.CTA_ZONE, zone)
        if ct_id is not None:
            body += nla_be32(N.CTA_ID, ct_id)
        self.ct_request(N.IPCTNL_MSG_CT_DELETE, body, orig.l3num)

    def flush(self, zone=None, family=0):
        """Delete every connection (of ``zone``; of ``family`` too when given)."""
        body = nla_be16(N.CTA_ZONE, zone) if zone is not None else b""
        self.ct_request(N.IPCTNL_MSG_CT_DELETE, body, family, version=1 if family else 0)

    def stats_cpu(self):
        """[(cpu, {statistic name: value})] of IPCTNL_MSG_CT_GET_STATS_CPU."""
        out = []
        for m in self.ct_request(N.IPCTNL_MSG_CT_GET_STATS_CPU, dump=True):
            cpu = N.NFGENMSG.unpack_from(m.raw, U.NLMSG_HDRLEN)[2]
            names = dict(N.CTA_STATS_CPU_ORDER)
            vals = {}
            for raw, p, _ in A.iter_attrs(m.raw[U.NLMSG_HDRLEN + N.NFGENMSG.size:m.hdr.len]):
                name = names.get(raw & U.NLA_TYPE_MASK)
                if name:
                    vals[name] = A.get_be32(p)
            out.append((cpu, vals))
        return out

    def stats(self):
        """(entries, max entries) of IPCTNL_MSG_CT_GET_STATS."""
        m = self.ct_request(N.IPCTNL_MSG_CT_GET_STATS)[0]
        a = {raw & U.NLA_TYPE_MASK: p for raw, p, _ in
             A.iter_attrs(m.raw[U.NLMSG_HDRLEN + N.NFGENMSG.size:m.hdr.len])}
        return (A.get_be32(a[N.CTA_STATS_GLOBAL_ENTRIES]),
                A.get_be32(a[N.CTA_STATS_GLOBAL_MAX_ENTRIES]))

