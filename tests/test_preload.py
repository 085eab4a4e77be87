"""The netlink preload library: a program's AF_NETLINK sockets on ovsdp.

Each test runs a Python program in a subprocess with the library preloaded
(Python's socket module calls libc, as a C program does), against a daemon of
this test process, and checks the contract of docs/protocol.md, section 8:
the kernel's answer is in the socket when sendmsg() returns, a dump never
fails a reader with EAGAIN, port ids, options, readiness, fork, dup.  The
last tests run the real ovs-dpctl and pyroute2 through ``ovsdp run``.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from ovsdp import preload
from ovsdp import uapi as U

from .conftest import ROOT, add_arp_flows

PRELUDE = f"""
import errno, json, os, select, socket, struct, sys
sys.path.insert(0, {ROOT!r})
from ovsdp import uapi as U
from ovsdp.netlink.attr import get_u16, iter_attrs, nla_string
from ovsdp.netlink.message import build_genl

def nlsock(nonblock=False, proto=16):
    t = socket.SOCK_RAW | (socket.SOCK_NONBLOCK if nonblock else 0)
    return socket.socket(socket.AF_NETLINK, t, proto)

def getfamily(name, seq=1, flags=U.NLM_F_REQUEST):
    return build_genl(U.GENL_ID_CTRL, U.CTRL_CMD_GETFAMILY, 1, flags, seq, 0,
                      nla_string(U.CTRL_ATTR_FAMILY_NAME, name))

def headers(b):
    out, off = [], 0
    while off + 16 <= len(b):
        h = struct.unpack_from("=IHHII", b, off)
        out.append(h)
        off += (h[0] + 3) & ~3
    return out

def error_of(b):
    return -struct.unpack_from("=i", b, 16)[0]

def family_id(reply):
    for t, p, _ in iter_attrs(reply[20:]):
        if t == U.CTRL_ATTR_FAMILY_ID:
            return get_u16(p)

def out(**kw):
    print(json.dumps(kw), flush=True)
