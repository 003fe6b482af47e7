"""A small Interactsh client: register, build payload names, poll and decrypt.

It speaks the same protocol as upstream's Go client and supports both AES
modes, so tests and scripts can check a server without third-party code.
It uses only the standard library for HTTP.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from interactsh.store.python_crypto import CFB, IV_SIZE

_ID_ALPHABET = string.ascii_lowercase + string.digits


class ClientError(RuntimeError):
    """The server rejected a request or sent a reply the client cannot read."""

    def __init__(self, message: str, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass
class PollResult:
    """Decrypted interactions of one poll, plus the plaintext shared items."""

    interactions: list[dict[str, Any]] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)
    tlddata: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def random_id(length: int) -> str:
    """Return ``length`` random characters of ``[a-z0-9]``."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def decrypt_item(aes_key: bytes, item: str, aes_mode: str = "ctr") -> bytes:
    """Decrypt one ``data`` item: ``base64(iv || ciphertext)``."""
    blob = base64.b64decode(item)
    if len(blob) < IV_SIZE:
        raise ClientError(f"data item has {len(blob)} bytes, fewer than the {IV_SIZE}-byte IV")
    iv, ciphertext = blob[:IV_SIZE], blob[IV_SIZE:]
    mode = modes.CTR(iv) if aes_mode == "ctr" else CFB(iv)
    decryptor = Cipher(algorithms.AES(aes_key), mode).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


class InteractshClient:
    """One registered session on one server."""

    def __init__(
        self,
        server_url: str,
        *,
        token: str | None = None,
        cid_length: int = 20,
        nonce_length: int = 13,
        aes_mode: str = "ctr",
        send_aes_mode: bool = False,
        key_bits: int = 2048,
        timeout: float = 10.0,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.token = token
        self.nonce_length = nonce_length
        self.aes_mode = aes_mode
        self.send_aes_mode = send_aes_mode
        self.timeout = timeout
        self.correlation_id = random_id(cid_length)
        self.secret = str(uuid.uuid4())
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)

    def public_key_b64(self) -> str:
        """Return the public key as upstream clients send it: base64 of a PEM document."""
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        body = base64.encodebytes(der).decode("ascii")
        pem = f"-----BEGIN RSA PUBLIC KEY-----\n{body}-----END RSA PUBLIC KEY-----\n"
        return base64.b64encode(pem.encode("ascii")).decode("ascii")

    def payload(self, domain: str) -> str:
        """Return a fresh payload host name ``<correlation id><nonce>.<domain>``."""
        return f"{self.correlation_id}{random_id(self.nonce_length)}.{domain}"

    def register(self) -> dict[str, Any]:
        """Register the session; raise :class:`ClientError` unless the server accepts it."""
        body: dict[str, str] = {
            "public-key": self.public_key_b64(),
            "secret-key": self.secret,
            "correlation-id": self.correlation_id,
        }
        if self.send_aes_mode:
            body["aes-mode"] = self.aes_mode
        reply = self._request("/register", json.dumps(body).encode())
        if reply.get("message") != "registration successful":
            raise ClientError(f"unexpected registration reply: {reply!r}")
        return reply

    def poll(self) -> PollResult:
        """Fetch, decrypt and parse the queued interactions."""
        path = f"/poll?id={self.correlation_id}&secret={self.secret}"
        reply = self._request(path, None)
        result = PollResult(raw=reply)
        items = reply.get("data") or []
        if items:
            wrapped = base64.b64decode(reply["aes_key"])
            oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
            aes_key = self.private_key.decrypt(wrapped, oaep)
            result.interactions = [json.loads(decrypt_item(aes_key, item, self.aes_mode)) for item in items]
        result.extra = [json.loads(item) for item in reply.get("extra") or [] if item]
        result.tlddata = [json.loads(item) for item in reply.get("tlddata") or [] if item]
        return result

    def deregister(self) -> dict[str, Any]:
        """Remove the session from the server."""
        body = {"correlation-id": self.correlation_id, "secret-key": self.secret}
        return self._request("/deregister", json.dumps(body).encode())

    def _request(self, path: str, data: bytes | None) -> dict[str, Any]:
        request = urllib.request.Request(self.server_url + path, data=data, method="POST" if data else "GET")
        if self.token:
            request.add_header("Authorization", self.token)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            body = error.read()
            raise ClientError(
                f"{path.split('?')[0]} failed with HTTP {error.code}: {body!r}", error.code, body
            ) from None
        try:
            document: dict[str, Any] = json.loads(payload)
        except json.JSONDecodeError as error:
            raise ClientError(f"{path.split('?')[0]} returned invalid JSON: {error}", 200, payload) from None
        return document
