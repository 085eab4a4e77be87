"""Action execution (net/openvswitch/actions.c).

``execute_actions(dp, skb, key, acts)`` runs a validated ActionList (see
docs/architecture.md) on an :class:`~.skb.Skb` with its unmasked flow key,
like ovs_execute_actions() / do_execute_actions():

- Every action list ends in a drop (OVS_DROP_LAST_ACTION) unless its last
  action consumed the packet (OUTPUT, USERSPACE, RECIRC, SAMPLE, CLONE,
  CHECK_PKT_LEN, DEC_TTL's exception list, DROP).  An action error drops
  with OVS_DROP_ACTION_ERROR and ends the list.
- The flow key is kept in step with the packet the way the kernel does it:
  set actions write the new field values into the key, actions that change
  the packet's layout (MPLS, Ethernet push/pop, a VLAN push/pop that is not
  on the outermost tag) mark it invalid; RECIRC re-extracts an invalid key
  (flow_key) before recirculating.  Upcalls carry the key as it stands
  (possibly stale), as the kernel does.
- clone/sample/check_pkt_len/recirc run nested lists immediately up to
  OVS_DEFERRED_ACTION_THRESHOLD levels, then defer them to a FIFO processed
  when the outermost execute_actions() call finishes.  The recursion level
  and the FIFO live on the datapath object (``dp.exec_level``,
  ``dp.deferred``), so they are per datapath and reset after every packet.

ovsdp keeps every VLAN tag inside the frame, where the kernel keeps the
outermost one outside it (skb hwaccel tag).  Lengths the kernel takes from
skb->len (TRUNC, CHECK_PKT_LEN, the truncation on output) therefore do not
count an outer tag here either, so results match the kernel's on the wire.

Errors are positive errno values (0 for success), like the rest of ovsdp.
PSAMPLE is :mod:`.psample` (sample() hands it its probability in
``skb.probability``, OVS_CB(skb)->probability).  push_nsh and pop_nsh are
:mod:`.nsh`.  A key extraction that fails (ovs_flow_key_update() before
recirc or ct: a bad NSH header) is an action error with its errno.  CT is
:mod:`.conntrack` (helpers and timeout policies not yet); a fragment is
reassembled first (:mod:`.ip_defrag`: one kept for later ends the list
quietly, as -EINPROGRESS does) and output refragments a reassembled
packet to its MRU (:mod:`.ip_fragment`).

The actions that rewrite headers (set, set_masked, push/pop of VLAN, MPLS
and Ethernet) and the flow key state are in :mod:`.actions_headers`; this
module is the interpreter, output, upcalls and the nesting actions.

What the actions need of a datapath is :class:`ActionsDatapath`
(:class:`~.datapath.Datapath` is one; the tests have another).
"""

import collections
import errno
import os
import random
from typing import Protocol

from .. import uapi as U
from . import checksum as CS
from . import conntrack as CT
from . import flow_hash as FH
from . import flow_key as FK
from . import ip_fragment as IPF
from . import key_layout as K
from . import nsh as NSH
from . import psample as PS
from .actions_headers import (
    ETH_HLEN,
    MAX_L2_LEN,
    Key,
    clone_skb,
    ct_clear_skb,
    current_key,
    execute_masked_set,
    hwaccel_len,
    layers,
    no_eth,
    pop_eth,
    pop_mpls,
    pop_vlan,
    push_eth,
    push_mpls,
    push_vlan,
)
from .meter import now_ms as _now_ms
from .skb import TunnelInfo


class ActionsDatapath(Protocol):
    """The datapath as the actions see it."""

    ports: dict              # port_no -> Vport (output(), mtu, tunnel, ...)
    meters: dict             # meter id -> meter.Meter
    user_features: int       # OVS_DP_F_*
    exec_level: int          # the recursion level of execute_actions()
    deferred: collections.deque   # the deferred-actions FIFO

    def upcall(self, skb, key, cmd, portid, userdata=None, actions=None,
               egress_tun_info=None, cutlen=0):
        """ovs_dp_upcall(): 0 or an errno."""

    def recirc(self, skb, key):
        """ovs_dp_process_packet() of a recirculated packet."""

    def drop(self, skb, reason):
        """kfree_skb_reason(): count a drop."""

    def get_upcall_portid(self, cpu):
        """ovs_dp_get_upcall_portid() (per-CPU dispatch)."""

    @property
    def psample(self):
        """The module's psample (psample.Psample), or None: no sampling."""

    @property
    def conntrack(self):
        """The namespace's connection tracker (nf_conntrack.ConnTracker)."""

    @property
    def defrag(self):
        """The namespace's fragment queues (ip_defrag.Defrag)."""


