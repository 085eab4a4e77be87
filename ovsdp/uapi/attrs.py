"""The attributes of flow keys and actions, one row each.

The kernel checks a key attribute against ``ovs_key_lens[]`` (its payload
length, or variable, or nested with a ``.next`` table for the payload);
Open vSwitch's userspace reads the same stream with its own table
(odp-util.c ``ovs_flow_key_attr_lens[]``), which differs in a few cells.
Both are here, as columns of one row per attribute, so that every codec
(validation in datapath/flow_netlink.py, the text form in odp/, dpctl)
reads one description:

- ``length``: the kernel's: bytes, :data:`VARIABLE` or :data:`NESTED`; 0 for
  a type the kernel's sparse array has no entry for; None for a type the
  kernel refuses outright ("not supported": userspace-only types);
- ``ovs``: Open vSwitch userspace's; None where it does not know the type;
- ``name``: the text form's name of the attribute (None: printed generically);
- ``next``: the table of a nested attribute's payload.

Adding a key attribute is one row here, plus its semantics where the key is
extracted, validated and printed.
"""

from . import openvswitch as O


class _Length:
    """A length that is not a number of bytes."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


VARIABLE = _Length("VARIABLE")
NESTED = _Length("NESTED")
_SAME = object()


class Attr:
    """One attribute: see the module's docstring for the columns."""

    __slots__ = ("type", "name", "length", "ovs", "next")

    def __init__(self, atype, name, length, ovs=_SAME, next=None):  # noqa: A002 - the kernel's name
        self.type = atype
        self.name = name
        self.length = length
        self.ovs = length if ovs is _SAME else ovs
        self.next = next

    def __repr__(self):
        return f"Attr({self.type}, {self.name!r}, {self.length!r}, ovs={self.ovs!r})"


class AttrTable:
    """The attributes of one nesting level, by type."""

    def __init__(self, name, max_type, rows):
        self.name = name
        self.max_type = max_type
        self.rows = {r.type: r for r in rows}
        # the columns the validation reads per attribute, as plain dicts
        self.lengths = {t: r.length for t, r in self.rows.items()}
        self.nexts = {t: r.next for t, r in self.rows.items() if r.next is not None}

    def nest(self, atype, table):
        """Make ``atype``'s payload a nest of ``table`` (a table may nest itself)."""
        self.rows[atype].next = table
        self.nexts[atype] = table

    def __repr__(self):
        return f"<AttrTable {self.name}>"

    def __iter__(self):
        return iter(self.rows.values())

    def __contains__(self, atype):
        return atype in self.rows

    def row(self, atype):
        return self.rows.get(atype)

    def length(self, atype):
        """The kernel's expected length (0 for a type without a row)."""
        return self.lengths.get(atype, 0)

    def ovs_length(self, atype):
        """Open vSwitch userspace's expected length, None if it does not know the type."""
        r = self.rows.get(atype)
        return None if r is None else r.ovs

    def next(self, atype):
        """The table of the nested payload of ``atype``, or None."""
        return self.nexts.get(atype)

    def nested_types(self):
        return frozenset(self.nexts)

    def names(self):
        """type -> text name, for the rows that have one."""
        return {t: r.name for t, r in self.rows.items() if r.name is not None}


VXLAN_EXT = AttrTable("vxlan_ext", O.OVS_VXLAN_EXT_MAX, [
    Attr(O.OVS_VXLAN_EXT_GBP, "gbp", 4),
])

TUNNEL_KEY = AttrTable("tunnel", O.OVS_TUNNEL_KEY_ATTR_MAX, [
    Attr(O.OVS_TUNNEL_KEY_ATTR_ID, "tun_id", 8),
    Attr(O.OVS_TUNNEL_KEY_ATTR_IPV4_SRC, "src", 4),
    Attr(O.OVS_TUNNEL_KEY_ATTR_IPV4_DST, "dst", 4),
    Attr(O.OVS_TUNNEL_KEY_ATTR_TOS, "tos", 1),
    Attr(O.OVS_TUNNEL_KEY_ATTR_TTL, "ttl", 1),
    Attr(O.OVS_TUNNEL_KEY_ATTR_DONT_FRAGMENT, "df", 0),
    Attr(O.OVS_TUNNEL_KEY_ATTR_CSUM, "csum", 0),
    Attr(O.OVS_TUNNEL_KEY_ATTR_OAM, "oam", 0),
    Attr(O.OVS_TUNNEL_KEY_ATTR_GENEVE_OPTS, "geneve", VARIABLE),
    Attr(O.OVS_TUNNEL_KEY_ATTR_TP_SRC, "tp_src", 2),
    Attr(O.OVS_TUNNEL_KEY_ATTR_TP_DST, "tp_dst", 2),
    Attr(O.OVS_TUNNEL_KEY_ATTR_VXLAN_OPTS, "vxlan", NESTED, next=VXLAN_EXT),
    Attr(O.OVS_TUNNEL_KEY_ATTR_IPV6_SRC, "ipv6_src", 16),
    Attr(O.OVS_TUNNEL_KEY_ATTR_IPV6_DST, "ipv6_dst", 16),
    Attr(O.OVS_TUNNEL_KEY_ATTR_PAD, None, 0),          # no entry in the kernel's table
    Attr(O.OVS_TUNNEL_KEY_ATTR_ERSPAN_OPTS, "erspan", VARIABLE),
    Attr(O.OVS_TUNNEL_KEY_ATTR_IPV4_INFO_BRIDGE, None, 0),
    # userspace only: past the kernel's OVS_TUNNEL_KEY_ATTR_MAX
    Attr(O.OVS_TUNNEL_KEY_ATTR_GTPU_OPTS, "gtpu", None, ovs=VARIABLE),
])

