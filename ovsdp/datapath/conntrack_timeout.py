"""The CT action's timeout policy at flow install: the part of
net/openvswitch/conntrack.c ``ovs_ct_copy_action()`` that calls
``nf_ct_set_timeout()`` for an action with OVS_CT_ATTR_TIMEOUT.

The kernel looks the name up while it copies the actions
(``ovs_nla_copy_actions(net, ...)``); ovsdp's copy
(:func:`.flow_netlink_actions.copy_actions`) has no namespace, so the flow
and packet families call :func:`set_timeouts` on the validated list right
after it, with the request's namespace: each CT action (at any depth of
clone, sample, check_pkt_len and dec_ttl) that names a policy gets it
bound (``CtInfo.timeout_policy``) when the namespace has a policy of that
name for the action's family and the flow key's IP protocol.  As in the
kernel a failed lookup is only logged: the action is installed anyway and
its connections get the namespace's default timeouts.  A bound policy is
held by the action (EBUSY on its deletion) as long as the action list
lives.  Sans I/O.
"""

import logging

from .. import uapi as U
from . import key_layout as K
from .families.ct_limit import net_ratelimit
from .nf_conntrack_timeout import set_timeout

log = logging.getLogger(__name__)

# where each nesting action keeps its validated lists
_NESTED = {
    U.OVS_ACTION_ATTR_CLONE: lambda p: (p,),
    U.OVS_ACTION_ATTR_DEC_TTL: lambda p: (p,),
    U.OVS_ACTION_ATTR_SAMPLE: lambda p: (p[1],),               # (probability, actions)
    U.OVS_ACTION_ATTR_CHECK_PKT_LEN: lambda p: (p[1], p[2]),   # (length, greater, less/equal)
}


def ct_actions(acts):
    """Every CtInfo of a validated action list, nested lists included."""
    for t, p in acts:
        if t == U.OVS_ACTION_ATTR_CT:
            yield p
        else:
            nested = _NESTED.get(t)
            if nested is not None:
                for sub in nested(p):
                    yield from ct_actions(sub)


def set_timeouts(acts, tracker, key):
    """nf_ct_set_timeout() for the CT actions of ``acts`` that name a policy,
    against ``tracker``'s policies (the request's namespace) and the flow
    key's ip_proto."""
    l4num = (key >> K.S_IP_PROTO) & 0xFF
    for info in ct_actions(acts):
        if not info.timeout:
            continue
        info.timeout_policy = set_timeout(tracker.timeout_policies, info, info.family, l4num,
                                          info.timeout)
        if info.timeout_policy is None and net_ratelimit():
            log.info("Failed to associated timeout policy `%s'",
                     info.timeout.decode("utf-8", "replace"))
    return acts
