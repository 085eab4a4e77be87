"""ovs_flow and ovs_packet through the control socket: errno rules, upcalls, handlers."""

import errno
import struct
import time

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from ovsdp import odp
from ovsdp import uapi as U
from ovsdp.client.dpif import Dpif
from ovsdp.netlink.attr import iter_attrs, nla, nla_flag, nla_nest, nla_u32

KEY = ("in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0800),"
       "ipv4(src=10.0.0.1,dst=10.0.0.2,proto=6,tos=0,ttl=64,frag=no),tcp(src=1000,dst=80),"
       "tcp_flags(syn)")
WC = ("in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0800),"
      "ipv4(frag=no)")


def key(text=KEY):
    return odp.parse_key(text)[0]


def km(text):
    return odp.parse_key(text)


def acts(text):
    return odp.parse_actions(text)


def text_of(f):
    """A flow reply's match in the text format (masked key)."""
    return odp.format_key(f.key, f.mask)


def err_of(fn, *a, **kw):
    with pytest.raises(OSError) as e:
        fn(*a, **kw)
    return e.value.errno


def frame(src="00:00:00:00:00:01", dst="00:00:00:00:00:02", sport=1000, dport=80, payload=b"x"):
    return bytes(Ether(src=src, dst=dst) / IP(src="10.0.0.1", dst="10.0.0.2", ttl=64)
                 / TCP(sport=sport, dport=dport, flags="S") / payload)


@pytest.fixture
def dp(daemon, dpif):
    """A datapath with dummy ports 1 and 2 whose upcalls go to a handler connection."""
    handler = Dpif(daemon.path)
    dpif.dp_new("fdp", upcall_pid=handler.portid)
    dpif.vport_new("fdp", "in1", "dummy", port_no=1, upcall_pids=[handler.portid])
    dpif.vport_new("fdp", "out2", "dummy", port_no=2, upcall_pids=[handler.portid])
    yield dpif, handler, daemon
    handler.close()


def inject(daemon, port, data):
    daemon.call(lambda: daemon.module.init_net.vports_by_name[port].inject(data))


def fetch(daemon, port):
    return daemon.call(lambda: daemon.module.init_net.vports_by_name[port].fetch())


# ------------------------------------------------------------- flow family
def test_new_get_del(dp):
    dpif, _, _ = dp
    f = dpif.flow_new("fdp", key(), acts("2"))
    assert text_of(f) == KEY and f.actions == acts("2")
    g = dpif.flow_get("fdp", key=key())
    assert g.actions == acts("2") and g.packets == 0
    dpif.flow_del("fdp", key=key())
    assert err_of(dpif.flow_get, "fdp", key=key()) == errno.ENOENT


def test_new_requires_key(dp):
    dpif = dp[0]
    assert err_of(dpif._req, U.OVS_FLOW_FAMILY, U.OVS_FLOW_CMD_NEW, dpif.ifindex("fdp"),
                  nla_nest(U.OVS_FLOW_ATTR_ACTIONS, acts("2"))) == errno.EINVAL


def test_new_requires_actions(dp):
    dpif = dp[0]
    assert err_of(dpif._req, U.OVS_FLOW_FAMILY, U.OVS_FLOW_CMD_NEW, dpif.ifindex("fdp"),
                  nla_nest(U.OVS_FLOW_ATTR_KEY, key())) == errno.EINVAL


def test_new_exclusive_duplicate_eexist(dp):
    dpif = dp[0]
    dpif.flow_new("fdp", key(), acts("2"))
    assert err_of(dpif.flow_new, "fdp", key(), acts("1")) == errno.EEXIST


def test_new_without_create_replaces_actions(dp):
    dpif = dp[0]
    dpif.flow_new("fdp", key(), acts("2"))
    f = dpif.flow_new("fdp", key(), acts("1,2"), create=False)
    assert f.actions == acts("1,2")
    assert len(dpif.flow_dump("fdp")) == 1


