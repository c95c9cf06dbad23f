//! Fleet installs: the host entries a repo server reads (`HOSTS/NAME.toml`, one file per host), how
//! a netbooting client is matched to one of them, and the answer file each host gets: its answer
//! template rendered with the host's values, then read as any answer file is. Pure: the repo server
//! reads the files and keeps each host's install state.
//!
//! ```toml
//! answer = "answers/rack.toml"     # relative to HOSTS; a Tera template
//! [match]                          # one or more of mac, uuid, serial; all given must match
//! mac = "52:54:00:ac:01:01"
//! [vars]                           # {{ vars.NAME }} in the template, beside {{ host.name }}, {{ host.mac }}
//! address = "198.51.100.11/24"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::answer::Answer;
use crate::net;
use crate::reader::{Diags, Reader, Scalar, Table};
use crate::render::Templates;

/// One host of the fleet, as its entry file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostEntry {
    pub name: String,
    /// The answer template, relative to the hosts directory.
    pub answer: PathBuf,
    #[serde(rename = "match")]
    pub matcher: Match,
    pub vars: BTreeMap<String, Scalar>,
}

/// What identifies a host on the network; every field that is given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Match {
    /// Lower case, colons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The SMBIOS system UUID, lower case with hyphens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// The SMBIOS system serial number, compared without regard to ASCII case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            ("mac", &self.mac),
            ("uuid", &self.uuid),
            ("serial", &self.serial),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
        f.write_str(&parts.join(" "))
    }
}

impl Match {
    /// What a netbooting client says of itself (iPXE's `${net0/mac}`, `${uuid}`, `${serial}`):
    /// values that are empty, malformed or placeholders of firmware that has none count as not given.
    pub fn of_client(mac: Option<&str>, uuid: Option<&str>, serial: Option<&str>) -> Match {
        Match {
            mac: mac.and_then(|m| net::parse_mac(m.trim()).ok()),
            uuid: uuid.and_then(|u| parse_uuid(u.trim()).ok()),
            serial: serial
                .map(str::trim)
                .filter(|s| !is_placeholder_serial(s))
                .map(str::to_string),
        }
    }

    fn is_empty(&self) -> bool {
        self.mac.is_none() && self.uuid.is_none() && self.serial.is_none()
    }

    /// Whether `client` is this host: every field given here is given there, and the same.
    pub fn matches(&self, client: &Match) -> bool {
        let same = |want: &Option<String>, got: &Option<String>, eq: fn(&str, &str) -> bool| {
            want.as_ref()
                .is_none_or(|w| got.as_ref().is_some_and(|g| eq(w, g)))
        };
        !self.is_empty()
            && same(&self.mac, &client.mac, |a, b| a == b)
            && same(&self.uuid, &client.uuid, |a, b| a == b)
            && same(&self.serial, &client.serial, |a, b| {
                a.eq_ignore_ascii_case(b)
            })
    }
}

/// Serial numbers that firmware reports when the vendor set none: they identify no host.
fn is_placeholder_serial(s: &str) -> bool {
    const PLACEHOLDERS: &[&str] = &[
        "",
        "0",
        "none",
        "not specified",
        "to be filled by o.e.m.",
        "default string",
        "system serial number",
    ];
    PLACEHOLDERS.iter().any(|p| s.eq_ignore_ascii_case(p))
}

fn parse_uuid(s: &str) -> Result<String, String> {
    let u = uuid::Uuid::try_parse(s).map_err(|_| {
        format!("`{s}` is not a UUID; expected e.g. 4c4c4544-0042-3510-8052-b2c04f564433")
    })?;
    if u.is_nil() || u.is_max() {
        return Err(format!(
            "`{s}` is the {} UUID, which firmware reports when it has none",
            if u.is_nil() { "nil" } else { "all-ones" }
        ));
    }
    Ok(u.hyphenated().to_string())
}

/// A host's name is its entry's file name without `.toml`: one DNS label, so that it can be the
/// host name, part of a URL and a file name of the state directory alike.
pub fn check_host_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a host name: expected 1 to 63 lower-case letters, digits and inner hyphens, e.g. rack-a1"
        ))
    }
}

