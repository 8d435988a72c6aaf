//! Path resolution through the route table, checked against a plain reference.
//!
//! The bypass property: a request is governed (the same resource and action, or not governed
//! at all) as its normalised path is, whatever the spelling: percent-encoding (of any byte, so
//! also of unreserved characters), repeated slashes, a missing leading slash, trailing slashes,
//! dot segments, encoded slashes, case (unless matching is case-sensitive), a query or a
//! fragment. The reference below is written from the rules in `DESIGN.md` (4.3 and 8) and the
//! docs of `RouteTable`, independently of `src/routes/normalize.rs`:
//!
//! - only the path counts: everything from the first `?` or `#` on is cut off;
//! - the path is split at its slashes; each segment is percent-decoded (`%` and two hex digits,
//!   anything else kept as it is); an encoded slash either stays in its segment as the text
//!   `%2F` or separates segments; empty segments go; `.` and `..` (also encoded) are either
//!   kept as ordinary segments or resolved, `..` above the root staying at the root; bytes that
//!   are not UTF-8 become U+FFFD; unless matching is case-sensitive, the text is lowercased
//!   character by character;
//! - the readings are tried in this order, the first governed one winning: literal (`%2F`
//!   kept, dots kept), dots resolved, `%2F` split, both;
//! - a reading is looked up in the table's routes by method (`HEAD` falls back to `GET` unless
//!   a `HEAD` route matches), a parameter matching any one segment, and among routes that match,
//!   a literal segment winning over a parameter at the first place where they differ.
//!
//! The route list the reference uses is written out by hand below, and checked once against
//! the table's own listing. Every request that parses as a URI also goes through the plan layer
//! built from the same configuration, over a catalog that blocks everything: it must be refused
//! exactly when the reference governs it, so the layer's own path handling and its governable
//! scope open no bypass either.
//!
//! Inputs come in four kinds (the first byte): raw text as a path; paths assembled from pieces
//! that matter (dots, encoded slashes, letters that fold, segments of governed paths);
//! re-spellings of a governed path, which must resolve exactly as the clean path does (and, with
//! dot segments added, stay governed); and configurations assembled from template pieces, which
//! compile to an error or to a table that governs every route it lists, at the path its
//! template names, as does a layer built from them.

#![no_main]

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt};
use tower_plans::routes::{RouteConfig, RouteTable};
use tower_plans::{Action, Denial, MemoryStore, PlanLimitLayer, Rejection, UserId};

/// The resources the catalog governs.
const RESOURCES: &[&str] = &[
    "clients", "groups", "users", "projects", "notes", "tasks", "reports", "exports", "status",
    "probes", "b%20c", "Été",
];

fn config(case_sensitive: bool) -> RouteConfig {
    RouteConfig::new()
        .base("/api")
        .path("clients", "/my/clients")
        .path("groups", "some/groups")
        .path("users", "/users")
        .path("projects", "/users/:uid/projects")
        .path("notes", "/t/{tenant}/notes")
        .route(
            Method::POST,
            "reports/{id}/export",
            "reports",
            Action::custom("export"),
        )
        .route(Method::GET, "/my/clients/export", "exports", Action::Index)
        .route(Method::GET, "/status/{id}", "status", Action::Show)
        .route(
            Method::HEAD,
            "/status/{id}",
            "probes",
            Action::custom("probe"),
        )
        .route(
            Method::PUT,
            "/archive/{id}",
            "archives",
            Action::custom("archive"),
        )
        .route(
            Method::DELETE,
            "/api/tasks/{id}",
            "tasks",
            Action::custom("purge"),
        )
        .case_sensitive(case_sensitive)
}

