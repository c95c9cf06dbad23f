//! Password hashes: making them (`hash-password`) and checking that what an answer file holds is a
//! hash and not a password. Plaintext never leaves this module: callers get the hash only.

#[cfg(test)]
use sha_crypt::PasswordVerifier;
use sha_crypt::{PasswordHasher, ShaCrypt};
use sha2::Sha512;

/// GRUB's own defaults (`grub-mkpasswd-pbkdf2`): PBKDF2-HMAC-SHA512, 10000 rounds, 64-byte salt
/// and hash, upper-case hex.
const GRUB_ROUNDS: u32 = 10_000;

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the kernel's random source is unavailable");
    b
}

/// A `$6$` (SHA-512 crypt) hash, as glibc, musl and libxcrypt all accept.
pub fn sha512_crypt(password: &str) -> String {
    // 12 random bytes become the 16-character salt crypt(3) allows.
    sha512_crypt_with_salt(password, &random::<12>())
}

fn sha512_crypt_with_salt(password: &str, salt: &[u8]) -> String {
    ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), salt)
        .expect("SHA-512 crypt accepts any salt of 12 bytes")
        .to_string()
}

pub fn grub_pbkdf2(password: &str) -> String {
    grub_pbkdf2_with_salt(password, &random::<64>(), GRUB_ROUNDS)
}

fn grub_pbkdf2_with_salt(password: &str, salt: &[u8], rounds: u32) -> String {
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, rounds, &mut out);
    format!(
        "grub.pbkdf2.sha512.{rounds}.{}.{}",
        hex::encode_upper(salt),
        hex::encode_upper(out)
    )
}

const CRYPT_CHARS: &str = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn crypt_field(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| CRYPT_CHARS.contains(c))
}

/// Checks that `s` is a crypt(3) hash that Debian's libxcrypt verifies: `$6$`, `$5$` or yescrypt
/// `$y$`; or `!` for a locked account. Anything else is refused, most of all a plaintext password.
pub fn check_crypt_hash(s: &str) -> Result<(), String> {
    const HOW: &str = "make one with `xenprov-install hash-password` or `openssl passwd -6`";
    if s == "!" || s == "*" {
        return Ok(());
    }
    if !s.starts_with('$') {
        return Err(format!(
            "this is not a password hash (plaintext passwords are refused); give a $6$ or $y$ hash: {HOW}"
        ));
    }
    let parts: Vec<&str> = s.split('$').collect();
    let ok = match parts.as_slice() {
        ["", id @ ("5" | "6"), rest @ ..] => {
            let (rounds_ok, rest) = match rest {
                [r, tail @ ..] if r.starts_with("rounds=") => (
                    r[7..]
                        .parse::<u32>()
                        .is_ok_and(|n| (1000..=999_999_999).contains(&n)),
                    tail,
                ),
                _ => (true, rest),
            };
            let len = if *id == "6" { 86 } else { 43 };
            rounds_ok
                && matches!(rest, [salt, hash] if salt.len() <= 16 && crypt_field(salt) && hash.len() == len && crypt_field(hash))
        }
        ["", "y", params, salt, hash] => {
            crypt_field(params) && crypt_field(salt) && hash.len() == 43 && crypt_field(hash)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        // Only the first characters are shown (a hash is half a secret); counted in characters,
        // not bytes, so that text which is not ASCII cannot split one.
        let start: String = s.chars().take(4).collect();
        Err(format!(
            "`{start}…` is not a well-formed $6$, $5$ or $y$ hash; {HOW}"
        ))
    }
}

/// Checks a GRUB `password_pbkdf2` hash: `grub.pbkdf2.sha512.ROUNDS.SALT.HASH` (hex).
pub fn check_grub_hash(s: &str) -> Result<(), String> {
    const HOW: &str =
        "make one with `xenprov-install hash-password --grub` or `grub-mkpasswd-pbkdf2`";
    let hex_ok = |h: &str| {
        !h.is_empty() && h.len().is_multiple_of(2) && h.chars().all(|c| c.is_ascii_hexdigit())
    };
    match s.split('.').collect::<Vec<_>>().as_slice() {
        ["grub", "pbkdf2", "sha512", rounds, salt, hash]
            if rounds.parse::<u32>().is_ok_and(|r| r > 0) && hex_ok(salt) && hex_ok(hash) =>
        {
            Ok(())
        }
        _ if !s.starts_with("grub.") => Err(format!(
            "this is not a GRUB password hash (plaintext passwords are refused); {HOW}"
        )),
        _ => Err(format!(
            "not a well-formed grub.pbkdf2.sha512.ROUNDS.SALT.HASH; {HOW}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_crypt_matches_glibc_reference() {
        // The reference vector from Ulrich Drepper's SHA-crypt specification.
        let reference = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
        let parsed = sha_crypt::PasswordHashRef::new(reference).unwrap();
        assert!(
            ShaCrypt::SHA512
                .verify_password(b"Hello world!", parsed)
                .is_ok()
        );
        assert!(
            ShaCrypt::SHA512
                .verify_password(b"Hello world?", parsed)
                .is_err()
        );
        assert!(check_crypt_hash(reference).is_ok());
        let mine = sha512_crypt("pw");
        assert!(mine.starts_with("$6$"));
        assert!(check_crypt_hash(&mine).is_ok(), "{mine}");
        assert_ne!(mine, sha512_crypt("pw"), "salts must differ");
        assert_eq!(
            sha512_crypt_with_salt("pw", b"0123456789ab"),
            sha512_crypt_with_salt("pw", b"0123456789ab")
        );
    }

    #[test]
    fn grub_hash_matches_pbkdf2_reference() {
        // RFC 6070-style check for PBKDF2-HMAC-SHA512 ("password", "salt", 1 round).
        let h = grub_pbkdf2_with_salt("password", b"salt", 1);
        assert!(h.ends_with(".73616C74.867F70CF1ADE02CFF3752599A3A53DC4AF34C7A669815AE5D513554E1C8CF252C02D470A285A0501BAD999BFE943C08F050235D7D68B1DA55E63F73B60A57FCE"), "{h}");
        assert!(check_grub_hash(&grub_pbkdf2("x")).is_ok());
    }

    #[test]
    fn plaintext_and_malformed_hashes_are_refused() {
        // Whatever the mistake, the error says which command makes a hash.
        for bad in ["hunter2", "$ecret", "$6$salt$short", "$1$abc$def"] {
            let e = check_crypt_hash(bad).unwrap_err();
            assert!(e.contains("`xenprov-install hash-password`"), "{bad}: {e}");
        }
        for bad in ["hunter2", "grub.hunter2"] {
            let e = check_grub_hash(bad).unwrap_err();
            assert!(
                e.contains("`xenprov-install hash-password --grub`"),
                "{bad}: {e}"
            );
        }
        let e = check_crypt_hash("hunter2").unwrap_err();
        assert!(e.contains("plaintext"), "{e}");
        assert!(check_crypt_hash("$6$salt$short").is_err());
        assert!(check_crypt_hash("$1$abc$def").is_err());
        assert!(check_crypt_hash("!").is_ok());
        let e = check_crypt_hash("$6$€€€").unwrap_err();
        assert!(e.starts_with("`$6$€…` is not a well-formed"), "{e}");
        let e = check_grub_hash("hunter2").unwrap_err();
        assert!(e.contains("plaintext"), "{e}");
        assert!(check_grub_hash("grub.pbkdf2.sha512.10000.XYZ.00").is_err());
    }
}
