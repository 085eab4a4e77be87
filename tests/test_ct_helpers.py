"""Conntrack helpers in the CT action, on hand-built packets: FTP (active,
passive, extended, IPv6) and TFTP expectations and the RELATED data
connections they make, through SNAT and DNAT (the rewritten command, the
sequence adjustment that follows, the data connection NATed like its
master), the parsers, the expectation table's rules, the ctnetlink dump,
and the flow validation's errnos (net/netfilter/nf_conntrack_{ftp,tftp,
expect,seqadj}.c, nf_nat_{ftp,tftp,helper}.c, net/openvswitch/conntrack.c)."""

import errno
import struct

import pytest
from scapy.all import IP, TCP, UDP, Ether, IPv6, Raw

from ovsdp import uapi as U
from ovsdp.cli.dpctl.conntrack import format_entry
from ovsdp.client.conntrack import parse_entry
from ovsdp.datapath import conntrack as CT
from ovsdp.datapath import key_layout as K
from ovsdp.datapath import nf_conntrack_expect as E
from ovsdp.datapath import nf_conntrack_ftp as FTP
from ovsdp.datapath import nf_conntrack_netlink as CTNL
from ovsdp.datapath import nf_conntrack_netlink_exp as CTX
from ovsdp.datapath import nf_nat_ftp
from ovsdp.datapath.flow_netlink_actions import copy_actions
from ovsdp.datapath.nf_conntrack_common import IPS_EXPECTED, IPS_SEQ_ADJUST
from ovsdp.datapath.nf_conntrack_ovs import add_helper
from ovsdp.datapath.nf_conntrack_seqadj import SeqAdj, seq_adjust, seqadj_set
from ovsdp.netlink.attr import iter_attrs, nla
from ovsdp.uapi import nfnetlink as N

from .test_actions import DST, SRC, FakeDP, key_of, run
from .test_ct_nat import A_CT, COMMIT, EST, NEW, REL, RPL, TRK, frame_csums_valid, nat, state
from .test_ct_nat import through as _through

CLI, SRV, PUB = "10.1.1.1", "10.1.1.2", "10.1.1.240"
CLI6, SRV6 = "fc00::1", "fc00::2"


def cta(*attrs, helper=None, eth_type=K.ETH_P_IP, proto=6):
    """A CT action as flow validation makes it (the helper looked up)."""
    if helper is not None:
        attrs += (nla(U.OVS_CT_ATTR_HELPER, helper + b"\0"),)
    info = CT.parse_ct(b"".join(attrs), eth_type)
    if info.helper is not None:
        info.ct_helper, why = add_helper(info.helper, info.family, proto, info.nat is not None)
        assert why is None
    return (A_CT, info)


def through(dp, frame, acts):
    key, out = _through(dp, bytes(frame), acts)
    return key, (Ether(out) if out is not None else None)


def tcp(src, dst, sport, dport, flags, seq, ack=0, data=b"", v6=False):
    ip = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
    pkt = Ether(src=SRC, dst=DST) / ip / TCP(sport=sport, dport=dport, flags=flags, seq=seq,
                                             ack=ack, window=8192)
    return pkt / Raw(data) if data else pkt


class Ftp:
    """An FTP control connection through a datapath: the client's packets
    through ``out_acts`` (which commit with the helper), the server's
    through ``in_acts``; sequence numbers kept as the two ends see them."""

    def __init__(self, dp, out_acts, in_acts, cli=CLI, srv=SRV, v6=False, pub=None):
        self.dp, self.out_acts, self.in_acts = dp, out_acts, in_acts
        self.cli, self.srv, self.v6 = cli, srv, v6
        self.pub = pub or cli              # the client as the server sees it
        self.cseq, self.sseq = 1000, 5000   # next sequence number each end sends
        self.sack = 0                       # what the server acknowledges (its view)

    def c(self, flags, data=b""):
        pkt = tcp(self.cli, self.srv, 40000, 21, flags, self.cseq, self.sseq if "A" in flags
                  else 0, data, self.v6)
        key, out = through(self.dp, pkt, self.out_acts)
        self.cseq += len(data) + (1 if "S" in flags else 0)
        return key, out

    def s(self, flags, data=b""):
        pkt = tcp(self.srv, self.pub, 21, 40000, flags, self.sseq, self.sack, data, self.v6)
        key, out = through(self.dp, pkt, self.in_acts)
        self.sseq += len(data) + (1 if "S" in flags else 0)
        return key, out

    def open(self):
        self.c("S")
        self.sack = self.cseq
        self.s("SA")
        self.c("A")
        self.s("PA", b"220 ovsdp test\r\n")
        _, out = self.c("PA", b"USER anonymous\r\n")
        self.sack += len(b"USER anonymous\r\n")
        return out


