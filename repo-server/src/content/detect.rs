//! What an install tree is, from the standard metadata it carries rather than a signature database:
//! `.treeinfo` (anaconda trees), `.discinfo`, `dists/*/Release` or `InRelease` (APT suites), `.disk/info` (Debian media)
//! and `repodata/repomd.xml`. A tree with none of them is a generic tree, never an error.

use std::collections::HashSet;
use std::ffi::OsStr;

use crate::static_files::path::SafePath;
use crate::static_files::tree::{Node, Tree};

/// Metadata files larger than this are not read.
const MAX_METADATA: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    /// `.treeinfo`: family (or name), version, architecture.
    TreeInfo {
        family: String,
        version: String,
        arch: String,
    },
    /// `.discinfo`: release and architecture.
    DiscInfo { release: String, arch: String },
    /// `.disk/info`: the medium's own one-line description.
    DiskInfo(String),
    /// `dists/DIR/Release`.
    AptSuite {
        dir: String,
        origin: String,
        suite: String,
        codename: String,
        version: String,
        architectures: String,
        components: String,
    },
    /// `repodata/repomd.xml` at the top.
    RpmRepository,
}

/// Everything found in `tree`, in a fixed order.
pub fn detect(tree: &dyn Tree) -> Vec<Detected> {
    let mut found = Vec::new();
    if let Some(text) = read_text(tree, "/.treeinfo") {
        let get = |section: &str, key: &str| ini_value(&text, section, key).unwrap_or_default();
        let family = ini_value(&text, "release", "name")
            .or_else(|| ini_value(&text, "general", "family"))
            .unwrap_or_default();
        let version =
            ini_value(&text, "release", "version").unwrap_or_else(|| get("general", "version"));
        let arch = ini_value(&text, "tree", "arch").unwrap_or_else(|| get("general", "arch"));
        found.push(Detected::TreeInfo {
            family,
            version,
            arch,
        });
    }
    if let Some(text) = read_text(tree, "/.discinfo") {
        let mut lines = text.lines().skip(1);
        found.push(Detected::DiscInfo {
            release: lines.next().unwrap_or_default().trim().to_string(),
            arch: lines.next().unwrap_or_default().trim().to_string(),
        });
    }
    if let Some(text) = read_text(tree, "/.disk/info") {
        found.push(Detected::DiskInfo(
            text.lines().next().unwrap_or_default().trim().to_string(),
        ));
    }
    found.extend(apt_suites(tree));
    if read_text(tree, "/repodata/repomd.xml").is_some() {
        found.push(Detected::RpmRepository);
    }
    found
}

/// One line for `xenprov-repo list`.
pub fn summary(found: &[Detected]) -> String {
    let mut parts = Vec::new();
    let mut info = None;
    for d in found {
        match d {
            Detected::TreeInfo {
                family,
                version,
                arch,
            } => parts.push(join(&[family, version, arch])),
            Detected::DiscInfo { release, arch } => parts.push(join(&[release, arch])),
            Detected::DiskInfo(text) => info = Some(text.clone()),
            Detected::AptSuite {
                origin,
                version,
                codename,
                architectures,
                suite,
                dir,
                ..
            } => {
                let name = if codename.is_empty() { suite } else { codename };
                let name = if name.is_empty() { dir } else { name };
                parts.push(join(&[
                    origin,
                    version,
                    &format!("({name})"),
                    architectures,
                ]));
            }
            Detected::RpmRepository => parts.push("RPM repository".into()),
        }
    }
    let mut line = if parts.is_empty() {
        "generic tree (no .treeinfo, .discinfo, dists/*/Release, .disk/info or repodata)".into()
    } else {
        parts.join(", ")
    };
    if let Some(info) = info {
        line = if found.len() == 1 {
            info
        } else {
            format!("{line}: {info}")
        };
    }
    line
}

fn join(words: &[&String]) -> String {
    words
        .iter()
        .filter(|w| !w.is_empty())
        .map(|w| w.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn apt_suites(tree: &dyn Tree) -> Vec<Detected> {
    let Ok(dists) = SafePath::from_uri_path("/dists/") else {
        return Vec::new();
    };
    let Ok(mut entries) = tree.list(&dists) else {
        return Vec::new();
    };
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    // a suite symlink (stable -> bookworm) is listed with its target's identity: report the suite once
    let mut seen = HashSet::new();
    let mut suites = Vec::new();
    for e in entries.into_iter().filter(|e| e.is_dir) {
        let Some(dir) = e.name.to_str() else { continue };
        if !seen.insert(e.meta.id) {
            continue;
        }
        // a cache may hold only the clearsigned InRelease, whose fields read the same
        let Some(text) = ["Release", "InRelease"].iter().find_map(|name| {
            let path = dists.child(OsStr::new(dir))?.child(OsStr::new(name))?;
            read_path(tree, &path)
        }) else {
            continue;
        };
        let field = |name: &str| control_field(&text, name).unwrap_or_default();
        suites.push(Detected::AptSuite {
            dir: dir.to_string(),
            origin: field("Origin"),
            suite: field("Suite"),
            codename: field("Codename"),
            version: field("Version"),
            architectures: field("Architectures"),
            components: field("Components"),
        });
    }
    suites
}

fn read_text(tree: &dyn Tree, path: &str) -> Option<String> {
    read_path(tree, &SafePath::from_uri_path(path).ok()?)
}

fn read_path(tree: &dyn Tree, path: &SafePath) -> Option<String> {
    let Node::File(f) = tree.open(path).ok()? else {
        return None;
    };
    let len = f.meta().len.min(MAX_METADATA);
    let mut buf = vec![0; len as usize];
    f.read_exact_at(&mut buf, 0).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// A single-line field of a deb822 paragraph (`Codename: bookworm`).
pub fn control_field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim().to_string())
    })
}

/// `key = value` in `[section]` of an INI file such as `.treeinfo`.
fn ini_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = "";
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name;
        } else if current == section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::static_files::fs_tree::FsTree;

    #[test]
    fn anaconda_tree_and_generic_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".treeinfo"),
            "[general]\nfamily = Rocky Linux\nversion = 9.4\narch = x86_64\n\
             [release]\nname = Rocky Linux\nshort = Rocky\nversion = 9.4\n[tree]\narch = x86_64\n",
        )
        .unwrap();
        std::fs::write(dir.path().join(".discinfo"), "1715000000.0\n9.4\nx86_64\n").unwrap();
        std::fs::create_dir_all(dir.path().join("BaseOS/repodata")).unwrap();
        let tree = FsTree::open_root(dir.path()).unwrap();
        let found = detect(&tree);
        assert_eq!(summary(&found), "Rocky Linux 9.4 x86_64, 9.4 x86_64");

        let empty = tempfile::tempdir().unwrap();
        let tree = FsTree::open_root(empty.path()).unwrap();
        assert!(detect(&tree).is_empty());
        assert!(summary(&[]).starts_with("generic tree"));
    }
}
