"""Action execution (ovsdp.datapath.actions) on a fake datapath."""

import collections
import errno
import struct

import pytest

pytest.importorskip("scapy.all")
from scapy.all import (  # noqa: E402
    ICMP,
    IP,
    SCTP,
    TCP,
    UDP,
    Dot1AD,
    Dot1Q,
    Ether,
    ICMPv6EchoRequest,
    IPOption_NOP,
    IPv6,
    IPv6ExtHdrRouting,
    Raw,
)
from scapy.contrib.mpls import MPLS  # noqa: E402

from ovsdp import uapi as U  # noqa: E402
from ovsdp.datapath import actions as A  # noqa: E402
from ovsdp.datapath import checksum as CS  # noqa: E402
from ovsdp.datapath import flow_hash as FH  # noqa: E402
from ovsdp.datapath import flow_key as F  # noqa: E402
from ovsdp.datapath import key_layout as K  # noqa: E402
from ovsdp.datapath.ip_defrag import Defrag  # noqa: E402
from ovsdp.datapath.nf_conntrack import ConnTracker  # noqa: E402
from ovsdp.datapath.skb import Skb, TunnelInfo  # noqa: E402

Userspace = collections.namedtuple("Userspace", "pid userdata egress_tun_port actions")

OUTPUT = U.OVS_ACTION_ATTR_OUTPUT
USERSPACE = U.OVS_ACTION_ATTR_USERSPACE
SET = U.OVS_ACTION_ATTR_SET
SET_MASKED = U.OVS_ACTION_ATTR_SET_MASKED
PUSH_VLAN = U.OVS_ACTION_ATTR_PUSH_VLAN
POP_VLAN = U.OVS_ACTION_ATTR_POP_VLAN
SAMPLE = U.OVS_ACTION_ATTR_SAMPLE
RECIRC = U.OVS_ACTION_ATTR_RECIRC
HASH = U.OVS_ACTION_ATTR_HASH
PUSH_MPLS = U.OVS_ACTION_ATTR_PUSH_MPLS
ADD_MPLS = U.OVS_ACTION_ATTR_ADD_MPLS
POP_MPLS = U.OVS_ACTION_ATTR_POP_MPLS
TRUNC = U.OVS_ACTION_ATTR_TRUNC
PUSH_ETH = U.OVS_ACTION_ATTR_PUSH_ETH
POP_ETH = U.OVS_ACTION_ATTR_POP_ETH
CT = U.OVS_ACTION_ATTR_CT
CT_CLEAR = U.OVS_ACTION_ATTR_CT_CLEAR
METER = U.OVS_ACTION_ATTR_METER
CLONE = U.OVS_ACTION_ATTR_CLONE
CHECK_PKT_LEN = U.OVS_ACTION_ATTR_CHECK_PKT_LEN
DEC_TTL = U.OVS_ACTION_ATTR_DEC_TTL
DROP = U.OVS_ACTION_ATTR_DROP
PSAMPLE = U.OVS_ACTION_ATTR_PSAMPLE

SRC = "00:00:00:00:00:01"
DST = "00:00:00:00:00:02"
IN_PORT = 1


# ---------------------------------------------------------------- fake dp
class FakeVport:
    def __init__(self, port_no, vtype=U.OVS_VPORT_TYPE_NETDEV, mtu=1500):
        self.port_no = port_no
        self.type = vtype
        self.mtu = mtu
        self.sent = []
        self.sent_l3 = []
        self.tunnel = vtype in (U.OVS_VPORT_TYPE_GRE, U.OVS_VPORT_TYPE_VXLAN,
                                U.OVS_VPORT_TYPE_GENEVE)
        self.tun_infos = []

    def output(self, data, l3=False, tun_info=None):
        assert type(data) is bytes
        (self.sent_l3 if l3 else self.sent).append(data)
        if self.tunnel:
            self.tun_infos.append(tun_info)


class LoopVport(FakeVport):
    """A port whose transmissions come straight back into the datapath."""

    def __init__(self, port_no, dp, acts):
        super().__init__(port_no)
        self.dp = dp
        self.acts = acts
        self.results = []

    def output(self, data, l3=False, tun_info=None):
        super().output(data, l3, tun_info)
        key = F.extract(data, K.make(in_port=self.port_no))
        self.results.append(A.execute_actions(self.dp, Skb(data), key, self.acts))


class FakeDP:
    def __init__(self, nports=4):
        self.ports = {i: FakeVport(i) for i in range(1, nports + 1)}
        self.upcalls = []
        self.recircs = []
        self.drops = collections.Counter()
        self.exec_level = 0
        self.deferred = collections.deque()
        self.user_features = 0
        self.flows = {}                 # recirc_id -> ActionList
        self.events = []                # output order across ports
        self.meters = {}
        self.now = 1000.0
        self.conntrack = ConnTracker(clock=lambda: self.now)
        self.defrag = Defrag(clock=lambda: self.now)

    def upcall(self, skb, key, cmd, portid, userdata=None, actions=None,
               egress_tun_info=None, cutlen=0):
        self.upcalls.append(dict(data=bytes(skb.data), key=key, cmd=cmd, portid=portid,
                                 userdata=userdata, actions=actions,
                                 egress_tun_info=egress_tun_info, cutlen=cutlen,
                                 level=self.exec_level))
        return 0

    def recirc(self, skb, key):
        self.recircs.append(dict(data=bytes(skb.data), key=key, level=self.exec_level))
        acts = self.flows.get(K.get(key, "recirc_id"))
        if acts is not None:
            A.execute_actions(self, skb, key, acts)

    def drop(self, skb, reason):
        self.drops[reason] += 1

    def get_upcall_portid(self, cpu):
        return 777

    def out(self, port):
        return self.ports[port].sent


def key_of(data, meta=None):
    return F.extract(bytes(data), K.make(in_port=IN_PORT) if meta is None else meta)


def run(dp, frame, acts, key=None, skb=None):
    data = bytes(frame)
    if skb is None:
        skb = Skb(data)
    if key is None:
        key = key_of(data)
    return A.execute_actions(dp, skb, key, tuple(acts)), skb


def tcp4(**kw):
    return (Ether(src=SRC, dst=DST) / IP(src="10.0.0.1", dst="10.0.0.2", ttl=64, **kw)
            / TCP(sport=1000, dport=80, flags="PA") / Raw(b"hello world"))


def udp4(sport=53, dport=5353, chksum=None, **kw):
    udp = UDP(sport=sport, dport=dport) if chksum is None else UDP(sport=sport, dport=dport,
                                                                  chksum=chksum)
    return Ether(src=SRC, dst=DST) / IP(src="10.0.0.1", dst="10.0.0.2", **kw) / udp / Raw(b"q" * 20)


def csum_fields(pkt):
    out = []
    layer = pkt
    while layer is not None and not isinstance(layer, (Raw,)) and layer.name != "NoPayload":
        for f in ("chksum", "cksum"):
            if f in layer.fields_desc and f in [fd.name for fd in layer.fields_desc]:
                out.append((layer.__class__, f))
        layer = layer.payload if layer.payload else None
    return out


