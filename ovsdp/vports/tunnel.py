"""What the tunnel vport types share: gre, vxlan, geneve (vport-gre.c,
vport-vxlan.c, vport-geneve.c; each type is its own module: :mod:`.gre`,
:mod:`.vxlan`, :mod:`.geneve`).

The kernel's tunnel vports are flow-based ("collect_md", "external") tunnel
devices: what they receive enters the datapath with the outer headers in
the flow key's tunnel fields, and what the datapath sends them is
encapsulated as the set(tunnel(...)) action before the output says.  ovsdp's
tunnel ports do the same from userspace; the wire formats are in
:mod:`.encap`.

Creation rules and options are the kernel's: VXLAN and Geneve need
OVS_TUNNEL_ATTR_DST_PORT (a u16), VXLAN may carry the GBP extension, GRE has
no options, and none of them can change options after creation.  The ports'
MTUs are the large ones the kernel gives OVS tunnel devices.

Receive (with real devices, once :meth:`TunnelVport.start` ran).  A VXLAN or
Geneve port owns UDP port ``dst_port`` in the daemon's network namespace: a
UDP socket bound to it (dual-stack) keeps the port taken (a second port on
it fails with EADDRINUSE, a second Geneve port with EPERM as
geneve_configure() says) and the kernel from answering ICMP port
unreachable; its copies are read and thrown away.  The packets are read,
outer headers included, from raw IPPROTO_UDP sockets (IPv4 and IPv6)
filtered to that port.  A GRE port (one per namespace, like the kernel's
single collect_md gretap; a second one is EEXIST) reads IP protocol 47 from
a raw socket and takes Ethernet payloads (ETH_P_TEB) only, IPv4 only, as
the gretap device does.  A received packet is checked as the kernel checks
it (UDP length and checksum, VXLAN flags and reserved bits, Geneve version
and protocol, GRE version/routing bits and checksum; a GRE packet *with* a
checksum is an rx_errors, as ip_tunnel_rcv() finds the CSUM flag the
collect_md device's i_flags lack), its inner frame's ECN is decapsulated
(INET_ECN_decapsulate) and it enters the datapath with tunnel metadata in
the key (:meth:`Datapath.receive`'s ``meta``) as ip_tunnel_info gives it to
ovs_flow_key_extract(): tun_id from the VNI or GRE key with TUN_F_KEY (a GRE
packet without a key has neither), the outer addresses, TOS (traffic class)
and TTL (hop limit), tun_proto, the UDP source and destination ports,
TUN_F_DONT_FRAGMENT when an IPv4 outer header has DF (ip_tun_rx_dst()),
TUN_F_CSUM when the UDP checksum is not zero, for Geneve TUN_F_OAM, the
critical bit (key_layout's TUN_F_CRIT_OPT) and the options with
TUN_F_GENEVE_OPT, for VXLAN with the GBP extension and a G bit struct
vxlan_metadata with TUN_F_VXLAN_OPT.  The port counts rx_packets and
rx_bytes as the device does (the inner frame less its Ethernet header for
VXLAN and Geneve, the whole inner frame for GRE), and rx_errors and
rx_dropped where the device does.

A raw socket sees a packet before the offloads of a sender on this host
(a tunnel device in another namespace, over a veth) are done: checksums
holding only their pseudo-header sum (taken as valid, as the UDP layer
takes CHECKSUM_PARTIAL), an outer checksum computed for the packet whose
inner checksum is still to be filled in (local checksum offload), GSO
super-packets.  The inner TCP/UDP checksum is completed, and a TCP
super-frame enters the datapath as a GSO frame (a virtio_net_hdr; the
original segment size is lost, 1500-byte segments are cut where needed).

Transmit: :meth:`TunnelVport.output` takes the frame and the egress
TunnelInfo.  Without one the frame is dropped as the device drops it
(VXLAN counts nothing, Geneve and GRE count tx_dropped).  Otherwise it is
encapsulated: the outer destination and source (the route's source when the
key has none), TTL (0: the route's default hop limit; GRE inherits the
inner packet's), TOS (GRE: 1 inherits the inner one) with the inner
packet's ECN (ip_tunnel_ecn_encap), DF from TUN_F_DONT_FRAGMENT (without it
the kernel fragments the outer packet when needed), the UDP source port
from a flow hash, in the local port range (VXLAN) or 1..65535 (Geneve) like
udp_flow_src_port(), the destination port (VXLAN: the key's tp_dst when not
zero, else the port's; Geneve: always the port's), the VNI (low 24 bits of
tun_id), VXLAN GBP (ports with the extension), Geneve options with the OAM
and critical bits, the GRE key (low 32 bits of tun_id) and checksum from
TUN_F_KEY/TUN_F_CSUM, the UDP checksum with TUN_F_CSUM.  The packet goes
out of a raw socket (IPPROTO_UDP or IPPROTO_GRE; the kernel writes the IP
header from IP_TOS/IP_TTL/IP_PKTINFO control messages and routes it);
tx_packets/tx_bytes count the inner frame less its L2 header, as
iptunnel_xmit_stats() does; routing and sending failures count tx_errors,
a full socket buffer tx_dropped.  Frames with offloads pending are
checksummed and segmented first.  :meth:`TunnelVport.fill_metadata_dst` is
ndo_fill_metadata_dst() for userspace actions with an egress tunnel port.

In memory (``Module(real_devices=False)``) no socket is opened: a received
packet can be handed to :meth:`UdpTunnelVport.receive_ipv4` (or
``receive_ipv6``, :meth:`GreVport.receive_ipv4`), and a transmitted one is
kept in :attr:`TunnelVport.sent` as an :class:`Encap` (with a source
address of 0 unless the key gives one).
"""

