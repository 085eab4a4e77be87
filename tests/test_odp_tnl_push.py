"""The userspace datapath's actions in the text form: tnl_push, tnl_pop and
lb_output (odp-util.c), and the kernel side's refusal of them.

Expected bytes are written out here by hand, from struct ovs_action_push_tnl
(four native u32s, then the header) and the headers' RFC layouts.
"""

import errno
import struct

import pytest

from ovsdp import uapi as U
from ovsdp.datapath import flow_netlink_actions as FA
from ovsdp.netlink.attr import NetlinkError, attr_list, nla
from ovsdp.odp import OdpParseError, format_actions, parse_actions
from tests.test_flow_netlink import IP_TCP_KEY

ETH = bytes.fromhex("f8bc124434b6" "f8bc124658e0")


def ip_csum(hdr):
    s = sum(struct.unpack(f"!{len(hdr) // 2}H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4_header(proto):
    h = bytearray(bytes.fromhex("45000000" "00004000") + bytes([64, proto]) + b"\0\0"
                  + bytes([1, 1, 2, 88, 1, 1, 2, 92]))
    h[10:12] = struct.pack("!H", ip_csum(bytes(h)))
    return bytes(h)


def push_tnl(tnl_port, out_port, tnl_type, header):
    return struct.pack("=IIII", tnl_port, out_port, len(header), tnl_type) + header


def only_action(text):
    (t, p), = attr_list(parse_actions(text))[0]
    return t, p


VXLAN4 = ("tnl_push(tnl_port(6),header(size=50,type=4,eth(dst=f8:bc:12:44:34:b6,"
          "src=f8:bc:12:46:58:e0,dl_type=0x0800),ipv4(src=1.1.2.88,dst=1.1.2.92,proto=17,"
          "tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),"
          "vxlan(flags=0x8000000,vni=0x1c7)),out_port(1))")


def test_vxlan_over_ipv4_bytes():
    t, p = only_action(VXLAN4)
    assert t == 26
    hdr = (ETH + b"\x08\x00" + ipv4_header(17) + struct.pack("!HHHH", 0, 4789, 0, 0)
           + struct.pack("!II", 0x08000000, 0x1C7 << 8))
    assert p == push_tnl(6, 1, 4, hdr)
    assert format_actions(nla(t, p)) == VXLAN4


def test_gre_over_ipv6_with_checksum_and_key_bytes():
    text = ("tnl_push(tnl_port(4),header(size=66,type=109,eth(dst=f8:bc:12:44:34:b6,"
            "src=f8:bc:12:46:58:e0,dl_type=0x86dd),ipv6(src=2001:cafe::88,dst=2001:cafe::92,"
            "label=5,proto=47,tclass=0x2,hlimit=64),gre((flags=0xa000,proto=0x6558),"
            "csum=0x0,key=0x1e241)),out_port(1))")
    _t, p = only_action(text)
    ip6 = (struct.pack("!IHBB", 6 << 28 | 2 << 20 | 5, 0, 47, 64)
           + bytes.fromhex("2001cafe" + "00" * 11 + "88")
           + bytes.fromhex("2001cafe" + "00" * 11 + "92"))
    gre = struct.pack("!HH", 0xA000, 0x6558) + b"\0\0\0\0" + struct.pack("!I", 0x1E241)
    assert p == push_tnl(4, 1, 109, ETH + b"\x86\xdd" + ip6 + gre)
    assert format_actions(nla(26, p)) == text


def test_geneve_options_and_flags():
    text = ("tnl_push(tnl_port(6),header(size=58,type=5,eth(dst=f8:bc:12:44:34:b6,"
            "src=f8:bc:12:46:58:e0,dl_type=0x0800),ipv4(src=1.1.2.88,dst=1.1.2.92,proto=17,"
            "tos=0,ttl=64,frag=0x4000),udp(src=0,dst=6081,csum=0x0),geneve(oam,crit,vni=0x1c7,"
            "options({class=0xffff,type=0x80,len=4,0xa}))),out_port(1))")
    _t, p = only_action(text)
    # opt_len counts 4-byte words: the option's header and its data
    gnh = bytes([2, 0xC0]) + b"\x65\x58" + struct.pack("!I", 0x1C7 << 8)
    opt = b"\xff\xff\x80\x01" + b"\0\0\0\x0a"
    assert p[16 + 14 + 20 + 8:] == gnh + opt
    assert format_actions(nla(26, p)) == text


def test_srv6_segments_are_stored_last_first():
    text = ("tnl_push(tnl_port(6),header(size=110,type=112,eth(dst=f8:bc:12:44:34:b6,"
            "src=f8:bc:12:46:58:e0,dl_type=0x86dd),ipv6(src=2001:cafe::88,dst=2001:cafe::92,"
            "label=0,proto=43,tclass=0x0,hlimit=64),srv6(segments_left=2,"
            "segs(2001:cafe::90,2001:cafe::91,2001:cafe::92))),out_port(1))")
    _t, p = only_action(text)
    srh = p[16 + 14 + 40:]
    assert srh[:8] == bytes([0, 6, 4, 2, 2, 0, 0, 0])
    assert [srh[8 + 16 * i + 15] for i in range(3)] == [0x92, 0x91, 0x90]
    assert format_actions(nla(26, p)) == text


@pytest.mark.parametrize("tail,tnl_type,size", [
    ("erspan(ver=1,sid=0x3ff,idx=0x7)", 107, 14 + 20 + 8 + 4 + 4),
    ("erspan(ver=2,sid=0x12,dir=1,hwid=0x2a)", 107, 14 + 20 + 8 + 4 + 8),
    ("udp(src=0,dst=2152,csum=0x0),gtpu(flags=0x30,msgtype=255,teid=0x7b)", 110, 14 + 20 + 16),
])
def test_erspan_and_gtpu_read_back_what_is_printed(tail, tnl_type, size):
    text = (f"tnl_push(tnl_port(3),header(size={size},type={tnl_type},eth(dst=f8:bc:12:44:34:b6,"
            "src=f8:bc:12:46:58:e0,dl_type=0x0800),ipv4(src=1.1.2.88,dst=1.1.2.92,proto=47,"
            f"tos=0x10,ttl=64,frag=0x4000),{tail}),out_port(2))")
    _t, p = only_action(text)
    assert format_actions(nla(26, p)) == text


def test_erspan_v2_bits():
    _t, p = only_action(
        "tnl_push(tnl_port(3),header(size=54,type=107,eth(dst=f8:bc:12:44:34:b6,"
        "src=f8:bc:12:46:58:e0,dl_type=0x0800),ipv4(src=1.1.2.88,dst=1.1.2.92,proto=47,"
        "tos=0,ttl=64,frag=0x4000),erspan(ver=2,sid=0x12,dir=1,hwid=0x2a)),out_port(2))")
    gre_erspan = p[16 + 14 + 20:]
    assert gre_erspan[:8] == b"\x10\x00\x22\xeb\0\0\0\0"          # GRE_SEQ, ERSPAN type III
    assert gre_erspan[8:12] == struct.pack("!HH", 2 << 12, 0x12)
    # hwid 0x2a = upper 2 bits 0b10 in byte 6, lower 4 bits 0xa and dir in byte 7
    assert gre_erspan[12:20] == b"\0\0\0\0\0\0\x02\xa8"


@pytest.mark.parametrize("change,why", [
    (("size=50", "size=51"), "size=51 but the header is 50 bytes"),
    (("type=4", "type=5"), "type=5 but the header is of tunnel type 4"),
    (("vxlan(", "nvgre("), "expected vxlan("),
    (("frag=0x4000", "frag=4000"), "expected '0x'"),
    (("out_port(1)", "out_port(x)"), "expected out_port"),
])
def test_bad_headers_are_refused(change, why):
    with pytest.raises(OdpParseError) as e:
        parse_actions(VXLAN4.replace(*change))
    assert why in str(e.value)


def test_ipv6_label_and_srv6_segment_limits():
    v6 = ("tnl_push(tnl_port(6),header(size=78,type=112,eth(dst=f8:bc:12:44:34:b6,"
          "src=f8:bc:12:46:58:e0,dl_type=0x86dd),ipv6(src=2001:cafe::88,dst=2001:cafe::92,"
          "label={label},proto=43,tclass=0x0,hlimit=64),srv6(segments_left={left},"
          "segs({segs}))),out_port(1))")
    ok = dict(label=0, left=0, segs="2001:cafe::90")
    only_action(v6.format(**ok))
    for bad, why in ((dict(label=0x100000), "wider than 20 bits"),
                     (dict(left=6), "more than 6"),
                     (dict(segs="2001:cafe::90,2001:cafe::91"), "more than segments_left"),
                     (dict(left=1), "1 segments for segments_left=1")):
        with pytest.raises(OdpParseError) as e:
            parse_actions(v6.format(**{**ok, **bad}))
        assert why in str(e.value)


def test_short_payload_prints_as_bad_header():
    _t, p = only_action(VXLAN4)
    for cut in (p[:10], p[:-1], p[:16 + 14 + 20 + 4]):
        assert format_actions(nla(26, cut)).startswith("tnl_push(bad header): action26(")
    # header_len says more than is there
    assert "bad header" in format_actions(nla(26, struct.pack("=IIII", 1, 2, 600, 4) + bytes(600)))


def test_tnl_pop_and_lb_output():
    acts = parse_actions("tnl_pop(4),lb_output(1)")
    assert acts == nla(27, struct.pack("=I", 4)) + nla(28, struct.pack("=I", 1))
    assert format_actions(acts) == "tnl_pop(4),lb_output(1)"
    assert format_actions(acts, {4: "vxlan_sys_4789"}) == "tnl_pop(vxlan_sys_4789),lb_output(1)"
    assert format_actions(nla(27, b"\0\0")) == "bad length 2, expected 4 for: action27(00 00)"


@pytest.mark.parametrize("text", [VXLAN4, "tnl_pop(4)", "lb_output(1)"])
def test_the_kernel_side_refuses_userspace_actions(text):
    with pytest.raises(NetlinkError) as e:
        FA.copy_actions(parse_actions(text), IP_TCP_KEY)
    assert e.value.errno == errno.EINVAL
    assert "Unknown Action type" in e.value.msg
    assert U.OVS_ACTION_ATTR_MAX < U.OVS_ACTION_ATTR_TUNNEL_PUSH
