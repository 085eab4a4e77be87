"""ovsdp's own additions to the wire: none of these exist in Linux.

The control socket's extensions (docs/protocol.md sections 1 and 2), the
in-memory vport type and the ``ovsdp_dummy`` family (section 6).  Numbers
are chosen far from the kernel's so that they can never collide.
"""

import struct

from .openvswitch import (
    OVS_VPORT_TYPE_GENEVE,
    OVS_VPORT_TYPE_GRE,
    OVS_VPORT_TYPE_INTERNAL,
    OVS_VPORT_TYPE_NETDEV,
    OVS_VPORT_TYPE_VXLAN,
)

# ovsdp transport extension: socket options carried as a message (there is
# no setsockopt for an AF_UNIX peer).  See docs/protocol.md.
OVSDP_MSG_SOCKOPT = 0x0F          # nlmsg_type, below NLMSG_MIN_TYPE like other control types
OVSDP_SOCKOPT = struct.Struct("=II")  # level, optname; then the value
OVSDP_SO_DUMP_SIZE = 0x4F01       # level SOL_NETLINK: max bytes per dump datagram
OVSDP_SO_BIND_PORTID = 0x4F02     # level SOL_NETLINK: bind() with an nl_pid of the client's choice
# level SOL_NETLINK: the netlink protocol the connection speaks (socket()'s third
# argument): NETLINK_GENERIC (16, the default) or NETLINK_NETFILTER (12); only
# before any other message.  See docs/protocol.md, section 2.
OVSDP_SO_PROTOCOL = 0x4F03
OVSDP_DEFAULT_SOCKET = "/run/ovsdp/ovsdp.sock"
# The read-only socket beside it ("<path>.ro", mode 0666): anyone may look.
OVSDP_READ_ONLY_SUFFIX = ".ro"

# An in-memory port for tests (not a kernel type).
OVS_VPORT_TYPE_DUMMY = 0x7F01

# The names ovsdp's text (dpctl, odp) gives vport types.
VPORT_TYPE_NAMES = {
    OVS_VPORT_TYPE_NETDEV: "netdev",
    OVS_VPORT_TYPE_INTERNAL: "internal",
    OVS_VPORT_TYPE_GRE: "gre",
    OVS_VPORT_TYPE_VXLAN: "vxlan",
    OVS_VPORT_TYPE_GENEVE: "geneve",
    OVS_VPORT_TYPE_DUMMY: "dummy",
}
VPORT_TYPE_BY_NAME = {v: k for k, v in VPORT_TYPE_NAMES.items()}

# The ovsdp_dummy family: put frames into and take them out of dummy ports.
OVSDP_DUMMY_FAMILY = "ovsdp_dummy"
OVSDP_DUMMY_VERSION = 1
OVSDP_DUMMY_CMD_INJECT = 1
OVSDP_DUMMY_CMD_FETCH = 2
OVSDP_DUMMY_ATTR_PORT_NAME = 1
OVSDP_DUMMY_ATTR_PACKET = 2
OVSDP_DUMMY_ATTR_MAX = 2
