//! The fleet's netboot routes in process: a hosts directory with two sound entries sharing one
//! answer template, a broken one and a pair that claim the same MAC, requests straight to the router.

mod common;
use common::send;

use std::path::Path;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use sha2::Digest;
use xenprov_repo::http::metrics::Metrics;
use xenprov_repo::server::router::Router;
use xenprov_repo::settings::config::Config;

const TEMPLATE: &str = include_str!("../../core/tests/fleet/rack.toml");

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn setup(dir: &Path) -> Router {
    let hosts = dir.join("hosts");
    write(&hosts, "answers/rack.toml", TEMPLATE);
    let entry = |mac: &str, address: &str| {
        format!(
            "answer = \"answers/rack.toml\"\n[match]\nmac = \"{mac}\"\n[vars]\naddress = \"{address}\"\n"
        )
    };
    for (name, mac, address) in [
        ("rack-a1", "52-54-00-AC-01-01", "198.51.100.11/24"),
        ("rack-a2", "52:54:00:ac:01:02", "198.51.100.12/24"),
        // a /33 renders, then fails as an answer file
        ("rack-a3", "52:54:00:ac:01:03", "198.51.100.13/33"),
        ("twin-1", "52:54:00:ac:01:04", "198.51.100.14/24"),
        ("twin-2", "52:54:00:AC:01:04", "198.51.100.15/24"),
    ] {
        write(&hosts, &format!("{name}.toml"), &entry(mac, address));
    }
    write(&hosts, "notes.txt", "not an entry");
    let config = Config {
        root: dir.join("root"),
        hosts: Some(hosts),
        hosts_state: dir.join("state"),
        install_iso: Some("installer".into()),
        ..Config::default()
    };
    std::fs::create_dir_all(&config.root).unwrap();
    Router::from_config(&config, Arc::new(Metrics::default())).unwrap()
}

