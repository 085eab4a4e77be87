"""FTP through NAT, as net/netfilter/nf_nat_ftp.c.

When the control connection is NATed, the address and port a command
announces are the inside ones: the hook (``nf_nat_ftp_hook`` of
nf_conntrack_ftp.py) expects the data connection on the outside address
instead (a free port, the wanted one if it can), writes that into the
text (``nf_nat_ftp_fmt_cmd()``; the segment may grow or shrink, and the
sequence adjustment follows), and NATs the data connection like its
master when it comes (``nf_nat_follow_master``).  Sans I/O.
"""

import ipaddress
import logging

from . import nf_conntrack_ftp as FTP
from .nf_conntrack_common import IP_CT_IS_REPLY, NFPROTO_IPV4
from .nf_conntrack_expect import unexpect_related
from .nf_conntrack_helper import register_nat
from .nf_nat_helper import exp_find_port, follow_master, mangle_tcp_packet

log = logging.getLogger(__name__)


def _pi6(addr):
    """%pI6: eight groups of four hex digits, uncompressed."""
    h = "%032x" % addr
    return ":".join(h[i:i + 4] for i in range(0, 32, 4))


def fmt_cmd(conn, ftptype, addr, port):
    """nf_nat_ftp_fmt_cmd(): the text that replaces the announced address."""
    if ftptype in (FTP.NF_CT_FTP_PORT, FTP.NF_CT_FTP_PASV):
        if conn.tuple[0].l3num != NFPROTO_IPV4:
            addr >>= 96                 # addr->ip: the first 4 bytes of an IPv6 address
        a = addr.to_bytes(4, "big")
        return b"%u,%u,%u,%u,%u,%u" % (a[0], a[1], a[2], a[3], port >> 8, port & 0xFF)
    if ftptype == FTP.NF_CT_FTP_EPRT:
        if conn.tuple[0].l3num == NFPROTO_IPV4:
            return b"|1|%s|%u|" % (str(ipaddress.IPv4Address(addr)).encode(), port)
        return b"|2|%s|%u|" % (_pi6(addr).encode(), port)
    if ftptype == FTP.NF_CT_FTP_EPSV:
        return b"|||%u|" % port
    return b""


def nf_nat_ftp(tracker, d, ctinfo, ftptype, protoff, matchoff, matchlen, exp, partial=False):
    """nf_nat_ftp(): the verdict; ``d`` (the datagram) is rewritten in place."""
    direction = 1 if ctinfo >= IP_CT_IS_REPLY else 0
    conn = exp.master
    newaddr = conn.tuple[1 - direction].dst     # the data connection comes from where this goes
    exp.saved_proto = exp.dport
    exp.dir = 1 - direction
    exp.expectfn = follow_master
    port = exp_find_port(tracker, exp, exp.saved_proto)
    if port == 0:
        log.debug("nf_nat_ftp: all ports in use")
        return FTP.NF_DROP
    rep = fmt_cmd(conn, ftptype, newaddr, port)
    if rep and mangle_tcp_packet(d, conn, ctinfo, protoff, matchoff, matchlen, rep, partial):
        return FTP.NF_ACCEPT
    log.debug("nf_nat_ftp: cannot mangle packet")
    unexpect_related(exp)
    return FTP.NF_DROP


FTP.nf_nat_ftp_hook = nf_nat_ftp
register_nat("ftp")
