//! Reads a TOML document key by key and collects every problem at once, each with the key's dotted
//! path, its line and column, what was found and what would be accepted.
//!
//! serde stops at the first error, which makes an admin fix an answer file one line per boot; this
//! reader instead walks the spanned document, so one `validate` run lists everything. Unknown keys
//! are found by elimination: every key a caller asks for (present or not) is known, the rest are
//! reported with the nearest known key as a suggestion.

use std::cell::RefCell;
use std::fmt;

use serde::Serialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::text::{self, Lines};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diag {
    /// Dotted path of the key, e.g. `xen.dom0-mem` or `lvm.volumes[2].name`.
    pub key: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.line, self.column, self.key, self.message
            )
        }
    }
}

/// All the problems found in one document, in the order they appear in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diags(pub Vec<Diag>);

impl fmt::Display for Diags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diags {}

impl Diags {
    /// The problems of the file at `path`, as a command reports them: how many, then one
    /// `PATH:LINE:COLUMN: key: message` line each.
    pub fn in_file(&self, path: &std::path::Path) -> String {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|d| format!("{}:{d}", path.display()))
            .collect();
        format!(
            "{} has {} problem(s):\n{}",
            path.display(),
            lines.len(),
            lines.join("\n")
        )
    }
}

pub struct Reader<'s> {
    src: &'s str,
    diags: RefCell<Vec<(usize, Diag)>>,
}

impl<'s> Reader<'s> {
    pub fn new(src: &'s str) -> Reader<'s> {
        Reader {
            src,
            diags: RefCell::new(Vec::new()),
        }
    }

    /// Parses the document; syntax errors are recorded and whatever could be recovered is returned.
    pub fn parse(&self) -> Spanned<DeTable<'s>> {
        let (doc, errors) = DeTable::parse_recoverable(self.src);
        for e in errors {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            let msg = e.message().trim().to_string();
            self.report_at(at, "", format!("TOML syntax: {msg}"));
        }
        doc
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let before = &self.src[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        (line, before[line_start..].chars().count() + 1)
    }

    pub fn report_at(&self, offset: usize, key: &str, message: String) {
        let (line, column) = self.position(offset);
        self.diags.borrow_mut().push((
            offset,
            Diag {
                key: key.to_string(),
                line,
                column,
                message,
            },
        ));
    }

    pub fn has_errors(&self) -> bool {
        !self.diags.borrow().is_empty()
    }

    /// The problems found, in document order.
    pub fn finish(self) -> Result<(), Diags> {
        let mut d = self.diags.into_inner();
        if d.is_empty() {
            return Ok(());
        }
        d.sort_by_key(|(at, _)| *at);
        Err(Diags(d.into_iter().map(|(_, d)| d).collect()))
    }

    pub fn root<'a>(&'a self, doc: &'a Spanned<DeTable<'s>>) -> Table<'a, 's> {
        Table {
            r: self,
            t: doc.get_ref(),
            path: String::new(),
            at: 0,
            known: RefCell::new(Vec::new()),
        }
    }
}

/// One TOML table being read. Call `finish` after asking for every key it may hold.
pub struct Table<'a, 's> {
    r: &'a Reader<'s>,
    t: &'a DeTable<'s>,
    path: String,
    at: usize,
    known: RefCell<Vec<&'static str>>,
}

/// A value and where it was found, for checks that need the position after the value is read.
#[derive(Debug, Clone)]
pub struct At<T> {
    pub value: T,
    pub offset: usize,
    pub key: String,
}

/// A value of a free-form table: see `Table::scalars`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

