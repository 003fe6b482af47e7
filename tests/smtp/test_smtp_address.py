"""The lenient MAIL/RCPT/VRFY path parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from interactsh.listeners.smtp_address import MailPath, parse_path, parse_path_argument, split_mailbox

ID = "aaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbb"

CASES = [
    # argument, address, parameters, nonstandard
    ("TO:<x@y.test>", "x@y.test", "", False),
    ("to:<x@y.test>", "x@y.test", "", False),
    ("TO: <x@y.test>", "x@y.test", "", True),
    ("TO :<x@y.test>", "x@y.test", "", True),
    ("TO <x@y.test>", "x@y.test", "", True),
    ("TO:x@y.test", "x@y.test", "", True),
    ("TO:x@y.test NOTIFY=NEVER", "x@y.test", "NOTIFY=NEVER", True),
    ("TO:<x@Y.TEST> NOTIFY=NEVER ORCPT=rfc822;x@y", "x@Y.TEST", "NOTIFY=NEVER ORCPT=rfc822;x@y", False),
    ('TO:<"a@b"@y.test>', '"a@b"@y.test', "", False),
    ('TO:<"a>b"@y.test>', '"a>b"@y.test', "", False),
    ('TO:<"a\\"@b"@y.test>', '"a\\"@b"@y.test', "", False),
    ('TO:"a b@c"@y.test SIZE=1', '"a b@c"@y.test', "SIZE=1", True),
    ("TO:<@relay.test,@other.test:x@y.test>", "x@y.test", "", False),
    ("TO:<x@y.test", "x@y.test", "", True),
    ("TO:x@y.test>", "x@y.test", "", True),
    ("TO:<>", "", "", False),
    ("TO:\t<x@y.test>", "x@y.test", "", True),
]


@pytest.mark.parametrize(("argument", "address", "parameters", "nonstandard"), CASES)
def test_parse_path_argument(argument: str, address: str, parameters: str, nonstandard: bool) -> None:
    assert parse_path_argument(argument, "TO") == MailPath(address, parameters, nonstandard)


@pytest.mark.parametrize("argument", ["TOM:<x@y>", "TO", "FROM:<x@y>", "", "   ", "T:<x@y>"])
def test_parse_path_argument_wrong_keyword(argument: str) -> None:
    assert parse_path_argument(argument, "TO") is None


@pytest.mark.parametrize(
    ("address", "local", "domain"),
    [
        ("x@y.test", "x", "y.test"),
        ('"a@b"@y.test', '"a@b"', "y.test"),
        ('"a\\"@b"@y.test', '"a\\"@b"', "y.test"),
        ("a@b@y.test", "a@b", "y.test"),
        ('"only@quoted"', '"only@quoted"', ""),
        ("postmaster", "postmaster", ""),
        ("x@", "x", ""),
    ],
)
def test_split_mailbox(address: str, local: str, domain: str) -> None:
    assert split_mailbox(address) == (local, domain)


def test_domain_of_quoted_local_part_with_id() -> None:
    path = parse_path_argument(f'TO:<"a@b"@{ID}.oast.test>', "TO")
    assert path is not None
    assert path.domain == f"{ID}.oast.test"


def test_vrfy_bare_mailbox() -> None:
    assert parse_path(f"probe@{ID}.oast.test") == MailPath(f"probe@{ID}.oast.test", "", True)


_local_atoms = st.text(alphabet="abcdefxyz0123456789.-_+", min_size=1, max_size=12)
_quoted_locals = st.text(alphabet="abc@<> ,:;", min_size=1, max_size=12).map(lambda text: f'"{text}"')
_labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
_domains = st.lists(_labels, min_size=1, max_size=4).map(".".join)
_parameters = st.lists(
    st.sampled_from(["NOTIFY=NEVER", "ORCPT=rfc822;x@evil.test", "SIZE=10", "BODY=8BITMIME"]), max_size=3
).map(" ".join)


@given(
    local=st.one_of(_local_atoms, _quoted_locals),
    domain=_domains,
    parameters=_parameters,
    brackets=st.booleans(),
    spacing=st.sampled_from(["", " ", "  ", "\t"]),
    keyword=st.sampled_from(["TO", "to", "To"]),
)
def test_domain_never_comes_from_local_part_or_parameters(
    local: str, domain: str, parameters: str, brackets: bool, spacing: str, keyword: str
) -> None:
    mailbox = f"{local}@{domain}"
    path_text = f"<{mailbox}>" if brackets else mailbox
    argument = f"{keyword}:{spacing}{path_text}" + (f" {parameters}" if parameters else "")
    path = parse_path_argument(argument, "TO")
    assert path is not None
    assert path.address == mailbox
    assert path.domain == domain
    assert path.parameters == parameters
    assert path.nonstandard is (bool(spacing) or not brackets)


@given(st.text(max_size=200))
def test_any_argument_parses_without_error(argument: str) -> None:
    path = parse_path_argument(argument, "TO")
    if path is not None:
        assert isinstance(path.domain, str)
    parse_path(argument)
