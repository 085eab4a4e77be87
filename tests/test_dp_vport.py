"""ovs_datapath and ovs_vport families through the control socket: every errno rule."""

import errno
import os
import struct

import pytest

from ovsdp import uapi as U
from ovsdp.client.dpif import Dpif
from ovsdp.netlink.attr import nla, nla_nest, nla_s32, nla_string, nla_u16, nla_u32

from .conftest import raw_connect


def err_of(fn, *args, **kw):
    with pytest.raises(OSError) as e:
        fn(*args, **kw)
    return e.value.errno


def dp_req(dpif, cmd, attrs=b"", ifindex=0, flags=0, version=None):
    return dpif.sock.genl_request(U.OVS_DATAPATH_FAMILY, cmd,
                                  U.OVS_HEADER.pack(ifindex) + attrs, flags, version=version)


def vport_req(dpif, cmd, attrs=b"", ifindex=0, flags=0):
    return dpif.sock.genl_request(U.OVS_VPORT_FAMILY, cmd, U.OVS_HEADER.pack(ifindex) + attrs,
                                  flags)


# ------------------------------------------------------------ datapaths
def test_dp_new_get_dump_del(dpif):
    info = dpif.dp_new("dp0")
    assert info.name == "dp0" and info.ifindex > 0
    assert info.masks_cache_size == 256
    assert info.user_features == U.OVS_DP_F_UNALIGNED | U.OVS_DP_F_VPORT_PIDS
    assert (info.n_hit, info.n_missed, info.n_lost, info.n_flows) == (0, 0, 0, 0)
    assert dpif.dp_get("dp0").ifindex == info.ifindex
    assert dpif.dp_get(info.ifindex).name == "dp0"
    dpif.dp_new("dp1")
    assert [d.name for d in dpif.dp_dump()] == ["dp0", "dp1"]
    # port 0 exists, is internal and named after the datapath
    (local,) = dpif.vport_dump("dp0")
    assert (local.port_no, local.type, local.name) == (0, U.OVS_VPORT_TYPE_INTERNAL, "dp0")
    assert local.ifindex == info.ifindex
    dpif.dp_del("dp0")
    assert [d.name for d in dpif.dp_dump()] == ["dp1"]
    assert err_of(dpif.dp_get, "dp0") == errno.ENODEV


def test_dp_new_requires_name(dpif):
    assert err_of(dp_req, dpif, U.OVS_DP_CMD_NEW, nla_u32(U.OVS_DP_ATTR_UPCALL_PID, 1)) \
        == errno.EINVAL


def test_dp_new_requires_upcall_pid(dpif):
    assert err_of(dp_req, dpif, U.OVS_DP_CMD_NEW, nla_string(U.OVS_DP_ATTR_NAME, "x")) \
        == errno.EINVAL


def test_dp_new_existing_name_is_eexist(dpif):
    dpif.dp_new("dpx")
    assert err_of(dpif.dp_new, "dpx") == errno.EEXIST


def test_dp_new_existing_name_old_version_drops_features(dpif):
    dpif.dp_new("dpo", user_features=U.OVS_DP_F_VPORT_PIDS)
    attrs = nla_string(U.OVS_DP_ATTR_NAME, "dpo") + nla_u32(U.OVS_DP_ATTR_UPCALL_PID, 1)
    assert err_of(dp_req, dpif, U.OVS_DP_CMD_NEW, attrs, version=1) == errno.EEXIST
    assert dpif.dp_get("dpo").user_features == 0


def test_dp_unknown_features_eopnotsupp(dpif):
    assert err_of(dpif.dp_new, "dpf", user_features=1 << 20) == errno.EOPNOTSUPP
    assert err_of(dpif.dp_get, "dpf") == errno.ENODEV      # nothing was created


def test_dp_set_without_features_resets_them(dpif):
    dpif.dp_new("dps", user_features=U.OVS_DP_F_VPORT_PIDS | U.OVS_DP_F_UNALIGNED)
    info = dpif.dp_set("dps")
    assert info.user_features == 0


@pytest.mark.parametrize("size,err", [(3, errno.EINVAL), (100, errno.EINVAL),
                                      (8192, errno.ERANGE), (4097, errno.ERANGE)])
