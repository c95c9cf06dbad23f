//! Byte sizes as admins write them: `512M`, `1.5G`, `10GiB`.
//!
//! Every unit is binary (K = KiB = 1024 bytes), as in LVM and GRUB. Decimal units (`MB`, `GB`)
//! are refused rather than guessed at, and a bare number is refused because it is ambiguous.

use std::fmt;
use std::str::FromStr;

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const TIB: u64 = 1 << 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

const PATTERN: &str = r"^[0-9]+(\.[0-9]{1,6})?(K|M|G|T|KiB|MiB|GiB|TiB)$";
pub const ACCEPTED: &str =
    "a number with a binary unit: K, M, G, T (or KiB, MiB, GiB, TiB), e.g. 512M, 1.5G, 10GiB";

impl Size {
    pub const fn mib(n: u64) -> Size {
        Size(n * MIB)
    }
    pub const fn gib(n: u64) -> Size {
        Size(n * GIB)
    }
    pub fn bytes(self) -> u64 {
        self.0
    }
    /// Whole MiB, rounded down.
    pub fn as_mib(self) -> u64 {
        self.0 / MIB
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Size, String> {
        // Nothing is trimmed: a size is one word, as the schema's pattern says, so that `1 G` or
        // ` 6G` is not read one way here and another by whoever reads the same file next.
        if s.contains(char::is_whitespace) {
            return Err(format!(
                "`{s}` holds a space; a size is one word: expected {ACCEPTED}"
            ));
        }
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        if num.is_empty() {
            return Err(format!("`{s}` is not a size; expected {ACCEPTED}"));
        }
        let mult = match unit {
            "K" | "KiB" | "k" => KIB,
            "M" | "MiB" => MIB,
            "G" | "GiB" => GIB,
            "T" | "TiB" => TIB,
            "" => return Err(format!("`{s}` has no unit; expected {ACCEPTED}")),
            "KB" | "MB" | "GB" | "TB" | "kB" => {
                return Err(format!(
                    "`{s}` uses a decimal unit, which is refused to avoid ambiguity; expected {ACCEPTED}"
                ));
            }
            _ => {
                return Err(format!(
                    "`{s}` has an unknown unit `{unit}`; expected {ACCEPTED}"
                ));
            }
        };
        let (int, frac) = match num.split_once('.') {
            Some((i, f)) if !f.contains('.') => (i, f),
            Some(_) => return Err(format!("`{s}` is not a number; expected {ACCEPTED}")),
            None => (num, ""),
        };
        if int.is_empty() || frac.len() > 6 || num.ends_with('.') {
            return Err(format!("`{s}` is not a size; expected {ACCEPTED}"));
        }
        let scale = 10u128.pow(frac.len() as u32);
        let digits: u128 = format!("{int}{frac}")
            .parse()
            .map_err(|_| format!("`{s}` is too large"))?;
        let total = digits
            .checked_mul(mult as u128)
            .ok_or_else(|| format!("`{s}` is too large"))?;
        if total % scale != 0 {
            return Err(format!("`{s}` is not a whole number of bytes"));
        }
        let bytes = u64::try_from(total / scale).map_err(|_| format!("`{s}` is too large"))?;
        if bytes == 0 {
            return Err(format!("`{s}` is zero; a size must be positive"));
        }
        Ok(Size(bytes))
    }
}

impl fmt::Display for Size {
    /// The largest binary unit that shows the size exactly, so `Display` round-trips through `FromStr`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, m) in [("T", TIB), ("G", GIB), ("M", MIB), ("K", KIB)] {
            if b >= m && b.is_multiple_of(m) {
                return write!(f, "{}{unit}", b / m);
            }
        }
        if b.is_multiple_of(KIB) {
            write!(f, "{}K", b / KIB)
        } else {
            write!(f, "{b} bytes")
        }
    }
}

