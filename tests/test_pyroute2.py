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
