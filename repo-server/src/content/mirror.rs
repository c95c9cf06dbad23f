//! `xenprov-repo mirror NAME`: a byte-exact copy of chosen suites, components and architectures of an
//! APT repository (or of RPM repositories), verified along the signed chain, published as a new snapshot
//! (`publish`). Upstream metadata is never regenerated, so signatures stay valid.
//!
//! Files are kept once in the mirror's `ObjectStore` and hard-linked into each snapshot. An interrupted
//! sync leaves verified objects and partial downloads behind; the next run reuses and resumes them, and
//! the published snapshot is not touched until a complete one replaces it. Each snapshot also keeps the
//! `by-hash` files of the snapshots before it (and RPM metadata files), so a client that read the previous
//! `InRelease` or `repomd.xml` still finds the indexes it names.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail, ensure};

use crate::content::object_store::ObjectStore;
use crate::content::progress::{self, Progress};
use crate::content::publish::Snapshots;
use crate::content::upstream::{self, FetchError, Upstream};
use crate::content::verify::digest::{hash_bytes, hash_file};
use crate::content::verify::index::{self, strip_compression};
use crate::content::verify::release::Release;
use crate::content::verify::{Expected, join_relative, repomd, signature};
use crate::settings::config::Config;
use crate::settings::specs::MirrorSpec;

/// Downloads at a time.
const PARALLEL: usize = 4;
const MAX_METADATA: u64 = 64 << 20;

/// What a sync published.
#[derive(Debug)]
pub struct Synced {
    pub snapshot: String,
    pub files: usize,
    pub fetched_bytes: u64,
    pub pruned: Vec<String>,
}

/// Syncs mirror `name` of `config` and publishes the result.
pub async fn sync(config: &Config, name: &str) -> anyhow::Result<Synced> {
    let spec = config
        .mirror
        .iter()
        .find(|m| m.name == name)
        .with_context(|| format!("no [[mirror]] named {name:?} in the configuration"))?;
    ensure!(
        !spec.suites.is_empty() || !spec.rpm.is_empty(),
        "mirror {name}: neither suites nor rpm repositories are chosen"
    );
    let upstream_spec = match &spec.upstream {
        Some(u) => Some(
            config
                .upstream
                .iter()
                .find(|x| &x.name == u)
                .with_context(|| format!("mirror {name}: no [[upstream]] named {u:?}"))?,
        ),
        None => None,
    };
    let url = spec
        .url
        .clone()
        .or_else(|| upstream_spec.and_then(|u| u.url.clone()))
        .or_else(upstream::apt_mirror)
        .with_context(|| {
            format!("mirror {name}: no URL, and no Debian mirror in the APT configuration")
        })?;
    let keyring = spec
        .keyring
        .clone()
        .or_else(|| upstream_spec.and_then(|u| u.keyring.clone()))
        .unwrap_or_else(|| config.keyring.clone());
    let dir = config.mirrors.join(name);
    let sync = Sync {
        upstream: Upstream::new(&url)?,
        store: ObjectStore::open(&dir).with_context(|| format!("creating {}", dir.display()))?,
        keyring,
        spec: spec.clone(),
        files: BTreeMap::new(),
    };
    progress::line(&format!("mirror {name}: syncing from {url}"));
    sync.run(&dir).await
}

struct Sync {
    upstream: Upstream,
    store: ObjectStore,
    keyring: PathBuf,
    spec: MirrorSpec,
    /// Every path of the new snapshot and what it must be.
    files: BTreeMap<String, Expected>,
}

impl Sync {
    async fn run(mut self, dir: &Path) -> anyhow::Result<Synced> {
        let snapshots = Snapshots::open(dir)?;
        for suite in self.spec.suites.clone() {
            self.apt_suite(&suite).await?;
        }
        for prefix in self.spec.rpm.clone() {
            self.rpm_repository(&prefix).await?;
        }
        let fetched_bytes = self.fetch_all().await?;
        let (id, tree) = snapshots.start()?;
        let name = &self.spec.name;
        progress::line(&format!("mirror {name}: building snapshot {id}"));
        for (rel, expected) in &self.files {
            link_into(&self.store, &tree, rel, expected)?;
        }
        let mut kept = 0;
        for old in snapshots.list().iter().rev().take(self.spec.keep + 1) {
            kept += keep_old_metadata(&snapshots.path(old), &tree)?;
        }
        self.check_complete(&tree)?;
        snapshots.publish(&id, &tree)?;
        let pruned = snapshots.prune(self.spec.keep)?;
        collect_garbage(&self.store)?;
        progress::line(&format!(
            "mirror {name}: published snapshot {id}: {} files ({kept} older metadata files kept), {} fetched",
            self.files.len(),
            progress::human(fetched_bytes)
        ));
        Ok(Synced {
            snapshot: id,
            files: self.files.len(),
            fetched_bytes,
            pruned,
        })
    }