/// The governed routes of [`config`], written out: method, template, resource, action.
fn expected_routes() -> Vec<(Method, String, &'static str, Action)> {
    let collections: &[(&str, &str)] = &[
        ("clients", "/my/clients"),
        ("groups", "/api/some/groups"),
        ("users", "/users"),
        ("projects", "/users/{uid}/projects"),
        ("notes", "/t/{tenant}/notes"),
        ("tasks", "/api/tasks"),
        ("reports", "/api/reports"),
        ("exports", "/api/exports"),
        ("status", "/api/status"),
        ("probes", "/api/probes"),
        ("b%20c", "/api/b c"),
        ("Été", "/api/Été"),
    ];
    let mut routes = Vec::new();
    for &(resource, path) in collections {
        routes.push((Method::GET, path.to_owned(), resource, Action::Index));
        routes.push((Method::POST, path.to_owned(), resource, Action::Create));
        let item = format!("{path}/{{id}}");
        routes.push((Method::GET, item.clone(), resource, Action::Show));
        routes.push((Method::PUT, item.clone(), resource, Action::Update));
        routes.push((Method::PATCH, item.clone(), resource, Action::Patch));
        if resource == "tasks" {
            // Replaced by the custom route.
            routes.push((Method::DELETE, item, resource, Action::custom("purge")));
        } else {
            routes.push((Method::DELETE, item, resource, Action::Delete));
        }
    }
    routes.push((
        Method::POST,
        "/api/reports/{id}/export".to_owned(),
        "reports",
        Action::custom("export"),
    ));
    routes.push((
        Method::GET,
        "/my/clients/export".to_owned(),
        "exports",
        Action::Index,
    ));
    routes.push((
        Method::GET,
        "/status/{id}".to_owned(),
        "status",
        Action::Show,
    ));
    routes.push((
        Method::HEAD,
        "/status/{id}".to_owned(),
        "probes",
        Action::custom("probe"),
    ));
    routes
}

/// One segment of a reference route.
enum Seg {
    Literal(String),
    Param,
}

struct Route {
    method: Method,
    segments: Vec<Seg>,
    resource: &'static str,
    action: Action,
}

struct Fixture {
    tables: [RouteTable; 2],
    /// The reference routes, literals as written and lowercased.
    routes: [Vec<Route>; 2],
}

const FOLDED: usize = 0;
const SENSITIVE: usize = 1;

fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let resources: Vec<Arc<str>> = RESOURCES.iter().map(|&r| Arc::from(r)).collect();
        let table = |case_sensitive| {
            RouteTable::new(&config(case_sensitive), &resources).expect("the fuzz table compiles")
        };
        let tables = [table(false), table(true)];
        let expected = expected_routes();
        // The reference's routes are the table's: same listing, in any order.
        for table in &tables {
            let mut listed: Vec<String> = table
                .routes()
                .map(|r| format!("{} {} {} {}", r.method, r.template, r.resource, r.action))
                .collect();
            let mut written: Vec<String> = expected
                .iter()
                .map(|(m, t, r, a)| format!("{m} {t} {r} {a}"))
                .collect();
            listed.sort();
            written.sort();
            assert_eq!(listed, written, "the fuzz table lists other routes");
        }
        let routes = |folded: bool| {
            expected
                .iter()
                .map(|(method, template, resource, action)| Route {
                    method: method.clone(),
                    segments: template
                        .split('/')
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            if s.starts_with('{') {
                                Seg::Param
                            } else if folded {
                                Seg::Literal(fold(s))
                            } else {
                                Seg::Literal(s.to_owned())
                            }
                        })
                        .collect(),
                    resource,
                    action: action.clone(),
                })
                .collect::<Vec<_>>()
        };
        Fixture {
            tables,
            routes: [routes(true), routes(false)],
        }
    })
}

/// The plan layer over the same configuration, with a catalog that blocks every action on
/// every resource: a governed request is answered `403`, any other passes to the inner service.
struct Layered {
    runtime: Runtime,
    layers: [PlanLimitLayer; 2],
}

