//! Downloads from an upstream repository over HTTP(S) with reqwest: small metadata files into memory, and
//! everything else into an `ObjectStore`, hashed while it is written and committed only when it matches
//! what its verified parent says. A download cut short is kept and resumed with a `Range` request.
//!
//! The default Debian upstream is the mirror this machine's APT uses (`apt_mirror`), so no host name is
//! written into the program.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{LAST_MODIFIED, RANGE};
use tokio::runtime::Handle;

use crate::content::object_store::ObjectStore;
use crate::content::verify::Expected;
use crate::content::verify::digest::HashingWriter;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// No byte for this long ends a download (it is resumed next time).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a fetch failed. Each names the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    NotFound(String),
    /// Connection refused, timed out, cut off, or a 5xx: what is cached is still served.
    Unreachable(String),
    /// The bytes are not what the verified metadata says; they were thrown away.
    Mismatch(String),
    /// A local error (disk full, permissions).
    Local(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::NotFound(s)
            | FetchError::Unreachable(s)
            | FetchError::Mismatch(s)
            | FetchError::Local(s) => f.write_str(s),
        }
    }
}

#[derive(Clone)]
pub struct Upstream {
    base: reqwest::Url,
    client: reqwest::Client,
}

impl Upstream {
    pub fn new(url: &str) -> anyhow::Result<Upstream> {
        let mut base = reqwest::Url::parse(url).map_err(|e| {
            let shown = xenprov_core::net::without_userinfo(url);
            anyhow::anyhow!("upstream URL {shown:?}: {e}")
        })?;
        anyhow::ensure!(
            matches!(base.scheme(), "http" | "https"),
            "upstream URL {}: only http and https are supported",
            xenprov_core::net::without_userinfo(url)
        );
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("xenprov-repo/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("building the HTTP client: {e:#}"))?;
        Ok(Upstream { base, client })
    }

    /// The URL of a path below the base as messages and logs show it: without the user and password
    /// a base URL may carry.
    pub fn url(&self, rel: &str) -> String {
        xenprov_core::net::without_userinfo(&self.request_url(rel)).into_owned()
    }

    /// The URL of a path below the base, as requested: bytes that a URL path cannot carry as they are
    /// (`%`, `?`, `#`, spaces, non-ASCII) are percent-encoded, so the upstream sees the same file name.
    fn request_url(&self, rel: &str) -> String {
        let mut url = self.base.to_string();
        for &b in rel.as_bytes() {
            if b.is_ascii_graphic() && !matches!(b, b'%' | b'?' | b'#' | b'"' | b'<' | b'>' | b'\\')
            {
                url.push(b as char);
            } else {
                url.push_str(&format!("%{b:02X}"));
            }
        }
        url
    }

    /// A small file (metadata) whole, or `None` when the upstream does not have it.
    pub async fn get_small(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let url = self.url(rel);
        let mut resp = self.send(rel, 0).await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(None),
            s => return Err(FetchError::Unreachable(format!("{url}: {s}"))),
        }
        let mut data = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError::Unreachable(format!("{url}: {:#}", e.without_url())))?
        {
            data.extend_from_slice(&chunk);
            if data.len() as u64 > limit {
                return Err(FetchError::Mismatch(format!(
                    "{url}: larger than {limit} bytes; not a metadata file"
                )));
            }
        }
        Ok(Some(data))
    }