import collections
import errno
import logging
import socket
import struct
import time

from .. import uapi as U
from ..datapath import key_layout as K
from ..datapath.offload import OffloadError, resolve
from ..datapath.skb import TunnelInfo
from ..datapath.vport import Vport, VportOps
from ..netlink import attr as A
from ..netlink.attr import NetlinkError, nla_flag, nla_nest, nla_u16
from . import encap as E
from .tunnel_socket import (
    addr_int,
    addr_text,
    big_rcvbuf,
    ipv6_available,
    raw_socket,
    udp_port_filter_v4,
    udp_port_filter_v6,
)

log = logging.getLogger(__name__)

SOL_IP = 0
IP_PKTINFO = 8
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DONT = 0
IP_PMTUDISC_DO = 2
READ_BATCH = 64
ROUTE_CACHE_SECONDS = 1.0

# The device MTUs the kernel gives OVS tunnel ports ("openvswitch users
# expect packet sizes to be unrestricted"): IP_MAX_MTU less the headers.

F_DF = K.TUN_F_DONT_FRAGMENT
F_CSUM = K.TUN_F_CSUM
F_OAM = K.TUN_F_OAM
F_KEY = K.TUN_F_KEY
F_GENEVE_OPT = K.TUN_F_GENEVE_OPT
F_VXLAN_OPT = K.TUN_F_VXLAN_OPT
F_CRIT_OPT = K.TUN_F_CRIT_OPT
_VLAN_TPIDS = (b"\x81\x00", b"\x88\xa8")


class TxError(Exception):
    """A frame the tunnel device does not send; ``counter`` is the statistic
    it counts (None: none)."""

    def __init__(self, counter, why=""):
        super().__init__(why)
        self.counter = counter


class Encap:
    """An encapsulated packet: the outer IP header's fields and its payload
    (UDP or GRE header on).  ``src`` 0 means "chosen by routing"; ``ttl`` 0
    the route's default hop limit."""

    __slots__ = ("family", "src", "dst", "tos", "ttl", "df", "proto", "payload", "csum")

    def __init__(self, family, src, dst, tos, ttl, df, proto, payload, csum=False):
        self.family = family
        self.src = src
        self.dst = dst
        self.tos = tos
        self.ttl = ttl
        self.df = df
        self.proto = proto
        self.payload = payload
        self.csum = csum                    # UDP: the checksum is still to be computed

    def __repr__(self):
        return (f"Encap(family={self.family}, src={addr_text(self.family, self.src)}, "
                f"dst={addr_text(self.family, self.dst)}, tos={self.tos:#x}, ttl={self.ttl}, "
                f"df={self.df}, proto={self.proto}, {len(self.payload)} bytes)")


