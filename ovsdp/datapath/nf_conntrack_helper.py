"""Conntrack helpers, as net/netfilter/nf_conntrack_helper.c.

A :class:`Helper` (``struct nf_conntrack_helper``) reads the packets of a
connection that carries the addresses of others (FTP, TFTP) and sets up
expectations for them; :class:`Help` is the connection's helper extension
(``struct nf_conn_help``: the helper, its private state, the
expectations it made).  Helpers register by name, family and protocol
(``nf_conntrack_helper_register()``); the NAT side of a helper registers
its name too (``nf_nat_helper_register()``), as OVS's CT action asks for
both when it has NAT.  The helpers themselves are nf_conntrack_ftp.py and
nf_conntrack_tftp.py.  Sans I/O.
"""

from typing import NamedTuple

from .nf_conntrack_common import IPS_HELPER
from .nf_conntrack_expect import NF_CT_EXPECT_MAX_CNT


class ExpectPolicy(NamedTuple):
    """struct nf_conntrack_expect_policy."""

    max_expected: int
    timeout: int                # seconds
    name: str = "default"


class Helper:
    """struct nf_conntrack_helper: ``help(tracker, d, protoff, conn, ctinfo,
    partial)`` returns a verdict; ``data`` makes the per-connection state."""

    __slots__ = ("name", "l3num", "protonum", "port", "policy", "help", "data")

    def __init__(self, name, l3num, protonum, port, policy, help_, data=None):
        self.name, self.l3num, self.protonum, self.port = name, l3num, protonum, port
        self.policy = (policy,)             # expect_policy[], one class
        self.help = help_
        self.data = data

    def __repr__(self):
        return f"Helper({self.name!r}, l3num={self.l3num}, protonum={self.protonum})"


class Help:
    """struct nf_conn_help: the helper, its private data, the expectations
    this connection made (newest first) and their count per class."""

    __slots__ = ("helper", "data", "expectations", "expecting")

    def __init__(self, helper):
        self.helper = helper
        self.data = helper.data() if helper is not None and helper.data else None
        self.expectations = []
        self.expecting = [0] * NF_CT_EXPECT_MAX_CNT


_HELPERS = {}                   # (name, l3num, protonum) -> Helper
_NAT_HELPERS = set()            # names with a NAT helper (nf_nat_helper_register)


def register(helper):
    """nf_conntrack_helper_register()."""
    _HELPERS[(helper.name, helper.l3num, helper.protonum)] = helper


def register_nat(name):
    """nf_nat_helper_register()."""
    _NAT_HELPERS.add(name)


def helper_find(name, l3num, protonum):
    """__nf_conntrack_helper_find(): the helper, or None."""
    return _HELPERS.get((name, l3num, protonum))


def nat_helper_find(name):
    """nf_nat_helper_try_module_get() succeeds."""
    return name in _NAT_HELPERS


def names():
    """The registered helpers' names."""
    return sorted({h.name for h in _HELPERS.values()})


def helper_ext_add(conn, helper):
    """nf_ct_helper_ext_add() with the helper set: IPS_HELPER too."""
    conn.help = Help(helper)
    conn.status |= IPS_HELPER
    return conn.help


def try_assign_helper(conn, helper):
    """__nf_ct_try_assign_helper() with the template's ``helper``: the
    connection gets it, unless it has another sort of helper already (or
    one was attached explicitly: IPS_HELPER)."""
    help_ = conn.help
    if conn.status & IPS_HELPER:
        return
    if helper is None:
        if help_ is not None:
            help_.helper = None
        return
    if help_ is None:
        helper_ext_add(conn, helper)
    elif help_.helper is not None and help_.helper.help is not helper.help:
        help_.helper = None
    else:
        if help_.helper is None and help_.data is None and helper.data:
            help_.data = helper.data()
        help_.helper = helper
