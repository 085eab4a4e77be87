"""The frame fuzzer: frames through datapath ``fzframe``, its flows, upcalls and EXECUTE.

Port 1 has per-protocol megaflows (:data:`MEGAFLOWS`) with random actions,
port 2 gets exact flows made from the daemon's own MISS upcall keys, port 3
has no flows; OVS_PACKET_CMD_EXECUTE runs random action lists.
"""

import errno
import re
import struct

from ovsdp import odp
from ovsdp import uapi as U
from ovsdp.client.dpif import Dpif
from ovsdp.datapath import flow_key as FK
from ovsdp.netlink.attr import nla, nla_flag, nla_nest, nla_string, nla_u16, nla_u32, nla_u64
from ovsdp.netlink.message import build_genl

from .checksums import checksum_errors
from .consts import (
    DUMMY_FAMILY,
    DUMMY_FETCH,
    DUMMY_INJECT,
    DUMMY_PACKET,
    FZFRAME,
    FZFRAME_IFINDEX,
    FZFRAME_MORE,
    FZFRAME_PORTS,
)
from .findings import Finding, Input
from .frames import FrameGen
from .fuzzer import Fuzzer
from .keys import Upcall, cls_from_key, fmt_key, kernel_quirk, key_shape
from .odp_gen import actions_bytes
from .wire import attr_map, dummy_body, join_msgs

MEGAFLOWS = [
    "recirc_id(0),in_port(1),eth(),eth_type(0x0800),ipv4(proto=6,frag=no),tcp(src=0/0),"
    "tcp_flags(0/0)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x0800),ipv4(proto=17,frag=no),udp(src=0/0)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x0800),ipv4(proto=132,frag=no),sctp(src=0/0)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x0800),ipv4(proto=1,frag=no),icmp(type=0/0)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x0800),ipv4(frag=first)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x0800),ipv4(frag=later)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x86dd),ipv6(proto=6,frag=no),tcp(src=0/0),"
    "tcp_flags(0/0)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x86dd),ipv6(proto=17,frag=no),udp(src=0/0)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x86dd),ipv6(proto=58,frag=no),icmpv6(type=0/0)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x86dd),ipv6(frag=no)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x86dd),ipv6(frag=first)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x86dd),ipv6(frag=later)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x0806),arp()",
    "recirc_id(0),in_port(1),eth(),eth_type(0x8847),mpls(label=0/0)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x8848),mpls(label=0/0)",
    "recirc_id(0),in_port(1),eth(),eth_type(0x8100),vlan(vid=5),encap(eth_type(0x0800),"
    "ipv4(frag=no))",
    "recirc_id(0),in_port(1),eth(),eth_type(0x8100),vlan(vid=10),encap(eth_type(0x86dd),"
    "ipv6(frag=no))",
    "recirc_id(0),in_port(1),eth(),eth_type(0x8100),vlan(vid=5),encap()",
    "recirc_id(0),in_port(1),eth(),eth_type(0x88a8),vlan(vid=5),encap(eth_type(0x8100),"
    "vlan(vid=10),encap(eth_type(0x0800),ipv4(frag=no)))",
    "recirc_id(0),in_port(1),eth()",
    "recirc_id(1),in_port(1),eth()",
    "recirc_id(2),in_port(1),eth()",
    "recirc_id(3),in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)",
]



def _key_extract_fails(frame):
    try:
        FK.extract(frame, 0)
    except FK.ExtractError:
        return True
    return False

