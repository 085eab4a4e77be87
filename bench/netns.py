"""Network namespaces, veths and the switches the forwarding benchmark compares.

Shared by bench/forwarding.py and the demo's style of setup; everything made
here is removed again by :meth:`Topology.teardown` (also on errors).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


sys.path.insert(0, ROOT)
from ovsdp.testbed import Testbed, run, stop_process  # noqa: E402


def missing_prerequisite(prog, tools=("ip", "iperf3", "ping")):
    """Why ``prog`` cannot run here (not root, a tool missing), or None."""
    if os.geteuid() != 0:
        return f"{prog} needs root (network namespaces)"
    for tool in tools:
        if not shutil.which(tool):
            return f"{prog} needs {tool} (scripts/install.sh installs it)"
    return None


def sh(*args, check=True, ns=None, capture=False, timeout=60):
    return run(*args, ns=ns, check=check, capture=capture, timeout=timeout)


class Topology(Testbed):
    """Two hosts behind veths (fwa, fwb) on 10.77.0.0/24, no IPv6."""

    def __init__(self, prefix="fw", hosts=2, offloads=True):
        names = [f"{prefix}{chr(ord('a') + i)}" for i in range(hosts)]
        super().__init__(names, port_prefix="", net4="10.77.0", ipv6=False,
                         offloads=offloads)
        for h in self.hosts:
            h.port = f"{h.name}-sw"
        self.prefix = prefix

    @property
    def ports(self):
        return [h.port for h in self.hosts]

    @property
    def ips(self):
        return [h.ip4 for h in self.hosts]

    @property
    def host_ns(self):
        return [h.ns for h in self.hosts]


# ------------------------------------------------------------------ switches
class LinuxBridge:
    name = "linux-bridge"

    def __init__(self, topo):
        self.topo = topo
        self.br = f"{topo.prefix}br"

    def available(self):
        return True, ""

    def start(self):
        sh("ip", "link", "add", self.br, "type", "bridge")
        for p in self.topo.ports:
            sh("ip", "link", "set", p, "master", self.br)
        sh("ip", "link", "set", self.br, "up")

    def stop(self):
        sh("ip", "link", "del", self.br, check=False)

    def pids(self):
        return []                   # it forwards in softirq context: no process to charge


class OvsUserspace:
    """Open vSwitch with datapath_type=netdev, in a private run directory."""

    name = "ovs-netdev"

    def __init__(self, topo):
        self.topo = topo
        self.dir = None
        self.env = None
        self.br = f"{topo.prefix}ovs"

    def available(self):
        for b in ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovsdb-tool"):
            if not shutil.which(b):
                return False, f"{b} not found (Debian package openvswitch-switch)"
        if not os.path.exists("/usr/share/openvswitch/vswitch.ovsschema"):
            return False, "vswitch.ovsschema not found"
        return True, ""

    def _vsctl(self, *args):
        return sh("ovs-vsctl", f"--db=unix:{self.dir}/db.sock", "--timeout=20", *args)

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="ovsbench-")
        d = self.dir
        sh("ovsdb-tool", "create", f"{d}/conf.db", "/usr/share/openvswitch/vswitch.ovsschema")
        env = ["env", f"OVS_RUNDIR={d}", f"OVS_LOGDIR={d}", f"OVS_DBDIR={d}"]
        sh(*env, "ovsdb-server", f"{d}/conf.db", f"--remote=punix:{d}/db.sock",
           f"--pidfile={d}/ovsdb-server.pid", "--detach", f"--log-file={d}/ovsdb.log")
        self._vsctl("--no-wait", "init")
        sh(*env, "ovs-vswitchd", f"unix:{d}/db.sock", f"--pidfile={d}/ovs-vswitchd.pid",
           "--detach", f"--log-file={d}/ovs-vswitchd.log")
        self._vsctl("add-br", self.br, "--", "set", "bridge", self.br, "datapath_type=netdev")
        for p in self.topo.ports:
            self._vsctl("add-port", self.br, p)

    def pids(self):
        """ovs-vswitchd, which forwards (ovsdb-server only holds the configuration)."""
        try:
            with open(f"{self.dir}/ovs-vswitchd.pid") as f:
                return [int(f.read().strip())]
        except (OSError, ValueError, TypeError):
            return []

    def stop(self):
        if not self.dir:
            return
        for pidfile in ("ovs-vswitchd.pid", "ovsdb-server.pid"):
            try:
                with open(f"{self.dir}/{pidfile}") as f:
                    pid = int(f.read().strip())
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.05)
            except (OSError, ValueError):
                pass
        sh("ip", "link", "del", self.br, check=False)
        sh("ip", "link", "del", "ovs-netdev", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


class OvsOnOvsdp:
    """Open vSwitch's own ovs-vswitchd (NORMAL) with datapath_type=system on
    ovsdp: ``ovsdp ovs start`` in a private run directory.  The same binary
    as :class:`OvsUserspace`, with ovsdp as its kernel datapath."""

    name = "ovs-on-ovsdp"

    def __init__(self, topo):
        self.topo = topo
        self.dir = None
        self.env = None
        self.br = f"{topo.prefix}ovk"

    def available(self):
        ok, why = OvsUserspace(self.topo).available()
        if ok and os.path.exists("/sys/class/net/ovs-system"):
            return False, "an ovs-system device exists already (another datapath runs here)"
        return ok, why

    def _ovsdp(self, *args):
        r = subprocess.run([sys.executable, "-m", "ovsdp", *args], env=self.env,
                           capture_output=True, text=True, timeout=60)
        if r.returncode:
            raise RuntimeError(f"ovsdp {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="ovsdpbench-ovs-")
        d = self.dir
        self.env = dict(os.environ, PYTHONPATH=ROOT, OVS_RUNDIR=d, OVS_DBDIR=d, OVS_LOGDIR=d,
                        OVSDP_SOCKET=f"{d}/ovsdp.sock")
        self._ovsdp("ovs", "start")
        cmd = ["ovs-vsctl", f"--db=unix:{d}/db.sock", "--timeout=20", "add-br", self.br]
        for p in self.topo.ports:
            cmd += ["--", "add-port", self.br, p]
        sh(*cmd)

    def pids(self):
        """ovs-vswitchd (handlers, revalidators) and the ovsdp daemon (which forwards)."""
        out = []
        for name in ("ovs-vswitchd", "ovsdp"):
            try:
                with open(f"{self.dir}/{name}.pid") as f:
                    out.append(int(f.read().split()[0]))
            except (OSError, ValueError, TypeError, IndexError):
                pass
        return out

    def diagnose(self):
        out = []
        for log in ("ovsdp.log", "ovs-vswitchd.log"):
            try:
                with open(f"{self.dir}/{log}") as f:
                    out.append(f"--- {log}\n{f.read()[-1500:]}")
            except (OSError, TypeError):
                pass
        return "\n".join(out)

    def stop(self):
        if not self.dir:
            return
        try:
            self._ovsdp("ovs", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


class Ovsdp:
    """ovsdp's daemon and its learning switch, each a process of its own."""

    name = "ovsdp"

    def __init__(self, topo):
        self.topo = topo
        self.dir = None
        self.procs = []
        self.dp = f"{topo.prefix}dp"

    def available(self):
        return True, ""

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="ovsdpbench-")
        sock = f"{self.dir}/ovsdp.sock"
        env = dict(os.environ, PYTHONPATH=ROOT)
        log = open(f"{self.dir}/daemon.log", "w")
        self.procs.append(subprocess.Popen([sys.executable, "-m", "ovsdp", "daemon",
                                            "--socket", sock], env=env, stdout=log,
                                           stderr=log))
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.02)
        sys.path.insert(0, ROOT)
        from ovsdp.client.dpif import Dpif
        with Dpif(sock) as c:
            c.dp_new(self.dp, upcall_pid=0)
            for p in self.topo.ports:
                c.vport_new(self.dp, p, "netdev")
        slog = open(f"{self.dir}/switchd.log", "w")
        self.procs.append(subprocess.Popen([sys.executable, "-m", "ovsdp", "switchd", self.dp,
                                            "--socket", sock], env=env, stdout=slog,
                                           stderr=slog))
        time.sleep(0.5)
        self.sock = sock

    def stats(self):
        from ovsdp.client.dpif import Dpif
        with Dpif(self.sock) as c:
            return c.dp_get(self.dp)

    def pids(self):
        """The daemon (which forwards) and switchd (which handles the misses)."""
        return [p.pid for p in self.procs if p.poll() is None]

    def diagnose(self):
        """The state of the processes and the end of their logs."""
        out = []
        for (name, p), log in zip((("daemon", self.procs[0]), ("switchd", self.procs[1])),
                                  ("daemon.log", "switchd.log"), strict=False):
            state = "running" if p.poll() is None else f"exited with {p.returncode}"
            try:
                with open(f"{self.dir}/{log}") as f:
                    tail = f.read()[-1500:]
            except OSError:
                tail = ""
            out.append(f"--- {name}: {state}\n{tail}")
        return "\n".join(out)

    def stop(self):
        for p in reversed(self.procs):
            stop_process(p)
        self.procs = []
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