fn integer(v: &DeValue<'_>) -> Option<i64> {
    match v {
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok(),
        _ => None,
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 's> Table<'a, 's> {
    pub fn reader(&self) -> &'a Reader<'s> {
        self.r
    }

    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn offset(&self) -> usize {
        self.at
    }

    fn get(&self, key: &'static str) -> Option<&'a Spanned<DeValue<'s>>> {
        self.known.borrow_mut().push(key);
        self.t.get(key)
    }

    pub fn has(&self, key: &'static str) -> bool {
        self.get(key).is_some()
    }

    pub fn error(&self, key: &str, offset: usize, message: impl Into<String>) {
        self.r
            .report_at(offset, &self.key_path(key), message.into());
    }

    fn wrong_type(&self, key: &str, v: &Spanned<DeValue<'s>>, wanted: &str) {
        self.error(
            key,
            v.span().start,
            format!("expected {wanted}, found {}", type_name(v.get_ref())),
        );
    }

    fn missing(&self, key: &str, what: &str) {
        let where_ = if self.path.is_empty() {
            String::new()
        } else {
            format!(" in [{}]", self.path)
        };
        self.r.report_at(
            self.at,
            &self.key_path(key),
            format!("missing required key{where_}: {what}"),
        );
    }

    /// A string of one line; see [`text::check`] for what it may not hold.
    pub fn str(&self, key: &'static str) -> Option<At<String>> {
        self.string(key, Lines::One)
    }

    /// A string that may span lines (a script): tabs and newlines are its only control characters.
    pub fn text(&self, key: &'static str) -> Option<At<String>> {
        self.string(key, Lines::Many)
    }

    fn string(&self, key: &'static str, lines: Lines) -> Option<At<String>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => {
                checked_string(self.r, s, v.span().start, self.key_path(key), lines)
            }
            _ => {
                self.wrong_type(key, v, "a string");
                None
            }
        }
    }

    /// A path: a string of one line, as `str` reads it.
    pub fn path(&self, key: &'static str) -> Option<std::path::PathBuf> {
        self.str(key).map(|a| a.value.into())
    }

    pub fn req_str(&self, key: &'static str, what: &str) -> Option<At<String>> {
        if !self.has(key) {
            self.missing(key, what);
            return None;
        }
        self.str(key)
    }

    pub fn bool(&self, key: &'static str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(key, v, "true or false");
                None
            }
        }
    }

    pub fn int(&self, key: &'static str) -> Option<At<i64>> {
        let v = self.get(key)?;
        match integer(v.get_ref()) {
            Some(value) => Some(At {
                value,
                offset: v.span().start,
                key: self.key_path(key),
            }),
            None => {
                self.wrong_type(key, v, "an integer");
                None
            }
        }
    }

    /// Every key of a table whose keys the file chooses (such as a host's `[vars]`), each with a
    /// string, an integer or a boolean; `check_key` says which names are accepted. Read this way, a
    /// table needs no `finish`: no key in it is unknown.
    pub fn scalars(&self, check_key: impl Fn(&str) -> Result<(), String>) -> Vec<(String, Scalar)> {
        let mut out = Vec::new();
        for (k, v) in self.t.iter() {
            let name = k.get_ref().as_ref();
            let path = self.key_path(name);
            if let Err(e) = check_key(name) {
                self.r.report_at(k.span().start, &path, e);
                continue;
            }
            let value = match v.get_ref() {
                DeValue::String(s) => checked_string(self.r, s, v.span().start, path, Lines::One)
                    .map(|a| Scalar::Str(a.value)),
                DeValue::Boolean(b) => Some(Scalar::Bool(*b)),
                other => match integer(other) {
                    Some(i) => Some(Scalar::Int(i)),
                    None => {
                        self.r.report_at(
                            v.span().start,
                            &path,
                            format!(
                                "expected a string, an integer or a boolean, found {}",
                                type_name(other)
                            ),
                        );
                        None
                    }
                },
            };
            out.extend(value.map(|value| (name.to_string(), value)));
        }
        out
    }

    /// A size: a string with a binary unit (`8M`, `1.5G`: see `size::Size`), or an integer of bytes.
    pub fn size(&self, key: &'static str) -> Option<At<u64>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(_) => self
                .parsed(key, |s| s.parse::<crate::size::Size>().map(|z| z.bytes()))
                .map(|a| At {
                    value: a.value,
                    offset: a.offset,
                    key: a.key,
                }),
            DeValue::Integer(_) => {
                let n = self.int(key)?;
                match u64::try_from(n.value) {
                    Ok(value) => Some(At {
                        value,
                        offset: n.offset,
                        key: n.key,
                    }),
                    Err(_) => {
                        self.error(key, n.offset, "a size cannot be negative");
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(key, v, "a size such as \"8M\", or a number of bytes");
                None
            }
        }
    }

    /// A string parsed by `parse`, whose error text says what is accepted.
    pub fn parsed<T>(
        &self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<At<T>> {
        let s = self.str(key)?;
        match parse(&s.value) {
            Ok(value) => Some(At {
                value,
                offset: s.offset,
                key: s.key,
            }),
            Err(e) => {
                self.error(key, s.offset, e);
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice<T: Copy>(&self, key: &'static str, options: &[(&str, T)]) -> Option<T> {
        self.parsed(key, |s| {
            options
                .iter()
                .find(|(name, _)| *name == s)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    let names: Vec<String> =
                        options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
                    format!(
                        "`{s}` is not accepted; expected one of {}",
                        names.join(", ")
                    )
                })
        })
        .map(|a| a.value)
    }

    /// An array whose items are each read by `item`; a single bad item does not hide the others.
    pub fn array<T>(
        &self,
        key: &'static str,
        mut item: impl FnMut(Item<'a, 's>) -> Option<T>,
    ) -> Option<Vec<T>> {
        let v = self.get(key)?;
        let DeValue::Array(arr) = v.get_ref() else {
            self.wrong_type(key, v, "an array");
            return None;
        };
        let mut out = Vec::new();
        for (i, el) in arr.iter().enumerate() {
            if let Some(x) = item(Item {
                r: self.r,
                v: el,
                path: format!("{}[{i}]", self.key_path(key)),
            }) {
                out.push(x);
            }
        }
        Some(out)
    }

    pub fn str_array(&self, key: &'static str) -> Option<Vec<At<String>>> {
        self.array(key, |it| it.str())
    }

    /// A sub-table (`[section]` or an inline table).
    pub fn table(&self, key: &'static str) -> Option<Table<'a, 's>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Table {
                r: self.r,
                t,
                path: self.key_path(key),
                at: v.span().start,
                known: RefCell::new(Vec::new()),
            }),
            _ => {
                self.wrong_type(key, v, "a table");
                None
            }
        }
    }

    /// Reports every key that no one asked for, suggesting the nearest known one.
    pub fn finish(self) {
        let known = self.known.take();
        for (k, v) in self.t.iter() {
            let name = k.get_ref().as_ref();
            if known.contains(&name) {
                continue;
            }
            let hint = suggest(name, &known)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_else(|| {
                    let mut ks: Vec<&str> = known.clone();
                    ks.sort();
                    ks.dedup();
                    format!("; accepted keys here: {}", ks.join(", "))
                });
            let what = if matches!(v.get_ref(), DeValue::Table(_)) && self.path.is_empty() {
                "unknown section"
            } else {
                "unknown key"
            };
            self.r.report_at(
                k.span().start,
                &self.key_path(name),
                format!("{what}{hint}"),
            );
        }
    }
}

