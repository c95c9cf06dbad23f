//! ISO images made by xorriso (`tests/fixtures/iso/gen.sh`) read in place: names of each flavour,
//! symlinks kept inside the image, file contents and times, listings, and what the image is.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use xenprov_repo::content::detect::{self, Detected};
use xenprov_repo::static_files::iso_tree::IsoTree;
use xenprov_repo::static_files::iso9660::Names;
use xenprov_repo::static_files::path::SafePath;
use xenprov_repo::static_files::tree::{Node, Tree};

fn image(name: &str) -> (tempfile::TempDir, PathBuf) {
    let gz =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/iso/{name}.iso.gz"));
    let mut data = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap())
        .read_to_end(&mut data)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.iso"));
    std::fs::write(&path, data).unwrap();
    (dir, path)
}

fn read(tree: &IsoTree, p: &str) -> io::Result<Vec<u8>> {
    match tree.open(&SafePath::from_uri_path(p).unwrap())? {
        Node::File(f) => {
            let mut buf = vec![0; f.meta().len as usize];
            f.read_exact_at(&mut buf, 0)?;
            Ok(buf)
        }
        Node::Dir(_) => Ok(b"<dir>".to_vec()),
    }
}

fn names(tree: &IsoTree, p: &str) -> Vec<(String, bool)> {
    let mut v: Vec<_> = tree
        .list(&SafePath::from_uri_path(p).unwrap())
        .unwrap()
        .into_iter()
        .map(|e| (e.name.to_string_lossy().into_owned(), e.is_dir))
        .collect();
    v.sort();
    v
}

const LONG: &str =
    "a-file-name-that-is-much-longer-than-the-sixty-four-characters-joliet-allows.txt";

#[test]
fn rock_ridge_names_links_and_times() {
    let (_dir, path) = image("rr");
    let tree = IsoTree::open(&path).unwrap();
    assert_eq!(tree.index().names, Names::RockRidge);
    assert_eq!(tree.index().volume_id, "XENPROV_TEST");
    assert_eq!(read(&tree, "/README.txt").unwrap(), b"hello iso\n");
    assert_eq!(read(&tree, "/.disk/info").unwrap()[..6], *b"Debian");
    assert_eq!(
        read(&tree, &format!("/pool/main/h/{LONG}")).unwrap(),
        b"a long name\n"
    );
    let big = read(&tree, "/pool/main/h/Big%20Mixed%20Case.bin").unwrap();
    assert_eq!(big.len(), 300_000);
    assert!(big.iter().all(|&b| b == b'x'));
    assert_eq!(
        read(&tree, "/deep/1/2/3/4/5/6/7/8/9/file").unwrap(),
        b"deep\n"
    );
    // symlinks inside the image are followed; those that leave it or loop are missing
    assert_eq!(
        read(&tree, "/dists/stable/Release").unwrap(),
        read(&tree, "/dists/bookworm/Release").unwrap()
    );
    assert_eq!(
        read(&tree, "/debian/debian/README.txt").unwrap(),
        b"hello iso\n"
    );
    assert_eq!(read(&tree, "/abs-link").unwrap(), b"hello iso\n");
    for p in ["/escape", "/loop", "/missing", "/README.txt/x"] {
        assert_eq!(
            read(&tree, p).unwrap_err().kind(),
            io::ErrorKind::NotFound,
            "{p}"
        );
    }
    let Node::File(f) = tree
        .open(&SafePath::from_uri_path("/README.txt").unwrap())
        .unwrap()
    else {
        panic!("README.txt is not a file");
    };
    assert_eq!(
        httpdate::fmt_http_date(f.meta().modified),
        "Sat, 10 Feb 2024 11:28:00 GMT"
    );
    // ranges in the middle of a file
    let Node::File(big) = tree
        .open(&SafePath::from_uri_path("/pool/main/h/Big%20Mixed%20Case.bin").unwrap())
        .unwrap()
    else {
        panic!();
    };
    let mut buf = [0u8; 10];
    big.read_exact_at(&mut buf, 299_990).unwrap();
    assert_eq!(&buf, b"xxxxxxxxxx");
    assert!(big.read_exact_at(&mut buf, 299_995).is_err());
}

#[test]
fn listings_describe_link_targets() {
    let (_dir, path) = image("rr");
    let tree = IsoTree::open(&path).unwrap();
    assert_eq!(
        names(&tree, "/"),
        [
            (".disk".into(), true),
            ("README.txt".into(), false),
            ("abs-link".into(), false),
            ("debian".into(), true),
            ("deep".into(), true),
            ("dists".into(), true),
            ("pool".into(), true),
        ]
    );
    assert_eq!(
        names(&tree, "/dists/"),
        [("bookworm".into(), true), ("stable".into(), true)]
    );
}

#[test]
fn joliet_and_plain_names() {
    let (_dir, path) = image("joliet");
    let tree = IsoTree::open(&path).unwrap();
    assert_eq!(tree.index().names, Names::Joliet);
    assert_eq!(read(&tree, "/README.txt").unwrap(), b"hello iso\n");
    assert_eq!(
        read(&tree, "/pool/main/h/Big%20Mixed%20Case.bin")
            .unwrap()
            .len(),
        300_000
    );
    // Joliet keeps 64 UCS-2 characters of a name
    let listed = names(&tree, "/pool/main/h/");
    assert!(
        listed
            .iter()
            .any(|(n, _)| LONG.starts_with(n.trim_end_matches(".txt")) && n.len() < LONG.len()),
        "{listed:?}"
    );

    let (_dir, path) = image("plain");
    let tree = IsoTree::open(&path).unwrap();
    assert_eq!(tree.index().names, Names::Iso9660);
    assert_eq!(read(&tree, "/README.TXT").unwrap(), b"hello iso\n");
    assert_eq!(
        read(&tree, "/DISTS/BOOKWORM/RELEASE").unwrap()[..7],
        *b"Origin:"
    );
}

#[test]
fn detects_a_debian_medium() {
    let (_dir, path) = image("rr");
    let tree = IsoTree::open(&path).unwrap();
    let found = detect::detect(&tree);
    assert_eq!(
        found,
        vec![
            Detected::DiskInfo(
                "Debian GNU/Linux 12.5.0 \"Bookworm\" - Official amd64 DVD Binary-1 20240210-11:28"
                    .into()
            ),
            Detected::AptSuite {
                dir: "bookworm".into(),
                origin: "Debian".into(),
                suite: "stable".into(),
                codename: "bookworm".into(),
                version: "12.5".into(),
                architectures: "amd64".into(),
                components: "main".into(),
            },
        ]
    );
    assert_eq!(
        detect::summary(&found),
        "Debian 12.5 (bookworm) amd64: Debian GNU/Linux 12.5.0 \"Bookworm\" - Official amd64 DVD Binary-1 20240210-11:28"
    );
}
