"""Action text -> OVS_ACTION_ATTR_* attributes: :func:`parse_actions` is
``odp_actions_from_string()`` (lib/odp-util.c), the inverse of
:mod:`.actions`' formatting.
"""

import math
import struct

from .. import uapi as U
from ..netlink.attr import MAX_ATTR_PAYLOAD, NLA_HDRLEN, NetlinkError, nla, nla_nest
from ._util import (
    DELIMITERS,
    DELIMITERS_END,
    Cursor,
    OdpParseError,
    _Fail,
    is_all,
    scan_eth,
    scan_flags,
    scan_hex_bytes,
    scan_in6,
    scan_int_string,
    scan_ipv4,
    scan_name,
    scan_uint,
)
from .actions import (
    _BE16,
    _U16,
    _U32,
    NX_ACTION_SAMPLE_DEFAULT,
    NX_ACTION_SAMPLE_EGRESS,
    NX_ACTION_SAMPLE_INGRESS,
    SLOW_PATH_REASON_MASK,
    UINT32_MAX,
    USER_ACTION_COOKIE_CONTROLLER,
    USER_ACTION_COOKIE_FLOW_SAMPLE,
    USER_ACTION_COOKIE_IPFIX,
    USER_ACTION_COOKIE_SFLOW,
    USER_ACTION_COOKIE_SLOW_PATH,
    XLATE_OK,
    make_cookie,
    slow_path_reason_to_string,
)
from .keys import (
    KEY,
    NESTED,
    _le128,
)
from .keys_scan import _Ctx, parse_key_attr
from .tnl_push import parse_tnl_push


def _close(cur):
    if not cur.accept(")"):
        cur.fail("expected ')'")


def _ident(cur):
    s = cur.s
    j = cur.i
    while j < len(s) and (s[j].isalnum() or s[j] == "_"):
        j += 1
    return s[cur.i:j]


def _scan_port(cur, ctx, what="port"):
    if cur.peek().isdigit():
        return scan_uint(cur, 0, 32, what)
    name = scan_name(cur, DELIMITERS_END)
    names = ctx.port_names or {}
    if name not in names:
        cur.fail(f"unknown {what} '{name}'" if name else f"expected {what}", cur.i - len(name))
    return names[name]


