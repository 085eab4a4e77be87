"""ctnetlink's expectation subsystem (2) sans I/O: an expectation's bytes
as Linux 6.x emits them (written out by hand from nfnetlink_conntrack.h),
dump / get / delete / flush / create / change / statistics, and the errno
of bad requests; connections show their helper, master and sequence
adjustment."""

import errno
import struct

import pytest

from ovsdp.datapath import nf_conntrack_expect as E
from ovsdp.datapath.nf_conntrack import Tuple
from ovsdp.datapath.nf_conntrack_helper import Help, helper_find
from ovsdp.datapath.nf_conntrack_ovs import add_helper  # noqa: F401 - loads the helpers
from ovsdp.datapath.nf_nat_helper import follow_master

from . import test_ctnetlink as T
from .test_ctnetlink import (
    ACK,
    DUMP,
    REQ,
    A,
    B,
    add_conn,
    attr,
    be16,
    be32,
    errno_of,
    nest,
    request,
)

env = T.env                     # the fixture: a module, an admin peer, its tracker
NFNL_EXP = 2 << 8
EXP_NEW, EXP_GET, EXP_DELETE, EXP_STATS_CPU = range(4)
CTRL = Tuple(2, A, B, 6, 40000, 21)


def tup(src, dst, proto, sport, dport):
    ip = nest(1, attr(1, be32(src)), attr(2, be32(dst)))
    return ip + nest(2, attr(1, bytes([proto])), attr(2, be16(sport)), attr(3, be16(dport)))


def master(ct):
    c = add_conn(ct, CTRL)
    c.help = Help(helper_find("ftp", 2, 6))
    return c


def expect(ct, m, dport=1025, nat=False):
    exp = E.Expect(m)
    exp.init(0, 2, B, A, 6, None, dport)
    if nat:
        exp.saved_proto, exp.dir, exp.expectfn = 999, 1, follow_master
    assert E.related(ct, exp) == 0
    return exp


def exp_msgs(msgs):
    return [m for m in msgs if struct.unpack_from("=H", m, 4)[0] == NFNL_EXP | EXP_NEW]


def test_dump_bytes(env):
    m, p, ct = env
    exp = expect(ct, master(ct))
    ct._clock.t += 10
    (msg,) = exp_msgs(request(m, p, EXP_GET, REQ | DUMP, subsys=2))
    want = (nest(2, tup(B, A, 6, 0, 1025))                      # CTA_EXPECT_TUPLE
            + nest(3, tup(0xFFFFFFFF, 0xFFFFFFFF, 6, 0, 0xFFFF))  # _MASK
            + nest(1, tup(A, B, 6, 40000, 21))                  # _MASTER
            + attr(4, be32(290)) + attr(5, be32(exp.id))        # _TIMEOUT, _ID
            + attr(8, be32(0)) + attr(9, be32(0))               # _FLAGS, _CLASS
            + attr(6, b"ftp\0"))                                # _HELP_NAME
    assert msg[16:20] == bytes([2, 0, 0, 0])
    assert msg[20:] == want
    assert struct.unpack_from("=H", msg, 6)[0] & 2              # NLM_F_MULTI


def test_nat_and_expectfn(env):
    m, p, ct = env
    expect(ct, master(ct), nat=True)
    (msg,) = exp_msgs(request(m, p, EXP_GET, REQ | DUMP, subsys=2))
    nat = nest(10, attr(1, be32(1)), nest(2, tup(0, 0, 6, 999, 0)))
    assert nat in msg and attr(11, b"nat-follow-master\0") in msg


def test_get_delete_flush(env):
    m, p, ct = env
    mc = master(ct)
    exp = expect(ct, mc)
    # the tuple of a connection that would fulfil it (any source port)
    body = nest(2, tup(B, A, 6, 20, 1025))
    (msg,) = exp_msgs(request(m, p, EXP_GET, REQ, body, subsys=2))
    assert attr(5, be32(exp.id)) in msg
    assert errno_of(request(m, p, EXP_GET, REQ, nest(2, tup(B, A, 6, 20, 1026)),
                            subsys=2)) == errno.ENOENT
    assert errno_of(request(m, p, EXP_GET, REQ, body + attr(5, be32(exp.id + 1)),
                            subsys=2)) == errno.ENOENT
    assert errno_of(request(m, p, EXP_GET, REQ, b"", subsys=2)) == errno.EINVAL
    # a master's own dump
    assert len(exp_msgs(request(m, p, EXP_GET, REQ | DUMP, nest(1, tup(A, B, 6, 40000, 21)),
                                subsys=2))) == 1
    assert errno_of(request(m, p, EXP_GET, REQ | DUMP, nest(1, tup(A, B, 6, 1, 21)),
                            subsys=2)) == errno.ENOENT
    assert errno_of(request(m, p, EXP_DELETE, REQ | ACK, body, subsys=2)) == 0
    assert ct.expect_count == 0 and mc.help.expectations == []
    assert errno_of(request(m, p, EXP_DELETE, REQ | ACK, body, subsys=2)) == errno.ENOENT
    expect(ct, mc)
    assert errno_of(request(m, p, EXP_DELETE, REQ | ACK, attr(6, b"tftp\0"), subsys=2)) == 0
    assert ct.expect_count == 1
    assert errno_of(request(m, p, EXP_DELETE, REQ | ACK, b"", subsys=2)) == 0
    assert ct.expect_count == 0


