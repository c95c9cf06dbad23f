//! Log output. Under systemd (stderr is the journal's stream, `JOURNAL_STREAM`), messages go to
//! journald natively: each with its priority (error 3, warn 4, info 6, debug 7), its target and source
//! line, and its fields (`F_PEER`, …). Elsewhere, and for the access log always, lines go to stderr.
//! Access-log lines are gathered and written in batches of up to `BATCH_BYTES`, at least every
//! `FLUSH_INTERVAL`, as nginx's `access_log ... buffer=` does, so a busy server pays one write per
//! batch, not per request; they keep their own timestamps, since the journal would stamp a batch
//! at its flush.

use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing::Metadata;
use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

use crate::http::access_log::ACCESS_TARGET;

const BATCH_BYTES: usize = 64 << 10;
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// `RUST_LOG` wins; otherwise info, with the access log on or off as configured. The tools the
/// status sampler runs every few seconds (`xl list`) are logged only when they fail.
pub fn init(access_log: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let access = if access_log { "info" } else { "off" };
        EnvFilter::new(format!(
            "info,xenprov_sys::command=warn,{ACCESS_TARGET}={access}"
        ))
    });
    let journal = stderr_is_journal()
        .then(|| tracing_journald::layer().ok())
        .flatten();
    match journal {
        Some(journal) => {
            let journal = journal
                .with_syslog_identifier("xenprov-repo".into())
                .with_priority_mappings(PriorityMappings {
                    info: Priority::Informational,
                    debug: Priority::Debug,
                    ..PriorityMappings::new()
                })
                .with_filter(filter_fn(|m| m.target() != ACCESS_TARGET));
            let access = lines().with_filter(filter_fn(|m| m.target() == ACCESS_TARGET));
            tracing_subscriber::registry()
                .with(filter)
                .with(journal)
                .with(access)
                .init();
        }
        None => tracing_subscriber::registry()
            .with(filter)
            .with(lines())
            .init(),
    }
    let flusher = std::thread::Builder::new()
        .name("xenprov-repo-log".into())
        .spawn(|| {
            loop {
                std::thread::sleep(FLUSH_INTERVAL);
                flush();
            }
        });
    if let Err(e) = flusher {
        tracing::warn!(
            "starting the access-log flusher: {e}; access lines are written in batches only"
        );
    }
}

/// Lines on stderr, the access log's batched.
fn lines<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(Output)
        .with_ansi(io::stderr().is_terminal())
}

/// systemd says where it connected stderr (`JOURNAL_STREAM=DEVICE:INODE`); it is the journal only
/// while stderr is still that file (not redirected by a wrapper script).
fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| is_journal_stream(&stream, m.dev(), m.ino()))
}

fn is_journal_stream(var: &str, dev: u64, ino: u64) -> bool {
    var.split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// Writes the access-log lines gathered so far.
pub fn flush() {
    let batch = std::mem::take(&mut *batch().lock().unwrap_or_else(|e| e.into_inner()));
    if !batch.is_empty() {
        let _ = io::stderr().write_all(&batch);
    }
}

fn batch() -> &'static Mutex<Vec<u8>> {
    static BATCH: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BATCH.get_or_init(|| Mutex::new(Vec::with_capacity(BATCH_BYTES)))
}

struct Output;

impl<'a> MakeWriter<'a> for Output {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line::Direct(io::stderr())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        if meta.target() == ACCESS_TARGET {
            Line::Batched
        } else {
            Line::Direct(io::stderr())
        }
    }
}

enum Line {
    Direct(io::Stderr),
    Batched,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Line::Direct(stderr) => stderr.write(buf),
            Line::Batched => {
                let mut batch = batch().lock().unwrap_or_else(|e| e.into_inner());
                batch.extend_from_slice(buf);
                if batch.len() >= BATCH_BYTES {
                    let full = std::mem::replace(&mut *batch, Vec::with_capacity(BATCH_BYTES));
                    drop(batch);
                    io::stderr().write_all(&full)?;
                }
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Line::Direct(stderr) => stderr.flush(),
            Line::Batched => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_is_stderr_only_when_both_numbers_match() {
        assert!(is_journal_stream("8:12345", 8, 12345));
        assert!(!is_journal_stream("8:12345", 8, 12346));
        assert!(!is_journal_stream("9:12345", 8, 12345));
        for bad in ["", "8", "8:", ":12345", "x:1", "8:12345:1"] {
            assert!(!is_journal_stream(bad, 8, 12345), "{bad:?}");
        }
    }
}