@pytest.fixture
def dp():
    return FakeDP()


def conns(dp):
    return sorted(dp.conntrack, key=lambda c: c.created)


def test_active_ftp_expects_the_data_connection(dp):
    f = Ftp(dp, [cta(COMMIT, helper=b"ftp")], [cta()])
    f.open()
    key, out = f.c("PA", b"PORT 10,1,1,1,156,65\r\n")
    assert out[Raw].load == b"PORT 10,1,1,1,156,65\r\n"      # not NATed: left alone
    exps = E.expectations(dp.conntrack)
    assert len(exps) == 1
    exp = exps[0]
    master = conns(dp)[0]
    assert exp.master is master and master.help.helper.name == "ftp"
    assert (exp.src, exp.src_mask, exp.sport_mask) == (int.from_bytes(bytes(map(int, SRV.split(
        "."))), "big"), 0xFFFFFFFF, 0)
    assert exp.dport == 156 * 256 + 65 and exp.expires == dp.now + 300
    # the server's data connection, from port 20: related, new, the master's tuple in the key
    syn = tcp(SRV, CLI, 20, 40001, "S", 9000)
    key, out = through(dp, syn, [cta()])
    assert state(key) == TRK | NEW | REL
    assert K.get(key, "ct_orig_tp_dst") == 21 and K.get(key, "ct_orig_tp_src") == 40000
    # a lookup without commit leaves the expectation; the commit uses it up
    assert len(E.expectations(dp.conntrack)) == 1
    key, _ = through(dp, syn, [cta(COMMIT)])
    assert state(key) == TRK | NEW | REL
    assert E.expectations(dp.conntrack) == []
    data = conns(dp)[1]
    assert data.master is master and data.status & IPS_EXPECTED
    # its reply is established and still related
    key, _ = through(dp, tcp(CLI, SRV, 40001, 20, "SA", 7000, 9001), [cta()])
    assert state(key) == TRK | EST | REL | RPL
    # found twice (the lookup, then the commit), created once
    assert dp.conntrack.stats.expect_new == 2 and dp.conntrack.stats.expect_create == 1


def test_ctnetlink_shows_helper_and_master(dp):
    f = Ftp(dp, [cta(COMMIT, helper=b"ftp")], [cta()])
    f.open()
    f.c("PA", b"PORT 10,1,1,1,156,65\r\n")
    through(dp, tcp(SRV, CLI, 20, 40001, "S", 9000), [cta(COMMIT)])
    master, data = conns(dp)

    def attrs(conn):
        msg = CTNL.fill_info(conn, dp.conntrack, 0, 0)
        return {raw & U.NLA_TYPE_MASK: bytes(p) for raw, p, _ in iter_attrs(msg[16 + 4:])}
    a = attrs(master)
    assert a[N.CTA_HELP] == nla(N.CTA_HELP_NAME, b"ftp\0")
    assert N.CTA_TUPLE_MASTER not in a
    b = attrs(data)
    assert b[N.CTA_TUPLE_MASTER] == CTNL.dump_tuple(master.tuple[0])
    assert N.CTA_HELP not in b
    # as ovs-dpctl prints them
    e = parse_entry(CTNL.fill_info(master, dp.conntrack, 0, 0))
    assert e.helper == "ftp"
    assert format_entry(e).endswith(",protoinfo=(state=ESTABLISHED),helper=ftp")
    e = parse_entry(CTNL.fill_info(data, dp.conntrack, 0, 0))
    m = master.tuple[0]
    assert e.helper is None and (e.master.src, e.master.dst, e.master.sport, e.master.dport) \
        == (m.src, m.dst, m.sport, m.dport)