def assert_checksums_valid(frame, udp_zero_ok=True):
    """Every checksum of the frame equals what scapy recomputes."""
    pkt = Ether(frame)
    for cls in (IP, TCP, UDP, ICMP, SCTP, ICMPv6EchoRequest):
        if cls not in pkt:
            continue
        layer = pkt[cls]
        name = "cksum" if cls is ICMPv6EchoRequest else "chksum"
        have = getattr(layer, name)
        if cls is UDP and have == 0 and udp_zero_ok:
            continue
        q = Ether(frame)
        delattr(q[cls], name)
        want = getattr(Ether(bytes(q))[cls], name)
        assert have == want or {have, want} == {0, 0xFFFF}, (cls.__name__, hex(have), hex(want))


def rewritten(frame, mutate):
    """The frame as scapy builds it after ``mutate``, all checksums recomputed
    (except a zero UDP checksum, which stays zero)."""
    p = Ether(frame)
    mutate(p)
    for cls in (IP, TCP, UDP, ICMP, SCTP, ICMPv6EchoRequest):
        if cls in p:
            name = "cksum" if cls is ICMPv6EchoRequest else "chksum"
            if cls is UDP and p[UDP].chksum == 0:
                continue
            delattr(p[cls], name)
    return bytes(p)


# ------------------------------------------------------------------ output
def test_output_last_and_not_last():
    dp = FakeDP()
    frame = bytes(tcp4())
    err, _ = run(dp, frame, [(OUTPUT, 2), (OUTPUT, 3)])
    assert err == 0
    assert dp.out(2) == [frame] and dp.out(3) == [frame]
    assert not dp.drops                     # the last output consumed the packet
    dp = FakeDP()
    run(dp, frame, [(OUTPUT, 2), (SET_MASKED, set_mark(5))])
    assert dp.out(2) == [frame]
    assert dp.drops == {U.OVS_DROP_LAST_ACTION: 1}


def test_output_missing_port_is_counted():
    dp = FakeDP()
    err, _ = run(dp, tcp4(), [(OUTPUT, 99)])
    assert err == 0 and dp.drops == {"no_port": 1}
    assert not any(v.sent for v in dp.ports.values())


def test_empty_list_drops():
    dp = FakeDP()
    assert run(dp, tcp4(), [])[0] == 0
    assert dp.drops == {U.OVS_DROP_LAST_ACTION: 1}


def test_l3_packet_output_flagged():
    dp = FakeDP()
    frame = bytes(tcp4())
    run(dp, frame, [(POP_ETH, None), (OUTPUT, 2)])
    assert dp.ports[2].sent_l3 == [frame[14:]] and dp.out(2) == []


# ------------------------------------------------------------------- trunc
def test_trunc_applies_to_next_output_only():
    dp = FakeDP()
    frame = bytes(tcp4())
    run(dp, frame, [(TRUNC, 40), (OUTPUT, 2), (OUTPUT, 3)])
    assert dp.out(2) == [frame[:40]]
    assert dp.out(3) == [frame]


def test_trunc_longer_than_packet_is_noop():
    dp = FakeDP()
    frame = bytes(tcp4())
    run(dp, frame, [(TRUNC, 1000), (OUTPUT, 2)])
    assert dp.out(2) == [frame]


def test_trunc_does_not_count_outer_vlan_tag():
    dp = FakeDP()
    frame = bytes(Ether(src=SRC, dst=DST) / Dot1Q(vlan=3) / IP() / UDP() / Raw(b"x" * 40))
    run(dp, frame, [(TRUNC, 40), (OUTPUT, 2)])
    assert dp.out(2) == [frame[:44]]        # 40 bytes + the (hwaccel) tag


def test_trunc_to_userspace():
    dp = FakeDP()
    frame = bytes(tcp4())
    run(dp, frame, [(TRUNC, 30), (USERSPACE, Userspace(9, None, None, False)), (OUTPUT, 2)])
    assert dp.upcalls[0]["cutlen"] == len(frame) - 30
    assert dp.out(2) == [frame]             # cutlen reset after the upcall


# --------------------------------------------------------------- userspace
def test_userspace_upcall():
    dp = FakeDP()
    frame = bytes(tcp4())
    acts = ((USERSPACE, Userspace(42, b"cookie", None, True)),)
    err, skb = run(dp, frame, acts)
    assert err == 0 and not dp.drops        # consumed, not dropped
    (u,) = dp.upcalls
    assert u["cmd"] == U.OVS_PACKET_CMD_ACTION and u["portid"] == 42
    assert u["userdata"] == b"cookie" and u["actions"] == acts
    assert u["data"] == frame and u["key"] == key_of(frame)
    assert u["egress_tun_info"] is None


def test_userspace_not_last_then_drop_and_no_actions():
    dp = FakeDP()
    run(dp, tcp4(), [(USERSPACE, Userspace(1, None, None, False)), (HASH, (0, 0))])
    assert dp.upcalls[0]["actions"] is None and dp.upcalls[0]["userdata"] is None
    assert dp.drops == {U.OVS_DROP_LAST_ACTION: 1}


def test_userspace_per_cpu_dispatch():
    dp = FakeDP()
    dp.user_features = U.OVS_DP_F_DISPATCH_UPCALL_PER_CPU
    run(dp, tcp4(), [(USERSPACE, Userspace(5, None, None, False))])
    assert dp.upcalls[0]["portid"] == 777


def test_set_tunnel_and_egress_tun_info():
    dp = FakeDP()
    dp.ports[4] = FakeVport(4, vtype=U.OVS_VPORT_TYPE_VXLAN)
    tun = TunnelInfo(K.make(tun_id=5, tun_ipv4_dst=0x0A000001, tun_ttl=64))
    err, skb = run(dp, tcp4(), [(SET, tun), (USERSPACE, Userspace(1, None, 4, False)),
                                (USERSPACE, Userspace(1, None, 2, False))])
    assert skb.tun_info == tun
    assert dp.upcalls[0]["egress_tun_info"] == tun
    assert dp.upcalls[1]["egress_tun_info"] is None       # not a tunnel port


# ------------------------------------------------------------- set_masked
def set_ipv4(src=0, dst=0, tos=0, ttl=0, msrc=0, mdst=0, mtos=0, mttl=0):
    return (U.OVS_KEY_ATTR_IPV4, U.OVS_KEY_IPV4.pack(src, dst, 0, tos, ttl, 0),
            U.OVS_KEY_IPV4.pack(msrc, mdst, 0, mtos, mttl, 0))


def set_mark(v, m=0xFFFFFFFF):
    return (U.OVS_KEY_ATTR_SKB_MARK, struct.pack("=I", v), struct.pack("=I", m))


def a2i(a):
    return int.from_bytes(bytes(int(x) for x in a.split(".")), "big")


def ip6i(a):
    import ipaddress
    return int(ipaddress.IPv6Address(a))


def last_out(dp, port=2):
    return dp.out(port)[-1]


def recirc_key(dp):
    return dp.recircs[-1]["key"]


