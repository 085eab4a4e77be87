"""A few seconds of seeded fuzzing (tests/fuzz/) against a daemon subprocess.

Each test runs one fuzzer with a fixed seed and fails on any finding: the
daemon died, hung, stopped answering a fresh client (nlctrl GETFAMILY and a
datapath dump), lost the sentinel datapath/port/flow, grew its VmRSS by
more than 200 MB, answered "internal error", logged a Traceback, or broke
the framing rules of docs/protocol.md.  The findings, with seed, iteration
and hex dumps of the inputs, are the assertion message; replay a run with
``python3 -m tests.fuzz --seed S --fuzzers F`` (see tests/fuzz/__init__.py).
"""

import io
import os

import pytest

from . import fuzz
from .conftest import subprocess_daemon


def _net_admin():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> 12 & 1)
    except OSError:
        pass
    return False


pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0 or not _net_admin(),
                                 reason="needs root (CAP_NET_ADMIN) for the fuzzer's datapaths")]

SECONDS = 2.5


def run_fuzzer(tmp_path, name, seed):
    path = str(tmp_path / "fz.sock")
    out = io.StringIO()
    with subprocess_daemon(path, "--no-devices") as proc:
        findings = fuzz.run(path, seconds=SECONDS, seed=seed, fuzzers=(name,), proc=proc,
                            log_path=path + ".log", stream=out)
        alive = proc.poll() is None
    assert alive, out.getvalue()
    assert not findings, out.getvalue()
    return out.getvalue()


def test_control_messages(tmp_path):
    """Valid and mutated requests of every family and command."""
    text = run_fuzzer(tmp_path, "ctrl", seed=1)
    assert "ctrl " in text


def test_frames(tmp_path):
    """Random and mutated frames through flows, upcalls and EXECUTE."""
    text = run_fuzzer(tmp_path, "frame", seed=2)
    assert "frame " in text


def test_the_harness_notices_a_dead_daemon(tmp_path):
    """The batch check fails, with the last input, when the daemon is gone."""
    path = str(tmp_path / "fz.sock")
    out = io.StringIO()
    with subprocess_daemon(path, "--no-devices") as proc:
        h = fuzz.Harness(fuzz.ExternalDaemon(path, proc, path + ".log"), seed=3, stream=out)
        h.setup()
        h.check()
        h.history.append(fuzz.Input("test", 1, "a last input", b"\x10\x00\x00\x00"))
        proc.kill()
        proc.wait()
        with pytest.raises(fuzz.Fatal) as e:
            h.check()
    assert e.value.finding.kind == "crash"
    assert "seed 3" in out.getvalue() and "a last input" in out.getvalue()
