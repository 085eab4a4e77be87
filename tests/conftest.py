"""Shared fixtures: in-process and subprocess daemons, raw clients, namespaces."""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from ovsdp.client.dpif import Dpif
from ovsdp.server.daemon import Daemon

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ThreadDaemon:
    """A daemon whose loop runs in a thread of the test process."""

    def __init__(self, path, real_devices=False):
        self.daemon = Daemon(path, real_devices=real_devices)
        self.path = path
        self.module = self.daemon.module
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)
        self.thread.start()

    def call(self, fn, *args):
        """Run ``fn`` in the loop thread and wait for its result."""
        done = threading.Event()
        box = {}

        def run():
            try:
                box["v"] = fn(*args)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                box["e"] = e
            done.set()
        self.daemon.loop.call_soon(run)
        self.daemon.loop.wakeup()
        assert done.wait(10), "daemon loop did not run the call"
        if "e" in box:
            raise box["e"]
        return box.get("v")

    def stop(self):
        self.daemon.stop()
        self.thread.join(10)
        self.daemon.close()


@pytest.fixture
def sock_path():
    with tempfile.TemporaryDirectory(prefix="ovsdp-test-") as d:
        os.chmod(d, 0o755)
        yield os.path.join(d, "ovsdp.sock")


@pytest.fixture
def daemon(sock_path):
    """An in-memory daemon (internal ports are not TAP devices)."""
    d = ThreadDaemon(sock_path)
    yield d
    d.stop()


@pytest.fixture
def real_daemon(sock_path):
    """A daemon with real devices (TAP internal ports, AF_PACKET netdevs)."""
    d = ThreadDaemon(sock_path, real_devices=True)
    yield d
    d.stop()


@pytest.fixture
def dpif(daemon):
    c = Dpif(daemon.path)
    yield c
    c.close()


@contextlib.contextmanager
def subprocess_daemon(path, *extra):
    """``ovsdp daemon`` as a separate process; killed on exit."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    log = open(path + ".log", "w+")
    p = subprocess.Popen([sys.executable, "-m", "ovsdp", "daemon", "--socket", path, *extra],
                         env=env, stdout=log, stderr=log, text=True)
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(path):
            if p.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"daemon did not start: {log.read()}")
            time.sleep(0.02)
        yield p
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


def add_arp_flows(dpif, dp, n):
    """``n`` exact ARP flows (source MACs 1..n) from port 1 to port 1."""
    from ovsdp import uapi as U
    from ovsdp.datapath import flow_key as F
    from ovsdp.datapath import flow_netlink_put as FNP
    from ovsdp.datapath import key_layout as K
    from ovsdp.netlink.attr import nla_u32
    meta = K.make(in_port=1)
    for i in range(n):
        k = F.extract(bytes(6) + (i + 1).to_bytes(6, "big") + b"\x08\x06" + bytes(28), meta)
        dpif.flow_new(dp, FNP.put_key(k, k, False), nla_u32(U.OVS_ACTION_ATTR_OUTPUT, 1),
                      echo=False)


def raw_connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.settimeout(5)
    return s
