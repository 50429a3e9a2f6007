//! Tidy test: the top-level modules of adms-server depend on each other without cycles (the
//! layers ARCHITECTURE.md draws), read from the `crate::` paths in the sources.
//!
//! An edge is any `crate::<module>` outside a comment, in a `use` or inline. There is no cycle
//! left ([`KNOWN_CYCLE_EDGES`] is empty and only ever shrank): the test fails on any cycle, and
//! on a listed edge that no longer closes one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `(from, to)` edges allowed to lie on a cycle: none.
const KNOWN_CYCLE_EDGES: &[(&str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn ident(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

/// The top-level modules `line` names after `crate::` (also inside `crate::{a, b::c}`).
fn targets(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            found.extend(inner.split(',').map(|part| ident(part.trim()).to_owned()));
        } else {
            found.push(ident(rest).to_owned());
        }
    }
    found
}

/// Module → (module it names → files naming it).
fn module_graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let module_of = |path: &Path| {
        let relative = path.strip_prefix(&src).expect("under src");
        let first = relative.components().next().expect("a component").as_os_str().to_string_lossy();
        first.trim_end_matches(".rs").to_owned()
    };
    // lib.rs is the crate root (it only declares and re-exports); main.rs is the binary, a
    // crate of its own that reaches the library as `adms_server::`.
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).filter(|m| m != "lib" && m != "main").collect();
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        if !modules.contains(&from) {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read source");
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default();
            for to in targets(code) {
                if to != from && modules.contains(&to) {
                    let name = file.strip_prefix(&src).expect("under src").display().to_string();
                    graph.entry(from.clone()).or_default().entry(to).or_default().insert(name);
                }
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(node) = stack.pop() {
        if node == to {
            return true;
        }
        if seen.insert(node.clone()) {
            stack.extend(graph.get(&node).into_iter().flat_map(|edges| edges.keys().cloned()));
        }
    }
    false
}

#[test]
fn top_level_modules_form_no_new_cycle() {
    let graph = module_graph();
    let mut on_cycles = BTreeMap::new();
    for (from, edges) in &graph {
        for (to, files) in edges {
            if reaches(&graph, to, from) {
                on_cycles.insert((from.as_str(), to.as_str()), files);
            }
        }
    }
    let known: BTreeSet<(&str, &str)> = KNOWN_CYCLE_EDGES.iter().copied().collect();
    let new: Vec<String> = on_cycles
        .iter()
        .filter(|(edge, _)| !known.contains(*edge))
        .map(|((from, to), files)| format!("{from} -> {to} (in {files:?})"))
        .collect();
    let gone: Vec<&(&str, &str)> = known.iter().filter(|edge| !on_cycles.contains_key(*edge)).collect();
    assert!(new.is_empty(), "new edges on a module cycle in adms-server: {new:#?}");
    assert!(gone.is_empty(), "these edges no longer close a cycle; remove them from KNOWN_CYCLE_EDGES: {gone:?}");
}

#[test]
fn the_parser_reads_grouped_and_inline_paths() {
    assert_eq!(targets("use crate::{state::AppState, zones};"), ["state", "zones"]);
    assert_eq!(targets("let x = crate::device::reply(a, crate::limits::X);"), ["device", "limits"]);
}
