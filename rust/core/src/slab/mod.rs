//! Slab pools: payload bytes in fixed-size chunks carved from 1 MiB pages.
//!
//! A [`SlabPool`] sorts each payload into the smallest of 32 size classes
//! (64 B to 64 KiB, about ×1.25 apart) and copies it into a free chunk of
//! that class. Removing a payload puts its chunk back on its page's free list,
//! so a steady mix of inserts and removals reuses chunks and makes no heap
//! allocation. Payloads over 64 KiB get an exact-size allocation each.
//! [`SlabPool::shrink`] returns pages with no chunk in use to the allocator.
//!
//! [`SlabPool::unpooled`] builds a pool with the same API that gives every
//! payload its own `Box<[u8]>`, for comparison and for turning the pools off.
//!
//! The module has no `unsafe` code: pages are boxed byte slices and chunks are
//! index ranges into them.
//!
//! ```
//! use interactsh_core::slab::SlabPool;
//!
//! let mut pool = SlabPool::new();
//! let handle = pool.insert(b"dns query for abc.oast.example");
//! assert_eq!(pool.get(&handle), Some(&b"dns query for abc.oast.example"[..]));
//! assert_eq!(pool.remove(handle), Some(30));
//! assert_eq!(pool.shrink(), 1 << 20);
//! ```

mod class;
mod classes;
mod large;
mod stats;
#[cfg(test)]
mod tests;

use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};

use class::{SizeClass, GENERATION_MASK};
pub use classes::{CLASS_SIZES, MAX_CHUNK_SIZE, PAGE_SIZE};
use large::LargeTable;
pub use stats::{ClassStats, PoolStats};

/// Bits of a handle's key that number the chunk or large entry.
const INDEX_BITS: u32 = 26;

/// Chunks one size class can number, and entries the large table can number.
pub const MAX_ENTRIES: usize = 1 << INDEX_BITS;

/// Key code of the large table; codes `1..=32` name the size classes.
const LARGE_CODE: u32 = CLASS_SIZES.len() as u32 + 1;

/// Handle stamps keep the payload length above this bit and the generation below it.
const LEN_SHIFT: u32 = 15;

/// Counts pools so that each gets its own generation seed.
static POOLS_CREATED: AtomicU32 = AtomicU32::new(0);

/// An error from [`SlabPool::try_insert`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SlabError {
    /// Storing the payload would take the pool's held bytes over its budget.
    #[error(
        "slab pool budget of {budget} bytes is exhausted: {held} bytes are allocated and a payload of {len} bytes needs {needed} more; remove payloads or raise the budget"
    )]
    BudgetExceeded {
        /// Length of the payload.
        len: usize,
        /// Bytes the pool would have to allocate for it: a page, or the payload's length.
        needed: usize,
        /// Bytes of pages and exact-size allocations held, after releasing free pages.
        held: usize,
        /// The budget on held bytes.
        budget: usize,
    },
    /// The payload's size class has used up its chunk numbers: at least 4 GiB of pages.
    #[error(
        "slab pool size class of {chunk_size}-byte chunks is full at {max_chunks} chunks: remove payloads of this size before inserting more"
    )]
    ClassFull {
        /// Bytes per chunk of the class.
        chunk_size: usize,
        /// Chunks a class can number.
        max_chunks: usize,
    },
    /// The pool already stores [`MAX_ENTRIES`] exact-size payloads.
    #[error(
        "slab pool is full at {max_payloads} payloads in exact-size allocations: remove payloads before inserting more"
    )]
    LargeTableFull {
        /// Exact-size payloads a pool can store.
        max_payloads: usize,
    },
}

/// A payload's place in the [`SlabPool`] that stored it: 8 bytes, 8 also inside an `Option`.
///
/// A handle is only meaningful to the pool whose [`insert`](SlabPool::insert)
/// returned it. It is neither `Clone` nor `Copy`, and [`SlabPool::remove`]
/// consumes it, so within one pool a handle cannot outlive its payload.
/// Handles carry a 15-bit generation that the pool checks. Given a handle of
/// another pool, `get` and `remove` return `None`, unless the handle's chunk
/// and generation happen to match a payload of this pool: then they act on
/// that payload. Either way no memory is read out of bounds.
///
/// Dropping a handle without `remove` leaves its payload in the pool until the
/// pool is dropped.
#[must_use = "a dropped handle leaves its payload in the pool until the pool is dropped"]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    /// Size-class code (1 to 32, or `LARGE_CODE`) above `INDEX_BITS` bits of chunk or entry number.
    key: NonZeroU32,
    /// For chunks, the payload length above `LEN_SHIFT` bits of generation; for large entries, the generation.
    stamp: u32,
}

