"""Flow commands: dump-flows, add-flow(s), mod-flow(s), get-flow, del-flow(s).
"""

import contextlib
import dataclasses
import errno
import sys
import time

from ...odp import OdpParseError, format_actions, format_key, parse_actions, parse_key
from .common import (
    DPCTL_FLOWS_ADD,
    DPCTL_FLOWS_DEL,
    DPCTL_FLOWS_MOD,
    Fatal,
    format_stats,
    parse_flow_line,
    preprocessed_lines,
)
from .flow_filter import FilterError, filter_matches, parse_filter
from .options import DUMP_TYPES
from .ufid import flow_ufid, format_ufid, ufid_from_string


class FlowCommands:
    """The flow commands of :class:`.session.DpctlSession`."""

    def format_flow(self, f, names, now_ms=None):
        """format_dpif_flow(): one dump-flows line (without the newline)."""
        verbose = self.params.verbosity > 0
        s = ""
        if verbose and f.ufid is not None:
            s += format_ufid(f.ufid) + ", "
        s += format_key(f.key or b"", f.mask, verbose=verbose, port_names=names)
        s += ", " + format_stats(f.packets, f.bytes, f.used, f.tcp_flags, now_ms)
        if verbose:
            s += ", dp:ovs"
        s += ", actions:" + format_actions(f.actions or b"", names)
        return s

    def cmd_dump_flows(self, argv):
        flt_s = types = None
        argc, lastargc = len(argv), 0
        while argc > 1 and lastargc != argc:
            lastargc = argc
            last = argv[argc - 1]
            if last.startswith("filter=") and flt_s is None:
                flt_s = last[7:]
                argc -= 1
            elif last.startswith("type=") and types is None:
                types = last[5:]
                argc -= 1
        argv = argv[:argc]
        dp = self.opt_dpif_open(argv, 2)
        names = self.portno_names(dp)
        flt = None
        if flt_s is not None:
            try:
                flt = parse_filter(flt_s, self.port_names(dp))
            except FilterError as e:
                self.error(0, f"Failed to parse filter ({e})")
                return errno.EINVAL
        show = True
        if types is not None:
            show = False
            for t in (t for t in types.split(",") if t):
                if t not in DUMP_TYPES:
                    self.error(errno.EINVAL, f"Failed to parse type ({t})")
                    return errno.EINVAL
                show = show or DUMP_TYPES[t]
        try:
            flows = self.dpif.flow_dump(dp.ifindex)
        except OSError as e:
            return self.oserror(e, "Failed to dump flows from datapath")
        now_ms = time.monotonic_ns() // 1_000_000
        out = []
        for f in flows:
            if not show:
                continue
            if flt is not None and not filter_matches(flt, f.key or b"", f.mask):
                continue
            out.append(self.format_flow(f, names, now_ms) + "\n")
        self.print("".join(out))
        return 0

    def _parse_flow(self, dp, key_s, with_actions=None):
        """UFID, key, mask (and actions) of a FLOW argument; reports and raises on errors."""
        try:
            n, ufid = ufid_from_string(key_s)
        except ValueError:
            self.error(errno.EINVAL, "parsing flow ufid")
            raise Fatal(errno.EINVAL) from None
        key_s = key_s[n:]
        names = self.port_names(dp)
        try:
            key, mask = parse_key(key_s, names)
        except OdpParseError as e:
            if with_actions is None:
                self.error(errno.EINVAL, str(e))              # del-flow's wording
            else:
                self.error(errno.EINVAL, f"parsing flow key ({e})")
            raise Fatal(errno.EINVAL) from None
        actions = None
        if with_actions is not None:
            try:
                actions = parse_actions(with_actions, names)
            except OdpParseError as e:
                self.error(errno.EINVAL, f"parsing actions ({e})")
                raise Fatal(errno.EINVAL) from None
        return ufid, key or None, mask or None, actions

    def put_flow(self, dp, key_s, actions_s, modify, create, clear=False):
        """dpctl_put_flow_dpif(): add (create) or modify (modify [+ create]) a flow."""
        try:
            ufid, key, mask, actions = self._parse_flow(dp, key_s, actions_s)
        except Fatal as e:
            return e.err
        generated = ufid is None
        if generated:
            ufid = flow_ufid(key or b"", mask)
        d = self.dpif
        try:
            if not modify:
                info = d.flow_new(dp.ifindex, key, actions, mask=mask, ufid=ufid, create=True)
            else:
                info = self._modify(dp, key, mask, actions, ufid, generated, clear, create)
        except OSError as e:
            return self.oserror(e, "updating flow table")
        if self.params.print_statistics:
            info = info or _NO_STATS
            self.print(format_stats(info.packets, info.bytes, info.used, info.tcp_flags) + "\n")
        return 0

    def _modify(self, dp, key, mask, actions, ufid, generated, clear, create):
        d = self.dpif
        tries = [ufid, None] if generated else [ufid]
        for i, u in enumerate(tries):
            try:
                return d.flow_set(dp.ifindex, key=key, actions=actions, mask=mask, ufid=u,
                                  clear=clear)
            except OSError as e:
                if e.errno != errno.ENOENT or (i == len(tries) - 1 and not create):
                    raise
        return d.flow_new(dp.ifindex, key, actions, mask=mask, ufid=ufid, create=True)

    def cmd_add_flow(self, argv):
        dp = self.opt_dpif_open(argv, 4)
        return self.put_flow(dp, argv[-2], argv[-1], modify=False, create=True)

    def cmd_mod_flow(self, argv):
        dp = self.opt_dpif_open(argv, 4)
        return self.put_flow(dp, argv[-2], argv[-1], modify=True,
                             create=self.params.may_create, clear=self.params.zero_statistics)

    def cmd_get_flow(self, argv):
        dp = self.opt_dpif_open(argv, 3)
        names = self.portno_names(dp)
        try:
            n, ufid = ufid_from_string(argv[-1])
        except ValueError:
            n = -1
        if n <= 0:
            self.error(errno.EINVAL, "parsing flow ufid")
            return errno.EINVAL
        try:
            f = self.dpif.flow_get(dp.ifindex, ufid=ufid)
        except OSError as e:
            return self.oserror(e, "getting flow")
        self.print(self.format_flow(f, names) + "\n")
        return 0

    def del_flow(self, dp, key_s):
        """dpctl_del_flow_dpif()."""
        try:
            ufid, key, mask, _ = self._parse_flow(dp, key_s)
        except Fatal as e:
            return e.err
        generated = ufid is None
        tries = [flow_ufid(key or b"", mask), None] if generated else [ufid]
        info = None
        for i, u in enumerate(tries):
            try:
                info = self.dpif.flow_del(dp.ifindex, key=key, ufid=u)
                break
            except OSError as e:
                if e.errno == errno.ENOENT and i < len(tries) - 1:
                    continue
                err = self.oserror(e, "deleting flow")
                if err == errno.ENOENT and generated:
                    self.print("Perhaps you need to specify a UFID?\n")
                return err
        if self.params.print_statistics:
            info = info or _NO_STATS
            self.print(format_stats(info.packets, info.bytes, info.used, info.tcp_flags) + "\n")
        return 0

    def cmd_del_flow(self, argv):
        dp = self.opt_dpif_open(argv, 3)
        return self.del_flow(dp, argv[-1])

    def cmd_del_flows(self, argv):
        argc = len(argv)
        if (argc == 2 and not self.dp_exists(argv[1])) or argc > 2:
            return self.cmd_process_flows(argv)
        dp = self.opt_dpif_open(argv, 2)
        try:
            self.dpif.flow_flush(dp.ifindex)
        except OSError as e:
            return self.oserror(e, "deleting all flows")
        return 0

    def cmd_process_flows(self, argv):
        """dpctl_process_flows(): add-flows, mod-flows, del-flows FILE."""
        file_name = argv[-1]
        def_cmd = {"mod-flows": DPCTL_FLOWS_MOD, "del-flows": DPCTL_FLOWS_DEL}.get(
            argv[0], DPCTL_FLOWS_ADD)
        dp = self.opt_dpif_open(argv, 4)
        if file_name == "-":
            stream_cm = contextlib.nullcontext(sys.stdin)
        else:
            try:
                stream_cm = open(file_name)  # noqa: SIM115 - closed by the with below
            except OSError as e:
                self.error(e.errno, f'Opening file "{file_name}" failed')
                return e.errno
        lasterror = 0
        with stream_cm as stream:
            for number, line in preprocessed_lines(stream):
                cmd, flow, actions = parse_flow_line(def_cmd, line)
                if ((flow is None and actions is None)
                        or (cmd in (DPCTL_FLOWS_ADD, DPCTL_FLOWS_MOD) and actions is None)
                        or (cmd == DPCTL_FLOWS_DEL and actions is not None)):
                    self.error(0, f"Failed parsing line number {number}, skipped!")
                    lasterror = errno.EINVAL
                    continue
                if cmd == DPCTL_FLOWS_ADD:
                    err = self.put_flow(dp, flow, actions, modify=False, create=True)
                elif cmd == DPCTL_FLOWS_MOD:
                    err = self.put_flow(dp, flow, actions, modify=True, create=False)
                else:
                    err = self.del_flow(dp, flow)
                if err:
                    lasterror = err
        return lasterror

    # ----------------------------------------------------------- help


@dataclasses.dataclass
class _Stats:
    packets: int = 0
    bytes: int = 0
    used: int = 0
    tcp_flags: int = 0


_NO_STATS = _Stats()