    /// Downloads `rel` into `store` as `expected.sha256`, resuming an earlier partial download. A download
    /// that does not match is deleted and reported, never committed.
    pub async fn fetch_object(
        &self,
        rel: &str,
        expected: &Expected,
        store: &ObjectStore,
    ) -> Result<(), FetchError> {
        if store.contains(&expected.sha256) {
            return Ok(());
        }
        let partial = store.partial_path(&expected.sha256);
        let resuming = std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0);
        match self.try_fetch(rel, expected, store).await {
            // the upstream file may have changed under a resumed download: once more from the start
            Err(FetchError::Mismatch(e)) if resuming => {
                tracing::warn!("{e}; downloading it again from the start");
                let _ = std::fs::remove_file(&partial);
                self.try_fetch(rel, expected, store).await
            }
            r => r,
        }
    }

    async fn try_fetch(
        &self,
        rel: &str,
        expected: &Expected,
        store: &ObjectStore,
    ) -> Result<(), FetchError> {
        let url = self.url(rel);
        let partial = store.partial_path(&expected.sha256);
        let local = |e: io::Error| FetchError::Local(format!("{}: {e}", partial.display()));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial)
            .map_err(local)?;
        let mut have = file.metadata().map_err(local)?.len();
        if expected.size.is_some_and(|size| have > size) {
            file.set_len(0).map_err(local)?;
            have = 0;
        }
        let resp = self.send(rel, have).await?;
        let mut writer = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file));
        match resp.status() {
            StatusCode::PARTIAL_CONTENT if have > 0 => {
                tracing::info!("resuming {url} at byte {have}");
                hash_prefix(&mut writer, have).map_err(local)?;
            }
            StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
                hash_prefix(&mut writer, have).map_err(local)?;
                return self.finish(writer, &url, expected, &partial, None, store);
            }
            StatusCode::OK => {
                let file = writer
                    .finish()
                    .0
                    .into_inner()
                    .map_err(|e| local(e.into_error()))?;
                file.set_len(0).map_err(local)?;
                writer = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file));
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                let _ = std::fs::remove_file(&partial);
                return Err(FetchError::NotFound(format!("{url}: {}", resp.status())));
            }
            s => return Err(FetchError::Unreachable(format!("{url}: {s}"))),
        }
        let modified = resp
            .headers()
            .get(LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let mut resp = resp;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    let _ = writer.flush();
                    return Err(FetchError::Unreachable(format!(
                        "{url}: cut off after {} bytes (kept to resume): {:#}",
                        writer.len(),
                        e.without_url()
                    )));
                }
            };
            if let Some(size) = expected.size
                && writer.len() + chunk.len() as u64 > size
            {
                let _ = std::fs::remove_file(&partial);
                return Err(FetchError::Mismatch(format!(
                    "{url}: longer than the {size} bytes its verified index gives; not served"
                )));
            }
            writer.write_all(&chunk).map_err(local)?;
        }
        self.finish(writer, &url, expected, &partial, modified, store)
    }

    fn finish(
        &self,
        writer: HashingWriter<io::BufWriter<File>>,
        url: &str,
        expected: &Expected,
        partial: &Path,
        modified: Option<SystemTime>,
        store: &ObjectStore,
    ) -> Result<(), FetchError> {
        let local = |e: io::Error| FetchError::Local(format!("{}: {e}", partial.display()));
        let (buf, sha, len) = writer.finish();
        let file = buf.into_inner().map_err(|e| local(e.into_error()))?;
        if sha != expected.sha256 || expected.size.is_some_and(|s| s != len) {
            let _ = std::fs::remove_file(partial);
            return Err(FetchError::Mismatch(format!(
                "{url}: expected {expected}, got sha256 {sha} ({len} bytes); not served"
            )));
        }
        file.sync_data().map_err(local)?;
        if let Some(t) = modified {
            let _ = file.set_modified(t);
        }
        store.commit(partial, &expected.sha256).map_err(local)?;
        Ok(())
    }

    /// GET of `rel` from byte `from`; errors name the URL as `url` shows it.
    async fn send(&self, rel: &str, from: u64) -> Result<reqwest::Response, FetchError> {
        let url = self.url(rel);
        let mut req = self.client.get(self.request_url(rel));
        if from > 0 {
            req = req.header(RANGE, format!("bytes={from}-"));
        }
        req.send()
            .await
            .map_err(|e| FetchError::Unreachable(format!("{url}: {:#}", e.without_url())))
    }
}

/// Hashes the first `len` bytes already in the writer's file and leaves the file positioned after them.
fn hash_prefix(writer: &mut HashingWriter<io::BufWriter<File>>, len: u64) -> io::Result<()> {
    let mut prefix = Vec::new();
    {
        let file = writer_file(writer);
        file.rewind()?;
        file.take(len).read_to_end(&mut prefix)?;
    }
    writer.update_existing(&prefix);
    writer_file(writer).seek(io::SeekFrom::Start(len))?;
    Ok(())
}

fn writer_file(writer: &mut HashingWriter<io::BufWriter<File>>) -> &mut File {
    writer.inner_mut().get_mut()
}

/// A runtime for upstream work, shared by every upstream and independent of the server's event loops, so
/// that downloads go on while those serve, and finish when the request that started them is gone.
pub fn runtime() -> Handle {
    static HANDLE: OnceLock<Handle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("xenprov-upstream")
                .enable_all()
                .build()
                .expect("starting the upstream runtime");
            let handle = runtime.handle().clone();
            // the runtime lives as long as the process
            std::thread::Builder::new()
                .name("xenprov-upstream".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .expect("starting the upstream thread");
            handle
        })
        .clone()
}

/// The Debian mirror of this machine's APT configuration: the first `deb` source that is not a security
/// archive (`xenprov_core::apt_sources`, APT's own file order). An unreadable configuration is logged and
/// counts as none, so the caller's error says that no upstream is configured.
pub fn apt_mirror() -> Option<String> {
    match xenprov_core::apt_sources::AptSources::read(Path::new("/etc/apt")) {
        Ok(sources) => sources.debian_archive(),
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_file_names() {
        let up = Upstream::new("http://127.0.0.1:1/debian").unwrap();
        assert_eq!(
            up.url("pool/main/z/zlib1g_1:1.2 x%3a#.deb"),
            "http://127.0.0.1:1/debian/pool/main/z/zlib1g_1:1.2%20x%253a%23.deb"
        );
    }
}
