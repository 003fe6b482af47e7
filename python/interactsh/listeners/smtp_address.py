"""Lenient parsing of the paths in SMTP ``MAIL``, ``RCPT`` and ``VRFY`` arguments.

RFC 5321 section 4.1.2 wants ``TO:<path>`` with no space after the colon, but
senders in the wild also write ``TO: <path>``, leave out the brackets or
spell the keyword in lower case. Postfix accepts all of these, so every
variant is parsed here and flagged as nonstandard instead of rejected.

The path is parsed first and its parameters (``NOTIFY=NEVER ORCPT=rfc822;x@y``)
are kept apart, so an ``@`` inside a parameter never supplies the domain. The
domain is the text after the last ``@`` that is outside a quoted string, so a
quoted local part such as ``"a@b"@host`` yields ``host``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

_WHITESPACE = " \t"


@dataclass(frozen=True)
class MailPath:
    """The path of one ``MAIL FROM``, ``RCPT TO`` or ``VRFY`` argument."""

    address: str
    """Mailbox without brackets and source route; empty for the null path ``<>``."""
    parameters: str
    """ESMTP parameters after the path, as sent (for example ``NOTIFY=NEVER``)."""
    nonstandard: bool
    """Whether the argument broke RFC 5321 syntax in a way that was tolerated."""

    @property
    def domain(self) -> str:
        """Domain part of the mailbox: the text after its last ``@`` outside quotes."""
        return split_mailbox(self.address)[1]


def parse_path_argument(argument: str, keyword: str) -> MailPath | None:
    """Parse ``<keyword>:<path> [parameters]``, e.g. ``TO:<x@y> NOTIFY=NEVER``.

    ``keyword`` is ``FROM`` or ``TO`` and matches in any case. Returns ``None``
    when the argument does not start with the keyword. A missing colon, blanks
    around it and a path without brackets are accepted and flagged.
    """
    text = argument.lstrip(_WHITESPACE)
    if text[: len(keyword)].upper() != keyword:
        return None
    rest = text[len(keyword) :]
    stripped = rest.lstrip(_WHITESPACE)
    blank_before_colon = len(stripped) != len(rest)
    if stripped.startswith(":"):
        nonstandard = blank_before_colon
        rest = stripped[1:]
    elif blank_before_colon and stripped:
        # "TO <x@y>": the colon is missing.
        nonstandard = True
        rest = stripped
    else:
        # "TOM:<x@y>" is another keyword, and "TO" alone has no path.
        return None
    path = parse_path(rest)
    return replace(path, nonstandard=True) if nonstandard else path


def parse_path(text: str) -> MailPath:
    """Parse ``<path> [parameters]`` or a bare ``mailbox [parameters]``."""
    stripped = text.lstrip(_WHITESPACE)
    nonstandard = len(stripped) != len(text)
    if stripped.startswith("<"):
        end = _find_unquoted(stripped, ">", 1)
        if end >= 0:
            address = _drop_source_route(stripped[1:end])
            parameters = stripped[end + 1 :].strip(_WHITESPACE)
            return MailPath(address, parameters, nonstandard)
        # An unclosed bracket: read the mailbox as if there were none.
        stripped = stripped[1:]
    end = _find_unquoted(stripped, _WHITESPACE, 0)
    token = stripped if end < 0 else stripped[:end]
    parameters = "" if end < 0 else stripped[end:].strip(_WHITESPACE)
    token = token.rstrip(">")
    return MailPath(_drop_source_route(token), parameters, True)


def split_mailbox(address: str) -> tuple[str, str]:
    """Split a mailbox at its last ``@`` outside quotes into local part and domain.

    The domain is empty when there is no such ``@``.
    """
    at = -1
    quoted = False
    escaped = False
    for index, char in enumerate(address):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "@" and not quoted:
            at = index
    if at < 0:
        return address, ""
    return address[:at], address[at + 1 :]


def _drop_source_route(path: str) -> str:
    # RFC 5321 keeps the obsolete "@relay1,@relay2:mailbox" form parseable;
    # the mailbox is what follows the route's colon.
    if path.startswith("@"):
        colon = _find_unquoted(path, ":", 0)
        if colon >= 0:
            return path[colon + 1 :]
    return path


def _find_unquoted(text: str, targets: str, start: int) -> int:
    """Return the index of the first character of ``targets`` outside quotes, or -1."""
    quoted = False
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char in targets and not quoted:
            return index
    return -1
