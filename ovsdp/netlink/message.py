"""Netlink message framing: nlmsghdr, genlmsghdr, errors/acks, dump end.

Pure functions over bytes; no sockets.
"""

import struct

from ..uapi import (
    GENL_HDRLEN,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_MULTI,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_HDRLEN,
    NLMSG_OVERRUN,
    NLMSGERR_ATTR_MSG,
    NLMSGERR_ATTR_OFFS,
)
from .attr import align, nla_string, nla_u32

NLMSGHDR = struct.Struct("=IHHII")    # len, type, flags, seq, pid
GENLMSGHDR = struct.Struct("=BBH")    # cmd, version, reserved
_ERR = struct.Struct("=i")
_U32 = struct.Struct("=I")
_ACK = struct.Struct("=IHHIIi16s")      # nlmsghdr, error 0, the request's nlmsghdr


class Header:
    """A parsed nlmsghdr."""

    __slots__ = ("len", "type", "flags", "seq", "pid")

    def __init__(self, length, mtype, flags, seq, pid):
        self.len = length
        self.type = mtype
        self.flags = flags
        self.seq = seq
        self.pid = pid

    def pack(self):
        return NLMSGHDR.pack(self.len, self.type, self.flags, self.seq, self.pid)

    def __repr__(self):
        return (f"Header(len={self.len}, type={self.type:#x}, flags={self.flags:#x}, "
                f"seq={self.seq}, pid={self.pid})")


def split(data):
    """Split one datagram into messages like netlink_rcv_skb.

    Returns ([(Header, message bytes including the header)], consumed).
    Parsing stops at the first header that is short or whose length does not
    fit the rest of the datagram, as the kernel does; ``consumed`` then falls
    short of ``len(data)`` and the caller can tell the datagram was not
    well framed.
    """
    off = 0
    out = []
    while True:
        m = next_message(data, off)
        if m is None:
            return out, off
        h, msg, off = m
        out.append((h, msg))


def well_framed(data, consumed, any_message):
    """Whether a datagram was netlink: netlink_rcv_skb's rule.

    Fewer bytes than a header after the last message are ignored; a
    datagram without one good message, or with a bad header, is garbage
    (its good messages are still handled).
    """
    return any_message and len(data) - consumed < NLMSG_HDRLEN


def next_message(data, off):
    """The message at ``off`` of a datagram: (Header, bytes, next offset), or None.

    One step of :func:`split`, for callers that handle a datagram a few
    messages at a time.
    """
    n = len(data)
    if n - off < NLMSG_HDRLEN:
        return None
    h = Header(*NLMSGHDR.unpack_from(data, off))
    if h.len < NLMSG_HDRLEN or h.len > n - off:
        return None
    return h, bytes(data[off:off + h.len]), off + min(align(h.len), n - off)


def build(mtype, flags, seq, pid, payload):
    """One netlink message (nlmsg_put + nlmsg_end)."""
    return NLMSGHDR.pack(NLMSG_HDRLEN + len(payload), mtype, flags, seq, pid) + payload


def build_genl(family_id, cmd, version, flags, seq, pid, body):
    """A generic netlink message: nlmsghdr + genlmsghdr + body."""
    return NLMSGHDR.pack(NLMSG_HDRLEN + GENL_HDRLEN + len(body), family_id, flags, seq,
                         pid) + GENLMSGHDR.pack(cmd, version, 0) + body


def build_error(request, err, pid, msg=None, offset=None, cap_ack=False, ext_ack=True):
    """NLMSG_ERROR in answer to ``request`` (the full request message bytes).

    ``err`` is a positive errno or 0 for an ack.  Like netlink_ack(): errors
    echo the whole request unless NETLINK_CAP_ACK is set (NLM_F_CAPPED);
    acks echo only the header.  With extended acks on and a message or
    offset, NLMSGERR_ATTR_MSG / NLMSGERR_ATTR_OFFS follow (NLM_F_ACK_TLVS).
    """
    if not err and not (ext_ack and msg):       # a plain ack, what most requests get
        return _ACK.pack(_ACK.size, NLMSG_ERROR, NLM_F_CAPPED, _U32.unpack_from(request, 8)[0],
                         pid, 0, request[:NLMSG_HDRLEN])
    hdr = Header(*NLMSGHDR.unpack_from(request))
    flags = 0
    if err and not cap_ack:
        echoed = request[:hdr.len]
        echoed = echoed + b"\0" * (align(len(echoed)) - len(echoed))
    else:
        flags |= NLM_F_CAPPED
        echoed = request[:NLMSG_HDRLEN]
    tlvs = b""
    if ext_ack and (msg or (err and offset is not None)):
        if msg:
            tlvs += nla_string(NLMSGERR_ATTR_MSG, msg)
        if err and offset is not None and offset < hdr.len:
            tlvs += nla_u32(NLMSGERR_ATTR_OFFS, offset)
        flags |= NLM_F_ACK_TLVS
    payload = _ERR.pack(-err) + echoed + tlvs
    return build(NLMSG_ERROR, flags, hdr.seq, pid, payload)


def build_done(seq, pid, err=0, msg=None, ext_ack=True):
    """NLMSG_DONE ending a dump; ``err`` positive errno when the dump failed."""
    flags = NLM_F_MULTI
    payload = _ERR.pack(-err)
    if msg and ext_ack:
        flags |= NLM_F_ACK_TLVS
        payload += nla_string(NLMSGERR_ATTR_MSG, msg)
    return build(NLMSG_DONE, flags, seq, pid, payload)


def build_overrun(pid, lost):
    """ovsdp's NLMSG_OVERRUN: ``lost`` messages to this socket were dropped.

    A Linux netlink socket whose receive buffer overflows drops the message
    and fails the reader's next recvmsg() with ENOBUFS; a stream of
    datagrams cannot fail a recv, so ovsdp says it in band, at the point of
    the loss (docs/protocol.md, section 1.5).
    """
    return build(NLMSG_OVERRUN, 0, 0, pid, _U32.pack(lost))


def parse_error(msg):
    """Decode an NLMSG_ERROR / NLMSG_DONE message: (errno, ext-ack text, offset)."""
    hdr = Header(*NLMSGHDR.unpack_from(msg))
    (code,) = _ERR.unpack_from(msg, NLMSG_HDRLEN)
    text = None
    offset = None
    if hdr.flags & NLM_F_ACK_TLVS:
        from .attr import get_string, get_u32, iter_attrs
        if hdr.type == NLMSG_ERROR:
            if hdr.flags & NLM_F_CAPPED:
                start = NLMSG_HDRLEN + 4 + NLMSG_HDRLEN
            else:
                inner_len = NLMSGHDR.unpack_from(msg, NLMSG_HDRLEN + 4)[0]
                start = NLMSG_HDRLEN + 4 + align(inner_len)
        else:
            start = NLMSG_HDRLEN + 4
        for atype, payload, _ in iter_attrs(msg[start:hdr.len]):
            if atype == NLMSGERR_ATTR_MSG:
                text = get_string(payload)
            elif atype == NLMSGERR_ATTR_OFFS:
                offset = get_u32(payload)
    return -code, text, offset
