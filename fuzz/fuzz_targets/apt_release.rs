//! APT `Release` text (what gpgv vouched for, which still says whatever the archive wants): no panic, and
//! every index path it lists and every by-hash alias of it is either refused or stays inside the mirror.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use xenprov_repo::content::verify::join_relative;
use xenprov_repo::content::verify::release::Release;
use xenprov_repo_fuzz::assert_plain_relative;

fuzz_target!(|text: &str| {
    let Ok(release) = Release::parse(text) else {
        return;
    };
    assert!(
        !release.files.is_empty(),
        "a Release without a SHA256 list was accepted"
    );
    let _ = release.check_valid(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    for name in release.files.keys() {
        let Some(full) = join_relative("dists/stable", name) else {
            continue;
        };
        assert_plain_relative(&full, name);
        let aliases = release.by_hash_paths(&full, name);
        assert!(
            !aliases.is_empty(),
            "{name:?} is listed but has no by-hash path"
        );
        for alias in aliases {
            let joined = join_relative("", &alias);
            assert_eq!(
                joined.as_deref(),
                Some(alias.as_str()),
                "by-hash alias of {name:?}"
            );
            assert_plain_relative(&alias, name);
        }
    }
});
