"""Datapath actions: OVS_ACTION_ATTR_* attributes <-> text.

Mirrors lib/odp-util.c: :func:`format_actions` is ``format_odp_actions()``
and :func:`parse_actions` is ``odp_actions_from_string()``.
"""

import math
import struct

from .. import uapi as U
from ..netlink.attr import MAX_ATTR_PAYLOAD, NLA_HDRLEN, NetlinkError, attr_list, nla, nla_nest
from ..uapi import attrs as ATTRS
from ._util import (
    DELIMITERS,
    DELIMITERS_END,
    Cursor,
    OdpParseError,
    _Fail,
    chomp,
    fmt_eth,
    fmt_hex_x,
    fmt_in6,
    fmt_ip,
    format_flags,
    is_all,
    put_hex,
    scan_eth,
    scan_flags,
    scan_hex_bytes,
    scan_in6,
    scan_int_string,
    scan_ipv4,
    scan_name,
    scan_uint,
    spaced_hex,
)
from .keys import (
    KEY,
    NESTED,
    NSH_KEY,
    VARIABLE,
    _le128,
    format_key_attr,
    format_mpls_lse,
    format_nsh_key_mask,
    format_u128,
    format_vlan_tci,
)
from .keys_scan import _Ctx, parse_key_attr

_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
_BE16 = struct.Struct("!H")
_BE32 = struct.Struct("!I")

UINT32_MAX = 0xFFFFFFFF
ATTR_LEN_INVALID = -1
# odp_action_len(): the action table's ``ovs`` column (uapi/attrs.py)
ACTION = ATTRS.ACTION

# ------------------------------------------------------ userspace cookies
# struct user_action_cookie (lib/odp-util.h), 48 bytes: u16 type, ofp_port_t
# ofp_in_port, struct uuid ofproto_uuid, then an 8-byte aligned union at 24.
USER_ACTION_COOKIE_SIZE = 48
USER_ACTION_COOKIE_UNSPEC = 0
USER_ACTION_COOKIE_SFLOW = 1
USER_ACTION_COOKIE_SLOW_PATH = 2
USER_ACTION_COOKIE_FLOW_SAMPLE = 3
USER_ACTION_COOKIE_IPFIX = 4
USER_ACTION_COOKIE_CONTROLLER = 5
OFPP_NONE = 0xFFFF
_COOKIE_UNION = 24

NX_ACTION_SAMPLE_DEFAULT = 0
NX_ACTION_SAMPLE_INGRESS = 1
NX_ACTION_SAMPLE_EGRESS = 2

# enum slow_path_reason (SLOW_PATH_REASONS in lib/odp-util.h)
_SLOW_PATH_NAMES = {1 << 0: "cfm", 1 << 1: "bfd", 1 << 2: "lacp", 1 << 3: "stp",
                    1 << 4: "lldp", 1 << 5: "action", 1 << 6: "match"}
SLOW_PATH_REASON_MASK = 0x7F
slow_path_reason_to_string = _SLOW_PATH_NAMES.get

XLATE_OK = 0


def _port(port_names, port):
    return (port_names or {}).get(port) or str(port)


def _cookie_header(ctype):
    return struct.pack("=HH16s", ctype, OFPP_NONE, bytes(16)) + bytes(4)


def make_cookie(ctype, body):
    """A user_action_cookie of ``ctype`` whose union starts with ``body``."""
    return (_cookie_header(ctype) + body).ljust(USER_ACTION_COOKIE_SIZE, b"\0")