def _parse_userspace(cur, ctx):
    pid = scan_uint(cur, 0, 32, "pid")
    userdata = None
    include_actions = False
    tun_port = None
    if cur.accept(",sFlow("):
        cur.expect("vid=")
        vid = scan_uint(cur, 0, 32, "vid")
        cur.expect(",pcp=")
        pcp = scan_uint(cur, 0, 32, "pcp")
        cur.expect(",output=")
        output = scan_uint(cur, 0, 32, "output")
        _close(cur)
        tci = (vid | (pcp << 13)) & 0xFFFF
        if tci:
            tci |= 0x1000
        userdata = make_cookie(USER_ACTION_COOKIE_SFLOW, _BE16.pack(tci) + bytes(2)
                               + _U32.pack(output))
    elif cur.accept(",slow_path("):
        s = cur.s
        # OVS prints reasons separated by ',' but parses '|'; accept both.
        j = s.find(")", cur.i)
        if j < 0:
            cur.fail("expected ')'")
        sub = Cursor(s[cur.i:j].replace(",", "|") + ")")
        reason, _ = scan_flags(sub, slow_path_reason_to_string, ")", SLOW_PATH_REASON_MASK,
                               False, "slow_path reason")
        cur.i = j + 1
        userdata = make_cookie(USER_ACTION_COOKIE_SLOW_PATH, bytes(4) + _U32.pack(reason))
    elif cur.accept(",flow_sample("):
        vals = []
        for i, fname in enumerate(("probability", "collector_set_id", "obs_domain_id",
                                   "obs_point_id")):
            cur.expect(("," if i else "") + fname + "=")
            vals.append(scan_uint(cur, 0, 16 if i == 0 else 32, fname))
        cur.expect(",output_port=")
        out = _scan_port(cur, ctx, "output_port")
        direction = NX_ACTION_SAMPLE_DEFAULT
        if cur.accept(",ingress"):
            direction = NX_ACTION_SAMPLE_INGRESS
        elif cur.accept(",egress"):
            direction = NX_ACTION_SAMPLE_EGRESS
        _close(cur)
        userdata = make_cookie(USER_ACTION_COOKIE_FLOW_SAMPLE,
                               struct.pack("=H2x5I", vals[0], vals[1], vals[2], vals[3], out,
                                           direction))
    elif cur.accept(",ipfix("):
        cur.expect("output_port=")
        out = _scan_port(cur, ctx, "output_port")
        _close(cur)
        userdata = make_cookie(USER_ACTION_COOKIE_IPFIX, _U32.pack(out))
    elif cur.accept(",controller("):
        vals = {}
        for i, (fname, base, bits) in enumerate((
                ("reason", 10, 16), ("dont_send", 10, 8), ("continuation", 10, 8),
                ("recirc_id", 10, 32), ("rule_cookie", 16, 64), ("controller_id", 10, 16),
                ("max_len", 10, 16))):
            cur.expect(("," if i else "") + fname + "=")
            vals[fname] = scan_uint(cur, base, bits, fname)
        _close(cur)
        userdata = make_cookie(USER_ACTION_COOKIE_CONTROLLER,
                               struct.pack("=BBHI", bool(vals["dont_send"]),
                                           bool(vals["continuation"]), vals["reason"],
                                           vals["recirc_id"])
                               + struct.pack("!Q", vals["rule_cookie"])
                               + struct.pack("=HH", vals["controller_id"], vals["max_len"]))
    elif cur.accept(",userdata("):
        userdata = scan_hex_bytes(cur)
        _close(cur)
    if cur.accept(",actions"):
        include_actions = True
    if cur.accept(",tunnel_out_port="):
        tun_port = _scan_port(cur, ctx, "tunnel_out_port")
    _close(cur)
    parts = [nla(U.OVS_USERSPACE_ATTR_PID, _U32.pack(pid))]
    if userdata is not None:
        # odp_put_userspace_action(): userdata shorter than 8 bytes is padded.
        parts.append(nla(U.OVS_USERSPACE_ATTR_USERDATA, userdata.ljust(8, b"\0")))
    if tun_port is not None:
        parts.append(nla(U.OVS_USERSPACE_ATTR_EGRESS_TUN_PORT, _U32.pack(tun_port)))
    if include_actions:
        parts.append(nla(U.OVS_USERSPACE_ATTR_ACTIONS))
    a = nla_nest(U.OVS_ACTION_ATTR_USERSPACE, *parts)
    if len(a) > 0xFFFF:
        cur.fail("userspace action too large")
    return a


def _parse_set(cur, ctx):
    k, m = parse_key_attr(cur, ctx)
    _close(cur)
    ktype = _U16.unpack_from(k, 2)[0]
    klen = _U16.unpack_from(k, 0)[0] - 4
    mlen = _U16.unpack_from(m, 0)[0] - 4
    kp = k[4:4 + klen]
    mp = m[4:4 + mlen]
    if (klen == mlen and KEY.ovs_length(ktype) is not NESTED and not is_all(mp, 0xFF)):
        return nla_nest(U.OVS_ACTION_ATTR_SET_MASKED, nla(ktype, kp + mp))
    return nla_nest(U.OVS_ACTION_ATTR_SET, k)


def _parse_push_vlan(cur):
    tpid = 0x8100
    cfi = 1
    if cur.accept("tpid="):
        tpid = scan_uint(cur, 0, 16, "tpid")
        cur.expect(",")
    cur.expect("vid=")
    start = cur.i
    vid = scan_uint(cur, 0, 32, "vid")
    if vid & ~0xFFF:
        cur.fail("vid out of range", start)
    cur.expect(",pcp=")
    start = cur.i
    pcp = scan_uint(cur, 0, 32, "pcp")
    if pcp & ~7:
        cur.fail("pcp out of range", start)
    if cur.accept(",cfi="):
        cfi = scan_uint(cur, 0, 32, "cfi")
    _close(cur)
    tci = vid | (pcp << 13) | (0x1000 if cfi else 0)
    return nla(U.OVS_ACTION_ATTR_PUSH_VLAN, U.OVS_ACTION_PUSH_VLAN.pack(tpid, tci))


