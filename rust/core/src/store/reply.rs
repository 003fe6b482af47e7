//! Poll results and the store's counters.

/// The shared buckets that a poll reads for its consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SharedRequest {
    /// Read the `extra` bucket; otherwise the reply's `extra` is `null`.
    pub extra: bool,
    /// Read the `tlddata` bucket; otherwise the reply has no `tlddata` key.
    pub tlddata: bool,
}

/// A built poll reply. Nothing leaves the store until its receipt is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollPage {
    /// The complete HTTP response body, ending in a newline.
    pub body: Vec<u8>,
    /// The session's correlation id, lowercased: the id to commit the receipt under.
    pub correlation_id: String,
    /// Number of records in the `data` list.
    pub data_count: usize,
    /// The records and read offsets that [`Store::commit`](super::Store::commit) releases once the body has been sent.
    pub receipt: PollReceipt,
}

/// The result of [`Store::poll_into`](super::Store::poll_into) besides the body it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSummary {
    /// Number of records in the `data` list.
    pub data_count: usize,
    /// The records and read offsets that [`Store::commit`](super::Store::commit) releases.
    pub receipt: PollReceipt,
}

/// The records and read offsets that one poll reply delivered, for [`Store::commit`](super::Store::commit) to release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollReceipt {
    /// Sequence number of the last `data` record delivered; when there was
    /// none, the session's registration number, which releases nothing.
    pub last_data_seq: u64,
    /// Read offset of the `extra` bucket after this reply, when it delivered any.
    pub extra_offset: Option<u64>,
    /// Read offset of the `tlddata` bucket after this reply, when it delivered any.
    pub tlddata_offset: Option<u64>,
}

/// Counters and gauges of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Live sessions.
    pub sessions: usize,
    /// Records queued over all sessions.
    pub queued_items: usize,
    /// Bytes of the queued records.
    pub queued_bytes: usize,
    /// Records held in the shared buckets.
    pub shared_items: usize,
    /// Bytes of the shared records.
    pub shared_bytes: usize,
    /// Session records dropped by the per-session limits since the store began.
    pub dropped_items: u64,
    /// Shared records dropped by the bucket caps since the store began.
    pub dropped_shared_items: u64,
    /// Sessions removed because their time to live passed or their owner was idle.
    pub expired_sessions: u64,
    /// Bytes the budget counts: see [`Store::total_bytes`](super::Store::total_bytes).
    pub total_bytes: usize,
    /// Records of idle sessions evicted to make room or on request.
    pub evicted_items: u64,
    /// Records rejected because they did not fit the budget.
    pub refused_items: u64,
    /// New sessions rejected because they did not fit the budget.
    pub refused_sessions: u64,
}
