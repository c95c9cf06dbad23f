//! Running the tools the installer drives (lvm2, mkfs, wipefs, grub-install, chroot…): each call is
//! logged, its output captured, and a failure reported with the command and the tail of its stderr.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Result, bail};

pub struct Cmd {
    argv: Vec<String>,
    stdin: Option<Vec<u8>>,
    env: Vec<(String, String)>,
}

impl Cmd {
    pub fn new<S: AsRef<str>>(argv: &[S]) -> Cmd {
        Cmd {
            argv: argv.iter().map(|s| s.as_ref().to_string()).collect(),
            stdin: None,
            env: vec![
                ("LVM_SUPPRESS_FD_WARNINGS".into(), "1".into()),
                ("LC_ALL".into(), "C".into()),
            ],
        }
    }

    /// Runs the command inside the target with chroot(8).
    pub fn chroot<S: AsRef<str>>(root: &Path, argv: &[S]) -> Cmd {
        let mut full = vec!["chroot".to_string(), root.display().to_string()];
        full.extend(argv.iter().map(|s| s.as_ref().to_string()));
        let mut c = Cmd::new(&full);
        c.env
            .push(("DEBIAN_FRONTEND".into(), "noninteractive".into()));
        c
    }

    /// Data for the command's standard input; never logged (it may hold password hashes).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(data.into());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Cmd {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn display(&self) -> String {
        self.argv.join(" ")
    }

    /// Runs to completion; returns stdout.
    pub fn run(self) -> Result<String> {
        tracing::info!("$ {}", self.display());
        let mut child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("running {}: {e}", self.argv[0]))?;
        if let Some(data) = &self.stdin {
            child.stdin.take().expect("piped stdin").write_all(data)?;
        }
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            tracing::debug!("  {line}");
        }
        if !out.status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "`{}` failed ({}): {}",
                self.display(),
                out.status,
                tail.join("\n  ")
            );
        }
        Ok(stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_the_command_and_its_error() {
        let e = Cmd::new(&["sh", "-c", "echo oops >&2; exit 3"])
            .run()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sh -c") && e.contains("oops") && e.contains("3"),
            "{e}"
        );
        let out = Cmd::new(&["cat"]).stdin("secret").run().unwrap();
        assert_eq!(out, "secret");
    }
}
