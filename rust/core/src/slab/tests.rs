use proptest::prelude::*;

use super::*;

/// Builds a payload of `len` bytes whose content depends on `seed`, so overlapping chunks show up.
fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn handle_is_8_bytes() {
    assert_eq!(size_of::<Handle>(), 8);
    assert_eq!(size_of::<Option<Handle>>(), 8);
}

#[test]
fn pool_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SlabPool>();
    check::<Handle>();
}

#[test]
fn round_trip_at_class_edges() {
    let mut pool = SlabPool::new();
    let mut lengths = vec![0, 1, 63, 65, MAX_CHUNK_SIZE + 1, PAGE_SIZE + 3];
    for size in CLASS_SIZES {
        lengths.extend([size - 1, size]);
    }
    let stored: Vec<(Handle, Vec<u8>)> = lengths
        .iter()
        .enumerate()
        .map(|(seed, &len)| {
            let bytes = payload(len, seed as u8);
            (pool.insert(&bytes), bytes)
        })
        .collect();
    assert_eq!(pool.len(), lengths.len());
    for (handle, bytes) in &stored {
        assert_eq!(pool.get(handle), Some(&bytes[..]), "payload of {} bytes", bytes.len());
    }
    for (handle, bytes) in stored {
        assert_eq!(pool.remove(handle), Some(bytes.len()));
    }
    assert!(pool.is_empty());
    assert_eq!(pool.stats().bytes_requested, 0);
}

#[test]
fn payloads_fill_smallest_fitting_class() {
    let mut pool = SlabPool::new();
    let handle = pool.insert(&[7; 81]);
    let stats = pool.stats();
    let used: Vec<usize> = stats
        .classes
        .iter()
        .filter(|class| class.chunks_used > 0)
        .map(|class| class.chunk_size)
        .collect();
    assert_eq!(used, [104]);
    assert_eq!(stats.classes[2].bytes_requested, 81);
    assert_eq!(stats.classes[2].pages, 1);
    assert_eq!(stats.classes[2].chunks_free, PAGE_SIZE / 104 - 1);
    assert_eq!(stats.large_payloads, 0);
    pool.remove(handle);
}

#[test]
fn payloads_over_largest_chunk_are_exact() {
    let mut pool = SlabPool::new();
    let handle = pool.insert(&payload(MAX_CHUNK_SIZE + 1, 1));
    let stats = pool.stats();
    assert_eq!(stats.pages, 0);
    assert_eq!(stats.large_payloads, 1);
    assert_eq!(stats.bytes_held, MAX_CHUNK_SIZE + 1);
    assert_eq!(pool.remove(handle), Some(MAX_CHUNK_SIZE + 1));
    assert_eq!(pool.bytes_held(), 0);
}

#[test]
fn neighbours_keep_their_bytes() {
    let mut pool = SlabPool::new();
    let handles: Vec<Handle> = (0..=255u8).map(|seed| pool.insert(&[seed; 64])).collect();
    for (seed, handle) in handles.iter().enumerate() {
        assert_eq!(pool.get(handle), Some(&[seed as u8; 64][..]));
    }
    for handle in handles {
        pool.remove(handle);
    }
}

#[test]
fn freed_chunks_are_reused() {
    let mut pool = SlabPool::new();
    let first = pool.insert(&[1; 300]);
    pool.remove(first);
    for round in 0..1000u32 {
        let handle = pool.insert(&round.to_le_bytes().repeat(75));
        assert_eq!(pool.get(&handle).map(<[u8]>::len), Some(300));
        pool.remove(handle);
    }
    let stats = pool.stats();
    assert_eq!(stats.pages, 1);
    assert_eq!(stats.free_pages, 1);
    assert_eq!(stats.payloads, 0);
}

#[test]
fn free_chunk_link_does_not_leak_into_payload() {
    let mut pool = SlabPool::new();
    let a = pool.insert(&[0xAA; 64]);
    let b = pool.insert(&[0xBB; 64]);
    pool.remove(a);
    pool.remove(b);
    let c = pool.insert(&[0xCC; 10]);
    assert_eq!(pool.get(&c), Some(&[0xCC; 10][..]));
    let d = pool.insert(&[]);
    assert_eq!(pool.get(&d), Some(&[][..]));
    pool.remove(c);
    pool.remove(d);
}

