"""Issue 9's findings, one regression test each: hostile input changes nothing.

A client may send names that are not UTF-8, actions that do not fit, keys
of the wrong length, floods of messages, and never read its replies; the
daemon answers with the kernel's errno, stays bounded, and keeps serving
everybody else.
"""

import errno

import pytest

from ovsdp import odp
from ovsdp import uapi as U
from ovsdp.client.dpif import Dpif
from ovsdp.datapath import flow_key as F
from ovsdp.datapath import flow_netlink as FN
from ovsdp.datapath import key_layout as K
from ovsdp.netlink.attr import nla, nla_nest, nla_string, nla_u32

RAW_NAME = "fz\udcff"            # bytes 66 7a ff, as get_string decodes them


def err_of(fn, *args, **kw):
    with pytest.raises(OSError) as e:
        fn(*args, **kw)
    return e.value.errno


# ------------------------------------------------- names are bytes (4, 5)
def test_datapath_name_that_is_not_utf8(dpif):
    info = dpif.dp_new(RAW_NAME)
    assert info.name == RAW_NAME
    assert nla_string(U.OVS_DP_ATTR_NAME, info.name)[4:] == b"fz\xff\0"
    dpif.dp_new("fzok")
    assert sorted(d.name for d in dpif.dp_dump()) == sorted([RAW_NAME, "fzok"])
    assert dpif.dp_get(RAW_NAME).ifindex == info.ifindex
    # the dumps that used to fail keep working, and the name can be deleted
    assert [d.name for d in dpif.dp_dump()] == [d.name for d in dpif.dp_dump()]
    dpif.dp_del(RAW_NAME)
    assert [d.name for d in dpif.dp_dump()] == ["fzok"]


def test_vport_name_that_is_not_utf8(dpif):
    dpif.dp_new("fzv")
    port = dpif.vport_new("fzv", "fzv\udc80\udcfe", U.OVS_VPORT_TYPE_INTERNAL)
    names = [v.name for v in dpif.vport_dump("fzv")]
    assert names == ["fzv", "fzv\udc80\udcfe"]
    assert dpif.vport_get("fzv", name="fzv\udc80\udcfe").port_no == port.port_no
    dpif.vport_del("fzv", name="fzv\udc80\udcfe")
    assert [v.name for v in dpif.vport_dump("fzv")] == ["fzv"]


def test_a_dump_that_fails_ends_with_an_error_and_frees_the_socket(daemon, dpif):
    """A bug in a dump callback ends that dump (EINVAL), never the next one."""
    dpif.dp_new("fzd")
    dp = daemon.call(lambda: daemon.module.datapaths[0])
    real = type(dp).fill_attrs

    def broken(self):
        raise RuntimeError("fill failed")
    type(dp).fill_attrs = broken
    try:
        assert err_of(dpif.dp_dump) == errno.EINVAL
    finally:
        type(dp).fill_attrs = real
    assert [d.name for d in dpif.dp_dump()] == ["fzd"]     # not EBUSY
    with Dpif(daemon.path) as other:
        assert [d.name for d in other.dp_dump()] == ["fzd"]
    dpif.dp_del("fzd")


def test_port_name_attribute_carries_raw_bytes(dpif):
    dpif.dp_new("fzr")
    attrs = (nla_string(U.OVS_VPORT_ATTR_NAME, b"\xc3\x28") +
             nla_u32(U.OVS_VPORT_ATTR_TYPE, U.OVS_VPORT_TYPE_INTERNAL) +
             nla_u32(U.OVS_VPORT_ATTR_UPCALL_PID, 0))
    ifindex = dpif.ifindex("fzr")
    dpif.sock.genl_request(U.OVS_VPORT_FAMILY, U.OVS_VPORT_CMD_NEW,
                           U.OVS_HEADER.pack(ifindex) + attrs)
    (v,) = [v for v in dpif.vport_dump("fzr") if v.port_no]
    assert v.name.encode("utf-8", "surrogateescape") == b"\xc3\x28"


# ---------------------------------------- set key lengths; batches (6)
def _mpls_frame():
    eth = b"\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x01\x88\x47"
    return eth + (0x0000A1FF).to_bytes(4, "big") + bytes(40)


@pytest.mark.parametrize("payload,masked", [
    (b"\x00\x00", False),                       # 2 bytes: shorter than one LSE
    (bytes(8), False),                          # two LSEs
    (b"\x00\x00\x00\x07\x00\x00", True),        # masked, 3 + 3
    (bytes(16), True),                          # masked, two LSEs each
])
def test_set_mpls_of_wrong_length_is_einval(dpif, payload, masked):
    dpif.dp_new("fzm")
    k = F.extract(_mpls_frame(), K.make(in_port=1))
    key_attrs = FN.put_key(k, k, False)
    act = U.OVS_ACTION_ATTR_SET_MASKED if masked else U.OVS_ACTION_ATTR_SET
    actions = nla_nest(act, nla(U.OVS_KEY_ATTR_MPLS, payload))
    assert err_of(dpif.flow_new, "fzm", key_attrs, actions) == errno.EINVAL
    assert err_of(dpif.execute, "fzm", _mpls_frame(), key_attrs, actions) == errno.EINVAL
    # the right length is taken
    good = nla_nest(act, nla(U.OVS_KEY_ATTR_MPLS, bytes(8) if masked else bytes(4)))
    dpif.flow_new("fzm", key_attrs, good)


