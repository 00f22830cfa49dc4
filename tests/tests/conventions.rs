//! Conventions the codebase promises in ARCHITECTURE.md, checked on the source tree.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn every_module_opens_with_a_doc_sentence() {
    let mut files = Vec::new();
    for krate in ["protocol", "supervisor", "worker", "tests", "bench"] {
        rust_files(&workspace().join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let undocumented: Vec<_> = files
        .iter()
        .filter(|file| !std::fs::read_to_string(file).unwrap().starts_with("//!"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "modules without a //! first line: {undocumented:?}"
    );
}

#[test]
fn only_the_spawn_module_starts_processes() {
    let mut files = Vec::new();
    for krate in ["protocol", "supervisor", "worker"] {
        rust_files(&workspace().join(krate).join("src"), &mut files);
    }
    let offenders: Vec<_> = files
        .iter()
        .filter(|file| !file.ends_with("supervisor/src/spawn.rs"))
        .filter(|file| {
            std::fs::read_to_string(file)
                .unwrap()
                .contains("Command::new")
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "processes started outside supervisor::spawn: {offenders:?}"
    );
}
