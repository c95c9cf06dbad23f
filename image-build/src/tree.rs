//! Writing files into a root file system tree being built.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use xenprov_sys::Cmd;

/// Writes `text` to `path` below `root`, creating directories, with `mode`.
pub fn write(root: &Path, path: &str, text: &str, mode: u32) -> Result<()> {
    let path = root.join(path);
    fs::create_dir_all(path.parent().context("a path below the root")?)?;
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Copies one of our binaries into a tree as root:root 0755, without its debug information (a fifth of
/// the size; symbols stay, so backtraces still name functions). Scripts are copied as they are.
pub fn install_binary(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir_all(dst.parent().context("a path below the root")?)?;
    fs::copy(src, dst).with_context(|| format!("copying {}", src.display()))?;
    let mut magic = [0u8; 4];
    let elf = fs::File::open(dst)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF";
    if elf {
        Cmd::new(&["strip", "--strip-debug"])
            .arg(dst)
            .run()
            .context("stripping debug information")?;
    }
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755))?;
    std::os::unix::fs::chown(dst, Some(0), Some(0))?;
    Ok(())
}
