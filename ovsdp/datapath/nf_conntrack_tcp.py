"""TCP connection tracking, as net/netfilter/nf_conntrack_proto_tcp.c.

The state table (``tcp_conntracks``), window tracking (``tcp_in_window``
with td_end / td_maxend / td_maxwin / td_scale), the window scale and SACK
options, retransmission counting, RST validation, reopening from TIME_WAIT,
loose pick-up of established connections and the per-state timeouts follow
the kernel's defaults (nf_conntrack_tcp_loose=1, nf_conntrack_tcp_be_liberal=0,
nf_conntrack_tcp_max_retrans=3, nf_conntrack_tcp_ignore_invalid_rst=0).
NAT sequence adjustment (nf_ct_seq_offset) is always 0 and SYN proxy is
not modelled.  Sans I/O: the tracker object passed in supplies the
settings, the clock-based refresh and the kill.
"""

import struct

from .nf_conntrack_common import (
    IP_CT_DIR_ORIGINAL,
    IP_CT_DIR_REPLY,
    IP_CT_EXP_CHALLENGE_ACK,
    IP_CT_TCP_FLAG_BE_LIBERAL,
    IP_CT_TCP_FLAG_CLOSE_INIT,
    IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED,
    IP_CT_TCP_FLAG_MAXACK_SET,
    IP_CT_TCP_FLAG_SACK_PERM,
    IP_CT_TCP_FLAG_WINDOW_SCALE,
    IP_CT_TCP_SIMULTANEOUS_OPEN,
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_FIXED_TIMEOUT,
    IPS_SEEN_REPLY,
    TCP_CONNTRACK_CLOSE,
    TCP_CONNTRACK_CLOSE_WAIT,
    TCP_CONNTRACK_ESTABLISHED,
    TCP_CONNTRACK_FIN_WAIT,
    TCP_CONNTRACK_IGNORE,
    TCP_CONNTRACK_LAST_ACK,
    TCP_CONNTRACK_MAX,
    TCP_CONNTRACK_NAMES,
    TCP_CONNTRACK_NONE,
    TCP_CONNTRACK_RETRANS,
    TCP_CONNTRACK_SYN_RECV,
    TCP_CONNTRACK_SYN_SENT,
    TCP_CONNTRACK_SYN_SENT2,
    TCP_CONNTRACK_TIME_WAIT,
    TCP_CONNTRACK_UNACK,
    V_ACCEPT,
    V_IGNORE,
    V_INVALID,
    V_REPEAT,
)
from .nf_conntrack_timeout import timeout_lookup

MINS = 60
# tcp_timeouts[], seconds, indexed by TCP_CONNTRACK_* (0 and MAX/IGNORE unused)
TCP_TIMEOUTS = (0, 2 * MINS, 60, 5 * 24 * 60 * MINS, 2 * MINS, 60, 30, 2 * MINS, 10,
                2 * MINS, 0, 0, 5 * MINS, 5 * MINS)

TCP_MAX_RETRANS = 3
TCP_MAX_WSCALE = 14
MAXACKWINCONST = 66000

# enum tcp_bit_set: the row of the state table
TCP_SYN_SET, TCP_SYNACK_SET, TCP_FIN_SET, TCP_ACK_SET, TCP_RST_SET, TCP_NONE_SET = range(6)

# TCP header flag bits (tcp_flag_byte)
TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK, TH_URG, TH_ECE, TH_CWR = (1 << i for i in range(8))

# tcp_valid_flags[]: PSH, ECE and CWR are masked out before the lookup
TCP_VALID_FLAGS = frozenset({
    TH_SYN, TH_SYN | TH_URG, TH_SYN | TH_ACK, TH_RST, TH_RST | TH_ACK,
    TH_FIN | TH_ACK, TH_FIN | TH_ACK | TH_URG, TH_ACK, TH_ACK | TH_URG,
})

_NO, _SS, _SR, _ES = TCP_CONNTRACK_NONE, TCP_CONNTRACK_SYN_SENT, TCP_CONNTRACK_SYN_RECV, \
    TCP_CONNTRACK_ESTABLISHED
_FW, _CW, _LA, _TW = TCP_CONNTRACK_FIN_WAIT, TCP_CONNTRACK_CLOSE_WAIT, TCP_CONNTRACK_LAST_ACK, \
    TCP_CONNTRACK_TIME_WAIT
