"""The one path by which listeners hand interactions to the store."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from interactsh.config import ServerConfig
from interactsh.errors import StoreFullError
from interactsh.ids import IdMatcher
from interactsh.metrics import Counters
from interactsh.store.base import SharedBucket, Store

if TYPE_CHECKING:
    from interactsh.memory import MemoryManager

interactions_log = logging.getLogger("interactsh.interactions")


@dataclass
class Admission:
    """Admission settings under memory pressure, which the memory manager sets and listeners read per request.

    ``capture_limit`` is the number of bytes of each request that a listener
    records. It starts at ``-max-request-size`` and shrinks while memory
    pressure is critical, when ``reject_registrations`` is also set.
    """

    capture_limit: int
    reject_registrations: bool = False
    rejected_registrations: int = 0


class Recorder:
    """Matches ids against live sessions and files records under them."""

    def __init__(self, config: ServerConfig, store: Store, counters: Counters) -> None:
        self.config = config
        self.store = store
        self.counters = counters
        self.matcher = IdMatcher(config.cid_length, config.nonce_length, store.contains)
        self.admission = Admission(config.max_request_size)
        # Set by the server wiring so that /metrics can report memory figures.
        self.memory: MemoryManager | None = None
        self._domains = [domain.lower().rstrip(".") for domain in config.domains]

    def domain_of(self, name: str) -> str | None:
        """Return the configured domain that ``name`` equals or ends with, or ``None``.

        The comparison ignores case and a trailing dot, and respects label
        boundaries, so ``xoast.test`` is not under ``oast.test``.
        """
        lowered = name.lower().rstrip(".")
        for domain in self._domains:
            if lowered == domain or lowered.endswith("." + domain):
                return domain
        return None

    def record(self, correlation_id: str, record: bytes) -> bool:
        """Queue one record for a session; ``False`` when the session is gone or the store is full.

        The store counts the records it rejects for want of room, and the
        memory manager reports them, so a full store is not logged here per record.
        """
        try:
            stored = self.store.append(correlation_id, record)
        except StoreFullError:
            interactions_log.debug("not stored for %s: the store is full", correlation_id)
            return False
        if stored:
            self.counters.recorded += 1
            interactions_log.debug("stored for %s: %s", correlation_id, record.decode("utf-8", "replace"))
        else:
            self.counters.unmatched += 1
        return stored

    def record_shared(self, bucket: SharedBucket, record: bytes) -> None:
        """Add one plaintext record to the ``extra`` or ``tlddata`` bucket, unless the store is full."""
        try:
            self.store.append_shared(bucket, record)
        except StoreFullError:
            interactions_log.debug("not stored in %s: the store is full", bucket)
            return
        interactions_log.debug("stored in %s: %s", bucket, record.decode("utf-8", "replace"))
