"""Type stub of the ``interactsh._core`` extension (the ``rust/py`` crate).

Use it through :class:`interactsh.store.rust_store.RustStore`. Every method
that depends on time takes ``now``, seconds on the caller's monotonic clock.
Errors are the classes of :mod:`interactsh.errors`; invalid options and
bucket names raise ``ValueError``.
"""

from typing import final

__all__ = ["MAX_RSA_BITS", "MIN_RSA_BITS", "Store"]

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
    ) -> Store:
        """Create a store; :class:`interactsh.store.base.StoreOptions` holds the defaults."""
    def register(self, correlation_id: str, secret: str, public_key: str, aes_mode: str | None, now: float) -> bool:
        """Register a session or refresh it; ``True`` for a new session."""

    def deregister(self, correlation_id: str, secret: str, now: float) -> None:
        """Remove a session, its queue and its shared read offsets."""

    def contains(self, correlation_id: str, now: float) -> bool:
        """Tell whether a live session has this id."""

    def append(self, correlation_id: str, record: bytes, now: float) -> bool:
        """Queue a copy of ``record`` for a live session; ``False`` when there is none."""

    def append_shared(self, bucket: str, record: bytes) -> None:
        """Add a copy of ``record`` to the ``extra`` or ``tlddata`` bucket."""

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

    def stats(self, now: float) -> tuple[int, int, int, int, int, int, int, int]:
        """Return the fields of ``StoreStats`` in its field order, counting sessions live at ``now``."""

    def live_len(self, now: float) -> int:
        """Return the number of sessions live at ``now``."""

    def __len__(self) -> int:
        """Return the number of sessions held, including expired ones not yet removed."""
