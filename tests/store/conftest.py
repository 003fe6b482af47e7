"""Fixtures of the store contract suite: both engines, a fake clock and test keys.

Every test that takes ``make_store`` runs once per engine, with ids
``python`` and ``rust``. When ``interactsh._core`` cannot be imported the
``rust`` runs skip, except under CI (the ``CI`` environment variable set to a
true value), where they fail: CI must never pass without the extension.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import cast

import pytest
from contract_helpers import FakeClock, Owner, make_clock, private_key, session_id
from interactsh.store.base import Store, StoreOptions

ENGINES = ("python", "rust")
_FALSE_VALUES = ("", "0", "false", "no")


def running_under_ci() -> bool:
    """Tell whether the ``CI`` environment variable requires every engine to run."""
    return os.environ.get("CI", "").strip().lower() not in _FALSE_VALUES


def load_engine(name: str) -> type[Store]:
    """Return the store class of engine ``name``; skip or fail when the Rust one is missing."""
    if name == "python":
        from interactsh.store.python_store import PythonStore

        return PythonStore
    try:
        import interactsh._core  # noqa: F401  # the import error names what is missing
        from interactsh.store.rust_store import RustStore
    except ImportError as error:
        reason = f"the rust store engine cannot be imported ({error}): build it with `pip install -e .`"
        if not running_under_ci():
            pytest.skip(reason)
        return _missing_engine(f"CI is set, so the rust engine must run, but {reason}")
    return RustStore


def _missing_engine(message: str) -> type[Store]:
    """Return a stand-in store class that fails the test when built.

    Failing at construction, inside the test body, reports each rust test as
    failed rather than as a setup error.
    """

    def build(*args: object, **kwargs: object) -> Store:
        pytest.fail(message, pytrace=False)

    return cast(type[Store], build)


@pytest.fixture(params=ENGINES)
def store_class(request: pytest.FixtureRequest) -> type[Store]:
    """The engine under test, once per engine."""
    return load_engine(request.param)


@pytest.fixture
def clock() -> FakeClock:
    """The clock that ``make_store`` gives each store."""
    return make_clock()


@pytest.fixture
def make_store(store_class: type[Store], clock: FakeClock) -> Callable[..., Store]:
    """Factory: ``make_store(**option_overrides)`` builds the engine on the fake clock."""

    def make(**overrides: object) -> Store:
        return store_class(StoreOptions(**overrides), clock=clock)  # type: ignore[arg-type]

    return make


@pytest.fixture
def owner() -> Owner:
    """A session owner with a 1024-bit key, the size that keeps RSA fast."""
    return Owner(session_id(1), private_key(1024))


@pytest.fixture
def other_owner() -> Owner:
    """A second session owner, for tests of two consumers."""
    return Owner(session_id(2), private_key(1024))
