"""NSH (RFC 8300) in the datapath: key extraction (flow.c parse_nsh()),
NSH keys and masks (flow_netlink.c), push_nsh/pop_nsh (actions.c,
net/nsh/nsh.c), the flow family and the text format, with hand-built
packets and exact bytes."""

import errno
import io
import struct

import pytest

from ovsdp import odp
from ovsdp import uapi as U
from ovsdp.cli import dpctl as D
from ovsdp.client.dpif import Dpif
from ovsdp.datapath import actions as A
from ovsdp.datapath import flow_key as F
from ovsdp.datapath import flow_netlink as FN
from ovsdp.datapath import flow_netlink_actions as FA
from ovsdp.datapath import flow_netlink_nsh as NN
from ovsdp.datapath import flow_netlink_put as FP
from ovsdp.datapath import key_layout as K
from ovsdp.datapath import nsh as NSH
from ovsdp.datapath.actions_headers import Key
from ovsdp.datapath.skb import Skb
from ovsdp.netlink.attr import NetlinkError, nla, nla_nest
from tests.test_actions import FakeDP

OUTPUT = U.OVS_ACTION_ATTR_OUTPUT
PUSH_NSH = U.OVS_ACTION_ATTR_PUSH_NSH
POP_NSH = U.OVS_ACTION_ATTR_POP_NSH
PUSH_ETH = U.OVS_ACTION_ATTR_PUSH_ETH
POP_ETH = U.OVS_ACTION_ATTR_POP_ETH
RECIRC = U.OVS_ACTION_ATTR_RECIRC

# The frames of Open vSwitch's "nsh - *" system tests (system-traffic.at).
INNER = bytes.fromhex(
    "f20000000002f20000000001080045000028000100004006b013c0a8000a0a00000a"
    "04000800000000c800000000500220 00b85e0000".replace(" ", ""))
MD1_HDR = bytes.fromhex("0206010300010003" "0102030405060708090a0b0c0d0e0f10")
OUTER_ETH = bytes.fromhex("f2ff00000002f2ff00000001894f")
NSH_FRAME = OUTER_ETH + MD1_HDR + INNER
# MD type 2: base header + one 8-byte TLV (length 4 words)
MD2_HDR = bytes.fromhex("0104020100000a05" "0000010100000000")


def fields(k):
    return {n: v for n, v in K.fields_of(k).items() if n.startswith("nsh_")}


# ------------------------------------------------------------ key extraction
def test_md1_key():
    k = F.extract(NSH_FRAME, 0)
    assert K.get(k, "eth_type") == 0x894F
    assert fields(k) == dict(nsh_ttl=8, nsh_mdtype=1, nsh_np=3, nsh_path_hdr=0x10003,
                             nsh_context=0x0102030405060708090a0b0c0d0e0f10)
    ly = F.layers(NSH_FRAME)
    assert (ly.mac_len, ly.network, ly.transport) == (14, 14, -1)


def test_md2_key_has_no_context():
    k = F.extract(OUTER_ETH + MD2_HDR + INNER, 0)
    assert fields(k) == dict(nsh_ttl=4, nsh_mdtype=2, nsh_np=1, nsh_path_hdr=0xa05)


def test_flags_and_l3_key():
    """No Ethernet header (after pop_eth, or an L3 port): packet_type (1, 0x894F)."""
    hdr = bytes([0x30 | 0x00, 0x46]) + MD1_HDR[2:]      # O and U bits set, ttl 1
    k = F.extract_l3(hdr + INNER, K.ETH_P_NSH, 0)
    assert K.get(k, "no_eth") == 1 and K.get(k, "eth_type") == 0x894F
    assert K.get(k, "nsh_flags") == 3 and K.get(k, "nsh_ttl") == 1


