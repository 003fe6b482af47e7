//! One registered session and its queue of records.

use std::collections::VecDeque;

use subtle::ConstantTimeEq;

use super::options::{Eviction, StoreOptions};
use super::RECORD_OVERHEAD;
use crate::crypto::{AesMode, SessionKey};
use crate::slab::{Handle, SlabPool};

/// A queued record: its store-wide sequence number and its payload in the store's pool.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) seq: u64,
    pub(crate) handle: Handle,
}

/// The records and payload bytes that a removal took out of a queue, for the store's totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Released {
    pub(crate) items: usize,
    pub(crate) bytes: usize,
}

impl Released {
    fn add(&mut self, len: usize) {
        self.items += 1;
        self.bytes += len;
    }
}

/// A registered correlation id.
#[derive(Debug)]
pub(crate) struct Session {
    secret: Box<[u8]>,
    pub(crate) key: SessionKey,
    pub(crate) mode: AesMode,
    /// A sequence number drawn at registration: every record of this
    /// registration has a larger one, and every record of an earlier
    /// registration of the same id a smaller one.
    pub(crate) generation: u64,
    registered_at: f64,
    /// The owner's last successful register or poll, under either eviction strategy.
    active_at: f64,
    /// The session's own cost against the store's budget.
    pub(crate) overhead: usize,
    pub(crate) queue: VecDeque<Record>,
    /// Payload bytes of the queued records.
    pub(crate) bytes: usize,
}

impl Session {
    pub(crate) fn new(
        secret: &[u8],
        key: SessionKey,
        mode: AesMode,
        generation: u64,
        overhead: usize,
        now: f64,
    ) -> Self {
        Self {
            secret: secret.into(),
            key,
            mode,
            generation,
            registered_at: now,
            active_at: now,
            overhead,
            queue: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Compares the secret in time that depends only on the lengths.
    pub(crate) fn secret_matches(&self, secret: &[u8]) -> bool {
        bool::from(self.secret.as_ref().ct_eq(secret))
    }

    /// Returns the time at which the session stops being live, or infinity.
    fn deadline(&self, options: &StoreOptions) -> f64 {
        let Some(ttl) = options.ttl_seconds else {
            return f64::INFINITY;
        };
        let anchor = match options.eviction {
            // Only the owner's actions refresh a sliding TTL, so its anchor is the last activity.
            Eviction::Sliding => self.active_at,
            Eviction::Fixed => self.registered_at,
        };
        // Written as the Python engine writes it, so both agree to the last bit.
        anchor + ttl
    }

    /// Tells whether the session is still live at `now`.
    pub(crate) fn is_live(&self, options: &StoreOptions, now: f64) -> bool {
        now < self.deadline(options)
    }

    /// Returns the time from which the session is idle: when its owner's idle
    /// time runs out or its TTL passes, whichever comes first.
    pub(crate) fn idle_since(&self, options: &StoreOptions) -> f64 {
        (self.active_at + options.idle_eviction_seconds).min(self.deadline(options))
    }

    /// Records an authenticated action of the owner, which restarts a sliding TTL and the idle time.
    pub(crate) fn refresh(&mut self, now: f64) {
        self.active_at = now;
    }

    /// Tells whether the owner has been inactive for at least `idle_seconds` at `now`.
    pub(crate) fn inactive_for(&self, idle_seconds: f64, now: f64) -> bool {
        now >= self.active_at + idle_seconds
    }

    /// Returns the budget bytes that the session caps would free for a new record of `len` bytes.
    pub(crate) fn cap_release(&self, len: usize, options: &StoreOptions, pool: &SlabPool) -> usize {
        let mut items = self.queue.len() + 1;
        let mut bytes = self.bytes + len;
        let mut freed = 0;
        for record in &self.queue {
            if items <= options.max_session_items && bytes <= options.max_session_bytes {
                break;
            }
            let old = payload_len(pool, &record.handle);
            items -= 1;
            bytes -= old;
            freed += old + RECORD_OVERHEAD;
        }
        freed
    }

    /// Queues a record of `len` bytes, then drops the oldest records while the
    /// queue contains more than the session limits allow; returns what was dropped.
    ///
    /// The caller drops a record larger than `max_session_bytes` before it gets here.
    pub(crate) fn push(&mut self, record: Record, len: usize, options: &StoreOptions, pool: &mut SlabPool) -> Released {
        self.bytes += len;
        self.queue.push_back(record);
        let mut dropped = Released::default();
        while self.queue.len() > options.max_session_items || self.bytes > options.max_session_bytes {
            let Some(len) = self.pop_oldest(pool) else { break };
            dropped.add(len);
        }
        dropped
    }

    /// Removes the oldest record and returns its length.
    pub(crate) fn pop_oldest(&mut self, pool: &mut SlabPool) -> Option<usize> {
        let record = self.queue.pop_front()?;
        let len = free(pool, record.handle);
        self.bytes -= len;
        Some(len)
    }

    /// Removes the records up to and including sequence number `seq`.
    pub(crate) fn release_through(&mut self, seq: u64, pool: &mut SlabPool) -> Released {
        let mut released = Released::default();
        while self.queue.front().is_some_and(|record| record.seq <= seq) {
            if let Some(len) = self.pop_oldest(pool) {
                released.add(len);
            }
        }
        released
    }

    /// Removes every record, returning its payload to the pool.
    pub(crate) fn clear(&mut self, pool: &mut SlabPool) -> Released {
        self.release_through(u64::MAX, pool)
    }
}

/// Returns the bytes of a payload that the store put in `pool`.
///
/// # Panics
///
/// Panics when the handle is not `pool`'s, which the store never lets happen:
/// every handle it queues came from its own pool and is removed only once.
pub(crate) fn payload<'a>(pool: &'a SlabPool, handle: &Handle) -> &'a [u8] {
    pool.get(handle).expect("a queued handle belongs to the store's pool")
}

/// Returns the length of a payload in `pool`; see [`payload`].
pub(crate) fn payload_len(pool: &SlabPool, handle: &Handle) -> usize {
    payload(pool, handle).len()
}

/// Removes a payload from `pool` and returns its length; see [`payload`].
pub(crate) fn free(pool: &mut SlabPool, handle: Handle) -> usize {
    pool.remove(handle)
        .expect("a queued handle belongs to the store's pool")
}
