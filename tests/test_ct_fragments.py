"""The CT action on fragments (net/openvswitch/conntrack.c
ovs_ct_handle_fragments(), actions.c ovs_fragment()): fragments are
reassembled before conntrack and kept quietly until the last one, the whole
datagram gets one connection and a key with its L4 fields, the MRU goes
with it to upcalls and output cuts it again to that size.  On the stand-in
datapath of test_actions.py, then end to end in a daemon with dummy ports."""

import errno

import pytest
from scapy.all import (
    IP,
    UDP,
    Dot1Q,
    Ether,
    IPv6,
    IPv6ExtHdrFragment,
    Raw,
    fragment,
    fragment6,
)

from ovsdp import odp
from ovsdp import uapi as U
from ovsdp.client.dpif import Dpif
from ovsdp.datapath import flow_key as FK
from ovsdp.datapath import flow_netlink_put as FNP
from ovsdp.datapath import key_layout as K
from ovsdp.datapath.skb import Skb

from .test_actions import DST, SRC, FakeDP, Userspace, key_of, run
from .test_ct_action import COMMIT, ct, zone

A_RECIRC = U.OVS_ACTION_ATTR_RECIRC
A_OUTPUT = U.OVS_ACTION_ATTR_OUTPUT
TRK, NEW, EST, RPL, INV = 0x20, 0x01, 0x02, 0x08, 0x10
PAYLOAD = bytes(i & 0xFF for i in range(4000))


class MruDP(FakeDP):
    """FakeDP that also records each upcall's and recirculation's skb."""

    def upcall(self, skb, key, cmd, portid, **kw):
        super().upcall(skb, key, cmd, portid, **kw)
        self.upcalls[-1]["mru"] = skb.mru
        return 0

    def recirc(self, skb, key):
        super().recirc(skb, key)
        self.recircs[-1]["mru"] = skb.mru
        self.recircs[-1]["hash"] = skb.hash


def udp4(a="10.0.0.1", b="10.0.0.2", sport=1111, dport=2222, ident=7, l2=None):
    l2 = Ether(src=SRC, dst=DST) if l2 is None else l2
    return l2 / IP(src=a, dst=b, id=ident) / UDP(sport=sport, dport=dport) / Raw(PAYLOAD)


def frames4(pkt, size=1480):
    """Ethernet frames of ``pkt``'s fragments (scapy cuts the IP datagram)."""
    raw = bytes(pkt)
    l2 = raw[:len(raw) - len(bytes(pkt[IP]))]
    return [l2 + bytes(f) for f in fragment(pkt[IP], fragsize=size)]


def udp6(a="fd00::1", b="fd00::2", sport=1111, dport=2222):
    return Ether(src=SRC, dst=DST) / IPv6(src=a, dst=b) / UDP(sport=sport, dport=dport) / \
        Raw(PAYLOAD)


def frames6(pkt, ident=99):
    p = pkt[IPv6].copy()
    p = IPv6(src=p.src, dst=p.dst) / IPv6ExtHdrFragment(id=ident) / p.payload
    return [bytes(Ether(src=SRC, dst=DST) / f) for f in fragment6(p, 1280)]


def state(k):
    return (k >> K.S_CT_STATE) & 0xFF


def through(dp, frames, acts):
    """Each frame through ``acts``; the errors."""
    return [run(dp, f, acts)[0] for f in frames]


def test_fragments_are_kept_until_the_last_then_one_connection():
    dp = MruDP()
    whole = bytes(udp4())
    frames = frames4(udp4())
    assert len(frames) == 3
    errs = through(dp, frames[::-1], [ct(COMMIT, zone(3)), (A_RECIRC, 1)])
    assert errs == [0, 0, 0]
    assert len(dp.recircs) == 1 and not dp.drops        # stolen fragments are no drops
    rec = dp.recircs[0]
    assert rec["data"] == whole and rec["mru"] == 1500 and rec["hash"] == 0
    k = rec["key"]
    assert state(k) == TRK | NEW and K.get(k, "ct_zone") == 3
    assert K.get(k, "ip_frag") == U.OVS_FRAG_TYPE_NONE
    assert (K.get(k, "tp_src"), K.get(k, "tp_dst")) == (1111, 2222)
    assert K.get(k, "ct_orig_tp_dst") == 2222
    assert len(dp.conntrack) == 1 and dp.defrag.ipv4.stats.oks == 1
    # the key is what a fresh extraction of the datagram gives, with ct fields
    plain = key_of(whole)
    meta = FK.META_MASK
    assert k & ~meta == plain & ~meta
    # the reply, fragmented too, is established in the reply direction
    reply = udp4(a="10.0.0.2", b="10.0.0.1", sport=2222, dport=1111, ident=9)
    errs = through(dp, frames4(reply), [ct(zone(3)), (A_RECIRC, 1)])
    assert errs == [0, 0, 0] and state(dp.recircs[-1]["key"]) == TRK | EST | RPL
    assert len(dp.conntrack) == 1


