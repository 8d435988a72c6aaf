//! [`UsagePage`], the tower service that answers the page.

use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower_service::Service;

use super::page::Page;

/// The entitlements URL the page fetches unless told otherwise: `entitlements`, beside the page.
const DEFAULT_URL: &str = "entitlements";

/// A [`Service`] that answers the usage page: HTML, CSS and JavaScript in one response, which
/// fetches the signed-in user's entitlements and shows them. See the [module](super).
///
/// Cloning it is a pointer copy; the page is assembled once, by [`new`](Self::new) and
/// [`entitlements_url`](Self::entitlements_url).
#[derive(Clone)]
pub struct UsagePage {
    url: Arc<str>,
    page: Arc<Page>,
}

impl UsagePage {
    /// The page that fetches `entitlements`, relative to its own URL: served at `/account`, it
    /// fetches `/entitlements`.
    pub fn new() -> Self {
        Self::with_url(DEFAULT_URL)
    }

    /// Fetches the entitlements from `url` instead, resolved against the page's URL
    /// (`"/api/me/entitlements"`, `"../entitlements"`). It must be on the page's origin: the
    /// page's `Content-Security-Policy` lets it connect nowhere else.
    #[must_use]
    pub fn entitlements_url(self, url: impl AsRef<str>) -> Self {
        Self::with_url(url.as_ref())
    }

    fn with_url(url: &str) -> Self {
        UsagePage {
            url: Arc::from(url),
            page: Arc::new(Page::new(url)),
        }
    }
}

impl Default for UsagePage {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for UsagePage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsagePage")
            .field("entitlements_url", &self.url)
            .field("bytes", &self.page.html.len())
            .finish()
    }
}

impl<B> Service<Request<B>> for UsagePage {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.page.respond(request.method(), request.headers())))
    }
}
