"""``ovsdp ovs start|stop|status``: the real Open vSwitch on ovsdp.

Brings up what ``ovs-ctl start`` brings up on a machine with the kernel
module, with ovsdp in the module's place: the ovsdp daemon, ovsdb-server on
the Open_vSwitch database, and ovs-vswitchd with the netlink preload
library, on Open vSwitch's standard directories (or ``OVS_RUNDIR``,
``OVS_DBDIR``, ``OVS_LOGDIR``, as Open vSwitch's own programs read them), so
that ``ovs-vsctl``, ``ovs-ofctl`` and ``ovs-appctl`` work unchanged.

As with the kernel module, the datapath outlives ovs-vswitchd: stopping or
restarting ovs-vswitchd alone (``ovs-appctl -t ovs-vswitchd exit``, then
``ovsdp ovs start``) keeps the datapath and its flows.  ``stop`` stops all
three; the daemon removes its devices as it exits.
"""

import argparse
import os
import shutil
import signal
import socket as socketlib
import subprocess
import sys
import time

from .. import preload
from .. import uapi as U

SCHEMA_DIRS = ("/usr/share/openvswitch", "/usr/local/share/openvswitch")
START_TIMEOUT = 30.0


class OvsError(RuntimeError):
    pass


class Layout:
    """The directories and files of one Open vSwitch instance."""

    def __init__(self, socket=None, env=None):
        env = os.environ if env is None else env
        self.rundir = env.get("OVS_RUNDIR") or "/var/run/openvswitch"
        self.dbdir = env.get("OVS_DBDIR") or "/etc/openvswitch"
        self.logdir = env.get("OVS_LOGDIR") or "/var/log/openvswitch"
        self.db = os.path.join(self.dbdir, "conf.db")
        self.db_sock = os.path.join(self.rundir, "db.sock")
        self.socket = os.path.abspath(socket or env.get("OVSDP_SOCKET")
                                      or U.OVSDP_DEFAULT_SOCKET)
        pkgdata = env.get("OVS_PKGDATADIR")
        dirs = (pkgdata,) if pkgdata else SCHEMA_DIRS
        self.schema = next((os.path.join(d, "vswitch.ovsschema") for d in dirs
                            if os.path.isfile(os.path.join(d, "vswitch.ovsschema"))), None)

    def pidfile(self, name):
        return os.path.join(self.rundir, f"{name}.pid")

    def logfile(self, name):
        return os.path.join(self.logdir, f"{name}.log")

    def env(self):
        """The environment Open vSwitch's programs get (their directories)."""
        return dict(os.environ, OVS_RUNDIR=self.rundir, OVS_DBDIR=self.dbdir,
                    OVS_LOGDIR=self.logdir, OVSDP_SOCKET=self.socket)


# ----------------------------------------------------------------- processes

def read_pid(pidfile):
    try:
        with open(pidfile) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid) else None


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:                         # a zombie is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def on_ovsdp(pid):
    """Does process ``pid`` have the netlink preload library loaded?"""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return preload.NAME in f.read()
    except OSError:
        return False


def daemon_answers(path):
    """Is an ovsdp daemon listening on ``path``?"""
    s = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_SEQPACKET)
    s.settimeout(2)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _wait(cond, what, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise OvsError(f"{what}: timed out after {timeout:.0f} s")
        time.sleep(0.05)


def _run(argv, env, what):
    try:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=START_TIMEOUT)
    except FileNotFoundError:
        raise OvsError(f"{argv[0]} not found: install openvswitch-switch "
                       "(scripts/install.sh --test does)") from None
    except subprocess.TimeoutExpired:
        raise OvsError(f"{what}: {argv[0]} did not finish") from None
    if r.returncode:
        raise OvsError(f"{what} failed: {(r.stderr or r.stdout).strip()}")
    return r.stdout


def _stop_pid(pid, name, timeout=10.0):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _wait(lambda: not alive(pid), f"killing {name}", 5)
            return
        time.sleep(0.05)


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------- start

def start_ovsdp(lay, out):
    if daemon_answers(lay.socket):
        pid = read_pid(lay.pidfile("ovsdp"))
        out(f"ovsdp daemon is running on {lay.socket}" + (f" with pid {pid}" if pid else ""))
        return
    log = open(lay.logfile("ovsdp"), "a")
    try:
        p = subprocess.Popen([sys.executable, "-m", "ovsdp", "daemon", "--socket", lay.socket],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True, env=lay.env())
    finally:
        log.close()
    with open(lay.pidfile("ovsdp"), "w") as f:
        f.write(f"{p.pid}\n")

    def up():
        if p.poll() is not None:
            raise OvsError(f"ovsdp daemon exited ({p.returncode}); see {lay.logfile('ovsdp')}")
        return daemon_answers(lay.socket)
    _wait(up, "starting the ovsdp daemon")
    out(f"Starting ovsdp daemon on {lay.socket} with pid {p.pid}")


def ensure_db(lay, env, out):
    if lay.schema is None:
        raise OvsError("vswitch.ovsschema not found: install openvswitch-common "
                       "(or set OVS_PKGDATADIR)")
    if not os.path.exists(lay.db):
        _run(["ovsdb-tool", "create", lay.db, lay.schema], env, "creating the database")
        out(f"Creating empty database {lay.db}")
        return
    r = subprocess.run(["ovsdb-tool", "needs-conversion", lay.db, lay.schema], env=env,
                       capture_output=True, text=True)
    if r.stdout.strip() == "yes":
        _run(["ovsdb-tool", "convert", lay.db, lay.schema], env, "converting the database")
        out(f"Converted {lay.db} to its schema's version")