#[test]
fn shrink_releases_only_free_pages() {
    let mut pool = SlabPool::new();
    let per_page = PAGE_SIZE / 4480;
    let mut handles: Vec<Handle> = (0..per_page * 3).map(|_| pool.insert(&[9; 4000])).collect();
    assert_eq!(pool.stats().pages, 3);
    // Empty the last page and keep one payload on the first two.
    let last_page = handles.split_off(per_page * 2);
    for handle in last_page {
        pool.remove(handle);
    }

    let mut survivors = Vec::new();
    for (index, handle) in handles.into_iter().enumerate() {
        if index % per_page == 0 {
            survivors.push(handle);
        } else {
            pool.remove(handle);
        }
    }
    assert_eq!(survivors.len(), 2);

    assert_eq!(pool.shrink(), PAGE_SIZE);
    assert_eq!(pool.shrink(), 0);
    let stats = pool.stats();
    assert_eq!(stats.pages, 2);
    assert_eq!(stats.bytes_held, 2 * PAGE_SIZE);

    for handle in &survivors {
        assert_eq!(pool.get(handle), Some(&[9; 4000][..]));
    }
    for handle in survivors {
        pool.remove(handle);
    }
    assert_eq!(pool.shrink(), 2 * PAGE_SIZE);
    assert_eq!(pool.bytes_held(), 0);
}

#[test]
fn inserts_fill_lowest_page_first() {
    let mut pool = SlabPool::new();
    let per_page = PAGE_SIZE / 65536;
    let mut handles: Vec<Handle> = (0..per_page * 3).map(|_| pool.insert(&[1; 60_000])).collect();
    // Free half of page 1 and all of page 2, then insert half a page.
    let page_two = handles.split_off(per_page * 2);
    let page_one_half = handles.split_off(per_page + per_page / 2);
    // Page 2 goes last, so a pool that reused the most recently freed chunk would fill it.
    for handle in page_one_half.into_iter().chain(page_two) {
        pool.remove(handle);
    }
    handles.extend((0..per_page / 2).map(|_| pool.insert(&[2; 60_000])));
    assert_eq!(pool.stats().free_pages, 1);
    assert_eq!(pool.shrink(), PAGE_SIZE);
    for handle in handles {
        pool.remove(handle);
    }
}

#[test]
fn released_page_number_is_reused() {
    let mut pool = SlabPool::new();
    let per_page = PAGE_SIZE / 65536;
    let first: Vec<Handle> = (0..per_page).map(|_| pool.insert(&[1; 65536])).collect();
    let second: Vec<Handle> = (0..per_page).map(|_| pool.insert(&[2; 65536])).collect();
    for handle in first {
        pool.remove(handle);
    }
    assert_eq!(pool.shrink(), PAGE_SIZE);
    let third: Vec<Handle> = (0..per_page).map(|_| pool.insert(&[3; 65536])).collect();
    assert_eq!(pool.stats().pages, 2);
    for handle in &second {
        assert_eq!(pool.get(handle), Some(&[2; 65536][..]));
    }
    for handle in &third {
        assert_eq!(pool.get(handle), Some(&[3; 65536][..]));
    }
    for handle in second.into_iter().chain(third) {
        pool.remove(handle);
    }
}

#[test]
fn budget_rejects_new_page() {
    let mut pool = SlabPool::new();
    pool.set_budget(Some(PAGE_SIZE));
    let first = pool.insert(&[1; 100]);
    let error = pool
        .try_insert(&[2; 1000])
        .expect_err("a second page exceeds the budget");
    assert_eq!(
        error,
        SlabError::BudgetExceeded {
            len: 1000,
            needed: PAGE_SIZE,
            held: PAGE_SIZE,
            budget: PAGE_SIZE
        }
    );
    assert_eq!(
        error.to_string(),
        "slab pool budget of 1048576 bytes is exhausted: 1048576 bytes are allocated and a payload of 1000 bytes needs \
         1048576 more; remove payloads or raise the budget"
    );
    // The page already held still takes payloads of its class.
    let same_class = pool
        .try_insert(&[3; 100])
        .expect("a chunk of a held page needs no new memory");
    assert_eq!(pool.bytes_held(), PAGE_SIZE);
    pool.remove(first);
    pool.remove(same_class);
}

