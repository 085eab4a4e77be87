"""Open vSwitch's own kernel-datapath test suite, run against ovsdp.

``tests/system-kmod-testsuite`` of Open vSwitch (shipped generated in
Debian's openvswitch-source) tests ovs-vswitchd on the Linux kernel
module: bridges, ports, flows, tunnels, meters, conntrack, with real
namespaces and traffic.  Here it runs unmodified against an ovsdp daemon,
with ovsdp's netlink preload library in every program it starts and a
``modprobe`` that answers for the ``openvswitch`` module (ovsdp is that
module here).  Every other program is the machine's own.

The suite names its namespaces and devices itself (at_ns0, br0,
ovs-system), so it runs in a mount namespace of its own with a private
/run/netns, inside a network namespace of its own, with its own daemon:
nothing it makes can meet anything else on the machine.

    python3 -m tests.ovs_kmod_suite [--expected [--quick]] [-k KEYWORDS] [TEST-NUMBERS...]

``--expected`` runs the tests listed in tests/data/ovs_kmod_expected.txt
(the ones ovsdp passes) and exits 1 when one of them fails.  Results are
printed as the suite prints them, then a summary.
"""

import argparse
import fcntl
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARBALL = "/usr/src/openvswitch/openvswitch.tar.gz"
CACHE = "/var/tmp/ovsdp-ovs-kmod-suite"
EXPECTED = os.path.join(ROOT, "tests", "data", "ovs_kmod_expected.txt")
RESULT_RE = re.compile(r"^\s*(\d+): (.*?)\s+(ok|FAILED \(.*\)|skipped \(.*\)|expected failure"
                       r".*)$")

MODPROBE = """#!/bin/sh
# ovsdp is the openvswitch module here (and its vport modules).  Unloading it
# (each test's cleanup) frees what the module kept for the namespace beyond
# its datapaths: the conntrack zone limits go back to none.
remove=0
for a in "$@"; do
    case "$a" in -r|--remove) remove=1 ;; esac
done
for a in "$@"; do
    case "$a" in
    openvswitch)
        [ $remove = 1 ] && "$PYTHON" -c "
from ovsdp.client.dpif import Dpif
with Dpif() as d:
    zones = [z for z, _limit, _count in d.ct_get_limits() if z != -1]
    if zones:
        d.ct_del_limits(zones)
    d.ct_set_limits([(-1, 0)])
"
        exit 0 ;;
    nfnetlink_cttimeout)
        # built into ovsdp; unloading it drops the namespace's timeout
        # policies (cttimeout_net_exit): the unused ones, the rest stay in use
        [ $remove = 1 ] && "$PYTHON" -c "
from ovsdp.client.conntrack import CtSocket
with CtSocket() as s:
    s.del_timeout_policy()
"
        exit 0 ;;
    vport_*) exit 0 ;;
    esac
done
exec /sbin/modprobe "$@"
"""

# Open vSwitch's test helper binary is not in Debian's packages; its one use
# here, "ovstest test-netlink-conntrack flush [zone]" (CHECK_CONNTRACK's
# cleanup, the kernel's conntrack table emptied after each test), done
# through ovsdp's ctnetlink
OVSTEST = """#!/bin/sh
[ "$1" = test-netlink-conntrack ] && [ "$2" = flush ] || {
    echo "ovstest: only 'test-netlink-conntrack flush [zone=N]' here" >&2; exit 1; }
zone=$(echo "${3:-}" | sed -n 's/^zone=//p')
exec "$PYTHON" -c "
import sys
from ovsdp.client.conntrack import CtSocket
with CtSocket() as s:
    s.flush(zone=int(sys.argv[1]) if sys.argv[1] else None)
" "$zone"
"""


def why_not():
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists(TARBALL):
        return f"needs {TARBALL} (Debian package openvswitch-source)"
    for t in ("ovs-vswitchd", "ovsdb-server", "unshare", "ip"):
        if not shutil.which(t):
            return f"needs {t}"
    return None


