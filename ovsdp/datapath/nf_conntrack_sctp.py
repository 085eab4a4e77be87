"""SCTP connection tracking, as net/netfilter/nf_conntrack_proto_sctp.c (Linux 6.6+).

The packet is walked chunk by chunk (``for_each_sctp_chunk``) after the basic
checks of ``do_basic_checks``; every chunk that matters moves the connection
through the state table ``SCTP_CONNTRACKS[dir][chunk row][state]``.  The
verification tags of both directions are learned from INIT / INIT_ACK (and
from heartbeats on a path seen only by its heartbeats) and checked per RFC
9260 section 8.5: the common-header tag against the learned one, with the
special cases of INIT (tag 0), ABORT and SHUTDOWN_COMPLETE (the T bit picks
the tag), COOKIE_ECHO, and HEARTBEAT / HEARTBEAT_ACK (a tag change is
accepted, unrefreshed, once both directions agree on it: port reuse by a
new association).  INIT collisions are handled with ``init[]`` as 6.6 does.
6.x has no HEARTBEAT_ACKED state (the enum keeps its number, unused) and an
ESTABLISHED timeout of 210 s.  The CRC32c is checked when the tracker's
``checksum`` setting is on (nf_conntrack_checksum).  Sans I/O: the tracker
passed in supplies the settings, the clock-based refresh and the timeouts
(``tr.sctp_timeouts``, indexed by state).
"""

import struct

from .checksum import sctp_compute_cksum
from .nf_conntrack_common import (
    IP_CT_DIR_ORIGINAL,
    IP_CT_DIR_REPLY,
    IPS_ASSURED,
    IPS_CONFIRMED,
    V_ACCEPT,
    V_IGNORE,
    V_INVALID,
)
from .nf_conntrack_timeout import timeout_lookup

# enum sctp_conntrack (include/uapi/linux/netfilter/nf_conntrack_sctp.h)
(SCTP_CONNTRACK_NONE, SCTP_CONNTRACK_CLOSED, SCTP_CONNTRACK_COOKIE_WAIT,
 SCTP_CONNTRACK_COOKIE_ECHOED, SCTP_CONNTRACK_ESTABLISHED, SCTP_CONNTRACK_SHUTDOWN_SENT,
 SCTP_CONNTRACK_SHUTDOWN_RECD, SCTP_CONNTRACK_SHUTDOWN_ACK_SENT,
 SCTP_CONNTRACK_HEARTBEAT_SENT, SCTP_CONNTRACK_HEARTBEAT_ACKED,
 SCTP_CONNTRACK_MAX) = range(11)               # HEARTBEAT_ACKED: no longer used (6.3)

SCTP_CONNTRACK_NAMES = ("NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED",
                        "SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT",
                        "HEARTBEAT_SENT", "HEARTBEAT_ACKED")

# sctp_timeouts[] in seconds, indexed by state; [NONE] is the CLOSED timeout, as
# nf_conntrack_sctp_init_net() sets it; [HEARTBEAT_ACKED] is left 0 (unused)
SCTP_TIMEOUTS = (10, 10, 3, 3, 210, 3, 3, 3, 30, 0)

# chunk types (include/linux/sctp.h, enum sctp_cid)
SCTP_CID_DATA, SCTP_CID_INIT, SCTP_CID_INIT_ACK, SCTP_CID_SACK = 0, 1, 2, 3
SCTP_CID_HEARTBEAT, SCTP_CID_HEARTBEAT_ACK, SCTP_CID_ABORT, SCTP_CID_SHUTDOWN = 4, 5, 6, 7
SCTP_CID_SHUTDOWN_ACK, SCTP_CID_ERROR, SCTP_CID_COOKIE_ECHO, SCTP_CID_COOKIE_ACK = 8, 9, 10, 11
SCTP_CID_SHUTDOWN_COMPLETE = 14
SCTP_CHUNK_FLAG_T = 0x01