# ------------------------------------------------------------------- vports
class TunnelVport(Vport):
    """A tunnel port (the common part of the three types)."""

    dst_port = 0
    gbp = False
    mtu_default = 65535
    port_range = (1, 65535)

    def __init__(self, ops, parms):
        super().__init__(ops, parms)
        self.tunnel = True
        self.mtu = self.mtu_default
        self.loop = None
        self.sent = collections.deque(maxlen=4096)  # in memory: what would have gone out
        self._socks = []                    # every socket this port opened
        self._readers = []                  # their fds registered with the loop
        self._rx_frames = None              # while a read batch runs: its decapsulated frames
        self._tx = {}                       # (family, df) -> raw socket
        self._routes = {}                   # (family, dst) -> (src, expiry)

    def get_options(self):
        return None

    # ------------------------------------------------------------ transmit
    def output(self, data, vnet=None, l3=0, tun_info=None):
        """ovs_vport_send() to a tunnel device: the common checks, then the
        encapsulation with ``tun_info`` (None: no set(tunnel()) happened).
        ``l3`` is the ethertype of a packet without Ethernet header, which
        only a layer 3 device (not ``ethernet``) takes."""
        if l3 and self.ethernet:
            self.tx_dropped += 1            # an Ethernet device takes no L3 packet
            return
        if vnet is not None:
            try:
                frames = resolve(data, vnet)
            except OffloadError:
                self.tx_errors += 1
                return
            for f in frames:
                self.output(f, None, l3, tun_info)
            return
        n = len(data)
        if l3:
            if n > self.mtu:
                self.tx_errors += 1
                return
        elif n > self.mtu + 14:
            length = n - 14
            if data[12:14] in _VLAN_TPIDS:
                length -= 4
            if length > self.mtu:
                self.tx_errors += 1
                return
        self._xmit(data, tun_info, l3)

    def send(self, packet):
        """A frame with no egress tunnel metadata."""
        self._xmit(packet, None)

    def no_tun_info(self):
        """The device's count for a frame without TX tunnel metadata."""
        self.tx_dropped += 1

    def _xmit(self, frame, tun_info, l3=0):
        if tun_info is None:
            self.no_tun_info()
            return
        try:
            tk = E.TunKey(tun_info.key)
            enc = self.encapsulate_l3(frame, tk, l3) if l3 else self.encapsulate(frame, tk)
            self._transmit(enc, frame, l3)
        except TxError as e:
            if e.counter is not None:
                setattr(self, e.counter, getattr(self, e.counter) + 1)

    def encapsulate(self, frame, tk):
        """The :class:`Encap` of ``frame`` for the tunnel key ``tk``, or TxError."""
        raise NotImplementedError

    def encapsulate_l3(self, packet, tk, proto):
        """The same for a packet without Ethernet header (layer 3 devices)."""
        raise TxError("tx_dropped", "an Ethernet tunnel takes no L3 packet")

    def _transmit(self, enc, frame, l3=0):
        if enc.csum:
            # the UDP checksum covers the source address: routing's choice
            # is looked up and then given to the kernel explicitly
            if not enc.src and self.loop is not None:
                enc.src = self.route_source(enc.family, enc.dst)
            c = E.udp_checksum(enc.family, enc.src, enc.dst, enc.payload)
            enc.payload = enc.payload[:6] + struct.pack("!H", c) + enc.payload[8:]
            enc.csum = False
        if self.loop is None:
            self.sent.append(enc)
        else:
            self._send(enc)
        self.tx_packets += 1
        self.tx_bytes += len(frame) if l3 else len(frame) - E.l2_len(frame)

    def _send(self, enc):
        family = enc.family
        sock = self._tx.get((family, enc.df))
        if sock is None:
            sock = self._tx_socket(family, enc.df, enc.proto)
        anc = []
        if family == E.AF_INET:
            if enc.tos:
                anc.append((SOL_IP, socket.IP_TOS, struct.pack("=i", enc.tos)))
            if enc.ttl:
                anc.append((SOL_IP, socket.IP_TTL, struct.pack("=i", enc.ttl)))
            if enc.src:
                anc.append((SOL_IP, IP_PKTINFO, struct.pack("=I4s4x", 0,
                                                            enc.src.to_bytes(4, "big"))))
            dest = (addr_text(family, enc.dst), 0)
        else:
            if enc.tos:
                anc.append((socket.IPPROTO_IPV6, socket.IPV6_TCLASS, struct.pack("=i", enc.tos)))
            if enc.ttl:
                anc.append((socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT,
                            struct.pack("=i", enc.ttl)))
            if enc.src:
                anc.append((socket.IPPROTO_IPV6, socket.IPV6_PKTINFO,
                            enc.src.to_bytes(16, "big") + b"\0\0\0\0"))
            dest = (addr_text(family, enc.dst), 0, 0, 0)
        try:
            sock.sendmsg((enc.payload,), anc, socket.MSG_DONTWAIT, dest)
        except (BlockingIOError, InterruptedError):
            raise TxError("tx_dropped", "socket buffer full") from None
        except OSError as e:
            if e.errno == errno.ENOBUFS:
                raise TxError("tx_dropped", str(e)) from None
            raise TxError("tx_errors", str(e)) from None

    def _tx_socket(self, family, df, proto):
        try:
            with self.dp.net.enter():
                s = raw_socket(family, proto)
        except OSError as e:
            raise TxError("tx_errors", f"cannot open a raw socket: {e}") from None
        self._socks.append(s)
        if family == E.AF_INET:
            s.setsockopt(SOL_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO if df else IP_PMTUDISC_DONT)
        self._tx[(family, df)] = s
        return s

    def route_source(self, family, dst):
        """The source address routing chooses for ``dst`` (TxError when none)."""
        now = time.monotonic()
        hit = self._routes.get((family, dst))
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            with self.dp.net.enter(), socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((addr_text(family, dst), 9))       # routing in the port's namespace
                src = addr_int(family, s.getsockname()[0])
        except OSError as e:
            raise TxError("tx_errors", f"no route to {addr_text(family, dst)}: {e}") from None
        if len(self._routes) > 1024:
            self._routes.clear()
        self._routes[(family, dst)] = (src, now + ROUTE_CACHE_SECONDS)
        return src

    def fill_metadata_dst(self, skb):
        """ndo_fill_metadata_dst(): complete ``skb.tun_info`` with what the
        device would choose (source address, UDP ports); 0 or an errno.

        The source address comes from a route lookup (a connect()ed UDP
        socket, also in memory); a new TunnelInfo replaces the skb's, as
        skb_tunnel_info_unclone() leaves the flow's actions untouched."""
        if skb.tun_info is None:
            return errno.EINVAL
        tk = E.TunKey(skb.tun_info.key)
        try:
            self.fill_key(tk, skb.data)
        except TxError:
            return errno.ENETUNREACH
        skb.tun_info = TunnelInfo(tk.key())
        return 0

    def fill_key(self, tk, frame):
        raise NotImplementedError

    # ------------------------------------------------------------- receive
    def deliver(self, meta, inner, outer_tos, rx_len, l3=0):
        """The common end of a decapsulation: the inner frame's checks and
        ECN, the statistics, the datapath.  ``l3`` is the ethertype of a
        payload without Ethernet header: ``inner`` then is that packet
        behind a made-up Ethernet header (:func:`.encap.as_frame`), taken
        off again before the datapath, which gets it as MAC_PROTO_NONE."""
        if not E.inet_may_pull(inner):
            self.rx_errors += 1             # rx_length_errors
            return
        rc, inner = E.ecn_decapsulate(outer_tos, inner)
        if rc > 1:
            self.rx_errors += 1             # rx_frame_errors
            return
        vnet = E.gso_vnet(inner) if len(inner) > 1518 else None
        if vnet is None:
            inner = E.complete_partial_csum(inner)
        if type(inner) is not bytes:
            inner = bytes(inner)
        self.rx_packets += 1
        self.rx_bytes += rx_len(inner)
        if self._rx_frames is not None:
            self._rx_frames.append((inner, vnet, self.key_meta | meta, l3))
        elif l3:
            self.dp.receive_l3(inner[E.ETH_HLEN:], self, l3, meta=self.key_meta | meta)
        else:
            self.dp.receive(inner, self, vnet, meta=self.key_meta | meta)

    def _rx_start(self):
        """A read batch begins: :meth:`deliver` gathers its frames."""
        self._rx_frames = []

    def _rx_flush(self):
        """A read batch ends: its frames to the datapath, in order, as
        batches of consecutive frames with the same tunnel metadata (one
        peer's stream is one batch), as a netdev port hands over its ring;
        a packet without Ethernet header goes alone."""
        rx, self._rx_frames = self._rx_frames, None
        dp = self.dp
        if not rx or dp is None:
            return
        i, n = 0, len(rx)
        while i < n:
            frame, vnet, meta, l3 = rx[i]
            if l3:                          # a packet without Ethernet header
                dp.receive_l3(frame[E.ETH_HLEN:], self, l3, meta=meta)
                i += 1
                continue
            j = i + 1
            while j < n and rx[j][2] == meta and not rx[j][3]:
                j += 1
            run = rx[i:j]
            vnets = [e[1] for e in run]
            dp.receive_batch([e[0] for e in run], self,
                             vnets if any(v is not None for v in vnets) else None, meta)
            i = j

    def _drop(self, d):
        if d.counter is not None:
            setattr(self, d.counter, getattr(self, d.counter) + 1)

    # ---------------------------------------------------------- event loop
    def start(self, loop):
        """Open the port's sockets (real devices only)."""
        if not self.ops.module.real_devices:
            return
        self.loop = loop
        try:
            self.open_sockets()
        except OSError as e:
            self.destroy()
            code = e.errno or errno.EIO
            raise NetlinkError(code, f"{self.name}: cannot open the tunnel's sockets: "
                               f"{e.strerror or e}") from None

    def open_sockets(self):
        raise NotImplementedError

    def _reader(self, sock, callback):
        self.loop.add_reader(sock.fileno(), callback)
        self._readers.append(sock.fileno())

    def destroy(self):
        super().destroy()
        if self.loop is not None:
            for fd in self._readers:
                self.loop.remove_reader(fd)
        self._readers = []
        for s in self._socks:
            s.close()
        self._socks = []
        self._tx = {}

    def _sock(self, s):
        self._socks.append(s)
        return s

    def _read_raw4(self, attr):
        """Up to READ_BATCH packets off the raw IPv4 socket held in ``attr``,
        each to receive_ipv4(); True when the batch was full (more may wait)."""
        sock = getattr(self, attr)
        if sock is None:
            return False
        self._rx_start()
        try:
            for _ in range(READ_BATCH):
                try:
                    pkt = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    return False
                except OSError as e:
                    log.debug("%s: receive failed: %s", self.name, e)
                    return False
                self.receive_ipv4(pkt)
            return True
        finally:
            self._rx_flush()