_CL, _S2, _IV, _IG = TCP_CONNTRACK_CLOSE, TCP_CONNTRACK_SYN_SENT2, TCP_CONNTRACK_MAX, \
    TCP_CONNTRACK_IGNORE

# tcp_conntracks[dir][index][old state]; columns: NO SS SR ES FW CW LA TW CL S2
TCP_CONNTRACKS = (
    (   # original
        (_SS, _SS, _IG, _IG, _IG, _IG, _IG, _SS, _SS, _S2),     # syn
        (_IV, _IV, _SR, _IV, _IV, _IV, _IV, _IV, _IV, _SR),     # synack
        (_IV, _IV, _FW, _FW, _LA, _LA, _LA, _TW, _CL, _IV),     # fin
        (_ES, _IV, _ES, _ES, _CW, _CW, _TW, _TW, _CL, _IV),     # ack
        (_IV, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL),     # rst
        (_IV,) * 10,                                            # none
    ),
    (   # reply
        (_IV, _S2, _IV, _IV, _IV, _IV, _IV, _SS, _IV, _S2),     # syn
        (_IV, _SR, _IG, _IG, _IG, _IG, _IG, _IG, _IG, _SR),     # synack
        (_IV, _IV, _FW, _FW, _LA, _LA, _LA, _TW, _CL, _IV),     # fin
        (_IV, _IG, _SR, _ES, _CW, _CW, _TW, _TW, _CL, _IG),     # ack
        (_IV, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL),     # rst
        (_IV,) * 10,                                            # none
    ),
)

_M32 = 0xFFFFFFFF


def _s32(x):
    x &= _M32
    return x - 0x100000000 if x & 0x80000000 else x


def before(a, b):
    """before() of include/net/tcp.h: a is earlier than b in sequence space."""
    return _s32(a - b) < 0


def after(a, b):
    """after() of include/net/tcp.h."""
    return _s32(b - a) < 0


class TcpDirState:
    """struct ip_ct_tcp_state: what was seen from one side."""

    __slots__ = ("td_end", "td_maxend", "td_maxwin", "td_maxack", "td_scale", "flags")

    def __init__(self):
        self.td_end = self.td_maxend = self.td_maxwin = self.td_maxack = 0
        self.td_scale = self.flags = 0

    def reset(self):
        """nf_ct_tcp_state_reset(): forget all but the BE_LIBERAL flag."""
        self.td_end = self.td_maxend = self.td_maxwin = self.td_maxack = 0
        self.td_scale = 0
        self.flags &= IP_CT_TCP_FLAG_BE_LIBERAL

    def __repr__(self):
        return (f"TcpDirState(end={self.td_end}, maxend={self.td_maxend}, "
                f"maxwin={self.td_maxwin}, scale={self.td_scale}, flags={self.flags:#x})")


class TcpState:
    """struct ip_ct_tcp: ct->proto.tcp."""

    __slots__ = ("state", "seen", "last_dir", "last_index", "last_seq", "last_ack",
                 "last_end", "last_win", "last_wscale", "last_flags", "retrans")

    def __init__(self):
        self.state = TCP_CONNTRACK_NONE
        self.seen = (TcpDirState(), TcpDirState())
        self.last_dir = self.last_seq = self.last_ack = self.last_end = self.last_win = 0
        self.last_index = TCP_NONE_SET
        self.last_wscale = self.last_flags = self.retrans = 0

    @property
    def state_name(self):
        return TCP_CONNTRACK_NAMES[self.state]

    def __repr__(self):
        return f"TcpState({self.state_name}, {self.seen[0]!r}, {self.seen[1]!r})"


class TcpHdr:
    """The fields of struct tcphdr the tracker reads."""

    __slots__ = ("sport", "dport", "seq", "ack_seq", "doff", "flags", "window")

    def __init__(self, data, off):
        (self.sport, self.dport, self.seq, self.ack_seq, offx, self.flags,
         self.window) = struct.unpack_from("!HHIIBBH", data, off)
        self.doff = offx >> 4

    def has(self, bit):
        return bool(self.flags & bit)


def get_conntrack_index(th):
    """get_conntrack_index(): the state table row for the header's flags."""
    f = th.flags
    if f & TH_RST:
        return TCP_RST_SET
    if f & TH_SYN:
        return TCP_SYNACK_SET if f & TH_ACK else TCP_SYN_SET
    if f & TH_FIN:
        return TCP_FIN_SET
    if f & TH_ACK:
        return TCP_ACK_SET
    return TCP_NONE_SET


