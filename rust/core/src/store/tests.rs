//! Rules of the store, checked through its public API.

use std::sync::OnceLock;

use aes::cipher::{KeyIvInit, StreamCipher};
use aes::Aes256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rsa::sha2::Sha256;
use rsa::PrivateKey;
use serde_json::Value;

use super::*;
use crate::crypto::test_keys;
use crate::error::{IdError, KeyError};

pub(super) const ID: &str = "aaaaaaaaaaaaaaaaaaaa";
pub(super) const OTHER_ID: &str = "bbbbbbbbbbbbbbbbbbbb";
pub(super) const SECRET: &[u8] = b"5a3c9f1e-0000-4000-8000-000000000001";
const TTL: f64 = 100.0;
const EXTRA_ONLY: SharedRequest = SharedRequest {
    extra: true,
    tlddata: false,
};
const BOTH_BUCKETS: SharedRequest = SharedRequest {
    extra: true,
    tlddata: true,
};

fn private_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| test_keys::private_key(1024))
}

pub(super) fn public_key_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| STANDARD.encode(test_keys::public_pem(1024)))
}

pub(super) fn store_with(change: impl FnOnce(&mut StoreOptions)) -> Store {
    let mut options = StoreOptions {
        ttl_seconds: Some(TTL),
        ..StoreOptions::default()
    };
    change(&mut options);
    Store::new(options).unwrap()
}

fn registered(change: impl FnOnce(&mut StoreOptions)) -> Store {
    let mut store = store_with(change);
    assert!(store.register(ID, SECRET, public_key_text(), None, 0.0).unwrap());
    store
}

pub(super) fn poll(store: &mut Store, now: f64) -> (Value, PollPage) {
    poll_shared(store, ID, SharedRequest::default(), now)
}

pub(super) fn poll_shared(store: &mut Store, id: &str, shared: SharedRequest, now: f64) -> (Value, PollPage) {
    let page = store.poll(id, SECRET, shared, now).unwrap();
    assert_eq!(page.body.last(), Some(&b'\n'));
    (serde_json::from_slice(&page.body).unwrap(), page)
}

/// Unwraps the AES key and decrypts every `data` item, as a client does.
pub(super) fn decrypt_data(body: &Value, mode: AesMode) -> Vec<Vec<u8>> {
    let wrapped = STANDARD.decode(body["aes_key"].as_str().unwrap()).unwrap();
    let key = private_key().oaep_decrypt::<Sha256>(&wrapped).unwrap();
    let Some(items) = body["data"].as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| {
            let bytes = STANDARD.decode(item.as_str().unwrap()).unwrap();
            let (iv, ciphertext) = bytes.split_at(16);
            let mut plaintext = ciphertext.to_vec();
            match mode {
                AesMode::Ctr => ctr::Ctr128BE::<Aes256>::new_from_slices(&key, iv)
                    .unwrap()
                    .apply_keystream(&mut plaintext),
                AesMode::Cfb => cfb_mode::Decryptor::<Aes256>::new_from_slices(&key, iv)
                    .unwrap()
                    .decrypt(&mut plaintext),
            }
            plaintext
        })
        .collect()
}

fn records(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|index| format!("{{\"n\":{index}}}").into_bytes())
        .collect()
}

fn texts(value: &Value) -> Vec<String> {
    value.as_array().map_or_else(Vec::new, |items| {
        items.iter().map(|item| item.as_str().unwrap().to_owned()).collect()
    })
}

#[test]
fn register_refresh_and_conflict() {
    let mut store = registered(|_| {});
    assert!(store.push(ID, b"{}", 1.0).unwrap());
    let (first, _) = poll(&mut store, 1.0);
    assert!(!store
        .register(&ID.to_uppercase(), SECRET, public_key_text(), None, 2.0)
        .unwrap());
    let (second, _) = poll(&mut store, 2.0);
    assert_eq!(first["aes_key"], second["aes_key"]);
    assert_eq!(decrypt_data(&second, AesMode::Ctr), vec![b"{}".to_vec()]);
    let conflict = store.register(ID, b"other secret", public_key_text(), None, 3.0);
    assert_eq!(conflict, Err(Error::AlreadyRegistered));
    assert_eq!(store.len(), 1);
}

