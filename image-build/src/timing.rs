//! The build's timing report: each stage says when it starts and how long it took.

use std::time::Instant;

use anyhow::{Context, Result};

/// Runs one build stage and prints how long it took: these lines are the build's timing report.
pub fn timed<T>(stage: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let start = Instant::now();
    eprintln!("xenprov-image: {stage} ...");
    let out = f().with_context(|| stage.to_string())?;
    eprintln!(
        "xenprov-image: {stage}: {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(out)
}