def test_dp_masks_cache_size_rules(dpif, size, err):
    dpif.dp_new("dpm")
    assert err_of(dpif.dp_set, "dpm", masks_cache_size=size) == err


@pytest.mark.parametrize("size", [0, 1, 2, 1024, 4096])
def test_dp_masks_cache_size_accepted(dpif, size):
    dpif.dp_new("dpm")
    assert dpif.dp_set("dpm", masks_cache_size=size,
                       user_features=U.OVS_DP_F_VPORT_PIDS).masks_cache_size == size


def test_dp_per_cpu_pids(dpif):
    feat = U.OVS_DP_F_DISPATCH_UPCALL_PER_CPU | U.OVS_DP_F_VPORT_PIDS
    info = dpif.dp_new("dpc", user_features=feat, per_cpu_pids=[11, 22])
    assert info.per_cpu_pids == (11, 22)[:os.cpu_count()]
    # without the feature the attribute is ignored and never echoed
    info = dpif.dp_set("dpc", user_features=0, per_cpu_pids=[5])
    assert info.per_cpu_pids == ()


def test_dp_per_cpu_pids_bad_length(dpif):
    dpif.dp_new("dpc")
    attrs = nla_string(U.OVS_DP_ATTR_NAME, "dpc") + \
        nla_u32(U.OVS_DP_ATTR_USER_FEATURES, U.OVS_DP_F_DISPATCH_UPCALL_PER_CPU) + \
        nla(U.OVS_DP_ATTR_PER_CPU_PIDS, b"\1\2\3")
    assert err_of(dp_req, dpif, U.OVS_DP_CMD_SET, attrs) == errno.EINVAL


def test_dp_name_too_long(dpif):
    assert err_of(dpif.dp_new, "a" * 16) == errno.EINVAL
    attrs = nla(U.OVS_DP_ATTR_NAME, b"ab\0" + b"c" * 20 + b"\0") + \
        nla_u32(U.OVS_DP_ATTR_UPCALL_PID, 1)
    assert err_of(dp_req, dpif, U.OVS_DP_CMD_NEW, attrs) == errno.ERANGE


def test_dp_negative_ifindex_erange(dpif):
    attrs = nla_string(U.OVS_DP_ATTR_NAME, "dpi") + nla_u32(U.OVS_DP_ATTR_UPCALL_PID, 1) + \
        nla_s32(U.OVS_DP_ATTR_IFINDEX, -3)
    assert err_of(dp_req, dpif, U.OVS_DP_CMD_NEW, attrs) == errno.ERANGE


def test_dp_requested_ifindex_in_memory(dpif):
    assert dpif.dp_new("dpi", ifindex=4242).ifindex == 4242
    assert err_of(dpif.dp_new, "dpj", ifindex=4242) == errno.EEXIST


@pytest.mark.parametrize("cmd", [U.OVS_DP_CMD_GET, U.OVS_DP_CMD_DEL, U.OVS_DP_CMD_SET])
def test_dp_unknown_is_enodev(dpif, cmd):
    assert err_of(dp_req, dpif, cmd, nla_string(U.OVS_DP_ATTR_NAME, "nope")) == errno.ENODEV
    assert err_of(dp_req, dpif, cmd, ifindex=12345678) == errno.ENODEV


def test_dp_name_of_non_local_port_is_enodev(dpif):
    dpif.dp_new("dpn")
    dpif.vport_new("dpn", "d1", "dummy")
    assert err_of(dpif.dp_get, "d1") == errno.ENODEV


def test_dp_unknown_command_eopnotsupp(dpif):
    assert err_of(dp_req, dpif, 77) == errno.EOPNOTSUPP


def test_unknown_family_enoent(dpif):
    with pytest.raises(OSError) as e:
        dpif.sock.request(0x7ABC, 0, b"\1\0\0\0")
    assert e.value.errno == errno.ENOENT


def test_dp_dump_after_many(dpif):
    names = [f"dq{i}" for i in range(60)]
    for n in names:
        dpif.dp_new(n)
    assert [d.name for d in dpif.dp_dump()] == names


