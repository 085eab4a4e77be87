"""Datapath actions: OVS_ACTION_ATTR_* attributes -> text.

Mirrors lib/odp-util.c: :func:`format_actions` is ``format_odp_actions()``;
the way back, ``parse_actions`` (``odp_actions_from_string()``), is
:mod:`.actions_scan`.  The userspace cookies are here, for both.
"""

import struct

from .. import uapi as U
from ..netlink.attr import attr_list
from ..uapi import attrs as ATTRS
from ._util import (
    chomp,
    fmt_eth,
    fmt_hex_x,
    fmt_in6,
    fmt_ip,
    format_flags,
    put_hex,
    spaced_hex,
)
from .keys import (
    NSH_KEY,
    VARIABLE,
    format_key_attr,
    format_mpls_lse,
    format_nsh_key_mask,
    format_u128,
    format_vlan_tci,
)
from .tnl_push import format_header

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
    if t == U.OVS_ACTION_ATTR_LB_OUTPUT:
        return f"lb_output({_U32.unpack(p)[0]})"
    if t == U.OVS_ACTION_ATTR_TUNNEL_POP:
        return f"tnl_pop({_port(port_names, _U32.unpack(p)[0])})"
    if t == U.OVS_ACTION_ATTR_TUNNEL_PUSH:
        header = format_header(p)
        if header is None:
            return f"tnl_push(bad header): {_generic(t, p)}"
        tnl_port, out_port = U.OVS_ACTION_PUSH_TNL.unpack_from(p)[:2]
        return (f"tnl_push(tnl_port({_port(port_names, tnl_port)}),{header},"
                f"out_port({_port(port_names, out_port)}))")
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
