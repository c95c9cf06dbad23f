//! APT's source lists (sources.list(5)), read the way APT reads them: the one reader of them, for the image
//! build (which mirror to build from, and what the payload's APT points at) and the repo server (which
//! mirror its Debian cache fetches from), so that no host name of a mirror is ever written into the repo.

use std::path::Path;

use serde::Serialize;

/// One `deb` source, from either file format (deb822 stanzas list several URIs and suites at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// `Signed-By` / `signed-by=`: a keyring file, or an inline key (deb822 only).
    pub signed_by: Option<String>,
}

/// The `deb` sources of one APT configuration, in APT's order: `sources.list`, then the files of
/// `sources.list.d` sorted by name. `deb-src`, disabled stanzas, comments and other files are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AptSources {
    pub sources: Vec<Source>,
}

/// Where a suite's packages come from, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mirror {
    /// The archive carrying `<suite>` (main component), without a trailing slash.
    pub archive: String,
    /// Whether the archive's source also lists `<suite>-updates`.
    pub updates: bool,
    /// The URI carrying `<suite>-security`, if configured.
    pub security: Option<String>,
    /// The keyring file APT checks the archive with (`Signed-By`), if it names a file.
    pub keyring: Option<String>,
}

impl AptSources {
    /// Reads `ETC_APT/sources.list` and `ETC_APT/sources.list.d/*.{list,sources}`. Besides templates,
    /// this is the one thing `core` reads from disk: a file that exists but cannot be read is an error
    /// (a mirror guessed from half the configuration would be the wrong one).
    pub fn read(etc_apt: &Path) -> Result<AptSources, String> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
        };
        let mut files = Vec::new();
        let list = etc_apt.join("sources.list");
        if list.exists() {
            files.push(("sources.list".to_string(), read(&list)?));
        }
        let dir = etc_apt.join("sources.list.d");
        if dir.is_dir() {
            let mut paths: Vec<_> = std::fs::read_dir(&dir)
                .map_err(|e| format!("reading {}: {e}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
                .collect();
            paths.sort();
            for path in paths {
                files.push((path.display().to_string(), read(&path)?));
            }
        }
        Ok(AptSources::parse(&files))
    }

    /// The sources of (file name, text) pairs in order; a name ending in `.sources` is deb822, any
    /// other the one-line format.
    pub fn parse(files: &[(String, String)]) -> AptSources {
        let sources = files
            .iter()
            .flat_map(|(name, text)| {
                if name.ends_with(".sources") {
                    parse_deb822(text)
                } else {
                    parse_one_line(text)
                }
            })
            .collect();
        AptSources { sources }
    }

    /// The archive of the first `deb` source that is not a security archive: where Debian's packages
    /// come from on this machine.
    pub fn debian_archive(&self) -> Option<String> {
        self.sources.iter().find_map(|s| {
            (!s.suites.iter().any(|x| x.ends_with("-security")))
                .then(|| s.uris.first().map(|u| u.trim_end_matches('/').to_string()))
                .flatten()
        })
    }

    /// The mirror for SUITE: the first source listing it with component main, whether that archive
    /// also has `SUITE-updates`, and the source of `SUITE-security`.
    pub fn mirror(&self, suite: &str) -> Result<Mirror, String> {
        let has = |s: &Source, suite: &str| s.suites.iter().any(|x| x == suite);
        let Some(main) = self
            .sources
            .iter()
            .find(|s| has(s, suite) && s.components.iter().any(|c| c == "main"))
        else {
            return Err(format!(
                "no deb source lists suite {suite} with component main"
            ));
        };
        let archive = main.uris[0].trim_end_matches('/').to_string();
        let updates_suite = format!("{suite}-updates");
        let updates = self.sources.iter().any(|s| {
            has(s, &updates_suite) && s.uris.iter().any(|u| u.trim_end_matches('/') == archive)
        });
        let security_suite = format!("{suite}-security");
        let security = self
            .sources
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
}

impl Mirror {
    /// A deb822 `debian.sources` pointing at this mirror for SUITE (the dom0 payload's).
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

/// deb822 stanzas: blank-line separated, `Key: value` (keys case-insensitive), continuation lines
/// indented, `#` comments.
fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    let mut stanzas = vec![Vec::new()];
    for line in text.lines() {
        if line.trim().is_empty() {
            stanzas.push(Vec::new());
        } else if !line.starts_with('#') {
            stanzas.last_mut().expect("never empty").push(line);
        }
    }
    for stanza in stanzas {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza {
            if line.starts_with([' ', '\t']) {
                // A continuation (an inline Signed-By key) only matters for knowing it is not a file.
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
        let words = |k: &str| -> Vec<String> {
            get(k)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        if !words("types").iter().any(|t| t == "deb")
            || get("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no"))
        {
            continue;
        }
        let uris = words("uris");
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

    fn one(name: &str, text: &str) -> AptSources {
        AptSources::parse(&[(name.to_string(), text.to_string())])
    }

    #[test]
    fn deb822_gives_archive_updates_and_security() {
        let m = one("debian.sources", DEB822).mirror("bookworm").unwrap();
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
        let m = one("sources.list", text).mirror("bookworm").unwrap();
        assert_eq!(m.archive, "http://mirror.example/debian");
        assert_eq!(m.keyring.as_deref(), Some("/k.gpg"));
        assert!(!m.updates);
        assert_eq!(m.security, None);
    }

    #[test]
    fn disabled_stanzas_and_other_suites_are_ignored() {
        let text = "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n\
            Types: deb\nURIs: http://other.example/x\nSuites: nodistro\nComponents: main\n";
        let err = one("x.sources", text).mirror("bookworm").unwrap_err();
        assert_eq!(
            err,
            "no deb source lists suite bookworm with component main"
        );
    }

    #[test]
    fn inline_keys_and_blank_lines_with_spaces_separate_stanzas() {
        // An inline key is not a keyring file; a line of spaces ends a stanza as an empty one does.
        let text = "Types: deb\nURIs: http://a.example/debian\nSuites: bookworm\nComponents: main\n\
            Signed-By: -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBF\n  \n\
            Types: deb\nURIs: http://b.example/debian-security\nSuites: bookworm-security\nComponents: main\n";
        let m = one("x.sources", text).mirror("bookworm").unwrap();
        assert_eq!(m.keyring, None);
        assert_eq!(
            m.security.as_deref(),
            Some("http://b.example/debian-security")
        );
    }

    #[test]
    fn debian_archive_skips_security_and_source_entries() {
        let sources = AptSources::parse(&[
            (
                "sources.list".into(),
                "deb [arch=amd64] http://sec.example/debian-security bookworm-security main\n".into(),
            ),
            (
                "d/debian.sources".into(),
                "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n\
                 Types: deb deb-src\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
                    .into(),
            ),
        ]);
        assert_eq!(
            sources.debian_archive().as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(AptSources::default().debian_archive(), None);
    }

    #[test]
    fn read_follows_apts_file_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        std::fs::write(
            dir.path().join("sources.list"),
            "deb http://first.example/debian bookworm main\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/b.sources"),
            "Types: deb\nURIs: http://b.example/debian\nSuites: bookworm\nComponents: main\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/a.list"),
            "deb http://a.example/debian bookworm-updates main\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/c.disabled"),
            "deb http://c/ x main\n",
        )
        .unwrap();
        let uris: Vec<_> = AptSources::read(dir.path())
            .unwrap()
            .sources
            .into_iter()
            .map(|s| s.uris[0].clone())
            .collect();
        assert_eq!(
            uris,
            [
                "http://first.example/debian",
                "http://a.example/debian",
                "http://b.example/debian"
            ]
        );
        assert_eq!(
            AptSources::read(Path::new("/nonexistent")).unwrap(),
            AptSources::default()
        );
    }

    #[test]
    fn payload_sources_point_at_the_same_mirror() {
        let m = one("debian.sources", DEB822).mirror("bookworm").unwrap();
        let text = m.deb822("bookworm");
        assert!(text.starts_with(
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        ));
        assert!(text.contains(
            "\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        ));
    }
}