    async fn get_small(&self, rel: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.upstream
            .get_small(rel, MAX_METADATA)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Stores metadata fetched into memory and records it as a file of the snapshot.
    fn keep_metadata(&mut self, rel: &str, data: &[u8]) -> anyhow::Result<()> {
        let sha = hash_bytes(data);
        self.store
            .put(data, &sha)
            .with_context(|| format!("storing {rel}"))?;
        self.files.insert(
            rel.to_string(),
            Expected {
                sha256: sha,
                size: Some(data.len() as u64),
            },
        );
        Ok(())
    }

    async fn apt_suite(&mut self, suite: &str) -> anyhow::Result<()> {
        let dir = format!("dists/{suite}");
        let inrelease = self.get_small(&format!("{dir}/InRelease")).await?;
        let release = self.get_small(&format!("{dir}/Release")).await?;
        let gpg = self.get_small(&format!("{dir}/Release.gpg")).await?;
        let mut text = None;
        if let Some(data) = &inrelease {
            let signed = signature::verify_clearsigned(&self.keyring, data).map_err(|e| {
                anyhow::anyhow!("{}: {e}", self.upstream.url(&format!("{dir}/InRelease")))
            })?;
            text = Some(signed);
            self.keep_metadata(&format!("{dir}/InRelease"), data)?;
        }
        if let (Some(data), Some(sig)) = (&release, &gpg) {
            signature::verify_detached(&self.keyring, data, sig).map_err(|e| {
                anyhow::anyhow!("{}: {e}", self.upstream.url(&format!("{dir}/Release")))
            })?;
            text.get_or_insert_with(|| data.clone());
            self.keep_metadata(&format!("{dir}/Release"), data)?;
            self.keep_metadata(&format!("{dir}/Release.gpg"), sig)?;
        }
        let text = text.with_context(|| {
            format!(
                "{}: no signed InRelease, or Release with Release.gpg",
                self.upstream.url(&dir)
            )
        })?;
        let release = Release::parse(&String::from_utf8_lossy(&text))
            .and_then(|r| r.check_valid(std::time::SystemTime::now()).map(|()| r))
            .map_err(|e| {
                anyhow::anyhow!("{}: {e}", self.upstream.url(&format!("{dir}/Release")))
            })?;
        // the indexes chosen, grouped by what they hold (Packages, Packages.xz and Packages.gz are one)
        let mut groups: BTreeMap<String, Vec<(String, Expected)>> = BTreeMap::new();
        for (path, expected) in &release.files {
            if self.wanted(path) {
                groups
                    .entry(strip_compression(path).to_string())
                    .or_default()
                    .push((path.clone(), expected.clone()));
            }
        }
        ensure!(
            !groups.is_empty(),
            "{}: lists no indexes for components {:?} and architectures {:?}",
            self.upstream.url(&format!("{dir}/Release")),
            self.spec.components,
            self.spec.architectures
        );
        for (group, variants) in groups {
            let mut found = 0;
            for (path, expected) in variants {
                let rel = format!("{dir}/{path}");
                // Release lists uncompressed names that mirrors often do not carry
                match self
                    .upstream
                    .fetch_object(&rel, &expected, &self.store)
                    .await
                {
                    Ok(()) => {}
                    Err(FetchError::NotFound(_)) => continue,
                    Err(e) => bail!("{e}"),
                }
                found += 1;
                if release.by_hash() {
                    for alias in release.by_hash_paths(&rel, &path) {
                        self.files.insert(alias, expected.clone());
                    }
                }
                self.files.insert(rel.clone(), expected.clone());
                self.read_list(&rel, &expected)?;
            }
            ensure!(
                found > 0,
                "{}: no variant of it exists upstream",
                self.upstream.url(&format!("{dir}/{group}"))
            );
        }
        Ok(())
    }

    /// Whether an index named in a Release belongs to the chosen components and architectures.
    fn wanted(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() < 3 || !self.spec.components.iter().any(|c| c == parts[0]) {
            return false;
        }
        let arch_dir = |d: &str| {
            d.strip_prefix("binary-")
                .is_some_and(|a| a == "all" || self.spec.architectures.iter().any(|x| x == a))
        };
        match parts[1..] {
            [d, name] if arch_dir(d) => strip_compression(name) == "Packages" || name == "Release",
            ["debian-installer", d, name] if arch_dir(d) => strip_compression(name) == "Packages",
            ["i18n", name] => strip_compression(name) == "Translation-en",
            [d, "current", "images", "SHA256SUMS"] => {
                !self.spec.installer_images.is_empty()
                    && d.strip_prefix("installer-")
                        .is_some_and(|a| self.spec.architectures.iter().any(|x| x == a))
            }
            _ => false,
        }
    }

    /// Adds the files a verified list names (packages, installer images) to the snapshot.
    fn read_list(&mut self, rel: &str, expected: &Expected) -> anyhow::Result<()> {
        let Some(kind) = index::IndexKind::of(rel) else {
            return Ok(());
        };
        let data = self.store.read(&expected.sha256)?;
        let data = index::decompress(rel, &data).with_context(|| format!("reading {rel}"))?;
        let text = String::from_utf8_lossy(&data);
        match kind {
            index::IndexKind::Packages => {
                for (file, exp) in index::packages(&text) {
                    if let Some(path) = join_relative("", &file) {
                        self.files.insert(path, exp);
                    }
                }
            }
            index::IndexKind::Sha256Sums => {
                let base = rel.rsplit_once('/').map_or("", |p| p.0);
                for (file, exp) in index::sha256sums(&text) {
                    if self
                        .spec
                        .installer_images
                        .iter()
                        .any(|p| file.starts_with(p.as_str()))
                        && let Some(path) = join_relative(base, &file)
                    {
                        self.files.insert(path, exp);
                    }
                }
            }
        }
        Ok(())
    }

    async fn rpm_repository(&mut self, prefix: &str) -> anyhow::Result<()> {
        let rel = join_relative(prefix, "repodata/repomd.xml").context("bad rpm prefix")?;
        let data = self
            .get_small(&rel)
            .await?
            .with_context(|| format!("{}: not found", self.upstream.url(&rel)))?;
        if self.spec.repomd_signature {
            let asc_rel = format!("{rel}.asc");
            let asc = self
                .get_small(&asc_rel)
                .await?
                .with_context(|| format!("{}: not found", self.upstream.url(&asc_rel)))?;
            signature::verify_detached(&self.keyring, &data, &asc)
                .map_err(|e| anyhow::anyhow!("{}: {e}", self.upstream.url(&asc_rel)))?;
            self.keep_metadata(&asc_rel, &asc)?;
        }
        let entries = repomd::repomd(&data)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.upstream.url(&rel)))?;
        self.keep_metadata(&rel, &data)?;
        for e in entries {
            let path = join_relative(prefix, &e.href)
                .with_context(|| format!("{rel}: location {:?} leaves the repository", e.href))?;
            self.upstream
                .fetch_object(&path, &e.expected, &self.store)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if e.kind == "primary" {
                let xml = index::decompress(&path, &self.store.read(&e.expected.sha256)?)
                    .with_context(|| format!("reading {path}"))?;
                for p in repomd::primary(&xml).map_err(|m| anyhow::anyhow!("{path}: {m}"))? {
                    let pkg = join_relative(prefix, &p.href).with_context(|| {
                        format!("{path}: location {:?} leaves the repository", p.href)
                    })?;
                    self.files.insert(pkg, p.expected);
                }
            }
            self.files.insert(path, e.expected);
        }
        Ok(())
    }

    /// Downloads every file not in the store yet, `PARALLEL` at a time, with progress.
    async fn fetch_all(&self) -> anyhow::Result<u64> {
        let mut missing: Vec<(String, Expected)> = Vec::new();
        let mut seen = HashSet::new();
        for (rel, exp) in &self.files {
            if rel.contains("/by-hash/") || self.store.contains(&exp.sha256) {
                continue;
            }
            if seen.insert(exp.sha256) {
                missing.push((rel.clone(), exp.clone()));
            }
        }
        let total: u64 = missing.iter().filter_map(|(_, e)| e.size).sum();
        let progress = Arc::new(Progress::bytes(
            &format!("mirror {}: {} files", self.spec.name, missing.len()),
            total,
        ));
        let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
        let mut tasks = tokio::task::JoinSet::new();
        for (rel, exp) in missing {
            let (upstream, store, progress) =
                (self.upstream.clone(), self.store.clone(), progress.clone());
            let permit = limit.clone().acquire_owned().await?;
            tasks.spawn(async move {
                let _permit = permit;
                let result = upstream.fetch_object(&rel, &exp, &store).await;
                progress.inc(exp.size.unwrap_or(0));
                result
            });
        }
        let mut failures = Vec::new();
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done? {
                failures.push(e.to_string());
            }
        }
        progress.finish();
        if !failures.is_empty() {
            bail!(
                "{} files failed (nothing published; run again to resume): {}",
                failures.len(),
                failures.join("; ")
            );
        }
        Ok(total)
    }

    /// Every file of the snapshot is there, is the verified object, and has the size its index gives;
    /// metadata files are hashed again.
    fn check_complete(&self, tree: &Path) -> anyhow::Result<()> {
        for (rel, exp) in &self.files {
            let path = tree.join(rel);
            let meta = std::fs::metadata(&path).with_context(|| format!("snapshot lacks {rel}"))?;
            let object = std::fs::metadata(self.store.object_path(&exp.sha256))?;
            ensure!(
                meta.ino() == object.ino() && exp.size.is_none_or(|s| s == meta.len()),
                "snapshot file {rel} is not the verified {exp}"
            );
            if meta.len() < (16 << 20) && !rel.starts_with("pool/") {
                let (sha, _) = hash_file(&path)?;
                ensure!(
                    sha == exp.sha256,
                    "{rel}: expected {exp}, found sha256 {sha}"
                );
            }
        }
        Ok(())
    }
}

