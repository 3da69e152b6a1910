//! The layers of ARCHITECTURE.md, read from the code: every `crate::` path of each module of
//! src/ (its `use` lines and inline paths) names the top-level module it depends on. The test
//! fails on an import circle between top-level modules and on an import that breaks a rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its comments and without its `#[cfg(test)]` module (tests may
/// build what they check from any layer).
fn code(text: &str) -> String {
    let body = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    body.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Module path of a file under src/ (`engine/steady.rs` -> ["engine", "steady"]).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
        parts.pop();
    }
    parts
}

/// The module paths (two levels: `engine::steady`, `job::cavity`, or `analyze`) named by
/// `crate::a::b` in `code`, including the items of braces (`use crate::{a, b::c}`,
/// `use crate::job::{cavity::Params, Peak}`).
fn crate_paths(code: &str) -> BTreeSet<Vec<String>> {
    let is_ident = |x: &str| !x.is_empty() && x.chars().all(|c| c.is_alphanumeric() || c == '_');
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let mut prefix: Vec<String> = vec![];
        let mut s = rest;
        loop {
            let ident: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if ident.is_empty() {
                break;
            }
            s = &s[ident.len()..];
            prefix.push(ident);
            match s.strip_prefix("::") {
                Some(t) => s = t,
                None => break,
            }
        }
        if let Some(inner) = s.strip_prefix('{') {
            let inner = &inner[..inner.find('}').unwrap_or(inner.len())];
            for item in inner.split(',') {
                let mut p = prefix.clone();
                p.extend(item.split("::").map(|x| x.trim().to_string()).take_while(|x| is_ident(x)));
                p.truncate(2);
                if !p.is_empty() {
                    out.insert(p);
                }
            }
        } else if !prefix.is_empty() {
            prefix.truncate(2);
            out.insert(prefix);
        }
    }
    out
}

/// module path -> the module paths it names.
fn imports() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    files
        .iter()
        .filter(|f| !f.starts_with(src.join("app")) && !f.ends_with("main.rs"))
        .map(|f| (module_path(&src, f), crate_paths(&code(&std::fs::read_to_string(f).unwrap()))))
        .collect()
}

fn top(p: &[String]) -> String {
    p.first().cloned().unwrap_or_default()
}

#[test]
fn no_import_circle_between_top_level_modules() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, deps) in imports() {
        let from = top(&m);
        if from.is_empty() {
            continue; // lib.rs
        }
        let entry = graph.entry(from.clone()).or_default();
        for d in deps {
            let to = top(&d);
            if to != from {
                entry.insert(to);
            }
        }
    }
    // Depth-first search for a back edge; report the circle it closes.
    fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, stack: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut circle = stack[i..].to_vec();
            circle.push(n.to_string());
            return Some(circle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, &graph, &mut vec![], &mut done) {
            panic!("import circle: {}", c.join(" -> "));
        }
    }
    assert!(graph.len() >= 15, "the graph was read: {graph:?}");
}

/// (module prefix, modules it must not name, the rule of ARCHITECTURE.md)
const RULES: &[(&str, &[&str], &str)] = &[
    ("output", &["run", "study", "analyze", "validate", "engine", "verify"], "output/ is a leaf that imports no command"),
    ("engine", &["run", "study", "verify", "output", "analyze", "validate"], "engine/ never imports run or study"),
    ("gpu", &["twin", "engine", "run", "study", "reference"], "gpu/ and twin/ meet only in job/"),
    ("twin", &["gpu", "engine", "run", "study", "reference"], "gpu/ and twin/ meet only in job/"),
    ("job", &["gpu", "twin", "engine", "run", "study", "output", "config"], "job/ holds layouts and imports no engine"),
    (
        "reference",
        &["gpu", "twin", "engine", "run", "study", "job::two_qubit", "job::cavity", "job::dicke", "job::pauli"],
        "the f64 oracle imports no kernel code",
    ),
    ("model", &["config", "engine", "run", "study", "output", "gpu", "twin"], "models sit below the configs and the engines"),
    ("measures", &["config", "engine", "run", "study", "output", "gpu", "twin"], "measures sit below the engines"),
    ("config", &["engine", "run", "study", "output", "gpu", "twin", "verify"], "config builds plans and runs nothing"),
    ("verify", &["run", "study", "output"], "verify serves run and study"),
    ("run", &["study", "output", "analyze", "validate"], "the in-memory run writes no files"),
];

fn names(dep: &[String], forbidden: &str) -> bool {
    let f: Vec<&str> = forbidden.split("::").collect();
    dep.len() >= f.len() && dep.iter().zip(&f).all(|(a, b)| a == b)
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let mut broken = vec![];
    for (m, deps) in imports() {
        for (prefix, forbidden, rule) in RULES {
            if top(&m) != *prefix {
                continue;
            }
            for d in &deps {
                if let Some(f) = forbidden.iter().find(|f| names(d, f)) {
                    broken.push(format!("{} imports crate::{} ({f}): {rule}", m.join("::"), d.join("::")));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_library_does_not_know_the_binary() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    assert!(!lib.contains("mod app"), "app/ belongs to the binary (mod app; in main.rs)");
    let main = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/main.rs")).unwrap();
    assert!(main.contains("mod app;"));
}

#[test]
fn the_reader_sees_imports_of_every_shape() {
    let p = crate_paths("use crate::job::{Peak, Schedule};\nuse crate::{config::Plan, error};\nlet x = crate::engine::steady::solve();");
    assert!(p.contains(&vec!["job".to_string(), "Peak".to_string()]));
    assert!(p.contains(&vec!["config".to_string(), "Plan".to_string()]));
    assert!(p.contains(&vec!["error".to_string()]));
    assert!(p.contains(&vec!["engine".to_string(), "steady".to_string()]));
}

#[test]
fn no_source_file_is_over_700_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 700).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split along their seams: {long:?}");
}