/// Reads the entry of host `name` (checked with `check_host_name` by the caller, who knows the file).
pub fn parse_entry(name: &str, src: &str) -> Result<HostEntry, Diags> {
    let r = Reader::new(src);
    let doc = r.parse();
    let root = r.root(&doc);
    let answer = root.parsed("answer", check_answer_path).map(|a| a.value);
    if !root.has("answer") {
        r.report_at(
            0,
            "answer",
            "missing required key: the answer template, relative to the hosts directory, e.g. answer = \"answers/rack.toml\"".into(),
        );
    }
    let matcher = match root.table("match") {
        Some(t) => read_match(t),
        None => {
            if !root.has("match") {
                r.report_at(
                    0,
                    "match",
                    "missing required section [match]: one or more of mac, uuid, serial".into(),
                );
            }
            None
        }
    };
    let vars = root
        .table("vars")
        .map(|t| t.scalars(check_var_name).into_iter().collect())
        .unwrap_or_default();
    root.finish();
    r.finish()?;
    Ok(HostEntry {
        name: name.to_string(),
        answer: answer.expect("no diagnostics means the answer was read"),
        matcher: matcher.expect("no diagnostics means [match] was read"),
        vars,
    })
}

fn read_match(t: Table<'_, '_>) -> Option<Match> {
    let m = Match {
        mac: t.parsed("mac", net::parse_mac).map(|a| a.value),
        uuid: t.parsed("uuid", parse_uuid).map(|a| a.value),
        serial: t
            .parsed("serial", |s| {
                if is_placeholder_serial(s.trim()) {
                    Err(format!(
                        "`{s}` is what firmware reports when it has no serial number; it identifies no host"
                    ))
                } else {
                    Ok(s.trim().to_string())
                }
            })
            .map(|a| a.value),
    };
    let given = ["mac", "uuid", "serial"].iter().any(|k| t.has(k));
    if !given {
        t.error(
            "",
            t.offset(),
            "[match] is empty: give one or more of mac, uuid, serial",
        );
    }
    t.finish();
    Some(m)
}

/// The answer template is a relative path that stays inside the hosts directory.
fn check_answer_path(s: &str) -> Result<PathBuf, String> {
    let p = Path::new(s);
    if s.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!(
            "`{s}` is not a path inside the hosts directory; expected a relative path without `..`, e.g. answers/rack.toml"
        ));
    }
    Ok(p.to_path_buf())
}

