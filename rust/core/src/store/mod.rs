//! The interaction store: sessions, their queues and the shared buckets.
//!
//! Time comes from the caller as `now`, seconds on any monotonic clock; the
//! store never reads a clock itself.

mod body;
mod options;
mod page;
mod session;
mod shared;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use self::body::poll_body;
use self::page::PageBudget;
use self::session::{Released, Session};
use self::shared::SharedBuffer;
use crate::crypto::{parse_public_key, AesMode, SessionKey};
use crate::error::Error;
use crate::ids;
use crate::payload::Payload;

pub use self::options::{Eviction, StoreOptions};
pub use self::shared::SharedBucket;

/// Sessions keyed by correlation id, each with a queue of records that are
/// encrypted for the session's client when polled, plus the shared buckets.
///
/// # Examples
///
/// ```
/// use interactsh_core::{Store, StoreOptions};
///
/// let mut store = Store::new(StoreOptions::default()).unwrap();
/// assert!(!store.push("c59e3crp82ke7bcnedq0", b"{}", 0.0)); // not registered
/// assert_eq!(store.len(), 0);
/// ```
#[derive(Debug)]
pub struct Store {
    options: StoreOptions,
    sessions: HashMap<Box<str>, Session>,
    extra: SharedBuffer,
    tlddata: SharedBuffer,
    next_seq: u64,
    queued_items: usize,
    queued_bytes: usize,
    dropped_items: u64,
    dropped_shared_items: u64,
    expired_sessions: u64,
}

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
    /// Number of records in the `data` list.
    pub data_count: usize,
    /// The records and read offsets that [`Store::commit`] releases once the body has been sent.
    pub receipt: PollReceipt,
}

/// The records and read offsets that one poll reply delivered, for [`Store::commit`] to release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollReceipt {
    /// The session's correlation id, lowercased.
    pub correlation_id: String,
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
    /// Shared records dropped by the bucket cap since the store began.
    pub dropped_shared_items: u64,
    /// Sessions removed because their time to live passed.
    pub expired_sessions: u64,
}

impl Store {
    /// Creates an empty store.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when a limit is out of range.
    pub fn new(options: StoreOptions) -> Result<Self, Error> {
        options.validate()?;
        Ok(Self {
            options,
            sessions: HashMap::new(),
            extra: SharedBuffer::default(),
            tlddata: SharedBuffer::default(),
            next_seq: 1,
            queued_items: 0,
            queued_bytes: 0,
            dropped_items: 0,
            dropped_shared_items: 0,
            expired_sessions: 0,
        })
    }

    /// Returns the store's options.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Registers a session, or refreshes it when `secret` matches a live one.
    ///
    /// The id is lowercased and validated, and the key is parsed, before
    /// anything else. A refresh keeps the queue, the AES key and the AES mode
    /// of the first registration; its `public_key` and `aes_mode` are only
    /// validated. Returns `true` for a new session and `false` for a refresh.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCorrelationId`], [`Error::InvalidPublicKey`], or
    /// [`Error::AlreadyRegistered`] when a live session has another secret.
    pub fn register(
        &mut self,
        correlation_id: &str,
        secret: &[u8],
        public_key: &str,
        aes_mode: Option<AesMode>,
        now: f64,
    ) -> Result<bool, Error> {
        let id = ids::normalize(correlation_id, self.options.correlation_id_length)?;
        let public_key = parse_public_key(public_key)?;
        if let Some(session) = self.sessions.get_mut(id.as_ref()) {
            if session.is_live(&self.options, now) {
                if !session.secret_matches(secret) {
                    return Err(Error::AlreadyRegistered);
                }
                session.refresh(now);
                return Ok(false);
            }
            self.remove_session(&id);
            self.expired_sessions += 1;
        }
        let key = SessionKey::generate(&public_key)?;
        let generation = self.take_seq();
        let mode = aes_mode.unwrap_or(self.options.aes_mode);
        self.sessions
            .insert(id.into(), Session::new(secret, key, mode, generation, now));
        Ok(true)
    }

