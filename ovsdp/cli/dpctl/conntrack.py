"""dpctl's conntrack commands over ctnetlink (lib/dpctl.c, lib/ct-dpif.c,
lib/netlink-conntrack.c of Open vSwitch 3.7):

    dump-conntrack [-m] [-s] [DP] [zone=N]
    flush-conntrack [DP] [zone=N] [mark=M[/MASK]] [ct-orig-tuple [ct-reply-tuple]]
    ct-stats-show [DP] [zone=N] [verbose]
    ct-bkts [DP] [gt=N]

As ovs-dpctl on the kernel datapath, they open a NETLINK_NETFILTER
connection (:class:`~ovsdp.client.conntrack.CtSocket`) beside the datapath's
and print what ct_dpif_format_entry() prints.
"""

import errno
import re
import socket
import sys

from ...client.conntrack import AF_INET, AF_INET6, CtSocket, CtTuple
from ...client.netlink import default_socket_path
from .common import Fatal, errno_of

INT_MAX = 2 ** 31 - 1

# name, usage, min args, max args, handler, read-write (dpctl's Command fields)
COMMANDS = [
    ("dump-conntrack", "[-m] [-s] [dp] [zone=N]", 0, 4, "dump_conntrack", False),
    ("flush-conntrack", "[dp] [zone=N] [mark=X[/M]] [ct-orig-tuple] [ct-reply-tuple]", 0, 5,
     "flush_conntrack", True),
    ("ct-stats-show", "[dp] [zone=N]", 0, 3, "ct_stats_show", False),
    ("ct-bkts", "[dp] [gt=N]", 0, 2, "ct_bkts", False),
]

USAGE = """\
  dump-conntrack [DP] [zone=ZONE]  display conntrack entries for ZONE
  flush-conntrack [DP] [zone=ZONE] [ct-orig-tuple] [ct-reply-tuple]
                           delete all conntrack entries in ZONE
                           (or those of the tuples)
  ct-stats-show [DP] [zone=ZONE] [verbose]  CT connections statistics
"""

PROTO_NAMES = {1: "icmp", 58: "icmpv6", 6: "tcp", 17: "udp", 132: "sctp", 136: "udplite",
               33: "dccp", 2: "igmp"}
# CT_DPIF_TCPS_*; nl_ct_tcp_state_to_dpif() from the kernel's TCP_CONNTRACK_*
TCP_STATES = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "CLOSE_WAIT",
              "FIN_WAIT_1", "CLOSING", "LAST_ACK", "FIN_WAIT_2", "TIME_WAIT")
_KERNEL_TCP_TO_DPIF = {0: 0, 1: 2, 9: 2, 2: 3, 3: 4, 4: 6, 5: 5, 6: 8, 7: 10, 8: 7}
# CT_DPIF_SCTP_STATE_*; nl_ct_sctp_state_to_dpif(): NONE and CLOSED are CLOSED
SCTP_STATES = ("CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED", "SHUTDOWN_SENT",
               "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT", "HEARTBEAT_ACKED",
               "MAX_NUM")
STATUS_NAMES = ("EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "DST_NAT",
                "SEQ_ADJUST", "SRC_NAT_DONE", "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT",
                "TEMPLATE", "UNTRACKED")
TCP_FLAG_NAMES = ("WINDOW_SCALE", "SACK_PERM", "CLOSE_INIT", "BE_LIBERAL",
                  "DATA_UNACKNOWLEDGED", "MAXACK_SET")


def format_flags(flags, names):
    """format_flags() with '|' between the names, 0x... for unknown bits."""
    if not flags:
        return "0"
    out, bad = [], 0
    bit = 0
    while flags >> bit:
        if flags >> bit & 1:
            if bit < len(names):
                out.append(names[bit])
            else:
                bad |= 1 << bit
        bit += 1
    if bad:
        out.append(f"0x{bad:x}")
    return "|".join(out)