@pytest.mark.parametrize("hdr", [
    MD1_HDR[:7],                                          # base header cut
    bytes([0x42, 0x06]) + MD1_HDR[2:],                    # version 1
    MD1_HDR[:20],                                         # cut before its length
    bytes([0x02, 0x07]) + MD1_HDR[2:] + b"\0" * 4,        # MD1 of length 28
    MD1_HDR[:2] + b"\x03" + MD1_HDR[3:],                  # MD type 3
    MD1_HDR[:2] + b"\x11" + MD1_HDR[3:],                  # reserved bits of the MD type
])
def test_malformed_headers_fail_extraction(hdr):
    with pytest.raises(F.ExtractError) as e:
        F.extract(OUTER_ETH + hdr, 0)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(F.ExtractError):
        F.extract_l3(hdr, K.ETH_P_NSH, 0)
    assert F.layers(OUTER_ETH + hdr).network == 14          # offsets all the same


# ------------------------------------------------------------- keys, masks
def nsh_attr(flags=0, ttl=8, mdtype=1, np_=3, path=0x103, ctx=None, md2=None):
    parts = [nla(U.OVS_NSH_KEY_ATTR_BASE, bytes([flags, ttl, mdtype, np_])
                 + struct.pack("!I", path))]
    if ctx is not None:
        parts.append(nla(U.OVS_NSH_KEY_ATTR_MD1, b"".join(struct.pack("!I", c) for c in ctx)))
    if md2 is not None:
        parts.append(nla(U.OVS_NSH_KEY_ATTR_MD2, md2))
    return nla_nest(U.OVS_KEY_ATTR_NSH, *parts)


ETH = nla(U.OVS_KEY_ATTR_ETHERNET, bytes(12))
ETYPE = nla(U.OVS_KEY_ATTR_ETHERTYPE, b"\x89\x4f")


def test_key_and_exact_mask():
    key = ETH + ETYPE + nsh_attr(ctx=(1, 2, 3, 4))
    k, m = FN.get_match(key, None)
    assert fields(k) == dict(nsh_ttl=8, nsh_mdtype=1, nsh_np=3, nsh_path_hdr=0x103,
                             nsh_context=(1 << 96) | (2 << 64) | (3 << 32) | 4)
    assert m & NN.NSH_MASK == NN.NSH_MASK                  # every NSH bit exact
    # nsh_key_to_nlattr(): the base and MD1 as they came
    assert nsh_attr(ctx=(1, 2, 3, 4)) in FP.put_key(k, k, False)
    assert nsh_attr(0xFF, 0xFF, 0xFF, 0xFF, 0xFFFFFFFF, (0xFFFFFFFF,) * 4) \
        in FP.put_key(k, m, True)


def test_wildcarded_mask_puts_md1_always_and_key_md1_only_for_md_type_1():
    key = ETH + ETYPE + nsh_attr(mdtype=2, np_=1, path=0x100ff)
    mask = (nla(U.OVS_KEY_ATTR_ETHERNET, bytes(12)) + nla(U.OVS_KEY_ATTR_ETHERTYPE, b"\xff\xff")
            + nsh_attr(0, 0, 0, 0xFF, 0xFFFFFF00, (0, 0, 0, 0)))
    k, m = FN.get_match(key, mask)
    assert K.get(m, "nsh_np") == 0xFF and K.get(m, "nsh_path_hdr") == 0xFFFFFF00
    mk = k & m
    assert nsh_attr(0, 0, 0, 1, 0x10000) in FP.put_key(mk, mk, False)   # no MD1
    assert nsh_attr(0, 0, 0, 0xFF, 0xFFFFFF00, (0, 0, 0, 0)) in FP.put_key(mk, m, True)


def expect_err(code, fn, *args):
    with pytest.raises(NetlinkError) as e:
        fn(*args)
    assert e.value.errno == code, e.value
    return e.value.msg


