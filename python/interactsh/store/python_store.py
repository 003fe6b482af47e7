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

import heapq
import hmac
import json
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable

from interactsh.errors import (
    AlreadyRegisteredError,
    InvalidAesModeError,
    InvalidCorrelationIdError,
    SessionNotFoundError,
    StoreFullError,
)
from interactsh.store.base import (
    AES_MODES,
    EVICTION_HEADROOM_DIVISOR,
    SHARED_BUCKETS,
    AesMode,
    PollReply,
    SharedBucket,
    Store,
    StoreOptions,
    StoreStats,
)
from interactsh.store.python_crypto import AES_KEY_SIZE, encrypt_records, load_rsa_public_key, wrap_aes_key
from interactsh.store.python_page import PageBudget, json_list
from interactsh.store.python_session import RECORD_OVERHEAD, Session, SharedQueue, cap_release, session_overhead

log = logging.getLogger("interactsh.store")

NOT_FOUND_MESSAGE = "could not get correlation-id from cache"
ALREADY_EXISTS_MESSAGE = "correlation-id provided already exists"
_SHOWN_ID_CHARACTERS = 40


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
        "max_shared_bytes",
        "max_page_items",
        "max_page_bytes",
    ):
        value = getattr(options, name)
        if value < 1:
            raise ValueError(f"store option {name} is {value}: it must be at least 1")
    _check_budget(options.max_total_bytes)
    _check_seconds("idle_eviction_seconds", options.idle_eviction_seconds)


def _check_budget(max_total_bytes: int | None) -> None:
    if max_total_bytes is not None and max_total_bytes < 1:
        raise ValueError(f"store budget max_total_bytes is {max_total_bytes}: use at least 1, or None for no budget")


def _check_seconds(name: str, seconds: float) -> None:
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"{name} is {seconds!r}: use a finite number of seconds, 0 or more")