def _parse_lse(cur):
    vals = []
    for i, (fname, bits) in enumerate((("label", 20), ("tc", 3), ("ttl", 8), ("bos", 1))):
        cur.expect(("," if i else "") + fname + "=")
        start = cur.i
        v = scan_uint(cur, 0, 32, fname)
        if v >> bits:
            cur.fail(f"{fname} out of range", start)
        vals.append(v)
    label, tc, ttl, bos = vals
    cur.expect(",eth_type=")
    eth_type = scan_uint(cur, 0, 16, "eth_type")
    return (label << 12) | (tc << 9) | (bos << 8) | ttl, eth_type


def _parse_nat(cur):
    p = dict(snat=False, dnat=False, alen=0, amin=b"", amax=b"", pmin=0, pmax=0,
             persistent=False, hash=False, random=False)
    if cur.accept("("):
        while True:
            cur.skip_delims()
            if cur.accept(")"):
                break
            if cur.at_end():
                cur.fail("expected ')'")
            kind = None
            if cur.accept("src"):
                kind = "snat"
            elif cur.accept("dst"):
                kind = "dnat"
            elif cur.accept("persistent"):
                p["persistent"] = True
                continue
            elif cur.accept("hash"):
                p["hash"] = True
                continue
            elif cur.accept("random"):
                p["random"] = True
                continue
            else:
                cur.fail("unknown nat option")
            if cur.accept("="):
                _scan_nat_range(cur, p)
            p[kind] = True
        if p["snat"] and p["dnat"]:
            cur.fail("only one of src or dst may be given")
        if p["alen"] and any(p["amax"]) and p["amax"] < p["amin"]:
            cur.fail("address range error")
        if p["pmax"] and p["pmax"] < p["pmin"]:
            cur.fail("port range error")
        if p["hash"] and p["random"]:
            cur.fail("hash and random are exclusive")
    parts = []
    if p["snat"] or p["dnat"]:
        parts.append(nla(U.OVS_NAT_ATTR_SRC if p["snat"] else U.OVS_NAT_ATTR_DST))
        if p["alen"]:
            amax = p["amax"] or bytes(p["alen"])
            parts.append(nla(U.OVS_NAT_ATTR_IP_MIN, p["amin"]))
            if amax > p["amin"]:
                parts.append(nla(U.OVS_NAT_ATTR_IP_MAX, amax))
            if p["pmin"]:
                parts.append(nla(U.OVS_NAT_ATTR_PROTO_MIN, _U16.pack(p["pmin"])))
                if p["pmax"] > p["pmin"]:
                    parts.append(nla(U.OVS_NAT_ATTR_PROTO_MAX, _U16.pack(p["pmax"])))
        if p["persistent"]:
            parts.append(nla(U.OVS_NAT_ATTR_PERSISTENT))
        if p["hash"]:
            parts.append(nla(U.OVS_NAT_ATTR_PROTO_HASH))
        if p["random"]:
            parts.append(nla(U.OVS_NAT_ATTR_PROTO_RANDOM))
    return nla_nest(U.OVS_CT_ATTR_NAT, *parts)


def _scan_nat_addr(cur):
    save = cur.i
    try:
        return scan_ipv4(cur)
    except _Fail:
        cur.i = save
    if cur.accept("["):
        a = scan_in6(cur)
        cur.expect("]")
        return a
    # Like OVS, an IPv6 address followed by ':port' needs brackets.
    return scan_in6(cur, "nat address")


