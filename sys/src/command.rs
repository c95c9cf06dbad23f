//! Running a tool (lvm2, mkfs, grub-install, debootstrap, xl, dpkg…): each call is logged, a failure
//! is reported with the command and the tail of its standard error, and the data given on standard
//! input is never logged (it may hold password hashes).

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Lines of standard error that a failure quotes.
const TAIL: usize = 8;

/// One command line, built up and then run once.
pub struct Cmd {
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    clear_env: bool,
    dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

impl Cmd {
    /// `argv[0]` with the arguments after it, in the C locale (so that what is parsed of the output
    /// does not depend on the machine's language).
    pub fn new<S: AsRef<OsStr>>(argv: &[S]) -> Cmd {
        assert!(!argv.is_empty(), "a command needs a program");
        Cmd {
            argv: argv.iter().map(|s| s.as_ref().to_os_string()).collect(),
            env: vec![
                ("LC_ALL".into(), "C".into()),
                // lvm2's tools otherwise warn about every descriptor they inherit.
                ("LVM_SUPPRESS_FD_WARNINGS".into(), "1".into()),
            ],
            clear_env: false,
            dir: None,
            stdin: None,
        }
    }

    /// `chroot ROOT argv…`, with a clean, non-interactive environment: nothing of the caller's
    /// environment leaks into the other system.
    pub fn chroot<S: AsRef<OsStr>>(root: &Path, argv: &[S]) -> Cmd {
        let mut c = Cmd::new(&[OsStr::new("chroot"), root.as_os_str()]).args(argv);
        c.clear_env = true;
        c.env = [
            ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            ("HOME", "/root"),
            ("LC_ALL", "C.UTF-8"),
            ("DEBIAN_FRONTEND", "noninteractive"),
        ]
        .iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        c
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cmd {
        self.argv.push(a.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.argv
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Cmd {
        self.env.push((k.into(), v.as_ref().to_os_string()));
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Cmd {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// Data for the command's standard input; never logged.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(data.into());
        self
    }

    /// The command line as logged.
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The program that ran: the chroot'ed one when there is one ("apt-get (in chroot)" says more
    /// than "chroot").
    fn program(&self) -> String {
        let name = self.argv[0].to_string_lossy();
        match self.argv.get(2) {
            Some(inner) if name == "chroot" => format!("{} (in chroot)", inner.to_string_lossy()),
            _ => name.into_owned(),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]);
        if self.clear_env {
            cmd.env_clear();
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd
    }

    /// Runs to completion and returns its standard output; standard error is logged at debug level
    /// and quoted on failure.
    pub fn run(self) -> Result<String> {
        tracing::info!("$ {}", self.display());
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.program()))?;
        // Fed from a thread, so that a command writing much output before reading all of its
        // input cannot stall on a full pipe.
        let feeder = self.stdin.clone().map(|data| {
            let mut pipe = child.stdin.take().expect("piped stdin");
            std::thread::spawn(move || pipe.write_all(&data))
        });
        let out = child.wait_with_output()?;
        if let Some(feeder) = feeder {
            // A command that exits without reading all of its input is judged by its status.
            let _ = feeder.join();
        }
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            tracing::debug!("  {line}");
        }
        if !out.status.success() {
            let lines: Vec<&str> = stderr.lines().collect();
            let tail = &lines[lines.len().saturating_sub(TAIL)..];
            bail!(
                "`{}` failed ({}): {}",
                self.display(),
                out.status,
                tail.join("\n  ")
            );
        }
        Ok(stdout)
    }

    /// Runs to completion with its output shown on this program's standard error: for the long tools
    /// of a build (debootstrap, apt-get, mksquashfs), whose progress is worth seeing as it happens.
    /// Never on standard output, which is a verb's result (`prepare-base` prints the path it made).
    pub fn run_shown(self) -> Result<()> {
        tracing::info!("$ {}", self.display());
        let status = self
            .command()
            .stdout(std::io::stderr())
            .status()
            .with_context(|| format!("running {}", self.program()))?;
        if !status.success() {
            bail!("{} failed ({status})", self.program());
        }
        Ok(())
    }
}

/// Whether process `pid` of this machine still runs.
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Fails early, naming the Debian package, when a tool that is shelled out to is missing.
pub fn require(tools: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<String> = tools
        .iter()
        .filter(|(tool, _)| {
            !["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .iter()
                .any(|d| Path::new(d).join(tool).exists())
        })
        .map(|(tool, package)| format!("{tool} (package {package})"))
        .collect();
    if !missing.is_empty() {
        bail!("missing tools: {}", missing.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_the_command_and_the_tail_of_its_errors() {
        let e = Cmd::new(&[
            "sh",
            "-c",
            "for i in $(seq 20); do echo line$i >&2; done; exit 3",
        ])
        .run()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("`sh -c for i"), "{e}");
        assert!(e.contains("exit status: 3"), "{e}");
        assert!(e.contains("line20") && e.contains("line13"), "{e}");
        assert!(!e.contains("line12"), "only the last {TAIL} lines: {e}");
    }

    #[test]
    fn stdin_output_env_and_directory() {
        assert_eq!(Cmd::new(&["cat"]).stdin("secret").run().unwrap(), "secret");
        // more than a pipe holds, both ways
        let big = "x".repeat(1 << 20);
        assert_eq!(Cmd::new(&["cat"]).stdin(big.clone()).run().unwrap(), big);
        let dir = tempfile::tempdir().unwrap();
        let out = Cmd::new(&["sh", "-c", "echo $LC_ALL $XP; pwd"])
            .env("XP", "set")
            .current_dir(dir.path())
            .run()
            .unwrap();
        let pwd = dir.path().canonicalize().unwrap();
        assert_eq!(out, format!("C set\n{}\n", pwd.display()));
    }

    #[test]
    fn a_chroot_is_named_by_the_program_inside() {
        let c = Cmd::chroot(Path::new("/nonexistent"), &["apt-get", "update"]);
        assert_eq!(c.display(), "chroot /nonexistent apt-get update");
        assert_eq!(c.program(), "apt-get (in chroot)");
        let e = c.run_shown().unwrap_err().to_string();
        assert!(e.starts_with("apt-get (in chroot) failed"), "{e}");
    }

    #[test]
    fn missing_tools_are_named_with_their_package() {
        require(&[("sh", "dash")]).unwrap();
        let e = require(&[("sh", "dash"), ("no-such-tool-x", "pkg-x")])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "missing tools: no-such-tool-x (package pkg-x)");
    }
}