# ------------------------------------------------------------ measurements
def iperf3_json(topo, *client_args, duration=5):
    server, client = topo.host_ns[1], topo.host_ns[0]
    srv = subprocess.Popen(["ip", "netns", "exec", server, "iperf3", "-s", "-1", "-J"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = srv_out = ""
    try:
        time.sleep(0.4)
        out = sh("iperf3", "-c", topo.ips[1], "-t", str(duration), "-J", *client_args,
                 ns=client, capture=True, timeout=duration + 15, check=False)
        srv_out, _ = srv.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pass                    # the switch could not carry the test; report nothing
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
        sh("pkill", "-f", f"iperf3 -c {topo.ips[1]}", check=False)

    def parse(text):
        try:
            return json.loads(text) if text.strip() else {}
        except ValueError:
            return {}
    return parse(out), parse(srv_out)


def rx_packets(topo):
    """Frames the receiving host's interface has taken in so far."""
    h = topo.hosts[1]
    return int(sh("cat", f"/sys/class/net/{h.ifname}/statistics/rx_packets", ns=h.ns,
                  capture=True))


def cpu_seconds(pids):
    """User + system CPU time of processes (all their threads) so far."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])      # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def udp_pps(topo, duration=5, size=18, pids=()):
    """64-byte frames (18 bytes of UDP payload), unlimited rate.

    Returns (packets/s read by the iperf3 server, packets/s the switch
    delivered to the receiving host, microseconds of CPU time the processes
    ``pids`` used per delivered frame, or None without pids).  With every
    switch the sender outruns the receiving application, so the second
    figure is the switch's forwarding rate and the first what the
    application keeps up with.
    """
    before = rx_packets(topo)
    cpu0 = cpu_seconds(pids)
    _, server = iperf3_json(topo, "-u", "-b", "0", "-l", str(size), duration=duration)
    cpu = cpu_seconds(pids) - cpu0
    delivered = rx_packets(topo) - before       # the test's frames (and a few of its control)
    s = server.get("end", {}).get("sum", {})
    secs = s.get("seconds") or duration
    read = (s.get("packets", 0) - s.get("lost_packets", 0)) / secs
    # the switch's CPU time per delivered frame, in microseconds
    cpu_us = cpu / delivered * 1e6 if pids and read and delivered > 0 else None
    return read, (delivered / secs if read else 0.0), cpu_us


def tcp_bps(topo, duration=5):
    client, _ = iperf3_json(topo, duration=duration)
    return client.get("end", {}).get("sum_received", {}).get("bits_per_second", 0.0)


def ping_rtt(topo, count=50):
    out = sh("ping", "-q", "-c", str(count), "-i", "0.01", "-W", "2", topo.ips[1],
             ns=topo.host_ns[0], capture=True, check=False, timeout=60)
    for line in out.splitlines():
        if "min/avg/max" in line:
            return float(line.split("=")[1].split("/")[1])
    return float("nan")


def wait_reachable(topo, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sh("ping", "-c", "1", "-W", "1", topo.ips[1], ns=topo.host_ns[0], check=False) == 0:
            return True
    return False
