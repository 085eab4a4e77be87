"""Random frames, layer by layer (Ethernet to L4 and tunnel headers), and mutated copies."""

import struct

from ovsdp.vports.encap import inet_csum

from .checksums import fix_checksums
from .rand import rbytes


class Frame:
    """A frame with the offsets of its layers and what it is (for choosing actions)."""

    def __init__(self, layers, cls):
        self.layers = []          # (name, offset, length)
        off = 0
        data = b""
        for name, b in layers:
            self.layers.append((name, off, len(b)))
            off += len(b)
            data += b
        self.data = data
        self.cls = cls

    def l3(self):
        """The frame without its Ethernet header and VLAN tags (for no-Ethernet EXECUTE)."""
        for name, off, _ in self.layers:
            if name not in ("eth", "vlan"):
                return self.data[off:]
        return b""


class FrameGen:
    def __init__(self, r):
        self.r = r

    def mac(self):
        r = self.r
        return bytes([r.choice([0, 2, 1, 0x33, 0xff])]) + rbytes(r, 5)

    # ----------------------------------------------------------- layer 4
    def l4(self, proto, v6, cls):
        r = self.r
        if proto == 6:
            opts = r.choice([b"", b"", b"\x02\x04\x05\xb4", b"\x01\x01\x08\x0a" + rbytes(r, 8),
                             rbytes(r, 4 * r.randrange(1, 11))])
            doff = (20 + len(opts)) // 4
            hdr = struct.pack("!HHIIBBHHH", r.randrange(65536), r.randrange(65536),
                              r.getrandbits(32), r.getrandbits(32), doff << 4,
                              r.choice([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, r.randrange(256)]),
                              r.randrange(65536), 0, 0) + opts
            return [("tcp", hdr), ("data", rbytes(r, r.choice([0, 0, 6, 20, 64])))]
        if proto == 17:
            dport = r.choice([53, 4789, 6081, 67, r.randrange(65536)])
            if dport == 4789:
                payload = struct.pack("!II", 0x08000000, r.randrange(1 << 24) << 8) + \
                    self.mac() + self.mac() + b"\x08\x00" + rbytes(r, 30)
            elif dport == 6081:
                payload = struct.pack("!BBHI", 0, 0, 0x6558, r.randrange(1 << 24) << 8) + \
                    rbytes(r, 30)
            else:
                payload = rbytes(r, r.choice([0, 4, 20, 100]))
            ln = 8 + len(payload)
            return [("udp", struct.pack("!HHHH", r.randrange(65536), dport, ln,
                                        r.choice([0, r.randrange(65536)]))), ("data", payload)]
        if proto == 132:
            chunk = struct.pack("!BBH", r.choice([0, 1, 2, 3]), 0, 16) + rbytes(r, 12)
            return [("sctp", struct.pack("!HHII", r.randrange(65536), r.randrange(65536),
                                         r.getrandbits(32), 0)), ("data", chunk)]
        if proto == 1:
            t = r.choice([0, 8, 3, 11, 5, 13, r.randrange(256)])
            return [("icmp", struct.pack("!BBHI", t, r.randrange(16), 0, r.getrandbits(32))),
                    ("data", rbytes(r, r.choice([0, 8, 28])))]
        if proto == 58:
            t = r.choice([128, 129, 133, 134, 135, 136, 135, 136, 1, 2, 3, 143, r.randrange(256)])
            cls["icmp6"] = t
            if t in (135, 136):
                body = struct.pack("!I", r.getrandbits(32)) + \
                    bytes.fromhex("20010db8000000000000000000000001")
                for _ in range(r.choice([0, 1, 1, 2, 3])):
                    otype = r.choice([1, 2, 1, 2, 3, 14, r.randrange(256)])
                    olen = r.choice([1, 1, 1, 0, 2, 3])
                    body += bytes([otype, olen]) + (self.mac() + rbytes(r, 8 * olen - 8)
                                                    if olen else b"")
                return [("icmp6", struct.pack("!BBH", t, 0, 0)), ("nd", body)]
            return [("icmp6", struct.pack("!BBH", t, r.randrange(4), 0)),
                    ("data", rbytes(r, r.choice([0, 4, 8, 24])))]
        if proto == 47:
            return [("gre", struct.pack("!HH", r.choice([0, 0x2000, 0x8000]),
                                        r.choice([0x6558, 0x0800, 0x86dd]))),
                    ("data", self.mac() + self.mac() + b"\x08\x00" + rbytes(r, 20))]
        return [("data", rbytes(r, r.choice([0, 1, 8, 40])))]

    def pick_proto(self, v6):
        r = self.r
        return r.choice([6, 6, 17, 17, 132, 58 if v6 else 1, 58 if v6 else 1, 47, 2, 89,
                         r.randrange(256)])

    # ----------------------------------------------------------- layer 3
    def ipv4(self, cls):
        r = self.r
        proto = self.pick_proto(False)
        frag = r.choice(["no"] * 6 + ["first", "later"])
        cls.update(ip=4, proto=proto, frag=frag)
        inner = self.l4(proto, False, cls) if frag != "later" else \
            [("data", rbytes(r, r.choice([0, 8, 40])))]
        opts = r.choice([b"", b"", b"", b"\x01\x01\x01\x00", b"\x94\x04\x00\x00",
                         rbytes(r, 4 * r.randrange(1, 11))])
        ihl = 5 + len(opts) // 4
        total = ihl * 4 + sum(len(b) for _, b in inner)
        fl = {"no": r.choice([0, 0x4000]), "first": 0x2000,
              "later": r.choice([0, 0x2000]) | r.randrange(1, 0x2000)}[frag]
        src = bytes([10, 0, 0, r.randrange(256)])
        dst = bytes([r.choice([10, 224, 255]), 0, 0, r.randrange(256)])
        hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, r.randrange(256), total & 0xFFFF,
                                    r.randrange(65536), fl, r.choice([0, 1, 64, 255]), proto, 0,
                                    src, dst) + opts)
        struct.pack_into("!H", hdr, 10, inet_csum(bytes(hdr)))
        return [("ipv4", bytes(hdr))] + inner

    def ipv6(self, cls):
        r = self.r
        proto = self.pick_proto(True)
        exts = [r.choice([0, 43, 44, 60, 51, 50, 59, 135])
                for _ in range(r.choice([0, 0, 1, 1, 2, 3]))]
        if 0 in exts:                       # hop-by-hop first (or not: also a case)
            if r.random() < 0.8:
                exts.remove(0)
                exts.insert(0, 0)
        frag = "no"
        chain = []
        nexts = exts[1:] + [proto] if exts else []
        stop = False
        for e, nh in zip(exts, nexts, strict=True):
            if stop:
                break
            if e == 44:
                later = r.random() < 0.4
                frag = "later" if later else "first"
                off = r.randrange(1, 0x1FFF) if later else 0
                chain.append(("ext44", struct.pack("!BBHI", nh, 0, (off << 3) | r.choice([0, 1]),
                                                   r.getrandbits(32))))
                if later:
                    stop = True
            elif e == 51:
                n = r.choice([1, 2, 4])
                chain.append(("ext51", bytes([nh, n]) + b"\0\0" + rbytes(r, 4 * (n + 2) - 4)))
            elif e == 50:
                chain.append(("ext50", rbytes(r, 8 + r.randrange(16))))
                stop = True
            elif e == 59:
                chain.append(("ext59", rbytes(r, r.randrange(8))))
                stop = True
            else:
                n = r.choice([0, 0, 1, 2])
                chain.append((f"ext{e}", bytes([nh, n]) + rbytes(r, 6 + 8 * n)))
        if exts and stop:
            inner = chain + [("data", rbytes(r, r.choice([0, 8, 24])))]
            proto_seen = None
        else:
            inner = chain + self.l4(proto, True, cls)
            proto_seen = proto
        first_nh = exts[0] if exts else proto
        cls.update(ip=6, proto=proto_seen if frag == "no" else None, frag=frag)
        plen = sum(len(b) for _, b in inner)
        hdr = struct.pack("!IHBB16s16s", 0x60000000 | r.randrange(256) << 20 | r.randrange(1 << 20),
                          plen & 0xFFFF, first_nh, r.choice([0, 1, 64, 255]),
                          bytes.fromhex("fe800000000000000000000000000001"),
                          r.choice([bytes.fromhex("ff020000000000000000000000000001"),
                                    bytes.fromhex("20010db8000000000000000000000002")]))
        return [("ipv6", hdr)] + inner

    def arp(self, cls):
        r = self.r
        hlen, plen = (6, 4) if r.random() < 0.85 else (r.randrange(256), r.randrange(256))
        cls.update(arp=True)
        return [("arp", struct.pack("!HHBBH", r.choice([1, 1, 6, r.randrange(65536)]),
                                    r.choice([0x0800, 0x0800, 0x86dd]), hlen, plen,
                                    r.choice([1, 2, 3, 4, r.randrange(65536)]))
                 + self.mac() + rbytes(r, 4) + self.mac() + rbytes(r, 4)),
                ("data", rbytes(r, r.choice([0, 18])))]

    def mpls(self, cls):
        r = self.r
        n = r.choice([1, 1, 2, 3, 4])
        lses = []
        for i in range(n):
            bos = 1 if i == n - 1 and r.random() < 0.9 else 0
            lses.append(struct.pack("!I", r.randrange(1 << 20) << 12 | r.randrange(8) << 9
                                    | bos << 8 | r.randrange(256)))
        cls.update(mpls=True)
        inner = r.choice([lambda: self.ipv4({}), lambda: self.ipv6({}),
                          lambda: [("data", rbytes(r, 20))],
                          lambda: [("eth", self.mac() + self.mac() + b"\x08\x00")]])()
        return [("mpls", b"".join(lses))] + inner

    def l3(self, et, cls):
        r = self.r
        if et == 0x0800:
            return self.ipv4(cls)
        if et == 0x86DD:
            return self.ipv6(cls)
        if et in (0x0806, 0x8035):
            return self.arp(cls)
        if et in (0x8847, 0x8848):
            return self.mpls(cls)
        return [("data", rbytes(r, r.choice([0, 4, 46, 100])))]

    def build(self):
        r = self.r
        cls = {}
        et = r.choice([0x0800] * 6 + [0x86DD] * 5 + [0x0806, 0x0806, 0x8035, 0x8847, 0x8847,
                                                     0x8848, 0x894F, 0x88B5, 0x88CC,
                                                     r.randrange(0x600, 0x10000)])
        layers = [("eth", None)]
        nvlan = r.choice([0] * 7 + [1, 1, 2, 3])
        kind = r.random()
        if kind < 0.05:                         # 802.3 length + LLC (+ SNAP)
            snap = r.random() < 0.5
            llc = b"\xaa\xaa\x03" + rbytes(r, 3) + b"\x08\x00" if snap else \
                bytes([r.randrange(256), r.randrange(256), 3])
            payload = llc + rbytes(r, r.choice([0, 20, 43]))
            layers[0] = ("eth", self.mac() + self.mac() + struct.pack("!H", r.choice(
                [len(payload), 0x5ff, 0, r.randrange(0x600)])))
            layers.append(("llc", payload))
            cls.update(eth_type=None, llc=True)
            return Frame(layers, cls)
        if kind < 0.08:                         # just junk
            return Frame([("data", rbytes(r, r.choice([14, 15, 17, 20, 60, 1])))],
                         {"eth_type": None})
        tags = []
        for i in range(nvlan):
            tpid = r.choice([0x8100, 0x88A8, 0x9100]) if i < nvlan - 1 else 0x8100
            if i == 0 and nvlan > 1:
                tpid = r.choice([0x88A8, 0x8100])
            vid = r.choice([5, 10, 0, r.randrange(4096)])
            tci = r.randrange(8) << 13 | (1 if r.random() < 0.05 else 0) << 12 | vid
            tags.append((tpid, tci))
        outer = tags[0][0] if tags else et
        layers[0] = ("eth", self.mac() + self.mac() + struct.pack("!H", outer))
        for i, (_tpid, tci) in enumerate(tags):
            nxt = tags[i + 1][0] if i + 1 < len(tags) else et
            layers.append(("vlan", struct.pack("!HH", tci, nxt)))
        cls.update(eth_type=et, vlans=nvlan, vids=[t[1] & 0xFFF for t in tags])
        layers += self.l3(et, cls)
        frame = Frame(layers, cls)
        fix_checksums(frame)
        if r.random() < 0.03:                   # jumbo, up to the largest PACKET attribute
            room = 65531 - len(frame.data)
            frame = Frame(layers + [("data", rbytes(r, min(room, r.choice([1500, 9000, 65531]))))],
                          cls)
        return frame

    def bigger(self, frame, n):
        """``frame`` (intact, IP) with ``n`` more payload bytes and its IP lengths fixed."""
        data = bytearray(frame.data + rbytes(self.r, n))
        for name, off, ln in frame.layers:
            if name == "ipv4":
                struct.pack_into("!H", data, off + 2, (len(data) - off) & 0xFFFF)
                struct.pack_into("!H", data, off + 10, 0)
                struct.pack_into("!H", data, off + 10, inet_csum(bytes(data[off:off + ln])))
                break
            if name == "ipv6":
                struct.pack_into("!H", data, off + 4, (len(data) - off - 40) & 0xFFFF)
                break
        for name, off, _ in frame.layers:
            if name == "udp":
                struct.pack_into("!H", data, off + 4, (len(data) - off) & 0xFFFF)
        return bytes(data[:65531])

    # ---------------------------------------------------------- mutation
    def mutate(self, frame):
        """(bytes, description) of a mutated copy of ``frame``."""
        r = self.r
        data = bytearray(frame.data)
        desc = []
        x = r.random()
        hdrs = [(n, o, ln) for n, o, ln in frame.layers if n != "data"]
        if x < 0.25:
            return bytes(data), "intact"
        if x < 0.55 and frame.layers:
            name, off, ln = r.choice(frame.layers)
            cut = max(0, min(len(data), off + r.choice([0, 1, 2, ln - 1, ln, ln + 1, ln // 2,
                                                         -1, -2])))
            desc.append(f"cut at {cut} ({name}@{off})")
            data = data[:cut]
        elif x < 0.7 and hdrs:
            name, off, ln = r.choice(hdrs)
            pos = {"ipv4": [0, 2, 3, 6, 9], "ipv6": [4, 5, 6], "tcp": [12], "udp": [4, 5],
                   "nd": [20, 21, 29], "arp": [4, 5], "mpls": [2], "vlan": [2, 3],
                   "eth": [12, 13]}.get(name, [0, 1])
            p = off + r.choice(pos)
            if name.startswith("ext"):
                p = off + 1
            if p < len(data):
                data[p] = r.choice([0, 1, 0xFF, 0x0F, 0xF0, data[p] ^ (1 << r.randrange(8)),
                                    r.randrange(256)])
                desc.append(f"len field {name}+{p - off}={data[p]:#x}")
        elif x < 0.88:
            for _ in range(r.choice([1, 1, 2, 4])):
                if data:
                    p = r.randrange(min(len(data), 96))
                    data[p] ^= 1 << r.randrange(8)
                    desc.append(f"flip {p}")
        elif x < 0.95:
            data += rbytes(r, r.choice([1, 3, 20]))
            desc.append("junk tail")
        else:
            data = bytearray(rbytes(r, r.choice([14, 30, 60, 100])))
            desc.append("random bytes")
        del data[65531:]
        if r.random() < 0.15 and len(data) > 14:
            cut = r.randrange(14, len(data) + 1)
            data = data[:cut]
            desc.append(f"cut at {cut}")
        return bytes(data), ", ".join(desc) or "intact"