def segment_seq_plus_len(seq, length, dataoff, th):
    """segment_seq_plus_len(): the sequence number after this segment."""
    return (seq + length - dataoff - th.doff * 4 + (1 if th.flags & TH_SYN else 0)
            + (1 if th.flags & TH_FIN else 0)) & _M32


def _options(pkt, th):
    return pkt.data[pkt.dataoff + 20:pkt.dataoff + th.doff * 4]


def tcp_options(pkt, th, state):
    """tcp_options(): window scale and SACK-permitted from a SYN's options."""
    buf = _options(pkt, th)
    length = len(buf)
    if not length:
        return
    state.td_scale = 0
    state.flags &= IP_CT_TCP_FLAG_BE_LIBERAL
    i = 0
    while length > 0:
        opcode = buf[i]
        i += 1
        if opcode == 0:                 # TCPOPT_EOL
            return
        if opcode == 1:                 # TCPOPT_NOP
            length -= 1
            continue
        if length < 2:
            return
        opsize = buf[i]
        i += 1
        if opsize < 2 or opsize > length:
            return
        if opcode == 4 and opsize == 2:             # TCPOPT_SACK_PERM
            state.flags |= IP_CT_TCP_FLAG_SACK_PERM
        elif opcode == 3 and opsize == 3:           # TCPOPT_WINDOW
            state.td_scale = min(buf[i], TCP_MAX_WSCALE)
            state.flags |= IP_CT_TCP_FLAG_WINDOW_SCALE
        i += opsize - 2
        length -= opsize


def tcp_sack(pkt, th, sack):
    """tcp_sack(): the highest right edge among the SACK blocks, or ``sack``."""
    buf = _options(pkt, th)
    length = len(buf)
    if not length:
        return sack
    if length == 12 and buf[:4] == b"\x01\x01\x08\x0a":    # timestamp-only fast path
        return sack
    i = 0
    while length > 0:
        opcode = buf[i]
        i += 1
        if opcode == 0:
            return sack
        if opcode == 1:
            length -= 1
            continue
        if length < 2:
            return sack
        opsize = buf[i]
        i += 1
        if opsize < 2 or opsize > length:
            return sack
        if opcode == 5 and opsize >= 10 and (opsize - 2) % 8 == 0:   # TCPOPT_SACK
            for j in range(0, opsize - 2, 8):
                (edge,) = struct.unpack_from("!I", buf, i + j + 4)
                if after(edge, sack):
                    sack = edge
            return sack
        i += opsize - 2
        length -= opsize
    return sack


def tcp_init_sender(sender, receiver, pkt, th, end, win, direction):
    """tcp_init_sender(): (re)initialise one side from its SYN or SYN/ACK."""
    sender.td_end = sender.td_maxend = end
    sender.td_maxwin = win or 1
    tcp_options(pkt, th, sender)
    # RFC 1323: both sides must send the window scale option to enable scaling
    if direction == IP_CT_DIR_REPLY and not (sender.flags & IP_CT_TCP_FLAG_WINDOW_SCALE and
                                             receiver.flags & IP_CT_TCP_FLAG_WINDOW_SCALE):
        sender.td_scale = receiver.td_scale = 0


def _log_invalid(tr, sender, verdict, msg):
    """nf_tcp_log_invalid(): liberal mode accepts what the window check refused."""
    if sender.flags & IP_CT_TCP_FLAG_BE_LIBERAL or tr.tcp_be_liberal:
        return V_ACCEPT, None
    return verdict, msg


