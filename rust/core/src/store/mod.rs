//! The interaction store: sessions, their queues and the shared buckets.
//!
//! Time comes from the caller as `now`, seconds on any monotonic clock; the
//! store never reads a clock itself. Every payload lives in one
//! [`SlabPool`], pooled or unpooled as [`StoreOptions::pooled`] sets, and the
//! queues contain only handles into it.

mod body;
mod memory;
mod options;
mod page;
mod reply;
mod session;
mod shared;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_memory;

use std::borrow::Cow;
use std::collections::HashMap;

use self::body::write_poll_body;
use self::page::PageBudget;
use self::session::{payload, Record, Released, Session};
use self::shared::{SharedBuffer, SharedCaps};
use crate::crypto::{parse_public_key, AesMode, Sealer, SessionKey};
use crate::error::Error;
use crate::ids;
use crate::slab::{Handle, PoolStats, SlabPool};

pub use self::memory::EVICTION_HEADROOM_DIVISOR;
pub use self::options::{Eviction, StoreOptions};
pub use self::reply::{PollPage, PollReceipt, PollSummary, SharedRequest, StoreStats};
pub use self::shared::SharedBucket;

/// The budget cost of each queued or shared record on top of its payload:
/// the queue entry that contains its sequence number and handle.
pub const RECORD_OVERHEAD: usize = size_of::<Record>();

/// Sessions keyed by correlation id, each with a queue of records that are
/// encrypted for the session's client when polled, plus the shared buckets.
///
/// # Examples
///
/// ```
/// use interactsh_core::{Store, StoreOptions};
///
/// let mut store = Store::new(StoreOptions::default()).unwrap();
/// assert!(!store.push("c59e3crp82ke7bcnedq0", b"{}", 0.0).unwrap()); // not registered
/// assert_eq!(store.len(), 0);
/// ```
#[derive(Debug)]
pub struct Store {
    options: StoreOptions,
    sessions: HashMap<Box<str>, Session>,
    pool: SlabPool,
    extra: SharedBuffer,
    tlddata: SharedBuffer,
    next_seq: u64,
    queued_items: usize,
    queued_bytes: usize,
    /// Sum of the overheads of the sessions held, expired ones included.
    session_overhead: usize,
    budget: Option<usize>,
    /// No session contains an idle record before this time, so a full store
    /// rejects writes without searching until then. Appends lower it.
    idle_records_at: f64,
    /// The sealer's scratch buffer, kept between polls so that they allocate nothing.
    seal_buffer: Vec<u8>,
    dropped_items: u64,
    dropped_shared_items: u64,
    expired_sessions: u64,
    evicted_items: u64,
    refused_items: u64,
    refused_sessions: u64,
}

