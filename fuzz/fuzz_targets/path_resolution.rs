//! Request paths, decoded and then opened in a real tree whose symlinks point everywhere: a path that is
//! accepted has only plain visible components, and whatever is opened is never the canary file that
//! lies next to the root.
#![no_main]

use std::os::unix::fs::symlink;
use std::path::{Component, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xenprov_repo::static_files::fs_tree::FsTree;
use xenprov_repo::static_files::path::SafePath;
use xenprov_repo::static_files::tree::{Node, Tree};

const CANARY: &[u8] = b"xenprov fuzz canary: outside the root";

struct Fixture {
    tree: FsTree,
}

/// root/{file, dir/file, links...} and a canary beside root; links escape relatively, absolutely and
/// through other links.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let top = std::env::temp_dir().join(format!("xenprov-fuzz-{}", std::process::id()));
        let root = top.join("root");
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::write(top.join("canary"), CANARY).unwrap();
        std::fs::write(root.join("file"), b"file").unwrap();
        std::fs::write(root.join("dir/file"), b"dir/file").unwrap();
        let links: [(&str, PathBuf); 7] = [
            ("up", "../canary".into()),
            ("abs", top.join("canary")),
            ("top", top.clone()),
            ("dir/up2", "../../canary".into()),
            ("chain", "up".into()),
            ("inside", "dir/file".into()),
            ("dir/self", root.clone()),
        ];
        for (name, target) in links {
            let _ = symlink(target, root.join(name));
        }
        Fixture {
            tree: FsTree::open_root(&root).unwrap(),
        }
    })
}

fuzz_target!(|raw: &str| {
    let Ok(path) = SafePath::from_uri_path(raw) else {
        return;
    };
    for c in path.as_path().components() {
        let Component::Normal(name) = c else {
            panic!("{raw:?} gave component {c:?}");
        };
        let name = name.as_encoded_bytes();
        assert!(!name.contains(&0) && !name.contains(&b'\\'), "{raw:?}");
        assert!(
            !name.starts_with(b".")
                || [&b".treeinfo"[..], b".discinfo", b".composeinfo", b".disk"].contains(&name),
            "{raw:?} reached hidden {name:?}"
        );
    }
    if let Ok(Node::File(source)) = fixture().tree.open(&path) {
        let mut buf = vec![0; source.meta().len.min(4096) as usize];
        if source.read_exact_at(&mut buf, 0).is_ok() {
            assert_ne!(buf, CANARY, "{raw:?} opened the canary outside the root");
        }
    }
});
