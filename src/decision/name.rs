//! [`Name`]: the text of a plan, a resource or a credit pool in an [`Allowed`] decision.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use smol_str::SmolStr;

#[cfg(doc)]
use super::Allowed;

/// An immutable name as an [`Allowed`] decision carries it: a plan, a resource or a credit pool.
///
/// It reads as a `str` (through `Deref`, `AsRef<str>` and `Borrow<str>`), compares with `str`
/// and `String`, and displays and serializes as the text.
///
/// A name of up to [`Name::INLINE`] bytes is kept inside the value, so cloning it copies a few
/// words and touches no shared memory; a longer name shares the catalog's text behind an `Arc`.
/// Every allowed request builds its decision from the catalog's names, and a handler's
/// extractor clones it again: with the names inline, requests on different threads do not
/// contend on the reference counts of the same few names.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(SmolStr);

impl Name {
    /// The longest name kept inline, in bytes.
    pub const INLINE: usize = 23;

    /// The name `text`.
    pub fn new(text: &str) -> Name {
        Name(SmolStr::new(text))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl From<&Arc<str>> for Name {
    /// Copies a short `text` inline; a longer one shares the `Arc`, allocating nothing.
    fn from(text: &Arc<str>) -> Name {
        if text.len() <= Name::INLINE {
            Name::new(text)
        } else {
            Name(SmolStr::from(Arc::clone(text)))
        }
    }
}

impl From<Arc<str>> for Name {
    fn from(text: Arc<str>) -> Name {
        Name(SmolStr::from(text))
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Name {
        Name::new(text)
    }
}

impl From<String> for Name {
    fn from(text: String) -> Name {
        Name(SmolStr::from(text))
    }
}

impl From<Name> for Arc<str> {
    fn from(name: Name) -> Arc<str> {
        name.0.into()
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0.into()
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Arc<str>> for Name {
    fn eq(&self, other: &Arc<str>) -> bool {
        self.as_str() == &**other
    }
}

impl PartialEq<Name> for Arc<str> {
    fn eq(&self, other: &Name) -> bool {
        &**self == other.as_str()
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        *self == other.as_str()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_name_is_inline_and_a_long_one_shares_the_catalogs_text() {
        let short: Arc<str> = Arc::from("clients");
        let name = Name::from(&short);
        assert_eq!(name, "clients");
        assert_eq!(
            Arc::strong_count(&short),
            1,
            "a short name holds no reference"
        );

        let long: Arc<str> = Arc::from("a-resource-name-of-more-than-23-bytes");
        let name = Name::from(&long);
        assert_eq!(name.as_str(), &*long);
        assert_eq!(Arc::strong_count(&long), 2, "a long name shares the text");
        let copy = name.clone();
        assert_eq!(Arc::strong_count(&long), 3);
        drop((name, copy));
        assert_eq!(Arc::strong_count(&long), 1);

        let edge = "x".repeat(Name::INLINE);
        let at_edge: Arc<str> = Arc::from(edge.as_str());
        let _name = Name::from(&at_edge);
        assert_eq!(
            Arc::strong_count(&at_edge),
            1,
            "{} bytes are inline",
            Name::INLINE
        );
    }

    #[test]
    fn a_name_reads_compares_and_serializes_as_its_text() {
        let name = Name::from("pro");
        assert_eq!(&*name, "pro");
        assert_eq!(name, "pro");
        assert_eq!("pro", name);
        assert_eq!(name, *"pro");
        assert_eq!(name, "pro".to_owned());
        assert_eq!(name, Arc::<str>::from("pro"));
        assert_ne!(Arc::<str>::from("pr"), name);
        assert_eq!(name.to_string(), "pro");
        assert_eq!(format!("{name:?}"), "\"pro\"");
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"pro\"");
        assert_eq!(String::from(name.clone()), "pro");
        assert_eq!(&*Arc::<str>::from(name), "pro");
    }
}
