"""Reading flow keys and upcalls the daemon sends: their shape, their text, the packet class
they describe, and the keys Linux would refuse as well."""

import struct

from ovsdp import odp
from ovsdp import uapi as U
from ovsdp.netlink import attr as A

from .wire import attr_map

_META = {U.OVS_KEY_ATTR_RECIRC_ID, U.OVS_KEY_ATTR_DP_HASH, U.OVS_KEY_ATTR_PRIORITY,
         U.OVS_KEY_ATTR_IN_PORT, U.OVS_KEY_ATTR_SKB_MARK, U.OVS_KEY_ATTR_CT_STATE,
         U.OVS_KEY_ATTR_CT_ZONE, U.OVS_KEY_ATTR_CT_MARK, U.OVS_KEY_ATTR_CT_LABELS}


def key_shape(key, depth=0):
    """The attribute types of a key, nests in braces, without the metadata."""
    out = []
    for t, p, _ in A.iter_attrs(key):
        t &= U.NLA_TYPE_MASK
        if t in _META and depth == 0:
            continue
        out.append(f"{t}{{{key_shape(p, depth + 1)}}}" if t == U.OVS_KEY_ATTR_ENCAP else str(t))
    return ",".join(out)


def _formatted(name, fn, *args):
    """``fn(*args)``, or what went wrong in the formatter (project code too)."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001
        return f"<{name} failed: {type(e).__name__}: {e}>"


def fmt_actions(acts):
    return _formatted("format_actions", odp.format_actions, acts)


def fmt_key(key, mask=None):
    return _formatted("format_key", odp.format_key, key, mask)


def _field(attrs, t, fmt, default=None):
    """Attribute ``t`` of ``attrs`` unpacked with ``fmt``, or ``default`` if absent or of
    another length."""
    p = attrs.get(t, b"")
    return struct.unpack(fmt, p)[0] if len(p) == struct.calcsize(fmt) else default


def kernel_quirk(key):
    """Why Linux would emit this key and refuse it too, or None.

    net/openvswitch/flow_netlink.c: a truncated MPLS header gives an
    MPLS attribute of length 0 (num_labels_mask 0), which
    ovs_key_from_nlattrs() refuses; a truncated VLAN tag after a TPID gives
    ETHERTYPE 0 + VLAN 0 inside ENCAP, which parse_vlan_from_nlattrs() does
    not take for a VLAN and ovs_key_from_nlattrs() then refuses.
    """
    def scan(buf):
        a = attr_map(buf)
        if U.OVS_KEY_ATTR_MPLS in a and not a[U.OVS_KEY_ATTR_MPLS]:
            return "MPLS attribute of length 0 (truncated MPLS header): Linux does the same"
        if a.get(U.OVS_KEY_ATTR_VLAN) == b"\0\0" and \
                a.get(U.OVS_KEY_ATTR_ETHERTYPE) == b"\0\0":
            return "VLAN 0 with ETHERTYPE 0 (truncated VLAN tag): Linux does the same"
        if a.get(U.OVS_KEY_ATTR_ETHERTYPE) == b"\x89\x4f" and U.OVS_KEY_ATTR_NSH not in a:
            return ("EtherType NSH without an NSH key attribute: ovsdp does not implement NSH "
                    "(docs/protocol.md 7); Linux would parse the NSH header")
        if U.OVS_KEY_ATTR_ENCAP in a:
            return scan(a[U.OVS_KEY_ATTR_ENCAP])
        return None
    return scan(key)


def cls_from_key(key):
    """The packet class (as the generators describe frames) of a flow key."""
    a = attr_map(key)
    cls = {}
    et = _field(a, U.OVS_KEY_ATTR_ETHERTYPE, "!H")
    vlans = 0
    while et in (0x8100, 0x88A8) and U.OVS_KEY_ATTR_ENCAP in a:
        vlans += 1
        a = attr_map(a[U.OVS_KEY_ATTR_ENCAP])
        et = _field(a, U.OVS_KEY_ATTR_ETHERTYPE, "!H")
    cls.update(eth_type=et, vlans=vlans)
    if len(a.get(U.OVS_KEY_ATTR_IPV4, b"")) == 12:
        p = a[U.OVS_KEY_ATTR_IPV4]
        cls.update(ip=4, proto=p[8], frag=["no", "first", "later"][min(p[11], 2)])
    if len(a.get(U.OVS_KEY_ATTR_IPV6, b"")) == 40:
        p = a[U.OVS_KEY_ATTR_IPV6]
        cls.update(ip=6, proto=p[36], frag=["no", "first", "later"][min(p[39], 2)])
    if U.OVS_KEY_ATTR_MPLS in a:
        cls["mpls"] = True
    return cls


class Upcall:
    """An OVS_PACKET_CMD_MISS/ACTION message (header ``h``, bytes ``raw``), leniently read."""

    def __init__(self, h, raw):
        self.cmd = raw[16]
        self.dp_ifindex = struct.unpack_from("=i", raw, 20)[0]
        self.attrs = attr_map(raw[24:h.len])
        self.key = self.attrs.get(U.OVS_PACKET_ATTR_KEY, b"")
        self.packet = self.attrs.get(U.OVS_PACKET_ATTR_PACKET)
        k = attr_map(self.key)
        self.in_port = _field(k, U.OVS_KEY_ATTR_IN_PORT, "=I")
        self.recirc_id = _field(k, U.OVS_KEY_ATTR_RECIRC_ID, "=I", 0)
