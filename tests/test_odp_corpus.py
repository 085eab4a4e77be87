"""Canonical ODP strings come back unchanged (tests/data/odp_corpus.txt).

The corpus holds Open vSwitch's tests/odp.at parse-keys, parse-wc-keys and
parse-actions cases (those the kernel datapath supports), the reference
document's examples and further forms.  Each section is run through the
same conversion as ``ovsdp odp <section>``.
"""

import pathlib

import pytest

from ovsdp.cli.odp_cmd import convert

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
    assert convert(mode, line) == line