def test_create_and_change(env):
    m, p, ct = env
    mc = master(ct)
    base = (nest(2, tup(B, A, 6, 0, 2000)) + nest(3, tup(0xFFFFFFFF, 0xFFFFFFFF, 6, 0, 0xFFFF))
            + nest(1, tup(A, B, 6, 40000, 21)))
    assert errno_of(request(m, p, EXP_NEW, REQ | ACK, base, subsys=2)) == errno.ENOENT
    assert errno_of(request(m, p, EXP_NEW, REQ | ACK | 0x400, base + attr(4, be32(50)),
                            subsys=2)) == 0
    (exp,) = E.expectations(ct)
    assert exp.dport == 2000 and exp.master is mc and exp.sport_mask == 0
    assert exp.expires == ct.now + 300                  # the helper's policy
    # change the timeout; NLM_F_EXCL: EEXIST
    assert errno_of(request(m, p, EXP_NEW, REQ | ACK, base + attr(4, be32(50)), subsys=2)) == 0
    assert exp.expires == ct.now + 50
    assert errno_of(request(m, p, EXP_NEW, REQ | ACK | 0x200, base, subsys=2)) == errno.EEXIST
    # missing parts, no such master, a master without helper, bad flags
    assert errno_of(request(m, p, EXP_NEW, REQ | ACK | 0x400, nest(2, tup(B, A, 6, 0, 1)),
                            subsys=2)) == errno.EINVAL
    other = (nest(2, tup(B, A, 6, 0, 2001)) + nest(3, tup(0xFFFFFFFF, 0xFFFFFFFF, 6, 0, 0xFFFF)))
    assert errno_of(request(m, p, EXP_NEW, REQ | ACK | 0x400,
                            other + nest(1, tup(A, B, 6, 1, 21)), subsys=2)) == errno.ENOENT
    add_conn(ct, Tuple(2, A, B, 6, 40001, 80))
    assert errno_of(request(m, p, EXP_NEW, REQ | ACK | 0x400,
                            other + nest(1, tup(A, B, 6, 40001, 80)), subsys=2)) \
        == errno.EOPNOTSUPP
    assert errno_of(request(m, p, EXP_NEW, REQ | ACK | 0x400, other + nest(
        1, tup(A, B, 6, 40000, 21)) + attr(8, be32(0x10)), subsys=2)) == errno.EINVAL
    assert errno_of(request(m, p, EXP_NEW, REQ | ACK | 0x400, other + nest(
        1, tup(A, B, 6, 40000, 21)) + attr(11, b"nope\0"), subsys=2)) == errno.EINVAL


def test_stats(env):
    m, p, ct = env
    expect(ct, master(ct))
    msgs = request(m, p, EXP_STATS_CPU, REQ | DUMP, subsys=2)
    (msg,) = [x for x in msgs if struct.unpack_from("=H", x, 4)[0] == 1 << 8 | EXP_STATS_CPU]
    assert msg[16:20] == bytes([0, 0, 0, 0])
    assert msg[20:] == attr(1, be32(0)) + attr(2, be32(1)) + attr(3, be32(0))


def test_master_gone_takes_its_expectations(env):
    m, p, ct = env
    mc = master(ct)
    expect(ct, mc)
    ct.kill(mc)
    assert ct.expect_count == 0
    assert exp_msgs(request(m, p, EXP_GET, REQ | DUMP, subsys=2)) == []


def test_not_admin():
    from ovsdp.datapath.module import Module

    from .test_ctnetlink import FakePeer, sockopt
    mod = Module()
    peer = FakePeer(admin=False)
    mod.add_peer(peer)
    assert sockopt(mod, peer, 0x4F03, 12) == 0
    assert errno_of(request(mod, peer, EXP_GET, REQ | DUMP, subsys=2)) == errno.EPERM


@pytest.mark.parametrize("flags", [0, 0x4])
def test_flags_roundtrip(env, flags):
    m, p, ct = env
    exp = expect(ct, master(ct))
    exp.flags = flags
    (msg,) = exp_msgs(request(m, p, EXP_GET, REQ | DUMP, subsys=2))
    assert attr(8, be32(flags)) in msg
