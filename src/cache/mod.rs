//! The layer's caches, each a leaf that takes what it needs as arguments: the catalog with its
//! compiled route table, and the optional user cache.

mod catalog;
mod users;

pub(crate) use catalog::{CatalogCache, Fetch, Loaded, Refresh, Route, View};
pub use users::UserCache;
pub(crate) use users::Users;
