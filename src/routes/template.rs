//! Path templates: parsing, checking and the key a template is stored under in the router.

use std::borrow::Cow;
use std::fmt::Write as _;

use percent_encoding::percent_decode_str;

use super::normalize;
use crate::error::ConfigError;

/// One segment of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Segment {
    /// Text that must be matched as it is (percent-decoded, case as configured).
    Literal(String),
    /// A parameter: any one non-empty segment.
    Param(String),
}

/// Parses a configured template (`/users/:uid/projects`, `users/{uid}/projects`).
///
/// Slashes at either end and repeated slashes do not count. A segment is a parameter when it is
/// `:name` or `{name}`; otherwise it is literal text, percent-decoded.
pub(super) fn parse(raw: &str) -> Result<Vec<Segment>, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidTemplate {
        template: raw.to_owned(),
        reason: reason.to_owned(),
    };
    if raw.contains(['?', '#']) {
        return Err(invalid("a template is a path and cannot hold `?` or `#`"));
    }
    let mut segments = Vec::new();
    for segment in raw.split('/').filter(|segment| !segment.is_empty()) {
        let name = if let Some(name) = segment.strip_prefix(':') {
            Some(name)
        } else if let Some(inner) = segment
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
        {
            if inner.starts_with('*') {
                return Err(invalid(
                    "catch-all parameters (`{*name}`) are not supported",
                ));
            }
            Some(inner)
        } else {
            None
        };
        match name {
            Some(name) => {
                check_name(name).map_err(|reason| invalid(&reason))?;
                segments.push(Segment::Param(name.to_owned()));
            }
            None => {
                if segment.contains(['{', '}']) {
                    return Err(invalid(
                        "`{` and `}` may only enclose a parameter filling a whole segment, as in `{id}`",
                    ));
                }
                segments.push(Segment::Literal(
                    decode(segment).map_err(|refusal| invalid(refusal.in_template()))?,
                ));
            }
        }
    }
    Ok(segments)
}

/// The segments of a resource name used as a path: split at `/`, each percent-decoded like the
/// literal text of a template (so that `a%41` matches the paths `/a%41` and `/aA`, as the
/// template `/a%41` would). A segment that decodes to a slash, a dot segment or invalid UTF-8 is
/// refused, naming the resource; `configured` is the path the name was to give.
pub(super) fn literal(name: &str, configured: &str) -> Result<Vec<Segment>, ConfigError> {
    name.split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| match decode(segment) {
            Ok(text) => Ok(Segment::Literal(text)),
            Err(refusal) => Err(ConfigError::InvalidTemplate {
                template: configured.to_owned(),
                reason: format!(
                    "resource name `{name}` cannot be used as a path: {}",
                    refusal.in_resource()
                ),
            }),
        })
        .collect()
}

/// Why a literal segment cannot be matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    EncodedSlash,
    NotUtf8,
    DotSegment,
}

impl Refusal {
    fn in_template(self) -> &'static str {
        match self {
            Refusal::EncodedSlash => "an encoded slash (`%2F`) cannot appear in a template",
            Refusal::NotUtf8 => "the template is not valid UTF-8 once percent-decoded",
            Refusal::DotSegment => "dot segments (`.` and `..`) cannot appear in a template",
        }
    }

    fn in_resource(self) -> &'static str {
        match self {
            Refusal::EncodedSlash => "it holds an encoded slash (`%2F`)",
            Refusal::NotUtf8 => "it is not valid UTF-8 once percent-decoded",
            Refusal::DotSegment => "it holds a dot segment (`.` or `..`, also percent-encoded)",
        }
    }
}

fn is_dot(segment: &str) -> bool {
    segment == "." || segment == ".."
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a parameter needs a name".to_owned());
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(format!(
            "parameter name `{name}` holds `{bad}`; names are letters, digits, `_` and `-`"
        ));
    }
    Ok(())
}

/// Percent-decodes one literal segment: `%XX` becomes the byte, a `%` without two hex digits
/// stays as it is.
fn decode(segment: &str) -> Result<String, Refusal> {
    let decoded: Cow<'_, [u8]> = percent_decode_str(segment).into();
    if decoded.contains(&b'/') {
        return Err(Refusal::EncodedSlash);
    }
    let text = String::from_utf8(decoded.into_owned()).map_err(|_| Refusal::NotUtf8)?;
    if is_dot(&text) {
        return Err(Refusal::DotSegment);
    }
    Ok(text)
}