def source_tree():
    """The unpacked source (cached by the tarball's size and time)."""
    st = os.stat(TARBALL)
    top = os.path.join(CACHE, f"{st.st_size}-{int(st.st_mtime)}")
    tree = os.path.join(top, "openvswitch")
    if not os.path.exists(os.path.join(tree, "tests", "system-kmod-testsuite")):
        os.makedirs(top, exist_ok=True)
        with tarfile.open(TARBALL) as t:
            t.extractall(top, filter="tar")
    tests = os.path.join(tree, "tests")
    with open(os.path.join(tests, "atconfig"), "w") as f:
        f.write(f"""at_testdir='tests'
abs_builddir='{tests}'
at_srcdir='.'
abs_srcdir='{tests}'
at_top_srcdir='..'
abs_top_srcdir='{tree}'
at_top_build_prefix='../'
abs_top_builddir='{tree}'
AUTOTEST_PATH='utilities:vswitchd:ovsdb:vtep:tests:ipsec::'
SHELL=${{CONFIG_SHELL-'/bin/sh'}}
""")
    with open(os.path.join(tests, "atlocal.in")) as f:
        atlocal = f.read()
    for k, v in (("HAVE_OPENSSL", "yes"), ("OPENSSL_SUPPORTS_SNI", "yes"),
                 ("HAVE_UNBOUND", "no"), ("EGREP", "grep -E"),
                 # the Python with the test extras (pyftpdlib, tftpy for test-l7.py)
                 ("PYTHON3", sys.executable),
                 ("CFLAGS", "")):
        atlocal = atlocal.replace(f"@{k}@", v)
    with open(os.path.join(tests, "atlocal"), "w") as f:
        f.write(atlocal)
    return tree


def expected_tests(quick=False):
    """The names in the expected list; ``quick``: without those marked
    ``[long]`` (the full list is for a run by hand, the quick one for CI)."""
    names = []
    with open(EXPECTED) as f:
        for ln in f:
            name = ln.split("#")[0].strip()
            if not name:
                continue
            long_ = name.endswith("[long]")
            if long_:
                name = name[:-len("[long]")].strip()
            if not (quick and long_):
                names.append(name)
    return names


def numbers_of(tree, names):
    """The suite's test numbers of the tests named ``names``."""
    out = subprocess.run(["./system-kmod-testsuite", "--list"], cwd=os.path.join(tree, "tests"),
                         capture_output=True, text=True).stdout
    by_name = {}
    for ln in out.splitlines():
        m = re.match(r"^\s*(\d+): \S+ (.*)$", ln)
        if m:
            by_name[m.group(2).strip()] = m.group(1)
    missing = [n for n in names if n not in by_name]
    if missing:
        raise SystemExit(f"not in this suite: {missing}")
    return [by_name[n] for n in names]


# The script that runs inside the private mount and network namespaces.
INNER = r"""
set -e
mount --make-rprivate /
mkdir -p /run/netns
mount -t tmpfs ovsdp-kmod /run/netns
# the kernel configuration the suite checks (CHECK_CONNTRACK_TIMEOUT) is
# ovsdp's: conntrack timeout policies are built in
mkdir -p "$WORK/boot"
echo CONFIG_NF_CONNTRACK_TIMEOUT=y > "$WORK/boot/config-$(uname -r)"
mount --bind "$WORK/boot" /boot
ip link set lo up
"$PYTHON" -m ovsdp daemon --socket "$OVSDP_SOCKET" > "$WORK/ovsdp.log" 2>&1 &
daemon=$!
i=0
while [ ! -S "$OVSDP_SOCKET" ]; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "ovsdp daemon did not start" >&2; exit 1; }
    sleep 0.05
done
cd "$TESTS"
set +e
LD_PRELOAD="$LIB" ./system-kmod-testsuite AUTOTEST_PATH="$SHIM:/usr/sbin:/usr/bin:/sbin:/bin" \
    "$@"
rc=$?
kill $daemon; wait $daemon 2>/dev/null
exit $rc
"""