#[test]
fn register_rejects_bad_ids_and_keys() {
    let mut store = store_with(|_| {});
    let error = store
        .register("aaaa", SECRET, public_key_text(), None, 0.0)
        .unwrap_err();
    assert!(matches!(
        error,
        Error::InvalidCorrelationId(IdError::Length {
            found: 4,
            expected: 20,
            ..
        })
    ));
    let error = store.register(ID, SECRET, "@@@", None, 0.0).unwrap_err();
    assert!(matches!(error, Error::InvalidPublicKey(KeyError::Base64 { .. })));
    assert!(store.is_empty());
}

#[test]
fn uppercase_id_is_stored_lowercase() {
    let mut store = store_with(|_| {});
    assert!(store
        .register(&ID.to_uppercase(), SECRET, public_key_text(), None, 0.0)
        .unwrap());
    assert!(store.contains(ID, 0.0));
    assert!(store.push(&ID.to_uppercase(), b"{}", 0.0).unwrap());
    assert_eq!(poll(&mut store, 0.0).1.correlation_id, ID);
}

#[test]
fn unknown_id_and_wrong_secret_look_the_same() {
    let mut store = registered(|_| {});
    let shared = SharedRequest::default();
    assert_eq!(store.poll(OTHER_ID, SECRET, shared, 1.0), Err(Error::SessionNotFound));
    assert_eq!(store.poll(ID, b"wrong", shared, 1.0), Err(Error::SessionNotFound));
    assert_eq!(store.poll("short", SECRET, shared, 1.0), Err(Error::SessionNotFound));
    assert_eq!(store.deregister(ID, b"wrong", 1.0), Err(Error::SessionNotFound));
    assert!(!store.push("short", b"{}", 1.0).unwrap());
    assert!(!store.contains("short", 1.0));
}

#[test]
fn empty_poll_body_is_exact() {
    let mut store = registered(|_| {});
    let page = store.poll(ID, SECRET, BOTH_BUCKETS, 1.0).unwrap();
    let wrapped = poll(&mut store, 1.0).0["aes_key"].as_str().unwrap().to_owned();
    let expected = format!("{{\"data\":null,\"extra\":null,\"aes_key\":\"{wrapped}\"}}\n");
    assert_eq!(String::from_utf8(page.body).unwrap(), expected);
    assert_eq!(page.data_count, 0);
}

#[test]
fn data_round_trips_in_both_modes() {
    for (mode, option) in [(AesMode::Ctr, None), (AesMode::Cfb, Some(AesMode::Cfb))] {
        let mut store = store_with(|_| {});
        store.register(ID, SECRET, public_key_text(), option, 0.0).unwrap();
        let sent = vec![
            b"{\"protocol\":\"dns\"}".to_vec(),
            "{\"raw\":\"\u{e9}\\n\"}".as_bytes().to_vec(),
            vec![b'x'; 40],
        ];
        for record in &sent {
            assert!(store.push(ID, record, 0.0).unwrap());
        }
        let (body, page) = poll(&mut store, 0.0);
        assert_eq!(decrypt_data(&body, mode), sent, "{mode}");
        assert_eq!(page.data_count, 3);
    }
}

#[test]
fn store_default_mode_applies() {
    let mut store = store_with(|options| options.aes_mode = AesMode::Cfb);
    store.register(ID, SECRET, public_key_text(), None, 0.0).unwrap();
    store.push(ID, b"{\"a\":\"0123456789abcdef0123456789\"}", 0.0).unwrap();
    let (body, _) = poll(&mut store, 0.0);
    assert_eq!(
        decrypt_data(&body, AesMode::Cfb),
        vec![b"{\"a\":\"0123456789abcdef0123456789\"}".to_vec()]
    );
}

#[test]
fn ivs_are_fresh_per_poll() {
    let mut store = registered(|_| {});
    store.push(ID, b"{}", 0.0).unwrap();
    let (first, _) = poll(&mut store, 0.0);
    let (second, _) = poll(&mut store, 0.0);
    assert_ne!(first["data"][0], second["data"][0]);
}

