//! Key-pair files: `meridian keygen` writes them, every command that signs reads them.
//!
//! The format is a small TOML file, so an operator can read the public key and diff two
//! files:
//!
//! ```toml
//! # Meridian Ed25519 key pair. Keep this file secret.
//! public_key = "<64 hex digits>"
//! secret_key = "<64 hex digits>"
//! ```
//!
//! Files are created with mode 0600 and never overwritten unless asked. On load, the
//! public key must match the one derived from the secret (a file edited by hand or
//! truncated is reported as corrupt, not silently used), and a file readable by group or
//! others is refused with the command that fixes it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use serde::Deserialize;

/// Why a key file could not be written or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file {path} already exists; pass --force to overwrite it")]
    Exists { path: PathBuf },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("key file {path} is corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("cannot get randomness from the operating system: {0}")]
    Random(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    public_key: String,
    secret_key: String,
}

/// A fresh key pair from the operating system's randomness.
pub fn generate() -> Result<SigningKey, KeyFileError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyFileError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `key` to `path` with mode 0600.
pub fn write(path: &Path, key: &SigningKey, force: bool) -> Result<(), KeyFileError> {
    let text = format!(
        "# Meridian Ed25519 key pair. Keep this file secret.\npublic_key = \"{}\"\nsecret_key = \"{}\"\n",
        hex::encode(key.verifying_key().as_bytes()),
        hex::encode(key.as_bytes()),
    );
    write_secret(path, &text, force)
}

/// Writes `text` to a file only its owner may read (mode 0600, also when `force`
/// overwrites an existing file), synced; an existing file is kept unless `force`.
pub(crate) fn write_secret(path: &Path, text: &str, force: bool) -> Result<(), KeyFileError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let write_error = |source| KeyFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists {
                path: path.to_owned(),
            }
        } else {
            write_error(source)
        }
    })?;
    // `mode` applies only on creation; an overwritten file is tightened explicitly.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(write_error)?;
    file.write_all(text.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    Ok(())
}

/// Reads and checks a key-pair file.
pub fn read(path: &Path) -> Result<SigningKey, KeyFileError> {
    let text = read_secret(path)?;
    parse(&text).map_err(|what| KeyFileError::Corrupt {
        path: path.to_owned(),
        what,
    })
}

/// Reads a file that must be secret: refused if group or others may read it.
pub(crate) fn read_secret(path: &Path) -> Result<String, KeyFileError> {
    let read_error = |source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    std::fs::read_to_string(path).map_err(read_error)
}

fn parse(text: &str) -> Result<SigningKey, String> {
    let file: KeyFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    let secret = decode_32(&file.secret_key).map_err(|e| format!("secret_key: {e}"))?;
    let public = decode_32(&file.public_key).map_err(|e| format!("public_key: {e}"))?;
    let key = SigningKey::from_bytes(&secret);
    if key.verifying_key().as_bytes() != &public {
        return Err("public_key does not belong to secret_key".to_owned());
    }
    Ok(key)
}

/// Decodes 64 hex digits into 32 bytes.
pub fn decode_32(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex ({e})"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("expected 32 bytes (64 hex digits), found {}", b.len()))
}

/// A connect token for `client_key`, signed by the world's `auth` key (docs/protocol.md).
pub use meridian_client::token::issue_token;

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("meridian-keyfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    #[test]
    fn issued_tokens_verify_with_the_core_checks() {
        use meridian_core::witness::{BatchVerifier, KeyRegistry, Verdict, precheck_token};
        let auth = generate().unwrap();
        let client = generate().unwrap();
        let token = issue_token(&auth, client.verifying_key().to_bytes(), 5, 9, 2_000, 1);
        let bytes = bytemuck::bytes_of(&token);
        let parsed = meridian_layouts::witness::ConnectToken::parse(bytes).unwrap();
        let mut keys = KeyRegistry::new(1);
        keys.set_auth(&auth.verifying_key().to_bytes()).unwrap();
        let mut verifier = BatchVerifier::new(1, 256);
        let (index, key) = precheck_token(parsed, 5, 1_000, &keys, &mut verifier)
            .unwrap()
            .unwrap();
        verifier.verify();
        assert_eq!(verifier.verdict(index), Verdict::Accepted);
        assert_eq!(key, client.verifying_key());
    }

    #[test]
    fn round_trip_with_safe_permissions() {
        let path = temp("round-trip");
        let key = generate().unwrap();
        write(&path, &key, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&path).unwrap().to_bytes(), key.to_bytes());
        // No silent overwrite.
        assert!(matches!(
            write(&path, &key, false),
            Err(KeyFileError::Exists { .. })
        ));
        write(&path, &generate().unwrap(), true).unwrap();
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn corrupt_and_unsafe_files_are_refused_with_reasons() {
        let key = generate().unwrap();
        let path = temp("corrupt");
        write(&path, &key, false).unwrap();
        let good = std::fs::read_to_string(&path).unwrap();
        let cases = [
            (good.replace("secret_key", "secret"), "secret"),
            (
                good.replace(&hex::encode(key.as_bytes()), &"zz".repeat(32)),
                "not hex",
            ),
            (
                good.replace(&hex::encode(key.as_bytes()), "abcd"),
                "expected 32 bytes",
            ),
            (
                good.replace(
                    &hex::encode(key.verifying_key().as_bytes()),
                    &"ab".repeat(32),
                ),
                "does not belong",
            ),
            (good[..good.len() - 20].to_owned(), "corrupt"),
        ];
        for (text, expected) in cases {
            std::fs::write(&path, text).unwrap();
            let message = read(&path).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let message = read(&path).unwrap_err().to_string();
        assert!(message.contains("chmod 600"), "{message}");
        std::fs::remove_file(&path).unwrap();
        let message = read(&path).unwrap_err().to_string();
        assert!(message.contains("cannot read key file"), "{message}");
    }
}
