"""Unit tests of the datapath flow text format (ovsdp.odp)."""

import struct

import pytest

from ovsdp import uapi as U
from ovsdp.netlink.attr import iter_attrs, nla, nla_nest, nla_u32
from ovsdp.odp import (
    OdpParseError,
    format_actions,
    format_flow,
    format_key,
    parse_actions,
    parse_key,
)


def eth_key(src="00:01:02:03:04:05", dst="10:11:12:13:14:15"):
    return nla(U.OVS_KEY_ATTR_ETHERNET, bytes.fromhex(src.replace(":", ""))
               + bytes.fromhex(dst.replace(":", "")))


def ipv4(src, dst, proto, tos, ttl, frag):
    return nla(U.OVS_KEY_ATTR_IPV4, U.OVS_KEY_IPV4.pack(src, dst, proto, tos, ttl, frag))


# ------------------------------------------------------------------- keys
def test_format_exact_key_from_attributes():
    key = (nla_u32(U.OVS_KEY_ATTR_IN_PORT, 1) + eth_key()
           + nla(U.OVS_KEY_ATTR_ETHERTYPE, b"\x08\x00")
           + ipv4(0x23080229, 0xAC100014, 6, 0, 128, 0)
           + nla(U.OVS_KEY_ATTR_TCP, struct.pack("!HH", 80, 8080)))
    assert format_key(key) == (
        "in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x0800),"
        "ipv4(src=35.8.2.41,dst=172.16.0.20,proto=6,tos=0,ttl=128,frag=no),tcp(src=80,dst=8080)")


def test_parse_key_bytes():
    key, mask = parse_key("recirc_id(0),in_port(3),eth_type(0x0800),ipv4(src=10.0.0.1/255.0.0.0)")
    attrs = [(t, p) for t, p, _ in iter_attrs(key)]
    assert attrs[0] == (U.OVS_KEY_ATTR_RECIRC_ID, b"\0\0\0\0")
    assert attrs[1] == (U.OVS_KEY_ATTR_IN_PORT, struct.pack("=I", 3))
    assert attrs[2] == (U.OVS_KEY_ATTR_ETHERTYPE, b"\x08\x00")
    assert attrs[3] == (U.OVS_KEY_ATTR_IPV4, bytes([10, 0, 0, 1]) + bytes(8))
    mattrs = [(t, p) for t, p, _ in iter_attrs(mask)]
    assert mattrs[0] == (U.OVS_KEY_ATTR_RECIRC_ID, b"\xff" * 4)
    assert mattrs[3] == (U.OVS_KEY_ATTR_IPV4, bytes([255, 0, 0, 0]) + bytes(8))


def test_wildcards_are_left_out_unless_verbose():
    key, mask = parse_key("skb_priority(0/0),in_port(1),eth(),eth_type(0x0800),"
                          "ipv4(src=1.1.1.1,frag=no),tcp()")
    assert format_key(key, mask) == "in_port(1),eth(),eth_type(0x0800),ipv4(src=1.1.1.1,frag=no)"
    assert format_key(key, mask, verbose=True) == (
        "skb_priority(0/0),in_port(1),eth(src=00:00:00:00:00:00/00:00:00:00:00:00,"
        "dst=00:00:00:00:00:00/00:00:00:00:00:00),eth_type(0x0800),"
        "ipv4(src=1.1.1.1,dst=0.0.0.0/0.0.0.0,proto=0/0,tos=0/0,ttl=0/0,frag=no),"
        "tcp(src=0/0,dst=0/0)")


def test_recirc_id_is_always_exact():
    key, mask = parse_key("recirc_id(5)")
    assert mask == nla_u32(U.OVS_KEY_ATTR_RECIRC_ID, 0xFFFFFFFF)
    with pytest.raises(OdpParseError):
        parse_key("recirc_id(5/0xff)")


