"""Type stub of the ``interactsh._core`` extension (the ``rust/py`` crate).

Use it through :class:`interactsh.store.rust_store.RustStore`. Every method
that depends on time takes ``now``, seconds on the caller's monotonic clock.
Errors are the classes of :mod:`interactsh.errors`; invalid options,
arguments and bucket names raise ``ValueError``. The memory readers raise
``OSError`` when ``/proc`` or ``/sys`` cannot be read.
"""

from typing import final

__all__ = [
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "PressureMonitor",
    "Store",
    "effective_limit",
    "eviction_target",
    "resident_bytes",
]

MIN_RSA_BITS: int
MAX_RSA_BITS: int

@final
class Store:
    """The interaction store of ``interactsh-core``; safe to call from several threads."""

    def __new__(
        cls,
        *,
        correlation_id_length: int,
        aes_mode: str,
        ttl_seconds: float | None,
        eviction_strategy: str,
        max_session_items: int,
        max_session_bytes: int,
        max_shared_items: int,
        max_page_items: int,
        max_page_bytes: int,
        max_shared_bytes: int,
        max_total_bytes: int | None,
        pooled: bool,
        idle_eviction_seconds: float,
    ) -> Store:
        """Create a store; :class:`interactsh.store.base.StoreOptions` holds the defaults."""
    def register(self, correlation_id: str, secret: str, public_key: str, aes_mode: str | None, now: float) -> bool:
        """Register a session or refresh it; ``True`` for a new session."""

    def deregister(self, correlation_id: str, secret: str, now: float) -> None:
        """Remove a session, its queue and its shared read offsets."""

    def contains(self, correlation_id: str, now: float) -> bool:
        """Tell whether a live session has this id."""

    def append(self, correlation_id: str, record: bytes, now: float) -> bool:
        """Queue a copy of ``record`` for a live session; ``False`` when there is none.

        Raises :class:`interactsh.errors.StoreFullError` when it does not fit the budget.
        """

    def append_shared(self, bucket: str, record: bytes, now: float) -> None:
        """Add a copy of ``record`` to the ``extra`` or ``tlddata`` bucket; ``StoreFullError`` as for ``append``."""

    def poll(
        self, correlation_id: str, secret: str, extra: bool, tlddata: bool, now: float
    ) -> tuple[bytes, str, int, int, int | None, int | None]:
        """Build the next page without removing anything.

        Returns the body, the lowercased correlation id, the number of
        ``data`` items, the sequence number that :meth:`commit` releases up
        to, and the ``extra`` and ``tlddata`` read offsets after the page
        (``None`` when the page holds none of that bucket).
        """

    def commit(
        self, correlation_id: str, last_data_seq: int, extra_offset: int | None, tlddata_offset: int | None
    ) -> None:
        """Remove what a poll reply delivered; a second commit does nothing."""

    def expire(self, now: float) -> int:
        """Remove sessions whose time to live has passed; return how many went."""

    def expire_idle(self, idle_seconds: float, now: float) -> int:
        """Remove sessions idle for ``idle_seconds`` or past their TTL; return how many went."""

    def evict(self, target_bytes: int, now: float) -> int:
        """Evict the oldest records of idle sessions until the total is at most ``target_bytes``."""

    def set_budget(self, max_total_bytes: int | None) -> None:
        """Set the byte budget, or ``None`` for none."""

    def shrink(self) -> int:
        """Return free memory of the pool and the queues to the allocator; return the bytes released."""

    def stats(self, now: float) -> tuple[int, int, int, int, int, int, int, int, int, int, int, int]:
        """Return the fields of ``StoreStats`` but ``pool`` as a tuple, in its field order, counting sessions live at ``now``."""

    def pool_stats(self) -> dict[str, object]:
        """Return the slab pool's figures as a dict, with one dict per size class under ``classes``.

        Keys: ``pooled``, ``payloads``, ``pages``, ``free_pages``,
        ``large_payloads``, ``large_bytes``, ``bytes_requested``,
        ``bytes_held``, ``bytes_overhead`` and ``classes``, whose entries have
        ``chunk_size``, ``pages``, ``free_pages``, ``chunks_used``,
        ``chunks_free``, ``bytes_requested`` and ``bytes_held``.
        """

    def live_len(self, now: float) -> int:
        """Return the number of sessions live at ``now``."""

    def __len__(self) -> int:
        """Return the number of sessions held, including expired ones not yet removed."""

@final
class PressureMonitor:
    """Tracks the memory pressure level across resident-set samples, with hysteresis."""

    def __new__(
        cls,
        *,
        low: float = 0.40,
        medium: float = 0.60,
        high: float = 0.80,
        critical: float = 0.90,
        margin: float = 0.05,
    ) -> PressureMonitor:
        """Create a monitor at level "none"; thresholds are fractions of the limit."""

    def observe(self, rss: int, limit: int) -> tuple[str, str, float] | None:
        """Record a sample; return (from, to, ratio) when the level changes, else None."""

    @property
    def level(self) -> str:
        """The current level: "none", "low", "medium", "high" or "critical"."""

    def bytes_to_free(self, rss: int, limit: int) -> int:
        """Return the resident bytes the current level requires freeing: the excess over 70 % at High and Critical."""

    def stats(self) -> dict[str, object]:
        """Return the counters: level, samples, samples and entries per level, latest and peak ratio."""

def resident_bytes() -> int:
    """Return the resident set size of this process in bytes, from ``/proc/self/statm``."""

def effective_limit(configured_bytes: int | None) -> tuple[int | None, str]:
    """Return the effective memory limit in bytes and what sets it.

    The limit is the lowest of ``configured_bytes``, the cgroup limit of this
    process and physical memory. The source is "configured", "cgroup-v2",
    "cgroup-v1", "physical", or "none" with a limit of ``None``.
    """

def eviction_target(limit: int) -> int:
    """Return the resident bytes that eviction at High and Critical aims for: 70 % of ``limit``."""