def test_new_same_ufid_different_key_enoent(dp):
    dpif = dp[0]
    ufid = bytes(range(16))
    k, m = km(WC)
    dpif.flow_new("fdp", k, acts("2"), mask=m, ufid=ufid)
    other = KEY.replace("dst=00:00:00:00:00:02", "dst=00:00:00:00:00:09")
    assert err_of(dpif.flow_new, "fdp", key(other), acts("2"), ufid=ufid, create=False) \
        == errno.ENOENT


def test_new_overlapping_key_without_ufid_enoent(dp):
    dpif = dp[0]
    k, m = km(WC)
    dpif.flow_new("fdp", k, acts("2"), mask=m)
    # an exact flow that the wildcarded one covers: found by the masked
    # lookup, but its unmasked key differs
    assert err_of(dpif.flow_new, "fdp", key(), acts("1"), create=False) == errno.ENOENT


def test_new_no_datapath_enodev(dp):
    dpif = dp[0]
    assert err_of(dpif.flow_new, 9999999, key(), acts("2")) == errno.ENODEV


@pytest.mark.parametrize("cmd", [U.OVS_FLOW_CMD_GET, U.OVS_FLOW_CMD_SET])
def test_get_set_need_key_or_ufid(dp, cmd):
    dpif = dp[0]
    assert err_of(dpif._req, U.OVS_FLOW_FAMILY, cmd, dpif.ifindex("fdp")) == errno.EINVAL


def test_set_actions_need_key(dp):
    dpif = dp[0]
    ufid = b"\x01" * 16
    dpif.flow_new("fdp", key(), acts("2"), ufid=ufid)
    assert err_of(dpif.flow_set, "fdp", ufid=ufid, actions=acts("1")) == errno.EINVAL


@pytest.mark.parametrize("op", ["get", "set", "del"])
def test_missing_flow_enoent(dp, op):
    dpif = dp[0]
    fn = {"get": dpif.flow_get, "set": dpif.flow_set, "del": dpif.flow_del}[op]
    assert err_of(fn, "fdp", key=key()) == errno.ENOENT
    assert err_of(fn, "fdp", ufid=b"\x07" * 16) == errno.ENOENT


def test_set_keeps_or_replaces_actions_and_clears(dp):
    dpif, _, daemon = dp
    dpif.flow_new("fdp", key(), acts("2"))
    inject(daemon, "in1", frame())
    f = dpif.flow_set("fdp", key=key())
    assert f.actions == acts("2") and f.packets == 1 and f.used and f.tcp_flags == 0x02
    f = dpif.flow_set("fdp", key=key(), actions=acts("1"), clear=True)
    assert f.actions == acts("1")
    assert f.packets == 1                       # the reply is built before clearing
    g = dpif.flow_get("fdp", key=key())
    assert (g.packets, g.bytes, g.used, g.tcp_flags) == (0, 0, 0, 0)


def test_del_without_key_flushes(dp):
    dpif = dp[0]
    dpif.flow_new("fdp", key(), acts("2"))
    dpif.flow_new("fdp", key(KEY.replace("dst=80", "dst=81")), acts("2"))
    dpif.flow_flush("fdp")
    assert dpif.flow_dump("fdp") == []
    assert dpif.dp_get("fdp").n_flows == 0


def test_get_and_del_by_ufid(dp):
    dpif = dp[0]
    ufid = bytes(range(16))
    k, m = km(WC)
    dpif.flow_new("fdp", k, acts("2"), mask=m, ufid=ufid)
    g = dpif.flow_get("fdp", ufid=ufid)
    assert g.ufid == ufid and text_of(g) == WC
    # by key: only flows without a UFID are found by their key
    assert err_of(dpif.flow_get, "fdp", key=k) == errno.ENOENT
    dpif.flow_del("fdp", ufid=ufid)
    assert dpif.flow_dump("fdp") == []


def test_ufid_flags_omit(dp):
    dpif = dp[0]
    ufid = bytes(range(16))
    dpif.flow_new("fdp", key(), acts("2"), ufid=ufid)
    (f,) = dpif.flow_dump("fdp", ufid_flags=U.OVS_UFID_F_OMIT_KEY | U.OVS_UFID_F_OMIT_MASK
                          | U.OVS_UFID_F_OMIT_ACTIONS)
    assert f.ufid == ufid and f.key is None and f.mask is None and f.actions is None
    (f,) = dpif.flow_dump("fdp")
    assert text_of(f) == KEY and f.actions == acts("2")