class FrameFuzzer(Fuzzer):
    """Frames in and out of the dummy ports of ``fzframe``."""

    name = "frame"

    def __init__(self, h, seed):
        super().__init__(h, seed)
        self.gen = FrameGen(self.r)
        self.ifindex = None
        self.megaflows = []
        self.exact = 0

    def fid(self, name):
        return self.h.families[name].id

    # ------------------------------------------------------------ setup
    def setup(self):
        self.reconnect()
        pid = self.conn.portid or 0
        with self.h.dpif() as c:
            try:
                dp = c.dp_get(FZFRAME)
                if dp.user_features != 3:
                    c.dp_set(FZFRAME, user_features=3)
            except OSError:
                try:
                    dp = c.dp_new(FZFRAME, upcall_pid=pid, ifindex=FZFRAME_IFINDEX)
                except OSError:
                    dp = c.dp_new(FZFRAME, upcall_pid=pid)
            self.ifindex = dp.ifindex
            have = {v.name: v for v in c.vport_dump(dp.ifindex)}
            for i, name in enumerate(FZFRAME_PORTS, 1):
                if name in have and have[name].port_no == i:
                    if list(have[name].upcall_pids) != [pid]:
                        c.vport_set(name=name, upcall_pids=[pid])
                    continue
                if name in have:
                    c.vport_del(name=name)
                try:
                    c.vport_new(dp.ifindex, name, "dummy", port_no=i, upcall_pids=[pid])
                except OSError:
                    c.vport_del(dp.ifindex, port_no=i)
                    c.vport_new(dp.ifindex, name, "dummy", port_no=i, upcall_pids=[pid])
            for i, (name, vtype, dport) in enumerate(FZFRAME_MORE, len(FZFRAME_PORTS) + 1):
                if name in have and have[name].port_no == i:
                    continue
                try:
                    if name in have:
                        c.vport_del(name=name)
                    c.vport_new(dp.ifindex, name, vtype, port_no=i, upcall_pids=[pid],
                                options=None if dport is None else
                                Dpif.tunnel_options(dst_port=dport))
                except OSError as e:
                    if self.h.verbose:
                        self.h.say(f"fzframe: cannot add {vtype} port {name}: {e}")
        self.megaflows = []
        for text in MEGAFLOWS:
            key, mask = odp.parse_key(text)
            self.megaflows.append((text, key, mask, cls_from_key(key)))
        self.install_flows()

    def retune(self):
        """New user features (upcall dispatch, padding) and mask cache size for fzframe."""
        r = self.r
        pid = self.conn.portid or 0
        feats = r.choice([3, 3, 3, 1, 2, 0, 3 | 8, 1 | 8, 3 | 4])
        attrs = [nla_string(U.OVS_DP_ATTR_NAME, FZFRAME),
                 nla_u32(U.OVS_DP_ATTR_USER_FEATURES, feats)]
        if feats & 8:
            attrs.append(nla(U.OVS_DP_ATTR_PER_CPU_PIDS,
                             struct.pack("=I", pid) * r.choice([1, 2, 7])))
        if r.random() < 0.5:
            attrs.append(nla_u32(U.OVS_DP_ATTR_MASKS_CACHE_SIZE, r.choice([0, 1, 2, 256, 4096])))
        data = build_genl(self.fid(U.OVS_DATAPATH_FAMILY), U.OVS_DP_CMD_SET, 2,
                          U.NLM_F_REQUEST | U.NLM_F_ACK, self.next_seq(), 0,
                          U.OVS_HEADER.pack(0) + b"".join(attrs))
        self.send(data, f"fzframe features {feats}")

    def install_flows(self):
        """Flush the table; megaflows on port 1 with fresh random actions."""
        self.exact = 0
        if self.megaflows and self.r.random() < 0.3:
            self.retune()
        parts = [self.flow_msg(U.OVS_FLOW_CMD_DEL, [])]
        for _text, key, mask, cls in self.megaflows:
            _, acts = actions_bytes(self.r, dict(cls, nports=8), self.conn.portid or 1)
            parts.append(self.flow_msg(U.OVS_FLOW_CMD_NEW, [
                nla_nest(U.OVS_FLOW_ATTR_KEY, key), nla_nest(U.OVS_FLOW_ATTR_ACTIONS, acts),
                nla_nest(U.OVS_FLOW_ATTR_MASK, mask)]))
        for k in range(0, len(parts), 8):
            data = join_msgs(parts[k:k + 8])
            inp = Input(self.name, self.iteration, "install megaflows", data)
            res = self.h.run_input(self.conn, inp)
            self.reconnect()
            self.check_upcalls(res, inp)

    def flow_msg(self, cmd, attrs, flags=U.NLM_F_REQUEST | U.NLM_F_ACK):
        return build_genl(self.fid(U.OVS_FLOW_FAMILY), cmd, 1, flags, self.next_seq(), 0,
                          U.OVS_HEADER.pack(self.ifindex) + b"".join(attrs))

    def execute_msg(self, seq, attrs):
        return build_genl(self.fid(U.OVS_PACKET_FAMILY), U.OVS_PACKET_CMD_EXECUTE, 1,
                          U.NLM_F_REQUEST | U.NLM_F_ACK, seq, 0,
                          U.OVS_HEADER.pack(self.ifindex) + b"".join(attrs))

    def inject_msg(self, port, frame):
        seq = self.next_seq()
        return seq, build_genl(self.fid(DUMMY_FAMILY), DUMMY_INJECT, 1,
                               U.NLM_F_REQUEST | U.NLM_F_ACK, seq, 0, dummy_body(port, frame))

    def fetch_msg(self, port):
        seq = self.next_seq()
        return seq, build_genl(self.fid(DUMMY_FAMILY), DUMMY_FETCH, 1,
                               U.NLM_F_REQUEST | U.NLM_F_DUMP, seq, 0, dummy_body(port))

    def upcalls(self, res):
        pf = self.fid(U.OVS_PACKET_FAMILY)
        return [Upcall(h, raw) for h, raw in res.msgs
                if h.type == pf and len(raw) >= 24 and raw[16] in (1, 2)]

    def misses(self, res, port=None, frame=None):
        """The MISS upcalls from fzframe in ``res``; with ``port``, only those of ``frame``
        as it came in on that port (before any recirculation)."""
        out = [u for u in self.upcalls(res) if u.cmd == U.OVS_PACKET_CMD_MISS
               and u.dp_ifindex == self.ifindex]
        if port is None:
            return out
        return [u for u in out if u.in_port == port and u.recirc_id == 0 and u.packet == frame]

    def check_upcalls(self, res, inp):
        for u in self.upcalls(res):
            if u.packet is None or U.OVS_PACKET_ATTR_KEY not in u.attrs:
                self.finding("upcall", "an upcall without PACKET or KEY", inp)
            else:
                try:
                    odp.format_key(u.key)
                except Exception as e:  # noqa: BLE001 - the text formatter is project code too
                    self.finding("odp-format", f"odp.format_key() fails on an upcall key: "
                                 f"{type(e).__name__}: {e}", inp, f"key: {u.key.hex()}")

    def finding(self, kind, summary, inp, detail="", note=False):
        sig = f"{kind}: {re.sub(r'[0-9]+', 'N', summary)}" if kind != "roundtrip" else \
            f"{kind}: {summary}"
        self.h.report(Finding(kind, summary, detail, inputs=list(self.h.history), signature=sig,
                              fuzzer=self.name, iteration=inp.iteration, note=note))

    def send(self, data, desc, extra=None, check_framing=True):
        inp = Input(self.name, self.iteration, desc, data, extra)
        res = self.h.run_input(self.conn, inp, check_framing)
        if self.conn.closed:
            self.setup()
        self.check_upcalls(res, inp)
        return inp, res

    # ------------------------------------------------------------ modes
    def mode_megaflow(self, frame, fdesc):
        seq, data = self.inject_msg(FZFRAME_PORTS[0], frame)
        inp, res = self.send(data, f"inject on port 1 (megaflows): {fdesc}", {"frame": frame})
        self.expect_ack(res, seq, inp, frame)

    def expect_ack(self, res, seq, inp, frame):
        a = res.ack(seq)
        if a is None:
            return None
        err = a[0]
        if err == errno.ENODEV:
            self.setup()             # the ctrl fuzzer took a port away
        elif err and not (err == errno.ERANGE and len(frame) < 14):
            self.finding("inject", f"INJECT of a {len(frame)}-byte frame failed: "
                         f"{errno.errorcode.get(err, err)} {a[1] or ''}", inp)
        return err

    def mode_miss(self, frame, fdesc):
        seq, data = self.inject_msg(FZFRAME_PORTS[2], frame)
        inp, res = self.send(data, f"inject on port 3 (no flows): {fdesc}", {"frame": frame})
        err = self.expect_ack(res, seq, inp, frame)
        if err != 0 or len(frame) > 65531:
            return
        misses = self.misses(res)
        if _key_extract_fails(frame):
            # flow.c parse_nsh(): a bad NSH header fails key_extract(), and
            # ovs_vport_receive() frees the packet: no upcall
            if misses:
                self.finding("miss", f"a frame with a bad NSH header gave {len(misses)} "
                             "MISS upcalls, not 0", inp)
            return
        if len(misses) != 1:
            self.finding("miss", f"a frame on a port without flows gave {len(misses)} MISS "
                         "upcalls, not 1", inp)
            return
        u = misses[0]
        if u.packet != frame:
            self.finding("miss", "the MISS upcall's PACKET differs from the frame", inp,
                         f"upcall packet: {(u.packet or b'')[:200].hex()}")
        if u.in_port != 3:
            self.finding("miss", f"the MISS upcall's key has in_port {u.in_port}, not 3", inp)

    def mode_exact(self, frame, fdesc):
        seq, data = self.inject_msg(FZFRAME_PORTS[1], frame)
        inp, res = self.send(data, f"inject on port 2 (exact flows): {fdesc}", {"frame": frame})
        err = self.expect_ack(res, seq, inp, frame)
        if err != 0:
            return
        misses = self.misses(res, 2, frame)
        if not misses or self.exact > 60:
            return
        key = misses[0].key
        self.exact += 1
        # the daemon's own upcall key must be accepted as an exact flow key
        nseq = self.seq % 0xFFFF + 1
        data = self.flow_msg(U.OVS_FLOW_CMD_NEW, [nla_nest(U.OVS_FLOW_ATTR_KEY, key),
                                                  nla_nest(U.OVS_FLOW_ATTR_ACTIONS,
                                                             odp.parse_actions("4"))])
        inp2, res2 = self.send(data, "flow NEW with the MISS upcall's key",
                               {"frame": frame, "key": key})
        a = res2.ack(nseq)
        if a is not None and a[0]:
            try:
                ktext = odp.format_key(key)
            except Exception:  # noqa: BLE001
                ktext = "?"
            why = kernel_quirk(key)
            self.finding("roundtrip", f"flow NEW rejects the key of the daemon's own MISS upcall: "
                         f"{errno.errorcode.get(a[0], a[0])} {a[1] or ''}", inp2,
                         f"key: {ktext}" + (f"\nnote: {why}" if why else ""), note=bool(why))
            return
        text, acts = actions_bytes(self.r, dict(cls_from_key(key), nports=8),
                                   self.conn.portid or 1)
        data = self.flow_msg(U.OVS_FLOW_CMD_SET, [nla_nest(U.OVS_FLOW_ATTR_KEY, key),
                                                  nla_nest(U.OVS_FLOW_ATTR_ACTIONS, acts)])
        self.send(data, f"flow SET actions {text}", {"actions": text})
        seq, data = self.inject_msg(FZFRAME_PORTS[1], frame)
        inp3, res3 = self.send(data, f"inject again on port 2: {fdesc}",
                               {"frame": frame, "actions": text})
        again = self.misses(res3, 2, frame)
        if again:
            detail = [f"upcall key: {fmt_key(key)}", f"  ({key.hex()})",
                      f"second MISS key: {fmt_key(again[0].key)}"]
            try:
                with self.h.dpif() as c:
                    fl = c.flow_get(self.ifindex, key=key)
                detail.append(f"flow as stored: {fmt_key(fl.key, fl.mask)}")
            except (OSError, TimeoutError) as e:
                detail.append(f"flow GET by that key: {e}")
            self.finding("roundtrip", "an exact flow made from a MISS key does not match the "
                         f"packet it came from (key shape {key_shape(key)})", inp3,
                         "\n".join(detail))

    def mode_execute(self, fr, frame, fdesc):
        r = self.r
        big = r.random() < 0.15 and fr.cls.get("ip") and fr.cls.get("frag") == "no" and \
            fr.cls.get("vlans", 0) < 2
        if big:                              # over the MTU, with an MRU: fragmentation
            frame = self.gen.bigger(fr, r.choice([1000, 1600, 3000, 9000, 20000]))
            fdesc = f"{len(frame)}-byte {fdesc}"
        l3 = not big and r.random() < 0.12 and fr.cls.get("eth_type")
        meta = f"in_port({r.choice([0, 1, 2, 3, 4, 9])})"
        if r.random() < 0.3:
            meta += r.choice([",skb_mark(5)", ",skb_priority(7)", ",recirc_id(2),dp_hash(3)",
                              ",ct_state(+trk+est),ct_zone(3),ct_mark(1)"])
        if r.random() < 0.1:
            meta = "tunnel(tun_id=0x5,src=1.1.1.1,dst=2.2.2.2,ttl=64,flags(key))," + meta
        if l3:
            packet = fr.l3()
            if frame is not fr.data:
                packet = frame[14 + 4 * fr.cls.get("vlans", 0):] or packet
            meta += f",eth_type({fr.cls['eth_type']:#06x})"
            cls = dict(fr.cls, vlans=0)
        else:
            packet = frame
            cls = fr.cls
        try:
            key = odp.parse_key(meta)[0]
        except Exception:  # noqa: BLE001
            key = odp.parse_key("in_port(1)")[0]
        if big:
            text = r.choice(["2", "2,3", "check_pkt_len(size=1000,gt(2),le(3))", "trunc(100),2",
                             f"userspace(pid={self.conn.portid or 1}),2", "clone(3),2",
                             "set(tunnel(tun_id=0x5,dst=10.1.1.1,ttl=64)),5"])
            acts = odp.parse_actions(text)
        else:
            text, acts = actions_bytes(r, dict(cls, nports=8), self.conn.portid or 1)
        attrs = [nla(U.OVS_PACKET_ATTR_PACKET, packet), nla_nest(U.OVS_PACKET_ATTR_KEY, key),
                 nla_nest(U.OVS_PACKET_ATTR_ACTIONS, acts)]
        if big or r.random() < 0.15:
            attrs.append(nla_u16(U.OVS_PACKET_ATTR_MRU, r.choice([2, 68, 100, 576, 1280, 1400,
                                                                 1500, 9000, 65535])))
        if r.random() < 0.15:
            attrs.append(nla_u64(U.OVS_PACKET_ATTR_HASH, r.getrandbits(34)))
        if r.random() < 0.15:
            attrs.append(nla_u32(U.OVS_PACKET_ATTR_UPCALL_PID, self.conn.portid or 0))
        if r.random() < 0.1:
            attrs.append(nla_flag(U.OVS_PACKET_ATTR_PROBE))
        seq = self.next_seq()
        data = self.execute_msg(seq, attrs)
        # an intact frame with good checksums must leave with good checksums
        verify = not l3 and fdesc.endswith("intact") and fr.cls.get("ip") and \
            not checksum_errors(packet) and "pop_eth" not in text and "recirc" not in text
        if verify:
            if not text.endswith("drop"):
                text += ",3"
                acts = odp.parse_actions(text)
                attrs[2] = nla_nest(U.OVS_PACKET_ATTR_ACTIONS, acts)
                data = self.execute_msg(seq, attrs)
            for port in FZFRAME_PORTS[1:]:
                self.fetch(port)
        inp, res = self.send(data, f"EXECUTE {meta} actions {text}: {fdesc}",
                             {"frame": packet, "key": meta, "actions": text})
        if verify and res.ack(seq) == (0, None, None):
            for port in FZFRAME_PORTS[1:]:
                for out in self.fetch(port):
                    self.h.stats["frames checked for checksums"] += 1
                    bad = checksum_errors(out)
                    if bad:
                        self.finding("checksum", f"{' and '.join(bad)} wrong after "
                                     f"{re.sub(r'[(].*', '', text.split(',')[0])}...", inp,
                                     f"actions: {text}\nframe out of {port}: {out[:200].hex()}")

    def fetch(self, port):
        """The frames sent out of dummy port ``port`` since the last FETCH."""
        seq, data = self.fetch_msg(port)
        inp, res = self.send(data, f"FETCH {port}")
        out = []
        for h, raw in res.msgs:
            if h.type == self.fid(DUMMY_FAMILY) and h.seq == seq:
                a = attr_map(raw[24:h.len])
                if DUMMY_PACKET in a:
                    out.append(a[DUMMY_PACKET])
        return out

    # ------------------------------------------------------------ step
    def step(self):
        self.iteration += 1
        r = self.r
        fr = self.gen.build()
        frame, fdesc = self.gen.mutate(fr)
        fdesc = f"{'/'.join(n for n, _, _ in fr.layers)} {fdesc}"
        x = r.random()
        if x < 0.35:
            self.mode_megaflow(frame, fdesc)
        elif x < 0.6:
            self.mode_exact(frame, fdesc)
        elif x < 0.72:
            self.mode_miss(frame, fdesc)
        else:
            self.mode_execute(fr, frame, fdesc)

    def batch_end(self):
        for port in FZFRAME_PORTS:
            seq, data = self.fetch_msg(port)
            inp, res = self.send(data, f"FETCH {port}")
            a = res.ack(seq)
            if a is not None and a[0] == errno.ENODEV:
                self.setup()
                return
        self.install_flows()
