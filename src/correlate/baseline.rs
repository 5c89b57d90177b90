//! The baseline of a window: what "normal" is when an answer compares a window with what came
//! before it. One rule for every answer that compares (what is different, an incident's
//! analysis, the traces behind a spike), so two answers about the same window never disagree
//! because each chose its own baseline.

/// A baseline is never shorter than this, so a short window still has enough before it to
/// say what is usual.
pub const MIN_BASELINE_NS: u64 = 60_000_000_000;

/// The baseline of `[start, end]`: as long as the window (at least `MIN_BASELINE_NS`) and
/// ending just before it starts.
pub fn before(start_ns: u64, end_ns: u64) -> (u64, u64) {
    let len = end_ns.saturating_sub(start_ns).max(MIN_BASELINE_NS);
    (start_ns.saturating_sub(len), start_ns.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn same_length_just_before_and_never_too_short() {
        assert_eq!(before(1000 * S, 1600 * S), (400 * S, 1000 * S - 1));
        assert_eq!(before(1000 * S, 1010 * S), (940 * S, 1000 * S - 1));
        assert_eq!(before(10 * S, 20 * S), (0, 10 * S - 1));
    }
}