def test_reply_attribute_order(dp):
    dpif, _, daemon = dp
    ufid = bytes(range(16))
    dpif.flow_new("fdp", key(), acts("2"), ufid=ufid)
    inject(daemon, "in1", frame())
    msgs = dpif._req(U.OVS_FLOW_FAMILY, U.OVS_FLOW_CMD_GET, dpif.ifindex("fdp"),
                     nla(U.OVS_FLOW_ATTR_UFID, ufid))
    from ovsdp.netlink.attr import iter_attrs
    order = [t for t, _, _ in iter_attrs(msgs[0].raw[24:])]
    assert order == [U.OVS_FLOW_ATTR_UFID, U.OVS_FLOW_ATTR_KEY, U.OVS_FLOW_ATTR_MASK,
                     U.OVS_FLOW_ATTR_USED, U.OVS_FLOW_ATTR_STATS, U.OVS_FLOW_ATTR_TCP_FLAGS,
                     U.OVS_FLOW_ATTR_ACTIONS]


def test_probe_still_fails(dp):
    dpif = dp[0]
    bad = nla_nest(U.OVS_FLOW_ATTR_KEY, nla_u32(U.OVS_KEY_ATTR_IN_PORT, 1)) + \
        nla_nest(U.OVS_FLOW_ATTR_ACTIONS, b"") + nla_flag(U.OVS_FLOW_ATTR_PROBE)
    assert err_of(dpif._req, U.OVS_FLOW_FAMILY, U.OVS_FLOW_CMD_NEW, dpif.ifindex("fdp"), bad) \
        == errno.EINVAL


@pytest.mark.parametrize("text", [
    "in_port(1),in_port(2),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0800)",
])
def test_duplicate_key_attribute_einval(dp, text):
    dpif = dp[0]
    k = nla_u32(U.OVS_KEY_ATTR_IN_PORT, 1) + key(KEY)
    assert err_of(dpif.flow_new, "fdp", k, acts("2")) == errno.EINVAL


@pytest.mark.parametrize("bad", [
    # wrong length of an attribute
    lambda: nla(U.OVS_KEY_ATTR_IN_PORT, b"\1\0") + key(KEY)[8:],
    # trailing bytes
    lambda: key(KEY) + b"\1\2",
    # frag > 2
    lambda: key(KEY.replace("frag=no", "frag=later")).replace(
        bytes([0, 64, 2]), bytes([0, 64, 3])),
])
def test_malformed_keys_einval(dp, bad):
    dpif = dp[0]
    assert err_of(dpif.flow_new, "fdp", bad(), acts("2")) == errno.EINVAL


def test_ipv6_label_over_20_bits_einval(dp):
    dpif = dp[0]
    k = key("in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x86dd),"
            "ipv6(src=::1,dst=::2,label=0,proto=17,tclass=0,hlimit=64,frag=no),udp(src=1,dst=2)")
    i = k.index(struct.pack("=HH", 44, U.OVS_KEY_ATTR_IPV6)) + 4 + 32
    k = k[:i] + struct.pack("!I", 1 << 20) + k[i + 4:]
    assert err_of(dpif.flow_new, "fdp", k, acts("2")) == errno.EINVAL


def test_arp_op_over_255_einval(dp):
    dpif = dp[0]
    k = key("in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0806),"
            "arp(sip=1.2.3.4,tip=5.6.7.8,op=1,sha=00:00:00:00:00:01,tha=00:00:00:00:00:02)")
    i = k.index(struct.pack("=HH", 28, U.OVS_KEY_ATTR_ARP)) + 4 + 8
    k = k[:i] + struct.pack("!H", 0x100) + k[i + 2:]
    assert err_of(dpif.flow_new, "fdp", k, acts("2")) == errno.EINVAL


