"""The Linux kernel's own Open vSwitch selftests, run against ovsdp.

``tools/testing/selftests/net/openvswitch/openvswitch.sh`` of Linux, with
its ``ovs-dpctl.py`` (a pyroute2 client of the ovs_* generic netlink
families), tests the kernel module: datapaths, vports, flows and their
netlink checks, upcalls, conntrack and NAT, drop reasons, psample.  Here
it runs unmodified against an ovsdp daemon: scripts/install.sh --test
puts those files (from Debian's linux-source-6.12, never part of this
repository) in /var/tmp/ovsdp-kernel-selftests/VERSION/, and every test runs
in a sandbox of its own:

- private PID, mount and network namespaces (``unshare``), so the
  namespaces the script names itself (client, server, ...) live in a
  private /run/netns, its devices in a private network namespace, and all
  of it goes when the sandbox's first process ends: the harness's own
  death (even by SIGKILL) or a timeout ends it, and the kernel removes
  the rest;
- a copy of the test files on a tmpfs of that mount namespace (the script
  writes its sandboxes into its own directory), so nothing stays on disk;
- its own ovsdp daemon, and ovsdp's netlink preload library in every
  program (as ``ovsdp run`` sets it), so every generic netlink socket
  reaches ovsdp while NETLINK_ROUTE stays the kernel's;
- shims for what asks the kernel about its module: ``modprobe`` and
  ``lsmod`` answer for openvswitch (ovsdp is that module here), and
  ``dmesg`` shows the kernel's log followed by the ovsdp daemon's log,
  which is where ovsdp's OVS_NLERR messages go (the selftests count
  "Flow actions may not be safe on all matching packets" there).

    python3 -m tests.kernel_selftests [TEST...] [--expected [--quick]] [-j N] [--keep]

With no TEST every test of openvswitch.sh runs.  ``--expected`` runs the
tests of tests/data/kernel_selftests_expected.txt (the ones ovsdp passes)
and exits 1 when one of them does not pass; ``--quick`` leaves out those
marked slow there.  ``-j N`` runs N sandboxes at a time.  Each test's result is
printed as the script prints it; a failure adds the script's verbose
output, its sandbox's logs and the daemon's warnings.  ``--keep`` keeps
the sandboxes' files in a directory on disk instead of the tmpfs.
"""

import argparse
import concurrent.futures
import ctypes
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = "/var/tmp/ovsdp-kernel-selftests"
SUBDIR = os.path.join("tools", "testing", "selftests", "net", "openvswitch")
EXPECTED = os.path.join(ROOT, "tests", "data", "kernel_selftests_expected.txt")
RESULT_RE = re.compile(r"^TEST: (.*?)\s+\[\s*(OK|FAIL|SKIP|PYLIB|NOMOD)\s*\]$")

SHIMS = {
    "modprobe": """#!/bin/sh
# ovsdp is the openvswitch module here (and its vport modules)
for a in "$@"; do
    case "$a" in openvswitch|vport_*|vport-*) exit 0 ;; esac
done
exec /sbin/modprobe "$@"
""",
    "lsmod": """#!/bin/sh
# the openvswitch module is loaded: ovsdp
echo "Module                  Size  Used by"
echo "openvswitch           163840  0"
[ -r /proc/modules ] && awk '{ printf "%-19s %8s  %s\\n", $1, $2, $3 }' /proc/modules
exit 0
""",
    "dmesg": """#!/bin/sh
# the kernel's log, then the openvswitch module's: the ovsdp daemon's
/usr/bin/dmesg "$@" 2>/dev/null
sed 's/^/[ovsdp] openvswitch: /' "$OVSDP_LOG" 2>/dev/null
exit 0
""",
}

