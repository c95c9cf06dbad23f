//! Reads 1,000 guest definitions and renders every template for each (answer file, xl install
//! and run configs, libvirt install and run XML). Goal: well under a second in all.

use std::time::Instant;

use xenprov_core::guest::{Guest, Host};
use xenprov_core::guest_render::{Output, Source, render};
use xenprov_core::render::Templates;
use xenprov_registry::Registry;
use xenprov_registry::settings::Config;

const HASH: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";

fn main() {
    let reg = Registry::open(std::path::Path::new("/nonexistent"), Templates::builtin()).unwrap();
    let cfg = Config::default();
    let host = Host {
        vg: cfg.vg.clone(),
        ..Host::default()
    };
    let kinds = [
        ("debian12", "pv"),
        ("debian12", "pvh"),
        ("debian12", "hvm"),
        ("rocky9", "hvm"),
        ("alma9", "hvm"),
    ];
    let defs: Vec<String> = (0..1000)
        .map(|i| {
            let (os, kind) = kinds[i % kinds.len()];
            format!(
                "name = \"g{i}\"\nos = \"{os}\"\ntype = \"{kind}\"\nmemory = \"2G\"\nvcpus = 2\ndisk = \"20G\"\n\
                 root-password-hash = '{HASH}'\npackages = [\"curl\", \"vim\"]\n\
                 ssh-authorized-keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5 me@host\"]\n\
                 post-install = \"echo hello > /etc/motd\\n\"\n"
            )
        })
        .collect();
    let outputs = [
        Output::Answer,
        Output::XlInstall,
        Output::XlRun,
        Output::LibvirtInstall,
        Output::LibvirtRun,
    ];
    let mut best = f64::MAX;
    let mut bytes = 0;
    for _ in 0..5 {
        let start = Instant::now();
        bytes = 0;
        for d in &defs {
            let g = Guest::parse(d, reg.catalog(), &host).unwrap();
            let os = reg.catalog().get(&g.os).unwrap();
            let installer = xenprov_guest::installer::cached(&cfg, os);
            let src = Source {
                repo_url: "http://10.0.2.15:8080".into(),
                tree_url: cfg.tree_url(&os.id, &os.tree, "http://10.0.2.15:8080"),
                kernel: installer.kernel.display().to_string(),
                ramdisk: installer.initrd.display().to_string(),
            };
            for out in outputs {
                bytes += render(
                    reg.templates(),
                    &g,
                    os,
                    &src,
                    "0123456789abcdef0123456789abcdef",
                    out,
                )
                .unwrap()
                .len();
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "guest render benchmark: 1000 definitions parsed, {} files ({} KiB) rendered in {:.1} ms (best of 5)",
        1000 * outputs.len(),
        bytes / 1024,
        best * 1000.0
    );
}
