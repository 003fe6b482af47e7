"""Client-side helpers for the store contract tests: key encoding and reply decryption.

They decrypt with ``cryptography`` independently of either engine, so a
test compares what a real client would read.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import load_pem_public_key

try:
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # cryptography before 47
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from interactsh.store.base import PollReply, Store

IV_SIZE = 16
SECRET = "3f1a2b4c-5d6e-4f70-8192-a3b4c5d6e7f8"
OTHER_SECRET = "00000000-1111-4222-8333-444444444444"
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


_generated: dict[int, rsa.RSAPrivateKey] = {}


def private_key(bits: int) -> rsa.RSAPrivateKey:
    """Return an RSA private key of ``bits`` bits, generated once per test session."""
    if bits not in _generated:
        _generated[bits] = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return _generated[bits]


def stored_public_key(name: str) -> PublicKeyTypes:
    """Load a public key from ``tests/data``; ``cryptography`` cannot generate keys of these sizes."""
    return load_pem_public_key((DATA_DIR / name).read_bytes())


def session_id(number: int, length: int = 20) -> str:
    """Return a valid, distinct correlation id of ``length`` characters."""
    return f"s{number:0{length - 1}d}"


def encode_public_key(key: PublicKeyTypes, *, label: str = "RSA PUBLIC KEY", pkcs1: bool = False) -> str:
    """Return ``key`` as a registration sends it: base64 of PEM text with the given label.

    The default matches upstream's Go client, whose ``RSA PUBLIC KEY`` block
    holds a SubjectPublicKeyInfo, not PKCS#1.
    """
    public_format = serialization.PublicFormat.PKCS1 if pkcs1 else serialization.PublicFormat.SubjectPublicKeyInfo
    der = key.public_bytes(serialization.Encoding.DER, public_format)
    body = base64.encodebytes(der).decode("ascii")
    pem = f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"
    return base64.b64encode(pem.encode("ascii")).decode("ascii")


def unwrap_aes_key(private_key: rsa.RSAPrivateKey, aes_key_b64: str) -> bytes:
    """Decrypt the ``aes_key`` field of a poll reply."""
    return private_key.decrypt(base64.b64decode(aes_key_b64, validate=True), _OAEP)


def split_item(item: str) -> tuple[bytes, bytes]:
    """Split one ``data`` item into its IV and ciphertext."""
    blob = base64.b64decode(item, validate=True)
    assert len(blob) >= IV_SIZE, f"data item has {len(blob)} bytes, fewer than the IV"
    return blob[:IV_SIZE], blob[IV_SIZE:]


def decrypt_item(aes_key: bytes, item: str, aes_mode: str) -> bytes:
    """Decrypt one ``data`` item with AES-256-CTR or full-block CFB128."""
    iv, ciphertext = split_item(item)
    mode = modes.CTR(iv) if aes_mode == "ctr" else CFB(iv)
    decryptor = Cipher(algorithms.AES(aes_key), mode).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def compact_json(document: Any) -> bytes:
    """Serialise a parsed body back to compact JSON with raw UTF-8, for byte comparison."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class OpenedReply:
    """A poll body parsed and decrypted as a client would read it."""

    document: dict[str, Any]
    aes_key: bytes
    data: list[bytes] = field(default_factory=list)
    extra: list[bytes] | None = None
    tlddata: list[bytes] | None = None


@dataclass
class Owner:
    """A session owner: correlation id, secret and RSA key pair."""

    correlation_id: str
    private_key: rsa.RSAPrivateKey
    secret: str = SECRET
    aes_mode: str = "ctr"

    @property
    def public_key(self) -> str:
        return encode_public_key(self.private_key.public_key())

    def register(self, store: Store, aes_mode: str | None = None) -> bool:
        """Register this owner's session; ``aes_mode`` is also the mode used to decrypt."""
        if aes_mode is not None:
            self.aes_mode = aes_mode
        return store.register(self.correlation_id, self.secret, self.public_key, aes_mode)  # type: ignore[arg-type]

    def poll(self, store: Store, **flags: bool) -> tuple[PollReply, OpenedReply]:
        """Poll without committing and return the reply with its decrypted contents."""
        reply = store.poll(self.correlation_id, self.secret, **flags)
        return reply, self.open(reply)

    def take(self, store: Store, **flags: bool) -> OpenedReply:
        """Poll, commit and return the decrypted contents."""
        reply, opened = self.poll(store, **flags)
        store.commit(reply)
        return opened

    def drain(self, store: Store, **flags: bool) -> list[bytes]:
        """Poll and commit until no data is left, and return every record in order."""
        records: list[bytes] = []
        while batch := self.take(store, **flags).data:
            records += batch
        return records

    def open(self, reply: PollReply) -> OpenedReply:
        """Parse and check the body's framing, then decrypt its ``data`` items."""
        body = reply.body
        assert body.endswith(b"}\n"), f"poll body does not end with '}}\\n': {body[-20:]!r}"
        document = json.loads(body)
        assert body == compact_json(document) + b"\n", "poll body is not compact JSON in the expected form"
        keys = list(document)
        assert keys[:3] == ["data", "extra", "aes_key"], f"poll body keys out of order: {keys}"
        assert keys[3:] in ([], ["tlddata"]), f"poll body has unexpected keys: {keys}"
        aes_key = unwrap_aes_key(self.private_key, document["aes_key"])
        opened = OpenedReply(document=document, aes_key=aes_key)
        if document["data"] is not None:
            assert document["data"], "an empty data list must be sent as null"
            opened.data = [decrypt_item(aes_key, item, self.aes_mode) for item in document["data"]]
        opened.extra = _plain_items(document["extra"])
        opened.tlddata = _plain_items(document.get("tlddata"))
        return opened


def _plain_items(items: list[str] | None) -> list[bytes] | None:
    if items is None:
        return None
    assert items, "an empty shared list must be sent as null or left out"
    return [item.encode("utf-8") for item in items]


def records(count: int, size: int = 0, prefix: str = "r") -> list[bytes]:
    """Return ``count`` distinct JSON records of exactly ``size`` bytes (the shortest possible when ``size`` is 0)."""
    made = []
    for number in range(count):
        head = f'{{"protocol":"dns","unique-id":"{prefix}{number}","pad":"'
        if size and len(head) + 2 > size:
            raise ValueError(f"records of {size} bytes are too small for the {len(head) + 2}-byte frame")
        pad = "x" * max(0, size - len(head) - 2)
        made.append(f'{head}{pad}"}}'.encode())
    return made


def make_clock(start: float = 1000.0) -> FakeClock:
    """Return a clock that moves only when a test advances it."""
    return FakeClock(start)


class FakeClock:
    """A monotonic clock that a test moves by hand."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "the fake clock never goes backwards"
        self.now += seconds


StoreFactory = Callable[..., Store]