def tcp_state(kernel_state):
    return _KERNEL_TCP_TO_DPIF.get(kernel_state, 0)


def coalesce_tcp_state(s):
    """coalesce_tcp_state(): FIN_WAIT_2 -> TIME_WAIT, SYN_RECV -> ESTABLISHED."""
    return {9: 10, 3: 4}.get(s, s)


def _state_name(s):
    return TCP_STATES[s] if s < len(TCP_STATES) else f"[{s}]"


def _addr(family, v):
    if family == AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, v.to_bytes(16, "big"))
    return socket.inet_ntop(socket.AF_INET, v.to_bytes(4, "big"))


def format_tuple(t):
    """ct_dpif_format_tuple()."""
    s = f"src={_addr(t.l3num, t.src)},dst={_addr(t.l3num, t.dst)}"
    if t.protonum in (1, 58):
        return s + f",id={t.icmp_id},type={t.icmp_type},code={t.icmp_code}"
    return s + f",sport={t.sport},dport={t.dport}"


def _counters(c):
    return f",packets={c[0]},bytes={c[1]}" if c[0] or c[1] else ""


def format_entry(e, verbose=False, stats=False):
    """ct_dpif_format_entry()."""
    out = [PROTO_NAMES.get(e.orig.protonum, str(e.orig.protonum)),
           ",orig=(", format_tuple(e.orig), _counters(e.counters_orig) if stats else "", ")",
           ",reply=(", format_tuple(e.reply), _counters(e.counters_reply) if stats else "", ")"]
    if verbose:
        out.append(f",id={e.id}")
    if e.zone:
        out.append(f",zone={e.zone}")
    if verbose:
        out.append(",status=" + format_flags(e.status & 0x1FFF, STATUS_NAMES))
    if stats:
        out.append(f",timeout={e.timeout}")
    if e.mark:
        out.append(f",mark={e.mark}")
    if e.labels and any(e.labels):
        out.append(f",labels=0x{int.from_bytes(e.labels[:16], 'little'):x}")
    if e.tcp_state is not None:
        st = tcp_state(e.tcp_state)
        if verbose:
            p = f"state_orig={_state_name(st)},state_reply={_state_name(st)}"
            if any(e.tcp_wscale):
                p += f",wscale_orig={e.tcp_wscale[0]},wscale_reply={e.tcp_wscale[1]}"
            p += (",flags_orig=" + format_flags(e.tcp_flags[0] & 0x3F, TCP_FLAG_NAMES) +
                  ",flags_reply=" + format_flags(e.tcp_flags[1] & 0x3F, TCP_FLAG_NAMES))
        else:
            p = "state=" + _state_name(coalesce_tcp_state(st))
        out.append(f",protoinfo=({p})")
    elif e.sctp_state is not None:
        # ct_dpif_format_protoinfo_sctp(); netlink-conntrack.c reads the big-endian
        # tags with nl_attr_get_u32(), so they print in host byte order
        st = e.sctp_state - 1 if 2 <= e.sctp_state <= 9 else 0
        vt = [int.from_bytes(v.to_bytes(4, "big"), sys.byteorder) for v in e.sctp_vtag]
        out.append(f",protoinfo=(state={SCTP_STATES[st]},vtag_orig={vt[0]},vtag_reply={vt[1]})")
    if e.helper:
        out.append(f",helper={e.helper}")          # ct_dpif_format_helper()
    return "".join(out)


def _scan_u16(arg, prefix):
    """ovs_scan(arg, "PREFIX%hu"): the number, or None."""
    m = re.match(re.escape(prefix) + r"\s*([+-]?\d+)", arg)
    if not m:
        return None
    return int(m.group(1)) & 0xFFFF


class TupleSyntaxError(ValueError):
    pass


