"""``ovsdp dpctl dump-flows`` output read by Open vSwitch's own tools.

* ``ovs.flow.odp.ODPFlow`` (PyPI ``ovs``): every line parses to the match
  fields, values and masks and the actions that the flow's attribute bytes
  (as the datapath dumps them) hold, and to the line's statistics.  The
  comparison helpers are test_odp_compat's, which decode the bytes
  independently of ovsdp.odp.
* ``ovs-dpctl-top --script --flow-file FILE`` (Debian's openvswitch-common)
  summarizes the flows without parse errors and with the right totals.

Two known ODPFlow gaps, both in OVS's own output as well:

* The flows all match recirc_id exactly, as every flow Open vSwitch installs
  does: a flow with a wildcarded recirc_id prints ``recirc_id(0/0)`` under
  ``-m`` (so does OVS's odp_flow_format()), which ODPFlow cannot read (its
  recirc_id decoder takes a plain integer).
* The datapath reports OVS_KEY_ATTR_IPV6_EXTHDRS (type 32) with every IPv6
  flow, as Linux does since 5.18, nearly always wildcarded.  Plain
  dump-flows leaves it out then, like any wildcarded field; ``-m`` prints
  every attribute, this one generically as ``key32(..)`` (OVS has no name
  for it), which ODPFlow rejects.  Those lines are checked with that one
  attribute taken out of the line and of the bytes.
"""

import io
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

pytest.importorskip("ovs.flow.odp")
pytest.importorskip("netaddr")

from ovs.flow.odp import ODPFlow  # noqa: E402

from ovsdp import uapi as U  # noqa: E402
from ovsdp.cli import dpctl as D  # noqa: E402
from ovsdp.netlink.attr import iter_attrs, nla  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import test_odp_compat as C  # noqa: E402

from .test_dpctl import inject, ok  # noqa: E402

FLOWS = [
    ("recirc_id(0),in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),"
     "eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2/255.255.255.0,proto=6,tos=0/0xfc,"
     "ttl=64,frag=no),tcp(src=1000,dst=80),tcp_flags(0/0)", "2"),
    ("recirc_id(0),in_port(2),eth(src=00:00:00:00:00:aa,dst=00:00:00:00:00:bb),"
     "eth_type(0x0800),ipv4(src=192.168.1.5,dst=192.168.1.1,proto=17,frag=no),"
     "udp(src=68,dst=67)", "set(ipv4(tos=0x20/0xfc)),push_vlan(vid=12,pcp=3),1"),
    ("recirc_id(0),in_port(1),eth(),eth_type(0x86dd),ipv6(src=2001:db8::1,"
     "dst=2001:db8::/ffff:ffff::,proto=17,frag=no),udp(dst=53)",
     "userspace(pid=1234,userdata(0102030405060708)),2"),
    ("recirc_id(0),in_port(2),eth(),eth_type(0x0806),arp(sip=10.0.0.9,tip=10.0.0.1,op=1)",
     "1,2"),
    ("recirc_id(0),in_port(2),eth(),eth_type(0x8100),vlan(vid=10,pcp=0),"
     "encap(eth_type(0x0800),ipv4(proto=1,frag=no),icmp(type=8,code=0))", "pop_vlan,1"),
    ("recirc_id(0),in_port(1),eth(src=00:00:00:00:00:01/ff:ff:ff:00:00:00,"
     "dst=01:00:00:00:00:00/01:00:00:00:00:00),eth_type(0x1234)", "drop"),
    ("recirc_id(0),in_port(1),eth(),eth_type(0x1235)",
     "sample(sample=50.0%,actions(2)),clone(push_vlan(vid=5,pcp=0),2),hash(l4(0)),"
     "recirc(0x10),trunc(100),check_pkt_len(size=200,gt(1),le(2))"),
    ("recirc_id(0x10),dp_hash(0x5/0xf),in_port(1),eth(),eth_type(0x8847),"
     "mpls(label=100,tc=3,ttl=64,bos=1)", "2"),
    ("recirc_id(0),tunnel(tun_id=0x5,src=1.1.1.1,dst=2.2.2.2,ttl=64,flags(-df+csum+key)),"
     "in_port(3),skb_mark(0x7),eth(),eth_type(0x1236)",
     "set(tunnel(tun_id=0x1,dst=1.1.1.1,ttl=64,flags(df|key))),3"),
]