@pytest.mark.parametrize("bad", [
    nsh_attr(ctx=(0, 0, 0, 0), md2=bytes(4)),                  # md1 and md2
    nsh_attr(mdtype=2, ctx=(0, 0, 0, 0)),                      # md1 with mdtype 2
    nsh_attr(mdtype=2, md2=bytes(8)),                          # MD2 keys: ENOTSUPP -> EINVAL
    nla_nest(U.OVS_KEY_ATTR_NSH, nla(4, b"")),                 # type over the max
    nla_nest(U.OVS_KEY_ATTR_NSH, nla(U.OVS_NSH_KEY_ATTR_BASE, bytes(7))),
    nla_nest(U.OVS_KEY_ATTR_NSH, nla(U.OVS_NSH_KEY_ATTR_UNSPEC, b"")),
])
def test_bad_keys_are_einval(bad):
    FN.get_match(ETH + ETYPE + nsh_attr(), None)              # the good one
    expect_err(errno.EINVAL, FN.get_match, ETH + ETYPE + bad, None)


def test_unknown_bytes_in_the_nest():
    inner = nla(U.OVS_NSH_KEY_ATTR_BASE, bytes(8)) + b"\0\0\0\0\0"
    key = ETH + ETYPE + nla(U.OVS_KEY_ATTR_NSH, inner)
    assert "unknown bytes" in expect_err(errno.EINVAL, FN.get_match, key, None)


def test_nsh_mask_needs_exact_eth_type():
    key = ETH + ETYPE + nsh_attr()
    # a mask EtherType is always exact: without one, NSH may not be masked
    mask = ETH + nla(U.OVS_KEY_ATTR_ETHERTYPE, b"\0\0") + nsh_attr(0, 0, 0, 0xFF, 0)
    assert "Unexpected mask" in expect_err(errno.EINVAL, FN.get_match, key, mask)
    assert "Missing key" in expect_err(errno.EINVAL, FN.get_match, ETH + ETYPE, None)


# ----------------------------------------------------------------- actions
def push_attr(*parts):
    return nla_nest(PUSH_NSH, nla_nest(U.OVS_KEY_ATTR_NSH, *parts))


BASE1 = nla(U.OVS_NSH_KEY_ATTR_BASE, bytes([0, 63, 1, 0]) + struct.pack("!I", 0x1234FF))
MD1 = nla(U.OVS_NSH_KEY_ATTR_MD1, struct.pack("!IIII", 0x11223344, 0, 0, 0))
IP_KEY = F.extract(INNER, 0)


def test_push_nsh_header_and_dump():
    act = push_attr(BASE1, MD1)
    ((t, (hdr, raw)),) = FA.copy_actions(act, IP_KEY)
    assert t == PUSH_NSH
    # nsh_hdr_from_nlattr(): ttl 63, length 6 words (the np is push time's)
    assert hdr == bytes.fromhex("0fc6010000123 4ff11223344000000000000000000000000"
                                .replace(" ", ""))
    assert FA.put_actions(((t, (hdr, raw)),)) == act


def test_push_nsh_md2_length_is_rounded_down_as_the_kernel_does():
    base2 = nla(U.OVS_NSH_KEY_ATTR_BASE, bytes([0, 1, 2, 0, 0, 0, 1, 1]))
    hdr = NN.nsh_hdr_from_nlattr(nla(U.OVS_NSH_KEY_ATTR_BASE, bytes([0, 1, 2, 0, 0, 0, 1, 1]))
                                 + nla(U.OVS_NSH_KEY_ATTR_MD2, b"abcdef"))
    assert hdr == bytes([0x00, 0x43, 2, 0, 0, 0, 1, 1]) + b"abcd"   # 14 bytes -> 3 words
    ((_t, (h, _raw)),) = FA.copy_actions(push_attr(base2, nla(U.OVS_NSH_KEY_ATTR_MD2,
                                                              b"abcdef")), IP_KEY)
    assert h == hdr


