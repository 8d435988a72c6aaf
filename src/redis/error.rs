//! [`Error`]: what the Redis stores' own methods return.

use std::fmt;
use std::time::Duration;

use crate::store::LoadError;

/// The error of the Redis types' own methods (connecting, seeding, publishing).
///
/// Errors of the [`PlanStore`](crate::PlanStore) and [`UsageStore`](crate::UsageStore) methods
/// are boxed, as every store's are; the layer logs their text and never sends it to a client.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Redis could not be reached, or answered with an error.
    Redis(redis::RedisError),
    /// Redis did not answer in time.
    TimedOut(Duration),
    /// The JSON given to a writer is not a valid catalog or subscriber record.
    Load(LoadError),
    /// The invalidation task needs a Tokio runtime, and there is none.
    NoRuntime,
    /// A record kept changing while it was being rewritten, for this many attempts.
    Contended {
        /// How many times the write was tried.
        attempts: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Redis(error) => write!(f, "redis: {error}"),
            Error::TimedOut(after) => write!(f, "redis: no answer within {after:?}"),
            Error::Load(error) => fmt::Display::fmt(error, f),
            Error::NoRuntime => f.write_str("no Tokio runtime to run the invalidation task on"),
            Error::Contended { attempts } => write!(
                f,
                "redis: the record kept changing while it was rewritten ({attempts} attempts)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Redis(error) => Some(error),
            Error::Load(error) => Some(error),
            Error::TimedOut(_) | Error::NoRuntime | Error::Contended { .. } => None,
        }
    }
}

impl From<redis::RedisError> for Error {
    fn from(error: redis::RedisError) -> Self {
        Error::Redis(error)
    }
}

impl From<LoadError> for Error {
    fn from(error: LoadError) -> Self {
        Error::Load(error)
    }
}

/// Runs a Redis call under `timeout` (without one outside a Tokio runtime).
pub(crate) async fn within<T, F>(timeout: Duration, call: F) -> Result<T, Error>
where
    F: std::future::Future<Output = redis::RedisResult<T>>,
{
    if tokio::runtime::Handle::try_current().is_err() {
        // No timer outside a Tokio runtime: the call is awaited as it is, as the layer does.
        return call.await.map_err(Error::Redis);
    }
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(Error::Redis),
        Err(_) => Err(Error::TimedOut(timeout)),
    }
}