def _scan_nat_range(cur, p):
    amin = _scan_nat_addr(cur)
    p["alen"] = len(amin)
    p["amin"] = amin
    if cur.accept("-"):
        amax = _scan_nat_addr(cur)
        if len(amax) != len(amin):
            cur.fail("nat address families differ")
        p["amax"] = amax
    if cur.accept(":"):
        p["pmin"] = scan_uint(cur, 10, 16, "port")
        if cur.accept("-"):
            p["pmax"] = scan_uint(cur, 10, 16, "port")


def _parse_ct(cur):
    commit = force = False
    zone = 0
    mark = None
    label = None
    helper = timeout = None
    nat = None
    if cur.accept("("):
        while True:
            cur.skip_delims()
            if cur.accept(")"):
                break
            if cur.at_end():
                cur.fail("expected ')'")
            if cur.accept("commit"):
                commit = True
            elif cur.accept("force_commit"):
                force = True
            elif cur.accept("zone="):
                zone = scan_uint(cur, 10, 16, "zone")
            elif cur.accept("mark="):
                v = scan_uint(cur, 16, 32, "mark")
                m = UINT32_MAX
                if cur.accept("/"):
                    m = scan_uint(cur, 16, 32, "mark mask")
                mark = (v, m)
            elif cur.accept("label="):
                v = scan_int_string(cur, 16, "label")
                m = b"\xff" * 16
                if cur.accept("/"):
                    m = scan_int_string(cur, 16, "label mask")
                label = (v, m)
            elif cur.accept("helper="):
                helper = scan_name(cur)
                if not 1 <= len(helper) <= 15:
                    cur.fail("invalid helper name")
            elif cur.accept("timeout="):
                timeout = scan_name(cur)
                if not 1 <= len(timeout) <= 31:
                    cur.fail("invalid timeout policy name")
            elif cur.accept("nat"):
                nat = _parse_nat(cur)
            else:
                cur.fail("unknown ct option")
    if commit and force:
        cur.fail("commit and force_commit are exclusive")
    parts = []
    if commit:
        parts.append(nla(U.OVS_CT_ATTR_COMMIT))
    elif force:
        parts.append(nla(U.OVS_CT_ATTR_FORCE_COMMIT))
    if zone:
        parts.append(nla(U.OVS_CT_ATTR_ZONE, _U16.pack(zone)))
    if mark is not None and mark[1]:
        parts.append(nla(U.OVS_CT_ATTR_MARK, struct.pack("=II", *mark)))
    if label is not None and any(label[1]):
        parts.append(nla(U.OVS_CT_ATTR_LABELS, _le128(label[0]) + _le128(label[1])))
    if helper is not None:
        parts.append(nla(U.OVS_CT_ATTR_HELPER, helper.encode() + b"\0"))
    if timeout is not None:
        parts.append(nla(U.OVS_CT_ATTR_TIMEOUT, timeout.encode() + b"\0"))
    if nat is not None:
        parts.append(nat)
    return nla_nest(U.OVS_ACTION_ATTR_CT, *parts)


