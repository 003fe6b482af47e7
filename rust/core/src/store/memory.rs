//! The byte budget: what each write costs, eviction of idle sessions' records,
//! idle expiry and returning memory to the allocator.
//!
//! [`Store::total_bytes`] counts every queued and shared payload exactly, plus
//! [`RECORD_OVERHEAD`] per record and a per-session overhead that covers the
//! session's entry in the map, its heap-held id, secret and wrapped key, and
//! its read offsets in both shared buckets. Spare capacity of the queues and
//! the rounding of payloads up to slab chunks are not counted: the pool's own
//! statistics report those.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rsa::traits::PublicKeyParts;
use rsa::PublicKey;

use super::options::check_seconds;
use super::session::{payload_len, Record, Released, Session};
use super::{SharedBucket, Store, RECORD_OVERHEAD};
use crate::error::{Error, Rejected};

/// A write that must fit the budget.
#[derive(Debug, Clone, Copy)]
pub(super) enum Write<'a> {
    /// A record of `len` bytes for the session `id`.
    Record { id: &'a str, len: usize },
    /// A record of `len` bytes for a shared bucket.
    Shared { bucket: SharedBucket, len: usize },
    /// A new session that costs `cost` bytes.
    Session { cost: usize },
}

impl Write<'_> {
    fn cost(self) -> usize {
        match self {
            Self::Record { len, .. } | Self::Shared { len, .. } => len + RECORD_OVERHEAD,
            Self::Session { cost } => cost,
        }
    }

    fn rejected(self) -> Rejected {
        match self {
            Self::Record { len, .. } => Rejected::Record { len },
            Self::Shared { len, .. } => Rejected::SharedRecord { len },
            Self::Session { .. } => Rejected::Session,
        }
    }
}

/// A write that must evict frees this fraction of the budget more than it
/// needs, so that the next writes find room without another search.
pub const EVICTION_HEADROOM_DIVISOR: usize = 64;

/// Bytes of a session apart from the lengths of its id, secret and wrapped key:
/// its map entry (key and value) and one read-offset entry in each shared bucket.
const SESSION_BASE_OVERHEAD: usize = size_of::<(Box<str>, Session)>() + 2 * size_of::<(Box<str>, u64)>();

/// Returns the length of the base64 text of an AES key wrapped under `public_key`.
pub(super) fn wrapped_key_len(public_key: &PublicKey) -> usize {
    public_key.size().div_ceil(3) * 4
}

/// Returns what a session costs against the budget, before the RSA work that wraps its key.
///
/// The id is held three times: as the map key and as the consumer key in each shared bucket.
pub(super) fn session_overhead(id_len: usize, secret_len: usize, public_key: &PublicKey) -> usize {
    SESSION_BASE_OVERHEAD + 3 * id_len + secret_len + wrapped_key_len(public_key)
}

impl Store {
    /// Returns the bytes that the budget counts: payloads, plus
    /// [`RECORD_OVERHEAD`] per record, plus each held session's overhead.
    pub fn total_bytes(&self) -> usize {
        let shared_items = self.extra.len() + self.tlddata.len();
        let payloads = self.queued_bytes + self.extra.bytes + self.tlddata.bytes;
        payloads + (self.queued_items + shared_items) * RECORD_OVERHEAD + self.session_overhead
    }

    /// Returns the byte budget of [`total_bytes`](Self::total_bytes), or `None` when there is none.
    pub fn budget(&self) -> Option<usize> {
        self.budget
    }

    /// Sets the byte budget, or `None` for none. It evicts nothing by itself:
    /// the next write that does not fit makes room.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a budget of 0.
    pub fn set_budget(&mut self, max_total_bytes: Option<usize>) -> Result<(), Error> {
        if max_total_bytes == Some(0) {
            return Err(Error::InvalidArgument {
                name: "max_total_bytes",
                reason: "0 is below 1: use at least 1 byte, or no budget".to_owned(),
            });
        }
        self.budget = max_total_bytes;
        Ok(())
    }

    /// Evicts the oldest records of idle sessions, oldest first across
    /// sessions, until [`total_bytes`](Self::total_bytes) is at most
    /// `target_bytes` or no idle session has a record left. Returns the number
    /// of records evicted.
    ///
    /// A session is idle when its owner has not registered or polled for
    /// `idle_eviction_seconds`, or when its time to live has passed.
    pub fn evict(&mut self, target_bytes: usize, now: f64) -> usize {
        self.evict_to(target_bytes, now)
    }

    /// Removes every session whose owner has not registered or polled for
    /// `idle_seconds`, and every session whose time to live has passed.
    /// Returns how many went; they count as expired.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `idle_seconds` is negative or not finite.
    pub fn expire_idle(&mut self, idle_seconds: f64, now: f64) -> Result<usize, Error> {
        check_seconds(idle_seconds).map_err(|reason| Error::InvalidArgument {
            name: "idle_seconds",
            reason,
        })?;
        Ok(self.remove_sessions_where(|session, options| {
            !session.is_live(options, now) || session.inactive_for(idle_seconds, now)
        }))
    }