/// The first parameter named twice, if any.
pub(super) fn duplicate_param(segments: &[Segment]) -> Option<&str> {
    let names = segments.iter().filter_map(|segment| match segment {
        Segment::Param(name) => Some(name.as_str()),
        Segment::Literal(_) => None,
    });
    names
        .clone()
        .enumerate()
        .find(|&(i, name)| names.clone().take(i).any(|earlier| earlier == name))
        .map(|(_, name)| name)
}

/// A parameter name not used in `segments`: `id`, else `id2`, `id3`, ...
pub(super) fn fresh_param(segments: &[Segment]) -> String {
    let taken = |candidate: &str| {
        segments
            .iter()
            .any(|segment| matches!(segment, Segment::Param(name) if name == candidate))
    };
    let mut candidate = "id".to_owned();
    let mut n = 1u32;
    while taken(&candidate) {
        n += 1;
        candidate = format!("id{n}");
    }
    candidate
}

/// The template as listed: `/users/{uid}/projects`.
pub(super) fn display(segments: &[Segment]) -> String {
    if segments.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        match segment {
            Segment::Literal(text) => out.push_str(text),
            Segment::Param(name) => {
                let _ = write!(out, "{{{name}}}");
            }
        }
    }
    out
}

/// The key the template is stored under: literals folded unless `case_sensitive`, braces
/// escaped, parameters renamed by position (`{p0}`, `{p1}`), so that two templates that only
/// differ in parameter names get the same key.
pub(super) fn key(segments: &[Segment], case_sensitive: bool) -> String {
    if segments.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::new();
    let mut params = 0usize;
    for segment in segments {
        out.push('/');
        match segment {
            Segment::Literal(text) => {
                let folded;
                let text = if case_sensitive {
                    text.as_str()
                } else {
                    folded = normalize::fold(text);
                    folded.as_str()
                };
                for c in text.chars() {
                    match c {
                        '{' => out.push_str("{{"),
                        '}' => out.push_str("}}"),
                        c => out.push(c),
                    }
                }
            }
            Segment::Param(_) => {
                let _ = write!(out, "{{p{params}}}");
                params += 1;
            }
        }
    }
    out
}

/// The one path a template without parameters matches, in normalised form (literals folded
/// unless `case_sensitive`), or `None` when the template has a parameter.
pub(super) fn exact_path(segments: &[Segment], case_sensitive: bool) -> Option<String> {
    if segments.is_empty() {
        return Some("/".to_owned());
    }
    let mut out = String::new();
    for segment in segments {
        let Segment::Literal(text) = segment else {
            return None;
        };
        out.push('/');
        if case_sensitive {
            out.push_str(text);
        } else {
            out.push_str(&normalize::fold(text));
        }
    }
    Some(out)
}

