"""Reading an SMTP ``DATA`` message in bounded memory.

Only ``<CRLF>.<CRLF>`` ends a message (RFC 5321 section 4.1.1.4). A dot after
a bare LF, or a dot line ended by a bare LF, is message content, so a sender
cannot smuggle a second message, or commands, past another server's idea of
where this one ends.

The reader never keeps more than one chunk of the stream plus the captured
prefix: it asks the ``StreamReader`` for the text up to the next ``.<CRLF>``,
and when that would pass the reader's limit it takes the bytes that cannot
start a terminator and goes on. The first ``capture_limit`` bytes are kept,
the rest is counted and discarded until the terminator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

_DOT_LINE = b".\r\n"
_TERMINATOR = b"\r\n.\r\n"


@dataclass
class Message:
    """One ``DATA`` message as far as it was read."""

    content: bytes
    """The captured prefix, dot-unstuffed, CRLF line ends kept."""
    size: int
    """Bytes of the whole message on the wire, without the terminating ``.<CRLF>``."""
    truncated: bool
    """Whether ``content`` is shorter than the message."""
    longest_line: int
    """Length of the longest line, in bytes before its LF."""
    complete: bool
    """Whether the terminator arrived; ``False`` when the stream ended first."""


class MessageReader:
    """Collects one message from a ``StreamReader`` chunk by chunk."""

    def __init__(self, capture_limit: int) -> None:
        self.capture_limit = capture_limit
        self.captured = bytearray()
        self.size = 0
        self.longest_line = 0
        self.line_length = 0
        # The DATA command line ended with CRLF, so a first line of "." ends
        # an empty message.
        self.tail = b"\r\n"

    async def read(self, reader: asyncio.StreamReader, on_progress: Callable[[], None]) -> Message:
        """Read up to and including the terminator, calling ``on_progress`` after each chunk."""
        while True:
            try:
                chunk = await reader.readuntil(_DOT_LINE)
            except asyncio.LimitOverrunError as error:
                # The bytes before error.consumed cannot begin ".\r\n", so they
                # are content; the rest stays buffered for the next search.
                chunk = await reader.read(error.consumed)
                self.add(chunk)
            except asyncio.IncompleteReadError as error:
                self.add(error.partial)
                return self.finish(complete=False)
            else:
                if (self.tail + chunk)[-len(_TERMINATOR) :] == _TERMINATOR:
                    self.add(chunk[: -len(_DOT_LINE)])
                    return self.finish(complete=True)
                self.add(chunk)
            on_progress()

    def add(self, chunk: bytes) -> None:
        """Count, measure and capture one piece of message content."""
        if not chunk:
            return
        self.size += len(chunk)
        self.tail = (self.tail + chunk)[-2:]
        room = self.capture_limit - len(self.captured)
        if room > 0:
            self.captured += chunk[:room]
        self._measure_lines(chunk)

    def finish(self, *, complete: bool) -> Message:
        """Return the message read so far."""
        self.longest_line = max(self.longest_line, self.line_length)
        return Message(
            content=unstuff_dots(bytes(self.captured)),
            size=self.size,
            truncated=self.size > len(self.captured),
            longest_line=self.longest_line,
            complete=complete,
        )

    def _measure_lines(self, chunk: bytes) -> None:
        first = chunk.find(b"\n")
        if first < 0:
            self.line_length += len(chunk)
            return
        self.longest_line = max(self.longest_line, self.line_length + first)
        last = chunk.rfind(b"\n")
        if last > first:
            inner = max(len(line) for line in chunk[first + 1 : last].split(b"\n"))
            self.longest_line = max(self.longest_line, inner)
        self.line_length = len(chunk) - last - 1


def unstuff_dots(content: bytes) -> bytes:
    """Remove the leading dot that RFC 5321 section 4.5.2 adds to lines starting with a dot."""
    unstuffed = content.replace(b"\r\n.", b"\r\n")
    if content.startswith(b"."):
        unstuffed = unstuffed[1:]
    return unstuffed
