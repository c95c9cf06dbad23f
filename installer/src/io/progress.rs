//! Progress of long byte streams: an indicatif bar on a terminal, or plain lines at most every few
//! seconds (serial consoles and logs), or nothing.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A bar on a terminal that is not a serial console, plain lines otherwise.
    Auto,
    /// Progress bars.
    Bar,
    /// A plain line every few seconds.
    Plain,
    /// No progress output.
    None,
}

impl Mode {
    /// Serial consoles are terminals too, but redrawing a bar at 115200 baud floods them.
    pub fn resolve(self) -> Mode {
        if self != Mode::Auto {
            return self;
        }
        let serial = std::fs::read_link("/proc/self/fd/2")
            .map(|p| {
                p.to_string_lossy().contains("ttyS") || p.to_string_lossy().contains("console")
            })
            .unwrap_or(false);
        let term = std::env::var("TERM").map(|t| t != "dumb").unwrap_or(false);
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) && term && !serial {
            Mode::Bar
        } else {
            Mode::Plain
        }
    }
}

/// Wraps a reader and reports how much of `total` bytes has gone through it.
pub struct ProgressReader<R> {
    inner: R,
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Instant,
    plain: bool,
}

const LINE_EVERY: Duration = Duration::from_secs(5);

impl<R: Read> ProgressReader<R> {
    pub fn new(inner: R, total: u64, label: &str, mode: Mode) -> ProgressReader<R> {
        let bar = (mode == Mode::Bar).then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
                )
                .expect("a valid template"),
            );
            b.set_message(label.to_string());
            b
        });
        let now = Instant::now();
        ProgressReader {
            inner,
            bar,
            label: label.to_string(),
            total,
            done: 0,
            started: now,
            last_line: now,
            plain: mode == Mode::Plain,
        }
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        format!(
            "{}: {} of {} MiB ({:.0}%), {:.1} MiB/s",
            self.label,
            self.done >> 20,
            self.total >> 20,
            100.0 * self.done as f64 / self.total.max(1) as f64,
            self.done as f64 / secs / (1 << 20) as f64
        )
    }

    pub fn into_inner(self) -> R {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        if self.plain {
            tracing::info!("{}", self.line());
        }
        self.inner
    }
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if let Some(b) = &self.bar {
            b.set_position(self.done);
        } else if self.plain && self.last_line.elapsed() >= LINE_EVERY {
            self.last_line = Instant::now();
            tracing::info!("{}", self.line());
        }
        Ok(n)
    }
}
