"""Datapath and port commands: add-dp, del-dp, dump-dps, add-if, set-if,
del-if, show.
"""

import errno
import re

from ... import uapi as U
from ...client.dpif import Dpif
from ...netlink import attr as A
from .common import (
    DEFAULT_DST_PORT,
    DP_TYPE,
    PORT_TYPE_NAMES,
    PORT_TYPES,
    Fatal,
    atoi,
    dp_parse_name,
    human_size,
)


class PortCommands:
    """The datapath and port commands of :class:`.session.DpctlSession`."""

    def cmd_add_dp(self, argv):
        name, dtype = dp_parse_name(argv[1])
        if dtype != DP_TYPE:
            self.error(errno.EAFNOSUPPORT, "add_dp")
            return errno.EAFNOSUPPORT
        try:
            self.dpif.dp_new(name, upcall_pid=0)
        except OSError as e:
            return self.oserror(e, "add_dp")
        if len(argv) > 2:
            return self.cmd_add_if(argv)
        return 0

    def cmd_del_dp(self, argv):
        dp = self.open_or_fail(argv[1])
        try:
            self.dpif.dp_del(dp.ifindex)
        except OSError as e:
            return self.oserror(e, "del_dp")
        return 0

    def _dps_for_each(self, fn):
        """dps_for_each()."""
        try:
            names = self.dp_names()
        except OSError as e:
            return self.oserror(e, "enumerating datapaths")
        openerror = 0
        for name in names:
            try:
                dp = self.dpif.dp_get(name)
            except OSError as e:
                openerror = self.oserror(e, f"opening datapath {name} failed")
                continue
            fn(dp)
        return openerror

    def cmd_dump_dps(self, argv):
        return self._dps_for_each(lambda dp: self.print(f"{DP_TYPE}@{dp.name}\n"))

    # -------------------------------------------------------------- ports
    @staticmethod
    def _split_iface(spec):
        """strtok_r(spec, ","): name and KEY=VALUE options (empty tokens skipped)."""
        tokens = [t for t in spec.split(",") if t]
        if not tokens:
            return None, []
        opts = []
        for opt in tokens[1:]:
            stripped = opt.lstrip("=")
            if not stripped:
                opts.append((None, ""))
                continue
            key, _, value = stripped.partition("=")
            opts.append((key, value))
        return tokens[0], opts

    def _tunnel_options(self, name, ptype, args):
        """netdev_set_config() for ovsdp: OVS_VPORT_ATTR_OPTIONS bytes (or None).

        Raises Fatal(EINVAL) for options the port type does not take.
        """
        bad = []
        dst_port = DEFAULT_DST_PORT.get(ptype)
        gbp = False
        for key, value in args.items():
            if key == "dst_port" and ptype in DEFAULT_DST_PORT:
                dst_port = atoi(value) & 0xFFFF
            elif key == "exts" and ptype == "vxlan":
                for ext in (e for e in value.split(",") if e):
                    if ext == "gbp":
                        gbp = True
                    else:
                        bad.append(f"{name}: unknown extension '{ext}'")
            else:
                bad.append(f"{name}: unknown {ptype} argument '{key}'")
        if bad:
            for msg in bad:
                self.error(0, msg)
            self.error(errno.EINVAL, f"{name}: could not set configuration")
            raise Fatal(errno.EINVAL)
        if ptype not in DEFAULT_DST_PORT:
            return None
        if not dst_port and not gbp:
            return None
        return Dpif.tunnel_options(dst_port or None, gbp)

    @staticmethod
    def port_config(vport):
        """netdev_get_config(): the port's options as {key: value}."""
        cfg = {}
        ptype = PORT_TYPE_NAMES.get(vport.type)
        if ptype in DEFAULT_DST_PORT:
            if vport.dst_port is not None:
                cfg["dst_port"] = str(vport.dst_port)
            for t, p, _ in A.iter_attrs(vport.options or b""):
                if t & U.NLA_TYPE_MASK == U.OVS_TUNNEL_ATTR_EXTENSION:
                    exts = [e & U.NLA_TYPE_MASK for e, _, _ in A.iter_attrs(p)]
                    if U.OVS_VXLAN_EXT_GBP in exts:
                        cfg["exts"] = "gbp"
        return cfg

    def cmd_add_if(self, argv):
        dp = self.open_or_fail(argv[1])
        lasterror = 0
        for spec in argv[2:]:
            error = self._add_if(dp, argv[1], spec)
            if error:
                lasterror = error
        return lasterror

    def _add_if(self, dp, dp_arg, spec):
        name, opts = self._split_iface(spec)
        if name is None:
            self.error(0, f"{spec} is not a valid network device name")
            return errno.EINVAL
        ptype, port_no, args = "system", None, {}
        for key, value in opts:
            if key is None:
                self.error(0, "Invalid option format")
                return errno.EINVAL
            if key == "type":
                ptype = value
            elif key == "port_no":
                port_no = atoi(value) & 0xFFFFFFFF
            elif key in args:
                self.error(0, f'duplicate "{key}" option')
            else:
                args[key] = value
        vtype = PORT_TYPES.get(ptype)
        if vtype is None:
            self.error(errno.EAFNOSUPPORT, f"{name}: failed to open network device")
            return errno.EAFNOSUPPORT
        type_name = PORT_TYPE_NAMES[vtype]
        try:
            options = self._tunnel_options(name, type_name, args)
        except Fatal as e:
            return e.err
        try:
            self.dpif.vport_new(dp.ifindex, name, vtype, port_no=port_no, options=options,
                                upcall_pids=[0])
        except OSError as e:
            return self.oserror(e, f"adding {name} to {dp_arg} failed")
        return 0

    def cmd_set_if(self, argv):
        dp = self.open_or_fail(argv[1])
        lasterror = 0
        for spec in argv[2:]:
            error = self._set_if(dp, argv[1], spec)
            if error:
                lasterror = error
        return lasterror

    def _set_if(self, dp, dp_arg, spec):
        name, opts = self._split_iface(spec)
        if name is None:
            # (sic) OVS reports this but does not count it as a failure.
            self.error(0, f"{spec} is not a valid network device name")
            return 0
        try:
            vport = self.dpif.vport_get(dp.ifindex, name=name)
        except OSError as e:
            return self.oserror(e, f"{name}: failed to query port in {dp_arg}")
        ptype = PORT_TYPE_NAMES.get(vport.type, "unknown")
        current = self.port_config(vport)
        args = dict(current)
        for key, value in opts:
            if key is None:
                self.error(0, "Invalid option format")
                return errno.EINVAL
            if key == "type":
                if PORT_TYPES.get(value) != vport.type and value != ptype:
                    self.error(0, f"{name}: can't change type from {ptype} to {value}")
                    return errno.EINVAL
            elif key == "port_no":
                if vport.port_no != atoi(value) & 0xFFFFFFFF:
                    self.error(0, f"{name}: can't change port number from {vport.port_no} "
                                  f"to {atoi(value)}")
                    return errno.EINVAL
            elif value == "":
                args.pop(key, None)
            else:
                args[key] = value
        try:
            options = self._tunnel_options(name, ptype, args)
        except Fatal as e:
            return e.err
        if args == current or options == self._tunnel_options(name, ptype, current):
            return 0
        try:
            self.dpif.vport_set(dp.ifindex, name=name, options=options or b"")
        except OSError as e:
            return self.oserror(e, "Error updating configuration")
        return 0

    def cmd_del_if(self, argv):
        dp = self.open_or_fail(argv[1])
        lasterror = 0
        for name in argv[2:]:
            if re.fullmatch(r"\d*", name):
                port = atoi(name) & 0xFFFFFFFF
            else:
                try:
                    vport = self.dpif.vport_get(dp.ifindex, name=name)
                except OSError:
                    self.error(0, f"no port named {name}")
                    lasterror = errno.ENOENT
                    continue
                port = vport.port_no
            try:
                self.dpif.vport_get(dp.ifindex, port_no=port)
                self.dpif.vport_del(dp.ifindex, port_no=port)
            except OSError as e:
                lasterror = self.oserror(e, f"deleting port {name} from {argv[1]} failed")
        return lasterror

    # --------------------------------------------------------------- show
    def cmd_show(self, argv):
        if len(argv) > 1:
            lasterror = 0
            for name in argv[1:]:
                try:
                    dp = self.dpif_open(name)
                except OSError as e:
                    lasterror = self.oserror(e, f"opening datapath {name} failed")
                    continue
                self.show_dpif(dp)
            return lasterror
        return self._dps_for_each(self.show_dpif)

    def show_dpif(self, dp):
        """show_dpif()."""
        out = [f"{DP_TYPE}@{dp.name}:\n",
               f"  lookups: hit:{dp.n_hit} missed:{dp.n_missed} lost:{dp.n_lost}\n",
               f"  flows: {dp.n_flows}\n"]
        n_pkts = dp.n_hit + dp.n_missed
        avg = dp.n_mask_hit / n_pkts if n_pkts else 0.0
        out.append(f"  masks: hit:{dp.n_mask_hit} total:{dp.n_masks} hit/pkt:{avg:.2f}\n")
        if dp.n_cache_hit:          # dpif-netlink takes 0 for "not supported"
            rate = dp.n_cache_hit / n_pkts * 100 if n_pkts else 0.0
            out.append(f"  cache: hit:{dp.n_cache_hit} hit-rate:{rate:.2f}%\n")
        out.append("  caches:\n")
        out.append(f"    masks-cache: size:{dp.masks_cache_size}\n")
        try:
            ports = self.ports(dp)
        except OSError as e:
            self.print("".join(out))
            self.oserror(e, f"dumping ports of {dp.name} failed")
            return
        for vport in ports:
            ptype = PORT_TYPE_NAMES.get(vport.type, "unknown")
            line = f"  port {vport.port_no}: {vport.name}"
            if ptype != "system":
                line += f" ({ptype}"
                for j, (key, value) in enumerate(sorted(self.port_config(vport).items())):
                    line += f"{',' if j else ':'} {key}={value}"
                line += ")"
            out.append(line + "\n")
            if self.params.print_statistics:
                s = vport.stats
                g = s.get
                out.append(f"    RX packets:{g('rx_packets', 0)} errors:{g('rx_errors', 0)} "
                           f"dropped:{g('rx_dropped', 0)} overruns:0 frame:0\n")
                out.append(f"    TX packets:{g('tx_packets', 0)} errors:{g('tx_errors', 0)} "
                           f"dropped:{g('tx_dropped', 0)} aborted:0 carrier:0\n")
                out.append("    collisions:0\n")
                rx, tx = g("rx_bytes", 0), g("tx_bytes", 0)
                out.append(f"    RX bytes:{rx}{human_size(rx)}  TX bytes:{tx}{human_size(tx)}\n")
        self.print("".join(out))

    # -------------------------------------------------------------- flows
