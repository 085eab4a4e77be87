#!/usr/bin/env python3
"""The packet pipeline in memory, on one core (no sockets, no kernel).

Measures, with dummy ports:
- packets/s through the whole path (key extraction, lookup, actions, stats)
  for one flow, and for 1000 flows spread over 1, 16 and 64 masks;
- the same for single frames (Datapath.receive, what the in-memory dummy
  ports use), for batches of one (Datapath.receive_batch with one frame:
  what a real port hands over when a look at its ring or socket finds one
  frame, the lightly loaded case) and batches of 256 (a loaded port);
- established connections through conntrack: ct(zone)+recirc, and the
  same with NAT (ct(nat) translating every packet), against the one-flow
  path of the same run;
- the control plane over its socket against the socket's own limit
  (bench/control.py: a minimal request/ack server run in the same script);
- memory per flow with 100k flows.

The one-flow figure is set against a minimal Python loop measured in the
same run (one dict lookup per frame and an append: the local limit).

    python3 bench/pipeline.py [--quick]
"""

import argparse
import gc
import os
import random
import resource
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ovsdp import odp, vports  # noqa: E402
from ovsdp import uapi as U  # noqa: E402
from ovsdp.datapath import flow_netlink as FN  # noqa: E402
from ovsdp.datapath import flow_netlink_actions as FA  # noqa: E402
from ovsdp.datapath.flow_table import Flow  # noqa: E402
from ovsdp.datapath.module import Module  # noqa: E402
from ovsdp.datapath.vport import VportParms  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import control  # noqa: E402


def udp_frame(src_ip, dst_ip, sport, dport, src_mac=b"\x00\x00\x00\x00\x00\x01",
              dst_mac=b"\x00\x00\x00\x00\x00\x02", size=64):
    import struct
    payload = b"\0" * (size - 42)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 0, 0, 64, 17, 0,
                     src_ip.to_bytes(4, "big"), dst_ip.to_bytes(4, "big"))
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    return dst_mac + src_mac + b"\x08\x00" + ip + udp + payload


def setup(n_ports=2):
    m = vports.register(Module(real_devices=False))
    dp = m.new_datapath(m.init_net, "bench")
    m.new_vport(VportParms("bench", U.OVS_VPORT_TYPE_INTERNAL, None, dp, 0, b"\0\0\0\0"))
    m.add_datapath(dp)
    ports = [m.new_vport(VportParms(f"p{i}", U.OVS_VPORT_TYPE_DUMMY, None, dp, i,
                                    b"\0\0\0\0")) for i in range(1, n_ports + 1)]
    for p in ports:
        p.sent.maxlen and p.sent.clear()
    return m, dp, ports


def install(dp, key_text, actions_text, ufid=None):
    k, mk = odp.parse_key(key_text)
    key, mask = FN.get_match(k, mk)
    acts = FA.copy_actions(odp.parse_actions(actions_text), key & mask)
    f = Flow(key & mask, None, ufid or os.urandom(16), acts, FA.put_actions(acts))
    dp.table.insert(f, mask)
    return f


def ip_int(text):
    a, b, c, d = map(int, text.split("."))
    return a << 24 | b << 16 | c << 8 | d


