"""Admin commands need CAP_NET_ADMIN; GET and dumps work for anyone."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from ovsdp.client.dpif import Dpif

from .conftest import ROOT

CLIENT = r"""
import errno, json, sys
from ovsdp.client.dpif import Dpif
out = {}
c = Dpif(sys.argv[1])
def attempt(op, fn, *a, **kw):
    try:
        fn(*a, **kw)
        out[op] = 0
    except OSError as e:
        out[op] = e.errno
attempt("dp_new", c.dp_new, "unpriv")
attempt("dp_set", c.dp_set, "perm0", user_features=0)
attempt("dp_del", c.dp_del, "perm0")
attempt("vport_new", c.vport_new, "perm0", "x1", "dummy")
attempt("vport_set", c.vport_set, "perm0", name="p1", upcall_pids=[1])
attempt("vport_del", c.vport_del, "perm0", name="p1")
attempt("flow_flush", c.flow_flush, "perm0")
attempt("dp_get", c.dp_get, "perm0")
attempt("dp_dump", c.dp_dump)
attempt("vport_get", c.vport_get, name="p1")
attempt("vport_dump", c.vport_dump, "perm0")
attempt("flow_dump", c.flow_dump, "perm0")
print(json.dumps(out))
"""

ADMIN_OPS = ["dp_new", "dp_set", "dp_del", "vport_new", "vport_set", "vport_del", "flow_flush"]
READ_OPS = ["dp_get", "dp_dump", "vport_get", "vport_dump", "flow_dump"]


def run_client(prefix, path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run(prefix + [sys.executable, "-c", CLIENT, path], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def populated(daemon, dpif):
    dpif.dp_new("perm0")
    dpif.vport_new("perm0", "p1", "dummy")
    return daemon


def check(result):
    for op in ADMIN_OPS:
        assert result[op] == 1, (op, result)          # EPERM
    for op in READ_OPS:
        assert result[op] == 0, (op, result)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to drop CAP_NET_ADMIN")
def test_without_cap_net_admin(populated):
    check(run_client(["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin"],
                     populated.path))


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to become an unprivileged user")
def test_as_unprivileged_user(populated):
    check(run_client(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
                     populated.path))


def test_root_with_cap_net_admin_may_change(populated):
    result = run_client([], populated.path)
    for op in ADMIN_OPS + READ_OPS:
        assert result[op] in (0, 2, 19), (op, result)      # allowed (maybe ENOENT/ENODEV)
    assert result["dp_new"] == 0


# ------------------------------------------------- no window to gain rights
ATTACKER = r"""
import os, socket, sys
path, sleeper = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
try:
    s.connect(path)
    print("admin socket opened", flush=True)
except PermissionError:
    s.connect(path + ".ro")
if os.fork():
    # the opener becomes a setuid-root program before the daemon accepts
    os.execv(sleeper, [sleeper, "60"])
sys.stdin.readline()               # the daemon has been let go
from ovsdp.client.dpif import Dpif
from ovsdp.client.netlink import NetlinkSocket
c = Dpif(sock=NetlinkSocket(path, timeout=10, sock=s))
try:
    c.dp_new("fzrace")
    print("changed", flush=True)
except OSError as e:
    print(e.errno, flush=True)
"""


def _status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root, setpriv and a setuid program")
def test_exec_of_a_setuid_program_after_connect_gains_nothing(sock_path):
    """Issue 9: connect, fork, the parent execs setuid-root before the accept.

    The daemon is stopped while the unprivileged client connects and its
    parent becomes root; the child then asks for a change on the shared
    connection.  Linux judges the socket's opener; so must ovsdp.
    """
    import signal
    import tempfile
    import time

    from .conftest import subprocess_daemon
    bindir = tempfile.mkdtemp(prefix="ovsdp-fzsuid-")
    try:
        os.chmod(bindir, 0o755)
        sleeper = os.path.join(bindir, "sleep")
        shutil.copy(shutil.which("sleep"), sleeper)
        os.chown(sleeper, 0, 0)
        os.chmod(sleeper, 0o4755)
        with subprocess_daemon(sock_path, "--no-devices") as daemon:
            os.kill(daemon.pid, signal.SIGSTOP)
            env = dict(os.environ, PYTHONPATH=ROOT)
            attacker = subprocess.Popen(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 sys.executable, "-c", ATTACKER, sock_path, sleeper],
                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 20
                while True:         # wait for the parent to be the setuid program
                    st = _status(attacker.pid)
                    if st.get("Name") == "sleep":
                        break
                    assert time.monotonic() < deadline, st
                    time.sleep(0.01)
                if int(st["CapEff"], 16) == 0:
                    pytest.skip("setuid programs gain no capabilities here (nosuid?)")
                os.kill(daemon.pid, signal.SIGCONT)
                attacker.stdin.write("go\n")
                attacker.stdin.flush()
                answer = attacker.stdout.readline().strip()
                assert answer == str(1), answer                # EPERM
            finally:
                os.kill(daemon.pid, signal.SIGCONT)
                attacker.kill()
                attacker.wait(10)
            with Dpif(sock_path) as c:
                assert "fzrace" not in [d.name for d in c.dp_dump()]
    finally:
        shutil.rmtree(bindir, ignore_errors=True)


def test_sockets_and_their_modes(daemon):
    """The admin socket is root's alone; the read-only one anyone's."""
    import stat
    st = os.stat(daemon.path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    ro = os.stat(daemon.path + ".ro")
    assert stat.S_ISSOCK(ro.st_mode) and stat.S_IMODE(ro.st_mode) == 0o666


def test_read_only_socket_never_changes_anything_even_for_root(populated):
    from ovsdp.client.netlink import NetlinkSocket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(populated.path + ".ro")
    with Dpif(sock=NetlinkSocket(populated.path, timeout=5, sock=s)) as c:
        assert [d.name for d in c.dp_dump()] == ["perm0"]
        with pytest.raises(OSError) as e:
            c.dp_new("fzro")
        assert e.value.errno == 1


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv")
def test_group_members_may_change(sock_path):
    """``ovsdp daemon --group G``: the admin socket is 0660 and G's members may change."""
    import grp
    import stat
    import time
    name = next((g.gr_name for g in grp.getgrall() if g.gr_gid not in (0, 65534)), None)
    if name is None:
        pytest.skip("no group to try")
    gid = grp.getgrnam(name).gr_gid
    from .conftest import subprocess_daemon
    with subprocess_daemon(sock_path, "--no-devices", "--group", name):
        for _ in range(100):
            if os.path.exists(sock_path + ".ro"):
                break
            time.sleep(0.02)
        st = os.stat(sock_path)
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, gid)
        with Dpif(sock_path) as c:
            c.dp_new("perm0")
            c.vport_new("perm0", "p1", "dummy")
        outsider = run_client(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
                              sock_path)
        check(outsider)
        member = run_client(["setpriv", "--reuid=65534", f"--regid={gid}", "--clear-groups"],
                            sock_path)
        assert member["dp_new"] == 0 and member["dp_del"] == 0
