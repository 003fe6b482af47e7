//! One size class: its pages, their chunks and the free lists.

use super::classes::PAGE_SIZE;
use super::stats::ClassStats;
use super::{SlabError, MAX_ENTRIES};

/// End marker of a page's free list.
const NIL: u32 = u32::MAX;

/// Bit of a chunk's stamp that marks the chunk as in use.
const OCCUPIED: u16 = 1 << 15;

/// Bits of a chunk's stamp that count how often the chunk was freed.
pub(super) const GENERATION_MASK: u16 = OCCUPIED - 1;

/// A page cut into equal chunks.
struct Page {
    /// [`PAGE_SIZE`] bytes from a zeroed allocation. With glibc that is fresh
    /// mmap memory, which becomes resident only where a chunk is written
    /// (`tests/resident.rs` checks this).
    bytes: Box<[u8]>,
    /// Per chunk: [`OCCUPIED`] and a generation, bumped each time the chunk is freed.
    stamps: Box<[u16]>,
    /// Chunks in use.
    used: u32,
    /// A freed chunk, or [`NIL`]. Each freed chunk stores the next one in its first 4 bytes.
    free_head: u32,
    /// Chunks from this number on were never used, which keeps their memory untouched.
    fresh: u32,
}

impl Page {
    fn new(chunks: usize) -> Self {
        Self {
            bytes: vec![0; PAGE_SIZE].into_boxed_slice(),
            stamps: vec![0; chunks].into_boxed_slice(),
            used: 0,
            free_head: NIL,
            fresh: 0,
        }
    }

    fn has_room(&self) -> bool {
        self.free_head != NIL || (self.fresh as usize) < self.stamps.len()
    }

    /// Takes a free chunk out of the free list, or else the next never-used one.
    fn take(&mut self, chunk_size: usize) -> Option<usize> {
        if self.free_head != NIL {
            let slot = self.free_head as usize;
            self.free_head = self.read_link(slot * chunk_size);
            return Some(slot);
        }
        let slot = self.fresh as usize;
        if slot < self.stamps.len() {
            self.fresh += 1;
            return Some(slot);
        }
        None
    }

    fn push_free(&mut self, slot: usize, chunk_size: usize) {
        let offset = slot * chunk_size;
        self.bytes[offset..offset + 4].copy_from_slice(&self.free_head.to_ne_bytes());
        // A page has at most PAGE_SIZE / 64 chunks, so the slot number fits.
        self.free_head = slot as u32;
    }

    fn read_link(&self, offset: usize) -> u32 {
        let mut link = [0; 4];
        link.copy_from_slice(&self.bytes[offset..offset + 4]);
        u32::from_ne_bytes(link)
    }
}

/// The pages of one chunk size.
///
/// Inserts fill the lowest-numbered page that has a free chunk, so that live
/// payloads gather in low pages and high pages empty out for [`SizeClass::shrink`].
///
/// A chunk's number is its page number shifted left by `slot_bits`, plus its
/// slot in the page, so that decoding it takes a shift and a mask rather than
/// a division.
pub(super) struct SizeClass {
    chunk_size: usize,
    chunks_per_page: usize,
    /// Bits that hold a slot number: enough for `chunks_per_page - 1`.
    slot_bits: u32,
    /// Pages the class can number within [`MAX_ENTRIES`] chunk numbers.
    max_pages: usize,
    /// Pages by number; `None` marks a number whose page was released and can be reused.
    pages: Vec<Option<Page>>,
    /// Bit `i` of word `i / 64` is set when page `i` exists and has a free chunk.
    room: Vec<u64>,
    /// No word of `room` before this one has a bit set.
    room_hint: usize,
    page_count: usize,
    free_pages: usize,
    chunks_used: usize,
    bytes_requested: usize,
}