SCTP_HDR_LEN = 12              # struct sctphdr: ports, vtag, checksum
SCTP_INITHDR_LEN = 16          # struct sctp_inithdr without its parameters
SCTP_FLAG_HEARTBEAT_VTAG_FAILED = 1

# sctp_new_state(): the row of the state table for a chunk type; other chunks
# (DATA, SACK, ...) leave the state as it is
_ROW = {SCTP_CID_INIT: 0, SCTP_CID_INIT_ACK: 1, SCTP_CID_ABORT: 2, SCTP_CID_SHUTDOWN: 3,
        SCTP_CID_SHUTDOWN_ACK: 4, SCTP_CID_ERROR: 5, SCTP_CID_COOKIE_ECHO: 6,
        SCTP_CID_COOKIE_ACK: 7, SCTP_CID_SHUTDOWN_COMPLETE: 8, SCTP_CID_HEARTBEAT: 9,
        SCTP_CID_HEARTBEAT_ACK: 10}

_NO, _CL, _CW, _CE = (SCTP_CONNTRACK_NONE, SCTP_CONNTRACK_CLOSED, SCTP_CONNTRACK_COOKIE_WAIT,
                      SCTP_CONNTRACK_COOKIE_ECHOED)
_ES, _SS, _SR, _SA = (SCTP_CONNTRACK_ESTABLISHED, SCTP_CONNTRACK_SHUTDOWN_SENT,
                      SCTP_CONNTRACK_SHUTDOWN_RECD, SCTP_CONNTRACK_SHUTDOWN_ACK_SENT)
_HS, _IV = SCTP_CONNTRACK_HEARTBEAT_SENT, SCTP_CONNTRACK_MAX

# sctp_conntracks[dir][row][old state]; columns NO CL CW CE ES SS SR SA HS, and a
# tenth for the unused HEARTBEAT_ACKED (0 = NONE, as the C array's missing entries)
SCTP_CONNTRACKS = (
    (   # original
        (_CL, _CL, _CW, _CE, _ES, _CL, _CL, _SA, _CW, _NO),     # init
        (_CL, _CL, _CW, _CE, _ES, _SS, _SR, _SA, _CL, _NO),     # init_ack
        (_CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _NO),     # abort
        (_CL, _CL, _CW, _CE, _SS, _SS, _SR, _SA, _CL, _NO),     # shutdown
        (_SA, _CL, _CW, _CE, _ES, _SA, _SA, _SA, _SA, _NO),     # shutdown_ack
        (_CL, _CL, _CW, _CE, _ES, _SS, _SR, _SA, _CL, _NO),     # error
        (_CL, _CL, _CE, _CE, _ES, _SS, _SR, _SA, _CL, _NO),     # cookie_echo
        (_CL, _CL, _CW, _ES, _ES, _SS, _SR, _SA, _CL, _NO),     # cookie_ack
        (_CL, _CL, _CW, _CE, _ES, _SS, _SR, _CL, _CL, _NO),     # shutdown_complete
        (_HS, _CL, _CW, _CE, _ES, _SS, _SR, _SA, _HS, _NO),     # heartbeat
        (_CL, _CL, _CW, _CE, _ES, _SS, _SR, _SA, _HS, _NO),     # heartbeat_ack
    ),
    (   # reply
        (_IV, _CL, _CW, _CE, _ES, _SS, _SR, _SA, _IV, _NO),     # init
        (_IV, _CW, _CW, _CE, _ES, _SS, _SR, _SA, _IV, _NO),     # init_ack
        (_IV, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _IV, _NO),     # abort
        (_IV, _CL, _CW, _CE, _SR, _SS, _SR, _SA, _IV, _NO),     # shutdown
        (_IV, _CL, _CW, _CE, _ES, _SA, _SA, _SA, _IV, _NO),     # shutdown_ack
        (_IV, _CL, _CW, _CL, _ES, _SS, _SR, _SA, _IV, _NO),     # error
        (_IV, _CL, _CE, _CE, _ES, _SS, _SR, _SA, _IV, _NO),     # cookie_echo
        (_IV, _CL, _CW, _ES, _ES, _SS, _SR, _SA, _IV, _NO),     # cookie_ack
        (_IV, _CL, _CW, _CE, _ES, _SS, _SR, _CL, _IV, _NO),     # shutdown_complete
        (_IV, _CL, _CW, _CE, _ES, _SS, _SR, _SA, _HS, _NO),     # heartbeat
        (_IV, _CL, _CW, _CE, _ES, _SS, _SR, _SA, _ES, _NO),     # heartbeat_ack
    ),
)