@pytest.mark.parametrize("text,err", [
    ("clone(" * 17 + "2" + ")" * 17, errno.EOVERFLOW),
    ("drop,2", errno.EINVAL),
    ("ct(commit,helper=nope)", errno.EINVAL),       # no such helper
])
def test_bad_actions(dp, text, err):
    dpif = dp[0]
    a = acts(text)
    assert err_of(dpif.flow_new, "fdp", key(), a) == err


def test_psample_is_kept_and_dumped_as_it_came_without_the_nested_flag(dp):
    dpif = dp[0]
    a = acts("psample(group=1,cookie=0xc0ffee),2")
    assert struct.unpack_from("=H", a, 2)[0] == U.OVS_ACTION_ATTR_PSAMPLE | U.NLA_F_NESTED
    dpif.flow_new("fdp", key(), a)
    (f,) = dpif.flow_dump("fdp")
    assert f.actions == struct.pack("=HH", 20, U.OVS_ACTION_ATTR_PSAMPLE) + a[4:]
    # nla_parse_nested(): without NLA_F_NESTED it is EINVAL
    bare = struct.pack("=HH", 20, U.OVS_ACTION_ATTR_PSAMPLE) + a[4:20]
    assert err_of(dpif.flow_new, "fdp", key(KEY.replace("in_port(1)", "in_port(2)")),
                  bare) == errno.EINVAL


def test_check_pkt_len_needs_both_branches(dp):
    dpif = dp[0]
    a = nla_nest(U.OVS_ACTION_ATTR_CHECK_PKT_LEN,
                 nla(U.OVS_CHECK_PKT_LEN_ATTR_PKT_LEN, struct.pack("=H", 100)),
                 nla_nest(U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_GREATER, acts("2")))
    assert err_of(dpif.flow_new, "fdp", key(), a) == errno.EINVAL


def test_userspace_pid_zero_einval(dp):
    dpif = dp[0]
    a = nla_nest(U.OVS_ACTION_ATTR_USERSPACE, nla_u32(U.OVS_USERSPACE_ATTR_PID, 0))
    assert err_of(dpif.flow_new, "fdp", key(), a) == errno.EINVAL


def test_unknown_action_einval(dp):
    dpif = dp[0]
    assert err_of(dpif.flow_new, "fdp", key(), nla(99, b"")) == errno.EINVAL


def test_flow_dump_unknown_dp_enodev(dp):
    dpif = dp[0]
    assert err_of(dpif.flow_dump, 31337) == errno.ENODEV


def test_flow_notifications_on_listener(dp):
    dpif, _, daemon = dp
    listener = Dpif(daemon.path)
    try:
        listener.subscribe(U.OVS_FLOW_FAMILY)
        dpif.flow_new("fdp", key(), acts("2"), echo=False)
        dpif.flow_set("fdp", key=key(), actions=acts("1"), echo=False)
        dpif.flow_del("fdp", key=key(), echo=False)
        cmds = [listener.recv_notification(5)[1] for _ in range(3)]
        assert cmds == [U.OVS_FLOW_CMD_NEW, U.OVS_FLOW_CMD_SET, U.OVS_FLOW_CMD_DEL]
    finally:
        listener.close()


def test_flow_dump_spans_datagrams(dp):
    dpif = dp[0]
    for i in range(300):
        dpif.flow_new("fdp", key(KEY.replace("dst=80", f"dst={i + 1}")), acts("2"), echo=False)
    flows = dpif.flow_dump("fdp")
    assert len(flows) == 300
    assert dpif.dp_get("fdp").n_flows == 300