def parse_ct_tuple(s, match):
    """ofp_ct_tuple_parse(): a CtTuple and the match's proto/l3 type updated."""
    t = CtTuple()
    for item in filter(None, s.split(",")):
        key, _, value = item.partition("=")
        if not value:
            raise TupleSyntaxError(f"field {key} missing value")
        try:
            if key in ("ct_nw_src", "ct_nw_dst", "ct_ipv6_src", "ct_ipv6_dst"):
                v6 = key.startswith("ct_ipv6")
                fam = AF_INET6 if v6 else AF_INET
                if match["l3"] and match["l3"] != fam:
                    raise TupleSyntaxError(f"the L3 protocol does not match {value}")
                addr = int.from_bytes(socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET,
                                                       value), "big")
                match["l3"] = fam
                if key.endswith("src"):
                    t.src = addr
                else:
                    t.dst = addr
            elif key == "ct_nw_proto":
                match["proto"] = int(value, 0) & 0xFF
            elif key in ("ct_tp_src", "ct_tp_dst"):
                v = int(value, 0)
                if not 0 <= v <= 0xFFFF:
                    raise ValueError
                if key == "ct_tp_src":
                    t.sport = v
                else:
                    t.dport = v
            elif key in ("icmp_type", "icmp_code", "icmp_id"):
                if match["proto"] not in (1, 58):
                    raise TupleSyntaxError("invalid L4 fields")
                setattr(t, key, int(value, 0))
            else:
                raise TupleSyntaxError(f"invalid conntrack tuple field: {key}")
        except (ValueError, OSError) as e:
            if isinstance(e, TupleSyntaxError):
                raise
            raise TupleSyntaxError(f"failed to parse field {key}") from None
    if not match["proto"] and (t.sport or t.dport):
        raise TupleSyntaxError("port is set without protocol")
    return t


def _tuple_matches(m, t):
    """ct_dpif_tuple_cmp() against the fields a match tuple sets."""
    if m is None:
        return True
    for f in ("src", "dst", "sport", "dport", "icmp_id", "icmp_type", "icmp_code"):
        v = getattr(m, f)
        if v and getattr(t, f) != v:
            return False
    return True


