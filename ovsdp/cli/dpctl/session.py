"""A dpctl session: one connection, many commands; and the module API.
"""

import errno
import io
import re
import sys

from ... import uapi as U
from ...client.dpif import Dpif
from ...client.netlink import default_socket_path
from . import conntrack, ct_limits, meter
from .common import (
    DP_TYPE,
    EXIT_FAILURE,
    EXIT_SUCCESS,
    PROGRAM,
    USAGE,
    DpctlError,
    Fatal,
    Params,
    dp_parse_name,
    errno_of,
    strerror,
)
from .conntrack import ConntrackCommands
from .ct_limits import CtLimitCommands
from .flows import FlowCommands
from .meter import MeterCommands
from .options import COMMANDS, COMMANDS_BY_NAME, UsageError, getopt, version
from .ports import PortCommands


class DpctlSession(PortCommands, FlowCommands, MeterCommands, CtLimitCommands,
                   ConntrackCommands):
    """Runs dpctl commands against one ovsdp daemon over one connection.

    ``stdout``/``stderr`` are text streams (default: the process's).  The
    connection is opened on first use and kept until :meth:`close`; pass
    ``dpif`` to use an existing :class:`~ovsdp.client.dpif.Dpif`.
    """

    def __init__(self, socket=None, *, stdout=None, stderr=None, dpif=None, timeout=None,
                 program=PROGRAM):
        self.socket = socket
        self.stdout = stdout
        self.stderr = stderr
        self.timeout = timeout
        self.program = program
        self._dpif = dpif
        self._own_dpif = dpif is None
        self.params = Params()
        self.last_errno = 0

    # ------------------------------------------------------------ plumbing
    def close(self):
        if getattr(self, "_ct_sock", None) is not None:
            self._ct_sock.close()
            self._ct_sock = None
        if self._dpif is not None and self._own_dpif:
            self._dpif.close()
        self._dpif = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _out(self):
        return self.stdout if self.stdout is not None else sys.stdout

    def _err(self):
        return self.stderr if self.stderr is not None else sys.stderr

    def print(self, text):
        """dpctl_print()."""
        self._out().write(text)

    def error(self, err, msg, ext_ack=None):
        """dpctl_error(): ``PROGRAM: MSG[ (strerror)]``.

        The datapath's extended ack, when it sent one, follows on a line of
        its own (OVS only logs it).
        """
        line = f"{self.program}: {msg}"
        if err:
            line += f" ({strerror(err)})"
        self._err().write(line + "\n")
        if ext_ack:
            self._err().write(f"{self.program}: extended ack: {ext_ack}\n")

    def oserror(self, exc, msg):
        """Report an OSError from the daemon and return its errno."""
        err = errno_of(exc)
        self.error(err, msg, getattr(exc, "ext_ack", None))
        return err

    @property
    def dpif(self):
        if self._dpif is None:
            path = default_socket_path(self.socket)
            timeout = self.params.timeout or self.timeout or 10.0
            try:
                self._dpif = Dpif(path, timeout=timeout)
            except OSError as e:
                self.error(errno_of(e), f'cannot connect to "{path}"')
                raise Fatal(errno_of(e)) from None
            self._own_dpif = True
        return self._dpif

    # ---------------------------------------------------------- entry points
    def run(self, argv):
        """Parse options and run one command; returns the exit status (0 or 1)."""
        self.last_errno = 0
        try:
            opts, operands = getopt(list(argv))
        except UsageError as e:
            self.error(0, str(e))
            self.last_errno = errno.EINVAL
            return EXIT_FAILURE
        params = Params()
        set_names = False
        for key, value in opts:
            if key == "s":
                params.print_statistics = True
            elif key == "clear":
                params.zero_statistics = True
            elif key == "may-create":
                params.may_create = True
            elif key == "read-only":
                params.read_only = True
            elif key == "m":
                params.verbosity += 1
            elif key in ("names", "no-names"):
                params.names = key == "names"
                set_names = True
            elif key == "t":
                if not re.fullmatch(r"\d+", value) or not int(value):
                    self.error(0, f"value {value} on -t or --timeout is invalid")
                    self.last_errno = errno.EINVAL
                    return EXIT_FAILURE
                params.timeout = int(value)
                if self._dpif is not None and self._own_dpif:
                    self._dpif.sock.timeout = params.timeout
            elif key == "h":
                self.usage()
                return EXIT_SUCCESS
            elif key == "V":
                self.print(f"{self.program} (ovsdp) {version()}\n")
                return EXIT_SUCCESS
            elif key == "socket":
                if self.socket != value:
                    self.close()
                self.socket = value
        if not set_names:
            params.names = params.verbosity > 0
        self.params = params
        err = self.run_command(operands)
        self.last_errno = err
        return EXIT_FAILURE if err else EXIT_SUCCESS

    def __call__(self, *argv):
        return self.run(argv)

    def output(self, *argv):
        """Run a command and return what it printed; :class:`DpctlError` if it failed."""
        out, err = io.StringIO(), io.StringIO()
        saved = self.stdout, self.stderr
        self.stdout, self.stderr = out, err
        try:
            status = self.run(argv)
        finally:
            self.stdout, self.stderr = saved
        if status:
            raise DpctlError(status, err.getvalue(), self.last_errno)
        if err.getvalue():
            self._err().write(err.getvalue())
        return out.getvalue()

    def run_command(self, argv):
        """dpctl_run_command(): argv[0] is the command; returns an errno (0: success)."""
        if not argv:
            self.error(0, "missing command name; use --help for help")
            return errno.EINVAL
        cmd = COMMANDS_BY_NAME.get(argv[0])
        if cmd is None:
            self.error(0, f"unknown command '{argv[0]}'; use --help for help")
            return errno.EINVAL
        n_arg = len(argv) - 1
        if n_arg < cmd.min_args:
            self.error(0, f"'{cmd.name}' command requires at least {cmd.min_args} arguments")
            return errno.EINVAL
        if n_arg > cmd.max_args:
            self.error(0, f"'{cmd.name}' command takes at most {cmd.max_args} arguments")
            return errno.EINVAL
        if cmd.read_write and self.params.read_only:
            self.error(0, f"'{cmd.name}' command does not work in read only mode")
            return errno.EINVAL
        try:
            return getattr(self, "cmd_" + cmd.handler)(list(argv))
        except Fatal as e:
            return e.err
        except (OSError, TimeoutError) as e:
            # A failure not reported by the command (e.g. the daemon went away).
            return self.oserror(e, f"{cmd.name} failed")

    def usage(self):
        self.print(USAGE.format(prog=self.program, default=U.OVSDP_DEFAULT_SOCKET,
                                meters=meter.USAGE + ct_limits.USAGE + conntrack.USAGE))

    # ------------------------------------------------------ datapath lookup
    def dp_names(self):
        """dp_enumerate_names() for the one type: the datapath names, sorted."""
        return sorted(info.name for info in self.dpif.dp_dump())

    def dp_exists(self, arg):
        name, dtype = dp_parse_name(arg)
        if dtype != DP_TYPE:
            return False
        try:
            return name in self.dp_names()
        except OSError:
            return False

    def get_one_dp(self):
        """get_one_dp(): ``system@NAME`` of the only datapath, else None (reported)."""
        try:
            names = self.dp_names()
        except OSError:
            names = []
        if not names:
            self.error(0, "no datapaths exist")
        elif len(names) > 1:
            self.error(0, "multiple datapaths, specify one")
        else:
            return f"{DP_TYPE}@{names[0]}"
        return None

    def dpif_open(self, arg):
        """parsed_dpif_open(): the DatapathInfo; raises OSError (EAFNOSUPPORT, ENODEV...)."""
        name, dtype = dp_parse_name(arg)
        if dtype != DP_TYPE:
            raise OSError(errno.EAFNOSUPPORT, strerror(errno.EAFNOSUPPORT))
        return self.dpif.dp_get(name)

    def open_or_fail(self, arg, msg="opening datapath"):
        try:
            return self.dpif_open(arg)
        except OSError as e:
            raise Fatal(self.oserror(e, msg)) from None

    def opt_dpif_open(self, argv, max_args):
        """opt_dpif_open(): the optional DP argument, or the only datapath."""
        argc = len(argv)
        if argc > 1 and self.dp_exists(argv[1]):
            dpname = argv[1]
        elif argc != max_args:
            dpname = self.get_one_dp()
        else:
            dpname = None
        if dpname is None:
            self.error(errno.EINVAL, "datapath not found")
            raise Fatal(errno.EINVAL)
        return self.open_or_fail(dpname)

    def ports(self, dp):
        """The datapath's vports sorted by port number."""
        return sorted(self.dpif.vport_dump(dp.ifindex), key=lambda v: v.port_no)

    def port_names(self, dp):
        """name -> number, for parsing."""
        return {v.name: v.port_no for v in self.ports(dp)}

    def portno_names(self, dp):
        """dpctl_get_portno_names(): number -> name when names are on, else None."""
        if not self.params.names:
            return None
        return {v.port_no: v.name for v in self.ports(dp)}

    # ------------------------------------------------------------ help

    def cmd_help(self, argv):
        self.usage()
        return 0

    def cmd_list_commands(self, argv):
        out = ["The available commands are:\n"]
        for c in COMMANDS:
            out.append(f"  {c.name:<23} {c.usage}\n")
        self.print("".join(out))
        return 0


# ============================================================ module API
def run(argv, socket=None, stdout=None, stderr=None, *, dpif=None, timeout=None):
    """Run one dpctl command line (options included); returns the exit status."""
    with DpctlSession(socket, stdout=stdout, stderr=stderr, dpif=dpif,
                      timeout=timeout) as session:
        return session.run(argv)


def check_output(argv, socket=None, *, dpif=None, timeout=None):
    """Run a command and return its output; raises :class:`DpctlError` if it fails."""
    with DpctlSession(socket, dpif=dpif, timeout=timeout) as session:
        return session.output(*argv)


def main(argv=None):
    """The ``ovsdp dpctl`` command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(argv)
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