#[test]
fn commit_releases_only_what_was_sent() {
    let mut store = registered(|_| {});
    store.push(ID, b"1", 0.0).unwrap();
    let (_, page) = poll(&mut store, 0.0);
    let (again, _) = poll(&mut store, 0.0);
    assert_eq!(
        decrypt_data(&again, AesMode::Ctr).len(),
        1,
        "an uncommitted poll keeps its items"
    );
    store.push(ID, b"2", 0.0).unwrap();
    store.commit(&page.correlation_id, &page.receipt);
    store.commit(&page.correlation_id, &page.receipt);
    let (body, _) = poll(&mut store, 0.0);
    assert_eq!(decrypt_data(&body, AesMode::Ctr), vec![b"2".to_vec()]);
    assert_eq!(store.stats(0.0).queued_items, 1);
    assert_eq!(store.stats(0.0).queued_bytes, 1);
}

#[test]
fn pages_are_bounded_by_items_and_bytes() {
    let mut store = registered(|options| {
        options.max_page_items = 3;
        options.max_page_bytes = 21;
    });
    for record in records(5) {
        store.push(ID, &record, 0.0).unwrap();
    }
    let (body, page) = poll(&mut store, 0.0);
    assert_eq!(decrypt_data(&body, AesMode::Ctr), records(3));
    store.commit(&page.correlation_id, &page.receipt);

    store.push(ID, &[b'x'; 50], 0.0).unwrap();
    let (body, page) = poll(&mut store, 0.0);
    assert_eq!(
        decrypt_data(&body, AesMode::Ctr),
        records(5)[3..].to_vec(),
        "7+7 bytes fit, 50 more do not"
    );
    store.commit(&page.correlation_id, &page.receipt);
    let (body, page) = poll(&mut store, 0.0);
    assert_eq!(
        decrypt_data(&body, AesMode::Ctr),
        vec![vec![b'x'; 50]],
        "an oversized record goes alone"
    );
    store.commit(&page.correlation_id, &page.receipt);
    assert_eq!(store.stats(0.0).queued_items, 0);
}

#[test]
fn session_caps_drop_oldest() {
    let mut store = registered(|options| {
        options.max_session_items = 3;
        options.max_session_bytes = 30;
    });
    for record in records(5) {
        assert!(store.push(ID, &record, 0.0).unwrap());
    }
    assert_eq!(store.stats(0.0).dropped_items, 2);
    assert!(store.push(ID, &[b'y'; 16], 0.0).unwrap());
    assert_eq!(
        store.stats(0.0).dropped_items,
        3,
        "21 + 16 bytes exceed 30 until one 7-byte record goes"
    );
    assert!(store.push(ID, &[b'z'; 31], 0.0).unwrap());
    assert_eq!(
        store.stats(0.0).dropped_items,
        4,
        "a record over the byte cap is dropped itself"
    );
    let (body, _) = poll(&mut store, 0.0);
    let expected = vec![records(5)[3].clone(), records(5)[4].clone(), vec![b'y'; 16]];
    assert_eq!(decrypt_data(&body, AesMode::Ctr), expected);
    assert_eq!(store.stats(0.0).queued_bytes, 30);
}

#[test]
fn sliding_ttl_refreshes_on_owner_actions_only() {
    let mut store = registered(|_| {});
    store.push(ID, b"{}", 90.0).unwrap();
    assert!(store.contains(ID, 99.0));
    assert!(!store.contains(ID, 100.0), "inbound records do not refresh");

    let mut store = registered(|_| {});
    assert!(store.poll(ID, b"wrong", SharedRequest::default(), 90.0).is_err());
    assert!(!store.contains(ID, 100.0), "a wrong secret does not refresh");

    let mut store = registered(|_| {});
    poll(&mut store, 90.0);
    assert!(store.contains(ID, 189.0));
    store.register(ID, SECRET, public_key_text(), None, 180.0).unwrap();
    assert!(store.contains(ID, 279.0));
    assert!(!store.contains(ID, 280.0));
}

#[test]
fn fixed_ttl_counts_from_registration() {
    let mut store = registered(|options| options.eviction = Eviction::Fixed);
    poll(&mut store, 90.0);
    store.register(ID, SECRET, public_key_text(), None, 95.0).unwrap();
    assert!(store.contains(ID, 99.0));
    assert!(!store.contains(ID, 100.0));
}

