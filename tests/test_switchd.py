"""``ovsdp switchd``'s learning switch against an in-memory daemon.

Dummy ports stand for the hosts: frames are injected with the ovsdp_dummy
family and what the datapath sent out of each port is fetched back, so the
NORMAL decisions (flood, learned port, moved MAC), the megaflows switchd
installs and its maintenance (idle flows, MAC aging, ports added later) are
checked by what actually leaves each port.  The namespace tests in
test_netns.py do the same with real interfaces and real traffic.
"""

import time

import pytest
from scapy.layers.l2 import Ether

from ovsdp import uapi as U
from ovsdp.client.dpif import Dpif
from ovsdp.odp import format_flow
from ovsdp.switchd.switch import LearningSwitch

from .test_dpctl import inject, ok

MAC = {i: f"00:00:00:00:00:0{i}" for i in range(1, 7)}


def frame(src, dst, payload=b"hello"):
    return bytes(Ether(src=MAC[src], dst=dst if ":" in dst else MAC[int(dst)], type=0x88b5)
                 / payload)


def fetch(daemon, port):
    return daemon.call(lambda: daemon.module.init_net.vports_by_name[port].fetch())


@pytest.fixture
def sw(daemon):
    ok(daemon, "add-dp", "sw", "p1,type=dummy", "p2,type=dummy", "p3,type=dummy")
    s = LearningSwitch("sw", path=daemon.path, flow_idle=10.0, mac_aging=300.0)
    s.start()
    yield s
    s.close()


def pump(sw, timeout=2.0):
    """Let switchd handle every upcall and notification that is waiting."""
    deadline = time.monotonic() + timeout
    for h in sw.handlers:
        while True:
            u = h.recv_upcall(0.05)
            if u is None:
                break
            sw.n_upcalls += 1
            sw.handle_miss(u)
            if time.monotonic() > deadline:
                break
    sw._drain_events()


def send(daemon, sw, port, f):
    """Inject ``f`` at dummy port ``port``; switchd handles the miss, if any."""
    inject(daemon.path, port, f)
    pump(sw)


def received(daemon, ports=("p1", "p2", "p3")):
    return {p: fetch(daemon, p) for p in ports}


def flows(sw):
    with Dpif(sw.path) as c:
        return [format_flow(f.key, f.mask, f.actions) for f in c.flow_dump("sw")]


def test_unknown_destination_floods_then_learned_goes_direct(daemon, sw):
    f1 = frame(1, "2")
    send(daemon, sw, "p1", f1)
    got = received(daemon)
    assert got == {"p1": [], "p2": [f1], "p3": [f1]}        # unknown: flooded
    f2 = frame(2, "1")
    send(daemon, sw, "p2", f2)
    assert received(daemon) == {"p1": [f2], "p2": [], "p3": []}   # 1 was learned on p1
    # the megaflow of that decision: in_port, both addresses, type; output 1
    assert (f"in_port(2),eth(src={MAC[2]},dst={MAC[1]}),eth_type(0x88b5), "
            "packets:0, bytes:0, used:never, actions:1") in flows(sw)
    # the next frame of that flow hits it: no upcall, same output
    n = sw.n_upcalls
    send(daemon, sw, "p2", f2)
    assert received(daemon) == {"p1": [f2], "p2": [], "p3": []}
    assert sw.n_upcalls == n


def test_broadcast_and_multicast_flood(daemon, sw):
    for dst in ("ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01"):
        f = frame(3, dst)
        send(daemon, sw, "p3", f)
        assert received(daemon) == {"p1": [f], "p2": [f], "p3": []}
    # a multicast source is never learned
    send(daemon, sw, "p1", bytes(Ether(src="01:00:00:00:00:09", dst=MAC[2], type=0x88b5)))
    assert (0, bytes.fromhex("010000000009")) not in sw.macs


def test_moved_mac_revalidates_flows(daemon, sw):
    send(daemon, sw, "p1", frame(1, "ff:ff:ff:ff:ff:ff"))     # 1 on p1
    send(daemon, sw, "p2", frame(2, "1"))                      # flow 2 -> 1 via p1
    received(daemon)
    assert any(line.startswith(f"in_port(2),eth(src={MAC[2]},dst={MAC[1]})")
               for line in flows(sw))
    send(daemon, sw, "p3", frame(1, "ff:ff:ff:ff:ff:ff"))     # 1 moves to p3
    assert sw.macs[(0, bytes.fromhex("000000000001"))][0] == 3
    assert not any(f"dst={MAC[1]}" in line for line in flows(sw)), flows(sw)
    received(daemon)
    f = frame(2, "1", b"after the move")
    send(daemon, sw, "p2", f)
    assert received(daemon) == {"p1": [], "p2": [], "p3": [f]}


