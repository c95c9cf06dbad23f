//! Keyrings as gpgv reads them. gpgv takes binary keyrings only: given an ASCII-armored one (apt's
//! `signed-by` accepts `.asc`; EL vendors ship `RPM-GPG-KEY-*` armored) it says "invalid packet
//! (ctb=2d)" and refuses every signature for want of a public key. Armor is recognised by content,
//! never by file name, and decoded here (RFC 9580 §6: headers skipped, base64 body, CRC-24 checked); a
//! keyring that holds no public key is refused with its path and what would be accepted.

use super::signature::SignatureError;
use std::path::Path;

/// The keyring at `path` as binary data gpgv reads: OpenPGP packets (each armored public key block
/// decoded, other armored blocks such as private keys left out) or a GnuPG keybox as it is.
pub fn binary(path: &Path) -> Result<Vec<u8>, SignatureError> {
    let data = std::fs::read(path)
        .map_err(|e| SignatureError(format!("keyring {}: {e}", path.display())))?;
    let no_key = || {
        SignatureError(format!(
            "no OpenPGP public key in {}: expected a binary keyring or an ASCII-armored public key block",
            path.display()
        ))
    };
    if is_keybox(&data) {
        return if keybox_holds_key(&data) {
            Ok(data)
        } else {
            Err(no_key())
        };
    }
    // A binary packet's first byte has its top bit set; armor is ASCII text.
    let packets = if data.first().is_some_and(|b| b & 0x80 != 0) {
        data
    } else {
        dearmor(&data).map_err(|e| SignatureError(format!("keyring {}: {e}", path.display())))?
    };
    if holds_public_key(&packets) {
        Ok(packets)
    } else {
        Err(no_key())
    }
}

/// The packets of every `PGP PUBLIC KEY BLOCK` in `text`, concatenated. Text outside the blocks is
/// ignored, as gpg does on import; blocks are numbered from 1 in the file for error messages.
fn dearmor(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut lines = text
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .enumerate();
    let mut block = 0;
    while let Some((begin, line)) = lines.next() {
        let Some(kind) = line
            .strip_prefix(b"-----BEGIN PGP ")
            .and_then(|l| l.strip_suffix(b"-----"))
        else {
            continue;
        };
        block += 1;
        let here = format!("armored block {block} (line {})", begin + 1);
        let end = [b"-----END PGP ", kind, b"-----"].concat();
        let (mut body, mut checksum, mut ended, mut in_headers) = (Vec::new(), None, false, true);
        for (at, line) in lines.by_ref() {
            if line == end {
                ended = true;
                break;
            }
            // Armor headers ("Version: ...", "Comment: ...") until the first line without a colon,
            // which base64 never contains; the blank line after them is skipped with the rest.
            in_headers &= line.contains(&b':');
            if in_headers {
                continue;
            }
            match line.strip_prefix(b"=") {
                Some(sum) => checksum = Some((at, sum)),
                None if checksum.is_some() && !line.is_empty() => {
                    return Err(format!("{here}: text after the checksum line"));
                }
                None => body.extend_from_slice(line),
            }
        }
        if !ended {
            return Err(format!(
                "{here}: no {} line; the file is cut short",
                String::from_utf8_lossy(&end)
            ));
        }
        if kind != b"PUBLIC KEY BLOCK" {
            continue;
        }
        let packets = base64(&body).ok_or_else(|| format!("{here}: the body is not base64"))?;
        // RFC 9580 made the checksum optional; when present it is checked, as a mismatch means the
        // file was damaged or pasted together wrongly.
        if let Some((at, sum)) = checksum {
            let stated = base64(sum)
                .and_then(|s| <[u8; 3]>::try_from(s).ok())
                .ok_or_else(|| {
                    format!(
                        "{here}: line {} is no checksum (\"=\" and 4 base64 characters)",
                        at + 1
                    )
                })?;
            let (stated, computed) = (
                u32::from_be_bytes([0, stated[0], stated[1], stated[2]]),
                crc24(&packets),
            );
            if stated != computed {
                return Err(format!(
                    "{here}: CRC-24 checksum {stated:06X} does not match the data's {computed:06X}; the block is damaged"
                ));
            }
        }
        out.extend_from_slice(&packets);
    }
    Ok(out)
}

