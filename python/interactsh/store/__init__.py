"""Store engines: ``rust`` (the ``interactsh._core`` extension) and ``python``."""

from __future__ import annotations

from interactsh.store.base import PollReply, Store, StoreOptions, StoreStats

__all__ = ["PollReply", "Store", "StoreOptions", "StoreStats", "create_store"]


def create_store(engine: str, options: StoreOptions) -> Store:
    """Create the store engine named ``engine`` (``rust`` or ``python``)."""
    if engine == "python":
        from interactsh.store.python_store import PythonStore

        return PythonStore(options)
    if engine == "rust":
        from interactsh.store.rust_store import RustStore

        return RustStore(options)
    raise ValueError(f"unknown store engine {engine!r}: use rust or python")
