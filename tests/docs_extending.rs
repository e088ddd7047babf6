//! Keeps `docs/extending.md` usable by someone outside this repository: its `Cargo.toml` and
//! every Rust block are written into a scratch crate of their own (path dependencies on this
//! checkout, no workspace around it) and compiled. A crate the guide forgets, or code that only
//! compiles inside the workspace, fails here. (A forgotten tokio feature would not:
//! agentwire's own crates enable `rt-multi-thread`, `macros` and `net`, and Cargo unifies
//! features.)
//!
//! The scratch crate lives under the test target directory and is checked (`cargo check`) in
//! the same target directory as the workspace, so the dependencies' metadata is reused and
//! nothing is linked. `--offline` with this workspace's `Cargo.lock`: the same versions, no
//! network.
//!
//! Run with: `cargo test --test docs_extending`

use std::path::{Path, PathBuf};
use std::process::Command;

const GUIDE: &str = include_str!("../docs/extending.md");

/// The fenced blocks whose info string starts with `lang`, in order.
fn blocks(lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in GUIDE.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (fence, current.as_mut()) {
            (Some(_), Some(_)) => out.push(current.take().unwrap()),
            (Some(info), None) if info.starts_with(lang) => current = Some(String::new()),
            (Some(_), None) => current = Some("\u{0}skip".into()),
            (None, Some(block)) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, None) => {}
        }
    }
    out.retain(|b| !b.starts_with('\u{0}'));
    out
}

/// A rustdoc block as a program: hidden `# ` lines shown, a `main` added to a snippet.
fn program(block: &str) -> String {
    let code: String = block
        .lines()
        .map(|l| {
            l.strip_prefix("# ")
                .unwrap_or(if l == "#" { "" } else { l })
        })
        .collect::<Vec<_>>()
        .join("\n");
    if code.contains("fn main(") {
        code
    } else {
        format!("#![allow(dead_code)]\n{code}\n\nfn main() {{}}\n")
    }
}

#[test]
fn the_extending_guide_builds_as_a_crate_outside_the_workspace() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("docs-extending");
    let krate = scratch.join("crate");
    let bins = krate.join("src/bin");
    let _ = std::fs::remove_dir_all(&bins);
    std::fs::create_dir_all(&bins).unwrap();

    let manifests = blocks("toml");
    assert_eq!(manifests.len(), 1, "the guide shows one Cargo.toml");
    let manifest = manifests[0].replace("../agentwire/", &format!("{}/", root.display()));
    assert!(manifest.contains("[dependencies]"), "{manifest}");
    // Its own workspace, even when the target directory is inside this one.
    std::fs::write(
        krate.join("Cargo.toml"),
        format!("{manifest}\n[workspace]\n"),
    )
    .unwrap();
    std::fs::copy(root.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();

    let rust = blocks("rust");
    assert!(rust.len() >= 5, "only {} Rust blocks found", rust.len());
    for (i, block) in rust.iter().enumerate() {
        std::fs::write(bins.join(format!("guide_{i}.rs")), program(block)).unwrap();
    }

    // `cargo check` in this build's own target directory: the dependencies' metadata is
    // mostly there already (from clippy, or from the last run), so only the guide is checked;
    // a missing dependency or feature fails type checking as it would fail a build.
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target>/tmp");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["check", "--offline", "--bins", "--quiet", "--manifest-path"])
        .arg(krate.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "the guide's code does not build as its own crate:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn blocks_are_found_with_their_language() {
    assert!(blocks("toml")[0].contains("agentwire-server"));
    assert!(
        blocks("rust")
            .iter()
            .any(|b| b.contains("register_agent(Greeter)"))
    );
    assert!(blocks("text").iter().all(|b| !b.contains("fn main")));
    assert_eq!(
        program("fn f() {}\n"),
        "#![allow(dead_code)]\nfn f() {}\n\nfn main() {}\n"
    );
}