    /// Returns free slab pages and the spare capacity of the queues and maps
    /// to the allocator; returns the bytes released.
    ///
    /// Queues regrow on the next records, so steady-state writes allocate
    /// again for a while after a shrink.
    pub fn shrink(&mut self) -> usize {
        let mut released = self.pool.shrink();
        for session in self.sessions.values_mut() {
            released += shrink_queue(&mut session.queue);
        }
        released += self.extra.shrink() + self.tlddata.shrink();
        let sessions = self.sessions.capacity();
        self.sessions.shrink_to_fit();
        released += (sessions - self.sessions.capacity()) * size_of::<(Box<str>, Session)>();
        released
    }

    /// Checks that `write` fits the budget, first evicting idle records to make room.
    ///
    /// Records that the write's session or bucket caps would drop count as freed.
    pub(super) fn make_room(&mut self, write: Write<'_>, now: f64) -> Result<(), Error> {
        let Some(budget) = self.budget else {
            return Ok(());
        };
        let cost = write.cost();
        if self.total_bytes().saturating_add(cost) <= budget {
            return Ok(());
        }
        let freed = self.cap_release(write);
        if self.fits(cost, freed, budget) {
            return Ok(());
        }
        if cost > budget.saturating_add(freed) {
            return Err(Error::LargerThanBudget {
                rejected: write.rejected(),
                cost,
                budget,
            });
        }
        if now >= self.idle_records_at {
            let headroom = budget / EVICTION_HEADROOM_DIVISOR;
            let target = budget
                .saturating_add(freed)
                .saturating_sub(cost.saturating_add(headroom));
            self.evict_to(target, now);
            // Eviction may have shortened the very queue that the write's caps trim.
            if self.fits(cost, self.cap_release(write), budget) {
                return Ok(());
            }
        }
        Err(Error::StoreFull {
            rejected: write.rejected(),
            total: self.total_bytes(),
            budget,
        })
    }

    /// Tells whether a write of `cost` bytes whose caps free `freed` bytes leaves the total within `budget`.
    fn fits(&self, cost: usize, freed: usize, budget: usize) -> bool {
        // The caps free bytes of records that the total counts, so `freed` never exceeds it.
        (self.total_bytes() - freed).saturating_add(cost) <= budget
    }

    /// Returns the budget bytes that the caps of `write`'s queue free for it.
    fn cap_release(&self, write: Write<'_>) -> usize {
        match write {
            Write::Record { id, len } => self
                .sessions
                .get(id)
                .map_or(0, |session| session.cap_release(len, &self.options, &self.pool)),
            Write::Shared { bucket, len } => self.bucket(bucket).cap_release(len, self.shared_caps(), &self.pool),
            Write::Session { .. } => 0,
        }
    }

    /// Evicts idle records, oldest first across sessions, until the total is at most `target`.
    ///
    /// The first pass merges the idle queues by sequence number without
    /// changing them, to find the newest record that must go. The second pass
    /// removes every idle record up to it, which are exactly the records the
    /// merge chose, because each queue is in sequence order.
    fn evict_to(&mut self, target: usize, now: f64) -> usize {
        let total = self.total_bytes();
        if total <= target {
            return 0;
        }
        let (last_seq, idle_left, next_idle) = self.find_eviction_cutoff(total - target, now);
        let mut released = Released::default();
        if let Some(last_seq) = last_seq {
            let Self {
                options,
                sessions,
                pool,
                ..
            } = self;
            for session in sessions.values_mut() {
                if !session.queue.is_empty() && now >= session.idle_since(options) {
                    let evicted = session.release_through(last_seq, pool);
                    released.items += evicted.items;
                    released.bytes += evicted.bytes;
                }
            }
        }
        self.account_release(released);
        self.evicted_items += released.items as u64;
        self.idle_records_at = if idle_left { now } else { next_idle };
        released.items
    }

    /// Merges the idle queues oldest first until their records add up to
    /// `excess` bytes. Returns the sequence number of the last record taken,
    /// whether idle records remain after it, and the earliest time at which a
    /// session that is not idle yet but has records turns idle.
    fn find_eviction_cutoff(&self, excess: usize, now: f64) -> (Option<u64>, bool, f64) {
        let mut queues: Vec<&VecDeque<Record>> = Vec::new();
        let mut next_idle = f64::INFINITY;
        for session in self.sessions.values() {
            if session.queue.is_empty() {
                continue;
            }
            let since = session.idle_since(&self.options);
            if now >= since {
                queues.push(&session.queue);
            } else {
                next_idle = next_idle.min(since);
            }
        }
        // Entries are (sequence number, queue, position in the queue).
        let mut heap: BinaryHeap<Reverse<(u64, usize, usize)>> = queues
            .iter()
            .enumerate()
            .filter_map(|(index, queue)| queue.front().map(|record| Reverse((record.seq, index, 0))))
            .collect();
        let mut left = excess;
        let mut last_seq = None;
        while left > 0 {
            let Some(Reverse((seq, index, position))) = heap.pop() else {
                break;
            };
            let record = &queues[index][position];
            left = left.saturating_sub(payload_len(&self.pool, &record.handle) + RECORD_OVERHEAD);
            last_seq = Some(seq);
            if let Some(next) = queues[index].get(position + 1) {
                heap.push(Reverse((next.seq, index, position + 1)));
            }
        }
        (last_seq, !heap.is_empty(), next_idle)
    }
}

/// Shrinks a queue's capacity to its length and returns the bytes released.
fn shrink_queue(queue: &mut VecDeque<Record>) -> usize {
    let before = queue.capacity();
    queue.shrink_to_fit();
    (before - queue.capacity()) * size_of::<Record>()
}
