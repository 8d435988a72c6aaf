//! `UsagePage` as a tower service: what it answers, with which headers, and the quickstart's
//! `GET /account` with the demo's `?user=`.

use axum::body::Body;
use bytes::Bytes;
use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use tower_plans::usage_page::UsagePage;
use tower_plans::{MemoryStore, PlanLimitLayer};

use super::app;

async fn send(
    page: &UsagePage,
    method: Method,
    if_none_match: Option<&str>,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut request = Request::builder().method(method).uri("/account?user=alice");
    if let Some(tag) = if_none_match {
        request = request.header(IF_NONE_MATCH, tag);
    }
    let request = request.body(Body::empty()).expect("request");
    let response = page.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("a full body").to_bytes();
    (parts.status, parts.headers, bytes)
}

fn header<'a>(headers: &'a HeaderMap, name: &http::HeaderName) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
        .to_str()
        .expect("ASCII")
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63])
            } else {
                '='
            });
        }
    }
    out
}

/// The text between `open` and the next `close` in `html`, exactly once.
fn between<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
    assert_eq!(html.matches(open).count(), 1, "one {open} in the page");
    let start = html.find(open).expect("open") + open.len();
    let end = html[start..].find(close).expect("close") + start;
    &html[start..end]
}

#[tokio::test]
async fn get_answers_the_page_with_a_strict_policy() {
    let (status, headers, body) = send(&UsagePage::new(), Method::GET, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, &CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&headers, &CACHE_CONTROL), "no-cache");
    assert_eq!(header(&headers, &X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(header(&headers, &REFERRER_POLICY), "no-referrer");
    assert_eq!(header(&headers, &CONTENT_LENGTH), body.len().to_string());
    let etag = header(&headers, &ETAG);
    assert!(
        etag.len() == 18 && etag.starts_with('"') && etag.ends_with('"'),
        "{etag}"
    );

    let html = std::str::from_utf8(&body).expect("UTF-8");
    assert!(
        html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"),
        "{html}"
    );
    assert!(html.contains(r#"<main id="usage" data-entitlements="entitlements""#));
    // The inline style and script are allowed by their digests, and nothing else is.
    let style = format!(
        "sha256-{}",
        base64(&Sha256::digest(between(html, "<style>", "</style>")))
    );
    let script = format!(
        "sha256-{}",
        base64(&Sha256::digest(between(html, "<script>", "</script>")))
    );
    assert_eq!(
        header(&headers, &CONTENT_SECURITY_POLICY),
        format!(
            "default-src 'self'; script-src '{script}'; style-src '{style}'; base-uri 'none'; \
             form-action 'none'; frame-ancestors 'none'"
        )
    );
    // It loads nothing: no fonts, scripts, styles, images or frames, from here or elsewhere.
    for pattern in [
        "http:",
        "https:",
        "//cdn",
        "src=",
        "href=",
        "url(",
        "@import",
        "@font-face",
        "<link",
        "<iframe",
        "<img",
    ] {
        assert!(!html.contains(pattern), "the page contains {pattern}");
    }
}

#[tokio::test]
async fn head_conditional_get_and_other_methods() {
    let page = UsagePage::new();
    let (_, headers, full) = send(&page, Method::GET, None).await;
    let etag = header(&headers, &ETAG).to_owned();

    let (status, head, body) = send(&page, Method::HEAD, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(header(&head, &CONTENT_LENGTH), full.len().to_string());
    assert_eq!(header(&head, &ETAG), etag);

    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_owned(),
    ] {
        let (status, headers, body) = send(&page, Method::GET, Some(&tag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "If-None-Match: {tag}");
        assert!(body.is_empty());
        assert_eq!(header(&headers, &ETAG), etag);
        assert_eq!(header(&headers, &CACHE_CONTROL), "no-cache");
    }
    let (status, _, body) = send(&page, Method::GET, Some("\"other\"")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, full);

    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let (status, headers, body) = send(&page, method.clone(), None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(header(&headers, &ALLOW), "GET, HEAD");
        assert!(body.is_empty());
    }
}

#[tokio::test]
async fn the_entitlements_url_is_configurable_and_escaped() {
    let page = UsagePage::new().entitlements_url("/api/me/entitlements?a=1&b=\"<x>\"");
    let (status, headers, body) = send(&page, Method::GET, None).await;
    assert_eq!(status, StatusCode::OK);
    let html = std::str::from_utf8(&body).expect("UTF-8");
    assert!(
        html.contains(
            r#"data-entitlements="/api/me/entitlements?a=1&amp;b=&quot;&lt;x&gt;&quot;""#
        ),
        "{html}"
    );
    let (_, default, _) = send(&UsagePage::new(), Method::GET, None).await;
    assert_ne!(header(&headers, &ETAG), header(&default, &ETAG));
    assert_eq!(
        header(&headers, &CONTENT_SECURITY_POLICY),
        header(&default, &CONTENT_SECURITY_POLICY),
        "the URL is not in the script: its digest stays"
    );
    assert!(format!("{page:?}").contains("/api/me/entitlements"));

    // The layer's page is the default one.
    let store = MemoryStore::from_json("[]", "{}").expect("store");
    let layer = PlanLimitLayer::builder(store).build().expect("layer");
    let (_, from_layer, layer_body) = send(&layer.usage_page(), Method::GET, None).await;
    let (_, _, default_body) = send(&UsagePage::default(), Method::GET, None).await;
    assert_eq!(layer_body, default_body);
    assert_eq!(header(&from_layer, &ETAG), header(&default, &ETAG));
}

async fn get(router: &axum::Router, method: Method, uri: &str) -> (StatusCode, String, Bytes) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().expect("ASCII").to_owned())
        .unwrap_or_default();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, content_type, body)
}

#[tokio::test]
async fn the_quickstart_serves_the_page_and_reads_the_demo_user_from_the_query() {
    let fixture =
        app::Fixture::parse(include_str!("../../examples/quickstart.json")).expect("fixture");
    let router = app::router(&fixture).expect("router");

    let (status, content_type, body) = get(&router, Method::GET, "/account?user=alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/html; charset=utf-8");
    let (_, _, page) = send(&UsagePage::new(), Method::GET, None).await;
    assert_eq!(body, page);

    // The demo takes the page's user from `?user=` for the entitlements it fetches ...
    let (status, _, body) = get(&router, Method::GET, "/entitlements?user=alice").await;
    assert_eq!(status, StatusCode::OK);
    let json: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(json["user"], "alice");
    let (_, _, body) = get(&router, Method::GET, "/entitlements?x=1&user=%67race").await;
    let json: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(
        json["user"], "grace",
        "percent-decoded, anywhere in the query"
    );
    let (status, _, _) = get(&router, Method::GET, "/entitlements").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = get(&router, Method::GET, "/entitlements?user=").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // ... and nowhere else: a governed request still needs its `x-user`.
    let (status, _, _) = get(&router, Method::POST, "/api/clients?user=alice").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