def test_set_nsh_is_einval_as_in_linux():
    nsh_key = F.extract(NSH_FRAME, 0)
    set_ = nla_nest(U.OVS_ACTION_ATTR_SET, nsh_attr(ctx=(0, 0, 0, 0)))
    expect_err(errno.EINVAL, FA.copy_actions, set_, nsh_key)
    masked = nla_nest(U.OVS_ACTION_ATTR_SET_MASKED, nsh_attr(ctx=(0, 0, 0, 0)))
    expect_err(errno.EINVAL, FA.copy_actions, masked, nsh_key)


def test_pop_nsh_validation_follows_the_key():
    nsh_key = F.extract(NSH_FRAME, 0)
    pop = nla(POP_NSH)
    # np 3: the packet is Ethernet again, so pop_eth is allowed after it
    FA.copy_actions(nla(POP_ETH) + pop + nla(POP_ETH), nsh_key)
    l3 = F.extract_l3(MD1_HDR[:3] + b"\x01" + MD1_HDR[4:] + INNER[14:], K.ETH_P_NSH, 0)
    # np 1: an IPv4 packet without Ethernet header: pop_eth is refused, push_eth fine
    expect_err(errno.EINVAL, FA.copy_actions, pop + nla(POP_ETH), l3)
    FA.copy_actions(pop + nla(PUSH_ETH, bytes(12)), l3)
    bad_np = F.extract_l3(MD1_HDR[:3] + b"\x09" + MD1_HDR[4:], K.ETH_P_NSH, 0)
    expect_err(errno.EINVAL, FA.copy_actions, pop, bad_np)


def run(dp, data, key, acts):
    skb = Skb(data)
    return A.execute_actions(dp, skb, key, tuple(acts)), skb


def test_encap_as_the_ovs_encap_test():
    """encap(nsh(md_type=1)),set_field:...,encap(ethernet): push_nsh + push_eth."""
    dp = FakeDP()
    acts = FA.copy_actions(push_attr(BASE1, MD1)
                           + nla(PUSH_ETH, bytes.fromhex("f2ff00000001f2ff00000002"))
                           + nla(OUTPUT, struct.pack("=I", 2)), IP_KEY)
    err, _ = run(dp, INNER, IP_KEY, acts)
    assert err == 0
    (out,) = dp.ports[2].sent
    assert out == (OUTER_ETH + bytes.fromhex("0fc6010300123 4ff11223344".replace(" ", ""))
                   + bytes(12) + INNER)


def test_decap_as_the_ovs_decap_test():
    """pop_eth, pop_nsh, recirc: the inner Ethernet frame, its key re-extracted."""
    dp = FakeDP()
    key = F.extract(NSH_FRAME, 0)
    acts = FA.copy_actions(nla(POP_ETH) + nla(POP_NSH) + nla(RECIRC, struct.pack("=I", 7)), key)
    err, _ = run(dp, NSH_FRAME, key, acts)
    assert err == 0
    (rc,) = dp.recircs
    assert rc["data"] == INNER
    assert rc["key"] == F.extract(INNER, K.make(recirc_id=7))


def test_pop_nsh_to_ipv4_and_push_back():
    dp = FakeDP()
    l3 = MD1_HDR[:3] + b"\x01" + MD1_HDR[4:] + INNER[14:]
    key = F.extract_l3(l3, K.ETH_P_NSH, 0)
    kx = Key(key, True, K.ETH_P_NSH)
    skb = Skb(l3)
    assert NSH.pop_nsh(skb, kx) == 0
    assert bytes(skb.data) == INNER[14:] and kx.proto == K.ETH_P_IP and K.get(kx.k, "no_eth")
    assert not kx.valid
    # push on an L3 IPv4 packet: next protocol 1, whatever the action said
    hdr = bytes.fromhex("0fc601ff00000100") + bytes(16)
    assert NSH.push_nsh(skb, kx, hdr) == 0
    assert bytes(skb.data) == bytes.fromhex("0fc6010100000100") + bytes(16) + INNER[14:]
    assert kx.proto == K.ETH_P_NSH
    # an L3 ARP packet has no NSH next protocol
    arp = Key(K.make(no_eth=1, eth_type=0x0806), True, 0x0806)
    assert NSH.push_nsh(Skb(b"x" * 28), arp, hdr) == errno.EAFNOSUPPORT
    assert dp.drops == {}


