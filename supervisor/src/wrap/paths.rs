//! What a wrapped program needs to read, derived from where it is installed: its program on
//! the server's `PATH`, its install prefix and its script interpreter's, a virtual
//! environment's base interpreter, the `node_modules` tree a script lives in, and the
//! directories of arguments that name files.
//!
//! Derived paths never widen to `/` or to a home directory wholesale: a prefix that would be
//! one of those is left out (`--wrap-allow-path` remains for anything else).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The name of npm's dependency directories.
const NODE_MODULES: &str = "node_modules";
/// The file that marks a Python virtual environment's prefix (PEP 405); its `home` line names
/// the directory of the interpreter it was made from.
const PYVENV_CFG: &str = "pyvenv.cfg";
/// Bytes of a script read to find its `#!` line (the kernel reads at most 256).
const SHEBANG_BYTES: usize = 256;

/// Find the program as `execvp` would with `search_path`.
pub fn resolve_program(word: &OsStr, search_path: &OsStr) -> Result<PathBuf, String> {
    let shown = word.to_string_lossy();
    let candidates: Vec<PathBuf> = if word.as_bytes().contains(&b'/') {
        vec![absolute(Path::new(word))]
    } else {
        std::env::split_paths(search_path)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(word))
            .collect()
    };
    candidates
        .into_iter()
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            format!(
                "the wrapped command {shown:?} is not an executable file{} (set PATH for it with --wrap-env PATH, or give its full path)",
                if word.as_bytes().contains(&b'/') {
                    String::new()
                } else {
                    format!(" on PATH {}", search_path.to_string_lossy())
                }
            )
        })
}

pub fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// `path` made absolute against the current directory.
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|dir| dir.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Everything a program started as `program ARGS...` needs to read besides the system's
/// directories: see the module's documentation.
pub fn derived_read_paths(
    program: &Path,
    arguments: &[std::ffi::OsString],
    search_path: &OsStr,
) -> Vec<PathBuf> {
    let mut files = vec![program.to_path_buf()];
    if let Some(interpreter) = script_interpreter(program, search_path) {
        files.push(interpreter);
    }
    let mut paths = Vec::new();
    for file in &files {
        paths.extend(install_prefixes(file));
    }
    for argument in arguments {
        let path = absolute(Path::new(argument));
        if path.is_file()
            && let Ok(canonical) = std::fs::canonicalize(&path)
        {
            if let Some(dir) = canonical.parent() {
                paths.push(dir.to_path_buf());
            }
            files.push(canonical);
        }
    }
    for file in &files {
        for file in [
            file.clone(),
            std::fs::canonicalize(file).unwrap_or_default(),
        ] {
            paths.extend(node_tree(&file));
            paths.extend(virtual_environment(&file));
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    paths.retain(|path| !too_wide(path, home.as_deref()));
    paths.sort();
    paths.dedup();
    paths
}

/// `/`, a home directory, or an ancestor of one: never granted by derivation.
fn too_wide(path: &Path, home: Option<&Path>) -> bool {
    path.as_os_str().is_empty()
        || path == Path::new("/")
        || path.parent() == Some(Path::new("/home"))
        || home.is_some_and(|home| home.starts_with(path))
}

/// Where a program is installed: `<prefix>/bin/<name>` gives `<prefix>`, anything else its
/// directory; for the file as named and as its symbolic links resolve (a virtual
/// environment's `bin/python` points into the interpreter's own prefix).
fn install_prefixes(file: &Path) -> Vec<PathBuf> {
    [
        file.to_path_buf(),
        std::fs::canonicalize(file).unwrap_or_default(),
    ]
    .iter()
    .filter_map(|file| file.parent().filter(|dir| !dir.as_os_str().is_empty()))
    .map(|dir| {
        let in_bin = dir
            .file_name()
            .is_some_and(|name| name == "bin" || name == "sbin");
        if in_bin {
            dir.parent().unwrap_or(dir).to_path_buf()
        } else {
            dir.to_path_buf()
        }
    })
    .collect()
}

/// The interpreter a script's `#!` line names, resolved through `env` when it is used.
fn script_interpreter(program: &Path, search_path: &OsStr) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; SHEBANG_BYTES];
    let read = std::fs::File::open(program).ok()?.read(&mut head).ok()?;
    let line = head[..read].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let interpreter = PathBuf::from(words.next()?);
    if interpreter.file_name().is_some_and(|name| name == "env") {
        let name = words.find(|word| !word.starts_with('-'))?;
        return resolve_program(OsStr::new(name), search_path).ok();
    }
    Some(interpreter)
}