/// Human reading of a size that need not be exact, e.g. `19.5 GiB`.
pub fn human(bytes: u64) -> String {
    for (unit, m) in [("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if bytes >= m {
            let v = bytes as f64 / m as f64;
            return if bytes.is_multiple_of(m) {
                format!("{} {unit}", bytes / m)
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{bytes} B")
}

string_serde!(Size, "Size", {
    "type": "string",
    "pattern": PATTERN,
    "description": ACCEPTED,
});

/// A size for the Xen command line, kept as the admin spelled it when Xen reads that spelling
/// (`2048M` stays `2048M`, so the hypervisor's command line matches the answer file); otherwise
/// (`1.5G`, `2GiB`) it is written in the largest exact unit Xen knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XenSize {
    pub size: Size,
    text: String,
}

impl XenSize {
    pub fn new(size: Size) -> XenSize {
        XenSize {
            size,
            text: size.to_string(),
        }
    }
}

impl FromStr for XenSize {
    type Err = String;
    fn from_str(s: &str) -> Result<XenSize, String> {
        let size: Size = s.parse()?;
        let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let xen_reads = !digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit())
            && matches!(&s[digits.len()..], "K" | "M" | "G" | "T");
        Ok(XenSize {
            size,
            text: if xen_reads {
                s.to_string()
            } else {
                size.to_string()
            },
        })
    }
}

impl fmt::Display for XenSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The JSON Schema of a size in a settings file read by `reader::Table::size`: a size with its unit,
/// or a number of bytes.
pub struct SizeOrBytes;

impl schemars::JsonSchema for SizeOrBytes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SizeOrBytes".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                { "type": "string", "pattern": PATTERN, "description": ACCEPTED },
                { "type": "integer", "minimum": 0, "description": "a number of bytes" }
            ]
        })
    }
}

string_serde!(XenSize, "Size", {
    "type": "string",
    "pattern": PATTERN,
    "description": ACCEPTED,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_units() {
        assert_eq!("512M".parse::<Size>().unwrap(), Size(512 * MIB));
        assert_eq!("1.5G".parse::<Size>().unwrap(), Size(3 * GIB / 2));
        assert_eq!("10GiB".parse::<Size>().unwrap(), Size(10 * GIB));
        assert_eq!("4K".parse::<Size>().unwrap(), Size(4096));
        assert_eq!("2T".parse::<Size>().unwrap(), Size(2 * TIB));
    }

    #[test]
    fn refuses_what_it_cannot_read_exactly() {
        for bad in [
            "",
            "M",
            "12",
            "12MB",
            "1GB",
            "1.2.3G",
            "-1G",
            "0M",
            "1.0000001G",
            "12X",
            "1e3M",
            "0.1K",
            " 6G",
            "6G ",
            "1 G",
            "6\tG",
            "6.G",
            "6.",
            ".5G",
        ] {
            assert!(bad.parse::<Size>().is_err(), "{bad:?} should be refused");
        }
        let e = "2GB".parse::<Size>().unwrap_err();
        assert!(e.contains("decimal unit"), "{e}");
        let e = "2048".parse::<Size>().unwrap_err();
        assert!(e.contains("no unit"), "{e}");
        let e = "1 G".parse::<Size>().unwrap_err();
        assert!(e.starts_with("`1 G` holds a space"), "{e}");
        assert!(" 2G".parse::<XenSize>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["512M", "1536M", "10G", "1T", "3K"] {
            assert_eq!(s.parse::<Size>().unwrap().to_string(), s);
        }
        assert_eq!(Size(3 * GIB / 2).to_string(), "1536M");
        assert_eq!(human(3 * GIB / 2), "1.5 GiB");
        assert_eq!(human(20 * GIB), "20 GiB");
    }

    #[test]
    fn xen_sizes_keep_the_admins_spelling_when_xen_reads_it() {
        let x = |s: &str| s.parse::<XenSize>().unwrap().to_string();
        assert_eq!(x("2048M"), "2048M");
        assert_eq!(x("2G"), "2G");
        assert_eq!(x("1.5G"), "1536M");
        assert_eq!(x("2GiB"), "2G");
        assert_eq!("700M".parse::<XenSize>().unwrap().size, Size::mib(700));
    }
}
