"""Valid requests of every family and command for the control-message fuzzer.

:class:`CtrlRequests` is a part of :class:`~.ctrl.CtrlFuzzer`: it uses the
fuzzer's ``r``, ``h``, ``conn``, ``seq``, ``frames``, the corpus (``keys``,
``wc_keys``, ``corpus_acts``) and the names and ifindexes it keeps.
"""

import struct

from ovsdp import odp
from ovsdp import uapi as U
from ovsdp.netlink.attr import nla, nla_nest, nla_u32

from .consts import DUMMY_FAMILY, DUMMY_INJECT, DUMMY_PACKET, DUMMY_PORT_NAME
from .odp_gen import actions_bytes
from .rand import rbytes
from .wire import Msg, flag_, leaf, nest_, s32_, s_, sockopt_payload, tree_, u16_, u32_, u64_


class CtrlRequests:
    """The pieces of requests, and one valid request of a family and command."""

    # ------------------------------------------------------------ fields
    def fam(self, name):
        return self.h.families[name]

    def pid(self):
        r = self.r
        return r.choice([self.conn.portid or 0] * 4 + [0, 1, 0xFFFFFFFF, r.getrandbits(32)])

    def pids(self, n):
        """``n`` port ids (u32 each) for an UPCALL_PID or PER_CPU_PIDS attribute."""
        return b"".join(struct.pack("=I", self.pid()) for _ in range(n))

    def dp_ifindex(self):
        r = self.r
        known = list(self.ifindexes.values())
        x = r.random()
        if known and x < 0.8:
            return r.choice(known)
        return r.choice([0, -1, 0x7FFFFFFF, 0x7F000000 + r.randrange(1 << 16)])

    def pick_name(self, pool):
        r = self.r
        x = r.random()
        if x < 0.8:
            return r.choice(pool)
        if x < 0.9:
            return "fzc" + "".join(r.choice("abcdefghij0123456789") for _ in range(r.randrange(13)))
        return r.choice(["fzc-" + "x" * 11, "fzc" + "y" * 13, "fz", "fzc\t", "fzc√"])

    def flags(self, base=U.NLM_F_REQUEST | U.NLM_F_ACK):
        r = self.r
        f = base
        if r.random() < 0.2:
            f |= U.NLM_F_ECHO
        if r.random() < 0.1:
            f &= ~U.NLM_F_ACK
        return f

    def genl(self, family, cmd, attrs, flags=None, ifindex=None, version=None, desc=""):
        fam = self.fam(family)
        fixed = b"" if fam.hdrsize == 0 else U.OVS_HEADER.pack(
            self.dp_ifindex() if ifindex is None else ifindex)[:fam.hdrsize]
        return Msg(fam.id, self.flags() if flags is None else flags, self.next_seq(), cmd,
                   fam.version if version is None else version, fixed, attrs,
                   desc=desc or f"{family} cmd {cmd}")

    def key_mask(self):
        r = self.r
        x = r.random()
        if x < 0.45:
            key, mask = r.choice(self.keys)
            return key, (mask if r.random() < 0.5 else None)
        if x < 0.9:
            return r.choice(self.wc_keys)
        frame = self.frames.build()
        text = self.key_text_for(frame.cls)
        try:
            return odp.parse_key(text)
        except Exception:  # noqa: BLE001
            return self.keys[0]

    def key_text_for(self, cls):
        et = cls.get("eth_type")
        t = f"in_port({self.r.randrange(1, 5)}),eth()"
        if et:
            t += f",eth_type({et:#06x})"
            if cls.get("ip") == 4:
                t += f",ipv4(frag={cls.get('frag', 'no')})"
            elif cls.get("ip") == 6:
                t += f",ipv6(frag={cls.get('frag', 'no')})"
        return t

    def actions(self):
        r = self.r
        x = r.random()
        if x < 0.4:
            return r.choice(self.corpus_acts)
        if x < 0.93:
            cls = self.frames.build().cls
            return actions_bytes(r, cls, self.conn.portid or 1)[1]
        return self.long_actions()

    def long_actions(self):
        """Very long or very deep action lists."""
        r = self.r
        kind = r.choice(["outputs", "deep-clone", "deep-sample", "userdata", "sets"])
        if kind == "outputs":
            n = r.choice([100, 1000, 4000, 8000])
            body = b"".join(nla_u32(U.OVS_ACTION_ATTR_OUTPUT, r.randrange(1, 5)) for _ in range(n))
        elif kind == "deep-clone":
            body = nla_u32(U.OVS_ACTION_ATTR_OUTPUT, 1)
            for _ in range(r.choice([15, 16, 17, 30, 200])):
                body = nla_nest(U.OVS_ACTION_ATTR_CLONE, body)
        elif kind == "deep-sample":
            body = nla_u32(U.OVS_ACTION_ATTR_OUTPUT, 1)
            for _ in range(r.choice([8, 16, 17, 40])):
                body = nla_nest(U.OVS_ACTION_ATTR_SAMPLE,
                                nla_u32(U.OVS_SAMPLE_ATTR_PROBABILITY, 0xFFFFFFFF),
                                nla_nest(U.OVS_SAMPLE_ATTR_ACTIONS, body))
        elif kind == "userdata":
            n = r.choice([1000, 16000, 60000, 65000])
            body = nla_nest(U.OVS_ACTION_ATTR_USERSPACE,
                            nla_u32(U.OVS_USERSPACE_ATTR_PID, self.conn.portid or 1),
                            nla(U.OVS_USERSPACE_ATTR_USERDATA, rbytes(r, n)))
        else:
            one = odp.parse_actions("set(ipv4(src=1.2.3.4,dst=1.2.3.5,proto=17,tos=0,ttl=3,"
                                    "frag=no)),set(eth(src=00:00:00:00:00:01,"
                                    "dst=00:00:00:00:00:02))")
            body = one * r.choice([100, 1000, 2000])
        if "bignest" in self.h.avoid and len(body) > 12000:
            body = body[:0] + nla_u32(U.OVS_ACTION_ATTR_OUTPUT, 1)
        return body[:65000]

    def frame(self):
        f = self.frames.build()
        return self.frames.mutate(f)[0]

    # --------------------------------------------------- base messages
    def m_ctrl(self, cmd):
        r = self.r
        fam = self.h.families.get(U.GENL_CTRL_NAME)
        fid = fam.id if fam else U.GENL_ID_CTRL
        x = r.random()
        flags = self.flags()
        if x < 0.5:
            name = r.choice(list(self.h.families) + ["ovs_meter", "ovs_ct_limit", "nope",
                                                     "x" * 15, "x" * 16, ""])
            attrs = [s_(U.CTRL_ATTR_FAMILY_NAME, name)]
        elif x < 0.8:
            attrs = [u16_(U.CTRL_ATTR_FAMILY_ID, r.choice([f.id for f in self.h.families.values()]
                                                          + [0, 0x11, 0x18, 0xFFFF]))]
        else:
            attrs = []
            flags |= U.NLM_F_DUMP
        return Msg(fid, flags, self.next_seq(), cmd, r.choice([1, 2]), b"", attrs,
                   desc="nlctrl GETFAMILY")

    def dp_attrs_ident(self):
        r = self.r
        if r.random() < 0.7:
            return 0 if r.random() < 0.7 else self.dp_ifindex(), [s_(U.OVS_DP_ATTR_NAME,
                                                                     self.pick_name(self.dp_names))]
        return self.dp_ifindex(), []

    def dp_change_attrs(self):
        r = self.r
        attrs = []
        if r.random() < 0.7:
            attrs.append(u32_(U.OVS_DP_ATTR_USER_FEATURES,
                              r.choice([0, 1, 2, 3, 8, 11, 15, 16, r.getrandbits(32)])))
        if r.random() < 0.3:
            attrs.append(u32_(U.OVS_DP_ATTR_MASKS_CACHE_SIZE,
                              r.choice([0, 1, 2, 3, 256, 4096, 4097, 1 << 31])))
        if r.random() < 0.3:
            attrs.append(leaf(U.OVS_DP_ATTR_PER_CPU_PIDS, self.pids(r.randrange(0, 9))
                              + rbytes(r, r.choice([0, 0, 0, 1, 3]))))
        return attrs

    def m_dp(self, cmd):
        r = self.r
        if cmd == U.OVS_DP_CMD_NEW:
            attrs = [s_(U.OVS_DP_ATTR_NAME, self.pick_name(self.dp_names)),
                     u32_(U.OVS_DP_ATTR_UPCALL_PID, self.pid())] + self.dp_change_attrs()
            if r.random() < 0.1:
                attrs.append(s32_(U.OVS_DP_ATTR_IFINDEX, r.choice(
                    [0, -1, 0x7F000000 + r.randrange(1000)] + self.port_ifindexes[:8])))
            return self.genl(U.OVS_DATAPATH_FAMILY, cmd, attrs, ifindex=0,
                             version=r.choice([1, 2, 2, 2]), desc="dp NEW")
        idx, attrs = self.dp_attrs_ident()
        flags = None
        if cmd == U.OVS_DP_CMD_SET:
            attrs += self.dp_change_attrs()
        if cmd == U.OVS_DP_CMD_GET and r.random() < 0.3:
            flags = U.NLM_F_REQUEST | U.NLM_F_DUMP
        return self.genl(U.OVS_DATAPATH_FAMILY, cmd, attrs, flags=flags, ifindex=idx,
                         desc=f"dp cmd {cmd}")

    def vport_type(self):
        r = self.r
        t = r.choice(["dummy"] * 6 + ["internal", "internal", "gre", "vxlan", "geneve",
                                      "netdev", "unknown"])
        if t == "unknown":
            return r.choice([0, 6, 0x7F00, 0x7F02, r.getrandbits(32)]), None
        code = U.VPORT_TYPE_BY_NAME[t]
        opts = None
        if t in ("vxlan", "geneve") and r.random() < 0.9:
            kids = [u16_(U.OVS_TUNNEL_ATTR_DST_PORT, r.choice([4789, 6081, 0, r.randrange(65536)]))]
            if t == "vxlan" and r.random() < 0.4:
                kids.append(nest_(U.OVS_TUNNEL_ATTR_EXTENSION, [flag_(U.OVS_VXLAN_EXT_GBP)]))
            opts = nest_(U.OVS_VPORT_ATTR_OPTIONS, kids)
        elif r.random() < 0.1:
            opts = nest_(U.OVS_VPORT_ATTR_OPTIONS, [leaf(r.randrange(1, 4), rbytes(r, r.choice(
                [0, 1, 2, 4])))])
        return code, opts

    def m_vport(self, cmd):
        r = self.r
        attrs = []
        flags = None
        if cmd == U.OVS_VPORT_CMD_NEW:
            code, opts = self.vport_type()
            attrs = [s_(U.OVS_VPORT_ATTR_NAME, self.pick_name(self.port_names)),
                     u32_(U.OVS_VPORT_ATTR_TYPE, code),
                     leaf(U.OVS_VPORT_ATTR_UPCALL_PID, self.pids(r.choice([1, 1, 2, 0])))]
            if r.random() < 0.3:
                attrs.append(u32_(U.OVS_VPORT_ATTR_PORT_NO,
                                  r.choice([0, 1, 2, 3, 7, 100, 65534, 65535, 70000])))
            if opts is not None:
                attrs.append(opts)
            if r.random() < 0.05 or (code == U.OVS_VPORT_TYPE_INTERNAL and r.random() < 0.3):
                attrs.append(s32_(U.OVS_VPORT_ATTR_IFINDEX,
                                  r.choice([0, 5, -1, 0x7F000000 + r.randrange(1000)]
                                           + self.port_ifindexes[:8])))
            return self.genl(U.OVS_VPORT_FAMILY, cmd, attrs, desc="vport NEW")
        idx = self.dp_ifindex()
        if r.random() < 0.6:
            attrs.append(s_(U.OVS_VPORT_ATTR_NAME, self.pick_name(self.port_names)))
            if r.random() < 0.6:
                idx = 0
        else:
            attrs.append(u32_(U.OVS_VPORT_ATTR_PORT_NO, r.choice([0, 1, 2, 3, 65535, 70000])))
        if cmd == U.OVS_VPORT_CMD_SET:
            if r.random() < 0.5:
                attrs.append(leaf(U.OVS_VPORT_ATTR_UPCALL_PID, self.pids(r.choice([1, 2, 0]))))
            if r.random() < 0.2:
                attrs.append(u32_(U.OVS_VPORT_ATTR_TYPE, self.vport_type()[0]))
            if r.random() < 0.1:
                attrs.append(nest_(U.OVS_VPORT_ATTR_OPTIONS, [u16_(1, 4789)]))
        if cmd == U.OVS_VPORT_CMD_GET and r.random() < 0.3:
            flags = U.NLM_F_REQUEST | U.NLM_F_DUMP
        return self.genl(U.OVS_VPORT_FAMILY, cmd, attrs, flags=flags, ifindex=idx,
                         desc=f"vport cmd {cmd}")

    def m_flow(self, cmd):
        r = self.r
        attrs = []
        flags = None
        ufid = r.choice(self.ufids) if r.random() < 0.5 else None
        if cmd == U.OVS_FLOW_CMD_GET and r.random() < 0.3:
            attrs = [u32_(U.OVS_FLOW_ATTR_UFID_FLAGS, r.choice([0, 1, 2, 4, 7, 8]))] \
                if r.random() < 0.5 else []
            return self.genl(U.OVS_FLOW_FAMILY, cmd, attrs, flags=U.NLM_F_REQUEST | U.NLM_F_DUMP,
                             desc="flow dump")
        key, mask = self.key_mask()
        if cmd == U.OVS_FLOW_CMD_NEW or r.random() < 0.7:
            attrs.append(tree_(U.OVS_FLOW_ATTR_KEY, key))
        if cmd in (U.OVS_FLOW_CMD_NEW, U.OVS_FLOW_CMD_SET) and r.random() < 0.9:
            attrs.append(tree_(U.OVS_FLOW_ATTR_ACTIONS, self.actions()))
        if mask is not None and cmd in (U.OVS_FLOW_CMD_NEW, U.OVS_FLOW_CMD_SET):
            attrs.append(tree_(U.OVS_FLOW_ATTR_MASK, mask))
        if ufid is not None:
            attrs.append(leaf(U.OVS_FLOW_ATTR_UFID, ufid))
        if r.random() < 0.3:
            attrs.append(u32_(U.OVS_FLOW_ATTR_UFID_FLAGS, r.choice([0, 1, 2, 3, 4, 7])))
        if r.random() < 0.1:
            attrs.append(flag_(U.OVS_FLOW_ATTR_PROBE))
        if cmd == U.OVS_FLOW_CMD_SET and r.random() < 0.3:
            attrs.append(flag_(U.OVS_FLOW_ATTR_CLEAR))
        if cmd == U.OVS_FLOW_CMD_DEL and r.random() < 0.1:
            attrs = []                   # flush
        if cmd == U.OVS_FLOW_CMD_NEW:
            flags = self.flags() | r.choice([0, 0, U.NLM_F_CREATE, U.NLM_F_EXCL,
                                             U.NLM_F_CREATE | U.NLM_F_EXCL])
        r.shuffle(attrs) if r.random() < 0.1 else None
        return self.genl(U.OVS_FLOW_FAMILY, cmd, attrs, flags=flags, desc=f"flow cmd {cmd}")

    def m_packet(self, cmd):
        r = self.r
        x = r.random()
        if x < 0.5:
            key = odp.parse_key(f"in_port({r.randrange(0, 5)})")[0]
        elif x < 0.8:
            key = r.choice(self.keys)[0]
        else:
            key = odp.parse_key(r.choice([
                "in_port(1),eth_type(0x0800)", "in_port(1),eth_type(0x86dd)",
                "in_port(1),eth_type(0x8100)", "skb_mark(5),skb_priority(3),in_port(2)",
                "recirc_id(3),dp_hash(7),in_port(1)",
                "tunnel(tun_id=0x5,src=1.1.1.1,dst=2.2.2.2,ttl=64,flags(key)),in_port(1)",
                "ct_state(+trk),ct_zone(5),ct_mark(3),in_port(1)"]))[0]
        attrs = [leaf(U.OVS_PACKET_ATTR_PACKET, self.frame()),
                 tree_(U.OVS_PACKET_ATTR_KEY, key),
                 tree_(U.OVS_PACKET_ATTR_ACTIONS, self.actions())]
        if r.random() < 0.2:
            attrs.append(u16_(U.OVS_PACKET_ATTR_MRU, r.choice([0, 1, 2, 68, 1500, 65535])))
        if r.random() < 0.2:
            attrs.append(u64_(U.OVS_PACKET_ATTR_HASH, r.getrandbits(34)))
        if r.random() < 0.2:
            attrs.append(u32_(U.OVS_PACKET_ATTR_UPCALL_PID, self.pid()))
        if r.random() < 0.1:
            attrs.append(flag_(U.OVS_PACKET_ATTR_PROBE))
        return self.genl(U.OVS_PACKET_FAMILY, cmd, attrs, desc=f"packet cmd {cmd}")

    def m_dummy(self, cmd):
        r = self.r
        attrs = [s_(DUMMY_PORT_NAME, self.pick_name(self.port_names))]
        flags = None
        if cmd == DUMMY_INJECT:
            attrs.append(leaf(DUMMY_PACKET, self.frame()))
        else:
            flags = U.NLM_F_REQUEST | U.NLM_F_DUMP
        if r.random() < 0.05:
            flags = (flags or U.NLM_F_REQUEST | U.NLM_F_ACK) ^ U.NLM_F_DUMP
        return self.genl(DUMMY_FAMILY, cmd, attrs, flags=flags, desc=f"dummy cmd {cmd}")

    def m_generic(self, family, cmd):
        r = self.r
        fam = self.fam(family)
        attrs = [leaf(r.randrange(0, fam.maxattr + 3), rbytes(r, r.choice([0, 1, 2, 4, 8, 16])))
                 for _ in range(r.randrange(4))]
        return self.genl(family, cmd, attrs, desc=f"{family} cmd {cmd} (generic)")

    def m_control(self):
        r = self.r
        x = r.random()
        if x < 0.6:
            optname = r.choice([U.NETLINK_ADD_MEMBERSHIP, U.NETLINK_DROP_MEMBERSHIP,
                                U.NETLINK_EXT_ACK, U.NETLINK_CAP_ACK, U.OVSDP_SO_DUMP_SIZE,
                                U.NETLINK_PKTINFO, U.NETLINK_NO_ENOBUFS, r.getrandbits(32)])
            value = r.choice([0, 1, 2, 3, 4, 16, 1023, 1024, 8192, 32768, 32769,
                              r.getrandbits(32)])
            level = U.SOL_NETLINK if r.random() < 0.9 else r.choice([0, 1, 271])
            payload = sockopt_payload(optname, value, level)
            if r.random() < 0.1:
                payload = payload[:r.randrange(len(payload))]
            return Msg(U.OVSDP_MSG_SOCKOPT, self.flags(), self.next_seq(), raw=payload,
                       desc=f"sockopt {optname:#x}={value}")
        mtype = r.choice([U.NLMSG_NOOP, U.NLMSG_ERROR, U.NLMSG_DONE, U.NLMSG_OVERRUN, 0, 5, 14])
        return Msg(mtype, self.flags(), self.next_seq(), raw=rbytes(r, r.choice([0, 4, 20])),
                   desc=f"control type {mtype}")

    def base_message(self):
        r = self.r
        fams = self.h.families
        x = r.random()
        if x < 0.06:
            return self.m_control()
        if x < 0.08:
            fid = r.choice([0x11, 0x12, 0x18, 0x19, 0xFF, 0xFFFF])
            return Msg(fid, self.flags(), self.next_seq(), r.randrange(8), 1, U.OVS_HEADER.pack(0),
                       desc=f"unknown family {fid:#x}")
        fname = r.choice([U.OVS_DATAPATH_FAMILY, U.OVS_VPORT_FAMILY, U.OVS_FLOW_FAMILY,
                          U.OVS_FLOW_FAMILY, U.OVS_FLOW_FAMILY, U.OVS_PACKET_FAMILY,
                          U.OVS_PACKET_FAMILY, DUMMY_FAMILY, U.GENL_CTRL_NAME]
                         + [n for n in fams if n not in (U.OVS_DATAPATH_FAMILY,
                                                         U.OVS_VPORT_FAMILY, U.OVS_FLOW_FAMILY,
                                                         U.OVS_PACKET_FAMILY, DUMMY_FAMILY,
                                                         U.GENL_CTRL_NAME)])
        if fname not in fams:
            return self.m_control()
        fam = fams[fname]
        cmds = list(fam.ops)
        if r.random() < 0.05 or not cmds:
            cmd = r.choice([0, 5, 6, 10, 255] + ([1, 2] if fname == U.OVS_PACKET_FAMILY else []))
        else:
            cmd = r.choice(cmds)
        gen = {U.GENL_CTRL_NAME: self.m_ctrl, U.OVS_DATAPATH_FAMILY: self.m_dp,
               U.OVS_VPORT_FAMILY: self.m_vport, U.OVS_FLOW_FAMILY: self.m_flow,
               U.OVS_PACKET_FAMILY: self.m_packet, DUMMY_FAMILY: self.m_dummy}.get(fname)
        known_cmd = cmd in fam.ops
        if gen is None or not known_cmd:
            return self.m_generic(fname, cmd)
        return gen(cmd)
