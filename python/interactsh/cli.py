"""The ``interactsh-server`` command."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from interactsh import __version__
from interactsh.config import ServerConfig
from interactsh.errors import InteractshError
from interactsh.options import FLAGS, Flag

DEFAULT_CONFIG_PATH = Path.home() / ".config" / "interactsh-server" / "config.yaml"
SHARED_LIMIT_ENV = "INTERACTSH_MAX_SHARED_INTERACTIONS"
# Environment variables that set a positive whole-number field; the config file yields to them
# and a flag overrides them.
ENVIRONMENT_FIELDS = (
    (SHARED_LIMIT_ENV, "max_shared_items"),
    ("INTERACTSH_MEMORY_LIMIT", "max_memory"),
    ("INTERACTSH_GC_PERCENT", "gc_percent"),
)


class OptionError(Exception):
    """Invalid options, with one message per option in ``problems``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def build_parser() -> argparse.ArgumentParser:
    """Build the parser; every flag also accepts a ``--`` prefix, as upstream's do."""
    parser = argparse.ArgumentParser(
        prog="interactsh-server",
        description="Interactsh-compatible out-of-band interaction server.",
        allow_abbrev=False,
        add_help=False,
    )
    parser.add_argument("-h", "-help", "--help", action="help", help="show this help and exit")
    parser.add_argument("-version", "--version", action="store_true", help="print the version and exit")
    parser.add_argument("-config", "--config", metavar="FILE", help="YAML file whose keys are long flag names")
    for flag in FLAGS:
        names = [*flag.names, *("-" + name for name in flag.names)]
        # argparse formats help with %-style, so a literal percent sign must be doubled.
        help_text = flag.help.replace("%", "%%")
        if flag.kind == "bool":
            parser.add_argument(*names, dest=flag.field, action="store_true", default=None, help=help_text)
        elif flag.kind == "list":
            parser.add_argument(*names, dest=flag.field, action="append", metavar="LIST", help=help_text)
        else:
            parser.add_argument(*names, dest=flag.field, metavar=flag.kind.upper(), help=help_text)
    return parser


def convert(flag: Flag, value: Any) -> Any:
    """Convert one option value to its field's type; raise ``ValueError`` naming the fix."""
    name = flag.names[-1]
    if flag.kind == "list":
        items = value if isinstance(value, list) else [value]
        return [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    if flag.kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError(f"{name} {value!r} is not a boolean: use true or false")
    if flag.kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} {value!r} is not a whole number") from None
    if flag.kind == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} {value!r} is not a number") from None
    return str(value)


def read_config_file(path: Path, explicit: bool) -> dict[str, Any]:
    """Read the YAML config file; a missing default file is not an error."""
    if not path.exists():
        if explicit:
            raise OptionError([f"-config {str(path)!r} does not exist: pass an existing YAML file"])
        return {}
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise OptionError([f"-config {str(path)!r} could not be read: {error}"]) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise OptionError([f"-config {str(path)!r} must be a mapping of long flag names to values"])
    return document


def load_config(argv: Sequence[str] | None = None) -> ServerConfig:
    """Build the configuration from defaults, the config file, the environment and flags.

    Raises :class:`OptionError` listing every invalid option at once.
    """
    arguments = build_parser().parse_args(argv)
    if arguments.version:
        print(f"interactsh-server {__version__}")
        raise SystemExit(0)
    config = ServerConfig()
    problems: list[str] = []
    explicit = arguments.config is not None
    file_values = read_config_file(Path(arguments.config) if explicit else DEFAULT_CONFIG_PATH, explicit)
    by_long_name = {flag.long_name: flag for flag in FLAGS}
    for key, value in file_values.items():
        flag = by_long_name.get(str(key))
        if flag is None:
            problems.append(f"config file key {key!r} is not a known flag: use long flag names such as 'domain'")
            continue
        file_problems: list[str] = []
        _apply(config, flag, value, file_problems)
        problems.extend(f"{problem} (in {arguments.config or DEFAULT_CONFIG_PATH})" for problem in file_problems)
    for variable, field_name in ENVIRONMENT_FIELDS:
        text = os.environ.get(variable)
        if text is None:
            continue
        value = text.strip()
        if value.isascii() and value.isdigit() and int(value) > 0:
            setattr(config, field_name, int(value))
        else:
            problems.append(f"{variable}={text!r} must be a positive whole number")
    for flag in FLAGS:
        value = getattr(arguments, flag.field, None)
        if value is not None:
            _apply(config, flag, value, problems)
    problems.extend(config.problems())
    if problems:
        raise OptionError(problems)
    return config


def _apply(config: ServerConfig, flag: Flag, value: Any, problems: list[str]) -> None:
    try:
        setattr(config, flag.field, convert(flag, value))
    except ValueError as error:
        problems.append(str(error))


def configure_logging(debug: bool) -> None:
    """Send every ``interactsh`` logger to standard error."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not debug:
        # uvicorn and aiosmtpd log every connection at INFO; keep their warnings.
        logging.getLogger("uvicorn").setLevel(logging.WARNING)
        logging.getLogger("mail.log").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, then run the server until it is stopped."""
    try:
        config = load_config(argv)
    except OptionError as error:
        for problem in error.problems:
            print(f"interactsh-server: {problem}", file=sys.stderr)
        return 2
    if config.auth_forced:
        config.auth = True
    if config.auth and not config.token:
        config.token = secrets.token_hex(32)
        # The operator needs the generated token, so it goes to standard output
        # once, as upstream prints it, and never into the logs.
        print(f"Client Token: {config.token}", flush=True)
    configure_logging(config.debug)

    from interactsh.server import run

    try:
        run(config)
    except InteractshError as error:
        logging.getLogger("interactsh.server").error("could not start: %s", error)
        return 2
    except OSError as error:
        logging.getLogger("interactsh.server").error("could not start: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