/// Every string any file holds passes here, so none reaches a generated file with a character
/// that would change what that file says.
fn checked_string(
    r: &Reader<'_>,
    s: &str,
    offset: usize,
    key: String,
    lines: Lines,
) -> Option<At<String>> {
    match text::check(s, lines) {
        Ok(()) => Some(At {
            value: s.to_string(),
            offset,
            key,
        }),
        Err(e) => {
            r.report_at(offset, &key, e);
            None
        }
    }
}

/// One element of an array.
pub struct Item<'a, 's> {
    r: &'a Reader<'s>,
    v: &'a Spanned<DeValue<'s>>,
    path: String,
}

impl<'a, 's> Item<'a, 's> {
    pub fn str(self) -> Option<At<String>> {
        match self.v.get_ref() {
            DeValue::String(s) => {
                checked_string(self.r, s, self.v.span().start, self.path, Lines::One)
            }
            other => {
                self.r.report_at(
                    self.v.span().start,
                    &self.path,
                    format!("expected a string, found {}", type_name(other)),
                );
                None
            }
        }
    }

    pub fn table(self) -> Option<Table<'a, 's>> {
        match self.v.get_ref() {
            DeValue::Table(t) => Some(Table {
                r: self.r,
                t,
                path: self.path,
                at: self.v.span().start,
                known: RefCell::new(Vec::new()),
            }),
            other => {
                self.r.report_at(
                    self.v.span().start,
                    &self.path,
                    format!("expected a table, found {}", type_name(other)),
                );
                None
            }
        }
    }
}

/// The known key nearest to `name`: the same once `_` is read as `-` and case is folded, or
/// within a small edit distance.
pub fn suggest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('_', "-");
    let n = norm(name);
    if let Some(k) = known.iter().find(|k| norm(k) == n) {
        return Some(k);
    }
    known
        .iter()
        .map(|k| (edit_distance(&n, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(src: &str, f: impl FnOnce(&Table<'_, '_>)) -> Result<(), Diags> {
        let r = Reader::new(src);
        let doc = r.parse();
        let root = r.root(&doc);
        f(&root);
        root.finish();
        r.finish()
    }

    #[test]
    fn sizes_with_units_or_in_bytes() {
        let mut got = Vec::new();
        let err = read(
            "a = \"8M\"\nb = 4096\nc = \"8 MB\"\nd = -1\ne = true\n",
            |t| {
                for k in ["a", "b", "c", "d", "e"] {
                    got.push(t.size(k).map(|a| a.value));
                }
            },
        )
        .unwrap_err();
        assert_eq!(got, [Some(8 << 20), Some(4096), None, None, None]);
        let lines: Vec<String> = err.0.iter().map(|d| d.to_string()).collect();
        assert!(lines[0].starts_with("3:5: c: "), "{lines:?}");
        assert_eq!(lines[1], "4:5: d: a size cannot be negative");
        assert!(lines[2].starts_with("5:5: e: expected a size"), "{lines:?}");
    }

    #[test]
    fn reports_all_problems_with_positions() {
        let src = "a = 1\n[s]\nname = 3\nextra = true\n";
        let err = read(src, |t| {
            t.req_str("b", "a name");
            if let Some(s) = t.table("s") {
                s.str("name");
                s.finish();
            }
            t.int("a");
        })
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(
            text,
            "1:1: b: missing required key: a name\n\
             3:8: s.name: expected a string, found an integer\n\
             4:1: s.extra: unknown key; accepted keys here: name"
        );
    }

    #[test]
    fn suggests_the_near_key() {
        assert_eq!(suggest("dom0_mem", &["dom0-mem", "mem"]), Some("dom0-mem"));
        assert_eq!(
            suggest("hostnmae", &["hostname", "timezone"]),
            Some("hostname")
        );
        assert_eq!(suggest("zzz", &["hostname"]), None);
    }

    #[test]
    fn syntax_errors_are_positioned() {
        let err = read("a = \nb = 2\n", |t| {
            t.int("b");
        })
        .unwrap_err();
        let syntax = err
            .0
            .iter()
            .find(|d| d.message.starts_with("TOML syntax"))
            .expect("a syntax error");
        assert_eq!((syntax.line, syntax.column), (1, 5), "{err}");
    }
}