def _format_cookie(ud, port_names):
    ctype = _U16.unpack_from(ud)[0]
    u = _COOKIE_UNION
    if ctype == USER_ACTION_COOKIE_SFLOW:
        tci = _BE16.unpack_from(ud, u)[0]
        output = _U32.unpack_from(ud, u + 4)[0]
        return f",sFlow(vid={tci & 0xFFF},pcp={tci >> 13},output={output})"
    if ctype == USER_ACTION_COOKIE_SLOW_PATH:
        reason = _U32.unpack_from(ud, u + 4)[0]
        return f",slow_path({format_flags(slow_path_reason_to_string, reason, ',')})"
    if ctype == USER_ACTION_COOKIE_FLOW_SAMPLE:
        prob = _U16.unpack_from(ud, u)[0]
        cset, dom, point, out, direction = struct.unpack_from("=5I", ud, u + 4)
        s = (f",flow_sample(probability={prob},collector_set_id={cset},"
             f"obs_domain_id={dom},obs_point_id={point},output_port={_port(port_names, out)}")
        if direction == NX_ACTION_SAMPLE_INGRESS:
            s += ",ingress"
        elif direction == NX_ACTION_SAMPLE_EGRESS:
            s += ",egress"
        return s + ")"
    if ctype == USER_ACTION_COOKIE_IPFIX:
        out = _U32.unpack_from(ud, u)[0]
        return f",ipfix(output_port={_port(port_names, out)})"
    if ctype == USER_ACTION_COOKIE_CONTROLLER:
        dont_send, cont, reason, recirc = struct.unpack_from("=BBHI", ud, u)
        cookie = struct.unpack_from("!Q", ud, u + 8)[0]
        cid, max_len = struct.unpack_from("=HH", ud, u + 16)
        return (f",controller(reason={reason},dont_send={int(bool(dont_send))},"
                f"continuation={int(bool(cont))},recirc_id={recirc},"
                f"rule_cookie={fmt_hex_x(cookie)},controller_id={cid},max_len={max_len})")
    return None


# --------------------------------------------------------------- formatting
def _nested(payload):
    """{type: payload} of a nested attribute (last occurrence wins)."""
    return {t: p for t, p in attr_list(payload)[0]}


def _format_userspace(p, port_names):
    a = _nested(p)
    pid = a.get(U.OVS_USERSPACE_ATTR_PID)
    tun = a.get(U.OVS_USERSPACE_ATTR_EGRESS_TUN_PORT)
    if pid is None or len(pid) != 4 or (tun is not None and len(tun) != 4):
        return "userspace(error)"
    s = f"userspace(pid={_U32.unpack(pid)[0]}"
    ud = a.get(U.OVS_USERSPACE_ATTR_USERDATA)
    if ud is not None:
        text = None
        if len(ud) == USER_ACTION_COOKIE_SIZE:
            text = _format_cookie(ud, port_names)
        s += text if text is not None else f",userdata({ud.hex()})"
    if U.OVS_USERSPACE_ATTR_ACTIONS in a:
        s += ",actions"
    if tun is not None:
        s += f",tunnel_out_port={_port(port_names, _U32.unpack(tun)[0])}"
    return s + ")"


def _format_sample(p, port_names):
    a = _nested(p)
    prob = a.get(U.OVS_SAMPLE_ATTR_PROBABILITY)
    acts = a.get(U.OVS_SAMPLE_ATTR_ACTIONS)
    if prob is None or len(prob) != 4 or acts is None:
        return "sample(error)"
    pct = 100.0 * _U32.unpack(prob)[0] / UINT32_MAX
    return f"sample(sample={pct:.1f}%,actions({format_actions(acts, port_names)}))"


def _format_nat(p):
    a = _nested(p)
    src = U.OVS_NAT_ATTR_SRC in a
    dst = U.OVS_NAT_ATTR_DST in a
    ip_min = a.get(U.OVS_NAT_ATTR_IP_MIN)
    ip_max = a.get(U.OVS_NAT_ATTR_IP_MAX)
    pmin_b = a.get(U.OVS_NAT_ATTR_PROTO_MIN)
    pmax_b = a.get(U.OVS_NAT_ATTR_PROTO_MAX)
    persistent = U.OVS_NAT_ATTR_PERSISTENT in a
    phash = U.OVS_NAT_ATTR_PROTO_HASH in a
    prandom = U.OVS_NAT_ATTR_PROTO_RANDOM in a
    for b, lo, hi in ((ip_min, 4, 16), (ip_max, 4, 16), (pmin_b, 2, 2), (pmax_b, 2, 2)):
        if b is not None and not lo <= len(b) <= hi:
            return "nat(error: nl_parse_nested() failed.)"
    if not (src or dst) and (ip_min is not None or ip_max is not None or pmin_b is not None
                             or pmax_b is not None or persistent or phash or prandom):
        return 'nat(error: options allowed only with "src" or "dst")'
    if src and dst:
        return 'nat(error: Only one of "src" or "dst" may be present.)'
    if ip_min is None and pmin_b is not None:
        return "nat(error: proto but no IP.)"
    if (ip_min is None and ip_max is not None) or (pmin_b is None and pmax_b is not None):
        return "nat(error: range max without min.)"
    if ip_min is not None and (len(ip_min) not in (4, 16)
                               or (ip_max is not None and len(ip_max) != len(ip_min))):
        return "nat(error: IP address sizes do not match)"
    alen = len(ip_min) if ip_min is not None else 0
    zero = bytes(alen)
    imin = ip_min if ip_min is not None else zero
    imax = ip_max if ip_max is not None else zero
    pmin = _U16.unpack(pmin_b)[0] if pmin_b is not None else 0
    pmax = _U16.unpack(pmax_b)[0] if pmax_b is not None else 0
    if ((alen and any(imax) and imin > imax) or (pmax and pmin > pmax)):
        return "nat(range error)"
    s = "nat"
    if src or dst:
        s += "(" + ("src" if src else "dst")
        if alen:
            s += "="
            if alen == 4:
                s += fmt_ip(imin)
                if any(imax) and imax != imin:
                    s += "-" + fmt_ip(imax)
            else:
                s += f"[{fmt_in6(imin)}]" if pmin else fmt_in6(imin)
                if any(imax) and imax != imin:
                    s += "-" + (f"[{fmt_in6(imax)}]" if pmin else fmt_in6(imax))
            if pmin:
                s += f":{pmin}"
                if pmax and pmax != pmin:
                    s += f"-{pmax}"
        s += ","
        if persistent:
            s += "persistent,"
        if phash:
            s += "hash,"
        if prandom:
            s += "random,"
        s = chomp(s) + ")"
    return s


