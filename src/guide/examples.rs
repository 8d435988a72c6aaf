//! TODO examples
