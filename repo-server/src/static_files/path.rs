//! Request paths → relative paths that cannot name anything outside the served root.
//!
//! This module is the one place that decides which paths are safe: the lexical half of path safety, the
//! names a symlink may lead to (`fs_tree` resolves them, with the file-system half) and the paths
//! redirects send clients to. One module, so that request paths, symlink targets and redirects cannot
//! each grow their own idea of what is safe.
//!
//! 1. The URI path is percent-decoded exactly once. A `%` that does not start a valid escape is an error,
//!    and a decoded `%` is never decoded again: `%252e%252e` is the literal name `%2e%2e`, never `..`.
//! 2. NUL bytes and backslashes are refused anywhere, and so is every `..` component (no clamping at the
//!    root: a request that tries to climb is hostile, not a typo). `.` and empty components are dropped.
//! 3. Names that start with a dot are hidden (VCS data, editor files, createrepo's in-progress `.repodata`),
//!    except those install trees need: anaconda reads `.treeinfo`, `.discinfo` and `.composeinfo`, and
//!    Debian media carry `.disk/`.
//! 4. A symlink's target is held to rule 3 as well (`is_servable_target`), except for the object store
//!    of a pull-through cache, which its links point into.
//! 5. A redirect to a directory's slash-terminated path never starts with `//`: see `dir_location`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Dot-names that are served although they are hidden by convention.
const VISIBLE_DOT_NAMES: &[&[u8]] = &[b".treeinfo", b".discinfo", b".composeinfo", b".disk"];

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not a path a well-behaved client sends (bad escape, NUL, backslash, `..`): answered with 400.
    Malformed(&'static str),
    /// A hidden name: answered with 404, as if it did not exist.
    Hidden,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Malformed(why) => write!(f, "malformed path: {why}"),
            PathError::Hidden => f.write_str("hidden path"),
        }
    }
}

/// A path relative to the served root: only normal, visible components, no `..`, NUL or backslash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePath {
    rel: PathBuf,
    trailing_slash: bool,
}

impl SafePath {
    /// Validates the path of a request URI (without query), e.g. `/dists/bookworm/InRelease`.
    pub fn from_uri_path(raw: &str) -> Result<SafePath, PathError> {
        let raw = raw.as_bytes();
        if raw.first() != Some(&b'/') {
            return Err(PathError::Malformed("does not start with /"));
        }
        let decoded = percent_decode(raw)?;
        if decoded.contains(&0) {
            return Err(PathError::Malformed("NUL byte"));
        }
        if decoded.contains(&b'\\') {
            return Err(PathError::Malformed("backslash"));
        }
        let mut rel = Vec::with_capacity(decoded.len());
        for name in decoded.split(|&b| b == b'/') {
            match name {
                b"" | b"." => continue,
                b".." => return Err(PathError::Malformed("`..` component")),
                _ if is_hidden(name) => return Err(PathError::Hidden),
                _ => {}
            }
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name);
        }
        Ok(SafePath {
            rel: PathBuf::from(OsString::from_vec(rel)),
            trailing_slash: decoded.ends_with(b"/"),
        })
    }

    /// The relative path; empty for the root.
    pub fn as_path(&self) -> &Path {
        &self.rel
    }

    pub fn is_root(&self) -> bool {
        self.rel.as_os_str().is_empty()
    }

    /// Whether the request ended in `/`, as links to directories must (so relative links in listings work).
    pub fn has_trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// The first component and the path below it (which keeps the trailing slash); `None` for the root.
    pub fn split_first(&self) -> Option<(&OsStr, SafePath)> {
        let mut components = self.rel.iter();
        let first = components.next()?;
        Some((
            first,
            SafePath {
                rel: components.collect(),
                trailing_slash: self.trailing_slash,
            },
        ))
    }

    /// A directory entry below this path, or `None` when the name is hidden or not a plain name.
    pub fn child(&self, name: &OsStr) -> Option<SafePath> {
        let bytes = name.as_bytes();
        if bytes.is_empty()
            || bytes == b"."
            || bytes == b".."
            || is_hidden(bytes)
            || bytes.iter().any(|&b| matches!(b, b'/' | b'\\' | 0))
        {
            return None;
        }
        Some(SafePath {
            rel: self.rel.join(name),
            trailing_slash: false,
        })
    }
}

/// The `Location` of the redirect from a directory requested without its trailing slash: `raw` (the
/// request's path, already accepted by `SafePath::from_uri_path`) with a `/` added and every run of
/// slashes collapsed to one. A Location starting with `//` is a network-path reference, which browsers
/// follow to another host: `GET //evil.example` of a directory must not redirect there. Backslashes,
/// which browsers read as slashes (`/\host`), never get here: `from_uri_path` refuses them.
pub fn dir_location(raw: &str, query: Option<&str>) -> String {
    let mut location = String::with_capacity(raw.len() + 1);
    for c in raw.chars().chain(['/']) {
        if !(c == '/' && location.ends_with('/')) {
            location.push(c);
        }
    }
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    location
}

