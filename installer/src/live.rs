//! The live medium's entry point. It finds the answer file — `xenprov.answer=URL` or
//! `xenprov.answer=file:PATH` on the kernel command line, or `answer.toml` on a filesystem
//! labelled XENPROV — installs unattended and powers off; with no answer it runs guided mode.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use xenprov_core::answer::{AfterInstall, Answer};
use xenprov_sys::{Cmd, Mounts};

use crate::cli::{GuidedArgs, LiveArgs, Sources};
use crate::io::progress::Mode;
use crate::{guided, inventory, logging, verbs};

pub const ANSWER_LABEL: &str = "XENPROV";

/// What the kernel command line asks of the live medium.
#[derive(Debug, Default, PartialEq)]
pub struct Boot {
    pub answer: Option<String>,
    pub answer_sha256: Option<String>,
    /// Where to post `started`, `done` or `failed` (a fleet install's `/events/host/NAME/TOKEN`).
    pub events: Option<String>,
    pub guided: bool,
    pub on_error: OnError,
}

#[derive(Debug, Default, PartialEq, Clone, Copy)]
pub enum OnError {
    /// Stay on, showing what failed (the live environment then gives a shell).
    #[default]
    Stop,
    Poweroff,
}

pub fn parse_cmdline(cmdline: &str) -> Result<Boot> {
    let mut b = Boot::default();
    for word in cmdline.split_whitespace() {
        let Some((k, v)) = word.split_once('=') else {
            continue;
        };
        match k {
            "xenprov.answer" => b.answer = Some(v.to_string()),
            "xenprov.answer-sha256" => {
                if !xenprov_core::checksums::is_sha256(v) {
                    bail!("xenprov.answer-sha256={v} is not 64 hex digits");
                }
                b.answer_sha256 = Some(v.to_ascii_lowercase());
            }
            "xenprov.events" => {
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    bail!("xenprov.events={v}: expected an http:// or https:// URL");
                }
                b.events = Some(v.to_string());
            }
            "xenprov.mode" => {
                b.guided = match v {
                    "guided" => true,
                    "auto" => false,
                    _ => bail!("xenprov.mode={v}: expected auto or guided"),
                }
            }
            "xenprov.on-error" => {
                b.on_error = match v {
                    "stop" => OnError::Stop,
                    "poweroff" => OnError::Poweroff,
                    _ => bail!("xenprov.on-error={v}: expected stop or poweroff"),
                }
            }
            _ => {}
        }
    }
    Ok(b)
}

/// Fetches an answer over HTTP(S), retrying while the network comes up.
fn fetch(url: &str) -> Result<Vec<u8>> {
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match client.get(url).send().and_then(|r| r.error_for_status()) {
            Ok(r) => {
                let mut body = Vec::new();
                r.take(1 << 20).read_to_end(&mut body)?;
                return Ok(body);
            }
            Err(e) if Instant::now() < deadline && (e.is_connect() || e.is_timeout()) => {
                tracing::info!("answer server not reachable yet ({e}); retrying");
                std::thread::sleep(Duration::from_secs(3));
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("fetching the answer file from {url}"))
                );
            }
        }
    }
}