# ---------------------------------------------------------------- upcalls
def test_miss_upcall_key_and_handler_round_trip(dp):
    dpif, handler, daemon = dp
    data = frame()
    inject(daemon, "in1", data)
    u = handler.recv_upcall(5)
    assert u is not None and u.cmd == U.OVS_PACKET_CMD_MISS
    assert u.packet == data
    assert u.dp_ifindex == dpif.ifindex("fdp")
    assert u.hash & U.OVS_PACKET_HASH_SW_BIT and u.hash & U.OVS_PACKET_HASH_L4_BIT
    assert odp.format_key(u.key) == (
        "recirc_id(0),dp_hash(0),skb_priority(0),in_port(1),skb_mark(0),ct_state(0),"
        "ct_zone(0),ct_mark(0),ct_label(0),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),"
        "eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=6,tos=0,ttl=64,frag=no),"
        "tcp(src=1000,dst=80),tcp_flags(syn)")
    dp_before = dpif.dp_get("fdp")
    assert (dp_before.n_missed, dp_before.n_hit, dp_before.n_lost) == (1, 0, 0)
    # the handler installs a megaflow and sends the packet back
    k, m = km(WC)
    dpif.flow_new("fdp", k, acts("2"), mask=m, ufid=b"\xaa" * 16)
    dpif.execute("fdp", u.packet, u.key, acts("2"))
    assert fetch(daemon, "out2") == [data]
    # the next packets hit the flow
    for i in range(5):
        inject(daemon, "in1", frame(sport=2000 + i))
    assert len(fetch(daemon, "out2")) == 5
    d = dpif.dp_get("fdp")
    assert (d.n_missed, d.n_hit, d.n_lost, d.n_flows) == (1, 5, 0, 1)
    f = dpif.flow_get("fdp", ufid=b"\xaa" * 16)
    assert f.packets == 5 and f.bytes == 5 * len(data)
    assert handler.recv_upcall(0.2) is None
    v = dpif.vport_get("fdp", name="in1")
    assert (v.upcall_success, v.upcall_fail) == (1, 0)
    assert v.stats["rx_packets"] == 6


def test_miss_upcall_goes_to_port_ids_by_hash(dp):
    dpif, handler, daemon = dp
    other = Dpif(daemon.path)
    try:
        dpif.vport_set("fdp", name="in1", upcall_pids=[handler.portid, other.portid])
        for i in range(40):
            inject(daemon, "in1", frame(sport=3000 + i))
        got = {"h": 0, "o": 0}
        for c, name in ((handler, "h"), (other, "o")):
            while c.recv_upcall(0.2) is not None:
                got[name] += 1
        assert got["h"] + got["o"] == 40 and got["h"] > 0 and got["o"] > 0
    finally:
        other.close()


def test_per_cpu_dispatch(dp):
    dpif, handler, daemon = dp
    other = Dpif(daemon.path)
    try:
        dpif.dp_set("fdp", user_features=U.OVS_DP_F_DISPATCH_UPCALL_PER_CPU
                    | U.OVS_DP_F_VPORT_PIDS, per_cpu_pids=[other.portid])
        inject(daemon, "in1", frame())
        assert other.recv_upcall(5) is not None
        assert handler.recv_upcall(0.2) is None
    finally:
        other.close()


def test_upcall_pid_zero_is_lost(dp):
    dpif, _, daemon = dp
    dpif.vport_set("fdp", name="in1", upcall_pids=[0])
    inject(daemon, "in1", frame())
    d = dpif.dp_get("fdp")
    assert (d.n_missed, d.n_lost) == (1, 1)
    v = dpif.vport_get("fdp", name="in1")
    assert (v.upcall_success, v.upcall_fail) == (0, 1)


def test_upcall_to_gone_client_is_lost(dp):
    dpif, _, daemon = dp
    gone = Dpif(daemon.path)
    pid = gone.portid
    gone.close()
    time.sleep(0.1)
    dpif.vport_set("fdp", name="in1", upcall_pids=[pid])
    before = dpif.vport_get("fdp", name="in1")
    inject(daemon, "in1", frame())
    assert dpif.dp_get("fdp").n_lost == 1
    after = dpif.vport_get("fdp", name="in1")
    assert after.upcall_fail == before.upcall_fail + 1
    assert after.upcall_success == before.upcall_success


