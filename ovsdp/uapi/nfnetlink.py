"""nfnetlink and ctnetlink on the wire: numbers, the nfgenmsg header and the
attribute tables of conntrack.

The values are those of include/uapi/linux/netfilter/nfnetlink.h,
include/uapi/linux/netfilter/nfnetlink_conntrack.h and linux/netlink.h
(NETLINK_NETFILTER); the CTA_FILTER_F_* bits are nf_conntrack_netlink.c's.

Each attribute table is one row per attribute: its type, the name the code
and the tests use, the *kind* of its payload (the names of
ovsdp.netlink.attr's policy kinds: ``u8``, ``be16``, ``be32``, ``be64``,
``binary``, ``nested``, ``unspec``, ``reject``), a length where the kind
needs one, whether the kernel's nla_policy for requests has the row
(``policy``), and the table of a nested payload.  ctnetlink's encoder, its
request parser and ovsdp's dpctl decoder read these tables; nothing else
spells a CTA_* number.
"""

from typing import NamedTuple

from .layout import Layout

NETLINK_NETFILTER = 12

# struct nfgenmsg (every nfnetlink message's fixed header); res_id is be16
NFGENMSG = Layout("nfgenmsg", "!", ("nfgen_family", "B"), ("version", "B"), ("res_id", "H"))
NFNETLINK_V0 = 0
NFNETLINK_V1 = 1

# nlmsg_type = subsystem << 8 | message
NFNL_SUBSYS_NONE = 0
NFNL_SUBSYS_CTNETLINK = 1
NFNL_SUBSYS_CTNETLINK_EXP = 2
NFNL_SUBSYS_QUEUE = 3
NFNL_SUBSYS_ULOG = 4
NFNL_SUBSYS_OSF = 5
NFNL_SUBSYS_IPSET = 6
NFNL_SUBSYS_ACCT = 7
NFNL_SUBSYS_CTNETLINK_TIMEOUT = 8
NFNL_SUBSYS_CTHELPER = 9
NFNL_SUBSYS_NFTABLES = 10
NFNL_SUBSYS_NFT_COMPAT = 11
NFNL_SUBSYS_HOOK = 12
NFNL_SUBSYS_COUNT = 13
NFNL_MSG_BATCH_BEGIN = 0x10      # NLMSG_MIN_TYPE
NFNL_MSG_BATCH_END = 0x11

# enum nfnetlink_groups
NFNLGRP_NONE = 0
NFNLGRP_CONNTRACK_NEW = 1
NFNLGRP_CONNTRACK_UPDATE = 2
NFNLGRP_CONNTRACK_DESTROY = 3
NFNLGRP_CONNTRACK_EXP_NEW = 4
NFNLGRP_CONNTRACK_EXP_UPDATE = 5
NFNLGRP_CONNTRACK_EXP_DESTROY = 6
NFNLGRP_NFTABLES = 7
NFNLGRP_ACCT_QUOTA = 8
NFNLGRP_NFTRACE = 9
NFNLGRP_MAX = 9
NFNL_GROUPS = 32                 # netlink_kernel_create() gives a kernel socket at least 32

NLM_F_DUMP_FILTERED = 0x20       # a dump's parts when the request filtered it

# enum cntl_msg_types
IPCTNL_MSG_CT_NEW = 0
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
IPCTNL_MSG_CT_GET_CTRZERO = 3
IPCTNL_MSG_CT_GET_STATS_CPU = 4
IPCTNL_MSG_CT_GET_STATS = 5
IPCTNL_MSG_CT_GET_DYING = 6
IPCTNL_MSG_CT_GET_UNCONFIRMED = 7
IPCTNL_MSG_MAX = 8

