"""Flow keys and actions through ovsdp.odp: the Open vSwitch text corpus and a random
action generator that picks actions that fit a class of packet."""

from ovsdp import odp

from .consts import CORPUS
from .rand import rbytes, rint, rip4, rip6, rmac


def load_corpus(path=CORPUS):
    """(keys [(key, mask)], wildcarded keys [(key, mask)], action lists [bytes])."""
    keys, wc, acts = [], [], []
    sec = None
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            sec = line
            continue
        try:
            if sec == "[parse-actions]":
                acts.append(odp.parse_actions(line))
            elif sec == "[parse-wc-keys]":
                wc.append(odp.parse_key(line))
            elif sec == "[parse-keys]":
                keys.append(odp.parse_key(line))
        except Exception:  # noqa: BLE001 - a line the library cannot parse is just skipped
            pass
    if not keys:
        keys.append(odp.parse_key("in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),"
                                  "eth_type(0x0800),ipv4(src=1.1.1.1,dst=2.2.2.2,proto=17,"
                                  "tos=0,ttl=64,frag=no),udp(src=1,dst=2)"))
    if not wc:
        wc.append(odp.parse_key("in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)"))
    if not acts:
        acts.append(odp.parse_actions("1,2"))
    return keys, wc, acts


def _sub(r, cls, pid, depth):
    if depth >= 3 or r.random() < 0.3:
        return r.choice(["drop", str(r.randrange(1, 5))])
    return action_text(r, cls, pid, depth + 1)


