//! The shared `extra` and `tlddata` buckets with per-consumer read offsets.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::payload::Payload;

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
    items: VecDeque<Payload>,
    /// Number of the record at the front of `items`.
    first_seq: u64,
    pub(crate) bytes: usize,
    consumers: HashMap<Box<str>, u64>,
}

impl SharedBuffer {
    /// Returns the number of retained records.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Appends `payload`, then drops the oldest records beyond `max_items`;
    /// returns how many went.
    pub(crate) fn push(&mut self, payload: Payload, max_items: usize) -> usize {
        self.bytes += payload.len();
        self.items.push_back(payload);
        let mut dropped = 0;
        while self.items.len() > max_items {
            let Some(oldest) = self.items.pop_front() else { break };
            self.bytes -= oldest.len();
            self.first_seq += 1;
            dropped += 1;
        }
        dropped
    }

    /// Returns the number of `consumer`'s first unread record and the unread
    /// records; a new consumer starts at the oldest retained record.
    pub(crate) fn unread(&self, consumer: &str) -> (u64, impl ExactSizeIterator<Item = &Payload> + Clone) {
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

    #[cfg(test)]
    pub(crate) fn consumer_count(&self) -> usize {
        self.consumers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(text: &str) -> Payload {
        Payload::from(text.as_bytes())
    }

    fn unread_texts(buffer: &SharedBuffer, consumer: &str) -> (u64, Vec<String>) {
        let (offset, items) = buffer.unread(consumer);
        (
            offset,
            items
                .map(|item| String::from_utf8(item.as_bytes().to_vec()).unwrap())
                .collect(),
        )
    }

    #[test]
    fn new_consumer_reads_backlog() {
        let mut buffer = SharedBuffer::default();
        buffer.push(payload("a"), 10);
        buffer.push(payload("b"), 10);
        assert_eq!(unread_texts(&buffer, "c1"), (0, vec!["a".to_owned(), "b".to_owned()]));
        buffer.advance("c1", 2);
        assert_eq!(unread_texts(&buffer, "c1"), (2, vec![]));
        assert_eq!(unread_texts(&buffer, "c2").1.len(), 2);
    }

    #[test]
    fn cap_drops_oldest_and_moves_lagging_consumers() {
        let mut buffer = SharedBuffer::default();
        buffer.advance("c1", 0);
        let dropped: usize = ["a", "b", "c", "d"]
            .iter()
            .map(|text| buffer.push(payload(text), 2))
            .sum();
        assert_eq!(dropped, 2);
        assert_eq!(buffer.len(), 2);
        assert_eq!(buffer.bytes, 2);
        assert_eq!(unread_texts(&buffer, "c1"), (2, vec!["c".to_owned(), "d".to_owned()]));
    }

    #[test]
    fn advance_never_moves_back_and_forget_restarts() {
        let mut buffer = SharedBuffer::default();
        buffer.push(payload("a"), 10);
        buffer.advance("c1", 1);
        buffer.advance("c1", 0);
        assert_eq!(unread_texts(&buffer, "c1").0, 1);
        buffer.forget("c1");
        assert_eq!(buffer.consumer_count(), 0);
        assert_eq!(unread_texts(&buffer, "c1").0, 0);
    }
}
