"""The SMTP bad-input cases, over real sockets, against the in-process listener and the server process."""

from __future__ import annotations

import select
import shutil
import smtplib
import subprocess

import psutil
import pytest
from smtp_harness import (
    HOST,
    REPLY_TIMEOUT,
    Client,
    Conversation,
    SmtpHarness,
    client_tls_context,
    wait_for_records,
)
from smtp_process import ProcessTarget

Target = SmtpHarness | ProcessTarget
FLOOD_BYTES = 50 * 1024 * 1024
FLOOD_CHUNK = 64 * 1024
# What a rejected flood may add to the server's resident memory: far below
# the flood itself, with room for allocator noise.
FLOOD_RSS_ALLOWANCE = 16 * 1024 * 1024


def unique_id(payload: str) -> str:
    return payload.split(".")[0]


def only_record(client: Client) -> dict[str, object]:
    records = wait_for_records(client, 1)
    assert len(records) == 1, records
    return records[0]


def flood(port: int) -> tuple[int, bytes]:
    """Greet, then send up to 50 MB of ``A`` with no LF; return the bytes sent and the reply read."""
    with Conversation(port) as smtp:
        smtp.reply()
        assert smtp.command("EHLO t").startswith("250")
        sock = smtp.sock
        sent = 0
        reply = b""
        chunk = b"A" * FLOOD_CHUNK
        try:
            while sent < FLOOD_BYTES and b"\r\n" not in reply:
                sent += sock.send(chunk)
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    reply += sock.recv(65536)
        except OSError:
            # The server closed while data was still arriving; its reply is still readable.
            pass
        try:
            while b"\r\n" not in reply:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
        except OSError:
            pass
        return sent, reply


def server_rss(target: Target) -> int | None:
    if isinstance(target, ProcessTarget):
        return int(psutil.Process(target.server.process.pid).memory_info().rss)
    return None


# Quoted local part containing "@".


def test_quoted_local_part_with_at(target: Target) -> None:
    client = target.new_client()
    payload = client.payload()
    with Conversation(target.ports["smtp"]) as smtp:
        assert smtp.reply().startswith("220 ")
        assert smtp.command("EHLO t").startswith("250")
        assert smtp.command("MAIL FROM:<x@example.org>").startswith("250")
        assert smtp.command(f'RCPT TO:<"a@b"@{payload}>').startswith("250")
        assert smtp.command("DATA").startswith("354")
        assert smtp.command("Subject: t\r\n\r\n.").startswith("250")
        assert smtp.command("QUIT").startswith("221")
    record = only_record(client)
    assert record["protocol"] == "smtp"
    assert record["unique-id"] == unique_id(payload)
    assert record["full-id"] == unique_id(payload)
    assert record["smtp-from"] == "x@example.org"
    assert record["remote-address"] == HOST
    assert str(record["raw-request"]).startswith("Received: from t (unknown [127.0.0.1])\r\n")
    assert str(record["raw-request"]).endswith("\r\nSubject: t\r\n\r\n")


