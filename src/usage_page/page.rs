//! The page's bytes: `page.html` with `page.css` and `page.js` inline, the entitlements URL in
//! its `data-entitlements` attribute, and the headers that go with it.

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

pub(super) const TEMPLATE: &str = include_str!("page.html");
pub(super) const STYLE: &str = include_str!("page.css");
pub(super) const SCRIPT: &str = include_str!("page.js");

/// The base64 SHA-256 digests of [`STYLE`] and [`SCRIPT`], which the policy allows inline.
/// (A macro, so that `concat!` can build the policy at compile time; the unit tests check
/// both against the files.)
macro_rules! style_hash {
    () => {
        "sha256-sjkaz+JiJLC7oHcAHz3pDUTJRlxJLr/6+VDDNl+38jY="
    };
}
macro_rules! script_hash {
    () => {
        "sha256-5EJkytuom31KwrbMLjwCpRqsTrC+Ic5qnAFXJw7ujyY="
    };
}

/// The page loads nothing but itself and what it fetches from its own origin: no fonts,
/// scripts or styles from elsewhere, its own inline style and script only by their digests.
pub(super) const POLICY: &str = concat!(
    "default-src 'self'; script-src '",
    script_hash!(),
    "'; style-src '",
    style_hash!(),
    "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
);

const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
// The HTML never changes while the application runs; the ETag saves the bytes, and no-cache
// makes a browser ask again so that a new version of the page is seen at once.
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const POLICY_VALUE: HeaderValue = HeaderValue::from_static(POLICY);
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");
const GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");

const STYLE_MARK: &str = "{{style}}";
const SCRIPT_MARK: &str = "{{script}}";
const URL_MARK: &str = "{{entitlements}}";

/// The assembled page and its entity tag.
#[derive(Debug)]
pub(super) struct Page {
    pub(super) html: Bytes,
    etag: Option<HeaderValue>,
}

impl Page {
    /// The page that fetches its entitlements from `url` (resolved against the page's own URL).
    pub(super) fn new(url: &str) -> Page {
        let html = TEMPLATE
            .replacen(STYLE_MARK, STYLE, 1)
            .replacen(SCRIPT_MARK, SCRIPT, 1)
            .replacen(URL_MARK, &attribute(url), 1);
        let etag = HeaderValue::try_from(format!("\"{:016x}\"", fnv1a(html.as_bytes()))).ok();
        Page {
            html: Bytes::from(html),
            etag,
        }
    }

    /// The answer to a request with `method` and `headers`: the page to `GET`, its headers to
    /// `HEAD`, `304` when the request already has this version, `405` to any other method.
    pub(super) fn respond(&self, method: &Method, headers: &HeaderMap) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = Response::new(Full::default());
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response.headers_mut().insert(http::header::ALLOW, GET_HEAD);
            return response;
        }
        if self.is_fresh(headers) {
            let mut response = Response::new(Full::default());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            self.cache_headers(response.headers_mut());
            return response;
        }
        let body = if method == Method::HEAD {
            Full::default()
        } else {
            Full::new(self.html.clone())
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HTML);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(self.html.len()));
        headers.insert(CONTENT_SECURITY_POLICY, POLICY_VALUE);
        headers.insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
        headers.insert(REFERRER_POLICY, NO_REFERRER);
        self.cache_headers(headers);
        response
    }

    fn cache_headers(&self, headers: &mut HeaderMap) {
        headers.insert(CACHE_CONTROL, NO_CACHE);
        if let Some(etag) = &self.etag {
            headers.insert(ETAG, etag.clone());
        }
    }

    /// Whether an `If-None-Match` of the request names this version (or `*`).
    fn is_fresh(&self, headers: &HeaderMap) -> bool {
        let Some(etag) = self.etag.as_ref().and_then(|etag| etag.to_str().ok()) else {
            return false;
        };
        headers
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == etag || tag == "*")
    }
}

/// `text` made safe inside a double-quoted HTML attribute.
fn attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The 64-bit FNV-1a hash of `bytes`: the same in every process and release, for the ETag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn digest(text: &str) -> String {
        format!("sha256-{}", base64(&Sha256::digest(text.as_bytes())))
    }

    #[test]
    fn base64_is_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_style_and_script() {
        assert_eq!(
            style_hash!(),
            digest(STYLE),
            "page.css changed: put its digest in style_hash!"
        );
        assert_eq!(
            script_hash!(),
            digest(SCRIPT),
            "page.js changed: put its digest in script_hash!"
        );
    }

    #[test]
    fn the_page_holds_the_style_script_and_url_once_each() {
        for mark in [STYLE_MARK, SCRIPT_MARK, URL_MARK] {
            assert_eq!(TEMPLATE.matches(mark).count(), 1, "{mark} in page.html");
            assert!(!STYLE.contains(mark) && !SCRIPT.contains(mark), "{mark}");
        }
        let page = Page::new("/api/me/entitlements?x=1&y=\"2\"");
        let html = std::str::from_utf8(&page.html).unwrap();
        assert!(html.contains(&format!("<style>{STYLE}</style>")));
        assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(
            html.contains(r#"data-entitlements="/api/me/entitlements?x=1&amp;y=&quot;2&quot;""#)
        );
        assert!(!html.contains("{{"), "a mark left in the page");
    }

    #[test]
    fn fnv1a_matches_its_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
