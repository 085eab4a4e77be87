"""The FTP helper, as net/netfilter/nf_conntrack_ftp.c.

On an established FTP control connection the helper reads each command
or reply that starts right after a newline: a client's ``PORT h1,h2,h3,h4,
p1,p2`` or ``EPRT |1|addr|port|`` (active mode), a server's ``227 ...
(h1,...,p2)`` or ``229 ... (|||port|)`` (passive mode), and expects the
data connection it announces, from the other side, to that address and
port.  When the control connection is NATed, nf_nat_ftp.py rewrites the
text and the expectation.  A command cut at the end of a segment drops the
packet (the sender resends it whole), as Linux does.  Sans I/O.

Differences from Linux: EPRT's IPv6 address is read by Python's
``ipaddress`` rather than in6_pton() (the same addresses, but for forms
in6_pton() refuses or accepts that ipaddress does not); the ``ports`` and
``loose`` module parameters are the defaults (port 21, not loose).
"""

import ipaddress
import logging

from .nf_conntrack_common import (
    IP_CT_ESTABLISHED,
    IP_CT_ESTABLISHED_REPLY,
    IP_CT_IS_REPLY,
    NFPROTO_IPV4,
    NFPROTO_IPV6,
)
from .nf_conntrack_expect import NF_CT_EXPECT_CLASS_DEFAULT, Expect, related
from .nf_conntrack_helper import ExpectPolicy, Helper, register
from .nf_nat_proto import IPS_NAT_MASK

log = logging.getLogger(__name__)

NF_ACCEPT, NF_DROP = 1, 0
IPPROTO_TCP = 6
FTP_PORT = 21
NUM_SEQ_TO_REMEMBER = 2
NF_CT_FTP_SEQ_PICKUP = 1 << 0
# enum nf_ct_ftp_type
NF_CT_FTP_PORT, NF_CT_FTP_PASV, NF_CT_FTP_EPRT, NF_CT_FTP_EPSV = range(4)
_M32 = 0xFFFFFFFF
_LOW96 = (1 << 96) - 1

# set by nf_nat_ftp.py: nf_nat_ftp_hook
nf_nat_ftp_hook = None


class Cmd:
    """struct nf_conntrack_man: what a command announces."""

    __slots__ = ("l3num", "addr", "port")

    def __init__(self, l3num, addr):
        self.l3num, self.addr, self.port = l3num, addr, 0


class FtpMaster:
    """struct nf_ct_ftp_master: per direction, the sequence numbers just
    after a newline (where a command may start) and the pickup flag."""

    __slots__ = ("seq_aft_nl", "seq_aft_nl_num", "flags")

    def __init__(self):
        self.seq_aft_nl = [[0] * NUM_SEQ_TO_REMEMBER, [0] * NUM_SEQ_TO_REMEMBER]
        self.seq_aft_nl_num = [0, 0]
        self.flags = [0, 0]


def _isdigit(c):
    return 48 <= c <= 57


def try_number(data, size, sep, term):
    """try_number(): ``size`` numbers separated by ``sep``; (length, numbers),
    length 0 if they are not there (``term`` 0: any terminator)."""
    array = [0] * size
    i = 0
    for n, c in enumerate(data):
        if i >= size:
            break
        if _isdigit(c):
            array[i] = (array[i] * 10 + c - 48) & _M32
        elif c == sep:
            i += 1
        else:
            if (c == term or not term) and i == size - 1:
                return n, array
            return 0, array
    return 0, array


def try_rfc959(data, cmd, term, offset):
    """try_rfc959(): ``h1,h2,h3,h4,p1,p2``; its length or 0."""
    length, a = try_number(data, 6, ord(","), term)
    if length == 0:
        return 0, offset
    v = ((a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]) & _M32
    # cmd->u3.ip: the first 4 bytes of the address union (the rest of an
    # IPv6 connection's source stays)
    cmd.addr = v if cmd.l3num == NFPROTO_IPV4 else v << 96 | cmd.addr & _LOW96
    cmd.port = ((a[4] << 8) | a[5]) & 0xFFFF
    return length, offset


