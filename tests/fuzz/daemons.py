"""The daemon under test: one this harness starts and stops, or one somebody else runs."""

import os
import shutil
import signal
import subprocess
import sys
import time

from .conn import Conn
from .consts import ROOT


class OwnDaemon:
    """``python3 -m ovsdp daemon --no-devices`` in a temporary directory."""

    def __init__(self, workdir, netns=True, extra=()):
        self.workdir = workdir
        self.path = os.path.join(workdir, "fz.sock")
        self.netns = netns and os.geteuid() == 0 and shutil.which("unshare") is not None
        self.extra = list(extra)
        self.proc = None
        self.log_path = None
        self.generation = 0

    def start(self):
        self.generation += 1
        self.log_path = os.path.join(self.workdir, f"fz-daemon-{self.generation}.log")
        cmd = [sys.executable, "-m", "ovsdp", "daemon", "--socket", self.path, "--no-devices",
               *self.extra]
        if self.netns:
            cmd = ["unshare", "--net", "--", *cmd]
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=ROOT)
        log.close()
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                if self.netns:          # unshare refused (no privilege in a container): plain
                    self.netns = False
                    return self.start()
                raise RuntimeError("daemon did not start: " + open(self.log_path).read())
            if os.path.exists(self.path):
                try:
                    Conn(self.path).close()
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("daemon did not start: " + open(self.log_path).read())
            time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def returncode(self):
        return self.proc.poll()

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ExternalDaemon:
    """A daemon somebody else started; its pid comes from SO_PEERCRED."""

    def __init__(self, path, proc=None, log_path=None):
        self.path = path
        self.proc = proc
        self.log_path = log_path
        self.generation = 1
        c = Conn(path)
        self._pid = c.peer_pid() if proc is None else proc.pid
        c.close()

    def start(self):
        raise RuntimeError("cannot restart a daemon this harness did not start")

    @property
    def pid(self):
        return self._pid

    def alive(self):
        if self.proc is not None:
            return self.proc.poll() is None
        try:
            os.kill(self._pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def returncode(self):
        return self.proc.poll() if self.proc is not None else None

    def stop(self):
        pass


def rss_kb(pid):
    """The VmRSS of process ``pid`` in KiB, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None
