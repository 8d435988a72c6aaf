//! TODO webhooks