def test_slow_handler_costs_lost_upcalls_not_memory(dp):
    dpif, handler, daemon = dp
    lazy = Dpif(daemon.path)
    try:
        dpif.vport_set("fdp", name="in1", upcall_pids=[lazy.portid])
        data = frame(payload=b"y" * 200)
        daemon.call(lambda: [daemon.module.init_net.vports_by_name["in1"].inject(data)
                             for _ in range(30000)])
        d = dpif.dp_get("fdp")
        assert d.n_missed == 30000 and d.n_lost > 0
        conn = [c for c in daemon.daemon.server.conns.values() if c.portid == lazy.portid][0]
        from ovsdp.server.transport import UPCALL_QUEUE_MAX
        assert conn.upcalls_queued <= UPCALL_QUEUE_MAX
    finally:
        lazy.close()


def test_execute_set_then_userspace_upcall_carries_modified_packet(dp):
    dpif, handler, daemon = dp
    data = frame()
    a = acts(f"set(ipv4(src=192.168.7.7,ttl=9)),set(tcp(dst=8080)),push_vlan(vid=5,pcp=3),"
             f"userspace(pid={handler.portid},userdata(0102030405060708))")
    dpif.execute("fdp", data, key(KEY), a)
    u = handler.recv_upcall(5)
    assert u.cmd == U.OVS_PACKET_CMD_ACTION and u.userdata == bytes(range(1, 9))
    p = Ether(u.packet)
    assert p.vlan == 5 and p.prio == 3
    ip = p[IP]
    assert (ip.src, ip.ttl, p[TCP].dport) == ("192.168.7.7", 9, 8080)
    # checksums as an independent library computes them
    chk_ip, chk_tcp = ip.chksum, p[TCP].chksum
    del ip.chksum
    del p[TCP].chksum
    q = Ether(bytes(p))
    assert (q[IP].chksum, q[TCP].chksum) == (chk_ip, chk_tcp)
    # the key of an ACTION upcall is the packet's key as the datapath held it
    assert "in_port(1)" in odp.format_key(u.key)


def test_action_upcall_attributes_in_kernel_order(dp):
    """queue_userspace_packet(): KEY, USERDATA, (EGRESS_TUN_KEY), ACTIONS, MRU,
    LEN, HASH, PACKET, in that order, each with the kernel's value."""
    dpif, handler, daemon = dp
    data = frame(payload=b"z" * 60)
    a = acts(f"trunc(40),userspace(pid={handler.portid},userdata(0a0b0c),actions)")
    dpif.execute("fdp", data, key(KEY), a, mru=1400)
    fid = handler.sock.family(U.OVS_PACKET_FAMILY).id
    got = handler.sock.take(lambda h, raw: h.type == fid, 5)
    assert got is not None
    hdr, raw = got
    cmd = raw[U.NLMSG_HDRLEN]
    assert cmd == U.OVS_PACKET_CMD_ACTION
    body = raw[U.NLMSG_HDRLEN + U.GENL_HDRLEN:hdr.len]
    assert U.OVS_HEADER.unpack_from(body)[0] == dpif.ifindex("fdp")
    attrs = [(t & U.NLA_TYPE_MASK, p) for t, p, _ in iter_attrs(body[U.OVS_HEADER_LEN:])]
    assert [t for t, _ in attrs] == [U.OVS_PACKET_ATTR_KEY, U.OVS_PACKET_ATTR_USERDATA,
                                     U.OVS_PACKET_ATTR_ACTIONS, U.OVS_PACKET_ATTR_MRU,
                                     U.OVS_PACKET_ATTR_LEN, U.OVS_PACKET_ATTR_HASH,
                                     U.OVS_PACKET_ATTR_PACKET]
    v = dict(attrs)
    assert "in_port(1)" in odp.format_key(v[U.OVS_PACKET_ATTR_KEY])
    # (the text parser pads userdata to 8 bytes, as odp_put_userspace_action does)
    assert v[U.OVS_PACKET_ATTR_USERDATA] == bytes.fromhex("0a0b0c") + bytes(5)
    # the actions being executed, as the datapath holds them
    assert odp.format_actions(v[U.OVS_PACKET_ATTR_ACTIONS]) == odp.format_actions(a)
    assert struct.unpack("=H", v[U.OVS_PACKET_ATTR_MRU][:2])[0] == 1400
    # LEN: the length before trunc; PACKET: the first 40 bytes
    assert struct.unpack("=I", v[U.OVS_PACKET_ATTR_LEN])[0] == len(data)
    assert v[U.OVS_PACKET_ATTR_PACKET] == data[:40]
    assert len(v[U.OVS_PACKET_ATTR_HASH]) == 8
    # without trunc, MRU or the actions flag, those attributes are absent
    dpif.execute("fdp", data, key(KEY), acts(f"userspace(pid={handler.portid})"))
    hdr, raw = handler.sock.take(lambda h, raw: h.type == fid, 5)
    body = raw[U.NLMSG_HDRLEN + U.GENL_HDRLEN + U.OVS_HEADER_LEN:hdr.len]
    assert [t & U.NLA_TYPE_MASK for t, _, _ in iter_attrs(body)] == [
        U.OVS_PACKET_ATTR_KEY, U.OVS_PACKET_ATTR_HASH, U.OVS_PACKET_ATTR_PACKET]


