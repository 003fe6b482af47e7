"""Pebble, Let's Encrypt's test ACME server, on loopback ports for the ACME tests.

Pebble listens on 127.0.0.1 only and resolves every name through the DNS
server given with ``-dnsserver``, which the tests point at the interactsh
server under test, so no query or request leaves the machine.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from serverproc import HOST, RunningServer, free_port

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"
# The server must reach pebble directly: an HTTP proxy from the environment would take the requests elsewhere.
NO_PROXY_ENV = {"HTTPS_PROXY": "", "https_proxy": "", "ALL_PROXY": "", "all_proxy": "", "NO_PROXY": "*"}
STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 10.0


@dataclass
class Pebble:
    """A running pebble process."""

    process: subprocess.Popen[bytes]
    log_path: Path
    ca_path: Path
    acme_port: int
    management_port: int

    @property
    def directory_url(self) -> str:
        return f"https://{HOST}:{self.acme_port}/dir"

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def trust(self) -> ssl.SSLContext:
        """Return a client context that trusts pebble's own listeners."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def root_pem(self) -> bytes:
        """Return the root certificate that pebble signs with; pebble makes a new one at every start."""
        response = httpx.get(f"https://{HOST}:{self.management_port}/roots/0", verify=self.trust(), timeout=10)
        response.raise_for_status()
        return response.content

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_listener_certificate(folder: Path) -> tuple[Path, Path, Path]:
    """Write a test CA and a certificate for 127.0.0.1 signed by it; return the CA, certificate and key paths."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "interactsh test CA for pebble")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "pebble-ca.pem", folder / "pebble-cert.pem", folder / "pebble-key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


def start_pebble(folder: Path, dns_port: int) -> Pebble:
    """Start pebble on free loopback ports, resolving through 127.0.0.1:``dns_port``, and wait until it serves."""
    ca_path, cert_path, key_path = write_listener_certificate(folder)
    acme_port, management_port = free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"{HOST}:{acme_port}",
            "managementListenAddress": f"{HOST}:{management_port}",
            "certificate": str(cert_path),
            "privateKey": str(key_path),
            # Ports pebble would connect to for http-01 and tls-alpn-01; DNS-01 never uses them.
            "httpPort": free_port(),
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    config_path = folder / "pebble-config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    environment = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
        # Every order validates again, so each one exercises the DNS-01 path.
        "PEBBLE_AUTHZREUSE": "0",
    }
    log_path = folder / "pebble.log"
    command = [PEBBLE, "-config", str(config_path), "-dnsserver", f"{HOST}:{dns_port}"]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=environment)
    pebble = Pebble(process, log_path, ca_path, acme_port, management_port)
    _wait_until_serving(pebble)
    return pebble


def _wait_until_serving(pebble: Pebble) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if pebble.process.poll() is not None:
            raise RuntimeError(f"pebble exited with {pebble.process.returncode}:\n{pebble.logs()}")
        try:
            response = httpx.get(pebble.directory_url, verify=pebble.trust(), timeout=2)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            return
        if time.monotonic() > deadline:
            pebble.stop()
            raise RuntimeError(f"pebble did not serve its directory within {STARTUP_TIMEOUT} s:\n{pebble.logs()}")
        time.sleep(0.1)


@dataclass
class AcmeSetup:
    """A server whose certificate comes from a pebble that resolves names through the server's DNS."""

    server: RunningServer
    pebble: Pebble

    def root_context(self) -> ssl.SSLContext:
        """Return a client context that trusts pebble's root, with host name checks on."""
        return ssl.create_default_context(cadata=self.pebble.root_pem().decode("ascii"))
