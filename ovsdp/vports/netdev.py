"""The netdev vport: an existing Linux interface attached to the datapath.

vport-netdev.c hooks the device's receive path (netdev_frame_hook) so every
frame it receives enters the datapath, and transmits with dev_queue_xmit.
ovsdp does the same from userspace with one AF_PACKET socket bound to the
device: promiscuous, deaf to its own transmissions (PACKET_IGNORE_OUTGOING),
receiving through a TPACKET_V2 ring (no system call per frame, the VLAN tag
the kernel took out of the frame handed over in the frame header) and with
PACKET_VNET_HDR, so that frames with a partial checksum and GSO super-frames
go through as the kernel would pass them, without software checksums.
"""

import errno
import logging
import mmap
import socket
import struct

from .. import uapi as U
from ..datapath.offload import VNET_HDR_LEN, ZERO_VNET, vlan_shift
from ..datapath.vport import Vport, VportOps
from ..netlink.attr import NetlinkError
from . import netdev_util, rtnl_link, tunnel_dev

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_COPY_THRESH = 7
PACKET_TX_RING = 13
PACKET_VERSION = 10
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
PACKET_MR_PROMISC = 1
TPACKET_V2 = 1
SO_RCVBUFFORCE = 33

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_COPY = 2
TP_STATUS_LOSING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
TP_STATUS_AVAILABLE = 0
TP_STATUS_SEND_REQUEST = 1
TP_STATUS_WRONG_FORMAT = 4

# tpacket2_hdr: status, len, snaplen (u32), mac, net (u16), sec, nsec (u32),
# vlan_tci, vlan_tpid (u16), 4 bytes padding
TPACKET2_HDR = struct.Struct("=IIIHHIIHH4x")
TPACKET2_HEAD = struct.Struct("=IIIH")         # status, len, snaplen, mac
TPACKET2_VLAN = struct.Struct("=HH")           # vlan_tci, vlan_tpid at offset 24

# Ring geometry: 1024 slots of 2 KiB take any MTU-sized frame and absorb
# bursts while the process is not scheduled.  A bigger frame (a GSO
# super-frame) does not fit: with PACKET_COPY_THRESH the kernel then marks
# the slot TP_STATUS_COPY and queues the whole frame on the socket, where it
# is read in its turn.
FRAME_SIZE = 2048
BLOCK_SIZE = 1 << 16
BLOCK_NR = 32
FRAMES_PER_BLOCK = BLOCK_SIZE // FRAME_SIZE
FRAME_NR = FRAMES_PER_BLOCK * BLOCK_NR
RCVBUF = 8 << 20                # room for the copied super-frames
READ_BATCH = 128
# Interrupt coalescing, as NAPI does for a busy device: a look at the ring
# that finds at least COALESCE_MIN frames means the port is loaded; its
# wake-ups are paused and the next look comes COALESCE_DELAY seconds later,
# in one bigger batch, while the loop serves everything else.  An overload
# then sheds frames where it costs least, at the ring, instead of after the
# receiving host has paid for them.  A quiet port (a ping, a TCP ACK clock)
# never reaches the threshold and is served at once.
COALESCE_MIN = 48
COALESCE_DELAY = 100e-6
# The TX ring takes frames up to the usual MTUs; bigger ones (GSO) are sent
# with a system call each.  Frame data starts 32 bytes in (TPACKET2_HDRLEN
# minus the sockaddr_ll).
TX_FRAME_SIZE = 1 << 12
TX_BLOCK_SIZE = 1 << 16
TX_BLOCK_NR = 64
TX_FRAME_NR = TX_BLOCK_SIZE // TX_FRAME_SIZE * TX_BLOCK_NR
TX_DATA = 32
TX_MAX = TX_FRAME_SIZE - TX_DATA
TX_BURST = 32                   # frames handed to the kernel per flush at most (a power of 2)
_ZERO4 = b"\0\0\0\0"
_TX_LENS = struct.Struct("=II")
_SEND_REQUEST = struct.pack("=I", TP_STATUS_SEND_REQUEST)


