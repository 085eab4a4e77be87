"""A fuzzing run: the daemon, the harness and the fuzzers in alternating batches, and the
summary; and the replay of one datagram."""

import errno
import re
import shutil
import tempfile
import time

from ovsdp import uapi as U
from ovsdp.netlink.message import parse_error

from .conn import Conn
from .ctrl import CtrlFuzzer
from .daemons import ExternalDaemon, OwnDaemon
from .findings import Fatal
from .frame_fuzz import FrameFuzzer
from .harness import Harness

FUZZERS = {"ctrl": CtrlFuzzer, "frame": FrameFuzzer}


def run(path=None, seconds=10.0, seed=1, fuzzers=("ctrl", "frame"), iterations=None, batch=25,
        rss_mb=200, timeout=10.0, verbose=False, avoid_known=(), keep_going=False, out=None,
        workdir=None, netns=True, proc=None, log_path=None, stream=None):
    """Fuzz for ``seconds``; returns the list of findings (empty when all is well)."""
    own = path is None
    tmp = None
    if own:
        tmp = workdir or tempfile.mkdtemp(prefix="fz-")
        daemon = OwnDaemon(tmp, netns=netns)
        daemon.start()
    else:
        daemon = ExternalDaemon(path, proc, log_path)
    h = Harness(daemon, seed, rss_mb, timeout, verbose, avoid_known, out, stream)
    fz = []
    t_start = time.monotonic()
    deadline = t_start + seconds
    try:
        h.setup()
        fz = [FUZZERS[n](h, seed) for n in fuzzers]
        for f in fz:
            f.setup()
        h.check("setup")
        done = False
        while not done:
            for f in fz:
                try:
                    for _ in range(batch):
                        if time.monotonic() > deadline or \
                                (iterations is not None and f.iteration >= iterations):
                            break
                        f.step()
                    f.batch_end()
                    h.check()
                except Fatal:
                    if not (keep_going and own) or time.monotonic() > deadline:
                        done = True
                        break
                    h.say("restarting the daemon")
                    daemon.stop()
                    daemon.start()
                    h.setup()
                    for g in fz:
                        g.conn = None
                        g.setup()
            if time.monotonic() > deadline or (iterations is not None and
                                               all(f.iteration >= iterations for f in fz)):
                done = True
    finally:
        for f in fz:
            try:
                f.teardown()
            except OSError:
                pass
        if daemon.alive():
            if not own:
                h.cleanup()
            h.scan_log()
        daemon.stop()
        if own and workdir is None and tmp is not None and \
                not any(not f.note for f in h.findings.values()):
            shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - t_start
    summary = [f"fuzz: seed {seed}, {elapsed:.1f} s, " +
               ", ".join(f"{f.name} {f.iteration} inputs" for f in fz) +
               (f", VmRSS {h.rss_start // 1024 if h.rss_start else '?'} -> "
                f"{h.rss_max // 1024} MB" if h.rss_max else "")]
    if verbose:
        summary.append("  " + ", ".join(f"{k}: {v}" for k, v in sorted(h.stats.items())))
        for name, c in h.errnos.items():
            summary.append(f"  {name} answers: " +
                           ", ".join(f"{k} {v}" for k, v in c.most_common()))
        names = {f.id: f.name for f in h.families.values()}
        for (t, cmd), c in sorted(h.by_cmd.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
            if sum(c.values()) >= 20:
                summary.append(f"    {names.get(t, hex(t))} cmd {cmd}: " +
                               ", ".join(f"{k} {v}" for k, v in c.most_common(6)))
    findings = [f for f in h.findings.values() if not f.note]
    notes = [f for f in h.findings.values() if f.note]
    for title, items in ((f"{len(findings)} finding(s):", findings),
                         (f"{len(notes)} note(s), not counted as failures:", notes)):
        if items:
            summary.append(title)
            for f in items:
                summary.append(f"  [{f.kind}]{' fatal' if f.fatal else ''} x{f.count} "
                               f"(first: {f.fuzzer} #{f.iteration}): {f.summary}")
    if findings and own and tmp is not None:
        summary.append(f"daemon logs kept in {tmp}")
    if not findings:
        summary.append("no findings")
    h.say("\n".join(summary))
    return findings


def replay(path, hexdata, timeout=5.0):
    """Send one datagram (hex) to a daemon and print what comes back."""
    data = bytes.fromhex(re.sub(r"\s+", "", hexdata))
    c = Conn(path, timeout)
    res = c.transact(data)
    print(f"sent {len(data)} bytes; closed={res.closed} timed_out={res.timed_out} "
          f"pong={res.got_pong}")
    for hdr, raw in res.msgs:
        line = f"  type {hdr.type:#x} flags {hdr.flags:#x} seq {hdr.seq} len {hdr.len}"
        if hdr.type in (U.NLMSG_ERROR, U.NLMSG_DONE):
            err, text, off = parse_error(raw)
            line += f": {errno.errorcode.get(err, err) if err else 'ok'} {text or ''}" \
                    f"{f' @{off}' if off is not None else ''}"
        print(line)
    c.close()
    return res