OVS_RECURSION_LIMIT = 5
OVS_DEFERRED_ACTION_THRESHOLD = OVS_RECURSION_LIMIT - 2
DEFERRED_ACTION_FIFO_SIZE = 10

# The PRNG of the SAMPLE action (get_random_u32()); tests may reseed it.
rng = random.Random()

_NR_CPUS = os.cpu_count() or 1
_TUNNEL_VPORT_TYPES = (U.OVS_VPORT_TYPE_GRE, U.OVS_VPORT_TYPE_VXLAN, U.OVS_VPORT_TYPE_GENEVE)

A_OUTPUT = U.OVS_ACTION_ATTR_OUTPUT
A_USERSPACE = U.OVS_ACTION_ATTR_USERSPACE
A_SET = U.OVS_ACTION_ATTR_SET
A_PUSH_VLAN = U.OVS_ACTION_ATTR_PUSH_VLAN
A_POP_VLAN = U.OVS_ACTION_ATTR_POP_VLAN
A_SAMPLE = U.OVS_ACTION_ATTR_SAMPLE
A_RECIRC = U.OVS_ACTION_ATTR_RECIRC
A_HASH = U.OVS_ACTION_ATTR_HASH
A_PUSH_MPLS = U.OVS_ACTION_ATTR_PUSH_MPLS
A_POP_MPLS = U.OVS_ACTION_ATTR_POP_MPLS
A_SET_MASKED = U.OVS_ACTION_ATTR_SET_MASKED
A_SET_TO_MASKED = U.OVS_ACTION_ATTR_SET_TO_MASKED
A_CT = U.OVS_ACTION_ATTR_CT
A_TRUNC = U.OVS_ACTION_ATTR_TRUNC
A_PUSH_ETH = U.OVS_ACTION_ATTR_PUSH_ETH
A_POP_ETH = U.OVS_ACTION_ATTR_POP_ETH
A_CT_CLEAR = U.OVS_ACTION_ATTR_CT_CLEAR
A_PUSH_NSH = U.OVS_ACTION_ATTR_PUSH_NSH
A_POP_NSH = U.OVS_ACTION_ATTR_POP_NSH
A_METER = U.OVS_ACTION_ATTR_METER
A_CLONE = U.OVS_ACTION_ATTR_CLONE
A_CHECK_PKT_LEN = U.OVS_ACTION_ATTR_CHECK_PKT_LEN
A_ADD_MPLS = U.OVS_ACTION_ATTR_ADD_MPLS
A_DEC_TTL = U.OVS_ACTION_ATTR_DEC_TTL
A_DROP = U.OVS_ACTION_ATTR_DROP
A_PSAMPLE = U.OVS_ACTION_ATTR_PSAMPLE

# actions_may_change_flow() (flow_netlink.c): the actions that leave the
# flow key alone.  A nested list made only of these runs with the caller's
# key (the 'exec' flag of sample/clone/check_pkt_len).
_KEY_PRESERVING = frozenset((A_OUTPUT, A_RECIRC, A_TRUNC, A_USERSPACE, A_DROP, A_PSAMPLE))



def _may_change_flow(acts):
    for a in acts:
        if a[0] not in _KEY_PRESERVING:
            return True
    return False


# ------------------------------------------------------------------ output
def _do_output(dp, skb, port, kx):
    vport = dp.ports.get(port)
    if vport is None:
        dp.drop(skb, "no_port")     # kfree_skb(SKB_DROP_REASON_DEV_READY): not an OVS reason
        return
    data = skb.data
    no_eth = (kx.k >> K.S_NO_ETH) & 0xFF
    cutlen = skb.cutlen
    if cutlen > 0:
        n = len(data)
        hw = hwaccel_len(skb, kx)
        mac_hlen = 0 if no_eth else ETH_HLEN          # ovs_mac_header_len()
        if n - hw - cutlen > mac_hlen:
            data = data[:n - cutlen]
        else:
            data = data[:mac_hlen + hw]
    mru = skb.mru
    if mru and len(data) - hwaccel_len(skb, kx) > mru + ETH_HLEN:
        # (ETH_HLEN: the hard_header_len of every ovsdp port type.)
        if mru > getattr(vport, "mtu", mru):
            return      # kfree_skb(SKB_DROP_REASON_PKT_TOO_BIG)
        # ovs_fragment(): its checks, then the fragments (ip_fragment.py)
        nh = layers(skb, kx).network
        if nh > MAX_L2_LEN:
            dp.drop(skb, U.OVS_DROP_FRAG_L2_TOO_LONG)
            return
        eth_type = (kx.k >> K.S_ETH_TYPE) & 0xFFFF
        if eth_type not in (K.ETH_P_IP, K.ETH_P_IPV6):
            dp.drop(skb, U.OVS_DROP_FRAG_INVALID_PROTO)
            return
        frames = IPF.ovs_fragment(data, nh, eth_type, mru, skb.frag_id, skb.csum_partial)
        if type(frames) is int:
            dp.drop(skb, "frag_failed")             # kfree_skb(): not an OVS reason
            return
    else:
        frames = (data if type(data) is bytes else bytes(data),)
    l3 = (kx.k >> K.S_ETH_TYPE) & 0xFFFF if no_eth else 0      # skb->protocol
    for data in frames:
        if vport.tunnel:
            vport.output(data, l3=l3, tun_info=skb.tun_info)
        elif no_eth:
            vport.output(data, l3=l3)
        else:
            vport.output(data)


