//! Reads the directory tree of an ISO 9660 image in place: volume descriptors, directory records
//! (multi-extent files included), Rock Ridge (SUSP with `CE` continuations; `NM`, `SL`, `PX`, `TF`, `CL`,
//! `RE`) and Joliet names. Rock Ridge is preferred (case, long names, symlinks), then Joliet, then the
//! plain ISO 9660 names without their `;1` version suffix.
//!
//! The image is untrusted input: every offset is bounds-checked, directories are read at most once (a
//! directory extent that appears twice is a loop and refused) and the tree is capped in depth and size.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECTOR: u64 = 2048;
/// Directory nesting deeper than this is refused (Rock Ridge relocation makes deep trees possible).
const MAX_DEPTH: usize = 64;
/// Entries in one image at most; a DVD holds a few thousand.
const MAX_ENTRIES: usize = 4_000_000;
/// SUSP continuation areas followed per record at most.
const MAX_CONTINUATIONS: usize = 16;
/// Largest directory extent read, so that a bogus length cannot make us allocate gigabytes.
const MAX_DIR_BYTES: u64 = 64 << 20;

/// Byte range of a file's data in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Children are indices into `Index::entries`, sorted by name.
    Dir(Vec<usize>),
    File(Vec<Extent>),
    /// A Rock Ridge symbolic link and its target as written.
    Symlink(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: OsString,
    pub parent: usize,
    pub kind: Kind,
    pub modified: SystemTime,
}

impl Entry {
    /// Size of a file's data; 0 for directories and symlinks.
    pub fn data_len(&self) -> u64 {
        match &self.kind {
            Kind::File(extents) => extents.iter().map(|e| e.len).sum(),
            _ => 0,
        }
    }
}

/// Which names the tree carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    RockRidge,
    Joliet,
    Iso9660,
}

impl fmt::Display for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Names::RockRidge => "Rock Ridge",
            Names::Joliet => "Joliet",
            Names::Iso9660 => "ISO 9660",
        })
    }
}

/// The whole directory tree of an image; entry 0 is the root directory.
#[derive(Debug)]
pub struct Index {
    pub entries: Vec<Entry>,
    pub names: Names,
    pub volume_id: String,
}

impl Index {
    /// The child of directory `dir` called `name`.
    pub fn child(&self, dir: usize, name: &[u8]) -> Option<usize> {
        let Kind::Dir(children) = &self.entries[dir].kind else {
            return None;
        };
        children
            .binary_search_by(|&c| self.entries[c].name.as_encoded_bytes().cmp(name))
            .ok()
            .map(|i| children[i])
    }
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// A directory record as read, before names are chosen.
struct Record {
    extent: u64,
    len: u64,
    flags: u8,
    modified: SystemTime,
    id: Vec<u8>,
    rr: RockRidge,
}

const FLAG_DIR: u8 = 0x02;
const FLAG_MULTI_EXTENT: u8 = 0x80;

#[derive(Default)]
struct RockRidge {
    name: Option<Vec<u8>>,
    symlink: Option<Vec<u8>>,
    mode: Option<u32>,
    modified: Option<SystemTime>,
    /// `CL`: this record stands for a directory relocated to this block.
    child_link: Option<u64>,
    /// `RE`: this is a relocated directory, shown where its `CL` points instead.
    relocated: bool,
}

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;

struct Reader<'a> {
    file: &'a File,
    /// Bytes to skip at the start of each record's system use area (from the root's `SP` entry); `None`
    /// when the tree has no Rock Ridge.
    susp_skip: Option<usize>,
}

