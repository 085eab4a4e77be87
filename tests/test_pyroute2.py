"""A real third-party netlink client: pyroute2's GenericNetlinkSocket over ovsdp.

The message classes below are written the way the kernel's own selftest tool
(tools/testing/selftests/net/openvswitch/ovs-dpctl.py) declares them for
pyroute2; only the socket differs.
"""

import pytest

pyroute2 = pytest.importorskip("pyroute2")

from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_ECHO, NLM_F_REQUEST, genlmsg, nla  # noqa: E402
from pyroute2.netlink.generic import GenericNetlinkSocket  # noqa: E402

from ovsdp.client.adapter import OvsdpNetlinkSocket  # noqa: E402


class ovs_dp_msg(genlmsg):
    fields = genlmsg.fields + (("dpifindex", "I"),)
    nla_map = (
        ("OVS_DP_ATTR_UNSPEC", "none"),
        ("OVS_DP_ATTR_NAME", "asciiz"),
        ("OVS_DP_ATTR_UPCALL_PID", "array(uint32)"),
        ("OVS_DP_ATTR_STATS", "dpstats"),
        ("OVS_DP_ATTR_MEGAFLOW_STATS", "megaflowstats"),
        ("OVS_DP_ATTR_USER_FEATURES", "uint32"),
        ("OVS_DP_ATTR_PAD", "none"),
        ("OVS_DP_ATTR_MASKS_CACHE_SIZE", "uint32"),
        ("OVS_DP_ATTR_PER_CPU_PIDS", "array(uint32)"),
        ("OVS_DP_ATTR_IFINDEX", "uint32"),
    )

    class dpstats(nla):
        fields = (("hit", "=Q"), ("missed", "=Q"), ("lost", "=Q"), ("flows", "=Q"))

    class megaflowstats(nla):
        fields = (("mask_hit", "=Q"), ("masks", "=I"), ("padding", "=I"),
                  ("cache_hits", "=Q"), ("pad1", "=Q"))


class ovs_vport_msg(genlmsg):
    fields = genlmsg.fields + (("dpifindex", "I"),)
    nla_map = (
        ("OVS_VPORT_ATTR_UNSPEC", "none"),
        ("OVS_VPORT_ATTR_PORT_NO", "uint32"),
        ("OVS_VPORT_ATTR_TYPE", "uint32"),
        ("OVS_VPORT_ATTR_NAME", "asciiz"),
        ("OVS_VPORT_ATTR_OPTIONS", "none"),
        ("OVS_VPORT_ATTR_UPCALL_PID", "array(uint32)"),
        ("OVS_VPORT_ATTR_STATS", "vportstats"),
        ("OVS_VPORT_ATTR_PAD", "none"),
        ("OVS_VPORT_ATTR_IFINDEX", "uint32"),
        ("OVS_VPORT_ATTR_NETNSID", "uint32"),
        ("OVS_VPORT_ATTR_UPCALL_STATS", "none"),
    )

    class vportstats(nla):
        fields = (("rx_packets", "=Q"), ("tx_packets", "=Q"), ("rx_bytes", "=Q"),
                  ("tx_bytes", "=Q"), ("rx_errors", "=Q"), ("tx_errors", "=Q"),
                  ("rx_dropped", "=Q"), ("tx_dropped", "=Q"))


def dp_msg(cmd, ifindex=0, **attrs):
    m = ovs_dp_msg()
    m["cmd"] = cmd
    m["version"] = 2
    m["reserved"] = 0
    m["dpifindex"] = ifindex
    for k, v in attrs.items():
        m["attrs"].append([k, v])
    return m


def vport_msg(cmd, ifindex, **attrs):
    m = ovs_vport_msg()
    m["cmd"] = cmd
    m["version"] = 1
    m["reserved"] = 0
    m["dpifindex"] = ifindex
    for k, v in attrs.items():
        m["attrs"].append([k, v])
    return m


def test_pyroute2_creates_dumps_deletes(daemon):
    dps = GenericNetlinkSocket(use_socket=OvsdpNetlinkSocket(daemon.path))
    vps = GenericNetlinkSocket(use_socket=OvsdpNetlinkSocket(daemon.path))
    try:
        dps.bind("ovs_datapath", ovs_dp_msg)
        vps.bind("ovs_vport", ovs_vport_msg)
        assert dps.prid == 0x13 and vps.prid == 0x14
        # OVS_DP_CMD_NEW
        reply = list(dps.nlm_request(
            dp_msg(1, OVS_DP_ATTR_NAME="pr2", OVS_DP_ATTR_UPCALL_PID=[0],
                   OVS_DP_ATTR_USER_FEATURES=3),
            msg_type=dps.prid, msg_flags=NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO))
        created = [r for r in reply if r.get_attr("OVS_DP_ATTR_NAME") == "pr2"]
        assert created
        ifindex = created[0]["dpifindex"]
        assert ifindex > 0
        assert created[0].get_attr("OVS_DP_ATTR_STATS")["flows"] == 0
        # dump
        dump = list(dps.nlm_request(dp_msg(3), msg_type=dps.prid,
                                    msg_flags=NLM_F_REQUEST | NLM_F_DUMP))
        assert "pr2" in [d.get_attr("OVS_DP_ATTR_NAME") for d in dump]
        # a vport
        reply = list(vps.nlm_request(
            vport_msg(1, ifindex, OVS_VPORT_ATTR_NAME="pr2p", OVS_VPORT_ATTR_TYPE=0x7F01,
                      OVS_VPORT_ATTR_UPCALL_PID=[0]),
            msg_type=vps.prid, msg_flags=NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO))
        assert [r.get_attr("OVS_VPORT_ATTR_PORT_NO") for r in reply
                if r.get_attr("OVS_VPORT_ATTR_NAME") == "pr2p"] == [1]
        ports = list(vps.nlm_request(vport_msg(3, ifindex), msg_type=vps.prid,
                                     msg_flags=NLM_F_REQUEST | NLM_F_DUMP))
        assert sorted(p.get_attr("OVS_VPORT_ATTR_NAME") for p in ports) == ["pr2", "pr2p"]
        list(vps.nlm_request(vport_msg(2, ifindex, OVS_VPORT_ATTR_NAME="pr2p"),
                             msg_type=vps.prid, msg_flags=NLM_F_REQUEST | NLM_F_ACK))
        # delete the datapath
        list(dps.nlm_request(dp_msg(2, OVS_DP_ATTR_NAME="pr2"), msg_type=dps.prid,
                             msg_flags=NLM_F_REQUEST | NLM_F_ACK))
        dump = list(dps.nlm_request(dp_msg(3), msg_type=dps.prid,
                                    msg_flags=NLM_F_REQUEST | NLM_F_DUMP))
        assert "pr2" not in [d.get_attr("OVS_DP_ATTR_NAME") for d in dump]
    finally:
        dps.close()
        vps.close()


