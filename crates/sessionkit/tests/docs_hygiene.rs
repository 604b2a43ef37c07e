//! What the documentation promises a newcomer, checked against the tree: no references to internal tickets in the
//! docs, the license files Cargo.toml names, a changelog whose Python API claims match the code, a README that says
//! what the first build costs and how to skip it, and every Redis key the store writes explained in docs/redis.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

/// Files under `dir` (recursively) whose name ends with `suffix`, sorted.
fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return found };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// The workspace's crate directories (`crates/*`).
fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        fs::read_dir(root().join("crates")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs
}

/// The prose a reader sees: the Markdown documents whole, and the doc comments (`//!`, `///`) of the crates'
/// sources and examples, each with the line it starts on.
fn documents() -> Vec<(String, Vec<(usize, String)>)> {
    let root = root();
    let mut markdown = vec![
        root.join("README.md"),
        root.join("CHANGELOG.md"),
        root.join("ARCHITECTURE.md"),
        root.join("fuzz/README.md"),
    ];
    markdown.extend(files_under(&root.join("docs"), ".md"));
    let mut rust = Vec::new();
    for dir in crate_dirs() {
        markdown.extend(files_under(&dir, "README.md").into_iter().filter(|p| !p.starts_with(dir.join("target"))));
        rust.extend(files_under(&dir.join("src"), ".rs"));
        rust.extend(files_under(&dir.join("examples"), ".rs"));
    }
    let mut documents = Vec::new();
    for path in markdown.into_iter().filter(|p| p.exists()) {
        let lines = read(&path).lines().enumerate().map(|(n, line)| (n + 1, line.to_owned())).collect();
        documents.push((relative(&path), lines));
    }
    for path in rust {
        let lines = read(&path)
            .lines()
            .enumerate()
            .filter_map(|(n, line)| {
                let trimmed = line.trim_start();
                let doc = trimmed.strip_prefix("//!").or_else(|| trimmed.strip_prefix("///"))?;
                Some((n + 1, doc.to_owned()))
            })
            .collect();
        documents.push((relative(&path), lines));
    }
    documents
}

/// Words before "issue" that name a ticket rather than describe a problem ("the hardening issue", "a later issue").
const TICKET_WORDS: [&str; 10] =
    ["see", "later", "next", "previous", "earlier", "future", "follow-up", "separate", "upcoming", "tracking"];
/// Words that make "the … issue" ordinary prose ("the same issue").
const PROSE_WORDS: [&str; 8] = ["same", "known", "main", "real", "underlying", "only", "other", "general"];

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The word ending right before byte `end` of `text` (skipping whitespace), and where it starts.
fn word_before(text: &str, end: usize) -> (&str, usize) {
    let trimmed = text[..end].trim_end();
    let start = trimmed.rfind(|c: char| !(is_word_char(c) || c == '-')).map_or(0, |at| at + 1);
    (&trimmed[start..], start)
}

/// References to internal tickets in `text` (already lowercase): "issue 4", "issue #12", "(issue …", "see issue",
/// "the hardening issue", "ticket 7", "PR #3", "(#12)". Returns where each starts and a snippet around it.
fn ticket_references(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let snippet = |at: usize| -> String {
        let start = text[..at].char_indices().rev().nth(24).map_or(0, |(i, _)| i);
        let end = text[at..].char_indices().nth(30).map_or(text.len(), |(i, _)| at + i);
        text[start..end].replace('\n', " ")
    };
    for word in ["issue", "ticket"] {
        for (at, _) in text.match_indices(word) {
            if text[..at].chars().next_back().is_some_and(is_word_char) {
                continue;
            }
            let mut end = at + word.len();
            let plural = text[end..].starts_with('s');
            if plural {
                end += 1;
            }
            if text[end..].chars().next().is_some_and(is_word_char) {
                continue; // issue_key, issued, tickets_…
            }
            let after = text[end..].trim_start();
            let after = after.strip_prefix('#').unwrap_or(after).trim_start();
            let numbered = after.chars().next().is_some_and(|c| c.is_ascii_digit());
            let parenthesised = text[..at].ends_with('(');
            let (previous, previous_at) = word_before(text, at);
            let (before_previous, _) = word_before(text, previous_at);
            let named = TICKET_WORDS.contains(&previous)
                || (!plural && before_previous == "the" && !previous.is_empty() && !PROSE_WORDS.contains(&previous));
            if numbered || parenthesised || named {
                found.push((at, snippet(at)));
            }
        }
    }
    for (at, _) in text.match_indices('#') {
        let before = text[..at].chars().next_back();
        let digits: String = text[at + 1..].chars().take_while(char::is_ascii_digit).collect();
        let after = text[at + 1 + digits.len()..].chars().next();
        let pull_request = word_before(text, at).0 == "pr" || text[..at].trim_end().ends_with("pull request");
        let bare = before.is_none_or(|c| c.is_whitespace() || c == '(' || c == '[');
        if !digits.is_empty() && !after.is_some_and(is_word_char) && (bare || pull_request) {
            found.push((at, snippet(at)));
        }
    }
    found.sort();
    found
}

