//! Keeps `docs/configuration.md` honest: its key table must list exactly the leaf keys of
//! `AgentwireConfig`, each with the env name the loader reads and the default the code has.
//!
//! Run with: `cargo test --test docs_config`

use std::collections::{BTreeMap, BTreeSet};

use agentwire_startup::AgentwireConfig;
use serde_json::Value;

const DOC: &str = include_str!("../docs/configuration.md");

/// Dotted leaf keys of a serialized config, with their values. `null` (an unset `Option`) is a
/// leaf, like any scalar.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_owned(), leaf.clone());
        }
    }
}

/// The cells of one markdown table row, trimmed. `\|` is a pipe inside a cell.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().expect("one cell").push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().expect("one cell").push(c),
        }
    }
    out.iter().map(|c| c.trim().to_owned()).collect()
}

/// The text of the first `code span` in a cell.
fn first_code(cell: &str) -> Option<&str> {
    let start = cell.find('`')? + 1;
    let len = cell[start..].find('`')?;
    Some(&cell[start..start + len])
}

/// One documented key: its row's cells by column name.
struct Row {
    key: String,
    env: String,
    default: String,
}

/// The rows of the key table: the table whose header's first cell is `key`.
fn documented_rows() -> Vec<Row> {
    let mut lines = DOC.lines().skip_while(|l| {
        let l = l.trim();
        !(l.starts_with('|') && cells(l).first().is_some_and(|c| c == "key"))
    });
    let header = cells(
        lines
            .next()
            .expect("docs/configuration.md has a table headed `| key |`"),
    );
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("the key table has a `{name}` column: {header:?}"))
    };
    let (env_col, default_col) = (col("env"), col("default"));
    lines
        .skip(1) // the |---| separator
        .take_while(|l| l.trim().starts_with('|'))
        .map(|l| {
            let c = cells(l);
            let key = first_code(&c[0])
                .unwrap_or_else(|| panic!("first cell is a `key` in backticks: {l}"))
                .to_owned();
            Row {
                key,
                env: c.get(env_col).cloned().unwrap_or_default(),
                default: c.get(default_col).cloned().unwrap_or_default(),
            }
        })
        .collect()
}

fn code_keys() -> BTreeMap<String, Value> {
    let json = serde_json::to_value(AgentwireConfig::default()).expect("the config serializes");
    let mut keys = BTreeMap::new();
    flatten("", &json, &mut keys);
    keys
}

#[test]
fn the_key_table_lists_exactly_the_config_keys() {
    let code = code_keys();
    let rows = documented_rows();
    let documented: BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(documented.len(), rows.len(), "a key is documented twice");
    let in_code: BTreeSet<&str> = code.keys().map(String::as_str).collect();
    let missing: Vec<_> = in_code.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&in_code).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/configuration.md is out of date.\n  keys in AgentwireConfig but not documented: {missing:?}\n  documented keys that AgentwireConfig does not have: {extra:?}"
    );
}

#[test]
fn every_env_name_is_the_prefixed_upper_case_path() {
    for row in documented_rows() {
        let expected = format!(
            "AGENTWIRE_{}",
            row.key.to_ascii_uppercase().replace('.', "__")
        );
        assert_eq!(
            first_code(&row.env),
            Some(expected.as_str()),
            "env name of `{}`",
            row.key
        );
    }
}

#[test]
fn every_documented_default_is_the_code_default() {
    let code = code_keys();
    for row in documented_rows() {
        let Some(value) = code.get(&row.key) else {
            continue; // reported by the_key_table_lists_exactly_the_config_keys
        };
        match value {
            Value::Null => assert!(
                row.default.starts_with("none"),
                "`{}` is unset by default; its default cell must start with `none`: {:?}",
                row.key,
                row.default
            ),
            Value::String(s) => assert_eq!(
                first_code(&row.default),
                Some(s.as_str()),
                "default of `{}`",
                row.key
            ),
            other => assert_eq!(
                first_code(&row.default),
                Some(other.to_string().as_str()),
                "default of `{}`",
                row.key
            ),
        }
    }
}