def test_ct_state_forms():
    key, mask = parse_key("ct_state(+trk-new+est)")
    assert format_key(key, mask) == "ct_state(-new+est+trk)"
    key, mask = parse_key("ct_state(new|trk)")
    assert format_key(key, mask) == "ct_state(new|trk)"
    assert format_key(key) == "ct_state(0x21)"          # parse-keys prints numbers
    key, mask = parse_key("ct_state(0x21/0x3f)")
    assert format_key(key, mask) == "ct_state(+new-est-rel-rpl-inv+trk)"


def test_tcp_flags_and_tunnel_flags():
    key, mask = parse_key("tcp_flags(syn|ack)")
    assert format_key(key, mask) == "tcp_flags(syn|ack)"
    key, mask = parse_key("tcp_flags(+syn-ack)")
    assert format_key(key, mask) == "tcp_flags(+syn-ack)"
    key, mask = parse_key("tunnel(tun_id=0x5,dst=1.1.1.1,ttl=64,flags(-df+csum+key))")
    assert format_key(key, mask) == "tunnel(tun_id=0x5,dst=1.1.1.1,ttl=64,flags(-df+csum+key))"


def test_ct_label_byte_order():
    key, _ = parse_key("ct_label(0x1)")
    assert list(iter_attrs(key))[0][1] == b"\x01" + bytes(15)
    assert format_key(key) == "ct_label(0x1)"


def test_eth_printed_when_wildcarded():
    key = eth_key() + nla(U.OVS_KEY_ATTR_ETHERTYPE, b"\x08\x06")
    mask = nla(U.OVS_KEY_ATTR_ETHERNET, bytes(12)) + nla(U.OVS_KEY_ATTR_ETHERTYPE, b"\xff\xff")
    assert format_key(key, mask) == "eth(),eth_type(0x0806)"


def test_missing_ethertype_key_with_mask():
    key = nla_u32(U.OVS_KEY_ATTR_IN_PORT, 1)
    mask = nla_u32(U.OVS_KEY_ATTR_IN_PORT, 0xFFFFFFFF) + nla(U.OVS_KEY_ATTR_ETHERTYPE, b"\xff\xff")
    assert format_key(key, mask) == "in_port(1),eth_type(0/0xffff)"


def test_port_names_in_keys():
    key, mask = parse_key("in_port(br0)", port_names={"br0": 0})
    assert key == nla_u32(U.OVS_KEY_ATTR_IN_PORT, 0)
    assert format_key(key, mask, port_names={0: "br0"}) == "in_port(br0)"
    with pytest.raises(OdpParseError, match="unknown port name 'br1'"):
        parse_key("in_port(br1)", port_names={"br0": 0})


def test_ipv6_formatting_like_inet_ntop():
    key, _ = parse_key("nd(target=::1.2.3.4),nd(target=::ffff:1.2.3.4),nd(target=1:0:0:2::3)")
    assert format_key(key).startswith(
        "nd(target=::1.2.3.4,sll=00:00:00:00:00:00,tll=00:00:00:00:00:00),"
        "nd(target=::ffff:1.2.3.4,")
    assert "target=1:0:0:2::3," in format_key(key)


def test_unknown_and_malformed_attributes():
    key = nla(U.OVS_KEY_ATTR_IPV6_EXTHDRS, b"\x00\x40") + nla(U.OVS_KEY_ATTR_IN_PORT, b"\x01")
    assert format_key(key) == "key32(00 40),key3(bad key length 1, expected 4)(01)"
    k2, m2 = parse_key("key32(00 40/00 ff)")
    assert k2 == nla(32, b"\x00\x40") and m2 == nla(32, b"\x00\xff")
    assert format_key(k2, m2) == "key32(00 40/00 ff)"
    assert format_key(b"") == "<empty>"
    assert format_key(nla_u32(U.OVS_KEY_ATTR_IN_PORT, 1) + b"\x01\x02") == (
        "in_port(1),***2 leftover bytes*** (0102)")