def _cstr(b):
    i = b.find(b"\0")
    return (b if i < 0 else b[:i]).decode("utf-8", "surrogateescape")


def _format_ct(p):
    a = _nested(p)
    mark = a.get(U.OVS_CT_ATTR_MARK)
    label = a.get(U.OVS_CT_ATTR_LABELS)
    zone_b = a.get(U.OVS_CT_ATTR_ZONE)
    helper = a.get(U.OVS_CT_ATTR_HELPER)
    timeout = a.get(U.OVS_CT_ATTR_TIMEOUT)
    if ((zone_b is not None and len(zone_b) != 2) or (mark is not None and len(mark) < 8)
            or (label is not None and len(label) < 32)
            or (helper is not None and not 1 <= len(helper) <= 17)
            or (timeout is not None and not 1 <= len(timeout) <= 33)):
        return "ct(error)"
    commit = U.OVS_CT_ATTR_COMMIT in a
    force = U.OVS_CT_ATTR_FORCE_COMMIT in a
    zone = _U16.unpack(zone_b)[0] if zone_b is not None else 0
    nat = a.get(U.OVS_CT_ATTR_NAT)
    s = "ct"
    if commit or force or zone or mark or label or helper or timeout or nat is not None:
        s += "("
        if commit:
            s += "commit,"
        if force:
            s += "force_commit,"
        if zone:
            s += f"zone={zone},"
        if mark is not None:
            v, m = struct.unpack_from("=II", mark)
            s += f"mark={fmt_hex_x(v)}/{fmt_hex_x(m)},"
        if label is not None:
            s += "label=" + format_u128(label[:16], label[16:32], True) + ","
        if helper is not None:
            s += f"helper={_cstr(helper)},"
        if timeout is not None:
            s += f"timeout={_cstr(timeout)},"
        if nat is not None:
            s += _format_nat(nat)
        s = chomp(s) + ")"
    return s


def _format_check_pkt_len(p, port_names):
    a = _nested(p)
    plen = a.get(U.OVS_CHECK_PKT_LEN_ATTR_PKT_LEN)
    gt = a.get(U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_GREATER)
    le = a.get(U.OVS_CHECK_PKT_LEN_ATTR_ACTIONS_IF_LESS_EQUAL)
    if plen is None or len(plen) != 2 or gt is None or le is None:
        return "check_pkt_len(error)"
    return (f"check_pkt_len(size={_U16.unpack(plen)[0]},gt({format_actions(gt, port_names)}),"
            f"le({format_actions(le, port_names)}))")


def _format_dec_ttl(p, port_names):
    for t, sub in attr_list(p)[0]:
        if t == U.OVS_DEC_TTL_ATTR_ACTION:
            return f"dec_ttl(le_1({format_actions(sub, port_names)}))"
    return "dec_ttl(le_1())"


