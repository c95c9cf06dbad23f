//! Log output on stderr (the journal, under systemd). Messages are written at once; access-log lines
//! are gathered and written in batches of up to `BATCH_BYTES`, at least every `FLUSH_INTERVAL`, as
//! nginx's `access_log ... buffer=` does, so a busy server pays one write per batch, not per request.

use std::io::{self, IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing::Metadata;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::http::access_log::ACCESS_TARGET;

const BATCH_BYTES: usize = 64 << 10;
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// `RUST_LOG` wins; otherwise info, with the access log on or off as configured.
pub fn init(access_log: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let access = if access_log { "info" } else { "off" };
        EnvFilter::new(format!("info,{ACCESS_TARGET}={access}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Output)
        .with_ansi(io::stderr().is_terminal())
        .init();
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