fn layered() -> &'static Layered {
    static LAYERED: OnceLock<Layered> = OnceLock::new();
    LAYERED.get_or_init(|| {
        let blocked: serde_json::Map<String, serde_json::Value> = RESOURCES
            .iter()
            .map(|&resource| {
                let limits = [
                    "index", "show", "create", "update", "patch", "delete", "export", "probe",
                    "purge", "archive",
                ]
                .iter()
                .map(|&action| (action.to_owned(), serde_json::Value::from(0)))
                .collect::<serde_json::Map<_, _>>();
                (resource.to_owned(), limits.into())
            })
            .collect();
        let catalog = serde_json::json!({
            "actions": ["export", "probe", "purge", "archive"],
            "plans": [{"name": "none", "limits": blocked}],
        });
        let store = MemoryStore::from_values(&catalog, &serde_json::json!({"u": {"plan": "none"}}))
            .expect("the fuzz store loads");
        let layer = |case_sensitive: bool| {
            let config = config(case_sensitive);
            let mut builder = PlanLimitLayer::builder(store.clone()).base("/api");
            for (resource, template) in [
                ("clients", "/my/clients"),
                ("groups", "some/groups"),
                ("users", "/users"),
                ("projects", "/users/:uid/projects"),
                ("notes", "/t/{tenant}/notes"),
            ] {
                builder = builder.path(resource, template);
            }
            for route in config.custom_routes() {
                builder = builder.route(
                    route.method.clone(),
                    route.template.clone(),
                    Arc::clone(&route.resource),
                    route.action.clone(),
                );
            }
            builder
                .case_sensitive(case_sensitive)
                .build()
                .expect("the fuzz layer builds")
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        Layered {
            runtime,
            layers: [layer(false), layer(true)],
        }
    })
}

async fn inner(_request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::default()))
}

/// What the layer does with `method` on `uri`: `None` when it passes the request on, the
/// denied resource and action when it refuses it.
fn through_layer(which: usize, method: &Method, uri: &Uri) -> Resolved {
    let layered = layered();
    let service = layered.layers[which].layer(tower::service_fn(inner));
    let request = Request::builder()
        .method(method.clone())
        .uri(uri.clone())
        .extension(UserId::from("u"))
        .body(Full::default())
        .expect("a request");
    let response = layered
        .runtime
        .block_on(service.oneshot(request))
        .expect("infallible");
    match response.status() {
        StatusCode::OK => None,
        StatusCode::FORBIDDEN => match response.extensions().get::<Rejection>() {
            Some(Rejection::Denied(Denial::LimitReached {
                resource, action, ..
            })) => Some((resource.to_string(), action.clone())),
            other => panic!("{method} {uri}: 403 with {other:?}"),
        },
        status => panic!("{method} {uri}: {status}"),
    }
}

// ---- the reference ----

/// A segment, percent-decoded, as the pieces between its encoded slashes.
fn decode(segment: &str) -> Vec<Vec<u8>> {
    let bytes = segment.as_bytes();
    let hex = |at: usize| {
        bytes
            .get(at)
            .and_then(|&b| char::from(b).to_digit(16))
            .map(|d| d as u8)
    };
    let mut pieces = vec![Vec::new()];
    let mut i = 0;
    while i < bytes.len() {
        let byte = match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                i += 3;
                high * 16 + low
            }
            (byte, _, _) => {
                i += 1;
                byte
            }
        };
        if byte == b'/' {
            pieces.push(Vec::new());
        } else if let Some(last) = pieces.last_mut() {
            last.push(byte);
        }
    }
    pieces
}

/// The path part of a request target.
fn path_part(target: &str) -> &str {
    match target.find(['?', '#']) {
        Some(end) => &target[..end],
        None => target,
    }
}

/// The four readings of `target`, in the order they are tried: literal, dots resolved, `%2F`
/// split, both. Each is a list of segments.
fn readings(target: &str, folded: bool) -> [Vec<String>; 4] {
    let decoded: Vec<Vec<Vec<u8>>> = path_part(target).split('/').map(decode).collect();
    let reading = |split: bool, resolve: bool| {
        let mut raw: Vec<Vec<u8>> = Vec::new();
        for pieces in &decoded {
            if split {
                raw.extend(pieces.iter().cloned());
            } else {
                raw.push(pieces.join(&b"%2F"[..]));
            }
        }
        let mut segments: Vec<String> = Vec::new();
        for segment in raw {
            if segment.is_empty() {
                continue;
            }
            if resolve && segment == b"." {
                continue;
            }
            if resolve && segment == b".." {
                segments.pop();
                continue;
            }
            let text = String::from_utf8_lossy(&segment).into_owned();
            segments.push(if folded { fold(&text) } else { text });
        }
        segments
    };
    [
        reading(false, false),
        reading(false, true),
        reading(true, false),
        reading(true, true),
    ]
}

fn text_of(segments: &[String]) -> String {
    format!("/{}", segments.join("/"))
}

