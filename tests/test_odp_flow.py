"""ovsdp.odp.flow: flow keys through Open vSwitch's struct flow and back."""

import pathlib

import pytest

from ovsdp import uapi as U
from ovsdp.netlink.attr import nla
from ovsdp.odp import OdpParseError, format_key, parse_key
from ovsdp.odp.flow import flow_to_key, key_to_flow
from ovsdp.odp.flow_struct import ODPP_NONE, Fitness, FlowKeyError

ETH = "eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15)"
META = ("recirc_id(0),dp_hash(0),skb_priority(0),in_port(1),skb_mark(0),ct_state(0),"
        "ct_zone(0),ct_mark(0),ct_label(0),packet_type(ns=0,id=0),")
VECTORS = pathlib.Path(__file__).parent / "data" / "odp_conformance" / "odp-keys.txt"


def fit(text):
    return key_to_flow(parse_key(text)[0])[1]


def round_trip(text):
    flow, fitness = key_to_flow(parse_key(text)[0])
    return fitness, format_key(flow_to_key(flow))


def test_fields_land_in_the_flow():
    flow, fitness = key_to_flow(parse_key(
        f"in_port(3),{ETH},eth_type(0x0800),"
        "ipv4(src=1.2.3.4,dst=5.6.7.8,proto=6,tos=0x10,ttl=9,frag=later)")[0])
    assert fitness == Fitness.PERFECT           # a later fragment has no tcp()
    assert (flow.in_port, flow.dl_type, flow.nw_proto, flow.nw_tos, flow.nw_ttl) == \
        (3, 0x0800, 6, 0x10, 9)
    assert (flow.nw_src, flow.nw_dst, flow.nw_frag) == (0x01020304, 0x05060708, 3)
    assert flow.dl_src == bytes.fromhex("000102030405")


def test_metadata_and_packet_type_are_filled_in():
    assert round_trip(f"in_port(1),{ETH}") == (Fitness.PERFECT, META + ETH)
    # No in_port: ODPP_NONE, left out again.
    flow, _ = key_to_flow(parse_key(ETH)[0])
    assert flow.in_port == ODPP_NONE
    assert "in_port" not in format_key(flow_to_key(flow))


def test_key_without_ethernet_is_an_ethertype_packet():
    fitness, text = round_trip("in_port(1),eth_type(0x86dd),ipv6(src=::1,dst=::2,proto=0,"
                               "tclass=0,hlimit=1,frag=no)")
    assert fitness == Fitness.PERFECT
    assert "packet_type(ns=1,id=0x86dd),eth_type(0x86dd),ipv6(" in text
    assert "eth(" not in text


def test_mpls_without_bottom_of_stack_is_too_little():
    fitness, text = round_trip(f"in_port(1),{ETH},eth_type(0x8847),"
                               "mpls(label=100,tc=7,ttl=100,bos=0)")
    assert fitness == Fitness.TOO_LITTLE
    assert text.endswith("eth_type(0x8847),mpls(label=100,tc=7,ttl=100,bos=0)")
    assert fit(f"in_port(1),{ETH},eth_type(0x8847),mpls(label=1,tc=0,ttl=1,bos=1)") == \
        Fitness.PERFECT


def test_unexpected_attribute_is_too_much():
    fitness, text = round_trip(f"in_port(1),{ETH},eth_type(0x1234),tcp(src=1,dst=2)")
    assert fitness == Fitness.TOO_MUCH
    assert text == META + ETH + ",eth_type(0x1234)"      # what the flow cannot hold is gone
    # tcp_flags() belongs to TCP only.
    assert fit(f"{ETH},eth_type(0x0800),ipv4(src=1.1.1.1,dst=2.2.2.2,proto=17,tos=0,ttl=1,"
               "frag=no),udp(src=1,dst=2),tcp_flags(syn)") == Fitness.TOO_MUCH


def test_missing_attribute_is_too_little():
    fitness, text = round_trip(f"in_port(1),{ETH},eth_type(0x0800)")
    assert fitness == Fitness.TOO_LITTLE
    assert text.endswith("ipv4(src=0.0.0.0,dst=0.0.0.0,proto=0,tos=0,ttl=0,frag=no)")
    assert fit(f"{ETH},eth_type(0x0800),ipv4(src=1.1.1.1,dst=2.2.2.2,proto=6,tos=0,ttl=1,"
               "frag=no)") == Fitness.TOO_LITTLE                 # no tcp()
    assert fit(f"{ETH},eth_type(0x8100),vlan(vid=99,pcp=7)") == Fitness.TOO_LITTLE


