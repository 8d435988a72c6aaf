//! TODO fuzzing