/// The route of `method` that matches `segments`: literals win over parameters at the first
/// place where two matching routes differ.
fn lookup_exact<'a>(
    routes: &'a [Route],
    method: &Method,
    segments: &[String],
) -> Option<&'a Route> {
    let matching = routes.iter().filter(|route| {
        route.method == *method
            && route.segments.len() == segments.len()
            && route
                .segments
                .iter()
                .zip(segments)
                .all(|(seg, text)| match seg {
                    Seg::Literal(literal) => literal == text,
                    Seg::Param => true,
                })
    });
    matching.max_by(|a, b| {
        let rank = |route: &Route| -> Vec<bool> {
            route
                .segments
                .iter()
                .map(|seg| matches!(seg, Seg::Literal(_)))
                .collect()
        };
        rank(a).cmp(&rank(b))
    })
}

fn lookup<'a>(routes: &'a [Route], method: &Method, segments: &[String]) -> Option<&'a Route> {
    if *method == Method::HEAD {
        return lookup_exact(routes, &Method::HEAD, segments)
            .or_else(|| lookup_exact(routes, &Method::GET, segments));
    }
    lookup_exact(routes, method, segments)
}

/// What the reference resolves `target` to, and the reading it was found in.
fn reference<'a>(
    routes: &'a [Route],
    method: &Method,
    readings: &[Vec<String>; 4],
) -> Option<(&'a Route, usize)> {
    readings
        .iter()
        .enumerate()
        .find_map(|(i, segments)| lookup(routes, method, segments).map(|route| (route, i)))
}

// ---- the checks ----

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE",
];

fn methods() -> impl Iterator<Item = Method> {
    METHODS
        .iter()
        .map(|m| Method::from_bytes(m.as_bytes()).expect("a valid method"))
}

type Resolved = Option<(String, Action)>;

fn resolve(table: &RouteTable, method: &Method, path: &str) -> Resolved {
    table
        .resolve(method, path)
        .map(|found| (found.resource.to_string(), found.action.clone()))
}

/// Whether the table takes `text` as it is (a normalised path without `%`, `?` or `#`).
fn plain(text: &str) -> bool {
    !text.contains(['%', '?', '#'])
}

/// The table resolves `target` as the reference does, and as it resolves the normalised path.
fn check_against_reference(which: usize, target: &str) {
    let fixture = fixture();
    let table = &fixture.tables[which];
    let routes = &fixture.routes[which];
    let uri = Uri::try_from(target).ok();
    // The URI's path, when it is the target's (an origin-form target).
    let same_path = uri.as_ref().filter(|uri| uri.path() == path_part(target));
    let uri_readings = uri
        .as_ref()
        .map(|uri| readings(uri.path(), which == FOLDED));
    let readings = readings(target, which == FOLDED);
    for method in methods() {
        let got = resolve(table, &method, target);
        let expected = reference(routes, &method, &readings);
        let want: Resolved =
            expected.map(|(route, _)| (route.resource.to_owned(), route.action.clone()));
        assert_eq!(
            got,
            want,
            "{method} {target:?} (case-sensitive: {}): readings {readings:?}",
            which == SENSITIVE
        );
        // The bypass property, stated on the table alone: the spelling is governed as the
        // normalised path is.
        match expected {
            Some((_, reading)) => {
                let normal = text_of(&readings[reading]);
                if plain(&normal) {
                    assert_eq!(
                        resolve(table, &method, &normal),
                        got,
                        "{method} {target:?} resolves otherwise than its normal form {normal:?}"
                    );
                }
            }
            None => {
                for reading in &readings {
                    let normal = text_of(reading);
                    if plain(&normal) {
                        assert_eq!(
                            resolve(table, &method, &normal),
                            None,
                            "{method} {target:?} is not governed, its reading {normal:?} is"
                        );
                    }
                }
            }
        }
        if let Some(uri) = same_path {
            let by_uri = table
                .resolve_uri(&method, uri)
                .map(|found| (found.resource.to_string(), found.action.clone()));
            assert_eq!(by_uri, got, "resolve_uri {method} {target:?}");
        }
        // The whole layer, on a request a client could send: refused exactly when governed.
        if let (Some(uri), Some(uri_readings)) = (&uri, &uri_readings) {
            let want: Resolved = reference(routes, &method, uri_readings)
                .map(|(route, _)| (route.resource.to_owned(), route.action.clone()));
            assert_eq!(
                through_layer(which, &method, uri),
                want,
                "the layer on {method} {uri} (case-sensitive: {})",
                which == SENSITIVE
            );
        }
    }
}

