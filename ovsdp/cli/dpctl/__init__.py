"""``ovsdp dpctl``: Open vSwitch's ovs-dpctl for ovsdp (lib/dpctl.c, utilities/ovs-dpctl.c).

Commands, argument rules, output formats, messages and exit statuses follow
OVS 3.1's ``ovs-dpctl`` (the messages say ``ovsdp dpctl:`` instead of
``ovs-dpctl:``).  The only datapath type is ``system``: ``dp0`` and
``system@dp0`` name the same datapath.

As a library::

    from ovsdp.cli import dpctl
    rc = dpctl.run(["add-dp", "dp0", "p1,type=dummy"], socket=path)
    with dpctl.DpctlSession(socket=path) as s:      # one connection, many commands
        s.run(["add-flow", "in_port(1),eth(),eth_type(0x0800)", "2"])
        text = s.output("dump-flows", "-m")         # DpctlError on failure

UFIDs.  ``add-flow`` without ``ufid:`` gives the flow a UFID derived from the
flow itself: BLAKE2b-128 over the masked key and mask (attributes in a
canonical order, fully wildcarded ones left out), stamped as a version-4
UUID like OVS's odp_flow_key_hash().  OVS hashes the raw key with a random
per-process basis (so only ``ovs-appctl dpctl/add-flow`` uses it and
``ovs-dpctl`` sends no UFID); ovsdp's hash is stable, so ``mod-flow`` and
``del-flow`` given the same flow text find the flow by the same UFID.  They
fall back to the key (the kernel's lookup of key-identified flows) when no
flow has that UFID.
"""

from ...odp import format_key  # noqa: F401
from .common import (  # noqa: F401
    DPCTL_FLOWS_ADD,
    DPCTL_FLOWS_DEL,
    DPCTL_FLOWS_MOD,
    EXIT_FAILURE,
    EXIT_SUCCESS,
    USAGE,
    DpctlError,
    format_stats,
    format_tcp_flags,
    human_size,
    parse_flow_line,
    preprocessed_lines,
)
from .flow_filter import FilterError, filter_matches, flow_view, parse_filter  # noqa: F401
from .session import DpctlSession, check_output, main, run  # noqa: F401
from .ufid import flow_ufid, format_ufid, ufid_from_string  # noqa: F401
