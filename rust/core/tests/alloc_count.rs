//! Counts heap allocations around pool operations with a counting global allocator.
//!
//! The counter is per thread, so tests running in parallel and the test
//! harness's own threads do not disturb one another's counts.

use std::collections::VecDeque;

use interactsh_core::slab::{Handle, SlabPool, MAX_CHUNK_SIZE};

mod common;

use common::count;

/// Lengths of typical DNS and HTTP interaction records.
const SIZES: [usize; 8] = [200, 333, 512, 777, 1024, 1500, 2900, 4096];

/// Live payloads while measuring; a multiple of `SIZES.len()`, so each class
/// has the same number of payloads after every rotation.
const WORKING_SET: usize = SIZES.len() * 250;

const ROUNDS: usize = 20_000;

/// Payload buffers made before counting starts.
fn payloads() -> Vec<Vec<u8>> {
    SIZES
        .iter()
        .enumerate()
        .map(|(index, &len)| vec![index as u8; len])
        .collect()
}

/// Removes the oldest payload, checks it, and appends a new one, as polling and appending do.
fn rotate(pool: &mut SlabPool, queue: &mut VecDeque<Handle>, payloads: &[Vec<u8>], round: usize) {
    let oldest = queue.pop_front().expect("the queue holds the working set");
    let expected = &payloads[round % payloads.len()];
    assert_eq!(pool.get(&oldest), Some(&expected[..]));
    assert_eq!(pool.remove(oldest), Some(expected.len()));
    queue.push_back(pool.insert(expected));
}

/// Builds a pool and a queue with the working set, and rotates the whole set once.
fn warmed_up(mut pool: SlabPool, payloads: &[Vec<u8>]) -> (SlabPool, VecDeque<Handle>) {
    let mut queue = VecDeque::with_capacity(WORKING_SET);
    for round in 0..WORKING_SET {
        queue.push_back(pool.insert(&payloads[round % payloads.len()]));
    }
    for round in 0..WORKING_SET {
        rotate(&mut pool, &mut queue, payloads, round);
    }
    (pool, queue)
}

#[test]
fn pooled_queue_allocates_nothing() {
    let payloads = payloads();
    let (mut pool, mut queue) = warmed_up(SlabPool::new(), &payloads);
    let ((), allocations, deallocations) = count(|| {
        for round in 0..ROUNDS {
            rotate(&mut pool, &mut queue, &payloads, round);
        }
    });
    println!(
        "pooled queue rotation: {:.3} allocations per operation",
        allocations as f64 / ROUNDS as f64
    );
    assert_eq!(allocations, 0);
    assert_eq!(deallocations, 0);
    assert_eq!(pool.len(), WORKING_SET);
}

#[test]
fn pooled_insert_remove_allocates_nothing() {
    let payloads = payloads();
    let (mut pool, _queue) = warmed_up(SlabPool::new(), &payloads);
    let ((), allocations, deallocations) = count(|| {
        for round in 0..ROUNDS {
            let payload = &payloads[round % payloads.len()];
            let handle = pool.insert(payload);
            assert_eq!(pool.get(&handle).map(<[u8]>::len), Some(payload.len()));
            pool.remove(handle);
        }
    });
    assert_eq!(allocations, 0);
    assert_eq!(deallocations, 0);
}

#[test]
fn pooled_stats_free_of_allocation_but_list() {
    let payloads = payloads();
    let (pool, _queue) = warmed_up(SlabPool::new(), &payloads);
    let (held, allocations, _) = count(|| (pool.bytes_held(), pool.len(), pool.budget()));
    assert_eq!(allocations, 0);
    assert!(held.0 > 0);
    let (_, allocations, _) = count(|| pool.stats());
    assert_eq!(allocations, 1, "stats() allocates only its per-class list");
}

#[test]
fn unpooled_allocates_per_insert() {
    let payloads = payloads();
    let (mut pool, mut queue) = warmed_up(SlabPool::unpooled(), &payloads);
    let ((), allocations, deallocations) = count(|| {
        for round in 0..ROUNDS {
            rotate(&mut pool, &mut queue, &payloads, round);
        }
    });
    println!(
        "unpooled queue rotation: {:.3} allocations per operation",
        allocations as f64 / ROUNDS as f64
    );
    assert!(
        allocations >= ROUNDS as u64,
        "{allocations} allocations in {ROUNDS} rounds"
    );
    assert!(
        deallocations >= ROUNDS as u64,
        "{deallocations} deallocations in {ROUNDS} rounds"
    );
}

#[test]
fn oversized_payload_allocates_exactly_once() {
    let mut pool = SlabPool::new();
    let payload = vec![3; MAX_CHUNK_SIZE + 1];
    let warm = pool.insert(&payload);
    pool.remove(warm);
    let (handle, allocations, _) = count(|| pool.insert(&payload));
    assert_eq!(allocations, 1);
    let (_, _, deallocations) = count(|| pool.remove(handle));
    assert_eq!(deallocations, 1);
}

#[test]
fn shrink_returns_pages_to_allocator() {
    let mut pool = SlabPool::new();
    let handle = pool.insert(&[1; 500]);
    pool.remove(handle);
    let (released, _, deallocations) = count(|| pool.shrink());
    assert_eq!(released, 1 << 20);
    assert!(deallocations >= 1, "the page and its stamps are freed");
    let (handle, allocations, _) = count(|| pool.insert(&[1; 500]));
    assert!(allocations >= 1, "a new page is allocated after shrink");
    pool.remove(handle);
}
