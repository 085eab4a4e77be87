"""Meters (net/openvswitch/meter.c): per-datapath token buckets for the METER action.

A meter has bands (the kernel allows one, of type DROP) with a rate in
kilobits or packets per second and a burst size.  Each band keeps a bucket
of bits (kbps) or thousandths of a packet, refilled by rate x milliseconds
up to burst x 1000; a packet costs its bits or 1000.  When a band's bucket
cannot pay, the packet exceeded it; of the bands exceeded, the one with the
highest rate counts the packet, and a DROP band drops it.  Sans I/O.
"""

import errno
import time

from .. import uapi as U
from ..netlink import attr as A
from ..netlink.attr import NetlinkError, nla_nest, nla_u32, nla_u64

DP_MAX_BANDS = 1
DP_METER_NUM_MAX = 200_000       # max_meters_allowed (the kernel: less with little memory)

def now_ms():
    """Milliseconds on the monotonic clock (the meters' clock; also the one
    OVS_FLOW_ATTR_USED uses)."""
    return time.monotonic_ns() // 1_000_000


BAND_POLICY = {
    U.OVS_BAND_ATTR_TYPE: A.Policy(A.U32),
    U.OVS_BAND_ATTR_RATE: A.Policy(A.U32),
    U.OVS_BAND_ATTR_BURST: A.Policy(A.U32),
    U.OVS_BAND_ATTR_STATS: A.Policy(A.UNSPEC, U.OVS_FLOW_STATS.size),
}


class Band:
    __slots__ = ("type", "rate", "burst", "bucket", "packets", "bytes")

    def __init__(self, btype, rate, burst):
        self.type = btype
        self.rate = rate
        self.burst = burst
        self.bucket = burst * 1000           # start with a full bucket
        self.packets = self.bytes = 0


class Meter:
    """struct dp_meter."""

    __slots__ = ("id", "kbps", "keep_stats", "used", "packets", "bytes", "bands",
                 "max_delta_t")

    def __init__(self, meter_id, kbps, keep_stats, bands, now):
        self.id = meter_id
        self.kbps = kbps
        self.keep_stats = keep_stats
        self.used = now
        self.packets = self.bytes = 0
        self.bands = bands
        # enough milliseconds to fill any bucket, so the refill cannot overflow
        self.max_delta_t = max((b.bucket // b.rate for b in bands), default=0)

    def execute(self, length, now):
        """ovs_meter_execute(): True when a DROP band says the packet goes."""
        delta = min(max(now - self.used, 0), self.max_delta_t)
        self.used = now
        self.packets += 1
        self.bytes += length
        cost = length * 8 if self.kbps else 1000
        exceeded = None
        for band in self.bands:
            bucket = min(band.bucket + delta * band.rate, band.burst * 1000)
            if bucket >= cost:
                bucket -= cost
            elif exceeded is None or band.rate > exceeded.rate:
                exceeded = band
            band.bucket = bucket
        if exceeded is None:
            return False
        exceeded.packets += 1
        exceeded.bytes += length
        return exceeded.type == U.OVS_METER_BAND_TYPE_DROP

    def stats_attrs(self):
        """ovs_meter_cmd_reply_stats() after the ID: stats, used, each band's stats."""
        bands = [nla_nest(U.OVS_BAND_ATTR_UNSPEC,
                          A.nla(U.OVS_BAND_ATTR_STATS, U.OVS_FLOW_STATS.pack(b.packets, b.bytes)))
                 for b in self.bands]
        return (A.nla(U.OVS_METER_ATTR_STATS, U.OVS_FLOW_STATS.pack(self.packets, self.bytes))
                + nla_u64(U.OVS_METER_ATTR_USED, self.used)
                + nla_nest(U.OVS_METER_ATTR_BANDS, *bands))


def create(attrs, now):
    """dp_meter_create(): a Meter from an OVS_METER_CMD_SET's attributes."""
    bands_attr = attrs.get(U.OVS_METER_ATTR_BANDS)
    if bands_attr is None:
        raise NetlinkError(errno.EINVAL, "meter needs OVS_METER_ATTR_BANDS")
    raw = [p for _t, p, _off in A.iter_attrs(bands_attr)]
    if len(raw) > DP_MAX_BANDS:
        raise NetlinkError(errno.EINVAL, f"a meter has at most {DP_MAX_BANDS} band")
    bands = []
    for payload in raw:
        b = A.parse(payload, U.OVS_BAND_ATTR_MAX, BAND_POLICY)
        if not all(t in b for t in (U.OVS_BAND_ATTR_TYPE, U.OVS_BAND_ATTR_RATE,
                                    U.OVS_BAND_ATTR_BURST)):
            raise NetlinkError(errno.EINVAL, "a band needs TYPE, RATE and BURST")
        rate = A.get_u32(b[U.OVS_BAND_ATTR_RATE])
        if not rate:
            raise NetlinkError(errno.EINVAL, "a band's rate cannot be 0")
        bands.append(Band(A.get_u32(b[U.OVS_BAND_ATTR_TYPE]), rate,
                          A.get_u32(b[U.OVS_BAND_ATTR_BURST])))
    meter = Meter(A.get_u32(attrs[U.OVS_METER_ATTR_ID]), U.OVS_METER_ATTR_KBPS in attrs,
                  U.OVS_METER_ATTR_CLEAR not in attrs, bands, now)
    stats = attrs.get(U.OVS_METER_ATTR_STATS)
    if meter.keep_stats and stats is not None:
        meter.packets, meter.bytes = U.OVS_FLOW_STATS.unpack_from(stats)
    return meter


def features_attrs():
    """ovs_meter_cmd_features(): the limits and the one band type there is."""
    return (nla_u32(U.OVS_METER_ATTR_MAX_METERS, DP_METER_NUM_MAX)
            + nla_u32(U.OVS_METER_ATTR_MAX_BANDS, DP_MAX_BANDS)
            + nla_nest(U.OVS_METER_ATTR_BANDS,
                       nla_nest(U.OVS_BAND_ATTR_UNSPEC,
                                nla_u32(U.OVS_BAND_ATTR_TYPE, U.OVS_METER_BAND_TYPE_DROP))))
