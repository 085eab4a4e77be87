"""The control-message fuzzer: valid and mutated requests of every family and command.

Its parts: :mod:`.ctrl_build` (valid requests), :mod:`.ctrl_mutate`
(mutations, datagrams), :mod:`.ctrl_scenarios` (several requests or
clients at a time); this module keeps its state and objects on the daemon.
"""

from .consts import FZFRAME
from .ctrl_build import CtrlRequests
from .ctrl_mutate import CtrlMutations
from .ctrl_scenarios import CtrlScenarios
from .findings import Input
from .frames import FrameGen
from .fuzzer import Fuzzer
from .odp_gen import load_corpus


class CtrlFuzzer(Fuzzer, CtrlRequests, CtrlMutations, CtrlScenarios):
    """Datapaths and ports of its own (prefix ``fzc``) and requests about them."""

    name = "ctrl"

    def __init__(self, h, seed):
        super().__init__(h, seed)
        self.frames = FrameGen(self.r)
        self.keys, self.wc_keys, self.corpus_acts = load_corpus()
        self.dp_names = ["fzc0", "fzc1", "fzc2", "fzc3"]
        self.port_names = [f"fzcp{i}" for i in range(8)]
        if "nonutf8" not in h.avoid:
            # names that are not UTF-8 (kept as bytes by the daemon), used again and again
            self.dp_names.append("fzc\udcff\udcfe")
            self.port_names.append("fzcp\udcc3")
        self.port_names.append("fzc2")             # a datapath's name: EEXIST
        self.ufids = [bytes([0xfc, i]) + self.r.randbytes(14) for i in range(6)] + \
            [b"\x01", b"fzc-ufid-" + bytes(7)]
        self.ifindexes = {}
        self.listener = None
        self.port_ifindexes = []

    # ------------------------------------------------------------ setup
    def setup(self):
        self.conn = self.h.connect()
        self.housekeeping()

    def housekeeping(self):
        """Learn our datapaths' ifindexes; delete strays so that memory stays bounded."""
        prot = self.h.protected_ifindexes()
        pid = self.conn.portid if self.conn is not None and self.conn.portid else 0
        with self.h.dpif() as c:
            dps = c.dp_dump()
            self.ifindexes = {d.name: d.ifindex for d in dps
                              if d.name in self.dp_names and d.ifindex not in prot}
            strays = [d for d in dps if d.ifindex not in prot and d.name not in self.dp_names
                      and d.name != FZFRAME and d.ifindex not in self.h.start_dps]
            for d in strays:
                try:
                    c.dp_del(d.ifindex)
                except OSError:
                    pass
            for idx in self.ifindexes.values():
                try:
                    if len(c.flow_dump(idx)) > 200:
                        c.flow_flush(idx)
                except OSError:
                    pass
            self.port_ifindexes = []
            for idx in self.ifindexes.values():
                try:
                    self.port_ifindexes += [v.ifindex for v in c.vport_dump(idx) if v.port_no]
                except OSError:
                    pass
            for k, name in enumerate(self.dp_names[:2]):
                try:
                    if name not in self.ifindexes:
                        self.ifindexes[name] = c.dp_new(name, upcall_pid=pid).ifindex
                    have = {v.name for v in c.vport_dump(self.ifindexes[name])}
                    for pname in self.port_names[3 * k:3 * k + 3]:
                        if pname not in have:
                            c.vport_new(self.ifindexes[name], pname, "dummy", upcall_pids=[pid])
                except OSError:
                    pass
        self.reconnect()

    # ------------------------------------------------------------ step
    def step(self):
        self.iteration += 1
        self.reconnect()
        if self.r.random() < 0.08:
            self.iteration -= 1
            self.canon()
            return
        data, desc = self.make_input()
        inp = Input(self.name, self.iteration, desc, data)
        self.h.run_input(self.conn, inp)
        self.reconnect()

    def batch_end(self):
        r = self.r
        if "noread" not in self.h.avoid and r.random() < 0.05:
            self.no_reader()
        if "noread" not in self.h.avoid and r.random() < 0.03:
            self.flood()
        if r.random() < 0.15:
            self.race()
        self.drain_listener()
        if self.listener is None or r.random() < 0.1:
            self.new_listener()      # the old one goes away with notifications unread
        self.housekeeping()

    def teardown(self):
        super().teardown()
        if self.listener is not None:
            self.listener.close()
