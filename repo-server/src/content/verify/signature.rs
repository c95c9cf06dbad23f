//! OpenPGP signatures checked by `gpgv` (Debian package `gpgv`), the verifier apt and debootstrap use,
//! run as a subprocess against one keyring. A maintained verifier beats a home-grown one, and gpgv needs
//! no build time: sequoia-openpgp would add minutes to every build on two cores.
//!
//! A signature counts only when gpgv exits 0 *and* reports `VALIDSIG` on its status channel. For a
//! clearsigned file (`InRelease`) the text used afterwards is the one gpgv writes out — what the signature
//! covers — never our own parse of the armour, so text outside the signed part cannot slip in.
//!
//! gpgv reads only binary keyrings, so each check hands it a copy of the keyring as `keyring` decoded
//! and checked it, next to the files checked: an armored keyring works, and gpgv reads what was checked.

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Debug)]
pub struct SignatureError(pub(super) String);

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

fn write(path: &Path, data: &[u8]) -> Result<(), SignatureError> {
    std::fs::write(path, data)
        .map_err(|e| SignatureError(format!("writing {}: {e}", path.display())))
}

fn gpgv(keyring: &Path, home: &Path, args: &[&std::ffi::OsStr]) -> Result<(), SignatureError> {
    let binary = home.join("keyring.gpg");
    write(&binary, &super::keyring::binary(keyring)?)?;
    let out = Command::new("gpgv")
        .env("GNUPGHOME", home)
        .env("LC_ALL", "C")
        .arg("--status-fd=1")
        .arg("--keyring")
        .arg(&binary)
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
    use std::path::PathBuf;
    use std::process::Command;

    /// A throw-away GnuPG home with one signing key; its public keyring is at `keyring`.
    pub struct TestKey {
        pub home: tempfile::TempDir,
        pub keyring: PathBuf,
    }

    impl TestKey {
        pub fn generate() -> TestKey {
            let home = tempfile::tempdir().unwrap();
            let keyring = home.path().join("pub.gpg");
            let key = TestKey { home, keyring };
            key.gpg(&[
                "--quick-gen-key",
                "xenprov test <t@invalid>",
                "ed25519",
                "sign",
                "never",
            ]);
            std::fs::write(&key.keyring, key.gpg(&["--export"])).unwrap();
            key
        }

        /// What gpg writes to stdout, run on this key's home with `args`.
        pub fn gpg(&self, args: &[&str]) -> Vec<u8> {
            let out = Command::new("gpg")
                .env("GNUPGHOME", self.home.path())
                .args(["--batch", "--quiet", "--yes", "--pinentry-mode", "loopback"])
                .args(["--passphrase", "", "--output", "-"])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "gpg {args:?}: {out:?}");
            out.stdout
        }

        pub fn sign(&self, args: &[&str], data: &[u8]) -> Vec<u8> {
            let input = self.home.path().join("input");
            std::fs::write(&input, data).unwrap();
            let input = input.to_str().unwrap();
            self.gpg(&[args, &[input]].concat())
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
        // gpgv also reads a GnuPG keybox, gpg's own public keyring
        verify_detached(&key.home.path().join("pubring.kbx"), text, &sig).unwrap();

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

    #[test]
    fn armored_keyrings_verify() {
        let key = TestKey::generate();
        let other = TestKey::generate();
        let text = b"Origin: test\n";
        let (signed, sig) = (
            key.sign(&["--clearsign"], text),
            key.sign(&["--detach-sign"], text),
        );
        // an unrelated key first, then the signer's: both blocks are read
        let armored = [
            other.gpg(&["--armor", "--export"]),
            key.gpg(&["--armor", "--export"]),
        ]
        .concat();
        let keyring = key.home.path().join("keys.asc");
        std::fs::write(&keyring, armored).unwrap();
        assert_eq!(verify_clearsigned(&keyring, &signed).unwrap(), text);
        verify_detached(&keyring, text, &sig).unwrap();
        // a keyring holding no public key is refused by name, before gpgv runs
        std::fs::write(&keyring, key.gpg(&["--armor", "--export-secret-keys"])).unwrap();
        let err = verify_detached(&keyring, text, &sig)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("no OpenPGP public key in {}", keyring.display())),
            "{err}"
        );
    }
}
