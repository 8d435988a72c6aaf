//! Request paths: the clean-path test and the normalisation of every other spelling.
//!
//! A normalised path starts with `/`, has no empty segment, no trailing slash (except the root
//! `/`), is percent-decoded and, when matching is case-insensitive, lowercased character by
//! character. Two choices are left open by the URI rules and are made per [`Reading`]: whether an
//! encoded slash (`%2F`) separates segments, and whether dot segments are resolved or kept as
//! ordinary segments. [`find_map_readings`] goes through the readings for the route table and the
//! scope alike: [`Reading::KEEP_LITERAL`], the path as the application's router sees it, first,
//! and the others only when it gives nothing (see the docs of [`RouteTable`](super::RouteTable)).

/// One way to read a path's ambiguous parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reading {
    /// `%2F` separates segments (`true`) or stays inside its segment as the text `%2F`.
    split_encoded_slash: bool,
    /// `.` and `..` segments are resolved (`true`) or kept as ordinary segments.
    resolve_dots: bool,
}

impl Reading {
    /// `%2F` kept inside its segment, dot segments kept: the literal reading, as routers that
    /// do not normalise paths (axum's, hyper's) see the path. Tried first.
    const KEEP_LITERAL: Reading = Reading {
        split_encoded_slash: false,
        resolve_dots: false,
    };
    /// `%2F` kept inside its segment, dot segments resolved.
    const KEEP_RESOLVE: Reading = Reading {
        split_encoded_slash: false,
        resolve_dots: true,
    };
    /// `%2F` as a separator, dot segments kept.
    const SPLIT_LITERAL: Reading = Reading {
        split_encoded_slash: true,
        resolve_dots: false,
    };
    /// `%2F` as a separator, dot segments resolved.
    const SPLIT_RESOLVE: Reading = Reading {
        split_encoded_slash: true,
        resolve_dots: true,
    };
}

/// What normalising a path came across, to know which other readings can differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Seen {
    /// A `.` or `..` segment (after decoding).
    dots: bool,
    /// An encoded slash (`%2F` or `%2f`).
    encoded_slash: bool,
}

/// The path part of `path`: everything before the first `?` or `#`.
pub(super) fn strip_query(path: &str) -> &str {
    match path.find(['?', '#']) {
        Some(end) => &path[..end],
        None => path,
    }
}

/// The states of [`is_clean`]'s scan: what the current segment is so far (nothing yet, `.`,
/// `..` or anything else), whether a non-ASCII byte was seen, or a failure.
const START: u8 = 0;
const DOT: u8 = 1;
const DOTS: u8 = 2;
const TEXT: u8 = 3;
/// Added to the segment state once a non-ASCII byte was seen (only when matching folds case).
const NON_ASCII: u8 = 4;
/// The path is not clean: a byte that never is, or a slash that ends an empty segment or a
/// dot segment. It stays; its segment bits are [`START`], so it never passes for a clean end.
const FAIL: u8 = 8;

/// The state after `byte` in the state `state` (below [`FAIL`]).
const fn next_state(state: u8, byte: u8, case_sensitive: bool) -> u8 {
    let segment = state & 3;
    let non_ascii = state & NON_ASCII;
    match byte {
        b'/' if segment == TEXT => START | non_ascii,
        b'/' | b'%' | b'?' | b'#' => FAIL,
        b'A'..=b'Z' if !case_sensitive => FAIL,
        b'.' if segment == START => DOT | non_ascii,
        b'.' if segment == DOT => DOTS | non_ascii,
        0x80..=0xFF if !case_sensitive => TEXT | NON_ASCII,
        _ => TEXT | non_ascii,
    }
}

/// The transitions of [`is_clean`]'s scan: the next state by state and byte (rows from
/// [`FAIL`] on lead to [`FAIL`]).
const fn transitions(case_sensitive: bool) -> [[u8; 256]; 16] {
    let mut table = [[FAIL; 256]; 16];
    let mut state = 0;
    while state < FAIL {
        let mut byte = 0;
        while byte < 256 {
            table[state as usize][byte] = next_state(state, byte as u8, case_sensitive);
            byte += 1;
        }
        state += 1;
    }
    table
}

static FOLDING: [[u8; 256]; 16] = transitions(false);
static CASE_SENSITIVE: [[u8; 256]; 16] = transitions(true);

