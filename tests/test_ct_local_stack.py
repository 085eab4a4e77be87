"""Traffic of the host stack through an internal port carries the host's
conntrack state, as on a kernel whose netfilter hooks are on (OVS's
CHECK_CONNTRACK_LOCAL_STACK): what the host sends is tracked in zone 0 and
the key shows it without any ct() action (ovs_ct_fill_key()); what the
datapath delivers to the host is tracked too, so replies make the host's
connection established.  Off when the namespace's conntrack is off, and
for a device moved to another namespace (the skb is scrubbed)."""

import os
import re

from scapy.all import IP, UDP, Ether, Raw

from ovsdp import odp, vports
from ovsdp import uapi as U
from ovsdp.datapath import flow_netlink as FN
from ovsdp.datapath import flow_netlink_actions as FA
from ovsdp.datapath.flow_table import Flow
from ovsdp.datapath.module import Module
from ovsdp.datapath.vport import VportParms

HOST, PEER = "00:00:00:00:00:0a", "00:00:00:00:00:0b"


def setup():
    m = vports.register(Module(real_devices=False))
    dp = m.new_datapath(m.init_net, "lsdp")
    internal = m.new_vport(VportParms("lsdp", U.OVS_VPORT_TYPE_INTERNAL, None, dp, 0,
                                      b"\0\0\0\0"))
    m.add_datapath(dp)
    peer = m.new_vport(VportParms("lsp1", U.OVS_VPORT_TYPE_DUMMY, None, dp, 1, b"\0\0\0\0"))
    ip = "eth(),eth_type(0x0800),ipv4(frag=no)"
    for key, acts in ((f"in_port(0),ct_state(+trk+new),{ip}", "set(skb_mark(1)),1"),
                      (f"in_port(0),ct_state(+trk+est),{ip}", "set(skb_mark(2)),1"),
                      (f"in_port(0),ct_state(-trk),{ip}", "set(skb_mark(3)),1"),
                      (f"in_port(1),{ip}", "0")):
        k, mk = odp.parse_key(key)
        fk, mask = FN.get_match(k, mk)
        acts = FA.copy_actions(odp.parse_actions(acts), fk & mask)
        dp.table.insert(Flow(fk & mask, None, os.urandom(16), acts, FA.put_actions(acts)),
                        mask)
    return m, dp, internal, peer


def frame(src, dst, sport, dport, smac=HOST, dmac=PEER):
    return bytes(Ether(src=smac, dst=dmac) / IP(src=src, dst=dst)
                 / UDP(sport=sport, dport=dport) / Raw(b"x" * 8))


def took(dp):
    """{skb_mark a flow sets: packets} of the flows from the host."""
    out = {}
    for f in dp.table:
        m = re.match(r"set\(skb_mark\((0x)?(\d+)\)\)", odp.format_actions(f.acts_bytes))
        if m:
            out[int(m.group(2))] = f.packets
    return out


def test_the_host_connection_shows_in_the_key_new_then_established():
    _m, dp, internal, peer = setup()
    dp.receive_local([frame("10.0.0.1", "10.0.0.2", 1000, 2000)], internal)
    assert took(dp) == {1: 1, 2: 0, 3: 0}           # +trk+new without a ct() action
    (conn,) = list(dp.conntrack)
    assert conn.zone == 0 and conn.confirmed
    # the peer answers; the datapath delivers it to the host, whose conntrack sees it
    dp.receive_batch([frame("10.0.0.2", "10.0.0.1", 2000, 1000, PEER, HOST)], peer)
    assert len(internal.delivered) == 1 and conn.seen_reply
    dp.receive_local([frame("10.0.0.1", "10.0.0.2", 1000, 2000)], internal)
    assert took(dp) == {1: 1, 2: 1, 3: 0}           # now +trk+est


def test_off_when_the_namespace_has_no_conntrack_or_the_device_moved():
    _m, dp, internal, _peer = setup()
    dp.conntrack.local_stack = False
    dp.receive_local([frame("10.0.0.1", "10.0.0.2", 1000, 2000)], internal)
    assert took(dp) == {1: 0, 2: 0, 3: 1} and len(dp.conntrack) == 0
    _m, dp, internal, _peer = setup()
    internal.in_dp_netns = False
    dp.receive_local([frame("10.0.0.1", "10.0.0.2", 1000, 2000)], internal)
    assert took(dp) == {1: 0, 2: 0, 3: 1} and len(dp.conntrack) == 0
