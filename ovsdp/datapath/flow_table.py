"""The megaflow table (net/openvswitch/flow_table.c).

Tuple-space search: flows are grouped by mask; each mask has a subtable (a
dict from ``key & mask`` to the flow).  A lookup tries the masks in order and
the first match wins (megaflows must not overlap; there is no priority).
Masks are deduplicated and reference counted, kept in a compact array (a
removed mask's slot takes the last mask), and re-ranked by use every few
seconds.  A per-datapath mask cache (the kernel's per-CPU one; ovsdp runs
one packet loop) remembers which mask a packet hash last hit.

In front of that ovsdp keeps an exact-match cache (full key -> flow), cleared
whenever the table changes; a hit there counts as the kernel's mask cache
would count it for a repeated flow (one mask hit, one cache hit).
"""

from .. import uapi as U
from .flow_hash import jhash_1word as _jhash_1word
from .flow_netlink_actions import put_actions
from .key_layout import S_RECIRC_ID as _S_RECIRC

MASK_ARRAY_SIZE_MIN = 16
MC_HASH_SHIFT = 8
MC_HASH_SEGS = 4          # (32 + MC_HASH_SHIFT - 1) / MC_HASH_SHIFT
EMC_MAX = 8192
REBALANCE_INTERVAL_MS = 4000


class Mask:
    """struct sw_flow_mask: a deduplicated mask and its subtable."""

    __slots__ = ("mask", "ref_count", "flows", "usage", "last_usage")

    def __init__(self, mask):
        self.mask = mask
        self.ref_count = 0
        self.flows = {}         # masked key -> Flow
        self.usage = 0          # masks_usage_stats
        self.last_usage = 0     # usage at the previous rebalance


class Flow:
    """struct sw_flow: a megaflow with its actions and statistics."""

    __slots__ = ("key", "mask", "unmasked_key", "ufid", "acts", "_acts_bytes",
                 "packets", "bytes", "used", "tcp_flags", "outputs", "out_vports",
                 "out_ports_gen")

    def __init__(self, key, unmasked_key, ufid, acts, acts_bytes=None):
        self.key = key                  # masked key
        self.mask = None                # Mask, set on insert
        self.unmasked_key = unmasked_key
        self.ufid = ufid                # bytes or None (then the unmasked key identifies it)
        self.packets = 0
        self.bytes = 0
        self.used = 0                   # ms, monotonic clock; 0 = never
        self.tcp_flags = 0
        self.set_actions(acts, acts_bytes)

    def set_actions(self, acts, acts_bytes=None):
        """The flow's actions (an ActionList); ``acts_bytes``, their attribute
        stream, is made from them when first asked for if not given."""
        self.acts = acts
        self._acts_bytes = acts_bytes
        # A flow whose actions are only outputs takes the datapath's fast
        # path: the packet goes to each port without an Skb.
        if acts and all(a[0] == U.OVS_ACTION_ATTR_OUTPUT for a in acts):
            self.outputs = tuple(a[1] for a in acts)
        else:
            self.outputs = None
        self.out_vports = ()            # the output ports resolved, valid for out_ports_gen
        self.out_ports_gen = -1

    @property
    def acts_bytes(self):
        """ovs_nla_put_actions() of the actions, made once (replies and dumps)."""
        b = self._acts_bytes
        if b is None:
            b = self._acts_bytes = put_actions(self.acts)
        return b

    def clear_stats(self):
        self.packets = self.bytes = self.used = self.tcp_flags = 0

    @property
    def mask_key(self):
        return self.mask.mask if self.mask is not None else 0


