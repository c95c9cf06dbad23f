//! An OS's installer kernel and initrd, as real files for xl: fetched from the install tree over
//! HTTP (the repo server: its verifying cache of the Debian mirror, a tree served in place from an
//! ISO image, or a mirror), each checked against the checksum list the tree publishes (Debian's
//! `SHA256SUMS`, an Anaconda tree's `.treeinfo`) and kept under the cache directory, where the
//! next guest of that OS reuses them once their hashes match the list again. Nothing is copied by
//! hand, and a file that does not match its list is never handed to xl.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use xenprov_core::checksums;
use xenprov_core::guest::OsProfile;

use crate::machine::Machine;
use xenprov_registry::settings::Config;

/// The two files of an installer, where xl reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installer {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// Where the cached installer of `os` lives; the same whether or not it was fetched yet, so that
/// `render` shows the xl config that `new` writes.
pub fn cached(config: &Config, os: &OsProfile) -> Installer {
    let dir = config.installer_cache.join(&os.id);
    Installer {
        kernel: dir.join("kernel"),
        initrd: dir.join("initrd"),
    }
}

/// Makes sure the cache holds `os`'s installer as its tree's checksum list says it is today.
pub fn fetch(
    machine: &dyn Machine,
    config: &Config,
    os: &OsProfile,
    tree_url: &str,
) -> Result<Installer> {
    let list_url = config.installer_list_url(&os.id, &os.installer, tree_url);
    let (base, name) = list_url
        .rsplit_once('/')
        .ok_or_else(|| anyhow!("{list_url} is not a URL of a checksum list"))?;
    let list = machine
        .fetch(&list_url)
        .with_context(|| format!("fetching the {} installer's checksum list", os.title))?;
    let list = String::from_utf8(list).map_err(|_| anyhow!("{list_url} is not text"))?;
    let (kernel, initrd) = match (&os.kernel, &os.initrd) {
        (Some(k), Some(i)) => (k.clone(), i.clone()),
        _ => checksums::treeinfo_images(&list, "x86_64").ok_or_else(|| {
            anyhow!("{list_url} names no kernel and initrd for x86_64 (section [images-x86_64])")
        })?,
    };
    let to = cached(config, os);
    let dir = to.kernel.parent().expect("cache file in a directory");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (rel, path) in [(&kernel, &to.kernel), (&initrd, &to.initrd)] {
        let want =
            checksums::sha256_for(name, &list, rel).map_err(|e| anyhow!("{list_url}: {e}"))?;
        if sha256_file(path).ok().as_deref() == Some(want.as_str()) {
            continue;
        }
        let url = format!("{base}/{}", rel.trim_start_matches("./"));
        let data = machine
            .fetch(&url)
            .with_context(|| format!("fetching the {} installer", os.title))?;
        let got = hex::encode(Sha256::digest(&data));
        if got != want {
            bail!(
                "{url} has SHA-256 {got}, but {list_url} says {want}: refusing to boot it (the tree changed while it was read, or it was tampered with)"
            );
        }
        // Written aside and renamed: xl never sees half a file, nor a file that was not checked.
        let tmp = path.with_extension("part");
        fs::write(&tmp, &data).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(to)
}

fn sha256_file(path: &Path) -> Result<String> {
    Ok(hex::encode(Sha256::digest(fs::read(path)?)))
}
