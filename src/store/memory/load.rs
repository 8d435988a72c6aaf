//! Loading a [`MemoryStore`] from the JSON formats, and what goes wrong doing so.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::{write, MemoryStore, State, User};
use crate::catalog::Catalog;
use crate::format::FormatError;
use crate::subscriber::Subscriber;

impl MemoryStore {
    /// Loads a store from subscriber-format JSON text: the catalog, and a JSON object that maps
    /// each user id to its subscriber record (`{"john": {"plan": "free", "usage": {...}}}`).
    ///
    /// A `null` record is skipped, as for an unknown user.
    ///
    /// # Errors
    /// A [`LoadError`] when either text is not JSON, the catalog is malformed, the users are not a
    /// JSON object, or a user's record is malformed or grants an add-on the catalog does not know
    /// (the error names the user and the path, such as `addons[0].name`).
    pub fn from_json(plans_json: &str, users_json: &str) -> Result<Self, LoadError> {
        let plans: Value = serde_json::from_str(plans_json)
            .map_err(|error| LoadError::CatalogJson(Arc::new(error)))?;
        let users: Value = serde_json::from_str(users_json)
            .map_err(|error| LoadError::UsersJson(Arc::new(error)))?;
        Self::from_values(&plans, &users)
    }

    /// Loads a store from already parsed JSON values; see [`from_json`](Self::from_json).
    ///
    /// # Errors
    /// A [`LoadError`] when the catalog is malformed, the users are not a JSON object, or a
    /// user's record is malformed or grants an add-on the catalog does not know.
    pub fn from_values(plans: &Value, users: &Value) -> Result<Self, LoadError> {
        let catalog = Catalog::from_value(plans).map_err(LoadError::Catalog)?;
        let records = match users {
            Value::Object(records) => records,
            Value::Null => return Ok(Self::new(catalog)),
            other => {
                return Err(LoadError::UsersNotObject {
                    found: json_kind(other),
                })
            }
        };
        let mut parsed = Vec::with_capacity(records.len());
        for (id, record) in records {
            if record.is_null() {
                continue;
            }
            let subscriber = Subscriber::from_value(record)
                .and_then(|subscriber| {
                    subscriber.check_addons(&catalog)?;
                    Ok(subscriber)
                })
                .map_err(|error| LoadError::User {
                    id: Arc::from(id.as_str()),
                    error,
                })?;
            parsed.push((id, subscriber));
        }
        let state = State::new(catalog);
        for (id, subscriber) in parsed {
            let mut users = write(state.shard(id));
            users
                .records
                .insert(Arc::from(id.as_str()), User::new(subscriber, None));
        }
        Ok(Self {
            state: Arc::new(state),
        })
    }
}

/// Why a [`MemoryStore`] could not be loaded: which document, which user, and where in it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// The catalog text is not valid JSON.
    CatalogJson(Arc<serde_json::Error>),
    /// The users text is not valid JSON.
    UsersJson(Arc<serde_json::Error>),
    /// The catalog is malformed.
    Catalog(FormatError),
    /// The users document is not a JSON object of id to record.
    UsersNotObject {
        /// The kind of JSON value found instead (`"array"`, `"string"`, ...).
        found: &'static str,
    },
    /// One user's record is malformed.
    User {
        /// The user's id, as the key of the users object.
        id: Arc<str>,
        /// What is wrong with the record, and where.
        error: FormatError,
    },
}

/// An add-on that the store's catalog does not know, refused by
/// [`MemoryStore::grant_addon`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownAddon {
    pub(super) name: Arc<str>,
}

impl UnknownAddon {
    /// The add-on's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for UnknownAddon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the catalog has no add-on `{}`", self.name)
    }
}

impl std::error::Error for UnknownAddon {}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::CatalogJson(error) => write!(f, "catalog: invalid JSON: {error}"),
            LoadError::UsersJson(error) => write!(f, "users: invalid JSON: {error}"),
            LoadError::Catalog(error) => write!(f, "catalog: {error}"),
            LoadError::UsersNotObject { found } => {
                write!(
                    f,
                    "users: expected an object of user id to record, found {found}"
                )
            }
            LoadError::User { id, error } => {
                write!(f, "users[{:?}]", &**id)?;
                let path = error.path();
                if !path.is_empty() && !path.starts_with('[') {
                    f.write_str(".")?;
                }
                write!(f, "{path}: {}", error.message())
            }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::CatalogJson(error) | LoadError::UsersJson(error) => Some(&**error),
            LoadError::Catalog(error) => Some(error),
            LoadError::UsersNotObject { .. } => None,
            LoadError::User { error, .. } => Some(error),
        }
    }
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_error_names_the_user_and_the_path() {
        let error = LoadError::User {
            id: Arc::from("john"),
            error: FormatError::new("plan.expire", "expected milliseconds since the epoch"),
        };
        assert_eq!(
            error.to_string(),
            r#"users["john"].plan.expire: expected milliseconds since the epoch"#
        );
        let root = LoadError::User {
            id: Arc::from("a\"b"),
            error: FormatError::new("", "expected an object"),
        };
        assert_eq!(root.to_string(), r#"users["a\"b"]: expected an object"#);
        let index = LoadError::User {
            id: Arc::from("x"),
            error: FormatError::new("[0]", "bad"),
        };
        assert_eq!(index.to_string(), r#"users["x"][0]: bad"#);
    }

    #[test]
    fn catalog_error_is_wrapped() {
        let error = LoadError::Catalog(FormatError::new("plans[2].limits.clients", "negative"));
        assert_eq!(
            error.to_string(),
            "catalog: plans[2].limits.clients: negative"
        );
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn invalid_json_names_the_document() {
        let error = MemoryStore::from_json("{", "{}").unwrap_err();
        assert!(matches!(error, LoadError::CatalogJson(_)));
        assert!(error.to_string().starts_with("catalog: invalid JSON: "));

        let error = MemoryStore::from_json("[]", "[").unwrap_err();
        assert!(matches!(error, LoadError::UsersJson(_)));
        assert!(error.to_string().starts_with("users: invalid JSON: "));
    }

    #[test]
    fn users_not_object_message() {
        let error = LoadError::UsersNotObject { found: "an array" };
        assert_eq!(
            error.to_string(),
            "users: expected an object of user id to record, found an array"
        );
        assert_eq!(json_kind(&serde_json::json!([])), "an array");
        assert_eq!(json_kind(&serde_json::json!("x")), "a string");
    }
}