def test_vlans():
    fitness, text = round_trip(
        f"{ETH},eth_type(0x8100),vlan(vid=1),encap(eth_type(0x88a8),vlan(vid=2),"
        "encap(eth_type(0x0800),ipv4(src=1.1.1.1,dst=2.2.2.2,proto=17,tos=0,ttl=64,"
        "frag=no),udp(src=1,dst=2)))")
    assert fitness == Fitness.PERFECT
    assert text.endswith(",eth_type(0x8100),vlan(vid=1,pcp=0),encap(eth_type(0x88a8),"
                         "vlan(vid=2,pcp=0),encap(eth_type(0x0800),ipv4(src=1.1.1.1,"
                         "dst=2.2.2.2,proto=17,tos=0,ttl=64,frag=no),udp(src=1,dst=2)))")
    # A truncated header (tci 0) with something inside its encap().
    assert fit(f"{ETH},eth_type(0x8100),vlan(vid=0,pcp=0,cfi=0),encap(eth_type(0x0800))") \
        == Fitness.TOO_MUCH


@pytest.mark.parametrize("text,message", [
    ("in_port(1),in_port(2)", "duplicate in_port attribute in flow key"),
    ("tunnel(tun_id=1,dst=1.1.1.1),in_port(1)", "tunnel options missing TTL"),
    (f"{ETH},eth_type(0x8100),vlan(vid=99,pcp=7,cfi=0),encap()",
     "OVS_KEY_ATTR_VLAN 0xe063 is nonzero but CFI bit is not set"),
    (f"{ETH},eth_type(0x8847),mpls(label=1,tc=0,ttl=1,bos=1),"
     "mpls(label=1,tc=0,ttl=1,bos=1)", "duplicate mpls attribute"),
])
def test_errors(text, message):
    with pytest.raises(FlowKeyError) as e:
        key_to_flow(parse_key(text)[0])
    assert str(e.value).startswith(message)
    assert "; the flow key in error is: " in str(e.value)
    assert isinstance(e.value, OdpParseError)


def test_bad_lengths_and_garbage():
    with pytest.raises(FlowKeyError, match="attribute in_port has length 2 but should "
                                           "have length 4"):
        key_to_flow(nla(U.OVS_KEY_ATTR_IN_PORT, b"\0\0"))
    with pytest.raises(FlowKeyError, match="trailing garbage in flow key"):
        key_to_flow(nla(U.OVS_KEY_ATTR_IN_PORT, bytes(4)) + b"\x01")
    with pytest.raises(FlowKeyError, match="invalid Ethertype 4"):
        key_to_flow(nla(U.OVS_KEY_ATTR_ETHERTYPE, b"\0\x04"))


def test_attributes_newer_than_ovs_are_ignored():
    key = parse_key(f"in_port(1),{ETH}")[0] + nla(U.OVS_KEY_ATTR_IPV6_EXTHDRS, b"\0\0")
    assert key_to_flow(key)[1] == Fitness.PERFECT


def test_tunnel_options_round_trip():
    fitness, text = round_trip(
        "tunnel(tun_id=0x5,src=1.1.1.1,dst=2.2.2.2,tos=0x3,ttl=64,tp_src=1,tp_dst=4789,"
        "vxlan(gbp(id=10,flags=0xb)),flags(df|csum|oam|key)),in_port(1)," + ETH)
    assert fitness == Fitness.PERFECT
    assert text.startswith("recirc_id(0),dp_hash(0),skb_priority(0),tunnel(tun_id=0x5,"
                           "src=1.1.1.1,dst=2.2.2.2,tos=0x3,ttl=64,tp_src=1,tp_dst=4789,"
                           "vxlan(gbp(id=10,flags=0xb)),flags(oam|df|csum|key)),in_port(1),")
    fitness, text = round_trip("tunnel(dst=2.2.2.2,ttl=1,erspan(ver=2,dir=1,hwid=0x7)),"
                               + ETH)
    assert "erspan(ver=2,dir=1,hwid=0x7)" in text


def _vectors():
    cat = None
    for line in VECTORS.read_text().splitlines():
        if line.startswith("# "):
            cat = line[2:].partition(" ")[0]
        elif line and cat != "invalid":
            inp, _, exp = line.partition("\t")
            yield pytest.param(inp, exp or inp, id=f"{cat}:{len(inp)}")


def _ovs_text(inp):
    """What ovstest test-odp parse-keys prints for ``inp``."""
    fitness, text = round_trip(inp)
    return {Fitness.TOO_LITTLE: "ODP_FIT_TOO_LITTLE: ",
            Fitness.TOO_MUCH: "ODP_FIT_TOO_MUCH: "}.get(fitness, "") + text


def test_odp_at_parse_keys_vectors():
    """odp.at's parse-keys vectors come out of the round trip as OVS prints them."""
    bad = [(p.values[0], p.values[1]) for p in _vectors()
           if _ovs_text(p.values[0]) != p.values[1]]
    assert len(list(_vectors())) > 250
    assert not bad, bad[:3]