def test_passive_ftp(dp):
    f = Ftp(dp, [cta(COMMIT, helper=b"ftp")], [cta()])
    f.open()
    _, out = f.s("PA", b"227 Entering Passive Mode (10,1,1,2,200,10).\r\n")
    (exp,) = E.expectations(dp.conntrack)
    assert exp.dport == 200 * 256 + 10 and exp.dst == master_addr(SRV)
    assert exp.src == master_addr(CLI)
    key, _ = through(dp, tcp(CLI, SRV, 40001, 51210, "S", 1), [cta(COMMIT)])
    assert state(key) == TRK | NEW | REL


def master_addr(a):
    return int.from_bytes(bytes(map(int, a.split("."))), "big")


def test_only_after_a_newline_and_partial_commands_drop(dp):
    f = Ftp(dp, [cta(COMMIT, helper=b"ftp")], [cta()])
    f.c("S")
    f.sack = f.cseq
    f.s("SA")
    f.c("A")
    # the first segment is never read (no newline seen before it)
    f.c("PA", b"PORT 10,1,1,1,1,2\r\n")
    assert E.expectations(dp.conntrack) == []
    # one that does not end in a newline: the next is not read either
    f.c("PA", b"NOOP")
    f.c("PA", b"PORT 10,1,1,1,1,3\r\n")
    assert E.expectations(dp.conntrack) == []
    f.c("PA", b"PORT 10,1,1,1,1,4\r\n")
    assert [e.dport for e in E.expectations(dp.conntrack)] == [260]
    # a command cut short: the packet is dropped
    pkt = tcp(CLI, SRV, 40000, 21, "PA", f.cseq, f.sseq, b"POR")
    err, _ = run(dp, bytes(pkt), [cta(COMMIT, helper=b"ftp")])
    assert err == errno.EINVAL
    pkt = tcp(CLI, SRV, 40000, 21, "PA", f.cseq, f.sseq, b"PORT 10,1,1,1\r\n")
    err, _ = run(dp, bytes(pkt), [cta(COMMIT, helper=b"ftp")])
    assert err == errno.EINVAL


def test_another_hosts_address_is_not_expected(dp):
    f = Ftp(dp, [cta(COMMIT, helper=b"ftp")], [cta()])
    f.open()
    f.c("PA", b"PORT 10,9,9,9,1,2\r\n")
    assert E.expectations(dp.conntrack) == []


def test_one_expectation_per_master(dp):
    f = Ftp(dp, [cta(COMMIT, helper=b"ftp")], [cta()])
    f.open()
    f.c("PA", b"PORT 10,1,1,1,1,2\r\n")
    f.c("PA", b"PORT 10,1,1,1,1,3\r\n")
    assert [e.dport for e in E.expectations(dp.conntrack)] == [259]      # the older evicted


def test_expectations_expire_and_go_with_their_master(dp):
    f = Ftp(dp, [cta(COMMIT, helper=b"ftp")], [cta()])
    f.open()
    f.c("PA", b"PORT 10,1,1,1,1,2\r\n")
    dp.now += 301
    key, _ = through(dp, tcp(SRV, CLI, 20, 258, "S", 9000), [cta()])
    assert state(key) == TRK | NEW
    assert dp.conntrack.expect_count == 0
    dp.now -= 301
    f2 = Ftp(dp, [cta(COMMIT, helper=b"ftp")], [cta()])
    f2.cseq = 100000
    f2.open()
    f2.c("PA", b"PORT 10,1,1,1,1,2\r\n")
    assert dp.conntrack.expect_count == 1
    dp.conntrack.flush()
    assert dp.conntrack.expect_count == 0 and dp.conntrack.expect_hash == {}


