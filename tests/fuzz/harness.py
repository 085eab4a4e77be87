"""The harness: it sends the fuzzers' inputs, checks every answer and, after every batch,
the daemon's health and state; it keeps the findings."""

import collections
import errno
import os
import re
import struct
import sys
import time

from ovsdp import odp
from ovsdp import uapi as U
from ovsdp.client.dpif import Dpif
from ovsdp.netlink.message import NLMSGHDR, build_genl, split

from .conn import Conn, new_conn
from .consts import (
    DUMMY_FAMILY,
    DUMMY_FETCH,
    DUMMY_INJECT,
    DUMMY_PACKET,
    FZFRAME_IFINDEX,
    FZKEEP,
    FZKEEP_FRAME,
    FZKEEP_IFINDEX,
    FZKEEP_KEY,
    FZKEEP_PORT,
    FZKEEP_PORT_NO,
    FZKEEP_UFID,
)
from .daemons import rss_kb
from .findings import Fatal, Finding, Input
from .wire import dummy_body, join_msgs


def tracebacks(text):
    """[(log line before, exception line, innermost 'File' line, block)] in a log text."""
    lines = text.splitlines()
    out = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("Traceback (most recent call last):"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            exc = lines[j] if j < len(lines) else "?"
            files = [ln.strip() for ln in lines[i:j] if ln.strip().startswith("File ")]
            head = lines[i - 1] if i else ""
            block = "\n".join(lines[max(0, i - 1):j + 1])
            out.append((head, exc, files[-1] if files else "", block))
            i = j + 1
        else:
            i += 1
    return out


class Harness:
    """Runs inputs against one daemon (``daemon``: an OwnDaemon or ExternalDaemon)."""

    def __init__(self, daemon, seed, rss_mb=200, timeout=10.0, verbose=False, avoid_known=(),
                 out=None, stream=None):
        self.daemon = daemon
        self.path = daemon.path
        self.seed = seed
        self.rss_mb = rss_mb
        self.timeout = timeout
        self.verbose = verbose
        self.avoid = set(avoid_known)
        self.out = out
        self.stream = stream or sys.stdout
        self.findings = {}
        self.history = collections.deque(maxlen=8)
        self.log_pos = 0
        self.log_text = ""
        self.families = {}
        self.rss_start = None
        self.rss_max = 0
        self.stats = collections.Counter()
        self.errnos = collections.defaultdict(collections.Counter)
        self.by_cmd = collections.defaultdict(collections.Counter)
        self.sentinel_actions = None
        self.start_dps = set()

    # ---------------------------------------------------------- plumbing
    def say(self, text):
        # names that are not UTF-8 arrive as surrogates: print them escaped
        print(text.encode("utf-8", "backslashreplace").decode("utf-8"), file=self.stream,
              flush=True)

    def connect(self):
        return new_conn(self.path, self.timeout)

    def dpif(self):
        return Dpif(self.path, timeout=self.timeout)

    def report(self, f):
        old = self.findings.get(f.signature)
        if old is not None:
            old.count += 1
            return old
        self.findings[f.signature] = f
        if not f.note or self.verbose:
            self.say(f.render(self.seed))
        if self.out:
            os.makedirs(self.out, exist_ok=True)
            base = os.path.join(self.out, f"finding-{len(self.findings):03d}")
            with open(base + ".txt", "w") as fh:
                fh.write(f.render(self.seed, show_inputs=8) + "\n")
            for k, inp in enumerate(f.inputs):
                with open(f"{base}-input{k}.bin", "wb") as fh:
                    fh.write(inp.data)
        return f

    def fatal(self, kind, summary, detail=""):
        f = Finding(kind, summary, detail, fatal=True, inputs=list(self.history))
        last = self.history[-1] if self.history else None
        if last is not None:
            f.fuzzer, f.iteration = last.fuzzer, last.iteration
        self.report(f)
        raise Fatal(f)

    def new_log(self):
        """What the daemon wrote to its log since the last call."""
        p = self.daemon.log_path
        if not p:
            return ""
        try:
            with open(p, "rb") as fh:
                fh.seek(self.log_pos)
                data = fh.read()
        except OSError:
            return ""
        # only whole lines; a traceback being written is read next time
        cut = data.rfind(b"\n") + 1
        self.log_pos += cut
        return data[:cut].decode("utf-8", "replace")

    def scan_log(self, inp=None, wait=False):
        text = self.new_log()
        if wait and "Traceback" in text:
            time.sleep(0.05)
            text += self.new_log()
        found = []
        for _head, exc, loc, block in tracebacks(text):
            sig = "traceback: " + re.sub(r"0x[0-9a-f]+|\d+", "N", exc) + " @ " + \
                re.sub(r"line \d+", "line N", loc)
            f = Finding("traceback", exc, f"daemon log:\n{block}", inputs=list(self.history),
                        signature=sig, fuzzer=inp.fuzzer if inp else None,
                        iteration=inp.iteration if inp else None)
            found.append(self.report(f))
        lines = text.splitlines()
        for k, line in enumerate(lines):
            nxt = lines[k + 1] if k + 1 < len(lines) else ""
            if "internal error" in line.lower() and not nxt.startswith("Traceback"):
                msg = re.sub(r"^\S+ \S+ ", "", line)          # without the time stamp
                f = Finding("log", msg, f"daemon log: {line}", inputs=list(self.history),
                            signature="log: " + re.sub(r"0x[0-9a-f]+|\d+", "N", msg),
                            fuzzer=inp.fuzzer if inp else None,
                            iteration=inp.iteration if inp else None)
                found.append(self.report(f))
        return found, text

    # ------------------------------------------------------------- setup
    def setup(self):
        self.log_pos = 0
        with self.dpif() as c:
            fams = c.sock.all_families()
            self.families = {f.name: f for f in fams}
            for need in (U.OVS_DATAPATH_FAMILY, U.OVS_VPORT_FAMILY, U.OVS_FLOW_FAMILY,
                         U.OVS_PACKET_FAMILY):
                if need not in self.families:
                    raise RuntimeError(f"the daemon has no {need} family")
            self.start_dps = {d.ifindex for d in c.dp_dump()}
            self._make_sentinel(c)
        self.rss_start = rss_kb(self.daemon.pid)
        self.scan_log()
        self.protocol_probes()

    def protocol_probes(self):
        """A few documented behaviours (docs/protocol.md), checked once per daemon."""
        fid = self.families[U.OVS_DATAPATH_FAMILY].id
        dump = lambda seq: build_genl(fid, U.OVS_DP_CMD_GET, 2,  # noqa: E731
                                      U.NLM_F_REQUEST | U.NLM_F_DUMP, seq, 0,
                                      U.OVS_HEADER.pack(0))
        bad = NLMSGHDR.pack(0x1000, fid, U.NLM_F_REQUEST, 99, 0)   # runs past the datagram
        probes = [
            ("two small dumps in one datagram both complete (3.4: a dump that fits the socket "
             "buffer is finished before the next message is read)",
             join_msgs([dump(91), dump(92)]), {91: 0, 92: 0}),
            ("a dump in front of a badly framed part is answered in full before the close (1.2)",
             join_msgs([dump(93), bad]), {93: 0}),
        ]
        for what, data, want in probes:
            c = Conn(self.path, self.timeout)
            try:
                res = c.transact(data)
            finally:
                c.close()
            got = {seq: [(t, e) for t, e, _, _ in items] for seq, items in res.terminals().items()}
            for seq, err in want.items():
                if got.get(seq) != [(U.NLMSG_DONE, err)]:
                    inp = Input("probe", 0, what, data)
                    self.report(Finding("protocol", "not as documented: " + what,
                                        f"answers per seq: {got}", inputs=[inp], fuzzer="probe",
                                        iteration=0))
                    break

    def _make_sentinel(self, c):
        for d in c.dp_dump():
            if d.name == FZKEEP:
                c.dp_del(d.ifindex)
        try:
            c.dp_new(FZKEEP, upcall_pid=0, ifindex=FZKEEP_IFINDEX)
        except OSError:
            c.dp_new(FZKEEP, upcall_pid=0)
        c.vport_new(FZKEEP, FZKEEP_PORT, "dummy", port_no=FZKEEP_PORT_NO, upcall_pids=[0])
        key, mask = odp.parse_key(FZKEEP_KEY)
        f = c.flow_new(FZKEEP, key, odp.parse_actions(str(FZKEEP_PORT_NO)), mask=mask,
                       ufid=FZKEEP_UFID)
        self.sentinel_actions = f.actions
        self.sentinel_ifindex = c.ifindex(FZKEEP)

    def protected_ifindexes(self):
        return {self.sentinel_ifindex, FZKEEP_IFINDEX, FZFRAME_IFINDEX}

    # ------------------------------------------------------------ inputs
    def run_input(self, conn, inp, check_framing=True):
        """Send one input on ``conn``; check what every input must satisfy."""
        self.history.append(inp)
        self.stats[inp.fuzzer] += 1
        res = conn.transact(inp.data)
        if res.timed_out:
            if not self.daemon.alive():
                self.crashed()
            missing = {s: lo for s, (lo, _) in res.expected.items()}
            self.fatal("hang", f"no answer within {conn.timeout:.0f} s "
                               f"(pong {'seen' if res.got_pong else 'missing'}; "
                               f"{len(res.msgs)} messages received)",
                       f"expected terminals per seq: {missing}")
        if res.closed and not self.daemon.alive():
            self.crashed()
        problems = []
        if res.malformed:
            problems.append(("malformed-answer", "an answer datagram is not well framed",
                             res.malformed[0][:256].hex()))
        for h, raw in res.msgs:
            if h.type in (U.NLMSG_ERROR, U.NLMSG_DONE):
                if conn.portid is not None and h.pid != conn.portid:
                    problems.append(("protocol", f"answer with port id {h.pid:#x}, "
                                     f"ours is {conn.portid:#x}", raw[:64].hex()))
        terms = res.terminals()
        what = {}
        if self.verbose:
            for h, raw in split(inp.data)[0]:
                what[h.seq] = (h.type, raw[16] if len(raw) > 16 and h.type >= 0x10 else None)
        for seq, items in terms.items():
            for typ, err, text, _off in items:
                e = errno.errorcode.get(err, str(err)) if err else "0"
                self.errnos[inp.fuzzer][e] += 1
                if seq in what:
                    self.by_cmd[what[seq]][e] += 1
                if text and "internal error" in text:
                    problems.append(("internal-error", f"answer EINVAL \"internal error\" "
                                     f"({'NLMSG_DONE' if typ == U.NLMSG_DONE else 'NLMSG_ERROR'}"
                                     f", seq {seq})", ""))
                if err is None:
                    problems.append(("malformed-answer", "an NLMSG_ERROR/DONE that does not parse",
                                     ""))
        if check_framing and not res.timed_out:
            if res.framed and res.closed:
                problems.append(("protocol", "connection closed after a well-framed datagram",
                                 f"{len(inp.data)} bytes"))
            if not res.framed and not res.closed:
                problems.append(("protocol", "connection kept open after a datagram that is "
                                 "not well framed (docs/protocol.md 1.2)",
                                 f"{len(inp.data)} bytes"))
            overrun = any(h.type == U.NLMSG_OVERRUN for h, _ in res.msgs)
            for seq, (lo, hi) in res.expected.items():
                n = len(terms.get(seq, ()))
                if overrun and n < lo:
                    continue            # answers dropped, and the client told (1.5)
                if res.closed and not res.framed and n < lo:
                    problems.append(("protocol", f"request seq {seq} before the bad part of the "
                                     f"datagram got no answer before the close", ""))
                elif n < lo and not res.closed:
                    problems.append(("protocol", f"request seq {seq} asked for an answer and got "
                                     f"none ({n} < {lo})", ""))
                elif n > hi:
                    problems.append(("protocol", f"request seq {seq} got {n} answers, at most "
                                     f"{hi} expected", ""))
        if check_framing and not res.timed_out:
            order = [h.seq for h, _ in split(inp.data)[0]]
            if len(set(order)) == len(order):
                rank = {q: k for k, q in enumerate(order)}
                got = [rank[h.seq] for h, _ in res.msgs
                       if h.type == U.NLMSG_ERROR and h.seq in rank]
                if got != sorted(got):
                    problems.append(("protocol", "acks/errors came out of request order", ""))
        tb, _ = self.scan_log(inp, wait=any(p[0] == "internal-error" for p in problems))
        for kind, summary, detail in problems:
            if kind == "internal-error" and tb:
                continue      # the traceback said it better
            sig = kind + ": " + re.sub(r"seq \d+|0x[0-9a-f]+|\d+ bytes|\d+", "N", summary)
            self.report(Finding(kind, summary, detail, inputs=list(self.history), signature=sig,
                                fuzzer=inp.fuzzer, iteration=inp.iteration))
        return res

    def crashed(self):
        self.fatal("crash", f"daemon exited (status {self.daemon.returncode()})",
                   self._log_tail())

    def _log_tail(self):
        p = self.daemon.log_path
        if not p:
            return ""
        try:
            text = open(p, errors="replace").read()
        except OSError:
            return ""
        return "daemon log (end):\n" + "\n".join(text.splitlines()[-25:])

    # ------------------------------------------------------------- batch
    def check(self, label=""):
        """The checks after every batch; a failure raises Fatal."""
        if not self.daemon.alive():
            self.crashed()
        t0 = time.monotonic()
        try:
            c = self.dpif()
        except OSError as e:
            self.fatal("probe", f"cannot connect: {e}")
        try:
            try:
                fam = c.sock.family(U.OVS_DATAPATH_FAMILY)
                if fam.name != U.OVS_DATAPATH_FAMILY or \
                        fam.id != self.families[U.OVS_DATAPATH_FAMILY].id:
                    self.fatal("probe", f"CTRL_CMD_GETFAMILY answered {fam!r}")
                names = [d.name for d in c.dp_dump()]
            except (OSError, TimeoutError, KeyError, IndexError, struct.error) as e:
                self.fatal("probe", f"GETFAMILY + OVS_DP_CMD_GET dump on a fresh connection "
                                    f"failed: {type(e).__name__}: {e}")
            if FZKEEP not in names:
                self.fatal("state-lost", f"sentinel datapath {FZKEEP} missing from the dump",
                           f"datapaths: {names[:20]}")
            try:
                dp = c.dp_get(FZKEEP)
                vp = c.vport_get(name=FZKEEP_PORT)
                fl = c.flow_get(dp.ifindex, ufid=FZKEEP_UFID)
            except (OSError, TimeoutError) as e:
                self.fatal("state-lost", f"sentinel datapath, port or flow gone: {e}")
            if vp.port_no != FZKEEP_PORT_NO or vp.type != U.OVS_VPORT_TYPE_DUMMY or \
                    vp.dp_ifindex != dp.ifindex:
                self.fatal("state-lost", f"sentinel port changed: {vp}")
            if fl.actions != self.sentinel_actions:
                self.fatal("state-lost", "sentinel flow's actions changed",
                           f"{(fl.actions or b'').hex()} != {self.sentinel_actions.hex()}")
            try:
                body = dummy_body(FZKEEP_PORT)
                c.sock.genl_request(DUMMY_FAMILY, DUMMY_FETCH, body, dump=True)
                c.sock.genl_request(DUMMY_FAMILY, DUMMY_INJECT,
                                    dummy_body(FZKEEP_PORT, FZKEEP_FRAME))
                got = c.sock.genl_request(DUMMY_FAMILY, DUMMY_FETCH, body, dump=True)
            except (OSError, TimeoutError) as e:
                self.fatal("state-lost", f"sentinel port does not take a frame: {e}")
            frames = [m.attrs.get(DUMMY_PACKET) for m in got]
            if frames != [FZKEEP_FRAME]:
                self.fatal("state-lost", "the sentinel flow no longer forwards its frame",
                           f"fetched {len(frames)} frames")
            self.invariants(c)
        finally:
            c.close()
        took = time.monotonic() - t0
        if took > self.timeout:
            self.fatal("slow", f"batch checks took {took:.1f} s")
        rss = rss_kb(self.daemon.pid)
        if rss is not None:
            self.rss_max = max(self.rss_max, rss)
            if self.rss_start is not None and rss > self.rss_start + self.rss_mb * 1024:
                self.fatal("memory", f"VmRSS {rss // 1024} MB > start {self.rss_start // 1024} MB "
                                     f"+ {self.rss_mb} MB")
        self.scan_log()

    def invariants(self, c):
        """What must hold between the objects any client can list."""
        problems = []
        ifindexes = collections.defaultdict(list)
        try:
            dps = c.dp_dump()
            for dp in dps:
                ports = c.vport_dump(dp.ifindex)
                local = [v for v in ports if v.port_no == U.OVSP_LOCAL]
                if len(local) != 1 or local[0].name != dp.name or local[0].ifindex != dp.ifindex:
                    problems.append(f"datapath {dp.name!r}: local port {local!r}")
                for v in ports:
                    if v.ifindex:
                        ifindexes[v.ifindex].append(ascii(f"{dp.name}/{v.name}"))
                flows = c.flow_dump(dp.ifindex)
                if len(flows) != dp.n_flows:
                    problems.append(f"datapath {dp.name!r}: n_flows {dp.n_flows} but "
                                    f"{len(flows)} flows in the dump")
        except (OSError, TimeoutError) as e:
            self.fatal("probe", f"dumping datapaths, ports and flows failed: {e}")
        for idx, who in ifindexes.items():
            if len(who) > 1:
                problems.append(f"ifindex {idx:#x} is shared by ports {', '.join(who)}")
        for p in problems:
            sig = "invariant: " + re.sub(r"'[^']*'|0x[0-9a-f]+|\d+", "N", p)
            self.report(Finding("invariant", p, inputs=list(self.history), signature=sig,
                                fuzzer=self.history[-1].fuzzer if self.history else None,
                                iteration=self.history[-1].iteration if self.history else None))

    # ----------------------------------------------------------- cleanup
    def cleanup(self):
        """Delete what the run created (datapaths that were not there at the start)."""
        try:
            with self.dpif() as c:
                for d in c.dp_dump():
                    if d.ifindex not in self.start_dps:
                        try:
                            c.dp_del(d.ifindex)
                        except OSError:
                            pass
        except (OSError, TimeoutError):
            pass
