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

/// One line per mount; a mount that cannot be read says why instead of stopping the list.
pub fn describe(config: &Config) -> String {
    let mut out = String::new();
    if config.iso.is_empty() && config.upstream.is_empty() && config.mirror.is_empty() {
        out.push_str("no [[iso]], [[upstream]] or [[mirror]] configured\n");
    }
    for iso in &config.iso {
        let what = match IsoTree::open(&iso.path) {
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
        let _ = writeln!(out, "iso {} ({}): {what}", iso.name, iso.path.display());
    }
    for up in &config.upstream {
        let dir = config.cache.join(&up.name);
        let url = up.url.clone().unwrap_or_else(|| {
            crate::content::upstream::apt_mirror()
                .unwrap_or_else(|| "(no URL; no APT mirror configured)".into())
        });
        let cached = match FsTree::open_root(&dir).map(FsTree::with_object_store) {
            Ok(tree) => format!("cache {}: {}", dir.display(), summary(&detect(&tree))),
            Err(_) => format!("cache {}: empty", dir.display()),
        };
        let _ = writeln!(out, "upstream {} ({url}): {cached}", up.name);
    }
    for m in &config.mirror {
        let dir = config.mirrors.join(&m.name);
        let what = match Snapshots::open(&dir)
            .ok()
            .and_then(|s| s.current().map(|c| (s, c)))
        {
            Some((snaps, current)) => {
                let held = FsTree::open_root(&snaps.path(&current))
                    .map(|t| summary(&detect(&t)))
                    .unwrap_or_else(|e| format!("unreadable: {e:#}"));
                format!("snapshot {current} of {} kept: {held}", snaps.list().len())
            }
            None => "not synced yet".into(),
        };
        let _ = writeln!(out, "mirror {} ({}): {what}", m.name, dir.display());
    }
    out
}