@pytest.mark.parametrize("frame", [tcp4(), udp4(), udp4(flags="MF"),
                                   Ether(src=SRC, dst=DST) / IP(src="10.0.0.1", dst="10.0.0.2")
                                   / ICMP() / Raw(b"p" * 8)],
                         ids=["tcp", "udp", "udp-first-frag", "icmp"])
def test_set_ipv4_addresses(frame):
    dp = FakeDP()
    frame = bytes(frame)
    run(dp, frame, [(SET_MASKED, set_ipv4(a2i("192.168.1.1"), a2i("172.16.0.9"),
                                          msrc=0xFFFFFFFF, mdst=0xFFFFFFFF)),
                    (RECIRC, 1), (OUTPUT, 2)])
    out = last_out(dp)

    def mutate(p):
        p[IP].src, p[IP].dst = "192.168.1.1", "172.16.0.9"
    assert out == rewritten(frame, mutate)
    assert_checksums_valid(out)
    assert out[:24] == frame[:24] and len(out) == len(frame)
    k = recirc_key(dp)
    assert K.get(k, "ipv4_src") == a2i("192.168.1.1")
    assert K.get(k, "ipv4_dst") == a2i("172.16.0.9")
    # the key was updated in place, not re-extracted: equal to a fresh parse
    assert k == key_of(out) | K.make(recirc_id=1)


def test_set_ipv4_masked_partial_and_tos_ttl():
    dp = FakeDP()
    frame = bytes(tcp4(tos=0xFC))
    run(dp, frame, [(SET_MASKED, set_ipv4(src=0x00000063, msrc=0x000000FF, tos=0x02, mtos=0x03,
                                          ttl=7, mttl=0xFF)),
                    (RECIRC, 1), (OUTPUT, 2)])
    out = last_out(dp)

    def mutate(p):
        p[IP].src, p[IP].tos, p[IP].ttl = "10.0.0.99", 0xFE, 7
    assert out == rewritten(frame, mutate)
    assert_checksums_valid(out)
    k = recirc_key(dp)
    assert K.get(k, "ip_tos") == 0xFE and K.get(k, "ip_ttl") == 7
    assert k == key_of(out) | K.make(recirc_id=1)


def test_set_ipv4_udp_zero_checksum_stays_zero():
    dp = FakeDP()
    frame = bytes(udp4(chksum=0))
    run(dp, frame, [(SET_MASKED, set_ipv4(dst=a2i("1.2.3.4"), mdst=0xFFFFFFFF)), (OUTPUT, 2)])
    out = last_out(dp)
    assert Ether(out)[UDP].chksum == 0
    assert_checksums_valid(out)


def test_set_ipv4_later_fragment_leaves_l4():
    dp = FakeDP()
    frame = bytes(Ether(src=SRC, dst=DST) / IP(src="10.0.0.1", dst="10.0.0.2", frag=20, proto=6)
                  / Raw(b"\x01" * 40))
    run(dp, frame, [(SET_MASKED, set_ipv4(src=a2i("9.9.9.9"), msrc=0xFFFFFFFF)), (OUTPUT, 2)])
    out = last_out(dp)
    assert out[34:] == frame[34:]
    assert_checksums_valid(out)


def test_set_ipv4_unchanged_value_touches_nothing():
    dp = FakeDP()
    frame = bytes(tcp4())
    skb = Skb(frame)
    skb.hash, skb.sw_hash = 1234, True
    run(dp, frame, [(SET_MASKED, set_ipv4(src=a2i("10.0.0.1"), msrc=0xFFFFFFFF)), (OUTPUT, 2)],
        skb=skb)
    assert last_out(dp) == frame
    assert skb.hash == 1234                   # skb_clear_hash() only on a change


def test_set_ethernet():
    dp = FakeDP()
    frame = bytes(tcp4())
    val = bytes.fromhex("aabbccddeeff") + bytes.fromhex("112233445566")
    mask = bytes.fromhex("ffffffffffff") + bytes.fromhex("ffffff000000")
    run(dp, frame, [(SET_MASKED, (U.OVS_KEY_ATTR_ETHERNET, bytes(a & b for a, b in
                                                                  zip(val, mask, strict=True)),
                                  mask)),
                    (RECIRC, 1), (OUTPUT, 2)])
    out = last_out(dp)
    assert out[:12] == bytes.fromhex("112233000002") + bytes.fromhex("aabbccddeeff")
    assert out[12:] == frame[12:]
    k = recirc_key(dp)
    assert K.get(k, "eth_dst") == 0x112233000002 and K.get(k, "eth_src") == 0xAABBCCDDEEFF


def test_set_priority_and_mark():
    dp = FakeDP()
    skb = Skb(bytes(tcp4()), priority=0xF0, mark=0xFF00)
    run(dp, tcp4(), [(SET_MASKED, (U.OVS_KEY_ATTR_PRIORITY, struct.pack("=I", 0x0A),
                                   struct.pack("=I", 0x0F))),
                     (SET_MASKED, set_mark(0x12, 0xFF)), (RECIRC, 1)], skb=skb)
    assert skb.priority == 0xFA and skb.mark == 0xFF12
    k = recirc_key(dp)
    assert K.get(k, "priority") == 0xFA and K.get(k, "skb_mark") == 0xFF12


def test_set_ct_mark_is_an_error():
    dp = FakeDP()
    err, _ = run(dp, tcp4(), [(SET_MASKED, (U.OVS_KEY_ATTR_CT_MARK, b"\1\0\0\0", b"\xff" * 4)),
                              (OUTPUT, 2)])
    assert err == errno.EINVAL
    assert dp.drops == {U.OVS_DROP_ACTION_ERROR: 1} and not dp.out(2)


def tp(ktype, src, dst, msrc=0xFFFF, mdst=0xFFFF):
    return (SET_MASKED, (ktype, struct.pack("!HH", src, dst), struct.pack("!HH", msrc, mdst)))


@pytest.mark.parametrize("frame,ktype,layer", [
    (tcp4(), U.OVS_KEY_ATTR_TCP, TCP),
    (udp4(), U.OVS_KEY_ATTR_UDP, UDP),
    (Ether(src=SRC, dst=DST) / IPv6(src="::1", dst="::2") / TCP(sport=1, dport=2)
     / Raw(b"abc"), U.OVS_KEY_ATTR_TCP, TCP),
    (Ether(src=SRC, dst=DST) / IPv6(src="::1", dst="::2") / UDP(sport=1, dport=2)
     / Raw(b"abc"), U.OVS_KEY_ATTR_UDP, UDP),
    (Ether(src=SRC, dst=DST) / IP() / SCTP(sport=1, dport=2) / Raw(b"\0" * 16),
     U.OVS_KEY_ATTR_SCTP, SCTP),
    (Ether(src=SRC, dst=DST) / Dot1Q(vlan=9) / IP() / TCP(sport=1, dport=2),
     U.OVS_KEY_ATTR_TCP, TCP),
], ids=["tcp4", "udp4", "tcp6", "udp6", "sctp", "vlan-tcp"])
def test_set_ports(frame, ktype, layer):
    dp = FakeDP()
    frame = bytes(frame)
    run(dp, frame, [tp(ktype, 4321, 0x0100, mdst=0xFF00), (RECIRC, 1), (OUTPUT, 2)])
    out = last_out(dp)

    def mutate(p):
        p[layer].sport = 4321
        p[layer].dport = (p[layer].dport & 0xFF) | 0x0100
    assert out == rewritten(frame, mutate)
    assert_checksums_valid(out)
    k = recirc_key(dp)
    assert K.get(k, "tp_src") == 4321
    assert k == key_of(out) | K.make(recirc_id=1)


