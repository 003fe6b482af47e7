"""Decoding LDAP requests and rendering upstream's raw-request text, checked against ldap3's encoder."""

from __future__ import annotations

import pytest
from interactsh.listeners.ber import BerError
from interactsh.listeners.ldap_filter import MAX_FILTER_DEPTH, escape_assertion_value
from interactsh.listeners.ldap_ops import (
    BindRequest,
    SearchRequest,
    UnknownOperation,
    decode_message,
    describe,
)
from ldap_harness import ldap3_search, message, simple_bind, tlv


def search_text(search_filter: str, attributes: list[str] | None = None) -> str:
    text, truncated = describe(decode_message(ldap3_search("dc=x", search_filter, attributes)).operation, 65536)
    assert not truncated
    return text


def filter_lines(search_filter: str) -> tuple[str, str]:
    lines = search_text(search_filter).splitlines()
    return lines[2].removeprefix("Filter="), lines[3].removeprefix("FilterString=")


def test_search_text_matches_upstream_layout() -> None:
    text = search_text("(objectClass=*)", ["cn", "mail"])
    expected = "Type=Search\nBaseDn=dc=x\nFilter=objectClass\nFilterString=(objectClass=*)\nAttributes=[cn mail]\nTimeLimit=0\n"
    assert text == expected


def test_search_time_limit_and_no_attributes() -> None:
    operation = decode_message(ldap3_search("", "(cn=x)", time_limit=30)).operation
    assert isinstance(operation, SearchRequest)
    text, _ = describe(operation, 4096)
    assert text.endswith("Attributes=[]\nTimeLimit=30\n")
    assert "BaseDn=\n" in text


@pytest.mark.parametrize(
    ("search_filter", "go_form", "rfc4515"),
    [
        ("(cn=x)", "{cn x}", "(cn=x)"),
        ("(&(cn=a*b*c)(!(x>=1)))", "[{cn [a b c]} {{x 1}}]", "(&(cn=a*b*c)(!(x>=1)))"),
        ("(|(y<=2)(z~=3))", "[{y 2} {z 3}]", "(|(y<=2)(z~=3))"),
        ("(cn=*mid*)", "{cn [mid]}", "(cn=*mid*)"),
        ("(cn=start*)", "{cn [start]}", "(cn=start*)"),
        ("(cn=*end)", "{cn [end]}", "(cn=*end)"),
        ("(cn:dn:2.4.6.8.10:=Dino)", "{2.4.6.8.10 cn Dino true}", "(cn:dn:2.4.6.8.10:=Dino)"),
        ("(:caseExactMatch:=x)", "{caseExactMatch <nil> x false}", "(:caseExactMatch:=x)"),
        ("(sn=\u00e9t\u00e9)", "{sn \u00e9t\u00e9}", "(sn=\u00e9t\u00e9)"),
    ],
)
def test_filter_renderings(search_filter: str, go_form: str, rfc4515: str) -> None:
    assert filter_lines(search_filter) == (go_form, rfc4515)


def test_filter_string_escapes_special_octets() -> None:
    go_form, rfc4515 = filter_lines(r"(cn=a\2ab\28\29\5c\00)")
    assert rfc4515 == r"(cn=a\2ab\28\29\5c\00)"
    assert go_form == "{cn a*b()\\\x00}"


def test_escape_invalid_utf8_as_hex() -> None:
    assert escape_assertion_value(b"ok\xff\xfe") == r"ok\ff\fe"
    assert escape_assertion_value("caf\u00e9".encode()) == "caf\u00e9"


def test_filter_depth_limit() -> None:
    inner = tlv(0x87, b"cn")
    for _ in range(MAX_FILTER_DEPTH + 5):
        inner = tlv(0xA2, inner)
    raw = _search_with_filter(inner)
    with pytest.raises(BerError, match="deeper than"):
        describe(decode_message(raw).operation, 1 << 20)


@pytest.mark.parametrize(
    "bad_filter",
    [
        tlv(0x8A, b"x"),  # choice 10 is undefined
        tlv(0xA7, b""),  # present must be primitive
        tlv(0xA3, tlv(0x04, b"cn")),  # equality without a value
        tlv(0xA2, tlv(0x87, b"a") + tlv(0x87, b"b")),  # not with two filters
        tlv(0xA4, tlv(0x04, b"cn") + tlv(0x30, tlv(0x82, b"z") + tlv(0x80, b"a"))),  # final before initial
        tlv(0xA4, tlv(0x04, b"cn") + tlv(0x30, b"")),  # no substrings
        tlv(0xA9, tlv(0x84, b"\x01")),  # extensible without a value
    ],
)
def test_invalid_filters_raise_parse_error(bad_filter: bytes) -> None:
    with pytest.raises(BerError):
        describe(decode_message(_search_with_filter(bad_filter)).operation, 4096)


def test_truncation_at_limit() -> None:
    attributes = [f"attribute{index}" for index in range(500)]
    operation = decode_message(ldap3_search("dc=x", "(cn=x)", attributes)).operation
    text, truncated = describe(operation, 200)
    assert truncated
    assert len(text) == 200
    assert text.startswith("Type=Search\nBaseDn=dc=x\n")