def frames():
    return [
        ("p1", Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02")
         / IP(src="10.0.0.1", dst="10.0.0.2", ttl=64) / TCP(sport=1000, dport=80, flags="S")),
        ("p1", Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02")
         / IP(src="10.0.0.1", dst="10.0.0.2", ttl=64) / TCP(sport=1000, dport=80, flags="A")),
        ("p2", Ether(src="00:00:00:00:00:aa", dst="00:00:00:00:00:bb")
         / IP(src="192.168.1.5", dst="192.168.1.1") / UDP(sport=68, dport=67) / b"dhcp"),
        ("p1", Ether(dst="00:00:00:00:00:02") / IPv6(src="2001:db8::1", dst="2001:db8::7")
         / UDP(dport=53)),
        ("p2", Ether(dst="ff:ff:ff:ff:ff:ff")
         / ARP(psrc="10.0.0.9", pdst="10.0.0.1", hwdst="00:00:00:00:00:00", op=1)),
        ("p2", Ether(dst="00:00:00:00:00:02") / Dot1Q(vlan=10) / IP() / ICMP(type=8)),
    ]


@pytest.fixture
def flows_dp(daemon, dpif):
    ok(daemon, "add-dp", "dp0", "p1,type=dummy", "p2,type=dummy", "vx0,type=vxlan")
    for key, acts in FLOWS:
        ok(daemon, "add-flow", key, acts)
    for port, frame in frames():
        inject(daemon.path, port, bytes(frame))
    flows = dpif.flow_dump("dp0")
    assert len(flows) == len(FLOWS)
    assert sum(1 for f in flows if f.packets) == 5
    return daemon, flows


def check_info(flow, f, verbose):
    info = flow.info
    assert info["packets"] == f.packets and info["bytes"] == f.bytes
    if f.used:
        assert isinstance(info["used"], float) and info["used"] >= 0
    else:
        assert info["used"] == "never"
    if f.tcp_flags:
        assert info["flags"] == D.format_tcp_flags(f.tcp_flags)
    else:
        assert "flags" not in info
    if verbose:
        assert info["dp"] == "ovs"
        assert flow.ufid["ufid"] == D.format_ufid(f.ufid)[5:]
    else:
        assert "dp" not in info and "ufid" not in [sec.name for sec in flow.sections]


USED = re.compile(r"used:\d+\.\d{3}s")
KEY32 = re.compile(r"key32\([0-9a-f ]+(/[0-9a-f ]+)?\),")


def without_exthdrs(buf):
    """The key or mask bytes without OVS_KEY_ATTR_IPV6_EXTHDRS."""
    if buf is None:
        return None
    return b"".join(nla(t, p) for t, p, _ in iter_attrs(buf)
                    if t & U.NLA_TYPE_MASK != U.OVS_KEY_ATTR_IPV6_EXTHDRS)


def odpflow(line, f):
    """ODPFlow of a dump line, and the key and mask bytes it should hold."""
    if "key32(" in line:
        assert b"\x86\xdd" in f.key          # only IPv6 flows carry it
        line = KEY32.sub("", line, count=1)
        return ODPFlow(line), without_exthdrs(f.key), without_exthdrs(f.mask)
    return ODPFlow(line), f.key, f.mask


@pytest.mark.parametrize("opts", [[], ["-m", "--no-names"]], ids=["plain", "more"])
def test_odpflow_reads_dump_flows(flows_dp, opts):
    daemon, flows = flows_dp
    lines = ok(daemon, "dump-flows", *opts).splitlines()
    assert len(lines) == len(flows)
    for line, f in zip(lines, flows, strict=True):
        if not opts:
            assert "key32(" not in line         # wildcarded: left out
        flow, key, mask = odpflow(line, f)
        C.check_key(flow.match_kv, key, mask)
        C.check_actions([(kv.key, kv.value) for kv in flow.actions_kv], f.actions)
        check_info(flow, f, bool(opts))


def test_odpflow_reads_names_and_get_flow(flows_dp):
    daemon, flows = flows_dp
    names = {0: "dp0", 1: "p1", 2: "p2", 3: "vx0"}
    for line, f in zip(ok(daemon, "dump-flows", "-m").splitlines(), flows, strict=True):
        flow, _, _ = odpflow(line, f)
        in_port = [kv.value for kv in flow.match_kv if kv.key == "in_port"][0]
        assert in_port == names[int(re.search(r"in_port\((\d+)\)", D.format_key(
            f.key, f.mask)).group(1))]
        for kv in flow.actions_kv:
            if kv.key == "output":
                assert kv.value["port"] in names.values()
        got = ok(daemon, "get-flow", "-m", D.format_ufid(f.ufid))
        assert USED.sub("used:T", got) == USED.sub("used:T", line) + "\n"
        check_info(odpflow(got, f)[0], f, True)


