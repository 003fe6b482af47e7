//! Exact-size allocations: payloads larger than every chunk, and every payload of an unpooled pool.

use super::{SlabError, MAX_ENTRIES};

/// One entry of the table: a payload, or a free entry waiting for reuse.
struct Entry {
    payload: Option<Box<[u8]>>,
    /// Bumped each time the entry is freed, so a handle of an earlier payload does not match.
    generation: u16,
}

/// A table of boxed payloads with a free list of entry numbers.
#[derive(Default)]
pub(super) struct LargeTable {
    entries: Vec<Entry>,
    free: Vec<u32>,
    count: usize,
    bytes: usize,
}

impl LargeTable {
    /// Number of payloads stored.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Bytes of the stored payloads, which is also what their allocations hold.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Copies `payload` into a new allocation and returns its entry number and generation.
    pub(super) fn insert(&mut self, payload: &[u8]) -> Result<(u32, u16), SlabError> {
        let index = match self.free.pop() {
            Some(index) => index as usize,
            None if self.entries.len() < MAX_ENTRIES => {
                self.entries.push(Entry {
                    payload: None,
                    generation: 0,
                });
                self.entries.len() - 1
            }
            None => {
                return Err(SlabError::LargeTableFull {
                    max_payloads: MAX_ENTRIES,
                })
            }
        };
        let entry = &mut self.entries[index];
        entry.payload = Some(payload.into());
        self.count += 1;
        self.bytes += payload.len();
        // MAX_ENTRIES bounds the table, so the number fits in u32.
        Ok((index as u32, entry.generation))
    }

    pub(super) fn get(&self, index: u32, generation: u16) -> Option<&[u8]> {
        let entry = self.entries.get(index as usize)?;
        if entry.generation != generation {
            return None;
        }
        entry.payload.as_deref()
    }

    /// Frees entry `index` if it contains a payload with `generation`, and returns the payload's length.
    pub(super) fn remove(&mut self, index: u32, generation: u16) -> Option<usize> {
        let entry = self.entries.get_mut(index as usize)?;
        if entry.generation != generation {
            return None;
        }
        let len = entry.payload.take()?.len();
        entry.generation = entry.generation.wrapping_add(1) & super::class::GENERATION_MASK;
        self.free.push(index);
        self.count -= 1;
        self.bytes -= len;
        Some(len)
    }

    /// Drops free entries at the end of the table and returns spare capacity to the allocator.
    pub(super) fn shrink(&mut self) {
        while self.entries.last().is_some_and(|entry| entry.payload.is_none()) {
            self.entries.pop();
        }
        let len = self.entries.len();
        self.free.retain(|&index| (index as usize) < len);
        self.entries.shrink_to_fit();
        self.free.shrink_to_fit();
    }

    /// Bytes of bookkeeping: the entry table and the free list.
    pub(super) fn overhead_bytes(&self) -> usize {
        self.entries.capacity() * size_of::<Entry>() + self.free.capacity() * size_of::<u32>()
    }
}