# ----------------------------------------------------------------- vports
def test_vport_new_get_set_del(dpif):
    dpif.dp_new("dpv")
    v = dpif.vport_new("dpv", "d1", "dummy", upcall_pids=[7, 8])
    assert (v.port_no, v.name, v.type) == (1, "d1", U.OVS_VPORT_TYPE_DUMMY)
    assert v.upcall_pids == (7, 8)
    assert v.stats == dict.fromkeys(v.stats, 0) and len(v.stats) == 8
    assert (v.upcall_success, v.upcall_fail) == (0, 0)
    assert dpif.vport_get(name="d1").port_no == 1
    assert dpif.vport_get("dpv", port_no=1).name == "d1"
    v = dpif.vport_set("dpv", name="d1", upcall_pids=[9])
    assert v.upcall_pids == (9,)
    v2 = dpif.vport_new("dpv", "d2", "dummy", port_no=7)
    assert v2.port_no == 7
    assert dpif.vport_new("dpv", "d3", "dummy").port_no == 2      # first free number
    assert [p.port_no for p in dpif.vport_dump("dpv")] == [0, 1, 2, 7]
    dpif.vport_del("dpv", name="d1")
    assert err_of(dpif.vport_get, name="d1") == errno.ENODEV


def test_vport_reply_attribute_order(dpif):
    dpif.dp_new("dpa")
    msgs = vport_req(dpif, U.OVS_VPORT_CMD_NEW,
                     nla_string(U.OVS_VPORT_ATTR_NAME, "vx0") +
                     nla_u32(U.OVS_VPORT_ATTR_TYPE, U.OVS_VPORT_TYPE_VXLAN) +
                     nla_u32(U.OVS_VPORT_ATTR_UPCALL_PID, 1) +
                     nla_nest(U.OVS_VPORT_ATTR_OPTIONS, nla_u16(U.OVS_TUNNEL_ATTR_DST_PORT, 4789)),
                     dpif.ifindex("dpa"), U.NLM_F_ECHO)
    from ovsdp.netlink.attr import iter_attrs
    order = [t for t, _, _ in iter_attrs(msgs[0].raw[24:])]
    assert order == [U.OVS_VPORT_ATTR_PORT_NO, U.OVS_VPORT_ATTR_TYPE, U.OVS_VPORT_ATTR_NAME,
                     U.OVS_VPORT_ATTR_IFINDEX, U.OVS_VPORT_ATTR_STATS,
                     U.OVS_VPORT_ATTR_UPCALL_STATS, U.OVS_VPORT_ATTR_UPCALL_PID,
                     U.OVS_VPORT_ATTR_OPTIONS]
    assert dpif.vport_get(name="vx0").dst_port == 4789


def test_vport_upcall_pid_single_without_vport_pids_feature(dpif):
    dpif.dp_new("dpu", user_features=0)
    v = dpif.vport_new("dpu", "d1", "dummy", upcall_pids=[5, 6])
    assert v.upcall_pids == (5,)


@pytest.mark.parametrize("missing", [U.OVS_VPORT_ATTR_NAME, U.OVS_VPORT_ATTR_TYPE,
                                     U.OVS_VPORT_ATTR_UPCALL_PID])
def test_vport_new_missing_attr_einval(dpif, missing):
    dpif.dp_new("dpm")
    attrs = {U.OVS_VPORT_ATTR_NAME: nla_string(U.OVS_VPORT_ATTR_NAME, "d1"),
             U.OVS_VPORT_ATTR_TYPE: nla_u32(U.OVS_VPORT_ATTR_TYPE, U.OVS_VPORT_TYPE_DUMMY),
             U.OVS_VPORT_ATTR_UPCALL_PID: nla_u32(U.OVS_VPORT_ATTR_UPCALL_PID, 1)}
    del attrs[missing]
    assert err_of(vport_req, dpif, U.OVS_VPORT_CMD_NEW, b"".join(attrs.values()),
                  dpif.ifindex("dpm")) == errno.EINVAL


@pytest.mark.parametrize("pids", [b"", b"\1\2\3", b"\1\2\3\4\5"])
def test_vport_new_bad_upcall_pids_einval(dpif, pids):
    dpif.dp_new("dpm")
    attrs = nla_string(U.OVS_VPORT_ATTR_NAME, "d1") + \
        nla_u32(U.OVS_VPORT_ATTR_TYPE, U.OVS_VPORT_TYPE_DUMMY) + \
        nla(U.OVS_VPORT_ATTR_UPCALL_PID, pids)
    assert err_of(vport_req, dpif, U.OVS_VPORT_CMD_NEW, attrs, dpif.ifindex("dpm")) \
        == errno.EINVAL


