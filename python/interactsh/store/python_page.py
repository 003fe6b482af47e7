"""The item and byte limits of one poll page, and the JSON lists of a reply body."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import islice

from interactsh.store.python_session import Entry


class PageBudget:
    """The item and byte limits of one poll page; the byte budget spans all lists."""

    __slots__ = ("bytes_left", "max_items")

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.bytes_left = max_bytes

    def take(self, records: deque[Entry], start: int = 0) -> list[Entry]:
        """Return the records from ``start`` on that fit; the first one always fits."""
        page: list[Entry] = []
        end = min(len(records), start + self.max_items)
        # Indexing a deque walks from its nearer end, so it is cheap near the
        # tail, where shared readers usually start; islice is cheap near the head.
        if start < len(records) // 2:
            entries: Iterable[Entry] = islice(records, start, end)
        else:
            entries = (records[index] for index in range(start, end))
        for entry in entries:
            size = len(entry[1])
            if page and size > self.bytes_left:
                break
            page.append(entry)
            self.bytes_left -= size
        return page


def json_list(items: list[bytes], *, quoted: bool = False) -> bytes:
    """Return ``items`` as a JSON array, or ``null`` when there are none."""
    if not items:
        return b"null"
    if quoted:
        return b'["' + b'","'.join(items) + b'"]'
    return b"[" + b",".join(items) + b"]"
