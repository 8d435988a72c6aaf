//! Rejections: why a governed request was refused, and how the refusal is rendered.
//!
//! The layer refuses a governed request in three cases, each a [`Rejection`]: no user
//! (`401`), a plan that does not allow the action (`403`), and a plan store that failed or timed
//! out while the layer fails closed (`503`). A [`RenderRejection`] turns the rejection into a
//! response; the default, [`JsonRejection`], answers with the JSON bodies the crate documents. The
//! layer always puts the [`Rejection`] itself in the response extensions, whichever renderer made
//! the response, so outer layers (logging, metrics) can tell a refusal from a handler's answer;
//! for a denial it also puts the [`Denial`] there.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::decision::Denial;

/// Why the layer refused a governed request.
///
/// Rendered by a [`RenderRejection`] and always inserted into the response extensions (with,
/// for [`Rejection::Denied`], the [`Denial`] itself).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The request touches a governed resource but carries no user (`401`).
    Unauthenticated,
    /// The user's plan does not allow the action (`403`), or not yet (`429`, a rate).
    Denied(Denial),
    /// The plan store failed or timed out and the layer fails closed (`503`).
    StoreUnavailable,
}

impl Rejection {
    /// The status code of the default rendering: `401`, `403` (`429` for a rate) or `503`.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Unauthenticated => StatusCode::UNAUTHORIZED,
            Rejection::Denied(denial) => denial.status(),
            Rejection::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Turns a [`Rejection`] into the response the client receives.
///
/// Implemented for [`JsonRejection`] (the default) and for every
/// `Fn(&Rejection) -> Response<Full<Bytes>> + Send + Sync + 'static`; a closure passed to
/// [`PlanLimitLayerBuilder::render_rejection`](crate::PlanLimitLayerBuilder::render_rejection)
/// needs its argument type written out (`|rejection: &Rejection| ...`). The layer inserts the
/// [`Rejection`] (and a denial's [`Denial`]) into the extensions of whatever response the
/// renderer returns.
///
/// # Example
///
/// A renderer that keeps the default bodies and adds a header:
///
/// ```
/// use bytes::Bytes;
/// use http::{HeaderValue, Response};
/// use http_body_util::Full;
/// use tower_plans::{JsonRejection, RenderRejection, Rejection};
///
/// let render = |rejection: &Rejection| -> Response<Full<Bytes>> {
///     let mut response = JsonRejection.render(rejection);
///     response
///         .headers_mut()
///         .insert("x-plan-check", HeaderValue::from_static("refused"));
///     response
/// };
///
/// let response = render.render(&Rejection::Unauthenticated);
/// assert_eq!(response.status(), 401);
/// assert_eq!(response.headers()["x-plan-check"], "refused");
/// ```
pub trait RenderRejection: Send + Sync + 'static {
    /// Renders `rejection` as a response.
    fn render(&self, rejection: &Rejection) -> Response<Full<Bytes>>;
}

impl<F> RenderRejection for F
where
    F: Fn(&Rejection) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    fn render(&self, rejection: &Rejection) -> Response<Full<Bytes>> {
        self(rejection)
    }
}

/// The default renderer: the status of [`Rejection::status`] with a JSON body and
/// `content-type: application/json`.
///
/// | rejection | status | body |
/// |---|---|---|
/// | [`Rejection::Unauthenticated`] | 401 | `{"reason":"unauthenticated"}` |
/// | [`Rejection::Denied`] | 403 | the [`Denial`] as JSON, e.g. `{"reason":"subscription","plan":"free","item":"clients","action":"create","maximum":3,"usage":3}` |
/// | [`Rejection::StoreUnavailable`] | 503 | `{"reason":"plan_store_unavailable"}` |
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonRejection;

#[allow(clippy::declare_interior_mutable_const)]
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

const UNAUTHENTICATED: &[u8] = br#"{"reason":"unauthenticated"}"#;
const STORE_UNAVAILABLE: &[u8] = br#"{"reason":"plan_store_unavailable"}"#;

impl RenderRejection for JsonRejection {
    fn render(&self, rejection: &Rejection) -> Response<Full<Bytes>> {
        let body = match rejection {
            Rejection::Unauthenticated => Bytes::from_static(UNAUTHENTICATED),
            Rejection::StoreUnavailable => Bytes::from_static(STORE_UNAVAILABLE),
            Rejection::Denied(denial) => Bytes::from(denial.to_json_bytes()),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = rejection.status();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, APPLICATION_JSON);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(response: Response<Full<Bytes>>) -> Bytes {
        match response.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn unauthenticated_is_401_json() {
        let response = JsonRejection.render(&Rejection::Unauthenticated);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            body(response).await,
            &br#"{"reason":"unauthenticated"}"#[..]
        );
    }

    #[tokio::test]
    async fn store_unavailable_is_503_json() {
        let response = JsonRejection.render(&Rejection::StoreUnavailable);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            body(response).await,
            &br#"{"reason":"plan_store_unavailable"}"#[..]
        );
    }

    #[test]
    fn closures_render() {
        let render = |rejection: &Rejection| {
            let mut response = Response::new(Full::new(Bytes::from_static(b"no")));
            *response.status_mut() = rejection.status();
            response
        };
        let response = RenderRejection::render(&render, &Rejection::StoreUnavailable);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