/// Base64 (RFC 4648 §4) with optional padding; None for any other character or an impossible length.
fn base64(text: &[u8]) -> Option<Vec<u8>> {
    let digits = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in digits {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        // only the low bits + 8 of acc are read; the older ones are shifted out
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The armor checksum: CRC-24 with generator 0x864CFB and initial value 0xB704CE (RFC 9580 §6.1).
fn crc24(data: &[u8]) -> u32 {
    let mut crc = 0xB7_04CE_u32;
    for &b in data {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x100_0000 != 0 {
                crc ^= 0x186_4CFB;
            }
        }
    }
    crc & 0xFF_FFFF
}

/// Whether the OpenPGP packets in `data` include a public key packet (tag 6) of a known version.
/// The walk stops at the first malformed header: what follows a key is gpgv's to judge, as before.
fn holds_public_key(mut data: &[u8]) -> bool {
    while let Some((tag, body, rest)) = packet(data) {
        if tag == 6 && body.first().is_some_and(|v| (3..=6).contains(v)) {
            return true;
        }
        data = rest;
    }
    false
}

/// The first packet of `data` (RFC 9580 §4.2): its tag, its body and what follows; None for a malformed
/// header, a partial body length (never used in keyrings) or a body running past the end.
fn packet(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&first, rest) = data.split_first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let (tag, len, rest) = if first & 0x40 != 0 {
        let tag = first & 0x3F;
        let (&o1, rest) = rest.split_first()?;
        match o1 {
            0..=191 => (tag, usize::from(o1), rest),
            192..=223 => {
                let (&o2, rest) = rest.split_first()?;
                (
                    tag,
                    (usize::from(o1 - 192) << 8) + usize::from(o2) + 192,
                    rest,
                )
            }
            255 => {
                let (len, rest) = big_endian(rest, 4)?;
                (tag, len, rest)
            }
            _ => return None,
        }
    } else {
        let tag = (first >> 2) & 0x0F;
        match first & 3 {
            3 => (tag, rest.len(), rest), // indeterminate: up to the end
            width => {
                let (len, rest) = big_endian(rest, 1 << width)?;
                (tag, len, rest)
            }
        }
    };
    let (body, rest) = rest.split_at_checked(len)?;
    Some((tag, body, rest))
}

/// The big-endian number in the first `width` bytes of `data`, and the rest.
fn big_endian(data: &[u8], width: usize) -> Option<(usize, &[u8])> {
    let (number, rest) = data.split_at_checked(width)?;
    let number = number
        .iter()
        .fold(0usize, |n, &b| (n << 8) | usize::from(b));
    Some((number, rest))
}

/// A GnuPG keybox (`pubring.kbx`, gpgv's default `trustedkeys.kbx`), which gpgv reads too: its first
/// blob is a header carrying the magic `KBXf`.
fn is_keybox(data: &[u8]) -> bool {
    data.get(8..12) == Some(b"KBXf")
}

