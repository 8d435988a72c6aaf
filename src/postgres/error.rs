//! [`Error`]: what the Postgres store's own methods return.

use std::fmt;

use crate::store::LoadError;

/// The error of the Postgres types' own methods (connecting, migrating, writing plans and
/// records, publishing invalidations).
///
/// Errors of the [`PlanStore`](crate::PlanStore) and [`UsageStore`](crate::UsageStore) methods
/// are boxed, as every store's are; the layer logs their text and never sends it to a client.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Postgres could not be reached, or answered with an error.
    Database(sqlx::Error),
    /// The JSON given to a writer is not a valid catalog or subscriber record.
    Load(LoadError),
    /// A value does not fit its column: an instant past `i64::MAX` milliseconds, say.
    OutOfRange {
        /// What the value is (`"plans[0].position"`, `"john's plan expiry"`).
        what: String,
    },
    /// The database's schema is newer than this version of the crate knows.
    NewerSchema {
        /// The newest migration applied to the database.
        found: i64,
        /// The newest migration this version of the crate has.
        known: i64,
    },
    /// The invalidation task needs a Tokio runtime, and there is none.
    NoRuntime,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Database(error) => write!(f, "postgres: {error}"),
            Error::Load(error) => fmt::Display::fmt(error, f),
            Error::OutOfRange { what } => write!(f, "postgres: {what} does not fit its column"),
            Error::NewerSchema { found, known } => write!(
                f,
                "postgres: the database's schema is at migration {found}, newer than the {known} \
                 this version of tower-plans knows"
            ),
            Error::NoRuntime => f.write_str("no Tokio runtime to run the invalidation task on"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Database(error) => Some(error),
            Error::Load(error) => Some(error),
            Error::OutOfRange { .. } | Error::NewerSchema { .. } | Error::NoRuntime => None,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Error::Database(error)
    }
}

impl From<LoadError> for Error {
    fn from(error: LoadError) -> Self {
        Error::Load(error)
    }
}

/// A count or an instant as a Postgres `bigint`, or [`Error::OutOfRange`] naming it.
pub(crate) fn bigint(value: u64, what: impl FnOnce() -> String) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::OutOfRange { what: what() })
}
