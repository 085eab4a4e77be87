"""The datapath flow text format (Open vSwitch lib/odp-util.c).

Pure functions between netlink attribute bytes (the payloads of
OVS_FLOW_ATTR_KEY, OVS_FLOW_ATTR_MASK and OVS_FLOW_ATTR_ACTIONS) and the
text that ``ovs-dpctl`` prints and reads::

    key, mask = parse_key("in_port(1),eth(),eth_type(0x0800),ipv4(src=10.0.0.1/255.255.255.0)")
    format_key(key, mask)        # odp_flow_format()
    format_key(key)              # odp_flow_key_format(): exact key, every field
    acts = parse_actions("ct(commit,zone=5),2")
    format_actions(acts)         # format_odp_actions()
"""

from ._util import OdpParseError
from .actions import format_action, format_actions
from .actions_scan import parse_actions
from .keys import format_key, format_key_attr
from .keys_scan import parse_key

__all__ = [
    "OdpParseError",
    "format_action",
    "format_actions",
    "format_flow",
    "format_key",
    "format_key_attr",
    "parse_actions",
    "parse_key",
]


def format_flow(key, mask, actions, *, packets=0, nbytes=0, used="never", ufid=None,
                verbose=False, port_names=None):
    """One ``dpctl/dump-flows`` line: ``[ufid:U, ]KEY, packets:N, bytes:N, used:T, actions:A``."""
    s = f"ufid:{ufid}, " if ufid is not None else ""
    s += format_key(key, mask, verbose=verbose, port_names=port_names)
    s += f", packets:{packets}, bytes:{nbytes}, used:{used}, actions:"
    return s + format_actions(actions, port_names)
