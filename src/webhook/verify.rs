//! Signature and timestamp verification.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::WebhookConfig;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Why a request failed authentication. Each is answered `401`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature header is absent.
    MissingSignature,
    /// The timestamp header is absent.
    MissingTimestamp,
    /// The timestamp is not a whole number of seconds since the Unix epoch.
    InvalidTimestamp,
    /// The signature is not hex, or matches none of the secrets.
    BadSignature,
    /// The signature matches, but the timestamp is further from the clock than the tolerance.
    StaleTimestamp,
}

impl VerifyError {
    /// A short, stable code for the error (`"bad_signature"`), as the JSON `error` of the `401`.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingSignature => "missing_signature",
            VerifyError::MissingTimestamp => "missing_timestamp",
            VerifyError::InvalidTimestamp => "invalid_timestamp",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::StaleTimestamp => "stale_timestamp",
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VerifyError::MissingSignature => "the signature header is missing",
            VerifyError::MissingTimestamp => "the timestamp header is missing",
            VerifyError::InvalidTimestamp => "the timestamp is not a number of seconds",
            VerifyError::BadSignature => "the signature does not match",
            VerifyError::StaleTimestamp => "the timestamp is outside the tolerance",
        })
    }
}

impl std::error::Error for VerifyError {}

impl WebhookConfig {
    /// The hex signature of `timestamp` followed by `body`, with the first secret:
    /// `hex(HMAC-SHA256(secret, timestamp + body))`. What a sender puts in the signature header.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        // `build` guarantees at least one secret; without one there is nothing to sign with.
        match self.inner.secrets.first() {
            Some(keyed) => {
                let mut mac = keyed.clone();
                mac.update(timestamp.as_bytes());
                mac.update(body);
                hex::encode(mac.finalize().into_bytes())
            }
            None => String::new(),
        }
    }

    /// Authenticates a request: `signature` (hex, either case) must be the HMAC-SHA256 of
    /// `timestamp` followed by the raw `body` under one of the secrets, compared in constant time,
    /// and `timestamp` (seconds since the Unix epoch) must be within the tolerance of the clock.
    ///
    /// # Errors
    /// [`VerifyError::BadSignature`], [`VerifyError::InvalidTimestamp`] or
    /// [`VerifyError::StaleTimestamp`].
    pub fn verify(&self, timestamp: &str, body: &[u8], signature: &str) -> Result<(), VerifyError> {
        let timestamp = timestamp.trim();
        let tag = hex::decode(signature.trim()).map_err(|_| VerifyError::BadSignature)?;
        let matches = self.inner.secrets.iter().fold(false, |found, keyed| {
            let mut mac = keyed.clone();
            mac.update(timestamp.as_bytes());
            mac.update(body);
            // Every secret is tried, so the time taken does not depend on which one matched.
            mac.verify_slice(&tag).is_ok() | found
        });
        if !matches {
            return Err(VerifyError::BadSignature);
        }
        let sent = parse_seconds(timestamp).ok_or(VerifyError::InvalidTimestamp)?;
        let now = self
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if Duration::from_secs(now.abs_diff(sent)) > self.inner.tolerance {
            return Err(VerifyError::StaleTimestamp);
        }
        Ok(())
    }
}

/// Seconds since the epoch: ASCII digits only (no sign, no fraction), at most 20 of them.
fn parse_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn config(now: u64) -> WebhookConfig {
        WebhookConfig::builder()
            .secret("foobar")
            .clock(move || UNIX_EPOCH + Duration::from_secs(now))
            .build()
            .unwrap()
    }

    #[test]
    fn parse_seconds_accepts_digits_only() {
        assert_eq!(parse_seconds("1698322022"), Some(1_698_322_022));
        assert_eq!(parse_seconds(""), None);
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("+1"), None);
        assert_eq!(parse_seconds("1.5"), None);
        assert_eq!(parse_seconds("99999999999999999999999"), None);
    }

    #[test]
    fn sign_then_verify() {
        let config = config(1_000);
        let signature = config.sign("1000", b"{}");
        assert_eq!(signature.len(), 64);
        assert_eq!(config.verify("1000", b"{}", &signature), Ok(()));
        assert_eq!(
            config.verify("1000", b"{}", &signature.to_uppercase()),
            Ok(())
        );
        assert_eq!(
            config.verify("1000", b"{}", "zz"),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            config.verify("1000", b"{}", &signature[..62]),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn a_signed_but_non_numeric_timestamp_is_invalid() {
        let config = config(1_000);
        let signature = config.sign("soon", b"{}");
        assert_eq!(
            config.verify("soon", b"{}", &signature),
            Err(VerifyError::InvalidTimestamp)
        );
    }

    #[test]
    fn codes() {
        assert_eq!(VerifyError::StaleTimestamp.code(), "stale_timestamp");
        assert_eq!(VerifyError::MissingSignature.code(), "missing_signature");
    }
}