@pytest.mark.parametrize("data,code", [
    (MD1_HDR[:7], errno.ENOMEM),                           # no base header
    (b"\x00\x01" + MD1_HDR[2:], errno.EINVAL),             # length 4 < 8
    (MD1_HDR[:20], errno.ENOMEM),                          # cut
    (MD1_HDR[:3] + b"\x07" + MD1_HDR[4:], errno.EAFNOSUPPORT),   # np 7
])
def test_pop_nsh_errors(data, code):
    kx = Key(K.make(no_eth=1, eth_type=K.ETH_P_NSH), True, K.ETH_P_NSH)
    skb = Skb(data)
    assert NSH.pop_nsh(skb, kx) == code
    assert bytes(skb.data) == data


def test_recirc_of_a_bad_inner_nsh_is_an_action_error():
    """pop_nsh to an inner NSH header (np 4) that is cut: the key update
    before recirc fails with key_extract()'s EINVAL, the packet is dropped."""
    dp = FakeDP()
    l3 = MD1_HDR[:3] + b"\x04" + MD1_HDR[4:] + MD1_HDR[:12]
    key = F.extract_l3(l3, K.ETH_P_NSH, 0)
    acts = FA.copy_actions(nla(POP_NSH) + nla(RECIRC, struct.pack("=I", 1)), key)
    err, _ = run(dp, l3, key, acts)
    assert err == errno.EINVAL and dp.recircs == []
    assert dp.drops == {U.OVS_DROP_ACTION_ERROR: 1}


# ----------------------------------------------------- flow family, packets
@pytest.fixture
def ndp(daemon, dpif):
    handler = Dpif(daemon.path)
    dpif.dp_new("nshdp", upcall_pid=handler.portid)
    dpif.vport_new("nshdp", "nin1", "dummy", port_no=1, upcall_pids=[handler.portid])
    dpif.vport_new("nshdp", "nout2", "dummy", port_no=2, upcall_pids=[handler.portid])
    yield dpif, handler, daemon
    handler.close()


MATCH = ("in_port(1),eth(src=f2:ff:00:00:00:01,dst=f2:ff:00:00:00:02),eth_type(0x894f),"
         "nsh(np=3,spi=0x100,si=3)")


def test_flow_round_trip_and_forward(ndp):
    dpif, handler, daemon = ndp
    k, m = odp.parse_key(MATCH)
    f = dpif.flow_new("nshdp", k, odp.parse_actions("pop_eth,pop_nsh(),2"), mask=m)
    text = odp.format_key(f.key, f.mask)
    # The key has no MD1 (its masked mdtype is 0), the mask always has one:
    # format_odp_nsh_attr() then prints the contexts as exact zeros.
    assert text.endswith("eth_type(0x894f),nsh(np=3,spi=0x100,si=3,c1=0x0,c2=0x0,c3=0x0,c4=0x0)")
    (d,) = dpif.flow_dump("nshdp")
    assert odp.format_key(d.key, d.mask) == text
    assert odp.format_actions(d.actions) == "pop_eth,pop_nsh(),2"
    vp = lambda n: daemon.module.init_net.vports_by_name[n]      # noqa: E731
    daemon.call(lambda: vp("nin1").inject(NSH_FRAME))
    assert daemon.call(lambda: vp("nout2").fetch()) == [INNER]
    g = dpif.flow_get("nshdp", key=k)
    assert g.packets == 1
    s = dpif.flow_set("nshdp", key=k, actions=odp.parse_actions("pop_eth,pop_nsh(),2"))
    assert odp.format_key(s.key, s.mask) == text and s.packets == 1
    out, err = io.StringIO(), io.StringIO()
    assert D.run(["dump-flows", "nshdp"], socket=daemon.path, stdout=out, stderr=err) == 0
    line = out.getvalue()
    assert line.startswith(text + ", packets:1, bytes:92, used:")
    assert line.rstrip().endswith("actions:pop_eth,pop_nsh(),2")
    dpif.flow_del("nshdp", key=k)


