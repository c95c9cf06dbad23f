//! RPM metadata, `repomd.xml` and `primary.xml`, through the one XML reader both use: no panic, and
//! every location is either refused or stays inside the mirror.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenprov_repo::content::verify::{join_relative, repomd};
use xenprov_repo_fuzz::assert_plain_relative;

fuzz_target!(|xml: &[u8]| {
    for entries in [repomd::repomd(xml), repomd::primary(xml)] {
        let Ok(entries) = entries else {
            continue;
        };
        for e in entries {
            if let Some(path) = join_relative("rocky/9/BaseOS/x86_64/os", &e.href) {
                assert_plain_relative(&path, &e.href);
            }
        }
    }
});
