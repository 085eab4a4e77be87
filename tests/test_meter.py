"""The ovs_meter family and the METER action, through the control socket."""

import errno
import struct

import pytest

from ovsdp import odp
from ovsdp import uapi as U
from ovsdp.datapath import flow_key as F
from ovsdp.datapath import flow_netlink_put as FNP
from ovsdp.datapath import key_layout as K
from ovsdp.netlink import attr as A
from ovsdp.netlink.attr import nla, nla_flag, nla_nest, nla_u32


def req(dpif, cmd, attrs=b"", ifindex=0):
    return dpif.sock.genl_request(U.OVS_METER_FAMILY, cmd, U.OVS_HEADER.pack(ifindex) + attrs)


def err_of(fn, *args):
    with pytest.raises(OSError) as e:
        fn(*args)
    return e.value.errno


def band(rate, burst, btype=U.OVS_METER_BAND_TYPE_DROP):
    return nla_nest(U.OVS_BAND_ATTR_UNSPEC, nla_u32(U.OVS_BAND_ATTR_TYPE, btype),
                    nla_u32(U.OVS_BAND_ATTR_RATE, rate), nla_u32(U.OVS_BAND_ATTR_BURST, burst))


def meter(meter_id, *bands, kbps=False):
    return (nla_u32(U.OVS_METER_ATTR_ID, meter_id)
            + (nla_flag(U.OVS_METER_ATTR_KBPS) if kbps else b"")
            + nla_nest(U.OVS_METER_ATTR_BANDS, *bands))


def stats(m):
    return U.OVS_FLOW_STATS.unpack(m.attrs[U.OVS_METER_ATTR_STATS])


@pytest.fixture
def mdp(dpif):
    dpif.dp_new("mtr")
    for i in (1, 2):
        dpif.vport_new("mtr", f"mtr{i}", "dummy", port_no=i)
    return dpif, dpif.ifindex("mtr")


def test_features(dpif):
    (m,) = req(dpif, U.OVS_METER_CMD_FEATURES)
    assert m.cmd == U.OVS_METER_CMD_FEATURES
    assert A.get_u32(m.attrs[U.OVS_METER_ATTR_MAX_METERS]) == 200_000
    assert A.get_u32(m.attrs[U.OVS_METER_ATTR_MAX_BANDS]) == 1
    (b,) = [p for _t, p, _o in A.iter_attrs(m.attrs[U.OVS_METER_ATTR_BANDS])]
    assert A.parse(b, U.OVS_BAND_ATTR_MAX) == {
        U.OVS_BAND_ATTR_TYPE: struct.pack("=I", U.OVS_METER_BAND_TYPE_DROP)}


def test_set_get_del(mdp):
    dpif, ifindex = mdp
    (m,) = req(dpif, U.OVS_METER_CMD_SET, meter(3, band(10, 5)), ifindex)
    assert (m.cmd, m.dp_ifindex, sorted(m.attrs)) == (U.OVS_METER_CMD_SET, ifindex,
                                                      [U.OVS_METER_ATTR_ID])
    (g,) = req(dpif, U.OVS_METER_CMD_GET, nla_u32(U.OVS_METER_ATTR_ID, 3), ifindex)
    assert A.get_u32(g.attrs[U.OVS_METER_ATTR_ID]) == 3 and stats(g) == (0, 0)
    assert U.OVS_METER_ATTR_USED in g.attrs and U.OVS_METER_ATTR_BANDS in g.attrs
    # replacing a meter answers with the old one's statistics
    (r,) = req(dpif, U.OVS_METER_CMD_SET, meter(3, band(20, 5)), ifindex)
    assert stats(r) == (0, 0)
    (d,) = req(dpif, U.OVS_METER_CMD_DEL, nla_u32(U.OVS_METER_ATTR_ID, 3), ifindex)
    assert stats(d) == (0, 0)
    assert err_of(req, dpif, U.OVS_METER_CMD_GET, nla_u32(U.OVS_METER_ATTR_ID, 3),
                  ifindex) == errno.ENOENT
    (d,) = req(dpif, U.OVS_METER_CMD_DEL, nla_u32(U.OVS_METER_ATTR_ID, 3), ifindex)
    assert sorted(d.attrs) == [U.OVS_METER_ATTR_ID]                 # nothing to delete: fine


@pytest.mark.parametrize("attrs,code", [
    (nla_nest(U.OVS_METER_ATTR_BANDS, band(1, 1)), errno.EINVAL),        # no ID
    (nla_u32(U.OVS_METER_ATTR_ID, 1), errno.EINVAL),                      # no bands
    (meter(1, band(1, 1), band(2, 2)), errno.EINVAL),                    # one band at most
    (meter(1, band(0, 1)), errno.EINVAL),                                 # rate 0
    (meter(1, nla_nest(0, nla_u32(U.OVS_BAND_ATTR_RATE, 1))), errno.EINVAL),  # no TYPE
    # a nested attribute shorter than a header fails the policy: ERANGE, as on Linux
    (nla_u32(U.OVS_METER_ATTR_ID, 1) + nla(U.OVS_METER_ATTR_BANDS, b"\0\0"), errno.ERANGE),
])
def test_set_errors(mdp, attrs, code):
    dpif, ifindex = mdp
    assert err_of(req, dpif, U.OVS_METER_CMD_SET, attrs, ifindex) == code


def test_unknown_datapath_is_enodev(dpif):
    assert err_of(req, dpif, U.OVS_METER_CMD_SET, meter(1, band(1, 1)), 12345) == errno.ENODEV
    assert err_of(req, dpif, U.OVS_METER_CMD_GET, nla_u32(U.OVS_METER_ATTR_ID, 1),
                  12345) == errno.ENODEV


