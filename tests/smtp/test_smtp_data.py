"""The bounded DATA reader, on a real ``asyncio.StreamReader`` fed in pieces."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interactsh.listeners.smtp_data import Message, MessageReader, unstuff_dots

READER_LIMIT = 16


def read(pieces: list[bytes], *, capture_limit: int = 1 << 20, eof: bool = False) -> tuple[Message, bytes]:
    """Feed ``pieces`` to a reader with a small limit; return the message and what stayed unread."""

    async def scenario() -> tuple[Message, bytes]:
        reader = asyncio.StreamReader(limit=READER_LIMIT)
        progress: list[None] = []
        task = asyncio.create_task(MessageReader(capture_limit).read(reader, lambda: progress.append(None)))
        # Feed the pieces one at a time, so the reader also sees them arrive.
        for piece in pieces:
            reader.feed_data(piece)
            await asyncio.sleep(0)
        if eof:
            reader.feed_eof()
        message = await task
        reader.feed_eof()
        return message, await reader.read()

    return asyncio.run(scenario())


def test_simple_message() -> None:
    message, rest = read([b"Subject: t\r\n\r\nhello\r\n.\r\nQUIT\r\n"])
    assert message.content == b"Subject: t\r\n\r\nhello\r\n"
    assert message.complete
    assert not message.truncated
    assert rest == b"QUIT\r\n"


def test_empty_message() -> None:
    message, rest = read([b".\r\nNOOP\r\n"])
    assert message.content == b""
    assert message.size == 0
    assert message.complete
    assert rest == b"NOOP\r\n"


@pytest.mark.parametrize(
    "body",
    [
        b"a\n.\nb\r\n",  # bare LF on both sides of the dot
        b"a\r\n.\nb\r\n",  # dot line ended by a bare LF
        b"a\n.\r\nb\r\n",  # dot after a bare LF
        b"a\r.\r\nb\r\n",  # dot after a bare CR
        b"end.\r\nb\r\n",  # a dot that ends a text line
    ],
)
def test_only_crlf_dot_crlf_ends_data(body: bytes) -> None:
    message, rest = read([body + b".\r\nMAIL FROM:<a@b>\r\n"])
    assert message.complete
    assert message.content == unstuff_dots(body)
    assert message.content.endswith(b"b\r\n")
    assert rest == b"MAIL FROM:<a@b>\r\n"


def test_dot_unstuffing() -> None:
    message, _ = read([b"..leading\r\n...\r\nmid.dle\r\n.\r\n"])
    assert message.content == b".leading\r\n..\r\nmid.dle\r\n"


def test_capture_limit_truncates_but_reads_to_the_end() -> None:
    body = b"0123456789\r\n" * 100
    message, rest = read([body, b".\r\nQUIT\r\n"], capture_limit=50)
    assert message.content == body[:50]
    assert message.size == len(body)
    assert message.truncated
    assert message.complete
    assert rest == b"QUIT\r\n"


def test_long_line_is_measured() -> None:
    line = b"x" * 1000
    message, _ = read([b"short\r\n", line, b"\r\nend\r\n.\r\n"])
    # The CR before the LF counts, as it does for command lines.
    assert message.longest_line == len(line) + 1
    assert message.content == b"short\r\n" + line + b"\r\nend\r\n"


def test_stream_ending_early_is_incomplete() -> None:
    message, _ = read([b"Subject: cut\r\npartial"], eof=True)
    assert not message.complete
    assert message.content == b"Subject: cut\r\npartial"


def test_unstuff_dots() -> None:
    assert unstuff_dots(b".a\r\n..b\r\nc.\r\n") == b"a\r\n.b\r\nc.\r\n"
    assert unstuff_dots(b"") == b""


_lines = st.lists(
    st.one_of(
        st.binary(max_size=40).filter(lambda line: b"\n" not in line and b"\r" not in line),
        st.sampled_from([b".", b"..", b".x", b"x.", b"\n.", b".\n", b"\r", b"\r."]),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(lines=_lines, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8))
def test_any_split_gives_the_same_message(lines: list[bytes], cuts: list[int]) -> None:
    # The sender dot-stuffs every line that starts with a dot.
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    stream = stuffed + b".\r\nRSET\r\n"
    points = sorted({min(cut, len(stream)) for cut in cuts})
    pieces = [stream[start:end] for start, end in zip([0, *points], [*points, len(stream)]) if end > start]
    message, rest = read(pieces)
    assert message.complete
    assert message.content == b"".join(line + b"\r\n" for line in lines)
    assert rest == b"RSET\r\n"
