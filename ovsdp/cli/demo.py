"""``ovsdp demo``: three hosts in namespaces switched by ovsdp.

Builds namespaces h1, h2, h3 (10.0.0.1-3/24, fd00::1-3/64) joined by veths to
one ovsdp datapath, starts the daemon and the learning switch, pings every
pair over IPv4 and IPv6, runs a short TCP transfer, prints the datapath and
port statistics and the installed flows, and tears everything down again,
also on Ctrl-C or failure.
"""

import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from ..testbed import Testbed, TestbedError, requirements, stop_process

DP = "ovsdp0"
HOSTS = ("h1", "h2", "h3")


def _die_with_parent():
    """In a child: get SIGTERM when the demo itself dies (PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


class Demo:
    def __init__(self, duration=3.0, out=sys.stdout, verbose=False):
        self.duration = duration
        self.out = out
        self.verbose = verbose
        self.dir = None
        self.sock = None
        self.procs = []
        self.bed = Testbed(HOSTS)

    def say(self, text=""):
        print(text, file=self.out, flush=True)

    # ------------------------------------------------------------- set-up
    def _spawn(self, name, *args):
        log = open(os.path.join(self.dir, f"{name}.log"), "w")
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        p = subprocess.Popen([sys.executable, "-m", "ovsdp", *args], stdout=log, stderr=log,
                             env=env, preexec_fn=_die_with_parent)
        self.procs.append((name, p, log))
        return p

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="ovsdp-demo-")
        self.sock = os.path.join(self.dir, "ovsdp.sock")
        self.say(f"creating namespaces {', '.join(HOSTS)} and their veths")
        self.bed.setup()
        self.say("starting the ovsdp daemon")
        d = self._spawn("daemon", "daemon", "--socket", self.sock)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.sock):
            if d.poll() is not None or time.monotonic() > deadline:
                raise TestbedError("the ovsdp daemon did not start:\n" + self._log("daemon"))
            time.sleep(0.05)
        from ..client.dpif import Dpif
        with Dpif(self.sock) as c:
            c.dp_new(DP, upcall_pid=0)
            for h in self.bed.hosts:
                c.vport_new(DP, h.port, "netdev")
        self.say(f"datapath {DP}: ports " + ", ".join(h.port for h in self.bed.hosts))
        self.say("starting the learning switch (switchd)")
        self._spawn("switchd", "switchd", DP, "--socket", self.sock, *(["-vv"] if self.verbose
                                                                        else []))
        time.sleep(0.5)

    def _log(self, name):
        try:
            with open(os.path.join(self.dir, f"{name}.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        for _name, p, log in reversed(self.procs):
            stop_process(p)
            log.close()
        self.procs = []
        self.bed.teardown()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # --------------------------------------------------------------- steps
    def pings(self):
        ok = True
        for v6 in (False, True):
            self.say(f"\nping over {'IPv6' if v6 else 'IPv4'}:")
            for a in self.bed.hosts:
                for b in self.bed.hosts:
                    if a is b:
                        continue
                    dst = b.ip6 if v6 else b.ip4
                    good, rtt = self.bed.ping(a, dst, count=3, v6=v6)
                    ok &= good
                    res = f"ok, rtt {rtt:.3f} ms" if good else "FAILED"
                    self.say(f"  {a.name} -> {b.name} ({dst}): {res}")
        return ok

    def transfer(self):
        h1, h3 = self.bed.hosts[0], self.bed.hosts[-1]
        self.say(f"\nTCP transfer {h1.name} -> {h3.name}:")
        if shutil.which("iperf3"):
            srv = h3.popen("iperf3", "-s", "-1", stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                out = h1.run("iperf3", "-c", h3.ip4, "-t", str(self.duration), "-f", "m",
                             capture=True, timeout=self.duration + 30, check=False)
                rate = [line for line in out.splitlines() if "receiver" in line]
                if not rate:
                    self.say("  iperf3 did not finish")
                    return False
                fields = rate[0].split()
                self.say(f"  iperf3: {fields[fields.index('Mbits/sec') - 1]} Mbit/s "
                         f"over {self.duration:g} s")
                return True
            finally:
                if srv.poll() is None:
                    srv.kill()
                srv.wait()
        return self._python_transfer(h1, h3)

    def _python_transfer(self, src, dst, size=64 << 20):
        server = ("import socket,sys;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,"
                  "socket.SO_REUSEADDR,1);s.bind(('',5201));s.listen(1);c,_=s.accept();n=0\n"
                  "while True:\n d=c.recv(1<<20)\n if not d: break\n n+=len(d)\nprint(n)")
        srv = dst.popen(sys.executable, "-c", server, stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)
            client = (f"import socket,time;s=socket.create_connection(('{dst.ip4}',5201));"
                      f"b=bytes(1<<20);t=time.time()\nfor _ in range({size >> 20}): s.sendall(b)\n"
                      "s.close();print(time.time()-t)")
            secs = float(src.run(sys.executable, "-c", client, capture=True, timeout=120))
            got = int(srv.communicate(timeout=30)[0])
            self.say(f"  python socket transfer: {got >> 20} MiB in {secs:.2f} s, "
                     f"{got * 8 / secs / 1e6:.0f} Mbit/s (iperf3 not installed)")
            return got == size
        finally:
            if srv.poll() is None:
                srv.kill()
            srv.wait()

    def report(self):
        from . import dpctl
        self.say("\n$ ovsdp dpctl show -s")
        dpctl.run(["show", "-s"], socket=self.sock, stdout=self.out)
        self.say("\n$ ovsdp dpctl dump-flows --names")
        dpctl.run(["dump-flows", "--names"], socket=self.sock, stdout=self.out)

    def run(self):
        self.start()
        for h in self.bed.hosts:
            for other in self.bed.hosts:
                if other is not h:
                    self.bed.wait_ping(h, other.ip4, timeout=5)
        ok = self.pings()
        ok &= self.transfer()
        self.report()
        return ok


def main(argv=None):
    p = argparse.ArgumentParser(prog="ovsdp demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=3.0, help="seconds of TCP transfer")
    p.add_argument("-v", "--verbose", action="store_true", help="switchd logs what it learns")
    args = p.parse_args(argv)
    missing = requirements(("ip", "ping"))
    if missing:
        print("ovsdp demo needs " + "; ".join(missing) + ".\n"
              "On Debian or Ubuntu, as root: scripts/install.sh (or apt-get install iproute2 "
              "iputils-ping iperf3) and run 'ovsdp demo' as root.", file=sys.stderr)
        return 1
    demo = Demo(args.duration, verbose=args.verbose)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt
    # SIGINT too: a process started in the background by a non-interactive
    # shell inherits SIGINT ignored, and Python then leaves it so
    old = signal.signal(signal.SIGTERM, on_signal)
    old_int = signal.signal(signal.SIGINT, on_signal)
    try:
        ok = demo.run()
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    except (TestbedError, OSError, socket.error) as e:
        print(f"ovsdp demo: {e}", file=sys.stderr)
        return 1
    finally:
        demo.stop()
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)
    print("\nall pings answered and the transfer completed; everything has been removed"
          if ok else "\nsome checks failed (see above); everything has been removed")
    return 0 if ok else 1