/// Whether `rel`, the canonical path below the root that a request resolved to through symlinks, may be
/// served: by the rule for request paths, so that a link cannot reach what a request for the name itself
/// cannot (`config -> .git/config`). `store` is the one hidden directory at the top that links may point
/// into, in a tree that has one: a pull-through cache's request paths are links to its object store.
pub fn is_servable_target(rel: &Path, store: Option<&OsStr>) -> bool {
    rel.iter()
        .enumerate()
        .all(|(i, name)| !is_hidden(name.as_bytes()) || (i == 0 && Some(name) == store))
}

fn is_hidden(name: &[u8]) -> bool {
    name.starts_with(b".") && !VISIBLE_DOT_NAMES.contains(&name)
}

pub(crate) fn percent_decode(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hi = bytes.next().and_then(|&h| hex_value(h));
        let lo = bytes.next().and_then(|&l| hex_value(l));
        match (hi, lo) {
            (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
            _ => return Err(PathError::Malformed("bad percent escape")),
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        SafePath::from_uri_path(raw)
            .unwrap()
            .as_path()
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn normal_paths() {
        assert_eq!(ok("/"), "");
        assert_eq!(ok("/dists/bookworm/InRelease"), "dists/bookworm/InRelease");
        assert_eq!(ok("//a/./b//"), "a/b");
        assert_eq!(ok("/dir%20with%20space/%C3%BC"), "dir with space/ü");
        assert_eq!(ok("/.treeinfo"), ".treeinfo");
        assert_eq!(ok("/.disk/info"), ".disk/info");
        assert!(SafePath::from_uri_path("/a/").unwrap().has_trailing_slash());
        assert!(!SafePath::from_uri_path("/a").unwrap().has_trailing_slash());
    }

    #[test]
    fn decodes_once() {
        assert_eq!(ok("/%252e%252e/x"), "%2e%2e/x");
        assert_eq!(ok("/a%2Fb"), "a/b");
    }

    #[test]
    fn refuses_hostile_paths() {
        use PathError::*;
        for raw in [
            "/..",
            "/a/../b",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc",
            "/a/..%2f..%2f",
            "/a%00b",
            "/a\\..\\b",
            "/a%5c..%5cb",
            "/%zz",
            "/%4",
            "relative",
            "",
        ] {
            assert!(
                matches!(SafePath::from_uri_path(raw), Err(Malformed(_))),
                "{raw:?} was accepted"
            );
        }
        for raw in ["/.git/config", "/a/.repodata/x", "/.htpasswd", "/%2essh/id"] {
            assert_eq!(SafePath::from_uri_path(raw), Err(Hidden), "{raw:?}");
        }
    }

    #[test]
    fn dir_locations_stay_on_this_host() {
        assert_eq!(dir_location("/a", None), "/a/");
        assert_eq!(dir_location("//evil.example", None), "/evil.example/");
        assert_eq!(dir_location("///a//b", Some("x=1")), "/a/b/?x=1");
        assert_eq!(dir_location("/%2F/a", None), "/%2F/a/");
    }

    #[test]
    fn servable_targets() {
        let store = Some(OsStr::new(".objects"));
        assert!(is_servable_target(Path::new("pool/a.deb"), None));
        assert!(is_servable_target(Path::new(".disk/info"), None));
        assert!(is_servable_target(Path::new(""), None));
        assert!(is_servable_target(Path::new(".objects/ab/abcd"), store));
        for hidden in [
            ".git/config",
            "a/.repodata/x",
            ".objects/ab/abcd",
            ".htpasswd",
        ] {
            assert!(!is_servable_target(Path::new(hidden), None), "{hidden}");
        }
        for hidden in ["a/.objects/ab/abcd", ".objects/.x/y", ".partial/x"] {
            assert!(!is_servable_target(Path::new(hidden), store), "{hidden}");
        }
    }

    #[test]
    fn split_first() {
        let p = SafePath::from_uri_path("/debian/dists/x/").unwrap();
        let (first, rest) = p.split_first().unwrap();
        assert_eq!(first, "debian");
        assert_eq!(rest.as_path(), Path::new("dists/x"));
        assert!(rest.has_trailing_slash());
        let iso = SafePath::from_uri_path("/iso").unwrap();
        let (first, rest) = iso.split_first().unwrap();
        assert_eq!((first, rest.is_root()), (OsStr::new("iso"), true));
        assert!(
            SafePath::from_uri_path("/")
                .unwrap()
                .split_first()
                .is_none()
        );
    }

    #[test]
    fn children() {
        let dir = SafePath::from_uri_path("/pool/").unwrap();
        assert_eq!(
            dir.child(OsStr::new("a.deb")).unwrap().as_path(),
            Path::new("pool/a.deb")
        );
        for bad in ["", ".", "..", ".git", "a/b", "a\\b"] {
            assert!(dir.child(OsStr::new(bad)).is_none(), "{bad:?}");
        }
    }
}
