"""``ovsdp daemon``: module init plus the transport, in the foreground."""

import logging
import os
import resource
import signal

from .. import uapi as U
from ..datapath.flow_table import REBALANCE_INTERVAL_MS
from ..datapath.module import Module
from ..vports.linkwatch import LinkWatch
from .loop import Loop
from .transport import Server

log = logging.getLogger(__name__)


def socket_path(path=None):
    return path or os.environ.get("OVSDP_SOCKET") or U.OVSDP_DEFAULT_SOCKET


class Daemon:
    """The running datapath: loop, module, control socket, timers."""

    def __init__(self, path=None, real_devices=True, group=None):
        self.path = socket_path(path)
        self.loop = Loop()
        self.module = Module(real_devices=real_devices, loop=self.loop)
        self.server = Server(self.module, self.loop, self.path, group)
        self.linkwatch = None
        if real_devices:
            # netdev ports whose device is deleted are detached (dp_notify)
            try:
                self.linkwatch = LinkWatch(self.module, self.loop)
            except OSError as e:
                log.warning("cannot watch rtnetlink for vanished devices: %s", e)
        self.loop.call_every(REBALANCE_INTERVAL_MS / 1000, self._rebalance)

    def _rebalance(self):
        for dp in self.module.datapaths:
            dp.table.rebalance()

    def run(self):
        self.loop.run()

    def stop(self):
        self.loop.stop()

    def close(self):
        if self.linkwatch is not None:
            self.linkwatch.close()
        self.server.shutdown()
        self.module.shutdown()
        self.loop.close()


def _raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(path=None, real_devices=True, group=None):
    _raise_nofile()
    d = Daemon(path, real_devices, group)
    log.info("ovsdp daemon listening on %s (read-only: %s)", d.path, d.server.ro_path)

    def on_signal(signum, _frame):
        log.info("signal %d: shutting down", signum)
        d.stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        d.run()
    finally:
        d.close()
        for s, h in old.items():
            signal.signal(s, h)
        log.info("ovsdp daemon stopped")
    return 0