def test_idle_flows_expire(daemon, sw):
    sw.flow_idle = 0.3
    send(daemon, sw, "p1", frame(1, "2"))
    assert len(flows(sw)) == 1
    sw.sweep()
    assert len(flows(sw)) == 1                  # young
    time.sleep(0.5)
    sw.sweep()
    assert flows(sw) == [] and sw.flows == {} and sw._born == {}


def test_mac_entries_stay_while_their_flows_carry_traffic(daemon, sw):
    sw.mac_aging = 0.6
    sw.flow_idle = 60
    mac1, mac2 = bytes.fromhex("000000000001"), bytes.fromhex("000000000002")
    send(daemon, sw, "p1", frame(1, "2"))                      # learn 1, flood
    send(daemon, sw, "p2", frame(2, "1"))                      # learn 2, flow 2 -> 1
    send(daemon, sw, "p1", frame(1, "2"))                      # flow 1 -> 2
    n = sw.n_upcalls
    # steady traffic that only hits flows, for longer than the aging time
    for _ in range(8):
        inject(daemon.path, "p1", frame(1, "2"))
        inject(daemon.path, "p2", frame(2, "1"))
        time.sleep(0.1)
        sw.sweep()
    assert sw.n_upcalls == n                    # switchd saw none of it
    assert (0, mac1) in sw.macs and (0, mac2) in sw.macs
    assert len(flows(sw)) == 2
    # silence: the entries age out and the flows decided with them go
    time.sleep(0.8)
    sw.sweep()
    assert sw.macs == {} and flows(sw) == []


def test_port_added_later_is_claimed_and_flooded_to(daemon, sw):
    send(daemon, sw, "p1", frame(1, "ff:ff:ff:ff:ff:ff"))
    received(daemon)
    assert flows(sw)
    ok(daemon, "add-if", "sw", "p4,type=dummy")
    pump(sw)
    with Dpif(sw.path) as c:
        v = c.vport_get("sw", name="p4")
    assert list(v.upcall_pids) == sw.pids              # its misses come to switchd
    assert flows(sw) == []                             # old flood decisions left out p4
    f = frame(1, "ff:ff:ff:ff:ff:ff", b"again")
    send(daemon, sw, "p1", f)
    assert received(daemon, ("p2", "p3", "p4")) == {"p2": [f], "p3": [f], "p4": [f]}
    # and what p4 sends is learned
    send(daemon, sw, "p4", frame(4, "1"))
    assert sw.macs[(0, bytes.fromhex("000000000004"))][0] == v.port_no


def test_deleted_port_is_forgotten(daemon, sw):
    send(daemon, sw, "p3", frame(3, "ff:ff:ff:ff:ff:ff"))
    assert (0, bytes.fromhex("000000000003")) in sw.macs
    ok(daemon, "del-if", "sw", "p3")
    pump(sw)
    assert 3 not in sw.ports and (0, bytes.fromhex("000000000003")) not in sw.macs
    received(daemon, ("p1", "p2"))
    f = frame(1, "3")                           # 3 is unknown again: flooded to p2 only
    send(daemon, sw, "p1", f)
    assert received(daemon, ("p1", "p2")) == {"p1": [], "p2": [f]}


def test_vlan_tagged_frames_learn_per_vlan(daemon, sw):
    from scapy.layers.l2 import Dot1Q
    tagged = bytes(Ether(src=MAC[5], dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=10, type=0x88b5)
                   / b"x")
    send(daemon, sw, "p1", tagged)
    mac5 = bytes.fromhex("000000000005")
    assert (10, mac5) in sw.macs and (0, mac5) not in sw.macs
    received(daemon)
    reply = bytes(Ether(src=MAC[6], dst=MAC[5]) / Dot1Q(vlan=10, type=0x88b5) / b"y")
    send(daemon, sw, "p2", reply)
    assert received(daemon) == {"p1": [reply], "p2": [], "p3": []}
    line = [x for x in flows(sw) if x.startswith("in_port(2)")][0]
    assert f"eth(src={MAC[6]},dst={MAC[5]}),eth_type(0x8100),vlan(vid=10" in line, line
    assert line.endswith("actions:1"), line


def test_upcall_port_ids_are_switchds(daemon, sw):
    with Dpif(sw.path) as c:
        for v in c.vport_dump("sw"):
            assert list(v.upcall_pids) == sw.pids, v.name
    assert U.OVSP_LOCAL in sw.ports
