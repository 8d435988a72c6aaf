//! The crate's layout: no import circle between its top-level modules.
//!
//! A file of top-level module `a` that names `crate::b` is an edge `a -> b` (unit-test modules,
//! `#[cfg(test)] mod tests` at the end of a file, excepted). The graph must have no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level module a file of `src/` belongs to (`src/cache/users.rs` -> `cache`), or
/// `None` for the crate root.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(module) => Some(module.to_owned()),
        None => Some(first.to_owned()),
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The modules named as `crate::name` in the code of `text` (comments and doc links are not
/// imports), up to its unit tests.
fn named_modules(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let code: String = code
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut named = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // A module name is lower case; `crate::Allowed` names a root re-export.
        if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
            named.insert(name);
        }
    }
    named
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = fs::read_to_string(&file).expect("a source file is readable");
        let edges = graph.entry(module.clone()).or_default();
        for named in named_modules(&text) {
            if named != module {
                edges.insert(named);
            }
        }
    }
    graph
}

/// A cycle of `graph`, if it has one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_import_each_other_without_a_circle() {
    let graph = graph();
    assert!(
        graph.len() >= 10,
        "the crate's modules were found: {graph:?}"
    );
    assert!(
        graph["service"].contains("check"),
        "the edges are read from the sources: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import circle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut graph = Graph::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&graph), None);
    graph.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn unit_tests_doc_links_and_root_names_are_not_edges() {
    let text = "use crate::catalog::Plan;\nuse crate::Allowed;\n/// See [`X`](crate::routes::X).\n#[cfg(test)]\nmod tests {\n    use crate::layer::X;\n}\n";
    let named = named_modules(text);
    assert_eq!(named, BTreeSet::from(["catalog".to_owned()]));
}
