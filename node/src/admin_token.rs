//! The admin endpoint's bearer token.
//!
//! `meridian admin-token --out FILE` writes one; `meridian node --admin-token FILE` then
//! answers a request only if it carries the token — as `Authorization: Bearer TOKEN`
//! (curl, Prometheus) or as a `token=TOKEN` query parameter (a browser opening the live
//! map) — and `meridian swarm --admin-token FILE` sends it. Without a token the endpoint
//! answers anyone who reaches it, which includes `/freeze` (holding every zone for up to
//! 2 s) and the whole world's positions: the node warns at start when such an endpoint
//! listens on an address other hosts can reach.
//!
//! The file holds the token alone (64 hex digits when generated), so the same file is
//! Prometheus' `credentials_file`. Like a key file it is written with mode 0600, never
//! overwritten unless asked, and refused when group or others may read it. A token is
//! 32 to 256 characters from the URL-safe set (letters, digits, `-._~`), so it travels
//! unescaped in a header and in a query string. Comparison is by BLAKE3 digest, whose
//! equality is constant-time: the time of a refusal says nothing about the token.

use std::path::Path;

use crate::keyfile::{KeyFileError, read_secret, write_secret};

/// The shortest token accepted (128 bits as hex).
pub const TOKEN_MIN: usize = 32;
/// The longest token accepted.
pub const TOKEN_MAX: usize = 256;

/// An admin token: what a client sends, and what a node compares against.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    text: String,
    digest: blake3::Hash,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// A token from its text: `Err` says why it is not one.
    pub fn new(text: &str) -> Result<AdminToken, String> {
        let length = text.chars().count();
        if !(TOKEN_MIN..=TOKEN_MAX).contains(&length) {
            return Err(format!(
                "a token is {TOKEN_MIN} to {TOKEN_MAX} characters, this one {length}"
            ));
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-._~".contains(*c)))
        {
            return Err(format!(
                "a token holds letters, digits and -._~ only, this one {c:?}"
            ));
        }
        Ok(AdminToken {
            text: text.to_owned(),
            digest: blake3::hash(text.as_bytes()),
        })
    }

    /// A fresh token: 32 bytes of the operating system's randomness, as hex.
    pub fn generate() -> Result<AdminToken, KeyFileError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| KeyFileError::Random(e.to_string()))?;
        Ok(AdminToken::new(&hex::encode(bytes)).expect("64 hex digits are a token"))
    }

    /// Reads a token file (surrounding whitespace ignored).
    pub fn read(path: &Path) -> Result<AdminToken, KeyFileError> {
        let text = read_secret(path)?;
        AdminToken::new(text.trim()).map_err(|what| KeyFileError::Corrupt {
            path: path.to_owned(),
            what,
        })
    }

    /// Writes the token to `path`, mode 0600 (kept if it exists, unless `force`).
    pub fn write(&self, path: &Path, force: bool) -> Result<(), KeyFileError> {
        write_secret(path, &format!("{}\n", self.text), force)
    }

    /// The token's text, to send.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether `presented` is this token (constant-time in its content).
    pub fn admits(&self, presented: &str) -> bool {
        blake3::hash(presented.as_bytes()) == self.digest
    }
}

/// The token a request presents: the `Authorization: Bearer …` header's, else the
/// `token` query parameter's.
pub fn presented<'a>(
    mut headers: impl Iterator<Item = (&'a str, &'a str)>,
    url: &'a str,
) -> Option<&'a str> {
    let bearer = headers.find_map(|(field, value)| {
        let (scheme, credentials) = value.trim().split_once(' ')?;
        (field.eq_ignore_ascii_case("authorization") && scheme.eq_ignore_ascii_case("bearer"))
            .then(|| credentials.trim())
    });
    bearer.or_else(|| {
        let (_, query) = url.split_once('?')?;
        query.split('&').find_map(|kv| kv.strip_prefix("token="))
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn tokens_are_url_safe_and_long_enough() {
        let good = "a".repeat(TOKEN_MIN);
        assert!(AdminToken::new(&good).is_ok());
        assert!(AdminToken::new(&"a".repeat(TOKEN_MIN - 1)).is_err());
        assert!(AdminToken::new(&"a".repeat(TOKEN_MAX + 1)).is_err());
        for bad in ['&', ' ', '%', '=', 'é', '\n'] {
            let text = format!("{}{bad}", &good[1..]);
            let message = AdminToken::new(&text).unwrap_err();
            assert!(message.contains("letters, digits"), "{bad:?}: {message}");
        }
        let token = AdminToken::generate().unwrap();
        assert_eq!(token.text().len(), 64);
        assert!(token.admits(token.text()));
        assert!(!token.admits(&token.text()[1..]));
        assert!(!token.admits(""));
        assert_ne!(token, AdminToken::generate().unwrap());
        assert_eq!(format!("{token:?}"), "AdminToken(…)");
    }

    #[test]
    fn a_request_presents_a_bearer_header_or_a_query_parameter() {
        let none = std::iter::empty();
        assert_eq!(presented(none.clone(), "/status"), None);
        assert_eq!(presented(none.clone(), "/map?token=abc"), Some("abc"));
        assert_eq!(
            presented(none.clone(), "/map/stream?view=1,2,3,4&token=abc"),
            Some("abc")
        );
        assert_eq!(presented(none, "/map?tokens=abc"), None);
        let header = [("Host", "x"), ("authorization", "bearer  abc ")];
        assert_eq!(presented(header.into_iter(), "/status"), Some("abc"));
        // The header wins over the query.
        let header = [("Authorization", "Bearer abc")];
        assert_eq!(presented(header.into_iter(), "/s?token=def"), Some("abc"));
        // Another scheme is no bearer token.
        let basic = [("Authorization", "Basic abc")];
        assert_eq!(presented(basic.into_iter(), "/status"), None);
    }

    #[test]
    fn token_files_are_secret_and_checked() {
        let path =
            std::env::temp_dir().join(format!("meridian-admin-token-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let token = AdminToken::generate().unwrap();
        token.write(&path, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(AdminToken::read(&path).unwrap(), token);
        assert!(matches!(
            token.write(&path, false),
            Err(KeyFileError::Exists { .. })
        ));
        std::fs::write(&path, "short\n").unwrap();
        let message = AdminToken::read(&path).unwrap_err().to_string();
        assert!(message.contains("32 to 256 characters"), "{message}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let message = AdminToken::read(&path).unwrap_err().to_string();
        assert!(message.contains("chmod 600"), "{message}");
        std::fs::remove_file(&path).unwrap();
    }
}
