"""dpctl's meter commands: the ovs_meter family from the command line.

ovs-dpctl has no meter commands (Open vSwitch reaches datapath meters only
through OpenFlow, ``ovs-ofctl add-meter``), so these take ovs-ofctl's meter
syntax and send what ovs-vswitchd's dpif-netlink sends for it:

    add-meter [DP] meter=ID,kbps|pktps[,burst][,stats],band=type=drop,rate=R[,burst_size=B]
    mod-meter [DP] (the same)      del-meter [DP] meter=ID
    meter-stats [DP] meter=ID      meter-features [DP]

As in dpif-netlink, a band's burst is its ``burst_size`` with the ``burst``
flag (its rate when that is 0) and its rate without.  The kernel's family
cannot list a datapath's meters (OVS_METER_CMD_GET has no dump), so there is
no dump-meters: ask for a meter by its id.
"""

import errno

from ... import uapi as U

# name, usage, min args, max args, handler, read-write (dpctl's Command fields)
COMMANDS = [
    ("add-meter", "[dp] meter=ID,kbps|pktps,band=type=drop,rate=R", 1, 2, "set_meter", True),
    ("mod-meter", "[dp] meter=ID,kbps|pktps,band=type=drop,rate=R", 1, 2, "set_meter", True),
    ("del-meter", "[dp] meter=ID", 1, 2, "del_meter", True),
    ("meter-stats", "[dp] meter=ID", 1, 2, "meter_stats", False),
    ("meter-features", "[dp]", 0, 1, "meter_features", False),
]

USAGE = """\
  add-meter [DP] METER       add a meter: meter=ID,kbps|pktps[,burst],band=type=drop,rate=R
  mod-meter [DP] METER       replace meter ID (the same syntax)
  del-meter [DP] meter=ID    delete meter ID
  meter-stats [DP] meter=ID  show meter ID's statistics
  meter-features [DP]        show what the datapath's meters can do
"""

BAND_TYPES = {"drop": U.OVS_METER_BAND_TYPE_DROP}


class MeterSyntaxError(ValueError):
    pass


def _int(name, value):
    try:
        v = int(value, 0)
    except ValueError:
        raise MeterSyntaxError(f"{name}: {value!r} is not a number") from None
    if not 0 <= v <= 0xFFFFFFFF:
        raise MeterSyntaxError(f"{name}: {value} is out of range")
    return v


def parse_meter(spec, need_bands=True):
    """``meter=ID,kbps|pktps[,burst][,stats],band=...`` -> (id, kbps, [(type, rate, burst)])."""
    head, sep, tail = spec.partition("band=")
    if not sep:
        head, sep, tail = spec.partition("bands=")
    meter_id, kbps, burst_flag = None, False, False
    for tok in (t.strip() for t in head.split(",")):
        if not tok:
            continue
        key, eq, value = tok.partition("=")
        if key == "meter" and eq:
            meter_id = _int("meter", value)
        elif key == "kbps" and not eq:
            kbps = True
        elif key == "pktps" and not eq:
            kbps = False
        elif key == "burst" and not eq:
            burst_flag = True
        elif key == "stats" and not eq:
            pass                     # datapath meters always count
        else:
            raise MeterSyntaxError(f"unknown meter field {tok!r}")
    if meter_id is None:
        raise MeterSyntaxError("meter=ID is required")
    bands = []
    for tok in (t.strip() for t in tail.split(",")):
        if not tok:
            continue
        key, eq, value = tok.partition("=")
        if not eq:
            raise MeterSyntaxError(f"band field {tok!r} needs a value")
        if key == "type":
            if value not in BAND_TYPES:
                raise MeterSyntaxError(f"band type {value!r}: the datapath has only drop")
            bands.append({"type": BAND_TYPES[value], "rate": None, "burst_size": 0})
        elif not bands:
            raise MeterSyntaxError("a band starts with type=")
        elif key in ("rate", "burst_size"):
            bands[-1][key] = _int(key, value)
        else:
            raise MeterSyntaxError(f"unknown band field {tok!r}")
    if need_bands and not bands:
        raise MeterSyntaxError("at least one band=type=drop,rate=R is required")
    out = []
    for b in bands:
        if b["rate"] is None:
            raise MeterSyntaxError("a band needs rate=")
        burst = (b["burst_size"] or b["rate"]) if burst_flag else b["rate"]
        out.append((b["type"], b["rate"], burst))
    return meter_id, kbps, out


def format_stats(st):
    """meter-stats' output, after ovs-ofctl meter-stats."""
    used = f" used:{st.used_ms / 1000:.3f}s" if st.used_ms else " used:never"
    lines = [f"meter:{st.meter_id} packet_in_count:{st.packets} byte_in_count:{st.bytes}"
             f"{used} bands:"]
    for i, (p, b) in enumerate(st.bands):
        lines.append(f"{i}: packet_count:{p} byte_count:{b}")
    return "\n".join(lines) + "\n"


class MeterCommands:
    """The commands, as methods of dpctl's session (``cmd_`` + handler)."""

    def _meter_spec(self, argv, need_bands):
        dp = self.opt_dpif_open(argv, 3)
        try:
            return dp, parse_meter(argv[-1], need_bands)
        except MeterSyntaxError as e:
            self.error(0, f"{argv[0]}: {e}")
            return dp, None

    def cmd_set_meter(self, argv):
        dp, spec = self._meter_spec(argv, True)
        if spec is None:
            return errno.EINVAL
        meter_id, kbps, bands = spec
        try:
            self.dpif.meter_set(dp.ifindex, meter_id, bands, kbps=kbps)
        except OSError as e:
            return self.oserror(e, f"{argv[0]} failed")
        return 0

    def cmd_del_meter(self, argv):
        dp, spec = self._meter_spec(argv, False)
        if spec is None:
            return errno.EINVAL
        try:
            self.dpif.meter_del(dp.ifindex, spec[0])
        except OSError as e:
            return self.oserror(e, "del-meter failed")
        return 0

    def cmd_meter_stats(self, argv):
        dp, spec = self._meter_spec(argv, False)
        if spec is None:
            return errno.EINVAL
        try:
            st = self.dpif.meter_get(dp.ifindex, spec[0])
        except OSError as e:
            return self.oserror(e, "meter-stats failed")
        self.print(format_stats(st))
        return 0

    def cmd_meter_features(self, argv):
        dp = self.opt_dpif_open(argv, 2)
        try:
            max_meters, max_bands, types = self.dpif.meter_features(dp.ifindex)
        except OSError as e:
            return self.oserror(e, "meter-features failed")
        names = {v: k for k, v in BAND_TYPES.items()}
        kinds = " ".join(names.get(t, str(t)) for t in types)
        self.print(f"max_meter:{max_meters} max_bands:{max_bands} band_types: {kinds}\n")
        return 0
