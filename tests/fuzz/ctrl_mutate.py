"""Mutations of valid requests into the control-message fuzzer's inputs.

:class:`CtrlMutations` is a part of :class:`~.ctrl.CtrlFuzzer`: it mutates
the requests of :class:`~.ctrl_build.CtrlRequests` (attributes, headers,
bytes) and packs them into datagrams.
"""

from ovsdp import uapi as U
from ovsdp.netlink import attr as A
from ovsdp.netlink.message import build, split

from .consts import DUMMY_FAMILY, DUMMY_PORT_NAME, FZKEEP, MAX_DGRAM
from .rand import rbytes, rint
from .wire import Msg, Node, join_msgs, s_, walk


class CtrlMutations:
    """Mutated attributes, headers and bytes; :meth:`make_input` gives a datagram."""

    def mutate_node(self, plist, i, node, msg):
        r = self.r
        op = r.choice(["type", "lie", "lie", "payload", "payload", "string", "dup", "del",
                       "insert", "wrap", "repeat", "junk", "nest", "swap"])
        body = node.body()
        if op == "type" and node.type is not None:
            node.type = r.choice([0, r.randrange(1, 40), r.randrange(0x4000), node.type | 0x8000,
                                  node.type ^ 0x4000, node.type + 1, 0x3FFF, 0xFFFF,
                                  max(0, node.type - 1)])
        elif op == "lie" and node.type is not None:
            real = 4 + len(body)
            node.lie = r.choice([0, 1, 2, 3, 4, real - 1, real + 1, real + 2, real + 4, real + 100,
                                 0xFFFF, r.randrange(0x10000)]) & 0xFFFF
        elif op == "payload":
            node.kids = None
            width = len(body) if len(body) in (1, 2, 4, 8) else r.choice([1, 2, 4, 8])
            node.payload = r.choice([
                lambda: rbytes(r, r.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 40,
                                            r.randrange(300)])),
                lambda: rint(r, width).to_bytes(width, "little"),
                lambda: body[:r.randrange(len(body) + 1)],
                lambda: body + r.choice([bytes(r.randrange(1, 9)), rbytes(r, r.randrange(1, 9))]),
                lambda: bytes(b ^ (1 << r.randrange(8)) if k == (r.randrange(len(body)) if body
                                                                 else 0) else b
                              for k, b in enumerate(body)),
            ])()
        elif op == "string":
            node.kids = None
            choices = [b"fzc" + b"x" * 12 + b"\0", b"fzc" + b"x" * 13 + b"\0",
                       b"fzc" + b"z" * 300 + b"\0", b"\0", b"", b"fzc1", b"fzc\0junk\0",
                       b"fzcp1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"]
            if "nonutf8" not in self.h.avoid:
                choices += [b"fzc\xff\xfe\0", b"fz\xc3\x28\0", b"fzc\xed\xa0\x80\0",
                            b"\x80\0", b"fzc\xe2\x82\0"]
            node.payload = r.choice(choices)
        elif op == "dup":
            plist.insert(i + r.choice([0, 1]), node.copy())
        elif op == "del":
            del plist[i]
        elif op == "insert":
            plist.insert(r.randrange(len(plist) + 1),
                         Node(r.choice([0, r.randrange(1, 40), r.randrange(0x10000)]),
                              rbytes(r, r.choice([0, 1, 2, 4, 8, 12, 16, 40]))))
        elif op == "wrap":
            inner = node
            for _ in range(r.choice([1, 2, 3, 16, 17, 40])):
                inner = Node(r.choice([node.type or 1, 1, 2, 6, 20]), kids=[inner])
            plist[i] = inner
        elif op == "repeat":
            size = max(1, node.size())
            budget = 60000 if "bignest" in self.h.avoid else 130000
            n = r.choice([2, 3, 10, 100, max(1, budget // size)])
            n = min(n, max(1, budget // size))
            plist[i + 1:i + 1] = [node.copy() for _ in range(n - 1)]
        elif op == "junk" and node.kids is not None:
            node.kids.append(Node(None, rbytes(r, r.choice([1, 2, 3, 4, 5]))))
        elif op == "nest":
            node.kids = [Node(r.randrange(0, 35), rbytes(r, r.choice([0, 1, 2, 4, 6, 8, 12, 16,
                                                                      40])))
                         for _ in range(r.randrange(1, 5))]
        elif op == "swap" and len(plist) > 1:
            r.shuffle(plist)

    def mutate_msg(self, msg):
        r = self.r
        descs = []
        for _ in range(r.choice([1, 1, 1, 2, 2, 3, 5])):
            x = r.random()
            nodes = list(walk(msg.attrs))
            if x < 0.62 and nodes:
                plist, i, node, depth = r.choice(nodes)
                self.mutate_node(plist, i, node, msg)
                descs.append(f"attr(type {node.type}, depth {depth})")
            elif x < 0.72:
                msg.flags = r.choice([
                    msg.flags ^ (1 << r.randrange(16)), msg.flags | U.NLM_F_DUMP,
                    msg.flags | U.NLM_F_ECHO, msg.flags & ~U.NLM_F_REQUEST, msg.flags | 0x100,
                    msg.flags | 0x200, msg.flags | U.NLM_F_CREATE | U.NLM_F_EXCL,
                    r.getrandbits(16)])
                descs.append(f"flags {msg.flags:#x}")
            elif x < 0.78 and msg.cmd is not None:
                if r.random() < 0.5:
                    msg.cmd = r.randrange(256)
                else:
                    msg.version = r.randrange(256)
                msg.reserved = r.choice([0, 0, 0xFFFF])
                descs.append(f"cmd {msg.cmd} version {msg.version}")
            elif x < 0.83:
                fams = [f.id for f in self.h.families.values()]
                msg.type = r.choice(fams + [r.randrange(0x10), r.randrange(0x10000)])
                descs.append(f"type {msg.type:#x}")
            elif x < 0.88 and msg.raw is None and msg.fixed:
                msg.fixed = r.choice([
                    U.OVS_HEADER.pack(r.choice([0, -1, 1, 0x40000000, 0x7FFFFFFF])),
                    U.OVS_HEADER.pack(self.dp_ifindex())])
                descs.append("dp_ifindex")
            elif x < 0.94:
                real = len(msg.encode())
                msg.lie = r.choice([0, 1, 15, 16, 17, 19, 20, real - 1, real + 1, real + 4,
                                    real - 4, 0xFFFFFFFF, r.randrange(1 << 17)])
                descs.append(f"nlmsg_len {msg.lie}")
            else:
                msg.cut = r.choice([0, 1, 2, 3, 4, 5, 7, 8])
                descs.append(f"body cut at {msg.cut}")
        return descs

    def byte_mutate(self, data):
        r = self.r
        data = bytearray(data)
        descs = []
        for _ in range(r.choice([1, 1, 2, 4])):
            if not data:
                break
            op = r.choice(["flip", "set", "insert", "delete", "dup"])
            p = r.randrange(len(data))
            if op == "flip":
                data[p] ^= 1 << r.randrange(8)
            elif op == "set":
                data[p] = r.choice([0, 0xFF, 0x7F, 0x80, r.randrange(256)])
            elif op == "insert":
                data[p:p] = rbytes(r, r.choice([1, 2, 3, 4, 8]))
            elif op == "delete":
                del data[p:p + r.choice([1, 2, 3, 4, 8])]
            else:
                n = r.choice([4, 8, 16])
                data[p:p] = data[p:p + n]
            descs.append(f"bytes {op}@{p}")
        return bytes(data), descs

    def breaks_known(self, data):
        """Whether ``data`` would hit a defect listed in --avoid-known."""
        if "nonutf8" not in self.h.avoid:
            return False
        fams = self.h.families
        names = {fams[U.OVS_DATAPATH_FAMILY].id: U.OVS_DP_ATTR_NAME,
                 fams[U.OVS_VPORT_FAMILY].id: U.OVS_VPORT_ATTR_NAME}
        if DUMMY_FAMILY in fams:
            names[fams[DUMMY_FAMILY].id] = DUMMY_PORT_NAME
        msgs, _ = split(data)
        for h, raw in msgs:
            t = names.get(h.type)
            if t is None:
                continue
            for at, p, _ in A.iter_attrs(raw[24:]):
                if at & U.NLA_TYPE_MASK == t:
                    try:
                        p.split(b"\0", 1)[0].decode("utf-8")
                    except UnicodeDecodeError:
                        return True
        return False

    def many_messages(self):
        """A datagram of many small requests (handled over several turns of the daemon)."""
        r = self.r
        fams = self.h.families
        n = r.choice([65, 100, 300, 1000, 2500])
        parts = []
        for _ in range(n):
            x = r.random()
            seq = self.next_seq()
            if x < 0.3:
                parts.append(build(U.NLMSG_NOOP, U.NLM_F_REQUEST | U.NLM_F_ACK, seq, 0, b""))
            elif x < 0.6:
                m = Msg(fams[U.OVS_DATAPATH_FAMILY].id, U.NLM_F_REQUEST | U.NLM_F_ACK, seq,
                        U.OVS_DP_CMD_GET, 2, U.OVS_HEADER.pack(0),
                        [s_(U.OVS_DP_ATTR_NAME, r.choice(self.dp_names + [FZKEEP]))])
                parts.append(m.encode())
            elif x < 0.8:
                m = Msg(fams[U.GENL_CTRL_NAME].id, U.NLM_F_REQUEST | U.NLM_F_ACK, seq,
                        U.CTRL_CMD_GETFAMILY, 1, b"",
                        [s_(U.CTRL_ATTR_FAMILY_NAME, r.choice(list(fams)))])
                parts.append(m.encode())
            elif x < 0.97:
                parts.append(self.base_message().encode())
            else:
                m = Msg(fams[U.OVS_VPORT_FAMILY].id, U.NLM_F_REQUEST | U.NLM_F_DUMP, seq,
                        U.OVS_VPORT_CMD_GET, 1,
                        U.OVS_HEADER.pack(r.choice(list(self.ifindexes.values()) or [0])))
                parts.append(m.encode())
            if sum(len(p) + 3 for p in parts) > MAX_DGRAM - 4096:
                break
        return join_msgs(parts), f"{len(parts)} small requests in one datagram"

    def make_input(self):
        r = self.r
        if r.random() < 0.01:
            return self.many_messages()
        while True:
            n = r.choice([1] * 12 + [2, 2, 3, 4, 8])
            msgs = [self.base_message() for _ in range(n)]
            descs = []
            valid = r.random() < 0.25
            if not valid:
                for m in msgs:
                    if r.random() < 0.8 or len(msgs) == 1:
                        descs += [f"{m.desc}: " + "; ".join(self.mutate_msg(m))]
            else:
                descs = [m.desc for m in msgs]
            data = join_msgs([m.encode() for m in msgs], pad_last=r.random() < 0.3)
            x = r.random()
            if not valid and x < 0.12:
                data, more = self.byte_mutate(data)
                descs += more
            elif not valid and x < 0.15:
                data += rbytes(r, r.choice([1, 3, 15, 16, 17, 40]))
                descs.append("junk tail")
            elif x < 0.155:
                data = b""
                descs = ["empty datagram"]
            elif x < 0.16:
                data = data + bytes(MAX_DGRAM + 1 - len(data)) if len(data) <= MAX_DGRAM else data
                descs.append("datagram over 128 KiB")
            if len(data) > 1 << 20:
                continue
            if self.breaks_known(data):
                continue
            return data, " | ".join(descs) or "valid"
