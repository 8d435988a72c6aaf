//! The response future of [`PlanLimit`](crate::PlanLimit).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::check::{Checked, Waiting};
use crate::count::{Reservation, Settle};
use crate::headers::ResponseFields;

pin_project! {
    /// The response future of [`PlanLimit`](crate::PlanLimit).
    ///
    /// An ungoverned request, and a governed one decided without waiting, go straight to the
    /// inner service's future. A governed request that waits for a store first runs its check
    /// (one boxed future that owns the request), then calls the inner service, whose future is
    /// polled in place, unboxed. A rejection is answered without calling the inner service. A
    /// counted request's response then settles its reservation (commit or release) before it
    /// is returned.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S::Future, S, ReqBody, Result<S::Response, S::Error>>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateOwned]
    enum State<F, S, ReqBody, O> {
        // The inner service was called.
        Called {
            #[pin]
            future: F,
            // Settled by the response; dropped with the future, it settles itself.
            reservation: Option<Reservation>,
            // Added to the response.
            headers: Option<Box<ResponseFields>>,
        },
        // Boxed, as the two below: only `Called` is as large as the inner service's future, so
        // that the response future, which every request moves, is hardly larger.
        Checking {
            checking: Box<Checking<S, ReqBody>>,
        },
        Settling {
            settling: Box<Settling<O>>,
        },
        Rejected {
            response: Box<Response<Full<Bytes>>>,
        },
        Done,
    }
}

/// A request waiting for its check, with the service (already ready) that it will call.
struct Checking<S, ReqBody> {
    check: Waiting<ReqBody>,
    service: Option<S>,
}

/// A response waiting for its reservation to be settled (by a store that has to be awaited).
struct Settling<O> {
    settle: Settle,
    output: Option<O>,
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// The inner service's future, as it is.
    pub(crate) fn called(future: S::Future) -> Self {
        Self::allowed(future, None, None)
    }

    /// The inner service's future, whose response settles `reservation` and gets `headers`.
    pub(crate) fn allowed(
        future: S::Future,
        reservation: Option<Reservation>,
        headers: Option<Box<ResponseFields>>,
    ) -> Self {
        Self {
            state: State::Called {
                future,
                reservation,
                headers,
            },
        }
    }

    /// Runs `check`, then calls `service` (already ready) with the request it gives back.
    pub(crate) fn checking(check: Waiting<ReqBody>, service: S) -> Self {
        Self {
            state: State::Checking {
                checking: Box::new(Checking {
                    check,
                    service: Some(service),
                }),
            },
        }
    }

    pub(crate) fn rejected(response: Box<Response<Full<Bytes>>>) -> Self {
        Self {
            state: State::Rejected { response },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Called {
                    future,
                    reservation,
                    headers,
                } => {
                    let mut output = ready!(future.poll(cx));
                    if let (Some(fields), Ok(response)) = (headers.take(), output.as_mut()) {
                        fields.append_to(response.headers_mut());
                    }
                    let Some(reservation) = reservation.take() else {
                        state.set(State::Done);
                        return Poll::Ready(wrap(output));
                    };
                    let status = output.as_ref().ok().map(Response::status);
                    if let (true, Some(status)) = (reservation.is_reported(), status) {
                        // The handler may report as its body streams: the body's end settles.
                        state.set(State::Done);
                        let response = output.map(|response| {
                            response.map(|body| ResponseBody::metered(body, reservation, status))
                        });
                        return Poll::Ready(response);
                    }
                    let settle = reservation.settle(status);
                    if settle.is_done() {
                        state.set(State::Done);
                        return Poll::Ready(wrap(output));
                    }
                    state.set(State::Settling {
                        settling: Box::new(Settling {
                            settle,
                            output: Some(output),
                        }),
                    });
                }
                StateProj::Checking { checking } => {
                    let (request, checked) = ready!(checking.check.as_mut().poll(cx));
                    let (reservation, headers) = match checked {
                        Checked::Pass => (None, None),
                        Checked::Allow(reservation, headers) => (reservation, headers),
                        Checked::Reject(response) => {
                            state.set(State::Done);
                            let response = response.map(|body| ResponseBody::rejection(body));
                            return Poll::Ready(Ok(response));
                        }
                    };
                    let Some(mut service) = checking.service.take() else {
                        // Only `checking` makes this state, with the service.
                        return Poll::Pending;
                    };
                    let future = service.call(request);
                    state.set(State::Called {
                        future,
                        reservation,
                        headers,
                    });
                }
                StateProj::Settling { settling } => {
                    ready!(Pin::new(&mut settling.settle).poll(cx));
                    let Some(output) = settling.output.take() else {
                        // Only `Called` makes a `Settling`, with the output.
                        return Poll::Pending;
                    };
                    state.set(State::Done);
                    return Poll::Ready(wrap(output));
                }
                StateProj::Rejected { .. } => {
                    let StateOwned::Rejected { response } =
                        state.as_mut().project_replace(State::Done)
                    else {
                        return Poll::Pending;
                    };
                    let response = (*response).map(|body| ResponseBody::rejection(body));
                    return Poll::Ready(Ok(response));
                }
                // Polled after completion: it never completes again.
                StateProj::Done => return Poll::Pending,
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
        // The variants that are not the inner service's future are boxed or a box and the
        // service: what every allowed request moves grows by its reservation and headers only.
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
