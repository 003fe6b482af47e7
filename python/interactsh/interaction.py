"""Interaction records: the JSON documents that clients decrypt and read.

Keys and their order follow upstream's ``Interaction`` struct: protocol,
unique-id, full-id, q-type, raw-request, raw-response, smtp-from,
remote-address, timestamp. Keys this server adds (``transport``,
``truncated``...) come after ``timestamp``; clients ignore unknown keys.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

# Upstream serialises with HTML escaping on, so "<", ">" and "&" appear as
# \u003c, \u003e and \u0026. These characters only occur inside JSON strings,
# so replacing them after encoding yields the same document.
_SURROGATE = re.compile("[\ud800-\udfff]")
_HTML_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def timestamp_now() -> str:
    """Return the current time as RFC 3339 with microseconds and the local offset."""
    return datetime.now().astimezone().isoformat(timespec="microseconds")


def build_record(
    protocol: str,
    unique_id: str,
    full_id: str,
    remote_address: str,
    *,
    q_type: str | None = None,
    raw_request: str | None = None,
    raw_response: str | None = None,
    smtp_from: str | None = None,
    timestamp: str | None = None,
    **additional: Any,
) -> bytes:
    """Serialise one interaction as compact UTF-8 JSON in upstream's key order.

    Optional fields that are ``None`` or empty are left out, as upstream's
    ``omitempty`` does; ``additional`` keys are appended when not ``None``.
    """
    document: dict[str, Any] = {"protocol": protocol, "unique-id": unique_id, "full-id": full_id}
    optional = (
        ("q-type", q_type),
        ("raw-request", raw_request),
        ("raw-response", raw_response),
        ("smtp-from", smtp_from),
    )
    for key, value in optional:
        if value:
            document[key] = value
    document["remote-address"] = remote_address
    document["timestamp"] = timestamp or timestamp_now()
    for key, value in additional.items():
        if value is not None:
            document[key.replace("_", "-")] = value
    for key, value in document.items():
        if isinstance(value, str):
            document[key] = escape_undecodable(value)
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return text.translate(_HTML_ESCAPES).encode("utf-8")


def escape_undecodable(text: str) -> str:
    """Replace lone surrogates, which strict JSON parsers reject, with plain text.

    A byte that ``surrogateescape`` decoding could not read (U+DC80..U+DCFF)
    becomes ``\\xNN``; any other lone surrogate becomes U+FFFD.
    """
    return _SURROGATE.sub(_replace_surrogate, text)


def _replace_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return "\ufffd"