def _parse_push_nsh(cur):
    flags, ttl, mdtype, np_, spi, si = 0, 63, 1, 3, 0, 255
    ctx = [0, 0, 0, 0]
    md2 = b""
    while True:
        cur.skip_delims()
        if cur.accept(")"):
            break
        if cur.at_end():
            cur.fail("expected ')'")
        if cur.accept("flags="):
            flags = scan_uint(cur, 0, 8, "flags")
        elif cur.accept("ttl="):
            ttl = scan_uint(cur, 0, 8, "ttl")
        elif cur.accept("mdtype="):
            mdtype = scan_uint(cur, 0, 8, "mdtype")
            if mdtype not in (1, 2):
                cur.fail("mdtype must be 1 or 2")
        elif cur.accept("np="):
            np_ = scan_uint(cur, 0, 8, "np")
        elif cur.accept("spi=0x"):
            spi = scan_uint(cur, 16, 24, "spi")
        elif cur.accept("si="):
            si = scan_uint(cur, 0, 8, "si")
        elif mdtype == 1 and cur.peek(3) in ("c1=", "c2=", "c3=", "c4="):
            i = int(cur.peek(2)[1]) - 1
            cur.i += 3
            cur.expect("0x")
            ctx[i] = scan_uint(cur, 16, 32, f"c{i + 1}")
        elif mdtype == 2 and cur.accept("md2=0x"):
            start = cur.i
            while cur.i < len(cur.s) and cur.s[cur.i] in "0123456789abcdefABCDEF":
                cur.i += 1
            digits = cur.s[start:cur.i]
            if len(digits) % 2:
                digits = "0" + digits
            md2 = bytes.fromhex(digits)
            md2 += bytes(-len(md2) % 4)
        else:
            cur.fail("unknown push_nsh field")
    base = U.OVS_KEY_NSH_BASE.pack(flags, ttl, mdtype, np_, (spi << 8) | si)
    parts = [nla(U.OVS_NSH_KEY_ATTR_BASE, base)]
    if mdtype == 1:
        parts.append(nla(U.OVS_NSH_KEY_ATTR_MD1, U.OVS_KEY_NSH_MD1.pack(*ctx)))
    elif md2:
        parts.append(nla(U.OVS_NSH_KEY_ATTR_MD2, md2))
    return nla_nest(U.OVS_ACTION_ATTR_PUSH_NSH, nla_nest(U.OVS_KEY_ATTR_NSH, *parts))


def _parse_action_list(cur, ctx):
    """parse_action_list(): actions up to (not including) the closing ')'.

    A list that is just ``drop`` is empty, as format_odp_actions() prints it.
    """
    save = cur.i
    if cur.s[cur.i:cur.i + 4].lower() == "drop" and cur.s.startswith(")", cur.i + 4):
        cur.i += 4
        return b""
    cur.i = save
    parts = []
    while True:
        cur.skip_delims()
        if cur.peek() == ")":
            break
        if cur.at_end():
            cur.fail("expected ')'")
        parts.append(_parse_action(cur, ctx))
    out = b"".join(parts)
    if len(out) > 0xFFFF:
        cur.fail("action list too large")
    return out


def _parse_action(cur, ctx):
    with ctx.nested(cur):
        return _parse_action__(cur, ctx)


def _parse_action__(cur, ctx):
    s = cur.s
    if cur.peek().isdigit():
        port = scan_uint(cur, 0, 32, "port")
        return nla(U.OVS_ACTION_ATTR_OUTPUT, _U32.pack(port))
    if ctx.port_names:
        j = cur.i
        while j < len(s) and s[j] not in DELIMITERS:
            j += 1
        name = s[cur.i:j]
        if name in ctx.port_names:
            cur.i = j
            return nla(U.OVS_ACTION_ATTR_OUTPUT, _U32.pack(ctx.port_names[name]))
    start = cur.i
    word = _ident(cur)
    cur.i += len(word)
    if cur.accept("("):
        return _parse_call(cur, ctx, word, start)
    if word == "pop_vlan":
        return nla(U.OVS_ACTION_ATTR_POP_VLAN)
    if word == "pop_eth":
        return nla(U.OVS_ACTION_ATTR_POP_ETH)
    if word == "ct_clear":
        return nla(U.OVS_ACTION_ATTR_CT_CLEAR)
    if word == "ct":
        return nla_nest(U.OVS_ACTION_ATTR_CT)
    if word.lower() == "drop":
        return nla(U.OVS_ACTION_ATTR_DROP, _U32.pack(XLATE_OK))
    cur.fail(f"unknown action '{word}'" if word else "expected action", start)