NSH_KEY = AttrTable("nsh", O.OVS_NSH_KEY_ATTR_MAX, [
    Attr(O.OVS_NSH_KEY_ATTR_UNSPEC, None, 0, ovs=None),
    Attr(O.OVS_NSH_KEY_ATTR_BASE, "base", O.OVS_KEY_NSH_BASE.size),
    Attr(O.OVS_NSH_KEY_ATTR_MD1, "md1", O.OVS_KEY_NSH_MD1.size),
    Attr(O.OVS_NSH_KEY_ATTR_MD2, "md2", VARIABLE),
])

KEY = AttrTable("key", O.OVS_KEY_ATTR_MAX, [
    Attr(O.OVS_KEY_ATTR_UNSPEC, "unspec", 0, ovs=None),
    Attr(O.OVS_KEY_ATTR_ENCAP, "encap", NESTED),               # .next: this table
    Attr(O.OVS_KEY_ATTR_PRIORITY, "skb_priority", 4),
    Attr(O.OVS_KEY_ATTR_IN_PORT, "in_port", 4),
    Attr(O.OVS_KEY_ATTR_ETHERNET, "eth", O.OVS_KEY_ETHERNET.size),
    Attr(O.OVS_KEY_ATTR_VLAN, "vlan", 2),
    Attr(O.OVS_KEY_ATTR_ETHERTYPE, "eth_type", 2),
    Attr(O.OVS_KEY_ATTR_IPV4, "ipv4", O.OVS_KEY_IPV4.size),
    Attr(O.OVS_KEY_ATTR_IPV6, "ipv6", O.OVS_KEY_IPV6.size),
    Attr(O.OVS_KEY_ATTR_TCP, "tcp", O.OVS_KEY_TCP.size),
    Attr(O.OVS_KEY_ATTR_UDP, "udp", O.OVS_KEY_UDP.size),
    Attr(O.OVS_KEY_ATTR_ICMP, "icmp", O.OVS_KEY_ICMP.size),
    Attr(O.OVS_KEY_ATTR_ICMPV6, "icmpv6", O.OVS_KEY_ICMPV6.size),
    Attr(O.OVS_KEY_ATTR_ARP, "arp", O.OVS_KEY_ARP.size),
    Attr(O.OVS_KEY_ATTR_ND, "nd", O.OVS_KEY_ND.size),
    Attr(O.OVS_KEY_ATTR_SKB_MARK, "skb_mark", 4),
    Attr(O.OVS_KEY_ATTR_TUNNEL, "tunnel", NESTED, next=TUNNEL_KEY),
    Attr(O.OVS_KEY_ATTR_SCTP, "sctp", O.OVS_KEY_SCTP.size),
    Attr(O.OVS_KEY_ATTR_TCP_FLAGS, "tcp_flags", 2),
    Attr(O.OVS_KEY_ATTR_DP_HASH, "dp_hash", 4),
    Attr(O.OVS_KEY_ATTR_RECIRC_ID, "recirc_id", 4),
    Attr(O.OVS_KEY_ATTR_MPLS, "mpls", VARIABLE),
    Attr(O.OVS_KEY_ATTR_CT_STATE, "ct_state", 4),
    Attr(O.OVS_KEY_ATTR_CT_ZONE, "ct_zone", 2),
    Attr(O.OVS_KEY_ATTR_CT_MARK, "ct_mark", 4),
    Attr(O.OVS_KEY_ATTR_CT_LABELS, "ct_label", O.OVS_KEY_CT_LABELS_LEN),
    Attr(O.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4, "ct_tuple4", O.OVS_KEY_CT_TUPLE_IPV4.size),
    Attr(O.OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6, "ct_tuple6", O.OVS_KEY_CT_TUPLE_IPV6.size),
    Attr(O.OVS_KEY_ATTR_NSH, "nsh", NESTED, next=NSH_KEY),
    # userspace only: the kernel refuses them
    Attr(O.OVS_KEY_ATTR_PACKET_TYPE, "packet_type", None, ovs=O.OVS_KEY_PACKET_TYPE.size),
    Attr(O.OVS_KEY_ATTR_ND_EXTENSIONS, "nd_ext", None, ovs=O.OVS_KEY_ND_EXTENSIONS.size),
    Attr(O.OVS_KEY_ATTR_TUNNEL_INFO, None, None, ovs=None),
    # Linux (5.18+) reports the IPv6 extension-header bits with every IPv6
    # flow, nearly always with a zero mask.  Open vSwitch 3.1 predates it (its
    # table ends at ND_EXTENSIONS, so it prints a "bad key length" dump of it
    # glued to the previous field, which no parser reads).  ovsdp's text form
    # knows it by length, so that it is left out when wildcarded like any
    # other field, and printed generically, key32(...), when a flow matches on it.
    Attr(O.OVS_KEY_ATTR_IPV6_EXTHDRS, None, 2),
])
KEY.nest(O.OVS_KEY_ATTR_ENCAP, KEY)

