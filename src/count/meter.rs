//! [`Meter`]: how a handler reports what a metered request consumed.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// What a request whose cost the handler reports has consumed so far: found in the request
/// extensions of a request the catalog meters with `"report": true` (an LLM call whose tokens
/// are known only after it ran, say), when the layer counts usage.
///
/// The layer reserved the meter's estimate before calling the handler. The handler calls
/// [`report`](Self::report) with what the request consumed, as often as it likes (the amounts add
/// up), also while it streams its response. When the response succeeds, what was reported is
/// counted: less than the estimate gives the rest back, more is counted in full (the work is
/// done; the next request finds less). A request that reports nothing counts its estimate; a
/// request that fails counts nothing. A streaming response settles when its body ends, or is
/// dropped.
///
/// Clones share what was reported.
///
/// ```
/// use tower_plans::Meter;
///
/// async fn chat(meter: Option<axum::Extension<Meter>>) -> &'static str {
///     // ... the model answered, using 120 tokens:
///     if let Some(axum::Extension(meter)) = meter {
///         meter.report(120);
///     }
///     "hello"
/// }
/// # let _ = chat;
/// ```
#[derive(Clone, Default)]
pub struct Meter(Arc<Reported>);

#[derive(Default)]
struct Reported {
    units: AtomicU64,
    any: AtomicBool,
}

impl Meter {
    /// A meter on which nothing is reported yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `units` to what the request consumed (saturating).
    pub fn report(&self, units: u64) {
        let _ = self
            .0
            .units
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |sum| {
                Some(sum.saturating_add(units))
            });
        self.0.any.store(true, Ordering::Release);
    }

    /// What was reported so far, `None` when nothing was.
    pub fn reported(&self) -> Option<u64> {
        self.0
            .any
            .load(Ordering::Acquire)
            .then(|| self.0.units.load(Ordering::Acquire))
    }
}

impl fmt::Debug for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Meter").field(&self.reported()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_add_up_and_clones_share_them() {
        let meter = Meter::new();
        assert_eq!(meter.reported(), None);
        let clone = meter.clone();
        meter.report(120);
        clone.report(30);
        assert_eq!(meter.reported(), Some(150));
        meter.report(u64::MAX);
        assert_eq!(clone.reported(), Some(u64::MAX));
        assert_eq!(format!("{meter:?}"), format!("Meter(Some({}))", u64::MAX));
        // A report of 0 is a report.
        let zero = Meter::new();
        zero.report(0);
        assert_eq!(zero.reported(), Some(0));
    }
}
