"""Datapaths per network namespace (struct ovs_net), without root.

The module is driven in memory: each client is a real socket pair whose
daemon end is a Peer in a chosen OvsNet, so two "namespaces" can be served
by one Module and compared.  What it checks is the kernel's rule: a request
sees only its own namespace's datapaths, vport names, ifindexes and port
ids; notifications and upcalls stay in the datapath's namespace.  The real
thing (clients in real namespaces, devices made in them) is in test_ovs.py.
"""

import errno
import os
import socket

import pytest

from ovsdp import uapi as U
from ovsdp import vports
from ovsdp.client.dpif import Dpif
from ovsdp.client.netlink import NetlinkSocket
from ovsdp.datapath.module import Module, OvsNet
from ovsdp.netlink.genl import Peer

FRAME = bytes.fromhex("ffffffffffff" "020000000001" "0806") + bytes(28)


class _DaemonEnd(Peer):
    def __init__(self, portid, net, wire):
        super().__init__(portid, net_admin=True, net=net)
        self.wire = wire

    def send(self, data, kind="reply"):
        self.wire.send(data)
        return 0


class _ClientEnd:
    """The client's side: what it sends is handled by the module at once."""

    def __init__(self, module, net, portid):
        self.module = module
        self.mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.peer = _DaemonEnd(portid, net, theirs)
        self.theirs = theirs
        module.add_peer(self.peer)

    def send(self, data):
        self.module.receive(self.peer, data)
        return len(data)

    def recv(self, n):
        return self.mine.recv(n)

    def fileno(self):
        return self.mine.fileno()

    def close(self):
        self.module.remove_peer(self.peer)
        self.mine.close()
        self.theirs.close()


@pytest.fixture
def world():
    m = vports.register(Module(real_devices=False))
    there = m.add_net(OvsNet(("test", 2), name="there"))
    released = []
    m.net_unused = released.append
    clients = []

    def client(net, portid):
        end = _ClientEnd(m, net, portid)
        clients.append(end)
        return Dpif(sock=NetlinkSocket(sock=end, timeout=2.0))

    yield m, m.init_net, there, client, released
    for c in clients:
        if c.peer.net.peers.get(c.peer.portid) is c.peer:
            c.close()
    m.shutdown()


def test_each_namespace_has_its_own_datapaths_and_names(world):
    m, here, there, client, _ = world
    a, b = client(here, 500), client(there, 500)      # one port id, two namespaces
    da = a.dp_new("ovs-system")
    db = b.dp_new("ovs-system")                       # no EEXIST: another namespace
    a.vport_new("ovs-system", "p1", U.OVS_VPORT_TYPE_DUMMY)
    b.vport_new("ovs-system", "p1", U.OVS_VPORT_TYPE_DUMMY)
    b.vport_new("ovs-system", "p2", U.OVS_VPORT_TYPE_DUMMY)
    assert [d.name for d in a.dp_dump()] == ["ovs-system"]
    assert [d.name for d in b.dp_dump()] == ["ovs-system"]
    assert sorted(v.name for v in a.vport_dump("ovs-system")) == ["ovs-system", "p1"]
    assert sorted(v.name for v in b.vport_dump("ovs-system")) == ["ovs-system", "p1", "p2"]
    with pytest.raises(OSError) as e:
        a.vport_get(name="p2")                        # b's, not visible to a
    assert e.value.errno == errno.ENODEV
    with pytest.raises(OSError) as e:
        a.dp_get(db.ifindex)                          # b's dp_ifindex means nothing to a
    assert e.value.errno == errno.ENODEV
    with pytest.raises(OSError) as e:
        a.dp_new("ovs-system")
    assert e.value.errno == errno.EEXIST
    b.dp_del("ovs-system")
    assert b.dp_dump() == [] and [d.ifindex for d in a.dp_dump()] == [da.ifindex]
    assert len(m.datapaths) == 1


def test_notifications_stay_in_the_requesters_namespace(world):
    m, here, there, client, _ = world
    a, a2 = client(here, 501), client(here, 502)
    b, b2 = client(there, 501), client(there, 503)
    for d in (a2, b2):
        d.subscribe(U.OVS_DATAPATH_FAMILY)
    a.dp_new("dpa")
    name, cmd, _ = a2.recv_notification(timeout=1)
    assert (name, cmd) == (U.OVS_DATAPATH_FAMILY, U.OVS_DP_CMD_NEW)
    assert b2.recv_notification(timeout=0.2) is None
    b.dp_new("dpb")
    assert b2.recv_notification(timeout=1)[1] == U.OVS_DP_CMD_NEW
    assert a2.recv_notification(timeout=0.2) is None


def test_upcalls_go_to_the_port_id_in_the_datapaths_namespace(world):
    m, here, there, client, _ = world
    a, b = client(here, 600), client(there, 600)
    for d in (a, b):
        d.dp_new("dp")
        d.vport_new("dp", "in", U.OVS_VPORT_TYPE_DUMMY, upcall_pids=[600])
    there.vports_by_name["in"].inject(FRAME)
    up = b.recv_upcall(timeout=1)
    assert up is not None and up.packet == FRAME
    assert a.recv_upcall(timeout=0.2) is None
    assert m.find_datapath(there, "dp").n_missed == 1
    assert m.find_datapath(here, "dp").n_missed == 0


def test_port_ids_are_per_namespace(world):
    m, here, there, client, _ = world
    client(here, 700)
    client(there, 700)
    p = client(there, 701).sock.sock.peer
    with pytest.raises(Exception) as e:
        m.rebind(p, 700)          # taken in its own namespace
    assert e.value.errno == errno.EADDRINUSE
    q = client(there, 702).sock.sock.peer
    m.rebind(q, 703)
    assert there.peers[703] is q and 703 not in here.peers


def test_a_namespace_holding_nothing_is_let_go_and_exit_net_destroys(world):
    m, here, there, client, released = world
    b = client(there, 800)
    b.dp_new("dpx")
    b.sock.sock.close()                              # the client goes; the datapath stays
    assert released == [] and m.nets[there.key] is there
    m.exit_net(there)                                # the namespace is gone
    assert released == [there] and there.key not in m.nets
    assert m.datapaths == [] and there.datapaths == []
    c = client(here, 801)
    c.dp_new("dpy")
    c.sock.sock.close()
    assert released == [there]                       # the daemon's own stays


def test_a_namespace_some_process_is_in_counts_as_held():
    from ovsdp.server import netns
    st = os.stat("/proc/self/ns/net")
    mine, nobodys = (st.st_dev, st.st_ino), (st.st_dev, 1)
    assert netns.referenced([mine, nobodys]) == {mine}
