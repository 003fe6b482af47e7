"""The pure-Python store engine: the baseline and fallback for the Rust engine.

Every record gets a sequence number from one counter shared by the whole
store. A poll reply remembers the last sequence number it delivered, so a
commit removes exactly the records the reply carried and leaves records that
arrived after the poll. A session registered again after the poll has only
higher numbers, so an old reply's commit leaves it alone.

A page's byte budget (``max_page_bytes``) is shared by its lists, filled in
the order ``data``, ``extra``, ``tlddata``. Each list takes at least one record
when it has one queued, even past the budget, so that one oversized record or
a busy session cannot starve the next list.

The engine is not thread-safe: callers run on one asyncio loop.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice

from interactsh.errors import (
    AlreadyRegisteredError,
    InvalidAesModeError,
    InvalidCorrelationIdError,
    SessionNotFoundError,
)
from interactsh.store.base import (
    AES_MODES,
    SHARED_BUCKETS,
    AesMode,
    PollReply,
    SharedBucket,
    Store,
    StoreOptions,
    StoreStats,
)
from interactsh.store.python_crypto import AES_KEY_SIZE, encrypt_records, load_rsa_public_key, wrap_aes_key

log = logging.getLogger("interactsh.store")

NOT_FOUND_MESSAGE = "could not get correlation-id from cache"
ALREADY_EXISTS_MESSAGE = "correlation-id provided already exists"
_SHOWN_ID_CHARACTERS = 40


@dataclass(slots=True, eq=False)
class _Session:
    """One registration: its credentials, AES key, TTL anchors and queue."""

    correlation_id: str
    secret: bytes
    aes_key: bytes
    aes_key_b64: bytes
    aes_mode: AesMode
    base_seq: int
    registered_at: float
    refreshed_at: float
    records: deque[tuple[int, bytes]] = field(default_factory=deque)
    queued_bytes: int = 0


@dataclass(slots=True, eq=False)
class _SharedQueue:
    """A shared bucket: the newest records and each consumer's next sequence number."""

    records: deque[tuple[int, bytes]] = field(default_factory=deque)
    next_seq: int = 0
    queued_bytes: int = 0
    consumers: dict[str, int] = field(default_factory=dict)


def normalize_correlation_id(value: str, length: int) -> str | None:
    """Return ``value`` lowercased when it is ``length`` characters of ``[a-z0-9]``, else ``None``.

    Only ASCII letters are lowercased, so that a character such as the Kelvin
    sign, which Unicode lowercases to ``k``, never passes as a valid id.
    """
    if len(value) == length and value.isascii() and value.isalnum():
        return value.lower()
    return None


def describe_invalid_id(value: str, length: int) -> str:
    """Return the message that explains why ``value`` is an invalid correlation id, and what to send."""
    expected = f"this server expects {length} characters of [a-z0-9] (set with -cidl)"
    if not value:
        return f"correlation id is empty: {expected}"
    shown = value if len(value) <= _SHOWN_ID_CHARACTERS else value[:_SHOWN_ID_CHARACTERS] + "..."
    if len(value) != length:
        return f"correlation id {shown!r} has {len(value)} characters: {expected}"
    invalid = next(char for char in value if not (char.isascii() and char.isalnum()))
    return f"correlation id {shown!r} contains {invalid!r}, which is not in [a-z0-9]: {expected}"


def _check_options(options: StoreOptions) -> None:
    if options.aes_mode not in AES_MODES:
        raise InvalidAesModeError(f"AES mode {options.aes_mode!r} is invalid: use ctr or cfb")
    if options.eviction_strategy not in ("sliding", "fixed"):
        raise ValueError(f"eviction strategy {options.eviction_strategy!r} is invalid: use sliding or fixed")
    if options.ttl_seconds is not None and not options.ttl_seconds > 0:
        raise ValueError(f"ttl_seconds {options.ttl_seconds!r} must be positive, or None to disable expiry")
    for name in (
        "correlation_id_length",
        "max_session_items",
        "max_session_bytes",
        "max_shared_items",
        "max_page_items",
        "max_page_bytes",
    ):
        value = getattr(options, name)
        if value < 1:
            raise ValueError(f"store option {name} is {value}: it must be at least 1")


