//! The byte budget, eviction, idle expiry and the slab pool behind the store.

use super::tests::{decrypt_data, poll_shared, public_key_text, store_with, ID, OTHER_ID, SECRET};
use super::*;
use crate::error::Rejected;
use crate::slab::PAGE_SIZE;

const IDLE: f64 = 60.0;

fn register(store: &mut Store, id: &str, now: f64) {
    assert!(store.register(id, SECRET, public_key_text(), None, now).unwrap());
}

/// Returns the session overhead of the test sessions, which all have equal id, secret and key lengths.
fn session_cost() -> usize {
    let mut store = store_with(|_| {});
    register(&mut store, ID, 0.0);
    store.total_bytes()
}

fn record(tag: &str, index: usize) -> Vec<u8> {
    format!("{{\"{tag}\":{index:0>90}}}").into_bytes()
}

/// Polls `id` at `now`, commits, and returns the decrypted records.
fn drain(store: &mut Store, id: &str, now: f64) -> Vec<Vec<u8>> {
    let (body, page) = poll_shared(store, id, SharedRequest::default(), now);
    store.commit(&page.correlation_id, &page.receipt);
    decrypt_data(&body, AesMode::Ctr)
}

#[test]
fn total_bytes_count_payloads_and_overheads() {
    let mut store = store_with(|_| {});
    assert_eq!(store.total_bytes(), 0);
    register(&mut store, ID, 0.0);
    let session = store.total_bytes();
    assert!(session > SECRET.len() + 3 * ID.len());
    store.push(ID, &[b'x'; 100], 0.0).unwrap();
    assert_eq!(store.total_bytes(), session + 100 + RECORD_OVERHEAD);
    store.push_shared(SharedBucket::TldData, &[b'y'; 30], 0.0).unwrap();
    assert_eq!(store.total_bytes(), session + 130 + 2 * RECORD_OVERHEAD);
    store.deregister(ID, SECRET, 1.0).unwrap();
    assert_eq!(store.total_bytes(), 30 + RECORD_OVERHEAD);
    assert_eq!(store.stats(1.0).total_bytes, store.total_bytes());
}

#[test]
fn removals_return_payloads_to_pool() {
    let mut store = store_with(|options| options.max_session_items = 3);
    register(&mut store, ID, 0.0);
    register(&mut store, OTHER_ID, 0.0);
    for index in 0..5 {
        store.push(ID, &record("a", index), 0.0).unwrap();
        store.push(OTHER_ID, &record("b", index), 0.0).unwrap();
    }
    assert_eq!(
        store.pool_stats().payloads,
        6,
        "the caps dropped four records from the pool"
    );
    drain(&mut store, ID, 1.0);
    assert_eq!(store.pool_stats().payloads, 3);
    store.deregister(OTHER_ID, SECRET, 1.0).unwrap();
    assert_eq!(store.pool_stats().payloads, 0);
    store.push(ID, b"{}", 1.0).unwrap();
    assert_eq!(store.expire(1000.0), 1);
    assert_eq!(store.pool_stats().payloads, 0);
    assert_eq!(store.total_bytes(), 0);
}

#[test]
fn eviction_takes_oldest_idle_records_across_sessions() {
    let mut store = store_with(|_| {});
    register(&mut store, ID, 0.0);
    register(&mut store, OTHER_ID, 0.0);
    for index in 0..3 {
        store.push(ID, &record("a", index), 1.0).unwrap();
        store.push(OTHER_ID, &record("b", index), 1.0).unwrap();
    }
    let cost = record("a", 0).len() + RECORD_OVERHEAD;
    let target = store.total_bytes() - 3 * cost;
    assert_eq!(store.evict(target, IDLE - 1.0), 0, "no session is idle yet");
    assert_eq!(store.evict(target, IDLE), 3);
    assert_eq!(store.total_bytes(), target);
    assert_eq!(store.stats(IDLE).evicted_items, 3);
    assert_eq!(drain(&mut store, ID, IDLE), vec![record("a", 2)]);
    assert_eq!(drain(&mut store, OTHER_ID, IDLE), vec![record("b", 1), record("b", 2)]);
}

#[test]
fn eviction_spares_sessions_whose_owner_polls() {
    let mut store = store_with(|_| {});
    register(&mut store, ID, 0.0);
    register(&mut store, OTHER_ID, 0.0);
    store.push(OTHER_ID, &record("b", 0), 0.0).unwrap();
    store.push(ID, &record("a", 0), 0.0).unwrap();
    poll_shared(&mut store, OTHER_ID, SharedRequest::default(), IDLE);
    assert_eq!(store.evict(0, IDLE), 1);
    assert_eq!(drain(&mut store, ID, IDLE), Vec::<Vec<u8>>::new());
    assert_eq!(drain(&mut store, OTHER_ID, IDLE), vec![record("b", 0)]);
}

#[test]
fn full_store_rejects_until_a_session_turns_idle() {
    let session = session_cost();
    let cost = record("a", 0).len() + RECORD_OVERHEAD;
    let budget = session + 2 * cost;
    let mut store = store_with(|options| options.max_total_bytes = Some(budget));
    register(&mut store, ID, 0.0);
    store.push(ID, &record("a", 0), 0.0).unwrap();
    store.push(ID, &record("a", 1), 0.0).unwrap();
    let error = store.push(ID, &record("a", 2), 30.0).unwrap_err();
    assert!(
        matches!(error, Error::StoreFull { rejected: Rejected::Record { len }, budget: b, .. } if len == record("a", 2).len() && b == budget),
        "{error:?}"
    );
    assert_eq!(store.stats(30.0).refused_items, 1);
    assert!(store.push(ID, &record("a", 3), IDLE).unwrap());
    let stats = store.stats(IDLE);
    assert!(stats.evicted_items >= 1);
    assert!(stats.total_bytes <= budget);
    assert_eq!(drain(&mut store, ID, IDLE).last(), Some(&record("a", 3)));
}

