"""The packet as the datapath carries it (the parts of sk_buff OVS uses).

The hot path (a flow whose actions are plain outputs) never builds one of
these; everything else (EXECUTE, upcalls, modifying actions, recirculation)
works on an :class:`Skb`.
"""


class TunnelInfo:
    """Egress tunnel metadata (struct ip_tunnel_info) set by set(tunnel(...)).

    ``key`` is a flow key int holding only the tun_* fields.
    """

    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    def __eq__(self, other):
        return isinstance(other, TunnelInfo) and other.key == self.key

    def __repr__(self):
        return f"TunnelInfo({self.key:#x})"


class Skb:
    """A packet in flight through the datapath.

    ``data`` is the frame from the Ethernet header on (from the network
    header when the key says no_eth); it is ``bytes`` until an action needs
    to write, which replaces it with a ``bytearray``.
    """

    __slots__ = ("data", "input_vport", "priority", "mark", "hash", "l4_hash",
                 "sw_hash", "mru", "cutlen", "tun_info", "nfct", "csum_partial",
                 "upcall_pid", "frag_id", "probability")

    def __init__(self, data, input_vport=None, priority=0, mark=0):
        self.data = data
        self.input_vport = input_vport
        self.priority = priority
        self.mark = mark
        self.hash = 0            # skb->hash (32 bits), 0 = not computed
        self.l4_hash = False
        self.sw_hash = False
        self.mru = 0
        self.cutlen = 0          # bytes to cut on output (trunc action)
        self.tun_info = None     # egress TunnelInfo
        self.nfct = None         # skb->_nfct: the conntrack CtResult (connection, ctinfo)
        self.csum_partial = None  # (csum_start, csum_offset) when the L4 checksum is partial
        self.upcall_pid = 0       # OVS_PACKET_ATTR_UPCALL_PID of an EXECUTE
        self.frag_id = None       # the IPv6 fragment id of a reassembled datagram
        self.probability = 0      # OVS_CB(skb)->probability: the sample() it runs in (0: none)

    def clone(self):
        d = self.data
        if type(d) is not bytes:
            d = bytes(d)        # a clone must not share a writable buffer
        c = Skb(d, self.input_vport, self.priority, self.mark)
        c.hash = self.hash
        c.l4_hash = self.l4_hash
        c.sw_hash = self.sw_hash
        c.mru = self.mru
        c.cutlen = self.cutlen
        c.tun_info = self.tun_info
        c.nfct = self.nfct
        c.csum_partial = self.csum_partial
        c.upcall_pid = self.upcall_pid
        c.frag_id = self.frag_id
        c.probability = self.probability
        return c

    def writable(self):
        """The data as a bytearray that actions may modify in place."""
        d = self.data
        if not isinstance(d, bytearray):
            d = self.data = bytearray(d)
        return d

    def __len__(self):
        return len(self.data)
