"""The packet path is written once: a frame alone and a batch of frames take
the same per-frame step (exact-match cache, megaflows, MISS, statistics,
outputs or the interpreter), and give the same results."""

import pytest

from ovsdp import odp
from ovsdp.datapath import flow_key as F
from ovsdp.datapath import flow_netlink_put as FNP
from ovsdp.datapath import key_layout as K


def _arp(last):
    return bytes(11) + bytes([last]) + b"\x08\x06" + bytes(28)


A, B, C = _arp(1), _arp(2), _arp(3)       # A: outputs only; B: the interpreter; C: no flow
FRAMES = [A, B, C, A, A, B, A]


def _setup(dpif, name):
    dpif.dp_new(name)
    for i in (1, 2):
        dpif.vport_new(name, f"{name}{i}", "dummy", port_no=i)
    meta = K.make(in_port=1)
    for frame, actions in ((A, "2"), (B, "set(skb_mark(7)),2")):
        k = F.extract(frame, meta)
        dpif.flow_new(name, FNP.put_key(k, k, False), odp.parse_actions(actions),
                      ufid=frame[11:12] * 16)


@pytest.mark.parametrize("how", ["one by one", "one batch", "batches of two"])
def test_a_frame_alone_and_in_a_batch_take_the_same_path(daemon, dpif, how):
    name = "pp" + how[-3:].replace(" ", "")
    _setup(dpif, name)
    module = daemon.module

    def run():
        dp = module.find_datapath(module.init_net, name)
        port = dp.ports[1]
        if how == "one by one":
            for f in FRAMES:
                dp.receive(f, port)
        elif how == "one batch":
            dp.receive_batch(FRAMES, port)
        else:
            for i in range(0, len(FRAMES), 2):
                dp.receive_batch(FRAMES[i:i + 2], port)
        return dp.ports[2].fetch()
    # every frame with a flow goes out, in the order it came in
    assert daemon.call(run) == [A, B, A, A, B, A]
    flows = {f.ufid[0]: f for f in dpif.flow_dump(name)}
    assert (flows[1].packets, flows[1].bytes) == (4, 4 * len(A))
    assert (flows[2].packets, flows[2].bytes) == (2, 2 * len(B))
    assert flows[1].used and flows[2].used
    info = dpif.dp_get(name)
    assert (info.n_hit, info.n_missed, info.n_lost) == (6, 1, 0)
    up = dpif.recv_upcall()             # C went up as a MISS, once
    assert bytes(up.packet) == C
    assert info.n_mask_hit == 6 + 1     # each hit tried one mask; so did the miss's lookup
