"""Per-address rate limits for the API: registrations and failed session lookups."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

# Buckets kept at most; the least recently used address is forgotten first, which
# only ever gives that address a fresh, full bucket.
MAX_TRACKED_ADDRESSES = 65_536


class RateLimiter:
    """Token buckets per address: ``per_minute`` events per minute, with bursts of the same size.

    ``per_minute`` of 0 or less turns the limit off.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Tell whether the limit is on."""
        return self.capacity > 0

    def allow(self, address: str) -> bool:
        """Take one token for ``address``; ``False`` when it has none left."""
        if not self.enabled:
            return True
        tokens = self._tokens(address)
        if tokens < 1.0:
            return False
        self._store(address, tokens - 1.0)
        return True

    def exhausted(self, address: str) -> bool:
        """Tell whether ``address`` has no token left, without taking one."""
        return self.enabled and self._tokens(address) < 1.0

    def retry_after(self, address: str) -> int:
        """Return the whole seconds until ``address`` has a token again."""
        if not self.enabled:
            return 0
        missing = 1.0 - self._tokens(address)
        return max(1, math.ceil(missing / self.refill_per_second))

    def _tokens(self, address: str) -> float:
        now = self.clock()
        entry = self._buckets.get(address)
        if entry is None:
            return self.capacity
        tokens, updated = entry
        return min(self.capacity, tokens + (now - updated) * self.refill_per_second)

    def _store(self, address: str, tokens: float) -> None:
        self._buckets[address] = (tokens, self.clock())
        self._buckets.move_to_end(address)
        while len(self._buckets) > MAX_TRACKED_ADDRESSES:
            self._buckets.popitem(last=False)
