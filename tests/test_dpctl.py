"""``ovsdp dpctl``: every command through the CLI function against a running daemon.

Expected texts follow Open vSwitch 3.1's lib/dpctl.c and utilities/ovs-dpctl.c
(messages say "ovsdp dpctl:" where OVS says "ovs-dpctl:").
"""

import errno
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import time

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from ovsdp import uapi as U
from ovsdp.cli import dpctl as D
from ovsdp.client.dpif import Dpif
from ovsdp.netlink.attr import iter_attrs, nla, nla_string
from ovsdp.odp import parse_key

from .conftest import ROOT, subprocess_daemon

P = "ovsdp dpctl: "


# ------------------------------------------------------------------ helpers
def dpctl(daemon, *args):
    """Run one command line; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    rc = D.run(list(args), socket=daemon.path, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def ok(daemon, *args):
    rc, out, err = dpctl(daemon, *args)
    assert rc == 0, (args, out, err)
    return out


def fails(daemon, *args):
    rc, out, err = dpctl(daemon, *args)
    assert rc == 1, (args, out, err)
    return err


def inject(path, port, frame):
    """Hand ``frame`` to dummy port ``port`` with the ovsdp_dummy family's INJECT."""
    with Dpif(path) as c:
        c.sock.genl_request(U.OVSDP_DUMMY_FAMILY, U.OVSDP_DUMMY_CMD_INJECT,
                            U.OVS_HEADER.pack(0)
                            + nla_string(U.OVSDP_DUMMY_ATTR_PORT_NAME, port)
                            + nla(U.OVSDP_DUMMY_ATTR_PACKET, frame))


def tcp_frame(size=100, flags="S", dport=80):
    base = Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02") / \
        IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1000, dport=dport, flags=flags)
    return bytes(base / (b"x" * (size - len(base))))


TCP_FLOW = ("in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0800),"
            "ipv4(src=10.0.0.1,dst=10.0.0.2/255.255.255.0,proto=6,frag=no),tcp(dst=80),"
            "tcp_flags(0/0)")
TCP_FLOW_TEXT = ("in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0800),"
                 "ipv4(src=10.0.0.1,dst=10.0.0.0/255.255.255.0,proto=6,frag=no),tcp(dst=80)")
L2_FLOW = "in_port(2),eth(),eth_type(0x1234)"
STATS0 = "packets:0, bytes:0, used:never"
USED = r"used:\d+\.\d{3}s"


@pytest.fixture
def dp0(daemon):
    """Datapath dp0 with dummy ports p1 (1) and p2 (2)."""
    ok(daemon, "add-dp", "dp0", "p1,type=dummy", "p2,type=dummy")
    return daemon


def show_ports(ports):
    return "".join(f"  port {line}\n" for line in ports)


def show_head(name="dp0", hit=0, missed=0, lost=0, flows=0, mask_hit=0, masks=0, cache_hit=0,
              cache_size=256):
    pkts = hit + missed
    text = (f"system@{name}:\n  lookups: hit:{hit} missed:{missed} lost:{lost}\n"
            f"  flows: {flows}\n"
            f"  masks: hit:{mask_hit} total:{masks} hit/pkt:"
            f"{(mask_hit / pkts if pkts else 0.0):.2f}\n")
    if cache_hit:
        text += f"  cache: hit:{cache_hit} hit-rate:{cache_hit / pkts * 100:.2f}%\n"
    return text + f"  caches:\n    masks-cache: size:{cache_size}\n"


# ------------------------------------------------------- datapath commands
def test_no_datapaths(daemon):
    assert ok(daemon, "dump-dps") == ""
    assert ok(daemon, "show") == ""
    assert fails(daemon, "dump-flows") == (P + "no datapaths exist\n"
                                           + P + "datapath not found (Invalid argument)\n")
    assert fails(daemon, "del-flows").endswith(P + "datapath not found (Invalid argument)\n")


def test_add_dp_show_del_dp(daemon):
    ok(daemon, "add-dp", "dp0")
    ok(daemon, "add-dp", "system@dp1", "q1,type=dummy")
    assert ok(daemon, "dump-dps") == "system@dp0\nsystem@dp1\n"
    assert ok(daemon, "show", "dp1") == show_head("dp1") + show_ports(
        ["0: dp1 (internal)", "1: q1 (dummy)"])
    assert ok(daemon, "show") == (show_head("dp0") + show_ports(["0: dp0 (internal)"])
                                  + show_head("dp1")
                                  + show_ports(["0: dp1 (internal)", "1: q1 (dummy)"]))
    ok(daemon, "del-dp", "dp1")
    assert ok(daemon, "dump-dps") == "system@dp0\n"
    err = fails(daemon, "del-dp", "dp1")
    assert err.startswith(P + "opening datapath (No such device)\n")


def test_add_dp_errors(daemon):
    ok(daemon, "add-dp", "dp0")
    assert fails(daemon, "add-dp", "dp0").startswith(P + "add_dp (File exists)\n")
    assert fails(daemon, "add-dp", "netdev@dpx") == \
        P + "add_dp (Address family not supported by protocol)\n"
    err = fails(daemon, "show", "dp0", "nodp")
    assert err.startswith(P + "opening datapath nodp failed (No such device)\n")


def test_multiple_datapaths_need_a_name(daemon):
    ok(daemon, "add-dp", "dp0")
    ok(daemon, "add-dp", "dp1")
    assert fails(daemon, "dump-flows") == (P + "multiple datapaths, specify one\n"
                                           + P + "datapath not found (Invalid argument)\n")
    assert ok(daemon, "dump-flows", "dp1") == ""
    assert ok(daemon, "dump-flows", "system@dp1") == ""
    # The maximum number of arguments and no such datapath: OVS's "datapath not found".
    assert fails(daemon, "dump-flows", "dpx") == P + "datapath not found (Invalid argument)\n"
    assert fails(daemon, "add-flow", "dpx", L2_FLOW, "1") == \
        P + "datapath not found (Invalid argument)\n"