def _parse_call(cur, ctx, word, start):
    if word == "trunc":
        v = scan_uint(cur, 0, 32, "max_len")
        _close(cur)
        return nla(U.OVS_ACTION_ATTR_TRUNC, _U32.pack(v))
    if word == "recirc":
        v = scan_uint(cur, 0, 32, "recirc_id")
        _close(cur)
        return nla(U.OVS_ACTION_ATTR_RECIRC, _U32.pack(v))
    if word == "meter":
        v = scan_uint(cur, 0, 32, "meter id")
        _close(cur)
        return nla(U.OVS_ACTION_ATTR_METER, _U32.pack(v))
    if word in ("lb_output", "tnl_pop"):
        v = scan_uint(cur, 10 if word == "lb_output" else 0, 32,
                      "bond id" if word == "lb_output" else "port")
        _close(cur)
        return nla(U.OVS_ACTION_ATTR_LB_OUTPUT if word == "lb_output"
                   else U.OVS_ACTION_ATTR_TUNNEL_POP, _U32.pack(v))
    if word == "tnl_push":
        return nla(U.OVS_ACTION_ATTR_TUNNEL_PUSH, parse_tnl_push(cur))
    if word == "userspace":
        cur.expect("pid=")
        return _parse_userspace(cur, ctx)
    if word == "set":
        return _parse_set(cur, ctx)
    if word == "push_vlan":
        return _parse_push_vlan(cur)
    if word == "sample":
        cur.expect("sample=")
        j = cur.i
        while j < len(cur.s) and (cur.s[j].isdigit() or cur.s[j] in ".eE+-"):
            j += 1
        try:
            pct = float(cur.s[cur.i:j])
        except ValueError:
            cur.fail("expected sampling percentage")
        if not 0.0 <= pct <= 100.0:
            cur.fail("sampling percentage out of range")
        cur.i = j
        cur.expect("%,actions(")
        prob = math.floor(UINT32_MAX * (pct / 100.0) + 0.5)
        prob = 0 if prob <= 0 else min(prob, UINT32_MAX)
        acts = _parse_action_list(cur, ctx)
        cur.expect("))")
        return nla_nest(U.OVS_ACTION_ATTR_SAMPLE,
                        nla(U.OVS_SAMPLE_ATTR_PROBABILITY, _U32.pack(prob)),
                        nla_nest(U.OVS_SAMPLE_ATTR_ACTIONS, acts))
    if word == "clone":
        acts = _parse_action_list(cur, ctx)
        _close(cur)
        return nla_nest(U.OVS_ACTION_ATTR_CLONE, acts)
    if word == "push_nsh":
        return _parse_push_nsh(cur)
    if word == "pop_nsh":
        _close(cur)
        return nla(U.OVS_ACTION_ATTR_POP_NSH)
    if word == "check_pkt_len":
        cur.expect("size=")
        size = scan_uint(cur, 0, 16, "size")
        cur.expect(",gt(")
        gt = _parse_action_list(cur, ctx)
        cur.expect("),le(")
        le = _parse_action_list(cur, ctx)
        cur.expect("))")
        return nla_nest(U.OVS_ACTION_ATTR_CHECK_PKT_LEN,
                        nla(U.OVS_CHECK_PKT_LEN_ATTR_PKT_LEN, _U16.pack(size)),
                        nla_nest(U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_GREATER, gt),
                        nla_nest(U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_LESS_EQUAL, le))
    if word == "ct":
        cur.i -= 1
        return _parse_ct(cur)
    if word == "hash":
        if cur.accept("l4("):
            alg = U.OVS_HASH_ALG_L4
        elif cur.accept("sym_l4("):
            alg = U.OVS_HASH_ALG_SYM_L4
        else:
            cur.fail("expected l4( or sym_l4(")
        basis = scan_uint(cur, 0, 32, "hash basis")
        cur.expect("))")
        return nla(U.OVS_ACTION_ATTR_HASH, U.OVS_ACTION_HASH.pack(alg, basis))
    if word in ("push_mpls", "add_mpls"):
        lse, eth_type = _parse_lse(cur)
        if word == "push_mpls":
            _close(cur)
            return nla(U.OVS_ACTION_ATTR_PUSH_MPLS, U.OVS_ACTION_PUSH_MPLS.pack(lse, eth_type))
        tun_flags = 0
        if cur.accept(",tun_flags="):
            tun_flags = scan_uint(cur, 0, 16, "tun_flags")
        _close(cur)
        return nla(U.OVS_ACTION_ATTR_ADD_MPLS,
                   U.OVS_ACTION_ADD_MPLS.pack(lse, eth_type) + _U16.pack(tun_flags))
    if word == "pop_mpls":
        cur.expect("eth_type=")
        eth_type = scan_uint(cur, 0, 16, "eth_type")
        _close(cur)
        return nla(U.OVS_ACTION_ATTR_POP_MPLS, _BE16.pack(eth_type))
    if word == "push_eth":
        cur.expect("src=")
        src = scan_eth(cur)
        cur.expect(",dst=")
        dst = scan_eth(cur)
        if cur.accept(",type="):
            scan_uint(cur, 0, 16, "type")
        _close(cur)
        return nla(U.OVS_ACTION_ATTR_PUSH_ETH, src + dst)
    if word == "dec_ttl":
        cur.expect("le_1(")
        acts = _parse_action_list(cur, ctx)
        cur.expect("))")
        return nla_nest(U.OVS_ACTION_ATTR_DEC_TTL, nla_nest(U.OVS_DEC_TTL_ATTR_ACTION, acts))
    if word == "psample":
        cur.expect("group=")
        group = scan_uint(cur, 0, 32, "group")
        parts = [nla(U.OVS_PSAMPLE_ATTR_GROUP, _U32.pack(group))]
        if cur.accept(",cookie=0x"):
            j = cur.i
            while j < len(cur.s) and cur.s[j] in "0123456789abcdefABCDEF":
                j += 1
            digits = cur.s[cur.i:j]
            if not digits:
                cur.fail("expected hexadecimal cookie")
            if len(digits) % 2:
                digits = "0" + digits
            cookie = bytes.fromhex(digits)
            if len(cookie) > U.OVS_PSAMPLE_COOKIE_MAX_SIZE:
                cur.fail("psample cookie longer than 16 bytes")
            cur.i = j
            parts.append(nla(U.OVS_PSAMPLE_ATTR_COOKIE, cookie))
        _close(cur)
        return nla_nest(U.OVS_ACTION_ATTR_PSAMPLE, *parts, flag=True)   # nla_parse_nested()
    cur.fail(f"unknown action '{word}'", start)


