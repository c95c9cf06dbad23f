//! OpenPGP signatures checked by `gpgv` (Debian package `gpgv`), the verifier apt and debootstrap use,
//! run as a subprocess against one keyring. A maintained verifier beats a home-grown one, and gpgv needs
//! no build time: sequoia-openpgp would add minutes to every build on two cores.
//!
//! A signature counts only when gpgv exits 0 *and* reports `VALIDSIG` on its status channel. For a
//! clearsigned file (`InRelease`) the text used afterwards is the one gpgv writes out — what the signature
//! covers — never our own parse of the armour, so text outside the signed part cannot slip in.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug)]
pub struct SignatureError(String);

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SignatureError {}

/// Checks the clearsigned `signed` against `keyring` and returns the signed text.
pub fn verify_clearsigned(keyring: &Path, signed: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let dir = scratch()?;
    let input = dir.path().join("signed");
    let output = dir.path().join("text");
    write(&input, signed)?;
    gpgv(
        keyring,
        dir.path(),
        &["--output".as_ref(), output.as_os_str(), input.as_os_str()],
    )?;
    std::fs::read(&output).map_err(|e| SignatureError(format!("reading gpgv's output: {e}")))
}

/// Checks the detached `signature` of `data` against `keyring`.
pub fn verify_detached(
    keyring: &Path,
    data: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let dir = scratch()?;
    let (sig, file) = (dir.path().join("sig"), dir.path().join("data"));
    write(&sig, signature)?;
    write(&file, data)?;
    gpgv(keyring, dir.path(), &[sig.as_os_str(), file.as_os_str()])
}

fn scratch() -> Result<tempfile::TempDir, SignatureError> {
    tempfile::Builder::new()
        .prefix("xenprov-gpgv")
        .tempdir()
        .map_err(|e| SignatureError(format!("creating a directory for gpgv: {e}")))
}

fn write(path: &PathBuf, data: &[u8]) -> Result<(), SignatureError> {
    std::fs::write(path, data)
        .map_err(|e| SignatureError(format!("writing {}: {e}", path.display())))
}

fn gpgv(keyring: &Path, home: &Path, args: &[&std::ffi::OsStr]) -> Result<(), SignatureError> {
    // gpgv looks a keyring without a slash up in its home directory: always pass an absolute path.
    let keyring = keyring
        .canonicalize()
        .map_err(|e| SignatureError(format!("keyring {}: {e}", keyring.display())))?;
    let out = Command::new("gpgv")
        .env("GNUPGHOME", home)
        .env("LC_ALL", "C")
        .arg("--status-fd=1")
        .arg("--keyring")
        .arg(&keyring)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SignatureError(format!("running gpgv (Debian package gpgv): {e}")))?;
    let status = String::from_utf8_lossy(&out.stdout);
    let valid = status.lines().any(|l| l.starts_with("[GNUPG:] VALIDSIG "));
    if out.status.success() && valid {
        return Ok(());
    }
    let said: Vec<&str> = std::str::from_utf8(&out.stderr)
        .unwrap_or("")
        .lines()
        .map(|l| l.trim_start_matches("gpgv: ").trim())
        .filter(|l| !l.is_empty())
        .collect();
    Err(SignatureError(format!(
        "bad or unknown signature (keyring {}): {}",
        keyring.display(),
        if said.is_empty() {
            format!("gpgv exited with {}", out.status)
        } else {
            said.join("; ")
        }
    )))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::process::Command;

    /// A throw-away GnuPG home with one signing key; its public keyring is at `keyring`.
    pub struct TestKey {
        pub home: tempfile::TempDir,
        pub keyring: PathBuf,
    }

    impl TestKey {
        pub fn generate() -> TestKey {
            let home = tempfile::tempdir().unwrap();
            let gpg = |args: &[&str]| {
                let out = Command::new("gpg")
                    .env("GNUPGHOME", home.path())
                    .args([
                        "--batch",
                        "--quiet",
                        "--pinentry-mode",
                        "loopback",
                        "--passphrase",
                        "",
                    ])
                    .args(args)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "gpg {args:?}: {out:?}");
                out.stdout
            };
            gpg(&[
                "--quick-gen-key",
                "xenprov test <t@invalid>",
                "ed25519",
                "sign",
                "never",
            ]);
            let keyring = home.path().join("pub.gpg");
            std::fs::write(&keyring, gpg(&["--export"])).unwrap();
            TestKey { home, keyring }
        }

        pub fn sign(&self, args: &[&str], data: &[u8]) -> Vec<u8> {
            let input = self.home.path().join("input");
            std::fs::write(&input, data).unwrap();
            let out = Command::new("gpg")
                .env("GNUPGHOME", self.home.path())
                .args(["--batch", "--quiet", "--yes", "--output", "-"])
                .args(args)
                .arg(&input)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            out.stdout
        }
    }

    #[test]
    fn clearsigned_and_detached() {
        let key = TestKey::generate();
        let text = b"Origin: test\nSuite: stable\n";
        let signed = key.sign(&["--clearsign"], text);
        assert_eq!(verify_clearsigned(&key.keyring, &signed).unwrap(), text);
        let sig = key.sign(&["--detach-sign"], text);
        verify_detached(&key.keyring, text, &sig).unwrap();

        let err = verify_detached(&key.keyring, b"Origin: evil\n", &sig).unwrap_err();
        assert!(err.to_string().contains("BAD signature"), "{err}");
        // text added outside the signed part is not returned
        let mut tampered = b"Injected: yes\n".to_vec();
        tampered.extend_from_slice(&signed);
        if let Ok(out) = verify_clearsigned(&key.keyring, &tampered) {
            assert_eq!(out, text);
        }
        // a different key
        let other = TestKey::generate();
        let err = verify_clearsigned(&other.keyring, &signed).unwrap_err();
        assert!(err.to_string().contains("No public key"), "{err}");
        let err = verify_clearsigned(Path::new("/nonexistent.gpg"), &signed).unwrap_err();
        assert!(err.to_string().contains("/nonexistent.gpg"), "{err}");
    }
}