def test_set_udp_zero_checksum():
    dp = FakeDP()
    frame = bytes(udp4(chksum=0))
    run(dp, frame, [tp(U.OVS_KEY_ATTR_UDP, 7, 8), (OUTPUT, 2)])
    p = Ether(last_out(dp))
    assert (p[UDP].sport, p[UDP].dport, p[UDP].chksum) == (7, 8, 0)


def test_set_sctp_carries_checksum_error():
    dp = FakeDP()
    frame = bytearray(bytes(Ether(src=SRC, dst=DST) / IP() / SCTP(sport=1, dport=2)
                            / Raw(b"\0" * 16)))
    good = Ether(bytes(frame))[SCTP].chksum
    frame[34 + 8] ^= 0x5A                      # corrupt the checksum
    run(dp, bytes(frame), [tp(U.OVS_KEY_ATTR_SCTP, 10, 20), (OUTPUT, 2)])
    out = last_out(dp)
    q = Ether(out)
    del q[SCTP].chksum
    correct = Ether(bytes(q))[SCTP].chksum
    assert Ether(out)[SCTP].chksum ^ correct == (0x5A << 24)
    assert good != correct


def test_set_ipv6_addresses_tclass_label_hlimit():
    for l4 in (TCP(sport=1, dport=2), UDP(sport=1, dport=2), ICMPv6EchoRequest()):
        dp = FakeDP()
        frame = bytes(Ether(src=SRC, dst=DST)
                      / IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0x21, fl=0xABCDE, hlim=9)
                      / l4 / Raw(b"data"))
        value = U.OVS_KEY_IPV6.pack(ip6i("fd00::5").to_bytes(16, "big"),
                                    ip6i("fd00::6").to_bytes(16, "big"), 0x00012, 0, 0x40, 3, 0)
        mask = U.OVS_KEY_IPV6.pack(b"\xff" * 16, b"\xff" * 16, 0x000FF, 0, 0xF0, 0xFF, 0)
        run(dp, frame, [(SET_MASKED, (U.OVS_KEY_ATTR_IPV6, value, mask)), (RECIRC, 1),
                        (OUTPUT, 2)])
        out = last_out(dp)

        def mutate(p):
            ip = p[IPv6]
            ip.src, ip.dst, ip.tc, ip.fl, ip.hlim = "fd00::5", "fd00::6", 0x41, 0xABC12, 3
        assert out == rewritten(frame, mutate)
        assert_checksums_valid(out)
        k = recirc_key(dp)
        assert k == key_of(out) | K.make(recirc_id=1)


def test_set_ipv6_dst_with_routing_header_keeps_l4_checksum():
    dp = FakeDP()
    frame = bytes(Ether(src=SRC, dst=DST) / IPv6(src="::1", dst="::2")
                  / IPv6ExtHdrRouting(addresses=["::9"], segleft=1) / UDP(sport=1, dport=2)
                  / Raw(b"x"))
    value = U.OVS_KEY_IPV6.pack(b"\0" * 16, ip6i("::3").to_bytes(16, "big"), 0, 0, 0, 0, 0)
    mask = U.OVS_KEY_IPV6.pack(b"\0" * 16, b"\xff" * 16, 0, 0, 0, 0, 0)
    run(dp, frame, [(SET_MASKED, (U.OVS_KEY_ATTR_IPV6, value, mask)), (OUTPUT, 2)])
    out = last_out(dp)
    assert out[-9:] == frame[-9:]               # UDP header and payload untouched
    assert_checksums_valid(out)                 # scapy uses the RH's final address


def test_set_mpls():
    dp = FakeDP()
    frame = bytes(Ether(src=SRC, dst=DST) / MPLS(label=5, s=1, ttl=9) / IP())
    run(dp, frame, [(SET_MASKED, (U.OVS_KEY_ATTR_MPLS, struct.pack("!I", 77 << 12),
                                  struct.pack("!I", 0xFFFFF000))), (RECIRC, 1), (OUTPUT, 2)])
    out = last_out(dp)
    assert out[14:18] == struct.pack("!I", (77 << 12) | 0x100 | 9)
    assert K.get(recirc_key(dp), "mpls_lse0") == (77 << 12) | 0x109


# ------------------------------------------------------------------- VLAN
def test_push_vlan_untagged():
    dp = FakeDP()
    frame = bytes(tcp4())
    run(dp, frame, [(PUSH_VLAN, (0x8100, 0x1000 | (5 << 13) | 100)), (RECIRC, 1), (OUTPUT, 2)])
    assert last_out(dp) == frame[:12] + bytes.fromhex("8100a064") + frame[12:]
    k = recirc_key(dp)
    assert K.get(k, "vlan_tci") == 0xB064 and K.get(k, "vlan_tpid") == 0x8100
    assert k == key_of(last_out(dp)) | K.make(recirc_id=1)


def test_push_vlan_clears_dei_bit():
    dp = FakeDP()
    frame = bytes(tcp4())
    run(dp, frame, [(PUSH_VLAN, (0x88A8, 0x1000 | 7)), (OUTPUT, 2)])
    assert last_out(dp)[12:16] == bytes.fromhex("88a80007")


def test_push_vlan_on_tagged_invalidates_key():
    dp = FakeDP()
    frame = bytes(Ether(src=SRC, dst=DST) / Dot1Q(vlan=10) / IP() / UDP())
    key = key_of(frame)
    dp.flows[1] = ((OUTPUT, 3),)
    run(dp, frame, [(PUSH_VLAN, (0x88A8, 0x1000 | 20)),
                    (USERSPACE, Userspace(1, None, None, False)), (RECIRC, 1)], key=key)
    # the upcall carries the stale key, recirculation the re-extracted one
    assert dp.upcalls[0]["key"] == key
    k = recirc_key(dp)
    assert K.get(k, "vlan_tpid") == 0x88A8 and K.get(k, "vlan_tci") == 0x1014
    assert K.get(k, "cvlan_tpid") == 0x8100 and K.get(k, "cvlan_tci") == 0x100A
    assert dp.out(3) == [frame[:12] + bytes.fromhex("88a80014") + frame[12:]]


def test_pop_vlan():
    dp = FakeDP()
    inner = bytes(tcp4())
    frame = inner[:12] + bytes.fromhex("81000064") + inner[12:]
    run(dp, frame, [(POP_VLAN, None), (RECIRC, 1), (OUTPUT, 2)])
    assert last_out(dp) == inner
    k = recirc_key(dp)
    assert K.get(k, "vlan_tci") == 0 and k == key_of(inner) | K.make(recirc_id=1)


