//! The `[checksums]` section of an anaconda install tree's `.treeinfo` (`images/pxeboot/vmlinuz =
//! sha256:…`), which names the boot images and install image of the tree.

use super::{Expected, Sha256};

/// `(path, expected)` of each SHA-256 checksum (read by `xenprov_core::checksums`, the guest tool's reader
/// too); entries of other types are left out.
pub fn checksums(text: &str) -> Vec<(String, Expected)> {
    xenprov_core::checksums::treeinfo_checksums(text)
        .into_iter()
        .filter_map(|(path, hash)| {
            let sha256 = Sha256::from_hex(&hash.ok()?)?;
            Some((path, Expected { sha256, size: None }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_section() {
        let h = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let text = format!(
            "[general]\nname = Rocky\n[checksums]\nimages/pxeboot/vmlinuz = sha256:{h}\n\
             images/install.img = sha1:0000\n[images-x86_64]\nkernel = images/pxeboot/vmlinuz\n"
        );
        let c = checksums(&text);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "images/pxeboot/vmlinuz");
        assert_eq!(c[0].1.sha256.to_hex(), h);
    }
}