def test_long_list_of_empty_items_is_cut() -> None:
    # 50,000 attributes without values print nothing, but the walk still stops early.
    attribute = tlv(0x30, tlv(0x04, b"a") + tlv(0x31, b""))
    raw = message(1, tlv(0x68, tlv(0x04, b"cn=x") + tlv(0x30, attribute * 50_000)))
    text, truncated = describe(decode_message(raw).operation, 4096)
    assert truncated
    assert text == "Type=Add\nEntity=cn=x\n"


def test_bind_text() -> None:
    operation = decode_message(simple_bind(3, "cn=admin,dc=x", "secret")).operation
    assert isinstance(operation, BindRequest)
    text, _ = describe(operation, 4096)
    assert text == "Type=Bind\nAuthenticationChoice=simple\nUser=cn=admin,dc=x\nPass=secret\n"


def test_sasl_bind_text() -> None:
    sasl = tlv(0xA3, tlv(0x04, b"EXTERNAL") + tlv(0x04, b"\x01\x02"))
    raw = message(4, tlv(0x60, tlv(0x02, b"\x03") + tlv(0x04, b"") + sasl))
    text, _ = describe(decode_message(raw).operation, 4096)
    assert text == "Type=Bind\nAuthenticationChoice=sasl\nUser=\nPass={EXTERNAL 0102}\n"


@pytest.mark.parametrize(
    ("raw_operation", "expected"),
    [
        (tlv(0x4A, b"cn=gone"), "Type=Delete\nEntity=cn=gone\n"),
        (tlv(0x50, b"\x05"), "Type=Abandon\n"),
        (
            tlv(0x6E, tlv(0x04, b"cn=x") + tlv(0x30, tlv(0x04, b"sn") + tlv(0x04, b"v"))),
            "Type=Compare\nAttribute name to compare=sn\nAttribute value expected=v\n",
        ),
        (
            tlv(0x68, tlv(0x04, b"cn=x") + tlv(0x30, tlv(0x30, tlv(0x04, b"sn") + tlv(0x31, tlv(0x04, b"a"))))),
            "Type=Add\nEntity=cn=x\nAttribute Name=sn Attribute Value=a\n",
        ),
        (
            tlv(
                0x66,
                tlv(0x04, b"cn=x")
                + tlv(
                    0x30,
                    tlv(
                        0x30,
                        tlv(0x0A, b"\x02") + tlv(0x30, tlv(0x04, b"sn") + tlv(0x31, tlv(0x04, b"a") + tlv(0x04, b"b"))),
                    ),
                ),
            ),
            "Type=Modify\nEntity=cn=x\nOperation=Replace Attribute=sn Values=[a - b]\n",
        ),
        (tlv(0x77, tlv(0x80, b"1.3.6.1.4.1.4203.1.11.3")), "Type=WhoAmI\n"),
        (tlv(0x77, tlv(0x80, b"1.2.3") + tlv(0x81, b"val")), "Type=Extended\nName=1.2.3\nValue=val\n"),
        (
            tlv(0x6C, tlv(0x04, b"cn=a") + tlv(0x04, b"cn=b") + tlv(0x01, b"\xff")),
            "Type=ModifyDN\nEntity=cn=a\nNewRDN=cn=b\nDeleteOldRDN=true\nNewSuperior=\n",
        ),
        (tlv(0x7E, b""), "Type=Application30\n"),
    ],
)
def test_operation_texts(raw_operation: bytes, expected: str) -> None:
    text, truncated = describe(decode_message(message(9, raw_operation)).operation, 4096)
    assert text == expected
    assert not truncated


def test_unknown_operation_decodes() -> None:
    decoded = decode_message(message(2, tlv(0x7E, b"\x01\x02")))
    assert decoded.message_id == 2
    assert decoded.operation == UnknownOperation(30)


@pytest.mark.parametrize(
    "raw",
    [
        message(1, tlv(0x60, tlv(0x02, b"\x03"))),  # bind without a name
        tlv(0x30, tlv(0x02, b"\xff") + tlv(0x42, b"")),  # negative message ID
        tlv(0x30, tlv(0x04, b"\x01") + tlv(0x42, b"")),  # message ID is no INTEGER
        tlv(0x30, tlv(0x02, b"\x01")),  # no operation
        tlv(0x30, tlv(0x02, b"\x01") + tlv(0x82, b"")),  # operation of CONTEXT class
        message(1, tlv(0x63, tlv(0x04, b"dc=x"))),  # search with one field
    ],
)
def test_malformed_messages_raise_parse_error(raw: bytes) -> None:
    with pytest.raises(BerError):
        decode_message(raw)


def _search_with_filter(search_filter: bytes) -> bytes:
    body = (
        tlv(0x04, b"dc=x")
        + tlv(0x0A, b"\x02")
        + tlv(0x0A, b"\x00")
        + tlv(0x02, b"\x00")
        + tlv(0x02, b"\x00")
        + tlv(0x01, b"\x00")
        + search_filter
        + tlv(0x30, b"")
    )
    return message(1, tlv(0x63, body))