def _format_psample(p):
    a = _nested(p)
    group = a.get(U.OVS_PSAMPLE_ATTR_GROUP)
    if group is None or len(group) != 4:
        return "psample(error)"
    s = f"psample(group={_U32.unpack(group)[0]}"
    cookie = a.get(U.OVS_PSAMPLE_ATTR_COOKIE)
    if cookie is not None:
        s += f",cookie=0x{cookie.hex()}"
    return s + ")"


def _nsh_from_attr(p):
    """odp_nsh_hdr_from_attr() on the OVS_KEY_ATTR_NSH inside push_nsh."""
    inner = attr_list(p)[0]
    body = inner[0][1] if inner else b""
    flags, ttl, mdtype, np_, path = 0, 63, 0, 0, 0
    md1 = None
    md2 = None
    for t, sub in attr_list(body)[0]:
        if t == U.OVS_NSH_KEY_ATTR_BASE and len(sub) == 8:
            flags, ttl, mdtype, np_, path = U.OVS_KEY_NSH_BASE.unpack(sub)
        elif t == U.OVS_NSH_KEY_ATTR_MD1 and len(sub) == 16:
            md1 = U.OVS_KEY_NSH_MD1.unpack(sub)
        elif t == U.OVS_NSH_KEY_ATTR_MD2:
            md2 = sub
    return flags, ttl, mdtype, np_, path, md1, md2


def _format_push_nsh(p):
    flags, ttl, mdtype, np_, path, md1, md2 = _nsh_from_attr(p)
    s = f"push_nsh(flags={flags},ttl={ttl},mdtype={mdtype},np={np_},spi=0x{path >> 8:x}," \
        f"si={path & 0xFF}"
    if mdtype == 1:
        s += "".join(f",c{i + 1}=0x{c:x}" for i, c in enumerate(md1 or (0, 0, 0, 0)))
    elif mdtype == 2:
        s += ",md2=" + put_hex(md2 or b"")
    else:
        s += ",<error: unknown mdtype>"
    return s + ")"


def _format_set_nsh(p):
    k = dict(flags=0, ttl=0, mdtype=0, np=0, path=0, ctx=[0, 0, 0, 0])
    m = dict(flags=0xFF, ttl=0xFF, mdtype=0xFF, np=0xFF, path=0xFFFFFFFF,
             ctx=[0xFFFFFFFF] * 4)
    for t, sub in attr_list(p)[0]:
        exp = NSH_KEY.ovs_length(t)
        if exp is None or (exp is not VARIABLE and len(sub) != 2 * exp):
            break
        if t == U.OVS_NSH_KEY_ATTR_BASE:
            names = ("flags", "ttl", "mdtype", "np", "path")
            k.update(zip(names, U.OVS_KEY_NSH_BASE.unpack(sub[:8]), strict=True))
            m.update(zip(names, U.OVS_KEY_NSH_BASE.unpack(sub[8:]), strict=True))
        elif t == U.OVS_NSH_KEY_ATTR_MD1:
            k["ctx"] = list(U.OVS_KEY_NSH_MD1.unpack(sub[:16]))
            m["ctx"] = list(U.OVS_KEY_NSH_MD1.unpack(sub[16:]))
    return f"set(nsh({format_nsh_key_mask(k, m)}))"


def _generic(t, p):
    s = f"action{t}"
    if p:
        s += "(" + spaced_hex(p) + ")"
    return s