# ------------------------------------------------------------ port commands
def tunnel_options(dpif, name):
    v = dpif.vport_get(name=name)
    return {t & U.NLA_TYPE_MASK: p for t, p, _ in iter_attrs(v.options or b"")}


def test_add_if_types_and_options(dp0, dpif):
    ok(dp0, "add-if", "dp0", "vx0,type=vxlan", "vx1,type=vxlan,dst_port=4790,exts=gbp",
       "gn0,type=geneve", "gn1,type=geneve,dst_port=7000", "gre0,type=gre",
       "in0,type=internal,port_no=20", "d9,type=dummy,port_no=9")
    assert ok(dp0, "show", "dp0") == show_head() + show_ports([
        "0: dp0 (internal)", "1: p1 (dummy)", "2: p2 (dummy)",
        "3: vx0 (vxlan: dst_port=4789)", "4: vx1 (vxlan: dst_port=4790, exts=gbp)",
        "5: gn0 (geneve: dst_port=6081)", "6: gn1 (geneve: dst_port=7000)", "7: gre0 (gre)",
        "9: d9 (dummy)", "20: in0 (internal)"])
    # OVS's default ports reach the datapath as OVS_TUNNEL_ATTR_DST_PORT.
    assert tunnel_options(dpif, "vx0")[U.OVS_TUNNEL_ATTR_DST_PORT] == struct.pack("=H", 4789)
    assert tunnel_options(dpif, "gn0")[U.OVS_TUNNEL_ATTR_DST_PORT] == struct.pack("=H", 6081)
    vx1 = tunnel_options(dpif, "vx1")
    assert vx1[U.OVS_TUNNEL_ATTR_DST_PORT] == struct.pack("=H", 4790)
    assert U.OVS_TUNNEL_ATTR_EXTENSION in vx1
    assert dpif.vport_get(name="gre0").options is None
    assert dpif.vport_get(name="d9").type == U.OVS_VPORT_TYPE_DUMMY
    assert dpif.vport_get(name="in0").port_no == 20


def test_add_if_system_type_is_default(dp0, dpif):
    # An AF_PACKET netdev port needs a real device: the error is the datapath's.
    err = fails(dp0, "add-if", "dp0", "nosuchdev0")
    assert err.startswith(P + "adding nosuchdev0 to dp0 failed (")
    err = fails(dp0, "add-if", "dp0", "nosuchdev0,type=netdev")
    assert err.startswith(P + "adding nosuchdev0 to dp0 failed (")


def test_add_if_errors(dp0):
    assert fails(dp0, "add-if", "dp0", "vx9,type=vxlan,remote_ip=1.1.1.1") == (
        P + "vx9: unknown vxlan argument 'remote_ip'\n"
        + P + "vx9: could not set configuration (Invalid argument)\n")
    assert fails(dp0, "add-if", "dp0", "g9,type=gre,dst_port=1") == (
        P + "g9: unknown gre argument 'dst_port'\n"
        + P + "g9: could not set configuration (Invalid argument)\n")
    assert fails(dp0, "add-if", "dp0", "d8,type=dummy,foo=bar") == (
        P + "d8: unknown dummy argument 'foo'\n"
        + P + "d8: could not set configuration (Invalid argument)\n")
    assert fails(dp0, "add-if", "dp0", "vx9,type=vxlan,exts=gpe").startswith(
        P + "vx9: unknown extension 'gpe'\n")
    assert fails(dp0, "add-if", "dp0", "x9,type=bogus") == \
        P + "x9: failed to open network device (Address family not supported by protocol)\n"
    assert fails(dp0, "add-if", "dp0", ",,") == P + ",, is not a valid network device name\n"
    assert fails(dp0, "add-if", "dp0", "p1,type=dummy").startswith(
        P + "adding p1 to dp0 failed (File exists)\n")
    assert fails(dp0, "add-if", "dp0", "d7,type=dummy,port_no=1").startswith(
        P + "adding d7 to dp0 failed (Device or resource busy)\n")
    assert fails(dp0, "add-if", "nodp", "d7,type=dummy").startswith(
        P + "opening datapath (No such device)\n")
    # One bad interface does not stop the others; the status reports the failure.
    rc, _, _ = dpctl(dp0, "add-if", "dp0", "x9,type=bogus", "d7,type=dummy")
    assert rc == 1
    assert "7: d7 (dummy)" not in ok(dp0, "show")
    assert "3: d7 (dummy)" in ok(dp0, "show")


def test_add_if_duplicate_option_is_reported(dp0):
    rc, _, err = dpctl(dp0, "add-if", "dp0", "vx0,type=vxlan,dst_port=5000,dst_port=6000")
    assert rc == 0 and err == P + 'duplicate "dst_port" option\n'
    assert "vx0 (vxlan: dst_port=5000)" in ok(dp0, "show")


