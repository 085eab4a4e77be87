"""What the dpctl commands share: names, errors, number and size text, flow lines.
"""

import dataclasses
import errno
import os
import re
import time

from ... import uapi as U

PROGRAM = "ovsdp dpctl"
DP_TYPE = "system"

EXIT_SUCCESS = 0
EXIT_FAILURE = 1

# OVS's names for vport types (get_vport_type()); "system" ports print no type.
PORT_TYPE_NAMES = {
    U.OVS_VPORT_TYPE_NETDEV: "system",
    U.OVS_VPORT_TYPE_INTERNAL: "internal",
    U.OVS_VPORT_TYPE_GRE: "gre",
    U.OVS_VPORT_TYPE_VXLAN: "vxlan",
    U.OVS_VPORT_TYPE_GENEVE: "geneve",
    U.OVS_VPORT_TYPE_DUMMY: "dummy",
}
# netdev_to_ovs_vport_type(), plus ovsdp's own names.
PORT_TYPES = {
    "system": U.OVS_VPORT_TYPE_NETDEV,
    "netdev": U.OVS_VPORT_TYPE_NETDEV,
    "tap": U.OVS_VPORT_TYPE_NETDEV,
    "internal": U.OVS_VPORT_TYPE_INTERNAL,
    "gre": U.OVS_VPORT_TYPE_GRE,
    "vxlan": U.OVS_VPORT_TYPE_VXLAN,
    "geneve": U.OVS_VPORT_TYPE_GENEVE,
    "dummy": U.OVS_VPORT_TYPE_DUMMY,
}
DEFAULT_DST_PORT = {"vxlan": 4789, "geneve": 6081}      # VXLAN_DST_PORT, GENEVE_DST_PORT

USAGE = """\
{prog}: Open vSwitch datapath management utility (for the ovsdp daemon)
usage: {prog} [OPTIONS] COMMAND [ARG...]
  add-dp DP [IFACE...]     add new datapath DP (with IFACEs)
  del-dp DP                delete local datapath DP
  add-if DP IFACE...       add each IFACE as a port on DP
  set-if DP IFACE...       reconfigure each IFACE within DP
  del-if DP IFACE...       delete each IFACE from DP
  dump-dps                 display names of all datapaths
  show                     show basic info on all datapaths
  show DP...               show basic info on each DP
  dump-flows [DP]          display flows in DP
  add-flow [DP] FLOW ACTIONS add FLOW with ACTIONS to DP
  mod-flow [DP] FLOW ACTIONS change FLOW actions to ACTIONS in DP
  get-flow [DP] ufid:UFID    fetch flow corresponding to UFID
  del-flow [DP] FLOW         delete FLOW from DP
  del-flows [DP]             delete all flows from DP
  add-flows [DP] FILE        add flows listed in FILE ("-" for stdin)
  mod-flows [DP] FILE        modify flows listed in FILE
  del-flows [DP] FILE        delete flows listed in FILE
{meters}Each IFACE on add-dp, add-if, and set-if may be followed by
comma-separated options: type=TYPE (system, internal, vxlan, geneve,
gre, dummy), port_no=N, and for vxlan/geneve dst_port=N (vxlan also
exts=gbp).  For COMMAND dump-flows, add-flow, mod-flow, del-flow and
del-flows, DP is optional if there is only one datapath.

Options for show and mod-flow:
  -s,  --statistics           print statistics for port or flow

Options for dump-flows:
  -m, --more                  increase verbosity of output
  --names                     use port names in output
  --no-names                  use port numbers in output

Options for mod-flow:
  --may-create                create flow if it doesn't exist
  --read-only                 do not run read/write commands
  --clear                     reset existing stats to zero

Other options:
  --socket=PATH               control socket of the ovsdp daemon
                              (default: $OVSDP_SOCKET or {default})
  -t, --timeout=SECS          give up after SECS seconds
  -h, --help                  display this help message
  -V, --version               display version information
"""


class DpctlError(Exception):
    """A dpctl command failed (raised by :meth:`DpctlSession.output`)."""

    def __init__(self, status, stderr="", err=0):
        super().__init__(stderr.strip() or f"dpctl failed with status {status}")
        self.status = status
        self.stderr = stderr
        self.errno = err


