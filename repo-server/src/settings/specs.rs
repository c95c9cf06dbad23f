//! What the config file's `[[iso]]`, `[[upstream]]` and `[[mirror]]` tables say, how each is read (with the
//! spanned reader: every problem with its line and column), and the names a mount may take.
//!
//! They live here, apart from the modules that act on them (`mounts`, `content::pull_through`, `content::mirror`),
//! so that `settings::config` reads the whole file without depending on the modules that use it.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use xenprov_core::reader::{At, Table};

use crate::static_files::path::SafePath;

/// `[[iso]]` in the config file, or `--iso NAME=PATH`: an image served in place at `/NAME/`.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "kebab-case", deny_unknown_fields, transform = require_name_and_path)]
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
const RESERVED: &[&str] = &["healthz", "metrics", "ks", "preseed", "events", "ui", "api"];

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
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(rename_all = "kebab-case", deny_unknown_fields, transform = require_name)]
pub struct UpstreamSpec {
    pub name: String,
    /// Base URL of the repository; default: the Debian mirror of this machine's APT configuration.
    #[schemars(with = "String")]
    pub url: Option<String>,
    /// Keyring for InRelease/Release.gpg (and repomd.xml.asc); default: the server's `keyring`.
    #[schemars(with = "PathBuf")]
    pub keyring: Option<PathBuf>,
    /// Require `repodata/repomd.xml.asc`, signed by the keyring, for RPM repositories.
    pub repomd_signature: bool,
    /// Roots of trust older than this are fetched again, e.g. `60s`.
    #[schemars(with = "DurationText")]
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
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "kebab-case", deny_unknown_fields, transform = require_name)]
pub struct MirrorSpec {
    pub name: String,
    /// Name of an `[[upstream]]` whose URL and keyring are used.
    #[schemars(with = "String")]
    pub upstream: Option<String>,
    /// Base URL; default: the `upstream`'s, else the Debian mirror of this machine's APT configuration.
    #[schemars(with = "String")]
    pub url: Option<String>,
    #[schemars(with = "PathBuf")]
    pub keyring: Option<PathBuf>,
    /// APT suites (`dists/SUITE`).
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// Architectures of `binary-ARCH` and `debian-installer/binary-ARCH` indexes (`all` is always taken).
    pub architectures: Vec<String>,
    /// Prefixes of installer image paths to mirror from `COMPONENT/installer-ARCH/current/images/`
    /// (e.g. `netboot/`); none by default.
    pub installer_images: Vec<String>,
    /// RPM repositories: directories below the URL that hold `repodata/repomd.xml` (`""` for the URL).
    pub rpm: Vec<String>,
    /// Require `repomd.xml.asc` signed by the keyring.
    pub repomd_signature: bool,
    /// Snapshots kept besides the published one.
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

/// The JSON Schema of a duration as `duration` reads it.
pub struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "a duration such as \"30s\", \"2m\" or \"500ms\""
        })
    }
}

/// A schema transform: only `keys` are required (the others have defaults).
fn require(schema: &mut schemars::Schema, keys: &[&str]) {
    schema.insert("required".into(), serde_json::json!(keys));
}

fn require_name(schema: &mut schemars::Schema) {
    require(schema, &["name"]);
}

fn require_name_and_path(schema: &mut schemars::Schema) {
    require(schema, &["name", "path"]);
}

/// Durations are written as in `30s`, `2m`, `500ms`.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}`: {e}; expected a duration such as \"30s\" or \"2m\""))
}

/// A mount's `name`, held to `check_name`; with its position, for the check that no two are the same.
fn name(t: &Table, kind: &str) -> Option<At<String>> {
    if !t.has("name") {
        t.error(
            "name",
            t.offset(),
            format!("missing: the {kind}'s name, served at /NAME/"),
        );
    }
    t.parsed("name", |s| check_name(kind, s).map(|()| s.to_string()))
}

fn words(t: &Table, key: &'static str) -> Option<Vec<String>> {
    t.str_array(key)
        .map(|v| v.into_iter().map(|a| a.value).collect())
}

impl IsoSpec {
    /// An `[[iso]]` table; its name, with where it is, also goes to `names`.
    pub fn read(t: Table, names: &mut Vec<At<String>>) -> Option<IsoSpec> {
        let name = name(&t, "iso");
        names.extend(name.clone());
        if !t.has("path") {
            t.error("path", t.offset(), "missing: the ISO image's path");
        }
        let path = t.path("path");
        t.finish();
        Some(IsoSpec {
            name: name?.value,
            path: path?,
        })
    }
}

impl UpstreamSpec {
    /// An `[[upstream]]` table; its name, with where it is, also goes to `names`.
    pub fn read(t: Table, names: &mut Vec<At<String>>) -> Option<UpstreamSpec> {
        let name = name(&t, "upstream");
        names.extend(name.clone());
        let url = t.str("url").map(|a| a.value);
        let keyring = t.path("keyring");
        let repomd_signature = t.bool("repomd-signature").unwrap_or(false);
        let ttl = t.parsed("metadata-ttl", duration).map(|a| a.value);
        t.finish();
        Some(UpstreamSpec {
            name: name?.value,
            url,
            keyring,
            repomd_signature,
            metadata_ttl: ttl.unwrap_or_else(default_ttl),
        })
    }
}

impl MirrorSpec {
    /// A `[[mirror]]` table; its name, with where it is, also goes to `names`.
    pub fn read(t: Table, names: &mut Vec<At<String>>) -> Option<MirrorSpec> {
        let name = name(&t, "mirror");
        names.extend(name.clone());
        let keep = t.int("keep").and_then(|a| {
            usize::try_from(a.value).ok().or_else(|| {
                t.error(
                    "keep",
                    a.offset,
                    "expected a number of snapshots, 0 or more",
                );
                None
            })
        });
        let spec = MirrorSpec {
            name: String::new(),
            upstream: t.str("upstream").map(|a| a.value),
            url: t.str("url").map(|a| a.value),
            keyring: t.path("keyring"),
            suites: words(&t, "suites").unwrap_or_default(),
            components: words(&t, "components").unwrap_or_else(default_components),
            architectures: words(&t, "architectures").unwrap_or_else(default_architectures),
            installer_images: words(&t, "installer-images").unwrap_or_default(),
            rpm: words(&t, "rpm").unwrap_or_default(),
            repomd_signature: t.bool("repomd-signature").unwrap_or(false),
            keep: keep.unwrap_or_else(default_keep),
        };
        t.finish();
        Some(MirrorSpec {
            name: name?.value,
            ..spec
        })
    }
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
