"""What every fuzzer has: the harness, a random stream of its own, a connection."""

import random


class Fuzzer:
    """A fuzzer: ``setup()``, then ``step()`` (one input) and ``batch_end()`` in turn,
    ``teardown()`` at the end.  ``iteration`` counts the inputs."""

    name = None

    def __init__(self, h, seed):
        self.h = h
        self.r = random.Random(f"{seed}/{self.name}")
        self.conn = None
        self.seq = 0
        self.iteration = 0

    def next_seq(self):
        self.seq = self.seq % 0xFFFF + 1
        return self.seq

    def reconnect(self):
        """A new connection when there is none or the daemon closed it."""
        if self.conn is None or self.conn.closed:
            self.conn = self.h.connect()

    def teardown(self):
        if self.conn is not None:
            self.conn.close()
