//! The repo server's config file (`repo.toml`), read as `xenprov-repo serve --config` reads it: no panic,
//! and a refusal carries at least one diagnostic, each with a line and column inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenprov_repo::settings::config::Config;

fuzz_target!(|src: &str| {
    if let Err(diags) = Config::parse(src) {
        assert!(!diags.0.is_empty(), "refused without a diagnostic");
        let lines = src.split('\n').count();
        for d in &diags.0 {
            assert!(d.line >= 1 && d.line <= lines.max(1), "{d} is outside the file");
        }
    }
});
