"""The configuration reference page matches the flag table."""

from __future__ import annotations

from pathlib import Path

import pytest

from interactsh.reference import render

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@pytest.mark.skipif(not PAGE.exists(), reason="docs/configuration.md is not in this checkout")
def test_reference_page_is_current() -> None:
    expected = render()
    assert PAGE.read_text(encoding="utf-8") == expected, "run: python -m interactsh.reference > docs/configuration.md"
