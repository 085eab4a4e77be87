"""dpctl's conntrack zone limit commands: the ovs_ct_limit family
(lib/dpctl.c's dpctl_ct_{set,del,get}_limits, lib/ct-dpif.c, dpif-netlink.c).

    ct-set-limits [DP] [default=L] [zone=N,limit=L]...
    ct-del-limits [DP] [default] [zone=N1[,N2]...]
    ct-get-limits [DP] [zone=N1[,N2]...]

Arguments, messages and output are Open vSwitch 3.7's (3.1 has no
``default`` in ct-del-limits, and crashes where 3.7 says "too few
arguments"; the rest is the same).  As in OVS the commands run in
``--read-only`` mode too, the datapath must exist but the requests carry
dp_ifindex 0 (limits belong to the network namespace), and the numbers are
read as OVS reads them: a limit by strtoul (base 0, 32 bits kept), a zone in
``zone=N,limit=L`` as a whole number 0..65535 (base 0), a zone of a list by
``%hu`` (decimal, what follows the digits ignored, kept modulo 65536).
"""

import errno
import string

from ... import uapi as U
from .common import strerror

DEFAULT_ZONE = U.OVS_ZONE_LIMIT_DEFAULT_ZONE
UINT32_MAX = 0xFFFFFFFF
INT_MAX = 2 ** 31 - 1

# name, usage, min args, max args, handler, read-write (dpctl's Command fields;
# OVS marks them DP_RO)
COMMANDS = [
    ("ct-set-limits", "[dp] [default=L] [zone=N,limit=L]...", 1, INT_MAX, "ct_set_limits",
     False),
    ("ct-del-limits", "[dp] [default] [zone=N1[,N2]...]", 1, 3, "ct_del_limits", False),
    ("ct-get-limits", "[dp] [zone=N1[,N2]...]", 0, 2, "ct_get_limits", False),
]

USAGE = """\
  ct-set-limits [DP] [default=L] [zone=N,limit=L]...  set conntrack zone limits
  ct-del-limits [DP] [default] [zone=N1[,N2]...]      delete conntrack zone limits
  ct-get-limits [DP] [zone=N1[,N2]...]                show conntrack zone limits and counts
"""

_SPACE = " \t\n\v\f\r"


# ------------------------------------------------------------ C number parsing
def strto(s, base, signed):
    """glibc strtoll()/strtoull() on 64 bits: (value, end, erange); end is 0
    when nothing was converted (the tail is the whole string)."""
    i, n = 0, len(s)
    while i < n and s[i] in _SPACE:
        i += 1
    neg = False
    if i < n and s[i] in "+-":
        neg = s[i] == "-"
        i += 1
    if (base in (0, 16) and s[i:i + 2] in ("0x", "0X") and i + 2 < n
            and s[i + 2] in string.hexdigits):
        base = 16
        i += 2
    elif base == 0:
        base = 8 if s[i:i + 1] == "0" else 10
    j, v = i, 0
    while j < n and s[j].isascii() and s[j].isalnum() and int(s[j], 36) < base:
        v = v * base + int(s[j], 36)
        j += 1
    if j == i:
        return 0, 0, False
    if signed:
        top = 2 ** 63 if neg else 2 ** 63 - 1
        if v > top:
            return (-top if neg else top), j, True
        return (-v if neg else v), j, False
    if v > 2 ** 64 - 1:
        return 2 ** 64 - 1, j, True
    return ((-v) % 2 ** 64 if neg else v), j, False


def str_to_ullong(s, base):
    """OVS str_to_ullong(): the whole string, or None."""
    v, end, erange = strto(s, base, False)
    if erange or not end or end != len(s):
        return None
    return v


def str_to_u16(s):
    """OVS str_to_u16() (str_to_int, base 0, then 0..65535), or None."""
    v, end, erange = strto(s, 0, True)
    if erange or not end or end != len(s) or not 0 <= v <= 65535:
        return None
    return v


def str_to_u32(s):
    """OVS str_to_u32(): strtoul() base 0 with nothing after, truncated to 32 bits."""
    v, end, erange = strto(s, 0, False)
    if not s or erange or end != len(s):
        return None
    return v & UINT32_MAX


def scan_u16(s):
    """ovs_scan(s, "%hu"): blanks, a sign, decimal digits; None without digits."""
    i = 0
    while i < len(s) and s[i] in _SPACE:
        i += 1
    neg = s[i:i + 1] == "-"
    i += s[i:i + 1] in ("-", "+")
    j = i
    while j < len(s) and s[j] in string.digits:
        j += 1
    if j == i:
        return None
    v = int(s[i:j])
    return (-v if neg else v) & 0xFFFF


# ------------------------------------------------------------- OVS's syntax
def _value_len(s, start, delims):
    """parse_value(): how far a value runs before one of ``delims`` (or the
    end), parentheses nesting."""
    n = 0
    while start + n < len(s) and s[start + n] not in delims:
        if s[start + n] == "(":
            level = 0
            while True:
                if start + n >= len(s):
                    return n
                c = s[start + n]
                if c == "(":
                    level += 1
                elif c == ")":
                    level -= 1
                n += 1
                if level <= 0:
                    break
        else:
            n += 1
    return n