# enum ctattr_type
CTA_UNSPEC = 0
CTA_TUPLE_ORIG = 1
CTA_TUPLE_REPLY = 2
CTA_STATUS = 3
CTA_PROTOINFO = 4
CTA_HELP = 5
CTA_NAT_SRC = 6
CTA_TIMEOUT = 7
CTA_MARK = 8
CTA_COUNTERS_ORIG = 9
CTA_COUNTERS_REPLY = 10
CTA_USE = 11
CTA_ID = 12
CTA_NAT_DST = 13
CTA_TUPLE_MASTER = 14
CTA_SEQ_ADJ_ORIG = 15
CTA_SEQ_ADJ_REPLY = 16
CTA_SECMARK = 17
CTA_ZONE = 18
CTA_SECCTX = 19
CTA_TIMESTAMP = 20
CTA_MARK_MASK = 21
CTA_LABELS = 22
CTA_LABELS_MASK = 23
CTA_SYNPROXY = 24
CTA_FILTER = 25

# enum ctattr_help
CTA_HELP_UNSPEC = 0
CTA_HELP_NAME = 1
CTA_HELP_INFO = 2

# enum ctattr_seqadj
CTA_SEQADJ_UNSPEC = 0
CTA_SEQADJ_CORRECTION_POS = 1
CTA_SEQADJ_OFFSET_BEFORE = 2
CTA_SEQADJ_OFFSET_AFTER = 3
CTA_STATUS_MASK = 26
CTA_TIMESTAMP_EVENT = 27
CTA_MAX = 27

# enum ctattr_tuple, ctattr_ip, ctattr_l4proto
CTA_TUPLE_IP = 1
CTA_TUPLE_PROTO = 2
CTA_TUPLE_ZONE = 3
CTA_TUPLE_MAX = 3
CTA_IP_V4_SRC = 1
CTA_IP_V4_DST = 2
CTA_IP_V6_SRC = 3
CTA_IP_V6_DST = 4
CTA_IP_MAX = 4
CTA_PROTO_NUM = 1
CTA_PROTO_SRC_PORT = 2
CTA_PROTO_DST_PORT = 3
CTA_PROTO_ICMP_ID = 4
CTA_PROTO_ICMP_TYPE = 5
CTA_PROTO_ICMP_CODE = 6
CTA_PROTO_ICMPV6_ID = 7
CTA_PROTO_ICMPV6_TYPE = 8
CTA_PROTO_ICMPV6_CODE = 9
CTA_PROTO_MAX = 9

# enum ctattr_protoinfo, ctattr_protoinfo_tcp; struct nf_ct_tcp_flags {u8 flags, mask}
CTA_PROTOINFO_TCP = 1
CTA_PROTOINFO_DCCP = 2
CTA_PROTOINFO_SCTP = 3
CTA_PROTOINFO_MAX = 3
CTA_PROTOINFO_TCP_STATE = 1
CTA_PROTOINFO_TCP_WSCALE_ORIGINAL = 2
CTA_PROTOINFO_TCP_WSCALE_REPLY = 3
CTA_PROTOINFO_TCP_FLAGS_ORIGINAL = 4
CTA_PROTOINFO_TCP_FLAGS_REPLY = 5
CTA_PROTOINFO_TCP_MAX = 5
CTA_PROTOINFO_SCTP_STATE = 1            # enum ctattr_protoinfo_sctp
CTA_PROTOINFO_SCTP_VTAG_ORIGINAL = 2
CTA_PROTOINFO_SCTP_VTAG_REPLY = 3
CTA_PROTOINFO_SCTP_MAX = 3
NF_CT_TCP_FLAGS = Layout("nf_ct_tcp_flags", "=", ("flags", "B"), ("mask", "B"))

# enum ctattr_counters, ctattr_tstamp
CTA_COUNTERS_PACKETS = 1
CTA_COUNTERS_BYTES = 2
CTA_COUNTERS32_PACKETS = 3
CTA_COUNTERS32_BYTES = 4
CTA_COUNTERS_PAD = 5
CTA_COUNTERS_MAX = 5
CTA_TIMESTAMP_START = 1
CTA_TIMESTAMP_STOP = 2
CTA_TIMESTAMP_PAD = 3

