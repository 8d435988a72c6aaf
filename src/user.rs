//! Who the user is: the [`UserId`] extension and custom extractors.

use std::fmt;
use std::sync::Arc;

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
