//! A cpio archive in the kernel's "newc" format, as appended to an initrd: the kernel unpacks every
//! archive it finds one after another (compressed or not) into the same root, the way Debian adds
//! CPU microcode in front of its initrds. Only directories and regular files, owned by root, with a
//! fixed time, so the same files always give the same bytes.

/// One entry: a directory (`None`) or a file with its bytes, its path relative to the root.
pub struct Entry<'a> {
    path: &'a str,
    mode: u32,
    data: Option<&'a [u8]>,
}

impl<'a> Entry<'a> {
    pub fn dir(path: &'a str, mode: u32) -> Entry<'a> {
        Entry {
            path,
            mode,
            data: None,
        }
    }

    pub fn file(path: &'a str, mode: u32, data: &'a [u8]) -> Entry<'a> {
        Entry {
            path,
            mode,
            data: Some(data),
        }
    }
}

const DIR: u32 = 0o040000;
const FILE: u32 = 0o100000;

/// The archive of `entries` and its trailer. Parents must come before what they hold: the kernel
/// creates no directory a file's path implies.
pub fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, e) in entries.iter().enumerate() {
        let kind = if e.data.is_some() { FILE } else { DIR };
        header(
            &mut out,
            n as u32 + 1,
            kind | e.mode,
            e.path,
            e.data.unwrap_or(&[]),
        );
    }
    header(&mut out, 0, 0, "TRAILER!!!", &[]);
    out
}

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, name: &str, data: &[u8]) {
    let nlink = if mode & DIR != 0 { 2 } else { 1 };
    out.extend_from_slice(b"070701");
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    for field in [
        ino,
        mode,
        0,
        0,
        nlink,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ] {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad(out);
    out.extend_from_slice(data);
    pad(out);
}

/// Header plus name, and the data, each end on a multiple of four bytes.
fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back (name, mode, data) of each entry the way the kernel's unpacker walks them.
    fn entries(mut a: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let start = a.as_ptr() as usize;
        let mut out = Vec::new();
        loop {
            assert_eq!((a.as_ptr() as usize - start) % 4, 0, "header not aligned");
            assert_eq!(&a[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&a[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let name = std::str::from_utf8(&a[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(a[110 + namesize - 1], 0, "name not NUL-terminated");
            let data_at = (110 + namesize).next_multiple_of(4);
            let data = a[data_at..data_at + size].to_vec();
            a = &a[(data_at + size).next_multiple_of(4)..];
            if name == "TRAILER!!!" {
                assert!(a.is_empty(), "bytes after the trailer");
                return out;
            }
            out.push((name, mode, data));
        }
    }

    #[test]
    fn directories_and_files_read_back_aligned() {
        let a = archive(&[
            Entry::dir("etc", 0o755),
            Entry::dir("etc/xenprov", 0o755),
            Entry::file("etc/xenprov/medium.sha256", 0o644, b"abc  live/x\n"),
            Entry::file("etc/xenprov/e", 0o600, b""),
        ]);
        assert_eq!(a.len() % 4, 0);
        let got = entries(&a);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], ("etc".into(), 0o040755, vec![]));
        assert_eq!(got[1].0, "etc/xenprov");
        assert_eq!(
            got[2],
            (
                "etc/xenprov/medium.sha256".into(),
                0o100644,
                b"abc  live/x\n".to_vec()
            )
        );
        assert_eq!(got[3], ("etc/xenprov/e".into(), 0o100600, vec![]));
    }

    #[test]
    fn the_same_files_give_the_same_bytes() {
        let e = [Entry::file("f", 0o644, b"1")];
        assert_eq!(archive(&e), archive(&e));
        let other = [Entry::file("f", 0o644, b"2")];
        assert_ne!(archive(&e), archive(&other));
    }
}
