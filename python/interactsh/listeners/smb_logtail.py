"""Incremental reading of a log file that another process appends to and rotates.

The reader keeps the file open and remembers how far it has read, so each
poll costs only the new bytes. Its state is bounded: one open file, one
partial line of at most ``max_line_bytes``, and at most ``max_read_bytes``
read per call. When the writer rotates the file (renames it and starts a
new one at the same path), the reader finishes the old file through its open
handle and then opens the new one.

NOTE: a file rotated away and replaced again between two calls is never
opened, so its lines are lost. For the SMB worker that takes more than
``smb_log_max_bytes`` of log within one poll interval.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

READ_CHUNK = 64 * 1024


class LogTail:
    """Returns the complete lines appended to ``path`` since the previous call."""

    def __init__(self, path: Path, max_line_bytes: int, max_read_bytes: int = 1024 * 1024) -> None:
        self.path = path
        self.max_line_bytes = max_line_bytes
        self.max_read_bytes = max_read_bytes
        self.truncated_lines = 0
        self._file: BinaryIO | None = None
        self._inode: int | None = None
        self._partial = bytearray()
        self._partial_truncated = False

    def read_lines(self) -> tuple[list[bytes], bool]:
        """Return the new complete lines and whether more bytes are already waiting.

        A line longer than ``max_line_bytes`` is cut to that length. Lines
        are returned without their line ending.
        """
        if self._file is None and not self._open():
            return [], False
        lines: list[bytes] = []
        more = self._read_into(lines)
        if not more:
            more = self._follow_rotation(lines)
        return lines, more

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> bool:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115  # kept open across calls
        except FileNotFoundError:
            return False
        self._file = handle
        self._inode = os.fstat(handle.fileno()).st_ino
        return True

    def _read_into(self, lines: list[bytes]) -> bool:
        """Read up to the per-call budget; return ``True`` when it stopped before the end."""
        assert self._file is not None
        budget = self.max_read_bytes
        while budget > 0:
            chunk = self._file.read(min(READ_CHUNK, budget))
            if not chunk:
                return False
            budget -= len(chunk)
            self._split(chunk, lines)
        return True

    def _split(self, chunk: bytes, lines: list[bytes]) -> None:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                self._keep_partial(chunk[start:])
                return
            self._keep_partial(chunk[start:end])
            lines.append(self._take_partial())
            start = end + 1

    def _keep_partial(self, piece: bytes) -> None:
        room = self.max_line_bytes - len(self._partial)
        if len(piece) > room:
            self._partial_truncated = True
            piece = piece[: max(room, 0)]
        self._partial += piece

    def _take_partial(self) -> bytes:
        line = bytes(self._partial).rstrip(b"\r")
        if self._partial_truncated:
            self.truncated_lines += 1
        self._partial.clear()
        self._partial_truncated = False
        return line

    def _follow_rotation(self, lines: list[bytes]) -> bool:
        """After reading to the end, switch to a new file at the path, or rewind a truncated one.

        Returns ``True`` when the new file has more bytes than one call reads.
        """
        assert self._file is not None
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False
        if current.st_ino != self._inode:
            if self._partial:
                lines.append(self._take_partial())
            self.close()
            return self._open() and self._read_into(lines)
        if current.st_size < self._file.tell():
            self._file.seek(0)
        return False
