"""Seeded, bounded fuzzing of the ovsdp daemon, as an outside client does it.

    python3 -m tests.fuzz --seconds 60 --seed 1                 # own daemon
    python3 -m tests.fuzz --seconds 60 --seed 1 --socket PATH   # a running daemon
    python3 -m tests.fuzz --replay-hex 2400000013000500...      # send one datagram, show answers

Without ``--socket`` the harness starts ``python3 -m ovsdp daemon --socket
<tmpdir>/fz.sock --no-devices`` (in a new network namespace when it can, so
that nothing the fuzzer makes up can touch the host's interfaces), reads its
stderr, and stops it at the end.  With ``--socket`` point it at a daemon
nobody else uses: it creates and deletes datapaths there.

Two fuzzers (``--fuzzers ctrl,frame``), run in alternating batches:

ctrl
    structure-aware control messages.  For every command of every family
    nlctrl lists (and unknown ones) it builds a valid request — datapaths
    and ports of its own (prefix ``fzc``; some names not UTF-8), flow keys,
    masks and actions from the Open vSwitch text corpus
    (tests/data/odp_corpus.txt) and a generator, through ovsdp.odp — and
    usually mutates it: attribute types, lengths that lie (0, short, long,
    0xFFFF), payloads (boundary integers, cut, extended, random), non-UTF-8
    and over-long names, duplicated/deleted/inserted/wrapped/repeated
    attributes, nests with junk tails, header fields and flags (DUMP, ACK,
    ECHO, CREATE, EXCL, no REQUEST), cut genl headers, lying nlmsg_len,
    several messages per datagram (up to thousands), byte flips, empty and
    oversized datagrams; socket options and control types too.  Now and
    then: very long or deep action lists; a dump paused by a slow reader
    while another client deletes what it lists; a flood of requests for
    32 KB answers that are never read (memory must stay bounded, a ping
    from another client answered within 2 s); a multicast listener that
    goes away with notifications unread; a flow whose answered ACTIONS are
    given back and must come back unchanged.
frame
    frames through datapath ``fzframe`` (dummy ports 1-4; VXLAN, Geneve, GRE
    and internal ports 5-8 to send to): Ethernet, 802.1Q/802.1ad, MPLS,
    LLC/SNAP, ARP, IPv4 (options, fragments), IPv6 (extension headers,
    fragments), TCP, UDP (VXLAN, Geneve), SCTP, ICMP, ICMPv6/ND, GRE, NSH,
    junk and jumbo frames, mutated (cut at and around header boundaries,
    lying length fields, flipped bytes).  Port 1 has per-protocol megaflows
    whose random actions (set, set_masked, push/pop vlan and mpls, output,
    userspace, sample, clone, check_pkt_len, trunc, hash, recirc, dec_ttl,
    set(tunnel) + output to a tunnel port, ...) change every batch, as do
    the datapath's user features and mask cache size; port 2 gets exact
    flows made from the daemon's own MISS upcall keys (which it must accept
    and which must then match the packet they came from); port 3 has no
    flows (each frame must come back as exactly one MISS with the same
    bytes); OVS_PACKET_CMD_EXECUTE runs random action lists, also on frames
    without an Ethernet header and on frames over the MTU with an MRU.
    Intact frames (valid checksums) EXECUTEd to a port must leave it with
    valid IPv4/TCP/UDP/ICMP/ICMPv6 checksums.

Checks.  Once per daemon, a few documented behaviours (two small dumps in
one datagram; a dump in front of a badly framed part).  After every input:
an answer (the harness pings the connection and waits for the pong and
for every pending dump); no "internal error" answer; answers well framed,
addressed to the connection's port id, in request order, one
NLMSG_ERROR/NLMSG_DONE per request that asked for one and never more;
the connection closed exactly when the datagram was not well framed
(docs/protocol.md 1.2); no new Traceback or "internal error" line in the
daemon's stderr.  After every batch: the process is alive; a fresh
connection resolves ``ovs_datapath`` through nlctrl and dumps datapaths;
the sentinel datapath ``fzkeep`` still has its port ``fzkeep1`` (7) and
its flow (by UFID, same actions), and that flow still forwards a frame;
every datapath's local port has its name and ifindex, no two ports share
an ifindex, ``n_flows`` is the number of flows dumped; the daemon's VmRSS
stays under the start value + ``--rss-mb``.

A finding prints the seed, the fuzzer, the iteration and a hex dump of the
last inputs (``--out DIR`` also writes them to files).  Fatal findings
(dead, hung, probe or sentinel failing, memory) end the run, or with
``--keep-going`` restart the daemon (own daemon only).  Notes (things
Linux does the same way) are listed but do not fail the run.
``--avoid-known`` stops generating inputs for defects already known (see
KNOWN in consts.py) so that a long run can look for others.  Exit status 1
if anything was found.  The inputs are deterministic for a seed (the
daemon's answers can depend on timing and port ids): ``--iterations``
bounds the inputs per fuzzer.

Modules: runner (a run, replay), __main__ (the command line), harness (the
checks, findings kept), conn (a raw connection, what answers must be),
daemons, findings, fuzzer (what both fuzzers have), ctrl with ctrl_build,
ctrl_mutate and ctrl_scenarios (the control-message fuzzer), frame_fuzz
(the frame fuzzer), frames and checksums (frames made and checked), keys
(flow keys and upcalls read), odp_gen (corpus, random actions), wire
(attribute trees, raw and well-formed message pieces), rand, consts.
"""

from .conn import Conn
from .consts import KNOWN
from .ctrl import CtrlFuzzer
from .daemons import ExternalDaemon, OwnDaemon
from .findings import Fatal, Finding, Input
from .frame_fuzz import FrameFuzzer
from .harness import Harness
from .runner import FUZZERS, replay, run

__all__ = ["FUZZERS", "KNOWN", "Conn", "CtrlFuzzer", "ExternalDaemon", "Fatal", "Finding",
           "FrameFuzzer", "Harness", "Input", "OwnDaemon", "replay", "run"]
