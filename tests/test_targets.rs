//! A test target with `harness = false` (the libtest-mimic suites, `tests/harness`) runs only the
//! trials its `main` lists: a `#[test]` or `#[tokio::test]` function in it is compiled out
//! without a word and never runs. This test finds any such function in the workspace.

use std::path::{Path, PathBuf};

/// The `[[test]]` targets of the manifest at `dir` that have `harness = false`: their files.
fn harnessless_targets(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let manifest: toml::Table = text.parse().unwrap();
    let Some(tests) = manifest.get("test").and_then(|t| t.as_array()) else {
        return Vec::new();
    };
    tests
        .iter()
        .filter(|t| t.get("harness").and_then(|h| h.as_bool()) == Some(false))
        .map(|t| match t.get("path").and_then(|p| p.as_str()) {
            Some(path) => dir.join(path),
            None => {
                let name = t["name"].as_str().unwrap();
                let single = dir.join(format!("tests/{name}.rs"));
                if single.exists() {
                    single
                } else {
                    dir.join(format!("tests/{name}/main.rs"))
                }
            }
        })
        .collect()
}

/// The target's own file, and every `.rs` file beside a `main.rs` (a suite's modules).
fn sources(target: &Path) -> Vec<PathBuf> {
    if target.file_name().is_some_and(|n| n != "main.rs") {
        return vec![target.to_owned()];
    }
    let mut files = Vec::new();
    let mut dirs = vec![target.parent().unwrap().to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("node_modules") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn no_libtest_mimic_suite_holds_a_test_function_it_never_runs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut manifests = vec![root.clone()];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        manifests.push(entry.unwrap().path());
    }
    let mut targets = 0;
    let mut dropped = Vec::new();
    for target in manifests.iter().flat_map(|dir| harnessless_targets(dir)) {
        assert!(target.is_file(), "{} does not exist", target.display());
        targets += 1;
        for file in sources(&target) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim_start();
                if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
                    dropped.push(format!("{}:{}: {line}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        targets >= 10,
        "only {targets} harness = false targets found"
    );
    assert!(
        dropped.is_empty(),
        "these tests never run (their target has harness = false): list them as trials in its \
         main instead:\n{}",
        dropped.join("\n")
    );
}
