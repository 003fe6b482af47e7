"""One SMTP transaction and the interaction records it becomes.

A transaction collects the client's command lines (the envelope transcript),
the recipients and the registered ids found in their domains, and the message
once ``DATA`` completes. When it ends it becomes one record per correlation
id, plus one ``tlddata`` record per recipient under a configured domain when
``-wildcard`` is on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from interactsh.errors import InteractshError
from interactsh.interaction import build_record
from interactsh.listeners.smtp_address import MailPath
from interactsh.listeners.smtp_data import Message
from interactsh.recording import Recorder

log = logging.getLogger("interactsh.smtp")

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Hit:
    """A registered id found in a recipient's domain."""

    unique_id: str
    full_id: str


@dataclass(frozen=True)
class Peer:
    """Client-side fields of the records: address, HELO name and TLS state."""

    ip: str
    helo: str
    tls: bool


class Transaction:
    """The envelope, matches and message of one ``MAIL`` ... end of transaction."""

    def __init__(self, greeting: str | None, mail_from: str | None, capture_limit: int) -> None:
        self.mail_from = mail_from
        self.capture_limit = capture_limit
        self.lines: list[str] = []
        self.transcript_size = 0
        self.transcript_truncated = False
        self.recipients: list[str] = []
        self.recipient_domains: list[str] = []
        self.hits: dict[str, Hit] = {}
        self.message: Message | None = None
        self.nonstandard = False
        if greeting:
            self.add_line(greeting)

    def add_line(self, line: str) -> None:
        """Append one client command line to the transcript, within the capture limit."""
        size = len(line) + 2
        if self.transcript_size + size > self.capture_limit:
            self.transcript_truncated = True
            return
        self.lines.append(line)
        self.transcript_size += size

    def add_path(self, path: MailPath, recorder: Recorder, *, recipient: bool) -> None:
        """Note a ``RCPT`` (``recipient``) or ``VRFY`` path and the registered ids in its domain."""
        self.nonstandard = self.nonstandard or path.nonstandard
        domain = path.domain
        if recipient:
            self.recipients.append(path.address)
        if domain:
            self.recipient_domains.append(domain)
        labels = domain.split(".")
        for match in recorder.matcher.matches(labels):
            if match.correlation_id not in self.hits:
                full_id = ".".join(labels[: match.token_index + 1])
                self.hits[match.correlation_id] = Hit(match.unique_id, full_id)

    @property
    def transcript(self) -> str:
        """Return the command lines, each ended by CRLF."""
        return "".join(line + "\r\n" for line in self.lines)

    def record(self, recorder: Recorder, peer: Peer, server_name: str) -> int:
        """File one record per matched session (and wildcard records); return how many sessions got one."""
        fields = self._record_fields(peer, server_name)
        recorded = 0
        for correlation_id, hit in self.hits.items():
            record = build_record("smtp", hit.unique_id, hit.full_id, peer.ip, **fields)
            if _store(recorder, correlation_id, record):
                recorded += 1
        if recorder.config.wildcard:
            for domain in self.recipient_domains:
                if recorder.domain_of(domain) is not None:
                    name = "@" + domain
                    _store_shared(recorder, build_record("smtp", name, name, peer.ip, **fields))
        return recorded

    def _record_fields(self, peer: Peer, server_name: str) -> dict[str, Any]:
        message = self.message
        if message is not None and message.complete:
            first_recipient = self.recipients[0] if self.recipients else ""
            header = received_header(peer, server_name, first_recipient, datetime.now().astimezone())
            raw_request = header + message.content.decode("utf-8", "surrogateescape")
            envelope: str | None = self.transcript
            truncated = message.truncated or self.transcript_truncated
        else:
            raw_request = self.transcript
            envelope = None
            truncated = self.transcript_truncated
        return {
            "raw_request": raw_request,
            "smtp_from": self.mail_from,
            "smtp_envelope": envelope,
            "tls": True if peer.tls else None,
            "truncated": True if truncated else None,
            "nonstandard_syntax": True if self.nonstandard else None,
        }


def received_header(peer: Peer, server_name: str, first_recipient: str, when: datetime) -> str:
    """Build the trace header upstream puts before the message.

    The client's host name is always ``unknown``: a reverse lookup would send
    a DNS query to an outside resolver for every message.
    """
    return (
        f"Received: from {peer.helo} (unknown [{peer.ip}])\r\n"
        f"        by {server_name} (interactsh) with SMTP\r\n"
        f"        for <{first_recipient}>; {format_date(when)}\r\n"
    )


def format_date(when: datetime) -> str:
    """Format ``when`` as Go's layout ``Mon, _2 Jan 2006 15:04:05 -0700 (MST)`` does."""
    zone = when.tzname() or when.strftime("%z")
    return (
        f"{_WEEKDAYS[when.weekday()]}, {when.day:2d} {_MONTHS[when.month - 1]} {when.year} {when:%H:%M:%S %z} ({zone})"
    )


def _store(recorder: Recorder, correlation_id: str, record: bytes) -> bool:
    try:
        return recorder.record(correlation_id, record)
    except (InteractshError, MemoryError) as error:
        log.warning("could not store the SMTP interaction for %s: %s", correlation_id, error)
        return False


def _store_shared(recorder: Recorder, record: bytes) -> None:
    try:
        recorder.record_shared("tlddata", record)
    except (InteractshError, MemoryError) as error:
        log.warning("could not store the SMTP wildcard interaction: %s", error)
