#!/usr/bin/env python3
"""Hostile clients: what they cost everybody else.

ovsdp's daemon and learning switch join two namespaces (as in
bench/forwarding.py).  For each scenario, twenty hostile clients run in a
process of their own while this script measures, in the same run:

- how long another client's ``OVS_DP_CMD_GET`` takes (p50, p99, max over
  a GET every 10 ms),
- what UDP traffic at a fixed rate through the datapath loses (iperf3's
  server count), and the ping round trip,

and prints each against the same figures with no hostile client (the
local reference, measured first).  Scenarios (docs/protocol.md, 1.5-1.6):

- ``flood``: each client sends datagrams of 8,192 acked NOOPs, never reads;
- ``dumps``: each client asks for a dump of 20,000 flows and never reads
  it (issue 9's scenario);
- ``redumps``: the same, again on a new connection every 0.2 s (100 dumps
  started per second);
- ``big``: each client sends 128 KiB datagrams of an unknown type (each
  earns a 128 KiB error echo) and never reads; the daemon's memory is
  reported too.

    python3 bench/hostile.py [--duration 5] [--clients 20] [--rate 20M] [--scenarios ...]

The hostile load starts 0.3 s before the measurements (the time its process
takes to start), so the cost of ``dumps``, which comes at its start, is in them.
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from netns import (  # noqa: E402
    ROOT,
    Ovsdp,
    Topology,
    cpu_seconds,
    iperf3_json,
    missing_prerequisite,
    ping_rtt,
    wait_reachable,
)

HOSTILE = r"""
import os, select, socket, struct, sys, time
kind, path, n, seconds, ifindex, family = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.setblocking(False)
    return s
end = time.monotonic() + seconds
if kind == "flood":
    dgram = struct.pack("=IHHII", 16, 1, 5, 1, 0) * 8192
elif kind == "big":
    dgram = struct.pack("=IHHII", 131008, 0x7777, 1, 1, 0) + bytes(131008 - 16)
socks = [connect() for _ in range(n)]
if kind in ("dumps", "redumps"):
    body = struct.pack("=BBHi", 3, 1, 0, ifindex)
    req = struct.pack("=IHHII", 16 + len(body), family, 0x301, 1, 0) + body
    while time.monotonic() < end:
        for s in socks:
            s.send(req)
        time.sleep(0.2 if kind == "redumps" else max(0, end - time.monotonic()))
        for s in socks:
            s.close()
        socks = [connect() for _ in range(n)]
else:
    while time.monotonic() < end:
        _, w, _ = select.select([], socks, [], 0.1)
        for s in w:
            try:
                s.send(dgram)
            except BlockingIOError:
                pass
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--rate", default="20M", help="iperf3 UDP rate (200-byte datagrams)")
    p.add_argument("--scenarios", default="flood,dumps,redumps,big")
    args = p.parse_args(argv)
    why = missing_prerequisite("hostile.py")
    if why:
        print(why, file=sys.stderr)
        return 1
    topo = Topology(prefix="hb", offloads=False)
    sw = Ovsdp(topo)
    results = {}
    try:
        topo.setup()
        sw.start()
        if not wait_reachable(topo):
            print("the hosts cannot reach each other through ovsdp", file=sys.stderr)
            print(sw.diagnose(), file=sys.stderr)
            return 1
        ifindex, family = big_datapath(sw.sock, 20000)
        for name in ["none"] + args.scenarios.split(","):
            results[name] = scenario(args, topo, sw, name, ifindex, family)
            print_row(name, results[name], results["none"])
    finally:
        sw.stop()
        topo.teardown()
    return 0


def big_datapath(sock, n_flows):
    """A second datapath with ``n_flows`` flows, for the dump scenario."""
    from ovsdp import uapi as U
    from ovsdp.client.dpif import Dpif
    from ovsdp.datapath import flow_key as F
    from ovsdp.datapath import flow_netlink_put as FNP
    from ovsdp.datapath import key_layout as K
    from ovsdp.netlink.attr import nla_u32
    meta = K.make(in_port=1)
    with Dpif(sock) as c:
        c.dp_new("hbflows", upcall_pid=0)
        for i in range(n_flows):
            k = F.extract(bytes(6) + (i + 1).to_bytes(6, "big") + b"\x08\x06" + bytes(28), meta)
            c.flow_new("hbflows", FNP.put_key(k, k, False), nla_u32(U.OVS_ACTION_ATTR_OUTPUT, 1),
                       echo=False)
        return c.ifindex("hbflows"), c.sock.family(U.OVS_FLOW_FAMILY).id


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def scenario(args, topo, sw, name, ifindex, family):
    from ovsdp.client.dpif import Dpif
    daemon_pid = sw.procs[0].pid
    hostile = None
    if name != "none":
        env = dict(os.environ, PYTHONPATH=ROOT)
        hostile = subprocess.Popen([sys.executable, "-c", HOSTILE, name, sw.sock,
                                    str(args.clients), str(args.duration + 2), str(ifindex),
                                    str(family)], env=env)
        time.sleep(0.3)                              # the hostile load is on
    try:
        lat = []
        out = {}
        cpu0, t_cpu0 = cpu_seconds([daemon_pid]), time.monotonic()
        # the GETs run while iperf3 carries traffic through the datapath
        t = threading.Thread(target=lambda: out.update(
            udp=iperf3_json(topo, "-u", "-b", args.rate, "-l", "200",
                            duration=args.duration)[1]))
        t.start()
        with Dpif(sw.sock, timeout=30) as c:
            end = time.monotonic() + args.duration
            while time.monotonic() < end:
                t0 = time.perf_counter()
                c.dp_get(sw.dp)
                lat.append(time.perf_counter() - t0)
                time.sleep(0.01)
        t.join()
        cpu = (cpu_seconds([daemon_pid]) - cpu0) / (time.monotonic() - t_cpu0)
        rtt = ping_rtt(topo, count=50)
        rss = rss_mb(daemon_pid)
    finally:
        if hostile is not None:
            hostile.kill()
            hostile.wait()
    s = out.get("udp", {}).get("end", {}).get("sum", {})
    lost = s.get("lost_percent")
    lat.sort()
    return {"p50": statistics.median(lat) * 1e3, "p99": lat[int(len(lat) * 0.99)] * 1e3,
            "max": lat[-1] * 1e3, "n": len(lat), "lost": lost, "rtt": rtt, "rss": rss,
            "cpu": cpu}


def print_row(name, r, base):
    lost = "n/a" if r["lost"] is None else f"{r['lost']:.2f}%"
    line = (f"{name:6s} GET p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms  max {r['max']:7.2f}"
            f" ms ({r['n']} GETs)  udp lost {lost:>7s}  rtt {r['rtt']:6.3f} ms"
            f"  daemon cpu {r['cpu']:4.0%} rss {r['rss']:4.0f} MB")
    if r is not base:
        line += f"  [GET p99 x{r['p99'] / base['p99']:.1f} of none]"
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