# Runs as the first process of the sandbox's PID namespace: $1 is the test.
INNER = r"""
set -e
mount --make-rprivate /
mount -t sysfs sysfs /sys
mkdir -p /run/netns
mount -t tmpfs ovsdp-kst /run/netns
if [ -z "$KEEP" ]; then mount -t tmpfs ovsdp-kst "$WORK"; fi
cp -r "$SRC/." "$WORK/"
mkdir -p "$WORK/.bin"
for s in modprobe lsmod dmesg; do
    printf '%s' "$(printenv SHIM_$s)" > "$WORK/.bin/$s"
    chmod 755 "$WORK/.bin/$s"
done
ln -s "$PYTHON" "$WORK/.bin/python3"
cp "$LIB" "$WORK/.bin/libovsdp-netlink.so"   # a build of a newer source removes this one
LIB="$WORK/.bin/libovsdp-netlink.so"
export OVSDP_LOG="$WORK/.ovsdp.log" OVSDP_SOCKET="$WORK/.ovsdp.sock"
export PATH="$WORK/.bin:$PATH"
ip link set lo up
"$PYTHON" -m ovsdp daemon --socket "$OVSDP_SOCKET" > "$OVSDP_LOG" 2>&1 &
daemon=$!
i=0
while [ ! -S "$OVSDP_SOCKET" ]; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "ovsdp daemon did not start" >&2; exit 1; }
    sleep 0.05
done
cd "$WORK"
set +e
# -v: the script's info lines on stdout too; -p: a failed test's sandbox directory
# stays (its pause reads EOF from /dev/null), so its logs can be shown below
LD_PRELOAD="$LIB" bash ./openvswitch.sh -p -v "$1" < /dev/null 2>&1
rc=$?
if [ -d "test_$1" ]; then
    for f in "test_$1"/*; do
        [ -f "$f" ] && [ -s "$f" ] && grep -Iq . "$f" || continue     # text files only
        echo "==> $f <=="
        tail -n 60 "$f"
    done
fi
echo "==> daemon <=="
grep -E ' (WARNING|ERROR) |Traceback' "$OVSDP_LOG" | tail -n 30
kill $daemon; wait $daemon 2>/dev/null
exit $rc
"""


def source_dir():
    """The newest cached selftest directory (scripts/install.sh --test fills the cache)."""
    try:
        versions = [v for v in os.listdir(CACHE)
                    if os.path.exists(os.path.join(CACHE, v, SUBDIR, "openvswitch.sh"))]
    except OSError:
        return None
    if not versions:
        return None

    def cmp(a, b):
        if subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0:
            return -1
        return 0 if a == b else 1
    if len(versions) > 1 and shutil.which("dpkg"):
        versions.sort(key=functools.cmp_to_key(cmp))
    else:
        versions.sort()
    return os.path.join(CACHE, versions[-1], SUBDIR)


def why_not():
    if os.geteuid() != 0:
        return "needs root"
    if source_dir() is None:
        return (f"no kernel selftests in {CACHE} (scripts/install.sh --test fetches them from "
                "Debian's linux-source-6.12; it could not)")
    for t in ("unshare", "ip", "bash"):
        if not shutil.which(t):
            return f"needs {t}"
    return None


def all_tests(src):
    """The tests openvswitch.sh knows, in its order (its ``tests`` variable)."""
    with open(os.path.join(src, "openvswitch.sh")) as f:
        text = f.read()
    m = re.search(r'^tests="(.*?)"', text, re.S | re.M)
    return [ln.split()[0] for ln in m.group(1).splitlines() if ln.strip()]


def expected_tests(quick=False):
    """The tests of the expected list (``quick``: without those marked slow)."""
    names = []
    with open(EXPECTED) as f:
        for ln in f:
            words = ln.split("#")[0].split()
            if words and not (quick and "slow" in words[1:]):
                names.append(words[0])
    return names


def _die_with_parent():
    # the sandbox ends when this harness does, however it ends
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


RUNNING = set()        # the sandboxes' unshare processes (killed on the way out)


