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

/// The supervisor's layers, lowest first. A module may use (`crate::…`) only modules of the
/// layers below its own — never one of its own layer, never one above — so nothing low can
/// come to depend on routing, sessions or the transports. ARCHITECTURE.md, *Layers*, says what
/// each layer does not know.
const SUPERVISOR_LAYERS: &[&[&str]] = &[
    &[
        "capacity",
        "credentials",
        "drain",
        "metrics",
        "principal",
        "release",
        "signals",
    ],
    &["node", "spawn", "trading"],
    &["wrap"],
    &["worker"],
    &["pool"],
    &["session"],
    &["catalog"],
    &["mcp"],
    &["stdio", "http"],
    &["config", "reload", "systemd"],
    // Entry points: the binary's root, and the library root and the fuzz targets' entry
    // points, built only with the `fuzzing` feature.
    &["main", "lib", "fuzzing"],
];

/// The top-level modules a Rust file names through `crate::` (in code, not in comments),
/// including those of a `crate::{a::…, b}` group.
fn crate_imports(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .map(|line| match line.find("//") {
            Some(comment) => &line[..comment],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: after `{` and after each `,` at depth 0.
            let mut depth = 0;
            let mut expect_name = true;
            for (index, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => expect_name = true,
                    c if expect_name && (c.is_alphanumeric() || c == '_') => {
                        names.push(ident(&group[index..]));
                        expect_name = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.push(ident(rest));
        }
    }
    names
}

/// The top-level module a supervisor source file belongs to (`src/x.rs`, `src/x/…` → `x`).
fn top_module(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

#[test]
fn supervisor_layers_import_only_downwards() {
    let src = workspace().join("supervisor/src");
    let layer_of = |module: &str| {
        SUPERVISOR_LAYERS
            .iter()
            .position(|layer| layer.contains(&module))
    };
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let module = top_module(&src, file);
        let Some(own) = layer_of(&module) else {
            problems.push(format!(
                "{}: module {module} is in no layer of SUPERVISOR_LAYERS",
                file.display()
            ));
            continue;
        };
        for imported in crate_imports(&std::fs::read_to_string(file).unwrap()) {
            if imported == module {
                continue;
            }
            match layer_of(&imported) {
                Some(layer) if layer < own => {}
                Some(layer) => problems.push(format!(
                    "{}: {module} (layer {own}) uses crate::{imported} (layer {layer})",
                    file.display()
                )),
                None => problems.push(format!(
                    "{}: crate::{imported} is in no layer of SUPERVISOR_LAYERS",
                    file.display()
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "imports against the direction of the layers:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_layer_scanner_reads_paths_groups_and_skips_comments() {
    let source = "use crate::spawn::{Child, Spawner};\nuse crate::{metrics::METRICS, session};\n// crate::mcp is only named here\nlet x = crate::wrap::stderr::collect(); /* */\n";
    assert_eq!(
        crate_imports(source),
        ["spawn", "metrics", "session", "wrap"]
    );
}
