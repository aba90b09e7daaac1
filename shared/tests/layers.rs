//! The layers of `shared/src` point down only, and no two parts import each
//! other. Every module belongs to one part of the table below; a module that
//! imports (`crate::…` or `super::…`, in code, not comments or test modules)
//! a part of a higher layer, or closes a circle between parts, fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Parts of the crate and their layers, lowest first. A module belongs to the
/// longest part that prefixes its path.
const PARTS: &[(&str, u8)] = &[
    // 0: the domain.
    ("domain", 0),
    // 1: what is read once at cold start, and the ports the use cases ask for.
    ("config", 1),
    ("telemetry", 1),
    ("metrics", 1),
    ("tls", 1),
    ("store", 1),
    ("llm", 1),
    // 2: use cases.
    ("auth", 2),
    ("chat", 2),
    ("health", 2),
    ("sessions", 2),
    ("usage", 2),
    // 3: adapters.
    ("store::dynamo", 3),
    ("llm::backends", 3),
    ("llm::ollama", 3),
    ("llm::openai", 3),
    ("llm::ndjson", 3),
    ("llm::wire", 3),
    // 4: HTTP and the composition root.
    ("http", 4),
    ("app", 4),
    ("testing", 4),
];

fn part_of(module: &[String]) -> Option<(&'static str, u8)> {
    PARTS
        .iter()
        .filter(|(part, _)| {
            let segments: Vec<&str> = part.split("::").collect();
            segments.len() <= module.len() && segments.iter().zip(module).all(|(a, b)| a == b)
        })
        .max_by_key(|(part, _)| part.len())
        .copied()
}

/// `src/chat/begin.rs` is `chat::begin`; `src/chat/mod.rs` is `chat`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut segments: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if segments.last().is_some_and(|s| s == "mod") {
        segments.pop();
    }
    segments
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its test module.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if !trimmed.starts_with("//") {
            code.push_str(line);
            code.push('\n');
        }
    }
    code
}

/// Every path (as segments) a `use` tree starting at `at` names: `a::b`,
/// `a::{b, c::d}`, `{a, b}`.
fn use_tree(chars: &[char], at: &mut usize, base: Vec<String>, out: &mut Vec<Vec<String>>) {
    let skip_space = |at: &mut usize| {
        while *at < chars.len() && chars[*at].is_whitespace() {
            *at += 1;
        }
    };
    skip_space(at);
    if *at < chars.len() && chars[*at] == '{' {
        *at += 1;
        loop {
            skip_space(at);
            if *at >= chars.len() || chars[*at] == '}' {
                *at += 1;
                return;
            }
            use_tree(chars, at, base.clone(), out);
            skip_space(at);
            if *at < chars.len() && chars[*at] == ',' {
                *at += 1;
            }
        }
    }
    let start = *at;
    while *at < chars.len() && (chars[*at].is_alphanumeric() || chars[*at] == '_') {
        *at += 1;
    }
    let ident: String = chars[start..*at].iter().collect();
    if ident.is_empty() {
        out.push(base);
        return;
    }
    let mut path = base;
    path.push(ident);
    if chars.get(*at) == Some(&':') && chars.get(*at + 1) == Some(&':') {
        *at += 2;
        use_tree(chars, at, path, out);
    } else {
        out.push(path);
    }
}

/// The crate paths `code` of module `module` refers to, `super::` resolved.
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let text: String = chars.iter().collect();
    let mut found = Vec::new();
    for (start, _) in text.match_indices("crate::").chain(text.match_indices("super::")) {
        let preceded_by_ident = start > 0 && {
            let c = text[..start].chars().last().unwrap();
            c.is_alphanumeric() || c == '_' || c == ':'
        };
        if preceded_by_ident {
            continue;
        }
        let mut base: Vec<String> = Vec::new();
        let mut at = text[..start].chars().count();
        if text[start..].starts_with("crate::") {
            at += "crate::".len();
        } else {
            // `super` of module `a::b` is `a` (whether it lives in a/b.rs or a/b/mod.rs).
            let mut up = module.to_vec();
            let mut rest = &text[start..];
            while let Some(r) = rest.strip_prefix("super::") {
                up.pop();
                rest = r;
                at += "super::".len();
            }
            base = up;
        }
        let mut paths = Vec::new();
        use_tree(&chars, &mut at, base, &mut paths);
        found.extend(paths);
    }
    found
}

#[test]
fn layers_point_down_and_parts_form_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();

    let mut problems = Vec::new();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for file in &files {
        let module = module_path(&src, file);
        if module == ["lib"] || module.last().is_some_and(|m| m == "tests") {
            continue;
        }
        let Some((part, layer)) = part_of(&module) else {
            problems.push(format!("{}: belongs to no part of the layer table", module.join("::")));
            continue;
        };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for target in references(&module, &code) {
            let Some((to_part, to_layer)) = part_of(&target) else { continue };
            if to_layer > layer {
                problems.push(format!(
                    "{} (layer {layer}) imports {} (layer {to_layer})",
                    module.join("::"),
                    target.join("::")
                ));
            }
            if to_part != part {
                edges.entry(part).or_default().insert(to_part);
            }
        }
    }

    // A circle between parts: a path from a part back to itself.
    for &(start, _) in PARTS {
        let mut stack: Vec<Vec<&str>> = vec![vec![start]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = *path.last().unwrap();
            for &next in edges.get(last).into_iter().flatten() {
                if next == start {
                    problems.push(format!("circle: {} -> {start}", path.join(" -> ")));
                } else if seen.insert(next) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push(longer);
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "layering broken:\n{}", problems.join("\n"));
    assert!(edges.len() > 5, "the scan found the crate's imports: {edges:?}");
}

#[test]
fn the_scan_reads_nested_use_trees_and_super() {
    let code = "use crate::{domain::{Message, limits::X}, store::dynamo::Foo};\nuse super::begin;\nfn f() { crate::llm::ChatModel::ping(); }";
    let module = vec!["chat".to_owned(), "generate".to_owned()];
    let found: Vec<String> = references(&module, code).iter().map(|p| p.join("::")).collect();
    for expected in ["domain::Message", "domain::limits::X", "store::dynamo::Foo", "chat::begin", "llm::ChatModel::ping"] {
        assert!(found.contains(&expected.to_owned()), "{expected} not in {found:?}");
    }
    assert_eq!(part_of(&["store".into(), "dynamo".into(), "schema".into()]), Some(("store::dynamo", 3)));
    assert_eq!(part_of(&["store".into(), "cursor".into()]), Some(("store", 1)));
}