def test_vport_new_ifindex_on_non_internal_eopnotsupp(dpif):
    dpif.dp_new("dpm")
    attrs = nla_string(U.OVS_VPORT_ATTR_NAME, "d1") + \
        nla_u32(U.OVS_VPORT_ATTR_TYPE, U.OVS_VPORT_TYPE_DUMMY) + \
        nla_u32(U.OVS_VPORT_ATTR_UPCALL_PID, 1) + nla_s32(U.OVS_VPORT_ATTR_IFINDEX, 5)
    assert err_of(vport_req, dpif, U.OVS_VPORT_CMD_NEW, attrs, dpif.ifindex("dpm")) \
        == errno.EOPNOTSUPP


def test_vport_new_port_too_large_efbig(dpif):
    dpif.dp_new("dpm")
    assert err_of(dpif.vport_new, "dpm", "d1", "dummy", port_no=65535) == errno.EFBIG


def test_vport_new_port_in_use_ebusy(dpif):
    dpif.dp_new("dpm")
    dpif.vport_new("dpm", "d1", "dummy", port_no=3)
    assert err_of(dpif.vport_new, "dpm", "d2", "dummy", port_no=3) == errno.EBUSY


def test_vport_new_no_free_port_efbig(daemon, dpif):
    dpif.dp_new("dpf")

    def fill():
        dp = daemon.module.find_datapath(daemon.module.init_net, "dpf")
        for p in range(1, U.DP_MAX_PORTS):
            dp.ports.setdefault(p, dp.ports[0])
    daemon.call(fill)
    try:
        assert err_of(dpif.vport_new, "dpf", "d1", "dummy") == errno.EFBIG
    finally:
        daemon.call(lambda: [daemon.module.find_datapath(daemon.module.init_net, "dpf").ports.pop(p)
                             for p in range(1, U.DP_MAX_PORTS)])


def test_vport_new_no_datapath_enodev(dpif):
    assert err_of(dpif.vport_new, 987654, "d1", "dummy") == errno.ENODEV


def test_vport_new_unknown_type_eafnosupport(dpif):
    dpif.dp_new("dpm")
    assert err_of(dpif.vport_new, "dpm", "d1", 99) == errno.EAFNOSUPPORT


def test_vport_new_name_in_use(dpif):
    dpif.dp_new("dpm")
    dpif.vport_new("dpm", "d1", "dummy")
    assert err_of(dpif.vport_new, "dpm", "d1", "dummy") == errno.EEXIST
    assert err_of(dpif.vport_new, "dpm", "d1", "internal") == errno.EEXIST
    assert err_of(dpif.vport_new, "dpm", "dpm", "internal") == errno.EEXIST


def test_netdev_missing_device_enodev(dpif):
    dpif.dp_new("dpm")
    assert err_of(dpif.vport_new, "dpm", "nosuchdev0", "netdev") == errno.ENODEV


def test_netdev_loopback_einval(dpif):
    dpif.dp_new("dpm")
    assert err_of(dpif.vport_new, "dpm", "lo", "netdev") == errno.EINVAL


def test_netdev_on_internal_port_einval(dpif):
    dpif.dp_new("dpm")
    dpif.vport_new("dpm", "int1", "internal")
    assert err_of(dpif.vport_new, "dpm", "int1", "netdev") == errno.EINVAL
    assert err_of(dpif.vport_new, "dpm", "dpm", "netdev") == errno.EINVAL


@pytest.mark.parametrize("vtype", ["vxlan", "geneve"])
def test_udp_tunnels_need_dst_port(dpif, vtype):
    dpif.dp_new("dpm")
    assert err_of(dpif.vport_new, "dpm", "t1", vtype) == errno.EINVAL
    assert err_of(dpif.vport_new, "dpm", "t1", vtype, options=b"") == errno.EINVAL
    bad = nla(U.OVS_TUNNEL_ATTR_DST_PORT, b"\x12\xb5\0\0")
    assert err_of(dpif.vport_new, "dpm", "t1", vtype, options=bad) == errno.EINVAL
    v = dpif.vport_new("dpm", "t1", vtype, options=Dpif.tunnel_options(6081))
    assert v.dst_port == 6081


