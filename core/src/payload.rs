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
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let m: Manifest =
            serde_json::from_str(text).map_err(|e| format!("payload manifest: {e}"))?;
        if m.sha256.len() != 64 || !m.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "payload manifest: sha256 `{}` is not 64 hex digits",
                m.sha256
            ));
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
