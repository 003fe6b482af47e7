"""Store contract: correlation ids, public keys, registration, secrets and deregistration."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from contract_helpers import (
    OTHER_SECRET,
    SECRET,
    Owner,
    encode_public_key,
    private_key,
    records,
    session_id,
    stored_public_key,
)
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from interactsh.errors import (
    AlreadyRegisteredError,
    InteractshError,
    InvalidAesModeError,
    InvalidCorrelationIdError,
    InvalidPublicKeyError,
    SessionNotFoundError,
)
from interactsh.store.base import Store

MakeStore = Callable[..., Store]

INVALID_IDS = {
    "empty": "",
    "four characters": "aaaa",
    "ten kilobytes": "a" * 10_240,
    "path traversal": "../../x",
    "path traversal of the right length": "../../xxxxxxxxxxxxxx",
    "non-ASCII letters": "é" * 20,
    "Kelvin sign that lowercases to k": "\u212a" * 20,
    "dotless capital I": "\u0130" * 20,
    "lone surrogate": "\ud800" * 20,
    "one character short": "a" * 19,
    "one character long": "a" * 21,
    "dash": "aaaaaaaaaa-aaaaaaaaa",
    "space": "aaaaaaaaaa aaaaaaaaa",
    "NUL byte": "aaaaaaaaaa\x00aaaaaaaaa",
}


# Correlation ids


@pytest.mark.parametrize("value", INVALID_IDS.values(), ids=INVALID_IDS.keys())
def test_register_rejects_invalid_id(make_store: MakeStore, owner: Owner, value: str) -> None:
    store = make_store()
    with pytest.raises(InvalidCorrelationIdError) as caught:
        store.register(value, SECRET, owner.public_key)
    message = str(caught.value)
    assert "20 characters" in message, f"the message must name the expected length: {message!r}"
    assert "[a-z0-9]" in message, f"the message must name the alphabet: {message!r}"
    assert len(message) < 300, "the message must not echo a long id whole"
    assert len(store) == 0


@pytest.mark.parametrize("value", INVALID_IDS.values(), ids=INVALID_IDS.keys())
def test_other_operations_on_invalid_id(make_store: MakeStore, value: str) -> None:
    store = make_store()
    with pytest.raises(SessionNotFoundError):
        store.poll(value, SECRET)
    with pytest.raises(SessionNotFoundError):
        store.deregister(value, SECRET)
    assert store.append(value, b"{}") is False
    assert store.contains(value) is False


def test_invalid_id_error_is_value_error(make_store: MakeStore, owner: Owner) -> None:
    with pytest.raises(ValueError):
        make_store().register("aaaa", SECRET, owner.public_key)
    with pytest.raises(InteractshError):
        make_store().register("aaaa", SECRET, owner.public_key)


def test_short_id_message_names_length(make_store: MakeStore, owner: Owner) -> None:
    with pytest.raises(InvalidCorrelationIdError) as caught:
        make_store().register("aaaa", SECRET, owner.public_key)
    assert "4 characters" in str(caught.value)
    assert "'aaaa'" in str(caught.value)


def test_uppercase_id_is_lowercased(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    assert store.register("A" * 20, SECRET, owner.public_key) is True
    assert store.contains("a" * 20)
    assert store.contains("A" * 20)
    assert store.contains("aAaAaAaAaAaAaAaAaAaA")
    assert store.append("A" * 20, b'{"n":1}')
    reply = store.poll("a" * 20, SECRET)
    assert reply.correlation_id == "a" * 20
    assert reply.data_count == 1
    assert store.register("a" * 20, SECRET, owner.public_key) is False


def test_configured_id_length(make_store: MakeStore, owner: Owner) -> None:
    store = make_store(correlation_id_length=12)
    assert store.register("abcdef012345", SECRET, owner.public_key)
    with pytest.raises(InvalidCorrelationIdError) as caught:
        store.register("a" * 20, SECRET, owner.public_key)
    assert "12 characters" in str(caught.value)
    assert not store.contains("a" * 20)


# Public keys


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
def test_register_accepts_rsa_sizes(make_store: MakeStore, bits: int) -> None:
    key = private_key(bits)
    store = make_store()
    client = Owner(session_id(bits), key)
    assert client.register(store)
    store.append(client.correlation_id, b'{"bits":%d}' % bits)
    opened = client.take(store)
    assert len(base64.b64decode(opened.document["aes_key"])) == bits // 8
    assert opened.data == [b'{"bits":%d}' % bits]


KEY_ENCODINGS = {
    "SPKI labelled RSA PUBLIC KEY": {"label": "RSA PUBLIC KEY"},
    "SPKI labelled PUBLIC KEY": {"label": "PUBLIC KEY"},
    "PKCS#1 labelled RSA PUBLIC KEY": {"label": "RSA PUBLIC KEY", "pkcs1": True},
    "PKCS#1 labelled PUBLIC KEY": {"label": "PUBLIC KEY", "pkcs1": True},
    "SPKI with an unrelated label": {"label": "CERTIFICATE"},
}


@pytest.mark.parametrize("encoding", KEY_ENCODINGS.values(), ids=KEY_ENCODINGS.keys())
def test_register_accepts_key_encodings(make_store: MakeStore, owner: Owner, encoding: dict[str, object]) -> None:
    store = make_store()
    public_key = encode_public_key(owner.private_key.public_key(), **encoding)  # type: ignore[arg-type]
    assert store.register(owner.correlation_id, SECRET, public_key)
    store.append(owner.correlation_id, b'{"n":1}')
    assert owner.take(store).data == [b'{"n":1}']


def test_register_accepts_text_around_pem(make_store: MakeStore, owner: Owner) -> None:
    pem = base64.b64decode(owner.public_key)
    wrapped = b"a comment line\n" + pem + b"trailing text\n"
    store = make_store()
    assert store.register(owner.correlation_id, SECRET, base64.b64encode(wrapped).decode())


@pytest.mark.parametrize("file_name,bits", [("rsa-512-public.pem", 512), ("rsa-1023-public.pem", 1023)])
def test_register_rejects_small_rsa(make_store: MakeStore, file_name: str, bits: int) -> None:
    public_key = encode_public_key(stored_public_key(file_name))
    with pytest.raises(InvalidPublicKeyError) as caught:
        make_store().register(session_id(3), SECRET, public_key)
    message = str(caught.value)
    assert str(bits) in message, f"the message must name the key size: {message!r}"
    assert "1024" in message, f"the message must name the accepted range: {message!r}"
    assert "4096" in message, f"the message must name the accepted range: {message!r}"


def test_register_rejects_large_rsa(make_store: MakeStore) -> None:
    for key in (stored_public_key("rsa-4097-public.pem"), stored_public_key("rsa-8192-public.pem")):
        with pytest.raises(InvalidPublicKeyError) as caught:
            make_store().register(session_id(3), SECRET, encode_public_key(key))
        assert str(key.key_size) in str(caught.value)  # type: ignore[union-attr]


NON_RSA_KEYS = {
    "EC P-256": lambda: ec.generate_private_key(ec.SECP256R1()).public_key(),
    "Ed25519": lambda: ed25519.Ed25519PrivateKey.generate().public_key(),
}


@pytest.mark.parametrize("make_key", NON_RSA_KEYS.values(), ids=NON_RSA_KEYS.keys())
def test_register_rejects_non_rsa_key(make_store: MakeStore, make_key: Callable[[], object]) -> None:
    public_key = encode_public_key(make_key(), label="PUBLIC KEY")  # type: ignore[arg-type]
    with pytest.raises(InvalidPublicKeyError) as caught:
        make_store().register(session_id(3), SECRET, public_key)
    assert "RSA" in str(caught.value)


def _b64(text: bytes) -> str:
    return base64.b64encode(text).decode("ascii")


BAD_KEYS = {
    "empty": ("", "PEM"),
    "garbage base64": ("!!! not base64 !!!", "base64"),
    "base64 cut short": ("LS0tLS1CRUdJTiBSU0EgUFV", "base64"),
    "non-ASCII text": ("é" * 40, "base64"),
    "lone surrogate": ("\ud800", "base64"),
    "no PEM block": (_b64(b"hello, this is not a key\n"), "PEM"),
    "BEGIN without END": (_b64(b"-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n"), "PEM"),
    "mismatched END label": (_b64(b"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END RSA PUBLIC KEY-----\n"), "PEM"),
    "PEM body not base64": (_b64(b"-----BEGIN PUBLIC KEY-----\n@@@@\n-----END PUBLIC KEY-----\n"), "base64"),
    "PEM body not DER": (_b64(b"-----BEGIN PUBLIC KEY-----\naGVsbG8=\n-----END PUBLIC KEY-----\n"), "RSA"),
    "empty PEM body": (_b64(b"-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"), "RSA"),
}


@pytest.mark.parametrize("public_key,word", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_register_rejects_bad_key(make_store: MakeStore, public_key: str, word: str) -> None:
    store = make_store()
    with pytest.raises(InvalidPublicKeyError) as caught:
        store.register(session_id(3), SECRET, public_key)
    assert word in str(caught.value), f"the message must say what is wrong ({word}): {caught.value}"
    assert isinstance(caught.value, ValueError)
    assert not store.contains(session_id(3))


# AES modes


@pytest.mark.parametrize("mode", ["ecb", "CTR", "cbc", "", "ctr "])
def test_register_rejects_invalid_aes_mode(make_store: MakeStore, owner: Owner, mode: str) -> None:
    store = make_store()
    with pytest.raises(InvalidAesModeError) as caught:
        store.register(owner.correlation_id, SECRET, owner.public_key, mode)  # type: ignore[arg-type]
    assert "ctr" in str(caught.value)
    assert "cfb" in str(caught.value)
    assert not store.contains(owner.correlation_id)


def test_options_reject_invalid_aes_mode(store_class: type[Store]) -> None:
    from interactsh.store.base import StoreOptions

    with pytest.raises(InvalidAesModeError):
        store_class(StoreOptions(aes_mode="ofb"))  # type: ignore[arg-type]


# Registration and refresh


def test_register_new_returns_true(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    assert owner.register(store) is True
    assert store.contains(owner.correlation_id)
    assert len(store) == 1


def test_register_refresh_keeps_queue_and_key(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    first_key = owner.poll(store)[1].document["aes_key"]
    store.append(owner.correlation_id, b'{"n":1}')
    assert owner.register(store) is False
    opened = owner.take(store)
    assert opened.document["aes_key"] == first_key
    assert opened.data == [b'{"n":1}']
    assert len(store) == 1


def test_register_refresh_keeps_aes_mode(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store, "cfb")
    assert store.register(owner.correlation_id, SECRET, owner.public_key) is False
    store.append(owner.correlation_id, b'{"mode":"cfb"}')
    assert owner.take(store).data == [b'{"mode":"cfb"}']


def test_register_different_secret_rejected(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    store.append(owner.correlation_id, b'{"n":1}')
    key_before = owner.poll(store)[1].document["aes_key"]
    for secret in (OTHER_SECRET, SECRET.upper(), SECRET + " ", SECRET[:-1], ""):
        with pytest.raises(AlreadyRegisteredError) as caught:
            store.register(owner.correlation_id, secret, owner.public_key)
        assert "already exists" in str(caught.value)
    opened = owner.take(store)
    assert opened.document["aes_key"] == key_before
    assert opened.data == [b'{"n":1}']


def test_register_different_secret_is_value_error(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    with pytest.raises(ValueError):
        store.register(owner.correlation_id, OTHER_SECRET, owner.public_key)


def test_sessions_are_independent(make_store: MakeStore, owner: Owner, other_owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    other_owner.register(store)
    assert len(store) == 2
    store.append(owner.correlation_id, b'{"to":"first"}')
    store.append(other_owner.correlation_id, b'{"to":"second"}')
    assert owner.take(store).data == [b'{"to":"first"}']
    assert other_owner.take(store).data == [b'{"to":"second"}']
    assert owner.poll(store)[1].document["aes_key"] != other_owner.poll(store)[1].document["aes_key"]


# Secrets


def test_poll_wrong_secret_same_error_as_unknown(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    with pytest.raises(SessionNotFoundError) as wrong_secret:
        store.poll(owner.correlation_id, OTHER_SECRET)
    with pytest.raises(SessionNotFoundError) as unknown_id:
        store.poll(session_id(99), SECRET)
    assert str(wrong_secret.value) == str(unknown_id.value)
    assert "could not get correlation-id from cache" in str(unknown_id.value)
    assert isinstance(unknown_id.value, LookupError)


@pytest.mark.parametrize("secret", [SECRET.upper(), SECRET + "\n", " " + SECRET, SECRET[:-1], "", SECRET + "\x00"])
def test_secret_compared_exactly(make_store: MakeStore, owner: Owner, secret: str) -> None:
    store = make_store()
    owner.register(store)
    store.append(owner.correlation_id, b'{"n":1}')
    with pytest.raises(SessionNotFoundError):
        store.poll(owner.correlation_id, secret)
    with pytest.raises(SessionNotFoundError):
        store.deregister(owner.correlation_id, secret)
    assert owner.take(store).data == [b'{"n":1}']


def test_unusual_secrets_round_trip(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    for number, secret in enumerate(["é-secret", "\ud800 lone surrogate", "x" * 4096, "\x00"]):
        client = Owner(session_id(100 + number), owner.private_key, secret=secret)
        assert client.register(store)
        assert client.register(store) is False
        store.append(client.correlation_id, b'{"n":1}')
        assert client.take(store).data == [b'{"n":1}']
        with pytest.raises(SessionNotFoundError):
            store.poll(client.correlation_id, secret + "x")
    with pytest.raises(SessionNotFoundError):
        store.poll(session_id(101), "\udc00 lone surrogate")


# Deregistration


def test_deregister_removes_session(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    key_before = owner.poll(store)[1].document["aes_key"]
    store.append(owner.correlation_id, b'{"n":1}')
    store.deregister(owner.correlation_id, SECRET)
    assert not store.contains(owner.correlation_id)
    assert len(store) == 0
    assert store.append(owner.correlation_id, b'{"n":2}') is False
    with pytest.raises(SessionNotFoundError):
        store.poll(owner.correlation_id, SECRET)
    with pytest.raises(SessionNotFoundError):
        store.deregister(owner.correlation_id, SECRET)
    assert owner.register(store) is True
    opened = owner.take(store)
    assert opened.data == []
    assert opened.document["aes_key"] != key_before


def test_deregister_wrong_secret_changes_nothing(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    for record in records(3):
        store.append(owner.correlation_id, record)
    stats_before = store.stats()
    with pytest.raises(SessionNotFoundError) as caught:
        store.deregister(owner.correlation_id, OTHER_SECRET)
    assert "could not get correlation-id from cache" in str(caught.value)
    assert store.contains(owner.correlation_id)
    assert store.stats() == stats_before
    assert owner.drain(store) == records(3)


def test_deregister_uppercase_id(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    store.deregister(owner.correlation_id.upper(), SECRET)
    assert not store.contains(owner.correlation_id)


def test_deregister_releases_queue_bytes(make_store: MakeStore, owner: Owner, other_owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    other_owner.register(store)
    for record in records(4, 100):
        store.append(owner.correlation_id, record)
    store.append(other_owner.correlation_id, b'{"n":1}')
    store.deregister(owner.correlation_id, SECRET)
    stats = store.stats()
    assert stats.sessions == 1
    assert stats.queued_items == 1
    assert stats.queued_bytes == len(b'{"n":1}')
    assert stats.dropped_items == 0
