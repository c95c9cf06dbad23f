//! Conditional requests (RFC 9110 §13): `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
//! `If-Modified-Since`, evaluated in the RFC's order, and `If-Range`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::{self, HeaderMap};

/// The validators of one representation: a strong ETag (with its quotes) and the modification time.
#[derive(Debug, Clone)]
pub struct Validators {
    pub etag: String,
    pub last_modified: SystemTime,
}

impl Validators {
    /// Validators for a file identified by `id` (inode-like), with its size and modification time.
    pub fn for_file(id: u64, len: u64, modified: SystemTime) -> Validators {
        let nanos = modified
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Validators {
            etag: format!("\"{id:x}-{len:x}-{nanos:x}\""),
            last_modified: modified,
        }
    }

    /// `Last-Modified` as sent: HTTP dates have whole seconds.
    pub fn last_modified_secs(&self) -> SystemTime {
        truncate_to_secs(self.last_modified)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Serve the representation (honouring `Range` only if `If-Range` allows).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

/// Evaluates the preconditions of a GET or HEAD request.
pub fn evaluate(headers: &HeaderMap, v: &Validators) -> Outcome {
    if let Some(value) = header_str(headers, header::IF_MATCH) {
        if !matches_any(value, &v.etag, Comparison::Strong) {
            return Outcome::PreconditionFailed;
        }
    } else if let Some(date) = header_date(headers, header::IF_UNMODIFIED_SINCE)
        && v.last_modified_secs() > date
    {
        return Outcome::PreconditionFailed;
    }
    if let Some(value) = header_str(headers, header::IF_NONE_MATCH) {
        if matches_any(value, &v.etag, Comparison::Weak) {
            return Outcome::NotModified;
        }
    } else if let Some(date) = header_date(headers, header::IF_MODIFIED_SINCE)
        && v.last_modified_secs() <= date
    {
        return Outcome::NotModified;
    }
    Outcome::Proceed
}

/// Whether a `Range` header may be honoured: always without `If-Range`; with it, only when the client's
/// copy is current (a strong ETag that matches, or exactly the `Last-Modified` date, as apt sends).
pub fn range_allowed(headers: &HeaderMap, v: &Validators) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return !value.starts_with("W/") && value == v.etag;
    }
    httpdate::parse_http_date(value).is_ok_and(|date| date == v.last_modified_secs())
}

#[derive(Clone, Copy)]
enum Comparison {
    Strong,
    Weak,
}

/// Whether an `If-Match`/`If-None-Match` list (`*` or entity-tags) contains `etag`.
fn matches_any(list: &str, etag: &str, how: Comparison) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return false;
        }
        let weak = rest.starts_with("W/");
        let tag_start = if weak { &rest[2..] } else { rest };
        let Some(body) = tag_start.strip_prefix('"') else {
            return false; // not a list of entity-tags
        };
        let Some(close) = body.find('"') else {
            return false;
        };
        let tag = &tag_start[..close + 2];
        let usable = !weak || matches!(how, Comparison::Weak);
        if usable && tag == etag {
            return true;
        }
        rest = &body[close + 1..];
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An HTTP date header; unparsable dates are ignored, as RFC 9110 requires.
fn header_date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    httpdate::parse_http_date(header_str(headers, name)?.trim()).ok()
}

fn truncate_to_secs(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn validators() -> Validators {
        Validators::for_file(7, 100, UNIX_EPOCH + Duration::new(1_700_000_000, 5))
    }

    fn with(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT"; // 1_700_000_000
    const EARLIER: &str = "Tue, 14 Nov 2023 22:13:19 GMT";

    #[test]
    fn etag_shape() {
        assert_eq!(validators().etag, "\"7-64-17979cfe362a0005\"");
    }

    #[test]
    fn none_match_and_modified_since() {
        let v = validators();
        let etag = v.etag.clone();
        use header::*;
        assert_eq!(evaluate(&with(&[]), &v), Outcome::Proceed);
        assert_eq!(
            evaluate(&with(&[(IF_NONE_MATCH, &etag)]), &v),
            Outcome::NotModified
        );
        let weak = format!("\"x\", W/{etag}");
        assert_eq!(
            evaluate(&with(&[(IF_NONE_MATCH, &weak)]), &v),
            Outcome::NotModified
        );
        assert_eq!(
            evaluate(&with(&[(IF_NONE_MATCH, "*")]), &v),
            Outcome::NotModified
        );
        assert_eq!(
            evaluate(&with(&[(IF_NONE_MATCH, "\"other\"")]), &v),
            Outcome::Proceed
        );
        assert_eq!(
            evaluate(&with(&[(IF_MODIFIED_SINCE, LM)]), &v),
            Outcome::NotModified
        );
        assert_eq!(
            evaluate(&with(&[(IF_MODIFIED_SINCE, EARLIER)]), &v),
            Outcome::Proceed
        );
        assert_eq!(
            evaluate(&with(&[(IF_MODIFIED_SINCE, "garbage")]), &v),
            Outcome::Proceed
        );
        // If-None-Match wins over If-Modified-Since
        let both = with(&[(IF_NONE_MATCH, "\"other\""), (IF_MODIFIED_SINCE, LM)]);
        assert_eq!(evaluate(&both, &v), Outcome::Proceed);
    }

    #[test]
    fn match_and_unmodified_since() {
        let v = validators();
        let etag = v.etag.clone();
        use header::*;
        assert_eq!(evaluate(&with(&[(IF_MATCH, &etag)]), &v), Outcome::Proceed);
        let weak = format!("W/{etag}");
        assert_eq!(
            evaluate(&with(&[(IF_MATCH, &weak)]), &v),
            Outcome::PreconditionFailed
        );
        assert_eq!(
            evaluate(&with(&[(IF_MATCH, "\"x\"")]), &v),
            Outcome::PreconditionFailed
        );
        assert_eq!(
            evaluate(&with(&[(IF_UNMODIFIED_SINCE, LM)]), &v),
            Outcome::Proceed
        );
        assert_eq!(
            evaluate(&with(&[(IF_UNMODIFIED_SINCE, EARLIER)]), &v),
            Outcome::PreconditionFailed
        );
    }

    #[test]
    fn if_range() {
        let v = validators();
        let etag = v.etag.clone();
        use header::IF_RANGE;
        assert!(range_allowed(&with(&[]), &v));
        assert!(range_allowed(&with(&[(IF_RANGE, &etag)]), &v));
        assert!(range_allowed(&with(&[(IF_RANGE, LM)]), &v));
        assert!(!range_allowed(&with(&[(IF_RANGE, EARLIER)]), &v));
        assert!(!range_allowed(
            &with(&[(IF_RANGE, &format!("W/{etag}"))]),
            &v
        ));
        assert!(!range_allowed(&with(&[(IF_RANGE, "\"other\"")]), &v));
        assert!(!range_allowed(&with(&[(IF_RANGE, "yesterday")]), &v));
    }
}