impl Handle {
    fn new(code: u32, index: u32, len: usize, generation: u16) -> Self {
        debug_assert!((1..=LARGE_CODE).contains(&code));
        debug_assert!((index as usize) < MAX_ENTRIES);
        let key = NonZeroU32::new(code << INDEX_BITS | index).expect("a size-class code is never zero");
        // Chunk payloads are at most MAX_CHUNK_SIZE (2^16) bytes, so the length fits in 17 bits.
        let len = if code == LARGE_CODE { 0 } else { len as u32 };
        Self {
            key,
            stamp: len << LEN_SHIFT | u32::from(generation),
        }
    }

    /// Returns the size class, or `None` for the large table.
    fn class(&self) -> Option<usize> {
        let code = self.key.get() >> INDEX_BITS;
        (code != LARGE_CODE).then(|| code as usize - 1)
    }

    fn index(&self) -> u32 {
        self.key.get() & (MAX_ENTRIES as u32 - 1)
    }

    fn len(&self) -> usize {
        (self.stamp >> LEN_SHIFT) as usize
    }

    fn generation(&self) -> u16 {
        // The mask keeps 15 bits, which fit in u16.
        (self.stamp & u32::from(GENERATION_MASK)) as u16
    }
}

/// A store of byte payloads in pooled chunks, or in plain allocations when unpooled.
///
/// ```
/// use interactsh_core::slab::SlabPool;
///
/// let mut pool = SlabPool::new();
/// pool.set_budget(Some(2 << 20));
/// let small = pool.insert(&[1; 200]);
/// let large = pool.try_insert(&[2; 100_000]).expect("the budget leaves room");
/// assert_eq!(pool.get(&small).map(<[u8]>::len), Some(200));
/// assert_eq!(pool.stats().payloads, 2);
/// assert!(pool.try_insert(&vec![3; 2 << 20]).is_err());
/// pool.remove(small);
/// pool.remove(large);
/// ```
pub struct SlabPool {
    pooled: bool,
    /// XORed into generations, so that handles of different pools rarely match.
    seed: u16,
    /// One entry per size class; empty when unpooled.
    classes: Vec<SizeClass>,
    large: LargeTable,
    /// Bytes of all pages of all classes.
    page_bytes: usize,
    budget: Option<usize>,
}

impl SlabPool {
    /// Creates an empty pool that stores payloads up to [`MAX_CHUNK_SIZE`] in chunks.
    /// It allocates no page until the first insert.
    pub fn new() -> Self {
        Self::with_mode(true)
    }

    /// Creates an empty pool that gives every payload its own exact-size allocation.
    pub fn unpooled() -> Self {
        Self::with_mode(false)
    }

    fn with_mode(pooled: bool) -> Self {
        let created = POOLS_CREATED.fetch_add(1, Ordering::Relaxed);
        // An odd multiplier permutes the 15-bit seeds and spreads consecutive pools apart.
        let seed = (created.wrapping_mul(0x5BD1_E995) & u32::from(GENERATION_MASK)) as u16;
        let classes = if pooled {
            CLASS_SIZES.iter().map(|&size| SizeClass::new(size)).collect()
        } else {
            Vec::new()
        };
        Self {
            pooled,
            seed,
            classes,
            large: LargeTable::default(),
            page_bytes: 0,
            budget: None,
        }
    }

    /// Tells whether payloads go into chunks (`true`) or each into its own allocation.
    pub fn is_pooled(&self) -> bool {
        self.pooled
    }

    /// Returns the budget on held bytes, or `None` when there is none.
    pub fn budget(&self) -> Option<usize> {
        self.budget
    }

    /// Sets the maximum bytes that pages and exact-size allocations may hold, or `None` for no limit.
    ///
    /// A budget below the bytes already held removes nothing: inserts that
    /// need more memory fail until removals and [`shrink`](Self::shrink) make room.
    pub fn set_budget(&mut self, budget: Option<usize>) {
        self.budget = budget;
    }

    /// Number of payloads stored.
    pub fn len(&self) -> usize {
        self.large.len() + self.classes.iter().map(SizeClass::chunks_used).sum::<usize>()
    }

    /// Tells whether the pool stores no payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of pages and exact-size allocations: the figure the budget bounds.
    pub fn bytes_held(&self) -> usize {
        self.page_bytes + self.large.bytes()
    }

