"""Linux's own Open vSwitch selftests on ovsdp: the tests ovsdp passes stay passing.

Runs tests/kernel_selftests.py --expected --quick: the tests named in
tests/data/kernel_selftests_expected.txt, but those marked slow (run them
with ``python3 -m tests.kernel_selftests --expected``), each in a sandbox
of its own (PID, mount and network namespaces, its own daemon).
"""

import subprocess
import sys

import pytest

from . import kernel_selftests
from .conftest import ROOT

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(kernel_selftests.why_not() is not None,
                                 reason=kernel_selftests.why_not() or "")]


def test_linux_openvswitch_selftests_pass_what_ovsdp_passes():
    r = subprocess.run([sys.executable, "-m", "tests.kernel_selftests", "--expected", "--quick",
                        "-j", "2", "--timeout", "60"], cwd=ROOT, capture_output=True, text=True,
                       errors="replace", timeout=240)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " 0 failed" in r.stdout, r.stdout[-3000:]


def test_the_conntrack_selftests_pass():
    """ct_connect_v4 and nat_connect_v4 (issue 12's acceptance tests, with
    nat_related_v4 above): about 140 s each by the tests' own design, so
    both at once."""
    slow = [t for t in kernel_selftests.expected_tests() if t not in
            kernel_selftests.expected_tests(quick=True)]
    assert {"ct_connect_v4", "nat_connect_v4"} <= set(slow)
    r = subprocess.run([sys.executable, "-m", "tests.kernel_selftests", *slow, "-j", "2",
                        "--timeout", "280"], cwd=ROOT, capture_output=True, text=True,
                       errors="replace", timeout=600)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " 0 failed" in r.stdout and "0 skipped" in r.stdout, r.stdout[-3000:]
