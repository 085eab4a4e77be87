"""Connection tracking numbers shared by the core and the protocol trackers.

The values are those of include/uapi/linux/netfilter/nf_conntrack_common.h
(``enum ip_conntrack_info``, ``enum ip_conntrack_status``),
include/uapi/linux/netfilter/nf_conntrack_tcp.h (``enum tcp_conntrack``, the
``IP_CT_TCP_FLAG_*`` bits) and include/linux/netfilter.h (``NFPROTO_*``).
A separate module so that nf_conntrack.py can import the protocol trackers
without an import cycle.  Pure data, sans I/O.
"""

# enum ip_conntrack_info
IP_CT_ESTABLISHED = 0
IP_CT_RELATED = 1
IP_CT_NEW = 2
IP_CT_IS_REPLY = 3
IP_CT_ESTABLISHED_REPLY = IP_CT_ESTABLISHED + IP_CT_IS_REPLY
IP_CT_RELATED_REPLY = IP_CT_RELATED + IP_CT_IS_REPLY
IP_CT_NUMBER = 5
IP_CT_UNTRACKED = 7

# enum ip_conntrack_dir
IP_CT_DIR_ORIGINAL = 0
IP_CT_DIR_REPLY = 1

# enum ip_conntrack_status: bit numbers and masks
IPS_EXPECTED_BIT = 0
IPS_SEEN_REPLY_BIT = 1
IPS_ASSURED_BIT = 2
IPS_CONFIRMED_BIT = 3
IPS_SRC_NAT_BIT = 4
IPS_DST_NAT_BIT = 5
IPS_SEQ_ADJUST_BIT = 6
IPS_SRC_NAT_DONE_BIT = 7
IPS_DST_NAT_DONE_BIT = 8
IPS_DYING_BIT = 9
IPS_FIXED_TIMEOUT_BIT = 10
IPS_TEMPLATE_BIT = 11
IPS_NAT_CLASH_BIT = 12
IPS_HELPER_BIT = 13
IPS_OFFLOAD_BIT = 14
IPS_HW_OFFLOAD_BIT = 15

IPS_EXPECTED = 1 << IPS_EXPECTED_BIT
IPS_SEEN_REPLY = 1 << IPS_SEEN_REPLY_BIT
IPS_ASSURED = 1 << IPS_ASSURED_BIT
IPS_CONFIRMED = 1 << IPS_CONFIRMED_BIT
IPS_SRC_NAT = 1 << IPS_SRC_NAT_BIT
IPS_DST_NAT = 1 << IPS_DST_NAT_BIT
IPS_SEQ_ADJUST = 1 << IPS_SEQ_ADJUST_BIT
IPS_SRC_NAT_DONE = 1 << IPS_SRC_NAT_DONE_BIT
IPS_DST_NAT_DONE = 1 << IPS_DST_NAT_DONE_BIT
IPS_DYING = 1 << IPS_DYING_BIT
IPS_FIXED_TIMEOUT = 1 << IPS_FIXED_TIMEOUT_BIT
IPS_TEMPLATE = 1 << IPS_TEMPLATE_BIT
IPS_NAT_CLASH = 1 << IPS_NAT_CLASH_BIT
IPS_HELPER = 1 << IPS_HELPER_BIT
IPS_OFFLOAD = 1 << IPS_OFFLOAD_BIT
IPS_HW_OFFLOAD = 1 << IPS_HW_OFFLOAD_BIT

# NFPROTO_* (the l3num of a tuple)
NFPROTO_IPV4 = 2
NFPROTO_IPV6 = 10

# IPPROTO_* the trackers know (uapi/headers.py's)
from ..uapi.headers import (  # noqa: E402, F401 - re-exported for the trackers
    IPPROTO_AH,
    IPPROTO_DCCP,
    IPPROTO_DSTOPTS,
    IPPROTO_FRAGMENT,
    IPPROTO_GRE,
    IPPROTO_HOPOPTS,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_NONE,
    IPPROTO_ROUTING,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPPROTO_UDPLITE,
)

# enum tcp_conntrack
TCP_CONNTRACK_NONE = 0
TCP_CONNTRACK_SYN_SENT = 1
TCP_CONNTRACK_SYN_RECV = 2
TCP_CONNTRACK_ESTABLISHED = 3
TCP_CONNTRACK_FIN_WAIT = 4
TCP_CONNTRACK_CLOSE_WAIT = 5
TCP_CONNTRACK_LAST_ACK = 6
TCP_CONNTRACK_TIME_WAIT = 7
TCP_CONNTRACK_CLOSE = 8
TCP_CONNTRACK_LISTEN = 9
TCP_CONNTRACK_SYN_SENT2 = TCP_CONNTRACK_LISTEN
TCP_CONNTRACK_MAX = 10
TCP_CONNTRACK_IGNORE = 11
TCP_CONNTRACK_RETRANS = 12
TCP_CONNTRACK_UNACK = 13
TCP_CONNTRACK_TIMEOUT_MAX = 14

TCP_CONNTRACK_NAMES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
                       "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")

# struct ip_ct_tcp_state.flags
IP_CT_TCP_FLAG_WINDOW_SCALE = 0x01
IP_CT_TCP_FLAG_SACK_PERM = 0x02
IP_CT_TCP_FLAG_CLOSE_INIT = 0x04
IP_CT_TCP_FLAG_BE_LIBERAL = 0x08
IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED = 0x10
IP_CT_TCP_FLAG_MAXACK_SET = 0x20
IP_CT_EXP_CHALLENGE_ACK = 0x40
IP_CT_TCP_SIMULTANEOUS_OPEN = 0x80

# Verdicts of a protocol tracker's packet(), as nf_conntrack_handle_packet returns them:
# ACCEPT = NF_ACCEPT after nf_ct_refresh_acct; IGNORE = NF_ACCEPT without refresh (the
# packet keeps its conntrack); INVALID = -NF_ACCEPT; REPEAT = -NF_REPEAT (TCP reopen: the
# connection was killed, look the packet up again).
V_ACCEPT = "accept"
V_IGNORE = "ignore"
V_INVALID = "invalid"
V_REPEAT = "repeat"