/// The device holding a filesystem with the given label, if any.
fn by_label(label: &str) -> Option<String> {
    let link = Path::new("/dev/disk/by-label").join(label);
    if let Ok(p) = std::fs::canonicalize(link) {
        return Some(p.display().to_string());
    }
    Cmd::new(&["blkid", "-L", label])
        .run()
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Where the answer came from, for the log and for keeping its disk out of reach.
pub struct Found {
    pub text: String,
    pub source: String,
    pub device: Option<String>,
}

pub fn find_answer(boot: &Boot) -> Result<Option<Found>> {
    let found = match boot.answer.as_deref() {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Some((fetch(url)?, url.to_string(), None))
        }
        Some(f) if f.starts_with("file:") => {
            let rel = &f["file:".len()..];
            let on_medium = Path::new(verbs::MEDIUM).join(rel.trim_start_matches('/'));
            let p = if on_medium.exists() {
                on_medium
            } else {
                PathBuf::from(rel)
            };
            Some((
                std::fs::read(&p)
                    .with_context(|| format!("reading answer file {}", p.display()))?,
                p.display().to_string(),
                None,
            ))
        }
        Some(other) => bail!("xenprov.answer={other}: expected http://, https:// or file:PATH"),
        None => match by_label(ANSWER_LABEL) {
            Some(dev) => {
                let at = Path::new("/run/xenprov/answer-disk");
                let mut m = Mounts::new();
                m.mount_ro(&dev, at)
                    .with_context(|| format!("mounting {dev}, labelled {ANSWER_LABEL}"))?;
                let p = at.join("answer.toml");
                let text = std::fs::read(&p).with_context(|| {
                    format!("{dev} is labelled {ANSWER_LABEL} but has no answer.toml")
                })?;
                Some((text, format!("answer.toml on {dev}"), Some(dev)))
            }
            None => None,
        },
    };
    let Some((bytes, source, device)) = found else {
        return Ok(None);
    };
    if let Some(want) = &boot.answer_sha256 {
        let got = hex::encode(Sha256::digest(&bytes));
        if &got != want {
            bail!(
                "the answer file from {source} has SHA-256 {got}, but xenprov.answer-sha256 says {want}"
            );
        }
    }
    let text = String::from_utf8(bytes)
        .with_context(|| format!("the answer file from {source} is not UTF-8"))?;
    Ok(Some(Found {
        text,
        source,
        device,
    }))
}

/// Installs from the answer found; says what the answer wants done afterwards.
fn install(found: &Found) -> Result<AfterInstall> {
    let answer = Answer::parse(&found.text).map_err(|d| {
        let lines: Vec<String> =
            d.0.iter()
                .map(|x| format!("{}:{x}", found.source))
                .collect();
        anyhow::anyhow!(
            "the answer file has {} problem(s):\n{}",
            lines.len(),
            lines.join("\n")
        )
    })?;
    let sources = Sources {
        inventory: None,
        payload: None,
        templates: None,
    };
    let mut inv = verbs::machine(&sources, Some(&answer))?;
    if let Some(dev) = &found.device {
        inventory::mark_answer_medium(&mut inv, dev);
    }
    let plan = verbs::make_plan(&answer, &inv, &sources)?;
    eprint!("{}", plan.describe(false));
    for w in &plan.warnings {
        tracing::warn!("warning: {w}");
    }
    verbs::run_apply(&plan, &sources, Mode::Auto)?;
    Ok(answer.system.after_install)
}

/// Tells the repo server how the install goes (`started`, `done`, or `failed` with the log's
/// tail), when the kernel command line says where. Best effort: an install does not fail because
/// its report could not be sent, but the console says so.
fn report(events: Option<&str>, event: &str) {
    let Some(url) = events else { return };
    let mut body = event.as_bytes().to_vec();
    if event == "failed"
        && let Some(log) = crate::logging::log_file().and_then(|p| std::fs::read(p).ok())
    {
        body.push(b'\n');
        body.extend_from_slice(&log[log.len().saturating_sub(64 << 10)..]);
    }
    let sent = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .and_then(|c| c.post(url).body(body).send())
        .and_then(|r| r.error_for_status());
    match sent {
        Ok(_) => tracing::info!("xenprov: reported `{event}` to the repo server"),
        Err(e) => tracing::warn!("xenprov: could not report `{event}` to the repo server: {e}"),
    }
}

fn poweroff() -> Result<ExitCode> {
    Cmd::new(&["systemctl", "poweroff"]).run()?;
    Ok(ExitCode::SUCCESS)
}

