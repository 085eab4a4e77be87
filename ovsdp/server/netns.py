"""Network namespaces: the one a client is in, working inside one, and
noticing that one is gone (the I/O side of :class:`~ovsdp.datapath.module.OvsNet`).

A netlink socket belongs to the namespace its process was in when it made
the socket (sock_net()); an ovsdp connection belongs to the namespace its
client was in at connect(), read from ``/proc/<pid>/ns/net`` of the pid
SO_PEERCRED gives.  The daemon keeps a descriptor of every namespace it
serves and switches its thread into it with setns() while it makes that
namespace's devices and sockets (a TAP device, a packet socket, an
rtnetlink socket are made in the namespace of the thread that opens them),
then switches back.

The kernel destroys a namespace's datapaths when the namespace dies
(ovs_exit_net).  A namespace ovsdp holds sockets in cannot die, so ovsdp
decides instead: a namespace with datapaths that no client of ovsdp is in,
no process is in and nothing mounts (``ip netns del`` removed its mount) is
gone, and its datapaths are destroyed, which lets Linux free it.
"""

import contextlib
import ctypes
import errno
import logging
import os

from ..datapath.module import OvsNet
from ..netlink.attr import NetlinkError

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
SWEEP_SECONDS = 1.0              # how often namespaces without clients are checked

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _key(st):
    return (st.st_dev, st.st_ino)


def _pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield name


def _mounted(mountinfo, wanted):
    """The namespaces of ``wanted`` (key -> "net:[ino]", "maj:min") that a
    line of ``mountinfo`` (a /proc/<pid>/mountinfo) bind-mounts."""
    found = set()
    try:
        with open(mountinfo) as f:
            for line in f:
                fields = line.split(" ", 5)
                if len(fields) < 5 or not fields[3].startswith("net:["):
                    continue
                for key, (root, dev) in wanted.items():
                    if fields[3] == root and fields[2] == dev:
                        found.add(key)
    except OSError:
        pass
    return found


def referenced(keys):
    """Which namespaces of ``keys`` something still holds: a process in it,
    or a bind mount of it in any mount namespace (``ip netns add``)."""
    wanted = {k: (f"net:[{k[1]}]", f"{os.major(k[0])}:{os.minor(k[0])}") for k in keys}
    found = _mounted("/proc/self/mountinfo", wanted)
    mount_namespaces = set()
    for pid in _pids():
        if len(found) == len(wanted):
            break
        try:
            net = _key(os.stat(f"/proc/{pid}/ns/net"))
            mnt = _key(os.stat(f"/proc/{pid}/ns/mnt"))
        except OSError:
            continue                 # gone, or not ours to look at
        if net in wanted:
            found.add(net)
        if mnt not in mount_namespaces:
            mount_namespaces.add(mnt)
            found |= _mounted(f"/proc/{pid}/mountinfo", {k: v for k, v in wanted.items()
                                                         if k not in found})
    return found


class Namespaces:
    """The namespaces the daemon serves, each an :class:`OvsNet` of ``module``.

    ``on_net(net)`` / ``on_net_gone(net)`` are told when one starts and stops
    being served (the daemon keeps a device watch per namespace).
    """

    def __init__(self, module, loop=None, on_net=None, on_net_gone=None):
        self.module = module
        self.loop = loop
        self.on_net = on_net
        self.on_net_gone = on_net_gone
        self.home_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.home_key = _key(os.fstat(self.home_fd))
        self.fds = {}                # key -> descriptor of the namespace
        self._inside = None          # the key of the namespace this thread is in
        module.net_unused = self._unused
        self._sweeping = False

    # ------------------------------------------------------------- lookup
    def of_pid(self, pid):
        """The OvsNet of the network namespace process ``pid`` is in.

        The daemon's own when the process cannot be looked at (gone
        already, outside this pid namespace: SO_PEERCRED says 0).
        """
        if not pid:
            return self.module.init_net
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            log.debug("pid %d: cannot open its network namespace: %s", pid, e)
            return self.module.init_net
        key = _key(os.fstat(fd))
        net = self.module.init_net if key == self.home_key else self.module.nets.get(key)
        if net is not None:
            os.close(fd)
            return net
        net = OvsNet(key, lambda: self._enter(key, fd), f"net:[{key[1]}]")
        self.fds[key] = fd
        self.module.add_net(net)
        log.info("serving network namespace %s (first client: pid %d)", net.name, pid)
        if self.on_net is not None:
            self.on_net(net)
        self._schedule_sweep()
        return net

    @contextlib.contextmanager
    def _enter(self, key, fd):
        if self._inside is not None:
            if self._inside != key:
                raise RuntimeError("already inside another network namespace")
            yield                     # nested: already there
            return
        try:
            _setns(fd)
        except OSError as e:
            raise NetlinkError(e.errno or errno.EPERM,
                               f"cannot enter network namespace net:[{key[1]}]: "
                               f"{e.strerror}") from None
        self._inside = key
        try:
            yield
        finally:
            self._inside = None
            # Staying in the wrong namespace would put every later device and
            # socket there: a daemon that cannot go home must not go on.
            try:
                _setns(self.home_fd)
            except OSError:
                log.critical("cannot return to the daemon's network namespace; exiting")
                os._exit(70)

    # ------------------------------------------------------------ release
    def _unused(self, net):
        """The namespace holds no datapath and no client: let it go."""
        fd = self.fds.pop(net.key, None)
        if self.on_net_gone is not None:
            self.on_net_gone(net)
        if fd is not None:
            os.close(fd)
        log.info("no longer serving network namespace %s", net.name)

    def _schedule_sweep(self):
        if self.loop is not None and not self._sweeping:
            self._sweeping = True
            self.loop.call_later(SWEEP_SECONDS, self.sweep)

    def sweep(self):
        """ovs_exit_net() for namespaces that are gone (see the module's doc)."""
        self._sweeping = False
        idle = [n for n in self.module.nets.values()
                if n.key is not None and not n.peers and n.datapaths]
        if idle:
            alive = referenced([n.key for n in idle])
            for net in idle:
                if net.key not in alive:
                    self.module.exit_net(net)
        if len(self.module.nets) > 1:
            self._schedule_sweep()

    def close(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
        os.close(self.home_fd)