def test_vxlan_gbp_extension_round_trip(dpif):
    dpif.dp_new("dpm")
    v = dpif.vport_new("dpm", "vx", "vxlan", options=Dpif.tunnel_options(4789, gbp=True))
    assert v.options == Dpif.tunnel_options(4789, gbp=True)


def test_gre_has_no_options(dpif):
    dpif.dp_new("dpm")
    assert dpif.vport_new("dpm", "gre0", "gre").options is None


def test_vport_lookup_by_ifindex_eopnotsupp(dpif):
    dpif.dp_new("dpm")
    assert err_of(vport_req, dpif, U.OVS_VPORT_CMD_GET, nla_s32(U.OVS_VPORT_ATTR_IFINDEX, 1)) \
        == errno.EOPNOTSUPP


def test_vport_lookup_errors(dpif):
    dpif.dp_new("dpm")
    dpif.dp_new("dpo")
    dpif.vport_new("dpm", "d1", "dummy")
    assert err_of(dpif.vport_get, name="zz") == errno.ENODEV
    assert err_of(dpif.vport_get, "dpo", name="d1") == errno.ENODEV   # wrong datapath
    assert err_of(dpif.vport_get, "dpm", port_no=65535) == errno.EFBIG
    assert err_of(dpif.vport_get, 31337, port_no=1) == errno.ENODEV
    assert err_of(dpif.vport_get, "dpm", port_no=9) == errno.ENODEV
    assert err_of(vport_req, dpif, U.OVS_VPORT_CMD_GET, b"", dpif.ifindex("dpm")) \
        == errno.EINVAL


def test_vport_del_local_einval(dpif):
    dpif.dp_new("dpm")
    assert err_of(dpif.vport_del, "dpm", port_no=0) == errno.EINVAL
    assert err_of(dpif.vport_del, name="dpm") == errno.EINVAL


def test_vport_set_type_mismatch_einval(dpif):
    dpif.dp_new("dpm")
    dpif.vport_new("dpm", "d1", "dummy")
    assert err_of(dpif.vport_set, "dpm", name="d1", vtype="netdev") == errno.EINVAL
    assert dpif.vport_set("dpm", name="d1", vtype="dummy").name == "d1"


@pytest.mark.parametrize("vtype,opts", [("dummy", b""), ("internal", b""), ("gre", b""),
                                        ("vxlan", None), ("geneve", None)])
def test_vport_set_options_eopnotsupp(dpif, vtype, opts):
    dpif.dp_new("dpm")
    o = Dpif.tunnel_options(4789) if opts is None else None
    dpif.vport_new("dpm", "p1", vtype, options=o)
    assert err_of(dpif.vport_set, "dpm", name="p1", options=Dpif.tunnel_options(1)) \
        == errno.EOPNOTSUPP


def test_vport_set_bad_upcall_pids_einval(dpif):
    dpif.dp_new("dpm")
    dpif.vport_new("dpm", "d1", "dummy")
    attrs = nla_string(U.OVS_VPORT_ATTR_NAME, "d1") + nla(U.OVS_VPORT_ATTR_UPCALL_PID, b"")
    assert err_of(vport_req, dpif, U.OVS_VPORT_CMD_SET, attrs) == errno.EINVAL


def test_vport_dump_unknown_dp_enodev(dpif):
    with pytest.raises(OSError) as e:
        dpif.vport_dump(424242)
    assert e.value.errno == errno.ENODEV


def test_vport_dump_many_ports_spans_datagrams(daemon, dpif):
    dpif.dp_new("dpb")
    for i in range(1, 200):
        dpif.vport_new("dpb", f"b{i}", "dummy")
    assert [p.port_no for p in dpif.vport_dump("dpb")] == list(range(200))


def test_dp_del_removes_ports(dpif):
    dpif.dp_new("dpd")
    dpif.vport_new("dpd", "d1", "dummy")
    dpif.dp_del("dpd")
    assert err_of(dpif.vport_get, name="d1") == errno.ENODEV
    dpif.dp_new("dpd")                 # the names are free again
    dpif.vport_new("dpd", "d1", "dummy")


