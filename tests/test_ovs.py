"""The real Open vSwitch on ovsdp: ``ovsdp ovs start``, then OVS's own tools.

One switch namespace holds the ovsdp daemon, ovsdb-server and ovs-vswitchd
(Debian's openvswitch-switch, unmodified, with the netlink preload library);
three host namespaces sit behind veths.  Bridges, ports and flows are made
with ovs-vsctl and ovs-ofctl, inspected with ovs-appctl and with ovs-dpctl
through ``ovsdp run``, as on a machine with the kernel module.  Everything
is named with a per-run prefix and removed again, also on failure.
"""

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from ovsdp.cli import ovs
from ovsdp.testbed import run

from .conftest import ROOT


def _why_not():
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for t in ("ip", "ping", "ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ovs-ofctl",
              "ovs-appctl", "ovs-dpctl"):
        if not shutil.which(t):
            return f"needs {t} (scripts/install.sh --test installs it)"
    return None


pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")]

P = f"ov{secrets.token_hex(2)}"          # namespaces {P}sw, {P}h1..; veths {P}v1/{P}e1
PING_RE = re.compile(r"(\d+) packets transmitted, (\d+) received")


class Stack:
    """A switch namespace with Open vSwitch on ovsdp, and hosts behind veths."""

    def __init__(self, tag, hosts=3, first=1, socket=None):
        """Hosts 10.77.0.<first>...; ``socket``: the ovsdp daemon another
        Stack started (else this one starts its own)."""
        self.ns = f"{P}{tag}sw"
        self.first = first
        self.hosts = [f"{P}{tag}h{i}" for i in range(1, hosts + 1)]
        self.ports = [f"{P}{tag}v{i}" for i in range(1, hosts + 1)]
        self.br = f"{P}{tag}br"
        self.dir = tempfile.mkdtemp(prefix="ovsdp-ovs-")
        os.chmod(self.dir, 0o755)
        self.env = dict(os.environ, PYTHONPATH=ROOT, OVS_RUNDIR=f"{self.dir}/run",
                        OVS_DBDIR=f"{self.dir}/db", OVS_LOGDIR=f"{self.dir}/log",
                        OVSDP_SOCKET=socket or f"{self.dir}/run/ovsdp.sock")
        self.made = []

    def __enter__(self):
        try:
            run("ip", "netns", "add", self.ns)
            self.made.append(self.ns)
            run("ip", "link", "set", "lo", "up", ns=self.ns)
            for i, (h, port) in enumerate(zip(self.hosts, self.ports, strict=True),
                                          self.first):
                run("ip", "netns", "add", h)
                self.made.append(h)
                run("ip", "link", "add", "eth0", "netns", h, "type", "veth",
                    "peer", "name", port, "netns", self.ns)
                run("ip", "addr", "add", f"10.77.0.{i}/24", "dev", "eth0", ns=h)
                run("ip", "-6", "addr", "add", f"fd77::{i}/64", "dev", "eth0", "nodad", ns=h)
                run("ip", "link", "set", "eth0", "up", ns=h)
                run("ip", "link", "set", "lo", "up", ns=h)
                run("ip", "link", "set", port, "up", ns=self.ns)
            self.start()
            return self
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()

    def _ns(self, *argv, check=True, timeout=60, input=None):
        r = subprocess.run(["ip", "netns", "exec", self.ns, *argv], env=self.env,
                           capture_output=True, text=True, timeout=timeout, input=input)
        if check and r.returncode:
            raise AssertionError(f"{' '.join(argv)}: {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def ovsdp(self, *argv, check=True):
        return self._ns(sys.executable, "-m", "ovsdp", *argv, check=check)

    def start(self):
        return self.ovsdp("ovs", "start")

    def vsctl(self, *argv):
        return self._ns("ovs-vsctl", "--timeout=20", *argv).stdout

    def ofctl(self, *argv):
        return self._ns("ovs-ofctl", "-O", "OpenFlow13", *argv).stdout

    def appctl(self, *argv, check=True):
        return self._ns("ovs-appctl", "--timeout=20", *argv, check=check).stdout

    def dpctl_run(self, *argv):
        """ovs-dpctl, unmodified, through ``ovsdp run``."""
        return self.ovsdp("run", "--", "ovs-dpctl", *argv).stdout

    def pids(self):
        return {n: ovs.read_pid(f"{self.dir}/run/{n}.pid")
                for n in ("ovsdp", "ovsdb-server", "ovs-vswitchd")}

    def log(self, name):
        try:
            with open(f"{self.dir}/log/{name}.log") as f:
                return f.read()
        except OSError:
            return ""

    def ping(self, i, dst, count=3, interval="0.05", v6=False, wait="1"):
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", interval, "-W", wait]
        if v6:
            argv.append("-6")
        r = subprocess.run(["ip", "netns", "exec", self.hosts[i - 1], *argv, dst],
                           capture_output=True, text=True, timeout=60)
        m = PING_RE.search(r.stdout)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)

    def wait_ping(self, i, dst, v6=False, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping(i, dst, count=1, v6=v6)[1] == 1:
                return True
        return False

    def close(self):
        if os.path.isdir(f"{self.dir}/run") and self.ns in self.made:
            self.ovsdp("ovs", "stop", check=False)
        for pid in self.pids().values():   # whatever did not go
            if pid:
                os.kill(pid, signal.SIGKILL)
        for ns in self.made:
            pids = run("ip", "netns", "pids", ns, check=False, capture=True) or ""
            for pid in pids.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            run("ip", "netns", "del", ns, check=False)
        self.made = []
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def stack():
    with Stack("a") as s:
        s.vsctl("add-br", s.br, *[a for p in s.ports for a in ("--", "add-port", s.br, p)])
        assert s.wait_ping(1, "10.77.0.2"), s.log("ovs-vswitchd")
        yield s


def test_start_status_and_a_clean_log(stack):
    r = stack.ovsdp("ovs", "status")
    assert "ovs-vswitchd is running with pid" in r.stdout and "not on ovsdp" not in r.stdout
    assert all(stack.pids().values())
    log = stack.log("ovs-vswitchd")
    assert "Datapath dispatch mode: per-cpu" in log
    assert "does not support meters" not in log
    assert _complaints(log) == []


def _complaints(log):
    return [ln for ln in log.splitlines() if "|WARN|" in ln or "|ERR|" in ln or "|EMER|" in ln]


def test_normal_switches_ipv4_and_ipv6(stack):
    stack.ofctl("del-flows", stack.br)
    stack.ofctl("add-flow", stack.br, "actions=NORMAL")
    assert stack.ping(1, "10.77.0.2") == (3, 3)
    assert stack.ping(3, "10.77.0.1") == (3, 3)
    assert stack.wait_ping(2, "fd77::3", v6=True)
    flows = stack.appctl("dpctl/dump-flows")
    assert "eth_type(0x0800)" in flows and "eth_type(0x86dd)" in flows
    show = stack.dpctl_run("show")
    assert "system@ovs-system:" in show
    for p in stack.ports + [stack.br]:
        assert f": {p}" in show, show


def test_openflow_actions_a_select_group_and_a_packet_in(stack):
    br, (v1, v2, _) = stack.br, stack.ports
    stack.ofctl("del-flows", br)
    stack.ofctl("add-group", br,
                f"group_id=1,type=select,selection_method=dp_hash,bucket=output:{v1}")
    for f in ("priority=0,actions=NORMAL",
              f"priority=10,icmp,in_port={v2},actions=mod_nw_ttl:9,group:1",
              f"priority=10,udp,in_port={v1},tp_dst=9999,actions=controller"):
        stack.ofctl("add-flow", br, f)
    # the reply to h1's ping has its TTL rewritten and goes through the group
    r = subprocess.run(["ip", "netns", "exec", stack.hosts[0], "ping", "-n", "-c", "2",
                        "-i", "0.1", "-W", "1", "10.77.0.2"],
                       capture_output=True, text=True, timeout=30)
    assert "ttl=9 " in r.stdout, r.stdout
    assert "dp_hash" in stack.appctl("dpctl/dump-flows")
    # a packet-in, seen by ovs-ofctl monitor
    mon = subprocess.Popen(["ip", "netns", "exec", stack.ns, "ovs-ofctl", "monitor", br,
                            "65534"], env=stack.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)                   # monitor connected and configured
        for _ in range(3):
            subprocess.run(["ip", "netns", "exec", stack.hosts[0], sys.executable, "-c",
                            "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                            ".sendto(b'ovsdp', ('10.77.0.2', 9999))"], check=True, timeout=30)
            time.sleep(0.2)
    finally:
        time.sleep(0.5)
        mon.terminate()
        out, _ = mon.communicate(timeout=10)
    assert "PACKET_IN" in out and "tp_dst=9999" in out, out
    stack.ofctl("del-groups", br)


def test_a_meter_limits_a_flood_to_its_rate(stack):
    br, (v1, v2, _) = stack.br, stack.ports
    stack.ofctl("del-flows", br)
    stack.ofctl("add-meter", br, "meter=1,pktps,burst,band=type=drop,rate=20,burst_size=5")
    for f in ("priority=0,actions=NORMAL",
              f"priority=10,icmp,in_port={v1},actions=meter:1,output:{v2}"):
        stack.ofctl("add-flow", br, f)
    assert stack.ping(2, "10.77.0.1", count=1)[1] == 1          # learn the MACs
    sent, got = stack.ping(1, "10.77.0.2", count=200, interval="0.005", wait="1")
    assert sent == 200 and 5 <= got <= 80, (sent, got)          # ~1 s at 20 packets/s
    assert "meter(" in stack.appctl("dpctl/dump-flows")
    stats = stack.ofctl("meter-stats", br)
    dropped = re.search(r"bands:\s*0: packet_count:(\d+)", stats)
    assert dropped and int(dropped.group(1)) >= 200 - got, stats    # the band's drops
    stack.ofctl("del-flows", br)
    stack.ofctl("add-flow", br, "actions=NORMAL")
    stack.ofctl("del-meters", br)


UDP_ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7201))
while True:
    data, peer = s.recvfrom(100)
    s.sendto(peer[0].encode(), peer)
"""
UDP_ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
for _ in range(10):
    s.sendto(b"?", (sys.argv[1], 7201))
    try:
        print(s.recv(100).decode())
        break
    except socket.timeout:
        pass
else:
    print("timeout")
"""


def test_openflow_conntrack_and_snat(stack):
    """A stateful firewall with SNAT in OpenFlow ct() actions: connections
    from the first host go out as 10.77.0.100 and their replies come back;
    the second host cannot start one."""
    br, (v1, v2, _) = stack.br, stack.ports
    h1, h2 = stack.hosts[0], stack.hosts[1]
    mac1 = run("cat", "/sys/class/net/eth0/address", ns=h1, capture=True).strip()
    run("ip", "neigh", "replace", "10.77.0.100", "lladdr", mac1, "dev", "eth0", ns=h2)
    stack.ofctl("del-flows", br)
    for f in ("table=0,priority=10,arp,actions=NORMAL",
              "table=0,priority=10,ip,ct_state=-trk,actions=ct(table=1,zone=5,nat)",
              f"table=1,in_port={v1},ip,ct_state=+trk+new,"
              f"actions=ct(commit,zone=5,nat(src=10.77.0.100)),output:{v2}",
              f"table=1,in_port={v1},ip,ct_state=+trk+est,actions=output:{v2}",
              f"table=1,in_port={v2},ip,ct_state=+trk+est,actions=output:{v1}",
              f"table=1,in_port={v2},ip,ct_state=+trk+new,actions=drop"):
        stack.ofctl("add-flow", br, f)
    p = subprocess.Popen(["ip", "netns", "exec", h2, sys.executable, "-c", UDP_ECHO],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = subprocess.run(["ip", "netns", "exec", h1, sys.executable, "-c", UDP_ASK,
                            "10.77.0.2"], capture_output=True, text=True, timeout=30)
        assert r.stdout.strip() == "10.77.0.100", r.stdout + stack.log("ovs-vswitchd")
    finally:
        p.kill()
        p.wait()
    assert stack.ping(1, "10.77.0.2") == (3, 3)
    assert stack.ping(2, "10.77.0.1", count=2)[1] == 0
    flows = stack.appctl("dpctl/dump-flows")
    assert "nat(src=10.77.0.100)" in flows and "ct_state(+new" in flows, flows
    # ovs-vswitchd reads the connections through ctnetlink, as on the kernel
    conns = stack.appctl("dpctl/dump-conntrack", "zone=5")
    assert re.search(r"udp,orig=\(src=10\.77\.0\.1,dst=10\.77\.0\.2,sport=\d+,dport=7201\),"
                     r"reply=\(src=10\.77\.0\.2,dst=10\.77\.0\.100,sport=7201,dport=\d+\),"
                     r"zone=5", conns), conns
    assert "icmp,orig=(src=10.77.0.1,dst=10.77.0.2," in conns, conns
    stack.appctl("dpctl/flush-conntrack", "zone=5")
    assert stack.appctl("dpctl/dump-conntrack", "zone=5").strip() == ""
    assert _complaints(stack.log("ovs-vswitchd")) == []
    stack.ofctl("del-flows", br)
    stack.ofctl("add-flow", br, "actions=NORMAL")


def test_a_vswitchd_restart_keeps_the_datapath_and_its_flows(stack):
    stack.ofctl("del-flows", stack.br)
    stack.ofctl("add-flow", stack.br, "actions=NORMAL")
    # the revalidators bring the datapath's flows to the new table a moment
    # after the ofctl returns (on the kernel too): wait for it, then count
    assert stack.wait_ping(1, "10.77.0.2")
    assert stack.ping(1, "10.77.0.2") == (3, 3)
    old = stack.pids()["ovs-vswitchd"]
    stack.appctl("-t", "ovs-vswitchd", "exit")
    deadline = time.monotonic() + 10
    while ovs.alive(old) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ovs.alive(old)
    # as with the kernel module: the datapath and its flows stay, and forward
    assert "recirc_id(0)" in stack.dpctl_run("dump-flows")
    assert stack.ping(1, "10.77.0.2") == (3, 3)
    r = stack.ovsdp("ovs", "status", check=False)
    assert r.returncode == 3 and "ovs-vswitchd is not running" in r.stdout
    stack.start()
    new = stack.pids()["ovs-vswitchd"]
    assert new and new != old
    assert stack.wait_ping(1, "10.77.0.3")
    show = stack.dpctl_run("show")
    assert show.count("system@ovs-system:") == 1 and all(p in show for p in stack.ports)


def test_vxlan_between_ovs_on_ovsdp_and_a_linux_vxlan_device():
    """OVS makes vxlan_sys_4789 (collect_md) and adds it as a netdev vport,
    as on an in-tree kernel; the other end is Linux's own vxlan device."""
    if not os.path.exists("/sys/module/vxlan") and run("modprobe", "vxlan", check=False):
        pytest.skip("this kernel has no vxlan devices")
    with Stack("x", hosts=1) as s:
        remote = f"{P}xr"
        run("ip", "netns", "add", remote)
        s.made.append(remote)
        run("ip", "link", "add", "u0", "netns", s.ns, "type", "veth", "peer", "name", "u1",
            "netns", remote)
        run("ip", "addr", "add", "172.31.77.1/24", "dev", "u0", ns=s.ns)
        run("ip", "link", "set", "u0", "up", ns=s.ns)
        run("ip", "addr", "add", "172.31.77.2/24", "dev", "u1", ns=remote)
        run("ip", "link", "set", "u1", "up", ns=remote)
        run("ip", "link", "add", "vx0", "type", "vxlan", "id", "100", "remote", "172.31.77.1",
            "dstport", "4789", "dev", "u1", ns=remote)
        run("ip", "addr", "add", "10.77.0.2/24", "dev", "vx0", ns=remote)
        run("ip", "link", "set", "vx0", "up", ns=remote)
        s.vsctl("add-br", s.br, "--", "add-port", s.br, s.ports[0], "--", "add-port", s.br,
                "vx", "--", "set", "interface", "vx", "type=vxlan",
                "options:remote_ip=172.31.77.2", "options:key=100")
        assert s.wait_ping(1, "10.77.0.2"), s.log("ovs-vswitchd")
        assert s.ping(1, "10.77.0.2") == (3, 3)
        flows = s.appctl("dpctl/dump-flows")
        assert "tunnel(tun_id=0x64" in flows and "set(tunnel(tun_id=0x64" in flows, flows
        # OVS names the type after its own netdev; to the datapath it is a netdev vport
        assert re.search(r"port \d+: vxlan_sys_4789 \(vxlan", s.dpctl_run("show"))
        show = s.ovsdp("dpctl", "show").stdout
        assert re.search(r"port \d+: vxlan_sys_4789\n", show), show


def _link_names(ns):
    links = run("ip", "-o", "link", "show", ns=ns, capture=True)
    return {ln.split(":")[1].strip().split("@")[0] for ln in links.splitlines()}


def test_two_hypervisors_in_two_namespaces_on_one_ovsdp():
    """Datapaths per network namespace, as on Linux: two ovs-vswitchd, each in
    its own namespace with its own ovs-system, on one ovsdp daemon (which
    runs in the first), joined by VXLAN over an underlay veth.  Each sees
    only its own datapath; devices appear in their own namespace; when the
    second namespace is deleted, its datapath goes (ovs_exit_net) and
    Linux can free the namespace."""
    if not os.path.exists("/sys/module/vxlan") and run("modprobe", "vxlan", check=False):
        pytest.skip("this kernel has no vxlan devices")
    with Stack("p", hosts=1) as a:
        b = Stack("q", hosts=1, first=2, socket=a.env["OVSDP_SOCKET"])
        with b:
            run("ip", "link", "add", "u0", "netns", a.ns, "type", "veth", "peer", "name",
                "u1", "netns", b.ns)
            for s, addr, dev, peer in ((a, "172.31.78.1", "u0", "172.31.78.2"),
                                       (b, "172.31.78.2", "u1", "172.31.78.1")):
                run("ip", "addr", "add", f"{addr}/24", "dev", dev, ns=s.ns)
                run("ip", "link", "set", dev, "up", ns=s.ns)
                s.vsctl("add-br", s.br, "--", "add-port", s.br, s.ports[0], "--",
                        "add-port", s.br, "vx", "--", "set", "interface", "vx", "type=vxlan",
                        f"options:remote_ip={peer}", "options:key=100")
            assert a.wait_ping(1, "10.77.0.2"), a.log("ovs-vswitchd") + b.log("ovs-vswitchd")
            assert a.ping(1, "10.77.0.2") == (3, 3)
            assert b.ping(1, "10.77.0.1") == (3, 3)
            for s, other in ((a, b), (b, a)):
                show = s.dpctl_run("show")
                assert show.count("system@ovs-system:") == 1, show
                assert f": {s.ports[0]}" in show and f": {s.br}" in show, show
                assert other.ports[0] not in show and other.br not in show, show
                assert "vxlan_sys_4789" in show, show
                links = _link_names(s.ns)
                assert {"ovs-system", s.br, "vxlan_sys_4789"} <= links, links
                assert other.br not in links, links
                flows = s.appctl("dpctl/dump-flows")
                assert "tunnel(tun_id=0x64" in flows, flows
            # the daemon's own view (it runs in a's namespace) is a's datapath
            assert b.br not in a.ovsdp("dpctl", "show").stdout
            # b's ovs-vswitchd goes, as does its namespace: the datapath follows
            for s in (a, b):
                assert _complaints(s.log("ovs-vswitchd")) == []
            assert "left running" in b.ovsdp("ovs", "stop").stdout      # a's daemon
            run("ip", "netns", "del", b.ns)
            b.made.remove(b.ns)
            deadline = time.monotonic() + 15
            while "eth0" in _link_names(b.hosts[0]) and time.monotonic() < deadline:
                time.sleep(0.1)
            # the host's veth went with the namespace Linux could now free
            assert "eth0" not in _link_names(b.hosts[0]), a.log("ovsdp")
            assert "is gone, destroying the datapath" in a.log("ovsdp")
            assert a.ping(1, "10.77.0.2", count=1)[1] == 0
            assert "system@ovs-system:" in a.dpctl_run("show")


def test_stop_leaves_no_process_device_or_socket():
    with Stack("b", hosts=1) as s:
        s.vsctl("add-br", s.br, "--", "add-port", s.br, s.ports[0])
        pids = s.pids()
        assert all(pids.values())
        r = s.ovsdp("ovs", "stop")
        assert "Exiting ovs-vswitchd" in r.stdout and "Exiting ovsdp daemon" in r.stdout
        assert not any(ovs.alive(p) for p in pids.values())
        links = run("ip", "-o", "link", "show", ns=s.ns, capture=True)
        names = [ln.split(":")[1].strip().split("@")[0] for ln in links.splitlines()]
        assert sorted(names) == sorted(["lo", s.ports[0]]), names
        left = os.listdir(f"{s.dir}/run")
        assert left == [], left


def _kill_marked(marker):
    """Processes whose environment carries ``marker`` (what a test started)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker.encode() in f.read().split(b"\0"):
                    os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass


@pytest.mark.skipif(shutil.which("mn") is None, reason="needs Mininet (Debian package mininet)")
def test_mininet_pingall_on_ovsk():
    marker = f"OVSDP_TEST_MININET={P}"
    with Stack("m", hosts=0) as s:
        s.env[marker.split("=")[0]] = P
        try:
            r = s._ns("mn", "--switch", "ovsk,failMode=standalone", "--controller", "none",
                      "--topo", "tree,depth=2,fanout=2", "--test", "pingall",
                      check=False, timeout=180)
        finally:
            _kill_marked(marker)          # its hosts, if mn did not end them
        out = r.stdout + r.stderr
        assert "Results: 0% dropped (12/12 received)" in out, out