def _output_userspace(dp, skb, kx, us, acts):
    """output_userspace(): an OVS_PACKET_CMD_ACTION upcall."""
    if skb.upcall_pid:
        portid = skb.upcall_pid         # EXECUTE's OVS_PACKET_ATTR_UPCALL_PID wins
    elif dp.user_features & U.OVS_DP_F_DISPATCH_UPCALL_PER_CPU:
        portid = dp.get_upcall_portid(skb.hash % _NR_CPUS)
    else:
        portid = us.pid
    egress = None
    if us.egress_tun_port is not None:
        vport = dp.ports.get(us.egress_tun_port)
        if vport is not None:
            # dev_fill_metadata_dst(): only tunnel devices can fill it.
            fill = getattr(vport, "fill_metadata_dst", None)
            if fill is not None:
                if fill(skb) == 0:
                    egress = skb.tun_info
            elif getattr(vport, "type", None) in _TUNNEL_VPORT_TYPES \
                    and skb.tun_info is not None:
                egress = skb.tun_info
    return dp.upcall(skb, kx.k, U.OVS_PACKET_CMD_ACTION, portid, userdata=us.userdata,
                     actions=acts if us.actions else None, egress_tun_info=egress,
                     cutlen=skb.cutlen)


# ------------------------------------------------------------- other actions
def _skb_get_hash(skb, kx):
    if not (skb.l4_hash or skb.sw_hash):
        k = current_key(skb, kx)
        skb.hash = FH.packet_hash(k)
        skb.sw_hash = True
        skb.l4_hash = FH.has_l4(k)
    return skb.hash


def _execute_hash(skb, kx, arg):
    alg, basis = arg
    if alg == U.OVS_HASH_ALG_L4:
        h = _skb_get_hash(skb, kx)
    elif alg == U.OVS_HASH_ALG_SYM_L4:
        h = FH.symmetric_hash(current_key(skb, kx))
    else:
        h = 0
    h = FH.jhash_1word(h, basis) or 1
    kx.put(K.M_DP_HASH, K.S_DP_HASH, h)


def _execute_dec_ttl(skb, kx):
    """execute_dec_ttl(): EHOSTUNREACH when the TTL would expire."""
    ly = layers(skb, kx)
    nh = ly.network
    if ly.protocol == K.ETH_P_IPV6:
        if len(skb.data) < nh + 40:
            return errno.ENOMEM
        d = skb.writable()
        if d[nh + 7] <= 1:
            return errno.EHOSTUNREACH
        d[nh + 7] -= 1
        kx.put(K.M_IP_TTL, K.S_IP_TTL, d[nh + 7])
    elif ly.protocol == K.ETH_P_IP:
        if len(skb.data) < nh + 20:
            return errno.ENOMEM
        d = skb.writable()
        ttl = d[nh + 8]
        if ttl <= 1:
            return errno.EHOSTUNREACH
        d[nh + 8] = ttl - 1
        CS.csum_replace2(d, nh + 10, ttl << 8, (ttl - 1) << 8)
        kx.put(K.M_IP_TTL, K.S_IP_TTL, ttl - 1)
    return 0


def _ct_clear(skb, kx):
    """ovs_ct_clear(skb, key)."""
    ct_clear_skb(skb)
    kx.k &= ~(K.M_CT_STATE | K.M_CT_ZONE | K.M_CT_MARK | K.M_CT_LABELS | K.M_CT_ORIG_PROTO)
    return 0