# enum ctattr_stats_cpu, ctattr_stats_global
CTA_STATS_SEARCHED = 1
CTA_STATS_FOUND = 2
CTA_STATS_NEW = 3
CTA_STATS_INVALID = 4
CTA_STATS_IGNORE = 5
CTA_STATS_DELETE = 6
CTA_STATS_DELETE_LIST = 7
CTA_STATS_INSERT = 8
CTA_STATS_INSERT_FAILED = 9
CTA_STATS_DROP = 10
CTA_STATS_EARLY_DROP = 11
CTA_STATS_ERROR = 12
CTA_STATS_SEARCH_RESTART = 13
CTA_STATS_CLASH_RESOLVE = 14
CTA_STATS_CHAIN_TOOLONG = 15
CTA_STATS_MAX = 15
CTA_STATS_GLOBAL_ENTRIES = 1
CTA_STATS_GLOBAL_MAX_ENTRIES = 2
CTA_STATS_GLOBAL_MAX = 2

# enum ctattr_filter and the flags of CTA_FILTER_ORIG_FLAGS / _REPLY_FLAGS
CTA_FILTER_ORIG_FLAGS = 1
CTA_FILTER_REPLY_FLAGS = 2
CTA_FILTER_MAX = 2
CTA_FILTER_F_CTA_IP_SRC = 1 << 0
CTA_FILTER_F_CTA_IP_DST = 1 << 1
CTA_FILTER_F_CTA_TUPLE_ZONE = 1 << 2
CTA_FILTER_F_CTA_PROTO_NUM = 1 << 3
CTA_FILTER_F_CTA_PROTO_SRC_PORT = 1 << 4
CTA_FILTER_F_CTA_PROTO_DST_PORT = 1 << 5
CTA_FILTER_F_CTA_PROTO_ICMP_TYPE = 1 << 6
CTA_FILTER_F_CTA_PROTO_ICMP_CODE = 1 << 7
CTA_FILTER_F_CTA_PROTO_ICMP_ID = 1 << 8
CTA_FILTER_F_CTA_PROTO_ICMPV6_TYPE = 1 << 9
CTA_FILTER_F_CTA_PROTO_ICMPV6_CODE = 1 << 10
CTA_FILTER_F_CTA_PROTO_ICMPV6_ID = 1 << 11
CTA_FILTER_F_ALL = (1 << 12) - 1
CTA_FILTER_F_ALL_CTA_PROTO = (CTA_FILTER_F_CTA_PROTO_SRC_PORT | CTA_FILTER_F_CTA_PROTO_DST_PORT |
                              CTA_FILTER_F_CTA_PROTO_ICMP_TYPE | CTA_FILTER_F_CTA_PROTO_ICMP_CODE |
                              CTA_FILTER_F_CTA_PROTO_ICMP_ID | CTA_FILTER_F_CTA_PROTO_ICMPV6_TYPE |
                              CTA_FILTER_F_CTA_PROTO_ICMPV6_CODE | CTA_FILTER_F_CTA_PROTO_ICMPV6_ID)

NF_CT_LABELS_MAX_SIZE = 16


class NfAttr(NamedTuple):
    """One attribute: see the module's docstring for the columns."""

    type: int
    name: str
    kind: str
    len: int = 0
    policy: bool = True
    next: object = None


class NfTable:
    """The attributes of one nesting level."""

    def __init__(self, name, max_type, rows):
        self.name = name
        self.max_type = max_type
        self.rows = {r.type: r for r in rows}
        self.by_name = {r.name: r for r in rows}

    def __repr__(self):
        return f"<NfTable {self.name}>"

    def __getitem__(self, atype):
        return self.rows[atype]

    def type_of(self, name):
        return self.by_name[name].type


CTA_IP = NfTable("ip", CTA_IP_MAX, [
    NfAttr(CTA_IP_V4_SRC, "v4_src", "be32"),            # policy NLA_U32
    NfAttr(CTA_IP_V4_DST, "v4_dst", "be32"),
    NfAttr(CTA_IP_V6_SRC, "v6_src", "unspec", 16),      # policy .len = 16
    NfAttr(CTA_IP_V6_DST, "v6_dst", "unspec", 16),
])