    /// Removes a session and its queue, and drops its read offsets in the shared buckets.
    ///
    /// # Errors
    ///
    /// [`Error::SessionNotFound`] for an invalid, unknown or expired id and
    /// for a wrong secret; nothing changes then.
    pub fn deregister(&mut self, correlation_id: &str, secret: &[u8], now: f64) -> Result<(), Error> {
        let id = self.authenticate(correlation_id, secret, now)?;
        self.remove_session(&id);
        Ok(())
    }

    /// Tells whether a live session has this id.
    pub fn contains(&self, correlation_id: &str, now: f64) -> bool {
        self.live_session(correlation_id, now).is_some()
    }

    /// Queues a copy of `record` for a live session; `false` when there is none.
    ///
    /// Inbound records never extend the session's time to live. When the
    /// session's limits are exceeded the oldest records are dropped and
    /// counted; a record larger than `max_session_bytes` is dropped itself.
    pub fn push(&mut self, correlation_id: &str, record: &[u8], now: f64) -> bool {
        let Some(id) = ids::normalize_quietly(correlation_id, self.options.correlation_id_length) else {
            return false;
        };
        let seq = self.next_seq;
        let Some(session) = self.sessions.get_mut(id.as_ref()) else {
            return false;
        };
        if !session.is_live(&self.options, now) {
            return false;
        }
        self.next_seq += 1;
        let dropped = session.push(seq, Payload::from(record), &self.options);
        self.queued_items += 1;
        self.queued_bytes += record.len();
        self.account_release(dropped);
        self.dropped_items += dropped.items as u64;
        true
    }

    /// Adds a copy of `record` to a shared bucket, dropping its oldest records
    /// beyond `max_shared_items`.
    pub fn push_shared(&mut self, bucket: SharedBucket, record: &[u8]) {
        let max_items = self.options.max_shared_items;
        let dropped = self.bucket_mut(bucket).push(Payload::from(record), max_items);
        self.dropped_shared_items += dropped as u64;
    }

    /// Builds the next page of the session's records, encrypted, and of the
    /// requested shared buckets, without removing anything.
    ///
    /// A successful poll restarts a sliding time to live.
    ///
    /// # Errors
    ///
    /// [`Error::SessionNotFound`] for an invalid, unknown or expired id and
    /// for a wrong secret; nothing changes then.
    pub fn poll(
        &mut self,
        correlation_id: &str,
        secret: &[u8],
        shared: SharedRequest,
        now: f64,
    ) -> Result<PollPage, Error> {
        let id = self.authenticate(correlation_id, secret, now)?;
        let options = &self.options;
        let Some(session) = self.sessions.get_mut(id.as_str()) else {
            return Err(Error::SessionNotFound);
        };
        session.refresh(now);
        let mut budget = PageBudget::new(options.max_page_items, options.max_page_bytes);

        let data_len = budget.take(session.queue.iter().map(|record| record.payload.len()));
        let last_data_seq = data_len
            .checked_sub(1)
            .and_then(|last| session.queue.get(last))
            .map_or(session.generation, |record| record.seq);
        let (extra, extra_offset) = read_shared(shared.extra.then_some(&self.extra), &id, &mut budget);
        let (tlddata, tlddata_offset) = read_shared(shared.tlddata.then_some(&self.tlddata), &id, &mut budget);

        let data = session.queue.range(..data_len).map(|record| &record.payload);
        let mut sealer = session.key.sealer(session.mode);
        let body = poll_body(data, &mut sealer, &extra, session.key.wrapped(), &tlddata);
        Ok(PollPage {
            body,
            data_count: data_len,
            receipt: PollReceipt {
                correlation_id: id,
                last_data_seq,
                extra_offset,
                tlddata_offset,
            },
        })
    }

    /// Removes what a poll reply delivered; committing it again does nothing.
    ///
    /// Records queued after the poll stay. A receipt of a session that is
    /// gone, or of an earlier registration of the same id, changes nothing.
    pub fn commit(&mut self, receipt: &PollReceipt) {
        let id = receipt.correlation_id.as_str();
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        if receipt.last_data_seq < session.generation {
            return;
        }
        let released = session.release_through(receipt.last_data_seq);
        self.account_release(released);
        if let Some(offset) = receipt.extra_offset {
            self.extra.advance(id, offset);
        }
        if let Some(offset) = receipt.tlddata_offset {
            self.tlddata.advance(id, offset);
        }
    }

