//! A verifying pull-through cache of one upstream repository, served at `/NAME/`.
//!
//! The cache directory is an `ObjectStore` whose request paths are symlinks to verified objects, so a
//! cache hit is an ordinary file of the static handler (sendfile, ranges, validators) and costs nothing
//! here. On a miss the file is fetched once, however many clients ask (`SingleFlight`), verified, and
//! only then linked:
//! - `dists/S/InRelease`, `Release` + `Release.gpg` are the roots of trust, checked with gpgv against
//!   the keyring and refreshed from the upstream once they are older than the metadata TTL;
//! - every other file under `dists/S/` must be listed in S's verified Release (by name or by-hash);
//! - pool files must be listed in a verified `Packages` index, installer images in a verified
//!   `SHA256SUMS`;
//! - RPM: `repodata/repomd.xml` (with `repomd.xml.asc` when required) lists the metadata, `primary.xml`
//!   every package; an install tree's `.treeinfo` lists its boot and install images. Unsigned
//!   `repomd.xml` and `.treeinfo` are taken as the upstream sends them, unless `repomd-signature` is set
//!   (then `.treeinfo`, which has no signature, is refused).
//!
//! A file that fails is deleted and logged with the expected and found digests, never served. When the
//! upstream cannot be reached, everything already verified is still served.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use hyper::StatusCode;

use crate::content::object_store::ObjectStore;
use crate::content::single_flight::SingleFlight;
use crate::content::upstream::{self, FetchError, Upstream};
use crate::content::verify::digest::hash_bytes;
use crate::content::verify::index::{self, IndexKind};
use crate::content::verify::release::Release;
use crate::content::verify::{Expected, Sha256, join_relative, repomd, signature, treeinfo};
use crate::settings::specs::UpstreamSpec;

/// Metadata files (InRelease, repomd.xml) larger than this are refused.
const MAX_METADATA: u64 = 64 << 20;

/// Why a request could not be answered from the cache.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl From<FetchError> for Failure {
    fn from(e: FetchError) -> Failure {
        let status = match &e {
            FetchError::NotFound(_) => StatusCode::NOT_FOUND,
            FetchError::Unreachable(_) | FetchError::Mismatch(_) => StatusCode::BAD_GATEWAY,
            FetchError::Local(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure::new(status, e.to_string())
    }
}

/// A root of trust: an APT suite directory or an RPM repository prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Root {
    Apt(String),
    Rpm(String),
    /// An anaconda install tree's `.treeinfo`.
    Tree(String),
}

impl Root {
    fn of(rel: &str) -> Option<Root> {
        for name in ["/InRelease", "/Release", "/Release.gpg"] {
            if let Some(dir) = rel.strip_suffix(name)
                && dir.starts_with("dists/")
            {
                return Some(Root::Apt(dir.to_string()));
            }
        }
        for name in ["repodata/repomd.xml", "repodata/repomd.xml.asc"] {
            if let Some(prefix) = rel.strip_suffix(name)
                && (prefix.is_empty() || prefix.ends_with('/'))
            {
                return Some(Root::Rpm(prefix.trim_end_matches('/').to_string()));
            }
        }
        if let Some(prefix) = rel.strip_suffix(".treeinfo")
            && (prefix.is_empty() || prefix.ends_with('/'))
        {
            return Some(Root::Tree(prefix.trim_end_matches('/').to_string()));
        }
        None
    }

    /// The suite whose Release must list `rel` (`dists/S/...`).
    fn suite_of(rel: &str) -> Option<Root> {
        let mut parts = rel.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("dists"), Some(suite), Some(_)) => Some(Root::Apt(format!("dists/{suite}"))),
            _ => None,
        }
    }

    /// The install tree whose `.treeinfo` would name `rel` (`PREFIX/images/...`, `PREFIX/LiveOS/...`).
    fn tree_of(rel: &str) -> Option<Root> {
        if rel.starts_with("dists/") {
            return None; // APT suites: their images are named by SHA256SUMS
        }
        ["images/", "LiveOS/"].iter().find_map(|dir| {
            let at = rel.find(dir)?;
            let prefix = &rel[..at];
            (prefix.is_empty() || prefix.ends_with('/'))
                .then(|| Root::Tree(prefix.trim_end_matches('/').to_string()))
        })
    }

    fn files(&self) -> Vec<String> {
        match self {
            Root::Apt(dir) => ["InRelease", "Release", "Release.gpg"]
                .iter()
                .map(|n| format!("{dir}/{n}"))
                .collect(),
            Root::Rpm(prefix) => ["repodata/repomd.xml", "repodata/repomd.xml.asc"]
                .iter()
                .map(|n| join_relative(prefix, n).unwrap_or_default())
                .collect(),
            Root::Tree(prefix) => vec![join_relative(prefix, ".treeinfo").unwrap_or_default()],
        }
    }
}