# ---------------------------------------------------------- notifications
def test_notifications(daemon):
    listener = Dpif(daemon.path)
    actor = Dpif(daemon.path)
    try:
        listener.subscribe(U.OVS_DATAPATH_FAMILY)
        listener.subscribe(U.OVS_VPORT_FAMILY)
        actor.dp_new("dpn")
        actor.vport_new("dpn", "d1", "dummy")
        actor.vport_set("dpn", name="d1", upcall_pids=[3])
        actor.dp_set("dpn", user_features=0)
        actor.vport_del("dpn", name="d1")
        actor.dp_del("dpn")
        got = []
        for _ in range(6):
            n = listener.recv_notification(5)
            assert n is not None
            got.append((n[0], n[1]))
        assert got == [("ovs_datapath", U.OVS_DP_CMD_NEW), ("ovs_vport", U.OVS_VPORT_CMD_NEW),
                       ("ovs_vport", U.OVS_VPORT_CMD_SET), ("ovs_datapath", U.OVS_DP_CMD_SET),
                       ("ovs_vport", U.OVS_VPORT_CMD_DEL), ("ovs_datapath", U.OVS_DP_CMD_DEL)]
    finally:
        listener.close()
        actor.close()


def test_echo_without_listeners_and_ack_only(daemon):
    s = raw_connect(daemon.path)
    try:
        c = Dpif(daemon.path)
        fid = c.sock.family(U.OVS_DATAPATH_FAMILY).id
        c.close()
        body = struct.pack("=BBH", U.OVS_DP_CMD_NEW, 2, 0) + U.OVS_HEADER.pack(0) + \
            nla_string(U.OVS_DP_ATTR_NAME, "dpe") + nla_u32(U.OVS_DP_ATTR_UPCALL_PID, 0)
        # no ECHO, no listeners: only the ack comes back
        s.send(struct.pack("=IHHII", 16 + len(body), fid, U.NLM_F_REQUEST | U.NLM_F_ACK, 5, 0)
               + body)
        reply = s.recv(65536)
        assert struct.unpack_from("=IHHII", reply)[1] == U.NLMSG_ERROR
        assert struct.unpack_from("=i", reply, 16)[0] == 0
    finally:
        s.close()


# ------------------------------------------------------------ the process
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_daemon_exits_cleanly_on_signal(sock_path, sig):
    """``ovsdp daemon`` in the foreground: SIGINT (Ctrl-C) or SIGTERM ends it
    with status 0 and removes its socket; its clients see the connection end."""
    import signal

    from .conftest import subprocess_daemon
    with subprocess_daemon(sock_path, "--no-devices") as p:
        c = Dpif(sock_path)
        c.dp_new("sigdp")
        p.send_signal(getattr(signal, sig))
        assert p.wait(10) == 0
        assert not os.path.exists(sock_path)
        with pytest.raises(OSError):
            c.dp_get("sigdp")
        c.close()


def test_a_departed_subscriber_is_forgotten(daemon, dpif):
    """A client that subscribed to ovs_datapath and went away holds no
    membership: later notifications go only to the clients still there."""
    gone = Dpif(daemon.path)
    gone.subscribe(U.OVS_DATAPATH_FAMILY)
    gone_pid = gone.portid
    stay = Dpif(daemon.path)
    stay.subscribe(U.OVS_DATAPATH_FAMILY)
    gone.close()
    dpif.dp_new("subdp")
    n = stay.recv_notification(5)
    assert n is not None and n[1] == U.OVS_DP_CMD_NEW
    import time
    deadline = time.monotonic() + 5
    while gone_pid in daemon.call(lambda: {c.portid for c in daemon.daemon.server.conns.values()}):
        assert time.monotonic() < deadline, "the departed client is still connected"
        time.sleep(0.02)
    members = daemon.call(lambda: {g: {p.portid for p in m}
                                   for g, m in daemon.module.genl.members.items()})
    gid = daemon.module.genl.by_name["ovs_datapath"].mcgrp_ids["ovs_datapath"]
    assert stay.portid in members[gid]
    assert all(gone_pid not in pids for pids in members.values()), members
    stay.close()
