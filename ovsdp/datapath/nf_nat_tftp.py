"""TFTP through NAT, as net/netfilter/nf_nat_tftp.c: the server's answer
is expected on the client's inside port, and NATed like the request
(``nf_nat_follow_master``).  Sans I/O."""

import logging

from . import nf_conntrack_tftp as TFTP
from .nf_conntrack_common import IP_CT_DIR_REPLY
from .nf_conntrack_expect import related
from .nf_conntrack_helper import register_nat
from .nf_nat_helper import follow_master

log = logging.getLogger(__name__)


def nf_nat_tftp(tracker, ctinfo, exp):
    """help() of nf_nat_tftp.c: the verdict."""
    exp.saved_proto = exp.master.tuple[0].sport
    exp.dir = IP_CT_DIR_REPLY
    exp.expectfn = follow_master
    if related(tracker, exp) != 0:
        log.debug("nf_nat_tftp: cannot add expectation")
        return TFTP.NF_DROP
    return TFTP.NF_ACCEPT


TFTP.nf_nat_tftp_hook = nf_nat_tftp
register_nat("tftp")