def try_rfc1123(data, cmd, term, offset):
    """try_rfc1123(): a 227 reply's numbers, wherever the first digit is."""
    for i, c in enumerate(data):
        if _isdigit(c):
            return try_rfc959(data[i:], cmd, 0, offset + i)
    return 0, offset


def get_port(data, start, delim):
    """get_port(): a port up to ``delim``; the index after it, or 0."""
    port = 0
    for i in range(start, len(data)):
        c = data[i]
        if c == delim:
            if port == 0:
                return 0, 0
            return i + 1, port
        if not _isdigit(c):
            return 0, 0
        port = (port * 10 + c - 48) & 0xFFFF
    return 0, 0


def _ipv6(data, delim):
    """get_ipv6_addr(): an IPv6 address up to ``delim``; (length, int)."""
    end = data.find(bytes((delim,)))
    if end <= 0:
        return 0, 0
    text = bytes(data[:end])
    if text.strip(b"0123456789abcdefABCDEF:."):
        return 0, 0
    try:
        return end, int(ipaddress.IPv6Address(text.decode()))
    except ValueError:
        return 0, 0


def _bad_delim(c):
    return _isdigit(c) or c < 33 or c > 126


def try_eprt(data, cmd, term, offset):
    """try_eprt(): ``|1|132.235.1.2|6275|`` or ``|2|3ffe::1|6275|``."""
    if len(data) <= 3:
        return 0, offset
    delim = data[0]
    if _bad_delim(delim) or data[2] != delim:
        return 0, offset
    if ((cmd.l3num == NFPROTO_IPV4 and data[1] != ord("1"))
            or (cmd.l3num == NFPROTO_IPV6 and data[1] != ord("2"))):
        return 0, offset
    if data[1] == ord("1"):
        length, a = try_number(data[3:], 4, ord("."), delim)
        if length:
            cmd.addr = ((a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]) & _M32
    else:
        length, addr = _ipv6(data[3:], delim)
        if length:
            cmd.addr = addr
    if length == 0:
        return 0, offset
    n, port = get_port(data, 3 + length + 1, delim)
    if n:
        cmd.port = port
    return n, offset


def try_epsv_response(data, cmd, term, offset):
    """try_epsv_response(): ``|||6446|``."""
    if len(data) <= 3:
        return 0, offset
    delim = data[0]
    if _bad_delim(delim) or data[1] != delim or data[2] != delim:
        return 0, offset
    n, port = get_port(data, 3, delim)
    if n:
        cmd.port = port
    return n, offset


# search[IP_CT_DIR_MAX][2]: pattern, skip, term, ftptype, getnum
SEARCH = (
    ((b"PORT", ord(" "), ord("\r"), NF_CT_FTP_PORT, try_rfc959),
     (b"EPRT", ord(" "), ord("\r"), NF_CT_FTP_EPRT, try_eprt)),
    ((b"227 ", 0, 0, NF_CT_FTP_PASV, try_rfc1123),
     (b"229 ", ord("("), ord(")"), NF_CT_FTP_EPSV, try_epsv_response)),
)


def find_pattern(data, pattern, skip, term, cmd, getnum):
    """find_pattern(): (1 match, 0 none, -1 partial), offset, length."""
    plen = len(pattern)
    dlen = len(data)
    if dlen <= plen:
        return (-1 if data.lower() == pattern[:dlen].lower() else 0), 0, 0
    if data[:plen].lower() != pattern.lower():
        return 0, 0, 0
    i = plen
    if skip:
        while data[i] != skip:
            if i == dlen - 1:
                return -1, 0, 0
            i += 1
        i += 1
    numlen, numoff = getnum(data[i:], cmd, term, i)
    if not numlen:
        return -1, numoff, 0
    return 1, numoff, numlen