class ConntrackCommands:
    """The commands, as methods of dpctl's session (``cmd_`` + handler)."""

    def ct_socket(self):
        """The session's NETLINK_NETFILTER connection (opened on first use)."""
        cts = getattr(self, "_ct_sock", None)
        if cts is None:
            path = default_socket_path(self.socket)
            try:
                cts = CtSocket(path, timeout=self.params.timeout or self.timeout or 10.0)
            except OSError as e:
                self.error(errno_of(e), f'cannot connect to "{path}"')
                raise Fatal(errno_of(e)) from None
            self._ct_sock = cts
        return cts

    def _ct_dump(self, zone):
        """ct_dpif_dump_start/next with netlink-conntrack's zone filter."""
        try:
            entries = self.ct_socket().dump(zone)
        except OSError as e:
            raise Fatal(self.oserror(e, "starting conntrack dump")) from None
        return [e for e in entries if zone is None or e.zone == zone]

    def cmd_dump_conntrack(self, argv):
        zone = None
        if len(argv) > 1:
            z = _scan_u16(argv[-1], "zone=")
            if z is not None:
                zone = z
                argv = argv[:-1]
        self.opt_dpif_open(argv, 2)
        verbose = self.params.verbosity > 0
        stats = self.params.print_statistics
        out = [format_entry(e, verbose, stats) + "\n" for e in self._ct_dump(zone)]
        self.print("".join(out))
        return 0

    def cmd_flush_conntrack(self, argv):
        args = argv[1:]
        if args and self.dp_exists(args[0]):
            args = args[1:]
        zone = None
        match = {"l3": 0, "proto": 0, "mark": 0, "mark_mask": 0}
        tuples = []
        try:
            if args and args[0].startswith("zone="):
                zone = _scan_u16(args[0], "zone=")
                if zone is None:
                    raise TupleSyntaxError("failed to parse zone")
                args = args[1:]
            if args and args[0].startswith("mark="):
                v, _, mask = args[0][5:].partition("/")
                try:
                    match["mark"] = int(v, 0) & 0xFFFFFFFF
                    match["mark_mask"] = int(mask, 0) if mask else 0xFFFFFFFF
                except ValueError:
                    raise TupleSyntaxError("failed to parse mark") from None
                args = args[1:]
            for arg in args[:2]:
                tuples.append(parse_ct_tuple(arg, match) if arg else None)
            if len(args) > 2:
                raise TupleSyntaxError("invalid arguments")
        except TupleSyntaxError as e:
            self.error(errno.EINVAL, str(e))
            return errno.EINVAL
        try:
            self.opt_dpif_open(argv, 5)
        except Fatal:
            self.error(errno.EINVAL, "Cannot open dpif")
            return errno.EINVAL
        orig = tuples[0] if tuples else None
        reply = tuples[1] if len(tuples) > 1 else None
        cts = self.ct_socket()
        try:
            if orig is None and reply is None and not match["mark_mask"]:
                cts.flush(zone)
            elif (orig is not None and reply is None and not match["mark_mask"] and orig.src
                  and orig.dst and match["proto"]
                  and ((orig.sport and orig.dport) or match["proto"] in (1, 58))):
                orig.l3num, orig.protonum = match["l3"], match["proto"]
                cts.delete(orig, zone or 0)
            else:
                for e in self._ct_dump(zone):
                    if (match["proto"] and e.orig.protonum != match["proto"]) or \
                            (match["l3"] and e.family != match["l3"]) or \
                            e.mark & match["mark_mask"] != match["mark"] or \
                            not _tuple_matches(orig, e.orig) or \
                            not _tuple_matches(reply, e.reply):
                        continue
                    cts.delete(e.orig, e.zone)
        except OSError as e:
            return self.oserror(e, "failed to flush conntrack")
        return 0

    def cmd_ct_stats_show(self, argv):
        zone = None
        verbose = self.params.verbosity > 0
        last = 0
        while len(argv) > 1 and last != len(argv):
            last = len(argv)
            if argv[-1].startswith("verbose"):
                verbose = True
                argv = argv[:-1]
            elif argv[-1].startswith("zone="):
                z = _scan_u16(argv[-1], "zone=")
                if z is not None:
                    zone = z
                    argv = argv[:-1]
        self.opt_dpif_open(argv, 2)
        entries = self._ct_dump(zone)
        counts = {}
        tcp_states = [0] * len(TCP_STATES)
        for e in entries:
            p = e.orig.protonum
            key = p if p in PROTO_NAMES else "other"
            counts[key] = counts.get(key, 0) + 1
            if p == 6:
                tcp_states[coalesce_tcp_state(tcp_state(e.tcp_state or 0))] += 1
        # (ICMPv6 connections are counted in the total only, as in OVS)
        out = [f"Connections Stats:\n    Total: {len(entries)}\n"]
        for p, label in ((6, "TCP"), (17, "UDP"), (136, "UDPLITE"), (132, "SCTP"),
                         (1, "ICMP"), (33, "DCCP"), (2, "IGMP"), ("other", "Other")):
            if counts.get(p):
                out.append(f"  {label}: {counts[p]}\n")
                if p == 6 and verbose:
                    out.append("    Conn per TCP states:\n")
                    out += [f"\t  [{TCP_STATES[i]}]={n}\n" for i, n in enumerate(tcp_states) if n]
        self.print("".join(out))
        return 0

    def cmd_ct_bkts(self, argv):
        if len(argv) > 1 and _scan_u16(argv[-1], "gt=") is not None:
            argv = argv[:-1]
        self.opt_dpif_open(argv, 2)
        self._ct_dump(None)
        self.print("Command is available for UserSpace ConnTracker only.\n")
        return 0