# ------------------------------------------------ nesting and deferral
def _fifo(dp):
    try:
        return dp.deferred
    except AttributeError:
        fifo = dp.deferred = collections.deque()
        return fifo


def _clone_execute(dp, skb, kx, recirc_id, acts, last, clone_flow_key):
    """clone_execute(): run ``acts`` (or recirculate when ``acts`` is None)
    on a clone of the packet, now or deferred."""
    if not last:
        skb = clone_skb(skb)
    if clone_flow_key:
        clone = kx.copy() if dp.exec_level <= OVS_DEFERRED_ACTION_THRESHOLD else None
    else:
        clone = kx
    if clone is not None:
        if acts is None:
            clone.put(K.M_RECIRC_ID, K.S_RECIRC_ID, recirc_id)
            dp.recirc(skb, clone.k)
            return 0
        if not clone_flow_key:
            return _do_execute(dp, skb, clone, acts)
        dp.exec_level += 1
        try:
            return _do_execute(dp, skb, clone, acts)
        finally:
            dp.exec_level -= 1
    # Out of key clones: defer.
    fifo = _fifo(dp)
    if len(fifo) >= DEFERRED_ACTION_FIFO_SIZE - 1:
        dp.drop(skb, U.OVS_DROP_DEFERRED_LIMIT)
        return 0
    da_key = kx.copy()
    if acts is None:
        da_key.put(K.M_RECIRC_ID, K.S_RECIRC_ID, recirc_id)
    fifo.append((skb, da_key, acts))
    return 0


def _process_deferred(dp):
    fifo = _fifo(dp)
    i = 0
    while i < len(fifo):
        skb, kx, acts = fifo[i]
        i += 1
        if acts is None:
            dp.recirc(skb, kx.k)
        else:
            _do_execute(dp, skb, kx, acts)
    fifo.clear()


def _flow_key_update(skb, kx):
    """ovs_flow_key_update(): 0 or key_extract()'s errno."""
    try:
        kx.k = FK.parse(skb.data, kx.k & FK.META_MASK, no_eth(kx), kx.proto)[0]
    except FK.ExtractError as e:
        return e.errno
    kx.valid = True
    return 0


def _execute_recirc(dp, skb, kx, recirc_id, last):
    if not kx.valid:
        err = _flow_key_update(skb, kx)
        if err:
            if last:        # the kernel returns at once: the packet goes no further
                dp.drop(skb, U.OVS_DROP_ACTION_ERROR)
            return err
    return _clone_execute(dp, skb, kx, recirc_id, None, last, True)


def _sample(dp, skb, kx, arg, last):
    prob, acts = arg
    if prob != 0xFFFFFFFF and (not prob or rng.getrandbits(32) > prob):
        if last:
            dp.drop(skb, U.OVS_DROP_LAST_ACTION)
        return 0
    init_probability = skb.probability
    skb.probability = prob              # what a psample in the list reports
    exec_ = last or not _may_change_flow(acts)
    err = _clone_execute(dp, skb, kx, 0, acts, last, not exec_)
    if not last:
        skb.probability = init_probability
    return err


def _clone(dp, skb, kx, acts, last):
    exec_ = last or not _may_change_flow(acts)
    return _clone_execute(dp, skb, kx, 0, acts, last, not exec_)


def _check_pkt_len(dp, skb, kx, arg, last):
    max_len, greater, less_equal = arg
    hw = hwaccel_len(skb, kx)
    if skb.mru:
        length = skb.mru + layers(skb, kx).mac_len - hw
    else:
        length = len(skb.data) - hw
    acts = less_equal if length <= max_len else greater
    exec_ = last or not _may_change_flow(acts)
    return _clone_execute(dp, skb, kx, 0, acts, last, not exec_)


