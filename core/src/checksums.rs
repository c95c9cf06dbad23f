//! The checksum lists that install trees publish for their installer images: Debian's
//! `SHA256SUMS` (`HEX  ./netboot/...`, under `installer-ARCH/current/images/`) and the
//! `[checksums]` section of an Anaconda tree's `.treeinfo` (`images/pxeboot/vmlinuz = sha256:HEX`).
//! Pure: the callers fetch the list and the files, this says what each file must hash to.

//! The one reader of both formats: the guest tool looks up one file in them, the repo server's verifying
//! cache checks every file a list names.

/// The SHA-256 (lower-case hex) that the list `name` (its file name decides the format) gives for
/// `path`, relative to the list's directory.
pub fn sha256_for(name: &str, text: &str, path: &str) -> Result<String, String> {
    let want = path.trim_start_matches("./");
    let found = if name.ends_with(".treeinfo") || name == "treeinfo" {
        match treeinfo_checksums(text)
            .into_iter()
            .find(|(file, _)| file == want)
        {
            Some((_, Ok(hash))) => Some(hash),
            Some((_, Err(sum))) => {
                return Err(format!(
                    ".treeinfo gives `{sum}` for {want}; expected sha256:HEX (64 hex digits)"
                ));
            }
            None => None,
        }
    } else {
        sha256sums(text)
            .into_iter()
            .find_map(|(file, hash)| (file == want).then_some(hash))
    };
    found.ok_or_else(|| format!("{name} lists no SHA-256 for {want}"))
}

/// `(path, sha256)` of each `SHA256SUMS` line (`HEX  ./netboot/xen/vmlinuz`), paths relative to the
/// list's directory without `./`, hashes lower-case; a line whose hash is not 64 hex digits is none.
pub fn sha256sums(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (hash, file) = l.split_once(char::is_whitespace)?;
            // `sha256sum` marks binary mode with `*` before the name.
            let file = file
                .trim_start()
                .trim_start_matches('*')
                .trim_start_matches("./");
            is_sha256(hash).then(|| (file.to_string(), hash.to_ascii_lowercase()))
        })
        .collect()
}

/// `(path, sha256)` of each entry of a `.treeinfo`'s `[checksums]` section; an entry of another type
/// (`md5:…`, `sha1:…`) or a malformed one gives its value as the error, for the caller to refuse or skip.
pub fn treeinfo_checksums(text: &str) -> Vec<(String, Result<String, String>)> {
    ini_section(text, "checksums")
        .map(|(file, sum)| {
            let hash = match sum.split_once(':') {
                Some(("sha256", h)) if is_sha256(h) => Ok(h.to_ascii_lowercase()),
                _ => Err(sum.to_string()),
            };
            (file.trim_start_matches("./").to_string(), hash)
        })
        .collect()
}

/// The `key = value` lines of one `[section]` of an INI file such as `.treeinfo`, trimmed.
fn ini_section<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
    let mut inside = false;
    text.lines().map(str::trim).filter_map(move |l| {
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            inside = s == name;
            return None;
        }
        let (k, v) = l.split_once('=').filter(|_| inside)?;
        Some((k.trim(), v.trim()))
    })
}

/// 64 hex digits, of either case.
pub fn is_sha256(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The kernel and initrd an Anaconda `.treeinfo` names for an architecture (`[images-x86_64]`).
pub fn treeinfo_images(text: &str, arch: &str) -> Option<(String, String)> {
    let section = format!("images-{arch}");
    let (mut kernel, mut initrd) = (None, None);
    for (k, v) in ini_section(text, &section) {
        match k {
            "kernel" => kernel = Some(v.to_string()),
            "initrd" => initrd = Some(v.to_string()),
            _ => {}
        }
    }
    Some((kernel?, initrd?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a8a2f6ebe286697c527eb35a58b5539532e9b3ae3b64d4eb0a46fb657b41562c";
    const B: &str = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b";

    #[test]
    fn debian_sha256sums() {
        let t = format!(
            "{B}  ./netboot/gtk/debian-installer/amd64/linux\n{A}  ./netboot/debian-installer/amd64/linux\n"
        );
        assert_eq!(
            sha256_for("SHA256SUMS", &t, "netboot/debian-installer/amd64/linux").unwrap(),
            A
        );
        assert_eq!(
            sha256_for(
                "SHA256SUMS",
                &t,
                "./netboot/debian-installer/amd64/initrd.gz"
            )
            .unwrap_err(),
            "SHA256SUMS lists no SHA-256 for netboot/debian-installer/amd64/initrd.gz"
        );
        // A line whose hash is not 64 hex digits is no checksum.
        let bad = "abc  ./netboot/debian-installer/amd64/linux\n";
        assert!(sha256_for("SHA256SUMS", bad, "netboot/debian-installer/amd64/linux").is_err());
    }

    #[test]
    fn anaconda_treeinfo() {
        let t = format!(
            "[general]\nfamily = Rocky Linux\n[images-x86_64]\nkernel = images/pxeboot/vmlinuz\ninitrd = images/pxeboot/initrd.img\n[checksums]\nimages/pxeboot/vmlinuz = sha256:{A}\nimages/pxeboot/initrd.img = md5:0123\n"
        );
        assert_eq!(
            sha256_for(".treeinfo", &t, "images/pxeboot/vmlinuz").unwrap(),
            A
        );
        assert_eq!(
            sha256_for(".treeinfo", &t, "images/pxeboot/initrd.img").unwrap_err(),
            ".treeinfo gives `md5:0123` for images/pxeboot/initrd.img; expected sha256:HEX (64 hex digits)"
        );
        assert_eq!(
            treeinfo_images(&t, "x86_64"),
            Some((
                "images/pxeboot/vmlinuz".into(),
                "images/pxeboot/initrd.img".into()
            ))
        );
        assert_eq!(treeinfo_images(&t, "aarch64"), None);
    }
}