# proto_nla_policy has only CTA_PROTO_NUM; the l4 trackers' policies add the rest
CTA_PROTO = NfTable("proto", CTA_PROTO_MAX, [
    NfAttr(CTA_PROTO_NUM, "num", "u8"),
    NfAttr(CTA_PROTO_SRC_PORT, "src_port", "be16"),
    NfAttr(CTA_PROTO_DST_PORT, "dst_port", "be16"),
    NfAttr(CTA_PROTO_ICMP_ID, "icmp_id", "be16"),
    NfAttr(CTA_PROTO_ICMP_TYPE, "icmp_type", "u8"),
    NfAttr(CTA_PROTO_ICMP_CODE, "icmp_code", "u8"),
    NfAttr(CTA_PROTO_ICMPV6_ID, "icmpv6_id", "be16"),
    NfAttr(CTA_PROTO_ICMPV6_TYPE, "icmpv6_type", "u8"),
    NfAttr(CTA_PROTO_ICMPV6_CODE, "icmpv6_code", "u8"),
])

CTA_TUPLE = NfTable("tuple", CTA_TUPLE_MAX, [
    NfAttr(CTA_TUPLE_IP, "ip", "nested", next=CTA_IP),
    NfAttr(CTA_TUPLE_PROTO, "proto", "nested", next=CTA_PROTO),
    NfAttr(CTA_TUPLE_ZONE, "zone", "be16"),             # policy NLA_U16
])

CTA_PROTOINFO_TCP_TABLE = NfTable("protoinfo_tcp", CTA_PROTOINFO_TCP_MAX, [
    NfAttr(CTA_PROTOINFO_TCP_STATE, "state", "u8"),
    NfAttr(CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, "wscale_original", "u8"),
    NfAttr(CTA_PROTOINFO_TCP_WSCALE_REPLY, "wscale_reply", "u8"),
    NfAttr(CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, "flags_original", "unspec", NF_CT_TCP_FLAGS.size),
    NfAttr(CTA_PROTOINFO_TCP_FLAGS_REPLY, "flags_reply", "unspec", NF_CT_TCP_FLAGS.size),
])

CTA_PROTOINFO_SCTP_TABLE = NfTable("protoinfo_sctp", CTA_PROTOINFO_SCTP_MAX, [
    NfAttr(CTA_PROTOINFO_SCTP_STATE, "state", "u8"),
    NfAttr(CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, "vtag_original", "be32"),     # policy NLA_U32
    NfAttr(CTA_PROTOINFO_SCTP_VTAG_REPLY, "vtag_reply", "be32"),
])

CTA_PROTOINFO_TABLE = NfTable("protoinfo", CTA_PROTOINFO_MAX, [
    NfAttr(CTA_PROTOINFO_TCP, "tcp", "nested", next=CTA_PROTOINFO_TCP_TABLE),
    NfAttr(CTA_PROTOINFO_DCCP, "dccp", "nested"),
    NfAttr(CTA_PROTOINFO_SCTP, "sctp", "nested", next=CTA_PROTOINFO_SCTP_TABLE),
])

CTA_COUNTERS = NfTable("counters", CTA_COUNTERS_MAX, [
    NfAttr(CTA_COUNTERS_PACKETS, "packets", "be64"),
    NfAttr(CTA_COUNTERS_BYTES, "bytes", "be64"),
    NfAttr(CTA_COUNTERS32_PACKETS, "packets32", "be32"),
    NfAttr(CTA_COUNTERS32_BYTES, "bytes32", "be32"),
])

# help_nla_policy: the helper's name (NF_CT_HELPER_NAME_LEN with its NUL)
CTA_HELP_TABLE = NfTable("help", CTA_HELP_INFO, [
    NfAttr(CTA_HELP_NAME, "name", "nul_string", 15),
    NfAttr(CTA_HELP_INFO, "info", "nested"),
])