class NetdevVport(Vport):
    sock = None
    ring = None
    loop = None

    def __init__(self, ops, parms):
        super().__init__(ops, parms)
        self.head = 0
        self.offsets = []
        self.tx_offsets = []
        self.tx_vnet_dirty = bytearray(TX_FRAME_NR)   # slots whose virtio header is not zero
        self.tx_head = 0
        self.tx_pending = False
        self.tx_sock = None         # direct sends (a socket with a TX ring cannot)
        self.rxbuf = bytearray(VNET_HDR_LEN + 65536 + 64)
        self.max_plain = 0          # longest frame the fast output takes: MTU + Ethernet
        self.paused = False         # wake-ups paused: the ring is polled on a timer

    # ------------------------------------------------------------- transmit
    def output(self, data, vnet=None, l3=0, tun_info=None):
        """The common cases in one call: a frame that fits the MTU, plain or
        with only a partial checksum pending (its virtio header goes along),
        goes straight into the TX ring; everything else takes Vport.output()."""
        n = len(data)
        if not l3 and n <= self.max_plain and (vnet is None or (self.vnet_ok and not vnet[1])):
            ring = self.ring
            head = self.tx_head
            off = self.tx_offsets[head]
            if ring is not None and ring[off] == TP_STATUS_AVAILABLE:
                if self.vnet_ok:
                    if vnet is not None:
                        ring[off + TX_DATA:off + TX_DATA + VNET_HDR_LEN] = vnet
                        self.tx_vnet_dirty[head] = 1
                    elif self.tx_vnet_dirty[head]:
                        ring[off + TX_DATA:off + TX_DATA + VNET_HDR_LEN] = ZERO_VNET
                        self.tx_vnet_dirty[head] = 0
                    ring[off + TX_DATA + VNET_HDR_LEN:off + TX_DATA + VNET_HDR_LEN + n] = data
                    _TX_LENS.pack_into(ring, off + 4, n + VNET_HDR_LEN, n + VNET_HDR_LEN)
                else:
                    ring[off + TX_DATA:off + TX_DATA + n] = data
                    _TX_LENS.pack_into(ring, off + 4, n, n)
                ring[off:off + 4] = _SEND_REQUEST
                head += 1
                self.tx_head = head if head < TX_FRAME_NR else 0
                self.tx_packets += 1
                self.tx_bytes += n
                if not self.tx_pending:
                    self.tx_pending = True
                    self.loop.call_soon(self.flush)
                return
        Vport.output(self, data, vnet, l3)

    def output_batch(self, frames):
        """Plain frames into the TX ring in one tight loop (sent at flush)."""
        ring = self.ring
        if ring is None:
            self.tx_dropped += len(frames)
            return
        offsets = self.tx_offsets
        dirty = self.tx_vnet_dirty
        head = self.tx_head
        maxp = self.max_plain
        vnet_ok = self.vnet_ok
        pack = _TX_LENS.pack_into
        sent = nbytes = 0
        for data in frames:
            n = len(data)
            off = offsets[head]
            if n > maxp or ring[off] != TP_STATUS_AVAILABLE:
                # too long for the ring, or the ring is full: the slow way
                self.tx_head = head
                self.tx_packets += sent
                self.tx_bytes += nbytes
                sent = nbytes = 0
                Vport.output(self, data)
                head = self.tx_head
                continue
            if vnet_ok:
                if dirty[head]:
                    ring[off + TX_DATA:off + TX_DATA + VNET_HDR_LEN] = ZERO_VNET
                    dirty[head] = 0
                ring[off + TX_DATA + VNET_HDR_LEN:off + TX_DATA + VNET_HDR_LEN + n] = data
                pack(ring, off + 4, n + VNET_HDR_LEN, n + VNET_HDR_LEN)
            else:
                ring[off + TX_DATA:off + TX_DATA + n] = data
                pack(ring, off + 4, n, n)
            ring[off:off + 4] = _SEND_REQUEST
            head += 1
            if head == TX_FRAME_NR:
                head = 0
            sent += 1
            nbytes += n
            if not sent & (TX_BURST - 1):
                self.tx_pending = True
                self.flush()
        self.tx_head = head
        self.tx_packets += sent
        self.tx_bytes += nbytes
        if sent and not self.tx_pending:
            self.tx_pending = True
            self.loop.call_soon(self.flush)

    def send(self, packet):
        if self.sock is None:
            self.tx_dropped += 1
            return
        if self.vnet_ok:
            self._tx(ZERO_VNET + packet, len(packet))
        else:
            self._tx(packet, len(packet))

    def send_vnet(self, data, vnet):
        if self.sock is None:
            self.tx_dropped += 1
            return
        if len(data) < TX_MAX - VNET_HDR_LEN:
            self._tx(vnet + data, len(data))
            return
        self.flush()                    # what is queued in the ring goes first
        try:
            self.tx_sock.sendmsg((vnet, data))
        except OSError as e:
            self._tx_error(e)
            return
        self.tx_packets += 1
        self.tx_bytes += len(data)

    def _tx(self, buf, n):
        """Queue ``buf`` (virtio header included) in the TX ring; sent at flush."""
        ring = self.ring
        off = self.tx_offsets[self.tx_head]
        status = ring[off]
        if status != TP_STATUS_AVAILABLE:
            if status & TP_STATUS_WRONG_FORMAT:
                self.tx_errors += 1
                ring[off:off + 4] = _ZERO4
            else:
                self.flush()            # the ring is full: push it out and wait no longer
                if ring[off] != TP_STATUS_AVAILABLE:
                    self.tx_dropped += 1
                    return
        ln = len(buf)
        if ln > TX_MAX:
            self.flush()                # keep the order of the frames
            try:
                self.tx_sock.send(buf)
            except OSError as e:
                self._tx_error(e)
                return
            self.tx_packets += 1
            self.tx_bytes += n
            return
        ring[off + TX_DATA:off + TX_DATA + ln] = buf
        _TX_LENS.pack_into(ring, off + 4, ln, ln)
        ring[off:off + 4] = _SEND_REQUEST
        if self.vnet_ok:
            # the slot's virtio header now holds what buf began with
            self.tx_vnet_dirty[self.tx_head] = buf[:VNET_HDR_LEN] != ZERO_VNET
        self.tx_head = (self.tx_head + 1) % TX_FRAME_NR
        self.tx_packets += 1
        self.tx_bytes += n
        if not self.tx_pending:
            self.tx_pending = True
            self.loop.call_soon(self.flush)

    def flush(self):
        """Hand every queued TX ring frame to the kernel (one system call)."""
        if not self.tx_pending or self.sock is None:
            return
        self.tx_pending = False
        try:
            self.sock.send(b"", socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
        except OSError as e:
            self._tx_error(e)

    def _tx_error(self, e):
        if e.errno in (errno.ENOBUFS, errno.EAGAIN):
            self.tx_dropped += 1
        elif e.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
            self.tx_dropped += 1
            with self.dp.net.enter():
                gone = not netdev_util.exists(self.name)
            if gone:
                self.loop.call_soon(self.dp.module.device_gone, self)
        else:
            self.tx_errors += 1

    # -------------------------------------------------------------- receive
    def start(self, loop):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            try:
                s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
                self.vnet_ok = True
            except OSError:
                self.vnet_ok = False
            s.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            s.setsockopt(SOL_PACKET, PACKET_COPY_THRESH, 1)
            try:
                s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            # no PACKET_QDISC_BYPASS: it skips the device's taps, so tcpdump
            # on the port would not see what the datapath sends, as it does
            # with the kernel's dev_queue_xmit()
            s.setsockopt(SOL_PACKET, PACKET_RX_RING,
                         struct.pack("=4I", BLOCK_SIZE, BLOCK_NR, FRAME_SIZE, FRAME_NR))
            s.setsockopt(SOL_PACKET, PACKET_TX_RING,
                         struct.pack("=4I", TX_BLOCK_SIZE, TX_BLOCK_NR, TX_FRAME_SIZE,
                                     TX_FRAME_NR))
            # one mapping: the RX ring, then the TX ring
            self.ring = mmap.mmap(s.fileno(), BLOCK_SIZE * BLOCK_NR
                                  + TX_BLOCK_SIZE * TX_BLOCK_NR)
            s.bind((self.name, ETH_P_ALL))
            mreq = struct.pack("=iHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b"")
            s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            s.setblocking(False)
            # Frames too big for the TX ring go out on a second socket: once a
            # packet socket has a TX ring, sendmsg() only flushes the ring.
            t = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            if self.vnet_ok:
                t.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            t.bind((self.name, 0))
            self.tx_sock = t
        except OSError:
            if self.ring is not None:
                self.ring.close()
                self.ring = None
            if self.tx_sock is not None:
                self.tx_sock.close()
                self.tx_sock = None
            s.close()
            raise
        self.offsets = [(i // FRAMES_PER_BLOCK) * BLOCK_SIZE + (i % FRAMES_PER_BLOCK) * FRAME_SIZE
                        for i in range(FRAME_NR)]
        self.tx_offsets = [BLOCK_SIZE * BLOCK_NR + i * TX_FRAME_SIZE for i in range(TX_FRAME_NR)]
        self.sock = s
        self.loop = loop
        self.max_plain = min(self.mtu + 14, TX_MAX - VNET_HDR_LEN)
        loop.add_reader(s.fileno(), self._wakeup)

    def _wakeup(self):
        """epoll: the ring has frames, or the socket has an error.  The kernel
        sets one (ENETDOWN) when the device goes down or away, and epoll then
        reports it until it is read: read it, or the loop spins."""
        if self.sock is not None and not self._readable():
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                with self.dp.net.enter():
                    gone = netdev_util.ifindex(self.name) != self.ifindex
                if gone:
                    self.loop.call_soon(self.dp.module.device_gone, self)

    def _readable(self):
        """Take up to READ_BATCH frames off the RX ring; returns how many."""
        ring = self.ring
        if ring is None:
            return 0                    # the port was destroyed meanwhile
        offsets = self.offsets
        head_of = TPACKET2_HEAD.unpack_from
        head = self.head
        nframes = len(offsets)
        frames = []
        append = frames.append
        vnets = None
        nbytes = 0
        vnet_on = self.vnet_ok
        budget = READ_BATCH
        while budget:
            off = offsets[head]
            if not ring[off] & TP_STATUS_USER:
                break
            budget -= 1
            status, length, snaplen, mac = head_of(ring, off)
            start = off + mac
            data = ring[start:start + snaplen]
            vnet = None
            if vnet_on and (ring[start - VNET_HDR_LEN] or ring[start - VNET_HDR_LEN + 1]):
                # flags or gso_type set: a partial checksum or a GSO frame
                vnet = ring[start - VNET_HDR_LEN:start]
            if status & (TP_STATUS_VLAN_VALID | TP_STATUS_COPY) or snaplen < length:
                data, vnet = self._unusual(ring, off, status, snaplen, length, data, vnet)
            ring[off:off + 4] = _ZERO4          # back to the kernel
            head += 1
            if head == nframes:
                head = 0
            if data is None:
                continue
            nbytes += len(data)
            append(data)
            if vnet is not None:
                if vnets is None:
                    vnets = [None] * (len(frames) - 1)
                vnets.append(vnet)
            elif vnets is not None:
                vnets.append(None)
        self.head = head
        n = len(frames)
        if n:
            self.rx_packets += n
            self.rx_bytes += nbytes
            self.dp.receive_batch(frames, self, vnets)
            if n >= COALESCE_MIN and self.sock is not None:
                # loaded: let the ring fill for a moment (see COALESCE_MIN)
                if not self.paused:
                    self.loop.pause_reader(self.sock.fileno())
                    self.paused = True
                self.loop.call_later(COALESCE_DELAY, self._readable)
            else:
                # Traffic is flowing: look at the ring again on the next turn
                # of the loop (after the other sources and the TX flushes)
                # rather than sleeping in epoll.
                self.loop.call_soon(self._readable)
        elif self.paused and self.sock is not None:
            # an empty look: wait in epoll for the next frame again
            self.paused = False
            self.loop.resume_reader(self.sock.fileno())
        return n

    def _unusual(self, ring, off, status, snaplen, length, data, vnet):
        """A frame too big for its slot, or one whose VLAN tag the kernel took out."""
        if status & TP_STATUS_COPY:
            # the whole frame waits on the socket (PACKET_COPY_THRESH)
            buf = self.rxbuf
            try:
                n = self.sock.recv_into(buf)
            except OSError:
                n = -1
            if n < (VNET_HDR_LEN if self.vnet_ok else 0) + 14:
                self.rx_errors += 1
                return None, None
            if self.vnet_ok:
                vnet = bytes(buf[:VNET_HDR_LEN])
                if vnet == ZERO_VNET:
                    vnet = None
                data = bytes(buf[VNET_HDR_LEN:n])
            else:
                data = bytes(buf[:n])
        elif snaplen < length:
            self.rx_errors += 1             # larger than a slot, and no copy came
            return None, None
        if status & TP_STATUS_VLAN_VALID:
            # put back the tag the kernel took out of the frame
            tci, tpid = TPACKET2_VLAN.unpack_from(ring, off + 24)
            if not (status & TP_STATUS_VLAN_TPID_VALID and tpid):
                tpid = 0x8100
            data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
            if vnet is not None:
                vnet = vlan_shift(vnet, 4)
        return data, vnet

    def kernel_drops(self):
        """Frames the kernel dropped because the ring was full, since the
        last call (reading PACKET_STATISTICS resets it)."""
        if self.sock is None:
            return 0
        try:
            packets, drops = struct.unpack("=II", self.sock.getsockopt(SOL_PACKET,
                                                                       PACKET_STATISTICS, 8))
        except OSError:
            return 0
        return drops

    def stats_bytes(self):
        # Frames the ring had no room for were received and dropped by the
        # port: rx_dropped, as a device counts what its queues drop.
        self.rx_dropped += self.kernel_drops()
        return super().stats_bytes()

    def destroy(self):
        super().destroy()
        self.flush()
        if self.sock is not None:
            if self.loop is not None:
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        if self.tx_sock is not None:
            self.tx_sock.close()
            self.tx_sock = None
        if self.ring is not None:
            self.ring.close()
            self.ring = None


class NetdevOps(VportOps):
    type = U.OVS_VPORT_TYPE_NETDEV
    name = "netdev"

    def create(self, parms):
        module = self.module
        name = parms.name
        vport = NetdevVport(self, parms)     # ovs_vport_alloc: upcall pids checked first
        existing = parms.dp.net.vports_by_name.get(name)
        if existing is not None:
            if existing.type == U.OVS_VPORT_TYPE_INTERNAL:
                raise NetlinkError(errno.EINVAL, f"{name} is a datapath internal device")
            raise NetlinkError(errno.EBUSY, f"{name} is already attached to a datapath")
        ifindex = netdev_util.ifindex(name)
        if ifindex is None:
            raise NetlinkError(errno.ENODEV, f"no network device named {name}")
        try:
            flags = netdev_util.flags(name)
            hw = netdev_util.arphrd(name)
        except (OSError, ValueError):
            raise NetlinkError(errno.ENODEV, f"no network device named {name}") from None
        if flags & netdev_util.IFF_LOOPBACK or hw not in (netdev_util.ARPHRD_ETHER,
                                                          netdev_util.ARPHRD_NONE):
            raise NetlinkError(errno.EINVAL, f"{name} cannot be attached (loopback or not "
                               "Ethernet)")
        dev = rtnl_link.tunnel_device(ifindex) if module.real_devices else None
        if dev is not None:         # vxlan_sys_4789 and friends: a tunnel port
            return tunnel_dev.create(self, parms, dev, ifindex, netdev_util.mtu(name))
        vport.ifindex = ifindex
        vport.mtu = netdev_util.mtu(name)
        vport.ethernet = hw == netdev_util.ARPHRD_ETHER
        return vport