def test_pyroute2_sees_errors(daemon):
    dps = GenericNetlinkSocket(use_socket=OvsdpNetlinkSocket(daemon.path))
    try:
        dps.bind("ovs_datapath", ovs_dp_msg)
        from pyroute2.netlink.exceptions import NetlinkError
        with pytest.raises(NetlinkError) as e:
            list(dps.nlm_request(dp_msg(3, OVS_DP_ATTR_NAME="absent"), msg_type=dps.prid,
                                 msg_flags=NLM_F_REQUEST | NLM_F_ACK))
        assert e.value.code == 19
    finally:
        dps.close()


class ovs_packet_msg(genlmsg):
    fields = genlmsg.fields + (("dpifindex", "I"),)
    nla_map = (("OVS_PACKET_ATTR_UNSPEC", "none"), ("OVS_PACKET_ATTR_PACKET", "array(uint8)"),
               ("OVS_PACKET_ATTR_KEY", "none"))


def test_pyroute2_gets_upcalls_at_the_port_id_it_computed(daemon, dpif):
    """pyroute2 binds pid + n << 22 and asks for upcalls there; they arrive."""
    import select
    import struct

    from ovsdp import uapi as U
    dpif.dp_new("pr3")
    dpif.vport_new("pr3", "pr3p", "dummy", port_no=1)
    raw = OvsdpNetlinkSocket(daemon.path)
    pkt = GenericNetlinkSocket(use_socket=raw)
    other = GenericNetlinkSocket(use_socket=OvsdpNetlinkSocket(daemon.path))
    try:
        pkt.bind("ovs_packet", ovs_packet_msg)
        other.bind("ovs_packet", ovs_packet_msg)
        assert pkt.epid != other.epid                     # the second took the next id
        assert raw.getsockname() == (pkt.epid, 0)
        assert daemon.call(lambda: daemon.module.init_net.peers.get(pkt.epid)) is not None
        dpif.vport_set("pr3", name="pr3p", upcall_pids=[pkt.epid])
        frame = bytes(11) + b"\x01\x08\x06" + bytes(28)
        daemon.call(lambda: daemon.module.init_net.vports_by_name["pr3p"].inject(frame))
        assert select.select([raw], [], [], 5)[0]
        d = raw.recv(1 << 16)
        mtype, _flags, _seq, pid = struct.unpack_from("=HHII", d, 4)
        assert mtype == pkt.prid and d[16] == U.OVS_PACKET_CMD_MISS
        assert dpif.dp_get("pr3").n_lost == 0
    finally:
        pkt.close()
        other.close()


def test_bind_port_id_errors(daemon, dpif):
    """Linux's netlink_bind(): an id in use is EADDRINUSE; once used, EINVAL."""
    import errno
    import struct

    from ovsdp import uapi as U
    from ovsdp.netlink.message import build

    from .conftest import raw_connect

    def bind(sock, pid):
        body = U.OVSDP_SOCKOPT.pack(U.SOL_NETLINK, U.OVSDP_SO_BIND_PORTID) + \
            struct.pack("=I", pid)
        sock.send(build(U.OVSDP_MSG_SOCKOPT, U.NLM_F_REQUEST | U.NLM_F_ACK, 9, 0, body))
        d = sock.recv(4096)
        return -struct.unpack_from("=i", d, 16)[0], struct.unpack_from("=I", d, 12)[0]
    s = raw_connect(daemon.path)
    try:
        assert bind(s, dpif.portid)[0] == errno.EADDRINUSE
        assert bind(s, 0x1234567) == (0, 0x1234567)       # the ack comes from the new id
        assert bind(s, 0x1234567)[0] == 0                 # the same id again is fine
        assert bind(s, 0x1234568)[0] == errno.EINVAL      # but not another
    finally:
        s.close()
    s = raw_connect(daemon.path)
    try:
        s.send(build(U.NLMSG_NOOP, U.NLM_F_REQUEST | U.NLM_F_ACK, 1, 0, b""))
        s.recv(4096)
        assert bind(s, 0x2345678)[0] == errno.EINVAL      # autobound by its first message
    finally:
        s.close()