def test_snat_rewrites_port_and_adjusts_sequence_numbers(dp):
    out_acts = [cta(COMMIT, nat("src", PUB, PUB), helper=b"ftp")]
    in_acts = [cta(nat())]
    f = Ftp(dp, out_acts, in_acts, pub=PUB)
    f.open()
    cmd = b"PORT 10,1,1,1,156,65\r\n"
    _, out = f.c("PA", cmd)
    assert out[IP].src == PUB
    assert out[Raw].load == b"PORT 10,1,1,240,156,65\r\n"
    assert out[IP].len == 20 + 20 + len(cmd) + 2
    assert frame_csums_valid(bytes(out))
    master = conns(dp)[0]
    assert master.status & IPS_SEQ_ADJUST
    way = master.seqadj.seq[0]
    assert (way.offset_before, way.offset_after) == (0, 2)
    # the server acknowledges the longer segment; the client sees its own numbers
    f.sack += len(cmd) + 2
    _, out = f.s("A")
    assert out[TCP].ack == f.cseq and out[IP].dst == CLI and frame_csums_valid(bytes(out))
    # the client's next segment is moved up by 2
    sent_seq = f.cseq
    _, out = f.c("PA", b"LIST\r\n")
    assert out[TCP].seq == sent_seq + 2 and frame_csums_valid(bytes(out))
    (exp,) = E.expectations(dp.conntrack)
    assert exp.dst == master_addr(PUB) and exp.saved_proto == 156 * 256 + 65
    # the data connection comes to the public address, and goes to the client
    key, out = through(dp, tcp(SRV, PUB, 20, exp.dport, "S", 9000), [cta(COMMIT, nat())])
    assert state(key) & (TRK | NEW | REL) == TRK | NEW | REL
    assert out[IP].dst == CLI and out[TCP].dport == 156 * 256 + 65
    assert frame_csums_valid(bytes(out))
    data = conns(dp)[1]
    assert data.tuple[1].src == master_addr(CLI) and data.tuple[1].dst == master_addr(SRV)


def test_dnat_passive_reply_rewritten(dp):
    vip = "10.1.1.100"
    out_acts = [cta(COMMIT, nat("dst", SRV, SRV), helper=b"ftp")]
    f = Ftp(dp, out_acts, [cta(nat())], srv=vip)
    f.srv = vip

    # the server answers from its real address; the client sees the VIP
    def s(flags, data=b""):
        pkt = tcp(SRV, CLI, 21, 40000, flags, f.sseq, f.sack, data)
        key, out = through(dp, pkt, [cta(nat())])
        f.sseq += len(data) + (1 if "S" in flags else 0)
        return key, out
    f.s = s
    f.open()
    _, out = f.s("PA", b"227 Entering Passive Mode (10,1,1,2,200,10).\r\n")
    assert out[IP].src == vip
    assert out[Raw].load == b"227 Entering Passive Mode (10,1,1,100,200,10).\r\n"
    assert frame_csums_valid(bytes(out))
    (exp,) = E.expectations(dp.conntrack)
    assert exp.dst == master_addr(vip)
    key, out = through(dp, tcp(CLI, vip, 40001, exp.dport, "S", 1), [cta(COMMIT, nat())])
    assert out[IP].dst == SRV and out[TCP].dport == 200 * 256 + 10


def test_eprt_and_epsv_over_ipv6(dp):
    acts = [cta(COMMIT, helper=b"ftp", eth_type=K.ETH_P_IPV6)]
    f = Ftp(dp, acts, [cta(eth_type=K.ETH_P_IPV6)], cli=CLI6, srv=SRV6, v6=True)
    f.open()
    f.c("PA", b"EPRT |2|fc00::1|40100|\r\n")
    (exp,) = E.expectations(dp.conntrack)
    assert exp.dport == 40100 and exp.l3num == 10 and exp.dst == int.from_bytes(
        bytes.fromhex("fc00" + "0" * 27 + "1"), "big")
    f.s("PA", b"229 Entering Extended Passive Mode (|||40200|)\r\n")
    # one at a time (max_expected 1): the EPSV one replaced the EPRT one
    assert [e.dport for e in E.expectations(dp.conntrack)] == [40200]


