"""The -custom-records YAML file: loading, validation and the answers it produces."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from interactsh.listeners.dns import start_dns
from interactsh.listeners.dns_records import CustomRecordsError, load_custom_records
from interactsh.listeners.dns_wire import TYPE_A, TYPE_ANY, TYPE_MX, TYPE_TXT
from interactsh.metrics import Counters
from interactsh.recording import Recorder
from interactsh.store.python_store import PythonStore

from dnsharness import DOMAIN, DnsHarness, make_config, udp

RECORDS = """\
api:
  - type: A
    value: "192.0.2.1"
    ttl: 300
aws:
  - type: a
    value: 192.0.2.9
multi:
  - type: A
    value: "198.51.100.1"
  - type: AAAA
    value: "2001:db8::2"
  - type: TXT
    value: "v=spf1 mx ~all"
  - type: MX
    value: mail1.example.com.
  - type: MX
    value: mail2.example.com
    priority: 20
cdn:
  - type: CNAME
    value: example.cdn.net
custom-ns:
  - type: NS
    value: ns1.example.com
something._domainkey:
  - type: TXT
    value: "v=DKIM1; k=rsa"
long:
  - type: TXT
    value: "{long}"
x.alibaba: "192.0.2.77"
localhost: "192.0.2.78"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "records.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def records_path(tmp_path: Path) -> Path:
    return write(tmp_path, RECORDS.format(long="L" * 600))


@pytest.fixture
def records_server(loop_kind: str, records_path: Path) -> Iterator[DnsHarness]:
    with DnsHarness(make_config(custom_records=str(records_path)), loop_kind) as server:
        yield server


def ask(server: DnsHarness, qname: str, qtype: str, **options: object) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype, **options)  # type: ignore[arg-type]
    wire = udp(query.to_wire(), server.port)
    assert wire is not None
    return dns.message.from_wire(wire)


def values(reply: dns.message.Message) -> list[str]:
    return sorted(rdata.to_text() for rrset in reply.answer for rdata in rrset)


def test_built_in_names_answer_without_a_file() -> None:
    records = load_custom_records("")
    assert [entry.value for entry in records.lookup("aws", TYPE_A)] == ["169.254.169.254"]
    assert [entry.value for entry in records.lookup("alibaba", TYPE_A)] == ["100.100.100.200"]
    assert [entry.value for entry in records.lookup("localhost", TYPE_A)] == ["127.0.0.1"]
    assert [entry.value for entry in records.lookup("oracle", TYPE_A)] == ["192.0.0.192"]
    assert records.lookup("aws", TYPE_TXT) == []


def test_structured_entries_append_and_legacy_entries_replace(records_path: Path) -> None:
    records = load_custom_records(str(records_path))
    assert [entry.value for entry in records.lookup("aws", TYPE_A)] == ["169.254.169.254", "192.0.2.9"]
    assert [entry.value for entry in records.lookup("localhost", TYPE_A)] == ["192.0.2.78"]
    assert [entry.value for entry in records.lookup("x.alibaba", TYPE_A)] == ["192.0.2.77"]
    assert len(records.lookup("multi", TYPE_ANY)) == 5
    assert [entry.ttl for entry in records.lookup("api", TYPE_A)] == [300]
    assert [entry.ttl for entry in records.lookup("multi", TYPE_MX)] == [3600, 3600]