# Fixed action payload lengths (flow_netlink.c __ovs_nla_copy_actions(),
# odp-util.c odp_action_len(): the same in both but for userspace's own
# actions); 0 for a type without a row.
ACTION = AttrTable("action", O.OVS_ACTION_ATTR_MAX, [
    Attr(O.OVS_ACTION_ATTR_OUTPUT, "output", 4),
    Attr(O.OVS_ACTION_ATTR_USERSPACE, "userspace", VARIABLE),
    Attr(O.OVS_ACTION_ATTR_SET, "set", VARIABLE),
    Attr(O.OVS_ACTION_ATTR_PUSH_VLAN, "push_vlan", 4),
    Attr(O.OVS_ACTION_ATTR_POP_VLAN, "pop_vlan", 0),
    Attr(O.OVS_ACTION_ATTR_SAMPLE, "sample", VARIABLE),
    Attr(O.OVS_ACTION_ATTR_RECIRC, "recirc", 4),
    Attr(O.OVS_ACTION_ATTR_HASH, "hash", 8),
    Attr(O.OVS_ACTION_ATTR_PUSH_MPLS, "push_mpls", 8),
    Attr(O.OVS_ACTION_ATTR_POP_MPLS, "pop_mpls", 2),
    Attr(O.OVS_ACTION_ATTR_SET_MASKED, "set_masked", VARIABLE),
    Attr(O.OVS_ACTION_ATTR_CT, "ct", VARIABLE),
    Attr(O.OVS_ACTION_ATTR_TRUNC, "trunc", 4),
    Attr(O.OVS_ACTION_ATTR_PUSH_ETH, "push_eth", 12),
    Attr(O.OVS_ACTION_ATTR_POP_ETH, "pop_eth", 0),
    Attr(O.OVS_ACTION_ATTR_CT_CLEAR, "ct_clear", 0),
    Attr(O.OVS_ACTION_ATTR_PUSH_NSH, "push_nsh", VARIABLE),
    Attr(O.OVS_ACTION_ATTR_POP_NSH, "pop_nsh", 0),
    Attr(O.OVS_ACTION_ATTR_METER, "meter", 4),
    Attr(O.OVS_ACTION_ATTR_CLONE, "clone", VARIABLE),
    Attr(O.OVS_ACTION_ATTR_CHECK_PKT_LEN, "check_pkt_len", VARIABLE),
    Attr(O.OVS_ACTION_ATTR_ADD_MPLS, "add_mpls", 8),
    Attr(O.OVS_ACTION_ATTR_DEC_TTL, "dec_ttl", VARIABLE),
    Attr(O.OVS_ACTION_ATTR_DROP, "drop", 4),
    Attr(O.OVS_ACTION_ATTR_PSAMPLE, "psample", VARIABLE),
    # Open vSwitch userspace's own (the kernel refuses them: type > MAX).
    Attr(O.OVS_ACTION_ATTR_TUNNEL_PUSH, "tnl_push", None, ovs=VARIABLE),
    Attr(O.OVS_ACTION_ATTR_TUNNEL_POP, "tnl_pop", None, ovs=4),
    Attr(O.OVS_ACTION_ATTR_LB_OUTPUT, "lb_output", None, ovs=4),
])