impl SizeClass {
    pub(super) fn new(chunk_size: usize) -> Self {
        let chunks_per_page = PAGE_SIZE / chunk_size;
        let slot_bits = usize::BITS - (chunks_per_page - 1).leading_zeros();
        Self {
            chunk_size,
            chunks_per_page,
            slot_bits,
            max_pages: MAX_ENTRIES >> slot_bits,
            pages: Vec::new(),
            room: Vec::new(),
            room_hint: 0,
            page_count: 0,
            free_pages: 0,
            chunks_used: 0,
            bytes_requested: 0,
        }
    }

    pub(super) fn chunks_used(&self) -> usize {
        self.chunks_used
    }

    pub(super) fn free_pages(&self) -> usize {
        self.free_pages
    }

    /// Copies `payload` into a free chunk and returns the chunk's number and
    /// generation, or `None` when every page is full.
    #[inline]
    pub(super) fn insert(&mut self, payload: &[u8]) -> Option<(u32, u16)> {
        debug_assert!(payload.len() <= self.chunk_size);
        let page_number = self.page_with_room()?;
        let chunk_size = self.chunk_size;
        let page = self.pages[page_number]
            .as_mut()
            .expect("a page marked as having room exists");
        let slot = page
            .take(chunk_size)
            .expect("a page marked as having room has a free chunk");
        let generation = page.stamps[slot];
        page.stamps[slot] = generation | OCCUPIED;
        let offset = slot * chunk_size;
        page.bytes[offset..offset + payload.len()].copy_from_slice(payload);
        page.used += 1;
        let first_use = page.used == 1;
        let full = !page.has_room();

        if first_use {
            self.free_pages -= 1;
        }
        if full {
            self.room[page_number / 64] &= !(1 << (page_number % 64));
        }
        self.chunks_used += 1;
        self.bytes_requested += payload.len();
        // add_page keeps page numbers below max_pages, so the chunk number is below MAX_ENTRIES.
        Some(((page_number << self.slot_bits | slot) as u32, generation))
    }

    /// Returns the first `len` bytes of chunk `index` if the chunk is in use with `generation`.
    #[inline]
    pub(super) fn get(&self, index: u32, generation: u16, len: usize) -> Option<&[u8]> {
        let (page_number, slot) = self.locate(index, generation, len)?;
        let page = self.pages[page_number].as_ref()?;
        let offset = slot * self.chunk_size;
        Some(&page.bytes[offset..offset + len])
    }

    /// Frees chunk `index` if it is in use with `generation`, and returns whether it was.
    #[inline]
    pub(super) fn remove(&mut self, index: u32, generation: u16, len: usize) -> bool {
        let Some((page_number, slot)) = self.locate(index, generation, len) else {
            return false;
        };
        let chunk_size = self.chunk_size;
        let Some(page) = self.pages[page_number].as_mut() else {
            return false;
        };
        let was_full = !page.has_room();
        page.stamps[slot] = generation.wrapping_add(1) & GENERATION_MASK;
        page.push_free(slot, chunk_size);
        page.used -= 1;
        let now_empty = page.used == 0;

        if now_empty {
            self.free_pages += 1;
        }
        if was_full {
            self.mark_room(page_number);
        }
        self.chunks_used -= 1;
        self.bytes_requested -= len;
        true
    }

    /// Finds the page and slot of chunk `index` when it is in use with `generation`
    /// and `len` fits in it.
    #[inline]
    fn locate(&self, index: u32, generation: u16, len: usize) -> Option<(usize, usize)> {
        if len > self.chunk_size {
            return None;
        }
        let index = index as usize;
        let page_number = index >> self.slot_bits;
        let slot = index & ((1 << self.slot_bits) - 1);
        let page = self.pages.get(page_number)?.as_ref()?;
        (*page.stamps.get(slot)? == generation | OCCUPIED).then_some((page_number, slot))
    }

    /// Adds an empty page under the lowest free page number.
    pub(super) fn add_page(&mut self) -> Result<(), SlabError> {
        let page_number = self.pages.iter().position(Option::is_none).unwrap_or(self.pages.len());
        if page_number >= self.max_pages {
            return Err(SlabError::ClassFull {
                chunk_size: self.chunk_size,
                max_chunks: self.max_pages * self.chunks_per_page,
            });
        }
        let page = Some(Page::new(self.chunks_per_page));
        if page_number == self.pages.len() {
            self.pages.push(page);
            if self.room.len() * 64 < self.pages.len() {
                self.room.push(0);
            }
        } else {
            self.pages[page_number] = page;
        }
        self.page_count += 1;
        self.free_pages += 1;
        self.mark_room(page_number);
        Ok(())
    }

