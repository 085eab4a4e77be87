"""The command line: options (getopt as ovs-dpctl's), the command table.
"""

import dataclasses

from . import conntrack, ct_limits, meter

_LONG_OPTIONS = {
    # name: (takes an argument, key)
    "statistics": (False, "s"),
    "clear": (False, "clear"),
    "may-create": (False, "may-create"),
    "read-only": (False, "read-only"),
    "more": (False, "m"),
    "names": (False, "names"),
    "no-names": (False, "no-names"),
    "timeout": (True, "t"),
    "help": (False, "h"),
    "version": (False, "V"),
    "socket": (True, "socket"),
}
_SHORT_OPTIONS = {"s": False, "m": False, "t": True, "h": False, "V": False}


class UsageError(Exception):
    pass


def getopt(argv):
    """GNU getopt_long() with argument permutation: (options [(key, arg)], operands)."""
    opts, operands = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            operands.extend(argv[i:])
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name in _LONG_OPTIONS:
                matches = [name]
            else:
                matches = [n for n in _LONG_OPTIONS if n.startswith(name)]
            if not matches:
                raise UsageError(f"unrecognized option '--{name}'")
            if len(matches) > 1:
                raise UsageError(f"option '--{name}' is ambiguous; possibilities: "
                                  + " ".join(f"'--{m}'" for m in matches))
            full = matches[0]
            has_arg, key = _LONG_OPTIONS[full]
            if has_arg:
                if not eq:
                    if i >= len(argv):
                        raise UsageError(f"option '--{full}' requires an argument")
                    value = argv[i]
                    i += 1
                opts.append((key, value))
            else:
                if eq:
                    raise UsageError(f"option '--{full}' doesn't allow an argument")
                opts.append((key, None))
            continue
        if arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                c = arg[j]
                j += 1
                if c not in _SHORT_OPTIONS:
                    raise UsageError(f"invalid option -- '{c}'")
                if _SHORT_OPTIONS[c]:
                    if j < len(arg):
                        value = arg[j:]
                    elif i < len(argv):
                        value = argv[i]
                        i += 1
                    else:
                        raise UsageError(f"option requires an argument -- '{c}'")
                    opts.append((c, value))
                    break
                opts.append((c, None))
            continue
        operands.append(arg)
    return opts, operands


# ================================================================ session
@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    usage: str
    min_args: int
    max_args: int
    handler: str
    read_write: bool


INT_MAX = 2 ** 31 - 1
COMMANDS = [
    Command("add-dp", "dp [iface...]", 1, INT_MAX, "add_dp", True),
    Command("del-dp", "dp", 1, 1, "del_dp", True),
    Command("add-if", "dp iface...", 2, INT_MAX, "add_if", True),
    Command("del-if", "dp iface...", 2, INT_MAX, "del_if", True),
    Command("set-if", "dp iface...", 2, INT_MAX, "set_if", True),
    Command("dump-dps", "", 0, 0, "dump_dps", False),
    Command("show", "[-s] [dp...]", 0, INT_MAX, "show", False),
    Command("dump-flows", "[-m] [--names] [dp] [filter=..] [type=..]", 0, 6, "dump_flows",
            False),
    Command("add-flow", "[dp] flow actions", 2, 3, "add_flow", True),
    Command("mod-flow", "[dp] flow actions", 2, 3, "mod_flow", True),
    Command("get-flow", "[dp] ufid", 1, 2, "get_flow", False),
    Command("del-flow", "[dp] flow", 1, 2, "del_flow", True),
    Command("add-flows", "[dp] file", 1, 2, "process_flows", True),
    Command("mod-flows", "[dp] file", 1, 2, "process_flows", True),
    Command("del-flows", "[dp] [file]", 0, 2, "del_flows", True),
    *(Command(*c) for c in meter.COMMANDS),
    *(Command(*c) for c in ct_limits.COMMANDS),
    *(Command(*c) for c in conntrack.COMMANDS),
    Command("help", "", 0, INT_MAX, "help", False),
    Command("list-commands", "", 0, INT_MAX, "list_commands", False),
]
COMMANDS_BY_NAME = {c.name: c for c in COMMANDS}

# dump-flows type=: ovsdp flows are all "ovs", never offloaded.
DUMP_TYPES = {"ovs": True, "tc": False, "dpdk": False, "offloaded": False,
               "non-offloaded": True, "partially-offloaded": False, "all": True}


def version():
    try:
        from importlib.metadata import version
        return version("ovsdp")
    except Exception:  # noqa: BLE001 - not installed: fall back
        return "0.1.0"