class UdpTunnelVport(TunnelVport):
    """VXLAN and Geneve: a UDP port."""

    zero_csum6_ok = True                 # a zero UDP checksum over IPv6 is taken
    claims_port = True                   # bind the UDP port (False: a Linux device holds it)

    def __init__(self, ops, parms):
        super().__init__(ops, parms)
        self._rx4 = self._rx6 = self._claim = None
        self._junk = bytearray(65536)

    def get_options(self):
        parts = [nla_u16(U.OVS_TUNNEL_ATTR_DST_PORT, self.dst_port)]
        if self.gbp:
            parts.append(nla_nest(U.OVS_TUNNEL_ATTR_EXTENSION, nla_flag(U.OVS_VXLAN_EXT_GBP)))
        return b"".join(parts)

    # ------------------------------------------------------------- sockets
    def destroy(self):
        super().destroy()
        self._rx4 = self._rx6 = self._claim = None

    def open_sockets(self):
        port = self.dst_port
        v6 = ipv6_available()
        if not self.claims_port:
            c = None
        elif v6:
            c = self._sock(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK
                                         | socket.SOCK_CLOEXEC))
            c.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            c.bind(("::", port))
        else:
            c = self._sock(socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK
                                         | socket.SOCK_CLOEXEC))
            c.bind(("0.0.0.0", port))
        self._claim = c
        self._rx4 = self._sock(raw_socket(socket.AF_INET, socket.IPPROTO_UDP,
                                    udp_port_filter_v4(port)))
        big_rcvbuf(self._rx4)
        if v6:
            r6 = self._sock(raw_socket(socket.AF_INET6, socket.IPPROTO_UDP,
                                       udp_port_filter_v6(port)))
            big_rcvbuf(r6)
            for opt in (socket.IPV6_RECVPKTINFO, socket.IPV6_RECVHOPLIMIT,
                        socket.IPV6_RECVTCLASS):
                r6.setsockopt(socket.IPPROTO_IPV6, opt, 1)
            self._rx6 = r6
        self._reader(self._rx4, self._read4)
        if self._rx6 is not None:
            self._reader(self._rx6, self._read6)
        if c is not None:
            self._reader(c, self._drain)

    def _read4(self):
        if self._read_raw4("_rx4"):
            self._drain()
            self.loop.call_soon(self._read4)

    def _read6(self):
        sock = self._rx6
        if sock is None:
            return
        self._rx_start()
        try:
            if not self._read6_batch(sock):
                return
        finally:
            self._rx_flush()
        self._drain()
        self.loop.call_soon(self._read6)

    def _read6_batch(self, sock):
        """Up to READ_BATCH packets off the raw IPv6 socket; True when the
        batch was full (more may wait)."""
        for _ in range(READ_BATCH):
            try:
                data, anc, _flags, addr = sock.recvmsg(65536, 256)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as e:
                log.debug("%s: receive failed: %s", self.name, e)
                return False
            dst = tclass = hlim = None
            for level, typ, val in anc:
                if level != socket.IPPROTO_IPV6:
                    continue
                if typ == socket.IPV6_PKTINFO and len(val) >= 16:
                    dst = int.from_bytes(val[:16], "big")
                elif typ == socket.IPV6_HOPLIMIT and len(val) >= 4:
                    hlim = struct.unpack_from("=i", val)[0]
                elif typ == socket.IPV6_TCLASS and len(val) >= 4:
                    tclass = struct.unpack_from("=i", val)[0]
            if dst is None or hlim is None or tclass is None:
                continue
            src = addr_int(socket.AF_INET6, addr[0].split("%")[0])
            self.receive_ipv6(src, dst, tclass & 0xFF, hlim & 0xFF, data)
        return True

    def _drain(self):
        """Empty the UDP socket that holds the port (its copies are unused)."""
        c = self._claim
        if c is None:
            return
        for _ in range(4 * READ_BATCH):
            try:
                c.recv_into(self._junk)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return

    # ------------------------------------------------------------- receive
    def receive_ipv4(self, pkt):
        """A whole IPv4 packet (a raw socket's read) for this port's UDP port."""
        ip = E.parse_ipv4(pkt)
        if ip is None:
            return
        ihl, tos, df, ttl, proto, src, dst, tot = ip
        if proto != E.IPPROTO_UDP:
            return
        u = E.udp_ok(E.AF_INET, src, dst, pkt[ihl:tot])
        if u is None:
            return
        self.receive_udp(E.AF_INET, src, dst, tos, ttl, df, u)

    def receive_ipv6(self, src, dst, tclass, hlim, l4):
        """An IPv6 packet's transport bytes (UDP header on) and outer fields."""
        u = E.udp_ok(E.AF_INET6, src, dst, l4, self.zero_csum6_ok)
        if u is None:
            return
        self.receive_udp(E.AF_INET6, src, dst, tclass, hlim, False, u)

    def receive_udp(self, family, src, dst, tos, ttl, df, u):
        sport, dport, has_csum, udp, csum_ok = u
        if dport != self.dst_port:
            return
        flags = (F_CSUM if has_csum else 0) | (F_DF if df else 0)
        try:
            tun_id, flags, opts, inner, l3 = self.decap(udp, flags)
        except E.Drop as d:
            if csum_ok:
                self._drop(d)
            return                  # (a bad checksum: the UDP layer's drop)
        if not csum_ok:
            full = E.complete_partial_csum(inner)
            if full is inner or not E.udp_recheck(family, src, dst,
                                                  udp[:len(udp) - len(inner)], full):
                return              # a bad UDP checksum: dropped by the UDP layer
            inner = full
        meta = E.tunnel_meta(family, src, dst, tos, ttl, sport, dport, flags, tun_id, opts)
        self.deliver(meta, inner, tos, len_less_eth, l3)

    def decap(self, udp, flags):
        """(tun_id, tun_flags, option bytes, inner, l3) of a datagram: ``l3``
        0 for an Ethernet frame, else the ethertype of a packet without
        Ethernet header, given in ``inner`` as :func:`.encap.as_frame` makes it."""
        raise NotImplementedError

    # ------------------------------------------------------------ transmit
    def _udp_encap(self, frame, tk, dport, hdr, shape=None):
        """The Encap of a UDP tunnel packet carrying ``hdr`` + ``frame``;
        ``shape``: the Ethernet-framed view of an L3 ``frame``."""
        check_ip_size(tk.family, 8 + len(hdr) + len(frame))
        shape = frame if shape is None else shape
        sport = E.udp_src_port(E.flow_hash(shape), *self.port_range)
        payload = E.udp_header(sport, dport, len(hdr) + len(frame)) + hdr + frame
        df = bool(tk.flags & F_DF) and tk.family == E.AF_INET
        return Encap(tk.family, tk.src, tk.dst, E.ecn_encapsulate(tk.tos, shape), tk.ttl, df,
                     E.IPPROTO_UDP, payload, bool(tk.flags & F_CSUM))

    def _fill_udp(self, tk, frame, dport):
        tk.tp_src = E.udp_src_port(E.flow_hash(frame), *self.port_range)
        tk.tp_dst = dport
        if not tk.src:
            tk.src = self.route_source(tk.family, tk.dst)


