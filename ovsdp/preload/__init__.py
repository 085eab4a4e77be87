"""The netlink preload library: building it and finding it.

``af_netlink.c`` is the one piece of ovsdp written in C: it is loaded into
unmodified programs (``LD_PRELOAD``) and carries their generic netlink
sockets to the daemon (docs/protocol.md, section 8).  It is compiled on the
machine with the system compiler, by ``scripts/install.sh`` or on first use,
into a file named after a hash of its source and flags, so a stale build is
never loaded.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("af_netlink.c")
CFLAGS = ["-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror"]
LIBS = ["-ldl", "-lpthread"]
NAME = "libovsdp-netlink"


class BuildError(RuntimeError):
    pass


def _digest():
    h = hashlib.sha256(SOURCE.read_bytes())
    h.update(" ".join(CFLAGS + LIBS).encode())
    return h.hexdigest()[:12]


def _dirs():
    """Where a build may live, in order: OVSDP_PRELOAD_DIR, beside the
    source, then a cache directory of the user."""
    env = os.environ.get("OVSDP_PRELOAD_DIR")
    if env:
        yield Path(env)
    yield SOURCE.parent
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    yield Path(cache) / "ovsdp"


def library_path(build=True):
    """The built library's path; builds it when missing (``build``)."""
    name = f"{NAME}-{_digest()}.so"
    for d in _dirs():
        if (d / name).is_file():
            return d / name
    if not build:
        raise BuildError("the netlink preload library is not built (run 'ovsdp preload-path')")
    errors = []
    for d in _dirs():
        try:
            d.mkdir(parents=True, exist_ok=True)
            return _build(d, name)
        except OSError as e:
            errors.append(f"{d}: {e.strerror or e}")
    raise BuildError("cannot build the netlink preload library: " + "; ".join(errors))


def _compiler():
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    raise BuildError("no C compiler found (install gcc, or run scripts/install.sh)")


def _build(d, name):
    cc = _compiler()
    fd, tmp = tempfile.mkstemp(prefix=f".{NAME}-", suffix=".so", dir=d)
    os.close(fd)
    try:
        r = subprocess.run([cc, *CFLAGS, "-o", tmp, str(SOURCE), *LIBS],
                           capture_output=True, text=True)
        if r.returncode:
            raise BuildError(f"{cc} failed:\n{r.stderr.strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, d / name)      # atomic: a concurrent build wins or loses whole
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    for old in d.glob(f"{NAME}-*.so"):  # builds of other sources
        if old.name != name:
            try:
                old.unlink()
            except OSError:
                pass
    return d / name


def environment(env=None, socket=None):
    """``env`` (default: this process's) with the library preloaded."""
    env = dict(os.environ if env is None else env)
    lib = str(library_path())
    pre = [p for p in env.get("LD_PRELOAD", "").replace(":", " ").split() if p != lib]
    env["LD_PRELOAD"] = " ".join([lib, *pre])
    if socket:
        env["OVSDP_SOCKET"] = os.path.abspath(socket)
    return env