def test_a_frame_that_fails_does_not_drop_the_rest_of_its_batch(daemon, dpif):
    """receive_batch: a bug hit by one frame costs that frame only."""
    dpif.dp_new("fzb")
    for i in (1, 2):
        dpif.vport_new("fzb", f"fzb{i}", "dummy", port_no=i)
    good = [bytes(11) + bytes([i + 1]) + b"\x08\x06" + bytes(28) for i in range(3)]
    bad = bytes(11) + b"\x09\x08\x06" + bytes(28)
    meta = K.make(in_port=1)
    for frame in good + [bad]:       # not outputs only: the interpreter runs each frame
        k = F.extract(frame, meta)
        dpif.flow_new("fzb", FN.put_key(k, k, False), odp.parse_actions("set(skb_mark(1)),2"))
    module = daemon.module
    real = module.execute_actions

    def flaky(dp, skb, key, acts):
        if bytes(skb.data) == bad:
            raise RuntimeError("a bug")
        return real(dp, skb, key, acts)

    def run():
        dp = module.find_datapath("fzb")
        module.execute_actions = flaky
        try:
            dp.receive_batch([good[0], bad, good[1], bad, good[2]], dp.ports[1])
        finally:
            module.execute_actions = real
        return dp.ports[2].fetch(), dp.drop_reasons["internal_error"]
    assert daemon.call(run) == (good, 2)


# ------------------------------------------------ action list sizes (7)
ARP = bytes(11) + b"\x01\x08\x06" + bytes(28)


def _arp_key():
    k = F.extract(ARP, K.make(in_port=1))
    return FN.put_key(k, k, False)


@pytest.mark.parametrize("n,ok", [(4092, True), (4093, False), (8000, False)])
def test_actions_beyond_max_actions_bufsize_are_emsgsize(dpif, n, ok):
    """The kernel keeps at most 32 KiB of actions (28 of them its header)."""
    dpif.dp_new("fza")
    actions = b"".join(nla_u32(U.OVS_ACTION_ATTR_OUTPUT, 1 + i % 3) for i in range(n))
    if ok:
        dpif.flow_new("fza", _arp_key(), actions)
        assert len(dpif.flow_dump("fza")[0].actions) == len(actions)
    else:
        assert err_of(dpif.flow_new, "fza", _arp_key(), actions) == errno.EMSGSIZE
        assert err_of(dpif.execute, "fza", ARP, _arp_key(), actions) == errno.EMSGSIZE
        assert dpif.flow_dump("fza") == []


def test_action_size_counts_the_kernels_own_form(dpif):
    """A set() is stored as key and mask: 12 bytes in, 16 kept."""
    dpif.dp_new("fzs")
    one = nla_nest(U.OVS_ACTION_ATTR_SET, nla_u32(U.OVS_KEY_ATTR_SKB_MARK, 7))
    assert len(one) == 12
    dpif.flow_new("fzs", _arp_key(), one * 2046)        # 28 + 2046 * 16 = 32764
    dpif.flow_flush("fzs")
    assert err_of(dpif.flow_new, "fzs", _arp_key(), one * 2047) == errno.EMSGSIZE
    # the same count as set_masked (16 bytes in and kept) is the same limit
    masked = nla_nest(U.OVS_ACTION_ATTR_SET_MASKED,
                      nla(U.OVS_KEY_ATTR_SKB_MARK, b"\x07\0\0\0\xff\xff\xff\xff"))
    dpif.flow_new("fzs", _arp_key(), masked * 2046)
    dpif.flow_flush("fzs")
    assert err_of(dpif.flow_new, "fzs", _arp_key(), masked * 2047) == errno.EMSGSIZE


def test_nested_actions_count_against_the_same_buffer(dpif):
    dpif.dp_new("fzn")
    out = nla_u32(U.OVS_ACTION_ATTR_OUTPUT, 1)
    clone = nla_nest(U.OVS_ACTION_ATTR_CLONE, out * 4000)     # 12 + 32000 kept
    assert err_of(dpif.flow_new, "fzn", _arp_key(), clone + out * 92) == errno.EMSGSIZE
    dpif.flow_new("fzn", _arp_key(), clone + out * 91)       # 28 + 32012 + 728 = 32768


def test_oversized_text_gives_an_error_line_not_a_traceback(daemon):
    import io

    from ovsdp.cli import dpctl as D
    from ovsdp.cli import odp_cmd
    long_userdata = "userspace(pid=1,userdata(" + "ab" * 70000 + "))"
    many = ",".join(["1"] * 9000)
    for text in (long_userdata, many):
        out = io.StringIO()
        assert odp_cmd.run("parse-actions", io.StringIO(text + "\n"), out) is not None
        assert out.getvalue().startswith("error: syntax error at ")
        with pytest.raises(odp.OdpParseError):
            odp.parse_actions(text)
    with Dpif(daemon.path) as c:
        c.dp_new("fzt")
    err = io.StringIO()
    flow = "in_port(1),eth(),eth_type(0x0806),arp()"
    assert D.run(["add-flow", "fzt", flow, long_userdata], socket=daemon.path,
                 stdout=io.StringIO(), stderr=err) == 1
    assert "Traceback" not in err.getvalue() and "exceeds" in err.getvalue()
    err = io.StringIO()
    assert D.run(["add-flow", "fzt", flow, ",".join(["1"] * 5000)], socket=daemon.path,
                 stdout=io.StringIO(), stderr=err) == 1
    assert "Message too long" in err.getvalue()