def test_ufid_prefix_is_skipped():
    key, _ = parse_key("ufid:3f2c8f4b-5a51-4a2c-8e3e-5ad1c2d3e4f5, recirc_id(0),in_port(1)")
    assert format_key(key) == "recirc_id(0),in_port(1)"


@pytest.mark.parametrize("text,where,why", [
    ("in_port(1),eth(src=00:01:02:03:04)", "eth(src=00:01:02:03:04)", "invalid Ethernet address"),
    ("ipv4(frag=maybe)", "ipv4(frag=maybe)", "frag must be no, first or later"),
    ("ipv4(bogus=1)", "ipv4(bogus=1)", "unknown field 'bogus'"),
    ("in_port(1),foo(2)", "foo(2)", "unknown key attribute 'foo'"),
    ("in_port(1", "in_port(1", "expected ')'"),
    ("eth_type(0x10000)", "eth_type(0x10000)", "eth_type 0x10000 out of range"),
    ("vlan(vid=4096)", "vlan(vid=4096)", "vid 4096 out of range"),
    ("ct_state(+bogus)", "ct_state(+bogus)", "unknown ct_state flag"),
    ("mpls(label=1,label=2,label=3,label=4)", "mpls(label=1,label=2,label=3,label=4)",
     "too many MPLS labels"),
])
def test_key_parse_errors(text, where, why):
    with pytest.raises(OdpParseError) as e:
        parse_key(text)
    assert str(e.value) == f"syntax error at {where} ({why})"
    assert isinstance(e.value, ValueError)
    assert text[e.value.offset:] == where


def test_nested_encap_limit():
    deep = "encap(" * 33 + ")" * 33
    with pytest.raises(OdpParseError, match="too deeply nested"):
        parse_key(deep)
    ok = "encap(" * 30 + ")" * 30
    assert format_key(parse_key(ok)[0]) == ok


# ---------------------------------------------------------------- actions
def test_empty_actions_print_drop_and_drop_parses_to_explicit_drop():
    assert format_actions(b"") == "drop"
    acts = parse_actions("drop")
    assert acts == nla_u32(U.OVS_ACTION_ATTR_DROP, 0)
    assert format_actions(acts) == "drop"
    assert parse_actions("") == b""


def test_output_and_port_names():
    acts = parse_actions("1,eth0,3", port_names={"eth0": 2})
    assert acts == b"".join(nla_u32(U.OVS_ACTION_ATTR_OUTPUT, p) for p in (1, 2, 3))
    assert format_actions(acts, {2: "eth0"}) == "1,eth0,3"


def test_masked_set_becomes_set_masked():
    acts = parse_actions("set(ipv4(tos=0x80/0xfc))")
    (t, p, _), = iter_attrs(acts)
    assert t == U.OVS_ACTION_ATTR_SET_MASKED
    (kt, kp, _), = iter_attrs(p)
    assert kt == U.OVS_KEY_ATTR_IPV4 and len(kp) == 24
    assert kp[9] == 0x80 and kp[12 + 9] == 0xFC
    acts = parse_actions("set(ipv4(src=1.2.3.4,dst=5.6.7.8,proto=6,tos=0,ttl=64,frag=no))")
    assert list(iter_attrs(acts))[0][0] == U.OVS_ACTION_ATTR_SET


def test_recirc_prints_hex():
    assert format_actions(nla_u32(U.OVS_ACTION_ATTR_RECIRC, 31)) == "recirc(0x1f)"
    assert parse_actions("recirc(31)") == parse_actions("recirc(0x1f)")


def test_userspace_cookie_layout():
    acts = parse_actions("userspace(pid=7,sFlow(vid=9,pcp=7,output=10))")
    (t, p, _), = iter_attrs(acts)
    attrs = {t2: p2 for t2, p2, _ in iter_attrs(p)}
    ud = attrs[U.OVS_USERSPACE_ATTR_USERDATA]
    assert len(ud) == 48
    assert struct.unpack_from("=HH", ud) == (1, 0xFFFF)
    assert struct.unpack_from("!H", ud, 24)[0] == 0x1000 | 9 | (7 << 13)
    assert struct.unpack_from("=I", ud, 28)[0] == 10