def test_eprt_snat_ipv6_is_written_uncompressed():
    assert nf_nat_ftp.fmt_cmd(type("C", (), {"tuple": [type("T", (), {"l3num": 10})()]})(),
                              FTP.NF_CT_FTP_EPRT, 0xFC00 << 112 | 0x240, 1025) \
        == b"|2|fc00:0000:0000:0000:0000:0000:0000:0240|1025|"
    assert nf_nat_ftp.fmt_cmd(None, FTP.NF_CT_FTP_EPSV, 0, 1025) == b"|||1025|"


def test_tftp_expects_the_servers_answer(dp):
    req = (Ether(src=SRC, dst=DST) / IP(src=CLI, dst=SRV) / UDP(sport=40000, dport=69)
           / Raw(b"\x00\x01flows1.txt\x00octet\x00"))
    key, _ = through(dp, req, [cta(COMMIT, helper=b"tftp", proto=17)])
    (exp,) = E.expectations(dp.conntrack)
    assert exp.protonum == 17 and exp.dport == 40000 and exp.sport_mask == 0
    ans = (Ether(src=SRC, dst=DST) / IP(src=SRV, dst=CLI) / UDP(sport=3333, dport=40000)
           / Raw(b"\x00\x03\x00\x01data"))
    key, _ = through(dp, ans, [cta()])
    assert state(key) == TRK | NEW | REL
    # a data or ack datagram expects nothing
    dp2 = FakeDP()
    through(dp2, (Ether(src=SRC, dst=DST) / IP(src=CLI, dst=SRV) / UDP(sport=1, dport=69)
                  / Raw(b"\x00\x04\x00\x01")), [cta(COMMIT, helper=b"tftp", proto=17)])
    assert dp2.conntrack.expect_count == 0


def test_tftp_snat(dp):
    req = (Ether(src=SRC, dst=DST) / IP(src=CLI, dst=SRV) / UDP(sport=40000, dport=69)
           / Raw(b"\x00\x01f\x00octet\x00"))
    _, out = through(dp, req, [cta(COMMIT, nat("src", PUB, PUB), helper=b"tftp", proto=17)])
    (exp,) = E.expectations(dp.conntrack)
    assert exp.dst == master_addr(PUB) and exp.dport == out[UDP].sport
    assert exp.saved_proto == 40000
    ans = (Ether(src=SRC, dst=DST) / IP(src=SRV, dst=PUB) / UDP(sport=3333, dport=exp.dport)
           / Raw(b"\x00\x03\x00\x01data"))
    _, out = through(dp, ans, [cta(COMMIT, nat())])
    assert out[IP].dst == CLI and out[UDP].dport == 40000 and frame_csums_valid(bytes(out))


def _validate(acts_attr, key_frame):
    key = key_of(bytes(key_frame))
    return copy_actions(acts_attr, key)


def test_flow_validation_errnos():
    tcp_frame = tcp(CLI, SRV, 1, 21, "S", 1)
    udp_frame = Ether() / IP(src=CLI, dst=SRV) / UDP(sport=1, dport=69)

    def ct_attr(*attrs):
        return nla(U.OVS_ACTION_ATTR_CT, b"".join(attrs))
    ok = _validate(ct_attr(COMMIT, nla(U.OVS_CT_ATTR_HELPER, b"ftp\0")), tcp_frame)
    assert ok
    for frame, name in ((tcp_frame, b"sip\0"), (udp_frame, b"ftp\0"), (tcp_frame, b"tftp\0")):
        with pytest.raises(Exception) as ei:
            _validate(ct_attr(COMMIT, nla(U.OVS_CT_ATTR_HELPER, name)), frame)
        assert getattr(ei.value, "errno", None) == errno.EINVAL
    # an unterminated name
    with pytest.raises(Exception) as ei:
        _validate(ct_attr(COMMIT, nla(U.OVS_CT_ATTR_HELPER, b"ftp")), tcp_frame)
    assert getattr(ei.value, "errno", None) == errno.EINVAL
    assert add_helper(b"ftp", 2, 6, True)[0].name == "ftp"