CTA_FILTER_TABLE = NfTable("filter", CTA_FILTER_MAX, [
    NfAttr(CTA_FILTER_ORIG_FLAGS, "orig_flags", "u32"),
    NfAttr(CTA_FILTER_REPLY_FLAGS, "reply_flags", "u32"),
])

# ct_nla_policy: the rows with policy=False are what ctnetlink emits but
# does not take (no entry in the kernel's request policy).
CTA = NfTable("ct", CTA_MAX, [
    NfAttr(CTA_TUPLE_ORIG, "tuple_orig", "nested", next=CTA_TUPLE),
    NfAttr(CTA_TUPLE_REPLY, "tuple_reply", "nested", next=CTA_TUPLE),
    NfAttr(CTA_STATUS, "status", "be32"),
    NfAttr(CTA_PROTOINFO, "protoinfo", "nested", next=CTA_PROTOINFO_TABLE),
    NfAttr(CTA_HELP, "help", "nested", next=CTA_HELP_TABLE),
    NfAttr(CTA_NAT_SRC, "nat_src", "nested"),
    NfAttr(CTA_TIMEOUT, "timeout", "be32"),
    NfAttr(CTA_MARK, "mark", "be32"),
    NfAttr(CTA_COUNTERS_ORIG, "counters_orig", "nested", policy=False, next=CTA_COUNTERS),
    NfAttr(CTA_COUNTERS_REPLY, "counters_reply", "nested", policy=False, next=CTA_COUNTERS),
    NfAttr(CTA_USE, "use", "be32", policy=False),
    NfAttr(CTA_ID, "id", "be32"),
    NfAttr(CTA_NAT_DST, "nat_dst", "nested"),
    NfAttr(CTA_TUPLE_MASTER, "tuple_master", "nested", next=CTA_TUPLE),
    NfAttr(CTA_SEQ_ADJ_ORIG, "seq_adj_orig", "nested"),
    NfAttr(CTA_SEQ_ADJ_REPLY, "seq_adj_reply", "nested"),
    NfAttr(CTA_SECMARK, "secmark", "be32", policy=False),
    NfAttr(CTA_ZONE, "zone", "be16"),
    NfAttr(CTA_SECCTX, "secctx", "nested", policy=False),
    NfAttr(CTA_TIMESTAMP, "timestamp", "nested", policy=False),
    NfAttr(CTA_MARK_MASK, "mark_mask", "be32"),
    NfAttr(CTA_LABELS, "labels", "binary", NF_CT_LABELS_MAX_SIZE),
    NfAttr(CTA_LABELS_MASK, "labels_mask", "binary", NF_CT_LABELS_MAX_SIZE),
    NfAttr(CTA_SYNPROXY, "synproxy", "nested", policy=False),
    NfAttr(CTA_FILTER, "filter", "nested", next=CTA_FILTER_TABLE),
    NfAttr(CTA_STATUS_MASK, "status_mask", "be32"),
    NfAttr(CTA_TIMESTAMP_EVENT, "timestamp_event", "reject"),
])

# ctnetlink_ct_stat_cpu_fill_info(): the per-CPU counters, in emission order,
# with the name of the tracker's statistic each carries.
CTA_STATS_CPU_ORDER = (
    (CTA_STATS_FOUND, "found"),
    (CTA_STATS_INVALID, "invalid"),
    (CTA_STATS_INSERT, "insert"),
    (CTA_STATS_INSERT_FAILED, "insert_failed"),
    (CTA_STATS_DROP, "drop"),
    (CTA_STATS_EARLY_DROP, "early_drop"),
    (CTA_STATS_ERROR, "error"),
    (CTA_STATS_SEARCH_RESTART, "search_restart"),
    (CTA_STATS_CLASH_RESOLVE, "clash_resolve"),
    (CTA_STATS_CHAIN_TOOLONG, "chaintoolong"),
)


