//! The response body of [`PlanLimit`](crate::PlanLimit): the inner service's body, or the
//! layer's own rejection body.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use crate::count::{Reservation, Settle};

pin_project! {
    /// The body of a response from [`PlanLimit`](crate::PlanLimit): the inner service's body,
    /// or the body of a rejection (`401`, `403`, `503`) the layer answered itself.
    ///
    /// Keeping both in one type means a rejection needs neither a boxed body nor `B: Default`.
    /// The body of a request whose handler reports what it consumed (see
    /// [`Meter`](crate::Meter)) is the inner body too: its end settles the request's
    /// reservation, so that the handler can report while it streams.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner {
            #[pin]
            body: B,
        },
        // Boxed: a response moves by value through every layer above, and most are neither
        // rejections nor metered; with them boxed, the body adds at most a word to the inner
        // service's.
        Own {
            body: Pin<Box<Own<B>>>,
        },
    }
}

pin_project! {
    #[project = OwnProj]
    enum Own<B> {
        Rejection {
            body: Full<Bytes>,
        },
        // A body whose end settles a reservation.
        Metered {
            #[pin]
            body: B,
            pending: Pending,
        },
    }
}

/// The settlement a metered body owes: the reservation and the response's status until the
/// body ends, then the settlement under way.
struct Pending {
    reservation: Option<(Reservation, StatusCode)>,
    settle: Option<Settle>,
}

impl Pending {
    /// Nothing left to settle.
    fn settled() -> Self {
        Self {
            reservation: None,
            settle: None,
        }
    }

    /// Starts the settlement, if it is not under way yet, and polls it.
    fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some((reservation, status)) = self.reservation.take() {
            self.settle = Some(reservation.settle(Some(status)));
        }
        if let Some(settle) = self.settle.as_mut() {
            std::task::ready!(Pin::new(settle).poll(cx));
            self.settle = None;
        }
        Poll::Ready(())
    }

    fn is_settled(&self) -> bool {
        self.reservation.is_none() && self.settle.is_none()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // A body dropped before its end (the client went away) settles as if it ended: the
        // work was done, and what was reported so far is what it cost. A settlement under way
        // finishes detached (see `Settle`).
        if let Some((reservation, status)) = self.reservation.take() {
            drop(reservation.settle(Some(status)));
        }
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// Wraps a rejection body.
    pub(crate) fn rejection(body: Full<Bytes>) -> Self {
        Self::own(Own::Rejection { body })
    }

    /// Wraps the inner service's body, whose end settles `reservation` as a response with
    /// `status` does.
    pub(crate) fn metered(body: B, reservation: Reservation, status: StatusCode) -> Self {
        let pending = Pending {
            reservation: Some((reservation, status)),
            settle: None,
        };
        Self::own(Own::Metered { body, pending })
    }

    fn own(own: Own<B>) -> Self {
        Self {
            kind: Kind::Own {
                body: Box::pin(own),
            },
        }
    }

    /// Whether this body was produced by the layer (a rejection) rather than the inner service.
    pub fn is_rejection(&self) -> bool {
        match &self.kind {
            Kind::Inner { .. } => false,
            Kind::Own { body } => matches!(**body, Own::Rejection { .. }),
        }
    }
}

impl<B: Default> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::inner(B::default())
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, body): (_, &dyn fmt::Debug) = match &self.kind {
            Kind::Inner { body } => ("ResponseBody::Inner", body),
            Kind::Own { body } => match &**body {
                Own::Rejection { body } => ("ResponseBody::Rejection", body),
                Own::Metered { body, .. } => ("ResponseBody::Metered", body),
            },
        };
        f.debug_tuple(name).field(body).finish()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let own = match self.project().kind.project() {
            KindProj::Inner { body } => return body.poll_frame(cx),
            KindProj::Own { body } => body.as_mut().project(),
        };
        match own {
            OwnProj::Rejection { body } => Pin::new(body)
                .poll_frame(cx)
                .map_err(|never| match never {}),
            OwnProj::Metered { body, pending } => {
                if pending.is_settled() {
                    return body.poll_frame(cx);
                }
                match std::task::ready!(body.poll_frame(cx)) {
                    // The end of the body: the reservation settles first.
                    None => {
                        std::task::ready!(pending.poll_settle(cx));
                        Poll::Ready(None)
                    }
                    // A failed body settles in the background (by the drop): the error is not
                    // held back.
                    Some(Err(error)) => {
                        drop(std::mem::replace(pending, Pending::settled()));
                        Poll::Ready(Some(Err(error)))
                    }
                    Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Own { body } => match &**body {
                Own::Rejection { body } => body.is_end_stream(),
                // Polled to its end, so that the reservation settles there.
                Own::Metered { body, pending } => pending.is_settled() && body.is_end_stream(),
            },
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Own { body } => match &**body {
                Own::Rejection { body } => body.size_hint(),
                Own::Metered { body, .. } => body.size_hint(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn rejection_body_yields_its_bytes() {
        let body: ResponseBody<Full<Bytes>> =
            ResponseBody::rejection(Full::new(Bytes::from_static(b"{}")));
        assert!(body.is_rejection());
        assert_eq!(body.size_hint().exact(), Some(2));
        let bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        assert_eq!(bytes, Bytes::from_static(b"{}"));
    }

    #[tokio::test]
    async fn inner_body_is_untouched() {
        let body = ResponseBody::inner(Full::new(Bytes::from_static(b"hello")));
        assert!(!body.is_rejection());
        let bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        assert_eq!(bytes, Bytes::from_static(b"hello"));
    }
}
