//! The JSON formats: the error both readers report, and the pieces they share.
//!
//! [`Catalog::from_json`](crate::Catalog::from_json) and
//! [`Subscriber::from_json`](crate::Subscriber::from_json) (and their `from_value` and serde
//! counterparts) read the JSON forms of the Node.js `subscriber` package. Anything malformed is a
//! [`FormatError`] that names the path to the bad value:
//!
//! ```
//! use tower_plans::format::FormatError;
//! use tower_plans::{Catalog, Subscriber};
//!
//! let err: FormatError = Catalog::from_json(r#"[{"name": "free", "clients": -1}]"#).unwrap_err();
//! assert_eq!(err.path(), "plans[0].clients");
//!
//! let err: FormatError = Subscriber::from_json(r#"{"plan": "free", "clients": "3"}"#).unwrap_err();
//! assert_eq!(err.path(), "clients");
//! ```

use std::fmt;

use serde_json::Value;

/// A malformed catalog or subscriber record: where the bad value is and what was expected.
///
/// The path reads like an accessor: `plans[2].limits.clients.create`, `trial.duration`,
/// `plans[0].limits["odd key"]`, `plan.expire`, `usage.tasks.show`. In a bare array of plans,
/// `plans` names the array itself. An error about the whole document (invalid JSON, a root of the
/// wrong kind) has an empty path. See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    path: String,
    message: String,
}

impl FormatError {
    /// Creates an error for the value at `path` (`plans[2].limits.clients.create`).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The path to the bad value, such as `plans[2].limits.clients.create`; empty for the whole
    /// document.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What was wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for FormatError {}

/// Parses JSON text; invalid JSON is an error with an empty path.
pub(crate) fn parse(json: &str) -> Result<Value, FormatError> {
    serde_json::from_str(json).map_err(|err| FormatError::new("", format!("invalid JSON: {err}")))
}

/// A path into a JSON document, rendered only when an error needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JsonPath<'a> {
    parent: Option<&'a JsonPath<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy, Debug)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> JsonPath<'a> {
    /// The document itself (renders as the empty string).
    pub(crate) fn root() -> JsonPath<'static> {
        JsonPath {
            parent: None,
            seg: Seg::Root,
        }
    }

    /// The property `key` of the value at this path.
    pub(crate) fn key<'b>(&'b self, key: &'b str) -> JsonPath<'b> {
        JsonPath {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }

    /// The element `index` of the array at this path.
    pub(crate) fn index(&self, index: usize) -> JsonPath<'_> {
        JsonPath {
            parent: Some(self),
            seg: Seg::Index(index),
        }
    }

    /// The path as text: `plans[2].limits.clients.create`, `usage["a b"]`.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        if let Some(parent) = self.parent {
            parent.render_into(out);
        }
        match self.seg {
            Seg::Root => {}
            Seg::Key(key) if is_simple_key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Key(key) => {
                out.push('[');
                out.push_str(&Value::from(key).to_string());
                out.push(']');
            }
            Seg::Index(index) => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
        }
    }

    /// An error about the value at this path.
    pub(crate) fn error(&self, message: impl Into<String>) -> FormatError {
        FormatError::new(self.render(), message)
    }
}

/// Whether a key can be written after a dot: ASCII letters, digits, `_` and `-`.
fn is_simple_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A short description of a JSON value for "found ..." in error messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::String(s) => format!("the string {}", Value::from(s.as_str())),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// The value as a non-negative integer, if it is one. A float with no fractional part (`3.0`)
/// counts as an integer; negative, fractional, too large and non-numeric values do not.
pub(crate) fn non_negative_integer(value: &Value) -> Option<u64> {
    let Value::Number(n) = value else {
        return None;
    };
    if let Some(n) = n.as_u64() {
        return Some(n);
    }
    if n.is_i64() {
        return None;
    }
    let f = n.as_f64()?;
    // 2^64: the first f64 that does not fit in a u64.
    if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(f as u64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_render_like_accessors() {
        let root = JsonPath::root();
        assert_eq!(root.render(), "");
        let plans = root.key("plans");
        let plan = plans.index(2);
        let limits = plan.key("limits");
        let clients = limits.key("clients");
        assert_eq!(
            clients.key("create").render(),
            "plans[2].limits.clients.create"
        );
        assert_eq!(
            limits.key("my clients").render(),
            r#"plans[2].limits["my clients"]"#
        );
        assert_eq!(limits.key("").render(), r#"plans[2].limits[""]"#);
        assert_eq!(root.key("a.b").render(), r#"["a.b"]"#);
        assert_eq!(root.index(0).render(), "[0]");
    }

    #[test]
    fn non_negative_integers() {
        assert_eq!(non_negative_integer(&json!(0)), Some(0));
        assert_eq!(non_negative_integer(&json!(3)), Some(3));
        assert_eq!(non_negative_integer(&json!(u64::MAX)), Some(u64::MAX));
        assert_eq!(non_negative_integer(&json!(3.0)), Some(3));
        assert_eq!(non_negative_integer(&json!(-1)), None);
        assert_eq!(non_negative_integer(&json!(-1.0)), None);
        assert_eq!(non_negative_integer(&json!(2.5)), None);
        assert_eq!(non_negative_integer(&json!(1e20)), None);
        assert_eq!(non_negative_integer(&json!("3")), None);
        assert_eq!(non_negative_integer(&json!(null)), None);
        assert_eq!(non_negative_integer(&json!(true)), None);
    }

    #[test]
    fn descriptions_name_the_value() {
        assert_eq!(describe(&json!(-1)), "`-1`");
        assert_eq!(describe(&json!("3")), r#"the string "3""#);
        assert_eq!(describe(&json!([1])), "an array");
        assert_eq!(describe(&json!({})), "an object");
        assert_eq!(describe(&json!(null)), "null");
        assert_eq!(describe(&json!(false)), "`false`");
    }

    #[test]
    fn display_puts_the_path_first() {
        let err = FormatError::new("plans[0].name", "missing");
        assert_eq!(err.to_string(), "plans[0].name: missing");
        assert_eq!(
            JsonPath::root()
                .key("plan")
                .key("expire")
                .error("bad")
                .to_string(),
            "plan.expire: bad"
        );
    }

    #[test]
    fn display_without_a_path_is_the_message() {
        assert_eq!(
            FormatError::new("", "invalid JSON").to_string(),
            "invalid JSON"
        );
        let err = parse("{").unwrap_err();
        assert_eq!(err.path(), "");
        assert!(err.to_string().starts_with("invalid JSON: "), "{err}");
    }
}