/// A list of files whose entries are trusted once the list itself is verified.
#[derive(Debug, Clone)]
struct List {
    kind: ListKind,
    /// Name of the list (its compression decides how it is read).
    name: String,
    /// Directory its entries are relative to.
    base: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Packages,
    Sha256Sums,
    Primary,
}

#[derive(Default)]
struct Catalog {
    /// Request path → what it must be.
    files: HashMap<String, Expected>,
    /// Verified lists whose entries are added to `files` once fetched (one content can be listed under
    /// several names, e.g. an installer's `current/` and dated directories).
    lists: HashMap<Sha256, Vec<List>>,
    parsed: HashSet<Sha256>,
    roots: HashSet<Root>,
}

pub struct PullThrough {
    name: String,
    upstream: Upstream,
    store: ObjectStore,
    keyring: PathBuf,
    repomd_signature: bool,
    ttl: Duration,
    catalog: RwLock<Catalog>,
    flights: Arc<SingleFlight<Result<(), Failure>>>,
    recovered: tokio::sync::OnceCell<()>,
    tally: Tally,
}

/// What a cache fetched from its upstream since the server started: files verified (and their
/// bytes), refused (a digest or signature that did not match, metadata that is not valid) and failed
/// (not found, unreachable), for `/metrics` and the status page.
#[derive(Debug, Default)]
struct Tally {
    verified: AtomicU64,
    verified_bytes: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    fn verified(&self, bytes: u64) {
        self.verified.fetch_add(1, Relaxed);
        self.verified_bytes.fetch_add(bytes, Relaxed);
    }
}

/// A cache's `Tally`, read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Fetches {
    pub verified: u64,
    pub verified_bytes: u64,
    pub refused: u64,
    pub failed: u64,
}

