//! Pooled against unpooled payload storage: time per operation, and heap
//! allocations per operation printed before the timings.
//!
//! Run with `cargo bench -p interactsh-core --bench slab` (add `-- --quick` for a short run).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use interactsh_core::slab::{Handle, SlabPool};

/// Counts the allocations of the current thread, so criterion's own threads do not disturb the count.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// thread-local counter is a const-initialised Cell, which needs no allocation.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which System shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: `ptr` and `layout` come from this allocator, which got them from System.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Payload lengths of typical DNS and HTTP interaction records.
const SIZES: [usize; 3] = [256, 1024, 4096];

/// Live payloads held while measuring, so the pools are not trivially empty.
const WORKING_SET: usize = 10_000;

/// A pool constructor and the name that reports show for it.
type PoolKind = (&'static str, fn() -> SlabPool);

const POOLS: [PoolKind; 2] = [("pooled", SlabPool::new), ("unpooled", SlabPool::unpooled)];

/// Inserts, reads and removes one payload.
fn insert_get_remove(pool: &mut SlabPool, payload: &[u8]) {
    let handle = pool.insert(payload);
    black_box(pool.get(&handle));
    pool.remove(handle);
}

/// Removes the oldest payload of the queue and appends a new one, as polling and appending do.
fn rotate(pool: &mut SlabPool, queue: &mut VecDeque<Handle>, payload: &[u8]) {
    if let Some(oldest) = queue.pop_front() {
        black_box(pool.get(&oldest));
        pool.remove(oldest);
    }
    queue.push_back(pool.insert(payload));
}

/// Fills a pool and a queue with the working set, mixing the typical sizes.
fn filled(make: fn() -> SlabPool) -> (SlabPool, VecDeque<Handle>) {
    let mut pool = make();
    let mut queue = VecDeque::with_capacity(WORKING_SET + 1);
    for index in 0..WORKING_SET {
        queue.push_back(pool.insert(&vec![7; SIZES[index % SIZES.len()]]));
    }
    (pool, queue)
}

fn print_allocations_per_op() {
    const ROUNDS: u64 = 10_000;
    for (name, make) in POOLS {
        for size in SIZES {
            let (mut pool, mut queue) = filled(make);
            let payload = vec![1; size];
            // Rotating the whole queue once turns the mixed working set into payloads of this size.
            for _ in 0..WORKING_SET {
                rotate(&mut pool, &mut queue, &payload);
            }
            let before = allocations();
            for _ in 0..ROUNDS {
                rotate(&mut pool, &mut queue, &payload);
            }
            let per_op = (allocations() - before) as f64 / ROUNDS as f64;
            println!("allocations per queue rotation, {name}, {size} B: {per_op:.2}");
        }
    }
}

fn bench_insert_remove(c: &mut Criterion) {
    print_allocations_per_op();
    let mut group = c.benchmark_group("insert_get_remove");
    for size in SIZES {
        let payload = vec![1; size];
        group.throughput(Throughput::Bytes(size as u64));
        for (name, make) in POOLS {
            let (mut pool, _queue) = filled(make);
            group.bench_with_input(BenchmarkId::new(name, size), &payload, |b, payload| {
                b.iter(|| insert_get_remove(&mut pool, black_box(payload)));
            });
        }
    }
    group.finish();
}

fn bench_queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_rotation");
    for size in SIZES {
        let payload = vec![1; size];
        group.throughput(Throughput::Bytes(size as u64));
        for (name, make) in POOLS {
            let (mut pool, mut queue) = filled(make);
            group.bench_with_input(BenchmarkId::new(name, size), &payload, |b, payload| {
                b.iter(|| rotate(&mut pool, &mut queue, black_box(payload)));
            });
        }
    }
    group.finish();
}

/// Payload lengths that the mixed rotation cycles through, as varied DNS and HTTP records are.
const MIXED_SIZES: [usize; 8] = [200, 333, 512, 777, 1024, 1500, 2900, 4096];

fn bench_mixed_queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_rotation_mixed");
    let source = vec![1; 4096];
    for (name, make) in POOLS {
        let (mut pool, mut queue) = filled(make);
        let mut round = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                // A stride of 3 over 8 sizes makes consecutive payloads differ in size.
                let len = MIXED_SIZES[round * 3 % MIXED_SIZES.len()];
                round += 1;
                rotate(&mut pool, &mut queue, black_box(&source[..len]));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_insert_remove, bench_queue, bench_mixed_queue);
criterion_main!(benches);
