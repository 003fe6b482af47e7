"""A memory manager on a real PythonStore, driven by made-up resident sizes and a fake clock."""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from interactsh.config import ServerConfig
from interactsh.memory import MIB, MemoryManager
from interactsh.recording import Admission
from interactsh.store.base import StoreOptions
from interactsh.store.python_store import PythonStore

# Small enough that a sample's percentage is easy to read: 1 % is 10 MiB.
LIMIT_MIB = 1000
LIMIT = LIMIT_MIB * MIB
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)


def percent(value: float) -> int:
    """Return the resident bytes that are ``value`` % of the test limit."""
    return int(LIMIT * value / 100)


def public_key_b64() -> str:
    """Return a 1024-bit test key as a registration sends it: base64 of a PEM document."""
    der = _KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = f"-----BEGIN PUBLIC KEY-----\n{base64.encodebytes(der).decode('ascii')}-----END PUBLIC KEY-----\n"
    return base64.b64encode(pem.encode("ascii")).decode("ascii")


class FakeClock:
    """A monotonic clock that moves only when a test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeRss:
    """The resident size the manager reads; a test sets ``value``."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __call__(self) -> int:
        return self.value


class SpyStore(PythonStore):
    """A real PythonStore that counts the memory calls the manager makes, with their arguments."""

    def __init__(self, options: StoreOptions, clock: FakeClock) -> None:
        super().__init__(options, clock)
        self.calls: Counter[str] = Counter()
        self.arguments: dict[str, list[Any]] = {}

    def _note(self, name: str, argument: Any) -> None:
        self.calls[name] += 1
        self.arguments.setdefault(name, []).append(argument)

    def set_budget(self, max_total_bytes: int | None) -> None:
        self._note("set_budget", max_total_bytes)
        super().set_budget(max_total_bytes)

    def evict(self, target_bytes: int) -> int:
        self._note("evict", target_bytes)
        return super().evict(target_bytes)

    def expire_idle(self, idle_seconds: float) -> int:
        self._note("expire_idle", idle_seconds)
        return super().expire_idle(idle_seconds)

    def shrink(self) -> int:
        self._note("shrink", None)
        return super().shrink()


@dataclass
class Rig:
    """A configured manager and the fakes around it."""

    manager: MemoryManager
    store: SpyStore
    admission: Admission
    rss: FakeRss
    clock: FakeClock
    config: ServerConfig
    trims: list[int] = field(default_factory=list)

    @property
    def limit(self) -> int:
        return self.config.max_memory * MIB

    def at(self, value_percent: float) -> int:
        """Return the resident bytes that are ``value_percent`` % of this rig's limit."""
        return int(self.limit * value_percent / 100)

    def sample(self, value_percent: float) -> str:
        """Set the resident size to ``value_percent`` % of the limit, tick once and return the level."""
        self.rss.value = self.at(value_percent)
        self.manager.tick()
        return self.manager.level

    def register(self, correlation_id: str) -> None:
        self.store.register(correlation_id, "secret", public_key_b64())


def make_rig(resident_percent: float = 10.0, **config_fields: Any) -> Rig:
    """Return a configured manager with a :data:`LIMIT_MIB` MiB limit, started at ``resident_percent``."""
    config_fields.setdefault("max_memory", LIMIT_MIB)
    config = ServerConfig(**config_fields)
    clock = FakeClock()
    store = SpyStore(config.store_options(), clock)
    admission = Admission(config.max_request_size)
    rss = FakeRss(int(config.max_memory * MIB * resident_percent / 100))
    trims: list[int] = []

    def malloc_trim() -> bool:
        trims.append(1)
        return True

    manager = MemoryManager(
        config,
        store,
        admission,
        rss_source=rss,
        limit_source=lambda configured: (configured, "configured"),
        clock=clock,
        malloc_trim=malloc_trim,
    )
    rig = Rig(manager, store, admission, rss, clock, config, trims)
    manager.configure()
    return rig