#[test]
fn budget_rejects_large_payload() {
    let mut pool = SlabPool::unpooled();
    pool.set_budget(Some(1000));
    let fits = pool.try_insert(&[0; 600]).expect("600 bytes fit in 1000");
    let error = pool.try_insert(&[0; 401]).expect_err("1001 bytes exceed 1000");
    assert_eq!(
        error,
        SlabError::BudgetExceeded {
            len: 401,
            needed: 401,
            held: 600,
            budget: 1000
        }
    );
    let exact = pool.try_insert(&[0; 400]).expect("1000 bytes fit in 1000");
    assert_eq!(pool.bytes_held(), 1000);
    pool.remove(fits);
    pool.remove(exact);
}

#[test]
fn budget_releases_free_pages_first() {
    let mut pool = SlabPool::new();
    pool.set_budget(Some(PAGE_SIZE));
    let small = pool.insert(&[1; 100]);
    pool.remove(small);
    // The free page of the 104-byte class makes way for a page of another class.
    let other = pool.try_insert(&[2; 5000]).expect("releasing the free page makes room");
    let stats = pool.stats();
    assert_eq!(stats.pages, 1);
    assert_eq!(stats.bytes_held, PAGE_SIZE);
    pool.remove(other);
}

#[test]
fn lowered_budget_keeps_payloads() {
    let mut pool = SlabPool::new();
    let handle = pool.insert(&[5; 2000]);
    pool.set_budget(Some(10));
    assert_eq!(pool.budget(), Some(10));
    assert_eq!(pool.get(&handle), Some(&[5; 2000][..]));
    assert!(pool.try_insert(&[6; 100]).is_err());
    pool.remove(handle);
}

#[test]
#[should_panic(expected = "slab pool budget of 0 bytes is exhausted")]
fn insert_panics_over_budget() {
    let mut pool = SlabPool::new();
    pool.set_budget(Some(0));
    let _ = pool.insert(b"x");
}

#[test]
fn handle_of_other_pool_is_rejected() {
    let mut first = SlabPool::new();
    let mut second = SlabPool::new();
    let mine = first.insert(b"first pool");
    let theirs = second.insert(b"second pool");
    assert_eq!(second.get(&mine), None);
    assert_eq!(second.remove(mine), None);
    assert_eq!(second.get(&theirs), Some(&b"second pool"[..]));
    assert_eq!(second.len(), 1);
    assert_eq!(first.get(&theirs), None);
    second.remove(theirs);
}

#[test]
fn handle_across_modes_is_rejected() {
    let mut pooled = SlabPool::new();
    let mut unpooled = SlabPool::unpooled();
    let chunk = pooled.insert(b"chunk");
    let boxed = unpooled.insert(b"boxed");
    assert_eq!(unpooled.get(&chunk), None);
    assert_eq!(pooled.get(&boxed), None);
    assert_eq!(unpooled.remove(chunk), None);
    assert_eq!(pooled.remove(boxed), None);
    assert_eq!(pooled.len(), 1);
    assert_eq!(unpooled.len(), 1);
}

#[test]
fn unpooled_pool_holds_exact_bytes() {
    let mut pool = SlabPool::unpooled();
    assert!(!pool.is_pooled());
    let handles: Vec<Handle> = [0, 10, 4000, 70_000]
        .iter()
        .map(|&len| pool.insert(&payload(len, 3)))
        .collect();
    let stats = pool.stats();
    assert!(stats.classes.is_empty());
    assert_eq!(stats.pages, 0);
    assert_eq!(stats.large_payloads, 4);
    assert_eq!(stats.bytes_requested, 74_010);
    assert_eq!(stats.bytes_held, 74_010);
    for (handle, len) in handles.iter().zip([0, 10, 4000, 70_000]) {
        assert_eq!(pool.get(handle), Some(&payload(len, 3)[..]));
    }
    for handle in handles {
        pool.remove(handle);
    }
    assert_eq!(pool.shrink(), 0);
    assert_eq!(pool.bytes_held(), 0);
}

#[test]
fn stats_totals_match_classes() {
    let mut pool = SlabPool::new();
    let handles: Vec<Handle> = (0..500).map(|i| pool.insert(&payload(100 + i * 13, i as u8))).collect();
    let stats = pool.stats();
    assert_eq!(stats.payloads, 500);
    assert_eq!(stats.bytes_requested, (0..500).map(|i| 100 + i * 13).sum::<usize>());
    assert_eq!(
        stats.pages,
        stats.classes.iter().map(|class| class.pages).sum::<usize>()
    );
    assert_eq!(stats.bytes_held, stats.pages * PAGE_SIZE);
    for class in &stats.classes {
        assert_eq!(
            class.chunks_used + class.chunks_free,
            class.pages * (PAGE_SIZE / class.chunk_size)
        );
    }
    assert!(stats.bytes_overhead > 0);
    assert_eq!(stats.budget, None);
    for handle in handles {
        pool.remove(handle);
    }
}