def start_ovsdb(lay, env, out):
    pid = read_pid(lay.pidfile("ovsdb-server"))
    if pid:
        out(f"ovsdb-server is already running with pid {pid}")
        return
    ensure_db(lay, env, out)
    _run(["ovsdb-server", lay.db, f"--remote=punix:{lay.db_sock}",
          "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
          f"--pidfile={lay.pidfile('ovsdb-server')}", "--detach", "--no-chdir",
          f"--log-file={lay.logfile('ovsdb-server')}"], env, "starting ovsdb-server")
    _run(["ovs-vsctl", f"--db=unix:{lay.db_sock}", "--no-wait", "init"], env,
         "initializing the database")
    out(f"Starting ovsdb-server with pid {read_pid(lay.pidfile('ovsdb-server'))}")


def start_vswitchd(lay, env, out):
    pid = read_pid(lay.pidfile("ovs-vswitchd"))
    if pid and not on_ovsdp(pid):
        raise OvsError(f"an ovs-vswitchd that is not on ovsdp runs with pid {pid} "
                       f"({lay.pidfile('ovs-vswitchd')}): stop it first "
                       "(/usr/share/openvswitch/scripts/ovs-ctl stop)")
    if pid:
        out(f"ovs-vswitchd is already running with pid {pid}")
        return
    venv = preload.environment(env, socket=lay.socket)
    # --detach returns once ovs-vswitchd has read its configuration
    _run(["ovs-vswitchd", f"unix:{lay.db_sock}", f"--pidfile={lay.pidfile('ovs-vswitchd')}",
          "--detach", "--no-chdir", f"--log-file={lay.logfile('ovs-vswitchd')}"], venv,
         "starting ovs-vswitchd")
    out(f"Starting ovs-vswitchd with pid {read_pid(lay.pidfile('ovs-vswitchd'))}")


def start(lay, out=print):
    for d in (lay.rundir, lay.dbdir, lay.logdir, os.path.dirname(lay.socket)):
        os.makedirs(d, exist_ok=True)
    env = lay.env()
    start_ovsdp(lay, out)
    start_ovsdb(lay, env, out)
    start_vswitchd(lay, env, out)


# ---------------------------------------------------------------------- stop

def _appctl_exit(lay, name, env, pid):
    target = os.path.join(lay.rundir, f"{name}.{pid}.ctl")
    if os.path.exists(target):
        subprocess.run(["ovs-appctl", "-t", target, "exit"], env=env, capture_output=True,
                       timeout=10)
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    if alive(pid):
        _stop_pid(pid, name)
    _remove(target)


def stop(lay, out=print):
    env = lay.env()
    for name in ("ovs-vswitchd", "ovsdb-server"):
        pid = read_pid(lay.pidfile(name))
        if pid:
            _appctl_exit(lay, name, env, pid)
            out(f"Exiting {name} ({pid})")
        _remove(lay.pidfile(name))
    _remove(lay.db_sock)
    pid = read_pid(lay.pidfile("ovsdp"))
    if pid:
        _stop_pid(pid, "ovsdp daemon")
        out(f"Exiting ovsdp daemon ({pid})")
    elif daemon_answers(lay.socket):
        out(f"ovsdp daemon on {lay.socket} was not started by 'ovsdp ovs start': left running")
    _remove(lay.pidfile("ovsdp"))


# -------------------------------------------------------------------- status

def status(lay, out=print):
    ok = True
    if daemon_answers(lay.socket):
        pid = read_pid(lay.pidfile("ovsdp"))
        out(f"ovsdp daemon is running on {lay.socket}" + (f" with pid {pid}" if pid else ""))
    else:
        out(f"ovsdp daemon is not running (no daemon on {lay.socket})")
        ok = False
    for name in ("ovsdb-server", "ovs-vswitchd"):
        pid = read_pid(lay.pidfile(name))
        if pid is None:
            out(f"{name} is not running")
            ok = False
        elif name == "ovs-vswitchd" and not on_ovsdp(pid):
            out(f"{name} is running with pid {pid}, but not on ovsdp")
            ok = False
        else:
            out(f"{name} is running with pid {pid}")
    return ok


def main(argv):
    p = argparse.ArgumentParser(
        prog="ovsdp ovs",
        description="Run Open vSwitch (ovsdb-server, ovs-vswitchd) on ovsdp, as ovs-ctl "
                    "runs it on the kernel module.  Directories: OVS_RUNDIR, OVS_DBDIR, "
                    "OVS_LOGDIR, else Open vSwitch's standard ones.")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--socket", help="the ovsdp daemon's control socket (default: "
                                    "$OVSDP_SOCKET, else /run/ovsdp/ovsdp.sock)")
    args = p.parse_args(argv)
    lay = Layout(args.socket)
    for prog in ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovsdb-tool", "ovs-appctl"):
        if args.action != "status" and shutil.which(prog) is None:
            print(f"ovsdp ovs: {prog} not found: install openvswitch-switch", file=sys.stderr)
            return 1
    try:
        if args.action == "start":
            start(lay)
        elif args.action == "stop":
            stop(lay)
        else:
            return 0 if status(lay) else 3
    except (OvsError, preload.BuildError, OSError) as e:
        print(f"ovsdp ovs {args.action}: {e}", file=sys.stderr)
        return 1
    return 0
