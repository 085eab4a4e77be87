"""include/uapi/linux/psample.h (Linux 6.11+): the psample generic netlink family.

The family carries sampled packets to the members of its "packets" group
and tells the "config" group when a sampling group comes or goes.  The
attribute numbers count from 0 (there is no UNSPEC entry in this header).
"""

PSAMPLE_GENL_NAME = "psample"
PSAMPLE_GENL_VERSION = 1
PSAMPLE_NL_MCGRP_CONFIG_NAME = "config"
PSAMPLE_NL_MCGRP_SAMPLE_NAME = "packets"

# enum psample_command
PSAMPLE_CMD_SAMPLE = 0
PSAMPLE_CMD_GET_GROUP = 1
PSAMPLE_CMD_NEW_GROUP = 2
PSAMPLE_CMD_DEL_GROUP = 3

# attributes (sampled packet metadata, then the commands' ones)
PSAMPLE_ATTR_IIFINDEX = 0            # u16
PSAMPLE_ATTR_OIFINDEX = 1            # u16
PSAMPLE_ATTR_ORIGSIZE = 2            # u32
PSAMPLE_ATTR_SAMPLE_GROUP = 3        # u32
PSAMPLE_ATTR_GROUP_SEQ = 4           # u32
PSAMPLE_ATTR_SAMPLE_RATE = 5         # u32: 1/rate, or a probability (SAMPLE_PROBABILITY)
PSAMPLE_ATTR_DATA = 6                # the packet's first bytes
PSAMPLE_ATTR_GROUP_REFCOUNT = 7      # u32
PSAMPLE_ATTR_TUNNEL = 8              # nested PSAMPLE_TUNNEL_KEY_ATTR_*
PSAMPLE_ATTR_PAD = 9
PSAMPLE_ATTR_OUT_TC = 10             # u16
PSAMPLE_ATTR_OUT_TC_OCC = 11         # u64, bytes
PSAMPLE_ATTR_LATENCY = 12            # u64, nanoseconds
PSAMPLE_ATTR_TIMESTAMP = 13          # u64, nanoseconds (CLOCK_REALTIME)
PSAMPLE_ATTR_PROTO = 14              # u16: skb->protocol, host order
PSAMPLE_ATTR_USER_COOKIE = 15        # binary, what the sampler was given
PSAMPLE_ATTR_SAMPLE_PROBABILITY = 16  # flag: SAMPLE_RATE is a probability scaled to 0..2^32-1
PSAMPLE_ATTR_MAX = 16

# enum psample_tunnel_key_attr (inside PSAMPLE_ATTR_TUNNEL)
PSAMPLE_TUNNEL_KEY_ATTR_ID = 0               # be64
PSAMPLE_TUNNEL_KEY_ATTR_IPV4_SRC = 1         # be32
PSAMPLE_TUNNEL_KEY_ATTR_IPV4_DST = 2         # be32
PSAMPLE_TUNNEL_KEY_ATTR_TOS = 3              # u8
PSAMPLE_TUNNEL_KEY_ATTR_TTL = 4              # u8
PSAMPLE_TUNNEL_KEY_ATTR_DONT_FRAGMENT = 5    # flag
PSAMPLE_TUNNEL_KEY_ATTR_CSUM = 6             # flag
PSAMPLE_TUNNEL_KEY_ATTR_OAM = 7              # flag
PSAMPLE_TUNNEL_KEY_ATTR_GENEVE_OPTS = 8      # the options' bytes
PSAMPLE_TUNNEL_KEY_ATTR_TP_SRC = 9           # be16
PSAMPLE_TUNNEL_KEY_ATTR_TP_DST = 10          # be16
PSAMPLE_TUNNEL_KEY_ATTR_VXLAN_OPTS = 11      # nested
PSAMPLE_TUNNEL_KEY_ATTR_IPV6_SRC = 12        # in6_addr
PSAMPLE_TUNNEL_KEY_ATTR_IPV6_DST = 13        # in6_addr
PSAMPLE_TUNNEL_KEY_ATTR_PAD = 14
PSAMPLE_TUNNEL_KEY_ATTR_ERSPAN_OPTS = 15     # struct erspan_metadata
PSAMPLE_TUNNEL_KEY_ATTR_IPV4_INFO_BRIDGE = 16  # flag
