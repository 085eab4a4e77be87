"""Hosts in network namespaces behind veths: the demo's, tests' and benchmarks' network.

:class:`Testbed` creates namespaces, each with a veth whose other end stays in
the root namespace for a switch to attach, and records everything it made so
that :meth:`Testbed.teardown` removes it all again, also after a failure or
an interrupt.  Needs root and iproute2.
"""

import os
import shutil
import subprocess
import time


class TestbedError(RuntimeError):
    pass


def run(*args, ns=None, check=True, capture=False, timeout=60, input=None):
    """Run a command (in namespace ``ns``); returns stdout when ``capture``."""
    cmd = list(args)
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    r = subprocess.run(cmd, input=input, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and r.returncode:
        raise TestbedError(f"{' '.join(cmd)}: {r.stderr.strip() or f'exit {r.returncode}'}")
    return r.stdout if capture else r.returncode


def stop_process(p, timeout=10):
    """SIGTERM, then SIGKILL if ``p`` (a Popen) has not exited within ``timeout`` s."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def requirements(tools=("ip",)):
    """What is missing to build a testbed: a list of human-readable problems."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root privileges (network namespaces and interfaces)")
    for t in tools:
        if not shutil.which(t):
            pkg = {"ip": "iproute2", "ping": "iputils-ping", "iperf3": "iperf3",
                   "ethtool": "ethtool"}.get(t, t)
            missing.append(f"the '{t}' command (Debian package {pkg})")
    return missing


class Host:
    def __init__(self, name, ns, ifname, port, ip4, ip6):
        self.name = name
        self.ns = ns
        self.ifname = ifname            # the interface inside the namespace
        self.port = port                # its peer in the root namespace
        self.ip4 = ip4
        self.ip6 = ip6
        self.mac = None

    def run(self, *args, **kw):
        return run(*args, ns=self.ns, **kw)

    def popen(self, *args, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.ns, *args], **kw)


class Testbed:
    """Namespaces ``names`` on 10.0.0.0/24 and fd00::/64 (host i gets .i / ::i)."""

    def __init__(self, names, port_prefix="ovsdp-", net4="10.0.0", net6="fd00::",
                 offloads=True, ipv6=True):
        self.hosts = []
        for i, n in enumerate(names, 1):
            self.hosts.append(Host(n, n, f"{n}-eth0", f"{port_prefix}{n}", f"{net4}.{i}",
                                   f"{net6}{i}" if ipv6 else None))
        self.net4 = net4
        self.offloads = offloads
        self.made_ns = []
        self.made_links = []

    def __enter__(self):
        try:
            return self.setup()
        except BaseException:
            self.teardown()
            raise

    def __exit__(self, *exc):
        self.teardown()

    def check_free(self):
        have_ns = run("ip", "netns", "list", capture=True).split()
        for h in self.hosts:
            if h.ns in have_ns:
                raise TestbedError(f"namespace {h.ns} already exists (left by an earlier run? "
                                   f"'ip netns del {h.ns}' removes it)")
            if os.path.exists(f"/sys/class/net/{h.port}"):
                raise TestbedError(f"interface {h.port} already exists "
                                   f"('ip link del {h.port}' removes it)")

    def setup(self):
        self.check_free()
        for h in self.hosts:
            run("ip", "netns", "add", h.ns)
            self.made_ns.append(h.ns)
            run("ip", "link", "add", h.ifname, "type", "veth", "peer", "name", h.port)
            self.made_links.append(h.port)
            run("ip", "link", "set", h.ifname, "netns", h.ns)
            h.run("ip", "link", "set", "lo", "up")
            h.run("ip", "addr", "add", f"{h.ip4}/24", "dev", h.ifname)
            if h.ip6:
                h.run("ip", "-6", "addr", "add", f"{h.ip6}/64", "dev", h.ifname, "nodad")
            h.run("ip", "link", "set", h.ifname, "up")
            if not self.offloads and shutil.which("ethtool"):
                h.run("ethtool", "-K", h.ifname, "tx", "off", check=False)
            # the root end is only a switch port: no addresses, no IPv6 chatter
            run("sysctl", "-qw", f"net.ipv6.conf.{h.port}.disable_ipv6=1", check=False)
            run("ip", "link", "set", h.port, "up")
            h.mac = h.run("cat", f"/sys/class/net/{h.ifname}/address", capture=True).strip()
        return self

    def teardown(self):
        for port in self.made_links:
            run("ip", "link", "del", port, check=False)
        for ns in self.made_ns:
            # processes left in the namespace (servers) go with it
            pids = run("ip", "netns", "pids", ns, check=False, capture=True) or ""
            for pid in pids.split():
                try:
                    os.kill(int(pid), 9)
                except (OSError, ValueError):
                    pass
            run("ip", "netns", "del", ns, check=False)
        self.made_links = []
        self.made_ns = []

    # ---------------------------------------------------------- utilities
    def host(self, name):
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def ping(self, src, dst_ip, count=2, v6=False, timeout=2):
        """(ok, average RTT in ms or None)."""
        args = ["ping", "-c", str(count), "-i", "0.2", "-W", str(timeout)]
        if v6:
            args.insert(1, "-6")
        r = subprocess.run(["ip", "netns", "exec", src.ns, *args, dst_ip],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=count * 2 + timeout + 10)
        rtt = None
        for line in r.stdout.splitlines():
            if "min/avg/max" in line:
                rtt = float(line.split("=")[1].split("/")[1])
        return r.returncode == 0, rtt

    def wait_ping(self, src, dst_ip, v6=False, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping(src, dst_ip, count=1, v6=v6, timeout=1)[0]:
                return True
        return False
