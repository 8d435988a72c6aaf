//! Readiness with a `tower-test` mock: `poll_ready` is forwarded to the inner service, and the
//! service that was made ready is the one that is called, also after a check that awaited the
//! store (a clone of the mock panics when called without `poll_ready`).

use std::task::Poll;

use crate::support::*;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower_plans::Allowed;
use tower_test::mock;

type Mock = mock::Mock<Request<Full<Bytes>>, Response<Full<Bytes>>>;
type Handle = mock::Handle<Request<Full<Bytes>>, Response<Full<Bytes>>>;

fn spawn() -> (mock::Spawn<tower_plans::PlanLimit<Mock>>, Handle) {
    let store = CountingStore::new();
    mock::spawn_layer(builder(&store).build().unwrap())
}

#[tokio::test]
async fn poll_ready_is_forwarded() {
    let (mut service, mut handle) = spawn();
    handle.allow(0);
    assert!(service.poll_ready().is_pending());
    handle.allow(1);
    assert!(service.is_woken());
    assert!(matches!(service.poll_ready(), Poll::Ready(Ok(()))));
}

#[tokio::test]
async fn inner_errors_from_poll_ready_are_returned() {
    let (mut service, mut handle) = spawn();
    handle.send_error("inner failure");
    match service.poll_ready() {
        Poll::Ready(Err(error)) => assert_eq!(error.to_string(), "inner failure"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_ready_service_is_called_after_a_check() {
    let (mut service, mut handle) = spawn();
    for round in 0..3 {
        handle.allow(1);
        assert!(matches!(service.poll_ready(), Poll::Ready(Ok(()))));
        // No user cache: each governed request awaits the store before calling the inner service.
        let response = service.call(request(Method::POST, "/clients", Some("ann")));
        let answer = async {
            let (request, reply) = handle.next_request().await.unwrap();
            let allowed = request.extensions().get::<Allowed>().cloned().unwrap();
            assert_eq!(allowed.remaining(), Some(2));
            reply.send_response(Response::new(Full::new(Bytes::from("created"))));
        };
        let (response, ()) = tokio::join!(response, answer);
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "round {round}");
        assert_eq!(text(response).await, "created");
    }
}

#[tokio::test]
async fn an_ungoverned_request_goes_to_the_ready_service() {
    let (mut service, mut handle) = spawn();
    handle.allow(2);
    assert!(service.poll_ready().is_ready());
    // The first request loads the catalog, then turns out to be ungoverned.
    let response = service.call(request(Method::GET, "/health", None));
    let answer = async {
        let (request, reply) = handle.next_request().await.unwrap();
        assert!(request.extensions().get::<Allowed>().is_none());
        reply.send_response(Response::new(Full::new(Bytes::from("ok"))));
    };
    let (response, ()) = tokio::join!(response, answer);
    assert_eq!(response.unwrap().status(), StatusCode::OK);

    assert!(service.poll_ready().is_ready());
    let response = service.call(request(Method::GET, "/health", None));
    let answer = async {
        let (_, reply) = handle.next_request().await.unwrap();
        reply.send_response(Response::new(Full::new(Bytes::from("ok"))));
    };
    let (response, ()) = tokio::join!(response, answer);
    assert_eq!(response.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_rejection_does_not_reach_the_inner_service() {
    let (mut service, mut handle) = spawn();
    handle.allow(1);
    assert!(service.poll_ready().is_ready());
    let response = service
        .call(request(Method::POST, "/clients", Some("bob")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(handle.poll_request().is_pending());
}
