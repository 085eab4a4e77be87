"""UFIDs: their text form, and the one ovsdp derives from a flow (see the package's doc).
"""

import hashlib
import re
import struct

from ...netlink import attr as A
from ...uapi import attrs as ATTRS

UUID_LEN = 36
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                      r"[0-9a-fA-F]{12}")


def format_ufid(ufid):
    """odp_format_ufid(): ``ufid:`` + the UUID of the 16 bytes as an ovs_u128."""
    ufid = bytes(ufid[:16]).ljust(16, b"\0")
    p0, p1, p2, p3 = struct.unpack("=4I", ufid)
    return f"ufid:{p0:08x}-{p1 >> 16:04x}-{p1 & 0xFFFF:04x}-{p2 >> 16:04x}-{p2 & 0xFFFF:04x}" \
           f"{p3:08x}"


def ufid_from_string(s):
    """odp_ufid_from_string(): (chars consumed, ufid bytes); (0, None) without ``ufid:``.

    Raises ValueError for ``ufid:`` followed by something that is not a UUID.
    """
    if not s.startswith("ufid:"):
        return 0, None
    u = s[5:5 + UUID_LEN]
    if len(u) != UUID_LEN or not _UUID_RE.fullmatch(u):
        raise ValueError(s)
    p0 = int(u[0:8], 16)
    p1 = int(u[9:13], 16) << 16 | int(u[14:18], 16)
    p2 = int(u[19:23], 16) << 16 | int(u[24:28], 16)
    p3 = int(u[28:36], 16)
    return 5 + UUID_LEN, struct.pack("=4I", p0, p1, p2, p3)


# Key attributes whose payload is itself a stream of attributes.
_NESTED_KEY = ATTRS.KEY.nested_types()


def attr_list(buf):
    return A.attr_list(buf or b"")[0]


def _canonical(key, mask, nested):
    masks = dict(attr_list(mask))
    out = []
    for t, p in sorted(attr_list(key), key=lambda tp: tp[0]):
        m = masks.get(t)
        if t in nested:
            inner = _canonical(p, m or b"", ())
            if inner:
                out.append(struct.pack("=HH", t, len(inner)) + inner)
            continue
        if m is None or len(m) != len(p):
            m = b"\xff" * len(p)
        if p and not any(m):
            continue                    # fully wildcarded: not part of the flow
        v = bytes(a & b for a, b in zip(p, m, strict=True))
        out.append(struct.pack("=HH", t, len(p)) + v + m)
    return b"".join(out)


def flow_ufid(key, mask):
    """The UFID ovsdp gives a flow added without one (see the module docstring)."""
    canon = _canonical(key, mask if mask is not None else b"", _NESTED_KEY)
    digest = hashlib.blake2b(canon, digest_size=16, person=b"ovsdp-ufid").digest()
    p0, p1, p2, p3 = struct.unpack("=4I", digest)
    p2 = (p2 & ~0xC0000000 & 0xFFFFFFFF) | 0x80000000      # uuid_set_bits_v4()
    p1 = (p1 & ~0x0000F000 & 0xFFFFFFFF) | 0x00004000
    return struct.pack("=4I", p0, p1, p2, p3)


# ================================================================== filter=