class FlowTable:
    """struct flow_table."""

    def __init__(self, cache_size=U.DP_MASKS_CACHE_DEFAULT):
        self.masks = []          # compact array of Mask, lookup order
        self.by_ufid = {}
        self.flows = {}          # id(flow) -> flow, insertion order (dump order)
        self.emc = {}            # exact-match cache: full key -> flow (emc_insert)
        self.cache_size = 0
        self.cache = None
        self.resize_cache(cache_size)

    # ------------------------------------------------------------ counters
    def __len__(self):
        return len(self.flows)

    @property
    def n_masks(self):
        return len(self.masks)

    # ---------------------------------------------------------- mask cache
    def resize_cache(self, size):
        """ovs_flow_tbl_masks_cache_resize(): 0 or a power of two <= 4096."""
        if size == self.cache_size and self.cache is not None:
            return True
        if (size & (size - 1)) or size > U.DP_MASKS_CACHE_MAX:
            return False
        self.cache_size = size
        # entries: [skb_hash, mask_index]
        self.cache = [[0, 0] for _ in range(size)]
        return True

    # -------------------------------------------------------------- lookup
    def _flow_lookup(self, key, index):
        """flow_lookup(): try ``index`` first, then every other mask.

        Returns (flow, masks tried, cache hit, index of the mask that hit).
        """
        masks = self.masks
        tried = 0
        if index < len(masks):
            m = masks[index]
            tried = 1
            f = m.flows.get(key & m.mask)
            if f is not None:
                m.usage += 1
                return f, 1, 1, index
        for i, m in enumerate(masks):
            if i == index:
                continue
            tried += 1
            f = m.flows.get(key & m.mask)
            if f is not None:
                m.usage += 1
                return f, tried, 0, i
        return None, tried, 0, index

    def lookup_stats(self, key, skb_hash):
        """ovs_flow_tbl_lookup_stats(): (flow or None, n_mask_hit, n_cache_hit)."""
        if not skb_hash or not self.cache_size:
            f, tried, _, _ = self._flow_lookup(key, 0)
            return f, tried, 0
        recirc = (key >> _S_RECIRC) & 0xFFFFFFFF
        if recirc:
            skb_hash = _jhash_1word(skb_hash, recirc)
        entries = self.cache
        mask = self.cache_size - 1
        h = skb_hash
        ce = None
        for _ in range(MC_HASH_SEGS):
            e = entries[h & mask]
            if e[0] == skb_hash:
                f, tried, hit, idx = self._flow_lookup(key, e[1])
                e[1] = idx
                if f is None:
                    e[0] = 0
                return f, tried, hit
            if ce is None or e[0] < ce[0]:
                ce = e
            h >>= MC_HASH_SHIFT
        f, tried, _, idx = self._flow_lookup(key, ce[1])
        ce[1] = idx
        if f is not None:
            ce[0] = skb_hash
        return f, tried, 0

    def emc_insert(self, key, flow):
        """Remember ``flow`` for the full ``key``; the cache starts over when
        full (it is cleared whenever the table changes, so it never answers
        differently from the masks behind it)."""
        emc = self.emc
        if len(emc) >= EMC_MAX:
            emc.clear()
        emc[key] = flow

    def lookup(self, key):
        """ovs_flow_tbl_lookup(): first flow whose mask matches, no stats."""
        for m in self.masks:
            f = m.flows.get(key & m.mask)
            if f is not None:
                return f
        return None

    def lookup_exact(self, key, mask=None):
        """ovs_flow_tbl_lookup_exact(): a key-identified flow whose unmasked key is ``key``."""
        for m in self.masks:
            f = m.flows.get(key & m.mask)
            if f is not None and f.ufid is None and f.unmasked_key == key:
                return f
        return None

    def lookup_ufid(self, ufid):
        return self.by_ufid.get(ufid)

    # ----------------------------------------------------------- mutation
    def insert(self, flow, mask):
        """ovs_flow_tbl_insert(): add ``flow`` (whose key is already masked)."""
        m = None
        for cand in self.masks:
            if cand.mask == mask:
                m = cand
                break
        if m is None:
            m = Mask(mask)
            self.masks.append(m)
        m.ref_count += 1
        flow.mask = m
        m.flows[flow.key] = flow
        self.flows[id(flow)] = flow
        if flow.ufid is not None:
            self.by_ufid[flow.ufid] = flow
        self.emc.clear()

    def remove(self, flow):
        """ovs_flow_tbl_remove()."""
        m = flow.mask
        if self.flows.pop(id(flow), None) is None:
            return
        if m.flows.get(flow.key) is flow:
            del m.flows[flow.key]
        if flow.ufid is not None and self.by_ufid.get(flow.ufid) is flow:
            del self.by_ufid[flow.ufid]
        m.ref_count -= 1
        if m.ref_count == 0:
            i = self.masks.index(m)
            last = self.masks.pop()
            if last is not m:
                self.masks[i] = last
        self.emc.clear()

    def flush(self):
        """ovs_flow_tbl_flush()."""
        self.masks = []
        self.by_ufid = {}
        self.flows = {}
        self.emc.clear()
        if self.cache is not None:
            for e in self.cache:
                e[0] = e[1] = 0

    def rebalance(self):
        """ovs_flow_masks_rebalance(): order masks by use since last time."""
        if len(self.masks) < 2:
            for m in self.masks:
                m.last_usage = m.usage
            return False
        deltas = [(m.usage - m.last_usage, i, m) for i, m in enumerate(self.masks)]
        for m in self.masks:
            m.last_usage = m.usage
        order = sorted(deltas, key=lambda t: (-t[0], t[1]))
        if all(t[1] == i for i, t in enumerate(order)):
            return False
        self.masks = [t[2] for t in order]
        self.emc.clear()
        return True

    def __iter__(self):
        return iter(list(self.flows.values()))

