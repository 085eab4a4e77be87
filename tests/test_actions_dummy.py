"""Every kind of action through the real datapath, out of dummy ports.

test_actions.py checks each action's implementation in detail on a stand-in
datapath.  Here each kind runs end to end in a daemon: OVS_PACKET_CMD_EXECUTE
over the control socket with the action list in Open vSwitch's text format,
the frames fetched back from dummy ports, and each compared byte for byte
with what scapy (an independent packet library) builds for the expected
result, checksums recomputed by scapy.
"""

import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from ovsdp import odp
from ovsdp.client.dpif import Dpif
from ovsdp.datapath import flow_key as F
from ovsdp.datapath import flow_netlink_put as FNP
from ovsdp.datapath import key_layout as K

SRC, DST = "00:00:00:00:00:01", "00:00:00:00:00:02"


def tcp4():
    return Ether(src=SRC, dst=DST) / IP(src="10.0.0.1", dst="10.0.0.2", ttl=64) / \
        TCP(sport=1000, dport=80, flags="PA") / Raw(b"hello world, " * 4)


def udp4():
    return Ether(src=SRC, dst=DST) / IP(src="10.0.0.1", dst="10.0.0.2", ttl=64) / \
        UDP(sport=53, dport=5353) / Raw(b"q" * 20)


def udp6():
    return Ether(src=SRC, dst=DST) / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=64) / \
        UDP(sport=53, dport=5353) / Raw(b"v6" * 10)


def vlan4():
    return Ether(src=SRC, dst=DST) / Dot1Q(vlan=12, prio=2) / \
        IP(src="10.0.0.1", dst="10.0.0.2", ttl=64) / UDP(sport=1, dport=2) / Raw(b"t" * 20)


def mpls4():
    return Ether(src=SRC, dst=DST, type=0x8847) / MPLS(label=100, cos=1, s=1, ttl=30) / \
        IP(src="10.0.0.1", dst="10.0.0.2", ttl=64) / UDP(sport=1, dport=2) / Raw(b"m" * 20)


def fresh(p):
    """``p`` rebuilt with lengths and checksums computed by scapy."""
    p = p.copy()
    for layer in (IP, TCP, UDP):
        if layer in p:
            for f in ("len", "chksum"):
                if f in p[layer].fields:
                    del p[layer].fields[f]
    if IPv6 in p:
        p[IPv6].plen = None
    return bytes(p)


def edit(make, change):
    p = make()
    change(p)
    return fresh(p)


def _set(layer, **fields):
    def change(p):
        for k, v in fields.items():
            setattr(p[layer], k, v)
    return change


def push_vlan(p):
    inner = p.payload
    return fresh(Ether(src=p.src, dst=p.dst) / Dot1Q(vlan=5, prio=3) / inner)


def pop_vlan(p):
    return fresh(Ether(src=p.src, dst=p.dst) / p[Dot1Q].payload)


def push_mpls(p):
    return fresh(Ether(src=p.src, dst=p.dst, type=0x8847) / MPLS(label=10, cos=1, s=1, ttl=64)
                 / p.payload)


def pop_mpls(p):
    return fresh(Ether(src=p.src, dst=p.dst, type=0x0800) / p[MPLS].payload)


