//! Directory listings, in HTML for people and JSON for tools: directories first, then files, each sorted
//! by name. Links are relative and percent-encoded byte by byte, so any name (spaces, `#`, `?`, Unicode,
//! even non-UTF-8) round-trips through `path::SafePath`.

use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;
use std::time::SystemTime;

use serde_json::json;

use crate::static_files::tree::DirEntry;

pub fn sort(entries: &mut [DirEntry]) {
    entries.sort_by(|a, b| {
        b.is_dir
            .cmp(&a.is_dir)
            .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
    });
}

/// `title` is the decoded request path, e.g. `/dists/bookworm/`.
pub fn html(title: &str, entries: &[DirEntry]) -> String {
    let title = escape_html(title);
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<table>\n\
         <tr><th>Name</th><th>Size</th><th>Last modified</th></tr>\n"
    );
    if title != "/" {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for entry in entries {
        let slash = if entry.is_dir { "/" } else { "" };
        let size = if entry.is_dir {
            String::new()
        } else {
            entry.meta.len.to_string()
        };
        let _ = writeln!(
            out,
            "<tr><td><a href=\"{href}{slash}\">{name}{slash}</a></td><td>{size}</td><td>{time}</td></tr>",
            href = encode_href(entry.name.as_bytes()),
            name = escape_html(&entry.name.to_string_lossy()),
            time = rfc3339(entry.meta.modified),
        );
    }
    out.push_str("</table></body></html>\n");
    out
}

/// `[{"name": "a.rpm", "type": "file", "size": 123, "mtime": "2024-01-01T00:00:00Z"}, ...]`; directories
/// have `"type": "directory"` and no size.
pub fn json(entries: &[DirEntry]) -> String {
    let items: Vec<_> = entries
        .iter()
        .map(|e| {
            let name = e.name.to_string_lossy();
            let mtime = rfc3339(e.meta.modified);
            if e.is_dir {
                json!({"name": name, "type": "directory", "mtime": mtime})
            } else {
                json!({"name": name, "type": "file", "size": e.meta.len, "mtime": mtime})
            }
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_href(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::source::Meta;
    use crate::static_files::path::SafePath;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(name: &[u8], is_dir: bool, len: u64) -> DirEntry {
        DirEntry {
            name: OsString::from_vec(name.to_vec()),
            is_dir,
            meta: Meta {
                len,
                modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                id: 0,
            },
        }
    }

    fn sample() -> Vec<DirEntry> {
        let mut v = vec![
            entry(b"z.rpm", false, 3),
            entry("dir with space".as_bytes(), true, 0),
            entry("ünï <&>.txt".as_bytes(), false, 12),
            entry(b"a#b?c", false, 1),
            entry(b"bad\xff", false, 2),
        ];
        sort(&mut v);
        v
    }

    #[test]
    fn sorted_dirs_first() {
        let names: Vec<_> = sample()
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "dir with space",
                "a#b?c",
                "bad\u{fffd}",
                "z.rpm",
                "ünï <&>.txt"
            ]
        );
    }

    #[test]
    fn html_links_round_trip() {
        let page = html("/x/", &sample());
        assert!(
            page.contains("<a href=\"dir%20with%20space/\">dir with space/</a>"),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"%C3%BCn%C3%AF%20%3C%26%3E.txt\">ünï &lt;&amp;&gt;.txt</a>")
        );
        assert!(page.contains("<td>12</td><td>2023-11-14T22:13:20Z</td>"));
        assert!(page.contains("href=\"../\""));
        for e in sample() {
            let href = encode_href(e.name.as_bytes());
            let back = SafePath::from_uri_path(&format!("/{href}")).unwrap();
            assert_eq!(back.as_path().as_os_str(), e.name);
        }
    }

    #[test]
    fn json_entries() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample())).unwrap();
        assert_eq!(
            v[0],
            json!({"name": "dir with space", "type": "directory", "mtime": "2023-11-14T22:13:20Z"})
        );
        assert_eq!(v[4]["name"], "ünï <&>.txt");
        assert_eq!(v[4]["size"], 12);
    }
}