# chunks whose packets skip the common verification tag check (each has its own rule)
_VTAG_EXEMPT = frozenset({SCTP_CID_INIT, SCTP_CID_SHUTDOWN_COMPLETE, SCTP_CID_COOKIE_ECHO,
                          SCTP_CID_ABORT, SCTP_CID_SHUTDOWN_ACK, SCTP_CID_HEARTBEAT,
                          SCTP_CID_HEARTBEAT_ACK})
# chunks that may not open a connection (out of the blue packets, RFC 9260 8.4)
_OOTB_DISCARD = frozenset({SCTP_CID_ABORT, SCTP_CID_SHUTDOWN_COMPLETE, SCTP_CID_COOKIE_ACK})
_ALONE = frozenset({SCTP_CID_INIT, SCTP_CID_INIT_ACK, SCTP_CID_SHUTDOWN_COMPLETE})
_FIRST = frozenset({SCTP_CID_COOKIE_ACK, SCTP_CID_COOKIE_ECHO})


class SctpState:
    """struct ip_ct_sctp: ct->proto.sctp."""

    __slots__ = ("state", "vtag", "init", "last_dir", "flags")

    def __init__(self):
        self.state = SCTP_CONNTRACK_NONE
        self.vtag = [0, 0]          # the tag each direction's packets must carry
        self.init = [False, False]  # an INIT was seen from this direction (collisions)
        self.last_dir = 0
        self.flags = 0

    @property
    def state_name(self):
        return SCTP_CONNTRACK_NAMES[self.state]

    def __repr__(self):
        return (f"SctpState({self.state_name}, vtag=[{self.vtag[0]:#x}, {self.vtag[1]:#x}], "
                f"init={self.init}, flags={self.flags})")


def new_state(direction, cur_state, chunk_type):
    """sctp_new_state(): the state after a chunk; unknown chunks keep it."""
    row = _ROW.get(chunk_type)
    if row is None:
        return cur_state
    return SCTP_CONNTRACKS[direction][row][cur_state]


def chunks(data, dataoff):
    """for_each_sctp_chunk(): (offset, type, flags, length) of each chunk header
    that fits in the packet; lengths are padded to 4 bytes to find the next.
    A zero length would never advance: stop after yielding it."""
    off = dataoff + SCTP_HDR_LEN
    n = len(data)
    while off + 4 <= n:
        ctype, cflags, clen = struct.unpack_from("!BBH", data, off)
        yield off, ctype, cflags, clen
        if not clen:
            return
        off += (clen + 3) & ~3


def basic_checks(data, dataoff):
    """do_basic_checks(): the chunk list, or a string saying why it is bad."""
    out = []
    alone = False
    for i, ch in enumerate(chunks(data, dataoff)):
        ctype, clen = ch[1], ch[3]
        if ctype in _ALONE:
            alone = True
        if not clen:
            return "zero-length chunk"
        if i and alone:
            return "INIT, INIT_ACK or SHUTDOWN_COMPLETE not alone in its packet"
        if i and ctype in _FIRST:
            return "COOKIE_ECHO or COOKIE_ACK not the first chunk"
        out.append(ch)
    if not out:
        return "no chunks"
    return out


