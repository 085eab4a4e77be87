"""The dummy vport: an in-memory port for tests (an ovsdp extension).

Frames are injected with :meth:`DummyVport.inject` (or over the control
socket with the ``ovsdp_dummy`` family) and what the datapath sends out of
the port is kept in :attr:`DummyVport.sent` until fetched.
"""

import collections
import errno

from .. import uapi as U
from ..datapath.vport import Vport, VportOps
from ..netlink.attr import NetlinkError

SENT_MAX = 4096


class DummyVport(Vport):
    def __init__(self, ops, parms):
        super().__init__(ops, parms)
        self.sent = collections.deque(maxlen=SENT_MAX)

    def send(self, packet):
        self.tx_packets += 1
        self.tx_bytes += len(packet)
        self.sent.append(bytes(packet))

    def inject(self, frame):
        """Receive ``frame`` on this port, as a device would."""
        self.rx_packets += 1
        self.rx_bytes += len(frame)
        self.dp.receive(bytes(frame), self)

    def fetch(self):
        """Frames sent out of this port since the last fetch, oldest first."""
        out = list(self.sent)
        self.sent.clear()
        return out


class DummyOps(VportOps):
    type = U.OVS_VPORT_TYPE_DUMMY
    name = "dummy"

    def create(self, parms):
        if parms.name in parms.dp.net.vports_by_name:
            raise NetlinkError(errno.EEXIST, f"a port named {parms.name} exists")
        vport = DummyVport(self, parms)
        vport.ifindex = self.module.virtual_ifindex()
        return vport
