//! The variables every guest template sees, built from a definition, its OS profile and where
//! the install comes from. Pure: the same inputs give the same text, so outputs are golden-tested.

use crate::guest::{Guest, OsProfile};
use crate::render::{RenderError, Templates};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where one install comes from; stored in the registry while the guest installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// How the guest reaches the repo server: `http://HOST[:PORT]`.
    pub repo_url: String,
    /// The install tree (Debian mirror or EL tree with `.treeinfo`).
    pub tree_url: String,
    /// Installer kernel and initrd, as paths on the dom0 for xl.
    pub kernel: String,
    pub ramdisk: String,
}

/// What to render for a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The OS's answer file: a kickstart or a preseed.
    Answer,
    XlInstall,
    XlRun,
    LibvirtInstall,
    LibvirtRun,
}

impl Output {
    pub fn template(self, os: &OsProfile) -> &str {
        match self {
            Output::Answer => &os.answer,
            Output::XlInstall => "templates/xl-install.cfg",
            Output::XlRun => "templates/xl-run.cfg",
            Output::LibvirtInstall | Output::LibvirtRun => "templates/libvirt-domain.xml",
        }
    }

    fn phase(self) -> &'static str {
        match self {
            Output::XlRun | Output::LibvirtRun => "run",
            _ => "install",
        }
    }
}

/// The token shown by `render`, which prints what an install would get without arming one.
pub const RENDER_ONLY_TOKEN: &str = "RENDER-ONLY";

/// `http://host:port/path` split into what d-i and nc need.
struct Url<'a> {
    host: &'a str,
    port: u16,
    authority: &'a str,
    path: &'a str,
}

fn split_url(url: &str) -> Url<'_> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, p.parse().unwrap_or(80)),
        _ => (authority, 80),
    };
    Url {
        host,
        port,
        authority,
        path,
    }
}

/// TOML keys are kebab-case; Tera identifiers cannot hold '-'.
fn snake_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k.replace('-', "_"), snake_keys(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(snake_keys).collect()),
        v => v,
    }
}

/// A script as one `printf '%b'` argument: a preseed value is a single line.
fn printf_b(script: &str) -> String {
    script.replace('\\', "\\\\").replace('\n', "\\n")
}

pub fn context(guest: &Guest, os: &OsProfile, src: &Source, token: &str, out: Output) -> Value {
    let repo = split_url(&src.repo_url);
    let tree = split_url(&src.tree_url);
    let base = src.repo_url.trim_end_matches('/');
    // The token is a path segment so that access logs, which drop query strings, show it.
    let events_path = format!("{}/events/{}/{token}", repo.path, guest.name);
    let net = guest
        .network
        .address
        .map(|a| json!({"address": a.addr.to_string(), "netmask": a.netmask().to_string()}));
    json!({
        "guest": snake_keys(serde_json::to_value(guest).expect("a guest serializes")),
        "os": snake_keys(serde_json::to_value(os).expect("a profile serializes")),
        "vm": {
            "memory_mib": guest.memory.as_mib(),
            "maxmem_mib": guest.maxmem.as_mib(),
            "disk_path": guest.disk_path(),
            "vif": guest.vif(),
            "vif_bridge": guest.vif_bridge(),
        },
        "net": net,
        "install": {
            "answer_url": format!("{base}/{}/{}/{token}", os.family.answer_route(), guest.name),
            "events_url": format!("http://{}{events_path}", repo.authority),
            "events_path": events_path,
            "repo_host": repo.host,
            "repo_port": repo.port,
            "repo_authority": repo.authority,
            "tree_url": src.tree_url,
            "mirror_host": tree.authority,
            "mirror_dir": if tree.path.is_empty() { "/" } else { tree.path },
            "kernel": src.kernel,
            "ramdisk": src.ramdisk,
        },
        "post_install_printf": guest.post_install.as_deref().map(printf_b),
        "phase": out.phase(),
    })
}

pub fn render(
    templates: &Templates,
    guest: &Guest,
    os: &OsProfile,
    src: &Source,
    token: &str,
    out: Output,
) -> Result<String, RenderError> {
    templates.render(out.template(os), &context(guest, os, src, token, out))
}

/// The run-phase xl config, which reads nothing of where the install came from.
pub fn run_config(
    templates: &Templates,
    guest: &Guest,
    os: &OsProfile,
) -> Result<String, RenderError> {
    let none = Source {
        repo_url: String::new(),
        tree_url: String::new(),
        kernel: String::new(),
        ramdisk: String::new(),
    };
    render(templates, guest, os, &none, "", Output::XlRun)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_for_installers() {
        let u = split_url("http://10.0.2.15:8080");
        assert_eq!(
            (u.host, u.port, u.authority, u.path),
            ("10.0.2.15", 8080, "10.0.2.15:8080", "")
        );
        let u = split_url("http://mirror.example/debian");
        assert_eq!((u.host, u.port, u.path), ("mirror.example", 80, "/debian"));
    }

    #[test]
    fn scripts_become_one_printf_argument() {
        assert_eq!(printf_b("a\\b\necho 'x'\n"), "a\\\\b\\necho 'x'\\n");
    }
}