def test_pop_vlan_qinq_moves_inner_tag_out():
    dp = FakeDP()
    frame = bytes(Ether(src=SRC, dst=DST) / Dot1AD(vlan=1) / Dot1Q(vlan=2) / IP() / UDP())
    run(dp, frame, [(POP_VLAN, None), (RECIRC, 1), (OUTPUT, 2)])
    out = last_out(dp)
    assert out == frame[:12] + frame[16:]
    k = recirc_key(dp)
    assert K.get(k, "vlan_tci") == 0x1002 and K.get(k, "cvlan_tci") == 0


def test_pop_vlan_untagged_is_noop():
    dp = FakeDP()
    frame = bytes(tcp4())
    assert run(dp, frame, [(POP_VLAN, None), (OUTPUT, 2)])[0] == 0
    assert last_out(dp) == frame


# ------------------------------------------------------------------- MPLS
def test_push_and_pop_mpls():
    dp = FakeDP()
    frame = bytes(tcp4())
    lse = (100 << 12) | 0x100 | 64
    run(dp, frame, [(PUSH_MPLS, (lse, 0x8847)), (RECIRC, 1), (OUTPUT, 2)])
    out = last_out(dp)
    assert out == frame[:12] + b"\x88\x47" + struct.pack("!I", lse) + frame[14:]
    k = recirc_key(dp)
    assert K.get(k, "mpls_lse0") == lse and K.get(k, "mpls_labels") == 1
    assert K.get(k, "eth_type") == 0x8847
    dp = FakeDP()
    run(dp, out, [(POP_MPLS, 0x0800), (RECIRC, 2), (OUTPUT, 2)])
    assert last_out(dp) == frame
    assert recirc_key(dp) == key_of(frame) | K.make(recirc_id=2)


def test_push_mpls_on_vlan_frame():
    dp = FakeDP()
    frame = bytes(Ether(src=SRC, dst=DST) / Dot1Q(vlan=4) / IP() / UDP())
    run(dp, frame, [(PUSH_MPLS, (0x1FF, 0x8848)), (OUTPUT, 2)])
    assert last_out(dp) == frame[:16] + b"\x88\x48" + struct.pack("!I", 0x1FF) + frame[18:]


def test_pop_mpls_not_mpls_is_noop():
    dp = FakeDP()
    frame = bytes(tcp4())
    run(dp, frame, [(POP_MPLS, 0x86DD), (OUTPUT, 2)])
    assert last_out(dp) == frame


def test_add_mpls_l3_tunnel_flag_keeps_l2():
    dp = FakeDP()
    frame = bytes(tcp4())
    run(dp, frame, [(ADD_MPLS, (0x2101, 0x8847, U.OVS_MPLS_L3_TUNNEL_FLAG_MASK)), (OUTPUT, 2)])
    assert last_out(dp) == frame[:12] + b"\x88\x47" + struct.pack("!I", 0x2101) + frame[14:]


def test_add_mpls_without_flag_makes_l3_packet():
    dp = FakeDP()
    frame = bytes(tcp4())
    lse = (7 << 12) | 0x100 | 1
    dp.flows[1] = ((OUTPUT, 3),)
    run(dp, frame, [(ADD_MPLS, (lse, 0x8847, 0)), (OUTPUT, 2), (RECIRC, 1)])
    assert dp.ports[2].sent_l3 == [struct.pack("!I", lse) + frame]
    k = recirc_key(dp)
    assert K.get(k, "no_eth") == 1 and K.get(k, "eth_type") == 0x8847
    assert K.get(k, "mpls_lse0") == lse and K.get(k, "eth_src") == 0
    # push_eth then gives an Ethernet frame whose type is the MPLS one
    dp = FakeDP()
    run(dp, frame, [(ADD_MPLS, (lse, 0x8847, 0)),
                    (PUSH_ETH, (bytes.fromhex("020000000001"), bytes.fromhex("020000000002"))),
                    (OUTPUT, 2)])
    assert last_out(dp) == (bytes.fromhex("020000000002020000000001") + b"\x88\x47"
                            + struct.pack("!I", lse) + frame)


def test_pop_mpls_teb_restores_ethernet():
    dp = FakeDP()
    inner = bytes(tcp4())
    lse = 0x100 | 5
    pkt = struct.pack("!I", lse) + inner
    key = F.extract_l3(pkt, 0x8847, K.make(in_port=IN_PORT))
    dp.flows[1] = ((OUTPUT, 3),)
    run(dp, pkt, [(POP_MPLS, 0x6558), (RECIRC, 1)], key=key)
    assert dp.out(3) == [inner]
    assert recirc_key(dp) == key_of(inner) | K.make(recirc_id=1)


def test_pop_eth_push_eth_roundtrip():
    dp = FakeDP()
    frame = bytes(tcp4())
    dp.flows[1] = ((OUTPUT, 3),)
    run(dp, frame, [(POP_ETH, None), (RECIRC, 1),
                    (PUSH_ETH, (bytes.fromhex("0a0000000001"), bytes.fromhex("0a0000000002"))),
                    (OUTPUT, 2)])
    assert dp.ports[3].sent_l3 == [frame[14:]]
    k = recirc_key(dp)
    assert K.get(k, "no_eth") == 1 and K.get(k, "ipv4_src") == a2i("10.0.0.1")
    assert last_out(dp) == bytes.fromhex("0a00000000020a0000000001") + frame[12:]


def test_pop_eth_on_vlan_frame_is_an_error():
    dp = FakeDP()
    frame = bytes(Ether(src=SRC, dst=DST) / Dot1Q(vlan=4) / IP() / UDP())
    err, _ = run(dp, frame, [(POP_ETH, None), (OUTPUT, 2)])
    assert err == errno.EPROTO and dp.drops == {U.OVS_DROP_ACTION_ERROR: 1}


def test_push_eth_on_ethernet_is_an_error():
    dp = FakeDP()
    err, _ = run(dp, tcp4(), [(PUSH_ETH, (b"\0" * 6, b"\0" * 6))])
    assert err == errno.EPROTO


# ------------------------------------------------------ sample/clone/etc
def test_sample_always_never_and_random():
    frame = bytes(tcp4())
    dp = FakeDP()
    run(dp, frame, [(SAMPLE, (0xFFFFFFFF, ((OUTPUT, 2),))), (OUTPUT, 3)])
    assert dp.out(2) == [frame] and dp.out(3) == [frame] and not dp.drops
    dp = FakeDP()
    run(dp, frame, [(SAMPLE, (0, ((OUTPUT, 2),))), (OUTPUT, 3)])
    assert dp.out(2) == [] and dp.out(3) == [frame]
    dp = FakeDP()
    run(dp, frame, [(SAMPLE, (0, ((OUTPUT, 2),)))])
    assert dp.drops == {U.OVS_DROP_LAST_ACTION: 1}
    A.rng.seed(12345)
    dp = FakeDP()
    for _ in range(2000):
        run(dp, frame, [(SAMPLE, (0x40000000, ((OUTPUT, 2),)))])
    n = len(dp.out(2))
    assert 400 < n < 600
    # a skipped last sample drops the packet; a taken one outputs it
    assert dp.drops == {U.OVS_DROP_LAST_ACTION: 2000 - n}


