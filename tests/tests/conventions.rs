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
    for krate in ["protocol", "supervisor", "worker", "tests", "bench", "fuzz"] {
        rust_files(&workspace().join(krate).join("src"), &mut files);
    }
    rust_files(&workspace().join("fuzz/fuzz_targets"), &mut files);
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

/// The module declarations of a crate root (`mod name;` lines, any visibility).
fn declared_modules(root: &str) -> Vec<String> {
    let text = std::fs::read_to_string(workspace().join(root)).unwrap();
    let mut modules: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_prefix("pub ").unwrap_or(line);
            rest.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect();
    modules.sort();
    modules
}

/// The supervisor's library root (built only for the fuzz targets) declares the binary's
/// modules again; a module added to one and not the other would break the fuzz build only.
#[test]
fn the_fuzzing_library_declares_the_binarys_modules() {
    let binary = declared_modules("supervisor/src/main.rs");
    let mut library = declared_modules("supervisor/src/lib.rs");
    library.retain(|module| module != "fuzzing");
    assert!(binary.len() > 10, "found only {binary:?}");
    assert_eq!(library, binary);
}
