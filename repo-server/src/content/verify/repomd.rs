//! RPM repository metadata: `repomd.xml` (each metadata file's location, SHA-256 and size) and
//! `primary.xml` (each package's location, SHA-256 and size). Only SHA-256 checksums are accepted.

use quick_xml::XmlVersion;
use quick_xml::events::Event;
use quick_xml::events::attributes::Attributes;

use super::{Expected, Sha256};

/// One `<data>` or `<package>` entry: the location (relative to the repository root) and what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `type` of a `<data>` entry (`primary`, `filelists`, ...); empty for packages.
    pub kind: String,
    pub href: String,
    pub expected: Expected,
}

/// The metadata files listed in `repomd.xml`.
pub fn repomd(xml: &[u8]) -> Result<Vec<Entry>, String> {
    entries(xml, b"data")
}

/// The packages listed in `primary.xml` (decompressed).
pub fn primary(xml: &[u8]) -> Result<Vec<Entry>, String> {
    entries(xml, b"package")
}

#[derive(Default)]
struct Partial {
    kind: String,
    href: Option<String>,
    checksum: Option<(String, String)>,
    size: Option<u64>,
}

/// Entries named `item` with `<checksum type=..>`, `<location href=..>` and `<size>` (text, or the
/// `package` attribute in primary.xml) as direct children.
fn entries(xml: &[u8], item: &[u8]) -> Result<Vec<Entry>, String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<Partial> = None;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("XML error at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = e.local_name().as_ref().as_bytes().to_vec();
                let empty = matches!(event, Event::Empty(_));
                if name == item && current.is_none() {
                    current = Some(Partial {
                        kind: attribute(e.attributes(), b"type").unwrap_or_default(),
                        ..Partial::default()
                    });
                } else if let Some(p) = current.as_mut()
                    && stack.last().is_some_and(|parent| parent == item)
                {
                    match name.as_slice() {
                        b"location" => {
                            if attribute(e.attributes(), b"base").is_some() {
                                return Err(
                                    "xml:base locations (files on another server) are not mirrored"
                                        .into(),
                                );
                            }
                            p.href = attribute(e.attributes(), b"href");
                        }
                        b"size" => {
                            if let Some(v) = attribute(e.attributes(), b"package") {
                                p.size = v.parse().ok();
                            }
                        }
                        b"checksum" => {
                            p.checksum = Some((
                                attribute(e.attributes(), b"type").unwrap_or_default(),
                                String::new(),
                            ));
                        }
                        _ => {}
                    }
                }
                if !empty {
                    stack.push(name);
                }
            }
            Event::Text(t) => {
                if let (Some(p), Some(top)) = (current.as_mut(), stack.last())
                    && stack.len() >= 2
                    && stack[stack.len() - 2] == item
                {
                    let text = t.xml10_content();
                    match top.as_slice() {
                        b"checksum" => {
                            if let Some((_, v)) = p.checksum.as_mut() {
                                v.push_str(text.trim());
                            }
                        }
                        b"size" if p.size.is_none() => p.size = text.trim().parse().ok(),
                        _ => {}
                    }
                }
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                if name == item
                    && let Some(p) = current.take()
                {
                    out.push(finish(p, item)?);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

fn finish(p: Partial, item: &[u8]) -> Result<Entry, String> {
    let what = String::from_utf8_lossy(item);
    let href = p
        .href
        .ok_or_else(|| format!("a <{what}> without <location href>"))?;
    let (kind, value) = p.checksum.ok_or_else(|| format!("{href}: no <checksum>"))?;
    if kind != "sha256" {
        return Err(format!(
            "{href}: checksum type {kind:?} is not accepted (sha256 only)"
        ));
    }
    let sha256 = Sha256::from_hex(&value).ok_or_else(|| format!("{href}: bad sha256 {value:?}"))?;
    Ok(Entry {
        kind: p.kind,
        href,
        expected: Expected {
            sha256,
            size: p.size,
        },
    })
}

fn attribute(attrs: Attributes<'_>, local: &[u8]) -> Option<String> {
    attrs.flatten().find_map(|a| {
        (a.key.local_name().as_ref().as_bytes() == local)
            .then(|| {
                a.normalized_value(XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.into_owned())
            })
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn repomd_entries() {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1</revision>
  <data type="primary">
    <checksum type="sha256">{H}</checksum>
    <open-checksum type="sha256">{H}</open-checksum>
    <location href="repodata/{H}-primary.xml.gz"/>
    <timestamp>1</timestamp>
    <size>123</size>
    <open-size>456</open-size>
  </data>
</repomd>"#
        );
        let e = repomd(xml.as_bytes()).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].kind, "primary");
        assert_eq!(e[0].href, format!("repodata/{H}-primary.xml.gz"));
        assert_eq!(e[0].expected.size, Some(123));
        let sha1 = xml.replace("type=\"sha256\">", "type=\"sha1\">");
        assert!(repomd(sha1.as_bytes()).unwrap_err().contains("sha1"));
    }

    #[test]
    fn primary_packages() {
        let xml = format!(
            r#"<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="1">
<package type="rpm">
  <name>hello</name>
  <checksum type="sha256" pkgid="YES">{H}</checksum>
  <size package="3" installed="10" archive="20"/>
  <location href="Packages/h/hello-1-1.noarch.rpm"/>
  <format><rpm:license>MIT</rpm:license><file>/usr/bin/hello</file></format>
</package>
</metadata>"#
        );
        let p = primary(xml.as_bytes()).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].href, "Packages/h/hello-1-1.noarch.rpm");
        assert_eq!(p[0].expected.size, Some(3));
        let based = xml.replace("<location ", "<location xml:base=\"http://elsewhere/\" ");
        assert!(primary(based.as_bytes()).is_err());
    }
}
