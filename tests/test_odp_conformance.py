"""Open vSwitch's odp.at vectors against ``ovsdp odp`` (tests/data/odp_conformance/).

The vectors are odp.at's own inputs and what a real ``ovstest test-odp``
prints for them (README.md there).  Each category of each file is one test:
every vector must come out as OVS prints it, or fail to parse where OVS's
does (the error text is ovsdp's own).  Categories named ``x-...`` are
informative (odp.at never runs them) and are not checked.

What ovsdp does not do yet is listed in GAPS with the reason; a listed
category is checked to still fail somewhere, so that the list shrinks as
the gaps close.
"""

import collections
import pathlib

import pytest

from ovsdp.cli.odp_cmd import convert, parse_filter
from ovsdp.odp import OdpParseError

DATA = pathlib.Path(__file__).parent / "data" / "odp_conformance"
MODES = {"odp-keys.txt": "parse-keys", "odp-keys-limits.txt": "parse-keys",
         "odp-wc-keys.txt": "parse-wc-keys", "odp-actions.txt": "parse-actions",
         "odp-actions-limits.txt": "parse-actions", "odp-filter.txt": "parse-filter"}

GAPS = {}                   # (file, category) -> why ovsdp does not pass it yet


def _load():
    out = collections.OrderedDict()
    for path in sorted(DATA.glob("*.txt")):
        cat = None
        for line in path.read_text().splitlines():
            if line.startswith("# "):
                cat, _, text = line[2:].partition(" ")
                HEADERS[(path.name, cat)] = text
                out[(path.name, cat)] = []
            elif line and cat is not None:
                inp, _, exp = line.partition("\t")
                out[(path.name, cat)].append((inp, exp or inp))
    return out


HEADERS = {}                # (file, category) -> the text after its name
VECTORS = _load()


def _check(mode, vectors, flt=None):
    """The vectors that do not come out as OVS prints them."""
    bad = []
    for inp, exp in vectors:
        try:
            got = convert(mode, inp, flt=flt)
        except OdpParseError as e:
            got = f"!error {e}"
        if got is None:
            got = "!filtered"
        if exp.startswith("!error"):
            ok = got.startswith("!error")
        else:
            ok = got == exp
        if not ok:
            bad.append((inp, exp, got))
    return bad


def test_the_vectors_are_there():
    assert sum(len(v) for v in VECTORS.values()) > 700
    assert set(MODES) == {k[0] for k in VECTORS}
    assert set(GAPS) <= set(VECTORS), set(GAPS) - set(VECTORS)


@pytest.mark.parametrize("name,category", [k for k in VECTORS if not k[1].startswith("x-")],
                         ids=lambda v: v)
def test_category(name, category):
    mode = MODES[name]
    flt = parse_filter(HEADERS[(name, category)]) if mode == "parse-filter" else None
    bad = _check(mode, VECTORS[(name, category)], flt)
    gap = GAPS.get((name, category))
    if gap is not None:
        assert bad, f"{name} [{category}] passes now: take it out of GAPS ({gap})"
        return
    assert not bad, "\n".join(f"in:  {i[:200]}\nexp: {e[:200]}\ngot: {g[:200]}"
                              for i, e, g in bad[:5])
