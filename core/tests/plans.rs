//! Golden tests: each `plans/NAME.toml` is planned against the recorded inventory (and payload
//! manifest) named on its first line, `# inventory: NAME[, payload]`, and the result must equal
//! `plans/NAME.plan` (the plan as `plan --show-files` prints it) or `plans/NAME.err` (the exact
//! error text). `XENPROV_BLESS=1 cargo test` rewrites the expected files after a deliberate change.

use std::fs;
use std::path::Path;

use xenprov_core::answer::Answer;
use xenprov_core::inventory::Inventory;
use xenprov_core::payload::Manifest;
use xenprov_core::plan::{Inputs, plan};
use xenprov_core::render::Templates;

fn outcome(case: &Path, templates: &Templates) -> (String, &'static str) {
    let src = fs::read_to_string(case).unwrap();
    let header = src
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# inventory: "))
        .expect("first line names the inventory");
    let mut parts = header.split(", ");
    let fixtures = case.parent().unwrap().parent().unwrap().join("fixtures");
    let inv: Inventory = serde_json::from_str(
        &fs::read_to_string(fixtures.join(format!("{}.json", parts.next().unwrap()))).unwrap(),
    )
    .unwrap();
    let payload = parts.next().map(|p| {
        Manifest::parse(&fs::read_to_string(fixtures.join(format!("{p}.json"))).unwrap()).unwrap()
    });
    let answer = match Answer::parse(&src) {
        Ok(a) => a,
        Err(d) => return (format!("{d}\n"), "err"),
    };
    match plan(Inputs {
        answer: &answer,
        inventory: &inv,
        payload: payload.as_ref(),
        templates,
    }) {
        Ok(p) => {
            // The same inputs must give the same plan, byte for byte.
            let again = plan(Inputs {
                answer: &answer,
                inventory: &inv,
                payload: payload.as_ref(),
                templates,
            })
            .unwrap();
            assert_eq!(
                p.to_json(),
                again.to_json(),
                "{}: plan is not deterministic",
                case.display()
            );
            let back: xenprov_core::plan::Plan = serde_json::from_str(&p.to_json()).unwrap();
            assert_eq!(back, p, "the JSON plan reads back as the same plan");
            (p.describe(true), "plan")
        }
        Err(e) => (format!("{e}\n"), "err"),
    }
}

#[test]
fn plans_match_their_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans");
    let templates = Templates::builtin();
    let bless = std::env::var_os("XENPROV_BLESS").is_some();
    let mut cases: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    cases.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    cases.sort();
    assert!(cases.len() >= 10, "fixtures are missing");
    let mut failures = Vec::new();
    for case in &cases {
        let (got, kind) = outcome(case, &templates);
        let expected_path = case.with_extension(kind);
        let other = case.with_extension(if kind == "plan" { "err" } else { "plan" });
        if bless {
            fs::write(&expected_path, &got).unwrap();
            let _ = fs::remove_file(&other);
            continue;
        }
        match fs::read_to_string(&expected_path) {
            Ok(want) if want == got => {}
            Ok(want) => failures.push(format!(
                "{}:\n--- expected\n{want}\n--- got\n{got}",
                expected_path.display()
            )),
            Err(_) => failures.push(format!("{}: no {kind} file; got:\n{got}", case.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