/// Pieces that paths are assembled from.
#[rustfmt::skip]
const PIECES: &[&str] = &[
    "/", "/", "/", "//", ".", "..", "%2e", "%2E", "%2e%2E", "%2F", "%2f", "%", "%2", "%zz", "%25",
    "%252F", "%41", "%C3%A9", "%C3", "%FF", "%c3%89", "é", "É", "ǅ", "İ", "\u{212A}", "ß", "?",
    "#", "?x=/../a", "my", "MY", "clients", "Clients", "cl%69ents", "export", "EXPORT", "api",
    "API", "%61pi", "some", "groups", "users", "5", "projects", "t", "acme", "notes", "tasks",
    "reports", "exports", "status", "probes", "archive", "b c", "b%20c", "B%20C", "Été",
    "%C3%89t%C3%A9", "ÉTÉ", "x", "{id}", ":id", "\u{0}", "\\", ";", " ", "\u{FFFD}",
];

/// Ids that fill parameters of governed templates.
#[rustfmt::skip]
const IDS: &[&str] = &[
    "5", "x", "export", "exports", "projects", "é", "a b", "%", "{id}", ".", "..", "1.2", "...",
    ".a", "ÿ", "Ǆ", "k",
];

/// A clean, governed path: a route's template with its parameters filled in.
fn clean_path(u: &mut Unstructured<'_>, dots_allowed: bool) -> ArbResult<(Vec<String>, Method)> {
    let routes = &fixture().routes[SENSITIVE];
    let route = u.choose(routes)?;
    let mut segments = Vec::new();
    for seg in &route.segments {
        match seg {
            Seg::Literal(text) => segments.push(text.clone()),
            Seg::Param => loop {
                let id = *u.choose(IDS)?;
                if dots_allowed || (id != "." && id != "..") {
                    segments.push(id.to_owned());
                    break;
                }
            },
        }
    }
    let method = if u.ratio(1, 4)? {
        Method::from_bytes(u.choose(&METHODS)?.as_bytes()).expect("a valid method")
    } else {
        route.method.clone()
    };
    Ok((segments, method))
}

/// The uppercase spelling of `c` that lowercases back to it, if there is one.
fn upper(c: char) -> Option<char> {
    let mut up = c.to_uppercase();
    let u = up.next()?;
    (up.next().is_none() && u != c && fold(&u.to_string()) == c.to_string()).then_some(u)
}

/// Writes `c` into `out`, perhaps percent-encoded (any byte may be), perhaps in upper case.
fn spell(u: &mut Unstructured<'_>, c: char, out: &mut String, flipped: &mut bool) -> ArbResult<()> {
    let c = match upper(c) {
        Some(up) if u.ratio(1, 3)? => {
            *flipped = true;
            up
        }
        _ => c,
    };
    if u.ratio(1, 4)? {
        let mut utf8 = [0u8; 4];
        for byte in c.encode_utf8(&mut utf8).bytes() {
            if u.arbitrary()? {
                out.push_str(&format!("%{byte:02X}"));
            } else {
                out.push_str(&format!("%{byte:02x}"));
            }
        }
    } else {
        out.push(c);
    }
    Ok(())
}

