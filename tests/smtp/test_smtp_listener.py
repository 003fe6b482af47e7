"""Listener behaviour: replies, transaction boundaries, records and counters (in-process, both loops)."""

from __future__ import annotations

import logging
import smtplib
import socket

import pytest
from smtp_harness import (
    DOMAIN,
    HOST,
    REPLY_TIMEOUT,
    Conversation,
    InProcessClient,
    SmtpHarness,
    make_config,
    wait_for_records,
)


def ident(client: InProcessClient) -> str:
    """Return a fresh 33-character id of the client's session."""
    return client.payload().split(".")[0]


def message_of(record: dict[str, str]) -> str:
    """Return the message of a record's raw-request, without the three-line Received header."""
    return record["raw-request"].split("\r\n", 3)[3]


def greet(smtp: Conversation, command: str = "EHLO t") -> str:
    assert smtp.reply() == f"220 {DOMAIN} interactsh ESMTP Service ready"
    return smtp.command(command)


def test_banner_and_ehlo(harness: SmtpHarness) -> None:
    with Conversation(harness.ports["smtp"]) as smtp:
        lines = greet(smtp).split("\n")
    assert lines[0] == f"250-{DOMAIN} greets t"
    assert "250-SIZE 10485760" in lines
    assert "250-STARTTLS" not in lines, "STARTTLS offered without a certificate"
    assert lines[-1] == "250 ENHANCEDSTATUSCODES"


def test_ehlo_advertises_configured_size() -> None:
    with SmtpHarness(make_config(smtp_max_message_size=12345)) as harness, Conversation(harness.ports["smtps"]) as smtp:
        assert "250-SIZE 12345" in greet(smtp)


def test_ports_without_certificate(harness: SmtpHarness) -> None:
    assert set(harness.ports) == {"smtp", "smtps"}
    assert harness.ports["smtp"] != harness.ports["smtps"]


def test_helo_reply(harness: SmtpHarness) -> None:
    with Conversation(harness.ports["smtp"]) as smtp:
        assert greet(smtp, "HELO client.example") == f"250 {DOMAIN} greets client.example"


def test_echoed_helo_is_printable_ascii(harness: SmtpHarness) -> None:
    with Conversation(harness.ports["smtp"]) as smtp:
        smtp.reply()
        smtp.send("EHLO h\u00e9\xff\r\n".encode("latin-1"))
        assert smtp.reply().startswith(f"250-{DOMAIN} greets h??")


def test_sequence_errors(harness: SmtpHarness) -> None:
    with Conversation(harness.ports["smtp"]) as smtp:
        smtp.reply()
        assert smtp.command("MAIL FROM:<a@b>").startswith("503 ")
        smtp.command("EHLO t")
        assert smtp.command("RCPT TO:<x@y>").startswith("503 ")
        assert smtp.command("DATA").startswith("503 ")
        smtp.command("MAIL FROM:<a@b>")
        assert smtp.command("DATA").startswith("503 ")
        assert smtp.command("RCPT TO:").startswith("501 ")
        assert smtp.command("RCPT TO:<>").startswith("501 ")
        assert smtp.command("MAIL FROM:<a@b> SIZE=abc").startswith("501 ")
        assert smtp.command("EHLO").startswith("501 ")
        assert smtp.command("VRFY").startswith("501 ")
        assert smtp.command("EXPN x").startswith("502 ")
        assert smtp.command("HELP").startswith("502 ")
        assert smtp.command("STARTTLS").startswith("454 ")
        assert smtp.command("NOOP").startswith("250 ")


def test_recipient_with_unregistered_id(harness: SmtpHarness) -> None:
    with smtplib.SMTP(HOST, harness.ports["smtp"], local_hostname="t", timeout=REPLY_TIMEOUT) as smtp:
        refused = smtp.sendmail("a@b", [f"x@{'z' * 33}.{DOMAIN}"], "Subject: nobody\r\n\r\n")
    assert refused == {}
    assert harness.call(lambda: harness.store.stats().queued_items) == 0
    assert harness.counters.smtp == 1, "an accepted message counts even without a session"