/// For a template whose only parameter is its last segment, the path before that parameter
/// with its slash, in normalised form (`/clients/` for `/clients/{id}`, `/` for `/{id}`).
pub(super) fn item_parent(segments: &[Segment], case_sensitive: bool) -> Option<String> {
    let (Segment::Param(_), prefix) = segments.split_last()? else {
        return None;
    };
    let mut parent = exact_path(prefix, case_sensitive)?;
    if !prefix.is_empty() {
        parent.push('/');
    }
    Some(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(text: &str) -> Segment {
        Segment::Literal(text.to_owned())
    }

    fn param(name: &str) -> Segment {
        Segment::Param(name.to_owned())
    }

    fn reason(raw: &str) -> String {
        match parse(raw) {
            Err(ConfigError::InvalidTemplate { template, reason }) => {
                assert_eq!(template, raw);
                reason
            }
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn parses_both_parameter_forms() {
        assert_eq!(
            parse("users/:uid//{pid}/").unwrap(),
            vec![lit("users"), param("uid"), param("pid")]
        );
        assert_eq!(parse("/").unwrap(), vec![]);
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("/a:b/%41%20c").unwrap(), vec![lit("a:b"), lit("A c")]);
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(reason("/files/{*rest}").contains("catch-all"));
        assert!(reason("/a/{id").contains("whole segment"));
        assert!(reason("/a/id}").contains("whole segment"));
        assert!(reason("/a/x{id}").contains("whole segment"));
        assert!(reason("/a/{}").contains("needs a name"));
        assert!(reason("/a/:").contains("needs a name"));
        assert!(reason("/a/:a.b").contains("`.`"));
        assert!(reason("/a?b").contains("`?`"));
        assert!(reason("/a/%2F").contains("encoded slash"));
        assert!(reason("/a/%ff").contains("UTF-8"));
        assert!(reason("/a/../b").contains("dot segments"));
        assert!(reason("/a/%2e").contains("dot segments"));
    }

    #[test]
    fn decodes_literals() {
        assert_eq!(decode("a%20b%"), Ok("a b%".to_owned()));
        assert_eq!(decode("%zz%41%4"), Ok("%zzA%4".to_owned()));
        assert_eq!(decode("%C3%A9t%c3%a9"), Ok("été".to_owned()));
        assert_eq!(decode("%2f"), Err(Refusal::EncodedSlash));
        // The slash is refused before the bytes are checked for UTF-8.
        assert_eq!(decode("%ff%2F"), Err(Refusal::EncodedSlash));
        assert_eq!(decode("%ff"), Err(Refusal::NotUtf8));
        assert_eq!(decode("%2e%2E"), Err(Refusal::DotSegment));
    }

    #[test]
    fn finds_duplicate_parameters() {
        let segments = parse("/a/:x/b/{y}/{x}").unwrap();
        assert_eq!(duplicate_param(&segments), Some("x"));
        assert_eq!(duplicate_param(&parse("/a/:x/{y}").unwrap()), None);
    }

    #[test]
    fn keys_rename_parameters_and_fold() {
        let a = parse("/Users/:uid/{x}").unwrap();
        assert_eq!(key(&a, false), "/users/{p0}/{p1}");
        assert_eq!(key(&a, true), "/Users/{p0}/{p1}");
        assert_eq!(display(&a), "/Users/{uid}/{x}");
        assert_eq!(key(&[lit("a{b}")], true), "/a{{b}}");
        assert_eq!(key(&[], false), "/");
    }

    #[test]
    fn exact_paths_are_the_literals_unescaped() {
        let a = parse("/Users/A%7Bb%7D/É").unwrap();
        assert_eq!(exact_path(&a, false).as_deref(), Some("/users/a{b}/é"));
        assert_eq!(exact_path(&a, true).as_deref(), Some("/Users/A{b}/É"));
        assert_eq!(exact_path(&parse("/users/:id").unwrap(), false), None);
        assert_eq!(exact_path(&[], false).as_deref(), Some("/"));
    }

    #[test]
    fn item_parents_are_the_paths_before_a_last_parameter() {
        let parent = |raw: &str| item_parent(&parse(raw).unwrap(), false);
        assert_eq!(parent("/Users/:id").as_deref(), Some("/users/"));
        assert_eq!(parent("/a/b/{id}").as_deref(), Some("/a/b/"));
        assert_eq!(parent("/{id}").as_deref(), Some("/"));
        assert_eq!(parent("/users/{uid}/x"), None);
        assert_eq!(parent("/{org}/users/{id}"), None);
        assert_eq!(parent("/users"), None);
        assert_eq!(parent("/"), None);
    }

    #[test]
    fn fresh_parameter_names() {
        assert_eq!(fresh_param(&[param("uid")]), "id");
        assert_eq!(fresh_param(&[param("id"), param("id2")]), "id3");
    }

    #[test]
    fn resource_names_are_literal() {
        assert_eq!(
            literal("a/{b}/:c", "x").unwrap(),
            vec![lit("a"), lit("{b}"), lit(":c")]
        );
        assert_eq!(
            literal("a%41/b%20c/100%/%25", "x").unwrap(),
            vec![lit("aA"), lit("b c"), lit("100%"), lit("%")]
        );
        for (name, reason) in [
            (
                "..",
                "it holds a dot segment (`.` or `..`, also percent-encoded)",
            ),
            (
                "a/%2e",
                "it holds a dot segment (`.` or `..`, also percent-encoded)",
            ),
            ("a%2Fb", "it holds an encoded slash (`%2F`)"),
            ("%ff", "it is not valid UTF-8 once percent-decoded"),
        ] {
            assert_eq!(
                literal(name, "/x"),
                Err(ConfigError::InvalidTemplate {
                    template: "/x".to_owned(),
                    reason: format!("resource name `{name}` cannot be used as a path: {reason}"),
                })
            );
        }
    }
}
