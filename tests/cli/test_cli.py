"""The command line: flags, the YAML config file and option errors."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from interactsh.cli import OptionError, load_config
from interactsh.config import LIMIT_PREFIXES, ServerConfig
from interactsh.options import FLAGS
from serverproc import PACKAGE_ROOT


def test_every_option_has_flag() -> None:
    flagged = {flag.field for flag in FLAGS}
    internal = {"max_shared_items"}  # set by INTERACTSH_MAX_SHARED_INTERACTIONS, as upstream
    missing = {spec.name for spec in fields(ServerConfig)} - flagged - internal
    assert missing == set()


def test_limit_fields_are_validated() -> None:
    limits = [
        spec.name
        for spec in fields(ServerConfig)
        if spec.name.startswith(LIMIT_PREFIXES) and not spec.name.endswith("_port")
    ]
    assert limits
    for name in limits:
        if isinstance(getattr(ServerConfig(), name), bool):
            continue
        config = ServerConfig()
        setattr(config, name, -1)
        problems = config.problems()
        assert any(name.replace("_", "-") in problem for problem in problems), name


def test_short_and_long_names() -> None:
    config = load_config(["-d", "a.example,b.example", "--http-port", "0", "-ne", "-cidl", "12"])
    assert config.domains == ["a.example", "b.example"]
    assert config.http_port == 0
    assert config.no_eviction is True
    assert config.ttl_seconds is None
    assert config.cid_length == 12


def test_all_problems_reported_together() -> None:
    with pytest.raises(OptionError) as caught:
        load_config(["-domain", "bad..name", "-dns-port", "abc", "-aes-mode", "gcm", "-ip", "1.2.3", "-cidl", "2"])
    problems = caught.value.problems
    assert len(problems) == 5
    assert any("-dns-port 'abc'" in problem for problem in problems)
    assert any("-domain 'bad..name'" in problem for problem in problems)
    assert any("-aes-mode 'gcm'" in problem and "ctr or cfb" in problem for problem in problems)
    assert any("-ip '1.2.3'" in problem for problem in problems)
    assert any("-cidl 2" in problem for problem in problems)


def test_config_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("domain: oast.example\nhttp-port: 9000\nmetrics: true\nip: [192.0.2.1, '2001:db8::1']\n")
    config = load_config(["-config", str(path), "-http-port", "9001"])
    assert config.domains == ["oast.example"]
    assert config.http_port == 9001
    assert config.metrics is True
    assert config.ips == ["192.0.2.1", "2001:db8::1"]


def test_config_file_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("domian: oast.example\n")
    with pytest.raises(OptionError) as caught:
        load_config(["-config", str(path)])
    assert "'domian' is not a known flag" in caught.value.problems[0]


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(OptionError) as caught:
        load_config(["-config", str(tmp_path / "absent.yaml")])
    assert "does not exist" in caught.value.problems[0]


def test_shared_limit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERACTSH_MAX_SHARED_INTERACTIONS", "25")
    assert load_config([]).max_shared_items == 25
    monkeypatch.setenv("INTERACTSH_MAX_SHARED_INTERACTIONS", "-3")
    with pytest.raises(OptionError):
        load_config([])


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    environment = {"PYTHONPATH": PACKAGE_ROOT, "HOME": str(home), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "interactsh.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment, check=False)


def test_process_exit_code_on_bad_options(tmp_path: Path) -> None:
    result = run_cli("-dns-port", "70000", "-eviction-strategy", "lru", home=tmp_path)
    assert result.returncode == 2
    assert "-dns-port 70000 is out of range" in result.stderr
    assert "-eviction-strategy 'lru' is invalid" in result.stderr
    assert "Traceback" not in result.stderr


def test_process_version(tmp_path: Path) -> None:
    result = run_cli("-version", home=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("interactsh-server ")


def test_process_bad_certificate(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    result = run_cli("-http-port", "0", "-dns-port", "0", "-cert", missing, "-privkey", missing, home=tmp_path)
    assert result.returncode == 2
    assert "could not load the certificate" in result.stderr
    assert "Traceback" not in result.stderr


def test_process_help(tmp_path: Path) -> None:
    result = run_cli("-h", home=tmp_path)
    assert result.returncode == 0
    for flag in FLAGS:
        assert flag.names[-1] in result.stdout
