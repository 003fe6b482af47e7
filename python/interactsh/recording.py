"""The one path by which listeners hand interactions to the store."""

from __future__ import annotations

import logging

from interactsh.config import ServerConfig
from interactsh.ids import IdMatcher
from interactsh.metrics import Counters
from interactsh.store.base import SharedBucket, Store

interactions_log = logging.getLogger("interactsh.interactions")


class Recorder:
    """Matches ids against live sessions and files records under them."""

    def __init__(self, config: ServerConfig, store: Store, counters: Counters) -> None:
        self.config = config
        self.store = store
        self.counters = counters
        self.matcher = IdMatcher(config.cid_length, config.nonce_length, store.contains)
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
        """Queue one record for a session; ``False`` when the session is gone."""
        stored = self.store.append(correlation_id, record)
        if stored:
            self.counters.recorded += 1
            interactions_log.debug("stored for %s: %s", correlation_id, record.decode("utf-8", "replace"))
        else:
            self.counters.unmatched += 1
        return stored

    def record_shared(self, bucket: SharedBucket, record: bytes) -> None:
        """Add one plaintext record to the ``extra`` or ``tlddata`` bucket."""
        self.store.append_shared(bucket, record)
        interactions_log.debug("stored in %s: %s", bucket, record.decode("utf-8", "replace"))