def tcp_in_window(tr, ct, direction, index, pkt, th):
    """tcp_in_window(): check and update the window of both sides.

    Returns (verdict, reason): V_ACCEPT, V_IGNORE or V_INVALID.
    """
    state = ct.proto
    sender = state.seen[direction]
    receiver = state.seen[1 - direction]
    seq = th.seq
    ack = sack = th.ack_seq
    win_raw = win = th.window
    end = segment_seq_plus_len(seq, len(pkt.data), pkt.dataoff, th)
    syn, has_ack = th.has(TH_SYN), th.has(TH_ACK)

    if receiver.flags & IP_CT_TCP_FLAG_SACK_PERM:
        sack = tcp_sack(pkt, th, sack)
    if ct.seqadj is not None:           # NAT's payload mangling moved the receiver's numbers
        off = ct.seqadj.offset(1 - direction, (ack - 1) & _M32)
        ack, sack = (ack - off) & _M32, (sack - off) & _M32

    if sender.td_maxwin == 0:
        if syn:
            tcp_init_sender(sender, receiver, pkt, th, end, win, direction)
            if not has_ack:             # simultaneous open
                return V_ACCEPT, None
        else:
            # picked up in the middle: use what the packet tells
            sender.td_end = end
            swin = (win << sender.td_scale) & _M32
            sender.td_maxwin = swin or 1
            sender.td_maxend = (end + sender.td_maxwin) & _M32
            if receiver.td_maxwin == 0:
                receiver.td_end = receiver.td_maxend = sack
            elif sack == (receiver.td_end + 1) & _M32:
                receiver.td_end = (receiver.td_end + 1) & _M32    # reply to a keepalive
    elif (syn and after(end, sender.td_end) and
          state.state in (TCP_CONNTRACK_SYN_SENT, TCP_CONNTRACK_SYN_RECV)):
        # RFC 793: a reinitialised TCP uses larger sequence numbers: re-init
        tcp_init_sender(sender, receiver, pkt, th, end, win, direction)
        if direction == IP_CT_DIR_REPLY and not has_ack:
            return V_ACCEPT, None

    if not has_ack:
        ack = sack = receiver.td_end            # pretend the ACK was there and fine
    elif th.flags & (TH_ACK | TH_RST) == TH_ACK | TH_RST and ack == 0:
        ack = sack = receiver.td_end            # broken stacks: RST+ACK with ack 0

    if th.has(TH_RST) and seq == 0 and state.state == TCP_CONNTRACK_SYN_SENT:
        seq = end = sender.td_end               # RST answering a SYN

    maxackwin = max(sender.td_maxwin, MAXACKWINCONST)
    if not before(seq, sender.td_maxend + 1):
        overshot = (end - sender.td_maxend + 1) & _M32
        ack_ok = after(sack, receiver.td_end - maxackwin - 1)
        in_recv_win = bool(receiver.td_maxwin) and after(
            end, sender.td_end - receiver.td_maxwin - 1)
        if (in_recv_win and ack_ok and overshot <= receiver.td_maxwin and
                before(sack, receiver.td_end + 1)):
            # a TCP sending more than the window allows: remember the data
            sender.td_end = end
            sender.flags |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED
            return _log_invalid(tr, sender, V_IGNORE, f"{overshot} bytes more than expected")
        return _log_invalid(tr, sender, V_INVALID,
                            "SEQ is over upper bound %u (over the window of the receiver)"
                            % ((sender.td_maxend + 1) & _M32))

    if not before(sack, receiver.td_end + 1):
        return _log_invalid(tr, sender, V_INVALID,
                            "ACK is over upper bound %u (ACKed data not seen yet)"
                            % ((receiver.td_end + 1) & _M32))

    if receiver.td_maxwin and not after(end, sender.td_end - receiver.td_maxwin - 1):
        return _log_invalid(tr, sender, V_IGNORE,
                            "SEQ is under lower bound (already ACKed data retransmitted)")
    if not after(sack, receiver.td_end - maxackwin - 1):
        return _log_invalid(tr, sender, V_IGNORE,
                            "ignored ACK under lower bound (possible overly delayed)")

    if not syn:                                 # RFC 1323 window scaling
        win = (win << sender.td_scale) & _M32

    # update the sender
    swin = (win + (sack - ack)) & _M32
    if sender.td_maxwin < swin:
        sender.td_maxwin = swin
    if after(end, sender.td_end):
        sender.td_end = end
        sender.flags |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED
    if has_ack:
        if not sender.flags & IP_CT_TCP_FLAG_MAXACK_SET:
            sender.td_maxack = ack
            sender.flags |= IP_CT_TCP_FLAG_MAXACK_SET
        elif after(ack, sender.td_maxack):
            sender.td_maxack = ack

    # update the receiver
    if receiver.td_maxwin != 0 and after(end, sender.td_maxend):
        receiver.td_maxwin = (receiver.td_maxwin + end - sender.td_maxend) & _M32
    if after(sack + win, receiver.td_maxend - 1):
        receiver.td_maxend = (sack + win) & _M32
        if win == 0:
            receiver.td_maxend = (receiver.td_maxend + 1) & _M32
    if ack == receiver.td_end:
        receiver.flags &= ~IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED

    # retransmissions
    if index == TCP_ACK_SET:
        if (state.last_dir == direction and state.last_seq == seq and state.last_ack == ack
                and state.last_end == end and state.last_win == win_raw):
            state.retrans += 1
        else:
            state.last_dir, state.last_seq, state.last_ack = direction, seq, ack
            state.last_end, state.last_win = end, win_raw
            state.retrans = 0
    return V_ACCEPT, None