    /// Removes the sessions whose time to live has passed; returns how many went.
    pub fn expire(&mut self, now: f64) -> usize {
        if self.options.ttl_seconds.is_none() {
            return 0;
        }
        let options = &self.options;
        let expired: Vec<Box<str>> = self
            .sessions
            .iter()
            .filter(|(_, session)| !session.is_live(options, now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.remove_session(id);
        }
        self.expired_sessions += expired.len() as u64;
        expired.len()
    }

    /// Returns the current counters and gauges, counting the sessions live at `now`.
    pub fn stats(&self, now: f64) -> StoreStats {
        StoreStats {
            sessions: self.live_len(now),
            queued_items: self.queued_items,
            queued_bytes: self.queued_bytes,
            shared_items: self.extra.len() + self.tlddata.len(),
            shared_bytes: self.extra.bytes + self.tlddata.bytes,
            dropped_items: self.dropped_items,
            dropped_shared_items: self.dropped_shared_items,
            expired_sessions: self.expired_sessions,
        }
    }

    /// Returns the number of sessions held, including expired ones that
    /// [`Store::expire`] has not removed yet.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Tells whether the store contains no session.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Returns the number of sessions that are live at `now`.
    ///
    /// NOTE: this scans every session, as [`Store::expire`] does, so its cost
    /// grows with the number of sessions. Keeping sessions in deadline order
    /// would make both proportional to the expired sessions only.
    pub fn live_len(&self, now: f64) -> usize {
        self.sessions
            .values()
            .filter(|session| session.is_live(&self.options, now))
            .count()
    }

    /// Returns the lowercased id of the live session that `secret` opens.
    fn authenticate(&self, correlation_id: &str, secret: &[u8], now: f64) -> Result<String, Error> {
        let id =
            ids::normalize_quietly(correlation_id, self.options.correlation_id_length).ok_or(Error::SessionNotFound)?;
        match self.sessions.get(id.as_ref()) {
            Some(session) if session.is_live(&self.options, now) && session.secret_matches(secret) => {
                Ok(id.into_owned())
            }
            _ => Err(Error::SessionNotFound),
        }
    }

    fn live_session(&self, correlation_id: &str, now: f64) -> Option<&Session> {
        let id = ids::normalize_quietly(correlation_id, self.options.correlation_id_length)?;
        self.sessions
            .get(id.as_ref())
            .filter(|session| session.is_live(&self.options, now))
    }

    /// Removes a session, its queued records and its shared read offsets.
    fn remove_session(&mut self, id: &str) {
        if let Some(session) = self.sessions.remove(id) {
            self.account_release(Released {
                items: session.queue.len(),
                bytes: session.bytes,
            });
        }
        self.extra.forget(id);
        self.tlddata.forget(id);
    }

    fn account_release(&mut self, released: Released) {
        self.queued_items -= released.items;
        self.queued_bytes -= released.bytes;
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn bucket_mut(&mut self, bucket: SharedBucket) -> &mut SharedBuffer {
        match bucket {
            SharedBucket::Extra => &mut self.extra,
            SharedBucket::TldData => &mut self.tlddata,
        }
    }
}

/// Returns the consumer's next records of a shared bucket that fit the page,
/// and the bucket's read offset after them. A bucket that the poll did not
/// request (`None`) gives no records and no offset.
fn read_shared<'a>(
    buffer: Option<&'a SharedBuffer>,
    consumer: &str,
    budget: &mut PageBudget,
) -> (Vec<&'a Payload>, Option<u64>) {
    let Some(buffer) = buffer else {
        return (Vec::new(), None);
    };
    let (start, unread) = buffer.unread(consumer);
    let len = budget.take(unread.clone().map(Payload::len));
    let offset = (len > 0).then(|| start + len as u64);
    (unread.take(len).collect(), offset)
}
