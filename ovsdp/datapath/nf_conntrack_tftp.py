"""The TFTP helper, as net/netfilter/nf_conntrack_tftp.c.

A TFTP read or write request (opcode 1 or 2) goes to port 69; the server
answers from a port of its own, so the helper expects a UDP flow from the
server's address, any port, to the client's address and port: the
connection's reply tuple with its source port wildcarded.  NATed, the
expectation is set up by nf_nat_tftp.py instead.  Sans I/O.
"""

import logging

from .nf_conntrack_common import NFPROTO_IPV4, NFPROTO_IPV6
from .nf_conntrack_expect import NF_CT_EXPECT_CLASS_DEFAULT, Expect, related
from .nf_conntrack_helper import ExpectPolicy, Helper, register
from .nf_nat_proto import IPS_NAT_MASK

log = logging.getLogger(__name__)

NF_ACCEPT, NF_DROP = 1, 0
IPPROTO_UDP = 17
TFTP_PORT = 69
TFTP_OPCODE_READ, TFTP_OPCODE_WRITE = 1, 2

# set by nf_nat_tftp.py: nf_nat_tftp_hook
nf_nat_tftp_hook = None


def tftp_help(tracker, d, protoff, conn, ctinfo, partial=False):
    """tftp_help(): the verdict for a datagram of the connection ``conn``."""
    if len(d) < protoff + 8 + 2:
        return NF_ACCEPT
    opcode = (d[protoff + 8] << 8) | d[protoff + 9]
    if opcode not in (TFTP_OPCODE_READ, TFTP_OPCODE_WRITE):
        return NF_ACCEPT                # DATA, ACK, ERROR and the rest: nothing to expect
    reply = conn.tuple[1]
    exp = Expect(conn)
    exp.init(NF_CT_EXPECT_CLASS_DEFAULT, reply.l3num, reply.src, reply.dst, IPPROTO_UDP,
             None, reply.dport)
    if nf_nat_tftp_hook is not None and conn.status & IPS_NAT_MASK:
        return nf_nat_tftp_hook(tracker, ctinfo, exp)
    if related(tracker, exp) != 0:
        log.debug("nf_ct_tftp: cannot add expectation")
        return NF_DROP
    return NF_ACCEPT


_POLICY = ExpectPolicy(max_expected=1, timeout=5 * 60)
for _family in (NFPROTO_IPV4, NFPROTO_IPV6):
    register(Helper("tftp", _family, IPPROTO_UDP, TFTP_PORT, _POLICY, tftp_help))