def _handle_invalid(tr, ct, direction, index):
    """nf_tcp_handle_invalid(): an assured connection whose FIN/RST in both
    directions was out of window gets the shorter UNACK timeout."""
    st = ct.proto
    if not ct.status & IPS_ASSURED or ct.status & IPS_FIXED_TIMEOUT:
        return
    if index not in (TCP_RST_SET, TCP_FIN_SET):
        return
    if st.last_dir != direction and st.last_index in (TCP_FIN_SET, TCP_RST_SET):
        expires = tr.expires(ct)
        if expires < 120:
            return
        timeout = (timeout_lookup(ct) or tr.tcp_timeouts)[TCP_CONNTRACK_UNACK]
        if expires > timeout:
            tr.set_timeout(ct, timeout)
    else:
        st.last_index, st.last_dir = index, direction


def tcp_error(tr, pkt, th):
    """tcp_error(): header length, checksum (if enabled) and flag combination."""
    tcplen = len(pkt.data) - pkt.dataoff
    if th.doff * 4 < 20 or tcplen < th.doff * 4:
        return "truncated packet"
    if tr.checksum and pkt.l4_csum_bad():
        return "bad checksum"
    if th.flags & ~(TH_ECE | TH_CWR | TH_PSH) & 0xFF not in TCP_VALID_FLAGS:
        return "invalid tcp flag combination"
    return None


def tcp_new(tr, ct, pkt, th):
    """tcp_new(): set up a new connection; False if this packet cannot start one."""
    new_state = TCP_CONNTRACKS[0][get_conntrack_index(th)][TCP_CONNTRACK_NONE]
    if new_state >= TCP_CONNTRACK_MAX:
        return False
    st = ct.proto = TcpState()
    s0 = st.seen[0]
    s0.td_end = segment_seq_plus_len(th.seq, len(pkt.data), pkt.dataoff, th)
    s0.td_maxwin = th.window or 1
    if new_state == TCP_CONNTRACK_SYN_SENT:
        s0.td_maxend = s0.td_end
        tcp_options(pkt, th, s0)
    elif not tr.tcp_loose:
        return False
    else:
        # picked up mid-stream: assume SACK and be liberal to survive window scaling
        s0.td_maxend = (s0.td_end + s0.td_maxwin) & _M32
        s0.flags = st.seen[1].flags = IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL
    st.last_index = TCP_NONE_SET
    return True


def tcp_can_early_drop(ct):
    """tcp_can_early_drop(): closing states may go first under pressure."""
    return ct.proto.state in (TCP_CONNTRACK_FIN_WAIT, TCP_CONNTRACK_LAST_ACK,
                              TCP_CONNTRACK_TIME_WAIT, TCP_CONNTRACK_CLOSE,
                              TCP_CONNTRACK_CLOSE_WAIT)


def _established(ct):
    """nf_conntrack_tcp_established()."""
    return ct.proto.state == TCP_CONNTRACK_ESTABLISHED and bool(ct.status & IPS_ASSURED)