class PythonStore(Store):
    """Sessions, queues and shared buckets in plain Python objects.

    ``clock`` must never go backwards: sessions are kept in the order of
    their expiry deadlines, which :meth:`expire` relies on.
    """

    def __init__(self, options: StoreOptions | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(options, clock)
        _check_options(self.options)
        # Ordered by deadline: a sliding refresh moves its session to the end.
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._shared: dict[str, SharedQueue] = {bucket: SharedQueue() for bucket in SHARED_BUCKETS}
        self._next_seq = 0
        self._queued_items = 0
        self._queued_bytes = 0
        self._session_overhead = 0
        self._budget = self.options.max_total_bytes
        # No session has an idle record before this time, so a full store
        # rejects writes without searching until then. Appends lower it.
        self._idle_records_at = math.inf
        self._dropped_items = 0
        self._dropped_shared_items = 0
        self._expired_sessions = 0
        self._evicted_items = 0
        self._refused_items = 0
        self._refused_sessions = 0

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

        overhead = session_overhead(normalized, secret_bytes, rsa_key.key_size)
        try:
            self._make_room(overhead, None, (0, 0), now, "a new session")
        except StoreFullError:
            self._refused_sessions += 1
            raise
        aes_key = os.urandom(AES_KEY_SIZE)
        self._sessions[normalized] = Session(
            correlation_id=normalized,
            secret=secret_bytes,
            aes_key=aes_key,
            aes_key_b64=wrap_aes_key(rsa_key, aes_key),
            aes_mode=mode,
            base_seq=self._take_seq(),
            registered_at=now,
            refreshed_at=now,
            active_at=now,
            overhead=overhead,
        )
        self._session_overhead += overhead
        log.debug("registered session %s (%s, RSA-%d)", normalized, mode, rsa_key.key_size)
        return True

    def deregister(self, correlation_id: str, secret: str) -> None:
        """Remove a session and its queue, and forget it as a shared consumer."""
        session = self._authenticate(correlation_id, secret)
        self._remove(session)
        log.debug("deregistered session %s", session.correlation_id)

    def contains(self, correlation_id: str) -> bool:
        """Tell whether a live session has this id."""
        return self._live_session(correlation_id, self.clock()) is not None

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

    def expire_idle(self, idle_seconds: float) -> int:
        """Remove every session idle for ``idle_seconds`` or past its TTL; return how many went."""
        _check_seconds("idle_seconds", idle_seconds)
        now = self.clock()
        idle = [
            session
            for session in self._sessions.values()
            if self._is_expired(session, now) or now >= session.active_at + idle_seconds
        ]
        for session in idle:
            self._remove(session)
        self._expired_sessions += len(idle)
        return len(idle)

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
        now = self.clock()
        session = self._live_session(correlation_id, now)
        if session is None:
            return False
        size = len(record)
        options = self.options
        if size > options.max_session_bytes:
            self._dropped_items += 1
            return True

        if self._budget is not None:
            caps = (options.max_session_items, options.max_session_bytes)
            try:
                self._make_room(size + RECORD_OVERHEAD, session, caps, now, f"a record of {size} bytes")
            except StoreFullError:
                self._refused_items += 1
                raise
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
        self._idle_records_at = min(self._idle_records_at, self._idle_since(session))
        return True

    def append_shared(self, bucket: SharedBucket, record: bytes) -> None:
        """Add one plaintext record to a shared bucket, dropping the oldest past the caps."""
        queue = self._shared.get(bucket)
        if queue is None:
            raise ValueError(f"shared bucket {bucket!r} does not exist: use extra or tlddata")
        size = len(record)
        options = self.options
        if size > options.max_shared_bytes:
            self._dropped_shared_items += 1
            return

        if self._budget is not None:
            caps = (options.max_shared_items, options.max_shared_bytes)
            try:
                self._make_room(size + RECORD_OVERHEAD, queue, caps, self.clock(), f"a shared record of {size} bytes")
            except StoreFullError:
                self._refused_items += 1
                raise
        queue.records.append((queue.next_seq, bytes(record)))
        queue.next_seq += 1
        queue.queued_bytes += size
        while len(queue.records) > options.max_shared_items or queue.queued_bytes > options.max_shared_bytes:
            _, dropped = queue.records.popleft()
            queue.queued_bytes -= len(dropped)
            self._dropped_shared_items += 1

    # Polling

    def poll(self, correlation_id: str, secret: str, *, extra: bool = False, tlddata: bool = False) -> PollReply:
        """Build the next page of the session's interactions without removing them."""
        session = self._authenticate(correlation_id, secret)
        self._refresh(session, self.clock())
        budget = PageBudget(self.options.max_page_items, self.options.max_page_bytes)
        page = budget.take(session.records)
        reply = PollReply(
            body=b"",
            correlation_id=session.correlation_id,
            data_count=len(page),
            last_data_seq=page[-1][0] if page else session.base_seq,
        )
        data = encrypt_records(session.aes_key, session.aes_mode, [record for _, record in page])
        parts = [b'{"data":', json_list(data, quoted=True), b',"extra":']
        if extra:
            parts.append(json_list(self._read_shared("extra", session.correlation_id, budget, reply)))
        else:
            parts.append(b"null")
        parts += [b',"aes_key":"', session.aes_key_b64, b'"']
        if tlddata:
            items = self._read_shared("tlddata", session.correlation_id, budget, reply)
            if items:
                parts += [b',"tlddata":', json_list(items)]
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

    def _read_shared(self, bucket: str, consumer: str, budget: PageBudget, reply: PollReply) -> list[bytes]:
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

    # Memory

    def evict(self, target_bytes: int) -> int:
        """Evict the oldest records of idle sessions until ``total_bytes`` is at most ``target_bytes``."""
        if target_bytes < 0:
            raise ValueError(f"eviction target {target_bytes} is negative: use 0 or more bytes")
        return self._evict_to(target_bytes, self.clock())

    def set_budget(self, max_total_bytes: int | None) -> None:
        """Set the byte budget of ``total_bytes``, or ``None`` for none."""
        _check_budget(max_total_bytes)
        self._budget = max_total_bytes

    def shrink(self) -> int:
        """Return 0: CPython's allocator keeps freed objects' memory for reuse, so there is nothing to hand back."""
        return 0

    def _total_bytes(self) -> int:
        """Return the bytes that the budget counts: payloads plus per-record and per-session overheads."""
        shared_items = sum(len(queue.records) for queue in self._shared.values())
        shared_bytes = sum(queue.queued_bytes for queue in self._shared.values())
        records = (self._queued_items + shared_items) * RECORD_OVERHEAD
        return self._queued_bytes + shared_bytes + records + self._session_overhead

    def _make_room(
        self, cost: int, queue: Session | SharedQueue | None, caps: tuple[int, int], now: float, rejected: str
    ) -> None:
        """Make room for a write of ``cost`` bytes by evicting idle records, or raise :class:`StoreFullError`.

        A record write names the ``queue`` it joins and that queue's item and
        byte ``caps``: the records the caps will drop for it count as freed.
        ``rejected`` names the write in the error message.
        """
        budget = self._budget
        if budget is None:
            return

        def released() -> int:
            if queue is None:
                return 0
            # Eviction may have shortened this queue, so the release is computed again after it.
            return cap_release(queue.records, queue.queued_bytes, cost - RECORD_OVERHEAD, *caps)

        freed = released()
        if self._total_bytes() + cost - freed <= budget:
            return
        if cost - freed > budget:
            raise StoreFullError(f"{rejected} needs {cost} bytes, more than the store's whole budget of {budget} bytes")
        if now >= self._idle_records_at:
            self._evict_to(max(0, budget - (cost - freed) - budget // EVICTION_HEADROOM_DIVISOR), now)
            if self._total_bytes() + cost - released() <= budget:
                return
        raise StoreFullError(
            f"store budget of {budget} bytes is used up ({self._total_bytes()} bytes stored) and no idle session "
            f"has records left to evict, so {rejected} was rejected: retry after clients poll, or raise the budget"
        )

    def _evict_to(self, target: int, now: float) -> int:
        """Evict idle records, oldest first across sessions, until ``total_bytes`` is at most ``target``."""
        if self._total_bytes() <= target:
            return 0
        heap: list[tuple[int, Session]] = []
        next_idle = math.inf
        for session in self._sessions.values():
            if not session.records:
                continue
            since = self._idle_since(session)
            if now >= since:
                heap.append((session.records[0][0], session))
            else:
                next_idle = min(next_idle, since)
        heapq.heapify(heap)

        evicted = 0
        while heap and self._total_bytes() > target:
            session = heap[0][1]
            _, record = session.records.popleft()
            session.queued_bytes -= len(record)
            self._queued_items -= 1
            self._queued_bytes -= len(record)
            evicted += 1
            if session.records:
                heapq.heapreplace(heap, (session.records[0][0], session))
            else:
                heapq.heappop(heap)

        self._idle_records_at = now if heap else next_idle
        self._evicted_items += evicted
        if evicted:
            log.debug("evicted %d records of idle sessions", evicted)
        return evicted

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
            total_bytes=self._total_bytes(),
            evicted_items=self._evicted_items,
            refused_items=self._refused_items,
            refused_sessions=self._refused_sessions,
        )

    # Helpers

    def _take_seq(self) -> int:
        self._next_seq += 1
        return self._next_seq

    def _is_expired(self, session: Session, now: float) -> bool:
        return now >= self._deadline(session)

    def _deadline(self, session: Session) -> float:
        ttl = self.options.ttl_seconds
        if ttl is None:
            return math.inf
        anchor = session.refreshed_at if self.options.eviction_strategy == "sliding" else session.registered_at
        return anchor + ttl

    def _idle_since(self, session: Session) -> float:
        """Return when the session turns idle: its owner's idle time runs out, or its TTL passes."""
        return min(session.active_at + self.options.idle_eviction_seconds, self._deadline(session))

    def _live_session(self, correlation_id: str, now: float) -> Session | None:
        normalized = normalize_correlation_id(correlation_id, self.options.correlation_id_length)
        if normalized is None:
            return None
        session = self._sessions.get(normalized)
        if session is None or self._is_expired(session, now):
            return None
        return session

    def _authenticate(self, correlation_id: str, secret: str) -> Session:
        """Return the live session when the secret matches; the same error for every failure."""
        session = self._live_session(correlation_id, self.clock())
        if session is None or not hmac.compare_digest(session.secret, _secret_bytes(secret)):
            raise SessionNotFoundError(NOT_FOUND_MESSAGE)
        return session

    def _refresh(self, session: Session, now: float) -> None:
        session.active_at = now
        if self.options.eviction_strategy == "sliding":
            session.refreshed_at = now
            self._sessions.move_to_end(session.correlation_id)

    def _remove(self, session: Session) -> None:
        del self._sessions[session.correlation_id]
        self._queued_items -= len(session.records)
        self._queued_bytes -= session.queued_bytes
        self._session_overhead -= session.overhead
        for queue in self._shared.values():
            queue.consumers.pop(session.correlation_id, None)


def _secret_bytes(secret: str) -> bytes:
    # A JSON body can carry a lone surrogate ("\ud800"); "surrogatepass" keeps
    # such a secret comparable instead of raising UnicodeEncodeError.
    return secret.encode("utf-8", "surrogatepass")