def test_execute_errors(dp):
    dpif, handler, daemon = dp
    assert err_of(dpif.execute, 31337, frame(), key(), acts("2")) == errno.ENODEV
    # too short a packet: policy minimum is ETH_HLEN
    assert err_of(dpif.execute, "fdp", b"\0" * 13, key(), acts("2")) == errno.ERANGE
    # missing attributes
    assert err_of(dpif._req, U.OVS_PACKET_FAMILY, U.OVS_PACKET_CMD_EXECUTE,
                  dpif.ifindex("fdp"), nla(U.OVS_PACKET_ATTR_PACKET, frame())) == errno.EINVAL


def test_execute_recirc_miss_goes_to_upcall_pid(dp):
    dpif, handler, daemon = dp
    other = Dpif(daemon.path)
    try:
        dpif.execute("fdp", frame(), key(), acts("recirc(7)"), upcall_pid=other.portid)
        u = other.recv_upcall(5)
        assert u is not None and u.cmd == U.OVS_PACKET_CMD_MISS
        assert odp.format_key(u.key).startswith("recirc_id(0x7)")
        assert handler.recv_upcall(0.2) is None
    finally:
        other.close()


def test_udp_flow_and_emc_invalidation(dp):
    dpif, _, daemon = dp
    udp = bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02")
                / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=6) / (b"z" * 20))
    k, m = km(WC)
    dpif.flow_new("fdp", k, acts("2"), mask=m, ufid=b"\x01" * 16)
    inject(daemon, "in1", udp)
    assert len(fetch(daemon, "out2")) == 1
    dpif.flow_set("fdp", ufid=b"\x01" * 16, key=k, mask=m, actions=acts("drop"))
    inject(daemon, "in1", udp)
    assert fetch(daemon, "out2") == []
    dpif.flow_del("fdp", ufid=b"\x01" * 16)
    inject(daemon, "in1", udp)                   # cached decisions are gone too
    assert fetch(daemon, "out2") == [] and dpif.dp_get("fdp").n_missed == 1


def test_execute_upcall_pid_overrides_userspace_pid(dp):
    dpif, handler, daemon = dp
    other = Dpif(daemon.path)
    try:
        dpif.execute("fdp", frame(), key(), acts(f"userspace(pid={handler.portid})"),
                     upcall_pid=other.portid)
        u = other.recv_upcall(5)
        assert u is not None and u.cmd == U.OVS_PACKET_CMD_ACTION
        assert handler.recv_upcall(0.2) is None
    finally:
        other.close()


def test_action_upcall_of_a_received_packet_carries_its_hash(dp):
    dpif, handler, daemon = dp
    k, m = km(WC)
    dpif.flow_new("fdp", k, acts(f"userspace(pid={handler.portid})"), mask=m)
    inject(daemon, "in1", frame())
    u = handler.recv_upcall(5)
    assert u.cmd == U.OVS_PACKET_CMD_ACTION
    assert u.hash & 0xFFFFFFFF and u.hash & U.OVS_PACKET_HASH_SW_BIT \
        and u.hash & U.OVS_PACKET_HASH_L4_BIT


