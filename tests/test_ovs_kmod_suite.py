"""Open vSwitch's kernel test suite on ovsdp: the tests ovsdp passes stay passing.

Runs tests/ovs_kmod_suite.py --expected --quick (the tests named in
tests/data/ovs_kmod_expected.txt but those marked [long]), each in the
suite's own namespaces, inside a private network and mount namespace.
"""

import subprocess
import sys

import pytest

from . import ovs_kmod_suite
from .conftest import ROOT

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(ovs_kmod_suite.why_not() is not None,
                                 reason=ovs_kmod_suite.why_not() or "")]


def test_open_vswitchs_kernel_suite_passes_what_ovsdp_passes():
    r = subprocess.run([sys.executable, "-m", "tests.ovs_kmod_suite", "--expected", "--quick"],
                       cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " 0 failed" in r.stdout, r.stdout[-3000:]
