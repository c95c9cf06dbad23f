//! What `efibootmgr` says the firmware boots next: the first entry of `BootOrder`, read from its output.
//!
//! grub-install adds its NVRAM entry at the front of `BootOrder`; the installer reads it back
//! rather than trusting that, since a host sent back to its disk by nothing but the boot order
//! must really have the disk first.

use anyhow::{Context, Result, bail};

/// One `BootNNNN` entry: its number (four hex digits) and its label.
#[derive(Debug, PartialEq, Eq)]
pub struct BootEntry {
    pub number: String,
    pub label: String,
}

/// The entry `BootNext` (if set) or else the first of `BootOrder` names, from `efibootmgr`'s output.
pub fn next_boot(output: &str) -> Result<BootEntry> {
    let field = |name: &str| {
        output
            .lines()
            .find_map(|l| l.strip_prefix(name).map(str::trim))
    };
    let number = match field("BootNext:") {
        Some(n) => n.to_string(),
        None => field("BootOrder:")
            .context("efibootmgr printed no BootOrder line")?
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    if number.len() != 4 || !number.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("efibootmgr's boot order starts with {number:?}, not a four-digit entry number");
    }
    let prefix = format!("Boot{number}");
    let label = output
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            // `*` marks an active entry; newer efibootmgr prints the device path after a tab.
            let rest = rest.strip_prefix('*').unwrap_or(rest);
            Some(
                rest.split('\t')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            )
        })
        .with_context(|| format!("efibootmgr lists no {prefix}, though the boot order names it"))?;
    Ok(BootEntry { number, label })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OVMF: &str = "BootCurrent: 0001\nTimeout: 0 seconds\nBootOrder: 0004,0001,0000,0002\n\
        Boot0000* UiApp\tFvVol(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/FvFile(462caa21)\n\
        Boot0001* UEFI QEMU DVD-ROM QM00003 \tPciRoot(0x0)/Pci(0x1,0x1)/Ata(0x0)\n\
        Boot0002* EFI Internal Shell\tFvVol(7cb8bdc9)/FvFile(7c04a583)\n\
        Boot0004* debian\tHD(1,GPT,0b1c…,0x800,0x100000)/File(\\EFI\\debian\\grubx64.efi)\n";

    #[test]
    fn the_first_of_boot_order_with_its_label() {
        let e = next_boot(OVMF).unwrap();
        assert_eq!(
            e,
            BootEntry {
                number: "0004".into(),
                label: "debian".into()
            }
        );
    }

    #[test]
    fn boot_next_wins_and_inactive_entries_are_read_too() {
        let out = format!(
            "BootNext: 0002\n{}",
            OVMF.replace("Boot0002* ", "Boot0002  ")
        );
        assert_eq!(next_boot(&out).unwrap().label, "EFI Internal Shell");
        let old =
            "BootOrder: 0001,0000\nBoot0000* UiApp\nBoot0001* UEFI PXEv4 (MAC:525400AC0102)\n";
        assert_eq!(
            next_boot(old).unwrap().label,
            "UEFI PXEv4 (MAC:525400AC0102)"
        );
    }

    #[test]
    fn refuses_output_it_cannot_read() {
        let no_order = next_boot("BootCurrent: 0001\nBoot0001* x\n").unwrap_err();
        assert!(
            no_order.to_string().contains("no BootOrder line"),
            "{no_order}"
        );
        let missing = next_boot("BootOrder: 0007,0001\nBoot0001* x\n").unwrap_err();
        assert!(
            missing.to_string().contains("lists no Boot0007"),
            "{missing}"
        );
        let bad = next_boot("BootOrder: \nBoot0001* x\n").unwrap_err();
        assert!(bad.to_string().contains("not a four-digit"), "{bad}");
    }
}
