"""Custom DNS records: the ``-custom-records`` YAML file and the built-in names.

The file uses upstream's two formats, which may be mixed here, entry by entry::

    # structured: a list of records, appended to the name's records
    api:
      - type: A            # A, AAAA, CNAME, MX, TXT or NS, in any case
        value: "192.0.2.1"
        ttl: 300           # optional; missing or 0 means 3600
        priority: 10       # optional, MX only; missing or 0 means 10
    # legacy: one IPv4 address, which replaces the name's records
    aws: "169.254.169.254"

A name is the part of a query name before the configured domain, compared
in lower case. So ``x.aws.<domain>`` looks up ``x.aws``, and the apex of the
domain matches nothing. The built-in names ``aws``, ``alibaba``, ``localhost`` and
``oracle`` answer A queries with the cloud metadata and loopback addresses,
as upstream's do. Long TXT values are split into 255-octet strings.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

# dnslib ships no type information.
from dnslib import (  # type: ignore[import-untyped]
    AAAA,
    CNAME,
    MX,
    NS,
    RD,
    TXT,
    A,
    DNSLabel,
)

from interactsh.errors import InteractshError
from interactsh.listeners.dns_wire import (
    MAX_LABEL_OCTETS,
    TYPE_A,
    TYPE_AAAA,
    TYPE_ANY,
    TYPE_CNAME,
    TYPE_MX,
    TYPE_NS,
    TYPE_TXT,
)

DEFAULT_TTL = 3600
DEFAULT_MX_PRIORITY = 10
MAX_TTL = 2**31 - 1
MAX_TXT_STRING_OCTETS = 255
# A TXT record has to fit in one DNS message of at most 65,535 octets.
MAX_TXT_VALUE_OCTETS = 65_000
MAX_NAME_TEXT_LENGTH = 253

BUILT_IN_RECORDS: dict[str, str] = {
    "aws": "169.254.169.254",
    "alibaba": "100.100.100.200",
    "localhost": "127.0.0.1",
    "oracle": "192.0.0.192",
}
RECORD_TYPES: dict[str, int] = {
    "A": TYPE_A,
    "AAAA": TYPE_AAAA,
    "CNAME": TYPE_CNAME,
    "MX": TYPE_MX,
    "TXT": TYPE_TXT,
    "NS": TYPE_NS,
}
_ENTRY_KEYS = frozenset({"type", "value", "ttl", "priority"})
_KEY_PATTERN = re.compile(r"[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*")


class CustomRecordsError(InteractshError, ValueError):
    """The custom records file cannot be read or contains invalid records."""


@dataclass(frozen=True, slots=True)
class CustomRecord:
    """One custom record, with its record data ready to pack."""

    rtype: int
    ttl: int
    rdata: RD
    value: str


class CustomRecords:
    """Custom records by lower-case name relative to the configured domain."""

    def __init__(self, records: Mapping[str, list[CustomRecord]]) -> None:
        self._records = {name: tuple(entries) for name, entries in records.items() if entries}

    def lookup(self, name: str, qtype: int) -> list[CustomRecord]:
        """Return the records of ``name`` with type ``qtype``; ANY returns all of them."""
        entries = self._records.get(name)
        if not entries:
            return []
        if qtype == TYPE_ANY:
            return list(entries)
        return [entry for entry in entries if entry.rtype == qtype]

    def names(self) -> list[str]:
        return sorted(self._records)


def built_in_records() -> dict[str, list[CustomRecord]]:
    """Return the built-in names as fresh, mutable lists of A records."""
    return {
        name: [_make_record("A", address, DEFAULT_TTL, DEFAULT_MX_PRIORITY)]
        for name, address in BUILT_IN_RECORDS.items()
    }


def load_custom_records(path: str) -> CustomRecords:
    """Return the built-in records plus those of the YAML file at ``path`` (none when empty).

    Raises :class:`CustomRecordsError` naming every invalid entry.
    """
    records = built_in_records()
    if not path:
        return CustomRecords(records)
    try:
        with open(path, encoding="utf-8") as file:
            document = yaml.safe_load(file)
    except OSError as error:
        raise CustomRecordsError(f"-custom-records {path!r} cannot be read: {error.strerror}") from error
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise CustomRecordsError(f"-custom-records {path!r} is not valid YAML: {error}") from error
    problems = merge_records(records, document)
    if problems:
        listed = "\n".join(f"  {problem}" for problem in problems)
        raise CustomRecordsError(f"-custom-records {path!r} has invalid entries:\n{listed}")
    return CustomRecords(records)


def merge_records(records: dict[str, list[CustomRecord]], document: Any) -> list[str]:
    """Add the entries of a parsed YAML document to ``records``; return one message per invalid entry."""
    if document is None:
        return []
    if not isinstance(document, dict):
        return [f"the file holds a {type(document).__name__}, not a mapping of names to records"]
    problems: list[str] = []
    for raw_key, value in document.items():
        key = _normalise_key(raw_key)
        if key is None:
            problems.append(f"name {raw_key!r} is not a domain name of letters, digits, '-' and '_'")
            continue
        if isinstance(value, str):
            try:
                records[key] = [_make_record("A", value, DEFAULT_TTL, DEFAULT_MX_PRIORITY)]
            except ValueError as error:
                problems.append(f"{key}: {error}")
        elif isinstance(value, list):
            for index, entry in enumerate(value):
                try:
                    records.setdefault(key, []).append(_structured_record(entry))
                except ValueError as error:
                    problems.append(f"{key}[{index}]: {error}")
        else:
            problems.append(f"{key}: expected a list of records or an IPv4 address, got {type(value).__name__}")
    return problems


def _normalise_key(raw_key: Any) -> str | None:
    if isinstance(raw_key, bool) or not isinstance(raw_key, (str, int)):
        return None
    key = str(raw_key).lower().rstrip(".")
    if len(key) > MAX_NAME_TEXT_LENGTH or not _KEY_PATTERN.fullmatch(key):
        return None
    return key


def _structured_record(entry: Any) -> CustomRecord:
    if not isinstance(entry, dict):
        raise ValueError(f"expected a mapping with 'type' and 'value', got {type(entry).__name__}")
    unknown = sorted(str(key) for key in entry if key not in _ENTRY_KEYS)
    if unknown:
        raise ValueError(f"unknown keys {', '.join(unknown)}: use type, value, ttl and priority")
    rtype = entry.get("type")
    value = entry.get("value")
    if not isinstance(rtype, str) or not rtype:
        raise ValueError("'type' is missing: use one of " + ", ".join(RECORD_TYPES))
    if value is None or value == "" or isinstance(value, (bool, list, dict)):
        raise ValueError("'value' is missing or not a single value")
    ttl = _integer(entry.get("ttl"), "ttl", MAX_TTL) or DEFAULT_TTL
    priority = _integer(entry.get("priority"), "priority", 0xFFFF) or DEFAULT_MX_PRIORITY
    return _make_record(rtype.upper(), str(value), ttl, priority)


def _integer(value: Any, key: str, maximum: int) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValueError(f"'{key}' {value!r} is not an integer from 0 to {maximum}")
    return value


def _make_record(rtype: str, value: str, ttl: int, priority: int) -> CustomRecord:
    """Build one record; raise ``ValueError`` naming the bad value."""
    if rtype == "A":
        return CustomRecord(TYPE_A, ttl, A(str(_address(value, 4))), value)
    if rtype == "AAAA":
        return CustomRecord(TYPE_AAAA, ttl, AAAA(str(_address(value, 6))), value)
    if rtype == "CNAME":
        return CustomRecord(TYPE_CNAME, ttl, CNAME(_target_name(value)), value)
    if rtype == "NS":
        return CustomRecord(TYPE_NS, ttl, NS(_target_name(value)), value)
    if rtype == "MX":
        return CustomRecord(TYPE_MX, ttl, MX(_target_name(value), priority), value)
    if rtype == "TXT":
        return CustomRecord(TYPE_TXT, ttl, TXT(_txt_strings(value)), value)
    raise ValueError(f"record type {rtype!r} is not supported: use one of {', '.join(RECORD_TYPES)}")


def _address(value: str, version: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    kind = "IPv4" if version == 4 else "IPv6"
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an {kind} address") from None
    if address.version != version:
        raise ValueError(f"{value!r} is not an {kind} address")
    return address


def _target_name(value: str) -> DNSLabel:
    """Return a host name as a label tuple; the root ``.`` is allowed (null MX)."""
    text = value.strip().rstrip(".")
    if not text:
        return DNSLabel(())
    problem = f"{value!r} is not a valid host name: labels are 1 to 63 octets, names at most 253 characters"
    try:
        labels = tuple(label.encode("idna") for label in text.split("."))
    except UnicodeError:
        raise ValueError(problem) from None
    if any(not 0 < len(label) <= MAX_LABEL_OCTETS for label in labels) or len(b".".join(labels)) > MAX_NAME_TEXT_LENGTH:
        raise ValueError(problem)
    return DNSLabel(labels)


def _txt_strings(value: str) -> list[bytes]:
    data = value.encode("utf-8")
    if len(data) > MAX_TXT_VALUE_OCTETS:
        raise ValueError(f"TXT value of {len(data)} bytes is longer than {MAX_TXT_VALUE_OCTETS}")
    if not data:
        return [b""]
    return [data[start : start + MAX_TXT_STRING_OCTETS] for start in range(0, len(data), MAX_TXT_STRING_OCTETS)]