@pytest.mark.parametrize("text,want", [
    (b"10,1,1,1,4,1\r", (12, 0x0A010101, 1025)),
    (b"10,1,1,1,4,1", (0, None, None)),           # no terminator
    (b"10,1,1,1,4\r", (0, None, None)),           # five numbers
    (b"10,1,1,1,4,1,7\r", (0, None, None)),       # seven
    (b"266,1,1,1,300,1\r", (15, (266 << 24 | 1 << 16 | 1 << 8 | 1) & 0xFFFFFFFF,
                             (300 << 8 | 1) & 0xFFFF)),   # the kernel does not range-check
])
def test_rfc959(text, want):
    cmd = FTP.Cmd(2, 0)
    n, _ = FTP.try_rfc959(text, cmd, ord("\r"), 0)
    assert n == want[0]
    if n:
        assert (cmd.addr, cmd.port) == want[1:]


def test_extended_forms():
    cmd = FTP.Cmd(2, 0)
    assert FTP.try_eprt(b"|1|132.235.1.2|6275|\r", cmd, ord("\r"), 0)[0] == 20
    assert (cmd.addr, cmd.port) == (0x84EB0102, 6275)
    assert FTP.try_eprt(b"|2|::1|6275|", FTP.Cmd(2, 0), 0, 0)[0] == 0   # family mismatch
    assert FTP.try_eprt(b"1|1|", FTP.Cmd(2, 0), 0, 0)[0] == 0           # digit delimiter
    cmd6 = FTP.Cmd(10, 0)
    assert FTP.try_eprt(b"!2!fc00::2!21!", cmd6, 0, 0)[0] == 14 and cmd6.addr == (
        0xFC00 << 112 | 2) and cmd6.port == 21
    assert FTP.try_eprt(b"|2|fc00::zz|21|", FTP.Cmd(10, 0), 0, 0)[0] == 0
    cmd = FTP.Cmd(2, 0)
    assert FTP.try_epsv_response(b"|||6446|)", cmd, 0, 0)[0] == 8 and cmd.port == 6446
    assert FTP.try_epsv_response(b"|||0|)", FTP.Cmd(2, 0), 0, 0)[0] == 0
    assert FTP.try_epsv_response(b"||6446|)", FTP.Cmd(2, 0), 0, 0)[0] == 0


def test_find_pattern():
    cmd = FTP.Cmd(2, 0)
    p = FTP.SEARCH[0][0]
    assert FTP.find_pattern(b"port 10,1,1,1,0,21\r\n", p[0], p[1], p[2], cmd, p[4]) == (
        1, 5, 13)                                   # case-insensitive
    assert FTP.find_pattern(b"PO", p[0], p[1], p[2], cmd, p[4])[0] == -1
    assert FTP.find_pattern(b"USER x\r\n", p[0], p[1], p[2], cmd, p[4])[0] == 0
    assert FTP.find_pattern(b"PORTX", p[0], p[1], p[2], cmd, p[4])[0] == -1   # no space yet
    r = FTP.SEARCH[1][0]
    assert FTP.find_pattern(b"227 Entering (10,1,1,2,0,21)\r\n", r[0], r[1], r[2], cmd,
                            r[4]) == (1, 14, 13)


