//! Property tests: resolving never panics on any path, and random re-spellings of a governed
//! path resolve like the clean path.

use http::Method;
use proptest::prelude::*;
use tower_plans::{
    routes::{RouteConfig, RouteTable},
    Action,
};

use super::{method, resolve, table};

/// The configuration of the property tests: every kind of route, no parameter at the root.
fn property_table(case_sensitive: bool) -> RouteTable {
    let config = RouteConfig::new()
        .base("/api")
        .path("clients", "/my/clients")
        .path("groups", "some/groups")
        .route(
            Method::POST,
            "reports/:id/export",
            "reports",
            Action::custom("export"),
        )
        .case_sensitive(case_sensitive);
    table(&config, &["clients", "groups", "reports", "tasks"])
}

/// Clean governed requests: method, path with `{id}` to fill in, resource, action.
const GOVERNED: &[(&str, &str, &str, &str)] = &[
    ("GET", "/my/clients", "clients", "index"),
    ("POST", "/my/clients", "clients", "create"),
    ("GET", "/my/clients/{id}", "clients", "show"),
    ("HEAD", "/my/clients/{id}", "clients", "show"),
    ("PUT", "/my/clients/{id}", "clients", "update"),
    ("PATCH", "/my/clients/{id}", "clients", "patch"),
    ("DELETE", "/my/clients/{id}", "clients", "delete"),
    ("GET", "/api/some/groups", "groups", "index"),
    ("DELETE", "/api/some/groups/{id}", "groups", "delete"),
    ("POST", "/api/tasks", "tasks", "create"),
    ("PATCH", "/api/tasks/{id}", "tasks", "patch"),
    ("POST", "/api/reports/{id}/export", "reports", "export"),
];

/// Reads random choices from a byte list; zero once it runs out.
struct Dice<'a>(std::slice::Iter<'a, u8>);

impl Dice<'_> {
    fn roll(&mut self, sides: u8) -> u8 {
        self.0.next().copied().unwrap_or(0) % sides
    }
}

/// Which dot segments [`respell`] may add.
#[derive(Clone, Copy)]
struct Dots {
    /// `./`, `x/../` and `./zz/./../` before segments.
    insertions: bool,
    /// A trailing `/.`. Read literally, it makes a collection path an item (`/clients/.` is the
    /// item `.`, as the application's router sees it), so it only suits item paths.
    suffix: bool,
}

/// Re-spells a clean path: doubled slashes, dot segments (as `dots` allows), trailing slashes,
/// random case, random percent-encoding and a query suffix.
///
/// A slash is only percent-encoded where it is the single separator between two segments: an
/// encoded slash elsewhere (`/clients/%2F`, `/a%2Fx/../b`) has a second, equally valid reading
/// in which it is part of a segment, and the table then governs the request either way.
fn respell(path: &str, dots: Dots, dice: &mut Dice<'_>) -> String {
    // Each character, with whether it may be percent-encoded.
    let mut spelled: Vec<(char, bool)> = Vec::new();
    let push = |text: &str, encodable: bool, spelled: &mut Vec<(char, bool)>| {
        spelled.extend(text.chars().map(|c| (c, encodable)));
    };
    for (i, segment) in path.split('/').skip(1).enumerate() {
        let doubled = dice.roll(4) == 0;
        let insertion = if dots.insertions {
            ["./", "x/../", "./zz/./../", "", "", ""][usize::from(dice.roll(6))]
        } else {
            ""
        };
        let separator_encodable = i > 0 && !doubled && insertion.is_empty();
        push(
            if doubled { "//" } else { "/" },
            separator_encodable,
            &mut spelled,
        );
        for c in insertion.chars() {
            spelled.push((c, c != '/'));
        }
        push(segment, true, &mut spelled);
    }
    let suffixes: &[&str] = if dots.suffix {
        &["", "/", "//", "/."]
    } else {
        &["", "/", "//"]
    };
    let suffix = suffixes[usize::from(dice.roll(4)) % suffixes.len()];
    push(suffix, false, &mut spelled);

    let mut out = String::new();
    for (c, encodable) in spelled {
        let c = if dice.roll(2) == 0 {
            c
        } else {
            c.to_ascii_uppercase()
        };
        if encodable && dice.roll(4) == 0 {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                if dice.roll(2) == 0 {
                    out.push_str(&format!("%{byte:02X}"));
                } else {
                    out.push_str(&format!("%{byte:02x}"));
                }
            }
        } else {
            out.push(c);
        }
    }
    out.push_str(["", "?", "?a=1", "?next=/../x//y", "#frag", "?%2F/"][usize::from(dice.roll(6))]);
    out
}