# ------------------------------------------------------------------ cttimeout
# include/uapi/linux/netfilter/nfnetlink_cttimeout.h: the subsystem
# NFNL_SUBSYS_CTNETLINK_TIMEOUT (nfnetlink_cttimeout.c), timeout policies.
IPCTNL_MSG_TIMEOUT_NEW = 0
IPCTNL_MSG_TIMEOUT_GET = 1
IPCTNL_MSG_TIMEOUT_DELETE = 2
IPCTNL_MSG_TIMEOUT_DEFAULT_SET = 3
IPCTNL_MSG_TIMEOUT_DEFAULT_GET = 4
IPCTNL_MSG_TIMEOUT_MAX = 5

CTA_TIMEOUT_NAME = 1
CTA_TIMEOUT_L3PROTO = 2
CTA_TIMEOUT_L4PROTO = 3
CTA_TIMEOUT_DATA = 4
CTA_TIMEOUT_USE = 5
CTA_TIMEOUT_MAX = 5
CTNL_TIMEOUT_NAME_MAX = 32

# cttimeout_nla_policy; CTA_TIMEOUT_USE is only emitted
CTA_TIMEOUT_TABLE = NfTable("timeout", CTA_TIMEOUT_MAX, [
    NfAttr(CTA_TIMEOUT_NAME, "name", "nul_string", CTNL_TIMEOUT_NAME_MAX - 1),
    NfAttr(CTA_TIMEOUT_L3PROTO, "l3proto", "be16"),      # policy NLA_U16, value big endian
    NfAttr(CTA_TIMEOUT_L4PROTO, "l4proto", "u8"),
    NfAttr(CTA_TIMEOUT_DATA, "data", "nested"),
    NfAttr(CTA_TIMEOUT_USE, "use", "be32", policy=False),
])


class TimeoutRow(NamedTuple):
    """One CTA_TIMEOUT_<PROTO>_* attribute: its type, name, and the index of
    the timeout it carries in the protocol tracker's array (the kernel's
    ``<proto>_timeout_nlattr_to_obj()`` / ``_obj_to_nlattr()`` pairs)."""

    type: int
    name: str
    index: int


class TimeoutProto(NamedTuple):
    """The timeout data of one l4 protocol: its attributes (emitted in this
    order, each a be32 count of seconds, policy NLA_U32), the size of the
    tracker's array, and the index that nlattr_to_obj() copies into index 0
    (TCP and SCTP keep their 'new' timeout there), or None."""

    l4num: int
    name: str
    rows: tuple
    size: int
    unspec_from: int | None = None

    def table(self):
        return NfTable(f"timeout_{self.name}", len(self.rows),
                       [NfAttr(r.type, r.name, "u32") for r in self.rows])


def _rows(*names, index=None):
    return tuple(TimeoutRow(i, n, i if index is None else index[i - 1])
                 for i, n in enumerate(names, 1))


# enum ctattr_timeout_tcp: TCP_CONNTRACK_* states, then RETRANS (12) and UNACK (13)
TIMEOUT_TCP = TimeoutProto(6, "tcp", _rows(
    "syn_sent", "syn_recv", "established", "fin_wait", "close_wait", "last_ack",
    "time_wait", "close", "syn_sent2", "retrans", "unack",
    index=(1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13)), 14, unspec_from=1)
# enum ctattr_timeout_udp / _udplite: UDP_CT_UNREPLIED (0), UDP_CT_REPLIED (1)
TIMEOUT_UDP = TimeoutProto(17, "udp", _rows("unreplied", "replied", index=(0, 1)), 2)
TIMEOUT_UDPLITE = TimeoutProto(136, "udplite", TIMEOUT_UDP.rows, 2)
TIMEOUT_ICMP = TimeoutProto(1, "icmp", _rows("timeout", index=(0,)), 1)
TIMEOUT_ICMPV6 = TimeoutProto(58, "icmpv6", _rows("timeout", index=(0,)), 1)
# enum ctattr_timeout_sctp: one per SCTP_CONNTRACK_* state, 1:1
TIMEOUT_SCTP = TimeoutProto(132, "sctp", _rows(
    "closed", "cookie_wait", "cookie_echoed", "established", "shutdown_sent",
    "shutdown_recd", "shutdown_ack_sent", "heartbeat_sent", "heartbeat_acked"), 10,
    unspec_from=1)