/// Re-spells a clean path without changing what it reads as literally: repeated separators, a
/// missing leading slash, encoded or case-changed characters, trailing slashes, a query. With
/// `dots`, dot segments are added that only the resolving reading removes.
fn respell(u: &mut Unstructured<'_>, segments: &[String], dots: bool) -> ArbResult<(String, bool)> {
    let mut out = String::new();
    let mut flipped = false;
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 || !u.ratio(1, 8)? {
            out.push_str(u.choose(&["/", "/", "/", "//", "///"])?);
        }
        if dots && u.ratio(1, 3)? {
            // Each insertion cancels out once dots are resolved; `..` alone only at the root,
            // where it stays.
            let insertions: &[&str] = if i == 0 {
                &[
                    "./",
                    "../",
                    "zz/../",
                    "%2e/",
                    "%2E%2e/",
                    "././/",
                    "zz/%2e%2e/",
                ]
            } else {
                &["./", "zz/../", "%2e/", "././/", "zz/%2e%2e/"]
            };
            let insertion = *u.choose(insertions)?;
            // The `z`s may be spelled otherwise; escapes stay as they are.
            for c in insertion.chars() {
                if c == 'z' {
                    spell(u, c, &mut out, &mut flipped)?;
                } else {
                    out.push(c);
                }
            }
        }
        for c in segment.chars() {
            if c == '%' {
                // A `%` is written `%25`, or kept when it cannot start an escape.
                out.push_str("%25");
            } else {
                spell(u, c, &mut out, &mut flipped)?;
            }
        }
    }
    if segments.is_empty() {
        out.push('/');
    }
    let trailing: &[&str] = if dots {
        &["", "/", "//", "/.", "/zz/..", "/./"]
    } else {
        &["", "/", "//"]
    };
    out.push_str(u.choose(trailing)?);
    out.push_str(u.choose(&[
        "", "", "?", "?a=1", "#x", "?/../..", "#%2F", "?%", "?../x#y",
    ])?);
    Ok((out, flipped))
}

fn respelling(u: &mut Unstructured<'_>) -> ArbResult<()> {
    let dots = u.ratio(1, 3)?;
    let (segments, method) = clean_path(u, !dots)?;
    let clean = text_of(&segments);
    let (spelled, flipped) = respell(u, &segments, dots)?;
    let fixture = fixture();
    for which in [FOLDED, SENSITIVE] {
        if which == SENSITIVE && flipped {
            continue;
        }
        let table = &fixture.tables[which];
        check_against_reference(which, &clean);
        check_against_reference(which, &spelled);
        let want = resolve(table, &method, &clean);
        let got = resolve(table, &method, &spelled);
        if dots {
            // Dot segments may make the literal reading govern another route, never none.
            if want.is_some() {
                assert!(
                    got.is_some(),
                    "{method} {spelled:?} escapes {clean:?} ({want:?})"
                );
            }
        } else {
            assert_eq!(
                got, want,
                "{method} {spelled:?} resolves otherwise than {clean:?}"
            );
        }
    }
    Ok(())
}

/// Pieces that templates are assembled from, good and bad.
#[rustfmt::skip]
const TEMPLATE_PIECES: &[&str] = &[
    "api", "API", "users", "x", ":id", "{id}", "{uid}", ":x", "{*rest}", "{", "}", "a{b}", "{}",
    ":", "{a-b}", "{a b}", "%2F", "%2e", "..", ".", "%41", "%", "%zz", "%25", "é", "É", "?", "#",
    "", "ǅ", "\u{212A}",
];

fn template(u: &mut Unstructured<'_>) -> ArbResult<String> {
    let mut out = String::new();
    if u.arbitrary()? {
        out.push('/');
    }
    for i in 0..u.int_in_range(0..=4)? {
        if i > 0 {
            out.push_str(u.choose(&["/", "/", "//"])?);
        }
        out.push_str(u.choose(TEMPLATE_PIECES)?);
    }
    if u.ratio(1, 4)? {
        out.push('/');
    }
    Ok(out)
}

const CONFIG_RESOURCES: [&str; 5] = ["r0", "r1", "r2", "R3", "cx"];

