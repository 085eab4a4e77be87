"""``ovsdp odp``: parse and re-format datapath flow text, one item a line.

Like Open vSwitch's ``ovstest test-odp`` (tests/test-odp.c)::

    ovsdp odp parse-keys       flow keys -> attributes -> exact key text
    ovsdp odp parse-wc-keys    keys with masks -> attributes -> masked text
    ovsdp odp parse-actions    action lists -> attributes -> text
    ovsdp odp parse-filter filter=FIELDS
                               masked keys that match an OpenFlow-style filter
                               (as dpctl dump-flows filter= takes it), as
                               parse-wc-keys prints them; the others not at all

Input lines are read as ``ds_get_test_line()`` does: a line starting with
``#`` is echoed, a ``#`` elsewhere starts a comment, and a line that is blank
after that prints as an empty line.  A line that does not parse prints one
line ``error: <reason>``.
"""

import argparse
import sys

from ..odp import OdpParseError, format_actions, format_key, parse_actions, parse_key
from ..odp.flow import flow_to_key, key_to_flow
from ..odp.flow_struct import ODPUTIL_FLOW_KEY_BYTES, Fitness
from .dpctl.flow_filter import FilterError, filter_matches
from .dpctl.flow_filter import parse_filter as dpctl_filter

MODES = ("parse-keys", "parse-wc-keys", "parse-actions", "parse-filter")


def _port_map(specs):
    names = {}
    for spec in specs or ():
        name, sep, num = spec.partition("=")
        if not sep or not num.strip().isdigit():
            raise argparse.ArgumentTypeError(f"bad port name mapping '{spec}' (want NAME=NUMBER)")
        names[name] = int(num)
    return names


def convert(mode, line, port_names=None, flt=None):
    """Normalize one input line in ``mode``; raises OdpParseError.

    For parse-filter, ``flt`` is :func:`parse_filter`'s result, and a line
    the filter does not match gives None (nothing is printed).
    """
    numbers = {v: k for k, v in (port_names or {}).items()} or None
    if mode == "parse-actions":
        return format_actions(parse_actions(line, port_names), numbers)
    key, mask = parse_key(line, port_names)
    if mode == "parse-keys":
        # test-odp's round trip: key -> struct flow -> key, as ovs-vswitchd would.
        flow, fitness = key_to_flow(key)
        key = flow_to_key(flow)
        prefix = {Fitness.TOO_LITTLE: "ODP_FIT_TOO_LITTLE: ",
                  Fitness.TOO_MUCH: "ODP_FIT_TOO_MUCH: "}.get(fitness, "")
        if len(key) > ODPUTIL_FLOW_KEY_BYTES:
            prefix = f"too long: {len(key)} > {ODPUTIL_FLOW_KEY_BYTES}\n" + prefix
        return prefix + format_key(key, port_names=numbers)
    if mode == "parse-filter" and not filter_matches(flt, key, mask):
        return None
    return format_key(key, mask, port_names=numbers)


def parse_filter(arg, port_names=None):
    """test-odp's filter argument, ``filter=FIELDS``; FilterError if bad."""
    if not arg or not arg.startswith("filter="):
        raise FilterError("No filter to parse.")
    return dpctl_filter(arg[len("filter="):], port_names)


def test_lines(stream):
    """ds_get_test_line(): yield ('echo', text) or ('line', text)."""
    for raw in stream:
        s = raw.rstrip("\n").rstrip("\r")
        if s.startswith("#"):
            yield "echo", s
            continue
        i = s.find("#")
        if i >= 0:
            s = s[:i]
        if not s.strip(" \t\n"):
            yield "echo", ""
            continue
        yield "line", s


def run(mode, stdin, stdout, port_names=None, flt=None):
    for kind, text in test_lines(stdin):
        if kind == "echo":
            stdout.write(text + "\n")
            continue
        try:
            out = convert(mode, text, port_names, flt)
        except OdpParseError as e:
            out = f"error: {e}"
        if out is not None:
            stdout.write(out + "\n")
    return 0


def build_parser():
    p = argparse.ArgumentParser(
        prog="ovsdp odp",
        description="Parse datapath flow keys or actions from stdin and print them "
                    "normalized (like ovstest test-odp).")
    p.add_argument("mode", choices=MODES)
    p.add_argument("filter", nargs="?",
                   help="parse-filter: filter=FIELDS (e.g. filter=ip,nw_src=1.2.3.4)")
    p.add_argument("--port", action="append", metavar="NAME=NUMBER",
                   help="a port name usable instead of its number (repeatable)")
    return p


def main(argv=None, stdin=None, stdout=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        ports = _port_map(args.port)
    except argparse.ArgumentTypeError as e:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"ovsdp odp: {e}\n")
        return 2
    except SystemExit as e:
        return int(e.code or 0)
    flt = None
    if args.mode == "parse-filter":
        try:
            flt = parse_filter(args.filter, ports or None)
        except FilterError as e:
            sys.stderr.write(f"ovsdp odp: Failed to parse filter ({e})\n"
                             if args.filter else f"ovsdp odp: {e}\n")
            return 1
    elif args.filter is not None:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"ovsdp odp: {args.mode} takes no filter\n")
        return 2
    return run(args.mode, stdin or sys.stdin, stdout or sys.stdout, ports or None, flt)


if __name__ == "__main__":
    sys.exit(main())