impl Reader<'_> {
    fn read(&self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len as usize];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => invalid(format!(
                    "data at byte {offset} lies beyond the end of the image"
                )),
                _ => e,
            })?;
        Ok(buf)
    }

    /// The records of the directory whose extent starts at block `extent`, `.` and `..` included.
    fn records(&self, extent: u64, len: u64) -> io::Result<Vec<Record>> {
        if len > MAX_DIR_BYTES {
            return Err(invalid(format!(
                "directory at block {extent} claims {len} bytes"
            )));
        }
        let data = self.read(extent * SECTOR, len)?;
        let mut records = Vec::new();
        let mut at = 0usize;
        while at < data.len() {
            let rec_len = data[at] as usize;
            if rec_len == 0 {
                // records never cross a sector: the rest of this one is padding
                at = (at / SECTOR as usize + 1) * SECTOR as usize;
                continue;
            }
            let rec = data
                .get(at..at + rec_len)
                .ok_or_else(|| invalid(format!("directory record at block {extent} is cut off")))?;
            records.push(self.record(rec)?);
            at += rec_len;
        }
        Ok(records)
    }

    fn record(&self, rec: &[u8]) -> io::Result<Record> {
        if rec.len() < 34 {
            return Err(invalid("directory record shorter than 34 bytes"));
        }
        let id_len = rec[32] as usize;
        let id = rec
            .get(33..33 + id_len)
            .ok_or_else(|| invalid("directory record name is cut off"))?
            .to_vec();
        let mut record = Record {
            extent: le32(&rec[2..6]),
            len: le32(&rec[10..14]),
            flags: rec[25],
            modified: record_time(&rec[18..25]),
            id,
            rr: RockRidge::default(),
        };
        if let Some(skip) = self.susp_skip {
            let su_start = 33 + id_len + (1 - id_len % 2);
            if let Some(area) = rec.get(su_start + skip..) {
                self.rock_ridge(area, &mut record.rr)?;
            }
        }
        Ok(record)
    }

    /// Parses the SUSP entries of a system use area and its continuation areas.
    fn rock_ridge(&self, area: &[u8], rr: &mut RockRidge) -> io::Result<()> {
        let mut areas = vec![area.to_vec()];
        let mut name = Vec::new();
        let mut link = Vec::new();
        let (mut has_name, mut link_done) = (false, false);
        let mut component_open = false;
        let mut continuations = 0;
        while let Some(area) = areas.pop() {
            let mut at = 0;
            while at + 4 <= area.len() {
                let sig = &area[at..at + 2];
                let len = area[at + 2] as usize;
                if len < 4 || at + len > area.len() {
                    break;
                }
                let data = &area[at + 4..at + len];
                match sig {
                    b"CE" if data.len() >= 24 => {
                        continuations += 1;
                        if continuations > MAX_CONTINUATIONS {
                            return Err(invalid("too many SUSP continuation areas"));
                        }
                        let (block, offset, ce_len) =
                            (le32(&data[0..4]), le32(&data[8..12]), le32(&data[16..20]));
                        if ce_len > SECTOR {
                            return Err(invalid("SUSP continuation area longer than a sector"));
                        }
                        areas.push(self.read(block * SECTOR + offset, ce_len)?);
                    }
                    b"ST" => break,
                    // flags: 1 continues in the next NM, 2 ".", 4 ".."
                    b"NM" if !data.is_empty() && data[0] & 0x06 == 0 => {
                        name.extend_from_slice(&data[1..]);
                        has_name = true;
                    }
                    b"SL" if !data.is_empty() && !link_done => {
                        let mut c = 1;
                        while c + 2 <= data.len() {
                            let (cflags, clen) = (data[c], data[c + 1] as usize);
                            let content = data.get(c + 2..c + 2 + clen).unwrap_or(&[]);
                            if !component_open && !link.is_empty() && link != b"/" {
                                link.push(b'/');
                            }
                            match cflags & 0x0e {
                                0x02 => link.push(b'.'),
                                0x04 => link.extend_from_slice(b".."),
                                0x08 => link.push(b'/'),
                                _ => link.extend_from_slice(content),
                            }
                            component_open = cflags & 0x01 != 0;
                            c += 2 + clen;
                        }
                        link_done = data[0] & 0x01 == 0;
                        rr.symlink = Some(link.clone());
                    }
                    b"PX" if data.len() >= 8 => rr.mode = Some(le32(&data[0..4]) as u32),
                    b"TF" if !data.is_empty() => rr.modified = tf_modified(data),
                    b"CL" if data.len() >= 8 => rr.child_link = Some(le32(&data[0..4])),
                    b"RE" => rr.relocated = true,
                    _ => {}
                }
                at += len;
            }
        }
        if has_name {
            rr.name = Some(name);
        }
        if rr.mode.is_some_and(|m| m & S_IFMT != S_IFLNK) {
            rr.symlink = None;
        }
        Ok(())
    }
}

