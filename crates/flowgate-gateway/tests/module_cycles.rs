//! The modules of the gateway and of the transport import each other downwards only: no
//! module reaches, through `crate::` or `super::` paths, a module that reaches it back
//! (docs/architecture.md, "Imports"). A module is a file; a folder's `mod.rs` is the folder.
//! Test modules and comments are left out: what counts is what the code uses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src`, by its module path (`a::b`; the crate root is "").
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

/// The code of a file without its comments and its `#[cfg(test)] mod tests`.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths `crate::…` and `super::…` that `code` names, as segments.
fn paths(code: &str) -> Vec<(bool, Vec<String>)> {
    let mut out = Vec::new();
    for (head, is_crate) in [("crate::", true), ("super::", false)] {
        let mut rest = code;
        while let Some(at) = rest.find(head) {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + head.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let mut segs = Vec::new();
            let mut s = rest;
            loop {
                let end = s
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(s.len());
                if end == 0 {
                    break;
                }
                segs.push(s[..end].to_string());
                match s[end..].strip_prefix("::") {
                    Some(next) => s = next,
                    None => break,
                }
            }
            out.push((is_crate, segs));
        }
    }
    out
}

/// Module → the modules it imports.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(src);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, path) in &mods {
        let here: Vec<String> = if name.is_empty() {
            Vec::new()
        } else {
            name.split("::").map(String::from).collect()
        };
        let set = edges.entry(name.clone()).or_default();
        for (is_crate, segs) in paths(&code(path)) {
            let mut full = if is_crate {
                Vec::new()
            } else {
                here[..here.len().saturating_sub(1)].to_vec()
            };
            full.extend(segs);
            // The longest prefix that is a module file.
            let target = (1..=full.len())
                .rev()
                .map(|n| full[..n].join("::"))
                .find(|k| mods.contains_key(k));
            if let Some(t) = target
                && t != *name
            {
                set.insert(t);
            }
        }
    }
    edges
}

/// The sets of modules that reach each other (strongly connected, more than one).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for n in edges.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let all: BTreeMap<&String, BTreeSet<String>> = edges.keys().map(|m| (m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for m in edges.keys() {
        if done.contains(m) {
            continue;
        }
        let mut group: Vec<String> = all[m]
            .iter()
            .filter(|n| *n != m && all.get(n).is_some_and(|r| r.contains(m)))
            .cloned()
            .chain(std::iter::once(m.clone()))
            .collect();
        group.sort();
        if group.len() > 1 {
            done.extend(group.iter().cloned());
            out.push(group);
        }
    }
    out
}

fn check(krate: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src");
    let edges = graph(&src);
    assert!(
        edges.len() > 5,
        "{krate}: found only {} modules",
        edges.len()
    );
    let found = cycles(&edges);
    assert!(
        found.is_empty(),
        "{krate} has module import cycles: {found:?}"
    );
}

#[test]
fn the_gateways_modules_import_downwards_only() {
    check("flowgate-gateway");
}

#[test]
fn the_transports_modules_import_downwards_only() {
    check("flowgate-http");
}

#[test]
fn a_cycle_is_found() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |a: &str, b: &str| {
        edges.entry(a.into()).or_default().insert(b.into());
        edges.entry(b.into()).or_default();
    };
    add("body", "error");
    add("error", "admission");
    add("admission", "body");
    add("gateway", "body");
    assert_eq!(cycles(&edges), [vec!["admission", "body", "error"]]);
    assert_eq!(
        paths("use crate::queues::overload::Overload; x(super::reply::ok)"),
        [
            (
                true,
                vec!["queues".into(), "overload".into(), "Overload".into()]
            ),
            (false, vec!["reply".into(), "ok".into()]),
        ]
    );
}
