"""The netdev vport's ring handling without a device, and the loop under it.

An anonymous mapping stands in for the kernel's TPACKET_V2 RX ring (frames
are put in slots and handed over with TP_STATUS_USER, as the kernel does),
so what one look at the ring does is checked exactly: the frames reach the
datapath and the port they are switched to, slots go back to the kernel,
and a loaded port's wake-ups are paused and its next look deferred
(coalescing) until a look finds the ring empty.
"""

import mmap
import os
import struct
import time

import pytest

from ovsdp import odp, vports
from ovsdp import uapi as U
from ovsdp.datapath import flow_netlink as FN
from ovsdp.datapath import flow_netlink_actions as FA
from ovsdp.datapath.flow_table import Flow
from ovsdp.datapath.module import Module
from ovsdp.datapath.vport import VportParms
from ovsdp.server.loop import Loop
from ovsdp.vports import netdev as N

MAC_OFF = 80                    # where the kernel would put the frame in a slot


class FakeLoop:
    def __init__(self):
        self.calls = []

    def call_soon(self, cb, *args):
        self.calls.append(("soon", cb))

    def call_later(self, delay, cb, *args):
        self.calls.append(("later", delay, cb))

    def pause_reader(self, fd):
        self.calls.append(("pause", fd))

    def resume_reader(self, fd):
        self.calls.append(("resume", fd))


class FakeSock:
    def fileno(self):
        return 99

    def send(self, *args):
        return 0


@pytest.fixture
def port():
    m = vports.register(Module(real_devices=False))
    dp = m.new_datapath(m.init_net, "rdp")
    m.new_vport(VportParms("rdp", U.OVS_VPORT_TYPE_INTERNAL, None, dp, 0, b"\0\0\0\0"))
    m.add_datapath(dp)
    out = m.new_vport(VportParms("out2", U.OVS_VPORT_TYPE_DUMMY, None, dp, 2, b"\0\0\0\0"))
    ops = m.vport_types[U.OVS_VPORT_TYPE_NETDEV]
    v = N.NetdevVport(ops, VportParms("ring1", U.OVS_VPORT_TYPE_NETDEV, None, dp, 1,
                                      b"\0\0\0\0"))
    v.ring = mmap.mmap(-1, N.BLOCK_SIZE * N.BLOCK_NR + N.TX_BLOCK_SIZE * N.TX_BLOCK_NR)
    v.offsets = [(i // N.FRAMES_PER_BLOCK) * N.BLOCK_SIZE + (i % N.FRAMES_PER_BLOCK)
                 * N.FRAME_SIZE for i in range(N.FRAME_NR)]
    v.tx_offsets = [N.BLOCK_SIZE * N.BLOCK_NR + i * N.TX_FRAME_SIZE
                    for i in range(N.TX_FRAME_NR)]
    v.sock, v.loop, v.vnet_ok, v.max_plain = FakeSock(), FakeLoop(), True, 1514
    dp.ports[1] = v
    dp.ports_gen += 1
    k, mk = odp.parse_key("in_port(1),eth()")
    key, mask = FN.get_match(k, mk)
    acts = FA.copy_actions(odp.parse_actions("2"), key & mask)
    dp.table.insert(Flow(key & mask, None, os.urandom(16), acts, FA.put_actions(acts)), mask)
    yield v, out
    v.ring.close()
    v.ring = None


def frame(i):
    return bytes.fromhex("020000000002020000000001") + b"\x88\xb5" + struct.pack("!I", i) \
        + bytes(46)


def fill(v, n, first=0):
    """Hand ``n`` frames to userspace in the next slots, as the kernel does."""
    for i in range(n):
        off = v.offsets[(v.head + i) % N.FRAME_NR]
        f = frame(first + i)
        v.ring[off + MAC_OFF:off + MAC_OFF + len(f)] = f
        N.TPACKET2_HDR.pack_into(v.ring, off, N.TP_STATUS_USER, len(f), len(f), MAC_OFF,
                                 MAC_OFF + 14, 0, 0, 0, 0)


def test_a_light_look_takes_the_frames_and_looks_again_soon(port):
    v, out = port
    fill(v, 5)
    assert v._readable() == 5
    assert out.fetch() == [frame(i) for i in range(5)]
    assert all(v.ring[v.offsets[i]] == N.TP_STATUS_KERNEL for i in range(5))  # slots returned
    assert v.loop.calls == [("soon", v._readable)] and not v.paused
    assert (v.rx_packets, v.head) == (5, 5)
    v.loop.calls.clear()
    assert v._readable() == 0                   # empty, and not paused: nothing to do
    assert v.loop.calls == []


def test_a_loaded_port_pauses_its_wakeups_until_the_ring_is_empty(port):
    v, out = port
    fill(v, N.COALESCE_MIN)
    assert v._readable() == N.COALESCE_MIN
    assert v.paused
    assert v.loop.calls == [("pause", 99), ("later", N.COALESCE_DELAY, v._readable)]
    v.loop.calls.clear()
    fill(v, N.READ_BATCH + 10, first=1000)      # more than one look takes
    assert v._readable() == N.READ_BATCH
    assert v.loop.calls == [("later", N.COALESCE_DELAY, v._readable)]   # paused already
    v.loop.calls.clear()
    assert v._readable() == 10                  # a light look: again at once
    assert v.loop.calls == [("soon", v._readable)] and v.paused
    v.loop.calls.clear()
    assert v._readable() == 0                   # empty: wake-ups back on
    assert v.loop.calls == [("resume", 99)] and not v.paused
    got = out.fetch()
    assert len(got) == N.COALESCE_MIN + N.READ_BATCH + 10
    assert got[-1] == frame(1000 + N.READ_BATCH + 9)


def test_a_port_destroyed_while_paused_is_left_alone(port):
    v, _ = port
    fill(v, N.COALESCE_MIN)
    v._readable()
    v.loop.calls.clear()
    v.sock = None                               # destroyed meanwhile
    ring, v.ring = v.ring, None
    assert v._readable() == 0
    assert v.loop.calls == []
    v.ring = ring


# ------------------------------------------------------------------ the loop
def test_loop_pause_and_resume_reader():
    loop = Loop()
    r, w = os.pipe()
    try:
        seen = []
        loop.add_reader(r, lambda: seen.append(os.read(r, 100)))
        os.write(w, b"a")
        loop.pause_reader(r)
        loop.run_once(0.05)
        assert seen == []                       # data waiting, but not reported
        loop.resume_reader(r)
        loop.run_once(0.05)
        assert seen == [b"a"]
    finally:
        os.close(r)
        os.close(w)


def test_loop_short_timers_fire_on_time_not_early():
    loop = Loop()
    fired = []
    t0 = time.monotonic()
    loop.call_later(300e-6, lambda: fired.append(time.monotonic() - t0))
    while not fired and time.monotonic() - t0 < 5:
        loop.run_once()
    assert fired and fired[0] >= 300e-6
