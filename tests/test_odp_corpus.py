"""Canonical ODP strings come back unchanged (tests/data/odp_corpus.txt).

The corpus holds Open vSwitch's tests/odp.at parse-keys, parse-wc-keys and
parse-actions cases (those the kernel datapath supports), the reference
document's examples and further forms.  The wc-keys and actions sections
are run through the same conversion as ``ovsdp odp <section>``; the
parse-keys section through the key codec alone (parse_key, then
format_key), since ``ovsdp odp parse-keys`` adds Open vSwitch's round trip
through struct flow (tests/test_odp_conformance.py checks that).
"""

import pathlib

import pytest

from ovsdp.cli.odp_cmd import convert
from ovsdp.odp import format_key, parse_key

CORPUS = pathlib.Path(__file__).parent / "data" / "odp_corpus.txt"


def _cases():
    section = None
    for n, line in enumerate(CORPUS.read_text().splitlines(), 1):
        if line.startswith("["):
            section = line.strip("[]")
        elif line and not line.startswith("#"):
            yield pytest.param(section, line, id=f"{section}:{n}")


CASES = list(_cases())


def test_corpus_is_big_enough():
    sections = {c.values[0] for c in CASES}
    assert sections == {"parse-keys", "parse-wc-keys", "parse-actions"}
    assert len(CASES) > 500


@pytest.mark.parametrize("mode,line", CASES)
def test_canonical_string_round_trips(mode, line):
    if mode == "parse-keys":
        assert format_key(parse_key(line)[0]) == line
    else:
        assert convert(mode, line) == line
