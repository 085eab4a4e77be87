"""Timeout policies, as net/netfilter/nf_conntrack_timeout.c and the parts
of nfnetlink_cttimeout.c that are not netlink.

A :class:`TimeoutPolicy` is ``struct ctnl_timeout``: a name, the l3 and l4
protocol it is for and its timeouts (``data``, seconds, indexed as the
protocol tracker's array: ``tcp_timeouts``, ``udp_timeouts``, ... of the
:class:`~.nf_conntrack.ConnTracker`; one item for ICMP, ICMPv6 and the
generic tracker).  A namespace's policies live with its tracker
(``ConnTracker.timeout_policies``, name -> policy, oldest first, the
kernel's ``nfct_timeout_list``).

A connection made by a CT action whose flow bound a policy carries the
extension :class:`TimeoutExt` (``nf_conn_timeout``, ``Conn.timeout_ext``);
the trackers ask :func:`timeout_lookup` (``nf_ct_timeout_lookup()``) and
use the namespace's defaults when it gives None.

The reference count is the kernel's: 1 for the list, one more for each CT
action (a template, in the kernel) that holds the policy, so a flow that
uses a policy keeps it from being deleted (EBUSY); connections hold none
and lose the policy when it is deleted (``nf_ct_untimeout()``), going back
to the defaults.  ovsdp counts the actions as the live holders of the
policy (weak references: an action list that is dropped, with its flow or
after an EXECUTE, stops counting; ``nf_ct_destroy_timeout()`` is the
garbage collector's, run before GET and DELETE read the counts).

What differs from Linux: every connection of one policy shares one
extension object, so ``nf_ct_untimeout()`` is O(1);
timeouts are whole seconds (no HZ scaling, so no 32-bit overflow of
seconds * HZ); DCCP has no policies (ovsdp has no DCCP tracker).  Sans I/O.
"""

import gc
import logging
import weakref

from ..uapi import nfnetlink as N

log = logging.getLogger(__name__)

# the tracker's defaults of each l4 protocol: (ConnTracker attribute, a list?)
_DEFAULTS = {
    6: ("tcp_timeouts", True),
    17: ("udp_timeouts", True),
    136: ("udp_timeouts", True),            # UDP-Lite shares UDP's (udp_get_timeouts)
    132: ("sctp_timeouts", True),
    47: ("gre_timeouts", True),
    1: ("icmp_timeout", False),
    58: ("icmpv6_timeout", False),
    255: ("generic_timeout", False),
}


def l4proto_of(l4num):
    """nf_ct_l4proto_find() as cttimeout sees it: the protocol's TimeoutProto,
    or None where the kernel would fall back to the generic tracker (an
    unknown protocol: its l4proto is then not ``l4num``, EOPNOTSUPP)."""
    return N.TIMEOUT_PROTOS.get(l4num)


def get_defaults(tracker, l4num):
    """The namespace's default timeouts of ``l4num`` as a list (a copy)."""
    name, is_list = _DEFAULTS[l4num]
    v = getattr(tracker, name)
    return list(v) if is_list else [v]


def set_defaults(tracker, l4num, values):
    name, is_list = _DEFAULTS[l4num]
    if is_list:
        getattr(tracker, name)[:] = values
    else:
        setattr(tracker, name, values[0])


def nlattr_to_obj(tracker, proto, attrs, data=None):
    """<proto>_timeout_nlattr_to_obj(): ``attrs`` ({type: seconds}) over
    the namespace's defaults.  Into ``data`` (a policy's list) or, when
    None, into the defaults themselves (DEFAULT_SET).  Returns the list."""
    out = get_defaults(tracker, proto.l4num)
    for row in proto.rows:
        if row.type in attrs:
            out[row.index] = attrs[row.type]
    if proto.unspec_from is not None:
        out[0] = out[proto.unspec_from]
    if data is None:
        set_defaults(tracker, proto.l4num, out)
        return out
    data[:] = out
    return data


def obj_to_nlattr(proto, data):
    """<proto>_timeout_obj_to_nlattr(): [(type, seconds)] in emission order."""
    return [(row.type, data[row.index]) for row in proto.rows]


class TimeoutExt:
    """struct nf_conn_timeout: the policy, None once it was deleted."""

    __slots__ = ("timeout",)

    def __init__(self, timeout):
        self.timeout = timeout

    def __repr__(self):
        return f"TimeoutExt({self.timeout!r})"


class TimeoutPolicy:
    """struct ctnl_timeout (with its struct nf_ct_timeout)."""

    __slots__ = ("name", "l3num", "l4num", "proto", "data", "ext", "_holders")

    def __init__(self, name, l3num, proto, data):
        self.name = name                # bytes, without the NUL
        self.l3num = l3num
        self.l4num = proto.l4num
        self.proto = proto
        self.data = data
        self.ext = TimeoutExt(self)     # what the connections made with it carry
        self._holders = weakref.WeakSet()

    def __repr__(self):
        return (f"TimeoutPolicy({self.name!r}, l3={self.l3num}, l4={self.l4num}, "
                f"{self.data}, use={self.use})")

    @property
    def use(self):
        """refcount_read(&timeout->refcnt): the list's reference and the holders'."""
        return 1 + len(self._holders)

    def hold(self, holder):
        """ctnl_timeout_find_get()'s reference, kept while ``holder`` lives."""
        self._holders.add(holder)

    def try_del(self, policies):
        """ctnl_timeout_try_del(): unlink it if nothing else holds it and
        say True (False: EBUSY); the connections that had it lose it."""
        if self._holders:
            return False
        del policies[self.name]
        self.ext.timeout = None         # nf_ct_untimeout()
        return True


def drop_dead_holders(policies):
    """Before a count is read or acted on: action lists that are garbage in
    a reference cycle (a removed flow and its mask) stop holding their
    policies.  One collection, and only while some policy is held."""
    if any(t._holders for t in policies.values()):
        gc.collect()


def find(policies, name):
    """The policy named ``name`` (strncmp() over CTNL_TIMEOUT_NAME_MAX), or None."""
    return policies.get(bytes(name[:N.CTNL_TIMEOUT_NAME_MAX]).split(b"\0", 1)[0])


def set_timeout(policies, holder, l3num, l4num, name):
    """nf_ct_set_timeout(): the policy ``name`` for a template (``holder``,
    the CT action) of family ``l3num`` and protocol ``l4num``, held by it;
    or None, the reason logged (ENOENT / EINVAL in the kernel)."""
    t = find(policies, name)
    shown = name.decode("utf-8", "replace")
    if t is None:
        log.info('No such timeout policy "%s"', shown)
        return None
    if t.l3num != l3num:
        log.info("Timeout policy `%s' can only be used by L%d protocol number %d",
                 shown, 3, t.l3num)
        return None
    if t.l4num != l4num:
        log.info("Timeout policy `%s' can only be used by L%d protocol number %d",
                 shown, 4, t.l4num)
        return None
    t.hold(holder)
    return t


def timeout_lookup(ct):
    """nf_ct_timeout_lookup(): the connection's policy timeouts, or None
    (no extension, its policy deleted, or a policy of another protocol)."""
    ext = ct.timeout_ext
    if ext is None:
        return None
    t = ext.timeout
    if t is None or t.l4num != ct.tuple[0].protonum:
        return None
    return t.data