def test_sample_modifications_stay_inside():
    dp = FakeDP()
    frame = bytes(tcp4())
    run(dp, frame, [(SAMPLE, (0xFFFFFFFF, ((PUSH_VLAN, (0x8100, 0x1005)), (OUTPUT, 2)))),
                    (OUTPUT, 3)])
    assert dp.out(2) == [frame[:12] + bytes.fromhex("81000005") + frame[12:]]
    assert dp.out(3) == [frame]


def test_clone():
    dp = FakeDP()
    frame = bytes(tcp4())
    run(dp, frame, [(CLONE, ((SET_MASKED, set_ipv4(ttl=1, mttl=0xFF)), (OUTPUT, 2))),
                    (OUTPUT, 3)])
    assert Ether(dp.out(2)[0])[IP].ttl == 1
    assert dp.out(3) == [frame]
    assert not dp.drops
    dp = FakeDP()
    run(dp, frame, [(CLONE, ())])
    assert dp.drops == {U.OVS_DROP_LAST_ACTION: 1}


def test_check_pkt_len():
    frame = bytes(tcp4())
    n = len(frame)
    for limit, port in ((n, 2), (n - 1, 3)):
        dp = FakeDP()
        run(dp, frame, [(CHECK_PKT_LEN, (limit, ((OUTPUT, 3),), ((OUTPUT, 2),)))])
        assert dp.out(port) == [frame] and not dp.drops
    # an outer VLAN tag is not counted (skb->len without the hwaccel tag)
    tagged = frame[:12] + bytes.fromhex("81000001") + frame[12:]
    dp = FakeDP()
    run(dp, tagged, [(CHECK_PKT_LEN, (n, ((OUTPUT, 3),), ((OUTPUT, 2),)))])
    assert dp.out(2) == [tagged]
    # with an MRU the length is MRU + L2 header
    dp = FakeDP()
    skb = Skb(frame)
    skb.mru = 1000
    run(dp, frame, [(CHECK_PKT_LEN, (1013, ((OUTPUT, 3),), ((OUTPUT, 2),)))], skb=skb)
    assert dp.out(3) == [frame]


def test_check_pkt_len_not_last_keeps_packet():
    dp = FakeDP()
    frame = bytes(tcp4())
    run(dp, frame, [(CHECK_PKT_LEN, (10, ((POP_ETH, None), (OUTPUT, 2)), ())), (OUTPUT, 3)])
    assert dp.ports[2].sent_l3 == [frame[14:]]
    assert dp.out(3) == [frame]


# ------------------------------------------------------------ hash/recirc
def test_hash_l4_and_sym():
    dp = FakeDP()
    frame = bytes(tcp4())
    key = key_of(frame)
    skb = Skb(frame)
    run(dp, frame, [(HASH, (U.OVS_HASH_ALG_L4, 0x1234)), (RECIRC, 1)], key=key, skb=skb)
    h = FH.packet_hash(key)
    assert skb.hash == h and skb.sw_hash and skb.l4_hash
    assert K.get(recirc_key(dp), "dp_hash") == FH.jhash_1word(h, 0x1234)
    # a hash already known is used as is
    skb = Skb(frame)
    skb.hash, skb.l4_hash = 0xCAFE, True
    run(dp, frame, [(HASH, (U.OVS_HASH_ALG_L4, 7)), (RECIRC, 1)], skb=skb)
    assert K.get(recirc_key(dp), "dp_hash") == FH.jhash_1word(0xCAFE, 7)
    run(dp, frame, [(HASH, (U.OVS_HASH_ALG_SYM_L4, 7)), (RECIRC, 1)])
    assert K.get(recirc_key(dp), "dp_hash") == FH.jhash_1word(FH.symmetric_hash(key), 7)


def test_hash_zero_becomes_one(monkeypatch):
    dp = FakeDP()
    monkeypatch.setattr(FH, "jhash_1word", lambda a, b: 0)
    run(dp, tcp4(), [(HASH, (0, 0)), (RECIRC, 1)])
    assert K.get(recirc_key(dp), "dp_hash") == 1


def test_recirc_last_and_not_last():
    dp = FakeDP()
    frame = bytes(tcp4())
    dp.flows[5] = ((OUTPUT, 2),)
    err, _ = run(dp, frame, [(RECIRC, 5)])
    assert err == 0 and dp.out(2) == [frame] and not dp.drops
    assert dp.recircs[0]["key"] == key_of(frame) | K.make(recirc_id=5)
    dp = FakeDP()
    dp.flows[5] = ((OUTPUT, 2),)
    run(dp, frame, [(RECIRC, 5), (PUSH_VLAN, (0x8100, 0x1001)), (OUTPUT, 3)])
    assert dp.out(2) == [frame]                       # the recirculated copy is untouched
    assert dp.out(3)[0][12:16] == bytes.fromhex("81000001")


def test_recirc_chain_defers_beyond_threshold():
    dp = FakeDP()
    frame = bytes(tcp4())
    for i in range(1, 8):
        dp.flows[i] = ((RECIRC, i + 1),)
    dp.flows[8] = ((OUTPUT, 2),)
    assert run(dp, frame, [(RECIRC, 1)])[0] == 0
    assert dp.out(2) == [frame]
    levels = [r["level"] for r in dp.recircs]
    # immediate at levels 1..3 (each recirculation is one execute_actions()
    # deeper), then deferred and run from level 1 again
    assert levels[:4] == [1, 2, 3, 1]
    assert dp.exec_level == 0 and not dp.deferred


# ----------------------------------------------------------------- dec_ttl
def test_dec_ttl_ipv4_and_ipv6():
    dp = FakeDP()
    frame = bytes(tcp4())
    run(dp, frame, [(DEC_TTL, ((OUTPUT, 3),)), (RECIRC, 1), (OUTPUT, 2)])
    out = last_out(dp)
    assert dp.out(3) == []

    def mutate(p):
        p[IP].ttl = 63
    assert out == rewritten(frame, mutate)
    assert_checksums_valid(out)
    assert K.get(recirc_key(dp), "ip_ttl") == 63
    dp = FakeDP()
    frame6 = bytes(Ether(src=SRC, dst=DST) / IPv6(hlim=2) / UDP())
    run(dp, frame6, [(DEC_TTL, ()), (OUTPUT, 2)])
    assert Ether(last_out(dp))[IPv6].hlim == 1


def test_dec_ttl_expired():
    frame = bytes(tcp4(ttl=1) if False else (Ether(src=SRC, dst=DST) / IP(ttl=1) / UDP()))
    dp = FakeDP()
    err, _ = run(dp, frame, [(DEC_TTL, ()), (OUTPUT, 2)])
    assert err == 0 and dp.drops == {U.OVS_DROP_IP_TTL: 1} and dp.out(2) == []
    dp = FakeDP()
    run(dp, frame, [(DEC_TTL, ((USERSPACE, Userspace(3, b"ttl", None, False)),)), (OUTPUT, 2)])
    assert dp.upcalls[0]["userdata"] == b"ttl" and dp.out(2) == [] and not dp.drops
    dp = FakeDP()
    run(dp, frame, [(DEC_TTL, ((OUTPUT, 3), (SET_MASKED, set_mark(1)))), (OUTPUT, 2)])
    assert dp.out(3) == [frame] and dp.out(2) == []
    assert dp.drops == {U.OVS_DROP_LAST_ACTION: 1}


