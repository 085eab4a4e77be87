"""Golden bytes: requests built by hand from the UAPI layouts, replies compared exactly.

Nothing here uses ovsdp's own encoder: every expected byte is spelled with
struct from include/uapi/linux/openvswitch.h, linux/netlink.h and
linux/genetlink.h.
"""

import os
import struct

from .conftest import raw_connect

NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_ECHO, NLM_F_DUMP = 1, 2, 4, 8, 0x300
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
NLMSG_ERROR, NLMSG_DONE = 2, 3
GENL_ID_CTRL = 0x10


def nlattr(t, payload):
    pad = (4 - len(payload) % 4) % 4
    return struct.pack("=HH", 4 + len(payload), t) + payload + b"\0" * pad


def nlmsg(mtype, flags, seq, pid, payload):
    return struct.pack("=IHHII", 16 + len(payload), mtype, flags, seq, pid) + payload


def genl(cmd, version):
    return struct.pack("=BBH", cmd, version, 0)


def ack(req, seq, pid):
    return nlmsg(NLMSG_ERROR, NLM_F_CAPPED, seq, pid, struct.pack("=i", 0) + req[:16])


def recv(s):
    return s.recv(1 << 16)


def get_family(s, name, seq):
    req = nlmsg(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, seq, 0,
                genl(3, 1) + nlattr(2, name.encode() + b"\0"))
    s.send(req)
    reply = recv(s)
    _, _, _, _, pid = struct.unpack_from("=IHHII", reply)
    assert recv(s) == ack(req, seq, pid)
    return reply, pid


def test_nlctrl_getfamily_ovs_datapath(daemon):
    s = raw_connect(daemon.path)
    reply, pid = get_family(s, "ovs_datapath", 1)
    assert pid == os.getpid() or pid >= 0x80000000     # netlink-style port id
    ops = b"".join(nlattr(i + 1, nlattr(1, struct.pack("=I", cmd)) +
                          nlattr(2, struct.pack("=I", flags)))
                   for i, (cmd, flags) in enumerate([(1, 0x1a), (2, 0x1a), (3, 0x0e), (4, 0x1a)]))
    groups = nlattr(1, nlattr(2, struct.pack("=I", 2)) + nlattr(1, b"ovs_datapath\0"))
    body = (genl(1, 2) + nlattr(2, b"ovs_datapath\0") + nlattr(1, struct.pack("=H", 0x13))
            + nlattr(3, struct.pack("=I", 2)) + nlattr(4, struct.pack("=I", 4))
            + nlattr(5, struct.pack("=I", 9)) + nlattr(6, ops) + nlattr(7, groups))
    assert reply == nlmsg(GENL_ID_CTRL, 0, 1, pid, body)
    s.close()


def test_nlctrl_ids_of_all_families(daemon):
    s = raw_connect(daemon.path)
    ids = {}
    for i, name in enumerate(["ovs_datapath", "ovs_vport", "ovs_flow", "ovs_packet"]):
        reply, _ = get_family(s, name, 10 + i)
        # walk attributes to find FAMILY_ID (type 1)
        off = 20
        while off < len(reply):
            ln, t = struct.unpack_from("=HH", reply, off)
            if t == 1:
                ids[name] = struct.unpack_from("=H", reply, off + 4)[0]
            off += (ln + 3) & ~3
    assert ids == {"ovs_datapath": 0x13, "ovs_vport": 0x14, "ovs_flow": 0x15, "ovs_packet": 0x16}
    s.close()


def _attrs(buf, off=20):
    """{type: payload} of a generic netlink message's top-level attributes."""
    out = {}
    while off + 4 <= len(buf):
        ln, t = struct.unpack_from("=HH", buf, off)
        out[t & 0x3FFF] = buf[off + 4:off + ln]
        off += (ln + 3) & ~3
    return out


