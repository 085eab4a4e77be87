#!/usr/bin/env python3
"""Forwarding benchmark: Linux bridge vs Open vSwitch userspace vs ovsdp.

Two namespaces behind veths are joined by each switch in turn (alternating,
``--rounds`` times) and measured with the same tools in the same run:

- UDP packets/s for 64-byte frames (iperf3 -u -b 0 -l 18): what the iperf3
  server reads, and what the switch delivers to the receiving host (its
  interface counter) -- the sender outruns the receiving application with
  every switch, so the second is the switch's forwarding rate,
- TCP throughput (iperf3),
- ping round-trip time,
- the CPU time the switch's processes use per delivered UDP frame (Open
  vSwitch and ovsdp; the bridge works in softirq context).

The switches: the Linux bridge; Open vSwitch's ovs-vswitchd with
datapath_type=netdev (its userspace datapath, NORMAL); ovsdp with its own
learning switch (``ovsdp switchd``); and the same ovs-vswitchd binary as
the second, NORMAL too, with datapath_type=system on ovsdp (``ovsdp ovs
start``): ovs-vswitchd on ovsdp against ovs-vswitchd on its userspace
datapath.

Prints each figure and ovsdp's ratio to each reference.  Needs root,
iproute2 and iperf3; Open vSwitch (Debian's openvswitch-switch) is skipped
with a note when it is absent.  By default it measures twice: with checksum
offload (and so TSO) off inside the namespaces, the setting Open vSwitch's
userspace datapath needs, and on, the Linux default.

    python3 bench/forwarding.py [--duration 5] [--rounds 2] [--offloads off|on|both]
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from netns import (  # noqa: E402
    LinuxBridge,
    Ovsdp,
    OvsOnOvsdp,
    OvsUserspace,
    Topology,
    missing_prerequisite,
    ping_rtt,
    tcp_bps,
    udp_pps,
    wait_reachable,
)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=5.0, help="seconds per iperf3 test")
    p.add_argument("--rounds", type=int, default=2, help="times each switch is measured")
    p.add_argument("--offloads", choices=("off", "on", "both"), default="both",
                   help="checksum offload (and so TSO) in the namespaces; Open vSwitch's "
                        "userspace datapath needs it off (default: measure both)")
    p.add_argument("--switches", default="linux-bridge,ovs-netdev,ovsdp,ovs-on-ovsdp")
    args = p.parse_args(argv)
    why = missing_prerequisite("forwarding.py")
    if why:
        print(why, file=sys.stderr)
        return 1
    settings = ["off", "on"] if args.offloads == "both" else [args.offloads]
    for setting in settings:
        measure(args, setting == "on")
    return 0


def retry(fn, sw, what):
    """A measurement, taken again once when the first try carried nothing."""
    v = fn()
    if not (v[0] if isinstance(v, tuple) else v):
        print(f"note: {sw.name}: the {what} test carried nothing; trying it once more",
              flush=True)
        if hasattr(sw, "diagnose"):
            print(sw.diagnose(), flush=True)
        v = fn()
    return v


def measure(args, offloads):
    topo = Topology(offloads=offloads)
    kinds = {"linux-bridge": LinuxBridge, "ovs-netdev": OvsUserspace, "ovsdp": Ovsdp,
             "ovs-on-ovsdp": OvsOnOvsdp}
    switches = []
    for name in args.switches.split(","):
        sw = kinds[name](topo)
        ok, why = sw.available()
        if ok:
            switches.append(sw)
        else:
            print(f"note: skipping {name}: {why}")
    results = {sw.name: {"udp_pps": [], "udp_dlv": [], "udp_cpu": [], "tcp_bps": [],
                         "rtt_ms": []} for sw in switches}
    label = "on" if offloads else "off"
    print(f"\n== checksum offload (and TSO) in the namespaces: {label} ==", flush=True)
    try:
        topo.setup()
        for rnd in range(args.rounds):
            order = switches if rnd % 2 == 0 else list(reversed(switches))
            for sw in order:
                sw.start()
                try:
                    if not wait_reachable(topo):
                        print(f"{sw.name}: hosts cannot reach each other; skipped this round")
                        continue
                    r = results[sw.name]
                    r["rtt_ms"].append(ping_rtt(topo))
                    pids = sw.pids()
                    read, dlv, cpu = retry(lambda p=pids: udp_pps(topo, args.duration, pids=p),
                                           sw, "UDP")
                    r["udp_pps"].append(read)
                    r["udp_dlv"].append(dlv)
                    if cpu is not None:
                        r["udp_cpu"].append(cpu)
                    r["tcp_bps"].append(retry(lambda: tcp_bps(topo, args.duration), sw, "TCP"))
                    print(f"round {rnd + 1} {sw.name:13s} udp read {read / 1e3:6.1f} kpps, "
                          f"delivered {dlv / 1e3:6.1f} kpps  tcp {r['tcp_bps'][-1] / 1e9:6.2f}"
                          f" Gbit/s  rtt {r['rtt_ms'][-1]:6.3f} ms"
                          + (f"  cpu {cpu:5.2f} us/pkt" if cpu is not None else ""),
                          flush=True)
                finally:
                    sw.stop()
    finally:
        for sw in switches:
            sw.stop()
        topo.teardown()

    def med(name, k):
        v = results.get(name, {}).get(k) or []
        return statistics.median(v) if v else None

    print(f"\noffload {label}; {args.duration:g} s per test, median of {args.rounds} rounds "
          "(0 = the switch could not carry the test)")
    print(f"{'switch':14s} {'UDP pps read':>13s} {'delivered':>10s} {'CPU us/pkt':>11s} "
          f"{'TCP Gbit/s':>11s} {'ping RTT ms':>12s}")
    for sw in switches:
        u, d = med(sw.name, "udp_pps"), med(sw.name, "udp_dlv")
        c = med(sw.name, "udp_cpu")
        t, r = med(sw.name, "tcp_bps"), med(sw.name, "rtt_ms")
        cpu = f"{c:11.2f}" if c is not None else f"{'-':>11s}"
        print(f"{sw.name:14s} {u or 0:13.0f} {d or 0:10.0f} {cpu} {(t or 0) / 1e9:11.2f} "
              f"{r or float('nan'):12.3f}")
    print("(CPU us/pkt: the switch's processes' CPU time per delivered UDP frame, lower is "
          "better;\n the bridge forwards in the kernel's softirq context and has none)")
    for mine, ref in (("ovsdp", "linux-bridge"), ("ovsdp", "ovs-netdev"),
                      ("ovs-on-ovsdp", "linux-bridge"), ("ovs-on-ovsdp", "ovs-netdev")):
        if mine in results and ref in results and results[ref]["udp_pps"]:
            ratios = []
            for k, what in (("udp_pps", "UDP pps read"), ("udp_dlv", "UDP pps delivered"),
                            ("tcp_bps", "TCP")):
                a, b = med(mine, k), med(ref, k)
                if a and b:
                    ratios.append(f"{what} x{a / b:.2f}")
                elif a and not b:
                    ratios.append(f"{what}: {ref} failed")
            a, b = med(mine, "udp_cpu"), med(ref, "udp_cpu")
            if a and b:
                ratios.append(f"CPU per packet x{a / b:.2f}")
            a, b = med(mine, "rtt_ms"), med(ref, "rtt_ms")
            if a and b:
                ratios.append(f"RTT x{a / b:.2f}")
            print(f"{mine} / {ref}: " + ", ".join(ratios))


if __name__ == "__main__":
    sys.exit(main())
