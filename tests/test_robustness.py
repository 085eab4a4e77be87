"""Bad input never crashes or stalls the daemon; many clients are served."""

import os
import select
import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ovsdp import uapi as U
from ovsdp.client.dpif import Dpif

from .conftest import subprocess_daemon

NLMSG_ERROR, NLMSG_DONE = 2, 3
FAMILIES = [0x10, 0x13, 0x14, 0x15, 0x16, 0x17]


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("fuzz") / "ovsdp.sock")
    with subprocess_daemon(path, "--no-devices") as proc:
        yield path, proc


def alive(path, proc):
    """The daemon process lives and answers a fresh client."""
    assert proc.poll() is None, "daemon exited"
    with Dpif(path, timeout=5) as c:
        c.dp_dump()


def read_until_final(s, timeout=5.0):
    """Read replies until an NLMSG_ERROR/NLMSG_DONE, or EOF.  Returns its kind."""
    while True:
        r, _, _ = select.select([s], [], [], timeout)
        if not r:
            return "stalled"
        try:
            d = s.recv(1 << 17)
        except ConnectionResetError:
            return "closed"
        if not d:
            return "closed"
        off = 0
        while off + 16 <= len(d):
            ln, t = struct.unpack_from("=IH", d, off)
            if t in (NLMSG_ERROR, NLMSG_DONE):
                return "error" if t == NLMSG_ERROR else "done"
            if ln < 16:
                break
            off += (ln + 3) & ~3


def attr_stream():
    def one(t, payload, lie):
        ln = 4 + len(payload) + lie
        pad = b"\0" * (-len(payload) % 4)
        return struct.pack("=HH", max(0, min(ln, 0xFFFF)), t) + payload + pad
    item = st.builds(one, st.integers(0, 40) | st.integers(0, 0xFFFF),
                     st.binary(max_size=48), st.sampled_from([0, 0, 0, 1, -1, 3, 200]))
    nested = st.builds(lambda t, inner: one(t | U.NLA_F_NESTED, b"".join(inner), 0),
                       st.integers(1, 32), st.lists(item, max_size=4))
    return st.lists(item | nested, max_size=8).map(b"".join)


request = st.builds(
    lambda fam, cmd, ver, flags, hdr, attrs: (fam, cmd, ver, flags, hdr, attrs),
    st.sampled_from(FAMILIES) | st.integers(0x11, 0xFFFF),
    st.integers(0, 255), st.integers(0, 3),
    st.sampled_from([0, U.NLM_F_ECHO, U.NLM_F_DUMP, U.NLM_F_CREATE | U.NLM_F_EXCL,
                     U.NLM_F_ECHO | U.NLM_F_DUMP]),
    st.integers(-5, 1 << 31) , attr_stream())


def frame(fam, cmd, ver, flags, hdr, attrs, seq=1):
    body = struct.pack("=BBHi", cmd, ver, 0, hdr & 0x7FFFFFFF) + attrs
    return struct.pack("=IHHII", 16 + len(body), fam,
                       U.NLM_F_REQUEST | U.NLM_F_ACK | flags, seq, 0) + body


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(req=request)
def test_fuzzed_requests_get_an_answer(fuzz_daemon, req):
    path, proc = fuzz_daemon
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    try:
        s.send(frame(*req))
        assert read_until_final(s) in ("error", "done")
    finally:
        s.close()
    assert proc.poll() is None


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(req=request, cut=st.integers(0, 80), lie=st.integers(-20, 100000))
def test_mutated_framing(fuzz_daemon, req, cut, lie):
    """Truncated messages and lying nlmsg_len: an error, or the connection closed."""
    path, proc = fuzz_daemon
    data = bytearray(frame(*req))
    if lie:
        struct.pack_into("=I", data, 0, max(0, min(0xFFFFFFFF, len(data) + lie)))
    data = bytes(data[:max(1, len(data) - cut)])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    try:
        s.send(data)
        assert read_until_final(s) in ("error", "done", "closed")
    finally:
        s.close()
    assert proc.poll() is None


def test_garbage_closes_only_that_connection(fuzz_daemon):
    path, proc = fuzz_daemon
    good = Dpif(path)
    bad = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    bad.connect(path)
    bad.settimeout(5)
    for junk in (b"x", b"\xff" * 15, os.urandom(7)):
        bad.send(junk)
        assert bad.recv(100) == b""            # closed
        bad.close()
        bad = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        bad.connect(path)
        bad.settimeout(5)
    bad.close()
    good.dp_dump()                              # the other client carries on
    good.close()
    alive(path, proc)


def test_trailing_padding_is_ignored(fuzz_daemon):
    """Fewer bytes than a header after the last message: ignored, as by Linux."""
    path, proc = fuzz_daemon
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.settimeout(5)
    try:
        s.send(struct.pack("=IHHII", 16, U.NLMSG_NOOP, U.NLM_F_REQUEST | U.NLM_F_ACK, 9, 0)
               + b"\0" * 8)
        d = s.recv(100)
        assert struct.unpack_from("=IHHIIi", d)[1::2] == (U.NLMSG_ERROR, 9, 0)
    finally:
        s.close()


def test_huge_datagram(fuzz_daemon):
    path, proc = fuzz_daemon
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.connect(path)
    s.settimeout(5)
    body = b"\0" * (1 << 18)
    s.send(struct.pack("=IHHII", 16 + len(body), 0x13, 5, 1, 0) + body)
    assert s.recv(100) == b""
    s.close()
    alive(path, proc)


def test_client_vanishing_mid_dump(fuzz_daemon):
    path, proc = fuzz_daemon
    with Dpif(path) as c:
        for i in range(150):
            c.dp_new(f"vm{i}", upcall_pid=0)
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(path)
        s.send(frame(0x13, U.OVS_DP_CMD_GET, 2, U.NLM_F_DUMP, 0, b""))
        s.close()                                 # never reads the dump
    alive(path, proc)
    with Dpif(path) as c:
        assert len([d for d in c.dp_dump() if d.name.startswith("vm")]) == 150
        for i in range(150):
            c.dp_del(f"vm{i}")


def test_hundreds_of_concurrent_clients(fuzz_daemon):
    path, proc = fuzz_daemon
    conns = []
    try:
        for _ in range(400):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(path)
            conns.append(s)
        name = b"ovs_vport\0"
        req_body = struct.pack("=BBH", U.CTRL_CMD_GETFAMILY, 1, 0) + \
            struct.pack("=HH", 4 + len(name), U.CTRL_ATTR_FAMILY_NAME) + name + b"\0" * (
                -len(name) % 4)
        for i, s in enumerate(conns):
            s.send(struct.pack("=IHHII", 16 + len(req_body), 0x10, U.NLM_F_REQUEST, i, 0)
                   + req_body)
        pids = set()
        for i, s in enumerate(conns):
            s.settimeout(10)
            d = s.recv(4096)
            ln, t, flags, seq, pid = struct.unpack_from("=IHHII", d)
            assert (t, seq) == (0x10, i)
            pids.add(pid)
        assert len(pids) == len(conns)        # every connection has its own port id
    finally:
        for s in conns:
            s.close()
    alive(path, proc)