def test_nlctrl_getfamily_by_id_is_the_same_reply(daemon):
    s = raw_connect(daemon.path)
    by_name, pid = get_family(s, "ovs_vport", 1)
    req = nlmsg(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, 2, 0,
                genl(3, 1) + nlattr(1, struct.pack("=H", 0x14)))      # CTRL_ATTR_FAMILY_ID
    s.send(req)
    by_id = recv(s)
    assert recv(s) == ack(req, 2, pid)
    # the same message but for its sequence number
    assert by_id[:8] + by_id[12:] == by_name[:8] + by_name[12:]
    assert struct.unpack_from("=I", by_id, 8)[0] == 2
    # an id nobody has: ENOENT, the request echoed
    req = nlmsg(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, 3, 0,
                genl(3, 1) + nlattr(1, struct.pack("=H", 0x7ff0)))
    s.send(req)
    err = recv(s)
    assert struct.unpack_from("=HHi", err, 4)[0] == NLMSG_ERROR
    assert struct.unpack_from("=i", err, 16)[0] == -2
    s.close()


def test_nlctrl_dump_lists_every_family(daemon):
    s = raw_connect(daemon.path)
    req = nlmsg(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_DUMP, 5, 0, genl(3, 1))
    s.send(req)
    names, done = {}, False
    while not done:
        data = recv(s)
        off = 0
        while off < len(data):
            ln, mtype, flags, seq = struct.unpack_from("=IHHI", data, off)
            assert seq == 5
            msg = data[off:off + ln]
            if mtype == NLMSG_DONE:
                done = True
            else:
                assert mtype == GENL_ID_CTRL and flags & NLM_F_MULTI
                a = _attrs(msg)
                names[a[2].rstrip(b"\0").decode()] = struct.unpack("=H", a[1])[0]
            off += (ln + 3) & ~3
    assert names["nlctrl"] == GENL_ID_CTRL
    assert {n: names[n] for n in ("ovs_datapath", "ovs_vport", "ovs_flow", "ovs_packet")} == {
        "ovs_datapath": 0x13, "ovs_vport": 0x14, "ovs_flow": 0x15, "ovs_packet": 0x16}
    s.close()


def test_datapath_new_vport_new_and_errors(daemon):
    s = raw_connect(daemon.path)
    _, pid = get_family(s, "ovs_datapath", 1)
    dp_fam, vport_fam = 0x13, 0x14

    # OVS_DP_CMD_NEW "gold0", upcall pid 0, features UNALIGNED|VPORT_PIDS, echo + ack
    req = nlmsg(dp_fam, NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO, 2, 0,
                genl(1, 2) + struct.pack("=i", 0) + nlattr(1, b"gold0\0")
                + nlattr(2, struct.pack("=I", 0)) + nlattr(5, struct.pack("=I", 3)))
    s.send(req)
    reply = recv(s)
    (ifindex,) = struct.unpack_from("=i", reply, 20)
    assert ifindex > 0
    expected = nlmsg(dp_fam, 0, 2, pid, genl(1, 2) + struct.pack("=i", ifindex)
                     + nlattr(1, b"gold0\0")
                     + nlattr(3, struct.pack("=QQQQ", 0, 0, 0, 0))
                     + nlattr(4, struct.pack("=QIIQQ", 0, 0, 0, 0, 0))
                     + nlattr(5, struct.pack("=I", 3))
                     + nlattr(7, struct.pack("=I", 256)))
    assert reply == expected
    assert recv(s) == ack(req, 2, pid)

    # OVS_VPORT_CMD_NEW: a dummy port (ovsdp type 0x7f01), two upcall pids, port 5
    req = nlmsg(vport_fam, NLM_F_REQUEST | NLM_F_ECHO, 3, 0,
                genl(1, 1) + struct.pack("=i", ifindex) + nlattr(1, struct.pack("=I", 5))
                + nlattr(2, struct.pack("=I", 0x7F01)) + nlattr(3, b"gd1\0")
                + nlattr(5, struct.pack("=II", 100, 200)))
    s.send(req)
    reply = recv(s)
    (vport_ifindex,) = struct.unpack_from("=I", reply, 20 + 4 + 8 + 8 + 8 + 4)
    expected = nlmsg(vport_fam, 0, 3, pid, genl(1, 1) + struct.pack("=i", ifindex)
                     + nlattr(1, struct.pack("=I", 5)) + nlattr(2, struct.pack("=I", 0x7F01))
                     + nlattr(3, b"gd1\0") + nlattr(8, struct.pack("=I", vport_ifindex))
                     + nlattr(6, struct.pack("=8Q", *[0] * 8))
                     + nlattr(10, nlattr(0, struct.pack("=Q", 0)) + nlattr(1, struct.pack("=Q", 0)))
                     + nlattr(5, struct.pack("=II", 100, 200)))
    assert reply == expected

    # GET of a missing datapath: NLMSG_ERROR -ENODEV echoing the whole request
    req = nlmsg(dp_fam, NLM_F_REQUEST, 4, 0, genl(3, 2) + struct.pack("=i", 0)
                + nlattr(1, b"nope\0"))
    s.send(req)
    reply = recv(s)
    ln, t, flags, seq, rpid = struct.unpack_from("=IHHII", reply)
    assert (t, seq, rpid) == (NLMSG_ERROR, 4, pid)
    assert struct.unpack_from("=i", reply, 16)[0] == -19
    assert reply[20:20 + len(req)] == req
    assert flags & NLM_F_ACK_TLVS and not flags & NLM_F_CAPPED
    s.close()


