//! What the config file's `[[iso]]`, `[[upstream]]` and `[[mirror]]` tables say, and the names a mount may take.
//!
//! They live here, apart from the modules that act on them (`mounts`, `content::pull_through`, `content::mirror`),
//! so that `settings::config` reads the whole file without depending on the modules that use it.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::static_files::path::SafePath;

/// `[[iso]]` in the config file, or `--iso NAME=PATH`: an image served in place at `/NAME/`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct IsoSpec {
    pub name: String,
    pub path: PathBuf,
}

impl IsoSpec {
    pub fn parse_flag(s: &str) -> Result<IsoSpec, String> {
        let (name, path) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not NAME=PATH"))?;
        Ok(IsoSpec {
            name: name.to_string(),
            path: PathBuf::from(path),
        })
    }
}

/// Top-level names the server answers itself.
const RESERVED: &[&str] = &["healthz", "metrics", "ks", "preseed", "events"];

/// Refuses a mount name that is not one plain, visible path component, or that a route owns.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let path = SafePath::from_uri_path(&format!("/{name}")).ok();
    let plain = !name.contains('/') && path.is_some_and(|p| p.as_path().as_os_str() == name);
    if !plain || name.is_empty() {
        return Err(format!(
            "{kind} name {name:?} must be one path component without a leading dot"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!(
            "{kind} name {name:?} is taken by a route of the server"
        ));
    }
    Ok(())
}

/// Debian's archive keyring, the default trust anchor of APT upstreams.
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// `[[upstream]]` in the config file, or `--upstream NAME=URL`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UpstreamSpec {
    pub name: String,
    /// Base URL of the repository; default: the Debian mirror of this machine's APT configuration.
    #[serde(default)]
    pub url: Option<String>,
    /// Keyring for InRelease/Release.gpg (and repomd.xml.asc); default: the server's `keyring`.
    #[serde(default)]
    pub keyring: Option<PathBuf>,
    /// Require `repodata/repomd.xml.asc`, signed by the keyring, for RPM repositories.
    #[serde(default)]
    pub repomd_signature: bool,
    /// Roots of trust older than this are fetched again, e.g. `60s`.
    #[serde(default = "default_ttl", deserialize_with = "duration")]
    pub metadata_ttl: Duration,
}

fn default_ttl() -> Duration {
    Duration::from_secs(60)
}

impl UpstreamSpec {
    /// `NAME=URL`, or `NAME` alone for the default Debian mirror.
    pub fn parse_flag(s: &str) -> Result<UpstreamSpec, String> {
        let (name, url) = match s.split_once('=') {
            Some((name, url)) => (name, Some(url.to_string())),
            None => (s, None),
        };
        Ok(UpstreamSpec {
            name: name.to_string(),
            url,
            keyring: None,
            repomd_signature: false,
            metadata_ttl: default_ttl(),
        })
    }
}

/// `[[mirror]]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MirrorSpec {
    pub name: String,
    /// Name of an `[[upstream]]` whose URL and keyring are used.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Base URL; default: the `upstream`'s, else the Debian mirror of this machine's APT configuration.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub keyring: Option<PathBuf>,
    /// APT suites (`dists/SUITE`).
    #[serde(default)]
    pub suites: Vec<String>,
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    /// Architectures of `binary-ARCH` and `debian-installer/binary-ARCH` indexes (`all` is always taken).
    #[serde(default = "default_architectures")]
    pub architectures: Vec<String>,
    /// Prefixes of installer image paths to mirror from `COMPONENT/installer-ARCH/current/images/`
    /// (e.g. `netboot/`); none by default.
    #[serde(default)]
    pub installer_images: Vec<String>,
    /// RPM repositories: directories below the URL that hold `repodata/repomd.xml` (`""` for the URL).
    #[serde(default)]
    pub rpm: Vec<String>,
    /// Require `repomd.xml.asc` signed by the keyring.
    #[serde(default)]
    pub repomd_signature: bool,
    /// Snapshots kept besides the published one.
    #[serde(default = "default_keep")]
    pub keep: usize,
}

fn default_components() -> Vec<String> {
    vec!["main".into()]
}

fn default_architectures() -> Vec<String> {
    vec!["amd64".into()]
}

fn default_keep() -> usize {
    2
}

/// Durations are written as in `30s`, `2m`, `500ms`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("iso", "debian12").is_ok());
        for bad in ["", "a/b", ".hidden", "..", "metrics", "ks", "a%2fb"] {
            assert!(check_name("iso", bad).is_err(), "{bad:?}");
        }
    }
}