pub fn live(args: LiveArgs) -> Result<ExitCode> {
    logging::init(true);
    let cmdline = std::fs::read_to_string(&args.cmdline)
        .with_context(|| format!("reading {}", args.cmdline.display()))?;
    let boot = parse_cmdline(&cmdline)?;
    let result = if boot.guided {
        None
    } else {
        match find_answer(&boot) {
            Ok(Some(found)) => {
                tracing::info!("xenprov: installing unattended from {}", found.source);
                report(boot.events.as_deref(), "started");
                Some(install(&found))
            }
            Ok(None) => {
                tracing::info!(
                    "xenprov: no answer file (no xenprov.answer=, no filesystem labelled {ANSWER_LABEL}): guided install"
                );
                None
            }
            Err(e) => Some(Err(e)),
        }
    };
    match result {
        None => {
            let sources = Sources {
                inventory: None,
                payload: None,
                templates: None,
            };
            let code = guided::guided(GuidedArgs {
                sources,
                save: None,
                no_install: false,
                progress: Mode::Auto,
            })?;
            if code == ExitCode::SUCCESS {
                tracing::info!("xenprov: install complete; powering off");
                return poweroff();
            }
            Ok(code)
        }
        Some(Ok(AfterInstall::Poweroff)) => {
            report(boot.events.as_deref(), "done");
            tracing::info!("xenprov: install complete; powering off");
            poweroff()
        }
        Some(Ok(AfterInstall::Reboot)) => {
            report(boot.events.as_deref(), "done");
            tracing::info!("xenprov: install complete; rebooting");
            Cmd::new(&["systemctl", "reboot"]).run()?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(e)) => {
            tracing::error!("xenprov: install failed: {e:#}");
            tracing::error!("xenprov: the log is in /run/xenprov/install.log");
            report(boot.events.as_deref(), "failed");
            match boot.on_error {
                OnError::Poweroff => poweroff(),
                // The live environment keeps the message on the console and offers a shell.
                OnError::Stop => Ok(ExitCode::FAILURE),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernel_command_line() {
        let b = parse_cmdline(
            "BOOT_IMAGE=/boot/vmlinuz boot=xenprov xenprov.answer=http://10.0.2.2:8000/a.toml \
             xenprov.answer-sha256=ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789 xenprov.on-error=poweroff",
        )
        .unwrap();
        assert_eq!(b.answer.as_deref(), Some("http://10.0.2.2:8000/a.toml"));
        assert_eq!(
            b.answer_sha256.as_deref(),
            Some("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789")
        );
        assert_eq!(b.on_error, OnError::Poweroff);
        let b =
            parse_cmdline("xenprov.events=http://10.0.2.2:8080/events/host/rack-a1/0123").unwrap();
        assert_eq!(
            b.events.as_deref(),
            Some("http://10.0.2.2:8080/events/host/rack-a1/0123")
        );
        assert!(parse_cmdline("xenprov.events=file:/x").is_err());
        assert!(!b.guided);
        assert!(parse_cmdline("xenprov.mode=guided").unwrap().guided);
        assert!(parse_cmdline("xenprov.answer-sha256=xyz").is_err());
        assert!(parse_cmdline("xenprov.mode=fast").is_err());
    }

    /// A real HTTP exchange on loopback: what the repo server receives is the event, as a POST.
    #[test]
    fn events_are_posted_where_the_kernel_line_says() {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/events/host/rack-a1/0123",
            listener.local_addr().unwrap()
        );
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = Vec::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                head.push(line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            (&conn)
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\ninstalling\n")
                .unwrap();
            (head, body)
        });
        report(Some(&url), "started");
        let (head, body) = server.join().unwrap();
        assert_eq!(head[0], "POST /events/host/rack-a1/0123 HTTP/1.1\r\n");
        assert_eq!(body, b"started");
        report(None, "started"); // nowhere to report: nothing is sent, nothing fails
    }

    #[test]
    fn answer_from_a_file_is_checked_against_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, "x = 1\n").unwrap();
        let mut b = Boot {
            answer: Some(format!("file:{}", p.display())),
            ..Default::default()
        };
        assert_eq!(find_answer(&b).unwrap().unwrap().text, "x = 1\n");
        b.answer_sha256 = Some("0".repeat(64));
        let e = find_answer(&b).err().unwrap().to_string();
        assert!(e.contains("SHA-256"), "{e}");
    }
}