impl PullThrough {
    /// The cache of `spec` in `cache/NAME`.
    pub fn open(
        spec: &UpstreamSpec,
        cache: &Path,
        default_keyring: &Path,
    ) -> anyhow::Result<Arc<PullThrough>> {
        let url = match &spec.url {
            Some(url) => url.clone(),
            None => upstream::apt_mirror().with_context(|| {
                format!(
                    "upstream {}: no URL given and no Debian mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list",
                    spec.name
                )
            })?,
        };
        let dir = cache.join(&spec.name);
        let store = ObjectStore::open(&dir)
            .with_context(|| format!("creating the cache {}", dir.display()))?;
        Ok(Arc::new(PullThrough {
            name: spec.name.clone(),
            upstream: Upstream::new(&url)?,
            store,
            keyring: spec
                .keyring
                .clone()
                .unwrap_or_else(|| default_keyring.to_owned()),
            repomd_signature: spec.repomd_signature,
            ttl: spec.metadata_ttl,
            catalog: RwLock::default(),
            flights: Arc::default(),
            recovered: tokio::sync::OnceCell::new(),
            tally: Tally::default(),
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it fetched since the server started.
    pub fn fetches(&self) -> Fetches {
        let t = &self.tally;
        Fetches {
            verified: t.verified.load(Relaxed),
            verified_bytes: t.verified_bytes.load(Relaxed),
            refused: t.refused.load(Relaxed),
            failed: t.failed.load(Relaxed),
        }
    }

    /// The upstream's URL, as logs and pages show it (no user or password).
    pub fn url(&self) -> String {
        self.upstream.url("")
    }

    /// The directory served at `/NAME/`.
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// Before a root of trust is served: fetches and verifies it again once it is older than the TTL.
    /// When that fails, the copy verified earlier is served.
    pub async fn refresh_if_stale(self: &Arc<Self>, rel: &str) -> Result<(), Failure> {
        let Some(root) = Root::of(rel) else {
            return Ok(());
        };
        let link = self.dir().join(rel);
        let age = std::fs::symlink_metadata(&link)
            .and_then(|m| m.modified())
            .map(|t| SystemTime::now().duration_since(t).unwrap_or_default());
        if age.as_ref().is_ok_and(|age| *age < self.ttl) {
            return Ok(());
        }
        match self.refresh(root).await {
            Err(f) if age.is_ok() => {
                tracing::warn!(
                    "upstream {}: {}; serving /{}/{rel} as verified earlier",
                    self.name,
                    f.message,
                    self.name
                );
                Ok(())
            }
            r => r,
        }
    }

    /// Fetches and verifies `rel`, which the static handler did not find in the cache.
    pub async fn fetch(self: &Arc<Self>, rel: &str) -> Result<(), Failure> {
        self.recover().await;
        if let Some(root) = Root::of(rel) {
            self.refresh(root).await?;
            return match self.store.linked(rel) {
                Some(_) => Ok(()),
                None => Err(Failure::new(
                    StatusCode::NOT_FOUND,
                    format!("upstream {} has no verified {rel}", self.name),
                )),
            };
        }
        let expected = match self.lookup(rel) {
            Some(e) => e,
            None => self.learn(rel).await?,
        };
        match self.fetch_object(rel, &expected).await {
            Err(f) if f.status == StatusCode::BAD_GATEWAY && Root::suite_of(rel).is_some() => {
                // an index may have changed upstream since our Release: take the new Release, once
                let root = Root::suite_of(rel).expect("checked");
                self.refresh(root).await?;
                let expected = self
                    .lookup(rel)
                    .ok_or_else(|| not_listed(&self.name, rel))?;
                self.fetch_object(rel, &expected).await?;
            }
            r => r?,
        }
        Ok(())
    }

    fn lookup(&self, rel: &str) -> Option<Expected> {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .files
            .get(rel)
            .cloned()
    }

    /// What `rel` must be, when no verified list seen so far names it: the suite's Release may not be
    /// known yet, or a list that names it is in the cache but not read yet.
    async fn learn(self: &Arc<Self>, rel: &str) -> Result<Expected, Failure> {
        if let Some(root) = Root::suite_of(rel) {
            let known = self.catalog().roots.contains(&root);
            if !known {
                self.refresh(root).await?;
            }
        }
        // an install tree's images: its .treeinfo names them
        if let Some(root) = Root::tree_of(rel)
            && !self.catalog().roots.contains(&root)
        {
            let _ = self.refresh(root).await;
        }
        // installer images are fetched directly (xl, virt-install): fetch the SHA256SUMS naming them
        for (name, expected) in self.unfetched_sums_over(rel) {
            self.fetch_object(&name, &expected).await?;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.parse_lists(None))
            .await
            .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
        self.lookup(rel).ok_or_else(|| not_listed(&self.name, rel))
    }

    /// `SHA256SUMS` files listed in a verified Release, not fetched yet, whose directory holds `rel`.
    fn unfetched_sums_over(&self, rel: &str) -> Vec<(String, Expected)> {
        let catalog = self.catalog();
        catalog
            .lists
            .iter()
            .filter(|(sha, _)| !self.store.contains(sha))
            .flat_map(|(_, lists)| lists)
            .filter(|l| l.kind == ListKind::Sha256Sums && rel.starts_with(&format!("{}/", l.base)))
            .filter_map(|l| Some((l.name.clone(), catalog.files.get(&l.name)?.clone())))
            .collect()
    }

    async fn fetch_object(self: &Arc<Self>, rel: &str, expected: &Expected) -> Result<(), Failure> {
        let this = self.clone();
        let (rel_owned, exp) = (rel.to_string(), expected.clone());
        let key = format!("object {}", expected.sha256);
        let result = self
            .flights
            .run(key, &upstream::runtime(), async move {
                let had = this.store.contains(&exp.sha256);
                this.upstream
                    .fetch_object(&rel_owned, &exp, &this.store)
                    .await
                    .map_err(|e| {
                        match &e {
                            FetchError::Mismatch(m) => this.refused(m),
                            e => {
                                this.tally.failed.fetch_add(1, Relaxed);
                                tracing::warn!("upstream {}: {e}", this.name)
                            }
                        }
                        Failure::from(e)
                    })?;
                if !had {
                    let path = this.store.object_path(&exp.sha256);
                    this.tally
                        .verified(std::fs::metadata(path).map_or(0, |m| m.len()));
                }
                let this2 = this.clone();
                let sha = exp.sha256;
                tokio::task::spawn_blocking(move || this2.parse_lists(Some(sha)))
                    .await
                    .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            })
            .await;
        result?;
        self.store.link(rel, &expected.sha256).map_err(|e| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("linking {rel} in {}: {e}", self.dir().display()),
            )
        })
    }

    fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner())
    }

    fn catalog_mut(&self) -> std::sync::RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches and verifies a root of trust, shared by concurrent callers.
    async fn refresh(self: &Arc<Self>, root: Root) -> Result<(), Failure> {
        let this = self.clone();
        let key = format!("root {root:?}");
        self.flights
            .run(key, &upstream::runtime(), async move {
                let result = match &root {
                    Root::Apt(dir) => this.refresh_apt(dir).await,
                    Root::Rpm(prefix) => this.refresh_rpm(prefix).await,
                    Root::Tree(prefix) => this.refresh_tree(prefix).await,
                };
                if let Err(f) = &result {
                    tracing::warn!("upstream {}: {}", this.name, f.message);
                }
                result
            })
            .await
    }

