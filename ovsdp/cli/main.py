"""The ``ovsdp`` command."""

import argparse
import logging
import os
import sys

USAGE = """ovsdp COMMAND [ARGS...]

commands:
  daemon     run the datapath (module + control socket) in the foreground
  dpctl      manage datapaths, ports and flows (like ovs-dpctl)
  switchd    run a learning-switch handler for one datapath
  demo       build three namespaces, switch traffic between them, clean up
  odp        text-format conformance tools (parse-keys, parse-wc-keys, parse-actions)
  run        run any program with its generic netlink sockets carried to ovsdp
             (ovsdp run [--socket PATH] -- ovs-dpctl show)
  preload-path  print the netlink preload library's path (building it if needed)
  ovs        start|stop|status: ovsdb-server and ovs-vswitchd on ovsdp (like ovs-ctl)

Run 'ovsdp COMMAND --help' for a command's options.  The control socket is
/run/ovsdp/ovsdp.sock unless OVSDP_SOCKET or --socket says otherwise.
"""


def setup_logging(verbosity):
    level = logging.WARNING - 10 * verbosity
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def daemon_main(argv):
    p = argparse.ArgumentParser(prog="ovsdp daemon",
                                description="Run the ovsdp datapath in the foreground.")
    p.add_argument("--socket", help="control socket path")
    p.add_argument("--no-devices", action="store_true",
                   help="keep internal ports in memory instead of creating TAP devices")
    p.add_argument("--group", help="group whose members may change the datapath through the "
                                   "control socket (mode 0660 instead of 0600)")
    p.add_argument("--no-local-conntrack", action="store_true",
                   help="leave what the host stack sends and receives on internal ports "
                        "untracked (as a kernel host without netfilter conntrack hooks)")
    p.add_argument("-v", "--verbose", action="count", default=1,
                   help="more logging (repeat for debug)")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    from ..server import daemon
    try:
        return daemon.main(args.socket, real_devices=not args.no_devices, group=args.group,
                           local_conntrack=not args.no_local_conntrack)
    except OSError as e:
        print(f"ovsdp daemon: {e}", file=sys.stderr)
        return 1


def run_main(argv):
    p = argparse.ArgumentParser(
        prog="ovsdp run",
        description="Run a program with the netlink preload library: its NETLINK_GENERIC "
                    "sockets talk to the ovsdp daemon as they would to the kernel.")
    p.add_argument("--socket", help="control socket path (default: $OVSDP_SOCKET, else "
                                    "/run/ovsdp/ovsdp.sock)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = p.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        p.error("no command given")
    from .. import preload
    try:
        env = preload.environment(socket=args.socket)
    except preload.BuildError as e:
        print(f"ovsdp run: {e}", file=sys.stderr)
        return 1
    try:
        os.execvpe(cmd[0], cmd, env)
    except OSError as e:
        print(f"ovsdp run: {cmd[0]}: {e.strerror}", file=sys.stderr)
        return 127


def preload_path_main(argv):
    p = argparse.ArgumentParser(prog="ovsdp preload-path",
                                description="Print the netlink preload library's path, "
                                            "building it with the system compiler if needed.")
    p.parse_args(argv)
    from .. import preload
    try:
        print(preload.library_path())
    except preload.BuildError as e:
        print(f"ovsdp preload-path: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "daemon":
        return daemon_main(rest)
    if cmd == "dpctl":
        from . import dpctl
        return dpctl.main(rest)
    if cmd == "odp":
        from . import odp_cmd
        return odp_cmd.main(rest)
    if cmd == "switchd":
        from ..switchd import main as switchd_main
        return switchd_main.main(rest)
    if cmd == "run":
        return run_main(rest)
    if cmd == "preload-path":
        return preload_path_main(rest)
    if cmd == "ovs":
        from . import ovs
        return ovs.main(rest)
    if cmd == "demo":
        from . import demo
        return demo.main(rest)
    print(f"ovsdp: unknown command '{cmd}'\n\n{USAGE}", file=sys.stderr, end="")
    return 2


if __name__ == "__main__":
    sys.exit(main())
