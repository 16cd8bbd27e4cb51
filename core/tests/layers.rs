//! The crate's layering, checked on its sources: every module of `src/` belongs to one layer, a
//! module imports only from its own layer or the layers below, and no set of modules imports
//! itself round (no cycle, within a layer either). Test modules (`#[cfg(test)] mod tests`) are
//! not counted: they may use anything.
//!
//! The Workers' own modules (`src/`, `durable/src/`) are checked for cycles too.
//!
//! Layers, bottom up (ARCHITECTURE.md, "Code map"):
//! 1. primitives: time, names, paths, header blocks, encodings, syntax;
//! 2. policy: each domain's policy type with its own validation, and `config` composing them;
//! 3. state: counters, holds, revocations, the verified caller and the token cache;
//! 4. errors: the one error type and its mapping to responses;
//! 5. decisions: authentication, the request gate, forwarding, the pipeline's stages.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::arithmetic_side_effects
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const LAYERS: [(&str, &[&str]); 5] = [
    (
        "primitives",
        &[
            "encoding",
            "header_block",
            "header_edit",
            "ip",
            "log",
            "method",
            "names",
            "path",
            "protocol",
            "shape",
            "time",
            "url",
            "validate",
            "window",
        ],
    ),
    (
        "policy",
        &[
            "config", "cors", "env", "issuer", "jwk", "jwks", "route", "tier",
        ],
    ),
    (
        "state",
        &[
            "client",
            "counter",
            "counter_object",
            "holds",
            "identity",
            "limit",
            "refusals",
            "revocation",
            "token_cache",
        ],
    ),
    ("errors", &["error"]),
    (
        "decisions",
        &[
            "admin", "api_key", "auth", "forward", "gate", "health", "mtls", "pipeline", "request",
            "signing",
        ],
    ),
];

/// The module's source without its test module.
fn non_test_source(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests")
        .map_or(text, |at| &text[..at])
}

/// The crate modules `source` refers to: `crate::<name>` paths and the top-level names of
/// `crate::{...}` groups, outside comments.
fn imports(source: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut top = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    _ if depth == 0 => top.push(c),
                    _ => {}
                }
            }
            found.extend(
                top.split(',')
                    .filter_map(|item| item.trim().split("::").next())
                    .map(str::to_owned),
            );
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found.retain(|m| modules.contains(m));
    found
}

fn graph(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    // Modules compiled for tests only (`#[cfg(test)] mod x;` in lib.rs) are not the crate's.
    let lib = std::fs::read_to_string(dir.join("lib.rs")).unwrap_or_default();
    let test_only: BTreeSet<String> = lib
        .split("#[cfg(test)]")
        .skip(1)
        .filter_map(|after| after.trim_start().strip_prefix("mod "))
        .filter_map(|rest| rest.split(';').next())
        .map(|name| name.trim().to_owned())
        .collect();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|m| m != "lib" && !test_only.contains(m))
        .collect();
    files
        .iter()
        .filter_map(|p| {
            let name = p.file_stem()?.to_string_lossy().into_owned();
            modules.contains(&name).then_some(())?;
            let text = std::fs::read_to_string(p).unwrap();
            let mut deps = imports(non_test_source(&text), &modules);
            deps.remove(&name);
            Some((name, deps))
        })
        .collect()
}

/// A cycle of the graph, as the path round it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
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
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

fn src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn core_modules_import_each_other_without_a_cycle() {
    let graph = graph(&src());
    assert!(graph.len() > 20, "too few modules read: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle among core modules: {}", cycle.join(" -> "));
    }
}

#[test]
fn every_module_imports_only_its_own_layer_or_below() {
    let graph = graph(&src());
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, modules))| modules.iter().map(move |m| (*m, i)))
        .collect();
    let mut wrong = Vec::new();
    for (module, deps) in &graph {
        let Some(&own) = layer_of.get(module.as_str()) else {
            wrong.push(format!("{module}: in no layer (add it to LAYERS)"));
            continue;
        };
        for dep in deps {
            let theirs = layer_of.get(dep.as_str()).copied().unwrap_or(usize::MAX);
            if theirs > own {
                wrong.push(format!(
                    "{module} ({}) imports {dep} ({})",
                    LAYERS[own].0,
                    LAYERS.get(theirs).map_or("no layer", |l| l.0)
                ));
            }
        }
    }
    for (name, modules) in LAYERS {
        for m in modules {
            if !graph.contains_key(*m) {
                wrong.push(format!("{m} is listed in {name} but is not a module"));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_imports_and_cycles() {
    let modules: BTreeSet<String> = ["a", "b", "c"].map(str::to_owned).into();
    let seen = imports(
        "use crate::a::X;\n// crate::c in a comment\nuse crate::{b::{Y, Z}, a};\nfn f() { crate::a::g(); }",
        &modules,
    );
    assert_eq!(seen, ["a", "b"].map(str::to_owned).into());
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_owned()].into());
    g.insert("b".into(), ["c".to_owned()].into());
    g.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&g), None);
    g.insert("c".into(), ["a".to_owned()].into());
    assert_eq!(
        find_cycle(&g),
        Some(["a", "b", "c", "a"].map(str::to_owned).to_vec())
    );
}

#[test]
fn the_workers_modules_import_each_other_without_a_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["src", "durable/src"] {
        let graph = graph(&root.join(dir));
        assert!(!graph.is_empty(), "no modules read in {dir}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("import cycle among {dir} modules: {}", cycle.join(" -> "));
        }
    }
}