#[test]
fn the_ticket_rule_catches_references_and_spares_prose() {
    for bad in [
        "for the file store (issue 4)",
        "use `sessionkit migrate`, issue 6",
        "see issue #12 for details",
        "Issue 7 adds it",
        "as the hardening issue asked",
        "done in a later issue",
        "see issue",
        "tracked in ticket 9",
        "fixed (#12)",
        "closes PR #31",
    ] {
        assert!(!ticket_references(&bad.to_lowercase()).is_empty(), "not caught: {bad:?}");
    }
    for good in [
        "the store's `issue_key` hands back a new key",
        "a store whose key is the data issues a new one",
        "the same issue arises in Django",
        "a known issue with redis-rs#1438 is worked around",
        "`#[derive(Debug)]` and `#![allow]`",
        "Django issued the cookie",
        "round 1 (before the fix below)",
    ] {
        assert!(ticket_references(&good.to_lowercase()).is_empty(), "false alarm: {good:?}");
    }
}

#[test]
fn docs_state_facts_not_ticket_numbers() {
    let mut offences = Vec::new();
    let documents = documents();
    assert!(documents.len() > 20, "the walk found too few documents: {}", documents.len());
    for (path, lines) in documents {
        // Join the lines so a reference broken over two lines is still one; map offsets back to line numbers.
        let mut text = String::new();
        let mut starts = Vec::new();
        for (number, line) in &lines {
            starts.push((text.len(), *number));
            text.push_str(&line.to_lowercase());
            text.push('\n');
        }
        for (at, found) in ticket_references(&text) {
            let line = starts.iter().rev().find(|(start, _)| *start <= at).map_or(0, |(_, n)| *n);
            offences.push(format!("{path}:{line}: …{found}…"));
        }
    }
    assert!(
        offences.is_empty(),
        "docs refer to internal tickets; say the fact itself instead:\n{}",
        offences.join("\n")
    );
}

#[test]
fn license_files_match_cargo_toml() {
    let root = root();
    let workspace = read(&root.join("Cargo.toml"));
    assert!(workspace.contains("license = \"MIT OR Apache-2.0\""), "workspace license field changed");
    let mit = read(&root.join("LICENSE-MIT"));
    assert!(mit.starts_with("MIT License"), "LICENSE-MIT is not the MIT license");
    assert!(mit.contains("Copyright (c) 2026 The sessionkit developers"));
    assert!(mit.contains("Permission is hereby granted, free of charge"));
    assert!(mit.contains("THE SOFTWARE IS PROVIDED \"AS IS\""));
    let apache = read(&root.join("LICENSE-APACHE"));
    for part in ["Apache License", "Version 2.0, January 2004", "TERMS AND CONDITIONS", "END OF TERMS AND CONDITIONS"] {
        assert!(apache.contains(part), "LICENSE-APACHE lacks {part:?}");
    }
    for dir in crate_dirs() {
        let manifest = read(&dir.join("Cargo.toml"));
        assert!(manifest.contains("license.workspace = true"), "{} does not use license.workspace", relative(&dir));
    }
}

#[test]
fn changelog_matches_the_python_api() {
    let root = root();
    let changelog = read(&root.join("CHANGELOG.md"));
    assert!(changelog.contains("## [Unreleased]"), "CHANGELOG.md has no Unreleased section");
    assert!(changelog.contains("## [0.1.0]"), "CHANGELOG.md has no 0.1.0 section");
    assert!(changelog.contains("keepachangelog.com"));
    let native = read(&root.join("crates/sessionkit-py/src/lib.rs"));
    for added in ["load_versioned", "save_changes", "create_fresh", "write_copy", "refill", "bury"] {
        let defined = native.contains(&format!("fn {added}(")) || native.contains(&format!("fn {added}<"));
        assert!(defined, "CHANGELOG says Store.{added} was added; lib.rs has none");
        assert!(changelog.contains(&format!("`{added}`")), "CHANGELOG does not name {added}");
    }
    assert!(native.contains("db_seconds: f64") && changelog.contains("`db_seconds`"));
    for removed in ["put", "aput", "asave"] {
        assert!(!native.contains(&format!("fn {removed}<")) && !native.contains(&format!("fn {removed}(")));
        assert!(changelog.contains(&format!("`Store.{removed}`")), "CHANGELOG does not list Store.{removed}");
    }
    assert!(!native.contains("index_changed") && changelog.contains("`index_changed`"));
    let exceptions = read(&root.join("crates/sessionkit-py/python/sessionkit/exceptions.py"));
    assert!(exceptions.contains("StoreContended") && changelog.contains("`sessionkit.exceptions`"));
}