/// Whether a keybox holds an OpenPGP keyblock: blobs are a 4-byte length (counting itself) and a type
/// byte, and type 2 is an OpenPGP key.
fn keybox_holds_key(mut data: &[u8]) -> bool {
    while let Some((len, _)) = big_endian(data, 4) {
        let Some(blob) = data.get(..len).filter(|_| len > 4) else {
            return false;
        };
        if blob[4] == 2 {
            return true;
        }
        data = &data[len..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::verify::signature::tests::TestKey;

    fn write(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    /// `data` armored as gpg does it: a header, a blank line, 64-column base64 and the checksum.
    fn armor(kind: &str, data: &[u8]) -> String {
        let mut out = format!("-----BEGIN PGP {kind}-----\nComment: made by the test\n\n");
        for chunk in encode(data).as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap());
            out.push('\n');
        }
        let crc = crc24(data).to_be_bytes();
        out.push_str(&format!(
            "={}\n-----END PGP {kind}-----\n",
            encode(&crc[1..])
        ));
        out
    }

    fn encode(data: &[u8]) -> String {
        const DIGITS: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                out.push(if i <= chunk.len() {
                    char::from(DIGITS[(n >> (18 - 6 * i) & 63) as usize])
                } else {
                    '='
                });
            }
        }
        out
    }

    #[test]
    fn base64_and_crc24() {
        assert_eq!(base64(b"aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64(b"aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64(b"aGk=").unwrap(), b"hi");
        assert_eq!(base64(b"").unwrap(), b"");
        assert_eq!(base64(b"aGVs=bG8"), None);
        assert_eq!(base64(b"aGVsb"), None);
        assert_eq!(base64(b"aGV*"), None);
        // the CRC-24 of "123456789" (the catalogue value of CRC-24/OPENPGP)
        assert_eq!(crc24(b"123456789"), 0x21CF02);
        assert_eq!(crc24(b""), 0xB704CE);
    }

    #[test]
    fn packets_of_every_header_form() {
        // new format, one-octet length: a v4 public key packet
        assert!(holds_public_key(&[0xC6, 2, 4, 0]));
        // new format, two-octet length (192 bytes)
        let mut two = vec![0xC6, 192, 0, 4];
        two.resize(3 + 192, 0);
        assert!(holds_public_key(&two));
        // new format, five-octet length
        assert!(holds_public_key(&[0xC6, 255, 0, 0, 0, 1, 4]));
        // old format, one-, two- and four-byte lengths, and indeterminate
        assert!(holds_public_key(&[0x98, 1, 4]));
        assert!(holds_public_key(&[0x99, 0, 1, 4]));
        assert!(holds_public_key(&[0x9A, 0, 0, 0, 1, 4]));
        assert!(holds_public_key(&[0x9B, 4, 0]));
        // a key after a user ID packet (tag 13) is found
        assert!(holds_public_key(&[0xCD, 1, b'x', 0xC6, 1, 4]));
        // only a signature (tag 2), only a secret key (tag 5), a body past the end, a partial length,
        // an unknown key version, text
        assert!(!holds_public_key(&[0xC2, 1, 4]));
        assert!(!holds_public_key(&[0xC5, 1, 4]));
        assert!(!holds_public_key(&[0xC6, 9, 4]));
        assert!(!holds_public_key(&[0xC6, 224, 4]));
        assert!(!holds_public_key(&[0xC6, 1, 9]));
        assert!(!holds_public_key(b"hello"));
        assert!(!holds_public_key(b""));
    }

    #[test]
    fn armored_keyrings_are_decoded() {
        let (one, two) = (TestKey::generate(), TestKey::generate());
        let (one_bin, two_bin) = (
            std::fs::read(&one.keyring).unwrap(),
            std::fs::read(&two.keyring).unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        // gpg's own armor, with text before it and CRLF line ends
        let gpg_armor = String::from_utf8(one.gpg(&["--armor", "--export"])).unwrap();
        let text = format!("a key for tests\r\n{}", gpg_armor.replace('\n', "\r\n"));
        let path = write(dir.path(), "RPM-GPG-KEY-test", text.as_bytes());
        assert_eq!(binary(&path).unwrap(), one_bin);
        // two blocks of two keys, a signature block between them left out
        let text = [
            armor("PUBLIC KEY BLOCK", &one_bin),
            armor("SIGNATURE", b"\xC2\x01\x04"),
            armor("PUBLIC KEY BLOCK", &two_bin),
        ]
        .concat();
        let path = write(dir.path(), "keys.gpg", text.as_bytes());
        assert_eq!(binary(&path).unwrap(), [one_bin.clone(), two_bin].concat());
        // without the optional checksum
        let text: String = armor("PUBLIC KEY BLOCK", &one_bin)
            .lines()
            .filter(|l| !l.starts_with('='))
            .map(|l| format!("{l}\n"))
            .collect();
        let path = write(dir.path(), "no-crc.asc", text.as_bytes());
        assert_eq!(binary(&path).unwrap(), one_bin);
        // binary keyrings and keyboxes are handed on as they are
        assert_eq!(binary(&one.keyring).unwrap(), one_bin);
        let kbx = one.home.path().join("pubring.kbx");
        assert_eq!(binary(&kbx).unwrap(), std::fs::read(&kbx).unwrap());
    }

    #[test]
    fn keyrings_without_a_public_key_are_refused() {
        let key = TestKey::generate();
        let dir = tempfile::tempdir().unwrap();
        let secret = key.gpg(&["--armor", "--export-secret-keys"]);
        let secret_bin = key.gpg(&["--export-secret-keys"]);
        let signature = key.sign(&["--armor", "--detach-sign"], b"text");
        let cases: [(&str, &[u8]); 7] = [
            ("empty.gpg", b""),
            ("garbage.asc", b"not a key\n"),
            ("binary-garbage.gpg", b"\xC6\xFF\xFF"),
            ("secret.asc", &secret),
            ("secret.gpg", &secret_bin),
            ("signature.asc", &signature),
            ("only-a-signature.gpg", b"\xC2\x01\x04"),
        ];
        for (name, data) in cases {
            let path = write(dir.path(), name, data);
            let err = binary(&path).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "no OpenPGP public key in {}: expected a binary keyring or an ASCII-armored public key block",
                    path.display()
                )
            );
        }
        let err = binary(Path::new("/nonexistent.asc")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent.asc"), "{err}");
    }

    #[test]
    fn damaged_armor_is_refused_with_its_block() {
        let key = TestKey::generate();
        let bin = std::fs::read(&key.keyring).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let good = armor("PUBLIC KEY BLOCK", &bin);
        // one base64 digit changed in the second block: the checksum no longer matches
        let mut bad = good.clone().into_bytes();
        let at = good.find("\n\n").unwrap() + 10;
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        let text = [good.as_bytes(), &bad].concat();
        let path = write(dir.path(), "bad-crc.asc", &text);
        let err = binary(&path).unwrap_err().to_string();
        let line = good.lines().count() + 1;
        assert!(
            err.starts_with(&format!(
                "keyring {}: armored block 2 (line {line}): CRC-24 checksum",
                path.display()
            )),
            "{err}"
        );
        assert!(err.contains("the block is damaged"), "{err}");

        let cut = &good[..good.len() / 2];
        let path = write(dir.path(), "cut.asc", cut.as_bytes());
        let err = binary(&path).unwrap_err().to_string();
        assert!(
            err.contains("armored block 1 (line 1): no -----END PGP PUBLIC KEY BLOCK----- line"),
            "{err}"
        );
        let path = write(
            dir.path(),
            "not-base64.asc",
            good.replacen("\n\n", "\n\n!!!!\n", 1).as_bytes(),
        );
        let err = binary(&path).unwrap_err().to_string();
        assert!(err.contains("the body is not base64"), "{err}");
    }
}
