"""Checks on HTTP/1.1 framing that llhttp leaves to its caller.

llhttp parses chunked bodies but reports a chunk header without its size,
and accepts any size up to 2**64 - 1. A client that declares such a chunk
would hold the connection until the body timeout. :class:`ChunkSizeGuard`
rebuilds the size line of a chunk from the input so that the protocol can
reject sizes no body could reach. :class:`RawBody` keeps the bytes of a chunked
body as they arrived, for the record of a body that did not end properly.
"""

from __future__ import annotations

import re

# The largest chunk size accepted: 15 hex digits, about 1.15e18 bytes. No body
# of that size can arrive before the body timeout, and a 16-digit size could
# overflow the 64-bit length that llhttp counts in.
MAX_CHUNK_SIZE = 16**15 - 1
# Bytes kept of a size line that spans several reads; the size itself is at most 16 hex digits.
_LINE_PREFIX_SIZE = 64
# llhttp (strict, as uvicorn runs it) allows no whitespace: a size line is hex digits, then
# an extension after ";" or CRLF. Trailer lines never match, because they contain ":".
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]+)(?:;|\r\n)")


class ChunkSizeGuard:
    """Finds the declared size of a chunk that is still open after llhttp consumed a piece of input.

    After a chunk header, llhttp passes only that chunk's data to ``on_body``
    until the chunk completes. So when a piece of input ends inside a chunk
    whose header was in the same piece, the piece ends with exactly the data
    bytes counted since the header, and the size line ends just before them.
    A chunk that completes within one piece was no larger than the piece, so
    only open chunks need a check.
    """

    def __init__(self) -> None:
        # The first bytes of the line that earlier pieces left without a line feed.
        self._line_prefix = b""
        self._prefix_cut = False
        self._header_in_piece = False
        self._chunk_open = False
        self._data_since_header = 0

    def start_piece(self) -> None:
        """Reset the counts of one piece of input before llhttp parses it."""
        self._header_in_piece = False
        self._data_since_header = 0

    def chunk_header(self) -> None:
        """Note that llhttp parsed a chunk size line."""
        self._header_in_piece = True
        self._chunk_open = True
        self._data_since_header = 0

    def chunk_complete(self) -> None:
        """Note that llhttp reached the end of a chunk."""
        self._chunk_open = False

    def body(self, size: int) -> None:
        """Count ``size`` bytes that llhttp passed to ``on_body``."""
        if self._chunk_open:
            self._data_since_header += size

    def message_begin(self) -> None:
        """Forget the chunk state of the previous message."""
        self._chunk_open = False

    def finish_piece(self, data: bytes) -> bytes | None:
        """Return the hex digits of an open chunk's size when it is over :data:`MAX_CHUNK_SIZE`, else ``None``."""
        oversized = None
        if self._header_in_piece and self._chunk_open:
            oversized = self._oversized_size(data)
        self._remember_last_line(data)
        return oversized

    def _oversized_size(self, data: bytes) -> bytes | None:
        end = len(data) - self._data_since_header
        if end <= 0 or data[end - 1] != 0x0A:
            # The piece does not end with chunk data only (the CR after a complete chunk can
            # arrive before its LF), so the size line cannot be located. Such a chunk was small.
            return None
        previous = data.rfind(b"\n", 0, end - 1)
        if previous >= 0:
            line = data[previous + 1 : end]
        elif self._prefix_cut:
            return None
        else:
            line = self._line_prefix + data[:end]
        match = _SIZE_LINE.match(line)
        if match is None or int(match.group(1), 16) <= MAX_CHUNK_SIZE:
            return None
        return match.group(1)

    def _remember_last_line(self, data: bytes) -> None:
        last = data.rfind(b"\n")
        if last >= 0:
            rest = data[last + 1 :]
            self._line_prefix = rest[:_LINE_PREFIX_SIZE]
            self._prefix_cut = len(rest) > _LINE_PREFIX_SIZE
        elif not self._prefix_cut:
            room = _LINE_PREFIX_SIZE - len(self._line_prefix)
            self._prefix_cut = len(data) > room
            self._line_prefix += data[:room]


class RawBody:
    """The bytes of a chunked body as received, framing included, up to a limit."""

    __slots__ = ("data", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        # Every byte received, including those beyond the limit.
        self.size = 0

    def add(self, chunk: bytes) -> None:
        """Keep ``chunk`` up to the limit and count all of it."""
        self.size += len(chunk)
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]


def head_length(head: bytes) -> int | None:
    """Return the length of the request head at the start of ``head``, or ``None`` when it is not complete.

    llhttp, as uvicorn runs it, skips empty lines before the request line and
    requires CRLF line ends without folding, so the head ends at the first
    empty line after the request line.
    """
    start = len(head) - len(head.lstrip(b"\r\n"))
    end = head.find(b"\r\n\r\n", start)
    return None if end < 0 else end + 4


def is_chunked(headers: list[tuple[bytes, bytes]]) -> bool:
    """Tell whether the last transfer coding of lowercase-named ``headers`` is chunked."""
    codings = b",".join(value for name, value in headers if name == b"transfer-encoding")
    return codings.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