def test_no_cache_hits_counted_without_a_mask_cache(dp):
    dpif, _, daemon = dp
    dpif.dp_set("fdp", masks_cache_size=0, user_features=U.OVS_DP_F_VPORT_PIDS)
    k, m = km(WC)
    dpif.flow_new("fdp", k, acts("2"), mask=m)
    for _ in range(5):
        inject(daemon, "in1", frame())
    d = dpif.dp_get("fdp")
    assert d.n_hit == 5 and d.n_mask_hit == 5 and d.n_cache_hit == 0


def test_client_errors_carry_the_extended_ack_text(dp):
    dpif, _, _ = dp
    k, m = km("in_port(1),eth(),eth_type(0x0800)")          # IPv4 without its ipv4()
    with pytest.raises(OSError) as e:
        dpif.flow_new("fdp", k, acts("2"), mask=m)
    assert e.value.errno == errno.EINVAL
    assert e.value.ext_ack and "Missing key" in e.value.ext_ack
    assert e.value.strerror == f"Invalid argument ({e.value.ext_ack})"
    with pytest.raises(OSError) as e:
        dpif.vport_new("fdp", "x", "dummy", port_no=1)         # port 1 is taken
    assert e.value.errno == errno.EBUSY and e.value.ext_ack


def test_output_longer_than_the_mtu_is_a_tx_error(dp):
    """ovs_vport_send(): a frame over the port's MTU (one VLAN tag aside) is
    dropped and counted as tx_errors; up to the MTU it goes out."""
    dpif, _, daemon = dp
    from scapy.layers.l2 import Dot1Q

    def l2(n, vlan=False):
        e = Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02", type=0x88b5)
        if vlan:
            e = Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02") / Dot1Q(vlan=7,
                                                                                type=0x88b5)
        return bytes(e / (b"m" * (n - len(e))))
    k = odp.parse_key("in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),"
                      "eth_type(0x88b5)")[0]
    fits, tagged_fits, too_long = l2(1514), l2(1518, vlan=True), l2(1515)
    for f in (fits, tagged_fits, too_long):
        dpif.execute("fdp", f, k, acts("2"))
    assert fetch(daemon, "out2") == [fits, tagged_fits]
    stats = dpif.vport_get("fdp", name="out2").stats
    assert stats["tx_errors"] == 1 and stats["tx_packets"] == 2


def test_ct_actions_install_and_dump_as_the_kernel_puts_them(dp):
    """ct() without NAT installs; a dump gives its attributes back in
    ovs_ct_action_to_attr()'s order (commit, zone, mark, labels)."""
    dpif = dp[0]
    text = "ct(commit,zone=5,mark=0x1/0xff,label=0x2/0xf),recirc(0x1)"
    dpif.flow_new("fdp", key(), acts(text))
    (f,) = dpif.flow_dump("fdp")
    assert odp.format_actions(f.actions) == text
    dpif.flow_new("fdp", key(KEY.replace("in_port(1)", "in_port(2)")), acts("ct,2"))
    texts = sorted(odp.format_actions(f.actions) for f in dpif.flow_dump("fdp"))
    assert texts[1] == "ct,2", texts            # zone 0 is put, and printed as no zone


@pytest.mark.parametrize("text", [
    "ct(commit,nat(src=10.0.0.1-10.0.0.9:1000-2000,persistent,random)),recirc(0x2)",
    "ct(commit,zone=3,nat(dst=10.0.0.5:80)),recirc(0x2)",
    "ct(nat),recirc(0x2)",
])
def test_ct_nat_installs_and_dumps_as_given(dp, text):
    """ct(nat(...)) installs (ovs_ct_copy_action) and a dump gives back the
    same text (ovs_ct_nat_to_attr())."""
    dpif = dp[0]
    dpif.flow_new("fdp", key(), acts(text))
    (f,) = dpif.flow_dump("fdp")
    assert odp.format_actions(f.actions) == text
