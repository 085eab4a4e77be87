"""Scenarios of the control-message fuzzer that take more than one request or client.

:class:`CtrlScenarios` is a part of :class:`~.ctrl.CtrlFuzzer`: clients that
never read, a dump raced by another client, a multicast listener, a flow's
canonical form given back, a flood of requests for big answers.
"""

import errno
import socket
import struct
import time

from ovsdp import odp
from ovsdp import uapi as U
from ovsdp.netlink import attr as A
from ovsdp.netlink.attr import nla, nla_nest, nla_u32
from ovsdp.netlink.message import build, build_genl, parse_error, split

from .conn import Conn
from .consts import DUMMY_FAMILY, DUMMY_FETCH, DUMMY_INJECT, FZKEEP, FZKEEP_FRAME
from .daemons import rss_kb
from .findings import Finding, Input
from .keys import fmt_actions, fmt_key
from .rand import rbytes
from .wire import Msg, dummy_body, join_msgs, s_, sockopt_msg


class CtrlScenarios:
    """Several requests or clients at a time; each checks what it sees."""

    def report(self, kind, summary, detail="", inputs=None):
        """A finding at the current iteration, with ``inputs`` or the recent ones."""
        self.h.report(Finding(kind, summary, detail,
                              inputs=list(self.h.history) if inputs is None else inputs,
                              fuzzer=self.name, iteration=self.iteration))

    def framed_parts(self, d, what):
        """The messages of ``d``, a datagram of ``what``; reported if not well framed."""
        parts, consumed = split(d)
        if consumed != len(d):
            self.report("malformed-answer", f"a {what} datagram is not well framed",
                        d[:128].hex())
        return parts

    def no_reader(self):
        """A client that sends many requests and goes away without reading."""
        c = Conn(self.h.path)
        fid = self.fam(U.OVS_DATAPATH_FAMILY).id
        req = Msg(fid, U.NLM_F_REQUEST | U.NLM_F_DUMP, 1, U.OVS_DP_CMD_GET, 2,
                  U.OVS_HEADER.pack(0)).encode()
        getf = Msg(fid, U.NLM_F_REQUEST | U.NLM_F_ACK, 2, U.OVS_DP_CMD_GET, 2,
                   U.OVS_HEADER.pack(0), [s_(U.OVS_DP_ATTR_NAME, FZKEEP)]).encode()
        c.sock.setblocking(False)
        try:
            for _ in range(200):
                c.sock.send(join_msgs([req] + [getf] * 20))
        except (BlockingIOError, OSError):
            pass
        c.close()

    def race(self):
        """A dump paused by a slow reader while another client changes what it lists."""
        r = self.r
        h = self.h
        self.iteration += 1
        kind = r.choice(["flow", "vport", "dp", "flow", "fetch"])
        change = r.choice(["del-flows", "flush", "del-ports", "del-dp", "recreate-dp", "add"])
        nflows = r.choice([20, 100, 300])
        nports = r.choice([3, 20, 60])
        name = "fzcr"
        with h.dpif() as c:
            for d in c.dp_dump():
                if d.name == name:
                    c.dp_del(d.ifindex)
            idx = c.dp_new(name, upcall_pid=0).ifindex
            for k in range(nports):
                c.vport_new(idx, f"fzcrp{k}", "dummy", upcall_pids=[0])
            keys = []
            for k in range(nflows):
                key, mask = odp.parse_key(f"in_port(1),eth(src=02:00:00:00:{k >> 8:02x}:"
                                          f"{k & 255:02x},dst=02:00:00:00:00:01),eth_type(0x88b5)")
                keys.append(key)
                c.flow_new(idx, key, odp.parse_actions("2"), mask=mask,
                           ufid=struct.pack("=IIII", 0xfc7ace, k, 0, 0) if k % 2 else None,
                           echo=False)
            if kind == "fetch":
                # fzcrp1 (port 2) forwards to fzcrp2 (port 3): frames to FETCH from fzcrp2
                k, m = odp.parse_key("in_port(2),eth(),eth_type(0x88b5)")
                c.flow_new(idx, k, odp.parse_actions("3,3,3"), mask=m, echo=False)
                for _ in range(50):
                    c.sock.genl_request(DUMMY_FAMILY, DUMMY_INJECT,
                                        dummy_body("fzcrp1", FZKEEP_FRAME + rbytes(r, 900)))
        slow = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        slow.connect(h.path)
        fams = h.families
        fid, cmd, body = {
            "flow": (fams[U.OVS_FLOW_FAMILY].id, U.OVS_FLOW_CMD_GET, U.OVS_HEADER.pack(idx)),
            "vport": (fams[U.OVS_VPORT_FAMILY].id, U.OVS_VPORT_CMD_GET, U.OVS_HEADER.pack(idx)),
            "dp": (fams[U.OVS_DATAPATH_FAMILY].id, U.OVS_DP_CMD_GET, U.OVS_HEADER.pack(0)),
            "fetch": (fams[DUMMY_FAMILY].id, DUMMY_FETCH, dummy_body("fzcrp2")),
        }[kind]
        data = join_msgs([
            sockopt_msg(1, U.OVSDP_SO_DUMP_SIZE, 1024),
            build_genl(fid, cmd, 1, U.NLM_F_REQUEST | U.NLM_F_DUMP, 77, 0, body)])
        inp = Input(self.name, self.iteration, f"racing {kind} dump, {change} meanwhile "
                    f"({nflows} flows, {nports} ports)", data)
        h.history.append(inp)
        slow.send(data)
        time.sleep(0.02)
        with h.dpif() as c:
            try:
                if change == "del-flows":
                    for key in keys[::2]:           # the flows without a UFID
                        c.flow_del(idx, key=key, echo=False)
                elif change == "flush":
                    c.flow_flush(idx)
                elif change == "del-ports":
                    for k in range(1, nports, 2):
                        c.vport_del(name=f"fzcrp{k}")
                elif change in ("del-dp", "recreate-dp"):
                    c.dp_del(idx)
                    if change == "recreate-dp":
                        idx2 = c.dp_new(name, upcall_pid=0).ifindex
                        c.vport_new(idx2, "fzcrp1", "dummy", upcall_pids=[0])
                else:
                    for k in range(nports, nports + 20):
                        c.vport_new(idx, f"fzcrp{k}", "dummy", upcall_pids=[0])
                    for k in range(50):
                        key, mask = odp.parse_key(f"in_port(3),eth(src=02:00:00:01:00:{k:02x}),"
                                                  "eth_type(0x88b5)")
                        c.flow_new(idx, key, odp.parse_actions("1"), mask=mask, echo=False)
            except OSError as e:
                self.report("race", f"changing {name} during a dump failed: {e}")
        # now read the whole dump
        slow.settimeout(h.timeout)
        done = None
        msgs = 0
        try:
            while done is None:
                d = slow.recv(1 << 18)
                if not d:
                    break
                for hd, raw in self.framed_parts(d, "dump"):
                    if hd.type == U.NLMSG_DONE and hd.seq == 77:
                        done = parse_error(raw)
                    elif hd.type == U.NLMSG_ERROR and hd.seq == 77:
                        done = parse_error(raw)
                    elif hd.seq == 77:
                        msgs += 1
        except socket.timeout:
            pass
        finally:
            slow.close()
        h.stats[f"race {kind} dumps"] += 1
        h.stats[f"race {kind} dump messages"] += msgs
        if done is None:
            h.fatal("hang", f"racing {kind} dump: no NLMSG_DONE ({msgs} parts read)")
        if done[1] and "internal error" in done[1]:
            self.report("internal-error", f"racing {kind} dump ended with "
                        f"\"internal error\" ({change})")
        h.scan_log(inp, wait=True)
        with h.dpif() as c:
            for d in c.dp_dump():
                if d.name == name:
                    c.dp_del(d.ifindex)

    def drain_listener(self):
        """Read what the multicast listener got; every notification must be well framed."""
        if self.listener is None:
            return
        while True:
            d = self.listener.recv(0)
            if d is None:
                break
            if not d:
                self.listener.close()
                self.listener = None
                return
            self.framed_parts(d, "notification")

    def new_listener(self):
        """A client in every multicast group (the old one goes away unread)."""
        if self.listener is not None:
            self.listener.close()
        self.listener = Conn(self.h.path, self.h.timeout)
        self.listener.send(join_msgs([sockopt_msg(1, U.NETLINK_ADD_MEMBERSHIP, gid)
                                      for f in self.h.families.values()
                                      for gid in f.groups.values()]))

    def canon(self):
        """A flow's KEY, MASK and ACTIONS as the daemon answers them, given back to it as
        a new flow, must come back unchanged (the canonical form is a fixed point)."""
        r = self.r
        self.iteration += 1
        idx = self.ifindexes.get("fzc0") or self.ifindexes.get("fzc1")
        if idx is None:
            return
        key, mask = self.key_mask()
        acts = self.actions()
        fam = self.fam(U.OVS_FLOW_FAMILY)

        def new(key, mask, acts, ufid):
            body = U.OVS_HEADER.pack(idx) + nla_nest(U.OVS_FLOW_ATTR_KEY, key) + \
                nla_nest(U.OVS_FLOW_ATTR_ACTIONS, acts) + nla(U.OVS_FLOW_ATTR_UFID, ufid)
            if mask is not None:
                body += nla_nest(U.OVS_FLOW_ATTR_MASK, mask)
            seq = self.next_seq()
            data = build_genl(fam.id, U.OVS_FLOW_CMD_NEW, 1,
                              U.NLM_F_REQUEST | U.NLM_F_ACK | U.NLM_F_ECHO | U.NLM_F_CREATE,
                              seq, 0, body)
            inp = Input(self.name, self.iteration, "flow NEW with ECHO (canonical form check)",
                        data)
            res = self.h.run_input(self.conn, inp)
            self.reconnect()
            reply = None
            for h, raw in res.msgs:
                if h.type == fam.id and h.seq == seq:
                    reply = raw
            a = res.ack(seq)
            return inp, (a[0] if a else None), reply

        def delete(ufid):
            body = U.OVS_HEADER.pack(idx) + nla(U.OVS_FLOW_ATTR_UFID, ufid)
            self.h.run_input(self.conn, Input(self.name, self.iteration, "flow DEL", build_genl(
                fam.id, U.OVS_FLOW_CMD_DEL, 1, U.NLM_F_REQUEST | U.NLM_F_ACK, self.next_seq(), 0,
                body)))

        def parts(raw):
            out = {"keys": []}
            for t, p, _ in A.iter_attrs(raw[24:]):
                t &= U.NLA_TYPE_MASK
                if t == U.OVS_FLOW_ATTR_KEY:
                    out["keys"].append(p)
                elif t in (U.OVS_FLOW_ATTR_MASK, U.OVS_FLOW_ATTR_ACTIONS):
                    out[t] = p
            return out["keys"][-1] if out["keys"] else None, out.get(U.OVS_FLOW_ATTR_MASK), \
                out.get(U.OVS_FLOW_ATTR_ACTIONS)

        u1 = bytes([0xca, 0x01]) + rbytes(r, 14)
        inp1, err, reply = new(key, mask, acts, u1)
        if err or reply is None:
            return
        k1, m1, a1 = parts(reply)
        u2 = bytes([0xca, 0x02]) + rbytes(r, 14)
        delete(u1)              # the first flow goes, or the second would overlap it
        # Only the actions: like Linux, a UFID flow's masked key is not always a key that
        # can be given back (a wildcarded EtherType comes back as eth_type(0)).
        inp2, err2, reply2 = new(key, mask, a1, u2)
        if err2 or reply2 is None:
            self.report("canonical", "a flow's own ACTIONS are refused when given back: "
                        f"{errno.errorcode.get(err2, err2)}",
                        f"key: {fmt_key(k1, m1)}\nactions: {fmt_actions(a1)}", [inp1, inp2])
            return
        _, _, a2 = parts(reply2)
        for what, x, y in (("ACTIONS", a1, a2),):
            if x != y:
                detail = f"first:  {x.hex() if x else None}\nsecond: {y.hex() if y else None}" \
                    f"\n({fmt_actions(x)} -> {fmt_actions(y)})"
                self.report("canonical", f"the canonical {what} of a flow changes when it is "
                            "given back", detail, [inp1, inp2])
        delete(u2)

    def flood(self):
        """A client that asks for big answers and never reads them, while another client
        waits for a ping: the daemon's memory must stay bounded and the other client served.
        """
        h = self.h
        self.iteration += 1
        idx = self.ifindexes.get("fzc0")
        if idx is None:
            return
        fam = self.fam(U.OVS_FLOW_FAMILY)
        ufid = b"fzc-flood-flow\x00\x01"
        acts = b"".join(nla_u32(U.OVS_ACTION_ATTR_OUTPUT, 1 + k % 3) for k in range(4000))
        key, mask = odp.parse_key("in_port(9),eth(),eth_type(0x88b6)")
        with h.dpif() as c:
            try:
                c.flow_del(idx, ufid=ufid)
            except OSError:
                pass
            try:
                c.flow_new(idx, key, acts, mask=mask, ufid=ufid, echo=False)
            except OSError:
                return
        get = build_genl(fam.id, U.OVS_FLOW_CMD_GET, 1, U.NLM_F_REQUEST, 5, 0,
                         U.OVS_HEADER.pack(idx) + nla(U.OVS_FLOW_ATTR_UFID, ufid))
        data = join_msgs([get] * 2000)
        inp = Input(self.name, self.iteration, "flood: 2000 flow GETs of a 32 KB flow per "
                    "datagram, never read", data)
        h.history.append(inp)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.connect(h.path)
        s.setblocking(False)
        rss0 = rss_kb(h.daemon.pid) or 0
        sent = 0
        t_end = time.monotonic() + 1.5
        worst = 0.0
        try:
            while time.monotonic() < t_end and sent < 20:
                try:
                    s.send(data)
                    sent += 1
                except BlockingIOError:
                    time.sleep(0.05)
                t0 = time.monotonic()
                p = Conn(h.path, h.timeout)
                try:
                    res = p.transact(build(U.NLMSG_NOOP, U.NLM_F_REQUEST, 1, 0, b""))
                finally:
                    p.close()
                worst = max(worst, time.monotonic() - t0)
                if not res.got_pong:
                    h.fatal("hang", "a client got no pong while another one flooded the daemon")
            rss1 = rss_kb(h.daemon.pid) or 0
        finally:
            s.close()
        h.stats["flood datagrams"] += sent
        if rss1 - rss0 > h.rss_mb * 1024:
            self.report("memory", f"VmRSS grew by {(rss1 - rss0) // 1024} MB while a client "
                        f"sent {sent} datagrams of requests and read nothing", inputs=[inp])
        if worst > 2.0:
            self.report("fairness", f"a ping took {worst:.1f} s while another client "
                        "flooded the daemon", inputs=[inp])
        with h.dpif() as c:
            try:
                c.flow_del(idx, ufid=ufid)
            except OSError:
                pass
