//! Configuration errors returned by builders.

use std::fmt;

/// Invalid configuration, returned when a layer or a route table is built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A resource name is empty.
    EmptyResource,
    /// A path template cannot be compiled.
    InvalidTemplate {
        /// The template as configured.
        template: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A template names the same parameter twice.
    DuplicateParameter {
        /// The template as configured.
        template: String,
        /// The repeated parameter.
        name: String,
    },
    /// Two routes claim the same method and path.
    Conflict {
        /// The route being added.
        template: String,
        /// The route it conflicts with.
        existing: String,
    },
    /// An option has a value it cannot take.
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// Why the value is invalid.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::EmptyResource => f.write_str("a resource name is empty"),
            ConfigError::InvalidTemplate { template, reason } => {
                write!(f, "invalid path template `{template}`: {reason}")
            }
            ConfigError::DuplicateParameter { template, name } => {
                write!(
                    f,
                    "path template `{template}` names parameter `{name}` twice"
                )
            }
            ConfigError::Conflict { template, existing } => {
                write!(f, "route `{template}` conflicts with `{existing}`")
            }
            ConfigError::InvalidOption { option, reason } => {
                write!(f, "invalid `{option}`: {reason}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}
