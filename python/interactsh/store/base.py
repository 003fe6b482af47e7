"""The store contract that both engines implement.

A store keeps sessions keyed by correlation id. Each session owns a queue of
interaction records (UTF-8 JSON documents, one per interaction) that are
encrypted for the session's client only when polled. Two shared buckets,
``extra`` (the token bucket) and ``tlddata`` (wildcard captures), hold
plaintext records that every consumer reads through its own read offset.

Rules that both engines follow, checked by ``tests/store/test_contract.py``:

* Correlation ids are lowercased, then must be exactly
  ``correlation_id_length`` characters of ``[a-z0-9]``. ``register`` raises
  :class:`InvalidCorrelationIdError` otherwise. ``poll`` and ``deregister``
  with such an id raise :class:`SessionNotFoundError`; ``append`` and
  ``contains`` return ``False``.
* ``register`` with a live id and the same secret refreshes the TTL, keeps the
  queue and the AES key, and returns ``False``. A different secret raises
  :class:`AlreadyRegisteredError`. A new id returns ``True``.
* Secrets are compared exactly and in constant time. An unknown id and a wrong
  secret raise the same :class:`SessionNotFoundError`, and change nothing.
* TTL: ``sliding`` counts from the owner's last successful register or poll;
  inbound interactions never refresh it. ``fixed`` counts from the first
  registration. ``ttl_seconds=None`` disables expiry. An expired session reads
  as absent at once, even before :meth:`Store.expire` removes it, and a later
  registration of the same id starts empty with a new AES key.
* ``append`` drops the oldest records of the session while it contains more than
  ``max_session_items`` records or ``max_session_bytes`` bytes, and counts
  each drop. A record larger than ``max_session_bytes`` is dropped itself.
* ``poll`` builds the whole reply body but removes nothing: the caller sends
  the body and then calls :meth:`Store.commit`. A reply that is never
  committed leaves every item queued for the next poll. A page holds at most
  ``max_page_items`` records per list and ``max_page_bytes`` plaintext bytes,
  but always at least one record when one is queued.
* Shared buckets keep the newest ``max_shared_items`` records and at most
  ``max_shared_bytes`` bytes, trimmed on insert and counted as dropped. A
  record larger than ``max_shared_bytes`` is dropped itself. A consumer's
  first poll returns the whole retained backlog.

Memory budget, checked by ``tests/store/test_contract_memory.py``:

* ``total_bytes`` counts every queued and shared record as its length plus a
  fixed per-record overhead, and every session (expired ones too, until they
  are removed) as a per-session overhead that grows with the lengths of its
  id, secret and wrapped AES key. The overheads are each engine's estimate of
  its own bookkeeping and differ between engines; payload bytes are exact.
* A session is *idle* when its owner has not registered or polled for
  ``idle_eviction_seconds``, or when its TTL has passed. Inbound records and
  failed polls do not count as activity, whatever ``eviction_strategy`` is.
* With ``max_total_bytes`` set, a write that would take ``total_bytes`` over
  it first evicts the oldest records of idle sessions, oldest first across
  sessions, as :meth:`Store.evict` does, down to ``max_total_bytes`` minus the
  write's cost minus a headroom of ``max_total_bytes // 64`` bytes, so that the
  next writes find room without another search. Records that the session or
  bucket caps would drop for the write count as freed. When there is still no
  room the write raises :class:`StoreFullError` and stores nothing: ``append``
  and ``append_shared`` count it in ``refused_items``, ``register`` of a new
  session in ``refused_sessions``. A write whose cost exceeds the budget on
  its own is refused without evicting anything. Refreshing a live session
  costs nothing and is never refused.
* :meth:`Store.set_budget` changes the budget and evicts nothing by itself.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

AesMode = Literal["ctr", "cfb"]
EvictionStrategy = Literal["sliding", "fixed"]
SharedBucket = Literal["extra", "tlddata"]

SHARED_BUCKETS: tuple[SharedBucket, ...] = ("extra", "tlddata")
AES_MODES: tuple[AesMode, ...] = ("ctr", "cfb")
MIN_RSA_BITS = 1024
MAX_RSA_BITS = 4096


@dataclass(frozen=True)
class StoreOptions:
    """Limits and policies of a store; every limit has a named default."""

    correlation_id_length: int = 20
    aes_mode: AesMode = "ctr"
    ttl_seconds: float | None = 30 * 86400.0
    eviction_strategy: EvictionStrategy = "sliding"
    max_session_items: int = 10_000
    max_session_bytes: int = 16 * 1024 * 1024
    max_shared_items: int = 10_000
    max_page_items: int = 5_000
    max_page_bytes: int = 8 * 1024 * 1024
    max_shared_bytes: int = 16 * 1024 * 1024
    # The store's byte budget (see total_bytes); None leaves it unbounded.
    max_total_bytes: int | None = None
    # Rust engine: payloads in slab pools (True) or one allocation each (False). The Python engine ignores it.
    pooled: bool = True
    # Seconds without a register or poll after which a session's records may be evicted.
    idle_eviction_seconds: float = 60.0


# A write that must evict frees this fraction of the budget more than it needs.
EVICTION_HEADROOM_DIVISOR = 64


@dataclass
class PollReply:
    """A built poll reply that removes its items only when committed.

    ``body`` is the complete HTTP response body:
    ``{"data":[...]|null,"extra":[...]|null,"aes_key":"...","tlddata":[...]}``
    followed by ``\\n``, where ``tlddata`` is present only when non-empty.
    ``data`` items are ``base64(iv || AES-256-CTR or CFB(record))`` with a fresh
    16-byte IV each; ``extra`` and ``tlddata`` items are the plaintext records
    as JSON strings. The remaining fields say what ``commit`` must release.
    """

    body: bytes
    correlation_id: str
    data_count: int
    last_data_seq: int
    shared_offsets: dict[str, int] = field(default_factory=dict)


@dataclass
class StoreStats:
    """Counters and gauges that ``/metrics`` exports."""

    sessions: int = 0
    queued_items: int = 0
    queued_bytes: int = 0
    shared_items: int = 0
    shared_bytes: int = 0
    dropped_items: int = 0
    dropped_shared_items: int = 0
    expired_sessions: int = 0
    # Everything the budget counts: payloads plus per-record and per-session overheads.
    total_bytes: int = 0
    # Records removed by evict() and by writes that made room.
    evicted_items: int = 0
    # Records, and registrations of new sessions, rejected with StoreFullError.
    refused_items: int = 0
    refused_sessions: int = 0
    # Slab pool figures of the Rust engine (see RustStore.stats); empty for the Python engine.
    pool: dict[str, object] = field(default_factory=dict)


class Store(ABC):
    """Sessions, their interaction queues and the shared buckets."""

    def __init__(self, options: StoreOptions | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options or StoreOptions()
        self.clock = clock

    @abstractmethod
    def register(self, correlation_id: str, secret: str, public_key: str, aes_mode: AesMode | None = None) -> bool:
        """Register a session, or refresh it when the secret matches.

        ``public_key`` is the base64 text of a PEM document whose DER is an
        RSA SubjectPublicKeyInfo or PKCS#1 key of 1024 to 4096 bits; the PEM
        label is ignored. ``aes_mode`` overrides ``options.aes_mode``.
        Returns ``True`` for a new session and ``False`` for a refresh.
        Raises :class:`StoreFullError` when a new session does not fit the budget.
        """

    @abstractmethod
    def deregister(self, correlation_id: str, secret: str) -> None:
        """Remove a session and its queue, and forget it as a shared consumer."""

    @abstractmethod
    def contains(self, correlation_id: str) -> bool:
        """Tell whether a live session has this id."""

    @abstractmethod
    def append(self, correlation_id: str, record: bytes) -> bool:
        """Queue one record for a session; ``False`` when no live session has the id.

        Raises :class:`StoreFullError` when the record does not fit the budget.
        """

    @abstractmethod
    def append_shared(self, bucket: SharedBucket, record: bytes) -> None:
        """Add one plaintext record to a shared bucket; :class:`StoreFullError` when it does not fit the budget."""

    @abstractmethod
    def poll(self, correlation_id: str, secret: str, *, extra: bool = False, tlddata: bool = False) -> PollReply:
        """Build the next page of the session's interactions without removing them.

        ``extra`` and ``tlddata`` choose whether the shared buckets are read
        for this consumer; when ``extra`` is off the reply's ``extra`` is
        ``null`` and when ``tlddata`` is off the key is left out.
        """

    @abstractmethod
    def commit(self, reply: PollReply) -> None:
        """Remove what ``reply`` delivered; a second commit of it does nothing."""

    @abstractmethod
    def expire(self) -> int:
        """Remove sessions whose TTL has passed and return how many went."""

    @abstractmethod
    def evict(self, target_bytes: int) -> int:
        """Evict the oldest records of idle sessions until ``total_bytes`` is at most ``target_bytes``.

        Records go oldest first across all idle sessions, in the order they
        arrived. Stops early when no idle session has a record left. Returns
        the number of records evicted, which ``evicted_items`` also counts.
        Raises ``ValueError`` for a negative target.
        """

    @abstractmethod
    def expire_idle(self, idle_seconds: float) -> int:
        """Remove every session whose owner has not registered or polled for ``idle_seconds``.

        Sessions whose TTL has passed go too. Returns the number of sessions
        removed, which ``expired_sessions`` also counts. Raises ``ValueError``
        for a negative or non-finite ``idle_seconds``.
        """

    @abstractmethod
    def set_budget(self, max_total_bytes: int | None) -> None:
        """Set the byte budget of ``total_bytes``, or ``None`` for none; raise ``ValueError`` below 1."""

    @abstractmethod
    def shrink(self) -> int:
        """Return free memory of the store's pools and queues to the allocator; return the bytes released."""

    @abstractmethod
    def stats(self) -> StoreStats:
        """Return the current counters and gauges."""

    @abstractmethod
    def __len__(self) -> int:
        """Return the number of live sessions."""