#[test]
fn readme_says_what_the_first_build_costs_and_how_to_skip_it() {
    let root = root();
    let readme = read(&root.join("README.md"));
    for needed in [
        // The two main commands stay.
        "cargo run --release -p sessionkit-demo",
        "scripts/test",
        // The cost of the first build, and the shortcuts.
        "minutes",
        "cargo install --path crates/sessionkit-cli",
        "maturin build --release -m crates/sessionkit-py/Cargo.toml",
        "pip install target/wheels/",
        // The tower crate's examples.
        "crates/sessionkit-tower/examples/axum_counter.rs",
        "crates/sessionkit-tower/examples/django_shared_login.rs",
        "CHANGELOG.md",
    ] {
        assert!(readme.contains(needed), "README.md does not mention {needed:?}");
    }
    let tower_docs = read(&root.join("crates/sessionkit-tower/src/lib.rs"));
    for example in ["examples/axum_counter.rs", "examples/django_shared_login.rs"] {
        assert!(tower_docs.contains(example), "sessionkit-tower's crate docs do not mention {example}");
        assert!(root.join("crates/sessionkit-tower").join(example).exists(), "{example} is missing");
    }
}

/// The keys the Redis store builds under its prefix, as the docs write them: `format!("{}X:…", …options.prefix…)`
/// and `format!("{prefix}X…")` give `<prefix>X:` (or `<prefix>X` for a whole key name), and `format!("{index}:Y")`
/// gives the index's `:Y` companion.
fn redis_key_families() -> (Vec<String>, Vec<String>) {
    let (mut prefixed, mut companions) = (Vec::new(), Vec::new());
    let add = |list: &mut Vec<String>, item: String| {
        if !list.contains(&item) {
            list.push(item);
        }
    };
    for path in files_under(&root().join("crates/sessionkit/src/store/redis"), ".rs") {
        for line in read(&path).lines() {
            let mut openings = vec!["format!(\"{prefix}"];
            if line.contains("options.prefix") {
                openings.push("format!(\"{}");
            }
            for opening in openings {
                for (at, _) in line.match_indices(opening) {
                    let rest = &line[at + opening.len()..];
                    let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                    match rest[name.len()..].chars().next() {
                        _ if name.is_empty() => {}
                        Some(':') => add(&mut prefixed, format!("`<prefix>{name}:")),
                        Some('"') => add(&mut prefixed, format!("`<prefix>{name}`")),
                        _ => {}
                    }
                }
            }
            for (at, _) in line.match_indices("format!(\"{index}:") {
                let rest = &line[at + "format!(\"{index}:".len()..];
                add(&mut companions, format!("}}:{}`", rest.chars().take_while(|c| *c != '"').collect::<String>()));
            }
        }
    }
    (prefixed, companions)
}

#[test]
fn every_redis_key_is_in_the_keys_table() {
    let redis_md = read(&root().join("docs/redis.md"));
    let start = redis_md.find("\n## Keys\n").expect("docs/redis.md has a `## Keys` section");
    let section = &redis_md[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    assert!(section.contains("| key |") && section.contains("| type |") && section.contains("| expires |"));
    let (prefixed, companions) = redis_key_families();
    assert!(prefixed.len() >= 3 && !companions.is_empty(), "key builders not found: {prefixed:?} {companions:?}");
    for key in prefixed.iter().chain(&companions) {
        assert!(
            section.contains(key.as_str()),
            "the store writes keys like {key}…, which docs/redis.md#keys does not list"
        );
    }
    assert!(section.contains("KEY_PREFIX:VERSION:django.contrib.sessions.cache"));
    assert!(section.contains("hash tag") && section.contains("sorted set"));
}

#[test]
fn index_keys_are_explained_where_they_first_appear() {
    let mut unexplained = Vec::new();
    for (path, lines) in documents().into_iter().filter(|(path, _)| path.ends_with(".md")) {
        let text: String = lines.iter().map(|(_, line)| format!("{line}\n")).collect();
        let Some(first) = text.find("u:{") else { continue };
        // From the paragraph of the first mention, the next ~2,000 characters explain it.
        let paragraph = text[..first].rfind("\n\n").unwrap_or(0);
        let end = text[first..].char_indices().nth(2000).map_or(text.len(), |(i, _)| first + i);
        let around = &text[paragraph..end];
        if !(around.contains("hash tag") && around.contains("sorted set")) {
            unexplained.push(path);
        }
    }
    assert!(unexplained.is_empty(), "per-user index keys shown without saying what they are: {unexplained:?}");
}
