//! Fuzz targets for the node's text inputs (bolero; see meridian-core's `tests/fuzz.rs` for
//! how they run): world files, key files, and what a stranger can send the admin endpoint
//! before its token is checked. They must refuse bad text with an error, never panic.

use meridian_node::{admin_token, keyfile, map, world_file};

/// Inputs per target under `cargo test`.
const INPUTS: usize = 5_000;

/// A world file: any text, and the same text after a valid world's first lines, so the
/// parser's later checks see random values too.
#[test]
fn world_files() {
    let valid =
        "[world]\nid = 1\nbounds = { x_min = 0.0, y_min = 0.0, x_max = 100.0, y_max = 100.0 }\n";
    bolero::check!()
        .with_iterations(INPUTS)
        .for_each(|bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            let _ = world_file::parse_spec(&text);
            let _ = world_file::parse_spec(&format!("{valid}{text}"));
        });
}

/// A key file's contents (64 hex digits).
#[test]
fn key_files() {
    bolero::check!()
        .with_iterations(INPUTS)
        .for_each(|bytes: &[u8]| {
            let _ = keyfile::decode_32(&String::from_utf8_lossy(bytes));
        });
}

/// An admin request as far as the node reads it itself (the HTTP framing is `tiny_http`'s):
/// the token it presents, from a header or the query, and the map's window. A token is
/// taken only as presented whole; a window only if finite and ordered.
#[test]
fn admin_requests() {
    let world = meridian_core::world::Rect::new(0.0, 0.0, 100.0, 100.0);
    bolero::check!()
        .with_iterations(INPUTS)
        .for_each(|bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            let (field, value) = text.split_once(':').unwrap_or(("Authorization", &text));
            let url = format!("/map/stream?{text}");
            let presented = admin_token::presented([(field, value)].into_iter(), &url);
            if let Some(p) = presented {
                assert!(value.contains(p) || url.contains(p), "{p:?} from nowhere");
            }
            let _ = admin_token::AdminToken::new(&text);
            // Random bytes are almost never a token: the same bytes in its alphabet, at
            // least 32 of them, are one. It admits itself, and nothing one character off.
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
            let spelt: String = bytes
                .iter()
                .chain(std::iter::repeat_n(
                    &b'0',
                    32usize.saturating_sub(bytes.len()),
                ))
                .take(256)
                .map(|&b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
                .collect();
            let token = admin_token::AdminToken::new(&spelt).expect("a token");
            assert!(token.admits(&spelt));
            assert!(!token.admits(&spelt[..spelt.len() - 1]));
            assert!(!token.admits(&format!("{spelt}0")));
            let mut changed = spelt.clone().into_bytes();
            changed[bytes.len() % spelt.len()] ^= 1;
            assert!(!token.admits(&String::from_utf8_lossy(&changed)));
            if let Ok(view) = map::parse_view(&url, world) {
                let v = [view.x_min, view.y_min, view.x_max, view.y_max];
                assert!(v.iter().all(|x| x.is_finite()), "{view:?}");
                assert!(
                    view.x_min < view.x_max && view.y_min < view.y_max,
                    "{view:?}"
                );
            }
        });
}