    /// Releases every page that has no chunk in use and returns the number released.
    pub(super) fn shrink(&mut self) -> usize {
        if self.free_pages == 0 {
            return 0;
        }
        let mut released = 0;
        for (page_number, entry) in self.pages.iter_mut().enumerate() {
            if entry.as_ref().is_some_and(|page| page.used == 0) {
                *entry = None;
                self.room[page_number / 64] &= !(1 << (page_number % 64));
                released += 1;
            }
        }
        while self.pages.last().is_some_and(Option::is_none) {
            self.pages.pop();
        }
        self.pages.shrink_to_fit();
        self.room.truncate(self.pages.len().div_ceil(64));
        self.room.shrink_to_fit();
        self.page_count -= released;
        self.free_pages = 0;
        released
    }

    fn page_with_room(&mut self) -> Option<usize> {
        while let Some(&word) = self.room.get(self.room_hint) {
            if word != 0 {
                return Some(self.room_hint * 64 + word.trailing_zeros() as usize);
            }
            self.room_hint += 1;
        }
        None
    }

    fn mark_room(&mut self, page_number: usize) {
        let word = page_number / 64;
        self.room[word] |= 1 << (page_number % 64);
        self.room_hint = self.room_hint.min(word);
    }

    pub(super) fn page_count(&self) -> usize {
        self.page_count
    }

    /// Bytes of bookkeeping: chunk stamps, the page table and the room bitmap.
    pub(super) fn overhead_bytes(&self) -> usize {
        self.page_count * self.chunks_per_page * size_of::<u16>()
            + self.pages.capacity() * size_of::<Option<Page>>()
            + self.room.capacity() * size_of::<u64>()
    }

    pub(super) fn stats(&self) -> ClassStats {
        let chunks = self.page_count * self.chunks_per_page;
        ClassStats {
            chunk_size: self.chunk_size,
            pages: self.page_count,
            free_pages: self.free_pages,
            chunks_used: self.chunks_used,
            chunks_free: chunks - self.chunks_used,
            bytes_requested: self.bytes_requested,
            bytes_held: self.page_count * PAGE_SIZE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::classes::CLASS_SIZES;
    use super::*;

    #[test]
    fn every_class_numbers_4_gib() {
        for size in CLASS_SIZES {
            let class = SizeClass::new(size);
            assert!(
                class.max_pages >= 4096,
                "{size}-byte class numbers {} pages",
                class.max_pages
            );
            assert!(class.chunks_per_page <= 1 << class.slot_bits);
        }
    }

    #[test]
    fn full_class_rejects_page() {
        let mut class = SizeClass::new(65536);
        class.max_pages = 1;
        class.add_page().expect("page 0 is within the limit");
        let error = class.add_page().expect_err("page 1 is past the limit");
        assert_eq!(
            error,
            SlabError::ClassFull {
                chunk_size: 65536,
                max_chunks: 16
            }
        );
        assert_eq!(class.page_count(), 1);
    }

    #[test]
    fn slot_past_page_end_is_rejected() {
        let mut class = SizeClass::new(600);
        let (index, generation) = loop {
            match class.insert(&[1; 600]) {
                Some(found) => break found,
                None => class.add_page().expect("the class has page numbers left"),
            }
        };
        assert_eq!(class.get(index, generation, 600), Some(&[1; 600][..]));
        // 1747 chunks per page leave slot numbers 1747 to 2047 unused.
        let past_end = index | 2047;
        assert_eq!(class.get(past_end, generation, 1), None);
        assert!(!class.remove(past_end, generation, 1));
        assert_eq!(class.get(index, generation, 601), None);
        assert!(class.remove(index, generation, 600));
    }
}