/// Whether `path` (already without its query) is in normalised form, so that it can be matched
/// as it is.
///
/// One table lookup a byte: a state machine that follows each segment (empty, `.`, `..` or
/// other) and fails on a byte that is never clean (`%`, `?`, `#`, and capitals when matching
/// folds case) or on a slash that ends a segment that is not clean.
pub(super) fn is_clean(path: &str, case_sensitive: bool) -> bool {
    let bytes = path.as_bytes();
    let Some((&b'/', rest)) = bytes.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let table = if case_sensitive {
        &CASE_SENSITIVE
    } else {
        &FOLDING
    };
    let mut state = START;
    // A failure is final: stop at the end of the chunk it happens in.
    for chunk in rest.chunks(16) {
        for &byte in chunk {
            state = table[usize::from(state & 15)][usize::from(byte)];
        }
        if state == FAIL {
            return false;
        }
    }
    // The last segment must be one that is clean, too.
    match state {
        TEXT => true,
        state if state == TEXT | NON_ASCII => is_all_folded(path),
        _ => false,
    }
}

/// Whether lowercasing leaves every character of `text` as it is; out of line, as only paths
/// with non-ASCII characters need it.
#[cold]
#[inline(never)]
fn is_all_folded(text: &str) -> bool {
    text.chars().all(is_folded)
}

/// Whether lowercasing leaves `c` as it is.
fn is_folded(c: char) -> bool {
    let mut lower = c.to_lowercase();
    lower.next() == Some(c) && lower.next().is_none()
}

/// Lowercases `text` character by character (no context-dependent rules, so that folding a
/// template and folding a path agree segment by segment).
pub(super) fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// Normalises `path` (already without its query) under each reading that can differ and returns
/// the first `Some` that `found` gives for one, as [`Iterator::find_map`] does. Readings are
/// tried in this order, the path as the application's router sees it first:
///
/// 1. [`Reading::KEEP_LITERAL`]: dot segments kept, `%2F` inside its segment;
/// 2. [`Reading::KEEP_RESOLVE`], when the path has a dot segment;
/// 3. [`Reading::SPLIT_LITERAL`], when it has an encoded slash;
/// 4. [`Reading::SPLIT_RESOLVE`], when splitting at the encoded slashes made a dot segment.
///
/// A reading that is skipped would give the same text as one tried before it. All readings share
/// one buffer.
pub(super) fn find_map_readings<T>(
    path: &str,
    fold: bool,
    mut found: impl FnMut(&str) -> Option<T>,
) -> Option<T> {
    let mut buffer = Vec::with_capacity(path.len() + 1);
    let mut read = |reading: Reading| {
        let seen = normalize_into(path, reading, fold, &mut buffer);
        let text = into_text(std::mem::take(&mut buffer), fold);
        let result = found(&text);
        buffer = text.into_bytes();
        (result, seen)
    };
    let (result, seen) = read(Reading::KEEP_LITERAL);
    if result.is_some() {
        return result;
    }
    if seen.dots {
        let (result, _) = read(Reading::KEEP_RESOLVE);
        if result.is_some() {
            return result;
        }
    }
    if seen.encoded_slash {
        let (result, split) = read(Reading::SPLIT_LITERAL);
        if result.is_some() || !split.dots {
            return result;
        }
        return read(Reading::SPLIT_RESOLVE).0;
    }
    None
}

/// Normalises `path` (already without its query) under `reading` into `out` (cleared first).
///
/// ASCII letters are lowercased here when `fold` is set; other characters are lowercased by
/// [`into_text`], once the bytes are known to be text.
fn normalize_into(path: &str, reading: Reading, fold: bool, out: &mut Vec<u8>) -> Seen {
    out.clear();
    let mut seen = Seen::default();
    let bytes = path.as_bytes();
    let mut start = begin_segment(out);
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'/' {
            end_segment(out, start, reading, &mut seen);
            start = begin_segment(out);
            i += 1;
            continue;
        }
        if byte == b'%' {
            if let Some(decoded) = decode_pair(bytes.get(i + 1), bytes.get(i + 2)) {
                i += 3;
                if decoded == b'/' {
                    seen.encoded_slash = true;
                    if reading.split_encoded_slash {
                        end_segment(out, start, reading, &mut seen);
                        start = begin_segment(out);
                    } else {
                        for &kept in b"%2F" {
                            push(out, kept, fold);
                        }
                    }
                } else {
                    push(out, decoded, fold);
                }
                continue;
            }
        }
        push(out, byte, fold);
        i += 1;
    }
    end_segment(out, start, reading, &mut seen);
    if out.is_empty() {
        out.push(b'/');
    }
    seen
}

/// Turns normalised bytes into text: invalid UTF-8 sequences become U+FFFD (so that a segment
/// stays a segment), and non-ASCII letters are lowercased when `fold` is set.
fn into_text(out: Vec<u8>, fold_case: bool) -> String {
    let text = match String::from_utf8(out) {
        Ok(text) => text,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    };
    if fold_case && !text.is_ascii() && text.chars().any(|c| !is_folded(c)) {
        fold(&text)
    } else {
        text
    }
}