def rate(fn, n):
    gc.collect()
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def bench_one_flow(n):
    m, dp, (p1, p2) = setup()
    install(dp, "in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),"
                "eth_type(0x0800),ipv4(frag=no)", "2")
    frame = udp_frame(ip_int("10.0.0.1"), ip_int("10.0.0.2"), 1000, 2000)
    frames = [frame] * 256
    p2.sent = _Sink()

    def single():
        receive = dp.receive
        for _ in range(n):
            receive(frame, p1)

    def batch():
        rb = dp.receive_batch
        for _ in range(n // 256):
            rb(frames, p1)

    def batch_of_one():
        rb = dp.receive_batch
        one = (frame,)
        for _ in range(n):
            rb(one, p1)
    r1 = rate(single, n)
    r2 = rate(batch_of_one, n)
    r3 = rate(batch, n // 256 * 256)
    assert p2.tx_packets >= 2 * n, "frames did not reach the output port"
    return r1, r2, r3


class _Sink:
    """A dummy port's 'sent' queue that only counts (no memory growth)."""

    maxlen = None

    def __init__(self):
        self.n = 0

    def append(self, _x):
        self.n += 1

    def clear(self):
        self.n = 0


def bench_conntrack(n, nat=False, n_conns=1):
    """Packets/s of established UDP connections (port 1 to port 2) through
    ct(zone=1[,nat]),recirc then a match on ct_state, in batches of 256."""
    m, dp, (p1, p2) = setup()
    eth = "eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0800),ipv4(frag=no)"
    reth = "eth(src=00:00:00:00:00:02,dst=00:00:00:00:00:01),eth_type(0x0800),ipv4(frag=no)"
    lookup = "ct(zone=1,nat)" if nat else "ct(zone=1)"
    commit = "ct(commit,zone=1,nat(src=10.9.9.9))" if nat else "ct(commit,zone=1)"
    for key, acts in (
            (f"recirc_id(0),in_port(1),ct_state(-trk),{eth}", f"{lookup},recirc(0x1)"),
            (f"recirc_id(0x1),in_port(1),ct_state(+trk+new),{eth}", f"{commit},2"),
            (f"recirc_id(0x1),in_port(1),ct_state(+trk+est),{eth}", "2"),
            (f"recirc_id(0),in_port(2),ct_state(-trk),{reth}", f"{lookup},recirc(0x2)"),
            (f"recirc_id(0x2),in_port(2),ct_state(+trk+est),{reth}", "1")):
        install(dp, key, acts)
    a, b, snat = ip_int("10.0.0.1"), ip_int("10.0.0.2"), ip_int("10.9.9.9")
    frames = [udp_frame(a, b, 1000 + i, 2000) for i in range(n_conns)]
    for i, f in enumerate(frames):               # open each connection, then a reply
        dp.receive_batch([f], p1)
        dst = snat if nat else a
        dp.receive_batch([udp_frame(b, dst, 2000, 1000 + i, b"\0\0\0\0\0\x02",
                                    b"\0\0\0\0\0\x01")], p2)
    assert len(dp.conntrack) == n_conns, "the connections were not committed"
    batch = (frames * (256 // n_conns + 1))[:256]
    p2.sent = _Sink()

    def run():
        rb = dp.receive_batch
        for _ in range(n // 256):
            rb(batch, p1)
    r = rate(run, n // 256 * 256)
    assert p2.sent.n >= n // 256 * 256, "frames did not reach the output port"
    return r


def masks_for(n_masks):
    """n distinct masks: IPv4 destination prefixes /24../32, UDP port and TTL masks.

    Every flow's destination differs within its /24, so flows never collapse
    onto one masked key.
    """
    out = []
    for ttl in (False, True):
        for pmask in (0, 0xFFFF, 0xFF00, 0xF000):
            for plen in range(24, 33):
                out.append((plen, pmask, ttl))
    return out[:n_masks]


def _dotted(v):
    return ".".join(str(b) for b in v.to_bytes(4, "big"))


class _NoCache(dict):
    """An exact-match cache that never remembers: every packet searches the masks."""

    def __setitem__(self, key, value):
        pass


def bench_many_flows(n, n_flows, n_masks, emc=True, mask_cache=True):
    m, dp, (p1, p2) = setup()
    p2.sent = _Sink()
    if not emc:
        dp.table.emc = _NoCache()
    if not mask_cache:
        dp.table.resize_cache(0)
    rnd = random.Random(n_masks)
    masks = masks_for(n_masks)
    frames = []
    for i in range(n_flows):
        plen, pmask, ttl = masks[i % n_masks]
        dst = ip_int("10.0.0.0") + (i << 8) + 1
        netmask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
        dport = 1000 + i
        proto = ",proto=17" if pmask else ""
        ttl_txt = ",ttl=64" if ttl else ""
        l4 = ""
        if pmask:
            l4 = f",udp(dst={dport}" + (f"/0x{pmask:x}" if pmask != 0xFFFF else "") + ")"
        text = ("in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0800),"
                f"ipv4(dst={_dotted(dst & netmask)}/{_dotted(netmask)}{proto}{ttl_txt},"
                f"frag=no){l4}")
        k, mk = odp.parse_key(text)
        key, mask = FN.get_match(k, mk)
        if dp.table.lookup(key & mask) is not None:
            continue            # an overlapping megaflow: skipped, as a handler would
        install(dp, text, "2")
        frames.append(udp_frame(ip_int("10.0.0.1"), dst, rnd.randrange(1, 65535), dport))
    rnd.shuffle(frames)
    batches = [frames[i:i + 256] for i in range(0, len(frames), 256)]
    total = 0
    reps = max(1, n // len(frames))

    def run():
        nonlocal total
        rb = dp.receive_batch
        for _ in range(reps):
            for b in batches:
                rb(b, p1)
                total += len(b)
    r = rate(run, reps * len(frames))
    return r, len(dp.table), dp.table.n_masks, dp.n_missed


def bench_minimal_loop(n):
    """The local limit: what any forwarder written in Python must do per frame
    (take it, one dict lookup on its first bytes, append it to the output
    list), in batches of 256 like the one-flow figure it is set against."""
    frame = udp_frame(ip_int("10.0.0.1"), ip_int("10.0.0.2"), 1000, 2000)
    frames = [frame] * 256
    table = {frame[:14]: 2}

    def run():
        get = table.get
        for _ in range(n // 256):
            out = []
            append = out.append
            for f in frames:
                if get(f[:14]) is not None:
                    append(f)
    return rate(run, n // 256 * 256)


def bench_memory(n_flows):
    m, dp, _ = setup()
    k0, mk = odp.parse_key("in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),"
                           "eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.1.0.1,proto=17,tos=0,"
                           "ttl=64,frag=no),udp(src=1,dst=2)")
    key, mask = FN.get_match(k0, mk)
    acts = FA.copy_actions(odp.parse_actions("2"), key)
    acts_bytes = FA.put_actions(acts)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    from ovsdp.datapath import key_layout as K
    for i in range(n_flows):
        k = K.put(key, "ipv4_src", (10 << 24) | i)
        dp.table.insert(Flow(k, k, os.urandom(16), acts, acts_bytes), mask)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n_flows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer packets (for a smoke run)")
    args = p.parse_args(argv)
    n = 100_000 if args.quick else 1_000_000
    print(f"ovsdp pipeline benchmark (in memory, one core, Python {sys.version.split()[0]})")
    single, one, batch = bench_one_flow(n)
    print(f"one flow, single frames      {single:12,.0f} packets/s")
    print(f"one flow, batches of 1       {one:12,.0f} packets/s")
    print(f"one flow, batches of 256     {batch:12,.0f} packets/s")
    loop = bench_minimal_loop(n)
    print(f"minimal Python loop          {loop:12,.0f} packets/s  (one flow, batches of 256: "
          f"x{batch / loop:.2f} of it)")
    print("conntrack, established UDP, batches of 256:")
    for nat, conns, title in ((False, 1, "ct(zone)+recirc, 1 connection"),
                              (False, 1000, "ct(zone)+recirc, 1000 conns "),
                              (True, 1, "ct(nat)+recirc, 1 connection "),
                              (True, 1000, "ct(nat)+recirc, 1000 conns  ")):
        r = bench_conntrack(n // 4, nat, conns)
        print(f"  {title}{r:12,.0f} packets/s  (x{r / batch:.2f} of one flow)")
    for emc, mc, title in ((True, True, "exact-match cache on (repeated flows):"),
                           (False, True, "exact-match cache off, mask cache on:"),
                           (False, False, "both caches off (a tuple-space search per packet):")):
        print(title)
        for masks in (1, 16, 64):
            r, nflows, nmasks, missed = bench_many_flows(n // (1 if emc else 4), 1000, masks,
                                                         emc, mc)
            print(f"  {nflows} flows, {nmasks:2d} masks      {r:12,.0f} packets/s"
                  f"{'' if not missed else f'  ({missed} misses)'}")
    print("control plane over the socket (bench/control.py):")
    control.run(5000 if args.quick else 20000, 50, 1000 if args.quick else 5000,
                20_000 if args.quick else 100_000, 1 if args.quick else 3,
                print_=lambda line: print("  " + line))
    per_flow, rss = bench_memory(20_000 if args.quick else 100_000)
    print(f"memory per flow (100k flows) {per_flow:12,.0f} bytes  (peak RSS {rss / 1024:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
