//! The shared `extra` and `tlddata` buckets with per-consumer read offsets.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;

use super::session::{free, payload_len};
use super::RECORD_OVERHEAD;
use crate::error::Error;
use crate::slab::{Handle, SlabPool};

/// One of the two buckets whose plaintext records every consumer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SharedBucket {
    /// The token bucket: LDAP full log, FTP, SMB and Responder records.
    Extra,
    /// Wildcard captures of names under the configured domains.
    TldData,
}

impl SharedBucket {
    /// Returns the bucket's name, which is also its key in a poll reply.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Extra => "extra",
            Self::TldData => "tlddata",
        }
    }
}

impl FromStr for SharedBucket {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        match value {
            "extra" => Ok(Self::Extra),
            "tlddata" => Ok(Self::TldData),
            _ => Err(Error::InvalidBucket {
                value: value.to_owned(),
            }),
        }
    }
}

impl fmt::Display for SharedBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The retained records of one bucket and how far each consumer has read.
///
/// Records are numbered from 0 in insertion order; a consumer's offset is the
/// number of the next record it has not read.
#[derive(Debug, Default)]
pub(crate) struct SharedBuffer {
    items: VecDeque<Handle>,
    /// Number of the record at the front of `items`.
    first_seq: u64,
    /// Payload bytes of the retained records.
    pub(crate) bytes: usize,
    consumers: HashMap<Box<str>, u64>,
}

/// The caps of a shared bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SharedCaps {
    pub(crate) max_items: usize,
    pub(crate) max_bytes: usize,
}

impl SharedBuffer {
    /// Returns the number of retained records.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Returns the budget bytes that the caps would free for a new record of `len` bytes.
    pub(crate) fn cap_release(&self, len: usize, caps: SharedCaps, pool: &SlabPool) -> usize {
        let mut items = self.items.len() + 1;
        let mut bytes = self.bytes + len;
        let mut freed = 0;
        for handle in &self.items {
            if items <= caps.max_items && bytes <= caps.max_bytes {
                break;
            }
            let old = payload_len(pool, handle);
            items -= 1;
            bytes -= old;
            freed += old + RECORD_OVERHEAD;
        }
        freed
    }

    /// Appends a record of `len` bytes, then drops the oldest records beyond
    /// the caps; returns how many went.
    pub(crate) fn push(&mut self, handle: Handle, len: usize, caps: SharedCaps, pool: &mut SlabPool) -> usize {
        self.bytes += len;
        self.items.push_back(handle);
        let mut dropped = 0;
        while self.items.len() > caps.max_items || self.bytes > caps.max_bytes {
            let Some(oldest) = self.items.pop_front() else { break };
            self.bytes -= free(pool, oldest);
            self.first_seq += 1;
            dropped += 1;
        }
        dropped
    }

    /// Returns the number of `consumer`'s first unread record and the unread
    /// records; a new consumer starts at the oldest retained record.
    pub(crate) fn unread(&self, consumer: &str) -> (u64, impl ExactSizeIterator<Item = &Handle> + Clone) {
        let offset = self
            .consumers
            .get(consumer)
            .copied()
            .unwrap_or(self.first_seq)
            .max(self.first_seq);
        // Receipts only hold offsets up to the newest record, but a skip past the end reads nothing anyway.
        let skip = usize::try_from(offset - self.first_seq).unwrap_or(usize::MAX);
        (offset, self.items.iter().skip(skip))
    }

    /// Records that `consumer` has read every record numbered below `offset`.
    pub(crate) fn advance(&mut self, consumer: &str, offset: u64) {
        match self.consumers.get_mut(consumer) {
            Some(current) => *current = (*current).max(offset),
            None => {
                self.consumers.insert(consumer.into(), offset);
            }
        }
    }

    /// Forgets `consumer`, so that a later consumer of that name starts over.
    pub(crate) fn forget(&mut self, consumer: &str) {
        self.consumers.remove(consumer);
    }