/// Reads the tree of the image in `file`.
pub fn read_index(file: &File) -> io::Result<Index> {
    let mut pvd_root = None;
    let mut joliet_root = None;
    let mut volume_id = String::new();
    for n in 16..16 + 64 {
        let mut vd = [0u8; SECTOR as usize];
        file.read_exact_at(&mut vd, n * SECTOR)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => invalid("no volume descriptor set terminator"),
                _ => e,
            })?;
        if &vd[1..6] != b"CD001" {
            return Err(invalid(format!(
                "sector {n} is not an ISO 9660 volume descriptor"
            )));
        }
        match vd[0] {
            1 => {
                if le16(&vd[128..130]) != SECTOR {
                    return Err(invalid("logical block size is not 2048"));
                }
                volume_id = String::from_utf8_lossy(&vd[40..72]).trim().to_string();
                pvd_root = Some(vd[156..190].to_vec());
            }
            2 if is_joliet(&vd[88..120]) => joliet_root = Some(vd[156..190].to_vec()),
            255 => break,
            _ => {}
        }
    }
    let pvd_root = pvd_root.ok_or_else(|| invalid("no primary volume descriptor"))?;
    let plain = Reader {
        file,
        susp_skip: None,
    };
    let root = plain.record(&pvd_root)?;
    // Rock Ridge announces itself with an SP entry in the root's "." record.
    let first = plain.read(root.extent * SECTOR, SECTOR)?;
    let susp_skip = sp_entry(&first);
    let (root, reader, names) = match (susp_skip, joliet_root) {
        (Some(skip), _) => (
            root,
            Reader {
                file,
                susp_skip: Some(skip),
            },
            Names::RockRidge,
        ),
        (None, Some(j)) => (plain.record(&j)?, plain, Names::Joliet),
        (None, None) => (root, plain, Names::Iso9660),
    };
    let mut builder = Builder {
        reader,
        names,
        entries: vec![Entry {
            name: OsString::new(),
            parent: 0,
            kind: Kind::Dir(Vec::new()),
            modified: root.modified,
        }],
        seen: HashSet::new(),
    };
    builder.directory(0, root.extent, root.len, 0)?;
    Ok(Index {
        entries: builder.entries,
        names,
        volume_id,
    })
}

struct Builder<'a> {
    reader: Reader<'a>,
    names: Names,
    entries: Vec<Entry>,
    seen: HashSet<u64>,
}

impl Builder<'_> {
    fn directory(&mut self, dir: usize, extent: u64, len: u64, depth: usize) -> io::Result<()> {
        if depth > MAX_DEPTH {
            return Err(invalid(format!(
                "directories nested deeper than {MAX_DEPTH}"
            )));
        }
        if !self.seen.insert(extent) {
            return Err(invalid(format!(
                "directory at block {extent} appears twice (a loop)"
            )));
        }
        let records = self.reader.records(extent, len)?;
        let mut children = Vec::new();
        let mut subdirs = Vec::new();
        let mut i = 0;
        while i < records.len() {
            let rec = &records[i];
            i += 1;
            if rec.id == [0] || rec.id == [1] || rec.rr.relocated {
                continue; // ".", "..", and relocated directories (shown at their CL record)
            }
            let name = self.name(rec);
            if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
                continue;
            }
            let modified = rec.rr.modified.unwrap_or(rec.modified);
            let kind = if let Some(target) = &rec.rr.symlink {
                Kind::Symlink(target.clone())
            } else if let Some(block) = rec.rr.child_link {
                let dot = self.reader.records(block, SECTOR)?;
                let len = dot.first().map_or(SECTOR, |d| d.len);
                subdirs.push((self.entries.len(), block, len));
                Kind::Dir(Vec::new())
            } else if rec.flags & FLAG_DIR != 0 {
                subdirs.push((self.entries.len(), rec.extent, rec.len));
                Kind::Dir(Vec::new())
            } else {
                let mut extents = vec![Extent {
                    offset: rec.extent * SECTOR,
                    len: rec.len,
                }];
                let mut flags = rec.flags;
                while flags & FLAG_MULTI_EXTENT != 0 {
                    let next = records
                        .get(i)
                        .ok_or_else(|| invalid("multi-extent file without its last extent"))?;
                    extents.push(Extent {
                        offset: next.extent * SECTOR,
                        len: next.len,
                    });
                    flags = next.flags;
                    i += 1;
                }
                Kind::File(extents)
            };
            if self.entries.len() >= MAX_ENTRIES {
                return Err(invalid(format!("more than {MAX_ENTRIES} entries")));
            }
            children.push(self.entries.len());
            self.entries.push(Entry {
                name: OsString::from_vec(name),
                parent: dir,
                kind,
                modified,
            });
        }
        children.sort_by(|&a, &b| {
            self.entries[a]
                .name
                .as_encoded_bytes()
                .cmp(self.entries[b].name.as_encoded_bytes())
        });
        children.dedup_by(|a, b| self.entries[*a].name == self.entries[*b].name);
        self.entries[dir].kind = Kind::Dir(children);
        for (child, extent, len) in subdirs {
            self.directory(child, extent, len, depth + 1)?;
        }
        Ok(())
    }

    fn name(&self, rec: &Record) -> Vec<u8> {
        match self.names {
            Names::RockRidge if rec.rr.name.is_some() => rec.rr.name.clone().unwrap_or_default(),
            Names::Joliet => {
                let units: Vec<u16> = rec
                    .id
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                strip_version(String::from_utf16_lossy(&units).into_bytes())
            }
            _ => strip_version(rec.id.clone()),
        }
    }
}