def _ignore(tr, ct, st, pkt, th, direction, index, old_state):
    """The TCP_CONNTRACK_IGNORE arm of nf_conntrack_tcp_packet(): annotate the
    packet so that a later SYN/ACK or RST can bring us back in sync."""
    st.last_index, st.last_dir = index, direction
    st.last_seq = th.seq
    st.last_end = segment_seq_plus_len(th.seq, len(pkt.data), pkt.dataoff, th)
    st.last_win = th.window
    if index == TCP_SYN_SET and direction == IP_CT_DIR_ORIGINAL:
        seen = TcpDirState()
        st.last_flags = st.last_wscale = 0
        tcp_options(pkt, th, seen)
        if seen.flags & IP_CT_TCP_FLAG_WINDOW_SCALE:
            st.last_flags |= IP_CT_TCP_FLAG_WINDOW_SCALE
            st.last_wscale = seen.td_scale
        if seen.flags & IP_CT_TCP_FLAG_SACK_PERM:
            st.last_flags |= IP_CT_TCP_FLAG_SACK_PERM
        if old_state == TCP_CONNTRACK_LAST_ACK:
            st.last_flags |= IP_CT_EXP_CHALLENGE_ACK
    if old_state == TCP_CONNTRACK_SYN_SENT and index == TCP_ACK_SET and \
            direction == IP_CT_DIR_REPLY:
        st.last_ack = th.ack_seq              # possible challenge ACK to the SYN
    return V_IGNORE, "packet (index %d) in dir %d ignored, state %s" % (
        index, direction, TCP_CONNTRACK_NAMES[old_state])


def tcp_packet(tr, ct, pkt, direction, ctinfo):
    """nf_conntrack_tcp_packet(): returns (verdict, reason)."""
    if len(pkt.data) - pkt.dataoff < 20:
        return V_INVALID, "short packet"
    th = TcpHdr(pkt.data, pkt.dataoff)
    err = tcp_error(tr, pkt, th)
    if err:
        return V_INVALID, err
    if not ct.status & IPS_CONFIRMED and not tcp_new(tr, ct, pkt, th):
        return V_INVALID, "invalid new"

    st = ct.proto
    old_state = st.state
    index = get_conntrack_index(th)
    new_state = TCP_CONNTRACKS[direction][index][old_state]
    in_window = False

    if new_state == TCP_CONNTRACK_SYN_SENT and old_state >= TCP_CONNTRACK_TIME_WAIT:
        if ((st.seen[direction].flags | st.seen[1 - direction].flags) &
                IP_CT_TCP_FLAG_CLOSE_INIT or
                (st.last_dir == direction and st.last_index == TCP_RST_SET)):
            # reopening a closed/aborted connection: delete it and look up again
            if tr.kill(ct):
                return V_REPEAT, None
            return V_INVALID, "drop"
        new_state = TCP_CONNTRACK_IGNORE        # fall through to the ignore arm

    if new_state == TCP_CONNTRACK_IGNORE:
        if (index == TCP_SYNACK_SET and st.last_index == TCP_SYN_SET and
                st.last_dir != direction and th.ack_seq == st.last_end):
            # this SYN/ACK answers a SYN we ignored: resync from the annotation
            old_state, new_state = TCP_CONNTRACK_SYN_SENT, TCP_CONNTRACK_SYN_RECV
            ls = st.seen[st.last_dir]
            ls.td_end = ls.td_maxend = st.last_end
            ls.td_maxwin = st.last_win or 1
            ls.td_scale = st.last_wscale
            st.last_flags &= ~IP_CT_EXP_CHALLENGE_ACK
            ls.flags = st.last_flags
            st.seen[direction].reset()
        else:
            return _ignore(tr, ct, st, pkt, th, direction, index, old_state)
    elif new_state == TCP_CONNTRACK_MAX:
        return V_INVALID, "packet (index %d) in dir %d invalid, state %s" % (
            index, direction, TCP_CONNTRACK_NAMES[old_state])
    elif new_state == TCP_CONNTRACK_TIME_WAIT:
        if (old_state == TCP_CONNTRACK_LAST_ACK and index == TCP_ACK_SET and
                st.last_dir != direction and st.last_index == TCP_SYN_SET and
                st.last_flags & IP_CT_EXP_CHALLENGE_ACK):
            st.last_flags &= ~IP_CT_EXP_CHALLENGE_ACK      # RFC 5961 challenge ACK
            return V_IGNORE, "challenge-ack ignored"
    elif new_state == TCP_CONNTRACK_SYN_SENT2:
        st.last_flags |= IP_CT_TCP_SIMULTANEOUS_OPEN
    elif new_state == TCP_CONNTRACK_SYN_RECV:
        if (direction == IP_CT_DIR_REPLY and index == TCP_ACK_SET and
                st.last_flags & IP_CT_TCP_SIMULTANEOUS_OPEN):
            new_state = TCP_CONNTRACK_ESTABLISHED
    elif new_state == TCP_CONNTRACK_CLOSE and index == TCP_RST_SET:
        verdict, keep = _check_rst(tr, ct, st, th, direction, old_state)
        if verdict == V_INVALID:
            return V_INVALID, "invalid rst"
        if keep:
            new_state = old_state
        in_window = verdict == "in_window"

    if not in_window:
        verdict, reason = tcp_in_window(tr, ct, direction, index, pkt, th)
        if verdict == V_IGNORE:
            return V_IGNORE, reason
        if verdict == V_INVALID:
            _handle_invalid(tr, ct, direction, index)
            return V_INVALID, reason

    # from here on the packet is in window
    st.last_index, st.last_dir = index, direction
    st.state = new_state
    if old_state != new_state and new_state == TCP_CONNTRACK_FIN_WAIT:
        st.seen[direction].flags |= IP_CT_TCP_FLAG_CLOSE_INIT

    t = timeout_lookup(ct) or tr.tcp_timeouts
    flags = st.seen[0].flags | st.seen[1].flags
    if st.retrans >= tr.tcp_max_retrans and t[new_state] > t[TCP_CONNTRACK_RETRANS]:
        timeout = t[TCP_CONNTRACK_RETRANS]
    elif index == TCP_RST_SET:
        timeout = t[TCP_CONNTRACK_CLOSE]
    elif flags & IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED and t[new_state] > t[TCP_CONNTRACK_UNACK]:
        timeout = t[TCP_CONNTRACK_UNACK]
    elif st.last_win == 0 and t[new_state] > t[TCP_CONNTRACK_RETRANS]:
        timeout = t[TCP_CONNTRACK_RETRANS]
    else:
        timeout = t[new_state]

    if not ct.status & IPS_SEEN_REPLY:
        if th.has(TH_RST):
            # the only reply is a RST: not a connection, delete it now
            tr.refresh_acct(ct, pkt, direction, None)
            tr.kill(ct)
            return V_IGNORE, None
        if index == TCP_SYN_SET and old_state == TCP_CONNTRACK_SYN_SENT:
            return V_IGNORE, None               # no renewal on SYN retransmit
        if new_state == TCP_CONNTRACK_ESTABLISHED and timeout > t[TCP_CONNTRACK_UNACK]:
            timeout = t[TCP_CONNTRACK_UNACK]     # mid-stream pickup, not yet answered
    elif (not ct.status & IPS_ASSURED and
          old_state in (TCP_CONNTRACK_SYN_RECV, TCP_CONNTRACK_ESTABLISHED) and
          new_state == TCP_CONNTRACK_ESTABLISHED):
        ct.status |= IPS_ASSURED
    tr.refresh_acct(ct, pkt, direction, timeout)
    return V_ACCEPT, None


