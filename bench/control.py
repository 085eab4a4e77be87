#!/usr/bin/env python3
"""The control plane over its socket, against the socket's own limit.

The daemon runs as its own process (``ovsdp daemon --no-devices``), as it
does for ovs-vswitchd; the client side is a lean loop that sends requests
built beforehand and reads the answers, so that what is measured is the
daemon.  The reference, run in the same script: a minimal request/ack
server, also its own process, on the same kind of socket (AF_UNIX
SOCK_SEQPACKET), answering each netlink message of a datagram with an ack
as small as the daemon's, to the same client loop.  Its round trips per
second are the transport's ceiling, and every figure is printed as a
fraction of it:

- flow installs, one OVS_FLOW_CMD_NEW per datagram (acked, no echo);
- flow installs batched, ``--batch`` puts per datagram as ovs-vswitchd's
  handlers send them (one ack each), in flows/s;
- flow deletes by UFID, one per datagram and batched;
- a flow dump of every flow (flows/s, and the time for all of them);
- upcall round trips: a frame put into a dummy port (ovsdp_dummy INJECT,
  no ack) misses, the handler reads the MISS upcall and answers with
  OVS_PACKET_CMD_EXECUTE (acked).

    python3 bench/control.py [--flows N] [--batch B] [--upcalls N]
"""

import argparse
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ovsdp import odp  # noqa: E402
from ovsdp import uapi as U  # noqa: E402
from ovsdp.client.dpif import Dpif  # noqa: E402
from ovsdp.netlink.attr import nla, nla_nest, nla_string, nla_u32  # noqa: E402
from ovsdp.netlink.message import build_genl  # noqa: E402
from ovsdp.testbed import stop_process  # noqa: E402

NLMSGHDR = struct.Struct("=IHHII")
ERRNO = struct.Struct("=i")

# The reference server: one process; an ack per netlink message.  In
# "upcall" mode it takes two connections, an injector's and a handler's: a
# message from the injector becomes an upcall-sized datagram to the handler,
# a message from the handler gets its ack (the same exchange as an upcall
# round trip through the daemon).
CEILING_SERVER = r"""
import select, socket, struct, sys
path, mode, upcall_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(path)
s.listen(2)
print("ready", flush=True)
hdr = struct.Struct("=IHHII")
ack = struct.Struct("=IHHIIi16s")
buf = bytearray(1 << 17)
view = memoryview(buf)
upcall = bytes(upcall_size)
c, _ = s.accept()
if mode == "ack":
    recv_into, send = c.recv_into, c.send
    while True:
        n = recv_into(buf)
        if not n:
            break
        off = 0
        while off + 16 <= n:
            length, _t, _f, seq, _p = hdr.unpack_from(buf, off)
            send(ack.pack(36, 2, 0x100, seq, 1, 0, bytes(view[off:off + 16])))
            off += (length + 3) & ~3
else:
    h, _ = s.accept()
    while True:
        ready, _, _ = select.select([c, h], [], [])
        for sock in ready:
            n = sock.recv_into(buf)
            if not n:
                sys.exit(0)
            off = 0
            while off + 16 <= n:
                length, _t, _f, seq, _p = hdr.unpack_from(buf, off)
                if sock is c:
                    h.send(upcall)
                else:
                    h.send(ack.pack(36, 2, 0x100, seq, 1, 0, bytes(view[off:off + 16])))
                off += (length + 3) & ~3
"""


def udp_frame(src, dst, sport, dport, size=64):
    payload = b"\0" * (size - 42)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 0, 0, 64, 17, 0,
                     src.to_bytes(4, "big"), dst.to_bytes(4, "big"))
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    return (b"\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x01\x08\x00" + ip + udp + payload)


class LeanClient:
    """Requests built beforehand, sent and answered with no per-message parsing
    beyond the ack's errno."""

    def __init__(self, path=None, sock=None):
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sock.connect(path)
        self.sock = sock
        self.buf = bytearray(1 << 17)

    def close(self):
        self.sock.close()

    def one_by_one(self, msgs):
        """Each message in its own datagram, waiting for its ack."""
        return self.batched(msgs, 1)

    def batched(self, msgs, batch):
        """``batch`` messages per datagram; then one ack per message."""
        send, recv_into, buf = self.sock.send, self.sock.recv_into, self.buf
        unpack = ERRNO.unpack_from
        grams = [(b"".join(msgs[i:i + batch]), len(msgs[i:i + batch]))
                 for i in range(0, len(msgs), batch)]
        bad = 0
        t = time.perf_counter()
        for gram, k in grams:
            send(gram)
            for _ in range(k):
                recv_into(buf)
                if unpack(buf, 16)[0]:
                    bad += 1
        dt = time.perf_counter() - t
        if bad:
            raise RuntimeError(f"{bad} of {len(msgs)} requests failed")
        return len(msgs) / dt

    def dump(self, msg):
        """One dump request; the number of messages it returned and the time."""
        send, recv_into, buf = self.sock.send, self.sock.recv_into, self.buf
        n = 0
        t = time.perf_counter()
        send(msg)
        while True:
            size = recv_into(buf)
            off = 0
            while off < size:
                length, mtype = NLMSGHDR.unpack_from(buf, off)[:2]
                if mtype == U.NLMSG_DONE:
                    return n, time.perf_counter() - t
                if mtype == U.NLMSG_ERROR:
                    raise RuntimeError(f"dump failed: errno {-ERRNO.unpack_from(buf, off + 16)[0]}")
                n += 1
                off += (length + 3) & ~3


