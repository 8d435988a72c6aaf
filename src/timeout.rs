//! The time limit on one store call (`store_timeout`), for the check, the caches and counted
//! usage.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use crate::metrics::{Call, Ended, Stopwatch};
use crate::store::BoxError;

/// A store call that failed or took longer than `store_timeout`.
#[derive(Debug)]
pub(crate) enum StoreError {
    Failed(BoxError),
    TimedOut(Duration),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Failed(error) => fmt::Display::fmt(error, f),
            StoreError::TimedOut(after) => write!(f, "no answer within {after:?}"),
        }
    }
}

/// Runs one store call under `timeout`, counted from the moment the call first has to wait: a
/// call that answers at once (an in-memory store) never touches the timer. Outside a Tokio
/// runtime there is no timer to run the timeout on, and the call is awaited as it is.
///
/// `kind` names the call in the metrics (its result and latency) and in its span, a child of
/// the request's.
pub(crate) fn timed<T, F>(kind: Call, timeout: Duration, call: F) -> Timed<F>
where
    F: Future<Output = Result<T, BoxError>>,
{
    Timed {
        call,
        timeout,
        timer: None,
        armed: false,
        kind,
        span: kind.span(),
        stopwatch: Stopwatch::start(),
    }
}

pin_project! {
    /// The future of [`timed`].
    pub(crate) struct Timed<F> {
        #[pin]
        call: F,
        timeout: Duration,
        #[pin]
        timer: Option<tokio::time::Sleep>,
        // Whether the timer was set up (it stays `None` outside a Tokio runtime).
        armed: bool,
        kind: Call,
        span: tracing::Span,
        stopwatch: Stopwatch,
    }
}

impl<T, F> Future for Timed<F>
where
    F: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _span = this.span.enter();
        if let Poll::Ready(result) = this.call.poll(cx) {
            this.stopwatch.stop(*this.kind, Ended::of(&result));
            return Poll::Ready(result.map_err(StoreError::Failed));
        }
        if !*this.armed {
            *this.armed = true;
            if tokio::runtime::Handle::try_current().is_ok() {
                this.timer.set(Some(tokio::time::sleep(*this.timeout)));
            }
        }
        if let Some(timer) = this.timer.as_pin_mut() {
            if timer.poll(cx).is_ready() {
                this.stopwatch.stop(*this.kind, Ended::Timeout);
                return Poll::Ready(Err(StoreError::TimedOut(*this.timeout)));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ready_call_arms_no_timer() {
        let mut call = Box::pin(timed(Call::PLANS, Duration::from_secs(1), async {
            Ok::<_, BoxError>(7)
        }));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match call.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(7)) => {}
            other => panic!(
                "expected the value at once, got {:?}",
                other.map(|r| r.is_ok())
            ),
        }
        assert!(
            !call.armed,
            "a call that answered at once must not arm the timer"
        );
        assert!(call.timer.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_call_times_out_after_the_timeout() {
        let started = tokio::time::Instant::now();
        let result = timed(
            Call::PLANS,
            Duration::from_secs(2),
            std::future::pending::<Result<(), BoxError>>(),
        )
        .await;
        assert!(
            matches!(result, Err(StoreError::TimedOut(after)) if after == Duration::from_secs(2))
        );
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_call_within_the_timeout_succeeds() {
        let result = timed(Call::PLANS, Duration::from_secs(2), async {
            tokio::time::sleep(Duration::from_millis(1999)).await;
            Ok::<_, BoxError>("late but in time")
        })
        .await;
        assert!(matches!(result, Ok("late but in time")));
    }

    #[test]
    fn outside_a_runtime_a_waiting_call_is_not_timed() {
        let mut call = Box::pin(timed(
            Call::PLANS,
            Duration::from_nanos(1),
            std::future::pending::<Result<(), BoxError>>(),
        ));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(call.as_mut().poll(&mut cx).is_pending());
        assert!(call.armed);
        assert!(call.timer.is_none(), "no timer without a Tokio runtime");
    }

    #[test]
    fn store_errors_display_their_cause() {
        let failed = StoreError::Failed("connection refused".into());
        assert_eq!(failed.to_string(), "connection refused");
        let timed_out = StoreError::TimedOut(Duration::from_millis(1500));
        assert_eq!(timed_out.to_string(), "no answer within 1.5s");
    }
}