def test_set_if(dp0):
    ok(dp0, "add-if", "dp0", "vx0,type=vxlan")
    # Same type, same port number, same options: nothing to change.
    ok(dp0, "set-if", "dp0", "vx0,type=vxlan,port_no=3,dst_port=4789")
    ok(dp0, "set-if", "dp0", "p1,type=dummy")
    ok(dp0, "set-if", "dp0", "vx0,dst_port=")          # back to the default: no change
    assert fails(dp0, "set-if", "dp0", "vx0,type=geneve") == \
        P + "vx0: can't change type from vxlan to geneve\n"
    assert fails(dp0, "set-if", "dp0", "vx0,port_no=9") == \
        P + "vx0: can't change port number from 3 to 9\n"
    assert fails(dp0, "set-if", "dp0", "p1,type=internal") == \
        P + "p1: can't change type from dummy to internal\n"
    # The kernel's tunnel vports cannot change options once created.
    assert fails(dp0, "set-if", "dp0", "vx0,dst_port=4790").startswith(
        P + "Error updating configuration (Operation not supported)\n")
    assert fails(dp0, "set-if", "dp0", "vx0,foo=1") == (
        P + "vx0: unknown vxlan argument 'foo'\n"
        + P + "vx0: could not set configuration (Invalid argument)\n")
    assert fails(dp0, "set-if", "dp0", "nope,type=dummy").startswith(
        P + "nope: failed to query port in dp0 (No such device)\n")
    assert "vx0 (vxlan: dst_port=4789)" in ok(dp0, "show")


def test_del_if(dp0):
    ok(dp0, "add-if", "dp0", "d3,type=dummy", "d4,type=dummy")
    ok(dp0, "del-if", "dp0", "d3", "4")
    assert ok(dp0, "show") == show_head() + show_ports(
        ["0: dp0 (internal)", "1: p1 (dummy)", "2: p2 (dummy)"])
    assert fails(dp0, "del-if", "dp0", "nosuch") == P + "no port named nosuch\n"
    assert fails(dp0, "del-if", "dp0", "7").startswith(
        P + "deleting port 7 from dp0 failed (No such device)\n")
    assert fails(dp0, "del-if", "dp0", "0").startswith(
        P + "deleting port 0 from dp0 failed (Invalid argument)\n")
    assert fails(dp0, "del-if", "dpx", "p1").startswith(P + "opening datapath (No such device)")


# -------------------------------------------------------- show with traffic
def test_show_statistics_after_traffic(dp0, dpif):
    ok(dp0, "add-flow", TCP_FLOW, "2")
    for _ in range(20):
        inject(dp0.path, "p1", tcp_frame(100))
    inject(dp0.path, "p2", tcp_frame(100))          # no flow: a miss, lost (no listener)
    info = dpif.dp_get("dp0")
    assert (info.n_hit, info.n_missed, info.n_lost, info.n_flows) == (20, 1, 1, 1)
    head = show_head(hit=20, missed=1, lost=1, flows=1, mask_hit=info.n_mask_hit, masks=1,
                     cache_hit=info.n_cache_hit)
    zero = ("    RX packets:0 errors:0 dropped:0 overruns:0 frame:0\n"
            "    TX packets:0 errors:0 dropped:0 aborted:0 carrier:0\n"
            "    collisions:0\n"
            "    RX bytes:0  TX bytes:0\n")
    expect = (head
              + "  port 0: dp0 (internal)\n" + zero
              + "  port 1: p1 (dummy)\n"
              + "    RX packets:20 errors:0 dropped:0 overruns:0 frame:0\n"
              + "    TX packets:0 errors:0 dropped:0 aborted:0 carrier:0\n"
              + "    collisions:0\n"
              + "    RX bytes:2000 (2.0 KiB)  TX bytes:0\n"
              + "  port 2: p2 (dummy)\n"
              + "    RX packets:1 errors:0 dropped:0 overruns:0 frame:0\n"
              + "    TX packets:20 errors:0 dropped:0 aborted:0 carrier:0\n"
              + "    collisions:0\n"
              + "    RX bytes:100  TX bytes:2000 (2.0 KiB)\n")
    assert ok(dp0, "show", "-s") == expect
    assert ok(dp0, "--statistics", "show", "dp0") == expect
    assert ok(dp0, "show") == head + show_ports(
        ["0: dp0 (internal)", "1: p1 (dummy)", "2: p2 (dummy)"])
    if info.n_cache_hit:
        assert f"  cache: hit:{info.n_cache_hit} hit-rate:" in expect