def test_empty_file_keeps_built_ins(tmp_path: Path) -> None:
    records = load_custom_records(str(write(tmp_path, "# nothing here\n")))
    assert [entry.value for entry in records.lookup("aws", TYPE_A)] == ["169.254.169.254"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("api:\n  - value: 192.0.2.1\n", "'type' is missing"),
        ("api:\n  - type: A\n", "'value' is missing"),
        ("api:\n  - type: SRV\n    value: x\n", "record type 'SRV' is not supported"),
        ("api:\n  - type: A\n    value: 2001:db8::1\n", "is not an IPv4 address"),
        ("api:\n  - type: AAAA\n    value: 192.0.2.1\n", "is not an IPv6 address"),
        ("api: not-an-ip\n", "is not an IPv4 address"),
        ("api:\n  - type: A\n    value: 192.0.2.1\n    tll: 5\n", "unknown keys tll"),
        ("api:\n  - type: A\n    value: 192.0.2.1\n    ttl: -1\n", "'ttl' -1 is not an integer"),
        ("api:\n  - type: MX\n    value: m.example\n    priority: 70000\n", "'priority' 70000"),
        ("api:\n  - type: CNAME\n    value: a..b\n", "is not a valid host name"),
        ("api:\n  - type: NS\n    value: " + "n" * 64 + ".example\n", "labels are 1 to 63 octets"),
        ("bad name:\n  - type: A\n    value: 192.0.2.1\n", "name 'bad name' is not a domain name"),
        ("api: 5\n", "expected a list of records or an IPv4 address, got int"),
        ("- just\n- a list\n", "not a mapping of names to records"),
        ("api:\n  - type: TXT\n    value: '" + "x" * 65_001 + "'\n", "TXT value of 65001 bytes"),
        ("api: [unclosed\n", "is not valid YAML"),
    ],
)
def test_invalid_entries_are_rejected(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CustomRecordsError) as raised:
        load_custom_records(str(path))
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_every_invalid_entry_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "one:\n  - type: A\n    value: x\ntwo:\n  - type: B\n    value: y\n")
    with pytest.raises(CustomRecordsError) as raised:
        load_custom_records(str(path))
    assert "one[0]:" in str(raised.value)
    assert "two[0]:" in str(raised.value)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(CustomRecordsError, match="cannot be read"):
        load_custom_records(str(missing))


def test_start_fails_on_invalid_file(tmp_path: Path) -> None:
    config = make_config(custom_records=str(write(tmp_path, "api:\n  - type: A\n")))
    store = PythonStore(config.store_options())
    recorder = Recorder(config, store, Counters())
    with pytest.raises(CustomRecordsError, match="'value' is missing"):
        asyncio.run(start_dns(config, recorder))


def test_custom_answers(records_server: DnsHarness) -> None:
    api = ask(records_server, f"API.{DOMAIN}", "A")
    assert values(api) == ["192.0.2.1"]
    assert api.answer[0].ttl == 300
    assert api.authority == []
    assert values(ask(records_server, f"aws.{DOMAIN}", "A")) == ["169.254.169.254", "192.0.2.9"]
    assert values(ask(records_server, f"x.alibaba.{DOMAIN}", "A")) == ["192.0.2.77"]
    assert values(ask(records_server, f"y.x.alibaba.{DOMAIN}", "A")) == ["127.0.0.1"]
    assert values(ask(records_server, f"multi.{DOMAIN}", "AAAA")) == ["2001:db8::2"]
    assert values(ask(records_server, f"multi.{DOMAIN}", "MX")) == ["10 mail1.example.com.", "20 mail2.example.com."]
    assert values(ask(records_server, f"cdn.{DOMAIN}", "CNAME")) == ["example.cdn.net."]
    assert values(ask(records_server, f"custom-ns.{DOMAIN}", "NS")) == ["ns1.example.com."]
    assert values(ask(records_server, f"something._domainkey.{DOMAIN}", "TXT")) == ['"v=DKIM1; k=rsa"']


def test_unmatched_types_fall_back_to_defaults(records_server: DnsHarness) -> None:
    assert values(ask(records_server, f"cdn.{DOMAIN}", "A")) == ["127.0.0.1"]
    assert values(ask(records_server, f"api.{DOMAIN}", "MX")) == [f"1 mail.{DOMAIN}."]
    assert values(ask(records_server, DOMAIN, "A")) == ["127.0.0.1"]


def test_any_returns_every_custom_record(records_server: DnsHarness) -> None:
    reply = ask(records_server, f"multi.{DOMAIN}", "ANY")
    types = sorted(dns.rdatatype.to_text(rrset.rdtype) for rrset in reply.answer)
    assert types == ["A", "AAAA", "MX", "TXT"]
    assert sum(len(rrset) for rrset in reply.answer) == 5


def test_long_txt_is_split_into_strings(records_server: DnsHarness) -> None:
    reply = ask(records_server, f"long.{DOMAIN}", "TXT", use_edns=0, payload=1232)
    assert reply.rcode() == dns.rcode.NOERROR
    strings = reply.answer[0][0].strings
    assert [len(part) for part in strings] == [255, 255, 90]
    assert b"".join(strings) == b"L" * 600
