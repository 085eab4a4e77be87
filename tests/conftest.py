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
from ovsdp.testbed import stop_process

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
        stop_process(p)
        log.close()


@contextlib.contextmanager
def two_host_datapath(prefix, net4, net6="fd00::", flows=lambda pa, pb: ()):
    """Two hosts (namespaces ``prefix``h1, h2 of a Testbed) on the netdev
    ports of datapath ``prefix``d in a subprocess daemon, with the ODP text
    ``flows(pa, pb)`` gives (pairs of key and actions, by port number);
    yields (socket, datapath name, testbed).  Every namespace and link named
    with ``prefix`` is removed afterwards, also when something failed."""
    from ovsdp import testbed
    from ovsdp.cli import dpctl

    tmp = tempfile.mkdtemp(prefix=prefix + "-")
    os.chmod(tmp, 0o755)
    sock = os.path.join(tmp, "ovsdp.sock")
    dp = prefix + "d"
    bed = testbed.Testbed([f"{prefix}h{i}" for i in (1, 2)], port_prefix="p-",
                          net4=net4, net6=net6)
    try:
        with bed, subprocess_daemon(sock):
            for _ in range(200):            # the socket file exists before listen()
                try:
                    Dpif(sock).close()
                    break
                except ConnectionRefusedError:
                    time.sleep(0.02)
            with Dpif(sock) as c:
                c.dp_new(dp, upcall_pid=0)
                for h in bed.hosts:
                    h.port_no = c.vport_new(dp, h.port, "netdev").port_no
            for key, actions in flows(*(h.port_no for h in bed.hosts)):
                err = []
                with open(os.devnull, "w") as null:
                    rc = dpctl.run(["add-flow", dp, key, actions], socket=sock, stdout=null,
                                   stderr=Lines(err))
                assert rc == 0, "".join(err)
            yield sock, dp, bed
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        for n in testbed.run("ip", "netns", "list", capture=True).split():
            if n.startswith(prefix):
                testbed.run("ip", "netns", "del", n, check=False)
        for n in os.listdir("/sys/class/net"):
            if prefix in n:
                testbed.run("ip", "link", "del", n, check=False)


class Lines:
    """A text sink that keeps what is written (a stderr for dpctl.run)."""

    def __init__(self, buf):
        self.buf = buf

    def write(self, text):
        self.buf.append(text)

    def flush(self):
        pass


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