def _init_tag(data, off):
    """The Initiate Tag of the INIT / INIT_ACK chunk at ``off``, or None if the
    fixed part of the chunk is not all in the packet."""
    if off + 4 + SCTP_INITHDR_LEN > len(data):
        return None
    return struct.unpack_from("!I", data, off + 4)[0]


def sctp_new(ct, data, vtag, chs):
    """sctp_new(): set up ct->proto.sctp from the first packet; False if it
    cannot start a connection."""
    st = ct.proto = SctpState()
    for off, ctype, _flags, _len in chs:
        ns = new_state(IP_CT_DIR_ORIGINAL, SCTP_CONNTRACK_NONE, ctype)
        if ns in (SCTP_CONNTRACK_NONE, SCTP_CONNTRACK_MAX):
            return False
        if ctype == SCTP_CID_INIT:
            if vtag:                                    # 8.5.1 (A)
                return False
            tag = _init_tag(data, off)
            if tag is None:
                return False
            st.vtag[IP_CT_DIR_REPLY] = tag
        elif ctype == SCTP_CID_HEARTBEAT:               # a secondary path seen first
            st.vtag[IP_CT_DIR_ORIGINAL] = vtag
        else:                                           # OOTB: expect ABORT / SHUTDOWN_COMPLETE
            st.vtag[IP_CT_DIR_REPLY] = vtag
        st.state = SCTP_CONNTRACK_NONE
    return True


def sctp_error(tr, pkt):
    """sctp_error(): the common header is there; the CRC32c if enabled."""
    off = pkt.dataoff
    if len(pkt.data) < off + SCTP_HDR_LEN:
        return "short packet"
    if tr.checksum and pkt.data[off + 8:off + 12] != sctp_compute_cksum(pkt.data, off):
        return "bad CRC"
    return None


def _heartbeat(st, vtag, direction, ctype, has_data, ignore):
    """The HEARTBEAT / HEARTBEAT_ACK verification tag rules: None to go on with
    the chunk, "skip" to accept the packet unrefreshed and skip this chunk, or
    a reason for an invalid verdict."""
    if st.vtag[direction] == 0:
        st.vtag[direction] = vtag
    elif vtag != st.vtag[direction]:
        if has_data or ignore:
            return "heartbeat with a changed verification tag"
        failed = st.flags & SCTP_FLAG_HEARTBEAT_VTAG_FAILED
        if ctype == SCTP_CID_HEARTBEAT:
            st.flags |= SCTP_FLAG_HEARTBEAT_VTAG_FAILED
            st.last_dir = direction
            return "skip"
        if not failed or st.last_dir == direction:
            return "heartbeat ack with a changed verification tag"
        # the other side answers the new tag: the association was replaced
        st.flags &= ~SCTP_FLAG_HEARTBEAT_VTAG_FAILED
        st.vtag[direction] = vtag
        st.vtag[1 - direction] = 0
    else:
        st.flags &= ~SCTP_FLAG_HEARTBEAT_VTAG_FAILED
    return None


def _vtag_special(st, vtag, direction, ctype, cflags):
    """Section 8.5.1 (A)-(D) and COOKIE_ACK's end of a collision: a reason if
    the chunk's verification tag is wrong, else None."""
    if ctype == SCTP_CID_INIT:
        if vtag:
            return "INIT with a non-zero verification tag"
    elif ctype in (SCTP_CID_ABORT, SCTP_CID_SHUTDOWN_COMPLETE):
        want = st.vtag[1 - direction] if cflags & SCTP_CHUNK_FLAG_T else st.vtag[direction]
        if vtag != want:
            return "%s with a wrong verification tag" % (
                "ABORT" if ctype == SCTP_CID_ABORT else "SHUTDOWN_COMPLETE")
    elif ctype == SCTP_CID_COOKIE_ECHO:
        if vtag != st.vtag[direction]:
            return "COOKIE_ECHO with a wrong verification tag"
    elif ctype == SCTP_CID_COOKIE_ACK:
        st.init[0] = st.init[1] = False
    return None


