"""The psample generic netlink family (net/psample/psample.c).

Version 1, no fixed header, no policy.  Two multicast groups: "config"
(PSAMPLE_CMD_NEW_GROUP / DEL_GROUP as groups come and go) and "packets"
(PSAMPLE_CMD_SAMPLE, one message per sampled packet), which only a socket
with CAP_NET_ADMIN may join (GENL_MCAST_CAP_NET_ADMIN: EPERM otherwise).
The one command, PSAMPLE_CMD_GET_GROUP, is a dump anyone may run (it has
no doit: EOPNOTSUPP without NLM_F_DUMP); it lists the groups of the
requester's namespace, each as a PSAMPLE_CMD_NEW_GROUP message with
NLM_F_MULTI (group number, refcount, seq), and ignores the request's
attributes (GENL_DONT_VALIDATE_DUMP).  The groups and the sampling are
:mod:`..psample`.
"""

from ... import uapi as U
from ...netlink.genl import GENL_MCAST_CAP_NET_ADMIN, Family, Op


def make_family(module):
    fam = Family(U.PSAMPLE_GENL_NAME, U.PSAMPLE_GENL_VERSION, U.PSAMPLE_ATTR_MAX,
                 mcgrps=[U.PSAMPLE_NL_MCGRP_CONFIG_NAME, U.PSAMPLE_NL_MCGRP_SAMPLE_NAME],
                 mcgrp_flags={U.PSAMPLE_NL_MCGRP_SAMPLE_NAME: GENL_MCAST_CAP_NET_ADMIN})

    def get_group_dumpit(req):
        """psample_nl_cmd_get_group_dumpit()."""
        ps = module.psample
        for group in ps.groups_of(req.net):
            yield ps.group_fill(group, U.PSAMPLE_CMD_NEW_GROUP, req.portid, req.seq,
                                U.NLM_F_MULTI)

    fam.add_op(Op(U.PSAMPLE_CMD_GET_GROUP, 0, dumpit=get_group_dumpit, policy=False))
    return fam