/// `NAME.EXT;1` → `NAME.EXT`; a name that ends in a dot loses it (`README.;1` → `README`).
fn strip_version(mut id: Vec<u8>) -> Vec<u8> {
    if let Some(semi) = id.iter().rposition(|&b| b == b';') {
        id.truncate(semi);
    }
    if id.len() > 1 && id.ends_with(b".") {
        id.pop();
    }
    id
}

fn is_joliet(escapes: &[u8]) -> bool {
    [b"%/@", b"%/C", b"%/E"]
        .iter()
        .any(|e| escapes.windows(3).any(|w| w == *e))
}

/// The `SP` entry at the start of the root's "." record: Rock Ridge is present, with this skip length.
fn sp_entry(sector: &[u8]) -> Option<usize> {
    let rec_len = *sector.first()? as usize;
    let rec = sector.get(..rec_len)?;
    let id_len = *rec.get(32)? as usize;
    let su = rec.get(33 + id_len + (1 - id_len % 2)..)?;
    (su.len() >= 7 && &su[0..2] == b"SP" && su[4] == 0xbe && su[5] == 0xef).then(|| su[6] as usize)
}

fn le16(b: &[u8]) -> u64 {
    u64::from(u16::from_le_bytes([b[0], b[1]]))
}

fn le32(b: &[u8]) -> u64 {
    u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The 7-byte date of a directory record: years since 1900, month, day, h, m, s, offset from UTC in
/// quarter hours.
fn record_time(b: &[u8]) -> SystemTime {
    let offset = i64::from(b[6] as i8) * 15 * 60;
    civil_time(1900 + i64::from(b[0]), b[1], b[2], b[3], b[4], b[5], offset)
}

/// `TF`: the modification time, in short (7-byte) or long (17-byte) form.
fn tf_modified(data: &[u8]) -> Option<SystemTime> {
    let flags = data[0];
    if flags & 0x02 == 0 {
        return None;
    }
    let long = flags & 0x80 != 0;
    let size = if long { 17 } else { 7 };
    let skip = usize::from(flags & 0x01 != 0); // a creation time comes first
    let t = data.get(1 + skip * size..1 + (skip + 1) * size)?;
    if !long {
        return Some(record_time(t));
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(&t[r]).ok()?.parse().ok()
    };
    let offset = i64::from(t[16] as i8) * 15 * 60;
    Some(civil_time(
        num(0..4)?,
        num(4..6)? as u8,
        num(6..8)? as u8,
        num(8..10)? as u8,
        num(10..12)? as u8,
        num(12..14)? as u8,
        offset,
    ))
}

fn civil_time(year: i64, month: u8, day: u8, h: u8, m: u8, s: u8, utc_offset: i64) -> SystemTime {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return UNIX_EPOCH;
    }
    // days from civil (Howard Hinnant's algorithm)
    let (y, mo) = if month <= 2 {
        (year - 1, i64::from(month) + 9)
    } else {
        (year, i64::from(month) - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s) - utc_offset;
    UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let t = record_time(&[124, 1, 2, 3, 4, 5, 0]);
        assert_eq!(httpdate::fmt_http_date(t), "Tue, 02 Jan 2024 03:04:05 GMT");
        // UTC+1 (4 quarter hours): the same wall clock is an hour earlier in UTC
        let t = record_time(&[124, 1, 2, 3, 4, 5, 4]);
        assert_eq!(httpdate::fmt_http_date(t), "Tue, 02 Jan 2024 02:04:05 GMT");
        let mut tf = vec![0x82];
        tf.extend_from_slice(b"2024022912305900");
        tf.push(0);
        let t = tf_modified(&tf).unwrap();
        assert_eq!(httpdate::fmt_http_date(t), "Thu, 29 Feb 2024 12:30:59 GMT");
    }

    #[test]
    fn names() {
        assert_eq!(strip_version(b"README.TXT;1".to_vec()), b"README.TXT");
        assert_eq!(strip_version(b"README.;1".to_vec()), b"README");
        assert_eq!(strip_version(b"DIR".to_vec()), b"DIR");
        assert!(is_joliet(b"%/E\0\0"));
        assert!(!is_joliet(b"\0\0\0\0"));
    }

    #[test]
    fn not_an_image() {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &vec![0u8; 40 * 2048]).unwrap();
        let err = read_index(&f).unwrap_err();
        assert!(err.to_string().contains("sector 16"), "{err}");
        let short = tempfile::tempfile().unwrap();
        assert!(read_index(&short).is_err());
    }
}