# ----------------------------------------------------------- the interpreter
def _do_execute(dp, skb, kx, acts):
    """do_execute_actions()."""
    n = len(acts)
    i = 0
    for t, arg in acts:
        i += 1
        last = i == n
        err = 0
        if t == A_OUTPUT:
            _do_output(dp, skb, arg, kx)
            if last:
                return 0
            skb.cutlen = 0
            continue
        elif t == A_SET_MASKED or t == A_SET_TO_MASKED:
            err = execute_masked_set(skb, kx, arg)
        elif t == A_USERSPACE:
            _output_userspace(dp, skb, kx, arg, acts)
            skb.cutlen = 0
            if last:
                return 0            # consume_skb(): not a drop
            continue
        elif t == A_TRUNC:
            length = len(skb.data) - hwaccel_len(skb, kx)
            if length > arg:
                skb.cutlen = length - arg
            continue
        elif t == A_HASH:
            _execute_hash(skb, kx, arg)
            continue
        elif t == A_PUSH_VLAN:
            err = push_vlan(skb, kx, arg)
        elif t == A_POP_VLAN:
            err = pop_vlan(skb, kx)
        elif t == A_RECIRC:
            err = _execute_recirc(dp, skb, kx, arg, last)
            if last:
                return err
        elif t == A_SET:
            if isinstance(arg, TunnelInfo):
                skb.tun_info = arg
            else:
                err = errno.EINVAL
        elif t == A_PUSH_MPLS:
            lse, ethertype = arg
            err = push_mpls(skb, kx, lse, ethertype,
                             0 if no_eth(kx) else layers(skb, kx).mac_len)
        elif t == A_ADD_MPLS:
            lse, ethertype, tun_flags = arg
            mac_len = 0
            if tun_flags & U.OVS_MPLS_L3_TUNNEL_FLAG_MASK and not no_eth(kx):
                mac_len = layers(skb, kx).mac_len
            err = push_mpls(skb, kx, lse, ethertype, mac_len)
        elif t == A_POP_MPLS:
            err = pop_mpls(skb, kx, arg)
        elif t == A_SAMPLE:
            err = _sample(dp, skb, kx, arg, last)
            if last:
                return err
        elif t == A_CLONE:
            err = _clone(dp, skb, kx, arg, last)
            if last:
                return err
        elif t == A_CHECK_PKT_LEN:
            err = _check_pkt_len(dp, skb, kx, arg, last)
            if last:
                return err
        elif t == A_DEC_TTL:
            err = _execute_dec_ttl(skb, kx)
            if err == errno.EHOSTUNREACH:
                # dec_ttl_exception_handler()
                if arg:
                    return _clone_execute(dp, skb, kx, 0, arg, True, False)
                dp.drop(skb, U.OVS_DROP_IP_TTL)
                return 0
        elif t == A_PUSH_ETH:
            err = push_eth(skb, kx, arg)
        elif t == A_POP_ETH:
            err = pop_eth(skb, kx)
        elif t == A_CT:
            if not kx.valid:
                err = _flow_key_update(skb, kx)
                if err:
                    dp.drop(skb, U.OVS_DROP_ACTION_ERROR)
                    return err
            err = CT.ct_execute(dp.conntrack, skb, kx, arg, layers(skb, kx).network, dp.defrag)
            if err == errno.EINPROGRESS:
                return 0            # a fragment kept for reassembly: not a drop
        elif t == A_CT_CLEAR:
            err = _ct_clear(skb, kx)
        elif t == A_METER:
            meter = dp.meters.get(arg)           # no such meter: the packet goes on
            if meter is not None and meter.execute(len(skb.data), _now_ms()):
                dp.drop(skb, U.OVS_DROP_METER)
                return 0
        elif t == A_DROP:
            dp.drop(skb, U.OVS_DROP_EXPLICIT_WITH_ERROR if arg else U.OVS_DROP_EXPLICIT)
            return 0
        elif t == A_PSAMPLE:
            PS.execute_psample(dp, skb, kx, arg)
            skb.cutlen = 0
            if last:
                return 0            # consume_skb(): not a drop
            continue
        elif t == A_PUSH_NSH:
            err = NSH.push_nsh(skb, kx, arg[0])
        elif t == A_POP_NSH:
            err = NSH.pop_nsh(skb, kx)
        if err:
            dp.drop(skb, U.OVS_DROP_ACTION_ERROR)
            return err
    dp.drop(skb, U.OVS_DROP_LAST_ACTION)
    return 0


def execute_actions(dp: ActionsDatapath, skb, key, acts):
    """ovs_execute_actions(): run ActionList ``acts`` on ``skb``.

    ``key`` is the packet's (unmasked, valid) flow key.  Returns 0 or a
    positive errno (ENETDOWN when the recursion limit is hit, or the error
    of the action that failed).
    """
    level = dp.exec_level + 1
    dp.exec_level = level
    try:
        if level > OVS_RECURSION_LIMIT:
            dp.drop(skb, U.OVS_DROP_RECURSION_LIMIT)
            return errno.ENETDOWN
        kx = Key(key, True, (key >> K.S_ETH_TYPE) & 0xFFFF)
        err = _do_execute(dp, skb, kx, acts)
        if level == 1:
            _process_deferred(dp)
        return err
    finally:
        dp.exec_level = level - 1
        if level == 1:
            if dp.deferred:
                dp.deferred.clear()
