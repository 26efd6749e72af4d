//! Tidy: repository-wide rules that no compiler checks (after rust-analyzer's tidy test).
//!
//! Every Rust file starts with a `//!` comment saying why it exists; no `dbg!`, `todo!`,
//! `unimplemented!` or ignored test is committed; nothing names the machine it was built on; the
//! simulator keeps the workspace lints, unsafe code denied rather than forbidden.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !["target", "node_modules", ".git"].contains(&name.as_str())
                && !name.starts_with('.')
            {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn workspace_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let mut files = Vec::new();
    for crate_dir in ["schema", "sync", "node", "simulator", "tests"] {
        rust_files(&root.join(crate_dir), &mut files);
    }
    assert!(
        files.len() > 20,
        "tidy found too few files: {}",
        files.len()
    );
    files
}

#[test]
fn every_rust_file_says_why_it_exists() {
    // Why: a newcomer must be able to tell from the top of any file what room it is and why.
    let mut missing = Vec::new();
    for path in workspace_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !first.starts_with("//!") && !first.starts_with("#![") {
            missing.push(path.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "files without a //! module doc:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_stubs_debug_prints_or_ignored_tests() {
    // Why: a stub or an ignored test looks like work done and is not.
    let forbidden = [
        concat!("dbg", "!("),
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
        concat!("#[", "ignore"),
    ];
    let mut found = Vec::new();
    for path in workspace_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            if forbidden.iter().any(|f| line.contains(f)) {
                found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "forbidden constructs:\n{}",
        found.join("\n")
    );
}

/// The lines of one `[header]` table of a TOML file, trimmed, up to the next table.
fn toml_table(text: &str, header: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn the_simulator_keeps_the_workspace_lints_but_for_unsafe_code() {
    // Why: the simulator copies the workspace's lints so that it can deny unsafe code instead of
    // forbidding it (one allocator call); a lint added to the workspace must not skip it.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let simulator = std::fs::read_to_string(root.join("simulator/Cargo.toml")).unwrap();
    for (ours, theirs) in [
        ("[workspace.lints.rust]", "[lints.rust]"),
        ("[workspace.lints.clippy]", "[lints.clippy]"),
    ] {
        let expected: Vec<String> = toml_table(&workspace, ours)
            .into_iter()
            .map(|l| l.replace(r#"unsafe_code = "forbid""#, r#"unsafe_code = "deny""#))
            .collect();
        assert!(!expected.is_empty(), "{ours} not found");
        assert_eq!(toml_table(&simulator, theirs), expected, "{theirs}");
    }
}
