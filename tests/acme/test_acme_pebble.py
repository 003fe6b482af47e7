"""Certificates from pebble over DNS-01, answered by the server's own DNS listener, served on HTTPS."""

from __future__ import annotations

import socket
import ssl
import stat
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import httpx
from cryptography import x509
from pebbleproc import AcmeSetup
from serverproc import HOST, RunningServer, free_port

RENEWAL_WAIT = 60.0


def served_certificate(port: int, server_name: str | None, context: ssl.SSLContext) -> x509.Certificate:
    """Return the certificate that a TLS handshake on ``port`` presents for ``server_name``."""
    with (
        socket.create_connection((HOST, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def dns_names(certificate: x509.Certificate) -> set[str]:
    extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return set(extension.value.get_values_for_type(x509.DNSName))


def challenge_txt(server: RunningServer) -> dns.message.Message:
    query = dns.message.make_query(f"_acme-challenge.{server.domain}", "TXT")
    return dns.query.udp(query, HOST, port=server.dns_port, timeout=5)


def https_port_closed(server: RunningServer) -> bool:
    try:
        socket.create_connection((HOST, server.ports["https"]), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_pebble_issues_wildcard_and_apex(acme_server: Callable[..., AcmeSetup]) -> None:
    setup = acme_server()
    server = setup.server
    context = setup.root_context()
    port = server.ports["https"]

    wildcard = served_certificate(port, f"abc123.{server.domain}", context)
    apex = served_certificate(port, server.domain, context)

    assert dns_names(wildcard) == {f"*.{server.domain}", server.domain}
    assert apex.serial_number == wildcard.serial_number
    assert "obtained a certificate for *.oast.test, oast.test" in server.logs()
    assert "Issued certificate serial" in setup.pebble.logs()
    # The TXT records are withdrawn once the order is complete.
    reply = challenge_txt(server)
    assert reply.rcode() == 0
    assert not reply.answer


def test_https_without_sni_gets_certificate(acme_server: Callable[..., AcmeSetup]) -> None:
    setup = acme_server()
    context = setup.root_context()
    context.check_hostname = False

    certificate = served_certificate(setup.server.ports["https"], None, context)

    assert f"*.{setup.server.domain}" in dns_names(certificate)


def test_acme_files_stored_privately(acme_server: Callable[..., AcmeSetup], shared_acme_dir: Path) -> None:
    setup = acme_server("-acme-dir", str(shared_acme_dir))

    keys = sorted(shared_acme_dir.rglob("*key.pem"))
    certificates = sorted(shared_acme_dir.rglob("certificate.pem"))

    assert [path.name for path in keys] == ["account-key.pem", "private-key.pem"]
    assert len(certificates) == 1
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert certificates[0].parent.name == setup.server.domain
    served = served_certificate(setup.server.ports["https"], setup.server.domain, setup.root_context())
    stored = x509.load_pem_x509_certificates(certificates[0].read_bytes())[0]
    assert stored.serial_number == served.serial_number


def test_https_request_recorded_as_https(acme_server: Callable[..., AcmeSetup]) -> None:
    setup = acme_server()
    server = setup.server
    client = server.client()
    payload = client.payload(server.domain)
    url = f"https://{HOST}:{server.ports['https']}/probe?x=1"

    with httpx.Client(verify=setup.root_context(), timeout=10) as http:
        response = http.get(url, headers={"Host": payload}, extensions={"sni_hostname": payload})

    assert response.status_code == 200
    assert payload.split(".")[0][::-1] in response.text
    items = client.poll().interactions
    assert [item["protocol"] for item in items] == ["https"]
    assert items[0]["unique-id"] == payload.split(".")[0]
    assert items[0]["remote-address"] == HOST
    assert str(items[0]["raw-request"]).startswith("GET /probe?x=1 HTTP/1.1\r\n")


def test_https_offers_only_http1(acme_server: Callable[..., AcmeSetup]) -> None:
    setup = acme_server()
    context = setup.root_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    port = setup.server.ports["https"]

    with (
        socket.create_connection((HOST, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=setup.server.domain) as tls,
    ):
        selected = tls.selected_alpn_protocol()

    assert selected == "http/1.1"


def test_renewal_swaps_certificate_without_restart(acme_server: Callable[..., AcmeSetup]) -> None:
    # A renew-before longer than the certificate's validity makes every check renew it.
    setup = acme_server("-acme-renew-before", "100000", "-acme-check-interval", "1")
    server = setup.server
    context = setup.root_context()
    port = server.ports["https"]
    pid = server.process.pid
    first = served_certificate(port, server.domain, context).serial_number

    deadline = time.monotonic() + RENEWAL_WAIT
    current = first
    while current == first and time.monotonic() < deadline:
        time.sleep(0.5)
        current = served_certificate(port, server.domain, context).serial_number

    assert current != first, f"the served certificate did not change within {RENEWAL_WAIT} s:\n{server.logs()[-3000:]}"
    assert server.alive()
    assert server.process.pid == pid
    assert server.logs().count("obtained a certificate for") >= 2


def test_stored_certificate_reused(acme_server: Callable[..., AcmeSetup], shared_acme_dir: Path) -> None:
    first = acme_server("-acme-dir", str(shared_acme_dir))
    orders = first.pebble.logs().count("POST /order-plz")
    # A second server on the same folder and CA finds the certificate and orders nothing.
    second = acme_server("-acme-dir", str(shared_acme_dir), pebble=first.pebble)

    context = first.root_context()
    served_first = served_certificate(first.server.ports["https"], first.server.domain, context)
    served_second = served_certificate(second.server.ports["https"], second.server.domain, context)

    assert orders == 1
    assert served_second.serial_number == served_first.serial_number
    assert "using the stored certificate" in second.server.logs()
    assert first.pebble.logs().count("POST /order-plz") == orders


def test_validation_failure_runs_without_tls(acme_server: Callable[..., AcmeSetup]) -> None:
    # Pebble sends its queries to a port where no DNS server listens, so the challenges cannot be validated.
    setup = acme_server("-acme-order-timeout", "20", pebble_dns_port=free_port())
    server = setup.server

    logs = server.logs()
    assert "ERROR interactsh.acme: could not obtain a TLS certificate for *.oast.test, oast.test" in logs
    assert "could not validate" in logs
    assert "HTTPS is off" in logs
    assert https_port_closed(server)
    assert server.client().poll().interactions == []
    assert not challenge_txt(server).answer


def test_unreachable_directory_runs_without_tls(start_server: Callable[..., RunningServer]) -> None:
    closed_port = free_port()
    server = start_server(
        "-acme-directory",
        f"https://{HOST}:{closed_port}/dir",
        "-acme-request-timeout",
        "5",
        env={"HTTPS_PROXY": "", "https_proxy": "", "NO_PROXY": "*"},
    )

    logs = server.logs()
    assert "could not read the ACME directory" in logs
    assert "could not be reached" in logs
    assert "HTTPS is off" in logs
    assert https_port_closed(server)


def test_missing_ca_bundle_runs_without_tls(start_server: Callable[..., RunningServer], tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    server = start_server("-acme-directory", f"https://{HOST}:{free_port()}/dir", "-acme-ca-bundle", str(missing))

    assert f"-acme-ca-bundle '{missing}' is not a readable file" in server.logs()
    assert https_port_closed(server)


def test_loopback_default_skips_acme(start_server: Callable[..., RunningServer]) -> None:
    # Should the skip ever fail, the request would go to a closed local proxy port, never to the public CA.
    trap = f"http://{HOST}:{free_port()}"
    server = start_server(env={"HTTPS_PROXY": trap, "https_proxy": trap, "NO_PROXY": "", "no_proxy": ""})

    logs = server.logs()
    assert "ACME is off: -listen-ip 127.0.0.1 is a loopback address" in logs
    assert "requesting a certificate" not in logs
    assert https_port_closed(server)


def test_skip_acme_flag(acme_server: Callable[..., AcmeSetup]) -> None:
    setup = acme_server("-skip-acme")

    assert "ACME is off: -skip-acme is set" in setup.server.logs()
    assert "sign-me-up" not in setup.pebble.logs()
    assert https_port_closed(setup.server)