def test_meter_action_in_a_flow_drops_over_the_rate(mdp, daemon):
    """A 1 packet/s meter with a burst of 3 lets 3 of 10 back-to-back frames through."""
    dpif, ifindex = mdp
    req(dpif, U.OVS_METER_CMD_SET, meter(7, band(1, 3)), ifindex)
    frame = bytes(11) + b"\x01\x08\x06" + bytes(28)
    k = F.extract(frame, K.make(in_port=1))
    dpif.flow_new("mtr", FNP.put_key(k, k, False), odp.parse_actions("meter(7),2"))
    daemon.call(lambda: [daemon.module.init_net.vports_by_name["mtr1"].inject(frame)
                         for _ in range(10)])
    sent = daemon.call(lambda: daemon.module.init_net.vports_by_name["mtr2"].fetch())
    assert len(sent) == 3
    (g,) = req(dpif, U.OVS_METER_CMD_GET, nla_u32(U.OVS_METER_ATTR_ID, 7), ifindex)
    assert stats(g) == (10, 10 * len(frame))
    (b,) = [p for _t, p, _o in A.iter_attrs(g.attrs[U.OVS_METER_ATTR_BANDS])]
    band_stats = A.parse(b, U.OVS_BAND_ATTR_MAX)[U.OVS_BAND_ATTR_STATS]
    assert U.OVS_FLOW_STATS.unpack(band_stats) == (7, 7 * len(frame))
    # the flow itself saw all ten
    (f,) = dpif.flow_dump("mtr")
    assert f.packets == 10


def test_set_and_del_need_cap_net_admin(mdp, daemon):
    """Through the read-only socket: FEATURES and GET work, SET and DEL are EPERM."""
    import socket

    from ovsdp.client.dpif import Dpif
    from ovsdp.client.netlink import NetlinkSocket
    dpif, ifindex = mdp
    req(dpif, U.OVS_METER_CMD_SET, meter(2, band(5, 5)), ifindex)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(daemon.path + ".ro")
    with Dpif(sock=NetlinkSocket(daemon.path, timeout=5, sock=s)) as ro:
        req(ro, U.OVS_METER_CMD_FEATURES)
        req(ro, U.OVS_METER_CMD_GET, nla_u32(U.OVS_METER_ATTR_ID, 2), ifindex)
        assert err_of(req, ro, U.OVS_METER_CMD_SET, meter(2, band(5, 5)), ifindex) == errno.EPERM
        assert err_of(req, ro, U.OVS_METER_CMD_DEL, nla_u32(U.OVS_METER_ATTR_ID, 2),
                      ifindex) == errno.EPERM


# ---------------------------------------------------------------- dpctl
def _dpctl(daemon, *argv):
    import io

    from ovsdp.cli import dpctl
    out, err = io.StringIO(), io.StringIO()
    rc = dpctl.run(list(argv), socket=daemon.path, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_dpctl_meter_commands(mdp, daemon):
    dpif, _ = mdp
    assert _dpctl(daemon, "meter-features") == (
        0, "max_meter:200000 max_bands:1 band_types: drop\n", "")
    rc, _, err = _dpctl(daemon, "add-meter", "mtr",
                        "meter=7,pktps,burst,band=type=drop,rate=1,burst_size=3")
    assert rc == 0, err
    frame = bytes(11) + b"\x01\x08\x06" + bytes(28)
    k = F.extract(frame, K.make(in_port=1))
    dpif.flow_new("mtr", FNP.put_key(k, k, False), odp.parse_actions("meter(7),2"))
    daemon.call(lambda: [daemon.module.init_net.vports_by_name["mtr1"].inject(frame)
                         for _ in range(10)])
    rc, out, _ = _dpctl(daemon, "meter-stats", "meter=7")     # the only datapath
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith("meter:7 packet_in_count:10 byte_in_count:420 used:")
    assert lines[1:] == ["0: packet_count:7 byte_count:294"]
    # without the burst flag the burst is the rate: 1 of 10 goes through
    assert _dpctl(daemon, "mod-meter", "mtr", "meter=7,pktps,band=type=drop,rate=1")[0] == 0
    daemon.call(lambda: daemon.module.init_net.vports_by_name["mtr2"].fetch())
    daemon.call(lambda: [daemon.module.init_net.vports_by_name["mtr1"].inject(frame)
                         for _ in range(10)])
    assert len(daemon.call(lambda: daemon.module.init_net.vports_by_name["mtr2"].fetch())) == 1
    assert _dpctl(daemon, "del-meter", "mtr", "meter=7")[0] == 0
    rc, _, err = _dpctl(daemon, "meter-stats", "mtr", "meter=7")
    assert rc == 1 and "No such file or directory" in err


@pytest.mark.parametrize("spec, text", [
    ("band=type=drop,rate=1", "meter=ID is required"),
    ("meter=1,pktps", "at least one band"),
    ("meter=1,band=type=dscp_remark,rate=1", "the datapath has only drop"),
    ("meter=1,band=rate=1", "a band starts with type="),
    ("meter=1,band=type=drop", "a band needs rate="),
    ("meter=x,band=type=drop,rate=1", "is not a number"),
    ("meter=1,fast,band=type=drop,rate=1", "unknown meter field"),
])
def test_dpctl_meter_syntax_errors(mdp, daemon, spec, text):
    rc, _, err = _dpctl(daemon, "add-meter", "mtr", spec)
    assert rc == 1 and text in err, err


def test_dpctl_two_bands_get_the_kernels_einval(mdp, daemon):
    rc, _, err = _dpctl(daemon, "add-meter", "mtr",
                        "meter=1,kbps,band=type=drop,rate=10,type=drop,rate=20")
    assert rc == 1 and "Invalid argument" in err, err