#[test]
fn no_ttl_never_expires() {
    let mut store = registered(|options| options.ttl_seconds = None);
    assert!(store.contains(ID, 1e12));
    assert_eq!(store.expire(1e12), 0);
}

#[test]
fn expired_session_reads_absent_before_expire() {
    let mut store = registered(|_| {});
    store.push(ID, b"{}", 1.0).unwrap();
    assert!(!store.contains(ID, 100.0));
    assert!(!store.push(ID, b"{}", 100.0).unwrap());
    assert_eq!(
        store.poll(ID, SECRET, SharedRequest::default(), 100.0),
        Err(Error::SessionNotFound)
    );
    assert_eq!(store.deregister(ID, SECRET, 100.0), Err(Error::SessionNotFound));
    assert_eq!(store.len(), 1);
    assert_eq!(store.live_len(100.0), 0);
    assert_eq!(store.stats(100.0).sessions, 0);
    assert_eq!(store.expire(100.0), 1);
    assert!(store.is_empty());
    let stats = store.stats(100.0);
    assert_eq!(stats.expired_sessions, 1);
    assert_eq!(stats.queued_items, 0);
    assert_eq!(stats.queued_bytes, 0);
}

#[test]
fn reregistration_after_expiry_starts_over() {
    let mut store = registered(|_| {});
    store.push(ID, b"old", 1.0).unwrap();
    let (old, stale_page) = poll(&mut store, 1.0);
    assert!(store
        .register(ID, b"new secret", public_key_text(), None, 200.0)
        .unwrap());
    assert_eq!(store.stats(0.0).expired_sessions, 1);
    assert_eq!(store.stats(0.0).queued_items, 0);
    store.push(ID, b"new", 200.0).unwrap();
    store.commit(&stale_page.correlation_id, &stale_page.receipt);
    let page = store.poll(ID, b"new secret", SharedRequest::default(), 200.0).unwrap();
    let body: Value = serde_json::from_slice(&page.body).unwrap();
    assert_ne!(body["aes_key"], old["aes_key"]);
    assert_eq!(
        decrypt_data(&body, AesMode::Ctr),
        vec![b"new".to_vec()],
        "a stale receipt released nothing"
    );
}

#[test]
fn deregister_removes_session_and_consumer() {
    let mut store = registered(|_| {});
    store.push(ID, b"{}", 0.0).unwrap();
    store.push_shared(SharedBucket::Extra, b"e1", 0.0).unwrap();
    let (_, page) = poll_shared(&mut store, ID, EXTRA_ONLY, 0.0);
    store.commit(&page.correlation_id, &page.receipt);
    store.deregister(&ID.to_uppercase(), SECRET, 0.0).unwrap();
    assert!(!store.contains(ID, 0.0));
    assert_eq!(store.stats(0.0).queued_items, 0);
    assert_eq!(store.extra.consumer_count(), 0);

    store.register(ID, SECRET, public_key_text(), None, 0.0).unwrap();
    let (body, _) = poll_shared(&mut store, ID, EXTRA_ONLY, 0.0);
    assert_eq!(
        texts(&body["extra"]),
        vec!["e1"],
        "a new consumer reads the backlog again"
    );
}

#[test]
fn shared_buckets_serve_each_consumer() {
    let mut store = registered(|options| options.max_shared_items = 3);
    store.register(OTHER_ID, SECRET, public_key_text(), None, 0.0).unwrap();
    store.push_shared(SharedBucket::Extra, b"e1", 0.0).unwrap();
    store.push_shared(SharedBucket::TldData, b"t1", 0.0).unwrap();
    let (body, page) = poll_shared(&mut store, ID, BOTH_BUCKETS, 0.0);
    assert_eq!(texts(&body["extra"]), vec!["e1"]);
    assert_eq!(texts(&body["tlddata"]), vec!["t1"]);
    store.commit(&page.correlation_id, &page.receipt);

    for record in [b"e2", b"e3", b"e4"] {
        store.push_shared(SharedBucket::Extra, record, 0.0).unwrap();
    }
    assert_eq!(store.stats(0.0).dropped_shared_items, 1);
    let (body, page) = poll_shared(&mut store, ID, BOTH_BUCKETS, 0.0);
    assert_eq!(texts(&body["extra"]), vec!["e2", "e3", "e4"]);
    assert!(body.get("tlddata").is_none(), "tlddata is omitted when empty");
    store.commit(&page.correlation_id, &page.receipt);

    let (body, _) = poll_shared(&mut store, OTHER_ID, BOTH_BUCKETS, 0.0);
    assert_eq!(
        texts(&body["extra"]),
        vec!["e2", "e3", "e4"],
        "the first poll reads the retained backlog"
    );
    assert_eq!(texts(&body["tlddata"]), vec!["t1"]);
    let stats = store.stats(0.0);
    assert_eq!(stats.shared_items, 4);
    assert_eq!(stats.shared_bytes, 8);
}