def test_output_cuts_the_datagram_again_to_the_mru():
    dp = MruDP()
    frames = frames4(udp4(), size=1000)                  # 1020-byte IP fragments
    errs = through(dp, frames, [ct(COMMIT), (A_OUTPUT, 2), (A_OUTPUT, 3)])
    assert errs == [0] * len(frames)
    assert dp.out(2) == frames and dp.out(3) == frames   # the same cuts, L2 in front


def test_output_keeps_vlan_tags_and_upcalls_carry_the_mru():
    dp = MruDP()
    pkt = udp4(l2=Ether(src=SRC, dst=DST) / Dot1Q(vlan=10))
    frames = frames4(pkt)
    acts = [ct(COMMIT), (U.OVS_ACTION_ATTR_USERSPACE, _userspace()), (A_OUTPUT, 2)]
    assert through(dp, frames, acts) == [0, 0, 0]
    (up,) = dp.upcalls
    assert up["mru"] == 1500 and up["data"] == bytes(pkt)
    assert dp.out(2) == frames
    assert all(f[12:18] == bytes(pkt)[12:18] for f in dp.out(2))     # tag and type kept


def _userspace():
    return Userspace(55, None, None, False)


def test_a_datagram_under_the_mru_goes_out_whole_and_a_port_below_it_drops():
    dp = MruDP()
    dp.ports[2].mtu = 1400
    frames = frames4(udp4())
    assert through(dp, frames, [ct(COMMIT), (A_OUTPUT, 2), (A_OUTPUT, 3)]) == [0, 0, 0]
    assert dp.out(2) == [] and len(dp.out(3)) == 3       # mru 1500 > mtu 1400: dropped
    small = bytes(Ether(src=SRC, dst=DST) / IP(src="10.0.0.1", dst="10.0.0.2")
                  / UDP(sport=1, dport=2) / Raw(b"s" * 100))
    skb = Skb(small)
    skb.mru = 1500
    err, _ = run(dp, small, [(A_OUTPUT, 3)], skb=skb)
    assert err == 0 and dp.out(3)[-1] == small


def test_ipv6_fragments_through_ct_and_out_again():
    dp = MruDP()
    pkt = udp6()
    frames = frames6(pkt)
    assert len(frames) == 4
    acts = [ct(COMMIT, eth_type=K.ETH_P_IPV6), (A_OUTPUT, 2), (A_RECIRC, 1)]
    assert through(dp, frames, acts) == [0] * 4
    (rec,) = dp.recircs
    assert rec["data"] == bytes(pkt) and rec["mru"] == 1280
    k = rec["key"]
    assert state(k) == TRK | NEW and K.get(k, "ip_proto") == 17
    assert K.get(k, "ip_frag") == 0 and K.get(k, "tp_dst") == 2222
    assert dp.out(2) == frames                           # the same id (99) and cuts
    assert len(dp.conntrack) == 1 and dp.defrag.ipv6.stats.oks == 1


def test_zones_keep_their_fragments_apart():
    dp = MruDP()
    frames = frames4(udp4())
    assert run(dp, frames[0], [ct(zone(1)), (A_RECIRC, 1)])[0] == 0
    assert run(dp, frames[1], [ct(zone(2)), (A_RECIRC, 1)])[0] == 0
    assert run(dp, frames[2], [ct(zone(1)), (A_RECIRC, 1)])[0] == 0
    assert dp.recircs == [] and len(dp.defrag.ipv4) == 2
    assert run(dp, frames[1], [ct(zone(1)), (A_RECIRC, 1)])[0] == 0
    assert len(dp.recircs) == 1 and K.get(dp.recircs[0]["key"], "ct_zone") == 1


