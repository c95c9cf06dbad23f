//! `Range` parsing against any header value and length: no panic, and every answer is one the handler
//! can send as is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenprov_repo::http::range::{self, MAX_RANGES, RangeAnswer};

fuzz_target!(|input: (u64, &[u8])| {
    let (len, header) = input;
    match range::parse(header, len) {
        RangeAnswer::Full => {}
        RangeAnswer::Unsatisfiable => assert!(len > 0, "416 for an empty file"),
        RangeAnswer::Partial(ranges) => {
            assert!(
                !ranges.is_empty() && ranges.len() <= MAX_RANGES,
                "{} ranges",
                ranges.len()
            );
            let mut total: u64 = 0;
            for r in &ranges {
                assert!(r.start <= r.end && r.end < len, "{r:?} outside 0..{len}");
                total += r.size();
            }
            assert!(total <= len, "ranges add up to {total} > {len}");
        }
    }
});
