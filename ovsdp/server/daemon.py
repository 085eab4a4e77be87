"""``ovsdp daemon``: module init plus the transport, in the foreground."""

import logging
import os
import resource
import signal

from .. import uapi as U
from .. import vports
from ..datapath.flow_table import REBALANCE_INTERVAL_MS
from ..datapath.module import Module
from ..vports.linkwatch import LinkWatch
from .loop import Loop
from .netns import Namespaces
from .transport import Server

log = logging.getLogger(__name__)
CT_GC_INTERVAL = 1.0            # seconds between conntrack garbage collections
CT_GC_BUDGET = 4096             # expired connections removed per namespace and turn


def socket_path(path=None):
    return path or os.environ.get("OVSDP_SOCKET") or U.OVSDP_DEFAULT_SOCKET


class Daemon:
    """The running datapath: loop, module, control socket, timers."""

    def __init__(self, path=None, real_devices=True, group=None, local_conntrack=True):
        self.path = socket_path(path)
        self.loop = Loop()
        self.module = vports.register(Module(real_devices=real_devices, loop=self.loop,
                                             local_conntrack=local_conntrack))
        self.real_devices = real_devices
        self.linkwatches = {}        # OvsNet -> LinkWatch
        self.namespaces = Namespaces(self.module, self.loop, self._watch, self._unwatch)
        self._watch(self.module.init_net)
        self.server = Server(self.module, self.loop, self.path, group, self.namespaces)
        self.loop.call_every(REBALANCE_INTERVAL_MS / 1000, self._rebalance)
        self.loop.call_every(CT_GC_INTERVAL, self._ct_gc)

    def _watch(self, net):
        """netdev ports whose device is deleted are detached (dp_notify),
        with one rtnetlink watch per namespace."""
        if not self.real_devices:
            return
        try:
            self.linkwatches[net] = LinkWatch(self.module, self.loop, net)
        except OSError as e:
            log.warning("%s: cannot watch rtnetlink for vanished devices: %s", net.name, e)

    def _unwatch(self, net):
        w = self.linkwatches.pop(net, None)
        if w is not None:
            w.close()

    def _ct_gc(self):
        """gc_worker(): each namespace's expired connections, a bounded number
        per turn (lookups meeting an expired one remove it too); and its
        fragment queues whose time is up (ip_expire()).  Removing an expired
        connection reports its destroy event, so a conntrack listener hears of
        an idle connection's end within about CT_GC_INTERVAL of its timeout."""
        for net in list(self.module.nets.values()):
            net.conntrack.gc(CT_GC_BUDGET)
            net.defrag.expire()

    def _rebalance(self):
        for dp in self.module.datapaths:
            dp.table.rebalance()

    def run(self):
        self.loop.run()

    def stop(self):
        self.loop.stop()

    def close(self):
        self.server.shutdown()
        self.module.shutdown()
        for w in self.linkwatches.values():
            w.close()
        self.linkwatches.clear()
        self.namespaces.close()
        self.loop.close()


def _raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(path=None, real_devices=True, group=None, local_conntrack=True):
    _raise_nofile()
    d = Daemon(path, real_devices, group, local_conntrack)
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