def test_seq_adjust_exact_bytes():
    class C:
        status = IPS_SEQ_ADJUST
        seqadj = SeqAdj()
    conn = C()
    seqadj_set(conn, 0, 1000, 2)                    # original direction grew by 2 at 1000
    assert conn.seqadj.seq[0].correction_pos == 1000
    # a reply acknowledging 1102 (the longer stream) with a SACK block
    th = bytearray(struct.pack("!HHIIBBHHH", 21, 40000, 5000, 1102, 0x80, 0x10, 8192, 0, 0)
                   + bytes((1, 1, 5, 10)) + struct.pack("!II", 1050, 1102) + bytes(4))
    th[12] = (len(th) // 4) << 4
    d = bytearray(40) + th
    assert seq_adjust(d, 40, conn, 3) == 1
    seq, ack = struct.unpack_from("!II", d, 44)
    assert (seq, ack) == (5000, 1100)
    assert struct.unpack_from("!II", d, 64) == (1048, 1100)


def test_expectation_events_and_helper_in_conntrack_events():
    from .test_ct_events import setup
    m, p, tr, dp, clock = setup(groups=(1, 4, 6))     # CONNTRACK_NEW, EXP_NEW, EXP_DESTROY
    dp.now = clock.t
    f = Ftp(dp, [cta(COMMIT, helper=b"ftp")], [cta()])
    f.open()
    msgs = p.messages()
    new = [x for x in msgs if struct.unpack_from("=H", x, 4)[0] == 1 << 8 | 0]
    assert new and nla(N.CTA_HELP | U.NLA_F_NESTED, nla(N.CTA_HELP_NAME, b"ftp\0")) in new[0]
    f.c("PA", b"PORT 10,1,1,1,1,2\r\n")
    (ev,) = p.messages()
    assert struct.unpack_from("=HH", ev, 4) == (2 << 8 | 0, 0x600)   # EXP_NEW, CREATE|EXCL
    (exp,) = E.expectations(tr)
    assert ev[20:] == CTX.dump_expect(tr, exp)
    tr.flush()
    kinds = [struct.unpack_from("=H", x, 4)[0] for x in p.messages()]
    assert 2 << 8 | 2 in kinds                                        # EXP_DELETE


def test_port_on_ipv6_reads_the_first_four_bytes():
    """try_rfc959() writes cmd->u3.ip only: on an IPv6 connection the other
    12 bytes stay the source's, so PORT matches when a1..a4 are its first 32
    bits; and NAT writes the first 4 bytes of the new address."""
    src = 0x0A010101 << 96 | 0x1234
    cmd = FTP.Cmd(10, src)
    assert FTP.try_rfc959(b"10,1,1,1,4,1\r", cmd, ord("\r"), 0)[0] == 12 and cmd.addr == src
    cmd = FTP.Cmd(10, 0xFC00 << 112)
    FTP.try_rfc959(b"10,1,1,1,4,1\r", cmd, ord("\r"), 0)
    assert cmd.addr == 0x0A010101 << 96
    conn6 = type("C", (), {"tuple": [type("T", (), {"l3num": 10})()]})()
    assert nf_nat_ftp.fmt_cmd(conn6, FTP.NF_CT_FTP_PORT, 0xFC000001 << 96, 1025) \
        == b"252,0,0,1,4,1"


def test_expired_expectations_are_reaped_by_gc(dp):
    f = Ftp(dp, [cta(COMMIT, helper=b"ftp")], [cta()])
    f.open()
    f.c("PA", b"PORT 10,1,1,1,1,2\r\n")
    f.sack += len(b"PORT 10,1,1,1,1,2\r\n")
    f.s("A")                                        # all acknowledged: 5 days established
    assert dp.conntrack.expect_count == 1
    dp.now += 301
    dp.conntrack.gc()
    assert dp.conntrack.expect_count == 0 and dp.conntrack.expect_hash == {}
    assert len(conns(dp)) == 1                      # the control connection stays


def test_failed_confirm_takes_the_tftp_expectation(dp):
    req = (Ether(src=SRC, dst=DST) / IP(src=CLI, dst=SRV) / UDP(sport=40000, dport=69)
           / Raw(b"\x00\x01f\x00octet\x00"))
    dp.conntrack.max_conns = 0                      # the table is full: the confirm fails
    err, _ = run(dp, bytes(req), [cta(COMMIT, helper=b"tftp", proto=17)])
    assert err == errno.EINVAL
    assert dp.conntrack.expect_count == 0
