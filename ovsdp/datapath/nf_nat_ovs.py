"""NAT for the OVS CT action, as net/netfilter/nf_nat_ovs.c.

``ct_nat`` is ``nf_ct_nat()``: which side to translate (as before for an
established or related connection that is NATed, else what the action
asks), the binding set up for a new connection (a range, or the null
binding), the packet rewritten, and for a connection with destination NAT
the other side too.  It returns the verdict and the manips done (the bits
``1 << NF_NAT_MANIP_SRC`` / ``DST``), from which the caller updates the
flow key as ovs_nat_update_key() does.  Sans I/O.
"""

from .nf_conntrack import get_l4proto
from .nf_conntrack_common import (
    IP_CT_ESTABLISHED,
    IP_CT_ESTABLISHED_REPLY,
    IP_CT_IS_REPLY,
    IP_CT_NEW,
    IP_CT_RELATED,
    IP_CT_RELATED_REPLY,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPS_DST_NAT,
    IPS_SRC_NAT,
    NFPROTO_IPV4,
    NFPROTO_IPV6,
)
from .nf_nat_core import (
    NF_ACCEPT,
    NF_DROP,
    NF_NAT_MANIP_DST,
    NF_NAT_MANIP_SRC,
    NF_NAT_RANGE_MAP_IPS,
    alloc_null_binding,
    initialized,
    setup_info,
)
from .nf_nat_proto import (
    IPS_NAT_MASK,
    icmp_reply_translation,
    icmpv6_reply_translation,
    nat_packet,
)

BIT_SRC = 1 << NF_NAT_MANIP_SRC
BIT_DST = 1 << NF_NAT_MANIP_DST


def _execute(tracker, d, family, conn, ctinfo, rng, manip, partial):
    """nf_ct_nat_execute(): (verdict, manip bit done or 0).  An accepted ICMP
    error counts as done too (Linux 6.10's "fix action not being set for all
    ct states"), so the key follows its rewritten outer header."""
    if ctinfo in (IP_CT_RELATED, IP_CT_RELATED_REPLY):
        if family == NFPROTO_IPV4 and len(d) >= 20 and d[9] == IPPROTO_ICMP:
            ok = icmp_reply_translation(d, conn, ctinfo, manip, partial)
            return (NF_ACCEPT, 1 << manip) if ok else (NF_DROP, 0)
        if family == NFPROTO_IPV6:
            res, _why = get_l4proto(d, 0, NFPROTO_IPV6)
            if res is not None and res[1] == IPPROTO_ICMPV6:
                ok = icmpv6_reply_translation(d, conn, ctinfo, manip, res[0], partial)
                return (NF_ACCEPT, 1 << manip) if ok else (NF_DROP, 0)
        setup = True                    # not ICMP: as a new connection
    elif ctinfo == IP_CT_NEW:
        setup = True
    elif ctinfo in (IP_CT_ESTABLISHED, IP_CT_ESTABLISHED_REPLY):
        setup = False
    else:
        return NF_DROP, 0
    if setup and not initialized(conn, manip):
        if rng is not None and rng.flags & NF_NAT_RANGE_MAP_IPS:
            err = setup_info(tracker, conn, rng, manip)
        else:
            err = alloc_null_binding(tracker, conn, manip)
        if err != NF_ACCEPT:
            return err, 0
    err = nat_packet(d, conn, ctinfo, manip, partial)
    return err, (1 << manip) if err == NF_ACCEPT else 0


def ct_nat(tracker, d, family, conn, ctinfo, action, rng, commit, partial=False):
    """nf_ct_nat(): (verdict, manips done).  ``action`` holds the manips the
    CT action asks for; ``d`` is the datagram, rewritten in place."""
    if ctinfo != IP_CT_NEW and conn.status & IPS_NAT_MASK and (
            ctinfo != IP_CT_RELATED or commit):
        reply = ctinfo >= IP_CT_IS_REPLY
        if reply:
            manip = NF_NAT_MANIP_DST if conn.status & IPS_SRC_NAT else NF_NAT_MANIP_SRC
        else:
            manip = NF_NAT_MANIP_SRC if conn.status & IPS_SRC_NAT else NF_NAT_MANIP_DST
    elif action & BIT_SRC:
        manip = NF_NAT_MANIP_SRC
    elif action & BIT_DST:
        manip = NF_NAT_MANIP_DST
    else:
        return NF_ACCEPT, 0
    err, done = _execute(tracker, d, family, conn, ctinfo, rng, manip, partial)
    if err == NF_ACCEPT and conn.status & IPS_DST_NAT:
        if conn.status & IPS_SRC_NAT:
            manip = 1 - manip
            err, more = _execute(tracker, d, family, conn, ctinfo, rng, manip, partial)
            done |= more
        elif ctinfo < IP_CT_IS_REPLY:   # CTINFO2DIR() == IP_CT_DIR_ORIGINAL
            err, more = _execute(tracker, d, family, conn, ctinfo, None, NF_NAT_MANIP_SRC,
                                 partial)
            done |= more
    return err, done

