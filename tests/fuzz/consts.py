"""Names, limits and objects of the fuzzer's own, shared by all its modules."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

try:
    from ovsdp import uapi as _D
    DUMMY_FAMILY = _D.OVSDP_DUMMY_FAMILY
    DUMMY_INJECT, DUMMY_FETCH = _D.OVSDP_DUMMY_CMD_INJECT, _D.OVSDP_DUMMY_CMD_FETCH
    DUMMY_PORT_NAME, DUMMY_PACKET = _D.OVSDP_DUMMY_ATTR_PORT_NAME, _D.OVSDP_DUMMY_ATTR_PACKET
except ImportError:          # pragma: no cover - docs/protocol.md section 6
    DUMMY_FAMILY, DUMMY_INJECT, DUMMY_FETCH, DUMMY_PORT_NAME, DUMMY_PACKET = \
        "ovsdp_dummy", 1, 2, 1, 2

CORPUS = os.path.join(ROOT, "tests", "data", "odp_corpus.txt")
MAX_DGRAM = 131072             # the largest datagram (docs/protocol.md 1.2)
PING_SEQ = 0x7E000000          # the harness's pings (a seq no fuzzer uses)

FZKEEP, FZKEEP_PORT, FZKEEP_PORT_NO = "fzkeep", "fzkeep1", 7
FZKEEP_UFID = b"fzkeep-sentinel\x01"
FZKEEP_IFINDEX = 0x5A5A5A5A          # far (in bits) from the virtual ifindexes 0x4000000x
FZKEEP_KEY = ("in_port(7),eth(src=02:00:00:00:00:07,dst=02:00:00:00:00:08),"
              "eth_type(0x88b5)")
FZKEEP_FRAME = bytes.fromhex("020000000008020000000007") + b"\x88\xb5" + b"fzkeep" + bytes(40)
FZFRAME, FZFRAME_IFINDEX = "fzframe", 0x3C3C3C3C
FZFRAME_PORTS = ["fzfr1", "fzfr2", "fzfr3", "fzfr4"]
# more ports of fzframe, to send to (never to inject into): (name, type, options)
FZFRAME_MORE = [("fzfrvx", "vxlan", 4789), ("fzfrgn", "geneve", 6081), ("fzfrgr", "gre", None),
                ("fzfrin", "internal", None)]

# Defects known when the fuzzer was written; --avoid-known keeps away from them.
KNOWN = {
    "nonutf8": "non-UTF-8 datapath/vport names (dumps wedged with EBUSY)",
    "bignest": "nested attributes over 64 KiB in answers (struct.error)",
    "noread": "a client that never reads (unbounded reply queue)",
}
