//! The hybrid install medium: one ISO 9660 image that boots from CD or USB stick, on BIOS and on UEFI,
//! made by grub-mkrescue (GRUB's own recipe on top of xorriso), with GRUB on VGA and serial.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xenprov_sys::Cmd;

/// The volume label the live initrd looks for.
pub const LABEL: &str = "XENPROV_ISO";
/// Where a baked-in answer file goes on the medium.
pub const ANSWER: &str = "/xenprov/answer.toml";

/// Files of the medium: (path on the ISO, file on the build machine).
pub struct Contents {
    pub files: Vec<(String, PathBuf)>,
    pub answer: Option<PathBuf>,
    /// Extra kernel arguments of the default (automatic) entry.
    pub kernel_args: Vec<String>,
}

/// GRUB's menu, shared by BIOS and UEFI. The default entry installs from an answer file (or falls back
/// to guided mode, the installer's choice) after 5 s; /dev/console is the last `console=`, so the serial
/// entries put ttyS0 last and the screen entry tty0.
pub fn grub_cfg(answer: bool, kernel_args: &[String]) -> String {
    let serial_last = "console=tty0 console=ttyS0,115200n8";
    let mut auto_args = String::from("xenprov.mode=auto");
    if answer {
        auto_args += &format!(" xenprov.answer=file:{ANSWER}");
    }
    for arg in kernel_args {
        auto_args += " ";
        auto_args += arg;
    }
    let entry = |id: &str, title: &str, consoles: &str, args: &str| {
        format!(
            "menuentry '{title}' --id {id} {{\n    linux /boot/vmlinuz boot=xenprov {consoles} {args}\n    initrd /boot/initrd.img\n}}\n"
        )
    };
    [
        "serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1\n".to_string(),
        "terminal_input serial console\nterminal_output serial console\n".to_string(),
        "set timeout=5\nset default=auto\n\n".to_string(),
        entry(
            "auto",
            "Install a Xen host (answer file, else guided)",
            serial_last,
            &auto_args,
        ),
        entry(
            "guided",
            "Guided install (serial console)",
            serial_last,
            "xenprov.mode=guided",
        ),
        entry(
            "guided-screen",
            "Guided install (screen and keyboard)",
            "console=ttyS0,115200n8 console=tty0",
            "xenprov.mode=guided",
        ),
        entry("shell", "Rescue shell", serial_last, "xenprov.mode=shell"),
    ]
    .concat()
}

/// Lays out the medium in `stage` (hard links where possible) and writes the hybrid image to `out`.
pub fn build(contents: &Contents, stage: &Path, out: &Path) -> Result<()> {
    crate::cache::remove(stage)?;
    for (path, src) in &contents.files {
        place(src, &stage.join(path.trim_start_matches('/')))?;
    }
    if let Some(answer) = &contents.answer {
        place(answer, &stage.join(ANSWER.trim_start_matches('/')))?;
    }
    let cfg = stage.join("boot/grub/grub.cfg");
    fs::create_dir_all(cfg.parent().unwrap())?;
    fs::write(
        &cfg,
        grub_cfg(contents.answer.is_some(), &contents.kernel_args),
    )?;
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir)?;
    }
    Cmd::new(&["grub-mkrescue", "-o"])
        .arg(out)
        .arg(stage)
        .args(["-volid", LABEL])
        .run_shown()?;
    crate::cache::remove(stage)
}

fn place(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir_all(dst.parent().unwrap())?;
    if fs::hard_link(src, dst).is_err() {
        fs::copy(src, dst).with_context(|| format!("copying {}", src.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_defaults_to_the_automatic_entry_on_serial_and_vga() {
        let cfg = grub_cfg(false, &[]);
        assert!(cfg.starts_with("serial --unit=0 --speed=115200"));
        assert!(cfg.contains("terminal_input serial console\nterminal_output serial console\n"));
        assert!(cfg.contains("set timeout=5\nset default=auto\n"));
        assert!(cfg.contains(
            "--id auto {\n    linux /boot/vmlinuz boot=xenprov console=tty0 console=ttyS0,115200n8 xenprov.mode=auto\n"
        ));
        assert!(cfg.contains("xenprov.mode=guided"));
        assert!(cfg.contains("console=ttyS0,115200n8 console=tty0 xenprov.mode=guided"));
        assert!(cfg.contains("--id shell"));
        assert!(!cfg.contains("xenprov.answer"));
    }

    #[test]
    fn baked_in_answer_and_extra_args_go_to_the_default_entry_only() {
        let cfg = grub_cfg(true, &["xenprov.answer-sha256=abc".to_string()]);
        let auto = cfg
            .lines()
            .find(|l| l.contains("xenprov.mode=auto"))
            .unwrap();
        assert!(auto.ends_with(
            "xenprov.mode=auto xenprov.answer=file:/xenprov/answer.toml xenprov.answer-sha256=abc"
        ));
        assert_eq!(cfg.matches("xenprov.answer=").count(), 1);
    }
}
