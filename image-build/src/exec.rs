//! Running the build's external tools, and timing its stages.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Runs a command to completion; a non-zero exit is an error naming the program.
pub fn run(cmd: &mut Command) -> Result<()> {
    let program = program(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("{program} failed ({status})");
    }
    Ok(())
}

/// Runs a command and returns its standard output.
pub fn stdout(cmd: &mut Command) -> Result<String> {
    let program = program(cmd);
    let out = cmd
        .output()
        .with_context(|| format!("starting {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("reading the output of {program}"))
}

/// The chroot'ed program when there is one: "apt-get" says more than "chroot".
fn program(cmd: &Command) -> String {
    let name = cmd.get_program().to_string_lossy().into_owned();
    match cmd.get_args().nth(1) {
        Some(inner) if name == "chroot" => format!("{} (in chroot)", inner.to_string_lossy()),
        _ => name,
    }
}

/// Fails early, naming the Debian package, when a host tool the build shells out to is missing.
pub fn require(tools: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<String> = tools
        .iter()
        .filter(|(tool, _)| {
            !["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .iter()
                .any(|d| std::path::Path::new(d).join(tool).exists())
        })
        .map(|(tool, package)| format!("{tool} (package {package})"))
        .collect();
    if !missing.is_empty() {
        bail!("missing host tools: {}", missing.join(", "));
    }
    Ok(())
}

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
