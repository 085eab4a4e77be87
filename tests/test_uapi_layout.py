"""uapi's struct layouts (uapi/layout.py) and the text rows that read them
(odp/key_fields.py)."""

import random
import struct

import pytest

from ovsdp import odp
from ovsdp import uapi as U
from ovsdp.netlink.attr import nla
from ovsdp.odp.key_fields import STRUCTS
from ovsdp.uapi.attrs import KEY
from ovsdp.uapi.layout import Layout


def test_a_layout_packs_and_unpacks_by_name():
    ipv4 = U.OVS_KEY_IPV4
    assert ipv4.cname == "ovs_key_ipv4" and ipv4.size == 12
    b = ipv4.pack_fields(ipv4_src=0x0A000001, ipv4_ttl=64, ipv4_frag=None)
    assert b == bytes.fromhex("0a000001 00000000 00 00 40 00")
    assert ipv4.as_dict(b) == {"ipv4_src": 0x0A000001, "ipv4_dst": 0, "ipv4_proto": 0,
                               "ipv4_tos": 0, "ipv4_ttl": 64, "ipv4_frag": 0}
    assert ipv4.unpack(b) == (0x0A000001, 0, 0, 0, 64, 0)      # still a struct.Struct
    arp = U.OVS_KEY_ARP                                          # padding has no name
    assert arp.size == 24 and arp.fields[-1] == "arp_tha"
    assert arp.pack_fields({"arp_op": 1}, arp_sha=b"\x02" * 6)[8:16] == b"\x00\x01" + b"\x02" * 6
    with pytest.raises(KeyError, match="ovs_key_arp has no field 'op'"):
        arp.pack_fields(op=1)


def test_a_layout_refuses_what_it_cannot_name():
    with pytest.raises(ValueError, match="must be padding"):
        Layout("bad", "!", ("a", "H"), (None, "H"))
    with pytest.raises(ValueError, match="one value per field"):
        Layout("bad", "!", ("a", "4H"))


def test_every_text_row_names_each_field_of_its_layout_once():
    for atype, text in STRUCTS.items():
        names = [f for _t, f, _k in text.fields]
        assert sorted(names) == sorted(text.layout.fields), text.layout.cname
        assert KEY.row(atype).ovs == text.layout.size, text.layout.cname


def _random_field(layout, i, rng):
    z = layout.zero[i]
    if isinstance(z, bytes):
        return rng.randbytes(len(z))
    return rng.getrandbits(8 * struct.calcsize(layout.formats[i]))


@pytest.mark.parametrize("atype", sorted(STRUCTS))
def test_struct_attributes_print_and_read_back_through_their_rows(atype):
    """Random exact values (the frag and label fields within their range) go
    through the formatter and the scanner and come back the same."""
    text = STRUCTS[atype]
    layout = text.layout
    rng = random.Random(atype)
    for _ in range(20):
        vals = [_random_field(layout, i, rng) for i in range(len(layout.fields))]
        d = dict(zip(layout.fields, vals, strict=True))
        for f in d:
            if f.endswith("_frag"):
                d[f] = rng.choice((0, 1, 2))
            elif f == "ipv6_label":
                d[f] &= 0xFFFFF
        key = nla(atype, layout.pack_fields(d))
        printed = odp.format_key(key)
        back, _mask = odp.parse_key(printed)
        assert back == key, printed