/// Arbitrary bytes written as a path: printable ASCII as it is, everything else percent-encoded.
fn escaped(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &byte in bytes {
        if byte.is_ascii_graphic() && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn resolve_all(table: &RouteTable, path: &str) {
    for verb in [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "REPORT",
    ] {
        let _ = table.resolve(&method(verb), path);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn resolve_never_panics_on_strings(path in any::<String>()) {
        resolve_all(&property_table(false), &path);
        resolve_all(&property_table(true), &path);
    }

    #[test]
    fn resolve_never_panics_on_escaped_bytes(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        let path = escaped(&bytes);
        resolve_all(&property_table(false), &path);
        resolve_all(&property_table(true), &path);
    }

    #[test]
    fn resolve_never_panics_on_path_pieces(
        pieces in prop::collection::vec(
            prop::sample::select(vec![
                "/", "//", ".", "..", "%2e", "%2E%2e", "%2F", "%2f", "%", "%F", "%FF", "%C3",
                "%C3%A9", "é", "É", "ǅ", "İ", "K", "my", "clients", "CLIENTS", "api", "some",
                "groups", "reports", "export", "7", "?", "#", "{", "}", ":", "*", "\u{0}",
            ]),
            0..24,
        )
    ) {
        let path: String = pieces.concat();
        resolve_all(&property_table(false), &path);
        resolve_all(&property_table(true), &path);
    }

    #[test]
    fn respellings_resolve_like_the_clean_path(
        case in 0..GOVERNED.len(),
        id in "[a-z0-9]{1,8}",
        choices in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let table = property_table(false);
        let (verb, template, resource, action) = GOVERNED[case];
        let verb = method(verb);
        let clean = template.replace("{id}", &id);
        let expected = Some((resource.to_owned(), Action::custom(action)));
        prop_assert_eq!(resolve(&table, &verb, &clean), expected.clone());
        let dots = Dots {
            insertions: true,
            suffix: !matches!(action, "index" | "create"),
        };
        let spelled = respell(&clean, dots, &mut Dice(choices.iter()));
        prop_assert_eq!(resolve(&table, &verb, &spelled), expected, "{} {}", verb, spelled);
    }

    /// An id that is a dot segment (`.` or `..`, and percent-encoded by `respell`) is still the
    /// item the router hands it to: the literal reading wins over the resolved one whenever it
    /// is governed.
    #[test]
    fn dot_segment_ids_stay_items(
        case in 0..GOVERNED.len(),
        id in prop::sample::select(vec![".", ".."]),
        choices in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let table = property_table(false);
        let (verb, template, resource, action) = GOVERNED[case];
        prop_assume!(template.contains("{id}"));
        let verb = method(verb);
        let expected = Some((resource.to_owned(), Action::custom(action)));
        let literal = template.replace("{id}", id);
        prop_assert_eq!(resolve(&table, &verb, &literal), expected.clone(), "{} {}", verb, literal);
        let dots = Dots { insertions: false, suffix: false };
        let spelled = respell(&literal, dots, &mut Dice(choices.iter()));
        prop_assert_eq!(resolve(&table, &verb, &spelled), expected, "{} {}", verb, spelled);
    }
}
