"""Conntrack for OVS's CT action, as net/netfilter/nf_conntrack_ovs.c.

``add_helper()`` is ``nf_ct_add_helper()``: the helper a CT action names,
found when the flow is installed (with its NAT side when the action has
NAT), or EINVAL.  ``ct_helper()`` is ``nf_ct_helper()``: the connection's
helper run on a packet, then the sequence adjustment NAT's rewriting of
its payload needs.  Loading this module loads the helpers (FTP, TFTP) and
their NAT sides.  Sans I/O.
"""

import errno

from . import nf_conntrack_ftp, nf_conntrack_tftp, nf_nat_ftp, nf_nat_tftp  # noqa: F401
from .nf_conntrack_common import IP_CT_RELATED_REPLY, IPS_SEQ_ADJUST, NFPROTO_IPV4
from .nf_conntrack_helper import helper_find, nat_helper_find
from .nf_conntrack_seqadj import seq_adjust
from .nf_conntrack_tuple import get_l4proto

NF_ACCEPT, NF_DROP = 1, 0


def add_helper(name, family, proto, nat):
    """nf_ct_add_helper(): (helper, None) or (None, (errno, message))."""
    helper = helper_find(name.decode("latin-1"), family, proto)
    if helper is None:
        return None, (errno.EINVAL, f"Failed to add {name.decode('latin-1')} helper -22")
    if nat and not nat_helper_find(helper.name):
        return None, (errno.ENOENT, f"Failed to add {helper.name} helper -2")
    return helper, None


def ct_helper(tracker, d, conn, ctinfo, family, partial=False):
    """nf_ct_helper() on the datagram ``d`` (a bytearray, which the helper
    and the sequence adjustment may rewrite): the verdict."""
    if ctinfo == IP_CT_RELATED_REPLY:
        return NF_ACCEPT
    help_ = conn.help
    helper = help_.helper if help_ is not None else None
    if helper is None or helper.l3num != family:
        return NF_ACCEPT
    if family == NFPROTO_IPV4:
        if len(d) < 20:
            return NF_ACCEPT
        protoff, proto = (d[0] & 15) * 4, d[9]
    else:
        res, _why = get_l4proto(d, 0, family)
        if res is None:
            return NF_ACCEPT                # "proto header not found" (or a later fragment)
        protoff, proto = res
    if helper.protonum != proto:
        return NF_ACCEPT
    verdict = helper.help(tracker, d, protoff, conn, ctinfo, partial)
    if verdict != NF_ACCEPT:
        return verdict
    if conn.status & IPS_SEQ_ADJUST and not seq_adjust(d, protoff, conn, ctinfo, partial):
        return NF_DROP
    return NF_ACCEPT
