//! Size classes: the chunk size for each payload length.

/// Bytes in one page. Every pooled chunk is carved from a page of this size.
pub const PAGE_SIZE: usize = 1 << 20;

/// Chunk sizes in bytes, ascending, about ×1.25 apart.
///
/// Each size is `64 × 1024^(i/31)` rounded to a multiple of 8 and then widened
/// so that the chunks of a page leave at most 2 KiB of it unused. Rounding
/// makes the smallest steps uneven (64 → 80 → 104 → 128 is ×1.25, ×1.3, ×1.23).
pub const CLASS_SIZES: [usize; 32] = [
    64, 80, 104, 128, 160, 192, 248, 304, 384, 480, 600, 752, 936, 1168, 1464, 1832, 2288, 2864, 3584, 4480, 5600,
    7032, 8808, 11032, 13792, 17184, 21840, 26880, 33824, 41936, 52424, 65536,
];

/// The largest payload that a pooled chunk holds; longer payloads get exact-size allocations.
pub const MAX_CHUNK_SIZE: usize = CLASS_SIZES[CLASS_SIZES.len() - 1];

/// Class index by payload length in 8-byte granules, rounded up: entry `g` is
/// the smallest class whose chunks have room for `8 × g` bytes. Every chunk
/// size is a multiple of 8, so that class also fits every length that rounds up to `g`.
const CLASS_BY_GRANULE: [u8; MAX_CHUNK_SIZE / 8 + 1] = {
    let mut table = [0; MAX_CHUNK_SIZE / 8 + 1];
    let mut granule = 0;
    let mut class = 0;
    while granule < table.len() {
        while CLASS_SIZES[class] < granule * 8 {
            class += 1;
        }
        table[granule] = class as u8;
        granule += 1;
    }
    table
};

/// Returns the index of the smallest class whose chunks fit `len` bytes, or
/// `None` when `len` exceeds [`MAX_CHUNK_SIZE`].
pub(crate) fn class_for(len: usize) -> Option<usize> {
    CLASS_BY_GRANULE.get(len.div_ceil(8)).map(|&class| usize::from(class))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_span_64_bytes_to_64_kib() {
        assert_eq!(CLASS_SIZES[0], 64);
        assert_eq!(MAX_CHUNK_SIZE, 64 * 1024);
    }

    #[test]
    fn sizes_grow_about_a_quarter() {
        for pair in CLASS_SIZES.windows(2) {
            let ratio = pair[1] as f64 / pair[0] as f64;
            assert!(
                (1.19..=1.31).contains(&ratio),
                "{} -> {} grows by {ratio}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn sizes_are_multiples_of_8() {
        for size in CLASS_SIZES {
            assert_eq!(size % 8, 0, "chunk size {size}");
        }
    }

    #[test]
    fn pages_leave_little_unused() {
        for size in CLASS_SIZES {
            let unused = PAGE_SIZE % size;
            assert!(
                unused <= 2048,
                "chunk size {size} leaves {unused} bytes of a page unused"
            );
        }
    }

    #[test]
    fn class_for_picks_smallest_fit() {
        assert_eq!(class_for(0), Some(0));
        assert_eq!(class_for(64), Some(0));
        assert_eq!(class_for(65), Some(1));
        assert_eq!(class_for(80), Some(1));
        assert_eq!(class_for(MAX_CHUNK_SIZE), Some(CLASS_SIZES.len() - 1));
        assert_eq!(class_for(MAX_CHUNK_SIZE + 1), None);
        assert_eq!(class_for(usize::MAX), None);
        for (index, size) in CLASS_SIZES.into_iter().enumerate() {
            assert_eq!(class_for(size), Some(index));
        }
    }

    #[test]
    fn class_for_matches_linear_search() {
        for len in 0..=MAX_CHUNK_SIZE {
            let expected = CLASS_SIZES.iter().position(|&size| size >= len);
            assert_eq!(class_for(len), expected, "length {len}");
        }
    }
}
