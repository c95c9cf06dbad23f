//! Every guest definition in `tests/guests/` rendered into every output, compared byte for byte
//! with `tests/guests/golden/`, and every one in `tests/guests/refused/` refused with the error its
//! `# expect:` line gives. `XENPROV_BLESS=1` rewrites the goldens; review the diff.

use std::path::{Path, PathBuf};

use xenprov_core::guest::{Family, Guest, Host};
use xenprov_core::guest_render::{Output, render};
use xenprov_core::render::Templates;
use xenprov_registry::Registry;
use xenprov_registry::settings::Config;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/guests")
}

pub const TOKEN: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn renders_match_the_goldens() {
    let reg = Registry::open(Path::new("/nonexistent"), Templates::builtin()).unwrap();
    let cfg = Config::default();
    let host = Host {
        vg: cfg.vg.clone(),
        ..Host::default()
    };
    let update = std::env::var_os("XENPROV_BLESS").is_some();
    let mut defs: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    defs.sort();
    assert!(defs.len() >= 6, "definitions in {}", dir().display());
    let mut mismatches = Vec::new();
    for def in defs {
        let g = Guest::parse(
            &std::fs::read_to_string(&def).unwrap(),
            reg.catalog(),
            &host,
        )
        .unwrap_or_else(|e| panic!("{}:\n{e}", def.display()));
        let os = reg.catalog().get(&g.os).unwrap();
        let installer = xenprov_guest::installer::cached(&cfg, os);
        let src = xenprov_core::guest_render::Source {
            repo_url: "http://192.0.2.1:8080".into(),
            tree_url: cfg.tree_url(&os.id, &os.tree, "http://192.0.2.1:8080"),
            kernel: installer.kernel.display().to_string(),
            ramdisk: installer.initrd.display().to_string(),
        };
        let answer = if os.family == Family::Debian {
            "preseed"
        } else {
            "ks"
        };
        for (out, ext) in [
            (Output::Answer, answer),
            (Output::XlInstall, "install.cfg"),
            (Output::XlRun, "run.cfg"),
            (Output::LibvirtInstall, "install.xml"),
            (Output::LibvirtRun, "run.xml"),
        ] {
            let text = render(reg.templates(), &g, os, &src, TOKEN, out).unwrap();
            let golden = dir().join("golden").join(format!("{}.{ext}", g.name));
            if update {
                std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
                std::fs::write(&golden, &text).unwrap();
            } else if std::fs::read_to_string(&golden).ok().as_deref() != Some(text.as_str()) {
                mismatches.push(golden.display().to_string());
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "differ from the render (XENPROV_BLESS=1 to accept): {mismatches:#?}"
    );
}

#[test]
fn refused_definitions_say_why() {
    let reg = Registry::open(Path::new("/nonexistent"), Templates::builtin()).unwrap();
    let host = Host {
        vg: Config::default().vg,
        ..Host::default()
    };
    let mut defs: Vec<PathBuf> = std::fs::read_dir(dir().join("refused"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    defs.sort();
    assert!(
        defs.len() >= 10,
        "definitions in {}/refused",
        dir().display()
    );
    let mut wrong = Vec::new();
    for def in defs {
        let src = std::fs::read_to_string(&def).unwrap();
        let want = src
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no `# expect:` line", def.display()));
        match Guest::parse(&src, reg.catalog(), &host) {
            Ok(_) => wrong.push(format!("{}: accepted", def.display())),
            Err(e) if e.to_string().contains(want) => {}
            Err(e) => wrong.push(format!("{}: expected {want:?}, got:\n{e}", def.display())),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
