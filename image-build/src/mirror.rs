//! The Debian mirror this machine's APT uses: the build fetches from it, and the payload's APT points at it.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// Where the suite's packages come from, as configured on the build machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mirror {
    /// The archive carrying `<suite>` (main component).
    pub archive: String,
    /// Whether the archive entry also lists `<suite>-updates`.
    pub updates: bool,
    /// The URI carrying `<suite>-security`, if configured.
    pub security: Option<String>,
    /// The keyring APT checks the archive with (`Signed-By`), if it names a file.
    pub keyring: Option<String>,
}

/// One `deb` source, from either file format.
#[derive(Debug, PartialEq, Eq)]
struct Source {
    uris: Vec<String>,
    suites: Vec<String>,
    components: Vec<String>,
    signed_by: Option<String>,
}

impl Mirror {
    /// Reads `/etc/apt/sources.list` and `/etc/apt/sources.list.d/*.{list,sources}`.
    pub fn from_apt_config(root: &Path, suite: &str) -> Result<Mirror> {
        let mut sources = Vec::new();
        let list = root.join("etc/apt/sources.list");
        if list.exists() {
            sources.extend(parse_one_line(&read(&list)?));
        }
        let dir = root.join("etc/apt/sources.list.d");
        if dir.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            names.sort();
            for path in names {
                match path.extension().and_then(|e| e.to_str()) {
                    Some("list") => sources.extend(parse_one_line(&read(&path)?)),
                    Some("sources") => sources.extend(parse_deb822(&read(&path)?)),
                    _ => {}
                }
            }
        }
        Self::select(&sources, suite).with_context(|| {
            format!(
                "finding the Debian mirror for {suite} in {}",
                root.join("etc/apt").display()
            )
        })
    }

    fn select(sources: &[Source], suite: &str) -> Result<Mirror> {
        let has = |s: &Source, suite: &str| s.suites.iter().any(|x| x == suite);
        let Some(main) = sources
            .iter()
            .find(|s| has(s, suite) && s.components.iter().any(|c| c == "main"))
        else {
            bail!("no deb source lists suite {suite} with component main");
        };
        let archive = main.uris[0].trim_end_matches('/').to_string();
        let updates_suite = format!("{suite}-updates");
        let updates = sources.iter().any(|s| {
            has(s, &updates_suite) && s.uris.iter().any(|u| u.trim_end_matches('/') == archive)
        });
        let security_suite = format!("{suite}-security");
        let security = sources
            .iter()
            .find(|s| has(s, &security_suite))
            .map(|s| s.uris[0].trim_end_matches('/').to_string());
        let keyring = main.signed_by.clone().filter(|k| k.starts_with('/'));
        Ok(Mirror {
            archive,
            updates,
            security,
            keyring,
        })
    }

    /// The payload's `/etc/apt/sources.list.d/debian.sources`: the same mirror the build used.
    pub fn deb822(&self, suite: &str) -> String {
        let signed_by = self
            .keyring
            .as_deref()
            .map(|k| format!("Signed-By: {k}\n"))
            .unwrap_or_default();
        let suites = if self.updates {
            format!("{suite} {suite}-updates")
        } else {
            suite.to_string()
        };
        let mut text = format!(
            "Types: deb\nURIs: {}\nSuites: {suites}\nComponents: main\n{signed_by}",
            self.archive
        );
        if let Some(security) = &self.security {
            text += &format!(
                "\nTypes: deb\nURIs: {security}\nSuites: {suite}-security\nComponents: main\n{signed_by}"
            );
        }
        text
    }
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// `deb [opts] URI SUITE COMPONENT...` lines; `deb-src` and comments are skipped.
fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((opts, tail)) = opts.split_once(']') else {
                continue;
            };
            signed_by = opts
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by="))
                .map(str::to_string);
            rest = tail;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.len() < 3 {
            continue;
        }
        out.push(Source {
            uris: vec![words[0].to_string()],
            suites: vec![words[1].to_string()],
            components: words[2..].iter().map(|w| w.to_string()).collect(),
            signed_by,
        });
    }
    out
}

/// deb822 stanzas (sources.list(5)): blank-line separated, `Key: value`, continuation lines indented.
fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                // A continuation (e.g. an inline Signed-By key) only matters for the key name we keep.
                if let Some(last) = fields.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let words = |k: &str| {
            get(k)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let types: Vec<String> = words("types");
        if !types.iter().any(|t| t == "deb")
            || get("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no"))
        {
            continue;
        }
        let uris: Vec<String> = words("uris");
        if uris.is_empty() {
            continue;
        }
        out.push(Source {
            uris,
            suites: words("suites"),
            components: words("components"),
            signed_by: get("signed-by")
                .filter(|v| !v.contains('\n'))
                .map(str::to_string),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n# a snapshot comment\nURIs: http://mirror.example/debian\n\
        Suites: bookworm bookworm-updates\nComponents: main\n\
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
        Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";

    #[test]
    fn deb822_gives_archive_updates_and_security() {
        let m = Mirror::select(&parse_deb822(DEB822), "bookworm").unwrap();
        assert_eq!(
            m,
            Mirror {
                archive: "http://mirror.example/debian".into(),
                updates: true,
                security: Some("http://mirror.example/debian-security".into()),
                keyring: Some("/usr/share/keyrings/debian-archive-keyring.gpg".into()),
            }
        );
    }

    #[test]
    fn one_line_format_with_options() {
        let text = "# comment\ndeb-src http://src.example/debian bookworm main\n\
            deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib\n";
        let m = Mirror::select(&parse_one_line(text), "bookworm").unwrap();
        assert_eq!(m.archive, "http://mirror.example/debian");
        assert_eq!(m.keyring.as_deref(), Some("/k.gpg"));
        assert!(!m.updates);
        assert_eq!(m.security, None);
    }

    #[test]
    fn disabled_stanzas_and_other_suites_are_ignored() {
        let text = "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n\
            Types: deb\nURIs: http://other.example/x\nSuites: nodistro\nComponents: main\n";
        let err = Mirror::select(&parse_deb822(text), "bookworm").unwrap_err();
        assert!(
            err.to_string()
                .contains("no deb source lists suite bookworm")
        );
    }

    #[test]
    fn payload_sources_point_at_the_same_mirror() {
        let m = Mirror::select(&parse_deb822(DEB822), "bookworm").unwrap();
        let text = m.deb822("bookworm");
        assert!(text.starts_with(
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        ));
        assert!(
            text.contains(
                "URIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
            )
        );
    }
}