/// Hard-links the object of `expected` to `tree/rel`.
fn link_into(
    store: &ObjectStore,
    tree: &Path,
    rel: &str,
    expected: &Expected,
) -> anyhow::Result<()> {
    let path = tree.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::hard_link(store.object_path(&expected.sha256), &path)
        .with_context(|| format!("linking {rel} into {}", tree.display()))
}

/// Links the by-hash indexes and RPM metadata files of an older snapshot into the new one where the new
/// one has no file of that name; returns how many.
fn keep_old_metadata(old: &Path, tree: &Path) -> anyhow::Result<usize> {
    let mut kept = 0;
    let mut stack = vec![old.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                if entry.file_name() != "pool" {
                    stack.push(path);
                }
                continue;
            }
            let rel = path.strip_prefix(old)?;
            let in_by_hash = rel.components().any(|c| c.as_os_str() == "by-hash");
            let rpm_metadata = rel.parent().is_some_and(|p| p.ends_with("repodata"))
                && !rel.ends_with("repomd.xml")
                && !rel.ends_with("repomd.xml.asc");
            let target = tree.join(rel);
            if (in_by_hash || rpm_metadata) && !target.exists() {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::hard_link(&path, &target)?;
                kept += 1;
            }
        }
    }
    Ok(kept)
}

