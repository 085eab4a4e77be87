"""``ovsdp odp parse-keys | parse-wc-keys | parse-actions | parse-filter``."""

import io

from ovsdp.cli.odp_cmd import main


def run(argv, text):
    out = io.StringIO()
    rc = main(argv, stdin=io.StringIO(text), stdout=out)
    return rc, out.getvalue()


def test_parse_keys_echoes_comments_and_blank_lines():
    text = ("# a comment\n"
            "\n"
            "in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15)  # trailing\n"
            "   \n"
            "in_port(1),eth_type(0x0800),ipv4(src=1.2.3.4)\n")
    rc, out = run(["parse-keys"], text)
    assert rc == 0
    assert out.splitlines() == [
        "# a comment",
        "",
        # Open vSwitch's round trip through struct flow fills in the metadata it
        # always puts, and a key without eth() is a packet_type(ns=1) packet.
        "recirc_id(0),dp_hash(0),skb_priority(0),in_port(1),skb_mark(0),ct_state(0),"
        "ct_zone(0),ct_mark(0),ct_label(0),packet_type(ns=0,id=0),"
        "eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15)",
        "",
        "recirc_id(0),dp_hash(0),skb_priority(0),in_port(1),skb_mark(0),ct_state(0),"
        "ct_zone(0),ct_mark(0),ct_label(0),packet_type(ns=1,id=0x800),eth_type(0x0800),"
        "ipv4(src=1.2.3.4,dst=0.0.0.0,proto=0,tos=0,ttl=0,frag=no)",
    ]


def test_parse_wc_keys_keeps_masks_and_drops_wildcards():
    rc, out = run(["parse-wc-keys"],
                  "in_port(1),eth(),eth_type(0x0800),ipv4(src=1.2.3.4/255.255.0.0,frag=no)\n"
                  "skb_mark(0/0),in_port(2),eth_type(0x0806),arp()\n")
    assert rc == 0
    assert out.splitlines() == [
        "in_port(1),eth(),eth_type(0x0800),ipv4(src=1.2.3.4/255.255.0.0,frag=no)",
        "in_port(2),eth_type(0x0806)",
    ]


def test_parse_actions_and_errors():
    rc, out = run(["parse-actions"], "1,2,3\ndrop\nbogus(1)\nct(commit,zone=5\n")
    assert rc == 0
    lines = out.splitlines()
    assert lines[:2] == ["1,2,3", "drop"]
    assert lines[2].startswith("error: syntax error at bogus(1)")
    assert lines[3].startswith("error: syntax error at ct(commit,zone=5")
    assert len(lines) == 4


def test_parse_keys_error_line():
    rc, out = run(["parse-keys"], "in_port(1),ipv4(src=1.2.3)\n")
    assert rc == 0
    assert out == "error: syntax error at ipv4(src=1.2.3) (invalid IPv4 address)\n"


def test_port_names():
    rc, out = run(["parse-actions", "--port", "eth0=1", "--port", "vx0=7"],
                  "eth0,vx0,3\n")
    assert rc == 0 and out == "eth0,vx0,3\n"
    rc, out = run(["parse-wc-keys", "--port", "eth0=1"], "in_port(eth0),eth()\n")
    assert out == "in_port(eth0),eth()\n"


def test_usage_errors():
    assert run(["bogus-mode"], "")[0] == 2
    assert run(["parse-keys", "--port", "nonumber"], "")[0] == 2


def test_parse_filter_prints_only_what_matches(capsys):
    text = ("in_port(1),eth(),eth_type(0x0800),ipv4(src=35.8.2.199,dst=1.1.1.1,proto=1,"
            "tos=0,ttl=64,frag=no),icmp(type=8,code=0)\n"
            "in_port(1),eth(),eth_type(0x0800),ipv4(src=35.8.2.41,dst=1.1.1.1,proto=1,"
            "tos=0,ttl=64,frag=no),icmp(type=8,code=0)\n"
            "in_port(2),eth_type(0x0806),arp(sip=35.8.2.199)\n")
    rc, out = run(["parse-filter", "filter=icmp,nw_src=35.8.2.199"], text)
    assert rc == 0
    assert out.splitlines() == [text.splitlines()[0]]
    # a field the flow wildcards does not filter it out (dpctl's rule)
    rc, out = run(["parse-filter", "filter=tcp,tp_src=90"], "in_port(1),eth(),eth_type(0x0800)\n")
    assert (rc, out) == (0, "in_port(1),eth(),eth_type(0x0800)\n")
    assert run(["parse-filter"], "")[0] == 1
    assert "No filter to parse" in capsys.readouterr().err
    assert run(["parse-filter", "filter=nosuch=1"], "")[0] == 1
    assert "Failed to parse filter (nosuch=1" in capsys.readouterr().err
    assert run(["parse-keys", "filter=ip"], "")[0] == 2
    assert "takes no filter" in capsys.readouterr().err
