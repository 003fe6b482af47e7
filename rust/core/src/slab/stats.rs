//! Counters that describe what a pool holds.

/// Figures of one size class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassStats {
    /// Bytes in each chunk of the class.
    pub chunk_size: usize,
    /// Pages the class holds.
    pub pages: usize,
    /// Pages with no chunk in use, which [`SlabPool::shrink`](super::SlabPool::shrink) releases.
    pub free_pages: usize,
    /// Chunks that hold a payload.
    pub chunks_used: usize,
    /// Chunks of the class's pages that hold no payload.
    pub chunks_free: usize,
    /// Sum of the lengths of the payloads in the class.
    pub bytes_requested: usize,
    /// Bytes of the class's pages.
    pub bytes_held: usize,
}

/// Figures of a whole pool, from [`SlabPool::stats`](super::SlabPool::stats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// Whether payloads go into chunks (`true`) or each into its own allocation (`false`).
    pub pooled: bool,
    /// One entry per size class, smallest chunks first. Empty for an unpooled pool.
    pub classes: Vec<ClassStats>,
    /// Payloads stored as exact-size allocations.
    pub large_payloads: usize,
    /// Bytes of the payloads stored as exact-size allocations.
    pub large_bytes: usize,
    /// Payloads stored.
    pub payloads: usize,
    /// Pages held, over all classes.
    pub pages: usize,
    /// Pages with no chunk in use, over all classes.
    pub free_pages: usize,
    /// Sum of the lengths of all payloads stored.
    pub bytes_requested: usize,
    /// Bytes of pages and exact-size allocations: what the budget bounds.
    pub bytes_held: usize,
    /// Bytes of bookkeeping on top of `bytes_held` (about 2 bytes per chunk, plus tables).
    pub bytes_overhead: usize,
    /// The budget on `bytes_held`, if any.
    pub budget: Option<usize>,
}