def parse_actions(text, port_names=None):
    """Parse an action list as odp_actions_from_string() does.

    ``drop`` alone gives an explicit OVS_ACTION_ATTR_DROP (error 0), like
    OVS; an empty string gives an empty list.  ``port_names`` maps names to
    port numbers for output actions.  Raises :class:`OdpParseError`.
    """
    if text.strip().lower() == "drop":
        return nla(U.OVS_ACTION_ATTR_DROP, _U32.pack(XLATE_OK))
    ctx = _Ctx(port_names)
    cur = Cursor(text)
    parts = []
    while True:
        cur.skip_delims()
        if cur.at_end():
            break
        start = cur.i
        try:
            a = _parse_action(cur, ctx)
            if not cur.at_end() and cur.s[cur.i] not in DELIMITERS:
                cur.fail("expected ',' after action")
        except _Fail as e:
            raise OdpParseError(text, start, e.reason, e.pos) from None
        except NetlinkError as e:           # an attribute too long for nla_len
            raise OdpParseError(text, start, e.msg, cur.i) from None
        parts.append(a)
    out = b"".join(parts)
    # odp_actions_from_string(): nl_attr_oversized(size - NLA_HDRLEN), so a
    # list may hold 65535 bytes (a flow's ACTIONS attribute then takes 65531)
    if len(out) - NLA_HDRLEN > MAX_ATTR_PAYLOAD:
        raise OdpParseError(text, 0, f"actions of {len(out)} bytes are too long "
                                     f"({MAX_ATTR_PAYLOAD + NLA_HDRLEN} bytes at most)")
    return out