#[test]
fn write_larger_than_budget_evicts_nothing() {
    let session = session_cost();
    let mut store = store_with(|options| options.max_total_bytes = Some(2 * session));
    register(&mut store, ID, 0.0);
    store.push(ID, &record("a", 0), 0.0).unwrap();
    let error = store.push(ID, &vec![b'x'; 2 * session], IDLE).unwrap_err();
    assert!(matches!(error, Error::LargerThanBudget { .. }), "{error:?}");
    assert!(error.to_string().contains("whole budget"), "{error}");
    assert_eq!(store.stats(IDLE).evicted_items, 0);
    let error = store.push_shared(SharedBucket::Extra, &vec![b'x'; 2 * session], IDLE);
    assert!(matches!(
        error,
        Err(Error::LargerThanBudget {
            rejected: Rejected::SharedRecord { .. },
            ..
        })
    ));
}

#[test]
fn registration_over_budget_is_rejected() {
    let session = session_cost();
    let mut store = store_with(|options| options.max_total_bytes = Some(session));
    register(&mut store, ID, 0.0);
    let error = store
        .register(OTHER_ID, SECRET, public_key_text(), None, 0.0)
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::StoreFull {
                rejected: Rejected::Session,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(store.stats(0.0).refused_sessions, 1);
    assert!(
        !store.register(ID, SECRET, public_key_text(), None, 1.0).unwrap(),
        "a refresh costs nothing"
    );
}

#[test]
fn idle_expiry_removes_sessions_and_payloads() {
    let mut store = store_with(|_| {});
    register(&mut store, ID, 0.0);
    register(&mut store, OTHER_ID, 0.0);
    store.push(ID, &record("a", 0), 0.0).unwrap();
    poll_shared(&mut store, OTHER_ID, SharedRequest::default(), 20.0);
    assert_eq!(store.expire_idle(30.0, 30.0).unwrap(), 1);
    assert!(!store.contains(ID, 30.0));
    assert!(store.contains(OTHER_ID, 30.0));
    assert_eq!(store.pool_stats().payloads, 0);
    assert_eq!(store.stats(30.0).expired_sessions, 1);
    assert!(matches!(
        store.expire_idle(-1.0, 30.0),
        Err(Error::InvalidArgument {
            name: "idle_seconds",
            ..
        })
    ));
    assert!(store.expire_idle(f64::NAN, 30.0).is_err());
}

#[test]
fn budget_of_zero_is_rejected() {
    let mut store = store_with(|_| {});
    assert!(store.set_budget(Some(0)).is_err());
    assert!(store.set_budget(Some(1)).is_ok());
    assert_eq!(store.budget(), Some(1));
    assert!(Store::new(StoreOptions {
        max_total_bytes: Some(0),
        ..StoreOptions::default()
    })
    .is_err());
    assert!(Store::new(StoreOptions {
        idle_eviction_seconds: f64::INFINITY,
        ..StoreOptions::default()
    })
    .is_err());
}

#[test]
fn shrink_returns_free_pages() {
    let mut store = store_with(|_| {});
    register(&mut store, ID, 0.0);
    for index in 0..2000 {
        store.push(ID, &record("a", index), 0.0).unwrap();
    }
    while !drain(&mut store, ID, 1.0).is_empty() {}
    let pages = store.pool_stats().pages;
    assert!(pages >= 1);
    let released = store.shrink();
    assert!(released >= pages * PAGE_SIZE, "{released} bytes for {pages} pages");
    assert_eq!(store.pool_stats().pages, 0);
    assert_eq!(store.shrink(), 0);
    store.push(ID, &record("a", 0), 2.0).unwrap();
    assert_eq!(drain(&mut store, ID, 2.0), vec![record("a", 0)]);
}

#[test]
fn unpooled_store_allocates_each_payload() {
    let mut store = store_with(|options| options.pooled = false);
    register(&mut store, ID, 0.0);
    store.push(ID, &record("a", 0), 0.0).unwrap();
    store.push_shared(SharedBucket::Extra, b"{}", 0.0).unwrap();
    let stats = store.pool_stats();
    assert!(!stats.pooled);
    assert!(stats.classes.is_empty());
    assert_eq!(stats.large_payloads, 2);
    assert_eq!(drain(&mut store, ID, 1.0), vec![record("a", 0)]);
}

#[test]
fn poll_into_reuses_the_buffer() {
    let mut store = store_with(|_| {});
    register(&mut store, ID, 0.0);
    store.push(ID, &record("a", 0), 0.0).unwrap();
    let mut body = String::from("left over from before");
    let summary = store
        .poll_into(ID, SECRET, SharedRequest::default(), 1.0, &mut body)
        .unwrap();
    assert_eq!(summary.data_count, 1);
    assert!(body.starts_with("{\"data\":[\""), "{body}");
    let page = store.poll(ID, SECRET, SharedRequest::default(), 1.0).unwrap();
    assert_eq!(page.receipt, summary.receipt);
    assert!(store
        .poll_into(ID, b"wrong", SharedRequest::default(), 1.0, &mut body)
        .is_err());
}
