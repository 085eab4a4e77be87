"""Netlink messages as trees the fuzzer can mutate, and the raw builders it needs.

Well-formed pieces come from the project's codec (ovsdp.netlink); what is
here can also be wrong on purpose: a :class:`Node`'s nla_len can lie and
wraps at 16 bits instead of being refused, a :class:`Msg` can lie about its
nlmsg_len or be cut short.
"""

import struct

from ovsdp import uapi as U
from ovsdp.netlink import attr as A
from ovsdp.netlink.message import GENLMSGHDR, NLMSGHDR, build

from .consts import DUMMY_PACKET, DUMMY_PORT_NAME


def _pad(n):
    """The zero bytes that align ``n`` bytes to 4."""
    return bytes(A.align(n) - n)


class Node:
    """One netlink attribute, as a tree that can be mutated and encoded.

    ``kids`` is a list for a nested attribute (else None, and ``payload``
    holds the bytes); ``lie`` replaces the encoded nla_len; a node whose
    ``type`` is None is raw bytes (junk inside a nest).
    """

    __slots__ = ("type", "payload", "kids", "lie", "tag")

    def __init__(self, atype, payload=b"", kids=None, tag=None):
        self.type = atype
        self.payload = payload
        self.kids = kids
        self.lie = None
        self.tag = tag

    def copy(self):
        n = Node(self.type, self.payload, None if self.kids is None else
                 [k.copy() for k in self.kids], self.tag)
        n.lie = self.lie
        return n

    def body(self):
        if self.kids is None:
            return self.payload
        return b"".join(k.encode() for k in self.kids)

    def encode(self):
        body = self.body()
        if self.type is None:
            return body
        n = 4 + len(body) if self.lie is None else self.lie
        return struct.pack("=HH", n & 0xFFFF, self.type & 0xFFFF) + body + _pad(len(body))

    def size(self):
        return len(self.encode())


def parse_tree(buf, depth=0):
    """Attribute bytes -> nodes; payloads that re-encode exactly as attributes become nests."""
    nodes = []
    off = 0
    n = len(buf)
    while n - off >= 4:
        ln, t = struct.unpack_from("=HH", buf, off)
        if ln < 4 or ln > n - off:
            break
        node = Node(t, bytes(buf[off + 4:off + ln]))
        p = node.payload
        if depth < 10 and len(p) >= 4 and len(p) % 4 == 0:
            kids = parse_tree(p, depth + 1)
            if kids and all(k.type is not None for k in kids) and \
                    b"".join(k.encode() for k in kids) == p:
                node.kids = kids
        if node.kids is None and len(p) > 1 and p[-1] == 0 and \
                all(32 <= c < 127 for c in p[:-1]):
            node.tag = "str"
        nodes.append(node)
        off += (ln + 3) & ~3
    if off < n:
        nodes.append(Node(None, bytes(buf[off:])))
    return nodes


def walk(nodes, depth=0):
    """(list, index, node, depth) for every node, parents first."""
    for i, nd in enumerate(nodes):
        yield nodes, i, nd, depth
        if nd.kids is not None:
            yield from walk(nd.kids, depth + 1)


def attr_map(buf):
    """{type without flags: payload} of the attributes in ``buf``, the last one of a type."""
    return {t & U.NLA_TYPE_MASK: p for t, p, _ in A.iter_attrs(buf)}


# Nodes; integers wrap to the attribute's width instead of being refused.
def leaf(t, payload, tag=None):
    return Node(t, bytes(payload), tag=tag)


def s_(t, s):
    return Node(t, (s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s) + b"\0",
                tag="str")


def u16_(t, v):
    return Node(t, struct.pack("=H", v & 0xFFFF))


def u32_(t, v):
    return Node(t, struct.pack("=I", v & 0xFFFFFFFF))


def u64_(t, v):
    return Node(t, struct.pack("=Q", v & 0xFFFFFFFFFFFFFFFF))


def s32_(t, v):
    return Node(t, struct.pack("=i", v))


def flag_(t):
    return Node(t, b"")


def nest_(t, kids):
    return Node(t, kids=list(kids))


def tree_(t, encoded):
    """A nested attribute whose contents are attribute bytes from an encoder."""
    return Node(t, kids=parse_tree(encoded))


class Msg:
    """A netlink message as fields; ``raw`` is the payload of a non-genl message."""

    def __init__(self, mtype, flags, seq, cmd=None, version=1, fixed=b"", attrs=(), raw=None,
                 desc=""):
        self.type = mtype
        self.flags = flags
        self.seq = seq
        self.pid = 0
        self.cmd = cmd
        self.version = version
        self.reserved = 0
        self.fixed = fixed
        self.attrs = list(attrs)
        self.raw = raw
        self.lie = None          # nlmsg_len
        self.cut = None          # cut the body after this many bytes
        self.desc = desc

    def encode(self):
        if self.raw is not None:
            body = self.raw
        else:
            body = GENLMSGHDR.pack(self.cmd & 0xFF, self.version & 0xFF,
                                   self.reserved & 0xFFFF) + self.fixed + \
                b"".join(a.encode() for a in self.attrs)
        if self.cut is not None:
            body = body[:self.cut]
        n = 16 + len(body) if self.lie is None else self.lie
        return NLMSGHDR.pack(n & 0xFFFFFFFF, self.type & 0xFFFF, self.flags & 0xFFFF,
                             self.seq & 0xFFFFFFFF, self.pid & 0xFFFFFFFF) + body


def join_msgs(parts, pad_last=False):
    """One datagram of the encoded messages ``parts``, each but the last padded."""
    out = b""
    for i, p in enumerate(parts):
        out += p
        if i < len(parts) - 1 or pad_last:
            out += _pad(len(p))
    return out


# Well-formed pieces of requests
def sockopt_payload(optname, value, level=U.SOL_NETLINK):
    """The payload of an OVSDP_MSG_SOCKOPT message (docs/protocol.md)."""
    return U.OVSDP_SOCKOPT.pack(level, optname) + struct.pack("=I", value)


def sockopt_msg(seq, optname, value):
    """An OVSDP_MSG_SOCKOPT request that asks for no ack."""
    return build(U.OVSDP_MSG_SOCKOPT, U.NLM_F_REQUEST, seq, 0, sockopt_payload(optname, value))


def dummy_body(port, packet=None):
    """The body of an ovsdp_dummy FETCH (or, with ``packet``, INJECT) for ``port``."""
    body = U.OVS_HEADER.pack(0) + A.nla_string(DUMMY_PORT_NAME, port)
    return body if packet is None else body + A.nla(DUMMY_PACKET, packet)
