"""Interaction records: the JSON documents that clients decrypt and read.

Keys and their order follow upstream's ``Interaction`` struct: protocol,
unique-id, full-id, q-type, raw-request, raw-response, smtp-from,
remote-address, timestamp. Keys this server adds (``transport``,
``truncated``...) come after ``timestamp``; clients ignore unknown keys.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

# Upstream serialises with HTML escaping on, so "<", ">" and "&" appear as
# \u003c, \u003e and \u0026. These characters only occur inside JSON strings,
# so replacing them after encoding yields the same document.
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
    optional = (("q-type", q_type), ("raw-request", raw_request), ("raw-response", raw_response), ("smtp-from", smtp_from))
    for key, value in optional:
        if value:
            document[key] = value
    document["remote-address"] = remote_address
    document["timestamp"] = timestamp or timestamp_now()
    for key, value in additional.items():
        if value is not None:
            document[key.replace("_", "-")] = value
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    # A lone surrogate (from bytes decoded with "surrogateescape") becomes the
    # JSON escape "\udcXX", so the record is always valid UTF-8 and valid JSON.
    return text.translate(_HTML_ESCAPES).encode("utf-8", "backslashreplace")
