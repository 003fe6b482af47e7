"""Store contract: poll bodies, encryption, commit and page limits."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from contract_helpers import SECRET, Owner, compact_json, decrypt_item, records, split_item
from interactsh.store.base import Store

MakeStore = Callable[..., Store]

RECORD_SIZES = [1, 15, 16, 17, 31, 32, 33, 1000, 70_000]


# Body framing


def test_empty_poll_body_exact(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    reply, opened = owner.poll(store)
    aes_key = opened.document["aes_key"]
    assert reply.body == b'{"data":null,"extra":null,"aes_key":"' + aes_key.encode() + b'"}\n'
    assert reply.data_count == 0
    assert reply.correlation_id == owner.correlation_id


def test_empty_poll_with_shared_flags(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    reply, opened = owner.poll(store, extra=True, tlddata=True)
    aes_key = opened.document["aes_key"]
    assert reply.body == b'{"data":null,"extra":null,"aes_key":"' + aes_key.encode() + b'"}\n'


def test_full_poll_body_layout(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    store.append(owner.correlation_id, b'{"n":1}')
    store.append_shared("extra", b'{"e":1}')
    store.append_shared("tlddata", b'{"t":1}')
    reply, opened = owner.poll(store, extra=True, tlddata=True)
    assert list(opened.document) == ["data", "extra", "aes_key", "tlddata"]
    assert reply.body.startswith(b'{"data":["')
    assert b'"extra":["{\\"e\\":1}"]' in reply.body
    assert reply.body.endswith(b'"tlddata":["{\\"t\\":1}"]}\n')
    assert opened.data == [b'{"n":1}']
    assert opened.extra == [b'{"e":1}']
    assert opened.tlddata == [b'{"t":1}']


def test_shared_items_escaped_exactly(make_store: MakeStore, owner: Owner) -> None:
    text = '{"raw-request":"GET / HTTP/1.1\\r\\n","q":"\\"quoted\\" \\\\ back","u":"é ✓ 🙂 <&>"}'
    control = 'tab\t newline\n cr\r nul\x00 bell\x07 del\x7f quote" backslash\\ line\u2028sep'
    store = make_store()
    owner.register(store)
    for item in (text, control):
        store.append_shared("extra", item.encode("utf-8"))
    reply, opened = owner.poll(store, extra=True)
    assert opened.document["extra"] == [text, control]
    expected = compact_json([text, control])
    assert b'"extra":' + expected + b',"aes_key"' in reply.body


def test_shared_invalid_utf8_never_breaks_body(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    store.append_shared("extra", b'{"bad":"\xff\xfe\xc3"}')
    store.append_shared("tlddata", b"\xed\xa0\x80")
    reply, opened = owner.poll(store, extra=True, tlddata=True)
    assert reply.body.decode("utf-8").endswith("}\n")
    assert opened.document["extra"][0].startswith('{"bad":"')
    assert "\ufffd" in opened.document["extra"][0]
    assert "\ufffd" in opened.document["tlddata"][0]


def test_extra_null_when_disabled(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    store.append_shared("extra", b'{"e":1}')
    store.append_shared("tlddata", b'{"t":1}')
    reply, opened = owner.poll(store)
    assert opened.document["extra"] is None
    assert "tlddata" not in opened.document
    assert reply.shared_offsets == {}
    store.commit(reply)
    opened = owner.take(store, extra=True, tlddata=True)
    assert opened.extra == [b'{"e":1}']
    assert opened.tlddata == [b'{"t":1}']


def test_tlddata_omitted_when_read_nothing(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    store.append_shared("tlddata", b'{"t":1}')
    assert owner.take(store, tlddata=True).tlddata == [b'{"t":1}']
    opened = owner.take(store, tlddata=True)
    assert "tlddata" not in opened.document
    assert opened.document["extra"] is None


# Encryption


@pytest.mark.parametrize("mode", ["ctr", "cfb"])
def test_decrypt_round_trip(make_store: MakeStore, owner: Owner, mode: str) -> None:
    store = make_store()
    owner.register(store, mode)
    sent = [bytes([0x41 + size % 26]) * size for size in RECORD_SIZES]
    sent.append('{"u":"é ✓ 🙂"}'.encode())
    sent.append(bytes(range(256)))
    for record in sent:
        assert store.append(owner.correlation_id, record)
    reply, opened = owner.poll(store)
    assert reply.data_count == len(sent)
    assert opened.data == sent
    for item, record in zip(opened.document["data"], sent, strict=True):
        _, ciphertext = split_item(item)
        assert len(ciphertext) == len(record), "stream modes keep the plaintext length"


@pytest.mark.parametrize("mode", ["ctr", "cfb"])
def test_default_mode_from_options(make_store: MakeStore, owner: Owner, mode: str) -> None:
    store = make_store(aes_mode=mode)
    owner.register(store)
    owner.aes_mode = mode
    record = b'{"protocol":"http","unique-id":"x","pad":"' + b"y" * 100 + b'"}'
    store.append(owner.correlation_id, record)
    assert owner.take(store).data == [record]


@pytest.mark.parametrize("mode", ["ctr", "cfb"])
def test_wrong_mode_does_not_decrypt(make_store: MakeStore, owner: Owner, mode: str) -> None:
    store = make_store()
    owner.register(store, mode)
    record = b'{"n":"' + b"z" * 64 + b'"}'
    store.append(owner.correlation_id, record)
    _, opened = owner.poll(store)
    other = "cfb" if mode == "ctr" else "ctr"
    garbled = decrypt_item(opened.aes_key, opened.document["data"][0], other)
    assert garbled[:16] == record[:16], "CTR and CFB share the first keystream block"
    assert garbled[16:] != record[16:], f"the item was not encrypted with {mode}"


def test_per_session_mode_overrides_default(make_store: MakeStore, owner: Owner, other_owner: Owner) -> None:
    store = make_store(aes_mode="cfb")
    owner.register(store, "ctr")
    other_owner.register(store)
    other_owner.aes_mode = "cfb"
    record = b'{"n":"' + b"q" * 40 + b'"}'
    store.append(owner.correlation_id, record)
    store.append(other_owner.correlation_id, record)
    assert owner.take(store).data == [record]
    assert other_owner.take(store).data == [record]


def test_aes_key_identical_across_polls(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    keys = set()
    for number in range(4):
        store.append(owner.correlation_id, b'{"n":%d}' % number)
        opened = owner.take(store)
        keys.add(opened.document["aes_key"])
        assert opened.data == [b'{"n":%d}' % number]
    owner.register(store)
    keys.add(owner.take(store).document["aes_key"])
    assert len(keys) == 1


def test_fresh_iv_per_item_and_poll(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    for _ in range(8):
        store.append(owner.correlation_id, b'{"same":"record"}')
    first = owner.poll(store)[1].document["data"]
    second = owner.poll(store)[1].document["data"]
    ivs = [split_item(item)[0] for item in first + second]
    assert len(set(ivs)) == 16, "every item of every poll needs its own IV"
    assert len(set(first + second)) == 16, "equal records must not encrypt to equal items"


# Commit


def test_poll_without_commit_keeps_items(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    sent = records(3)
    for record in sent:
        store.append(owner.correlation_id, record)
    for _ in range(3):
        reply, opened = owner.poll(store)
        assert opened.data == sent
        assert reply.data_count == 3
    assert store.stats().queued_items == 3


def test_commit_removes_delivered(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    for record in records(3):
        store.append(owner.correlation_id, record)
    reply, _ = owner.poll(store)
    store.commit(reply)
    assert owner.poll(store)[1].data == []
    assert store.stats().queued_items == 0
    assert store.stats().queued_bytes == 0


def test_double_commit_harmless(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    sent = records(4)
    store.append(owner.correlation_id, sent[0])
    reply, _ = owner.poll(store)
    for record in sent[1:]:
        store.append(owner.correlation_id, record)
    store.commit(reply)
    store.commit(reply)
    assert owner.drain(store) == sent[1:]


def test_appends_between_poll_and_commit_survive(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    sent = records(6)
    for record in sent[:3]:
        store.append(owner.correlation_id, record)
    reply, opened = owner.poll(store)
    assert opened.data == sent[:3]
    for record in sent[3:]:
        store.append(owner.correlation_id, record)
    store.commit(reply)
    assert owner.drain(store) == sent[3:]


def test_stale_reply_commit_after_newer(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    sent = records(4)
    store.append(owner.correlation_id, sent[0])
    old_reply, _ = owner.poll(store)
    store.append(owner.correlation_id, sent[1])
    new_reply, _ = owner.poll(store)
    store.append(owner.correlation_id, sent[2])
    store.commit(new_reply)
    store.commit(old_reply)
    store.append(owner.correlation_id, sent[3])
    assert owner.drain(store) == sent[2:]


def test_commit_after_deregister_harmless(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    store.append(owner.correlation_id, b'{"old":1}')
    store.append_shared("extra", b'{"e":1}')
    reply, _ = owner.poll(store, extra=True)
    store.deregister(owner.correlation_id, SECRET)
    store.commit(reply)
    assert len(store) == 0
    assert owner.register(store)
    store.append(owner.correlation_id, b'{"new":1}')
    store.commit(reply)
    opened = owner.take(store, extra=True)
    assert opened.data == [b'{"new":1}'], "an old reply must not remove a new registration's records"
    assert opened.extra == [b'{"e":1}'], "a new registration is a new consumer of the shared backlog"


def test_poll_refused_after_deregister(make_store: MakeStore, owner: Owner) -> None:
    from interactsh.errors import SessionNotFoundError

    store = make_store()
    owner.register(store)
    store.deregister(owner.correlation_id, SECRET)
    with pytest.raises(SessionNotFoundError):
        store.poll(owner.correlation_id, SECRET)


# Page limits


def test_page_limited_by_items(make_store: MakeStore, owner: Owner) -> None:
    store = make_store(max_page_items=3)
    owner.register(store)
    sent = records(7)
    for record in sent:
        store.append(owner.correlation_id, record)
    pages = []
    while batch := owner.take(store).data:
        pages.append(batch)
    assert pages == [sent[0:3], sent[3:6], sent[6:7]]


def test_page_limited_by_bytes(make_store: MakeStore, owner: Owner) -> None:
    sent = records(5, 100)
    store = make_store(max_page_bytes=len(sent[0]) * 2 + len(sent[0]) // 2)
    owner.register(store)
    for record in sent:
        store.append(owner.correlation_id, record)
    pages = []
    while batch := owner.take(store).data:
        pages.append(batch)
    assert pages == [sent[0:2], sent[2:4], sent[4:5]]


def test_page_bytes_limit_inclusive(make_store: MakeStore, owner: Owner) -> None:
    sent = records(4, 100)
    store = make_store(max_page_bytes=sum(len(record) for record in sent[:3]))
    owner.register(store)
    for record in sent:
        store.append(owner.correlation_id, record)
    assert owner.take(store).data == sent[:3]
    assert owner.take(store).data == sent[3:]


def test_oversized_item_delivered_alone(make_store: MakeStore, owner: Owner) -> None:
    store = make_store(max_page_bytes=200)
    owner.register(store)
    small = records(2, 50, prefix="small")
    large = records(1, 1000, prefix="large")[0]
    for record in (large, *small, large):
        store.append(owner.correlation_id, record)
    assert owner.take(store).data == [large]
    assert owner.take(store).data == small
    assert owner.take(store).data == [large]
    assert owner.take(store).data == []


def test_page_item_limit_per_list(make_store: MakeStore, owner: Owner) -> None:
    store = make_store(max_page_items=2)
    owner.register(store)
    for record in records(3, prefix="d"):
        store.append(owner.correlation_id, record)
    for record in records(3, prefix="e"):
        store.append_shared("extra", record)
    for record in records(3, prefix="t"):
        store.append_shared("tlddata", record)
    opened = owner.take(store, extra=True, tlddata=True)
    assert opened.data == records(2, prefix="d")
    assert opened.extra == records(2, prefix="e")
    assert opened.tlddata == records(2, prefix="t")
    opened = owner.take(store, extra=True, tlddata=True)
    assert opened.data == records(3, prefix="d")[2:]
    assert opened.extra == records(3, prefix="e")[2:]
    assert opened.tlddata == records(3, prefix="t")[2:]


def test_page_bytes_shared_by_lists(make_store: MakeStore, owner: Owner) -> None:
    data = records(2, 100, prefix="d")
    extra = records(3, 100, prefix="e")
    store = make_store(max_page_bytes=len(data[0]) * 3 + 10)
    owner.register(store)
    for record in data:
        store.append(owner.correlation_id, record)
    for record in extra:
        store.append_shared("extra", record)
    opened = owner.take(store, extra=True)
    assert opened.data == data
    assert opened.extra == extra[:1], "the byte budget spans the data and extra lists"
    assert owner.take(store, extra=True).extra == extra[1:]


def test_every_list_gets_one_item(make_store: MakeStore, owner: Owner) -> None:
    store = make_store(max_page_bytes=100)
    owner.register(store)
    large = records(2, 500)
    for record in large:
        store.append(owner.correlation_id, record)
        store.append_shared("extra", record)
        store.append_shared("tlddata", record)
    opened = owner.take(store, extra=True, tlddata=True)
    assert opened.data == large[:1]
    assert opened.extra == large[:1]
    assert opened.tlddata == large[:1]
    opened = owner.take(store, extra=True, tlddata=True)
    assert opened.data == large[1:]
    assert opened.extra == large[1:]
    assert opened.tlddata == large[1:]


def test_body_size_bounded_by_page(make_store: MakeStore, owner: Owner) -> None:
    store = make_store(max_page_bytes=4096, max_page_items=1000)
    owner.register(store)
    for record in records(500, 200):
        store.append(owner.correlation_id, record)
    reply, opened = owner.poll(store)
    plaintext = sum(len(record) for record in opened.data)
    assert plaintext <= 4096
    assert len(json.loads(reply.body)["data"]) == len(opened.data) == reply.data_count