/// Removes objects that no snapshot links any more.
fn collect_garbage(store: &ObjectStore) -> anyhow::Result<()> {
    let objects = store.dir().join(crate::static_files::fs_tree::OBJECTS);
    for shard in std::fs::read_dir(&objects)?.flatten() {
        for object in std::fs::read_dir(shard.path())?.flatten() {
            if object.metadata()?.nlink() == 1 {
                std::fs::remove_file(object.path())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MirrorSpec {
        let config = crate::settings::config::Config::parse(
            "[[mirror]]\nname = \"m\"\nsuites = [\"bookworm\"]\narchitectures = [\"amd64\"]\ninstaller-images = [\"netboot/\"]",
        )
        .unwrap();
        config.mirror[0].clone()
    }

    #[test]
    fn chosen_indexes() {
        let sync = Sync {
            upstream: Upstream::new("http://127.0.0.1:1/").unwrap(),
            store: ObjectStore::open(tempfile::tempdir().unwrap().path()).unwrap(),
            keyring: PathBuf::new(),
            spec: spec(),
            files: BTreeMap::new(),
        };
        for (path, want) in [
            ("main/binary-amd64/Packages.xz", true),
            ("main/binary-amd64/Release", true),
            ("main/binary-all/Packages.gz", true),
            ("main/binary-arm64/Packages.xz", false),
            ("contrib/binary-amd64/Packages.xz", false),
            ("main/debian-installer/binary-amd64/Packages.xz", true),
            ("main/i18n/Translation-en.bz2", true),
            ("main/i18n/Translation-de.bz2", false),
            ("main/installer-amd64/current/images/SHA256SUMS", true),
            ("main/installer-arm64/current/images/SHA256SUMS", false),
            ("main/Contents-amd64.gz", false),
            ("main/source/Sources.xz", false),
        ] {
            assert_eq!(sync.wanted(path), want, "{path}");
        }
    }
}