def test_show_hit_rates_and_sizes():
    s = D.DpctlSession()
    out = io.StringIO()
    s.stdout = out
    from ovsdp.client.dpif import DatapathInfo
    info = DatapathInfo(1, "x", n_hit=2, n_missed=1, n_mask_hit=4, n_masks=2, n_cache_hit=1,
                        masks_cache_size=0)
    s.ports = lambda dp: []
    s.show_dpif(info)
    assert out.getvalue() == ("system@x:\n  lookups: hit:2 missed:1 lost:0\n  flows: 0\n"
                              "  masks: hit:4 total:2 hit/pkt:1.33\n"
                              "  cache: hit:1 hit-rate:33.33%\n"
                              "  caches:\n    masks-cache: size:0\n")
    assert D.human_size(1023) == ""
    assert D.human_size(1024) == " (1.0 KiB)"
    assert D.human_size(3 * 1024 ** 2 + 1) == " (3.0 MiB)"
    assert D.human_size(5 * 1024 ** 3 // 2) == " (2.5 GiB)"
    assert D.human_size(1024 ** 4) == " (1.0 TiB)"


# -------------------------------------------------------------- dump-flows
def test_dump_flows_lines(dp0):
    ok(dp0, "add-flow", TCP_FLOW, "2")
    ok(dp0, "add-flow", L2_FLOW, "1,2")
    assert ok(dp0, "dump-flows") == (f"{TCP_FLOW_TEXT}, {STATS0}, actions:2\n"
                                     f"{L2_FLOW}, {STATS0}, actions:1,2\n")
    for _ in range(3):
        inject(dp0.path, "p1", tcp_frame(100, flags="S"))
    inject(dp0.path, "p1", tcp_frame(100, flags="A"))
    inject(dp0.path, "p1", tcp_frame(100, flags="FPU"))
    time.sleep(0.02)
    lines = ok(dp0, "dump-flows", "dp0").splitlines()
    assert re.fullmatch(re.escape(TCP_FLOW_TEXT) + r", packets:5, bytes:500, " + USED
                        + r", flags:SFPU\., actions:2", lines[0]), lines[0]
    used = float(re.search(r"used:(\d+\.\d+)s", lines[0]).group(1))
    assert 0.0 <= used < 10
    assert lines[1] == f"{L2_FLOW}, {STATS0}, actions:1,2"
    # --names (and -m, which implies it) print port names.
    names = ok(dp0, "dump-flows", "--names").splitlines()
    assert names[0].startswith("in_port(p1),eth(") and names[0].endswith(", actions:p2")
    assert names[1] == f"in_port(p2),eth(),eth_type(0x1234), {STATS0}, actions:p1,p2"
    assert ok(dp0, "dump-flows", "-m", "--no-names").splitlines()[1].endswith(
        ", dp:ovs, actions:1,2")


def test_dump_flows_more(dp0, dpif):
    ok(dp0, "add-flow", L2_FLOW, "1")
    (f,) = dpif.flow_dump("dp0")
    line = ok(dp0, "dump-flows", "-m")
    assert line == (f"{D.format_ufid(f.ufid)}, recirc_id(0/0),dp_hash(0/0),skb_priority(0/0),"
                    "in_port(p2),skb_mark(0/0),ct_state(0/0),ct_zone(0/0),ct_mark(0/0),"
                    "ct_label(0/0),eth(src=00:00:00:00:00:00/00:00:00:00:00:00,"
                    "dst=00:00:00:00:00:00/00:00:00:00:00:00),eth_type(0x1234), "
                    f"{STATS0}, dp:ovs, actions:p1\n")
    # A flow without a UFID (added by another program) prints without one.
    key, mask = parse_key("in_port(1),eth(),eth_type(0x1235)")
    dpif.flow_new("dp0", key, b"", mask=mask)
    assert ok(dp0, "dump-flows", "-m").splitlines()[1].startswith("recirc_id(0/0),")


def test_dump_flows_ipv6_exthdrs(dp0):
    # The datapath reports IPV6_EXTHDRS (type 32) with every IPv6 flow, as
    # Linux does; wildcarded it is left out, matched it prints as key32(...).
    v6 = "in_port(1),eth(),eth_type(0x86dd),ipv6(frag=no)"
    ok(dp0, "add-flow", v6, "2")
    assert ok(dp0, "dump-flows") == f"{v6}, {STATS0}, actions:2\n"
    assert "key32(00 00/00 00)" in ok(dp0, "dump-flows", "-m")
    ok(dp0, "del-flows")
    ok(dp0, "add-flow", v6 + ",key32(00 40/00 40)", "2")
    assert ok(dp0, "dump-flows") == f"{v6},key32(00 40/00 40), {STATS0}, actions:2\n"


def test_dump_flows_type(dp0):
    ok(dp0, "add-flow", L2_FLOW, "1")
    assert ok(dp0, "dump-flows", "type=ovs") == f"{L2_FLOW}, {STATS0}, actions:1\n"
    assert ok(dp0, "dump-flows", "type=all", "dp0") == f"{L2_FLOW}, {STATS0}, actions:1\n"
    assert ok(dp0, "dump-flows", "type=offloaded") == ""
    assert fails(dp0, "dump-flows", "type=bogus") == \
        P + "Failed to parse type (bogus) (Invalid argument)\n"


# ----------------------------------------------------------------- filter=
FILTER_FLOWS = {
    "A": (TCP_FLOW, "2"),
    "B": ("in_port(2),eth(),eth_type(0x0806),arp(sip=10.0.0.9,op=1)", "1"),
    "C": ("in_port(1),eth(),eth_type(0x86dd),ipv6(src=2001:db8::1,proto=17,frag=no),"
          "udp(dst=53)", "2"),
    "D": ("in_port(2),eth(),eth_type(0x8100),vlan(vid=10,pcp=0),encap(eth_type(0x0800),"
          "ipv4(proto=1,frag=no),icmp(type=8))", "1"),
    "E": ("in_port(1),eth(),eth_type(0x1234)", "2"),
    "F": ("in_port(2),eth(src=00:00:00:00:00:aa,dst=00:00:00:00:00:bb),eth_type(0x0800),"
          "ipv4(tos=0x20/0xfc,proto=17,frag=no),udp(src=68,dst=67)", "1"),
}
FILTERS = [
    ("ip", "ADF"),
    ("tcp", "A"),
    ("tcp,tp_dst=80", "A"),
    ("tcp,tcp_dst=81", ""),
    ("ip,nw_src=10.0.0.1", "ADF"),
    ("ip,nw_dst=10.0.0.77", "ADF"),
    ("ip,nw_dst=10.0.1.1", "DF"),
    ("ip,nw_dst=10.0.0.0/24", "ADF"),
    ("ip,nw_dst=10.1.0.0/16", "DF"),
    ("ip,nw_proto=17", "F"),
    ("ip,nw_tos=0x20", "ADF"),
    ("ip,nw_tos=0x40", "AD"),
    ("arp", "B"),
    ("arp,arp_spa=10.0.0.9", "B"),
    ("arp,arp_spa=10.0.0.8", ""),
    ("arp,arp_op=1", "B"),
    ("arp,arp_op=2", ""),
    ("ipv6", "C"),
    ("ipv6,ipv6_src=2001:db8::1", "C"),
    ("ipv6,ipv6_src=2001:db8::2", ""),
    ("udp6,udp_dst=53", "C"),
    ("udp,udp_dst=67", "F"),
    ("udp,udp_src=69", ""),
    ("in_port=1", "ACE"),
    ("in_port=p2", "BDF"),
    ("dl_vlan=10", "D"),
    ("dl_vlan=11", ""),
    ("dl_vlan=0xffff", "ABCEF"),
    ("icmp,icmp_type=8", "D"),
    ("icmp,icmp_type=0", ""),
    ("dl_type=0x1234", "E"),
    ("eth_type=0x0806", "B"),
    ("dl_src=00:00:00:00:00:01", "ABCDE"),
    ("dl_dst=00:00:00:00:00:bb", "BCDEF"),
    ("in_port=1,dl_type=0x0800", "A"),
    ("", "ABCDEF"),
]


@pytest.fixture
def filter_dp(dp0):
    for key, acts in FILTER_FLOWS.values():
        ok(dp0, "add-flow", key, acts)
    lines = ok(dp0, "dump-flows").splitlines()
    assert len(lines) == len(FILTER_FLOWS)
    return dp0, dict(zip(FILTER_FLOWS, lines, strict=True))


@pytest.mark.parametrize("flt,expect", FILTERS)
def test_dump_flows_filter(filter_dp, flt, expect):
    daemon, line_of = filter_dp
    out = ok(daemon, "dump-flows", f"filter={flt}")
    assert out == "".join(line_of[k] + "\n" for k in FILTER_FLOWS if k in expect)


def test_dump_flows_filter_with_dp_and_options(filter_dp):
    daemon, line_of = filter_dp
    out = ok(daemon, "dump-flows", "--names", "dp0", "filter=arp")
    assert out == line_of["B"].replace("in_port(2)", "in_port(p2)").replace(
        "actions:1", "actions:p1") + "\n"


@pytest.mark.parametrize("flt,msg", [
    ("udp,tp_src=53", "udp,tp_src=53: prerequisites not met for setting tp_src"),
    ("nw_src=1.2.3.4", "nw_src=1.2.3.4: prerequisites not met for setting nw_src"),
    ("foo=1", "foo=1: unknown field foo"),
    ("ip,ip", "ip,ip: Ethernet type set multiple times"),
    ("tcp,nw_proto=6", "tcp,nw_proto=6: field nw_proto set multiple times"),
    ("ip,nw_src=abc", "ip,nw_src=abc: bad value for nw_src (abc: invalid IP address)"),
    ("ip,nw_proto=256",
     "ip,nw_proto=256: bad value for nw_proto (256: value too large for 1-byte field nw_proto)"),
    ("ip,nw_proto=x", "ip,nw_proto=x: bad value for nw_proto (x: bad syntax for nw_proto value)"),
    ("in_port=p9", "in_port=p9: bad value for in_port (p9: invalid or unknown port for in_port)"),
    ("dl_src=zz", "dl_src=zz: bad value for dl_src (zz: invalid Ethernet address)"),
])
def test_dump_flows_filter_errors(dp0, flt, msg):
    assert fails(dp0, "dump-flows", f"filter={flt}") == P + f"Failed to parse filter ({msg})\n"


# ---------------------------------------------------------------- add-flow
def test_add_flow_errors(dp0):
    ok(dp0, "add-flow", L2_FLOW, "1")
    assert fails(dp0, "add-flow", L2_FLOW, "1") == (P + "updating flow table (File exists)\n"
                                                    + P + "extended ack: flow already exists\n")
    assert fails(dp0, "add-flow", "in_port(1),bogus(1)", "1") == (
        P + "parsing flow key (syntax error at bogus(1) (unknown key attribute 'bogus')) "
            "(Invalid argument)\n")
    assert fails(dp0, "add-flow", L2_FLOW.replace("0x1234", "0x1236"), "frob") == (
        P + "parsing actions (syntax error at frob (unknown action 'frob')) (Invalid argument)\n")
    assert fails(dp0, "add-flow", "ufid:1234", "1") == P + "parsing flow ufid (Invalid argument)\n"
    # The datapath validates: eth_type 0x0800 needs an ipv4() key.
    err = fails(dp0, "add-flow", "in_port(1),eth(),eth_type(0x0800)", "1")
    assert err.startswith(P + "updating flow table (Invalid argument)\n")
    assert fails(dp0, "add-flow", "in_port(1)") == \
        P + "'add-flow' command requires at least 2 arguments\n"
    assert fails(dp0, "add-flow", "dp0", "a", "b", "c") == \
        P + "'add-flow' command takes at most 3 arguments\n"


def test_add_flow_port_names_and_statistics(dp0, dpif):
    out = ok(dp0, "add-flow", "-s", "in_port(p1),eth(),eth_type(0x1234)", "p2")
    assert out == STATS0 + "\n"
    assert ok(dp0, "dump-flows") == f"in_port(1),eth(),eth_type(0x1234), {STATS0}, actions:2\n"


def test_add_flow_ufid(dp0, dpif):
    u = "ufid:11223344-5566-7788-99aa-bbccddeeff00"
    ok(dp0, "add-flow", f"{u},{L2_FLOW}", "1")
    (f,) = dpif.flow_dump("dp0")
    assert D.format_ufid(f.ufid) == u
    assert ok(dp0, "dump-flows", "-m").startswith(u + ", ")
    # Without a UFID, one is derived from the flow: stable, UUID version 4.
    ok(dp0, "add-flow", "in_port(1),eth(),eth_type(0x1235)", "2")
    k, m = parse_key("in_port(1),eth(),eth_type(0x1235)")
    f2 = [x for x in dpif.flow_dump("dp0") if x.ufid != f.ufid][0]
    assert f2.ufid == D.flow_ufid(k, m)
    assert re.fullmatch(r"ufid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        D.format_ufid(f2.ufid))


def test_ufid_text_roundtrip_and_canonical_hash():
    u = "ufid:01020304-0506-0708-090a-0b0c0d0e0f10"
    n, raw = D.ufid_from_string(u + ",in_port(1)")
    assert n == len(u) and D.format_ufid(raw) == u
    # OVS prints the ovs_u128 as host-order 32-bit words.
    assert raw == struct.pack("=4I", 0x01020304, 0x05060708, 0x090A0B0C, 0x0D0E0F10)
    assert D.ufid_from_string("in_port(1)") == (0, None)
    with pytest.raises(ValueError):
        D.ufid_from_string("ufid:0102")
    # The same flow written differently gets the same UFID.
    a = parse_key("in_port(1),eth(),eth_type(0x0800),ipv4(src=10.0.0.5/255.255.255.0,proto=6,"
                  "frag=no),tcp(dst=80),tcp_flags(0/0)")
    b = parse_key("eth_type(0x0800),in_port(1),ipv4(frag=no,proto=6,src=10.0.0.0/255.255.255.0),"
                  "tcp(dst=80)")
    assert D.flow_ufid(*a) == D.flow_ufid(*b)
    c = parse_key("in_port(1),eth(),eth_type(0x0800),ipv4(src=10.0.0.5/255.255.255.128,proto=6,"
                  "frag=no),tcp(dst=80)")
    assert D.flow_ufid(*a) != D.flow_ufid(*c)


# ---------------------------------------------------------------- mod-flow
def test_mod_flow(dp0):
    ok(dp0, "add-flow", TCP_FLOW, "2")
    for _ in range(4):
        inject(dp0.path, "p1", tcp_frame(100))
    # -s prints the statistics the flow had; the actions change, the stats stay.
    out = ok(dp0, "mod-flow", "-s", TCP_FLOW, "1,2")
    assert re.fullmatch(r"packets:4, bytes:400, " + USED + r", flags:S\n", out)
    assert re.search(r"packets:4, bytes:400, .*actions:1,2$", ok(dp0, "dump-flows"))
    # --clear zeroes them.
    out = ok(dp0, "mod-flow", "--clear", "-s", TCP_FLOW, "2")
    assert out.startswith("packets:4, bytes:400, ")
    assert ok(dp0, "dump-flows") == f"{TCP_FLOW_TEXT}, {STATS0}, actions:2\n"
    # The same flow in another spelling (the dump's) is the same flow.
    ok(dp0, "mod-flow", TCP_FLOW_TEXT + ",tcp_flags(0/0)", "1")
    assert ok(dp0, "dump-flows").endswith("actions:1\n")


def test_mod_flow_may_create(dp0):
    assert fails(dp0, "mod-flow", L2_FLOW, "1") == (
        P + "updating flow table (No such file or directory)\n"
        + P + "extended ack: flow not found\n")
    assert ok(dp0, "mod-flow", "--may-create", "-s", L2_FLOW, "1") == STATS0 + "\n"
    assert ok(dp0, "dump-flows") == f"{L2_FLOW}, {STATS0}, actions:1\n"
    assert ok(dp0, "mod-flow", "--may-create", L2_FLOW, "2") == ""
    assert ok(dp0, "dump-flows") == f"{L2_FLOW}, {STATS0}, actions:2\n"


def test_mod_flow_of_a_flow_without_ufid(dp0, dpif):
    key, mask = parse_key(L2_FLOW)
    dpif.flow_new("dp0", key, b"", mask=mask)       # key-identified, no UFID
    ok(dp0, "mod-flow", L2_FLOW, "1")
    ok(dp0, "mod-flow", "--may-create", L2_FLOW, "2")
    assert ok(dp0, "dump-flows") == f"{L2_FLOW}, {STATS0}, actions:2\n"
    ok(dp0, "del-flow", L2_FLOW)
    assert ok(dp0, "dump-flows") == ""


# -------------------------------------------------------- get-flow, del-flow
def test_get_flow(dp0, dpif):
    ok(dp0, "add-flow", L2_FLOW, "1")
    (f,) = dpif.flow_dump("dp0")
    u = D.format_ufid(f.ufid)
    assert ok(dp0, "get-flow", u) == f"{L2_FLOW}, {STATS0}, actions:1\n"
    assert ok(dp0, "get-flow", "dp0", u) == f"{L2_FLOW}, {STATS0}, actions:1\n"
    assert ok(dp0, "get-flow", "-m", u) == ok(dp0, "dump-flows", "-m")
    missing = "ufid:00000000-0000-4000-8000-000000000000"
    assert fails(dp0, "get-flow", missing).startswith(
        P + "getting flow (No such file or directory)\n")
    assert fails(dp0, "get-flow", "in_port(1)") == P + "parsing flow ufid (Invalid argument)\n"


def test_del_flow(dp0, dpif):
    ok(dp0, "add-flow", TCP_FLOW, "2")
    ok(dp0, "add-flow", L2_FLOW, "1")
    for _ in range(2):
        inject(dp0.path, "p1", tcp_frame(100))
    out = ok(dp0, "del-flow", "-s", TCP_FLOW_TEXT + ",tcp_flags(0/0)")
    assert re.fullmatch(r"packets:2, bytes:200, " + USED + r", flags:S\n", out)
    (f,) = dpif.flow_dump("dp0")
    ok(dp0, "del-flow", "dp0", D.format_ufid(f.ufid))
    assert ok(dp0, "dump-flows") == ""
    rc, out, err = dpctl(dp0, "del-flow", L2_FLOW)
    assert rc == 1
    assert err == (P + "deleting flow (No such file or directory)\n"
                   + P + "extended ack: flow not found\n")
    assert out == "Perhaps you need to specify a UFID?\n"
    rc, out, err = dpctl(dp0, "del-flow", D.format_ufid(f.ufid))
    assert rc == 1 and out == ""
    assert fails(dp0, "del-flow", "in_port(1),nope()") == (
        P + "syntax error at nope() (unknown key attribute 'nope') (Invalid argument)\n")


def test_del_flows_flushes(dp0):
    ok(dp0, "add-flow", TCP_FLOW, "2")
    ok(dp0, "add-flow", L2_FLOW, "1")
    ok(dp0, "del-flows")
    assert ok(dp0, "dump-flows") == ""
    ok(dp0, "add-flow", L2_FLOW, "1")
    ok(dp0, "del-flows", "dp0")
    assert ok(dp0, "dump-flows") == ""


# ------------------------------------------------------------ flow files
def test_add_mod_del_flows_from_files(dp0, tmp_path):
    add = tmp_path / "add.txt"
    add.write_text(
        "# flows for dp0\n"
        "\n"
        f"{L2_FLOW} 1\n"
        f"   add {TCP_FLOW} 2   # a comment\n"
        "in_port(1),eth(),eth_type(0x1235)\t1,2\n"
        "   \t\n"
        "in_port(1),eth(),eth_type(0x1236)\n"            # no actions: skipped
        "delete in_port(1),eth(),eth_type(0x1235)\n")
    rc, out, err = dpctl(dp0, "add-flows", str(add))
    assert rc == 1 and out == ""
    assert err == P + "Failed parsing line number 7, skipped!\n"
    assert ok(dp0, "dump-flows") == (f"{L2_FLOW}, {STATS0}, actions:1\n"
                                     f"{TCP_FLOW_TEXT}, {STATS0}, actions:2\n")
    mod = tmp_path / "mod.txt"
    mod.write_text(f"{L2_FLOW} 2\nmodify {TCP_FLOW} 1\nadd in_port(1),eth(),eth_type(0x1237) 2\n")
    ok(dp0, "mod-flows", "dp0", str(mod))
    assert ok(dp0, "dump-flows") == (f"{L2_FLOW}, {STATS0}, actions:2\n"
                                     f"{TCP_FLOW_TEXT}, {STATS0}, actions:1\n"
                                     f"in_port(1),eth(),eth_type(0x1237), {STATS0}, actions:2\n")
    dele = tmp_path / "del.txt"
    dele.write_text(f"{L2_FLOW}\n# keep the tcp flow\ndel in_port(1),eth(),eth_type(0x1237)\n")
    ok(dp0, "del-flows", str(dele))
    assert ok(dp0, "dump-flows") == f"{TCP_FLOW_TEXT}, {STATS0}, actions:1\n"
    # In a del file a line with actions is an error; a missing flow is the datapath's error.
    dele.write_text(f"{TCP_FLOW} 1\n{L2_FLOW}\n")
    rc, out, err = dpctl(dp0, "del-flows", "dp0", str(dele))
    assert rc == 1
    assert err.startswith(P + "Failed parsing line number 1, skipped!\n"
                          + P + "deleting flow (No such file or directory)\n")
    assert out == "Perhaps you need to specify a UFID?\n"
    assert fails(dp0, "add-flows", str(tmp_path / "nope.txt")) == (
        P + f'Opening file "{tmp_path / "nope.txt"}" failed (No such file or directory)\n')


def test_add_flows_from_stdin(dp0, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{L2_FLOW} 1\n"))
    ok(dp0, "add-flows", "-")
    assert ok(dp0, "dump-flows") == f"{L2_FLOW}, {STATS0}, actions:1\n"


def test_parse_flow_line():
    A, Del, M = D.DPCTL_FLOWS_ADD, D.DPCTL_FLOWS_DEL, D.DPCTL_FLOWS_MOD
    assert D.parse_flow_line(A, "in_port(1) 2") == (A, "in_port(1)", "2")
    assert D.parse_flow_line(M, "  delete in_port(1)") == (Del, "in_port(1)", None)
    assert D.parse_flow_line(A, "mod in_port(1)  1, 2 ") == (M, "in_port(1)", "1, 2")
    assert D.parse_flow_line(Del, "add") == (A, None, None)
    assert D.parse_flow_line(A, "") == (A, None, None)


# ---------------------------------------------------------- global options
def test_option_errors_and_help(daemon):
    assert fails(daemon, "--frob", "show") == P + "unrecognized option '--frob'\n"
    assert fails(daemon, "-x", "show") == P + "invalid option -- 'x'\n"
    assert fails(daemon, "--more=1", "show") == P + "option '--more' doesn't allow an argument\n"
    assert fails(daemon, "-t", "0", "show") == P + "value 0 on -t or --timeout is invalid\n"
    assert fails(daemon, "show", "-t") == P + "option requires an argument -- 't'\n"
    assert fails(daemon, "--n", "show").startswith(P + "option '--n' is ambiguous")
    assert fails(daemon) == P + "missing command name; use --help for help\n"
    assert fails(daemon, "frob") == P + "unknown command 'frob'; use --help for help\n"
    assert fails(daemon, "del-dp") == P + "'del-dp' command requires at least 1 arguments\n"
    assert fails(daemon, "dump-dps", "x") == P + "'dump-dps' command takes at most 0 arguments\n"
    assert ok(daemon, "--help").startswith("ovsdp dpctl: Open vSwitch datapath management")
    assert ok(daemon, "help") == ok(daemon, "-h")
    assert ok(daemon, "--version").startswith("ovsdp dpctl (ovsdp) ")
    listing = ok(daemon, "list-commands")
    assert listing.startswith("The available commands are:\n")
    assert "  dump-flows              [-m] [--names] [dp] [filter=..] [type=..]\n" in listing
    # Long options may be abbreviated, options may follow the command, -t takes seconds.
    ok(daemon, "--stat", "show", "--timeout=5", "-t5", "--more")


def test_read_only(dp0):
    assert fails(dp0, "--read-only", "add-flow", L2_FLOW, "1") == \
        P + "'add-flow' command does not work in read only mode\n"
    ok(dp0, "--read-only", "dump-flows")
    ok(dp0, "--read-only", "show")


def test_no_daemon(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    rc = D.run(["show"], socket=str(tmp_path / "none.sock"), stdout=out, stderr=err)
    assert rc == 1
    assert err.getvalue() == P + f'cannot connect to "{tmp_path / "none.sock"}" ' \
                                 "(No such file or directory)\n"


# -------------------------------------------------------------- library use
def test_session_api(dp0):
    with D.DpctlSession(socket=dp0.path) as s:
        assert s.output("dump-dps") == "system@dp0\n"
        assert s("add-flow", L2_FLOW, "1") == 0
        assert s.output("dump-flows") == f"{L2_FLOW}, {STATS0}, actions:1\n"
        with pytest.raises(D.DpctlError) as e:
            s.output("add-flow", L2_FLOW, "1")
        assert e.value.status == 1 and e.value.errno == errno.EEXIST
        assert "updating flow table (File exists)" in e.value.stderr
        assert s.run(["del-flows"]) == 0
    assert D.check_output(["dump-flows"], socket=dp0.path) == ""
    with Dpif(dp0.path) as c:
        assert D.check_output(["show"], dpif=c).startswith("system@dp0:\n")


def test_main_uses_socket_option_and_environment(dp0, monkeypatch, capsys):
    from ovsdp.cli import main as cli
    assert cli.main(["dpctl", "--socket", dp0.path, "dump-dps"]) == 0
    assert capsys.readouterr().out == "system@dp0\n"
    monkeypatch.setenv("OVSDP_SOCKET", dp0.path)
    assert cli.main(["dpctl", "dump-dps"]) == 0
    assert capsys.readouterr().out == "system@dp0\n"
    assert cli.main(["dpctl", "del-dp", "nope"]) == 1
    assert capsys.readouterr().err.startswith(P + "opening datapath (No such device)\n")


# ------------------------------------------------------- separate processes
def run_cli(args, env=None, prefix=()):
    env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run([*prefix, sys.executable, "-m", "ovsdp", "dpctl", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_process_against_subprocess_daemon(sock_path):
    with subprocess_daemon(sock_path, "--no-devices"):
        env = {"OVSDP_SOCKET": sock_path}
        r = run_cli(["add-dp", "dp9", "e1,type=dummy", "e2,type=dummy"], env)
        assert r.returncode == 0, r.stderr
        r = run_cli(["add-flow", L2_FLOW, "1"], env)
        assert r.returncode == 0, r.stderr
        r = run_cli(["dump-flows"], env)
        assert r.stdout == f"{L2_FLOW}, {STATS0}, actions:1\n"
        r = run_cli(["show"], env)
        assert r.stdout == show_head("dp9", flows=1, masks=1) + show_ports(
            ["0: dp9 (internal)", "1: e1 (dummy)", "2: e2 (dummy)"])
        r = run_cli(["--socket", sock_path, "add-flow", L2_FLOW, "1"])
        assert r.returncode == 1
        assert r.stderr.startswith(P + "updating flow table (File exists)\n")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to become an unprivileged user")
def test_unprivileged_user(dp0, dpif):
    ok(dp0, "add-flow", L2_FLOW, "1")
    (f,) = dpif.flow_dump("dp0")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

    def as_nobody(*args):
        return run_cli(["--socket", dp0.path, *args], prefix=nobody)

    for args in (["dump-dps"], ["show"], ["show", "-s", "dp0"], ["dump-flows"],
                 ["dump-flows", "-m", "filter=in_port=p2"], ["get-flow", D.format_ufid(f.ufid)]):
        r = as_nobody(*args)
        assert r.returncode == 0, (args, r.stderr)
        assert r.stdout == ok(dp0, *args)
    for args, msg in ((["add-dp", "dpz"], "add_dp"),
                      (["del-dp", "dp0"], "del_dp"),
                      (["add-if", "dp0", "z1,type=dummy"], "adding z1 to dp0 failed"),
                      (["del-if", "dp0", "p1"], "deleting port p1 from dp0 failed"),
                      (["add-flow", "in_port(1),eth(),eth_type(0x1235)", "1"],
                       "updating flow table"),
                      (["mod-flow", L2_FLOW, "2"], "updating flow table"),
                      (["del-flow", D.format_ufid(f.ufid)], "deleting flow"),
                      (["del-flows"], "deleting all flows")):
        r = as_nobody(*args)
        assert r.returncode == 1, args
        assert r.stderr.startswith(P + msg + " (Operation not permitted)"), (args, r.stderr)
    assert ok(dp0, "dump-flows") == f"{L2_FLOW}, {STATS0}, actions:1\n"


# ------------------------------------------------------- traffic-type flows
def test_flags_and_frames_of_many_kinds(dp0):
    """dump-flows after traffic of several protocols (exercises the datapath's keys)."""
    frames = {
        "udp": Ether(src="00:00:00:00:00:aa", dst="00:00:00:00:00:bb") / IP(tos=0x20)
        / UDP(sport=68, dport=67) / b"q",
        "arp": Ether() / ARP(psrc="10.0.0.9", op=1),
        "icmp": Ether() / Dot1Q(vlan=10) / IP() / ICMP(type=8),
        "v6": Ether() / IPv6(src="2001:db8::1") / UDP(dport=53),
    }
    for key, acts in FILTER_FLOWS.values():
        ok(dp0, "add-flow", key, acts)
    inject(dp0.path, "p2", bytes(frames["udp"]))
    inject(dp0.path, "p2", bytes(frames["arp"]))
    inject(dp0.path, "p2", bytes(frames["icmp"]))
    inject(dp0.path, "p1", bytes(frames["v6"]))
    lines = ok(dp0, "dump-flows").splitlines()
    counted = [ln for ln in lines if "packets:1," in ln]
    assert len(counted) == 4, lines
    assert all(re.search(USED, ln) for ln in counted)