# (name, frame, action text, {port: [expected frames]})
CASES = [
    ("output", tcp4, "2", {2: [bytes(tcp4())]}),
    ("output twice", udp4, "2,3", {2: [bytes(udp4())], 3: [bytes(udp4())]}),
    ("set eth", tcp4, "set(eth(src=0a:00:00:00:00:0a,dst=0b:00:00:00:00:0b)),2",
     {2: [edit(tcp4, _set(Ether, src="0a:00:00:00:00:0a", dst="0b:00:00:00:00:0b"))]}),
    ("set ipv4", tcp4, "set(ipv4(src=192.168.7.7,ttl=9)),2",
     {2: [edit(tcp4, _set(IP, src="192.168.7.7", ttl=9))]}),
    ("set ipv4 on udp", udp4, "set(ipv4(dst=172.16.0.1,tos=0x20/0xfc)),2",
     {2: [edit(udp4, _set(IP, dst="172.16.0.1", tos=0x20))]}),
    ("set tcp", tcp4, "set(tcp(src=4000,dst=8080)),2",
     {2: [edit(tcp4, _set(TCP, sport=4000, dport=8080))]}),
    ("set udp", udp4, "set(udp(dst=9999)),2", {2: [edit(udp4, _set(UDP, dport=9999))]}),
    ("set ipv6", udp6, "set(ipv6(src=2001:db8::99,hlimit=5)),2",
     {2: [edit(udp6, _set(IPv6, src="2001:db8::99", hlim=5))]}),
    ("push_vlan", udp4, "push_vlan(vid=5,pcp=3),2", {2: [push_vlan(udp4())]}),
    ("pop_vlan", vlan4, "pop_vlan,2", {2: [pop_vlan(vlan4())]}),
    ("push_mpls", udp4, "push_mpls(label=10,tc=1,ttl=64,bos=1,eth_type=0x8847),2",
     {2: [push_mpls(udp4())]}),
    ("pop_mpls", mpls4, "pop_mpls(eth_type=0x800),2", {2: [pop_mpls(mpls4())]}),
    ("set mpls", mpls4, "set(mpls(label=7,tc=2,ttl=9,bos=1)),2",
     {2: [edit(mpls4, _set(MPLS, label=7, cos=2, ttl=9))]}),
    ("dec_ttl", udp4, "dec_ttl(le_1(drop)),2", {2: [edit(udp4, _set(IP, ttl=63))]}),
    ("trunc", tcp4, "trunc(60),2,3", {2: [bytes(tcp4())[:60]], 3: [bytes(tcp4())]}),
    ("clone", udp4, "clone(set(eth(dst=0c:00:00:00:00:0c)),3),2",
     {3: [edit(udp4, _set(Ether, dst="0c:00:00:00:00:0c"))], 2: [bytes(udp4())]}),
    ("sample always", udp4, "sample(sample=100.0%,actions(3)),2",
     {3: [bytes(udp4())], 2: [bytes(udp4())]}),
    ("sample never", udp4, "sample(sample=0.0%,actions(3)),2", {2: [bytes(udp4())]}),
    ("check_pkt_len le", udp4, "check_pkt_len(size=200,gt(3),le(2))", {2: [bytes(udp4())]}),
    ("check_pkt_len gt", tcp4, "check_pkt_len(size=60,gt(3),le(2))", {3: [bytes(tcp4())]}),
    ("hash", udp4, "hash(sym_l4(0)),2", {2: [bytes(udp4())]}),
    ("pop_eth then push_eth", udp4,
     "pop_eth,push_eth(src=0a:00:00:00:00:01,dst=0a:00:00:00:00:02),2",
     {2: [edit(udp4, _set(Ether, src="0a:00:00:00:00:01", dst="0a:00:00:00:00:02"))]}),
    ("drop", udp4, "drop", {}),
    ("empty list", udp4, "", {}),
]


@pytest.fixture
def dp(daemon):
    c = Dpif(daemon.path)
    c.dp_new("adp")
    for i in (1, 2, 3):
        c.vport_new("adp", f"ad{i}", "dummy", port_no=i)
    yield c, daemon
    c.close()


def fetch(daemon, port):
    return daemon.call(lambda: daemon.module.init_net.vports_by_name[port].fetch())


@pytest.mark.parametrize("name,make,actions,expect", CASES, ids=[c[0] for c in CASES])
def test_action_output_bytes(dp, name, make, actions, expect):
    c, daemon = dp
    frame = bytes(make())
    k = F.extract(frame, K.make(in_port=1))
    key_attrs = FNP.put_key(k, k, False)
    c.execute("adp", frame, key_attrs, odp.parse_actions(actions))
    got = {p: fetch(daemon, f"ad{p}") for p in (1, 2, 3)}
    want = {p: expect.get(p, []) for p in (1, 2, 3)}
    assert got == want, "\n".join(f"port {p}: {Ether(f[0]).summary() if f else None}"
                                  for p, f in got.items())
    for frames in got.values():
        for f in frames:
            if len(f) > 60:                     # whole frames: scapy's checksums hold
                assert f == fresh(Ether(f))
