//! `backup NAME FILE` and `restore FILE`: a guest's definition and disk in one file, compressed
//! by chunks and checked by SHA-256 on the way back.
//!
//! The file: the line `XENPROV-BACKUP 1`, a JSON header line (the definition, the disk's size,
//! the chunk size), one zstd frame per chunk of the disk, a JSON trailer line with each chunk's
//! SHA-256 and the whole disk's (over the chunks' in order), and its length as 8 little-endian bytes. While it is written,
//! `FILE.journal` holds a line per chunk written and synced: a run that stopped goes on from
//! there. A restore reads the trailer first and checks every chunk before it writes it, onto a
//! volume it has just created and removes again if anything does not match.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xenprov_core::guest::Guest;
use xenprov_core::size::Size;

use crate::ops::{self, Env};
use crate::storage;

pub const MAGIC: &[u8] = b"XENPROV-BACKUP 1\n";
/// Big enough for zstd to find what repeats, small enough that a resume loses little.
pub const CHUNK: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The guest's definition, as `guest.toml` holds it.
    pub definition: String,
    pub size: u64,
    pub chunk: u64,
    /// The volume read: the disk itself, or a snapshot of it taken for a running guest.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Trailer {
    chunks: Vec<String>,
    sha256: String,
}

/// The whole disk's checksum: SHA-256 over its chunks' checksums in order, which holds every
/// byte as a hash of the disk itself would, without hashing the disk twice.
fn disk_sha256(chunks: &[String]) -> String {
    let mut h = Sha256::new();
    for c in chunks {
        h.update(c.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

fn journal_of(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".journal");
    PathBuf::from(p)
}

fn header_bytes(h: &Header) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend(serde_json::to_vec(h).expect("a header serializes"));
    b.push(b'\n');
    b
}

/// What a backup run did.
#[derive(Debug, PartialEq, Eq)]
pub struct Written {
    /// Chunks found done by an earlier run, and written now.
    pub resumed: usize,
    pub written: usize,
    pub bytes: u64,
}

/// Writes (or goes on writing) the backup of `volume` into `file`.
pub fn write(volume: &Path, header: &Header, file: &Path) -> Result<Written> {
    let journal = journal_of(file);
    let head = header_bytes(header);
    let mut done: Vec<(u64, String)> = Vec::new();
    let mut out = if file.exists() {
        if !journal.exists() {
            bail!(
                "{} exists and is not a backup that stopped half-way ({} is missing): give another file",
                file.display(),
                journal.display()
            );
        }
        let mut f = OpenOptions::new().read(true).write(true).open(file)?;
        let mut have = vec![0; head.len()];
        if f.read_exact(&mut have).is_err() || have != head {
            bail!(
                "{} was begun for another guest, disk size or source: remove it and {} to start again",
                file.display(),
                journal.display()
            );
        }
        for line in BufReader::new(File::open(&journal)?).lines() {
            let line = line?;
            let (end, sum) = line.split_once(' ').with_context(|| {
                format!("{}: a line that is not `END SHA256`", journal.display())
            })?;
            done.push((end.parse()?, sum.to_string()));
        }
        let end = done.last().map_or(head.len() as u64, |d| d.0);
        f.set_len(end)?;
        f.seek(SeekFrom::End(0))?;
        f
    } else {
        let mut f = File::create(file).with_context(|| format!("creating {}", file.display()))?;
        f.write_all(&head)?;
        f.sync_all()?;
        File::create(&journal)?;
        f
    };
    let mut journal_f = OpenOptions::new().append(true).open(&journal)?;
    let mut src = File::open(volume).with_context(|| format!("opening {}", volume.display()))?;
    let resumed = done.len();
    let n_chunks = header.size.div_ceil(header.chunk) as usize;
    let mut sums = Vec::with_capacity(n_chunks);
    // Chunks are read in batches, one per CPU, and hashed and compressed in parallel: the reading
    // and zstd overlap as in `dd | zstd`. A chunk of zeros (most of a new disk) is neither hashed
    // nor compressed again: its checksum and frame are made once.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut zero: Option<(usize, String, Vec<u8>)> = None;
    let mut i = 0;
    while i < n_chunks {
        let batch: Vec<usize> = (i..n_chunks.min(i + workers)).collect();
        let mut bufs = Vec::with_capacity(batch.len());
        for &k in &batch {
            let len = (header.size - k as u64 * header.chunk).min(header.chunk) as usize;
            let mut b = vec![0u8; len];
            src.seek(SeekFrom::Start(k as u64 * header.chunk))?;
            src.read_exact(&mut b)
                .with_context(|| format!("reading {} at chunk {k}", volume.display()))?;
            bufs.push(b);
        }
        let made: Vec<Result<(String, Option<Vec<u8>>)>> = std::thread::scope(|sc| {
            let handles: Vec<_> = batch
                .iter()
                .zip(&bufs)
                .map(|(&k, b)| {
                    let need_frame = k >= done.len();
                    let zero = zero.as_ref().filter(|z| z.0 == b.len());
                    sc.spawn(move || -> Result<(String, Option<Vec<u8>>)> {
                        if let Some((_, sum, frame)) = zero
                            && b.iter().all(|&x| x == 0)
                        {
                            return Ok((sum.clone(), need_frame.then(|| frame.clone())));
                        }
                        let sum = hex::encode(Sha256::digest(b));
                        let frame = need_frame.then(|| zstd::bulk::compress(b, 3)).transpose()?;
                        Ok((sum, frame))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a chunk's worker panicked"))
                .collect()
        });
        for ((&k, b), m) in batch.iter().zip(&bufs).zip(made) {
            let (sum, frame) = m?;
            if zero.is_none() && b.iter().all(|&x| x == 0) {
                let frame = zstd::bulk::compress(b, 3)?;
                zero = Some((b.len(), sum.clone(), frame));
            }
            match (done.get(k), frame) {
                (Some((_, had)), _) if *had != sum => bail!(
                    "{} changed since the backup in {} began (chunk {k}): remove both files and start again",
                    volume.display(),
                    file.display()
                ),
                (Some(_), _) => {}
                (None, frame) => {
                    out.write_all(&frame.expect("a frame for every chunk not yet written"))?;
                    out.sync_data()?;
                    let end = out.stream_position()?;
                    writeln!(journal_f, "{end} {sum}")?;
                    journal_f.sync_data()?;
                }
            }
            sums.push(sum);
        }
        i += batch.len();
    }
    let whole = disk_sha256(&sums);
    let trailer = serde_json::to_vec(&Trailer {
        chunks: sums,
        sha256: whole,
    })?;
    out.write_all(&trailer)?;
    out.write_all(b"\n")?;
    out.write_all(&(trailer.len() as u64 + 1).to_le_bytes())?;
    out.sync_all()?;
    fs::remove_file(&journal)?;
    Ok(Written {
        resumed,
        written: n_chunks - resumed,
        bytes: out.stream_position()?,
    })
}

/// A backup file opened for restoring: its header, and the checks to hold its chunks to.
pub struct Backup {
    file: File,
    path: PathBuf,
    pub header: Header,
    trailer: Trailer,
    data_start: u64,
    data_end: u64,
}

pub fn open(path: &Path) -> Result<Backup> {
    let bad =
        |why: &str| anyhow::anyhow!("{} is not a whole xenprov backup: {why}", path.display());
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = f.metadata()?.len();
    let mut r = BufReader::new(&mut f);
    let mut magic = vec![0; MAGIC.len()];
    r.read_exact(&mut magic).map_err(|_| bad("too short"))?;
    if magic != MAGIC {
        return Err(bad("it does not begin with XENPROV-BACKUP 1"));
    }
    let mut line = String::new();
    r.read_line(&mut line)?;
    let header: Header =
        serde_json::from_str(&line).map_err(|_| bad("its header is unreadable"))?;
    let data_start = (MAGIC.len() + line.len()) as u64;
    if len < data_start + 8 {
        return Err(bad("it ends before its trailer"));
    }
    f.seek(SeekFrom::End(-8))?;
    let mut n = [0; 8];
    f.read_exact(&mut n)?;
    let tlen = u64::from_le_bytes(n);
    if tlen > len - 8 - data_start {
        return Err(bad(
            "its trailer is missing (did the backup stop half-way?)",
        ));
    }
    let data_end = len - 8 - tlen;
    f.seek(SeekFrom::Start(data_end))?;
    let mut t = vec![0; tlen as usize];
    f.read_exact(&mut t)?;
    let trailer: Trailer =
        serde_json::from_slice(&t).map_err(|_| bad("its trailer is unreadable"))?;
    if header.chunk == 0 || trailer.chunks.len() as u64 != header.size.div_ceil(header.chunk) {
        return Err(bad("its trailer does not list a checksum for every chunk"));
    }
    Ok(Backup {
        file: f,
        path: path.to_path_buf(),
        header,
        trailer,
        data_start,
        data_end,
    })
}

impl Backup {
    /// Writes the disk onto `volume`, each chunk checked before it is written; an error names
    /// the first chunk that does not match.
    pub fn restore_into(mut self, volume: &Path) -> Result<()> {
        let mut out = OpenOptions::new()
            .write(true)
            .open(volume)
            .with_context(|| format!("opening {}", volume.display()))?;
        self.file.seek(SeekFrom::Start(self.data_start))?;
        let frames = (&mut self.file).take(self.data_end - self.data_start);
        let mut dec = zstd::stream::read::Decoder::new(frames)?.single_frame();
        let mut buf = vec![0u8; self.header.chunk as usize];
        for (i, want) in self.trailer.chunks.iter().enumerate() {
            let len =
                (self.header.size - i as u64 * self.header.chunk).min(self.header.chunk) as usize;
            dec.read_exact(&mut buf[..len]).with_context(|| {
                format!("{}: chunk {i} is cut short or corrupt", self.path.display())
            })?;
            let got = hex::encode(Sha256::digest(&buf[..len]));
            if got != *want {
                bail!(
                    "{}: chunk {i} has SHA-256 {got}, but the backup says {want}: refusing to write it",
                    self.path.display()
                );
            }
            // The frame's end (and its checksum) is read too, and nothing more comes out of it.
            if dec.read(&mut [0u8; 1])? != 0 {
                bail!(
                    "{}: chunk {i} holds more than its size",
                    self.path.display()
                );
            }
            out.write_all(&buf[..len])?;
            // The next frame: a chunk is one frame.
            dec = zstd::stream::read::Decoder::with_buffer(dec.finish())?.single_frame();
        }
        if disk_sha256(&self.trailer.chunks) != self.trailer.sha256 {
            bail!(
                "{}: the disk's SHA-256 does not match the backup's",
                self.path.display()
            );
        }
        out.sync_all()?;
        Ok(())
    }
}

/// The name of the snapshot a running guest's backup reads, kept until the backup is whole so
/// that a resumed run reads the same data.
const BACKUP_SNAPSHOT: &str = "xenprov-backup";

/// `backup NAME FILE`: from the disk of a stopped guest, or from a snapshot of a running one.
pub fn backup(env: &Env<'_>, name: &str, file: &Path) -> Result<Written> {
    let g = env.registry.guest(name)?;
    let running = env.domain(name)?.is_some();
    let has_snap = || -> Result<bool> {
        Ok(storage::snapshot_list(env, name)?
            .iter()
            .any(|s| s.name == BACKUP_SNAPSHOT))
    };
    let source = if running || has_snap()? {
        if !has_snap()? {
            storage::snapshot_create(env, name, BACKUP_SNAPSHOT, None)?;
        }
        format!("/dev/{}/{}-snap-{BACKUP_SNAPSHOT}", g.vg, g.lv_name())
    } else {
        g.disk_path()
    };
    let size = File::open(&source)
        .and_then(|mut f| f.seek(SeekFrom::End(0)))
        .with_context(|| format!("reading the size of {source}"))?;
    let header = Header {
        definition: g.to_toml(),
        size,
        chunk: CHUNK,
        source: source.clone(),
    };
    let w = write(Path::new(&source), &header, file)?;
    if source != g.disk_path() {
        storage::snapshot_remove(env, name, BACKUP_SNAPSHOT)?;
    }
    Ok(w)
}

/// `restore FILE` of a backup: the guest comes back defined as it was, stopped, on a new volume.
pub fn restore(env: &Env<'_>, file: &Path) -> Result<Guest> {
    let b = open(file)?;
    let origin = format!("the definition in {}", file.display());
    let guest = ops::check(env, &b.header.definition, &origin)?;
    if guest.disk.bytes() < b.header.size {
        bail!(
            "{origin} gives a {} disk, smaller than the {} backed up",
            guest.disk,
            Size(b.header.size)
        );
    }
    let now = (env.now)();
    ops::add(env, &guest, now)?;
    let undo = |e: anyhow::Error| -> anyhow::Error {
        let _ = env.machine.lv_remove(&guest.vg, &guest.lv_name());
        let _ = env.registry.remove(&guest.name);
        e.context(format!(
            "restoring guest `{}`; nothing of it is left",
            guest.name
        ))
    };
    let timeout = env.config.install_timeout.as_secs();
    env.registry
        .begin_build(&guest.name, std::process::id(), timeout, now)
        .map_err(undo)?;
    b.restore_into(Path::new(&guest.disk_path()))
        .map_err(undo)?;
    env.write_run_config(&guest).map_err(undo)?;
    env.registry.built(&guest.name, (env.now)()).map_err(undo)?;
    Ok(guest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(size: u64) -> Header {
        Header {
            definition: "name = \"web1\"\n".into(),
            size,
            chunk: 4096,
            source: "/dev/dsk/web1-disk".into(),
        }
    }

    #[test]
    fn a_backup_restores_byte_for_byte_and_resumes() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&vol, &data).unwrap();
        let file = d.path().join("web1.backup");
        let w = write(&vol, &header(10_000), &file).unwrap();
        assert_eq!((w.resumed, w.written), (0, 3));
        assert!(!journal_of(&file).exists());
        let e = write(&vol, &header(10_000), &file).unwrap_err().to_string();
        assert!(e.contains("exists and is not a backup that stopped"), "{e}");

        let out = d.path().join("out");
        fs::write(&out, vec![0u8; 10_000]).unwrap();
        let b = open(&file).unwrap();
        assert_eq!(b.header, header(10_000));
        b.restore_into(&out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), data);

        // Stopped after its first chunk: the next run writes the other two.
        let whole = fs::read(&file).unwrap();
        let first_end = header_bytes(&header(10_000)).len() as u64
            + zstd::bulk::compress(&data[..4096], 3).unwrap().len() as u64;
        let sum = hex::encode(Sha256::digest(&data[..4096]));
        fs::write(&file, &whole[..first_end as usize + 5]).unwrap();
        fs::write(journal_of(&file), format!("{first_end} {sum}\n")).unwrap();
        assert!(
            open(&file).is_err(),
            "a half-written backup is not restored"
        );
        let w = write(&vol, &header(10_000), &file).unwrap();
        assert_eq!((w.resumed, w.written), (1, 2));
        assert_eq!(fs::read(&file).unwrap(), whole);
    }

    #[test]
    fn a_corrupt_chunk_is_refused_before_it_is_written() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        fs::write(&vol, vec![7u8; 9000]).unwrap();
        let file = d.path().join("b");
        write(&vol, &header(9000), &file).unwrap();
        let mut bytes = fs::read(&file).unwrap();
        // The trailer's first checksum, changed by one digit.
        let at = bytes
            .windows(11)
            .position(|w| w == b"{\"chunks\":[")
            .unwrap()
            + 12;
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        fs::write(&file, &bytes).unwrap();
        let out = d.path().join("out");
        fs::write(&out, vec![0u8; 9000]).unwrap();
        let e = open(&file)
            .unwrap()
            .restore_into(&out)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("chunk 0 has SHA-256") && e.contains("refusing to write it"),
            "{e}"
        );
        assert_eq!(
            fs::read(&out).unwrap(),
            vec![0u8; 9000],
            "nothing was written"
        );
    }
}
