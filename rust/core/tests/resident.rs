//! Resident-set readings against memory this process touches.
//!
//! One test in its own binary, so that no other test allocates or frees
//! memory while it reads the resident set size.

use interactsh_core::limit::resident_bytes;
use interactsh_core::slab::{SlabPool, CLASS_SIZES, PAGE_SIZE};

const MIB: u64 = 1 << 20;

#[test]
fn resident_bytes_follow_touched_memory() {
    // A pool with one payload per class has 32 pages, but only
    // the first chunk of each page is written.
    let before_pool = resident_bytes().expect("/proc/self/statm is readable");
    let mut pool = SlabPool::new();
    let handles: Vec<_> = CLASS_SIZES.iter().map(|&size| pool.insert(&vec![1; size])).collect();
    let after_pool = resident_bytes().expect("/proc/self/statm is readable");
    assert_eq!(pool.bytes_held(), CLASS_SIZES.len() * PAGE_SIZE);
    let pool_growth = after_pool.saturating_sub(before_pool);
    assert!(
        pool_growth < 8 * MIB,
        "32 pages with one chunk each made {pool_growth} bytes resident"
    );
    for handle in handles {
        pool.remove(handle);
    }
    drop(pool);

    let before = resident_bytes().expect("/proc/self/statm is readable");
    let touched = vec![1u8; 64 << 20];
    let during = resident_bytes().expect("/proc/self/statm is readable");
    assert!(
        during >= before + 48 * MIB,
        "touching 64 MiB moved resident bytes from {before} to {during}"
    );
    assert_eq!(touched.iter().map(|&byte| u64::from(byte)).sum::<u64>(), 64 * MIB);
    drop(touched);
    let after = resident_bytes().expect("/proc/self/statm is readable");
    assert!(
        after + 48 * MIB <= during,
        "freeing 64 MiB moved resident bytes from {during} to {after}"
    );
}
