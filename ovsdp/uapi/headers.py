"""Packet headers, each declared once with Linux's field names.

The structs of include/uapi/linux/if_ether.h, ip.h, ipv6.h, udp.h and
seg6.h, and of include/net/vxlan.h, geneve.h, gre.h, erspan.h and gtp.h,
as :class:`~.layout.Layout`\\ s (a bit field shares its byte with its
neighbours, so such a byte is one field named after them), with the flag
and type numbers that go with them.  The tunnel encapsulations
(vports/encap.py), the flow key extraction (datapath/flow_key.py) and the
text form of tnl_push (odp/tnl_push.py) all read these.
"""

from .layout import Layout

ETH_ALEN = 6
# Ethertypes (linux/if_ether.h)
ETH_P_802_3_MIN = 0x0600           # below: an 802.3 length, not a type
ETH_P_802_2 = 0x0004               # what the kernel's key says for an 802.3 frame
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_RARP = 0x8035
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_IPV6 = 0x86DD
ETH_P_MPLS_UC = 0x8847
ETH_P_MPLS_MC = 0x8848
ETH_P_TEB = 0x6558                 # transparent Ethernet bridging
ETH_P_NSH = 0x894F
ETH_P_ERSPAN = 0x88BE              # ERSPAN type II (version 1)
ETH_P_ERSPAN2 = 0x22EB             # ERSPAN type III (version 2)

# IP protocols and IPv6 extension headers (linux/in.h, linux/in6.h)
IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_DCCP = 33
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_GRE = 47
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_SCTP = 132
IPPROTO_UDPLITE = 136

ETHHDR = Layout("ethhdr", "!", ("h_dest", "6s"), ("h_source", "6s"), ("h_proto", "H"))

# version:4 ihl:4 in the first byte; frag_off holds the DF/MF bits too.
IPHDR = Layout("iphdr", "!", ("version_ihl", "B"), ("tos", "B"), ("tot_len", "H"),
               ("id", "H"), ("frag_off", "H"), ("ttl", "B"), ("protocol", "B"),
               ("check", "H"), ("saddr", "I"), ("daddr", "I"))
IP_DF = 0x4000

# version:4 priority (traffic class):8 flow_lbl:20 in the first word.
IPV6HDR = Layout("ipv6hdr", "!", ("ver_tc_flow", "I"), ("payload_len", "H"),
                 ("nexthdr", "B"), ("hop_limit", "B"), ("saddr", "16s"), ("daddr", "16s"))
IPV6_FLOWLABEL_MASK = 0x000FFFFF

UDPHDR = Layout("udphdr", "!", ("source", "H"), ("dest", "H"), ("len", "H"), ("check", "H"))

# vx_vni holds the VNI in its upper 24 bits.
VXLANHDR = Layout("vxlanhdr", "!", ("vx_flags", "I"), ("vx_vni", "I"))
VXLAN_HF_VNI = 0x08000000

# ver:2 opt_len:6; oam:1 critical:1 rsvd1:6; vni:24 rsvd2:8.
GENEVEHDR = Layout("genevehdr", "!", ("ver_opt_len", "B"), ("oam_critical", "B"),
                   ("proto_type", "H"), ("vni", "I"))
GENEVE_OAM = 0x80
GENEVE_CRITICAL = 0x40
GENEVE_OPT_LEN_MASK = 0x3F

GRE_BASE_HDR = Layout("gre_base_hdr", "!", ("flags", "H"), ("protocol", "H"))
GRE_CSUM = 0x8000
GRE_ROUTING = 0x4000
GRE_KEY = 0x2000
GRE_SEQ = 0x1000
GRE_VERSION = 0x0007

# struct erspan_base_hdr: ver:4 vlan:12; cos:3 en:2 t:1 session_id:10.
ERSPAN_BASE_HDR = Layout("erspan_base_hdr", "!", ("ver_vlan", "H"), ("session_id", "H"))
ERSPAN_SID_MASK = 0x03FF
ERSPAN_GREHDR_LEN = GRE_BASE_HDR.size + 4          # the base header and the sequence number
ERSPAN_V1_MDSIZE = 4                               # __be32 index
# struct erspan_md2: timestamp, sgt; p:1 ft:5 hwid_upper:2; hwid:4 dir:1 gra:2 o:1.
ERSPAN_MD2 = Layout("erspan_md2", "!", ("timestamp", "I"), ("sgt", "H"),
                    ("p_ft_hwid_upper", "B"), ("hwid_dir_gra_o", "B"))
ERSPAN_V2_MDSIZE = ERSPAN_MD2.size

# struct ipv6_sr_hdr (linux/seg6.h): the routing header's four bytes, then
# first_segment (the last entry's index), flags and tag; the segments follow.
IPV6_SR_HDR = Layout("ipv6_sr_hdr", "!", ("nexthdr", "B"), ("hdrlen", "B"), ("type", "B"),
                     ("segments_left", "B"), ("first_segment", "B"), ("flags", "B"),
                     ("tag", "H"))
IPV6_SRCRT_TYPE_4 = 4
SRV6_MAX_SEGS = 6                  # what Open vSwitch's srv6 tunnel allows

# struct gtpu_hdr: flags, message type, length, TEID.
GTPU_HDR = Layout("gtpu_hdr", "!", ("flags", "B"), ("msgtype", "B"), ("length", "H"),
                  ("teid", "I"))