# enum ctattr_timeout_gre: GRE_CT_UNREPLIED (0), GRE_CT_REPLIED (1)
TIMEOUT_GRE = TimeoutProto(47, "gre", _rows("unreplied", "replied", index=(0, 1)), 2)
# the generic tracker's l4proto number is 255
TIMEOUT_GENERIC = TimeoutProto(255, "generic", _rows("timeout", index=(0,)), 1)
# DCCP (enum ctattr_timeout_dccp) has no tracker in ovsdp: no row here
TIMEOUT_PROTOS = {p.l4num: p for p in (TIMEOUT_TCP, TIMEOUT_UDP, TIMEOUT_UDPLITE, TIMEOUT_ICMP,
                                       TIMEOUT_ICMPV6, TIMEOUT_SCTP, TIMEOUT_GRE,
                                       TIMEOUT_GENERIC)}

# -- ctnetlink's expectations (NFNL_SUBSYS_CTNETLINK_EXP) --------------------------------
# enum cntl_exp_msg_types
IPCTNL_MSG_EXP_NEW = 0
IPCTNL_MSG_EXP_GET = 1
IPCTNL_MSG_EXP_DELETE = 2
IPCTNL_MSG_EXP_GET_STATS_CPU = 3

# enum ctattr_expect, ctattr_expect_nat, ctattr_expect_stats
CTA_EXPECT_MASTER = 1
CTA_EXPECT_TUPLE = 2
CTA_EXPECT_MASK = 3
CTA_EXPECT_TIMEOUT = 4
CTA_EXPECT_ID = 5
CTA_EXPECT_HELP_NAME = 6
CTA_EXPECT_ZONE = 7
CTA_EXPECT_FLAGS = 8
CTA_EXPECT_CLASS = 9
CTA_EXPECT_NAT = 10
CTA_EXPECT_FN = 11
CTA_EXPECT_MAX = 11
CTA_EXPECT_NAT_DIR = 1
CTA_EXPECT_NAT_TUPLE = 2
CTA_EXPECT_NAT_MAX = 2
CTA_STATS_EXP_NEW = 1
CTA_STATS_EXP_CREATE = 2
CTA_STATS_EXP_DELETE = 3
NF_CT_EXPECT_MASK = 0x7             # PERMANENT | INACTIVE | USERSPACE

CTA_EXPECT_NAT_TABLE = NfTable("expect_nat", CTA_EXPECT_NAT_MAX, [
    NfAttr(CTA_EXPECT_NAT_DIR, "dir", "be32"),
    NfAttr(CTA_EXPECT_NAT_TUPLE, "tuple", "nested", next=CTA_TUPLE),
])

# exp_nla_policy (the u32 and u16 ones carry big-endian values)
CTA_EXPECT = NfTable("expect", CTA_EXPECT_MAX, [
    NfAttr(CTA_EXPECT_MASTER, "master", "nested", next=CTA_TUPLE),
    NfAttr(CTA_EXPECT_TUPLE, "tuple", "nested", next=CTA_TUPLE),
    NfAttr(CTA_EXPECT_MASK, "mask", "nested", next=CTA_TUPLE),
    NfAttr(CTA_EXPECT_TIMEOUT, "timeout", "be32"),
    NfAttr(CTA_EXPECT_ID, "id", "be32"),
    NfAttr(CTA_EXPECT_HELP_NAME, "help_name", "nul_string", 15),
    NfAttr(CTA_EXPECT_ZONE, "zone", "be16"),
    NfAttr(CTA_EXPECT_FLAGS, "flags", "be32"),
    NfAttr(CTA_EXPECT_CLASS, "class", "be32"),
    NfAttr(CTA_EXPECT_NAT, "nat", "nested", next=CTA_EXPECT_NAT_TABLE),
    NfAttr(CTA_EXPECT_FN, "fn", "nul_string"),
])
