//! Counts heap allocations of the store's steady state with a counting global allocator.
//!
//! The tests start from a pooled store whose session, shared read offset,
//! queues, slab pages and buffers already exist from a warm-up. They prove
//! that the following make no heap allocation and free nothing: appending
//! records of typical DNS and HTTP sizes to a session, appending to a shared
//! bucket at its cap, building a poll page of both into a reused body buffer
//! (encryption and base64 included), and committing it. They do not cover
//! registration (RSA), `Store::poll` (which returns a new `Vec`), eviction
//! (which allocates its merge heap), `expire`, `stats`, or an id that needs
//! lowercasing.
//!
//! The counter is per thread, so tests running in parallel do not disturb
//! one another's counts.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use interactsh_core::{SharedBucket, SharedRequest, Store, StoreOptions};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};

mod common;

use common::count;

const ID: &str = "c59e3crp82ke7bcnedq0";
const SECRET: &[u8] = b"3f1a2b4c-5d6e-4f70-8192-a3b4c5d6e7f8";

/// Lengths of typical DNS and HTTP interaction records.
const SIZES: [usize; 6] = [200, 333, 512, 1024, 1500, 4096];

const ROUNDS: usize = 2_000;

fn public_key_text() -> String {
    let key = rsa::PrivateKey::from_pkcs8_pem(include_str!("data/rsa-1024-private.pem")).expect("the test key parses");
    let pem = key
        .to_public_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .expect("a public key encodes as PEM");
    STANDARD.encode(pem)
}

/// Records made before counting starts: JSON objects of each length in `SIZES`.
fn payloads() -> Vec<Vec<u8>> {
    SIZES
        .iter()
        .map(|&len| {
            let mut record = b"{\"protocol\":\"http\",\"raw-request\":\"".to_vec();
            record.resize(len - 2, b'x');
            record.extend_from_slice(b"\"}");
            record
        })
        .collect()
}

/// Appends one record of each size and one shared record, polls both lists into `body` and commits.
fn round(store: &mut Store, payloads: &[Vec<u8>], body: &mut String) -> usize {
    for payload in payloads {
        assert!(store.push(ID, payload, 1.0).expect("the store has no budget"));
    }
    store
        .push_shared(SharedBucket::Extra, &payloads[0], 1.0)
        .expect("the store has no budget");
    let shared = SharedRequest {
        extra: true,
        tlddata: false,
    };
    let summary = store
        .poll_into(ID, SECRET, shared, 1.0, body)
        .expect("the session is registered");
    store.commit(ID, &summary.receipt);
    summary.data_count
}

fn warmed_up(pooled: bool) -> (Store, Vec<Vec<u8>>, String) {
    let options = StoreOptions {
        ttl_seconds: None,
        max_shared_items: 64,
        pooled,
        ..StoreOptions::default()
    };
    let mut store = Store::new(options).expect("the options are valid");
    assert!(store
        .register(ID, SECRET, &public_key_text(), None, 0.0)
        .expect("the key is valid"));
    let payloads = payloads();
    let mut body = String::new();
    // Enough rounds to fill the shared bucket to its cap and reach every buffer's final size.
    for _ in 0..200 {
        round(&mut store, &payloads, &mut body);
    }
    (store, payloads, body)
}

#[test]
fn pooled_append_poll_commit_allocates_nothing() {
    let (mut store, payloads, mut body) = warmed_up(true);
    let (delivered, allocations, deallocations) = count(|| {
        (0..ROUNDS)
            .map(|_| round(&mut store, &payloads, &mut body))
            .sum::<usize>()
    });
    println!(
        "pooled store: {:.3} allocations per round of {} appends, a poll and a commit",
        allocations as f64 / ROUNDS as f64,
        payloads.len() + 1
    );
    assert_eq!(delivered, ROUNDS * payloads.len());
    assert_eq!(allocations, 0);
    assert_eq!(deallocations, 0);
    let stats = store.stats(1.0);
    assert_eq!(stats.queued_items, 0);
    assert_eq!(stats.shared_items, 64);
}

#[test]
fn unpooled_store_allocates_per_append() {
    let (mut store, payloads, mut body) = warmed_up(false);
    let (_, allocations, deallocations) = count(|| {
        for _ in 0..ROUNDS {
            round(&mut store, &payloads, &mut body);
        }
    });
    let appends = (ROUNDS * (payloads.len() + 1)) as u64;
    assert!(
        allocations >= appends,
        "{allocations} allocations for {appends} appends"
    );
    assert!(
        deallocations >= appends,
        "{deallocations} deallocations for {appends} appends"
    );
}
