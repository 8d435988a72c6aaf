//! The response future of [`PlanLimit`](crate::PlanLimit).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::count::{Reservation, Settle};
use crate::headers::RateLimitFields;
use crate::inner::{CheckFuture, Inner, Judgement, Outcome};

pin_project! {
    /// The response future of [`PlanLimit`](crate::PlanLimit).
    ///
    /// An ungoverned request, and a governed one decided from the caches, go straight to the
    /// inner service's future. A governed request that needs the store first runs a boxed check
    /// (the store calls), then calls the inner service, whose future is polled in place, unboxed.
    /// A rejection is answered without calling the inner service. A counted request's response
    /// then settles its reservation (commit or release) before it is returned.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        kind: Kind<S::Future, S, ReqBody, Result<S::Response, S::Error>>,
    }
}

pin_project! {
    #[project = KindProj]
    #[project_replace = KindOwned]
    enum Kind<F, S, ReqBody, O> {
        Inner {
            #[pin]
            future: F,
            // Settled by the response; dropped with the future, it settles itself.
            reservation: Option<Reservation>,
            // Added to the response.
            headers: Option<Box<RateLimitFields>>,
        },
        // Boxed: a request waits here only for a store, and the future that every other
        // request moves stays small.
        Checking {
            checking: Box<Checking<S, ReqBody>>,
        },
        // Boxed, as the two below: only `Inner` is as large as the inner service's future,
        // so that the response future, which every request moves, is hardly larger.
        Settling {
            settling: Box<Settling<O>>,
        },
        Rejected {
            response: Box<Response<Full<Bytes>>>,
        },
        Done,
    }
}

/// A response waiting for its reservation to be settled (by a store that has to be awaited).
struct Settling<O> {
    settle: Settle,
    output: Option<O>,
}

/// A request waiting for its check, with the service (already ready) that it will call.
struct Checking<S, ReqBody> {
    check: CheckFuture,
    request: Request<ReqBody>,
    service: S,
    state: Arc<Inner>,
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn inner(future: S::Future) -> Self {
        Self::allowed(future, None, None)
    }

    /// The inner service's future, whose response settles `reservation` and gets `headers`.
    pub(crate) fn allowed(
        future: S::Future,
        reservation: Option<Reservation>,
        headers: Option<Box<RateLimitFields>>,
    ) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                reservation,
                headers,
            },
        }
    }

    /// Runs `check`, then calls `service` (already ready) with `request`.
    pub(crate) fn checking(
        check: CheckFuture,
        request: Request<ReqBody>,
        service: S,
        state: Arc<Inner>,
    ) -> Self {
        Self {
            kind: Kind::Checking {
                checking: Box::new(Checking {
                    check,
                    request,
                    service,
                    state,
                }),
            },
        }
    }

    pub(crate) fn rejected(response: Box<Response<Full<Bytes>>>) -> Self {
        Self {
            kind: Kind::Rejected { response },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KindProj::Inner {
                    future,
                    reservation,
                    headers,
                } => {
                    let mut output = ready!(future.poll(cx));
                    if let (Some(fields), Ok(response)) = (headers.take(), output.as_mut()) {
                        fields.append_to(response.headers_mut());
                    }
                    let Some(reservation) = reservation.take() else {
                        kind.set(Kind::Done);
                        return Poll::Ready(wrap(output));
                    };
                    let status = output.as_ref().ok().map(Response::status);
                    let settle = reservation.settle(status);
                    if settle.is_done() {
                        kind.set(Kind::Done);
                        return Poll::Ready(wrap(output));
                    }
                    kind.set(Kind::Settling {
                        settling: Box::new(Settling {
                            settle,
                            output: Some(output),
                        }),
                    });
                }
                KindProj::Checking { checking } => {
                    let outcome = ready!(checking.check.as_mut().poll(cx));
                    let (judgement, allowed) = match outcome {
                        Outcome::Judged(judgement, allowed) => (judgement, allowed),
                        Outcome::Identify(governed) => {
                            let checking = &mut **checking;
                            checking.check =
                                checking.state.identify(governed, &mut checking.request);
                            continue;
                        }
                    };
                    let (reservation, headers) = match judgement {
                        Judgement::Pass => (None, None),
                        // The grant, if any, is `allowed` already (see `Outcome::judged`).
                        Judgement::Allow(_, reservation, headers) => {
                            if let Some(allowed) = allowed {
                                checking.request.extensions_mut().insert(allowed);
                            }
                            (reservation, headers)
                        }
                        Judgement::Reject(response) => {
                            kind.set(Kind::Done);
                            let response =
                                response.map(|body| ResponseBody::rejection(Box::new(body)));
                            return Poll::Ready(Ok(response));
                        }
                        Judgement::Count(pending) => {
                            checking.check = checking.state.reserving(pending);
                            continue;
                        }
                    };
                    let KindOwned::Checking { checking } =
                        kind.as_mut().project_replace(Kind::Done)
                    else {
                        // Only reachable from the arm just matched.
                        return Poll::Pending;
                    };
                    let Checking {
                        request,
                        mut service,
                        ..
                    } = *checking;
                    let future = service.call(request);
                    kind.set(Kind::Inner {
                        future,
                        reservation,
                        headers,
                    });
                }
                KindProj::Settling { settling } => {
                    ready!(Pin::new(&mut settling.settle).poll(cx));
                    let Some(output) = settling.output.take() else {
                        // Only `Inner` makes a `Settling`, with the output.
                        return Poll::Pending;
                    };
                    kind.set(Kind::Done);
                    return Poll::Ready(wrap(output));
                }
                KindProj::Rejected { .. } => {
                    let KindOwned::Rejected { response } =
                        kind.as_mut().project_replace(Kind::Done)
                    else {
                        return Poll::Pending;
                    };
                    let response = (*response).map(|body| ResponseBody::rejection(Box::new(body)));
                    return Poll::Ready(Ok(response));
                }
                // Polled after completion: it never completes again.
                KindProj::Done => return Poll::Pending,
            }
        }
    }
}

/// The inner service's output with the response body wrapped.
fn wrap<B, E>(output: Result<Response<B>, E>) -> Result<Response<ResponseBody<B>>, E> {
    output.map(|response| response.map(ResponseBody::inner))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Ready;
    use std::mem::size_of;

    use http_body_util::Empty;

    use super::*;

    type Answer = Response<Empty<Bytes>>;
    type Inner = tower::util::ServiceFn<fn(Request<()>) -> Ready<Result<Answer, Infallible>>>;

    #[test]
    fn the_response_future_is_the_inner_future_and_two_words() {
        // The variants that are not the inner service's future are boxed: what every allowed
        // request moves grows by its reservation and headers only.
        let inner = size_of::<<Inner as Service<Request<()>>>::Future>();
        let ours = size_of::<ResponseFuture<Inner, ()>>();
        assert!(
            ours <= inner + 2 * size_of::<usize>(),
            "the response future is {ours} bytes, the inner one {inner}"
        );
    }

    #[test]
    fn the_response_is_at_most_a_word_larger_than_the_inner_one() {
        let inner = size_of::<Response<Empty<Bytes>>>();
        let ours = size_of::<Response<ResponseBody<Empty<Bytes>>>>();
        assert!(
            ours <= inner + size_of::<usize>(),
            "the response is {ours} bytes, the inner one {inner}"
        );
    }
}
