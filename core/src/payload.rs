//! The dom0 payload's manifest (`payload.json` beside `payload.tar.zst` on the install medium),
//! written by `xenprov-image` and read by the installer before anything is written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Manifest {
    /// The archive's file name, beside the manifest.
    pub file: String,
    /// `tar+zstd` or `tar`.
    pub format: String,
    /// SHA-256 of the archive file, lower-case hex.
    pub sha256: String,
    /// Size of the archive file in bytes.
    pub size: u64,
    /// Bytes of file content once unpacked.
    pub unpacked_size: u64,
    /// Bytes of file content under each top-level directory (`/usr`, `/var`, `/boot`, …), so a
    /// plan can check that each volume is large enough before anything is written.
    #[serde(default)]
    pub usage: BTreeMap<String, u64>,
    #[serde(default)]
    pub kernel_version: Option<String>,
    #[serde(default)]
    pub xen_version: Option<String>,
    /// Our Debian packages, beside the manifest, that the installer installs into the target with
    /// dpkg after unpacking the archive, so that dpkg knows our binaries, units and settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub debs: Vec<Deb>,
}

/// One `.deb` of the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Deb {
    pub package: String,
    pub version: String,
    /// Its path relative to the manifest's directory: `debs/NAME_VERSION_ARCH.deb`.
    pub file: String,
    /// SHA-256 of the file, lower-case hex; the installer checks it while copying.
    pub sha256: String,
    pub size: u64,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let m: Manifest =
            serde_json::from_str(text).map_err(|e| format!("payload manifest: {e}"))?;
        check_sha256("sha256", &m.sha256)?;
        for d in &m.debs {
            let what = format!("debs: {}", d.package);
            check_sha256(&what, &d.sha256)?;
            // A plain relative path below the manifest's directory, nothing that climbs out of it.
            let plain = d.file.split('/').all(|c| {
                !c.is_empty()
                    && c != "."
                    && c != ".."
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._+~-".contains(&b))
            });
            if !plain || !d.file.ends_with(".deb") {
                return Err(format!(
                    "payload manifest: {what}: file `{}` is not a relative path to a .deb below the manifest",
                    d.file
                ));
            }
            if d.package.is_empty()
                || !d
                    .package
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
            {
                return Err(format!(
                    "payload manifest: debs: package `{}` is not a Debian package name",
                    d.package
                ));
            }
        }
        if !matches!(m.format.as_str(), "tar" | "tar+zstd") {
            return Err(format!(
                "payload manifest: format `{}` is unknown; expected tar or tar+zstd",
                m.format
            ));
        }
        Ok(m)
    }
}

/// Lower case, since the installer compares it byte for byte with the digest it computes.
fn check_sha256(what: &str, hex: &str) -> Result<(), String> {
    if !crate::checksums::is_sha256(hex) || hex.bytes().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "payload manifest: {what}: sha256 `{hex}` is not 64 lower-case hex digits"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(debs: &str) -> String {
        format!(
            r#"{{"file": "payload.tar.zst", "format": "tar+zstd", "sha256": "{}", "size": 1,
                "unpacked-size": 2, "debs": [{debs}]}}"#,
            "ab".repeat(32)
        )
    }

    fn deb(package: &str, file: &str, sha256: &str) -> String {
        format!(
            r#"{{"package": "{package}", "version": "0.1.0", "file": "{file}", "sha256": "{sha256}", "size": 3}}"#
        )
    }

    #[test]
    fn debs_are_read() {
        let m = Manifest::parse(&manifest(&deb(
            "xenprov-repo",
            "debs/xenprov-repo_0.1.0_amd64.deb",
            &"cd".repeat(32),
        )))
        .unwrap();
        assert_eq!(m.debs.len(), 1);
        assert_eq!(m.debs[0].package, "xenprov-repo");
        assert_eq!(m.debs[0].size, 3);
        assert!(Manifest::parse(&manifest("")).unwrap().debs.is_empty());
    }

    #[test]
    fn bad_debs_are_named() {
        let ok = "cd".repeat(32);
        for (d, expect) in [
            (deb("xenprov-repo", "../x.deb", &ok), "file `../x.deb`"),
            (
                deb("xenprov-repo", "/debs/x.deb", &ok),
                "file `/debs/x.deb`",
            ),
            (deb("xenprov-repo", "debs/x.tar", &ok), "file `debs/x.tar`"),
            (
                deb("xenprov-repo", "debs//x.deb", &ok),
                "file `debs//x.deb`",
            ),
            (deb("Xenprov", "debs/x.deb", &ok), "package `Xenprov`"),
            (
                deb("xenprov-repo", "debs/x.deb", "abc"),
                "debs: xenprov-repo: sha256 `abc`",
            ),
            (
                deb("xenprov-repo", "debs/x.deb", &"CD".repeat(32)),
                "is not 64 lower-case",
            ),
        ] {
            let e = Manifest::parse(&manifest(&d)).unwrap_err();
            assert!(e.contains(expect), "{e}");
        }
    }
}
