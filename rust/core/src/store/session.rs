//! One registered session and its queue of records.

use std::collections::VecDeque;

use subtle::ConstantTimeEq;

use super::options::{Eviction, StoreOptions};
use crate::crypto::{AesMode, SessionKey};
use crate::payload::Payload;

/// A queued record and its store-wide sequence number.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) seq: u64,
    pub(crate) payload: Payload,
}

/// The records and bytes that a removal took out of a queue, for the store's totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Released {
    pub(crate) items: usize,
    pub(crate) bytes: usize,
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
    refreshed_at: f64,
    pub(crate) queue: VecDeque<Record>,
    pub(crate) bytes: usize,
}

impl Session {
    pub(crate) fn new(secret: &[u8], key: SessionKey, mode: AesMode, generation: u64, now: f64) -> Self {
        Self {
            secret: secret.into(),
            key,
            mode,
            generation,
            registered_at: now,
            refreshed_at: now,
            queue: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Compares the secret in time that depends only on the lengths.
    pub(crate) fn secret_matches(&self, secret: &[u8]) -> bool {
        bool::from(self.secret.as_ref().ct_eq(secret))
    }

    /// Tells whether the session is still live at `now`.
    pub(crate) fn is_live(&self, options: &StoreOptions, now: f64) -> bool {
        let Some(ttl) = options.ttl_seconds else {
            return true;
        };
        let anchor = match options.eviction {
            Eviction::Sliding => self.refreshed_at,
            Eviction::Fixed => self.registered_at,
        };
        // Written as the Python engine writes it, so both agree to the last bit.
        now < anchor + ttl
    }

    /// Restarts the sliding time to live after an authenticated action.
    pub(crate) fn refresh(&mut self, now: f64) {
        self.refreshed_at = now;
    }

    /// Queues `payload`, then drops the oldest records while the queue contains
    /// more than the session limits allow; returns how many records went.
    ///
    /// A record larger than `max_session_bytes` is dropped itself and leaves
    /// the queue as it was.
    pub(crate) fn push(&mut self, seq: u64, payload: Payload, options: &StoreOptions) -> Released {
        if payload.len() > options.max_session_bytes {
            return Released {
                items: 1,
                bytes: payload.len(),
            };
        }
        self.bytes += payload.len();
        self.queue.push_back(Record { seq, payload });
        let mut dropped = Released::default();
        while self.queue.len() > options.max_session_items || self.bytes > options.max_session_bytes {
            let Some(oldest) = self.queue.pop_front() else { break };
            self.bytes -= oldest.payload.len();
            dropped.items += 1;
            dropped.bytes += oldest.payload.len();
        }
        dropped
    }

    /// Removes the records up to and including sequence number `seq`.
    pub(crate) fn release_through(&mut self, seq: u64) -> Released {
        let mut released = Released::default();
        while self.queue.front().is_some_and(|record| record.seq <= seq) {
            if let Some(record) = self.queue.pop_front() {
                self.bytes -= record.payload.len();
                released.items += 1;
                released.bytes += record.payload.len();
            }
        }
        released
    }
}