def run_one(src, lib, name, timeout, keep_dir):
    """Run test ``name`` in a sandbox: (result, seconds, output)."""
    if keep_dir:
        work = os.path.join(keep_dir, name)
        os.makedirs(work)
    else:
        work = os.path.join(CACHE, "run")      # an empty mount point for the tmpfs
        os.makedirs(work, exist_ok=True)
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=ROOT, SRC=src, LIB=lib, WORK=work,
               KEEP="1" if keep_dir else "", **{f"SHIM_{k}": v for k, v in SHIMS.items()})
    env.pop("LD_PRELOAD", None)
    t0 = time.monotonic()
    p = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
                          "--mount", "--net", "sh", "-c", INNER, "inner", name],
                         cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace",
                         preexec_fn=_die_with_parent)
    RUNNING.add(p)
    try:
        out, _ = p.communicate(timeout=timeout)
        result = None
    except subprocess.TimeoutExpired:
        p.kill()                # unshare's death kills the sandbox's PID 1, then all of it
        out, _ = p.communicate()
        result = "TIMEOUT"
    finally:
        RUNNING.discard(p)
    took = time.monotonic() - t0
    if result is None:
        results = [m.group(2) for m in map(RESULT_RE.match, out.splitlines()) if m]
        result = results[-1] if results else f"ERROR (exit {p.returncode})"
    return result, took, out


def run(args):
    why = why_not()
    if why:
        print(f"kernel_selftests: {why}", file=sys.stderr)
        return 2
    sys.path.insert(0, ROOT)
    from ovsdp import preload
    src = source_dir()
    known = all_tests(src)
    selection = list(args.tests)
    expected = expected_tests(args.quick) if args.expected else []
    selection += [t for t in expected if t not in selection]
    if not selection:
        selection = known
    unknown = [t for t in selection if t not in known]
    if unknown:
        print(f"kernel_selftests: not in {src}/openvswitch.sh: {unknown}; it has {known}",
              file=sys.stderr)
        return 2
    lib = str(preload.library_path())
    keep_dir = tempfile.mkdtemp(prefix="ovsdp-kst-") if args.keep else None
    print(f"Linux's openvswitch selftests from {os.path.relpath(src, CACHE).split(os.sep)[0]}"
          " on ovsdp", flush=True)
    results = {}
    t0 = time.monotonic()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs))
    try:
        runs = {pool.submit(run_one, src, lib, name, args.timeout, keep_dir): name
                for name in selection}
        for done in concurrent.futures.as_completed(runs):
            name = runs[done]
            result, took, out = done.result()
            results[name] = result
            print(f"{name:24} {result:8} {took:5.1f} s", flush=True)
            if result not in ("OK", "SKIP") or args.verbose:
                print("    " + "\n    ".join(ln[:300] for ln in out.rstrip().splitlines()[-150:]),
                      flush=True)
    finally:
        for p in list(RUNNING):      # interrupted: end the sandboxes now
            p.kill()
        pool.shutdown(wait=True, cancel_futures=True)
    counts = {k: sum(1 for v in results.values() if v == k) for k in ("OK", "SKIP")}
    failed = len(results) - counts["OK"] - counts["SKIP"]
    print(f"\n{counts['OK']} passed, {failed} failed, {counts['SKIP']} skipped of {len(results)}"
          f" in {time.monotonic() - t0:.0f} s (Linux's openvswitch.sh on ovsdp)")
    rc = 0
    if args.expected:
        bad = [t for t in expected if results.get(t) != "OK"]
        if bad:
            print("expected to pass, but did not: " + ", ".join(bad))
            rc = 1
    if keep_dir:
        print(f"sandboxes kept in {keep_dir}")
    return rc


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tests", nargs="*", help="tests of openvswitch.sh (default: all)")
    p.add_argument("--expected", action="store_true",
                   help="run the tests ovsdp is expected to pass; exit 1 if one does not")
    p.add_argument("--quick", action="store_true",
                   help="with --expected: leave out the tests marked slow in the list")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="tests run at the same time, each in its own sandbox (1)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per test (300)")
    p.add_argument("--keep", action="store_true",
                   help="keep every sandbox's files in a directory on disk")
    p.add_argument("-v", "--verbose", action="store_true", help="print every test's output")
    try:
        return run(p.parse_args(argv))
    except KeyboardInterrupt:
        print("kernel_selftests: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