def placement():
    """(client CPU, server CPU): the two sides on two different CPUs when there
    are two, so that the daemon and the reference servers are measured with
    the same placement (a wakeup across CPUs costs several times one on the
    same CPU, and the scheduler's choice would otherwise change between
    runs); None when the machine has one CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def start(args, path, ready):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=env)
    where = placement()
    if where is not None:
        os.sched_setaffinity(p.pid, {where[1]})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ready(p):
            return p
        if p.poll() is not None:
            raise RuntimeError(f"{args[0]} exited with {p.returncode}")
        time.sleep(0.02)
    p.kill()
    raise RuntimeError(f"{' '.join(args)} did not start")


def stop(p):
    stop_process(p)


def _reference(mode, upcall_size=0):
    d = tempfile.mkdtemp(prefix="ovsdp-bench-ceil-")
    path = os.path.join(d, "ceiling.sock")
    p = start([sys.executable, "-c", CEILING_SERVER, path, mode, str(upcall_size)], path,
              lambda p: p.stdout.readline().strip() == "ready")
    return p, path, d


class Reference:
    """The reference servers, kept running while the daemon is measured, so
    that the two are measured in turns (machines of this kind vary from one
    second to the next)."""

    def __init__(self):
        self.procs = []
        self.ack = None
        self.upcall = None

    def start_ack(self):
        p, path, d = _reference("ack")
        self.procs.append((p, d))
        self.ack = LeanClient(path)

    def start_upcall(self, upcall_size):
        p, path, d = _reference("upcall", upcall_size)
        self.procs.append((p, d))
        self.upcall = (LeanClient(path), LeanClient(path))

    def close(self):
        for c in [self.ack, *(self.upcall or ())]:
            if c is not None:
                c.close()
        for p, d in self.procs:
            stop(p)
            shutil.rmtree(d, ignore_errors=True)


def _trips(c, h, inject, answer, n, batch):
    """Upcalls/s: ``batch`` injects in one datagram (no ack); the handler reads
    that many upcalls, sends their answers in one datagram and reads the acks."""
    send, recv_into, hbuf = c.sock.send, h.sock.recv_into, h.buf
    hsend = h.sock.send
    unpack = ERRNO.unpack_from
    gram = inject * batch
    done = 0
    t = time.perf_counter()
    while done < n:
        send(gram)
        answers = []
        for _ in range(batch):
            size = recv_into(hbuf)
            answers.append(answer(memoryview(hbuf)[:size]))
        hsend(b"".join(answers))
        for _ in range(batch):
            recv_into(hbuf)
            if unpack(hbuf, 16)[0]:
                raise RuntimeError(f"EXECUTE failed: errno {-unpack(hbuf, 16)[0]}")
        done += batch
    return done / (time.perf_counter() - t)


def flow_msgs(family_id, ifindex, n, cmd, flags, with_key=True):
    """``n`` flow requests by UFID; with ``with_key``, megaflows as ovs-vswitchd
    installs them: a key, a mask that wildcards some of it, actions."""
    acts = nla_nest(U.OVS_FLOW_ATTR_ACTIONS, odp.parse_actions("2"))
    out = []
    for i in range(n):
        body = U.OVS_HEADER.pack(ifindex)
        if with_key:
            key, mask = odp.parse_key(
                "in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),"
                f"eth_type(0x0800),ipv4(src=10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255},"
                "dst=10.255.0.1/255.255.0.0,proto=17,tos=0/0,ttl=64/0,frag=no),"
                "udp(src=1/0,dst=2)")
            body += (nla_nest(U.OVS_FLOW_ATTR_KEY, key) + nla_nest(U.OVS_FLOW_ATTR_MASK, mask)
                     + acts)
        body += nla(U.OVS_FLOW_ATTR_UFID, i.to_bytes(16, "big"))
        out.append(build_genl(family_id, cmd, U.OVS_FLOW_VERSION,
                              U.NLM_F_REQUEST | U.NLM_F_ACK | flags, i + 1, 0, body))
    return out


def dump_msg(family_id, ifindex, ufid_flags=None):
    body = U.OVS_HEADER.pack(ifindex)
    if ufid_flags is not None:
        body += nla_u32(U.OVS_FLOW_ATTR_UFID_FLAGS, ufid_flags)
    return build_genl(family_id, U.OVS_FLOW_CMD_GET, U.OVS_FLOW_VERSION,
                      U.NLM_F_REQUEST | U.NLM_F_DUMP, 1, 0, body)


def control(n_flows, batch, n_upcalls, dump_flows, rounds):
    """Each figure's median over ``rounds``, the daemon's and the reference's
    measured in turns."""
    d = tempfile.mkdtemp(prefix="ovsdp-bench-ctl-")
    path = os.path.join(d, "ovsdp.sock")
    daemon = start([sys.executable, "-m", "ovsdp", "daemon", "--no-devices", "--socket", path],
                   path, lambda p: os.path.exists(path))
    ref = Reference()
    runs = {}

    def note(name, value, ceiling=None):
        runs.setdefault(name, []).append(value)
        if ceiling is not None:             # the figure against this round's ceiling
            runs.setdefault(name + "/ceiling", []).append(value / ceiling)
    try:
        time.sleep(0.1)
        ref.start_ack()
        setup = Dpif(path)
        handler = Dpif(path)
        setup.dp_new("cb", upcall_pid=handler.portid)
        setup.vport_new("cb", "cb1", "dummy", port_no=1, upcall_pids=[handler.portid])
        setup.vport_new("cb", "cb2", "dummy", port_no=2, upcall_pids=[handler.portid])
        ifindex = setup.ifindex("cb")
        fam = setup.sock.family(U.OVS_FLOW_FAMILY).id
        c = LeanClient(path)
        new = U.NLM_F_CREATE | U.NLM_F_EXCL
        puts = flow_msgs(fam, ifindex, n_flows, U.OVS_FLOW_CMD_NEW, new)
        dels = flow_msgs(fam, ifindex, n_flows, U.OVS_FLOW_CMD_DEL, 0, with_key=False)
        ref.ack.one_by_one(puts[:1000])                    # warm up
        probe = puts[:5000]

        def ceiling():
            """The ceiling now, for the figures of this round."""
            ce = ref.ack.one_by_one(probe)
            note("ceiling", ce)
            return ce
        for _ in range(rounds):
            ce = ceiling()
            note("installs", c.one_by_one(puts), ce)
            note("deletes", c.one_by_one(dels), ce)
            note("ceiling_batched", ref.ack.batched(puts, batch))
            note("installs_batched", c.batched(puts, batch), ce)
            note("deletes_batched", c.batched(dels, batch), ce)
        # the dump: dump_flows flows in the table
        big = flow_msgs(fam, ifindex, dump_flows, U.OVS_FLOW_CMD_NEW, new)
        c.batched(big, batch)
        del big
        for _ in range(rounds):
            ce = ceiling()
            for name, flags in (("dump", None),
                                ("terse", U.OVS_UFID_F_OMIT_KEY | U.OVS_UFID_F_OMIT_MASK
                                 | U.OVS_UFID_F_OMIT_ACTIONS)):
                n, secs = c.dump(dump_msg(fam, ifindex, flags))
                if n != dump_flows:
                    raise RuntimeError(f"the dump returned {n} of {dump_flows} flows")
                note(name + "_secs", secs)
                note(name + "_rate", n / secs, ce)
        setup.flow_flush("cb")
        inject, execute, sizes = upcall_msgs(setup, ifindex)
        h = LeanClient(sock=handler.sock.sock)
        _trips(c, h, inject, execute, 10, 1)                # the first upcall's size
        ref.start_upcall(sizes[0][0])
        rc, rh = ref.upcall
        exe = sizes[0][1]
        for _ in range(rounds):
            ce = ceiling()
            ref1 = _trips(rc, rh, inject, lambda _up: exe, n_upcalls, 1)
            note("upcalls", _trips(c, h, inject, execute, n_upcalls, 1), ce)
            runs.setdefault("upcalls/reference", []).append(runs["upcalls"][-1] / ref1)
            ref50 = _trips(rc, rh, inject, lambda _up: exe, n_upcalls, batch)
            note("upcalls_batched", _trips(c, h, inject, execute, n_upcalls, batch), ce)
            runs.setdefault("upcalls_batched/reference", []).append(
                runs["upcalls_batched"][-1] / ref50)
            note("upcall_reference", ref1)
            note("upcall_reference_batched", ref50)
        c.close()
        setup.close()
        handler.close()
        return {k: statistics.median(v) for k, v in runs.items()}, runs
    finally:
        ref.close()
        stop(daemon)
        shutil.rmtree(d, ignore_errors=True)


def upcall_msgs(setup, ifindex):
    """The upcall exchange: a frame put into a dummy port (ovsdp_dummy INJECT,
    no ack) misses; the handler reads the MISS upcall and sends the packet
    back with EXECUTE (acked), copying the upcall's PACKET and KEY as
    ovs-vswitchd does.  Returns the INJECT, the handler's answer function and
    a list that gets the first upcall's size and answer."""
    dummy = setup.sock.family(U.OVSDP_DUMMY_FAMILY)
    frame = udp_frame(0x0A000001, 0x0A000002, 5, 6)
    inject = build_genl(dummy.id, U.OVSDP_DUMMY_CMD_INJECT, dummy.version, U.NLM_F_REQUEST,
                        0, 0, U.OVS_HEADER.pack(ifindex)
                        + nla_string(U.OVSDP_DUMMY_ATTR_PORT_NAME, "cb1")
                        + nla(U.OVSDP_DUMMY_ATTR_PACKET, frame))
    pkt = setup.sock.family(U.OVS_PACKET_FAMILY).id
    acts = nla_nest(U.OVS_PACKET_ATTR_ACTIONS, odp.parse_actions("2"))
    attr = struct.Struct("=HH")
    wanted = (U.OVS_PACKET_ATTR_PACKET, U.OVS_PACKET_ATTR_KEY)
    sizes = []

    def execute(up):
        size = len(up)
        off, parts = 20 + U.OVS_HEADER_LEN, [U.OVS_HEADER.pack(ifindex)]
        while off + 4 <= size:
            alen, atype = attr.unpack_from(up, off)
            if atype & U.NLA_TYPE_MASK in wanted:
                parts.append(bytes(up[off:off + alen]) + b"\0" * (-alen % 4))
            off += (alen + 3) & ~3
        parts.append(acts)
        msg = build_genl(pkt, U.OVS_PACKET_CMD_EXECUTE, U.OVS_PACKET_VERSION,
                         U.NLM_F_REQUEST | U.NLM_F_ACK, 1, 0, b"".join(parts))
        if not sizes:
            sizes.append((size, msg))
        return msg

    return inject, execute, sizes


