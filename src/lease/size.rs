//! How many units a block holds: a share of what is left under the limit, down to one near it.

/// The size of a block for a counter under `limit` whose count (used and held, everywhere) is
/// `total`, among `instances` instances, with blocks of at most `block_max` units:
/// `clamp(floor((limit - total) / (2 × instances)), 1, block_max)`, and `block_max` for an
/// unlimited counter.
///
/// A size of 1 means "no block": the request goes to the store as it would without leases.
pub(super) fn block_size(limit: Option<u64>, total: u64, instances: u64, block_max: u64) -> u64 {
    let block_max = block_max.max(1);
    match limit {
        None => block_max,
        Some(max) => {
            let share = instances.max(1).saturating_mul(2);
            (max.saturating_sub(total) / share).clamp(1, block_max)
        }
    }
}

/// Whether a request of `units` is served from a block of `size`: a block holds at least two
/// units (one is the ordinary protocol) and at least the request's.
pub(super) fn worth_a_block(size: u64, units: u64) -> bool {
    size >= 2 && size >= units
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_what_is_left_capped_at_the_maximum() {
        // 1000 left among 4 instances: 125 each half, capped at 64.
        assert_eq!(block_size(Some(1000), 0, 4, 64), 64);
        // 200 left: 25.
        assert_eq!(block_size(Some(1000), 800, 4, 64), 25);
        // 15 left: 1 (7 / 8 rounds down to 0).
        assert_eq!(block_size(Some(1000), 985, 4, 64), 1);
        // At or past the limit: 1.
        assert_eq!(block_size(Some(10), 10, 1, 64), 1);
        assert_eq!(block_size(Some(10), 30, 1, 64), 1);
        // Unlimited: the maximum.
        assert_eq!(block_size(None, u64::MAX, 4, 64), 64);
        // Degenerate settings still give a size.
        assert_eq!(block_size(Some(100), 0, 0, 0), 1);
        assert_eq!(block_size(Some(u64::MAX), 0, u64::MAX, 64), 1);
    }

    #[test]
    fn a_block_serves_requests_it_can_hold_and_is_never_one_unit() {
        assert!(worth_a_block(2, 1));
        assert!(worth_a_block(5, 5));
        assert!(!worth_a_block(1, 1));
        assert!(!worth_a_block(4, 5));
        assert!(worth_a_block(64, 0));
    }
}