def test_one_record_per_session_and_transaction(harness: SmtpHarness) -> None:
    first = harness.new_client()
    second = harness.new_client()
    first_ids = [ident(first), ident(first)]
    second_id = ident(second)
    recipients = [f"a@{first_ids[0]}.{DOMAIN}", f"b@x.{first_ids[1]}.{DOMAIN}", f"c@{second_id.upper()}.{DOMAIN}"]
    with smtplib.SMTP(HOST, harness.ports["smtp"], local_hostname="t", timeout=REPLY_TIMEOUT) as smtp:
        smtp.sendmail("a@b", recipients, "Subject: both\r\n\r\n")
    first_records = wait_for_records(first, 1)
    second_records = wait_for_records(second, 1)
    assert len(first_records) == 1
    assert len(second_records) == 1
    assert first_records[0]["unique-id"] == first_ids[0]
    assert first_records[0]["full-id"] == first_ids[0]
    assert second_records[0]["unique-id"] == second_id
    assert second_records[0]["full-id"] == second_id.upper()
    assert f"for <{recipients[0]}>;" in first_records[0]["raw-request"]
    assert harness.counters.smtp == 1


def test_full_id_keeps_labels_before_the_id(harness: SmtpHarness) -> None:
    client = harness.new_client()
    payload_id = ident(client)
    with Conversation(harness.ports["smtp"]) as smtp:
        greet(smtp)
        smtp.command("MAIL FROM:<a@b>")
        smtp.command(f"RCPT TO:<x@Sub.{payload_id}.{DOMAIN}>")
        smtp.command("QUIT")
    (record,) = wait_for_records(client, 1)
    assert record["full-id"] == f"Sub.{payload_id}"
    assert record["unique-id"] == payload_id


@pytest.mark.parametrize("boundary", ["RSET", "MAIL FROM:<c@d>", "EHLO again", "HELO again"])
def test_transaction_boundaries(harness: SmtpHarness, boundary: str) -> None:
    client = harness.new_client()
    payload_id = ident(client)
    with Conversation(harness.ports["smtp"]) as smtp:
        greet(smtp)
        smtp.command("MAIL FROM:<a@b>")
        smtp.command(f"RCPT TO:<one@{payload_id}.{DOMAIN}>")
        assert smtp.command(boundary).startswith("250")
        # The first transaction is recorded before the reply to the boundary.
        assert len(client.poll()) == 1
        smtp.command("MAIL FROM:<a@b>")
        smtp.command(f"RCPT TO:<two@{payload_id}.{DOMAIN}>")
        smtp.command("QUIT")
    records = wait_for_records(client, 1)
    assert len(records) == 1
    assert f"two@{payload_id}" in records[0]["raw-request"]
    assert harness.counters.smtp == 2


@pytest.mark.parametrize("line", ["MAIL FROM: <a@b.test>", "mail from:a@b.test", "MAIL FROM:<a@b.test> BODY=8BITMIME"])
def test_lenient_mail_from(harness: SmtpHarness, line: str) -> None:
    client = harness.new_client()
    payload = client.payload()
    with Conversation(harness.ports["smtp"]) as smtp:
        greet(smtp)
        assert smtp.command(line).startswith("250 ")
        smtp.command(f"RCPT TO:<x@{payload}>")
        smtp.command("QUIT")
    (record,) = wait_for_records(client, 1)
    assert record["smtp-from"] == "a@b.test"
    assert line in record["raw-request"]


def test_vrfy_inside_transaction_joins_it(harness: SmtpHarness) -> None:
    client = harness.new_client()
    payload_id = ident(client)
    with Conversation(harness.ports["smtp"]) as smtp:
        greet(smtp)
        smtp.command("MAIL FROM:<a@b>")
        smtp.command(f"RCPT TO:<x@{payload_id}.{DOMAIN}>")
        assert smtp.command(f"VRFY <y@{payload_id}.{DOMAIN}>").startswith("252 ")
        assert client.poll() == [], "a VRFY inside a transaction was recorded before the transaction ended"
        smtp.command("QUIT")
    (record,) = wait_for_records(client, 1)
    assert record["raw-request"].endswith(f"VRFY <y@{payload_id}.{DOMAIN}>\r\n")


