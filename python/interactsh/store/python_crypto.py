"""Key parsing, key wrapping and record encryption for the Python store engine.

They follow the wire rules that upstream clients expect. The registration's
public key is base64 of a PEM document whose label is ignored. The AES key is
wrapped with RSA-OAEP (SHA-256 for the digest and MGF1, empty label). Each
``data`` item is ``base64(iv || AES-256-CTR or CFB128(record))``.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import load_der_public_key

try:
    # cryptography 47 moved CFB here and warns on the old name.
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # cryptography before 47
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from interactsh.errors import InvalidPublicKeyError
from interactsh.store.base import MAX_RSA_BITS, MIN_RSA_BITS, AesMode

AES_KEY_SIZE = 32
IV_SIZE = 16

_PEM_BEGIN = b"-----BEGIN "
_PEM_END = b"-----END "
_PEM_DASHES = b"-----"
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def load_rsa_public_key(public_key: str) -> rsa.RSAPublicKey:
    """Parse the ``public-key`` field of a registration into an RSA key.

    Raises :class:`InvalidPublicKeyError` with the reason when the text is not
    base64, holds no PEM block, is not RSA, or has a size outside
    ``MIN_RSA_BITS``..``MAX_RSA_BITS``.
    """
    try:
        pem = base64.b64decode(public_key.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise InvalidPublicKeyError(
            "public key is not valid base64: send the PEM text encoded as standard padded base64"
        ) from None
    der = _first_pem_block(pem)
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidPublicKeyError(
            "public key PEM block contains no SubjectPublicKeyInfo or PKCS#1 RSA key: send an RSA public key"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        kind = type(key).__name__.removesuffix("PublicKey").removeprefix("_")
        raise InvalidPublicKeyError(f"public key type is not RSA (found {kind}): send an RSA public key")
    if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
        raise InvalidPublicKeyError(
            f"RSA public key has {key.key_size} bits: this server accepts {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
        )
    return key


def _first_pem_block(pem: bytes) -> bytes:
    """Return the DER bytes of the first PEM block, whatever its label."""
    begin = pem.find(_PEM_BEGIN)
    label_end = pem.find(_PEM_DASHES, begin + len(_PEM_BEGIN)) if begin >= 0 else -1
    if label_end < 0:
        raise InvalidPublicKeyError("public key contains no PEM block: send a document with a -----BEGIN ...----- line")
    label = pem[begin + len(_PEM_BEGIN) : label_end]
    if b"\n" in label:
        raise InvalidPublicKeyError("public key contains no PEM block: send a document with a -----BEGIN ...----- line")
    body_start = label_end + len(_PEM_DASHES)
    body_end = pem.find(_PEM_END + label + _PEM_DASHES, body_start)
    if body_end < 0:
        raise InvalidPublicKeyError("public key PEM block has no matching -----END ...----- line")
    try:
        return base64.b64decode(b"".join(pem[body_start:body_end].split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPublicKeyError("public key PEM block body is not valid base64") from None


def wrap_aes_key(public_key: rsa.RSAPublicKey, aes_key: bytes) -> bytes:
    """Encrypt ``aes_key`` with RSA-OAEP-SHA256 and return the base64 text as ASCII bytes."""
    return base64.b64encode(public_key.encrypt(aes_key, _OAEP))


def encrypt_records(aes_key: bytes, aes_mode: AesMode, records: Iterable[bytes]) -> list[bytes]:
    """Encrypt each record with a fresh IV and return ``base64(iv || ciphertext)`` items."""
    algorithm = algorithms.AES(aes_key)
    mode_class = modes.CTR if aes_mode == "ctr" else CFB
    items: list[bytes] = []
    for record in records:
        iv = os.urandom(IV_SIZE)
        encryptor = Cipher(algorithm, mode_class(iv)).encryptor()
        items.append(base64.b64encode(iv + encryptor.update(record) + encryptor.finalize()))
    return items