def test_quoted_local_part_with_swaks(target: Target) -> None:
    swaks = shutil.which("swaks")
    if swaks is None:
        pytest.skip("swaks is not installed (apt-get install swaks)")
    client = target.new_client()
    payload = client.payload()
    command = [
        swaks, "--server", HOST, "--port", str(target.ports["smtp"]), "--helo", "t",
        "--from", "x@example.org", "--to", f'"a@b"@{payload}', "--header", "Subject: swaks",
        "--body", "sent by swaks", "--timeout", "10",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    record = only_record(client)
    assert record["unique-id"] == unique_id(payload)
    assert "Subject: swaks" in str(record["raw-request"])
    assert "sent by swaks" in str(record["raw-request"])


# RCPT syntax variants, upper-case domain, parameters.

RCPT_VARIANTS = {
    "space after colon": ("RCPT TO: <x@{id}.oast.test>", True),
    "no brackets": ("RCPT TO:x@{id}.oast.test", True),
    "upper case and parameters": ("RCPT TO:<x@{ID}.OAST.TEST> NOTIFY=NEVER ORCPT=rfc822;x@y", False),
    "lower-case verb": ("rcpt to:<x@{id}.oast.test>", False),
}


@pytest.mark.parametrize("variant", RCPT_VARIANTS.values(), ids=list(RCPT_VARIANTS))
def test_rcpt_variant_recorded(target: Target, variant: tuple[str, bool]) -> None:
    template, nonstandard = variant
    client = target.new_client()
    payload_id = unique_id(client.payload())
    line = template.format(id=payload_id, ID=payload_id.upper())
    with Conversation(target.ports["smtp"]) as smtp:
        smtp.reply()
        smtp.command("EHLO t")
        smtp.command("MAIL FROM:<a@b>")
        assert smtp.command(line).startswith("250 ")
        assert smtp.command("QUIT").startswith("221")
    record = only_record(client)
    assert record["unique-id"] == payload_id
    assert record["raw-request"] == f"EHLO t\r\nMAIL FROM:<a@b>\r\n{line}\r\n"
    assert record.get("nonstandard-syntax", False) is nonstandard


def test_rcpt_variants_in_one_transaction(target: Target) -> None:
    client = target.new_client()
    payload_id = unique_id(client.payload())
    with Conversation(target.ports["smtp"]) as smtp:
        smtp.reply()
        smtp.command("EHLO t")
        smtp.command("MAIL FROM:<a@b>")
        for template, _ in RCPT_VARIANTS.values():
            assert smtp.command(template.format(id=payload_id, ID=payload_id.upper())).startswith("250 ")
        assert smtp.command("QUIT").startswith("221")
    record = only_record(client)
    assert record["unique-id"] == payload_id
    assert "NOTIFY=NEVER ORCPT=rfc822;x@y" in str(record["raw-request"])
    assert record["nonstandard-syntax"] is True


def test_orcpt_parameter_never_supplies_the_domain(target: Target) -> None:
    client = target.new_client()
    payload_id = unique_id(client.payload())
    with Conversation(target.ports["smtp"]) as smtp:
        smtp.reply()
        smtp.command("EHLO t")
        smtp.command("MAIL FROM:<a@b>")
        assert smtp.command(f"RCPT TO:<x@example.org> ORCPT=rfc822;x@{payload_id}.oast.test").startswith("250 ")
        assert smtp.command("QUIT").startswith("221")
    assert wait_for_records(client, 1, timeout=1.0) == []


# Address-verification callouts without DATA, and VRFY.


def test_callout_without_data(target: Target) -> None:
    client = target.new_client()
    payload = client.payload()
    with Conversation(target.ports["smtp"]) as smtp:
        smtp.reply()
        smtp.command("EHLO t")
        assert smtp.command("MAIL FROM:<>").startswith("250 ")
        assert smtp.command(f"RCPT TO:<probe@{payload}>").startswith("250 ")
        assert smtp.command("QUIT").startswith("221")
    record = only_record(client)
    assert record["unique-id"] == unique_id(payload)
    assert record["raw-request"] == f"EHLO t\r\nMAIL FROM:<>\r\nRCPT TO:<probe@{payload}>\r\n"
    assert "smtp-from" not in record


def test_vrfy_answers_252_and_records(target: Target) -> None:
    client = target.new_client()
    payload = client.payload()
    with Conversation(target.ports["smtp"]) as smtp:
        smtp.reply()
        smtp.command("EHLO t")
        assert smtp.command(f"VRFY probe@{payload}").startswith("252 ")
        assert smtp.command("QUIT").startswith("221")
    record = only_record(client)
    assert record["unique-id"] == unique_id(payload)
    assert record["raw-request"] == f"EHLO t\r\nVRFY probe@{payload}\r\n"


def test_dropped_connection_after_rcpt(target: Target) -> None:
    client = target.new_client()
    payload = client.payload()
    with Conversation(target.ports["smtp"]) as smtp:
        smtp.reply()
        smtp.command("EHLO t")
        smtp.command("MAIL FROM:<a@b>")
        assert smtp.command(f"RCPT TO:<p@{payload}>").startswith("250 ")
    record = only_record(client)
    assert record["unique-id"] == unique_id(payload)
    assert record["smtp-from"] == "a@b"
    assert str(record["raw-request"]).endswith(f"RCPT TO:<p@{payload}>\r\n")


def test_rcpt_then_data_is_one_record(target: Target) -> None:
    client = target.new_client()
    payload = client.payload()
    with smtplib.SMTP(HOST, target.ports["smtp"], local_hostname="t", timeout=REPLY_TIMEOUT) as smtp:
        smtp.sendmail("a@b", [f"p@{payload}"], "Subject: one\r\n\r\nbody\r\n")
    record = only_record(client)
    assert "Subject: one\r\n\r\nbody\r\n" in str(record["raw-request"])
    assert f"rcpt TO:<p@{payload}>" in str(record["smtp-envelope"]), "smtplib sends lower-case verbs"


# Newline-free flood and oversized messages.


def test_newline_free_flood_is_cut(target: Target) -> None:
    before = server_rss(target)
    sent, reply = flood(target.ports["smtp"])
    assert reply == b"500 5.5.2 Line too long\r\n"
    assert sent < FLOOD_BYTES, "the server read the whole flood instead of closing"
    after = server_rss(target)
    if before is not None and after is not None:
        assert after - before < FLOOD_RSS_ALLOWANCE
    # The listener still serves new connections.
    with Conversation(target.ports["smtp"]) as smtp:
        assert smtp.reply().startswith("220 ")


def test_oversized_message_is_552_and_recorded(target: Target) -> None:
    client = target.new_client()
    payload = client.payload()
    line = b"x" * 78 + b"\r\n"
    size_limit = 10 * 1024 * 1024
    lines = size_limit // len(line) + 1000
    before = server_rss(target)
    with Conversation(target.ports["smtp"]) as smtp:
        smtp.reply()
        ehlo = smtp.command("EHLO t")
        assert f"250-SIZE {size_limit}" in ehlo
        smtp.command("MAIL FROM:<a@b>")
        smtp.command(f"RCPT TO:<p@{payload}>")
        assert smtp.command("DATA").startswith("354")
        smtp.send(b"Subject: big\r\n\r\n")
        batch = line * 4096
        for _ in range(lines // 4096 + 1):
            smtp.send(batch)
        assert smtp.command(".").startswith("552 ")
        assert smtp.command("NOOP").startswith("250 ")
        assert smtp.command("QUIT").startswith("221")
    record = only_record(client)
    assert record["truncated"] is True
    raw = str(record["raw-request"])
    assert "Subject: big\r\n\r\nxxxx" in raw
    assert len(raw) < 64 * 1024 + 1024
    after = server_rss(target)
    if before is not None and after is not None:
        assert after - before < FLOOD_RSS_ALLOWANCE


def test_declared_size_over_limit(target: Target) -> None:
    with Conversation(target.ports["smtp"]) as smtp:
        smtp.reply()
        smtp.command("EHLO t")
        assert smtp.command("MAIL FROM:<a@b> SIZE=999999999999").startswith("552 ")
        # The refused MAIL opened no transaction.
        assert smtp.command("RCPT TO:<x@y>").startswith("503 ")


# STARTTLS with pipelined plaintext.


@pytest.mark.parametrize("port_name", ["smtp", "smtps"])
def test_starttls_discards_pipelined_plaintext(target: Target, port_name: str) -> None:
    client = target.new_client()
    payload = client.payload()
    injected = target.new_client()
    injected_payload = injected.payload()
    with Conversation(target.ports[port_name]) as smtp:
        smtp.reply()
        smtp.send(f"EHLO t\r\nSTARTTLS\r\nRCPT TO:<x@{injected_payload}>\r\n".encode())
        assert "250-STARTTLS" in smtp.reply()
        assert smtp.reply().startswith("220 ")
        smtp.start_tls()
        # Had the injected RCPT run, its reply would come before this one.
        ehlo = smtp.command("EHLO t")
        assert ehlo.startswith("250-"), ehlo
        assert "STARTTLS" not in ehlo
        assert smtp.command("DATA").startswith("503 "), "the envelope was not reset by the TLS switch"
        smtp.command("MAIL FROM:<a@b>")
        assert smtp.command(f"RCPT TO:<x@{payload}>").startswith("250 ")
        assert smtp.command("DATA").startswith("354")
        assert smtp.command("Subject: tls\r\n\r\n.").startswith("250 ")
        assert smtp.command("QUIT").startswith("221")
    record = only_record(client)
    assert record["tls"] is True
    assert injected_payload not in str(record["smtp-envelope"])
    assert wait_for_records(injected, 1, timeout=1.0) == []


def test_implicit_tls_port(target: Target) -> None:
    client = target.new_client()
    payload = client.payload()
    with smtplib.SMTP_SSL(
        HOST, target.ports["smtp-autotls"], local_hostname="t", timeout=REPLY_TIMEOUT, context=client_tls_context()
    ) as smtp:
        code, features = smtp.ehlo("t")
        assert code == 250
        assert b"STARTTLS" not in features
        smtp.sendmail("a@b", [f"x@{payload}"], "Subject: implicit\r\n\r\nbody\r\n")
    record = only_record(client)
    assert record["tls"] is True
    assert "Subject: implicit" in str(record["raw-request"])


def test_listener_survives_bad_input(target: Target) -> None:
    """After every case above the listener still takes mail (the fixture also checks the process)."""
    client = target.new_client()
    payload = client.payload()
    with smtplib.SMTP(HOST, target.ports["smtp"], local_hostname="t", timeout=REPLY_TIMEOUT) as smtp:
        smtp.sendmail("a@b", [f"x@{payload}"], "Subject: still up\r\n\r\n")
    assert only_record(client)["unique-id"] == unique_id(payload)
