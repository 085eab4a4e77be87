"""The ovs_packet generic netlink family: EXECUTE (datapath.c ovs_packet_cmd_execute).

MISS and ACTION messages travel the other way (upcalls, datapath.py).
"""

import errno

from ... import uapi as U
from ...netlink import attr as A
from ...netlink.attr import NetlinkError
from ...netlink.genl import Family, Op
from .. import flow_key as FK
from .. import flow_netlink as FN
from .. import flow_netlink_actions as FA
from .. import key_layout as K
from ..actions import execute_actions
from ..conntrack_timeout import set_timeouts
from ..skb import Skb

POLICY = {
    U.OVS_PACKET_ATTR_PACKET: A.Policy(A.UNSPEC, 14),       # at least ETH_HLEN
    U.OVS_PACKET_ATTR_KEY: A.Policy(A.NESTED),
    U.OVS_PACKET_ATTR_ACTIONS: A.Policy(A.NESTED),
    U.OVS_PACKET_ATTR_PROBE: A.Policy(A.FLAG),
    U.OVS_PACKET_ATTR_MRU: A.Policy(A.U16),
    U.OVS_PACKET_ATTR_HASH: A.Policy(A.U64),
    U.OVS_PACKET_ATTR_UPCALL_PID: A.Policy(A.U32),
}


def make_family(module):
    fam = Family(U.OVS_PACKET_FAMILY, U.OVS_PACKET_VERSION, U.OVS_PACKET_ATTR_MAX, POLICY,
                 hdrsize=U.OVS_HEADER_LEN)
    h = PacketCommands(module, fam)
    fam.add_op(Op(U.OVS_PACKET_CMD_EXECUTE, U.GENL_UNS_ADMIN_PERM, doit=h.execute))
    return fam


class PacketCommands:
    def __init__(self, module, family):
        self.module = module
        self.family = family

    def execute(self, req):
        a = req.attrs
        module = self.module
        if (U.OVS_PACKET_ATTR_PACKET not in a or U.OVS_PACKET_ATTR_KEY not in a
                or U.OVS_PACKET_ATTR_ACTIONS not in a):
            raise NetlinkError(errno.EINVAL, "EXECUTE needs PACKET, KEY and ACTIONS")
        log = U.OVS_PACKET_ATTR_PROBE not in a
        data = bytes(a[U.OVS_PACKET_ATTR_PACKET])
        skb = Skb(data)
        if U.OVS_PACKET_ATTR_MRU in a:
            skb.mru = A.get_u16(a[U.OVS_PACKET_ATTR_MRU])
        if U.OVS_PACKET_ATTR_HASH in a:
            h = A.get_u64(a[U.OVS_PACKET_ATTR_HASH])
            skb.hash = h & 0xFFFFFFFF
            skb.sw_hash = bool(h & U.OVS_PACKET_HASH_SW_BIT)
            skb.l4_hash = bool(h & U.OVS_PACKET_HASH_L4_BIT)
        if U.OVS_PACKET_ATTR_UPCALL_PID in a:
            skb.upcall_pid = A.get_u32(a[U.OVS_PACKET_ATTR_UPCALL_PID])
        # ovs_flow_key_extract_userspace(): metadata from the key, the rest
        # from the packet.
        try:
            meta, seen = FN.get_flow_metadata(a[U.OVS_PACKET_ATTR_KEY], log)
            if (meta >> K.S_NO_ETH) & 0xFF:
                eth_type = K.get(meta, "eth_type")
                if eth_type in (K.ETH_P_8021Q, K.ETH_P_8021AD):
                    raise NetlinkError(errno.EINVAL,
                                       "a packet without Ethernet header cannot be VLAN")
                key = FK.extract_l3(data, eth_type, meta)
            else:
                key = FK.extract(data, meta)
            FN.check_userspace_key(seen, key, log)
        except FK.ExtractError as e:
            raise NetlinkError(e.errno, f"packet key extraction failed: {e}") from None
        except NetlinkError as e:
            if e.offset is None:
                e.offset = req.offset(U.OVS_PACKET_ATTR_KEY)
            raise
        try:
            acts = FA.copy_actions(a[U.OVS_PACKET_ATTR_ACTIONS], key, log)
        except NetlinkError as e:
            if e.offset is None:
                e.offset = req.offset(U.OVS_PACKET_ATTR_ACTIONS)
            raise
        set_timeouts(acts, req.net.conntrack, key)      # ovs_ct_copy_action()'s lookup
        skb.priority = K.get(key, "priority")
        skb.mark = K.get(key, "skb_mark")
        dp = module.get_dp(req.net, U.OVS_HEADER.unpack(req.userhdr)[0])
        if dp is None:
            raise NetlinkError(errno.ENODEV, "datapath not found")
        vport = dp.ports.get(K.get(key, "in_port")) or dp.ports.get(U.OVSP_LOCAL)
        if vport is None:
            raise NetlinkError(errno.ENODEV, "no input port")
        skb.input_vport = vport
        err = execute_actions(dp, skb, key, acts)
        if err:
            raise NetlinkError(err, "action execution failed")
