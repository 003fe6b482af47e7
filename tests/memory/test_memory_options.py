"""The memory flags, their environment variables and their validation."""

from __future__ import annotations

import pytest
from interactsh.cli import OptionError, load_config
from interactsh.config import ServerConfig


def test_memory_defaults() -> None:
    config = load_config([])
    assert config.max_memory == 1024
    assert config.disable_memory_optimization is False
    assert config.memory_sample_interval == 0.25
    assert config.gc_percent == 100


def test_memory_flags() -> None:
    config = load_config(
        [
            "-max-memory",
            "256",
            "-disable-memory-optimization",
            "-memory-sample-interval",
            "0.5",
            "-memory-idle-seconds",
            "5",
            "-memory-idle-expiry",
            "120",
            "-max-request-size-critical",
            "512",
            "-gc-percent",
            "150",
        ]
    )
    assert config.max_memory == 256
    assert config.disable_memory_optimization is True
    assert config.memory_sample_interval == 0.5
    assert config.memory_idle_seconds == 5.0
    assert config.memory_idle_expiry == 120.0
    assert config.max_request_size_critical == 512
    assert config.gc_percent == 150


def test_store_options_follow_flags() -> None:
    options = load_config(["-disable-memory-optimization", "-memory-idle-seconds", "7"]).store_options()
    assert options.pooled is False
    assert options.idle_eviction_seconds == 7.0
    assert options.max_total_bytes is None
    assert load_config([]).store_options().pooled is True


def test_memory_limit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERACTSH_MEMORY_LIMIT", "300")
    assert load_config([]).max_memory == 300
    # The flag wins over the environment.
    assert load_config(["-max-memory", "200"]).max_memory == 200


def test_gc_percent_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERACTSH_GC_PERCENT", "40")
    assert load_config([]).gc_percent == 40
    assert load_config(["-gc-percent", "90"]).gc_percent == 90


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "lots", "²", ""])
@pytest.mark.parametrize("variable", ["INTERACTSH_MEMORY_LIMIT", "INTERACTSH_GC_PERCENT"])
def test_invalid_environment_rejected(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(OptionError) as caught:
        load_config([])
    assert any(variable in problem and "positive whole number" in problem for problem in caught.value.problems)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("-max-memory", "0"),
        ("-memory-sample-interval", "0"),
        ("-memory-idle-seconds", "-1"),
        ("-memory-idle-expiry", "0"),
        ("-max-request-size-critical", "0"),
        ("-gc-percent", "0"),
    ],
)
def test_invalid_flags_rejected(flag: str, value: str) -> None:
    with pytest.raises(OptionError) as caught:
        load_config([flag, value])
    assert any(problem.startswith(f"{flag} ") for problem in caught.value.problems), caught.value.problems


def test_memory_fields_are_validated() -> None:
    config = ServerConfig(max_memory=-1, memory_sample_interval=-0.1, gc_percent=-2)
    problems = " ".join(config.problems())
    assert "-max-memory -1" in problems
    assert "-memory-sample-interval -0.1" in problems
    assert "-gc-percent -2" in problems