    async fn refresh_apt(self: &Arc<Self>, dir: &str) -> Result<(), Failure> {
        let mut fetched = Vec::new();
        let mut unreachable = None;
        for name in ["InRelease", "Release", "Release.gpg"] {
            let rel = format!("{dir}/{name}");
            match self.upstream.get_small(&rel, MAX_METADATA).await {
                Ok(data) => fetched.push(data),
                Err(e) => {
                    unreachable.get_or_insert(e);
                    fetched.push(None);
                }
            }
        }
        let [inrelease, release, gpg]: [Option<Vec<u8>>; 3] =
            fetched.try_into().expect("three files");
        if inrelease.is_none() && release.is_none() {
            return Err(match unreachable {
                Some(e) => e.into(),
                None => Failure::new(
                    StatusCode::NOT_FOUND,
                    format!("{}: no InRelease or Release", self.upstream.url(dir)),
                ),
            });
        }
        let this = self.clone();
        let dir = dir.to_string();
        tokio::task::spawn_blocking(move || this.accept_apt_root(&dir, inrelease, release, gpg))
            .await
            .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    }

    /// Verifies what the upstream sent for suite `dir`, stores and links what passed, and learns the
    /// suite's index files from it.
    fn accept_apt_root(
        &self,
        dir: &str,
        inrelease: Option<Vec<u8>>,
        release: Option<Vec<u8>>,
        gpg: Option<Vec<u8>>,
    ) -> Result<(), Failure> {
        let mut text = None;
        let mut refusals = Vec::new();
        let mut accepted: Vec<(&str, Vec<u8>)> = Vec::new();
        if let Some(data) = inrelease {
            match signature::verify_clearsigned(&self.keyring, &data) {
                Ok(signed) => {
                    text = Some(signed);
                    accepted.push(("InRelease", data));
                }
                Err(e) => refusals.push(format!(
                    "{}: {e}",
                    self.upstream.url(&format!("{dir}/InRelease"))
                )),
            }
        }
        if let Some(data) = release {
            let url = self.upstream.url(&format!("{dir}/Release"));
            match gpg {
                Some(sig) => match signature::verify_detached(&self.keyring, &data, &sig) {
                    Ok(()) => {
                        text.get_or_insert_with(|| data.clone());
                        accepted.push(("Release", data));
                        accepted.push(("Release.gpg", sig));
                    }
                    Err(e) => refusals.push(format!("{url} with Release.gpg: {e}")),
                },
                None if text.is_some() => {} // InRelease is enough; Release alone is not served
                None => refusals.push(format!("{url}: no Release.gpg beside it")),
            }
        }
        for r in &refusals {
            self.refused(&format!("{r}; not served"));
        }
        let text = text.ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_GATEWAY,
                format!("no verified Release for {dir}: {}", refusals.join("; ")),
            )
        })?;
        let release = Release::parse(&String::from_utf8_lossy(&text))
            .and_then(|r| r.check_valid(SystemTime::now()).map(|()| r))
            .map_err(|e| {
                let message = format!("{}: {e}", self.upstream.url(&format!("{dir}/Release")));
                self.refused(&format!("{message}; not served"));
                Failure::new(StatusCode::BAD_GATEWAY, message)
            })?;
        for (name, data) in &accepted {
            self.keep_verified(&format!("{dir}/{name}"), data)?;
        }
        let mut catalog = self.catalog_mut();
        for (path, expected) in &release.files {
            let Some(full) = join_relative(dir, path) else {
                continue;
            };
            if let Some(kind) = IndexKind::of(path) {
                let base = match kind {
                    IndexKind::Packages => String::new(),
                    IndexKind::Sha256Sums => full.rsplit_once('/').map_or("", |p| p.0).to_string(),
                };
                let kind = match kind {
                    IndexKind::Packages => ListKind::Packages,
                    IndexKind::Sha256Sums => ListKind::Sha256Sums,
                };
                add_list(
                    &mut catalog,
                    expected.sha256,
                    List {
                        kind,
                        name: full.clone(),
                        base,
                    },
                );
            }
            if release.by_hash() {
                for alias in release.by_hash_paths(&full, path) {
                    catalog.files.insert(alias, expected.clone());
                }
            }
            self.relink(&full, expected);
            catalog.files.insert(full, expected.clone());
        }
        catalog.roots.insert(Root::Apt(dir.to_string()));
        Ok(())
    }

    /// Logs what was refused, and counts it.
    fn refused(&self, message: &str) {
        self.tally.refused.fetch_add(1, Relaxed);
        tracing::error!("upstream {}: {message}", self.name);
    }

    /// Stores a verified metadata file and links its request path to it.
    fn keep_verified(&self, rel: &str, data: &[u8]) -> Result<(), Failure> {
        let sha = hash_bytes(data);
        self.tally.verified(data.len() as u64);
        self.store
            .put(data, &sha)
            .and_then(|_| self.store.link(rel, &sha))
            .map_err(|e| {
                Failure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("storing {rel} in {}: {e}", self.dir().display()),
                )
            })
    }

    /// A cached path whose content the new metadata changed points at the new content if that is in
    /// the store, and is removed otherwise, so that it is fetched again: never a stale index by name.
    fn relink(&self, rel: &str, expected: &Expected) {
        match self.store.linked(rel) {
            Some(old) if old != expected.sha256 => {
                let _ = if self.store.contains(&expected.sha256) {
                    self.store.link(rel, &expected.sha256)
                } else {
                    self.store.unlink(rel)
                };
            }
            _ => {}
        }
    }

    /// A metadata file the upstream must have: 404 when it does not.
    async fn get_metadata(&self, rel: &str) -> Result<Vec<u8>, Failure> {
        self.upstream
            .get_small(rel, MAX_METADATA)
            .await?
            .ok_or_else(|| {
                Failure::new(
                    StatusCode::NOT_FOUND,
                    format!("{}: not found", self.upstream.url(rel)),
                )
            })
    }

    async fn refresh_rpm(self: &Arc<Self>, prefix: &str) -> Result<(), Failure> {
        let rel = join_relative(prefix, "repodata/repomd.xml").unwrap_or_default();
        let data = self.get_metadata(&rel).await?;
        let asc = if self.repomd_signature {
            let asc_rel = format!("{rel}.asc");
            Some(
                self.upstream
                    .get_small(&asc_rel, MAX_METADATA)
                    .await?
                    .ok_or_else(|| {
                        let m = format!(
                            "{}: not found, and a signed repomd.xml is required",
                            self.upstream.url(&asc_rel)
                        );
                        self.refused(&m);
                        Failure::new(StatusCode::BAD_GATEWAY, m)
                    })?,
            )
        } else {
            None
        };
        let this = self.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || this.accept_rpm_root(&prefix, data, asc))
            .await
            .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    }

    fn accept_rpm_root(
        &self,
        prefix: &str,
        data: Vec<u8>,
        asc: Option<Vec<u8>>,
    ) -> Result<(), Failure> {
        let rel = join_relative(prefix, "repodata/repomd.xml").unwrap_or_default();
        let refuse = |m: String| {
            let m = format!("{}: {m}", self.upstream.url(&rel));
            self.refused(&format!("{m}; not served"));
            Failure::new(StatusCode::BAD_GATEWAY, m)
        };
        if let Some(sig) = &asc {
            signature::verify_detached(&self.keyring, &data, sig)
                .map_err(|e| refuse(format!("repomd.xml.asc: {e}")))?;
        }
        let entries = repomd::repomd(&data).map_err(refuse)?;
        self.keep_verified(&rel, &data)?;
        if let Some(asc) = &asc {
            self.keep_verified(&format!("{rel}.asc"), asc)?;
        }
        let mut catalog = self.catalog_mut();
        for e in entries {
            let Some(full) = join_relative(prefix, &e.href) else {
                continue;
            };
            if e.kind == "primary" {
                add_list(
                    &mut catalog,
                    e.expected.sha256,
                    List {
                        kind: ListKind::Primary,
                        name: full.clone(),
                        base: prefix.to_string(),
                    },
                );
            }
            self.relink(&full, &e.expected);
            catalog.files.insert(full, e.expected);
        }
        catalog.roots.insert(Root::Rpm(prefix.to_string()));
        Ok(())
    }

    async fn refresh_tree(self: &Arc<Self>, prefix: &str) -> Result<(), Failure> {
        let rel = join_relative(prefix, ".treeinfo").unwrap_or_default();
        if self.repomd_signature {
            return Err(Failure::new(
                StatusCode::NOT_FOUND,
                format!(
                    "{rel}: a .treeinfo has no signature, and this upstream requires signed metadata"
                ),
            ));
        }
        let data = self.get_metadata(&rel).await?;
        self.accept_tree(prefix, &data)
    }

    fn accept_tree(&self, prefix: &str, data: &[u8]) -> Result<(), Failure> {
        self.keep_verified(
            &join_relative(prefix, ".treeinfo").unwrap_or_default(),
            data,
        )?;
        let mut catalog = self.catalog_mut();
        for (path, expected) in treeinfo::checksums(&String::from_utf8_lossy(data)) {
            if let Some(full) = join_relative(prefix, &path) {
                self.relink(&full, &expected);
                catalog.files.insert(full, expected);
            }
        }
        catalog.roots.insert(Root::Tree(prefix.to_string()));
        Ok(())
    }

    /// Reads verified lists that are in the store and not read yet (only `only`, when given), adding
    /// their entries to the catalog.
    fn parse_lists(&self, only: Option<Sha256>) -> Result<(), Failure> {
        let pending: Vec<(Sha256, Vec<List>)> = {
            let catalog = self.catalog();
            catalog
                .lists
                .iter()
                .filter(|(sha, _)| {
                    only.is_none_or(|o| o == **sha) && !catalog.parsed.contains(*sha)
                })
                .filter(|(sha, _)| self.store.contains(sha))
                .map(|(sha, lists)| (*sha, lists.clone()))
                .collect()
        };
        for (sha, lists) in pending {
            let entries = match self.read_list(&sha, &lists[0]) {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::error!("upstream {}: reading {}: {e}", self.name, lists[0].name);
                    continue;
                }
            };
            let mut catalog = self.catalog_mut();
            for list in &lists {
                for (path, expected) in &entries {
                    if let Some(full) = join_relative(&list.base, path) {
                        catalog.files.insert(full, expected.clone());
                    }
                }
            }
            catalog.parsed.insert(sha);
        }
        Ok(())
    }

    fn read_list(&self, sha: &Sha256, list: &List) -> Result<Vec<(String, Expected)>, String> {
        let data = self.store.read(sha).map_err(|e| e.to_string())?;
        let data = index::decompress(&list.name, &data).map_err(|e| e.to_string())?;
        Ok(match list.kind {
            ListKind::Packages => index::packages(&String::from_utf8_lossy(&data)),
            ListKind::Sha256Sums => index::sha256sums(&String::from_utf8_lossy(&data)),
            ListKind::Primary => repomd::primary(&data)?
                .into_iter()
                .map(|e| (e.href, e.expected))
                .collect(),
        })
    }

    /// After a restart: learns the roots already in the cache again (checking their signatures again),
    /// so that cached lists are trusted and files they name can be fetched.
    async fn recover(self: &Arc<Self>) {
        let this = self.clone();
        self.recovered
            .get_or_init(|| async move {
                let _ = tokio::task::spawn_blocking(move || this.recover_roots()).await;
            })
            .await;
    }

    fn recover_roots(&self) {
        for root in cached_roots(self.dir()) {
            let read = |rel: &str| {
                self.store
                    .linked(rel)
                    .and_then(|sha| self.store.read(&sha).ok())
            };
            let files = root.files();
            let result = match &root {
                Root::Apt(dir) => {
                    self.accept_apt_root(dir, read(&files[0]), read(&files[1]), read(&files[2]))
                }
                Root::Rpm(prefix) => match read(&files[0]) {
                    Some(data) => self.accept_rpm_root(prefix, data, read(&files[1])),
                    None => continue,
                },
                Root::Tree(prefix) => match read(&files[0]) {
                    Some(data) if !self.repomd_signature => self.accept_tree(prefix, &data),
                    _ => continue,
                },
            };
            if let Err(f) = result {
                tracing::warn!("upstream {}: cached {root:?}: {}", self.name, f.message);
            }
        }
    }
}