def test_vrfy_with_display_name(harness: SmtpHarness) -> None:
    client = harness.new_client()
    payload_id = ident(client)
    with Conversation(harness.ports["smtp"]) as smtp:
        greet(smtp)
        assert smtp.command(f"VRFY Probe User <p@{payload_id}.{DOMAIN}>").startswith("252 ")
        # Recorded at once, before the connection ends.
        assert len(client.poll()) == 1
        assert smtp.command(f"VRFY nobody@{'q' * 33}.{DOMAIN}").startswith("252 ")
    assert wait_for_records(client, 1, timeout=0.5) == []


def test_smuggled_end_of_data_is_content(harness: SmtpHarness) -> None:
    victim = harness.new_client()
    smuggled = harness.new_client()
    victim_id, smuggled_id = ident(victim), ident(smuggled)
    body = (
        "Subject: smuggle\r\n\r\nfirst\n.\n"
        f"MAIL FROM:<evil@x>\nRCPT TO:<x@{smuggled_id}.{DOMAIN}>\nDATA\nhidden\r\n.\n"
        f"MAIL FROM:<evil@x>\r\nRCPT TO:<x@{smuggled_id}.{DOMAIN}>\r\n"
    )
    with Conversation(harness.ports["smtp"]) as smtp:
        greet(smtp)
        smtp.command("MAIL FROM:<a@b>")
        smtp.command(f"RCPT TO:<x@{victim_id}.{DOMAIN}>")
        assert smtp.command("DATA").startswith("354")
        smtp.send(body.encode())
        assert smtp.command(".").startswith("250 ")
        assert smtp.command("QUIT").startswith("221")
    (record,) = wait_for_records(victim, 1)
    # The receiver removes the dot that starts a line, so "\r\n.\n" arrives as "\r\n\n".
    assert message_of(record) == body.replace("\r\n.", "\r\n")
    assert wait_for_records(smuggled, 1, timeout=0.5) == []


def test_empty_message_and_dot_stuffing(harness: SmtpHarness) -> None:
    client = harness.new_client()
    payload_id = ident(client)
    with Conversation(harness.ports["smtp"]) as smtp:
        greet(smtp)
        for body in ("", "..dot\r\n"):
            smtp.command("MAIL FROM:<a@b>")
            smtp.command(f"RCPT TO:<x@{payload_id}.{DOMAIN}>")
            smtp.command("DATA")
            assert smtp.command(body + ".").startswith("250 ")
    records = wait_for_records(client, 2)
    assert [message_of(record) for record in records] == ["", ".dot\r\n"]


def test_pipelined_commands_with_end_of_input(harness: SmtpHarness) -> None:
    client = harness.new_client()
    payload = client.payload()
    with Conversation(harness.ports["smtp"]) as smtp:
        smtp.reply()
        smtp.send(f"EHLO t\r\nMAIL FROM:<>\r\nRCPT TO:<probe@{payload}>\r\nNOOP\r\nQUIT\r\n".encode())
        # As "printf ... | nc" does: the end of input arrives with the commands.
        smtp.sock.shutdown(socket.SHUT_WR)
        replies = [smtp.reply() for _ in range(5)]
        assert [reply[:3] for reply in replies] == ["250", "250", "250", "250", "221"]
        assert smtp.closed()
    (record,) = wait_for_records(client, 1)
    assert record["unique-id"] == payload.split(".")[0]


def test_last_command_without_newline(harness: SmtpHarness) -> None:
    client = harness.new_client()
    payload = client.payload()
    with Conversation(harness.ports["smtp"]) as smtp:
        greet(smtp)
        smtp.command("MAIL FROM:<a@b>")
        smtp.send(f"RCPT TO:<p@{payload}>".encode())
        smtp.sock.shutdown(socket.SHUT_WR)
        assert smtp.reply().startswith("250 ")
        assert smtp.closed()
    assert len(wait_for_records(client, 1)) == 1