    /// Copies `payload` into the pool and returns its handle.
    ///
    /// # Panics
    ///
    /// Panics when [`try_insert`](Self::try_insert) fails: over the budget, or
    /// with the payload's size class out of chunk numbers.
    pub fn insert(&mut self, payload: &[u8]) -> Handle {
        self.try_insert(payload).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Copies `payload` into the pool and returns its handle, or an error when
    /// the budget or the pool's size leaves no room.
    ///
    /// Before reporting that the budget is exhausted, it releases free pages of
    /// every class as [`shrink`](Self::shrink) does and tries again.
    #[inline]
    pub fn try_insert(&mut self, payload: &[u8]) -> Result<Handle, SlabError> {
        match classes::class_for(payload.len()).filter(|_| self.pooled) {
            Some(class) => self.insert_chunk(class, payload),
            None => self.insert_large(payload),
        }
    }

    #[inline]
    fn insert_chunk(&mut self, class: usize, payload: &[u8]) -> Result<Handle, SlabError> {
        let code = class as u32 + 1;
        if let Some((index, generation)) = self.classes[class].insert(payload) {
            return Ok(Handle::new(code, index, payload.len(), generation ^ self.seed));
        }
        self.reserve(payload.len(), PAGE_SIZE)?;
        self.classes[class].add_page()?;
        self.page_bytes += PAGE_SIZE;
        let (index, generation) = self.classes[class]
            .insert(payload)
            .expect("a new page has a free chunk");
        Ok(Handle::new(code, index, payload.len(), generation ^ self.seed))
    }

    fn insert_large(&mut self, payload: &[u8]) -> Result<Handle, SlabError> {
        self.reserve(payload.len(), payload.len())?;
        let (index, generation) = self.large.insert(payload)?;
        Ok(Handle::new(LARGE_CODE, index, payload.len(), generation ^ self.seed))
    }

    /// Checks that `needed` more bytes fit in the budget, releasing free pages if they do not.
    fn reserve(&mut self, len: usize, needed: usize) -> Result<(), SlabError> {
        let Some(budget) = self.budget else {
            return Ok(());
        };
        let fits = |held: usize| held.checked_add(needed).is_some_and(|total| total <= budget);
        if fits(self.bytes_held()) {
            return Ok(());
        }
        self.release_free_pages();
        let held = self.bytes_held();
        if fits(held) {
            return Ok(());
        }
        Err(SlabError::BudgetExceeded {
            len,
            needed,
            held,
            budget,
        })
    }

    /// Returns the payload of `handle`, or `None` when the handle belongs to another pool.
    #[inline]
    pub fn get(&self, handle: &Handle) -> Option<&[u8]> {
        let generation = handle.generation() ^ self.seed;
        match handle.class() {
            Some(class) => self.classes.get(class)?.get(handle.index(), generation, handle.len()),
            None => self.large.get(handle.index(), generation),
        }
    }

    /// Removes the payload of `handle` and returns its length, or `None` when
    /// the handle belongs to another pool.
    ///
    /// A chunk goes back to its page's free list; an exact-size allocation is freed.
    #[inline]
    pub fn remove(&mut self, handle: Handle) -> Option<usize> {
        let generation = handle.generation() ^ self.seed;
        match handle.class() {
            Some(class) => {
                let len = handle.len();
                self.classes
                    .get_mut(class)?
                    .remove(handle.index(), generation, len)
                    .then_some(len)
            }
            None => self.large.remove(handle.index(), generation),
        }
    }

    /// Returns every page that has no chunk in use to the allocator and returns the bytes released.
    ///
    /// It also trims the spare capacity of the exact-size table. Pages that
    /// still hold one payload stay: the pool never moves payloads, because
    /// handles name their chunk.
    pub fn shrink(&mut self) -> usize {
        let released = self.release_free_pages();
        self.large.shrink();
        released
    }

    fn release_free_pages(&mut self) -> usize {
        let released = self.classes.iter_mut().map(SizeClass::shrink).sum::<usize>() * PAGE_SIZE;
        self.page_bytes -= released;
        released
    }

    /// Returns per-class and total figures. It allocates the per-class list.
    pub fn stats(&self) -> PoolStats {
        let classes: Vec<ClassStats> = self.classes.iter().map(SizeClass::stats).collect();
        let class_payloads = classes.iter().map(|class| class.chunks_used).sum::<usize>();
        let class_requested = classes.iter().map(|class| class.bytes_requested).sum::<usize>();
        let bytes_overhead = self.large.overhead_bytes()
            + self.classes.iter().map(SizeClass::overhead_bytes).sum::<usize>()
            + self.classes.capacity() * size_of::<SizeClass>();
        PoolStats {
            pooled: self.pooled,
            large_payloads: self.large.len(),
            large_bytes: self.large.bytes(),
            payloads: class_payloads + self.large.len(),
            pages: self.classes.iter().map(SizeClass::page_count).sum(),
            free_pages: self.classes.iter().map(SizeClass::free_pages).sum(),
            bytes_requested: class_requested + self.large.bytes(),
            bytes_held: self.bytes_held(),
            bytes_overhead,
            budget: self.budget,
            classes,
        }
    }
}

impl Default for SlabPool {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SlabPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlabPool")
            .field("pooled", &self.pooled)
            .field("payloads", &self.len())
            .field("bytes_held", &self.bytes_held())
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}
