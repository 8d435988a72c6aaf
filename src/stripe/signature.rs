//! The `Stripe-Signature` header: parsing, signing and verification.

use crate::webhook::verify::{parse_seconds, within_tolerance};
use crate::webhook::VerifyError;

use super::StripeConfig;

/// The header Stripe signs its events in.
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// A parsed `Stripe-Signature` header: `t=<seconds>,v1=<hex>[,v1=<hex>...]`.
///
/// Elements are separated by commas, each a `key=value` (blanks around an element are
/// ignored). `t` is the time Stripe signed at, in seconds since the Unix epoch; each `v1` is a
/// hex HMAC-SHA256 (while an endpoint's secret is being rolled, Stripe signs with the old and the
/// new one, so several `v1` may come). Other schemes (`v0`, the test-mode scheme) and unknown
/// keys are ignored.
///
/// ```
/// use tower_plans::stripe::SignatureHeader;
/// use tower_plans::webhook::VerifyError;
///
/// let header = SignatureHeader::parse("t=1492774577,v1=5257a8,v0=6ffbb5")?;
/// assert_eq!(header.timestamp, 1_492_774_577);
/// assert_eq!(header.signatures, [vec![0x52, 0x57, 0xa8]]);
///
/// assert_eq!(SignatureHeader::parse("t=1492774577,v0=6ffbb5"), Err(VerifyError::MalformedHeader));
/// assert_eq!(SignatureHeader::parse("v1=5257a8"), Err(VerifyError::MalformedHeader));
/// # Ok::<(), VerifyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignatureHeader {
    /// The signing time, in seconds since the Unix epoch.
    pub timestamp: u64,
    /// The `v1` signatures, decoded from hex; a `v1` that is not hex is left out (it could not
    /// match).
    pub signatures: Vec<Vec<u8>>,
}

impl SignatureHeader {
    /// Parses the header's value.
    ///
    /// # Errors
    /// [`VerifyError::MalformedHeader`] when there is no `t`, more than one, a `t` that is not a
    /// whole number of seconds, or no `v1` element.
    pub fn parse(header: &str) -> Result<Self, VerifyError> {
        let mut timestamp = None;
        let mut signatures = Vec::new();
        let mut v1_seen = false;
        for element in header.split(',') {
            let Some((key, value)) = element.trim().split_once('=') else {
                continue;
            };
            match key {
                "t" => {
                    let seconds = parse_seconds(value).ok_or(VerifyError::MalformedHeader)?;
                    if timestamp.replace(seconds).is_some() {
                        return Err(VerifyError::MalformedHeader);
                    }
                }
                "v1" => {
                    v1_seen = true;
                    if let Ok(tag) = hex::decode(value) {
                        signatures.push(tag);
                    }
                }
                _ => {}
            }
        }
        match timestamp {
            Some(timestamp) if v1_seen => Ok(Self {
                timestamp,
                signatures,
            }),
            _ => Err(VerifyError::MalformedHeader),
        }
    }
}

impl StripeConfig {
    /// The `Stripe-Signature` value Stripe would send for `body` signed at `timestamp` (seconds
    /// since the Unix epoch) with the first secret: `t=<timestamp>,v1=<hex HMAC-SHA256 of
    /// "{timestamp}.{body}">`. For tests and tours; the receiver does not need it.
    pub fn sign(&self, timestamp: u64, body: &[u8]) -> String {
        let t = timestamp.to_string();
        let v1 = self.inner.secrets.sign(&[t.as_bytes(), b".", body]);
        format!("t={t},v1={v1}")
    }

    /// Authenticates a request: `header` (the `Stripe-Signature` value) must carry a `v1` that
    /// is the HMAC-SHA256 of `"{t}.{body}"` under one of the secrets (every pair of secret and
    /// signature is compared, in constant time), and `t` must be within the tolerance of the
    /// clock, in the past or in the future.
    ///
    /// # Errors
    /// [`VerifyError::MalformedHeader`] (see [`SignatureHeader::parse`]),
    /// [`VerifyError::BadSignature`] when no `v1` matches, [`VerifyError::StaleTimestamp`] when
    /// one does but `t` is too far from the clock.
    pub fn verify(&self, header: &str, body: &[u8]) -> Result<(), VerifyError> {
        self.verify_parsed(&SignatureHeader::parse(header)?, body)
    }

    /// [`verify`](Self::verify) with the header already parsed.
    pub(crate) fn verify_parsed(
        &self,
        header: &SignatureHeader,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        let t = header.timestamp.to_string();
        let tags: Vec<&[u8]> = header.signatures.iter().map(Vec::as_slice).collect();
        if !self
            .inner
            .secrets
            .verify(&[t.as_bytes(), b".", body], &tags)
        {
            return Err(VerifyError::BadSignature);
        }
        if !within_tolerance(self.now(), header.timestamp, self.inner.tolerance) {
            return Err(VerifyError::StaleTimestamp);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_elements_in_any_order() {
        let header = SignatureHeader::parse(" v1=ab , t=12 ,v1=zz,v0=cd,x=1,junk,v1=01").unwrap();
        assert_eq!(header.timestamp, 12);
        assert_eq!(header.signatures, [vec![0xab], vec![0x01]]);
        // A `v1` that is not hex still counts as a `v1`: the header is well formed.
        let header = SignatureHeader::parse("t=12,v1=nothex").unwrap();
        assert!(header.signatures.is_empty());
        let header = SignatureHeader::parse("t=12,v1=").unwrap();
        assert_eq!(header.signatures, [Vec::<u8>::new()]);
    }

    #[test]
    fn malformed_headers() {
        for header in [
            "",
            ",",
            "t=12",
            "v1=ab",
            "t=12,v0=ab",
            "t=,v1=ab",
            "t=-1,v1=ab",
            "t=1.5,v1=ab",
            "t=12,t=12,v1=ab",
            "t=99999999999999999999999,v1=ab",
            "T=12,V1=ab",
            "t = 12, v1 = ab",
        ] {
            assert_eq!(
                SignatureHeader::parse(header),
                Err(VerifyError::MalformedHeader),
                "{header}"
            );
        }
    }
}