def test_dec_ttl_not_ip_and_qinq():
    dp = FakeDP()
    arp = bytes(Ether(src=SRC, dst=DST, type=0x806) / Raw(b"\0" * 28))
    run(dp, arp, [(DEC_TTL, ()), (OUTPUT, 2)])
    assert last_out(dp) == arp
    # skb->protocol of a double-tagged frame is the inner TPID: nothing done
    qinq = bytes(Ether(src=SRC, dst=DST) / Dot1AD() / Dot1Q() / IP(ttl=1) / UDP())
    run(dp, qinq, [(DEC_TTL, ()), (OUTPUT, 2)])
    assert last_out(dp) == qinq
    single = bytes(Ether(src=SRC, dst=DST) / Dot1Q() / IP(ttl=5) / UDP())
    run(dp, single, [(DEC_TTL, ()), (OUTPUT, 2)])
    assert Ether(last_out(dp))[IP].ttl == 4
    assert_checksums_valid(last_out(dp))


# -------------------------------------------------------------- drop/errors
def test_explicit_drop_reasons():
    dp = FakeDP()
    run(dp, tcp4(), [(OUTPUT, 2), (DROP, 0)])
    run(dp, tcp4(), [(DROP, 7)])
    assert dp.drops == {U.OVS_DROP_EXPLICIT: 1, U.OVS_DROP_EXPLICIT_WITH_ERROR: 1}
    assert len(dp.out(2)) == 1


def test_failing_pop_nsh_is_an_action_error():
    """pop_nsh of a frame whose first bytes are no NSH header (tcp4's
    destination MAC gives length 0): nsh_pop()'s EINVAL, then a drop."""
    dp = FakeDP()
    err, _ = run(dp, tcp4(), [(U.OVS_ACTION_ATTR_POP_NSH, None), (OUTPUT, 2)])
    assert err == errno.EINVAL
    assert dp.drops == {U.OVS_DROP_ACTION_ERROR: 1} and dp.out(2) == []


def test_meter_action_drops_over_its_rate():
    """One band of 1 packet/s, burst 2: two packets pass, the rest are dropped."""
    from ovsdp.datapath import meter as MT
    dp = FakeDP()
    run(dp, tcp4(), [(METER, 9), (OUTPUT, 2)])                    # no meter 9: goes on
    dp.meters[9] = MT.Meter(9, False, True, [MT.Band(U.OVS_METER_BAND_TYPE_DROP, 1, 2)], 0)
    for _ in range(5):
        run(dp, tcp4(), [(METER, 9), (OUTPUT, 2)])
    assert len(dp.out(2)) == 1 + 2
    assert dp.drops[U.OVS_DROP_METER] == 3
    m = dp.meters[9]
    assert (m.packets, m.bands[0].packets) == (5, 3)


def test_meter_refills_by_rate_and_kbps_costs_bits():
    from ovsdp.datapath import meter as MT
    m = MT.Meter(1, True, True, [MT.Band(U.OVS_METER_BAND_TYPE_DROP, 8, 1)], 0)   # 8 kbps
    assert not m.execute(125, 0)        # 1000 bits: the whole burst
    assert m.execute(125, 0)            # nothing left
    assert m.execute(125, 100)          # 100 ms x 8 kbps = 800 bits: not enough
    assert not m.execute(100, 200)      # 800 + 800 refilled, capped at 1000: 800 bits pay
    assert m.bands[0].packets == 2


def test_ct_clear():
    dp = FakeDP()
    key = key_of(tcp4()) | K.make(ct_state=0x22, ct_zone=5, ct_mark=9, ct_orig_proto=6)
    skb = Skb(bytes(tcp4()))
    skb.nfct = object()                 # any connection: ct_clear lets go of it
    run(dp, tcp4(), [(CT_CLEAR, None), (RECIRC, 1)], key=key, skb=skb)
    k = recirc_key(dp)
    assert K.get(k, "ct_state") == K.get(k, "ct_zone") == K.get(k, "ct_mark") == 0
    assert K.get(k, "ct_orig_proto") == 0 and skb.nfct is None


# ----------------------------------------------------- recursion / deferral
def test_recursion_limit():
    dp = FakeDP()
    dp.ports[9] = LoopVport(9, dp, ((OUTPUT, 9),))
    err, _ = run(dp, tcp4(), [(OUTPUT, 9)])
    assert err == 0
    assert dp.drops == {U.OVS_DROP_RECURSION_LIMIT: 1}
    # levels 2..5 went through the port; the innermost call (level 6) failed
    assert dp.ports[9].results == [errno.ENETDOWN, 0, 0, 0, 0]
    assert len(dp.ports[9].sent) == 5
    assert dp.exec_level == 0


def test_recursion_limit_direct():
    dp = FakeDP()
    dp.exec_level = A.OVS_RECURSION_LIMIT
    err, _ = run(dp, tcp4(), [(OUTPUT, 2)])
    assert err == errno.ENETDOWN and dp.drops == {U.OVS_DROP_RECURSION_LIMIT: 1}
    assert dp.exec_level == A.OVS_RECURSION_LIMIT


def nested_clones(depth, inner):
    acts = inner
    for _ in range(depth):
        # a key-changing action first and an action after the clone, so that
        # the clone is neither 'exec' nor last: its key is cloned
        acts = ((CLONE, ((SET_MASKED, set_mark(1)),) + acts), (SET_MASKED, set_mark(2)))
    return acts


def test_deferred_clone_beyond_threshold():
    dp = FakeDP()
    frame = bytes(tcp4())
    # four nested key-cloning levels: the fourth is deferred until the outer
    # list is done, so its output comes after the top-level one
    acts = nested_clones(4, ((OUTPUT, 2),)) + ((OUTPUT, 3),)
    run(dp, frame, acts)
    assert dp.out(2) == [frame] and dp.out(3) == [frame]
    assert dp.exec_level == 0 and not dp.deferred


def test_deferred_order():
    dp = FakeDP()
    log = []

    class OrderVport(FakeVport):
        def output(self, data, l3=False, tun_info=None):
            log.append(self.port_no)

    dp.ports[2] = OrderVport(2)
    dp.ports[3] = OrderVport(3)
    run(dp, tcp4(), nested_clones(3, ((OUTPUT, 2),)) + ((OUTPUT, 3),))
    assert log == [2, 3]                    # three levels: immediate
    log.clear()
    run(dp, tcp4(), nested_clones(4, ((OUTPUT, 2),)) + ((OUTPUT, 3),))
    assert log == [3, 2]                    # four levels: deferred