def format_action(t, p, port_names=None):
    """format_odp_action(): one action attribute as text."""
    exp = ACTION.ovs_length(t)
    if exp is None:
        exp = ATTR_LEN_INVALID
    if exp is not VARIABLE and len(p) != exp:
        return f"bad length {len(p)}, expected {exp} for: {_generic(t, p)}"
    if t == U.OVS_ACTION_ATTR_METER:
        return f"meter({_U32.unpack(p)[0]})"
    if t == U.OVS_ACTION_ATTR_OUTPUT:
        return _port(port_names, _U32.unpack(p)[0])
    if t == U.OVS_ACTION_ATTR_TRUNC:
        return f"trunc({_U32.unpack(p)[0]})"
    if t == U.OVS_ACTION_ATTR_USERSPACE:
        return _format_userspace(p, port_names)
    if t == U.OVS_ACTION_ATTR_RECIRC:
        return f"recirc({fmt_hex_x(_U32.unpack(p)[0])})"
    if t == U.OVS_ACTION_ATTR_HASH:
        alg, basis = U.OVS_ACTION_HASH.unpack(p)
        if alg == U.OVS_HASH_ALG_L4:
            return f"hash(l4({basis}))"
        if alg == U.OVS_HASH_ALG_SYM_L4:
            return f"hash(sym_l4({basis}))"
        return f"hash(Unknown hash algorithm({alg}))"
    if t == U.OVS_ACTION_ATTR_SET_MASKED:
        inner = attr_list(p)[0]
        if not inner:
            return "set()"
        kt, kp = inner[0]
        if kt == U.OVS_KEY_ATTR_NSH:
            return _format_set_nsh(kp)
        size = len(kp) // 2
        if size <= U.OVS_KEY_IPV6.size:
            return f"set({format_key_attr(kt, kp[:size], kp[size:2 * size], False)})"
        return f"set({format_key_attr(kt, kp, None, False)})"
    if t == U.OVS_ACTION_ATTR_SET:
        inner = attr_list(p)[0]
        if not inner:
            return "set()"
        kt, kp = inner[0]
        return f"set({format_key_attr(kt, kp, None, True)})"
    if t == U.OVS_ACTION_ATTR_PUSH_ETH:
        return f"push_eth(src={fmt_eth(p[0:6])},dst={fmt_eth(p[6:12])})"
    if t == U.OVS_ACTION_ATTR_POP_ETH:
        return "pop_eth"
    if t == U.OVS_ACTION_ATTR_PUSH_VLAN:
        tpid, tci = U.OVS_ACTION_PUSH_VLAN.unpack(p)
        s = "push_vlan("
        if tpid != 0x8100:
            s += f"tpid=0x{tpid:04x},"
        return s + format_vlan_tci(tci, 0xFFFF, False) + ")"
    if t == U.OVS_ACTION_ATTR_POP_VLAN:
        return "pop_vlan"
    if t == U.OVS_ACTION_ATTR_PUSH_MPLS:
        lse, eth_type = U.OVS_ACTION_PUSH_MPLS.unpack(p)
        return f"push_mpls({format_mpls_lse(lse)},eth_type=0x{eth_type:x})"
    if t == U.OVS_ACTION_ATTR_ADD_MPLS:
        lse, eth_type = U.OVS_ACTION_ADD_MPLS.unpack_from(p)
        tun_flags = _U16.unpack_from(p, 6)[0]
        s = f"add_mpls({format_mpls_lse(lse)},eth_type=0x{eth_type:x}"
        if tun_flags:
            s += f",tun_flags={fmt_hex_x(tun_flags)}"
        return s + ")"
    if t == U.OVS_ACTION_ATTR_POP_MPLS:
        return f"pop_mpls(eth_type=0x{_BE16.unpack(p)[0]:x})"
    if t == U.OVS_ACTION_ATTR_SAMPLE:
        return _format_sample(p, port_names)
    if t == U.OVS_ACTION_ATTR_CT:
        return _format_ct(p)
    if t == U.OVS_ACTION_ATTR_CT_CLEAR:
        return "ct_clear"
    if t == U.OVS_ACTION_ATTR_CLONE:
        return f"clone({format_actions(p, port_names)})"
    if t == U.OVS_ACTION_ATTR_PUSH_NSH:
        return _format_push_nsh(p)
    if t == U.OVS_ACTION_ATTR_POP_NSH:
        return "pop_nsh()"
    if t == U.OVS_ACTION_ATTR_CHECK_PKT_LEN:
        return _format_check_pkt_len(p, port_names)
    if t == U.OVS_ACTION_ATTR_DEC_TTL:
        return _format_dec_ttl(p, port_names)
    if t == U.OVS_ACTION_ATTR_DROP:
        return "drop"
    if t == U.OVS_ACTION_ATTR_PSAMPLE:
        return _format_psample(p)
    return _generic(t, p)


def format_actions(actions, port_names=None):
    """Format an action list as OVS does; an empty list prints as ``drop``."""
    actions = bytes(actions)
    if not actions:
        return "drop"
    attrs, leftover = attr_list(actions)
    s = ",".join(format_action(t, p, port_names) for t, p in attrs)
    if leftover:
        if not attrs:
            s += "<empty>"
        s += f",***{len(leftover)} leftover bytes*** ({leftover.hex()})"
    return s


# ------------------------------------------------------------------ parsing
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
        return nla_nest(U.OVS_ACTION_ATTR_PSAMPLE, *parts)
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
