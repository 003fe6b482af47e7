"""Render the configuration reference (docs/configuration.md) from the flag table.

Run ``python -m interactsh.reference > docs/configuration.md`` after changing a
flag; a test fails while the committed page differs from this output.
"""

from __future__ import annotations

from dataclasses import fields

from interactsh.config import ServerConfig
from interactsh.options import FLAGS, Flag

HEADER = """# Configuration reference

Every option is a command-line flag (one dash or two) and a key of the `-config` YAML file
(the long flag name without dashes). Flags override the file. Sizes are bytes and durations
seconds unless the description names another unit. Generated from the flag table by
`python -m interactsh.reference`.

Environment variables: `INTERACTSH_MAX_SHARED_INTERACTIONS` (items kept in each shared bucket,
default 10000), `INTERACTSH_MEMORY_LIMIT` (MiB, used when `-max-memory` is absent) and
`INTERACTSH_GC_PERCENT` (used when `-gc-percent` is absent). The config file yields to them and
a flag overrides them.

| flag | default | description |
|---|---|---|
"""


def default_text(flag: Flag) -> str:
    """Return the embedded default of a flag's field as the table shows it."""
    defaults = ServerConfig()
    value = getattr(defaults, flag.field)
    if flag.kind == "bool":
        return "off" if not value else "on"
    if flag.kind == "list":
        return ", ".join(f"`{item}`" for item in value) or "none"
    if value == "":
        return "none"
    return f"`{value}`"


def render() -> str:
    """Return the whole Markdown page."""
    known = {spec.name for spec in fields(ServerConfig)}
    rows = []
    for flag in FLAGS:
        if flag.field not in known:
            raise ValueError(f"flag {flag.names[-1]} sets unknown field {flag.field!r}")
        names = ", ".join(f"`{name}`" for name in flag.names)
        rows.append(f"| {names} | {default_text(flag)} | {flag.help} |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