impl Store {
    /// Creates an empty store.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when a limit is out of range.
    pub fn new(options: StoreOptions) -> Result<Self, Error> {
        options.validate()?;
        let pool = if options.pooled {
            SlabPool::new()
        } else {
            SlabPool::unpooled()
        };
        Ok(Self {
            budget: options.max_total_bytes,
            options,
            sessions: HashMap::new(),
            pool,
            extra: SharedBuffer::default(),
            tlddata: SharedBuffer::default(),
            next_seq: 1,
            queued_items: 0,
            queued_bytes: 0,
            session_overhead: 0,
            idle_records_at: f64::INFINITY,
            seal_buffer: Vec::new(),
            dropped_items: 0,
            dropped_shared_items: 0,
            expired_sessions: 0,
            evicted_items: 0,
            refused_items: 0,
            refused_sessions: 0,
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
    /// of the first registration. Its `public_key` and `aes_mode` are only
    /// validated, and it is never rejected for lack of room. Returns `true`
    /// for a new session and `false` for a refresh.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCorrelationId`], [`Error::InvalidPublicKey`],
    /// [`Error::AlreadyRegistered`] when a live session has another secret, and
    /// [`Error::StoreFull`] or [`Error::LargerThanBudget`] when a new session
    /// does not fit the budget.
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
        let overhead = memory::session_overhead(id.len(), secret.len(), &public_key);
        if let Err(error) = self.make_room(memory::Write::Session { cost: overhead }, now) {
            self.refused_sessions += 1;
            return Err(error);
        }
        let key = SessionKey::generate(&public_key)?;
        debug_assert_eq!(key.wrapped().len(), memory::wrapped_key_len(&public_key));
        let generation = self.take_seq();
        let mode = aes_mode.unwrap_or(self.options.aes_mode);
        let session = Session::new(secret, key, mode, generation, overhead, now);
        self.sessions.insert(id.into(), session);
        self.session_overhead += overhead;
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

    /// Queues a copy of `record` for a live session; `Ok(false)` when there is none.
    ///
    /// Inbound records never extend the session's time to live. When the
    /// session's limits are exceeded the oldest records are dropped and
    /// counted; a record larger than `max_session_bytes` is dropped itself.
    ///
    /// # Errors
    ///
    /// [`Error::StoreFull`] or [`Error::LargerThanBudget`] when the record does
    /// not fit the budget, and [`Error::Pool`] in the unlikely case that the
    /// pool numbers no more payloads of its size. Nothing is stored then.
    pub fn push(&mut self, correlation_id: &str, record: &[u8], now: f64) -> Result<bool, Error> {
        let Some(id) = ids::normalize_quietly(correlation_id, self.options.correlation_id_length) else {
            return Ok(false);
        };
        match self.sessions.get(id.as_ref()) {
            Some(session) if session.is_live(&self.options, now) => {}
            _ => return Ok(false),
        }
        if record.len() > self.options.max_session_bytes {
            self.dropped_items += 1;
            return Ok(true);
        }
        let write = memory::Write::Record {
            id: &id,
            len: record.len(),
        };
        let handle = match self
            .make_room(write, now)
            .and_then(|()| Ok(self.pool.try_insert(record)?))
        {
            Ok(handle) => handle,
            Err(error) => {
                self.refused_items += 1;
                return Err(error);
            }
        };
        Ok(self.queue_record(&id, handle, record.len()))
    }

    /// Queues a handle that [`push`](Self::push) inserted into the pool.
    fn queue_record(&mut self, id: &str, handle: Handle, len: usize) -> bool {
        let seq = self.take_seq();
        let Some(session) = self.sessions.get_mut(id) else {
            // `push` checked the session, and making room never removes one.
            self.pool.remove(handle);
            return false;
        };
        let dropped = session.push(Record { seq, handle }, len, &self.options, &mut self.pool);
        self.idle_records_at = self.idle_records_at.min(session.idle_since(&self.options));
        self.queued_items += 1;
        self.queued_bytes += len;
        self.account_release(dropped);
        self.dropped_items += dropped.items as u64;
        true
    }

    /// Adds a copy of `record` to a shared bucket, dropping its oldest records
    /// beyond `max_shared_items` and `max_shared_bytes`. A record larger than
    /// `max_shared_bytes` is dropped itself.
    ///
    /// # Errors
    ///
    /// As for [`push`](Self::push).
    pub fn push_shared(&mut self, bucket: SharedBucket, record: &[u8], now: f64) -> Result<(), Error> {
        let caps = self.shared_caps();
        if record.len() > caps.max_bytes {
            self.dropped_shared_items += 1;
            return Ok(());
        }
        let write = memory::Write::Shared {
            bucket,
            len: record.len(),
        };
        let handle = match self
            .make_room(write, now)
            .and_then(|()| Ok(self.pool.try_insert(record)?))
        {
            Ok(handle) => handle,
            Err(error) => {
                self.refused_items += 1;
                return Err(error);
            }
        };
        let Self {
            extra, tlddata, pool, ..
        } = self;
        let buffer = match bucket {
            SharedBucket::Extra => extra,
            SharedBucket::TldData => tlddata,
        };
        let dropped = buffer.push(handle, record.len(), caps, pool);
        self.dropped_shared_items += dropped as u64;
        Ok(())
    }

    /// Builds the next page of the session's records, encrypted, and of the
    /// requested shared buckets, without removing anything.
    ///
    /// A successful poll restarts a sliding time to live and the session's idle time.
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
        let mut body = String::new();
        let summary = self.poll_into(correlation_id, secret, shared, now, &mut body)?;
        Ok(PollPage {
            body: body.into_bytes(),
            correlation_id: correlation_id.to_ascii_lowercase(),
            data_count: summary.data_count,
            receipt: summary.receipt,
        })
    }

    /// Does what [`poll`](Self::poll) does, writing the body into `body`
    /// (replacing its contents) instead of a new buffer.
    ///
    /// With a `body` whose capacity fits the page, and a session and shared
    /// read offsets that already exist, it makes no heap allocation.
    ///
    /// # Errors
    ///
    /// As for [`poll`](Self::poll); `body` is left as it was then.
    pub fn poll_into(
        &mut self,
        correlation_id: &str,
        secret: &[u8],
        shared: SharedRequest,
        now: f64,
        body: &mut String,
    ) -> Result<PollSummary, Error> {
        let id = self.authenticate(correlation_id, secret, now)?;
        let Self {
            options,
            sessions,
            pool,
            extra,
            tlddata,
            seal_buffer,
            ..
        } = self;
        let Some(session) = sessions.get_mut(id.as_ref()) else {
            return Err(Error::SessionNotFound);
        };
        session.refresh(now);
        let mut budget = PageBudget::new(options.max_page_items, options.max_page_bytes);

        let pool = &*pool;
        let data_len = budget.take(session.queue.iter().map(|record| payload(pool, &record.handle).len()));
        let last_data_seq = data_len
            .checked_sub(1)
            .and_then(|last| session.queue.get(last))
            .map_or(session.generation, |record| record.seq);
        let (extra_items, extra_offset) = read_shared(extra, shared.extra, &id, &mut budget, pool);
        let (tld_items, tlddata_offset) = read_shared(tlddata, shared.tlddata, &id, &mut budget, pool);

        let data = session
            .queue
            .range(..data_len)
            .map(|record| payload(pool, &record.handle));
        let mut sealer = Sealer::with_buffer(session.key.as_bytes(), session.mode, std::mem::take(seal_buffer));
        write_poll_body(body, data, &mut sealer, extra_items, session.key.wrapped(), tld_items);
        *seal_buffer = sealer.into_buffer();
        Ok(PollSummary {
            data_count: data_len,
            receipt: PollReceipt {
                last_data_seq,
                extra_offset,
                tlddata_offset,
            },
        })
    }

    /// Removes what a poll reply of the session `correlation_id` delivered;
    /// committing it again does nothing.
    ///
    /// `correlation_id` is the lowercased id, as [`PollPage::correlation_id`]
    /// contains it. Records queued after the poll stay. A receipt of a session
    /// that is gone, or of an earlier registration of the same id, changes nothing.
    pub fn commit(&mut self, correlation_id: &str, receipt: &PollReceipt) {
        let Some(session) = self.sessions.get_mut(correlation_id) else {
            return;
        };
        if receipt.last_data_seq < session.generation {
            return;
        }
        let released = session.release_through(receipt.last_data_seq, &mut self.pool);
        self.account_release(released);
        if let Some(offset) = receipt.extra_offset {
            self.extra.advance(correlation_id, offset);
        }
        if let Some(offset) = receipt.tlddata_offset {
            self.tlddata.advance(correlation_id, offset);
        }
    }

    /// Removes the sessions whose time to live has passed; returns how many went.
    pub fn expire(&mut self, now: f64) -> usize {
        if self.options.ttl_seconds.is_none() {
            return 0;
        }
        self.remove_sessions_where(|session, options| !session.is_live(options, now))
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
            total_bytes: self.total_bytes(),
            evicted_items: self.evicted_items,
            refused_items: self.refused_items,
            refused_sessions: self.refused_sessions,
        }
    }

    /// Returns the figures of the slab pool that contains every payload.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
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
    fn authenticate<'a>(&self, correlation_id: &'a str, secret: &[u8], now: f64) -> Result<Cow<'a, str>, Error> {
        let id =
            ids::normalize_quietly(correlation_id, self.options.correlation_id_length).ok_or(Error::SessionNotFound)?;
        match self.sessions.get(id.as_ref()) {
            Some(session) if session.is_live(&self.options, now) && session.secret_matches(secret) => Ok(id),
            _ => Err(Error::SessionNotFound),
        }
    }

    fn live_session(&self, correlation_id: &str, now: f64) -> Option<&Session> {
        let id = ids::normalize_quietly(correlation_id, self.options.correlation_id_length)?;
        self.sessions
            .get(id.as_ref())
            .filter(|session| session.is_live(&self.options, now))
    }

    /// Removes every session for which `doomed` is true; returns how many went.
    ///
    /// Each removal counts in `expired_sessions`.
    fn remove_sessions_where(&mut self, doomed: impl Fn(&Session, &StoreOptions) -> bool) -> usize {
        let ids: Vec<Box<str>> = self
            .sessions
            .iter()
            .filter(|(_, session)| doomed(session, &self.options))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.remove_session(id);
        }
        self.expired_sessions += ids.len() as u64;
        ids.len()
    }

    /// Removes a session, its queued records and its shared read offsets.
    fn remove_session(&mut self, id: &str) {
        if let Some(mut session) = self.sessions.remove(id) {
            let released = session.clear(&mut self.pool);
            self.account_release(released);
            self.session_overhead -= session.overhead;
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

    fn shared_caps(&self) -> SharedCaps {
        SharedCaps {
            max_items: self.options.max_shared_items,
            max_bytes: self.options.max_shared_bytes,
        }
    }

    fn bucket(&self, bucket: SharedBucket) -> &SharedBuffer {
        match bucket {
            SharedBucket::Extra => &self.extra,
            SharedBucket::TldData => &self.tlddata,
        }
    }
}

/// Returns the consumer's next records of a shared bucket that fit the page,
/// and the bucket's read offset after them. A bucket that the poll did not
/// request gives no records and no offset.
fn read_shared<'a>(
    buffer: &'a SharedBuffer,
    requested: bool,
    consumer: &str,
    budget: &mut PageBudget,
    pool: &'a SlabPool,
) -> (impl ExactSizeIterator<Item = &'a [u8]> + Clone, Option<u64>) {
    let (start, unread) = buffer.unread(consumer);
    let len = if requested {
        budget.take(unread.clone().map(|handle| payload(pool, handle).len()))
    } else {
        0
    };
    let offset = (len > 0).then(|| start + len as u64);
    (unread.take(len).map(move |handle| payload(pool, handle)), offset)
}
