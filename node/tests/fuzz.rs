//! Fuzz targets for the node's text inputs (bolero; see meridian-core's `tests/fuzz.rs` for
//! how they run): world files and key files. They must refuse bad text with an error,
//! never panic.

use meridian_node::{keyfile, world_file};

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