def _check_rst(tr, ct, st, th, direction, old_state):
    """The RST checks of the TCP_CONNTRACK_CLOSE arm of nf_conntrack_tcp_packet().

    Returns (verdict, keep): verdict V_INVALID, "in_window" (skip the window
    check) or None (check the window as usual); keep is True when the state
    stays as it is (an inexact RST, to allow a challenge ACK)."""
    if tcp_can_early_drop(ct):
        return "in_window", False
    keep = False
    other = st.seen[1 - direction]
    if other.flags & IP_CT_TCP_FLAG_MAXACK_SET and st.last_index != TCP_SYN_SET:
        seq = th.seq
        if seq == 0 and not _established(ct):
            return None, False
        if before(seq, other.td_maxack) and not tr.tcp_ignore_invalid_rst:
            return V_INVALID, False
        if not _established(ct) or seq == other.td_maxack:
            return None, False
        if st.last_index == TCP_ACK_SET and st.last_dir == direction and seq == st.last_end:
            return None, False                   # RST ending a train of data
        keep = True
    if (((ct.status & IPS_SEEN_REPLY and st.last_index == TCP_SYN_SET) or
         (not ct.status & IPS_ASSURED and st.last_index == TCP_ACK_SET)) and
            th.ack_seq == st.last_end):
        return "in_window", keep                 # RST to a SYN or ACK we let through
    if (old_state == TCP_CONNTRACK_SYN_SENT and st.last_index == TCP_ACK_SET and
            st.last_dir == IP_CT_DIR_REPLY and th.seq == st.last_ack):
        return "in_window", keep                 # RST after a challenge ACK
    return None, keep