fn add_list(catalog: &mut Catalog, sha: Sha256, list: List) {
    let lists = catalog.lists.entry(sha).or_default();
    if !lists.iter().any(|l| l.name == list.name) {
        lists.push(list);
    }
}

fn not_listed(name: &str, rel: &str) -> Failure {
    let message = format!("{rel} is not listed in any verified index of upstream {name}");
    tracing::info!("{message}; not fetched");
    Failure::new(StatusCode::NOT_FOUND, message)
}

/// Roots of trust linked in a cache directory: `dists/*/{InRelease,Release}` and `**/repodata/repomd.xml`.
fn cached_roots(dir: &Path) -> Vec<Root> {
    let mut roots = Vec::new();
    for entry in std::fs::read_dir(dir.join("dists"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let suite = entry.path();
        if suite.join("InRelease").exists() || suite.join("Release").exists() {
            roots.push(Root::Apt(format!("dists/{name}")));
        }
    }
    let mut stack = vec![(dir.to_path_buf(), String::new(), 0)];
    while let Some((path, rel, depth)) = stack.pop() {
        if path.join("repodata/repomd.xml").exists() {
            roots.push(Root::Rpm(rel.clone()));
        }
        if path.join(".treeinfo").exists() {
            roots.push(Root::Tree(rel.clone()));
        }
        if depth >= 6 {
            continue;
        }
        for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "dists" || name == "pool" || name == "repodata" {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                stack.push((entry.path(), child, depth + 1));
            }
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::verify::signature::tests::TestKey;
    use crate::server::Server;
    use crate::settings::config::Config;
    use std::fs;

    /// A signed upstream suite `dists/s` with one package, served by another xenprov-repo on loopback.
    struct Upstream {
        dir: tempfile::TempDir,
        key: TestKey,
        url: String,
        _stop: tokio::sync::oneshot::Sender<()>,
    }

    impl Upstream {
        fn start() -> Upstream {
            let dir = tempfile::tempdir().unwrap();
            let key = TestKey::generate();
            let config = Config {
                root: dir.path().to_owned(),
                listen: "127.0.0.1:0".parse().unwrap(),
                access_log: false,
                workers: 1,
                ..Config::default()
            };
            let (addr_tx, addr_rx) = std::sync::mpsc::channel();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async {
                    let server = Server::bind(config).unwrap();
                    addr_tx.send(server.local_addr().unwrap()).unwrap();
                    let _ = server
                        .run(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            });
            let url = format!("http://{}/", addr_rx.recv().unwrap());
            let up = Upstream {
                dir,
                key,
                url,
                _stop: stop,
            };
            up.publish(b"package a");
            up
        }

        fn write(&self, rel: &str, data: &[u8]) {
            let path = self.dir.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, data).unwrap();
        }

        /// The package with `content`, its Packages index and a signed Release.
        fn publish(&self, content: &[u8]) {
            self.write("pool/main/a.deb", content);
            let packages = format!(
                "Package: a\nFilename: pool/main/a.deb\nSize: {}\nSHA256: {}\n",
                content.len(),
                hash_bytes(content)
            );
            self.write("dists/s/main/binary-amd64/Packages", packages.as_bytes());
            let release = format!(
                "Suite: s\nCodename: s\nSHA256:\n {} {} main/binary-amd64/Packages\n",
                hash_bytes(packages.as_bytes()),
                packages.len()
            );
            self.write(
                "dists/s/InRelease",
                &self.key.sign(&["--clearsign"], release.as_bytes()),
            );
        }

        fn cache(&self, cache: &Path) -> Arc<PullThrough> {
            self.cache_with_keyring(cache, &self.key.keyring)
        }

        fn cache_with_keyring(&self, cache: &Path, keyring: &Path) -> Arc<PullThrough> {
            let spec = UpstreamSpec {
                url: Some(self.url.clone()),
                ..UpstreamSpec::parse_flag("up").unwrap()
            };
            PullThrough::open(&spec, cache, keyring).unwrap()
        }
    }

    fn cached(cache: &PullThrough, rel: &str) -> Option<Vec<u8>> {
        fs::read(cache.dir().join(rel)).ok()
    }

    #[tokio::test]
    async fn verified_along_the_chain() {
        let up = Upstream::start();
        let dir = tempfile::tempdir().unwrap();
        let cache = up.cache(dir.path());
        // a package no verified index names yet is not fetched
        let f = cache.fetch("pool/main/a.deb").await.unwrap_err();
        assert_eq!(f.status, StatusCode::NOT_FOUND, "{}", f.message);
        assert!(f.message.contains("not listed"), "{}", f.message);
        cache.fetch("dists/s/InRelease").await.unwrap();
        cache
            .fetch("dists/s/main/binary-amd64/Packages")
            .await
            .unwrap();
        cache.fetch("pool/main/a.deb").await.unwrap();
        assert_eq!(cached(&cache, "pool/main/a.deb").unwrap(), b"package a");
        // files outside the suite's Release are refused
        let f = cache
            .fetch("dists/s/main/binary-amd64/Packages.xz")
            .await
            .unwrap_err();
        assert_eq!(f.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn tampered_files_are_refused() {
        let up = Upstream::start();
        let dir = tempfile::tempdir().unwrap();
        let cache = up.cache(dir.path());
        cache.fetch("dists/s/InRelease").await.unwrap();
        cache
            .fetch("dists/s/main/binary-amd64/Packages")
            .await
            .unwrap();
        up.write("pool/main/a.deb", b"package b"); // same size, other bytes
        let f = cache.fetch("pool/main/a.deb").await.unwrap_err();
        assert_eq!(f.status, StatusCode::BAD_GATEWAY);
        assert!(f.message.contains("expected sha256"), "{}", f.message);
        assert_eq!(cached(&cache, "pool/main/a.deb"), None);
        assert_eq!(
            fs::read_dir(dir.path().join("up/.partial"))
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn a_release_signed_by_another_key_is_refused() {
        let up = Upstream::start();
        let other = TestKey::generate();
        let text = b"Suite: s\nSHA256:\n 00 0 x\n";
        up.write("dists/s/InRelease", &other.sign(&["--clearsign"], text));
        let dir = tempfile::tempdir().unwrap();
        let cache = up.cache(dir.path());
        let f = cache.fetch("dists/s/InRelease").await.unwrap_err();
        assert_eq!(f.status, StatusCode::BAD_GATEWAY);
        assert!(f.message.contains("no verified Release"), "{}", f.message);
        assert_eq!(cached(&cache, "dists/s/InRelease"), None);
    }

    #[tokio::test]
    async fn an_index_changed_upstream_is_fetched_with_the_new_release() {
        let up = Upstream::start();
        let dir = tempfile::tempdir().unwrap();
        let cache = up.cache(dir.path());
        cache.fetch("dists/s/InRelease").await.unwrap();
        up.publish(b"package two");
        // our Release is older than the upstream's index: the new Release is taken, once
        cache
            .fetch("dists/s/main/binary-amd64/Packages")
            .await
            .unwrap();
        cache.fetch("pool/main/a.deb").await.unwrap();
        assert_eq!(cached(&cache, "pool/main/a.deb").unwrap(), b"package two");
    }

    #[tokio::test]
    async fn an_armored_keyring_is_used_and_one_without_a_key_named() {
        let up = Upstream::start();
        let dir = tempfile::tempdir().unwrap();
        let armored = dir.path().join("RPM-GPG-KEY-up");
        fs::write(&armored, up.key.gpg(&["--armor", "--export"])).unwrap();
        let cache = up.cache_with_keyring(&dir.path().join("a"), &armored);
        cache.fetch("dists/s/InRelease").await.unwrap();
        cache
            .fetch("dists/s/main/binary-amd64/Packages")
            .await
            .unwrap();
        cache.fetch("pool/main/a.deb").await.unwrap();

        let no_key = dir.path().join("notes.asc");
        fs::write(&no_key, "fingerprint: see the vendor's site\n").unwrap();
        let cache = up.cache_with_keyring(&dir.path().join("b"), &no_key);
        let f = cache.fetch("dists/s/InRelease").await.unwrap_err();
        assert_eq!(f.status, StatusCode::BAD_GATEWAY);
        let said = format!("no OpenPGP public key in {}", no_key.display());
        assert!(f.message.contains(&said), "{}", f.message);
    }

    #[test]
    fn roots_of_paths() {
        assert_eq!(
            Root::of("dists/bookworm/InRelease"),
            Some(Root::Apt("dists/bookworm".into()))
        );
        assert_eq!(
            Root::of("dists/bookworm/Release.gpg"),
            Some(Root::Apt("dists/bookworm".into()))
        );
        assert_eq!(Root::of("pool/Release"), None);
        assert_eq!(
            Root::of("repodata/repomd.xml"),
            Some(Root::Rpm(String::new()))
        );
        assert_eq!(
            Root::of("BaseOS/x86_64/os/repodata/repomd.xml.asc"),
            Some(Root::Rpm("BaseOS/x86_64/os".into()))
        );
        assert_eq!(Root::of("xrepodata/repomd.xml"), None);
        assert_eq!(Root::of(".treeinfo"), Some(Root::Tree(String::new())));
        assert_eq!(
            Root::of("BaseOS/x86_64/os/.treeinfo"),
            Some(Root::Tree("BaseOS/x86_64/os".into()))
        );
        assert_eq!(Root::of("x.treeinfo"), None);
        assert_eq!(
            Root::tree_of("BaseOS/x86_64/os/images/pxeboot/vmlinuz"),
            Some(Root::Tree("BaseOS/x86_64/os".into()))
        );
        assert_eq!(Root::tree_of("pool/main/x.deb"), None);
        assert_eq!(
            Root::tree_of("dists/s/main/installer-amd64/current/images/SHA256SUMS"),
            None
        );
        assert_eq!(Root::tree_of("ximages/a"), None);
        assert_eq!(
            Root::suite_of("dists/bookworm/main/binary-amd64/Packages.xz"),
            Some(Root::Apt("dists/bookworm".into()))
        );
        assert_eq!(Root::suite_of("pool/main/a.deb"), None);
        assert_eq!(
            Root::Rpm("BaseOS".into()).files(),
            [
                "BaseOS/repodata/repomd.xml",
                "BaseOS/repodata/repomd.xml.asc"
            ]
        );
    }

    #[test]
    fn flag_forms() {
        let s = UpstreamSpec::parse_flag("debian=http://127.0.0.1:1/debian").unwrap();
        assert_eq!(
            (s.name.as_str(), s.url.as_deref()),
            ("debian", Some("http://127.0.0.1:1/debian"))
        );
        let s = UpstreamSpec::parse_flag("debian").unwrap();
        assert_eq!(s.url, None);
    }
}