def check_ip_size(family, payload_len):
    """An outer packet whose length the IP header cannot carry is not sent.

    The device MTUs let frames near 64 KiB through; with the tunnel headers
    some no longer fit an IPv4 total length or an IPv6 payload length.
    """
    if payload_len + (20 if family == E.AF_INET else 0) > 0xFFFF:
        raise TxError("tx_errors", f"{payload_len}-byte tunnel payload is too long for IP")


def len_less_eth(inner):
    return len(inner) - E.ETH_HLEN


def vlan_inet_prepare(frame):
    """skb_vlan_inet_prepare(): an IPv4/IPv6 frame (VLAN tags skipped) must
    hold its base network header."""
    t, off = E.inner_l3(frame)
    if len(frame) < E.ETH_HLEN:
        return False
    need = 20 if t == E.ETH_P_IP else 40 if t == E.ETH_P_IPV6 else 0
    return len(frame) >= off + need


# ---------------------------------------------------------------------- ops
class UdpTunnelOps(VportOps):
    vport_class = UdpTunnelVport

    def create(self, parms):
        if parms.options is None:
            raise NetlinkError(errno.EINVAL, f"{self.name} ports need OPTIONS with DST_PORT")
        port = A.find(parms.options, U.OVS_TUNNEL_ATTR_DST_PORT)
        if port is None or len(port) != 2:
            raise NetlinkError(errno.EINVAL, f"{self.name} ports need a u16 DST_PORT option")
        check_name(parms.dp.net, parms.name)
        vport = self.vport_class(self, parms)
        vport.dst_port = struct.unpack("=H", port)[0]
        self.configure(vport, parms.options)
        vport.ifindex = self.module.virtual_ifindex()
        return vport

    def configure(self, vport, options):
        pass


def check_name(net, name):
    if name in net.vports_by_name:
        raise NetlinkError(errno.EEXIST, f"a port named {name} exists")