"""


def run_preloaded(daemon_path, body, user=None, input=None, timeout=30, env=None):
    """Run ``body`` (after PRELUDE) with the library preloaded; returns the
    last JSON line it printed."""
    e = preload.environment(env, socket=daemon_path)
    prefix = []
    if user is not None:            # as test_permissions.py drops to another user
        prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    r = subprocess.run(prefix + [sys.executable, "-c", PRELUDE + textwrap.dedent(body)], env=e,
                       capture_output=True, text=True, timeout=timeout, input=input)
    assert r.returncode == 0, f"program failed:\n{r.stdout}\n{r.stderr}"
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result:\n{r.stdout}\n{r.stderr}"
    return json.loads(lines[-1]), r.stderr


def run_preloaded_with_pause(daemon_path, body, between, timeout=30):
    """Like :func:`run_preloaded`, for a program that prints one JSON line,
    then waits for a line on stdin: ``between(first_line)`` runs in between."""
    e = preload.environment(socket=daemon_path)
    proc = subprocess.Popen([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], env=e,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        between(json.loads(proc.stdout.readline()))
        proc.stdin.write("go\n")
        proc.stdin.flush()
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    return json.loads(stdout.splitlines()[-1])


def test_the_library_builds_and_names_its_build_by_its_source():
    p = preload.library_path()
    assert p.is_file() and p.name.startswith("libovsdp-netlink-") and p.suffix == ".so"
    assert preload.library_path() == p                      # found again, not rebuilt
    r = subprocess.run([sys.executable, "-m", "ovsdp", "preload-path"], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0 and r.stdout.strip() == str(p)


def test_port_ids_come_from_the_daemon_and_bind_chooses_one(daemon):
    got, _ = run_preloaded(daemon.path, """
        a, b, c, d = nlsock(), nlsock(), nlsock(), nlsock()
        before = a.getsockname()
        a.bind((0, 0))
        b.connect((0, 0))                       # connect() autobinds too
        c.bind((0x12345, 0))
        try:
            d.bind((0x12345, 0))
            clash = 0
        except OSError as e:
            clash = e.errno
        try:
            c.bind((0x54321, 0))
            rebind = 0
        except OSError as e:
            rebind = e.errno
        c.send(getfamily("ovs_datapath"))
        reply = c.recv(65536)
        out(before=before, a=a.getsockname(), b=b.getsockname(), c=c.getsockname(),
            clash=clash, rebind=rebind, reply_pid=headers(reply)[0][4], pid=os.getpid())
    """)
    assert got["before"] == [0, 0]
    assert got["a"] == [got["pid"], 0]           # a process's first socket: its pid
    assert got["b"][0] not in (0, got["pid"]) and got["b"][0] >= 0x80000000
    assert got["c"] == [0x12345, 0] and got["reply_pid"] == 0x12345
    assert got["clash"] == errno.EADDRINUSE and got["rebind"] == errno.EINVAL


def test_replies_are_in_the_socket_when_send_returns(daemon):
    got, _ = run_preloaded(daemon.path, """
        s = nlsock(nonblock=True)
        # three requests in one sendmsg, split over iovecs as OVS sends them
        reqs = [getfamily(n, seq=i + 1, flags=U.NLM_F_REQUEST | U.NLM_F_ACK)
                for i, n in enumerate(["ovs_datapath", "ovs_nosuch", "ovs_flow"])]
        n = s.sendmsg(reqs)
        seen = []
        while True:
            try:
                b = s.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            h = headers(b)[0]
            seen.append([h[1], h[3], error_of(b) if h[1] == U.NLMSG_ERROR else None])
        out(n=n, total=sum(map(len, reqs)), seen=seen)
    """)
    assert got["n"] == got["total"]
    # reply + ack, error, reply + ack: all there at once, then EAGAIN
    assert got["seen"] == [[U.GENL_ID_CTRL, 1, None], [U.NLMSG_ERROR, 1, 0],
                           [U.NLMSG_ERROR, 2, errno.ENOENT],
                           [U.GENL_ID_CTRL, 3, None], [U.NLMSG_ERROR, 3, 0]]


def test_a_dump_is_read_to_its_end_without_eagain(daemon, dpif):
    dpif.dp_new("pldump")
    ifindex = dpif.ifindex("pldump")
    add_arp_flows(dpif, "pldump", 3000)
    got, _ = run_preloaded(daemon.path, f"""
        s = nlsock(nonblock=True)
        s.send(getfamily("ovs_flow"))
        fid = family_id(s.recv(65536))
        body = struct.pack("=BBHi", U.OVS_FLOW_CMD_GET, 1, 0, {ifindex})
        s.send(struct.pack("=IHHII", 16 + len(body), fid,
                           U.NLM_F_REQUEST | U.NLM_F_DUMP | U.NLM_F_ACK, 7, 0) + body)
        flows = datagrams = 0
        done = False
        while not done:
            b = s.recv(65536, socket.MSG_DONTWAIT)      # never EAGAIN mid-dump
            datagrams += 1
            for h in headers(b):
                if h[1] == U.NLMSG_DONE:
                    done = True
                elif h[1] == fid and h[3] == 7:
                    flows += 1
        try:
            s.recv(65536, socket.MSG_DONTWAIT)
            after = "data"
        except BlockingIOError:
            after = "eagain"
        out(flows=flows, datagrams=datagrams, after=after)
    """)
    assert got["flows"] == 3000 and got["datagrams"] > 10 and got["after"] == "eagain"


def test_socket_options_go_to_the_daemon_and_getsockopt_answers(daemon):
    got, _ = run_preloaded(daemon.path, """
        s = nlsock()
        r = {}
        r["domain"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN)
        r["type"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
        r["proto"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
        r["ext_ack0"] = s.getsockopt(270, 11)
        s.send(getfamily("ovs_datapath"))
        grp = None
        for t, p, _ in iter_attrs(s.recv(65536)[20:]):
            if t == U.CTRL_ATTR_MCAST_GROUPS:
                for _, g, _ in iter_attrs(p):
                    grp = dict((tt, pp) for tt, pp, _ in iter_attrs(g))[U.CTRL_ATTR_MCAST_GRP_ID]
        grp = struct.unpack("=I", grp)[0]
        s.setsockopt(270, 1, grp)
        r["members"] = list(struct.unpack("=I", s.getsockopt(270, 9, 4)))
        r["name_groups"] = s.getsockname()[1]
        for opt, val in (("bad_group", 999), ("zero_group", 0)):
            try:
                s.setsockopt(270, 1, val)
                r[opt] = 0
            except OSError as e:
                r[opt] = e.errno
        try:
            s.setsockopt(270, 99, 1)
        except OSError as e:
            r["unknown"] = e.errno
        s.setsockopt(270, 3, 1)                    # NETLINK_PKTINFO: remembered
        r["pktinfo"] = s.getsockopt(270, 3)
        # extended acks: off by default as on Linux; on when asked
        flags = []
        for on in (0, 1):
            s.setsockopt(270, 11, on)
            s.send(getfamily("ovs_nosuch"))
            flags.append(headers(s.recv(65536))[0][2])
        r["ext_ack1"] = s.getsockopt(270, 11)
        r["flags"] = flags
        s.setsockopt(270, 2, grp)
        r["after_drop"] = len(s.getsockopt(270, 9, 4))
        out(grp=grp, **r)
    """)
    assert (got["domain"], got["type"], got["proto"]) == (16, 3, 16)
    g = got["grp"]
    assert got["members"] == [1 << (g - 1)] and got["name_groups"] == 1 << (g - 1)
    assert got["bad_group"] == errno.EINVAL and got["zero_group"] == errno.EINVAL
    assert got["unknown"] == errno.ENOPROTOOPT and got["pktinfo"] == 1
    assert got["ext_ack0"] == 0 and got["ext_ack1"] == 1
    assert not got["flags"][0] & U.NLM_F_ACK_TLVS and got["flags"][1] & U.NLM_F_ACK_TLVS
    assert got["after_drop"] == 0


def test_poll_and_epoll_see_what_is_queued_and_what_is_multicast(daemon, dpif):
    def create(first):
        assert first == {"ready": 1}
        dpif.dp_new("plpoll")
    got = run_preloaded_with_pause(daemon.path, """
        s = nlsock(nonblock=True)
        s.send(getfamily("ovs_datapath"))          # the reply waits in the library
        p = select.poll()
        p.register(s, select.POLLIN)
        ep = select.epoll()
        ep.register(s.fileno(), select.EPOLLIN)
        r = {"poll": len(p.poll(0)), "epoll": len(ep.poll(0))}
        s.recv(65536)
        r["poll_after"] = len(p.poll(0))
        r["epoll_after"] = len(ep.poll(0))
        m = nlsock(nonblock=True)
        m.setsockopt(270, 1, 2)                    # ovs_datapath's multicast group
        mp = select.epoll()
        mp.register(m.fileno(), select.EPOLLIN)
        r["mcast_before"] = len(mp.poll(0))
        print(json.dumps({"ready": 1}), flush=True)
        sys.stdin.readline()                       # the test creates a datapath now
        r["mcast_epoll"] = len(mp.poll(5))
        r["mcast_type"] = headers(m.recv(65536))[0][1]
        out(**r)
    """, create)
    assert (got["poll"], got["epoll"]) == (1, 1)
    assert (got["poll_after"], got["epoll_after"]) == (0, 0)
    assert got["mcast_before"] == 0 and got["mcast_epoll"] == 1
    assert got["mcast_type"] == dpif.sock.family(U.OVS_DATAPATH_FAMILY).id


def test_lost_upcalls_are_enobufs_once(daemon, dpif):
    dpif.dp_new("pllost")
    dpif.vport_new("pllost", "pllost1", "dummy", port_no=1)
    n = 300

    def flood(first):
        dpif.vport_set("pllost", name="pllost1", upcall_pids=[first["portid"]])
        frame = bytes(11) + b"\x01\x08\x00" + bytes(60000)
        daemon.call(lambda: [daemon.module.init_net.vports_by_name["pllost1"].inject(frame)
                             for _ in range(n)])
    got = run_preloaded_with_pause(daemon.path, """
        s = nlsock(nonblock=True)
        s.bind((0, 0))
        print(json.dumps({"portid": s.getsockname()[0]}), flush=True)
        sys.stdin.readline()
        got, lost = 0, 0
        while True:
            r, _, _ = select.select([s], [], [], 2)
            if not r:
                break
            try:
                s.recv(200000)
                got += 1
            except OSError as e:
                assert e.errno == errno.ENOBUFS, e
                lost += 1
        out(got=got, lost=lost)
    """, flood)
    n_lost = dpif.dp_get("pllost").n_lost
    assert n_lost > 0 and got["lost"] == 1 and got["got"] + n_lost == n


def test_fork_dup_and_close_keep_the_table_right(daemon):
    got, _ = run_preloaded(daemon.path, """
        s = nlsock()
        s.bind((0, 0))
        pid = os.fork()
        if pid == 0:                               # the child uses the parent's socket
            s.send(getfamily("ovs_vport"))
            os._exit(0 if family_id(s.recv(65536)) else 3)
        _, status = os.waitpid(pid, 0)
        r = {"child": os.waitstatus_to_exitcode(status)}
        d = socket.socket(fileno=os.dup(s.fileno()))   # asks SO_DOMAIN/TYPE/PROTOCOL
        r["dup_family"] = [d.family, d.type, d.proto]
        fd = s.fileno()
        s.close()
        d.send(getfamily("ovs_flow"))
        r["dup_works"] = bool(family_id(d.recv(65536)))
        # the closed number is reused by a pipe: plain file I/O again
        rd, wr = os.pipe()
        r["reused"] = fd in (rd, wr)
        os.write(wr, b"hello")
        r["pipe"] = os.read(rd, 5).decode()
        d.close()
        out(**r)
    """)
    assert got["child"] == 0 and got["dup_works"] and got["pipe"] == "hello"
    assert got["dup_family"] == [16, 3, 16] and got["reused"]


def test_malformed_and_oversized_datagrams_are_answered_as_linux_does(daemon):
    got, _ = run_preloaded(daemon.path, """
        s = nlsock(nonblock=True)
        r = {"short": s.send(b"0123456789")}       # no message at all: nothing happens
        bad = struct.pack("=IHHII", 1000, 0x10, 1, 9, 0)
        good = getfamily("ovs_datapath", seq=8)
        r["mixed"] = s.send(good + bad) == len(good) + len(bad)
        replies = []
        while True:
            try:
                replies.append(headers(s.recv(65536))[0][3])
            except BlockingIOError:
                break
        r["replies"] = replies
        try:
            s.send(bytes(140000))
        except OSError as e:
            r["big"] = e.errno
        s.send(getfamily("ovs_flow", seq=10))
        r["peek"] = len(s.recv(16, socket.MSG_PEEK | socket.MSG_TRUNC))
        r["whole"] = len(s.recv(65536))
        out(**r)
    """)
    assert got["short"] == 10 and got["mixed"] and got["replies"] == [8]
    assert got["big"] == errno.EMSGSIZE
    assert got["peek"] == got["whole"] > 16


def test_other_netlink_protocols_stay_with_the_kernel(daemon):
    got, _ = run_preloaded(daemon.path, """
        s = nlsock(proto=0)                        # NETLINK_ROUTE
        s.bind((0, 0))
        s.send(struct.pack("=IHHIIBxHiII", 32, 18, 0x301, 1, 0, 0, 0, 0, 0, 0))
        names = 0
        while True:
            b = s.recv(65536)
            hs = headers(b)
            names += sum(1 for h in hs if h[1] == 16)     # RTM_NEWLINK
            if any(h[1] == U.NLMSG_DONE for h in hs):
                break
        out(links=names, pid=s.getsockname()[0] != 0)
    """)
    assert got["links"] >= 1 and got["pid"]


def test_no_daemon_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent("""
        try:
            nlsock()
            out(err=0)
        except OSError as e:
            out(err=e.errno)
    """)], env=preload.environment(socket=str(tmp_path / "none.sock")), capture_output=True,
        text=True, timeout=30)
    assert r.returncode == 0
    assert '"err": %d' % errno.ENOENT in r.stdout
    assert "ovsdp-netlink: cannot connect to the ovsdp daemon at" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv")
def test_who_may_not_change_things_gets_the_read_only_socket(daemon):
    lib = preload.library_path()
    if not os.access(lib, os.R_OK, effective_ids=False) or os.stat(lib).st_mode & 0o005 != 5:
        pytest.skip("the library is not readable by other users here")
    got, _ = run_preloaded(daemon.path, """
        s = nlsock()
        s.send(getfamily("ovs_datapath"))
        fid = family_id(s.recv(65536))
        body = (struct.pack("=BBHi", U.OVS_DP_CMD_NEW, 2, 0, 0)
                + nla_string(U.OVS_DP_ATTR_NAME, "plro"))
        s.send(struct.pack("=IHHII", 16 + len(body), fid, U.NLM_F_REQUEST | U.NLM_F_ACK, 2, 0)
               + body)
        out(fid=fid, err=error_of(s.recv(65536)), uid=os.getuid())
    """, user=65534)
    assert got["uid"] == 65534 and got["fid"] and got["err"] == errno.EPERM


# ------------------------------------------------- real programs, unmodified

def _ovsdp_run(path, *argv, timeout=30):
    return subprocess.run([sys.executable, "-m", "ovsdp", "run", "--socket", path, "--", *argv],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=ROOT))


@pytest.mark.skipif(shutil.which("ovs-dpctl") is None, reason="ovs-dpctl not installed")
def test_ovs_dpctl_runs_on_ovsdp(daemon):
    p = daemon.path
    r = _ovsdp_run(p, "ovs-dpctl", "add-dp", "pldpctl")
    assert r.returncode == 0, r.stderr
    r = _ovsdp_run(p, "ovs-dpctl", "add-flow", "pldpctl",
                   "in_port(0),eth(),eth_type(0x0800),ipv4(src=10.1.2.3,frag=no)", "0")
    assert r.returncode == 0, r.stderr
    r = _ovsdp_run(p, "ovs-dpctl", "show", "-s")
    assert r.returncode == 0 and "system@pldpctl:" in r.stdout and "flows: 1" in r.stdout
    r = _ovsdp_run(p, "ovs-dpctl", "dump-flows", "pldpctl")
    assert r.returncode == 0
    assert "ipv4(src=10.1.2.3" in r.stdout and "actions:0" in r.stdout, r.stdout
    r = _ovsdp_run(p, "ovs-dpctl", "del-dp", "pldpctl")
    assert r.returncode == 0, r.stderr
    assert daemon.call(lambda: [d.name for d in daemon.module.datapaths]) == []


def test_pyroute2_unmodified_runs_on_ovsdp(daemon):
    """pyroute2's own GenericNetlinkSocket (no adapter): its bind() picks
    its port id, the library hands it to the daemon."""
    got, _ = run_preloaded(daemon.path, """
        from pyroute2.netlink import NLM_F_ACK, NLM_F_ECHO, NLM_F_REQUEST, genlmsg
        from pyroute2.netlink.generic import GenericNetlinkSocket

        class dpmsg(genlmsg):
            fields = genlmsg.fields + (("dpifindex", "I"),)
            nla_map = (("OVS_DP_ATTR_UNSPEC", "none"), ("OVS_DP_ATTR_NAME", "asciiz"),
                       ("OVS_DP_ATTR_UPCALL_PID", "uint32"))

        g = GenericNetlinkSocket()
        g.bind("ovs_datapath", dpmsg)
        m = dpmsg()
        m["cmd"] = U.OVS_DP_CMD_NEW
        m["version"] = 2
        m["dpifindex"] = 0
        m["attrs"] = [["OVS_DP_ATTR_NAME", "plpyr2"], ["OVS_DP_ATTR_UPCALL_PID", 0]]
        reply = g.nlm_request(m, msg_type=g.prid,
                              msg_flags=NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO)
        pid = socket.socket(fileno=os.dup(g.fileno())).getsockname()[0]
        out(pid=pid, epid=g.epid, name=reply[0].get_attr("OVS_DP_ATTR_NAME"))
    """)
    assert got["name"] == "plpyr2" and got["pid"] == got["epid"]
    assert daemon.call(lambda: [d.name for d in daemon.module.datapaths]) == ["plpyr2"]
