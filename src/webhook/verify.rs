//! Signature and timestamp verification.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::WebhookConfig;
use crate::error::ConfigError;

type HmacSha256 = Hmac<Sha256>;

/// The keyed MACs of the active secrets, in the order they were added; the first one signs.
/// Shared by the receivers of this module and of `stripe`.
#[derive(Clone)]
pub(crate) struct Secrets(Vec<HmacSha256>);

impl Secrets {
    /// Keys each secret.
    ///
    /// # Errors
    /// [`ConfigError::InvalidOption`] for `secret` when there is none, or one is empty.
    pub(crate) fn new(secrets: &[Vec<u8>]) -> Result<Self, ConfigError> {
        if secrets.is_empty() {
            return Err(ConfigError::InvalidOption {
                option: "secret",
                reason: "at least one secret is required".to_owned(),
            });
        }
        let mut keyed = Vec::with_capacity(secrets.len());
        for secret in secrets {
            if secret.is_empty() {
                return Err(ConfigError::InvalidOption {
                    option: "secret",
                    reason: "a secret is empty".to_owned(),
                });
            }
            let mac =
                HmacSha256::new_from_slice(secret).map_err(|error| ConfigError::InvalidOption {
                    option: "secret",
                    reason: error.to_string(),
                })?;
            keyed.push(mac);
        }
        Ok(Self(keyed))
    }

    /// How many secrets are active.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The hex HMAC-SHA256 of `parts`, one after the other, with the first secret (empty when
    /// there is none, which [`Secrets::new`] prevents).
    pub(crate) fn sign(&self, parts: &[&[u8]]) -> String {
        match self.0.first() {
            Some(keyed) => {
                let mut mac = keyed.clone();
                for part in parts {
                    mac.update(part);
                }
                hex::encode(mac.finalize().into_bytes())
            }
            None => String::new(),
        }
    }

    /// Whether one of `tags` is the HMAC-SHA256 of `parts` under one of the secrets. Each tag is
    /// compared in constant time, and every pair of secret and tag is tried, so that the time
    /// taken does not depend on which one matched.
    pub(crate) fn verify(&self, parts: &[&[u8]], tags: &[&[u8]]) -> bool {
        self.0.iter().fold(false, |found, keyed| {
            let mut mac = keyed.clone();
            for part in parts {
                mac.update(part);
            }
            tags.iter().fold(found, |found, tag| {
                mac.clone().verify_slice(tag).is_ok() | found
            })
        })
    }
}

/// Whether `sent` (seconds since the Unix epoch) is within `tolerance` of `now`, in either
/// direction.
pub(crate) fn within_tolerance(now: SystemTime, sent: u64, tolerance: Duration) -> bool {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    Duration::from_secs(now.abs_diff(sent)) <= tolerance
}

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
    /// A header that carries both (Stripe's `Stripe-Signature`) is not of the form
    /// `t=<seconds>,v1=<hex>`: not text, no `t`, a repeated `t`, a `t` that is not a number of
    /// seconds, or no `v1`.
    MalformedHeader,
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
            VerifyError::MalformedHeader => "malformed_signature_header",
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
            VerifyError::MalformedHeader => "the signature header is malformed",
        })
    }
}

impl std::error::Error for VerifyError {}

impl WebhookConfig {
    /// The hex signature of `timestamp` followed by `body`, with the first secret:
    /// `hex(HMAC-SHA256(secret, timestamp + body))`. What a sender puts in the signature header.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        // `build` guarantees at least one secret.
        self.inner.secrets.sign(&[timestamp.as_bytes(), body])
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
        if !self
            .inner
            .secrets
            .verify(&[timestamp.as_bytes(), body], &[&tag])
        {
            return Err(VerifyError::BadSignature);
        }
        let sent = parse_seconds(timestamp).ok_or(VerifyError::InvalidTimestamp)?;
        if !within_tolerance(self.now(), sent, self.inner.tolerance) {
            return Err(VerifyError::StaleTimestamp);
        }
        Ok(())
    }
}

/// Seconds since the epoch: ASCII digits only (no sign, no fraction), at most 20 of them.
pub(crate) fn parse_seconds(text: &str) -> Option<u64> {
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
    fn every_secret_and_every_tag_is_tried() {
        let secrets = Secrets::new(&[b"one".to_vec(), b"two".to_vec()]).unwrap();
        assert_eq!(secrets.len(), 2);
        let by_two = Secrets::new(&[b"two".to_vec()])
            .unwrap()
            .sign(&[b"t.", b"{}"]);
        let by_two = hex::decode(by_two).unwrap();
        let other = [0_u8; 32];
        assert!(secrets.verify(&[b"t.", b"{}"], &[&other, &by_two]));
        assert!(
            secrets.verify(&[b"t.{}"], &[&by_two]),
            "parts are concatenated"
        );
        assert!(!secrets.verify(&[b"t.", b"{ }"], &[&by_two]));
        assert!(!secrets.verify(&[b"t.", b"{}"], &[&other]));
        assert!(!secrets.verify(&[b"t.", b"{}"], &[]));
        assert!(!secrets.verify(&[b"t.", b"{}"], &[&by_two[..31]]));
        assert!(Secrets::new(&[]).is_err());
        assert!(Secrets::new(&[b"a".to_vec(), Vec::new()]).is_err());
    }

    #[test]
    fn tolerance_is_symmetric_and_inclusive() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let five = Duration::from_secs(5);
        assert!(within_tolerance(now, 995, five));
        assert!(within_tolerance(now, 1_005, five));
        assert!(!within_tolerance(now, 994, five));
        assert!(!within_tolerance(now, 1_006, five));
        assert!(!within_tolerance(now, u64::MAX, five));
        assert!(within_tolerance(UNIX_EPOCH, 0, Duration::ZERO));
    }

    #[test]
    fn codes() {
        assert_eq!(VerifyError::StaleTimestamp.code(), "stale_timestamp");
        assert_eq!(VerifyError::MissingSignature.code(), "missing_signature");
    }
}