def test_two_requests_in_one_datagram(daemon):
    s = raw_connect(daemon.path)
    _, pid = get_family(s, "ovs_datapath", 1)
    r1 = nlmsg(0x13, NLM_F_REQUEST | NLM_F_ACK, 7, 0, genl(3, 2) + struct.pack("=i", 0)
               + nlattr(1, b"x1\0"))
    r2 = nlmsg(0x13, NLM_F_REQUEST | NLM_F_ACK, 8, 0, genl(3, 2) + struct.pack("=i", 0)
               + nlattr(1, b"x2\0"))
    s.send(r1 + r2)
    e1, e2 = recv(s), recv(s)
    assert struct.unpack_from("=IHHIIi", e1)[3:] == (7, pid, -19)
    assert struct.unpack_from("=IHHIIi", e2)[3:] == (8, pid, -19)
    s.close()


def test_dump_larger_than_one_reply(daemon):
    s = raw_connect(daemon.path)
    _, pid = get_family(s, "ovs_datapath", 1)
    n = 120
    for i in range(n):
        s.send(nlmsg(0x13, NLM_F_REQUEST | NLM_F_ACK, 100 + i, 0,
                     genl(1, 2) + struct.pack("=i", 0) + nlattr(1, b"g%03d\0" % i)
                     + nlattr(2, struct.pack("=I", 0))))
        recv(s)
    s.send(nlmsg(0x13, NLM_F_REQUEST | NLM_F_DUMP, 999, 0, genl(3, 2) + struct.pack("=i", 0)))
    names = []
    datagrams = 0
    while True:
        d = recv(s)
        datagrams += 1
        off = 0
        done = False
        while off < len(d):
            ln, t, flags, seq, rpid = struct.unpack_from("=IHHII", d, off)
            assert (seq, rpid) == (999, pid)
            if t == NLMSG_DONE:
                assert d[off:off + ln] == nlmsg(NLMSG_DONE, NLM_F_MULTI, 999, pid,
                                                struct.pack("=i", 0))
                assert off == 0          # NLMSG_DONE travels alone
                done = True
            else:
                assert flags == NLM_F_MULTI and t == 0x13
                names.append(d[off + 28:off + 32])
            off += (ln + 3) & ~3
        assert len(d) <= 8192
        if done:
            break
    assert names == [b"g%03d" % i for i in range(n)]
    assert datagrams >= 3
    s.close()
