"""Correlation id extraction from the text a listener received.

A payload label carries ``<correlation id><nonce>``: ``cid_length`` plus
``nonce_length`` characters of ``[a-z0-9]`` (matched case-insensitively).
Every window of that length in every token is a candidate, and a candidate
counts only when its first ``cid_length`` characters name a live session.
Upstream keeps the last matching window, which loses an id glued to other
alphanumeric text; here the first registered window wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

# Separators of the cheap path and query scan of HTTP request targets.
_TARGET_SEPARATORS = re.compile(r"[/?&=.;,:+%#~!$'()*\s]+")


@dataclass(frozen=True)
class IdMatch:
    """One registered id found in a token."""

    correlation_id: str
    unique_id: str
    token_index: int
    window: str


class IdMatcher:
    """Finds registered correlation ids in labels and tokens."""

    def __init__(self, cid_length: int, nonce_length: int, is_registered: Callable[[str], bool]) -> None:
        self.cid_length = cid_length
        self.window_length = cid_length + nonce_length
        self.is_registered = is_registered

    def windows(self, token: str) -> Iterator[str]:
        """Yield every candidate window of ``token`` in its original case."""
        size = self.window_length
        for offset in range(len(token) - size + 1):
            window = token[offset : offset + size]
            if window.isascii() and window.isalnum():
                yield window

    def first_match(self, tokens: Iterable[str]) -> IdMatch | None:
        """Return the first window, over all tokens in order, that names a live session."""
        for match in self.matches(tokens):
            return match
        return None

    def matches(self, tokens: Iterable[str]) -> Iterator[IdMatch]:
        """Yield each live session's first matching window once, in token order."""
        seen: set[str] = set()
        for index, token in enumerate(tokens):
            if len(token) < self.window_length:
                continue
            for window in self.windows(token):
                unique_id = window.lower()
                correlation_id = unique_id[: self.cid_length]
                if correlation_id in seen or not self.is_registered(correlation_id):
                    continue
                seen.add(correlation_id)
                yield IdMatch(correlation_id, unique_id, index, window)


def split_request_target(target: str) -> list[str]:
    """Split an HTTP path and query into the tokens that may hold an id."""
    return [token for token in _TARGET_SEPARATORS.split(target) if token]