def run(n_flows=20000, batch=50, n_upcalls=5000, dump_flows=100_000, rounds=3, print_=print):
    """Print the figures (medians over ``rounds``) and their ratios (medians of
    each round's ratio to the ceiling measured just before)."""
    where = placement()
    mine = os.sched_getaffinity(0)
    if where is not None:
        os.sched_setaffinity(0, {where[0]})
    try:
        out, runs = control(n_flows, batch, n_upcalls, dump_flows, rounds)
    finally:
        os.sched_setaffinity(0, mine)
    ce = runs["ceiling"]
    print_(f"medians of {rounds} rounds; each ratio is the median of the rounds' ratios to "
           "the ceiling measured just before them;")
    print_("clients on CPU %d, servers (ovsdp, reference) on CPU %d" % where if where else
           "one CPU: clients and servers share it")
    print_(f"transport ceiling (minimal ack server)  {out['ceiling']:10,.0f} round trips/s"
           f"  ({min(ce):,.0f}..{max(ce):,.0f}; {out['ceiling_batched']:,.0f}/s with {batch} "
           "per datagram)")
    rows = (("installs", "flow installs, one per datagram", "/s"),
            ("installs_batched", f"flow installs, {batch} per datagram", " flows/s"),
            ("deletes", "flow deletes, one per datagram", "/s"),
            ("deletes_batched", f"flow deletes, {batch} per datagram", " flows/s"),
            ("dump_rate", f"flow dump of {dump_flows:,} flows", " flows/s"),
            ("terse_rate", "the same, terse (UFID and stats)", " flows/s"),
            (None, f"{out['dump_secs']:.2f} s for all {dump_flows:,} ({out['terse_secs']:.2f} s "
                   "terse)", ""),
            ("upcalls", "upcall round trips, one at a time", "/s"),
            ("upcalls_batched", f"upcall round trips, {batch} at a time", "/s"))
    for key, title, unit in rows:
        if key is None:
            print_(f"{'':40s}{title}")
            continue
        print_(f"{title:40s}{out[key]:10,.0f}{unit:9s}  x{out[key + '/ceiling']:.2f} of the "
               "ceiling")
    print_("upcall exchange (INJECT, MISS upcall, EXECUTE, ack) against the reference server "
           "doing the same:")
    for key, ref in (("upcalls", "upcall_reference"),
                     ("upcalls_batched", "upcall_reference_batched")):
        print_(f"  {'one at a time' if key == 'upcalls' else f'{batch} at a time':14s}"
               f" ovsdp {out[key]:9,.0f}/s  reference {out[ref]:9,.0f}/s"
               f"  x{out[key + '/reference']:.2f}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--flows", type=int, default=20000)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--upcalls", type=int, default=5000)
    p.add_argument("--dump", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    run(args.flows, args.batch, args.upcalls, args.dump, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