/// Any configuration: compiling it is an error or a table, never a panic. A table governs
/// every route it lists, at the path the route's template names, and so does a layer built
/// from the configuration (its governable scope covers them all).
fn arbitrary_config(u: &mut Unstructured<'_>) -> ArbResult<()> {
    let case_sensitive: bool = u.arbitrary()?;
    let base = template(u)?;
    let mut config = RouteConfig::new()
        .base(base.clone())
        .case_sensitive(case_sensitive);
    let mut builder_parts: Vec<(bool, Method, String, &str, Action)> = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let resource = *u.choose(&CONFIG_RESOURCES)?;
        let template = template(u)?;
        config = config.path(resource, template.clone());
        builder_parts.push((false, Method::GET, template, resource, Action::Index));
    }
    for _ in 0..u.int_in_range(0..=2)? {
        let method = Method::from_bytes(u.choose(&METHODS)?.as_bytes()).expect("a valid method");
        let template = template(u)?;
        let resource = *u.choose(&CONFIG_RESOURCES)?;
        let action = u
            .choose(&[
                Action::Index,
                Action::Show,
                Action::Create,
                Action::custom("x"),
            ])?
            .clone();
        config = config.route(method.clone(), template.clone(), resource, action.clone());
        builder_parts.push((true, method, template, resource, action));
    }
    let governed: Vec<Arc<str>> = CONFIG_RESOURCES
        .iter()
        .filter(|_| u.arbitrary().unwrap_or(true))
        .map(|&r| Arc::from(r))
        .collect();
    let _ = config.validate();
    let Ok(table) = RouteTable::new(&config, &governed) else {
        return Ok(());
    };
    // The layer, over a catalog that blocks everything on the governed resources.
    let blocked: serde_json::Map<String, serde_json::Value> = governed
        .iter()
        .map(|resource| {
            let limits = ["index", "show", "create", "update", "patch", "delete", "x"]
                .iter()
                .map(|&action| (action.to_owned(), serde_json::Value::from(0)))
                .collect::<serde_json::Map<_, _>>();
            (resource.to_string(), limits.into())
        })
        .collect();
    let catalog =
        serde_json::json!({"actions": ["x"], "plans": [{"name": "none", "limits": blocked}]});
    let store = MemoryStore::from_values(&catalog, &serde_json::json!({"u": {"plan": "none"}}))
        .expect("the store loads");
    let mut builder = PlanLimitLayer::builder(store)
        .base(base)
        .case_sensitive(case_sensitive);
    for (custom, method, template, resource, action) in builder_parts {
        builder = if custom {
            builder.route(method, template, resource, action)
        } else {
            builder.path(resource, template)
        };
    }
    let layer = builder.build().ok();

    for route in table.routes() {
        let mut path = String::new();
        for segment in route.template.split('/').filter(|s| !s.is_empty()) {
            path.push('/');
            if segment.starts_with('{') && segment.ends_with('}') {
                path.push_str("x1");
            } else {
                for byte in segment.bytes() {
                    if byte.is_ascii_alphanumeric() {
                        path.push(char::from(byte));
                    } else {
                        path.push_str(&format!("%{byte:02X}"));
                    }
                }
            }
        }
        if path.is_empty() {
            path.push('/');
        }
        let found = resolve(&table, route.method, &path);
        assert!(
            found.is_some(),
            "{} {path} is not governed, though the table lists {} {}",
            route.method,
            route.method,
            route.template
        );
        if let Some(layer) = &layer {
            let uri = Uri::try_from(path.as_str()).expect("an encoded path is a URI");
            let service = layer.layer(tower::service_fn(inner));
            let request = Request::builder()
                .method(route.method.clone())
                .uri(uri)
                .extension(UserId::from("u"))
                .body(Full::default())
                .expect("a request");
            let response = layered()
                .runtime
                .block_on(service.oneshot(request))
                .expect("infallible");
            let denied = match response.extensions().get::<Rejection>() {
                Some(Rejection::Denied(Denial::LimitReached {
                    resource, action, ..
                })) => Some((resource.to_string(), action.clone())),
                _ => None,
            };
            assert_eq!(
                denied,
                found,
                "the layer on {} {path} ({})",
                route.method,
                response.status()
            );
        }
    }
    // Any path resolves without a panic.
    let probe = String::from_utf8_lossy(u.bytes(u.len().min(64))?).into_owned();
    for method in methods() {
        let _ = table.resolve(&method, &probe);
    }
    Ok(())
}

fn run(data: &[u8]) -> ArbResult<()> {
    let Some((&kind, rest)) = data.split_first() else {
        return Ok(());
    };
    match kind % 4 {
        0 => {
            let target = String::from_utf8_lossy(rest);
            check_against_reference(FOLDED, &target);
            check_against_reference(SENSITIVE, &target);
        }
        1 => {
            let target: String = rest
                .iter()
                .take(48)
                .map(|&b| PIECES[usize::from(b) % PIECES.len()])
                .collect();
            check_against_reference(FOLDED, &target);
            check_against_reference(SENSITIVE, &target);
        }
        2 => respelling(&mut Unstructured::new(rest))?,
        _ => arbitrary_config(&mut Unstructured::new(rest))?,
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