def test_short_userdata_is_padded_to_8_bytes():
    acts = parse_actions("userspace(pid=1,userdata(0102))")
    assert format_actions(acts) == "userspace(pid=1,userdata(0102000000000000))"


def test_sample_probability():
    acts = parse_actions("sample(sample=50.0%,actions(1))")
    (t, p, _), = iter_attrs(acts)
    prob = [p2 for t2, p2, _ in iter_attrs(p) if t2 == U.OVS_SAMPLE_ATTR_PROBABILITY][0]
    assert struct.unpack("=I", prob)[0] == 2147483648


def test_ct_nat_bytes():
    acts = parse_actions("ct(commit,zone=5,nat(src=10.0.0.1-10.0.0.9:1000-2000,random))")
    (t, p, _), = iter_attrs(acts)
    inner = [(t2, p2) for t2, p2, _ in iter_attrs(p)]
    assert [x[0] for x in inner] == [U.OVS_CT_ATTR_COMMIT, U.OVS_CT_ATTR_ZONE, U.OVS_CT_ATTR_NAT]
    nat = [t2 for t2, _, _ in iter_attrs(inner[2][1])]
    assert nat == [U.OVS_NAT_ATTR_SRC, U.OVS_NAT_ATTR_IP_MIN, U.OVS_NAT_ATTR_IP_MAX,
                   U.OVS_NAT_ATTR_PROTO_MIN, U.OVS_NAT_ATTR_PROTO_MAX,
                   U.OVS_NAT_ATTR_PROTO_RANDOM]


def test_generic_and_bad_length_actions():
    assert format_actions(nla(U.OVS_ACTION_ATTR_OUTPUT, b"\x01")) == (
        "bad length 1, expected 4 for: action1(01)")
    assert format_actions(nla(99, b"\x01\x02")) == "bad length 2, expected -1 for: action99(01 02)"


def test_dec_ttl_and_psample_bytes():
    acts = parse_actions("dec_ttl(le_1(1)),psample(group=3,cookie=0xabcd)")
    assert acts == (nla_nest(U.OVS_ACTION_ATTR_DEC_TTL,
                             nla_nest(U.OVS_DEC_TTL_ATTR_ACTION,
                                      nla_u32(U.OVS_ACTION_ATTR_OUTPUT, 1)))
                    + nla_nest(U.OVS_ACTION_ATTR_PSAMPLE, nla_u32(U.OVS_PSAMPLE_ATTR_GROUP, 3),
                               nla(U.OVS_PSAMPLE_ATTR_COOKIE, b"\xab\xcd"), flag=True))


@pytest.mark.parametrize("text,where,why", [
    ("1,bogus", "bogus", "unknown action 'bogus'"),
    ("push_vlan(vid=5000,pcp=0)", "push_vlan(vid=5000,pcp=0)", "vid out of range"),
    ("ct(commit,force_commit)", "ct(commit,force_commit)", "commit and force_commit are exclusive"),
    ("1 2x", "2x", "expected ',' after action"),
    ("clone(1", "clone(1", "expected ')'"),
    ("set(ipv4(src=1.2.3.4)", "set(ipv4(src=1.2.3.4)", "expected ')'"),
])
def test_action_parse_errors(text, where, why):
    with pytest.raises(OdpParseError) as e:
        parse_actions(text)
    assert str(e.value) == f"syntax error at {where} ({why})"


def test_format_flow_line():
    key, mask = parse_key("recirc_id(0),in_port(1),eth(src=00:00:00:00:00:01,"
                          "dst=00:00:00:00:00:02),eth_type(0x1234)")
    line = format_flow(key, mask, parse_actions("2"))
    assert line == ("recirc_id(0),in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),"
                    "eth_type(0x1234), packets:0, bytes:0, used:never, actions:2")
