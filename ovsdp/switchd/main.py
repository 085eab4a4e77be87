"""``ovsdp switchd DP``: run the learning-switch handler for one datapath."""

import argparse
import logging
import os
import signal
import sys

from ..cli.main import setup_logging
from .switch import LearningSwitch

log = logging.getLogger(__name__)


def main(argv=None):
    p = argparse.ArgumentParser(prog="ovsdp switchd",
                                description="A MAC-learning switch (OpenFlow NORMAL) that "
                                "handles the upcalls of one datapath.")
    p.add_argument("datapath")
    p.add_argument("--socket", help="control socket path")
    p.add_argument("--flow-idle", type=float, default=10.0,
                   help="seconds before an idle flow is deleted (default 10)")
    p.add_argument("--mac-aging", type=float, default=300.0,
                   help="seconds before a MAC entry is forgotten (default 300)")
    p.add_argument("--handlers", type=int, default=1, help="upcall handler connections")
    p.add_argument("-v", "--verbose", action="count", default=1)
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    try:
        sw = LearningSwitch(args.datapath, args.socket, args.flow_idle, args.mac_aging,
                            args.handlers)
        sw.start()
    except OSError as e:
        print(f"ovsdp switchd: {args.datapath}: {e}", file=sys.stderr)
        return 1
    r, w = os.pipe()

    def on_signal(signum, _frame):
        os.write(w, b"x")
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, on_signal)
    try:
        sw.run(stop_fd=r)
    except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
        print("ovsdp switchd: the ovsdp daemon went away", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"ovsdp switchd: {e}", file=sys.stderr)
        return 1
    finally:
        sw.close()
        os.close(r)
        os.close(w)
    log.info("switchd: %d upcalls, %d flows installed", sw.n_upcalls, sw.n_installed)
    return 0