#[test]
fn shared_buckets_stay_unread_when_not_requested() {
    let mut store = registered(|_| {});
    store.push_shared(SharedBucket::Extra, b"e1", 0.0).unwrap();
    store.push_shared(SharedBucket::TldData, b"t1", 0.0).unwrap();
    let (body, page) = poll(&mut store, 0.0);
    assert!(body["extra"].is_null());
    assert!(body.get("tlddata").is_none());
    store.commit(&page.correlation_id, &page.receipt);
    let (body, _) = poll_shared(&mut store, ID, BOTH_BUCKETS, 0.0);
    assert_eq!(texts(&body["extra"]), vec!["e1"]);
}

#[test]
fn shared_pages_are_bounded() {
    let mut store = registered(|options| options.max_page_items = 2);
    for record in records(3) {
        store.push_shared(SharedBucket::Extra, &record, 0.0).unwrap();
    }
    let (body, page) = poll_shared(&mut store, ID, EXTRA_ONLY, 0.0);
    assert_eq!(texts(&body["extra"]).len(), 2);
    store.commit(&page.correlation_id, &page.receipt);
    let (body, _) = poll_shared(&mut store, ID, EXTRA_ONLY, 0.0);
    assert_eq!(texts(&body["extra"]), vec!["{\"n\":2}"]);
}

#[test]
fn page_bytes_are_shared_by_lists() {
    let mut store = registered(|options| options.max_page_bytes = 15);
    for record in records(2) {
        store.push(ID, &record, 0.0).unwrap();
        store.push_shared(SharedBucket::Extra, &record, 0.0).unwrap();
        store.push_shared(SharedBucket::TldData, &record, 0.0).unwrap();
    }
    let (body, page) = poll_shared(&mut store, ID, BOTH_BUCKETS, 0.0);
    assert_eq!(decrypt_data(&body, AesMode::Ctr), records(2), "14 of 15 bytes");
    assert_eq!(
        texts(&body["extra"]).len(),
        1,
        "past the budget, a list still takes one record"
    );
    assert_eq!(texts(&body["tlddata"]).len(), 1);
    store.commit(&page.correlation_id, &page.receipt);
    let (body, _) = poll_shared(&mut store, ID, BOTH_BUCKETS, 0.0);
    assert!(body["data"].is_null());
    assert_eq!(texts(&body["extra"]), vec!["{\"n\":1}"]);
    assert_eq!(texts(&body["tlddata"]), vec!["{\"n\":1}"]);
}

#[test]
fn shared_records_are_json_strings() {
    let mut store = registered(|_| {});
    let record = "{\"raw-request\":\"GET /a\\nb <x> \u{e9}\"}";
    store.push_shared(SharedBucket::Extra, record.as_bytes(), 0.0).unwrap();
    let (body, _) = poll_shared(&mut store, ID, EXTRA_ONLY, 0.0);
    assert_eq!(texts(&body["extra"]), vec![record.to_owned()]);
}

#[test]
fn invalid_options_are_rejected() {
    let options = StoreOptions {
        max_page_items: 0,
        ..StoreOptions::default()
    };
    assert!(matches!(
        Store::new(options),
        Err(Error::InvalidOption {
            name: "max_page_items",
            ..
        })
    ));
    let options = StoreOptions {
        ttl_seconds: Some(-1.0),
        ..StoreOptions::default()
    };
    assert!(matches!(
        Store::new(options),
        Err(Error::InvalidOption {
            name: "ttl_seconds",
            ..
        })
    ));
    assert!("lru".parse::<Eviction>().is_err());
    assert!("other".parse::<SharedBucket>().is_err());
}
