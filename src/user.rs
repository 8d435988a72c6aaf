//! Who the user is: the [`UserId`] extension and custom extractors.

use std::fmt;
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Request, Uri, Version};

/// The authenticated user's id, put in the request extensions by the application's authentication
/// layer, which runs before the plan layer.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Creates a user id.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a shared string.
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UserId").field(&&*self.0).finish()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for UserId {
    fn from(id: &str) -> Self {
        Self(Arc::from(id))
    }
}

impl From<String> for UserId {
    fn from(id: String) -> Self {
        Self(Arc::from(id))
    }
}

impl From<Arc<str>> for UserId {
    fn from(id: Arc<str>) -> Self {
        Self(id)
    }
}

impl AsRef<str> for UserId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for UserId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A borrowed view of a request's head (method, URI, version, headers and extensions), handed to
/// a custom user extractor.
///
/// See [`PlanLimitLayerBuilder::extract_user`](crate::PlanLimitLayerBuilder::extract_user).
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    method: &'a Method,
    uri: &'a Uri,
    version: Version,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
}

impl<'a> RequestHead<'a> {
    /// The head of `request`.
    pub fn new<B>(request: &'a Request<B>) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            version: request.version(),
            headers: request.headers(),
            extensions: request.extensions(),
        }
    }

    /// The request method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The request extensions, where an authentication layer leaves what it learned.
    pub fn extensions(&self) -> &'a Extensions {
        self.extensions
    }
}

/// How the layer finds the user: the [`UserId`] extension, or the application's extractor.
pub(crate) type ExtractFn = dyn Fn(&RequestHead<'_>) -> Option<UserId> + Send + Sync + 'static;

/// The user of `request`: from the extractor when one is configured (the id is then also inserted
/// into the request extensions), otherwise from the [`UserId`] extension.
pub(crate) fn extract_user<B>(
    extractor: Option<&ExtractFn>,
    request: &mut Request<B>,
) -> Option<UserId> {
    match extractor {
        None => request.extensions().get::<UserId>().cloned(),
        Some(extract) => {
            let id = extract(&RequestHead::new(request))?;
            request.extensions_mut().insert(id.clone());
            Some(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_reads_the_extension() {
        let mut request = Request::new(());
        assert_eq!(extract_user(None, &mut request), None);
        request.extensions_mut().insert(UserId::from("ann"));
        assert_eq!(extract_user(None, &mut request), Some(UserId::from("ann")));
    }

    #[test]
    fn extractor_reads_the_head_and_inserts_the_id() {
        let extract = |head: &RequestHead<'_>| {
            head.headers()
                .get("x-user")
                .and_then(|value| value.to_str().ok())
                .map(UserId::from)
        };
        let mut request = Request::builder().header("x-user", "bob").body(()).unwrap();
        assert_eq!(
            extract_user(Some(&extract), &mut request),
            Some(UserId::from("bob"))
        );
        assert_eq!(
            request.extensions().get::<UserId>(),
            Some(&UserId::from("bob"))
        );

        let mut anonymous = Request::new(());
        assert_eq!(extract_user(Some(&extract), &mut anonymous), None);
        assert_eq!(anonymous.extensions().get::<UserId>(), None);
    }
}
