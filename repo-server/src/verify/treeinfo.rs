//! The `[checksums]` section of an anaconda install tree's `.treeinfo` (`images/pxeboot/vmlinuz =
//! sha256:…`), which names the boot images and install image of the tree.

use super::{Expected, Sha256};

/// `(path, expected)` of each SHA-256 checksum; entries of other types are left out.
pub fn checksums(text: &str) -> Vec<(String, Expected)> {
    let mut in_section = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[checksums]";
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((path, value)) = line.split_once('=') else {
            continue;
        };
        if let Some(sha256) = value
            .trim()
            .strip_prefix("sha256:")
            .and_then(Sha256::from_hex)
        {
            out.push((path.trim().to_string(), Expected { sha256, size: None }));
        }
    }
    out
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
