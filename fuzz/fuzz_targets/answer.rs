//! Host answer files, read as `xenprov-installer validate` and the installer read them: no panic, every
//! refusal carries at least one diagnostic, and an accepted answer written back with `to_toml` (as the
//! guided installer saves it) reads back as the same answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenprov_core::answer::Answer;

fuzz_target!(|src: &str| {
    match Answer::parse(src) {
        Ok(answer) => {
            let text = answer.to_toml();
            match Answer::parse(&text) {
                Ok(again) => assert_eq!(again, answer, "written back as:\n{text}"),
                Err(e) => panic!("written back as:\n{text}\nand refused:\n{e}"),
            }
        }
        Err(diags) => {
            assert!(!diags.0.is_empty(), "refused without a diagnostic");
            let _ = diags.to_string();
        }
    }
});