/// Template variables are used as `{{ vars.NAME }}`, so their names are Tera identifiers.
fn check_var_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` cannot be used as {{{{ vars.{name} }}}}; expected letters, digits and underscores, not starting with a digit"
        ))
    }
}

/// The template's view of a host.
#[derive(Serialize)]
struct Context<'a> {
    host: HostView<'a>,
    vars: &'a BTreeMap<String, Scalar>,
}

#[derive(Serialize)]
struct HostView<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uuid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<&'a str>,
}

/// Why a host gets no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// The template does not render (syntax, an undefined variable): Tera's message, with its position.
    Template(String),
    /// The rendered answer is not a valid answer file; `text` is what was rendered.
    Invalid { diags: Diags, text: String },
}

impl AnswerError {
    /// The problem as a command reports it, for host `name` whose template is `template`.
    pub fn describe(&self, name: &str, template: &Path) -> String {
        match self {
            AnswerError::Template(message) => format!(
                "{}: rendering for host {name}: {message}",
                template.display()
            ),
            AnswerError::Invalid { diags, text } => {
                let lines: Vec<&str> = text.lines().collect();
                let mut out = format!(
                    "{} as rendered for host {name} has {} problem(s):",
                    template.display(),
                    diags.0.len()
                );
                for d in &diags.0 {
                    out += &format!("\n{}:{d}", template.display());
                    if let Some(line) = lines.get(d.line.wrapping_sub(1)) {
                        out += &format!("\n    | {line}");
                    }
                }
                out
            }
        }
    }
}

/// The answer file of `host`: `template` (the source of its answer template) rendered with the
/// host's name, match and vars, then read as the installer reads an answer file.
pub fn render_answer(host: &HostEntry, template: &str) -> Result<(String, Answer), AnswerError> {
    let ctx = Context {
        host: HostView {
            name: &host.name,
            mac: host.matcher.mac.as_deref(),
            uuid: host.matcher.uuid.as_deref(),
            serial: host.matcher.serial.as_deref(),
        },
        vars: &host.vars,
    };
    let name = host.answer.display().to_string();
    let text = Templates::render_source(&name, template, &ctx).map_err(|e| match e {
        crate::render::RenderError::Template { message, .. } => AnswerError::Template(message),
        other => AnswerError::Template(other.to_string()),
    })?;
    match Answer::parse(&text) {
        Ok(answer) => Ok((text, answer)),
        Err(diags) => Err(AnswerError::Invalid { diags, text }),
    }
}

/// Pairs of hosts whose entries give the same MAC, UUID or serial: a client with it would match
/// both, so neither is offered an install until one entry changes. Each pair once, sorted.
pub fn conflicts(hosts: &[HostEntry]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            let (ma, mb) = (&a.matcher, &b.matcher);
            let shared = if ma.mac.is_some() && ma.mac == mb.mac {
                Some(format!("mac {}", ma.mac.as_deref().unwrap_or_default()))
            } else if ma.uuid.is_some() && ma.uuid == mb.uuid {
                Some(format!("uuid {}", ma.uuid.as_deref().unwrap_or_default()))
            } else {
                match (&ma.serial, &mb.serial) {
                    (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => Some(format!("serial {x}")),
                    _ => None,
                }
            };
            if let Some(what) = shared {
                let (x, y) = if a.name < b.name { (a, b) } else { (b, a) };
                out.push((x.name.clone(), y.name.clone(), what));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(src: &str) -> HostEntry {
        parse_entry("rack-a1", src).unwrap_or_else(|e| panic!("{e}"))
    }

    fn errors(src: &str) -> String {
        parse_entry("rack-a1", src).unwrap_err().to_string()
    }

    #[test]
    fn an_entry_and_its_mac_spellings() {
        for mac in [
            "52:54:00:AC:01:01",
            "52-54-00-ac-01-01",
            "52-54-00-AC-01-01",
        ] {
            let e = entry(&format!(
                "answer = \"answers/rack.toml\"\n[match]\nmac = \"{mac}\"\n[vars]\naddress = \"198.51.100.11/24\"\nrack = 4\nbig = true\n"
            ));
            assert_eq!(e.matcher.mac.as_deref(), Some("52:54:00:ac:01:01"));
            assert_eq!(e.answer, Path::new("answers/rack.toml"));
            assert_eq!(e.vars["rack"], Scalar::Int(4));
            assert_eq!(e.vars["big"], Scalar::Bool(true));
        }
    }

    #[test]
    fn every_problem_of_an_entry_at_once_with_its_line() {
        let e = errors(
            "answer = \"../etc/shadow\"\n[match]\nmac = \"01:00:5e:00:00:01\"\nuuid = \"nope\"\nserail = \"X\"\n[vars]\n9lives = \"x\"\nlist = [1]\n",
        );
        let want = [
            "1:10: answer: `../etc/shadow` is not a path inside the hosts directory",
            "3:7: match.mac: `01:00:5e:00:00:01` is a multicast MAC address",
            "4:8: match.uuid: `nope` is not a UUID",
            "5:1: match.serail: unknown key; did you mean `serial`?",
            "7:1: vars.9lives: `9lives` cannot be used as {{ vars.9lives }}",
            "8:8: vars.list: expected a string, an integer or a boolean, found an array",
        ];
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), want.len(), "{e}");
        for (line, want) in lines.iter().zip(want) {
            assert!(line.starts_with(want), "{line}\n  wanted: {want}");
        }
        assert!(
            errors("[match]\nmac = \"52:54:00:ac:01:01\"\n")
                .contains("answer: missing required key")
        );
        assert!(errors("answer = \"a.toml\"\n").contains("missing required section [match]"));
        assert!(errors("answer = \"a.toml\"\n[match]\n").contains("[match] is empty"));
        assert!(
            errors("answer = \"a.toml\"\n[match]\nserial = \"To Be Filled By O.E.M.\"\n")
                .contains("identifies no host")
        );
    }

    #[test]
    fn a_client_matches_when_every_given_field_does() {
        let m = Match {
            mac: Some("52:54:00:ac:01:01".into()),
            serial: Some("CZ123".into()),
            uuid: None,
        };
        let client = |mac, uuid, serial| Match::of_client(mac, uuid, serial);
        assert!(m.matches(&client(Some("52-54-00-AC-01-01"), None, Some("cz123 "))));
        assert!(m.matches(&client(
            Some("52:54:00:ac:01:01"),
            Some("4c4c4544-0042-3510-8052-b2c04f564433"),
            Some("CZ123")
        )));
        assert!(
            !m.matches(&client(Some("52:54:00:ac:01:01"), None, None)),
            "serial missing"
        );
        assert!(!m.matches(&client(Some("52:54:00:ac:01:02"), None, Some("CZ123"))));
        assert!(!m.matches(&client(Some("garbage"), None, Some("CZ123"))));
        let by_uuid = Match {
            uuid: Some("4c4c4544-0042-3510-8052-b2c04f564433".into()),
            ..Match::default()
        };
        assert!(by_uuid.matches(&client(
            None,
            Some("4C4C4544-0042-3510-8052-B2C04F564433"),
            None
        )));
        // firmware placeholders identify nobody
        assert_eq!(
            client(
                None,
                Some("00000000-0000-0000-0000-000000000000"),
                Some("Not Specified")
            ),
            Match::default()
        );
        assert!(!Match::default().matches(&Match::default()));
    }

    #[test]
    fn host_names() {
        assert!(check_host_name("rack-a1").is_ok());
        for bad in ["", "Rack", "-a", "a-", "a.b", "a_b", &"x".repeat(64)] {
            assert!(check_host_name(bad).is_err(), "{bad}");
        }
    }

    const TEMPLATE: &str = include_str!("../tests/fleet/rack.toml");

    #[test]
    fn a_template_renders_per_host_and_is_read_as_an_answer() {
        let e = entry(
            "answer = \"answers/rack.toml\"\n[match]\nmac = \"52:54:00:ac:01:01\"\n[vars]\naddress = \"198.51.100.11/24\"\n",
        );
        let (text, answer) = render_answer(&e, TEMPLATE).unwrap();
        assert!(text.contains("hostname = \"rack-a1\""), "{text}");
        assert_eq!(answer.system.hostname, "rack-a1");
        assert_eq!(
            answer.network.address.map(|a| a.to_string()).as_deref(),
            Some("198.51.100.11/24")
        );
    }

    #[test]
    fn a_template_that_fails_names_the_host_the_file_and_the_line() {
        let e = entry("answer = \"answers/rack.toml\"\n[match]\nmac = \"52:54:00:ac:01:01\"\n");
        let err = render_answer(&e, TEMPLATE).unwrap_err();
        let AnswerError::Template(message) = &err else {
            panic!("{err:?}")
        };
        assert!(message.contains("vars.address"), "{message}");
        let text = err.describe("rack-a1", &e.answer);
        assert!(
            text.starts_with("answers/rack.toml: rendering for host rack-a1: "),
            "{text}"
        );

        let e = entry(
            "answer = \"answers/rack.toml\"\n[match]\nmac = \"52:54:00:ac:01:01\"\n[vars]\naddress = \"198.51.100.11/33\"\n",
        );
        let err = render_answer(&e, TEMPLATE).unwrap_err();
        let text = err.describe("rack-a1", &e.answer);
        assert!(matches!(err, AnswerError::Invalid { .. }), "{err:?}");
        assert!(
            text.contains("answers/rack.toml as rendered for host rack-a1 has 1 problem(s):"),
            "{text}"
        );
        assert!(text.contains("network.address"), "{text}");
        assert!(
            text.contains("    | address = \"198.51.100.11/33\""),
            "{text}"
        );
    }

    #[test]
    fn entries_that_share_an_identity_conflict() {
        let mk = |name: &str, m: &str| {
            parse_entry(name, &format!("answer = \"a.toml\"\n[match]\n{m}\n")).unwrap()
        };
        let hosts = [
            mk("b", "mac = \"52:54:00:00:00:01\""),
            mk("a", "mac = \"52-54-00-00-00-01\"\nserial = \"S1\""),
            mk("c", "serial = \"s1\""),
            mk("d", "mac = \"52:54:00:00:00:02\""),
        ];
        assert_eq!(
            conflicts(&hosts),
            [
                ("a".into(), "b".into(), "mac 52:54:00:00:00:01".into()),
                ("a".into(), "c".into(), "serial S1".into()),
            ]
        );
    }
}
