//! `Range: bytes=…` (RFC 9110 §14.2) against a representation of known length.

/// More ranges than this are answered with the whole file; librepo's zchunk download asks for up to 256.
pub const MAX_RANGES: usize = 256;

/// A satisfiable byte range, both ends inclusive and inside the representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn size(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// What to send for a `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Ignore the header and send the whole representation (200): unparsable, not in bytes, too many
    /// ranges, ranges that add up to more than the file (a cheap amplification attack), or an empty file.
    Full,
    /// 416 with `Content-Range: bytes */LEN`: no range starts inside the representation.
    Unsatisfiable,
    /// 206: the satisfiable ranges in request order (one, or several for multipart/byteranges).
    Partial(Vec<ByteRange>),
}

/// Interprets a `Range` header value for a representation of `len` bytes.
pub fn parse(header: &[u8], len: u64) -> RangeAnswer {
    let Some(set) = strip_bytes_unit(header) else {
        return RangeAnswer::Full;
    };
    if len == 0 {
        return RangeAnswer::Full;
    }
    let mut ranges = Vec::new();
    let mut total: u64 = 0;
    let mut specs = 0;
    for spec in set.split(|&b| b == b',') {
        let spec = spec.trim_ascii();
        if spec.is_empty() {
            continue; // empty list elements are allowed (RFC 9110 §5.6.1)
        }
        specs += 1;
        if specs > MAX_RANGES {
            return RangeAnswer::Full;
        }
        match parse_spec(spec, len) {
            Spec::Invalid => return RangeAnswer::Full,
            Spec::Unsatisfiable => {}
            Spec::Range(r) => {
                // Checked, not saturating: a sum that saturates at u64::MAX would pass as `<= len`
                // for a length of u64::MAX (found by the range_parse fuzz target).
                match total.checked_add(r.size()) {
                    Some(t) if t <= len => total = t,
                    _ => return RangeAnswer::Full,
                }
                ranges.push(r);
            }
        }
    }
    if specs == 0 {
        RangeAnswer::Full
    } else if ranges.is_empty() {
        RangeAnswer::Unsatisfiable
    } else {
        RangeAnswer::Partial(ranges)
    }
}

fn strip_bytes_unit(header: &[u8]) -> Option<&[u8]> {
    let (unit, set) = header.split_at_checked(header.iter().position(|&b| b == b'=')?)?;
    unit.trim_ascii()
        .eq_ignore_ascii_case(b"bytes")
        .then_some(&set[1..])
}

enum Spec {
    Invalid,
    Unsatisfiable,
    Range(ByteRange),
}

fn parse_spec(spec: &[u8], len: u64) -> Spec {
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Spec::Invalid;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.is_empty() {
        // suffix-range: the last N bytes
        return match number(last) {
            None => Spec::Invalid,
            Some(0) => Spec::Unsatisfiable,
            Some(n) => Spec::Range(ByteRange {
                start: len.saturating_sub(n),
                end: len - 1,
            }),
        };
    }
    let Some(start) = number(first) else {
        return Spec::Invalid;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(end) if end >= start => end,
            _ => return Spec::Invalid,
        }
    };
    if start >= len {
        Spec::Unsatisfiable
    } else {
        Spec::Range(ByteRange {
            start,
            end: end.min(len - 1),
        })
    }
}

/// A decimal number; values beyond u64 saturate (they are past the end of any file anyway).
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAnswer::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    fn p(header: &str, len: u64) -> RangeAnswer {
        parse(header.as_bytes(), len)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(p("bytes=0-499", 1000), Partial(vec![r(0, 499)]));
        assert_eq!(p("bytes=500-", 1000), Partial(vec![r(500, 999)]));
        assert_eq!(p("bytes=-200", 1000), Partial(vec![r(800, 999)]));
        assert_eq!(p("bytes=-2000", 1000), Partial(vec![r(0, 999)]));
        assert_eq!(p("bytes=900-5000", 1000), Partial(vec![r(900, 999)]));
        assert_eq!(p("Bytes = 1-1", 10), Partial(vec![r(1, 1)]));
        assert_eq!(
            p("bytes=0-99999999999999999999999", 10),
            Partial(vec![r(0, 9)])
        );
    }

    #[test]
    fn multiple_ranges() {
        assert_eq!(
            p("bytes=0-0, 5-6,,-1", 10),
            Partial(vec![r(0, 0), r(5, 6), r(9, 9)])
        );
        // unsatisfiable members are dropped
        assert_eq!(p("bytes=0-0,50-60", 10), Partial(vec![r(0, 0)]));
        let many = (0..256)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(matches!(p(&format!("bytes={many}"), 1000), Partial(v) if v.len() == 256));
        let too_many = (0..257)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(p(&format!("bytes={too_many}"), 1000), Full);
        // overlapping ranges adding up to more than the file: whole file
        assert_eq!(p("bytes=0-,0-,0-", 1000), Full);
        // the same at the largest length: the sum overflows u64 rather than passing as u64::MAX
        assert_eq!(p("bytes=0-,0-", u64::MAX), Full);
        assert_eq!(p("bytes=0-", u64::MAX), Partial(vec![r(0, u64::MAX - 1)]));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(p("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(p("bytes=1000-2000,3000-", 1000), Unsatisfiable);
        assert_eq!(p("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(p("bytes=99999999999999999999999-", 10), Unsatisfiable);
    }

    #[test]
    fn ignored() {
        for h in [
            "bytes=5-4",
            "bytes=a-b",
            "bytes=1",
            "bytes=",
            "bytes=,",
            "items=0-1",
            "bytes 0-1",
            "bytes=--1",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0-1,x",
        ] {
            assert_eq!(p(h, 1000), Full, "{h}");
        }
        assert_eq!(p("bytes=0-1", 0), Full);
    }
}