/// For a file inside a `node_modules` tree: the outermost `node_modules` above it (Node
/// resolves a package's dependencies in every `node_modules` up the tree, and npm hoists them
/// to the top one) and that tree's package root, the directory holding it when it has a
/// `package.json` (a project's own modules and its `"type"`).
fn node_tree(file: &Path) -> Vec<PathBuf> {
    let Some(modules) = file
        .ancestors()
        .filter(|dir| dir.file_name() == Some(OsStr::new(NODE_MODULES)))
        .last()
    else {
        return Vec::new();
    };
    let mut paths = vec![modules.to_path_buf()];
    if let Some(root) = modules.parent()
        && root.join("package.json").is_file()
    {
        paths.push(root.to_path_buf());
    }
    paths
}

/// For a file in a Python virtual environment (`<prefix>/bin/…` beside `<prefix>/pyvenv.cfg`,
/// as made by `venv`, `virtualenv`, `pipx` and `uv tool`): the prefix, and the prefix of the
/// interpreter it was made from (its `home` line), which holds the standard library.
fn virtual_environment(file: &Path) -> Vec<PathBuf> {
    let Some(prefix) = file
        .parent()
        .filter(|dir| dir.file_name() == Some(OsStr::new("bin")))
        .and_then(Path::parent)
    else {
        return Vec::new();
    };
    let Ok(config) = std::fs::read_to_string(prefix.join(PYVENV_CFG)) else {
        return Vec::new();
    };
    let mut paths = vec![prefix.to_path_buf()];
    let home = config.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "home").then(|| PathBuf::from(value.trim()))
    });
    if let Some(home) = home.filter(|home| home.is_absolute()) {
        for home in [home.clone(), std::fs::canonicalize(&home).unwrap_or(home)] {
            let base = if home.file_name() == Some(OsStr::new("bin")) {
                home.parent().unwrap_or(&home).to_path_buf()
            } else {
                home
            };
            paths.push(base);
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory holding `files` (empty), removed when dropped.
    struct Tree(PathBuf);

    impl Tree {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tree(files: &[&str]) -> Tree {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bulkhead-paths-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for file in files {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "").unwrap();
        }
        Tree(std::fs::canonicalize(&dir).unwrap())
    }

    #[test]
    fn a_script_under_node_modules_gets_the_outermost_tree_and_its_package_root() {
        let dir = tree(&[
            "app/package.json",
            "app/node_modules/a/node_modules/b/dist/index.js",
            "app/node_modules/zod/index.js",
        ]);
        let app = dir.path().join("app");
        let script = app.join("node_modules/a/node_modules/b/dist/index.js");
        let paths = derived_read_paths(
            Path::new("/usr/bin/node"),
            &[script.clone().into()],
            OsStr::new("/usr/bin"),
        );
        let app = std::fs::canonicalize(app).unwrap();
        assert!(paths.contains(&app.join("node_modules")), "{paths:?}");
        assert!(paths.contains(&app), "{paths:?}");
    }

    #[test]
    fn a_virtual_environment_gets_its_prefix_and_its_base_interpreters() {
        let dir = tree(&["venv/bin/tool", "base/bin/python3", "base/lib/os.py"]);
        let base = std::fs::canonicalize(dir.path().join("base")).unwrap();
        std::fs::write(
            dir.path().join("venv/pyvenv.cfg"),
            format!("home = {}\nversion = 3.11\n", base.join("bin").display()),
        )
        .unwrap();
        let tool = dir.path().join("venv/bin/tool");
        let paths = derived_read_paths(&tool, &[], OsStr::new("/usr/bin"));
        assert!(paths.contains(&base), "{paths:?}");
        assert!(paths.contains(&dir.path().join("venv")), "{paths:?}");
    }

    #[test]
    fn derivation_never_grants_the_root_or_a_home() {
        let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()));
        assert!(too_wide(Path::new("/"), Some(&home)));
        assert!(too_wide(&home, Some(&home)));
        assert!(too_wide(Path::new("/home/someone"), None));
        assert!(!too_wide(&home.join("project"), Some(&home)));
    }
}