    /// Returns spare capacity of the record queue and the consumer table to
    /// the allocator; returns the bytes released.
    pub(crate) fn shrink(&mut self) -> usize {
        let items = self.items.capacity();
        let consumers = self.consumers.capacity();
        self.items.shrink_to_fit();
        self.consumers.shrink_to_fit();
        (items - self.items.capacity()) * size_of::<Handle>()
            + (consumers - self.consumers.capacity()) * size_of::<(Box<str>, u64)>()
    }

    #[cfg(test)]
    pub(crate) fn consumer_count(&self) -> usize {
        self.consumers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::session::payload;

    const CAPS: SharedCaps = SharedCaps {
        max_items: 10,
        max_bytes: 1 << 20,
    };

    fn push(buffer: &mut SharedBuffer, pool: &mut SlabPool, text: &str, caps: SharedCaps) -> usize {
        let handle = pool.insert(text.as_bytes());
        buffer.push(handle, text.len(), caps, pool)
    }

    fn unread_texts(buffer: &SharedBuffer, pool: &SlabPool, consumer: &str) -> (u64, Vec<String>) {
        let (offset, items) = buffer.unread(consumer);
        (
            offset,
            items
                .map(|handle| String::from_utf8(payload(pool, handle).to_vec()).unwrap())
                .collect(),
        )
    }

    #[test]
    fn new_consumer_reads_backlog() {
        let mut pool = SlabPool::new();
        let mut buffer = SharedBuffer::default();
        push(&mut buffer, &mut pool, "a", CAPS);
        push(&mut buffer, &mut pool, "b", CAPS);
        assert_eq!(
            unread_texts(&buffer, &pool, "c1"),
            (0, vec!["a".to_owned(), "b".to_owned()])
        );
        buffer.advance("c1", 2);
        assert_eq!(unread_texts(&buffer, &pool, "c1"), (2, vec![]));
        assert_eq!(unread_texts(&buffer, &pool, "c2").1.len(), 2);
    }

    #[test]
    fn cap_drops_oldest_and_moves_lagging_consumers() {
        let mut pool = SlabPool::new();
        let mut buffer = SharedBuffer::default();
        buffer.advance("c1", 0);
        let caps = SharedCaps { max_items: 2, ..CAPS };
        let dropped: usize = ["a", "b", "c", "d"]
            .iter()
            .map(|text| push(&mut buffer, &mut pool, text, caps))
            .sum();
        assert_eq!(dropped, 2);
        assert_eq!(buffer.len(), 2);
        assert_eq!(buffer.bytes, 2);
        assert_eq!(pool.len(), 2, "dropped records leave the pool");
        assert_eq!(
            unread_texts(&buffer, &pool, "c1"),
            (2, vec!["c".to_owned(), "d".to_owned()])
        );
    }

    #[test]
    fn byte_cap_drops_oldest() {
        let mut pool = SlabPool::new();
        let mut buffer = SharedBuffer::default();
        let caps = SharedCaps { max_bytes: 5, ..CAPS };
        assert_eq!(buffer.cap_release(3, caps, &pool), 0);
        push(&mut buffer, &mut pool, "aaa", caps);
        assert_eq!(buffer.cap_release(3, caps, &pool), 3 + RECORD_OVERHEAD);
        assert_eq!(push(&mut buffer, &mut pool, "bbb", caps), 1);
        assert_eq!(buffer.bytes, 3);
        assert_eq!(unread_texts(&buffer, &pool, "c1"), (1, vec!["bbb".to_owned()]));
    }

    #[test]
    fn advance_never_moves_back_and_forget_restarts() {
        let mut pool = SlabPool::new();
        let mut buffer = SharedBuffer::default();
        push(&mut buffer, &mut pool, "a", CAPS);
        buffer.advance("c1", 1);
        buffer.advance("c1", 0);
        assert_eq!(unread_texts(&buffer, &pool, "c1").0, 1);
        buffer.forget("c1");
        assert_eq!(buffer.consumer_count(), 0);
        assert_eq!(unread_texts(&buffer, &pool, "c1").0, 0);
    }
}
