//! The item and byte limits of one poll reply.

/// The limits of one poll page.
///
/// Each list (`data`, `extra`, `tlddata`) contains at most `max_items` records.
/// The byte budget spans all lists, filled in wire order, but every list
/// takes its first queued record even past the budget, so that one oversized
/// record or a busy session cannot starve the next list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageBudget {
    max_items: usize,
    max_bytes: usize,
    used_bytes: usize,
}

impl PageBudget {
    pub(crate) fn new(max_items: usize, max_bytes: usize) -> Self {
        Self {
            max_items,
            max_bytes,
            used_bytes: 0,
        }
    }

    /// Returns how many of the leading records, given their lengths, fit in
    /// the next list, and charges their bytes to the budget.
    pub(crate) fn take(&mut self, lengths: impl Iterator<Item = usize>) -> usize {
        let mut count = 0;
        for length in lengths.take(self.max_items) {
            if count > 0 && self.used_bytes.saturating_add(length) > self.max_bytes {
                break;
            }
            self.used_bytes = self.used_bytes.saturating_add(length);
            count += 1;
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_stops_at_items_and_bytes() {
        assert_eq!(PageBudget::new(2, 100).take([10, 10, 10].into_iter()), 2);
        assert_eq!(PageBudget::new(5, 25).take([10, 10, 10].into_iter()), 2);
        assert_eq!(PageBudget::new(5, 30).take([10, 10, 10].into_iter()), 3);
        assert_eq!(PageBudget::new(5, 30).take(std::iter::empty()), 0);
    }

    #[test]
    fn bytes_are_shared_by_lists() {
        let mut budget = PageBudget::new(5, 25);
        assert_eq!(budget.take([10, 10].into_iter()), 2);
        assert_eq!(budget.take([5, 1].into_iter()), 1);
        assert_eq!(budget.take([1].into_iter()), 1, "each list takes its first record");
    }

    #[test]
    fn first_record_always_fits() {
        let mut budget = PageBudget::new(5, 10);
        assert_eq!(budget.take([1000, 1].into_iter()), 1);
        assert_eq!(budget.take([1000, 1].into_iter()), 1);
    }
}
