//! The response body of [`PlanLimit`](crate::PlanLimit): the inner service's body, or the
//! layer's own rejection body.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response from [`PlanLimit`](crate::PlanLimit): either the inner service's
    /// body, untouched, or the body of a rejection (`401`, `403`, `503`) the layer answered
    /// itself.
    ///
    /// Keeping both in one type means a rejection needs neither a boxed body nor `B: Default`.
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
        // Boxed: a response moves by value through every layer above, and most are not
        // rejections; with it boxed, the body adds at most a word to the inner service's.
        Rejection {
            body: Box<Full<Bytes>>,
        },
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
    pub(crate) fn rejection(body: Box<Full<Bytes>>) -> Self {
        Self {
            kind: Kind::Rejection { body },
        }
    }

    /// Whether this body was produced by the layer (a rejection) rather than the inner service.
    pub fn is_rejection(&self) -> bool {
        matches!(self.kind, Kind::Rejection { .. })
    }
}

impl<B: Default> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::inner(B::default())
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { body } => f.debug_tuple("ResponseBody::Inner").field(body).finish(),
            Kind::Rejection { body } => f
                .debug_tuple("ResponseBody::Rejection")
                .field(body)
                .finish(),
        }
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
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { body } => Pin::new(&mut **body)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { body } => body.size_hint(),
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
            ResponseBody::rejection(Box::new(Full::new(Bytes::from_static(b"{}"))));
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