class Fatal(Exception):
    """Stop the command: the message is already printed; ``err`` is its errno."""

    def __init__(self, err):
        super().__init__(err)
        self.err = err


@dataclasses.dataclass
class Params:
    """struct dpctl_params: the global options."""

    print_statistics: bool = False
    zero_statistics: bool = False
    may_create: bool = False
    read_only: bool = False
    verbosity: int = 0
    names: bool | None = None          # None: names when verbosity > 0
    timeout: float | None = None


# =================================================================== helpers
def strerror(err):
    return os.strerror(err) if err else ""


def errno_of(exc):
    if exc.errno:
        return exc.errno
    return errno.ETIMEDOUT if isinstance(exc, TimeoutError) else errno.EIO


def atoi(s):
    """C atoi(): leading white space, a sign, then digits; 0 when none."""
    m = re.match(r"\s*([+-]?\d+)", s)
    if not m:
        return 0
    return int(m.group(1))


def dp_parse_name(arg):
    """dp_parse_name(): ``TYPE@NAME`` or ``NAME`` (type ``system``)."""
    if "@" in arg:
        dtype, name = arg.split("@", 1)
        return name, dtype or DP_TYPE
    return arg, DP_TYPE


def human_size(value):
    """print_human_size()."""
    for scale, unit in ((1024 ** 4, "TiB"), (1024 ** 3, "GiB"), (1024 ** 2, "MiB"),
                        (1024, "KiB")):
        if value >= scale:
            return f" ({value / scale:.1f} {unit})"
    return ""


def format_tcp_flags(flags):
    """packet_format_tcp_flags()."""
    if not flags:
        return "none"
    out = ""
    for bit, ch in ((0x002, "S"), (0x001, "F"), (0x008, "P"), (0x004, "R"), (0x020, "U"),
                    (0x010, "."), (0x040, "E"), (0x080, "C"), (0x100, "N"), (0x200, "[200]"),
                    (0x400, "[400]"), (0x800, "[800]")):
        if flags & bit:
            out += ch
    return out


def format_stats(packets, nbytes, used, tcp_flags, now_ms=None):
    """dpif_flow_stats_format(): ``packets:N, bytes:N, used:T[, flags:F]``."""
    s = f"packets:{packets}, bytes:{nbytes}, used:"
    if used:
        if now_ms is None:
            now_ms = time.monotonic_ns() // 1_000_000
        s += f"{(now_ms - used) / 1000.0:.3f}s"
    else:
        s += "never"
    if tcp_flags:
        s += ", flags:" + format_tcp_flags(tcp_flags)
    return s


DPCTL_FLOWS_ADD, DPCTL_FLOWS_DEL, DPCTL_FLOWS_MOD = range(3)


def preprocessed_lines(stream):
    """ds_get_preprocessed_line(): (line number, text) of the non-blank lines, comments cut."""
    for n, raw in enumerate(stream, 1):
        line = raw.rstrip("\n")
        i = line.find("#")
        if i >= 0:
            line = line[:i]
        if line.strip(" \t\n"):
            yield n, line


def parse_flow_line(command, line):
    """dpctl_parse_flow_line(): (command, flow or None, actions or None)."""
    ws = " \t\r\n"
    i = len(line) - len(line.lstrip(ws))
    j = i
    while j < len(line) and line[j] not in ", \t\r\n":
        j += 1
    word = line[i:j]
    for name, cmd in (("add", DPCTL_FLOWS_ADD), ("delete", DPCTL_FLOWS_DEL),
                      ("modify", DPCTL_FLOWS_MOD)):
        if name.startswith(word):
            command = cmd
            break
    else:
        j = i
    rest = line[j:].lstrip(ws)
    k = 0
    while k < len(rest) and rest[k] not in ws:
        k += 1
    if not k:
        return command, None, None
    flow = rest[:k]
    actions = rest[k:].lstrip(ws).rstrip(ws)
    return command, flow, actions or None


# ================================================================ options
