"""The megaflow table against a brute-force scan, plus its bookkeeping.

Megaflows should not overlap (there is no priority).  When they do, the
kernel's answer depends on its mask cache; these tests pin down what is
guaranteed: the first matching mask wins when no cached index is tried, and
any answer is a flow that matches.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from ovsdp.datapath import key_layout as K
from ovsdp.datapath.flow_table import Flow, FlowTable

# A small key space so that random keys often hit random flows.
FIELDS = {
    "in_port": [1, 2, 3],
    "eth_type": [0x0800, 0x86DD],
    "ipv4_src": [0x0A000001, 0x0A000002, 0x0A0000FF, 0x0B000001],
    "tp_dst": [80, 443, 8080],
    "vlan_tci": [0, 0x1005],
}
PARTIAL = {"ipv4_src": [0xFFFFFF00, 0xFFFF0000], "tp_dst": [0xFF00]}

key_st = st.fixed_dictionaries({f: st.sampled_from(v) for f, v in FIELDS.items()}).map(
    lambda d: K.make(**d))


@st.composite
def mask_st(draw):
    m = 0
    for f in FIELDS:
        choice = draw(st.sampled_from(["none", "full"] + (["partial"] if f in PARTIAL else [])))
        if choice == "full":
            m |= K.ones(f)
        elif choice == "partial":
            m |= draw(st.sampled_from(PARTIAL[f])) << K.FIELDS[f][0]
    return m


def matching(table, key):
    """Every flow that matches ``key``, in the table's mask order."""
    return [f for m in table.masks for f in table.flows.values()
            if f.mask is m and key & m.mask == f.key]


def fresh_flow(key, mask, n):
    return Flow(key & mask, key, None, ((1, n),), b"")


ops = st.lists(st.tuples(st.sampled_from(["add", "add", "add", "del", "rebalance", "look"]),
                         key_st, mask_st()), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops=ops, probes=st.lists(key_st, min_size=1, max_size=30),
       cache=st.sampled_from([0, 1, 4, 256]))
def test_lookup_matches_brute_force(ops, probes, cache):
    table = FlowTable(cache)
    live = []
    for i, (op, key, mask) in enumerate(ops):
        if op == "add":
            if table.lookup(key & mask) is None:     # as NEW does: no duplicate
                f = fresh_flow(key, mask, i)
                table.insert(f, mask)
                live.append(f)
        elif op == "del" and live:
            f = live.pop(i % len(live))
            table.remove(f)
        elif op == "rebalance":
            table.rebalance()
        else:
            table.lookup_stats(key, hash(key) & 0xFFFFFFFF or 1)
    assert len(table) == len(live)
    assert table.n_masks == len({f.mask.mask for f in live})
    for key in probes:
        found = matching(table, key)
        want = found[0] if found else None
        # without a cache, the first mask in order wins
        assert table.lookup(key) is want
        assert table.lookup_stats(key, 0)[0] is want
        for h in (hash(key) & 0xFFFFFFFF or 1, 7):
            f, mask_hit, cache_hit = table.lookup_stats(key, h)
            # a cached mask index is tried first, as in the kernel: with
            # overlapping megaflows any matching flow may come back
            if len(found) <= 1:
                assert f is want
            else:
                assert f in found
            assert 0 <= mask_hit <= table.n_masks and cache_hit in (0, 1)


def test_masks_are_shared_and_compacted():
    t = FlowTable()
    m1, m2, m3 = K.ones("in_port"), K.ones("eth_type"), K.ones("tp_dst")
    a = fresh_flow(K.make(in_port=1), m1, 1)
    b = fresh_flow(K.make(in_port=2), m1, 2)
    c = fresh_flow(K.make(eth_type=0x800), m2, 3)
    d = fresh_flow(K.make(tp_dst=80), m3, 4)
    for f, m in ((a, m1), (b, m1), (c, m2), (d, m3)):
        t.insert(f, m)
    assert [m.mask for m in t.masks] == [m1, m2, m3]
    assert a.mask is b.mask and a.mask.ref_count == 2
    t.remove(a)
    assert t.n_masks == 3 and b.mask.ref_count == 1
    t.remove(c)                          # the last mask takes the freed slot
    assert [m.mask for m in t.masks] == [m1, m3]
    t.remove(b)
    t.remove(d)
    assert t.n_masks == 0 and len(t) == 0


def test_first_mask_wins_and_rebalance_reorders_by_use():
    t = FlowTable(0)
    wide, narrow = K.ones("in_port"), K.ones("in_port") | K.ones("tp_dst")
    fw = fresh_flow(K.make(in_port=1), wide, 1)
    fn = fresh_flow(K.make(in_port=1, tp_dst=80), narrow, 2)
    t.insert(fw, wide)
    t.insert(fn, narrow)
    k = K.make(in_port=1, tp_dst=80)
    assert t.lookup(k) is fw                 # overlapping megaflows: mask order decides
    other = K.make(in_port=2, tp_dst=80)
    t.insert(fresh_flow(K.make(in_port=2, tp_dst=80), narrow, 3), narrow)
    for _ in range(5):
        t.lookup_stats(other, 0)             # only the narrow mask matches: it is used more
    assert t.rebalance()
    assert t.masks[0].mask == narrow
    assert t.lookup(k) is fn
    assert not t.rebalance()                 # no new use: the order stands


def test_mask_cache_counts_hits():
    t = FlowTable(256)
    masks = [K.ones("in_port"), K.ones("eth_type"), K.ones("tp_dst")]
    for i, m in enumerate(masks):
        t.insert(fresh_flow(K.make(in_port=1, eth_type=0x800, tp_dst=80 + i), m, i), m)
    k = K.make(in_port=9, eth_type=0x86DD, tp_dst=82)      # only the third mask matches
    f, tried, hit = t.lookup_stats(k, 1234)
    assert f is not None and tried == 3 and hit == 0
    f2, tried, hit = t.lookup_stats(k, 1234)                # cached mask index
    assert f2 is f and tried == 1 and hit == 1


def test_cache_size_rules():
    t = FlowTable()
    assert t.cache_size == 256
    for ok in (0, 1, 2, 1024, 4096):
        assert t.resize_cache(ok) and t.cache_size == ok
    for bad in (3, 6, 100, 8192):
        assert not t.resize_cache(bad)


def test_exact_lookup_needs_unmasked_key_and_no_ufid():
    t = FlowTable()
    m = K.ones("in_port")
    k = K.make(in_port=1, tp_dst=80)
    f = Flow(k & m, k, None, (), b"")
    t.insert(f, m)
    assert t.lookup_exact(k) is f
    assert t.lookup_exact(K.make(in_port=1, tp_dst=81)) is None   # same megaflow, other key
    g = Flow(K.make(in_port=2), K.make(in_port=2), b"u" * 16, (), b"")
    t.insert(g, m)
    assert t.lookup_exact(K.make(in_port=2)) is None               # UFID flows: by UFID only
    assert t.lookup_ufid(b"u" * 16) is g


def test_emc_is_cleared_by_changes():
    t = FlowTable()
    t.emc[1] = object()
    m = K.ones("in_port")
    f = fresh_flow(K.make(in_port=1), m, 1)
    t.insert(f, m)
    assert not t.emc
    t.emc[1] = f
    t.remove(f)
    assert not t.emc
    t.emc[1] = f
    t.flush()
    assert not t.emc and len(t) == 0 and t.n_masks == 0