def run(args):
    why = why_not()
    if why:
        print(f"ovs_kmod_suite: {why}", file=sys.stderr)
        return 2
    sys.path.insert(0, ROOT)
    from ovsdp import preload
    os.makedirs(CACHE, exist_ok=True)
    lock = open(os.path.join(CACHE, "lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)        # one run at a time uses the unpacked tree
    tree = source_tree()
    selection = list(args.tests)
    if args.expected:
        selection += numbers_of(tree, expected_tests(args.quick))
    if args.keywords:
        selection += ["-k", args.keywords]
    work = tempfile.mkdtemp(prefix="ovsdp-kmod-")
    shim = os.path.join(work, "bin")
    os.mkdir(shim)
    with open(os.path.join(shim, "modprobe"), "w") as f:
        f.write(MODPROBE)
    os.chmod(os.path.join(shim, "modprobe"), 0o755)
    with open(os.path.join(shim, "ovstest"), "w") as f:
        f.write(OVSTEST)
    os.chmod(os.path.join(shim, "ovstest"), 0o755)
    netns = f"ovk{secrets.token_hex(3)}"
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=ROOT, WORK=work, SHIM=shim,
               TESTS=os.path.join(tree, "tests"), LIB=str(preload.library_path()),
               OVSDP_SOCKET=os.path.join(work, "ovsdp.sock"))
    t0 = time.monotonic()
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        p = subprocess.run(["ip", "netns", "exec", netns, "unshare", "--mount", "sh", "-c",
                            INNER, "inner", *selection], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=args.timeout)
        output = p.stdout
    finally:
        pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True,
                              text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", netns])
    took = time.monotonic() - t0
    results = {}
    failed = []
    for ln in output.splitlines():
        m = RESULT_RE.match(ln)
        if m:
            results[m.group(2).strip()] = m.group(3).split()[0]
            print(ln, flush=True)
            if m.group(3).startswith("FAILED"):
                failed.append(int(m.group(1)))
    for n in failed:
        print(why_failed(tree, n))
    if failed:
        print(daemon_complaints(os.path.join(work, "ovsdp.log")))
    counts = {k: sum(1 for v in results.values() if v == k) for k in ("ok", "FAILED",
                                                                      "skipped")}
    print(f"\n{counts['ok']} passed, {counts['FAILED']} failed, {counts['skipped']} skipped "
          f"of {len(results)} in {took:.0f} s (Open vSwitch's system-kmod-testsuite on ovsdp)")
    rc = 0
    if args.expected:
        bad = [n for n in expected_tests(args.quick) if results.get(n) != "ok"]
        if bad:
            print("expected to pass, but did not:\n  " + "\n  ".join(bad))
            rc = 1
    if not results:
        print(output[-3000:])
        rc = 1
    if args.keep:
        print(f"logs: {os.path.join(tree, 'tests', 'system-kmod-testsuite.dir')}, {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return rc


def why_failed(tree, n, lines=12):
    """The first lines of what test ``n``'s checks saw differ (its log's diff)."""
    path = os.path.join(tree, "tests", "system-kmod-testsuite.dir", f"{n:03d}",
                        "system-kmod-testsuite.log")
    try:
        with open(path, errors="replace") as f:
            diff = [ln.rstrip()[:300] for ln in f if ln[:1] in "+-" and ln[:3] not in
                    ("+++", "---")]
    except OSError:
        return f"  {n}: no log"
    return f"  {n}: " + ("\n     ".join(diff[:lines]) or "no diff in its log")


def daemon_complaints(path, lines=20):
    """The ovsdp daemon's warnings and errors of the run."""
    try:
        with open(path, errors="replace") as f:
            bad = [ln.rstrip()[:300] for ln in f if " WARNING " in ln or " ERROR " in ln
                   or "Traceback" in ln]
    except OSError:
        return "  (no daemon log)"
    return "  ovsdp daemon: " + ("\n    ".join(bad[-lines:]) or "no warnings")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tests", nargs="*", help="test numbers or ranges (as the suite takes them)")
    p.add_argument("--expected", action="store_true",
                   help="run the tests ovsdp is expected to pass; exit 1 if one fails")
    p.add_argument("--quick", action="store_true",
                   help="with --expected: leave out the tests marked [long] in the list")
    p.add_argument("-k", "--keywords", help="the suite's keyword selection (e.g. '!conntrack')")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