#[test]
fn error_messages_name_the_fix() {
    let full = SlabError::ClassFull {
        chunk_size: 64,
        max_chunks: MAX_ENTRIES,
    };
    assert_eq!(
        full.to_string(),
        "slab pool size class of 64-byte chunks is full at 67108864 chunks: remove payloads of this size before \
         inserting more"
    );
    let large = SlabError::LargeTableFull {
        max_payloads: MAX_ENTRIES,
    };
    assert!(large.to_string().ends_with("remove payloads before inserting more"));
}

/// One step of the model-based test.
#[derive(Debug, Clone)]
enum Step {
    Insert(usize, u8),
    Remove(usize),
    Shrink,
}

fn step() -> impl Strategy<Value = Step> {
    let len = prop_oneof![
        8 => 0usize..4096,
        2 => 4096usize..=MAX_CHUNK_SIZE,
        1 => MAX_CHUNK_SIZE + 1..MAX_CHUNK_SIZE + 5000,
    ];
    prop_oneof![
        6 => (len, any::<u8>()).prop_map(|(len, seed)| Step::Insert(len, seed)),
        4 => any::<usize>().prop_map(Step::Remove),
        1 => Just(Step::Shrink),
    ]
}

/// Checks the pool against the list of payloads it should hold.
fn check_against_model(pool: &SlabPool, model: &[(Handle, Vec<u8>)]) {
    for (handle, bytes) in model {
        assert_eq!(pool.get(handle), Some(&bytes[..]));
    }
    let stats = pool.stats();
    assert_eq!(stats.payloads, model.len());
    assert_eq!(pool.len(), model.len());
    assert_eq!(
        stats.bytes_requested,
        model.iter().map(|(_, bytes)| bytes.len()).sum::<usize>()
    );
    assert_eq!(stats.bytes_held, stats.pages * PAGE_SIZE + stats.large_bytes);
    if let Some(budget) = stats.budget {
        assert!(
            stats.bytes_held <= budget,
            "{} bytes held over a budget of {budget}",
            stats.bytes_held
        );
    }
}

fn run_model(mut pool: SlabPool, steps: Vec<Step>) {
    let mut model: Vec<(Handle, Vec<u8>)> = Vec::new();
    for step in steps {
        match step {
            Step::Insert(len, seed) => {
                let bytes = payload(len, seed);
                match pool.try_insert(&bytes) {
                    Ok(handle) => model.push((handle, bytes)),
                    Err(SlabError::BudgetExceeded {
                        held, needed, budget, ..
                    }) => assert!(held + needed > budget),
                    Err(other) => panic!("unexpected error {other}"),
                }
            }
            Step::Remove(pick) if !model.is_empty() => {
                let (handle, bytes) = model.swap_remove(pick % model.len());
                assert_eq!(pool.remove(handle), Some(bytes.len()));
            }
            Step::Remove(_) => {}
            Step::Shrink => {
                let before = pool.stats();
                assert_eq!(pool.shrink(), before.free_pages * PAGE_SIZE);
                assert_eq!(pool.stats().free_pages, 0);
            }
        }
        check_against_model(&pool, &model);
    }
}

/// Fewer and shorter cases under miri, which runs about a thousand times slower.
fn model_config() -> ProptestConfig {
    let cases = if cfg!(miri) { 3 } else { 64 };
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(step(), 1..if cfg!(miri) { 24 } else { 300 })
}

proptest! {
    #![proptest_config(model_config())]

    #[test]
    fn pooled_matches_model(steps in steps()) {
        run_model(SlabPool::new(), steps);
    }

    #[test]
    fn unpooled_matches_model(steps in steps()) {
        run_model(SlabPool::unpooled(), steps);
    }

    #[test]
    fn budgeted_matches_model(steps in steps(), pages in 1usize..6) {
        let mut pool = SlabPool::new();
        pool.set_budget(Some(pages * PAGE_SIZE));
        run_model(pool, steps);
    }
}
