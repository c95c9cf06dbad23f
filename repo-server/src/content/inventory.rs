//! `xenprov-repo list`: the ISO images, upstream caches and mirrors of a configuration, each with what it
//! holds (`detect`).

use std::fmt::Write;

use crate::content::detect::{detect, summary};
use crate::content::publish::Snapshots;
use crate::settings::config::Config;
use crate::static_files::fs_tree::FsTree;
use crate::static_files::iso_tree::IsoTree;
use crate::static_files::iso9660::Kind;

pub fn list(config: &Config) -> anyhow::Result<()> {
    print!("{}", describe(config));
    Ok(())
}

/// One mount: an ISO image, an upstream's cache or a mirror, and what it holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    /// `iso`, `upstream` or `mirror`.
    pub kind: &'static str,
    pub name: String,
    /// The image's path, the upstream's URL or the mirror's directory.
    pub source: String,
    /// What it holds, or why it cannot be read.
    pub holds: String,
    /// A mirror's published snapshot, and when it was published (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<u64>,
}

/// One line per mount; a mount that cannot be read says why instead of stopping the list.
pub fn describe(config: &Config) -> String {
    let mut out = String::new();
    if config.iso.is_empty() && config.upstream.is_empty() && config.mirror.is_empty() {
        out.push_str("no [[iso]], [[upstream]] or [[mirror]] configured\n");
    }
    for i in items(config) {
        let _ = writeln!(out, "{} {} ({}): {}", i.kind, i.name, i.source, i.holds);
    }
    out
}

/// Every mount of `config`, in the order of the file: ISOs, upstreams, mirrors.
pub fn items(config: &Config) -> Vec<Item> {
    let item = |kind, name: &str, source: String, holds| Item {
        kind,
        name: name.to_string(),
        source,
        holds,
        snapshot: None,
        published: None,
    };
    let mut out = Vec::new();
    for iso in &config.iso {
        let holds = match IsoTree::open(&iso.path) {
            Ok(tree) => {
                let files = tree
                    .index()
                    .entries
                    .iter()
                    .filter(|e| matches!(e.kind, Kind::File(_)))
                    .count();
                format!(
                    "{} names, {files} files, volume {:?}: {}",
                    tree.index().names,
                    tree.index().volume_id,
                    summary(&detect(&tree))
                )
            }
            Err(e) => format!("unreadable: {e:#}"),
        };
        out.push(item(
            "iso",
            &iso.name,
            iso.path.display().to_string(),
            holds,
        ));
    }
    for up in &config.upstream {
        let dir = config.cache.join(&up.name);
        let url = up.url.clone().unwrap_or_else(|| {
            crate::content::upstream::apt_mirror()
                .unwrap_or_else(|| "(no URL; no APT mirror configured)".into())
        });
        let holds = match FsTree::open_root(&dir).map(FsTree::with_object_store) {
            Ok(tree) => format!("cache {}: {}", dir.display(), summary(&detect(&tree))),
            Err(_) => format!("cache {}: empty", dir.display()),
        };
        let url = xenprov_core::net::without_userinfo(&url).into_owned();
        out.push(item("upstream", &up.name, url, holds));
    }
    for m in &config.mirror {
        let dir = config.mirrors.join(&m.name);
        let mut it = item("mirror", &m.name, dir.display().to_string(), String::new());
        it.holds = match Snapshots::open(&dir)
            .ok()
            .and_then(|s| s.current().map(|c| (s, c)))
        {
            Some((snaps, current)) => {
                let path = snaps.path(&current);
                let held = FsTree::open_root(&path)
                    .map(|t| summary(&detect(&t)))
                    .unwrap_or_else(|e| format!("unreadable: {e:#}"));
                it.published = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs());
                let kept = snaps.list().len();
                it.snapshot = Some(current.clone());
                format!("snapshot {current} of {kept} kept: {held}")
            }
            None => "not synced yet".into(),
        };
        out.push(it);
    }
    out
}