def test_deferred_fifo_limit():
    dp = FakeDP()
    frame = bytes(tcp4())
    clone = (CLONE, ((SET_MASKED, set_mark(1)), (OUTPUT, 2)))
    inner = (clone,) * 12 + ((SET_MASKED, set_mark(3)),)
    run(dp, frame, nested_clones(3, inner))
    # 9 fit the FIFO (DEFERRED_ACTION_FIFO_SIZE - 1), the rest are dropped
    assert len(dp.out(2)) == A.DEFERRED_ACTION_FIFO_SIZE - 1
    assert dp.drops[U.OVS_DROP_DEFERRED_LIMIT] == 12 - (A.DEFERRED_ACTION_FIFO_SIZE - 1)
    assert not dp.deferred and dp.exec_level == 0
    # the next packet starts with an empty FIFO
    dp.drops.clear()
    run(dp, frame, nested_clones(3, inner))
    assert dp.drops[U.OVS_DROP_DEFERRED_LIMIT] == 3


def test_exec_clone_does_not_defer():
    """A clone that is the last action (or cannot change the key) runs with
    the caller's key ('exec'), however deep: nothing is deferred."""
    dp = FakeDP()
    acts = ((OUTPUT, 2),)
    for _ in range(6):
        acts = ((SET_MASKED, set_mark(2)), (CLONE, acts))
    log = []
    orig = dp.ports[2].output
    dp.ports[2].output = lambda data, l3=False: (log.append(len(dp.deferred)), orig(data, l3))
    run(dp, tcp4(), acts)
    assert log == [0] and not dp.drops
    # a clone of only key-preserving actions, not last: exec as well
    dp = FakeDP()
    acts = ((OUTPUT, 2),)
    for _ in range(6):
        acts = ((CLONE, acts), (OUTPUT, 3))
    run(dp, tcp4(), nested_clones(3, acts))
    assert len(dp.out(2)) == 1 and len(dp.out(3)) == 6


def test_state_reset_after_exception():
    dp = FakeDP()

    class Boom(FakeVport):
        def output(self, data, l3=False, tun_info=None):
            raise RuntimeError("boom")

    dp.ports[2] = Boom(2)
    with pytest.raises(RuntimeError):
        run(dp, tcp4(), nested_clones(4, ((OUTPUT, 3),)) + ((OUTPUT, 2),))
    assert dp.exec_level == 0 and not dp.deferred


def test_csum_helpers_match_full_recompute():
    """Incremental updates agree with a full recomputation on random data."""
    import random
    r = random.Random(7)
    for _ in range(300):
        hdr = bytearray(r.randbytes(20))
        hdr[10:12] = b"\0\0"
        s = sum(struct.unpack("!10H", hdr))
        c = ~CS.fold(s) & 0xFFFF
        hdr[10:12] = c.to_bytes(2, "big")
        old = int.from_bytes(hdr[12:16], "big")
        new = r.getrandbits(32)
        CS.csum_replace4(hdr, 10, old, new)
        hdr[12:16] = new.to_bytes(4, "big")
        assert CS.fold(sum(struct.unpack("!10H", hdr))) == 0xFFFF


def test_set_with_ip_options_and_partial_checksum():
    dp = FakeDP()
    frame = bytes(Ether(src=SRC, dst=DST) / IP(src="10.0.0.1", dst="10.0.0.2",
                                               options=[IPOption_NOP()] * 4)
                  / TCP(sport=1, dport=2) / Raw(b"abc"))
    run(dp, frame, [tp(U.OVS_KEY_ATTR_TCP, 99, 2), (OUTPUT, 2)])
    out = last_out(dp)
    assert Ether(out)[TCP].sport == 99
    assert_checksums_valid(out)
    # CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum
    def pseudo(src, dst, length):
        s = sum(struct.unpack("!4H", bytes(int(x) for x in (src + "." + dst).split("."))))
        return CS.fold(s + 6 + length)
    frame = bytearray(bytes(tcp4()))
    tlen = len(frame) - 34
    frame[50:52] = pseudo("10.0.0.1", "10.0.0.2", tlen).to_bytes(2, "big")
    skb = Skb(bytes(frame))
    skb.csum_partial = (34, 16)
    run(dp, bytes(frame), [(SET_MASKED, set_ipv4(src=a2i("192.0.2.7"), msrc=0xFFFFFFFF)),
                           tp(U.OVS_KEY_ATTR_TCP, 5, 6), (OUTPUT, 2)], skb=skb)
    out = last_out(dp)
    assert int.from_bytes(out[50:52], "big") == pseudo("192.0.2.7", "10.0.0.2", tlen)
    assert Ether(out)[TCP].sport == 5


def test_pop_vlan_short_tag_is_an_error():
    dp = FakeDP()
    frame = bytes.fromhex("000000000002000000000001") + b"\x81\x00\x00"
    err, _ = run(dp, frame, [(POP_VLAN, None), (OUTPUT, 2)])
    assert err == errno.ENOMEM and dp.drops == {U.OVS_DROP_ACTION_ERROR: 1}


def test_output_mru_checks():
    dp = FakeDP()
    frame = bytes(Ether(src=SRC, dst=DST, type=0x88CC) / Raw(b"\0" * 200))
    skb = Skb(frame)
    skb.mru = 100
    run(dp, frame, [(OUTPUT, 2)], skb=skb)
    assert dp.drops == {U.OVS_DROP_FRAG_INVALID_PROTO: 1} and not dp.out(2)
    dp = FakeDP()
    big = frame + b"\0" * 9000
    skb = Skb(big)
    skb.mru = 9000                            # above the port MTU: dropped
    run(dp, big, [(OUTPUT, 2)], skb=skb)
    assert not dp.drops and not dp.out(2)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["tcp", "udp", "udp0"]), st.integers(0, 2**32 - 1),
       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
       st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
       st.integers(0, 255), st.integers(0, 255), st.binary(max_size=30))
def test_random_rewrites_keep_checksums(kind, src, msrc, dst, mdst, sport, dport, mport,
                                        tos, ttl, payload):
    l4 = (TCP(sport=11, dport=12) if kind == "tcp"
          else UDP(sport=11, dport=12, chksum=0 if kind == "udp0" else None))
    frame = bytes(Ether(src=SRC, dst=DST) / IP(src="10.1.2.3", dst="10.4.5.6", tos=7, ttl=9)
                  / l4 / Raw(payload))
    ktype = U.OVS_KEY_ATTR_TCP if kind == "tcp" else U.OVS_KEY_ATTR_UDP
    dp = FakeDP()
    run(dp, frame, [(SET_MASKED, set_ipv4(src & msrc, dst & mdst, tos & 0xFC, ttl, msrc, mdst,
                                          0xFC, 0xFF)),
                    tp(ktype, sport & mport, dport, mport, 0xFFFF),
                    (DEC_TTL, ()), (RECIRC, 1), (OUTPUT, 2)])
    if ttl <= 1:
        assert dp.drops == {U.OVS_DROP_IP_TTL: 1}
        return
    out = last_out(dp)
    assert_checksums_valid(out)
    if kind == "udp0":
        assert Ether(out)[UDP].chksum == 0
    assert recirc_key(dp) == key_of(out) | K.make(recirc_id=1)