class PythonStore(Store):
    """Sessions, queues and shared buckets in plain Python objects.

    ``clock`` must never go backwards: sessions are kept in the order of
    their expiry deadlines, which :meth:`expire` relies on.
    """

    def __init__(self, options: StoreOptions | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(options, clock)
        _check_options(self.options)
        # Ordered by deadline: a sliding refresh moves its session to the end.
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._shared: dict[str, _SharedQueue] = {bucket: _SharedQueue() for bucket in SHARED_BUCKETS}
        self._next_seq = 0
        self._queued_items = 0
        self._queued_bytes = 0
        self._dropped_items = 0
        self._dropped_shared_items = 0
        self._expired_sessions = 0

    # Sessions

    def register(self, correlation_id: str, secret: str, public_key: str, aes_mode: AesMode | None = None) -> bool:
        """Register a session, or refresh it when the secret matches."""
        normalized = normalize_correlation_id(correlation_id, self.options.correlation_id_length)
        if normalized is None:
            raise InvalidCorrelationIdError(describe_invalid_id(correlation_id, self.options.correlation_id_length))
        mode = self.options.aes_mode if aes_mode is None else aes_mode
        if mode not in AES_MODES:
            raise InvalidAesModeError(f"AES mode {mode!r} is invalid: use ctr or cfb")
        rsa_key = load_rsa_public_key(public_key)

        now = self.clock()
        secret_bytes = _secret_bytes(secret)
        session = self._sessions.get(normalized)
        if session is not None and self._is_expired(session, now):
            self._remove(session)
            self._expired_sessions += 1
            session = None
        if session is not None:
            if not hmac.compare_digest(session.secret, secret_bytes):
                raise AlreadyRegisteredError(ALREADY_EXISTS_MESSAGE)
            self._refresh(session, now)
            return False

        aes_key = os.urandom(AES_KEY_SIZE)
        self._sessions[normalized] = _Session(
            correlation_id=normalized,
            secret=secret_bytes,
            aes_key=aes_key,
            aes_key_b64=wrap_aes_key(rsa_key, aes_key),
            aes_mode=mode,
            base_seq=self._take_seq(),
            registered_at=now,
            refreshed_at=now,
        )
        log.debug("registered session %s (%s, RSA-%d)", normalized, mode, rsa_key.key_size)
        return True

    def deregister(self, correlation_id: str, secret: str) -> None:
        """Remove a session and its queue, and forget it as a shared consumer."""
        session = self._authenticate(correlation_id, secret)
        self._remove(session)
        log.debug("deregistered session %s", session.correlation_id)

    def contains(self, correlation_id: str) -> bool:
        """Tell whether a live session has this id."""
        return self._live_session(correlation_id) is not None

    def expire(self) -> int:
        """Remove sessions whose TTL has passed and return how many went."""
        now = self.clock()
        removed = 0
        while self._sessions:
            session = next(iter(self._sessions.values()))
            if not self._is_expired(session, now):
                break
            self._remove(session)
            removed += 1
        self._expired_sessions += removed
        if removed:
            log.debug("expired %d sessions", removed)
        return removed

    def __len__(self) -> int:
        """Return the number of live sessions."""
        now = self.clock()
        expired = 0
        for session in self._sessions.values():
            if not self._is_expired(session, now):
                break
            expired += 1
        return len(self._sessions) - expired

    # Records

    def append(self, correlation_id: str, record: bytes) -> bool:
        """Queue one record for a session; ``False`` when no live session has the id."""
        session = self._live_session(correlation_id)
        if session is None:
            return False
        size = len(record)
        options = self.options
        if size > options.max_session_bytes:
            self._dropped_items += 1
            return True
        session.records.append((self._take_seq(), bytes(record)))
        session.queued_bytes += size
        self._queued_items += 1
        self._queued_bytes += size
        records = session.records
        while len(records) > options.max_session_items or session.queued_bytes > options.max_session_bytes:
            _, dropped = records.popleft()
            session.queued_bytes -= len(dropped)
            self._queued_items -= 1
            self._queued_bytes -= len(dropped)
            self._dropped_items += 1
        return True

    def append_shared(self, bucket: SharedBucket, record: bytes) -> None:
        """Add one plaintext record to a shared bucket, dropping the oldest past the cap."""
        queue = self._shared.get(bucket)
        if queue is None:
            raise ValueError(f"shared bucket {bucket!r} does not exist: use extra or tlddata")
        queue.records.append((queue.next_seq, bytes(record)))
        queue.next_seq += 1
        queue.queued_bytes += len(record)
        while len(queue.records) > self.options.max_shared_items:
            _, dropped = queue.records.popleft()
            queue.queued_bytes -= len(dropped)
            self._dropped_shared_items += 1

    # Polling

    def poll(self, correlation_id: str, secret: str, *, extra: bool = False, tlddata: bool = False) -> PollReply:
        """Build the next page of the session's interactions without removing them."""
        session = self._authenticate(correlation_id, secret)
        self._refresh(session, self.clock())
        budget = _PageBudget(self.options.max_page_items, self.options.max_page_bytes)
        page = budget.take(session.records)
        reply = PollReply(
            body=b"",
            correlation_id=session.correlation_id,
            data_count=len(page),
            last_data_seq=page[-1][0] if page else session.base_seq,
        )
        data = encrypt_records(session.aes_key, session.aes_mode, [record for _, record in page])
        parts = [b'{"data":', _json_list(data, quoted=True), b',"extra":']
        if extra:
            parts.append(_json_list(self._read_shared("extra", session.correlation_id, budget, reply)))
        else:
            parts.append(b"null")
        parts += [b',"aes_key":"', session.aes_key_b64, b'"']
        if tlddata:
            items = self._read_shared("tlddata", session.correlation_id, budget, reply)
            if items:
                parts += [b',"tlddata":', _json_list(items)]
        parts.append(b"}\n")
        reply.body = b"".join(parts)
        return reply

    def commit(self, reply: PollReply) -> None:
        """Remove what ``reply`` delivered; a second commit of it does nothing."""
        session = self._sessions.get(reply.correlation_id)
        if session is None or session.base_seq > reply.last_data_seq:
            return
        records = session.records
        while records and records[0][0] <= reply.last_data_seq:
            _, delivered = records.popleft()
            session.queued_bytes -= len(delivered)
            self._queued_items -= 1
            self._queued_bytes -= len(delivered)
        for bucket, next_seq in reply.shared_offsets.items():
            queue = self._shared.get(bucket)
            if queue is not None and queue.consumers.get(session.correlation_id, -1) < next_seq:
                queue.consumers[session.correlation_id] = next_seq

    def _read_shared(self, bucket: str, consumer: str, budget: _PageBudget, reply: PollReply) -> list[bytes]:
        """Return the consumer's next page of a shared bucket as JSON strings, noting the offset in ``reply``."""
        queue = self._shared[bucket]
        records = queue.records
        start = 0
        offset = queue.consumers.get(consumer)
        if offset is not None and records:
            start = max(0, offset - records[0][0])
        page = budget.take(records, start)
        reply.shared_offsets[bucket] = page[-1][0] + 1 if page else queue.next_seq
        return [json.dumps(record.decode("utf-8", "replace"), ensure_ascii=False).encode("utf-8") for _, record in page]

    # Stats

    def stats(self) -> StoreStats:
        """Return the current counters and gauges."""
        return StoreStats(
            sessions=len(self),
            queued_items=self._queued_items,
            queued_bytes=self._queued_bytes,
            shared_items=sum(len(queue.records) for queue in self._shared.values()),
            shared_bytes=sum(queue.queued_bytes for queue in self._shared.values()),
            dropped_items=self._dropped_items,
            dropped_shared_items=self._dropped_shared_items,
            expired_sessions=self._expired_sessions,
        )

    # Helpers

    def _take_seq(self) -> int:
        self._next_seq += 1
        return self._next_seq

    def _is_expired(self, session: _Session, now: float) -> bool:
        ttl = self.options.ttl_seconds
        if ttl is None:
            return False
        anchor = session.refreshed_at if self.options.eviction_strategy == "sliding" else session.registered_at
        return now >= anchor + ttl

    def _live_session(self, correlation_id: str) -> _Session | None:
        normalized = normalize_correlation_id(correlation_id, self.options.correlation_id_length)
        if normalized is None:
            return None
        session = self._sessions.get(normalized)
        if session is None or self._is_expired(session, self.clock()):
            return None
        return session

    def _authenticate(self, correlation_id: str, secret: str) -> _Session:
        """Return the live session when the secret matches; the same error for every failure."""
        session = self._live_session(correlation_id)
        if session is None or not hmac.compare_digest(session.secret, _secret_bytes(secret)):
            raise SessionNotFoundError(NOT_FOUND_MESSAGE)
        return session

    def _refresh(self, session: _Session, now: float) -> None:
        if self.options.eviction_strategy == "sliding":
            session.refreshed_at = now
            self._sessions.move_to_end(session.correlation_id)

    def _remove(self, session: _Session) -> None:
        del self._sessions[session.correlation_id]
        self._queued_items -= len(session.records)
        self._queued_bytes -= session.queued_bytes
        for queue in self._shared.values():
            queue.consumers.pop(session.correlation_id, None)


class _PageBudget:
    """The item and byte limits of one poll page; the byte budget spans all lists."""

    __slots__ = ("bytes_left", "max_items")

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.bytes_left = max_bytes

    def take(self, records: deque[tuple[int, bytes]], start: int = 0) -> list[tuple[int, bytes]]:
        """Return the records from ``start`` on that fit; the first one always fits."""
        page: list[tuple[int, bytes]] = []
        end = min(len(records), start + self.max_items)
        # Indexing a deque walks from its nearer end, so it is cheap near the
        # tail, where shared readers usually start; islice is cheap near the head.
        if start < len(records) // 2:
            entries: Iterable[tuple[int, bytes]] = islice(records, start, end)
        else:
            entries = (records[index] for index in range(start, end))
        for entry in entries:
            size = len(entry[1])
            if page and size > self.bytes_left:
                break
            page.append(entry)
            self.bytes_left -= size
        return page


def _secret_bytes(secret: str) -> bytes:
    # A JSON body can carry a lone surrogate ("\ud800"); "surrogatepass" keeps
    # such a secret comparable instead of raising UnicodeEncodeError.
    return secret.encode("utf-8", "surrogatepass")


def _json_list(items: list[bytes], *, quoted: bool = False) -> bytes:
    """Return ``items`` as a JSON array, or ``null`` when there are none."""
    if not items:
        return b"null"
    if quoted:
        return b'["' + b'","'.join(items) + b'"]'
    return b"[" + b",".join(items) + b"]"
