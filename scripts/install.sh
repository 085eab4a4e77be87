#!/bin/sh
# Install what ovsdp needs on a Debian/Ubuntu machine (run as root).
#   scripts/install.sh          the demo's needs: iproute2, ping, ethtool, iperf3, ovsdp itself
#   scripts/install.sh --ovs    plus Open vSwitch's own programs (for 'ovsdp ovs start')
#   scripts/install.sh --test   plus the test and benchmark dependencies
set -eu
cd "$(dirname "$0")/.."
want_test=0
want_ovs=0
[ "${1:-}" = "--test" ] && want_test=1 && want_ovs=1
[ "${1:-}" = "--ovs" ] && want_ovs=1

# gcc, libc6-dev: the netlink preload library (ovsdp run, ovsdp ovs) is built here
pkgs="iproute2 iputils-ping ethtool iperf3 procps gcc libc6-dev"
if [ "$want_ovs" = 1 ]; then
    # openvswitch-switch: ovs-vswitchd and friends on ovsdp, the userspace
    # datapath reference of the benchmark, ovs-dpctl-top for the text format
    pkgs="$pkgs openvswitch-switch openvswitch-common"
fi
if [ "$want_test" = 1 ]; then
    # openvswitch-source: Open vSwitch's kernel test suite (tests/ovs_kmod_suite.py),
    # which also uses nc and tcpdump
    pkgs="$pkgs util-linux mininet openvswitch-source netcat-openbsd tcpdump"
    # wget, lftp, net-tools (netstat): the suite's FTP/TFTP (conntrack helper) tests
    pkgs="$pkgs wget lftp net-tools"
    # conntrack: the conntrack tool over ovsdp's ctnetlink (tests/test_ctnetlink_netns.py)
    pkgs="$pkgs conntrack"
    # iputils-arping: the kernel's openvswitch selftests (tests/kernel_selftests.py)
    pkgs="$pkgs iputils-arping"
fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends $missing >/dev/null
        # the openvswitch-switch package must not leave a system OVS running
        # (it would hold Open vSwitch's directories that 'ovsdp ovs start' uses)
        if [ "$want_ovs" = 1 ] && [ -x /usr/share/openvswitch/scripts/ovs-ctl ]; then
            /usr/share/openvswitch/scripts/ovs-ctl stop >/dev/null 2>&1 || true
        fi
    else
        echo "install.sh: please install:$missing" >&2
        exit 1
    fi
fi
target="."
[ "$want_test" = 1 ] && target=".[test]"
# (a Debian system Python refuses pip installs without --break-system-packages)
python3 -m pip install -q --disable-pip-version-check -e "$target" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages -e "$target"
# make the new 'ovsdp' command visible where a pyenv Python is in use
command -v pyenv >/dev/null 2>&1 && pyenv rehash 2>/dev/null || true
# build the netlink preload library with the system compiler
python3 -m ovsdp preload-path >/dev/null
# the Linux kernel's own Open vSwitch selftests (tests/kernel_selftests.py): only
# tools/testing/selftests/{net/openvswitch,net/lib.sh,kselftest} of Debian's
# linux-source-6.12 (bookworm-security or bookworm-backports), fetched once into a
# versioned cache with an apt state of its own (the machine's sources, lists and
# packages stay as they are); never part of this repository
ks=/var/tmp/ovsdp-kernel-selftests
if [ "$want_test" = 1 ] && command -v apt-get >/dev/null 2>&1 \
        && ! ls "$ks"/*/tools/testing/selftests/net/openvswitch/openvswitch.sh >/dev/null 2>&1; then
    t=$(mktemp -d) && chmod 755 "$t" && mkdir -p "$t/lists/partial" "$t/cache/archives/partial"
    printf "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s main\n" \
        "http://deb.debian.org/debian bookworm-backports" \
        "http://deb.debian.org/debian-security bookworm-security" > "$t/sources.list"
    o="-o Dir::Etc::SourceList=$t/sources.list -o Dir::Etc::SourceParts=$t/none"
    o="$o -o Dir::State::Lists=$t/lists -o Dir::Cache=$t/cache"
    if (cd "$t" && apt-get -q $o update && apt-get -q $o download linux-source-6.12) \
            >"$t/log" 2>&1; then
        deb=$(ls "$t"/linux-source-6.12_*.deb)
        v=$(dpkg-deb -f "$deb" Version)
        rm -rf "$ks/$v.part" && mkdir -p "$ks/$v.part"
        dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards '*.tar.xz' \
            | tar -xJ -C "$ks/$v.part" --strip-components=1 --wildcards \
                '*/tools/testing/selftests/net/openvswitch/*' \
                '*/tools/testing/selftests/net/lib.sh' '*/tools/testing/selftests/kselftest/*' \
            && mv "$ks/$v.part" "$ks/$v"
    else
        echo "install.sh: no linux-source-6.12 (tests/test_kernel_selftests.py will skip):" >&2
        tail -3 "$t/log" >&2
    fi
    rm -rf "$t"
fi
