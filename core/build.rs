//! Embeds every file under `templates/` and `kickstarts/` so the binaries carry their templates;
//! an admin can still override any of them from a directory at run time.

use std::fmt::Write;
use std::path::Path;

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            let name = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.push((
                name,
                p.canonicalize().unwrap().to_string_lossy().into_owned(),
            ));
        }
    }
}

fn main() {
    // Read when the script runs, not when it was compiled: a build script compiled for another
    // checkout sharing the target directory would otherwise embed that checkout's templates, or none.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let repo = Path::new(&manifest_dir).parent().unwrap();
    let mut files = Vec::new();
    for top in ["templates", "kickstarts"] {
        println!("cargo:rerun-if-changed={}", repo.join(top).display());
        walk(repo, &repo.join(top), &mut files);
    }
    let mut src = String::from("pub const BUILTIN: &[(&str, &str)] = &[\n");
    for (name, path) in &files {
        writeln!(src, "    ({name:?}, include_str!({path:?})),").unwrap();
    }
    src.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("templates.rs");
    std::fs::write(out, src).unwrap();
}