def parse_key_value(s):
    """ofputil_parse_key_value() over all of ``s``: [(key, value)]."""
    out, pos = [], 0
    while True:
        while pos < len(s) and s[pos] in ", \t\r\n":
            pos += 1
        if pos >= len(s):
            return out
        end = pos
        while end < len(s) and s[end] not in ":=(, \t\r\n":
            end += 1
        key = s[pos:end]
        delim = s[end] if end < len(s) else ""
        pos = end + bool(delim)
        if delim in (":", "="):
            delims = ", \t\r\n"
        elif delim == "(":
            delims = ")"
        else:
            out.append((key, ""))
            continue
        n = _value_len(s, pos, delims)
        if delim == "(" and s[pos + n:pos + n + 3] == ")->":
            n += _value_len(s, pos + n, ", \t\r\n")
        out.append((key, s[pos:pos + n]))
        pos += n + (pos + n < len(s))


class LimitSyntaxError(ValueError):
    pass


def parse_zone_limit_tuple(s):
    """ct_dpif_parse_zone_limit_tuple(): ``zone=N,limit=L`` -> (zone, limit)."""
    zone = limit = None
    for key, value in parse_key_value(s):
        if not value:
            raise LimitSyntaxError(f"field {key} missing value")
        if key == "zone":
            zone = str_to_u16(value)
            if zone is None:
                raise LimitSyntaxError(f"failed to parse field {key}")
        elif key == "limit":
            limit = str_to_u32(value)
            if limit is None:
                raise LimitSyntaxError(f"failed to parse field {key}")
        else:
            raise LimitSyntaxError(f"invalid zone limit field: {key}")
    if zone is None or limit is None:
        raise LimitSyntaxError("failed to parse zone limit")
    return zone, limit


def parse_ct_limit_zones(arg):
    """parse_ct_limit_zones(): ``zone=N1[,N2]...`` -> [zone]."""
    if not arg.startswith("zone="):
        raise LimitSyntaxError(f"invalid argument {arg}")
    zones = []
    for tok in arg[5:].split(","):
        if not tok:
            continue                         # strtok_r() skips empty fields
        zone = scan_u16(tok)
        if zone is None:
            raise LimitSyntaxError("invalid zone")
        zones.append(zone)
    return zones


def format_zone_limits(entries):
    """ct_dpif_format_zone_limits() of [(zone_id, limit, count)]: the default
    first, then one line per zone (no newline at the end)."""
    out = [f"default limit={limit}" for zone, limit, _ in entries if zone == DEFAULT_ZONE]
    out += [f"\nzone={zone},limit={limit},count={count}"
            for zone, limit, count in entries if zone != DEFAULT_ZONE]
    return "".join(out)


def from_reply(entries):
    """dpif_netlink_zone_limits_from_ofpbuf(): entries with zone ids -1..65535."""
    return [e for e in entries if DEFAULT_ZONE <= e[0] <= 0xFFFF]


class CtLimitCommands:
    """The commands, as methods of dpctl's session (``cmd_`` + handler)."""

    def _dp_arg(self, argv):
        """dp_arg_exists(): the index of the first argument after the datapath's."""
        return 2 if len(argv) > 1 and self.dp_exists(argv[1]) else 1

    def cmd_ct_set_limits(self, argv):
        i = self._dp_arg(argv)
        if i >= len(argv):
            self.error(errno.EINVAL, "too few arguments")
            return errno.EINVAL
        self.opt_dpif_open(argv, INT_MAX)
        limits = []
        if argv[i].startswith("default="):
            v = str_to_ullong(argv[i][8:], 10)
            if v is None or v > UINT32_MAX:
                self.error(errno.EINVAL, "invalid default limit")
                return errno.EINVAL
            limits.append((DEFAULT_ZONE, v))
            i += 1
        for arg in argv[i:]:
            try:
                limits.append(parse_zone_limit_tuple(arg))
            except LimitSyntaxError as e:
                self.error(errno.EINVAL, str(e))
                return errno.EINVAL
        try:
            self.dpif.ct_set_limits(limits)
        except OSError as e:
            return self.oserror(e, "failed to set conntrack limit")
        return 0

    def cmd_ct_del_limits(self, argv):
        i = self._dp_arg(argv)
        if i >= len(argv):
            self.error(errno.EINVAL, "too few arguments")
            return errno.EINVAL
        self.opt_dpif_open(argv, 4)
        zones = []
        if argv[i] == "default":
            zones.append(DEFAULT_ZONE)
            i += 1
        if len(argv) > i:
            try:
                zones += parse_ct_limit_zones(argv[i])
            except LimitSyntaxError as e:
                self.error(errno.EINVAL, str(e))
                return errno.EINVAL
        try:
            self.dpif.ct_del_limits(zones)
        except OSError as e:
            return self.oserror(e, "failed to delete conntrack limit")
        return 0

    def cmd_ct_get_limits(self, argv):
        i = self._dp_arg(argv)
        self.opt_dpif_open(argv, 3)
        zones = None
        if len(argv) > i:
            try:
                zones = [DEFAULT_ZONE] + parse_ct_limit_zones(argv[i])
            except LimitSyntaxError as e:
                self.error(errno.EINVAL, str(e))
                return errno.EINVAL
        try:
            entries = self.dpif.ct_get_limits(zones)
        except OSError as e:
            err = e.errno or errno.EIO
            return self.oserror(e, f"failed to get conntrack limit {strerror(err)}")
        self.print(format_zone_limits(from_reply(entries)) + "\n")
        return 0
