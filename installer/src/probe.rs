//! What is on a disk, failing closed. `wipefs --no-act --json` lists every signature it knows,
//! even where libblkid's ordinary probe gives up (two signatures at once make `blkid -p` exit 8
//! and print nothing; a lost primary GPT leaves its backup at the end): it is the same tool
//! `apply` erases with, so what is refused here is what a wipe would destroy. Bytes that no probe
//! recognises still count: a disk is blank only when nothing is found *and* its first and last
//! MiB are zeros. Any failure to probe is an error, which the inventory records as "holds data".

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// How much of each end of the disk must be zeros for a disk without signatures to be blank:
/// partition tables, boot loaders and most superblocks live there.
const ENDS: u64 = 1 << 20;
/// Where partitioning tools put the first partition (1 MiB alignment).
const FIRST_PARTITION: u64 = 1 << 20;

#[derive(Deserialize)]
struct Report {
    signatures: Vec<Signature>,
}

#[derive(Deserialize)]
struct Signature {
    offset: String,
    #[serde(rename = "type")]
    kind: String,
}

/// Every signature on `dev` as `TYPE at OFFSET`, or the non-zero bytes no probe recognised.
pub fn signatures(dev: &Path, size: u64) -> Result<Vec<String>> {
    let out = Command::new("wipefs")
        .args(["--no-act", "--json"])
        .arg(dev)
        .env("LC_ALL", "C")
        .output()
        .with_context(|| format!("running wipefs on {}", dev.display()))?;
    if !out.status.success() {
        bail!(
            "wipefs --no-act {} failed ({}): {}",
            dev.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut found = parse(&out.stdout).with_context(|| {
        format!(
            "reading what wipefs --no-act --json says of {}",
            dev.display()
        )
    })?;
    if found.is_empty()
        && let Some(at) = first_nonzero(dev, size)?
    {
        found.push(format!("unrecognised data at {at:#x}"));
    }
    if found.is_empty() && size > FIRST_PARTITION {
        found.extend(at_first_partition(dev)?);
    }
    Ok(found)
}

/// A filesystem or volume where nearly every tool starts the first partition: what is left when
/// both partition tables were zeroed and the data under them was not.
fn at_first_partition(dev: &Path) -> Result<Option<String>> {
    let out = Command::new("blkid")
        .args(["-p", "-o", "export", "-O", &FIRST_PARTITION.to_string()])
        .arg(dev)
        .output()
        .with_context(|| format!("running blkid on {}", dev.display()))?;
    let kind = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("TYPE=").map(str::to_string));
    match out.status.code() {
        // 2: nothing found.
        Some(2) => Ok(None),
        Some(0) => Ok(Some(format!(
            "{} at {FIRST_PARTITION:#x} (a partition's start; no partition table)",
            kind.as_deref().unwrap_or("a signature")
        ))),
        // 8: several signatures at once, which libblkid will not choose between.
        Some(8) => Ok(Some(format!(
            "several signatures at {FIRST_PARTITION:#x} (a partition's start; no partition table)"
        ))),
        _ => bail!(
            "blkid -p -O {FIRST_PARTITION} {} failed ({}): {}",
            dev.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// wipefs prints nothing at all for a device without signatures, and a report otherwise.
fn parse(json: &[u8]) -> Result<Vec<String>> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let r: Report = serde_json::from_slice(json)?;
    Ok(r.signatures
        .into_iter()
        .map(|s| format!("{} at {}", s.kind, s.offset))
        .collect())
}

/// The offset of the first non-zero byte in the first or last MiB of `dev`, if any.
fn first_nonzero(dev: &Path, size: u64) -> Result<Option<u64>> {
    let mut f = File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
    let head = ENDS.min(size);
    let tail_start = size.saturating_sub(ENDS).max(head);
    for (start, len) in [(0, head), (tail_start, size - tail_start)] {
        let mut buf = vec![0u8; len as usize];
        f.seek(SeekFrom::Start(start))
            .and_then(|_| f.read_exact(&mut buf))
            .with_context(|| format!("reading {} at {start:#x}", dev.display()))?;
        if let Some(i) = buf.iter().position(|&b| b != 0) {
            return Ok(Some(start + i as u64));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_every_signature_wipefs_reports() {
        let json = br#"{"signatures": [
            {"device":"sdb","offset":"0x438","type":"ext4","uuid":"1de3","label":null},
            {"device":"sdb","offset":"0x36","type":"vfat","uuid":"AB12","label":null}]}"#;
        assert_eq!(parse(json).unwrap(), ["ext4 at 0x438", "vfat at 0x36"]);
        assert!(parse(b"").unwrap().is_empty());
        assert!(parse(b"{\"signatures\": [\n]}\n").unwrap().is_empty());
    }

    #[test]
    fn a_report_it_cannot_read_is_an_error_not_a_blank_disk() {
        assert!(parse(b"{\"signatures\": [{\"offset\": 5}]}").is_err());
        assert!(parse(b"wipefs: something else").is_err());
    }

    #[test]
    fn bytes_no_probe_knows_count_at_either_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.img");
        let size = 4 << 20;
        let f = File::create(&p).unwrap();
        f.set_len(size).unwrap();
        assert_eq!(first_nonzero(&p, size).unwrap(), None);
        let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        // In the middle: not looked at (guests' data is not expected there without a table).
        f.seek(SeekFrom::Start(2 << 20)).unwrap();
        f.write_all(b"x").unwrap();
        assert_eq!(first_nonzero(&p, size).unwrap(), None);
        f.seek(SeekFrom::Start(size - 7)).unwrap();
        f.write_all(b"y").unwrap();
        assert_eq!(first_nonzero(&p, size).unwrap(), Some(size - 7));
        f.seek(SeekFrom::Start(600)).unwrap();
        f.write_all(b"z").unwrap();
        assert_eq!(first_nonzero(&p, size).unwrap(), Some(600));
    }

    #[test]
    fn a_disk_it_cannot_read_is_an_error() {
        assert!(first_nonzero(Path::new("/nonexistent/xenprov-disk"), 1 << 20).is_err());
    }
}