def test_non_utf8_bytes_are_recorded(harness: SmtpHarness) -> None:
    client = harness.new_client()
    payload = client.payload()
    with Conversation(harness.ports["smtp"]) as smtp:
        greet(smtp)
        smtp.command("MAIL FROM:<a@b>")
        smtp.send(b"RCPT TO:<\xff\xfe@" + payload.encode() + b">\r\n")
        assert smtp.reply().startswith("250 ")
        smtp.command("DATA")
        smtp.send(b"Subject: \xe9t\xe9\r\n\r\n\x00\x01\r\n")
        assert smtp.command(".").startswith("250 ")
    (record,) = wait_for_records(client, 1)
    # Undecodable bytes are recorded as the text \\xNN, so strict JSON parsers accept the record.
    assert "<\\xff\\xfe@" in record["smtp-envelope"]
    assert "Subject: \\xe9t\\xe9\r\n\r\n\x00\x01\r\n" in record["raw-request"]


def test_counters(harness: SmtpHarness) -> None:
    client = harness.new_client()
    payload = client.payload()
    with Conversation(harness.ports["smtp"]) as smtp:
        greet(smtp)
        # An unmatched callout is not counted.
        smtp.command("MAIL FROM:<>")
        smtp.command(f"RCPT TO:<x@{'q' * 33}.{DOMAIN}>")
        smtp.command("RSET")
        assert harness.counters.smtp == 0
        # A matched callout is.
        smtp.command("MAIL FROM:<>")
        smtp.command(f"RCPT TO:<x@{payload}>")
        smtp.command("RSET")
        assert harness.counters.smtp == 1
        # A matched VRFY outside a transaction is.
        smtp.command(f"VRFY x@{payload}")
        assert harness.counters.smtp == 2
    assert harness.counters.recorded == 2


def test_wildcard_records_tlddata() -> None:
    with SmtpHarness(make_config(wildcard=True)) as harness:
        consumer = harness.new_client()
        with smtplib.SMTP(HOST, harness.ports["smtp"], local_hostname="t", timeout=REPLY_TIMEOUT) as smtp:
            smtp.sendmail("a@b", [f"x@Foo.{DOMAIN}", "y@other.example", f"z@{DOMAIN}"], "Subject: w\r\n\r\n")
        shared = consumer.poll_tlddata()
    assert [record["unique-id"] for record in shared] == [f"@Foo.{DOMAIN}", f"@{DOMAIN}"]
    assert [record["full-id"] for record in shared] == [f"@Foo.{DOMAIN}", f"@{DOMAIN}"]
    assert all(record["protocol"] == "smtp" and "Subject: w" in record["raw-request"] for record in shared)


def test_auth_always_succeeds_and_is_not_logged(harness: SmtpHarness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = harness.new_client()
    payload = client.payload()
    for mechanism in ("CRAM-MD5", "PLAIN", "LOGIN"):
        with smtplib.SMTP(HOST, harness.ports["smtp"], local_hostname="t", timeout=REPLY_TIMEOUT) as smtp:
            smtp.ehlo("t")
            smtp.user, smtp.password = "user", "s3cret-pass"
            code, _ = smtp.auth(mechanism, getattr(smtp, "auth_" + mechanism.lower().replace("-", "_")))
            assert code == 235, mechanism
            smtp.sendmail("a@b", [f"x@{payload}"], "Subject: auth\r\n\r\n")
    assert len(wait_for_records(client, 3)) == 3
    assert "s3cret-pass" not in caplog.text
    assert "czNjcmV0LXBhc3M" not in caplog.text, "the base64 password was logged"


def test_close_records_open_transaction(loop_kind: str) -> None:
    with SmtpHarness(make_config(), loop_kind) as harness:
        client = harness.new_client()
        payload = client.payload()
        with Conversation(harness.ports["smtp"]) as smtp:
            greet(smtp)
            smtp.command("MAIL FROM:<a@b>")
            smtp.command(f"RCPT TO:<x@{payload}>")
            assert harness.listener is not None
            harness.run(harness.listener.close())
            harness.listener = None
            assert smtp.closed()
            (record,) = client.poll()
    assert record["unique-id"] == payload.split(".")[0]
