//! A guest's volume seen from the dom0: its partition table (sfdisk), and loop devices over it
//! that are detached when dropped, so an error leaves no loop behind holding the volume open.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xenprov_sys::Cmd;

/// One partition, as `sfdisk --json` lists it (sectors of 512 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Part {
    pub node: String,
    pub start: u64,
    pub size: u64,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Deserialize)]
struct Table {
    partitiontable: Inner,
}

#[derive(Deserialize)]
struct Inner {
    label: String,
    #[serde(default)]
    partitions: Vec<Part>,
}

/// The label (`dos`, `gpt`) and partitions of `sfdisk --json`'s output.
pub fn parse_table(json: &str) -> Result<(String, Vec<Part>)> {
    let t: Table = serde_json::from_str(json).context("reading sfdisk's JSON")?;
    Ok((t.partitiontable.label, t.partitiontable.partitions))
}

/// The partition table on `dev`; an error when it has none.
pub fn read_table(dev: &str) -> Result<(String, Vec<Part>)> {
    let out = Cmd::new(&["sfdisk", "--json", dev])
        .run()
        .with_context(|| format!("{dev} holds no partition table that sfdisk reads"))?;
    parse_table(&out)
}

/// Writes a partition table from an sfdisk script. `wipe`: every old signature goes too (a new
/// disk); without it the partitions' contents stay (a partition resized around its file system).
pub fn write_table(dev: &str, script: &str, wipe: bool) -> Result<()> {
    let w = if wipe { "always" } else { "never" };
    Cmd::new(&[
        "sfdisk",
        "-q",
        "--no-reread",
        "--no-tell-kernel",
        "--wipe",
        w,
        "--wipe-partitions",
        w,
        dev,
    ])
    .stdin(script)
    .run()
    .with_context(|| format!("partitioning {dev}"))
    .map(drop)
}

/// A loop device over a whole volume, with its partitions scanned.
pub struct Loop {
    dev: PathBuf,
    attached: bool,
}

impl Loop {
    pub fn attach(volume: &Path, read_only: bool) -> Result<Loop> {
        let mut c = Cmd::new(&["losetup", "-P", "-f", "--show"]);
        if read_only {
            c = c.arg("-r");
        }
        let out = c
            .arg(volume)
            .run()
            .with_context(|| format!("attaching a loop device to {}", volume.display()))?;
        Ok(Loop {
            dev: PathBuf::from(out.trim()),
            attached: true,
        })
    }

    /// A loop device that an earlier run attached (e.g. `mount`'s, for `umount`).
    pub fn adopt(dev: PathBuf) -> Loop {
        Loop {
            dev,
            attached: true,
        }
    }

    pub fn device(&self) -> &Path {
        &self.dev
    }

    /// The node of partition `n`, once the kernel has made it.
    pub fn partition(&self, n: u32) -> Result<PathBuf> {
        let p = PathBuf::from(format!("{}p{n}", self.dev.display()));
        for _ in 0..50 {
            if p.exists() {
                return Ok(p);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "{} has no partition {n} ({} did not appear)",
            self.dev.display(),
            p.display()
        )
    }

    /// Keeps the device attached past this guard (a mount that outlives the command).
    pub fn keep(mut self) -> PathBuf {
        self.attached = false;
        self.dev.clone()
    }

    pub fn detach(mut self) -> Result<()> {
        self.attached = false;
        Cmd::new(&["losetup", "-d"]).arg(&self.dev).run().map(drop)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if self.attached {
            let _ = Cmd::new(&["losetup", "-d"]).arg(&self.dev).run();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sfdisk_json() {
        let json = r#"{"partitiontable": {"label": "dos", "id": "0x1", "device": "/dev/dsk/web1-disk", "unit": "sectors", "sectorsize": 512,
            "partitions": [{"node": "/dev/dsk/web1-disk1", "start": 2048, "size": 8386560, "type": "83", "bootable": true}]}}"#;
        let (label, parts) = parse_table(json).unwrap();
        assert_eq!(label, "dos");
        assert_eq!(
            parts,
            [Part {
                node: "/dev/dsk/web1-disk1".into(),
                start: 2048,
                size: 8386560,
                kind: "83".into()
            }]
        );
        assert!(parse_table("{}").is_err());
    }
}