def test_malformed_nsh_is_dropped_on_receive_and_refused_by_execute(ndp):
    dpif, handler, daemon = ndp
    bad = OUTER_ETH + MD1_HDR[:20]
    vp = lambda n: daemon.module.init_net.vports_by_name[n]      # noqa: E731
    daemon.call(lambda: vp("nin1").inject(bad))
    # ovs_vport_receive(): key_extract() failed, the packet is freed (no MISS)
    assert daemon.call(lambda: [d.drop_reasons["flow_key_extract"]
                                for d in daemon.module.datapaths]) == [1]
    key = odp.parse_key("in_port(1)")[0]
    with pytest.raises(OSError) as e:
        dpif.execute("nshdp", bad, key, odp.parse_actions("2"))
    assert e.value.errno == errno.EINVAL
    dpif.execute("nshdp", NSH_FRAME, key, odp.parse_actions("2"))
    assert daemon.call(lambda: vp("nout2").fetch()) == [NSH_FRAME]


# ----------------------------------------------------------- text format
def test_text_format_as_odp_util():
    """format_nsh_key() prints ttl; parse_odp_nsh_key_mask_attr() has no
    "ttl=" (so OVS's ovs-dpctl cannot read back an NSH key it printed)."""
    k = odp.parse_key("in_port(1),eth_type(0x894f),"
                      "nsh(flags=1,mdtype=1,np=3,spi=0x10,si=255,c1=0x1,c4=0x4)")[0]
    assert odp.format_key(k) == ("in_port(1),eth_type(0x894f),nsh(flags=1,ttl=0,mdtype=1,np=3,"
                                 "spi=0x10,si=255,c1=0x1,c2=0x0,c3=0x0,c4=0x4)")
    with pytest.raises(odp.OdpParseError):
        odp.parse_key("in_port(1),eth_type(0x894f),nsh(ttl=63)")
    k, m = odp.parse_key("eth_type(0x894f),nsh(np=3,spi=0x10/0xf0,si=255)")
    # mdtype 0: the key has no MD1 and the mask has one, so the contexts
    # print as exact zeros (format_odp_nsh_attr()'s all-ones default mask)
    assert odp.format_key(k, m) == ("eth_type(0x894f),nsh(np=3,spi=0x10/0x000000f0,si=255,"
                                    "c1=0x0,c2=0x0,c3=0x0,c4=0x0)")
    # The datapath takes the parsed key (a key's MD1 only for MD type 1)
    km, mm = FN.get_match(k, m)
    assert K.get(km, "nsh_path_hdr") == 0x10FF and K.get(mm, "nsh_path_hdr") == 0xF0FF


def test_push_nsh_whose_length_wraps_to_zero_pushes_nothing():
    """8 + 248 bytes of MD2 is 64 words: the 6-bit length field is 0, so
    nsh_push() pushes no bytes and writes the next protocol at data[3]."""
    from ovsdp.datapath import nsh as NSH
    from ovsdp.datapath.skb import Skb

    class Kx:
        proto = 0x0800
        k = 0

        def invalidate(self):
            pass
    frame = bytes(range(60))
    skb = Skb(frame)
    kx = Kx()
    kx.k = 1 << NSH._S_NO_ETH                      # an L3 packet: next protocol IPv4
    assert NSH.push_nsh(skb, kx, b"") == 0
    assert bytes(skb.data) == frame[:3] + bytes([NSH.TUN_P_IPV4]) + frame[4:]
