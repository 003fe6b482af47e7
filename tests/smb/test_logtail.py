"""LogTail on real files: incremental reads, partial and long lines, rotation, truncation."""

from __future__ import annotations

import os
from pathlib import Path

from interactsh.listeners.smb_logtail import LogTail


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as file:
        file.write(data)


def test_missing_file_reads_nothing(tmp_path: Path) -> None:
    tail = LogTail(tmp_path / "absent.log", max_line_bytes=100)
    assert tail.read_lines() == ([], False)


def test_reads_only_new_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    append(path, b"one\ntwo\nthr")
    tail = LogTail(path, max_line_bytes=100)
    assert tail.read_lines() == ([b"one", b"two"], False)
    assert tail.read_lines() == ([], False)
    append(path, b"ee\r\nfour\n")
    assert tail.read_lines() == ([b"three", b"four"], False)
    tail.close()


def test_long_line_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    append(path, b"x" * 50)
    tail = LogTail(path, max_line_bytes=20)
    assert tail.read_lines() == ([], False)
    append(path, b"y" * 50 + b"\nshort\n")
    assert tail.read_lines() == ([b"x" * 20, b"short"], False)
    assert tail.truncated_lines == 1
    tail.close()


def test_read_budget_reports_more(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    append(path, b"".join(b"line %03d\n" % number for number in range(100)))
    tail = LogTail(path, max_line_bytes=100, max_read_bytes=200)
    lines, more = tail.read_lines()
    assert more is True
    assert len(lines) == 22
    collected = list(lines)
    while more:
        lines, more = tail.read_lines()
        collected += lines
    assert collected == [b"line %03d" % number for number in range(100)]
    tail.close()


def test_follows_rotation(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    append(path, b"old 1\n")
    tail = LogTail(path, max_line_bytes=100)
    assert tail.read_lines() == ([b"old 1"], False)
    append(path, b"old 2\n")
    os.replace(path, tmp_path / "a.log.1")
    append(path, b"new 1\n")
    assert tail.read_lines() == ([b"old 2", b"new 1"], False)
    append(path, b"new 2\n")
    assert tail.read_lines() == ([b"new 2"], False)
    tail.close()


def test_rotation_before_new_file_exists(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    append(path, b"old 1\n")
    tail = LogTail(path, max_line_bytes=100)
    assert tail.read_lines() == ([b"old 1"], False)
    append(path, b"old 2\n")
    os.replace(path, tmp_path / "a.log.1")
    assert tail.read_lines() == ([b"old 2"], False)
    append(path, b"new\n")
    assert tail.read_lines() == ([b"new"], False)
    tail.close()


def test_truncated_file_is_read_from_start(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    append(path, b"before truncation\n")
    tail = LogTail(path, max_line_bytes=100)
    assert tail.read_lines() == ([b"before truncation"], False)
    path.write_bytes(b"after\n")
    assert tail.read_lines() == ([], False)
    assert tail.read_lines() == ([b"after"], False)
    tail.close()