async fn netboot(router: &Router, mac: &str) -> String {
    let (st, script) = send(
        router,
        Method::GET,
        &format!("/ipxe?mac={mac}&uuid=&serial="),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(script.starts_with("#!ipxe\n"), "{script}");
    script
}

fn boots_its_disk(script: &str) -> bool {
    script.ends_with("\nexit\n") && !script.contains("kernel")
}

/// The answer URL and SHA-256 on an install script's kernel line.
fn answer_of(script: &str) -> (String, String) {
    let arg = |name: &str| {
        script
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {script}"))
            .to_string()
    };
    let url = arg("xenprov.answer=");
    let path = url
        .strip_prefix(&format!("http://{}", common::HOST))
        .expect("the answer is on this server");
    (path.to_string(), arg("xenprov.answer-sha256="))
}

#[tokio::test]
async fn boot_ipxe_chains_to_ipxe_with_what_the_machine_says() {
    let dir = tempfile::tempdir().unwrap();
    let router = setup(dir.path());
    let (st, script) = send(&router, Method::GET, "/boot.ipxe", "").await;
    assert_eq!(st, StatusCode::OK);
    assert!(script.starts_with("#!ipxe\n"));
    assert!(
        script
            .contains("chain /ipxe?mac=${net0/mac:hexhyp}&uuid=${uuid}&serial=${serial:uristring}")
    );
}

#[tokio::test]
async fn an_armed_host_installs_once_with_its_own_answer_then_boots_its_disk() {
    let dir = tempfile::tempdir().unwrap();
    let router = setup(dir.path());
    let script = netboot(&router, "52%3A54%3A00%3Aac%3A01%3A01").await;
    assert!(
        script.contains(
            "kernel http://10.0.2.2:8080/installer/boot/vmlinuz initrd=initrd.img boot=xenprov"
        ),
        "{script}"
    );
    assert!(script.contains("\ninitrd http://10.0.2.2:8080/installer/boot/initrd.img\nboot\n"));
    // the live initrd fetches the medium over the NIC iPXE booted from
    assert!(
        script.contains(
            " ip=dhcp BOOTIF=01-${netX/mac:hexhyp} xenprov.mode=auto xenprov.medium=http://10.0.2.2:8080/installer "
        ),
        "{script}"
    );
    let (path, sha) = answer_of(&script);
    let token = path.rsplit('/').next().unwrap().to_string();
    assert!(
        path.starts_with("/answer/rack-a1/") && token.len() == 32,
        "{path}"
    );
    // nothing of the answer without the token, or for another host
    for bad in [
        "/answer/rack-a1/00000000000000000000000000000000".to_string(),
        format!("/answer/rack-a2/{token}"),
        "/answer/rack-a1".to_string(),
    ] {
        assert_eq!(
            send(&router, Method::GET, &bad, "").await.0,
            StatusCode::NOT_FOUND,
            "{bad}"
        );
    }
    let (st, answer) = send(&router, Method::GET, &path, "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(hex::encode(sha2::Sha256::digest(answer.as_bytes())), sha);
    assert!(answer.contains("hostname = \"rack-a1\""), "{answer}");
    assert!(
        answer.contains("address = \"198.51.100.11/24\""),
        "{answer}"
    );

    let ev = format!("/events/host/rack-a1/{token}");
    assert!(
        script.contains(&format!(" xenprov.events=http://{}{ev}\n", common::HOST)),
        "{script}"
    );
    assert_eq!(
        send(&router, Method::GET, &ev, "").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        send(&router, Method::POST, &ev, "rebooting").await.0,
        StatusCode::BAD_REQUEST
    );
    let wrong = "/events/host/rack-a1/00000000000000000000000000000000";
    assert_eq!(
        send(&router, Method::POST, wrong, "done").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&router, Method::POST, &ev, "started").await,
        (StatusCode::OK, "installing\n".into())
    );
    assert_eq!(
        send(&router, Method::POST, &ev, "done").await,
        (StatusCode::OK, "installed\n".into())
    );
    // installed: the token is spent and the next netboot goes to the disk
    assert_eq!(
        send(&router, Method::GET, &path, "").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&router, Method::POST, &ev, "done").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(boots_its_disk(&netboot(&router, "52:54:00:ac:01:01").await));

    // the other host of the rack gets its own answer from the same template
    let (path2, _) = answer_of(&netboot(&router, "52-54-00-AC-01-02").await);
    let (_, answer2) = send(&router, Method::GET, &path2, "").await;
    assert!(answer2.contains("hostname = \"rack-a2\"") && answer2.contains("198.51.100.12/24"));
}

#[tokio::test]
async fn a_host_that_netboots_again_after_fetching_its_answer_is_not_reinstalled() {
    let dir = tempfile::tempdir().unwrap();
    let router = setup(dir.path());
    // a reset before the installer ran: offered again, with a new token
    let (first, _) = answer_of(&netboot(&router, "52:54:00:ac:01:01").await);
    let (second, _) = answer_of(&netboot(&router, "52:54:00:ac:01:01").await);
    assert_ne!(first, second);
    assert_eq!(
        send(&router, Method::GET, &first, "").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&router, Method::GET, &second, "").await.0,
        StatusCode::OK
    );
    // the installer had the answer: another netboot now is a loop in the making
    assert!(boots_its_disk(&netboot(&router, "52:54:00:ac:01:01").await));
    assert_eq!(
        send(&router, Method::GET, &second, "").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(boots_its_disk(&netboot(&router, "52:54:00:ac:01:01").await));
}

#[tokio::test]
async fn unknown_broken_and_ambiguous_machines_boot_their_disk() {
    let dir = tempfile::tempdir().unwrap();
    let router = setup(dir.path());
    for mac in [
        "52:54:00:ac:01:09", // no entry
        "52:54:00:ac:01:03", // its answer does not read
        "52:54:00:ac:01:04", // two entries claim it
        "not-a-mac",
        "",
    ] {
        let script = netboot(&router, mac).await;
        assert!(boots_its_disk(&script), "{mac}: {script}");
        assert!(
            !script.contains("rack-a3") && !script.contains("twin"),
            "{script}"
        );
    }
    assert!(
        std::fs::read_dir(dir.path().join("state"))
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound),
        "no state was written for any of them"
    );
}
