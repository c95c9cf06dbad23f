//! The install log: what happens goes to the console (short) and to a file (everything, with
//! times and each command's stderr), which is copied onto the installed disk at the end.

use std::path::PathBuf;
use std::sync::OnceLock;

use tracing_subscriber::prelude::*;
use tracing_subscriber::{filter::LevelFilter, fmt};

const LOG_DIR: &str = "/run/xenprov";
static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Sets up logging once; with `to_file`, also to `/run/xenprov/install.log` (or a temporary
/// directory's when /run/xenprov cannot be made).
pub fn init(to_file: bool) {
    FILE.get_or_init(|| {
        let console = fmt::layer()
            .with_writer(std::io::stderr)
            .without_time()
            .with_target(false)
            .with_level(false)
            .with_filter(LevelFilter::INFO);
        let path = to_file.then(|| PathBuf::from(LOG_DIR).join("install.log"));
        let file = path.as_ref().and_then(|p| {
            std::fs::create_dir_all(LOG_DIR).ok()?;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()?;
            Some(
                fmt::layer()
                    .with_writer(std::sync::Mutex::new(f))
                    .with_ansi(false)
                    .with_filter(LevelFilter::DEBUG),
            )
        });
        let have_file = file.is_some();
        tracing_subscriber::registry()
            .with(console)
            .with(file)
            .init();
        path.filter(|_| have_file)
    });
}

pub fn log_file() -> Option<PathBuf> {
    FILE.get().cloned().flatten()
}
