//! The `RateLimit-Policy`, `RateLimit` and `Retry-After` header fields of limited actions.
//!
//! The `RateLimit` fields follow the IETF httpapi draft "RateLimit header fields for HTTP",
//! which still changes: everything about their spelling is in [`ResponseFields::new`].

use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderName, HeaderValue};

use smallvec::SmallVec;

use crate::catalog::Window;

/// `RateLimit-Policy`: the quota policy, `"clients.create";q=3` (with `;w=` for a quota).
pub(crate) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`: what is left of it, `"clients.create";r=2` (with `;t=` for a quota).
pub(crate) static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// `Plan-Overage`: how far past a soft limit the count is, `images.create=5`.
pub(crate) static PLAN_OVERAGE: HeaderName = HeaderName::from_static("plan-overage");

/// The header fields the layer adds to a response: the two `RateLimit` fields of each limit of
/// the request (its action's, the credit pool's it draws from, its rates), and `Plan-Overage`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResponseFields {
    /// Each field, in the order they are added.
    fields: SmallVec<[(&'static HeaderName, HeaderValue); 2]>,
}

impl ResponseFields {
    /// The fields of the policy named `prefix.name` (`clients.create`, `credits.ai`) under a
    /// limit of `max` (per `window`, for a quota), with `remaining` left after the request:
    /// `None` when the name cannot be written as a structured-field string (only printable
    /// ASCII can).
    ///
    /// `q` is the limit; a quota adds `w`, the length of its current period in seconds, to the
    /// policy and `t`, the seconds until it resets (rounded up), to the remaining quota `r`.
    pub(crate) fn new(
        prefix: &str,
        name: &str,
        max: u64,
        remaining: u64,
        window: Option<Window>,
        now_ms: u64,
    ) -> Option<Self> {
        let quoted = quoted(&[prefix, name])?;
        let (policy, remaining) = match window {
            Some(window) => (
                format!("{quoted};q={max};w={}", window.seconds()),
                format!("{quoted};r={remaining};t={}", window.seconds_left(now_ms)),
            ),
            None => (
                format!("{quoted};q={max}"),
                format!("{quoted};r={remaining}"),
            ),
        };
        Some(Self {
            fields: smallvec::smallvec![
                (&RATELIMIT_POLICY, HeaderValue::try_from(policy).ok()?),
                (&RATELIMIT, HeaderValue::try_from(remaining).ok()?),
            ],
        })
    }

    /// The fields of a rate named by `parts` joined with dots (`clients.create.rate`, or
    /// `rate` for a plan-wide one): `q` requests per `w` seconds, `r` that could follow at
    /// once, and `t` seconds until the rate is whole again (or, refused, until the next request
    /// fits).
    pub(crate) fn rate(
        parts: &[&str],
        max: u64,
        per_seconds: u64,
        remaining: u64,
        reset_seconds: u64,
    ) -> Option<Self> {
        let quoted = quoted(parts)?;
        let policy = format!("{quoted};q={max};w={per_seconds}");
        let remaining = format!("{quoted};r={remaining};t={reset_seconds}");
        Some(Self {
            fields: smallvec::smallvec![
                (&RATELIMIT_POLICY, HeaderValue::try_from(policy).ok()?),
                (&RATELIMIT, HeaderValue::try_from(remaining).ok()?),
            ],
        })
    }

    /// `Plan-Overage: prefix.name=units`: how far past a soft limit the count is with the
    /// request; `None` when the name cannot be written in a header.
    pub(crate) fn overage(prefix: &str, name: &str, units: u64) -> Option<Self> {
        let value = HeaderValue::try_from(format!("{prefix}.{name}={units}")).ok()?;
        Some(Self {
            fields: smallvec::smallvec![(&PLAN_OVERAGE, value)],
        })
    }

    /// Adds the fields of `other` after these.
    pub(crate) fn push(&mut self, other: Self) {
        self.fields.extend(other.fields);
    }

    /// `self` with the fields of `other` after, either may be missing.
    pub(crate) fn join(this: Option<Self>, other: Option<Self>) -> Option<Self> {
        match (this, other) {
            (Some(mut this), Some(other)) => {
                this.push(other);
                Some(this)
            }
            (this, other) => this.or(other),
        }
    }

    /// Adds the fields to `headers` (after any already there: another policy's fields stay).
    pub(crate) fn append_to(self, headers: &mut HeaderMap) {
        for (name, value) in self.fields {
            headers.append(name.clone(), value);
        }
    }
}

/// `parts` joined with dots as a structured-field string, `None` when they are not printable
/// ASCII.
fn quoted(parts: &[&str]) -> Option<String> {
    let mut quoted =
        String::with_capacity(parts.iter().map(|part| part.len() + 1).sum::<usize>() + 2);
    quoted.push('"');
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            quoted.push('.');
        }
        for c in part.chars() {
            match c {
                '"' | '\\' => {
                    quoted.push('\\');
                    quoted.push(c);
                }
                ' '..='~' => quoted.push(c),
                _ => return None,
            }
        }
    }
    quoted.push('"');
    Some(quoted)
}

/// Sets `Retry-After` to `seconds` (at least 1).
pub(crate) fn retry_after_seconds(headers: &mut HeaderMap, seconds: u64) {
    headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
}

/// Sets `Retry-After` to the seconds from `now_ms` until `window` ends (at least 1).
pub(crate) fn retry_after(headers: &mut HeaderMap, window: Window, now_ms: u64) {
    let seconds = window.seconds_left(now_ms).max(1);
    headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Period;

    /// 2026-11-29T12:00:00Z.
    const NOW: u64 = 1_795_953_600_000;

    fn fields(fields: ResponseFields) -> (String, String) {
        let text = |v: &HeaderValue| v.to_str().unwrap().to_owned();
        assert_eq!(fields.fields[0].0, RATELIMIT_POLICY);
        assert_eq!(fields.fields[1].0, RATELIMIT);
        (text(&fields.fields[0].1), text(&fields.fields[1].1))
    }

    #[test]
    fn a_lifetime_limit() {
        let got = ResponseFields::new("clients", "create", 3, 2, None, NOW);
        assert_eq!(
            fields(got.unwrap()),
            (
                r#""clients.create";q=3"#.to_owned(),
                r#""clients.create";r=2"#.to_owned()
            )
        );
    }

    #[test]
    fn a_quota_names_its_window_and_reset() {
        let window = Period::Month.window(NOW);
        let got = ResponseFields::new("reports", "create", 2, 1, Some(window), NOW);
        // November has 30 days; 1.5 days are left of it at noon on the 29th.
        assert_eq!(
            fields(got.unwrap()),
            (
                r#""reports.create";q=2;w=2592000"#.to_owned(),
                r#""reports.create";r=1;t=129600"#.to_owned()
            )
        );
        let daily = Period::Day.window(NOW);
        let got = ResponseFields::new("api", "export", 20, 0, Some(daily), NOW + 1);
        assert_eq!(
            fields(got.unwrap()),
            (
                r#""api.export";q=20;w=86400"#.to_owned(),
                r#""api.export";r=0;t=43200"#.to_owned()
            )
        );
    }

    #[test]
    fn names_are_escaped_or_refused() {
        let got = ResponseFields::new(r#"a"b\c"#, "index", 1, 0, None, NOW);
        assert_eq!(fields(got.unwrap()).0, r#""a\"b\\c.index";q=1"#);
        let unicode = ResponseFields::new("zoë", "index", 1, 0, None, NOW);
        assert_eq!(unicode, None);
        let tab = ResponseFields::new("a\tb", "index", 1, 0, None, NOW);
        assert_eq!(tab, None);
    }

    #[test]
    fn appended_after_other_policies_and_retry_after_rounds_up() {
        let mut headers = HeaderMap::new();
        headers.insert(&RATELIMIT, HeaderValue::from_static(r#""ip";r=9"#));
        ResponseFields::new("clients", "create", 3, 0, None, NOW)
            .unwrap()
            .append_to(&mut headers);
        let all: Vec<_> = headers.get_all(&RATELIMIT).iter().collect();
        assert_eq!(all, [r#""ip";r=9"#, r#""clients.create";r=0"#]);
        assert_eq!(headers[&RATELIMIT_POLICY], r#""clients.create";q=3"#);

        let window = Period::Day.window(NOW);
        retry_after(&mut headers, window, window.end() - 1500);
        assert_eq!(headers[RETRY_AFTER], "2");
        retry_after(&mut headers, window, window.end());
        assert_eq!(headers[RETRY_AFTER], "1");
    }
}
