"""Settings of the benchmark suites; they run only when named (``testpaths`` is ``tests``)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest


def elf_section_names(data: bytes) -> set[str]:
    """Return the section names of a 64-bit ELF file, or an empty set for any other file."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return set()
    endian = "<" if data[5] == 1 else ">"
    (table_offset,) = struct.unpack_from(endian + "Q", data, 0x28)
    entry_size, count, names_index = struct.unpack_from(endian + "HHH", data, 0x3A)
    (names_offset,) = struct.unpack_from(endian + "Q", data, table_offset + names_index * entry_size + 0x18)
    names = set()
    for index in range(count):
        (name_offset,) = struct.unpack_from(endian + "I", data, table_offset + index * entry_size)
        start = names_offset + name_offset
        names.add(data[start : data.index(b"\0", start)].decode("ascii", "replace"))
    return names


def extension_build(path: Path) -> str:
    """Tell whether the extension at ``path`` looks like a release or a debug build.

    Cargo's dev profile writes DWARF sections and its release profile does
    not, so a ``.debug_info`` section is the sign of a debug build. A release
    profile with ``debug = true`` would read as debug too.
    """
    return "debug" if ".debug_info" in elf_section_names(path.read_bytes()) else "release"


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Name the extension under test, so that figures from a debug build are never mistaken for real ones."""
    try:
        from interactsh import _core
    except ImportError as error:
        return [f"interactsh._core: not importable ({error}); the rust benchmarks will fail"]
    path = Path(_core.__file__ or "")
    build = extension_build(path)
    lines = [f"interactsh._core: {path} ({build} build)"]
    if build == "debug":
        lines.append(
            "WARNING: a debug build is far slower; build a release wheel for real figures (docs/benchmarks.md)"
        )
    return lines
