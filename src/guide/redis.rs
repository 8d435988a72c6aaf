//! TODO redis
