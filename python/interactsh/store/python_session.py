"""Sessions and shared buckets of the Python store engine, and what they cost against the budget.

The overheads are estimates of CPython's own objects, measured with
``sys.getsizeof`` when the module loads. They exist so that many tiny records
or many empty sessions still count against the budget; payload bytes are
counted exactly.
"""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass, field

from interactsh.store.base import AesMode
from interactsh.store.python_crypto import AES_KEY_SIZE

Entry = tuple[int, bytes]


@dataclass(slots=True, eq=False)
class Session:
    """One registration: its credentials, AES key, TTL anchors and queue.

    ``refreshed_at`` anchors a sliding TTL; ``active_at`` is the owner's last
    register or poll under either strategy, which decides idleness.
    """

    correlation_id: str
    secret: bytes
    aes_key: bytes
    aes_key_b64: bytes
    aes_mode: AesMode
    base_seq: int
    registered_at: float
    refreshed_at: float
    active_at: float
    overhead: int
    records: deque[Entry] = field(default_factory=deque)
    queued_bytes: int = 0


@dataclass(slots=True, eq=False)
class SharedQueue:
    """A shared bucket: the newest records and each consumer's next sequence number."""

    records: deque[Entry] = field(default_factory=deque)
    next_seq: int = 0
    queued_bytes: int = 0
    consumers: dict[str, int] = field(default_factory=dict)


# A queued record: its (sequence, bytes) tuple, the sequence int, the bytes
# object's header and the deque slot that points at the tuple.
RECORD_OVERHEAD = sys.getsizeof((1 << 40, b"")) + sys.getsizeof(1 << 40) + sys.getsizeof(b"") + 8

# One slot of a compact dict: hash, key and value pointers, and its index entry.
_DICT_ENTRY = 4 * 8


def _session_base_overhead() -> int:
    """Return the bytes of an empty session apart from the lengths of its id, secret and wrapped key."""
    probe = Session("", b"", b"", b"", "ctr", 0, 0.0, 0.0, 0.0, 0)
    objects = sys.getsizeof(probe) + sys.getsizeof(probe.records) + sys.getsizeof("") + 3 * sys.getsizeof(b"")
    # The session's entry in the store's dict, and its read offsets in both shared buckets.
    entries = 3 * _DICT_ENTRY + 2 * sys.getsizeof(1 << 40)
    return objects + AES_KEY_SIZE + entries


SESSION_BASE_OVERHEAD = _session_base_overhead()


def session_overhead(correlation_id: str, secret: bytes, key_size_bits: int) -> int:
    """Return the budget cost of a session, before the RSA work that wraps its AES key."""
    wrapped_len = 4 * -(-((key_size_bits + 7) // 8) // 3)
    return SESSION_BASE_OVERHEAD + len(correlation_id) + len(secret) + wrapped_len


def cap_release(records: deque[Entry], queued_bytes: int, size: int, max_items: int, max_bytes: int) -> int:
    """Return the budget bytes that a queue's caps free when a record of ``size`` bytes joins it.

    The caps drop the oldest records while the queue would hold more than
    ``max_items`` records or ``max_bytes`` bytes.
    """
    items = len(records) + 1
    total = queued_bytes + size
    freed = 0
    for _, record in records:
        if items <= max_items and total <= max_bytes:
            break
        items -= 1
        total -= len(record)
        freed += len(record) + RECORD_OVERHEAD
    return freed