def one_action(r, cls, pid, depth=0):
    """One action in Open vSwitch's text form, chosen for a packet of class ``cls``."""
    nports = cls.get("nports", 4)
    ports = lambda: r.randrange(0 if nports > 4 else 1, nports + 1)  # noqa: E731
    generic = [
        lambda: str(ports()),
        lambda: str(ports()),
        lambda: f"userspace(pid={pid},userdata({rbytes(r, r.randrange(0, 24)).hex()}))",
        lambda: f"userspace(pid={pid},slow_path(match))",
        lambda: f"userspace(pid={pid},userdata({rbytes(r, 4).hex()}),actions)",
        lambda: f"userspace(pid={pid},userdata({rbytes(r, 4).hex()}),"
                f"tunnel_out_port={ports()})",
        lambda: f"sample(sample={r.choice(['0.0', '50.0', '100.0', '33.3'])}%,"
                f"actions({_sub(r, cls, pid, depth)}))",
        lambda: f"clone({_sub(r, cls, pid, depth)})",
        lambda: f"check_pkt_len(size={r.choice([1, 14, 60, 64, 100, 1500, 65535])},"
                f"gt({_sub(r, cls, pid, depth)}),le({_sub(r, cls, pid, depth)}))",
        lambda: f"trunc({r.choice([14, 15, 20, 34, 60, 100, 13, 0])})",
        lambda: f"push_vlan(vid={r.choice([5, 10, 0, 4095])},pcp={r.randrange(8)})",
        lambda: f"push_vlan(tpid=0x88a8,vid={r.choice([5, 10])},pcp={r.randrange(8)})",
        lambda: "pop_vlan",
        lambda: f"set(eth(src={rmac(r)},dst={rmac(r)}))",
        lambda: f"set(eth(dst={rmac(r)}/ff:ff:ff:00:00:00))",
        lambda: f"set(skb_mark({rint(r, 4)}))",
        lambda: f"set(skb_priority({rint(r, 4)}))",
        lambda: f"set(ct_mark({rint(r, 4)}))",
        lambda: f"set(ct_label({r.randrange(1 << 32)}))",
        lambda: f"hash({r.choice(['l4', 'sym_l4'])}({r.randrange(1 << 32)}))",
        lambda: f"recirc({r.choice([1, 2, 3, 9])})",
        lambda: f"push_eth(src={rmac(r)},dst={rmac(r)})",
        lambda: "pop_eth",
        lambda: "ct_clear",
        lambda: f"push_mpls(label={r.randrange(1 << 20)},tc={r.randrange(8)},"
                f"ttl={r.randrange(256)},bos={r.randrange(2)},"
                f"eth_type={r.choice(['0x8847', '0x8848'])})",
        lambda: f"add_mpls(label={r.randrange(1 << 20)},tc={r.randrange(8)},ttl={r.randrange(256)},"
                f"bos={r.randrange(2)},eth_type=0x8847)",
        lambda: f"set(tunnel(tun_id={r.randrange(1 << 64):#x},dst={rip4(r)},ttl={r.randrange(256)},"
                f"flags(df)))",
        lambda: f"set(tunnel(tun_id={r.randrange(1 << 24):#x},ipv6_dst={rip6(r)},ttl=64))",
        lambda: f"set(tunnel(tun_id=0x5,dst={rip4(r)},ttl=64,"
                f"geneve({{class=0xffff,type=0x80,len=4,0x{r.randrange(1 << 32):08x}}})))",
        lambda: f"dec_ttl(le_1({_sub(r, cls, pid, depth)}))",
    ]
    if nports > 4:                      # the frame datapath's tunnel ports 5-7
        generic += [
            lambda: f"set(tunnel(tun_id={r.randrange(1 << 24):#x},dst={rip4(r)},"
                    f"ttl={r.randrange(256)}{r.choice(['', ',flags(df)', ',flags(csum|key)'])}))"
                    f",{r.choice([5, 6, 7])}",
            lambda: f"set(tunnel(tun_id={r.randrange(1 << 24):#x},ipv6_dst={rip6(r)},ttl=64)),"
                    f"{r.choice([5, 6, 7])}",
            lambda: f"set(tunnel(tun_id=0x7,dst={rip4(r)},ttl=64,tp_dst={r.randrange(65536)},"
                    f"geneve({{class=0x0102,type=0x80,len=4,0x{r.randrange(1 << 32):08x}}}))),6",
            lambda: f"set(tunnel(tun_id=0x7,dst={rip4(r)},ttl=64,vxlan(gbp(id={r.randrange(65536)},"
                    f"flags=0)))),5",
            lambda: f"userspace(pid={pid},userdata(01),tunnel_out_port={r.choice([5, 6, 7])})",
        ]
    rare = ["meter(1)", "ct(commit)", "psample(group=1)", "set(in_port(2))",
            "set(recirc_id(2))", "set(dp_hash(3))", "set(icmp(type=3,code=1))",
            "set(arp(op=2))", "set(nd(target=::1))", "set(vlan(vid=7))"]
    special = []
    et = cls.get("eth_type")
    proto = cls.get("proto")
    if et == 0x0800 or cls.get("ip") == 4:
        special += [
            lambda: f"set(ipv4(src={rip4(r)},dst={rip4(r)},tos={r.randrange(256)},"
                    f"ttl={r.randrange(256)}))",
            lambda: f"set(ipv4(src={rip4(r)}/255.255.0.0))",
            lambda: f"set(ipv4(tos={r.randrange(256)}/0xfc))",
            lambda: f"set(ipv4(src={rip4(r)},dst={rip4(r)},proto={proto or 0},tos=0,ttl=9,"
                    f"frag={cls.get('frag', 'no')}))",
        ]
    if et == 0x86DD or cls.get("ip") == 6:
        special += [
            lambda: f"set(ipv6(src={rip6(r)},dst={rip6(r)},label={r.randrange(1 << 20)},"
                    f"tclass={r.randrange(256)},hlimit={r.randrange(256)}))",
            lambda: f"set(ipv6(label={r.randrange(1 << 21)}))",
            lambda: f"set(ipv6(dst={rip6(r)}))",
        ]
    if proto in (6, 17, 132):
        l4 = {6: "tcp", 17: "udp", 132: "sctp"}[proto]
        special += [
            lambda: f"set({l4}(src={r.randrange(65536)},dst={r.randrange(65536)}))",
            lambda: f"set({l4}(src={r.randrange(65536)}/0xff00))",
            lambda: f"set({l4}(dst={r.randrange(65536)}))",
        ]
    if et in (0x8847, 0x8848) or cls.get("mpls"):
        special += [
            lambda: f"pop_mpls(eth_type={r.choice(['0x800', '0x86dd', '0x8847', '0x1234'])})",
            lambda: f"set(mpls(label={r.randrange(1 << 20)},tc={r.randrange(8)},"
                    f"ttl={r.randrange(256)},bos={r.randrange(2)}))",
        ]
    if cls.get("vlans"):
        special += [lambda: "pop_vlan"] * 2
    x = r.random()
    if special and x < 0.45:
        return r.choice(special)()
    if x < 0.97:
        return r.choice(generic)()
    return r.choice(rare)


def action_text(r, cls, pid, depth=0):
    n = r.choice([1, 1, 2, 2, 3, 3, 4, 6])
    acts = [one_action(r, cls, pid, depth) for _ in range(n)]
    if r.random() < 0.08:
        acts.append("drop")
    return ",".join(acts)


def actions_bytes(r, cls, pid):
    """(text, bytes) of a random action list; falls back to an output on a parse error."""
    text = action_text(r, cls, pid)
    try:
        return text, odp.parse_actions(text)
    except Exception:  # noqa: BLE001 - the text generator made something the parser refuses
        return "4", odp.parse_actions("4")
