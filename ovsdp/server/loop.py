"""A small epoll event loop: fd readers/writers, timers, call_soon.

One loop serves the control connections, every vport's I/O and the
datapath timers.  When nothing is due it blocks in epoll_wait (no busy
polling); callbacks run to completion, so the datapath needs no locks.
"""

import collections
import heapq
import itertools
import logging
import os
import select
import time

log = logging.getLogger(__name__)

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_ERR = select.EPOLLERR | select.EPOLLHUP
_FINE = 0.002           # timers due sooner than this are waited for precisely


class Timer:
    __slots__ = ("when", "interval", "callback", "args", "cancelled")

    def __init__(self, when, interval, callback, args):
        self.when = when
        self.interval = interval
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class Loop:
    def __init__(self):
        self.ep = select.epoll()
        self.ep_fd = self.ep.fileno()
        self.readers = {}
        self.writers = {}
        self.paused = set()          # readers not to be woken for input for now
        self.turn = 0                # how many times run_once began
        self.timers = []
        self.soon = collections.deque()
        self._seq = itertools.count()
        self.running = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.add_reader(self._wake_r, self._drain_wakeup)

    # ---------------------------------------------------------------- fds
    def _update(self, fd):
        mask = ((_IN if fd in self.readers and fd not in self.paused else 0)
                | (_OUT if fd in self.writers else 0))
        try:
            if mask or fd in self.readers:      # a paused reader still hears errors
                try:
                    self.ep.modify(fd, mask)
                except FileNotFoundError:
                    self.ep.register(fd, mask)
            else:
                self.ep.unregister(fd)
        except (FileNotFoundError, OSError) as e:
            if mask:
                raise
            log.debug("unregister fd %d: %s", fd, e)

    def add_reader(self, fd, callback, *args):
        self.readers[fd] = (callback, args)
        self._update(fd)

    def remove_reader(self, fd):
        self.paused.discard(fd)
        if self.readers.pop(fd, None) is not None:
            self._update(fd)

    def pause_reader(self, fd):
        """Stop waking up for ``fd``'s input (errors still wake) until resume_reader()."""
        if fd in self.readers and fd not in self.paused:
            self.paused.add(fd)
            self._update(fd)

    def resume_reader(self, fd):
        if fd in self.paused:
            self.paused.discard(fd)
            self._update(fd)

    def add_writer(self, fd, callback, *args):
        self.writers[fd] = (callback, args)
        self._update(fd)

    def remove_writer(self, fd):
        if self.writers.pop(fd, None) is not None:
            self._update(fd)

    # ------------------------------------------------------------- timers
    def call_soon(self, callback, *args):
        self.soon.append((callback, args))

    def call_later(self, delay, callback, *args):
        t = Timer(time.monotonic() + delay, 0, callback, args)
        heapq.heappush(self.timers, (t.when, next(self._seq), t))
        return t

    def call_every(self, interval, callback, *args):
        t = Timer(time.monotonic() + interval, interval, callback, args)
        heapq.heappush(self.timers, (t.when, next(self._seq), t))
        return t

    def wakeup(self):
        """Make a blocked run_once() return (safe from signal handlers)."""
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass

    def _drain_wakeup(self):
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    # ---------------------------------------------------------------- run
    def _run_callback(self, callback, args):
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 - one failing callback must not stop the loop
            log.exception("callback %r failed", callback)

    def run_once(self, timeout=None):
        """Wait for events (at most ``timeout`` seconds) and dispatch them."""
        self.turn += 1
        if self.soon:
            timeout = 0
        elif self.timers:
            delay = max(0.0, self.timers[0][0] - time.monotonic())
            timeout = delay if timeout is None else min(timeout, delay)
        try:
            if timeout is not None and 0 < timeout < _FINE and self.ep_fd < 1024:
                # epoll_wait counts in whole milliseconds; a timer due sooner
                # (a port's coalescing delay) waits in select(), to the
                # microsecond, for the epoll descriptor itself
                select.select([self.ep_fd], [], [], timeout)
                timeout = 0
            events = self.ep.poll(-1 if timeout is None else timeout)
        except InterruptedError:
            events = ()
        readers = self.readers
        writers = self.writers
        for fd, ev in events:
            if ev & (_IN | _ERR):
                r = readers.get(fd)
                if r is not None:
                    self._run_callback(r[0], r[1])
            if ev & (_OUT | _ERR):
                w = writers.get(fd)
                if w is not None:
                    self._run_callback(w[0], w[1])
        now = time.monotonic()
        timers = self.timers
        while timers and timers[0][0] <= now:
            _, _, t = heapq.heappop(timers)
            if t.cancelled:
                continue
            self._run_callback(t.callback, t.args)
            if t.interval and not t.cancelled:
                t.when = max(t.when + t.interval, now)
                heapq.heappush(timers, (t.when, next(self._seq), t))
        n = len(self.soon)
        for _ in range(n):
            callback, args = self.soon.popleft()
            self._run_callback(callback, args)

    def run(self):
        self.running = True
        while self.running:
            self.run_once()

    def stop(self):
        self.running = False
        self.wakeup()

    def close(self):
        self.remove_reader(self._wake_r)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self.ep.close()
