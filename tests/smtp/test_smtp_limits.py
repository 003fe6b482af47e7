"""Listener limits and TLS: line and message caps, timeouts, connection caps, handshakes (in-process)."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from pathlib import Path

import pytest
from smtp_harness import (
    DOMAIN,
    HOST,
    REPLY_TIMEOUT,
    Conversation,
    SmtpHarness,
    client_tls_context,
    make_config,
    wait_for_records,
    write_certificate,
)
from smtp_process import tls_provider

# How long a test waits for the server to act on its own (timeouts, closing).
SETTLE_WAIT = 5.0


def wait_until_idle(harness: SmtpHarness) -> int:
    """Wait until the listener tracks no connection; return how many it still tracks."""
    deadline = time.monotonic() + SETTLE_WAIT
    while harness.open_connections() and time.monotonic() < deadline:
        time.sleep(0.02)
    return harness.open_connections()


def open_transaction(smtp: Conversation, recipient: str) -> None:
    smtp.reply()
    smtp.command("EHLO t")
    smtp.command("MAIL FROM:<a@b>")
    assert smtp.command(f"RCPT TO:<{recipient}>").startswith("250 ")


def test_command_line_too_long_closes(harness: SmtpHarness) -> None:
    client = harness.new_client()
    payload = client.payload()
    with Conversation(harness.ports["smtp"]) as smtp:
        open_transaction(smtp, f"x@{payload}")
        smtp.send(b"NOOP " + b"a" * 5000 + b"\r\n")
        assert smtp.reply() == "500 5.5.2 Line too long"
        assert smtp.closed()
    # The open transaction is recorded when the connection closes.
    assert len(wait_for_records(client, 1)) == 1
    assert wait_until_idle(harness) == 0


def test_command_line_at_the_limit_is_accepted() -> None:
    with SmtpHarness(make_config(smtp_max_line_length=100)) as harness, Conversation(harness.ports["smtp"]) as smtp:
        smtp.reply()
        # 99 characters and the CR make 100 bytes before the LF.
        assert smtp.command("NOOP " + "a" * 94).startswith("250 ")
        assert smtp.command("NOOP " + "a" * 95) == "500 5.5.2 Line too long"
        assert smtp.closed()


def test_newline_free_data_is_bounded(harness: SmtpHarness) -> None:
    client = harness.new_client()
    payload = client.payload()
    with Conversation(harness.ports["smtp"]) as smtp:
        open_transaction(smtp, f"x@{payload}")
        assert smtp.command("DATA").startswith("354")
        chunk = b"B" * 65536
        for _ in range(5 * 1024 * 1024 // len(chunk)):
            smtp.send(chunk)
        # The message is under SIZE, but its one line is far over the line cap.
        assert smtp.command("\r\n.") == "500 5.5.2 Line too long"
        assert smtp.command("NOOP").startswith("250 ")
    (record,) = wait_for_records(client, 1)
    assert record["truncated"] is True
    assert len(record["raw-request"]) < 64 * 1024 + 512
    assert "BBBB" in record["raw-request"]


def test_message_over_capture_cap_under_size() -> None:
    with SmtpHarness(make_config(max_request_size=1000)) as harness:
        client = harness.new_client()
        payload = client.payload()
        with smtplib.SMTP(HOST, harness.ports["smtp"], local_hostname="t", timeout=REPLY_TIMEOUT) as smtp:
            refused = smtp.sendmail("a@b", [f"x@{payload}"], "Subject: long\r\n\r\n" + ("y" * 70 + "\r\n") * 100)
        assert refused == {}
        (record,) = wait_for_records(client, 1)
    assert record["truncated"] is True
    message = record["raw-request"].split("\r\n", 3)[3]
    assert len(message) == 1000
    assert message.startswith("Subject: long\r\n")


def test_small_size_limit() -> None:
    with SmtpHarness(make_config(smtp_max_message_size=2000, max_request_size=500)) as harness:
        client = harness.new_client()
        payload = client.payload()
        with smtplib.SMTP(HOST, harness.ports["smtp"], local_hostname="t", timeout=REPLY_TIMEOUT) as smtp:
            smtp.ehlo("t")
            assert smtp.mail("a@b", ["SIZE=2001"])[0] == 552
            assert smtp.mail("a@b", ["SIZE=2000"])[0] == 250
            smtp.rcpt(f"x@{payload}")
            code, _ = smtp.data("z" * 3000)
            assert code == 552
            assert smtp.noop()[0] == 250
        (record,) = wait_for_records(client, 1)
        assert harness.counters.smtp == 1
    assert record["truncated"] is True
    assert record["raw-request"].split("\r\n", 3)[3] == "z" * 500


def test_too_many_recipients() -> None:
    with SmtpHarness(make_config(smtp_max_recipients=3)) as harness, Conversation(harness.ports["smtp"]) as smtp:
        smtp.reply()
        smtp.command("EHLO t")
        smtp.command("MAIL FROM:<a@b>")
        for number in range(3):
            assert smtp.command(f"RCPT TO:<r{number}@x.test>").startswith("250 ")
        assert smtp.command("RCPT TO:<r3@x.test>").startswith("452 ")


def test_transcript_is_capped() -> None:
    with SmtpHarness(make_config(max_request_size=200)) as harness:
        client = harness.new_client()
        payload = client.payload()
        with Conversation(harness.ports["smtp"]) as smtp:
            open_transaction(smtp, f"x@{payload}")
            for number in range(20):
                smtp.command(f"RCPT TO:<filler{number}@example.test>")
            smtp.command("QUIT")
        (record,) = wait_for_records(client, 1)
    assert record["truncated"] is True
    assert len(record["raw-request"]) <= 200


def test_idle_timeout_records_and_closes(loop_kind: str) -> None:
    with SmtpHarness(make_config(smtp_idle_timeout=0.5), loop_kind) as harness:
        client = harness.new_client()
        payload = client.payload()
        with Conversation(harness.ports["smtp"]) as smtp:
            open_transaction(smtp, f"x@{payload}")
            assert smtp.closed(SETTLE_WAIT)
        assert len(wait_for_records(client, 1)) == 1
        assert wait_until_idle(harness) == 0


def test_connection_cap_per_address() -> None:
    with SmtpHarness(make_config(smtp_max_connections_per_ip=2)) as harness:
        first = Conversation(harness.ports["smtp"])
        second = Conversation(harness.ports["smtps"])
        with first, second:
            assert first.reply().startswith("220 ")
            assert second.reply().startswith("220 ")
            with Conversation(harness.ports["smtp"]) as third:
                assert third.reply().startswith("421 ")
                assert third.closed()
        assert wait_until_idle(harness) == 0
        with Conversation(harness.ports["smtp"]) as again:
            assert again.reply().startswith("220 ")


def test_unknown_commands_close(harness: SmtpHarness) -> None:
    with Conversation(harness.ports["smtp"]) as smtp:
        smtp.reply()
        replies = [smtp.command(line) for line in ("GET / HTTP/1.1", "Host: x", "", "BDAT 10", "XYZZY")]
        assert [reply[:3] for reply in replies] == ["500", "500", "500", "500", "421"]
        assert smtp.closed()


# TLS.


def test_tls_ports_with_certificate(tls_harness: SmtpHarness) -> None:
    assert set(tls_harness.ports) == {"smtp", "smtps", "smtp-autotls"}
    for name in ("smtp", "smtps"):
        with Conversation(tls_harness.ports[name]) as smtp:
            smtp.reply()
            assert "250-STARTTLS" in smtp.command("EHLO t")
            assert smtp.command("STARTTLS").startswith("220 ")
            smtp.start_tls()
            assert "STARTTLS" not in smtp.command("EHLO t")
            assert smtp.command("STARTTLS").startswith("503 ")


def test_implicit_tls_session(tls_harness: SmtpHarness) -> None:
    client = tls_harness.new_client()
    payload = client.payload()
    with Conversation(tls_harness.ports["smtp-autotls"], tls=True) as smtp:
        assert smtp.reply() == f"220 {DOMAIN} interactsh ESMTP Service ready"
        smtp.command("EHLO t")
        smtp.command("MAIL FROM:<a@b>")
        smtp.command(f"RCPT TO:<x@{payload}>")
        smtp.command("QUIT")
    (record,) = wait_for_records(client, 1)
    assert record["tls"] is True


def test_failed_handshakes_leave_nothing_behind(tls_harness: SmtpHarness) -> None:
    port = tls_harness.ports["smtp-autotls"]
    # Plain SMTP, an HTTP request, and a client that leaves mid-handshake.
    for data in (b"EHLO t\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05"):
        with socket.create_connection((HOST, port), timeout=REPLY_TIMEOUT) as sock:
            sock.sendall(data)
            if data.startswith(b"\x16"):
                continue
            sock.settimeout(REPLY_TIMEOUT)
            try:
                answer = sock.recv(4096)
            except ConnectionResetError:
                answer = b""
            assert not answer.startswith(b"220"), "the banner was sent in plaintext"
    with socket.create_connection((HOST, tls_harness.ports["smtp"]), timeout=REPLY_TIMEOUT) as sock:
        sock.recv(4096)
        sock.sendall(b"EHLO t\r\nSTARTTLS\r\n")
        time.sleep(0.1)
        sock.sendall(b"not a ClientHello\r\n" * 10)
    assert wait_until_idle(tls_harness) == 0
    with smtplib.SMTP_SSL(HOST, port, timeout=REPLY_TIMEOUT, context=client_tls_context()) as smtp:
        assert smtp.noop()[0] == 250


def test_renewed_certificate_applies_to_new_connections(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    provider = tls_provider(certificate)
    with SmtpHarness(make_config(), "asyncio", provider) as harness:
        before = _server_certificate(harness.ports["smtp-autotls"])
        renewed = write_certificate(tmp_path)
        harness.call(lambda: provider.load(str(renewed[0]), str(renewed[1])))
        after = _server_certificate(harness.ports["smtp-autotls"])
    assert before == ssl.PEM_cert_to_DER_cert(certificate[0].read_text())
    assert after == ssl.PEM_cert_to_DER_cert(renewed[0].read_text())


def _server_certificate(port: int) -> bytes:
    raw = socket.create_connection((HOST, port), timeout=REPLY_TIMEOUT)
    with client_tls_context().wrap_socket(raw) as sock:
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return der


@pytest.mark.parametrize("port_name", ["smtp", "smtps"])
def test_starttls_with_smtplib(tls_harness: SmtpHarness, port_name: str) -> None:
    client = tls_harness.new_client()
    payload = client.payload()
    with smtplib.SMTP(HOST, tls_harness.ports[port_name], local_hostname="t", timeout=REPLY_TIMEOUT) as smtp:
        smtp.starttls(context=client_tls_context())
        smtp.sendmail("a@b", [f"x@{payload}"], "Subject: starttls\r\n\r\n")
    (record,) = wait_for_records(client, 1)
    assert record["tls"] is True
    assert "Received: from t " in record["raw-request"]