def test_a_fragment_that_never_completes_is_consumed_and_counted():
    dp = MruDP()
    frames = frames4(udp4())
    assert run(dp, frames[0], [ct(COMMIT), (A_OUTPUT, 2)])[0] == 0
    assert dp.out(2) == [] and not dp.drops and dp.upcalls == []
    dp.now += 31
    assert dp.defrag.expire() == 1
    st = dp.defrag.ipv4.stats
    assert (st.timeouts, st.fails, st.oks) == (1, 1, 0) and len(dp.conntrack) == 0


def test_an_overlapping_fragment_is_an_action_error():
    dp = MruDP()
    frames = frames4(udp4())
    run(dp, frames[0], [ct(COMMIT), (A_OUTPUT, 2)])
    bad = bytes(Ether(src=SRC, dst=DST) / IP(src="10.0.0.1", dst="10.0.0.2", id=7, proto=17,
                                            frag=100, flags=1) / Raw(b"z" * 800))
    err, _ = run(dp, bad, [ct(COMMIT), (A_OUTPUT, 2)])
    assert err == errno.EINVAL and dp.drops[U.OVS_DROP_ACTION_ERROR] == 1
    assert dp.defrag.ipv4.stats.overlaps == 1 and dp.out(2) == []


def test_without_defrag_state_a_fragment_is_refused():
    from ovsdp.datapath import conntrack as CT
    from ovsdp.datapath.actions_headers import Key
    frame = frames4(udp4())[0]
    k = key_of(frame)
    _, info = ct(COMMIT)
    err = CT.ct_execute(FakeDP().conntrack, Skb(frame), Key(k), info, 14)
    assert err == errno.EOPNOTSUPP


# ------------------------------------------------- end to end, dummy ports
@pytest.fixture
def fdp(daemon):
    c = Dpif(daemon.path)
    c.dp_new("fdp", upcall_pid=c.portid)
    for i in (1, 2):
        c.vport_new("fdp", f"fd{i}", "dummy", port_no=i, upcall_pids=[c.portid])
    yield c, daemon
    c.close()


def _inject(daemon, port, frame):
    daemon.call(lambda: daemon.module.init_net.vports_by_name[port].inject(frame))


def _fetch(daemon, port):
    return daemon.call(lambda: daemon.module.init_net.vports_by_name[port].fetch())


def test_daemon_upcall_carries_the_mru_and_execute_refragments(fdp):
    c, daemon = fdp
    from ovsdp.cli import dpctl
    sink = type("Sink", (), {"write": lambda self, t: None, "flush": lambda self: None})()
    rc = dpctl.run(["add-flow", "fdp",
                    "recirc_id(0),in_port(1),eth(),eth_type(0x0800),ipv4()",
                    "ct(commit,zone=4),recirc(0x1)"], socket=daemon.path, stdout=sink,
                   stderr=sink)
    assert rc == 0
    pkt = udp4()
    frames = frames4(pkt)
    for f in frames:
        _inject(daemon, "fd1", f)
    up = c.recv_upcall(timeout=5)
    assert up is not None and up.cmd == U.OVS_PACKET_CMD_MISS
    assert up.mru == 1500 and bytes(up.packet) == bytes(pkt)       # one upcall: the datagram
    assert c.recv_upcall(timeout=0.2) is None
    # the handler sends it back with its MRU: out of port 2 in fragments again
    k = FK.extract(bytes(pkt), K.make(in_port=1))
    c.execute("fdp", bytes(pkt), FNP.put_key(k, k, False), odp.parse_actions("2"), mru=1500)
    assert _fetch(daemon, "fd2") == frames
    stats = daemon.call(lambda: daemon.module.init_net.defrag.ipv4.stats.as_dict())
    assert stats["ReasmOKs"] == 1 and stats["ReasmReqds"] == 3


def test_the_daemon_expires_fragment_queues_on_its_timer(daemon):
    """The daemon's conntrack timer also drops queues whose time is up."""
    import time

    from ovsdp.server import daemon as D

    def setup():
        d = daemon.module.init_net.defrag
        assert d.ip_defrag(frames4(udp4())[0][14:], 1)[0] == errno.EINPROGRESS
        for q in d.ipv4.queues.values():
            q.deadline = -1                      # long expired
        return d

    d = daemon.call(setup)
    deadline = time.monotonic() + 3 * D.CT_GC_INTERVAL + 2
    while daemon.call(d.__len__) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.call(d.__len__) == 0
    assert daemon.call(lambda: d.ipv4.stats.timeouts) == 1