fn begin_segment(out: &mut Vec<u8>) -> usize {
    out.push(b'/');
    out.len()
}

/// Drops an empty segment, and resolves a dot segment when the reading says so.
fn end_segment(out: &mut Vec<u8>, start: usize, reading: Reading, seen: &mut Seen) {
    let separator = start.saturating_sub(1);
    match out.get(start..) {
        Some(b"") => out.truncate(separator),
        Some(b".") => {
            seen.dots = true;
            if reading.resolve_dots {
                out.truncate(separator);
            }
        }
        Some(b"..") => {
            seen.dots = true;
            if reading.resolve_dots {
                out.truncate(separator);
                // Segments hold no `/`, so the last one starts after the last `/`; above the
                // root, `..` stays at the root.
                let parent = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(parent);
            }
        }
        _ => {}
    }
}

fn push(out: &mut Vec<u8>, byte: u8, fold: bool) {
    out.push(if fold {
        byte.to_ascii_lowercase()
    } else {
        byte
    });
}

/// The byte that `%` followed by `high` and `low` encodes, if both are hex digits.
///
/// Request paths are decoded here rather than with the `percent-encoding` crate (which
/// template literals use): [`normalize_into`] must tell an encoded slash from a real one, and
/// decodes, folds and splits in one pass into a buffer that every reading reuses.
fn decode_pair(high: Option<&u8>, low: Option<&u8>) -> Option<u8> {
    let high = hex_value(*high?)?;
    let low = hex_value(*low?)?;
    Some(high << 4 | low)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalize(path: &str, reading: Reading, fold: bool) -> (String, Seen) {
        let mut out = Vec::new();
        let seen = normalize_into(strip_query(path), reading, fold, &mut out);
        (into_text(out, fold), seen)
    }

    fn norm(path: &str) -> String {
        normalize(path, Reading::KEEP_RESOLVE, true).0
    }

    #[test]
    fn clean_paths() {
        for clean in ["/", "/clients", "/clients/5", "/a/b.c/d", "/é"] {
            assert!(is_clean(clean, false), "{clean}");
        }
        for dirty in [
            "",
            "clients",
            "//",
            "/clients/",
            "/clients//5",
            "/Clients",
            "/cl%69ents",
            "/a/./b",
            "/a/..",
            "/.",
            "/É",
            "/ǅ",
        ] {
            assert!(!is_clean(dirty, false), "{dirty}");
        }
        assert!(is_clean("/Clients/É", true));
        assert!(!is_clean("/clients/", true));
        for clean in [
            "/...", "/a/.../b", "/.a", "/a.", "/..a/b", "/a/b..", "/a.b/c",
        ] {
            assert!(is_clean(clean, false), "{clean}");
        }
        for dirty in [
            "/a?x", "/a#b", "/a/../b", "/a/.", "/../a", "/./a", "/a/./", "/a//",
        ] {
            assert!(!is_clean(dirty, false), "{dirty}");
        }
    }

    /// The definition the one-pass `is_clean` implements, written plainly.
    fn is_clean_by_definition(path: &str, case_sensitive: bool) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        if rest.is_empty() {
            return true;
        }
        let bad_byte =
            |c: char| matches!(c, '%' | '?' | '#') || (!case_sensitive && c.is_ascii_uppercase());
        let bad_segment = |s: &str| s.is_empty() || s == "." || s == "..";
        !path.chars().any(bad_byte)
            && !rest.split('/').any(bad_segment)
            && (case_sensitive || path.chars().all(is_folded))
    }

    /// Checks `is_clean` against its definition on `path`, case-insensitive and sensitive;
    /// the number of checks made.
    fn agrees_with_definition(path: &str) -> usize {
        for case_sensitive in [false, true] {
            assert_eq!(
                is_clean(path, case_sensitive),
                is_clean_by_definition(path, case_sensitive),
                "{path:?}, case-sensitive: {case_sensitive}"
            );
        }
        2
    }

    #[test]
    fn clean_agrees_with_its_definition_on_every_short_path() {
        let alphabet = ['/', '.', 'a', 'A', '%', '?', 'é'];
        let mut paths = vec![String::new()];
        let mut checked = 0;
        for _ in 0..6 {
            let mut longer = Vec::with_capacity(paths.len() * alphabet.len());
            for path in &paths {
                for c in alphabet {
                    let mut next = path.clone();
                    next.push(c);
                    checked += agrees_with_definition(&next);
                    longer.push(next);
                }
            }
            paths = longer;
        }
        assert_eq!(checked, 2 * (7 + 49 + 343 + 2401 + 16807 + 117649));
    }

    #[test]
    fn clean_agrees_with_its_definition_on_long_paths() {
        // Longer than the exhaustive test reaches, across the 16-byte chunks of the scan: each
        // special spelling at every position, replacing a byte or inserted.
        let bases = [
            "/abcdefghij/klmnopqrstu/vwxyz0123456789/abcdefg",
            "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s",
            "/aaaaaaaaaaaaaaa/bbbbbbbbbbbbbbb/ccccccccccccccc/d",
            "/x.y/...z/.a/b./..c/d../e.f.g/h",
        ];
        let specials = [
            "/", ".", "..", "//", "/./", "/../", "/.", "/..", "./", "../", "A", "%", "%41", "?",
            "#", "é", "É", "ǅ", "z",
        ];
        let mut checked = 0;
        for base in bases {
            for at in 0..=base.len() {
                for special in specials {
                    let inserted = format!("{}{special}{}", &base[..at], &base[at..]);
                    let replaced = if at < base.len() {
                        format!("{}{special}{}", &base[..at], &base[at + 1..])
                    } else {
                        format!("{base}{special}")
                    };
                    for path in [inserted, replaced] {
                        checked += agrees_with_definition(&path);
                    }
                }
            }
            assert!(is_clean(base, false) && is_clean(base, true), "{base}");
        }
        assert!(checked > 5000);
    }

    #[test]
    fn strips_query_and_fragment() {
        assert_eq!(strip_query("/a?b=1"), "/a");
        assert_eq!(strip_query("/a?"), "/a");
        assert_eq!(strip_query("/a#x?y"), "/a");
        assert_eq!(strip_query("/a"), "/a");
    }

    #[test]
    fn normalises() {
        assert_eq!(norm(""), "/");
        assert_eq!(norm("/"), "/");
        assert_eq!(norm("///"), "/");
        assert_eq!(norm("clients"), "/clients");
        assert_eq!(norm("//Clients//5/"), "/clients/5");
        assert_eq!(norm("/cl%69ents/%41"), "/clients/a");
        assert_eq!(norm("/a/./b/../c"), "/a/c");
        assert_eq!(norm("/../../a"), "/a");
        assert_eq!(norm("/a/%2e%2E/b"), "/b");
        assert_eq!(norm("/a/b/.."), "/a");
        assert_eq!(norm("/a/%2"), "/a/%2");
        assert_eq!(norm("/a/%zz"), "/a/%zz");
        assert_eq!(norm("/ÉTÉ"), "/été");
        assert_eq!(norm("/a/%ff"), "/a/\u{fffd}");
        assert_eq!(norm("/a/%C3%A9"), "/a/é");
    }

    #[test]
    fn case_is_kept_when_sensitive() {
        let (path, _) = normalize("/Cl%69ents/ÉTÉ/", Reading::KEEP_RESOLVE, false);
        assert_eq!(path, "/Clients/ÉTÉ");
    }

    #[test]
    fn readings_differ_on_encoded_slashes_and_dots() {
        let path = "/a%2Fb/../c/.";
        let (keep, seen) = normalize(path, Reading::KEEP_RESOLVE, true);
        assert_eq!(keep, "/c");
        assert_eq!(
            seen,
            Seen {
                dots: true,
                encoded_slash: true
            }
        );
        let (literal, _) = normalize(path, Reading::KEEP_LITERAL, true);
        assert_eq!(literal, "/a%2fb/../c/.");
        let (split, _) = normalize(path, Reading::SPLIT_RESOLVE, true);
        assert_eq!(split, "/a/c");
        let (split_literal, _) = normalize(path, Reading::SPLIT_LITERAL, true);
        assert_eq!(split_literal, "/a/b/../c/.");
        let (_, clean) = normalize("/a/b", Reading::KEEP_RESOLVE, true);
        assert_eq!(clean, Seen::default());
    }

    #[test]
    fn readings_come_literal_first_and_only_when_they_differ() {
        let readings = |path: &str| {
            let mut seen = Vec::new();
            let none: Option<()> = find_map_readings(path, true, |text| {
                seen.push(text.to_owned());
                None
            });
            assert!(none.is_none());
            seen
        };
        assert_eq!(
            readings("/a%2Fb/../c/."),
            ["/a%2fb/../c/.", "/c", "/a/b/../c/.", "/a/c"]
        );
        assert_eq!(readings("/A/./b"), ["/a/./b", "/a/b"]);
        assert_eq!(readings("/a%2fb"), ["/a%2fb", "/a/b"]);
        assert_eq!(readings("/a%2F.."), ["/a%2f..", "/a/..", "/"]);
        assert_eq!(readings("//Clients/"), ["/clients"]);
        let first = find_map_readings("/a/../b", true, |text| Some(text.to_owned()));
        assert_eq!(first.as_deref(), Some("/a/../b"));
    }
}
