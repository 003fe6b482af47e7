"""Fixtures of the memory tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from memory_helpers import Rig, make_rig


@pytest.fixture
def rig_factory() -> Iterator[Callable[..., Rig]]:
    """Factory fixture: ``rig_factory(resident_percent, **config_fields)``; restores the collector afterwards."""
    rigs: list[Rig] = []

    def build(resident_percent: float = 10.0, **config_fields: Any) -> Rig:
        rig = make_rig(resident_percent, **config_fields)
        rigs.append(rig)
        return rig

    yield build
    for rig in rigs:
        rig.manager.restore()


@pytest.fixture
def rig(rig_factory: Callable[..., Rig]) -> Rig:
    """A manager with a 1000 MiB limit, at 10 % of it."""
    return rig_factory()
