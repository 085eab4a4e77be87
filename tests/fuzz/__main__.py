"""The command line: ``python3 -m tests.fuzz --seconds N --seed S ...`` (see tests/fuzz/)."""

import argparse
import sys

from . import __doc__ as USAGE
from .consts import KNOWN
from .runner import FUZZERS, replay, run


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m tests.fuzz", description=USAGE.split("\n")[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--socket", help="fuzz a running daemon instead of starting one")
    p.add_argument("--log", help="the running daemon's stderr log, to scan for tracebacks")
    p.add_argument("--fuzzers", default="ctrl,frame", help="comma-separated: ctrl, frame")
    p.add_argument("--iterations", type=int, help="at most this many inputs per fuzzer")
    p.add_argument("--batch", type=int, default=25, help="inputs between the batch checks")
    p.add_argument("--rss-mb", type=int, default=200, help="allowed VmRSS growth")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for an answer")
    p.add_argument("--avoid-known", nargs="?", const=",".join(KNOWN), default="",
                   help=f"do not generate inputs for known defects ({', '.join(KNOWN)}; "
                        "all without a value)")
    p.add_argument("--keep-going", action="store_true",
                   help="after a fatal finding restart the daemon and go on (own daemon)")
    p.add_argument("--out", help="directory to write each finding and its inputs to")
    p.add_argument("--workdir", help="directory for the daemon's socket and logs (kept)")
    p.add_argument("--no-netns", action="store_true", help="do not run the daemon in a new netns")
    p.add_argument("--replay-hex", help="send this datagram (hex) to --socket and show the answers")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.replay_hex:
        if not args.socket:
            p.error("--replay-hex needs --socket")
        replay(args.socket, args.replay_hex, args.timeout)
        return 0
    fuzzers = [f.strip() for f in args.fuzzers.split(",") if f.strip()]
    for f in fuzzers:
        if f not in FUZZERS:
            p.error(f"unknown fuzzer {f}")
    avoid = [a for a in args.avoid_known.split(",") if a]
    findings = run(args.socket, args.seconds, args.seed, fuzzers, args.iterations, args.batch,
                   args.rss_mb, args.timeout, args.verbose, avoid, args.keep_going, args.out,
                   args.workdir, not args.no_netns, log_path=args.log)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