def _note_init(ct, st, data, off, direction, ctype, old, new):
    """Learn the peer's tag from an INIT or INIT_ACK: (ignore, reason)."""
    tag = _init_tag(data, off)
    if tag is None:
        return False, "truncated INIT chunk"
    other = 1 - direction
    if ctype == SCTP_CID_INIT:
        if st.init[direction] and st.init[other]:
            st.init[other] = False
        st.init[direction] = True
        st.vtag[other] = tag
        # an INIT retransmitted on a closed connection does not keep it alive
        return (new == old == SCTP_CONNTRACK_CLOSED and bool(ct.status & IPS_CONFIRMED)), None
    known = st.vtag[other]
    if not st.init[other] and known and known != tag:
        return False, "INIT_ACK tag does not match"
    if st.init[direction] and st.init[other] and known != tag:
        return False, "INIT_ACK tag does not match the collision's"
    st.vtag[other] = tag
    return False, None


def sctp_packet(tr, ct, pkt, direction, ctinfo):
    """nf_conntrack_sctp_packet(): returns (verdict, reason)."""
    err = sctp_error(tr, pkt)
    if err:
        return V_INVALID, err
    data, off = pkt.data, pkt.dataoff
    chs = basic_checks(data, off)
    if isinstance(chs, str):
        return V_INVALID, chs
    types = {c[1] for c in chs}
    (vtag,) = struct.unpack_from("!I", data, off + 4)

    if not ct.status & IPS_CONFIRMED:
        if types & _OOTB_DISCARD:
            return V_INVALID, "ABORT, SHUTDOWN_COMPLETE or COOKIE_ACK cannot start a connection"
        if not sctp_new(ct, data, vtag, chs):
            return V_INVALID, "invalid new"
    elif ct.proto is None:
        ct.proto = SctpState()          # made by ctnetlink without protoinfo: zeroed
    st = ct.proto

    if not types & _VTAG_EXEMPT and vtag != st.vtag[direction]:
        return V_INVALID, "verification tag check failed"

    old_state = new = SCTP_CONNTRACK_NONE
    ignore = False
    has_data = SCTP_CID_DATA in types
    for coff, ctype, cflags, _len in chs:
        if ctype in (SCTP_CID_HEARTBEAT, SCTP_CID_HEARTBEAT_ACK):
            why = _heartbeat(st, vtag, direction, ctype, has_data, ignore)
            if why == "skip":
                ignore = True
                continue
        else:
            why = _vtag_special(st, vtag, direction, ctype, cflags)
        if why:
            return V_INVALID, why

        old_state = st.state
        new = new_state(direction, old_state, ctype)
        if new == SCTP_CONNTRACK_MAX:
            return V_INVALID, "chunk type %d in dir %d invalid, state %s" % (
                ctype, direction, SCTP_CONNTRACK_NAMES[old_state])
        if ctype in (SCTP_CID_INIT, SCTP_CID_INIT_ACK):
            again, why = _note_init(ct, st, data, coff, direction, ctype, old_state, new)
            if why:
                return V_INVALID, why
            ignore = ignore or again
        st.state = new
        if old_state != new and new == SCTP_CONNTRACK_ESTABLISHED:
            ct.status |= IPS_ASSURED

    if ignore:
        return V_IGNORE, None           # accepted, the timeout is not renewed
    t = timeout_lookup(ct) or tr.sctp_timeouts
    tr.refresh_acct(ct, pkt, direction, t[new])
    return V_ACCEPT, None


def sctp_can_early_drop(ct):
    """sctp_can_early_drop(): shutting-down connections may go first."""
    return ct.proto is not None and ct.proto.state in (
        SCTP_CONNTRACK_SHUTDOWN_SENT, SCTP_CONNTRACK_SHUTDOWN_RECD,
        SCTP_CONNTRACK_SHUTDOWN_ACK_SENT)