def _before(a, b):
    return ((a - b) & _M32) >= 0x80000000


def find_nl_seq(seq, info, d):
    return seq in info.seq_aft_nl[d][:info.seq_aft_nl_num[d]]


def update_nl_seq(nl_seq, info, d):
    """update_nl_seq(): remember where the next command may start."""
    seqs = info.seq_aft_nl[d]
    if nl_seq in seqs[:info.seq_aft_nl_num[d]]:
        return
    if info.seq_aft_nl_num[d] < NUM_SEQ_TO_REMEMBER:
        seqs[info.seq_aft_nl_num[d]] = nl_seq
        info.seq_aft_nl_num[d] += 1
    else:
        oldest = 0 if _before(seqs[0], seqs[1]) else 1
        if _before(seqs[oldest], nl_seq):
            seqs[oldest] = nl_seq


def help(tracker, d, protoff, conn, ctinfo, partial=False):  # noqa: A001 - the kernel's name
    """help(): the verdict for a segment of the control connection ``conn``
    (the datagram ``d``, a bytearray NAT may rewrite)."""
    if ctinfo not in (IP_CT_ESTABLISHED, IP_CT_ESTABLISHED_REPLY):
        return NF_ACCEPT
    if len(d) < protoff + 20:
        return NF_ACCEPT
    dataoff = protoff + (d[protoff + 12] >> 4) * 4
    if dataoff >= len(d):
        return NF_ACCEPT
    data = bytes(d[dataoff:])
    direction = 1 if ctinfo >= IP_CT_IS_REPLY else 0
    info = conn.help.data
    th_seq = int.from_bytes(d[protoff + 4:protoff + 8], "big")
    ends_in_nl = data[-1] == 10
    seq = (th_seq + len(data)) & _M32
    ret = NF_ACCEPT
    if not find_nl_seq(th_seq, info, direction):
        if not info.flags[direction] & NF_CT_FTP_SEQ_PICKUP:
            if ends_in_nl:
                update_nl_seq(seq, info, direction)
            return NF_ACCEPT
        info.flags[direction] ^= NF_CT_FTP_SEQ_PICKUP
    l3num = conn.tuple[0].l3num
    cmd = Cmd(l3num, conn.tuple[direction].src)
    found, matchoff, matchlen, ftptype = 0, 0, 0, None
    for pattern, skip, term, ftptype, getnum in SEARCH[direction]:  # noqa: B007
        found, matchoff, matchlen = find_pattern(data, pattern, skip, term, cmd, getnum)
        if found:
            break
    if found == -1:
        log.debug("nf_ct_ftp: partial matching of %r", pattern)
        return NF_DROP
    if found == 1:
        other = conn.tuple[1 - direction]
        daddr = other.dst
        if cmd.l3num == l3num and cmd.addr != conn.tuple[direction].src:
            daddr = None            # not recorded (another host's address): not loose
        if daddr is not None:
            exp = Expect(conn)
            exp.init(NF_CT_EXPECT_CLASS_DEFAULT, cmd.l3num, other.src, daddr, IPPROTO_TCP,
                     None, cmd.port)
            if nf_nat_ftp_hook is not None and conn.status & IPS_NAT_MASK:
                ret = nf_nat_ftp_hook(tracker, d, ctinfo, ftptype, protoff, matchoff,
                                      matchlen, exp, partial)
            elif related(tracker, exp) != 0:
                log.debug("nf_ct_ftp: cannot add expectation")
                ret = NF_DROP
    if ends_in_nl:
        update_nl_seq(seq, info, direction)
    return ret


_POLICY = ExpectPolicy(max_expected=1, timeout=5 * 60)
for _family in (NFPROTO_IPV4, NFPROTO_IPV6):
    register(Helper("ftp", _family, IPPROTO_TCP, FTP_PORT, _POLICY, help, FtpMaster))