def test_odpflow_reads_filtered_dump(flows_dp):
    daemon, flows = flows_dp
    lines = ok(daemon, "dump-flows", "filter=tcp,tp_dst=80").splitlines()
    assert len(lines) == 1
    flow = ODPFlow(lines[0])
    assert flow.match["tcp"]["dst"] == 80 and flow.info["packets"] == 2
    assert flow.info["flags"] == "S."


# ------------------------------------------------------------ ovs-dpctl-top
DPCTL_TOP = "/usr/bin/ovs-dpctl-top"


def run_dpctl_top(path):
    if not os.path.exists(DPCTL_TOP) and not shutil.which("ovs-dpctl-top"):
        pytest.skip("ovs-dpctl-top is not installed (Debian package openvswitch-common)")
    exe = DPCTL_TOP if os.path.exists(DPCTL_TOP) else shutil.which("ovs-dpctl-top")
    try:
        r = subprocess.run([exe, "--script", "--flow-file", str(path)], capture_output=True,
                           text=True, timeout=60)
    except OSError as e:
        pytest.skip(f"ovs-dpctl-top cannot run here: {e}")
    if r.returncode != 0 and ("ModuleNotFoundError" in r.stderr or "ImportError" in r.stderr
                              or "No such file" in r.stderr):
        pytest.skip(f"ovs-dpctl-top cannot run with its interpreter: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    return r.stdout


def top_rows(text):
    """{field: (count, packets, bytes)} of ovs-dpctl-top's script output."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"(\S.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+$", line)
        if m:
            rows[m.group(1).strip()] = tuple(int(x) for x in m.group(2, 3, 4))
    return rows


def test_ovs_dpctl_top_reads_dump_flows(flows_dp, tmp_path):
    daemon, flows = flows_dp
    dump = ok(daemon, "dump-flows")
    path = tmp_path / "flows.txt"
    path.write_text(dump)
    out = run_dpctl_top(path)
    assert re.search(rf"Total: {len(flows)}\s+errors: 0 ", out), out
    rows = top_rows(out)
    # Sum flows by the outer in_port and eth_type they print, as the tool does.
    expect = {}
    for line, f in zip(dump.splitlines(), flows, strict=True):
        for field in re.findall(r"(?:^|\),)((?:in_port|eth_type)\([^)]*\))", line)[:2]:
            c, p, b = expect.get(field, (0, 0, 0))
            expect[field] = (c + 1, p + f.packets, b + f.bytes)
    assert {k: v for k, v in rows.items() if k.startswith(("in_port(", "eth_type("))} == expect
    assert rows["tcp(dst=80)"] == (1, 2, flows[0].bytes)
    assert rows["udp(dst=67)"] == (1, 1, flows[1].bytes)
    assert rows["ipv4(src=192.168.1.5,dst=192.168.1.1)"] == (1, 1, flows[1].bytes)
    assert rows["tunnel(src=1.1.1.1,dst=2.2.2.2)"] == (1, 0, 0)


def test_ovs_dpctl_top_reads_flows_from_stdin_pipe(flows_dp, tmp_path):
    """The documented use, ``ovs-dpctl dump-flows | ovs-dpctl-top --script``."""
    daemon, flows = flows_dp
    out = io.StringIO()
    assert D.run(["dump-flows"], socket=daemon.path, stdout=out) == 0
    if not os.path.exists(DPCTL_TOP):
        pytest.skip("ovs-dpctl-top is not installed (Debian package openvswitch-common)")
    r = subprocess.run([DPCTL_TOP, "--script"], input=out.getvalue(), capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0 and ("ModuleNotFoundError" in r.stderr or "ImportError" in r.stderr):
        pytest.skip(f"ovs-dpctl-top cannot run with its interpreter: {r.stderr.strip()}")
    assert re.search(rf"Total: {len(flows)}\s+errors: 0 ", r.stdout), r.stdout + r.stderr


# ------------------------------------------------- filter= vs OVS's parser
# ovs-ofctl compose-packet parses its FLOW argument with parse_ofp_exact_flow(),
# the function dpctl_dump_flows() uses for filter=: the same texts must be
# accepted, and rejected with the same message.
OFCTL_FILTERS = [
    "ip", "ipv4", "ip4", "ipv6", "ip6", "arp", "rarp", "tcp", "udp", "sctp", "icmp", "icmp6",
    "tcp6", "udp6", "sctp6", "mpls", "mplsm",
    "tcp,tp_src=80", "tcp,tp_dst=0x50", "tcp,tcp_src=1", "udp,udp_dst=53", "sctp,sctp_src=9",
    "udp,tp_src=53", "icmp,tp_src=8", "dl_type=0x800,nw_proto=17,tp_dst=5",
    "ip,nw_src=1.2.3.4", "ip,ip_dst=1.2.3.4", "nw_src=1.2.3.4", "arp,nw_src=1.2.3.4",
    "arp,arp_spa=1.2.3.4", "arp,arp_tpa=1.2.3.4", "arp,arp_op=2", "arp,arp_op=70000",
    "arp,arp_sha=00:00:00:00:00:01", "arp,arp_tha=x",
    "ip,nw_proto=17", "ip,ip_proto=6", "ip,nw_proto=256", "ip,nw_proto=-1", "ip,nw_proto=abc",
    "ip,nw_proto=", "ip,nw_proto=1.5", "ip,nw_proto=011", "ip,nw_proto=0x11", "ip,nw_proto=+5",
    "ip,nw_tos=3", "ip,nw_tos=0x100", "ip,ip_dscp=63", "ip,ip_dscp=300", "ip,nw_ecn=1",
    "ip,ip_ecn=300", "ip,nw_ttl=5", "ip,nw_ttl=999", "ip,ip_frag=no", "ip,ip_frag=later",
    "ip,ip_frag=maybe", "ip,nw_frag=first",
    "ipv6,ipv6_src=::1", "ipv6,ipv6_dst=2001:db8::1", "ipv6,ipv6_src=zz", "ipv6,ipv6_label=5",
    "icmp,icmp_type=8", "icmp,icmp_code=0", "icmp,icmp_type=300", "icmp6,icmpv6_type=135",
    "icmp6,icmp_type=1", "icmp6,icmpv6_code=x",
    "in_port=1", "in_port:1", "in_port=LOCAL", "in_port=99999", "in_port=-1",
    "dl_src=00:01:02:03:04:05", "eth_src=00:01:02:03:04:05", "dl_dst=zz",
    "dl_type=0x0800", "eth_type=2048", "dl_type=0x10000",
    "dl_vlan=5", "dl_vlan=0xffff", "dl_vlan=4096", "dl_vlan=abc", "dl_vlan_pcp=3",
    "dl_vlan_pcp=9", "vlan_tci=0x1005", "vlan_tci=0x10000",
    "pkt_mark=1", "recirc_id=1", "dp_hash=0x10",
    "foo=1", "ip,ip", "tcp,ip", "tcp,nw_proto=6", "ip,nw_proto=6,nw_proto=6",
    "ip,nw_src=0.0.0.0,nw_src=1.1.1.1", "ip,nw_src=1.2.3.4,nw_src=1.2.3.5", "ip,nw_src=abc",
    "ip,nw_src", ",ip,", "ip,,nw_proto=1", "ip nw_src=1.2.3.4", "ip=5", "ip(nw_proto=1)",
    "",
]


def ofctl_parse(text):
    """None if ovs-ofctl's parse_ofp_exact_flow() accepts ``text``, else its message."""
    r = subprocess.run(["ovs-ofctl", "compose-packet", text], capture_output=True, text=True,
                       timeout=30)
    for line in r.stderr.splitlines():
        if line.startswith("ovs-ofctl: "):
            return line[len("ovs-ofctl: "):]
    return None


@pytest.mark.skipif(not shutil.which("ovs-ofctl"), reason="needs ovs-ofctl (openvswitch-common)")
@pytest.mark.parametrize("text", OFCTL_FILTERS)
def test_filter_parser_agrees_with_ovs(text):
    probe = subprocess.run(["ovs-ofctl", "compose-packet", "ip"], capture_output=True,
                           text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"this ovs-ofctl has no compose-packet: {probe.stderr.strip()}")
    expect = ofctl_parse(text)
    try:
        D.parse_filter(text)
        got = None
    except D.FilterError as e:
        got = str(e)
    assert got == expect


def test_filter_prefix_masks_are_an_extension():
    """OVS rejects masks here ("wildcards not allowed here"); ovsdp takes them for addresses."""
    flt = D.parse_filter("ip,nw_src=10.0.0.0/8,nw_dst=10.1.0.0/255.255.0.0")
    assert flt[1]["nw_src"] == 0xFF000000 and flt[1]["nw_dst"] == 0xFFFF0000
    assert D.parse_filter("ipv6,ipv6_src=2001:db8::/32")[1]["ipv6_src"] == \
        ((1 << 32) - 1) << 96
    assert D.parse_filter("dl_src=01:00:00:00:00:00/01:00:00:00:00:00")[1]["dl_src"] == 1 << 40
    with pytest.raises(D.FilterError, match=r"wildcards not allowed here"):
        D.parse_filter("ip,nw_proto=6/0xf")
