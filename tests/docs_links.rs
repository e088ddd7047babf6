//! Keeps the documentation's links honest: every relative link and `#anchor` in `README.md` and
//! `docs/*.md` must name a file or folder of the repository and, for a markdown file, one of its
//! headings (GitHub's anchor rules) or an explicit `<a id="…">`.
//!
//! Run with: `cargo test --test docs_links`

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).expect("docs/") {
        let path = entry.expect("a docs/ entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs.sort();
    docs
}

/// The lines of a markdown file outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push(line);
        }
    }
    out
}

/// A line without its `code spans`, so a `[x](y)` shown as code is not a link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    for (i, part) in line.split('`').enumerate() {
        if i % 2 == 0 {
            out.push_str(part);
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case; letters, digits, `-`, `_` and spaces kept, spaces
/// become `-`; everything else dropped. Repeats get `-1`, `-2`, ….
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose_lines(text) {
        if let Some(rest) = line.find("id=\"").map(|i| &line[i + 4..]) {
            if let Some(end) = rest.find('"') {
                seen.insert(rest[..end].to_owned());
            }
        }
        let heading = line.trim_start_matches('#');
        if heading.len() == line.len() || !heading.starts_with(' ') {
            continue;
        }
        let slug: String = heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while seen.contains(&candidate) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
        seen.insert(candidate);
    }
    seen
}

/// Every `](target)` and `[label]: target` link target in the prose of a markdown file.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(text) {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                let target = rest[..end].split_whitespace().next().unwrap_or("");
                out.push(target.to_owned());
                rest = &rest[end..];
            }
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            if let Some((_, target)) = trimmed.split_once("]: ") {
                out.push(target.trim().to_owned());
            }
        }
    }
    out
}

fn check(doc: &Path, target: &str) -> Result<(), String> {
    if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
        return Ok(());
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let file = if path.is_empty() {
        doc.to_path_buf()
    } else {
        doc.parent().expect("a document's folder").join(path)
    };
    if !file.exists() {
        return Err(format!("{target}: {} does not exist", file.display()));
    }
    let Some(anchor) = anchor else { return Ok(()) };
    if file.extension().is_none_or(|e| e != "md") {
        return Ok(());
    }
    let text = std::fs::read_to_string(&file).expect("a linked markdown file");
    if anchors(&text).contains(anchor) {
        Ok(())
    } else {
        Err(format!(
            "{target}: no heading in {} has the anchor #{anchor}",
            file.display()
        ))
    }
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("a document");
        for target in link_targets(&text) {
            checked += 1;
            if let Err(e) = check(&doc, &target) {
                broken.push(format!(
                    "{}: {e}",
                    doc.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: is the parser broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_anchor_rules_follow_github() {
    let doc = "# Top\n## `POST /v1/publish` — publish an external agent's run\n## Top\n\
               ```sh\n# not a heading\n```\n<a id=\"custom\"></a>\n";
    let got = anchors(doc);
    for want in [
        "top",
        "post-v1publish--publish-an-external-agents-run",
        "top-1",
        "custom",
    ] {
        assert!(got.contains(want), "{want} not in {got:?}");
    }
    assert!(!got.contains("not-a-heading"));
    assert_eq!(
        link_targets("see [a](x.md#y) and `[b](z.md)`\n```\n[c](w.md)\n```\n[d]: v.md"),
        ["x.md#y", "v.md"]
    );
}
