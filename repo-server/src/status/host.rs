//! What the dom0 says of itself besides Xen: its name, how long it has been up, and its md arrays
//! (a mirrored install's `/boot` and LVM PV), read from sysfs as the console banner reads them.

use std::path::Path;

use serde::Serialize;

/// One md array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Array {
    /// The kernel's name (`md127`), and the name under `/dev/md/` when udev or mdadm made one.
    pub device: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub level: String,
    /// `clean`, `active`, `degraded`... as `md/array_state` says.
    pub state: String,
    pub raid_disks: u32,
    /// Members missing from the array.
    pub degraded: u32,
    /// The member devices in it now.
    pub members: Vec<String>,
    /// A resync, recovery or check in progress, with how far it is (`recover 41%`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<String>,
}

/// The host's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Seconds since this kernel booted.
pub fn uptime_secs() -> Option<u64> {
    let up = std::fs::read_to_string("/proc/uptime").ok()?;
    up.split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .map(|s| s as u64)
}

/// The md arrays under `sys_block` (`/sys/block`), with their names from `dev_md` (`/dev/md`).
pub fn arrays(sys_block: &Path, dev_md: &Path) -> Vec<Array> {
    let Ok(entries) = std::fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let names: Vec<(String, String)> = std::fs::read_dir(dev_md)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            let dev = target.file_name()?.to_string_lossy().into_owned();
            Some((dev, e.file_name().to_string_lossy().into_owned()))
        })
        .collect();
    let mut out: Vec<Array> = entries
        .flatten()
        .filter_map(|e| {
            let device = e.file_name().to_string_lossy().into_owned();
            let md = e.path().join("md");
            if !device.starts_with("md") || !md.is_dir() {
                return None;
            }
            let mut members: Vec<String> = std::fs::read_dir(&md)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|m| {
                    let n = m.file_name().to_string_lossy().into_owned();
                    n.strip_prefix("dev-").map(str::to_string)
                })
                .collect();
            members.sort();
            let action = read(&md.join("sync_action"));
            let sync = (!action.is_empty() && action != "idle").then(|| {
                match progress(&read(&md.join("sync_completed"))) {
                    Some(pct) => format!("{action} {pct}%"),
                    None => action.clone(),
                }
            });
            Some(Array {
                name: names
                    .iter()
                    .find(|(d, _)| *d == device)
                    .map(|n| n.1.clone()),
                level: read(&md.join("level")),
                state: read(&md.join("array_state")),
                raid_disks: read(&md.join("raid_disks")).parse().unwrap_or(0),
                degraded: read(&md.join("degraded")).parse().unwrap_or(0),
                members,
                sync,
                device,
            })
        })
        .collect();
    out.sort_by(|a, b| a.device.cmp(&b.device));
    out
}

/// `md/sync_completed`'s `DONE / TOTAL` sectors as a whole percent; `none` or anything else is none.
fn progress(s: &str) -> Option<u64> {
    let (done, total) = s.split_once('/')?;
    let (done, total): (u64, u64) = (done.trim().parse().ok()?, total.trim().parse().ok()?);
    (total > 0).then(|| done * 100 / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arrays_as_sysfs_shows_them() {
        let t = tempfile::tempdir().unwrap();
        let put = |rel: &str, v: &str| {
            let p = t.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, v).unwrap();
        };
        for (k, v) in [
            ("level", "raid1\n"),
            ("array_state", "clean\n"),
            ("raid_disks", "2\n"),
            ("degraded", "1\n"),
            ("sync_action", "recover\n"),
            ("sync_completed", "500 / 2000\n"),
        ] {
            put(&format!("block/md127/md/{k}"), v);
        }
        std::fs::create_dir_all(t.path().join("block/md127/md/dev-vda3")).unwrap();
        put("block/md126/md/level", "raid1\n");
        put("block/md126/md/sync_action", "idle\n");
        std::fs::create_dir_all(t.path().join("block/vda")).unwrap();
        std::fs::create_dir_all(t.path().join("md")).unwrap();
        std::os::unix::fs::symlink("../md127", t.path().join("md/pv")).unwrap();
        let a = arrays(&t.path().join("block"), &t.path().join("md"));
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!(a[1].device, "md127");
        assert_eq!(a[1].name.as_deref(), Some("pv"));
        assert_eq!((a[1].raid_disks, a[1].degraded), (2, 1));
        assert_eq!(a[1].members, ["vda3"]);
        assert_eq!(a[1].sync.as_deref(), Some("recover 25%"));
        assert_eq!((a[0].sync.as_deref(), a[0].name.as_deref()), (None, None));
        assert_eq!(progress("none"), None);
    }
}
