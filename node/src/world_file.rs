//! World files: TOML in, a checked [`World`] out.
//!
//! The file's schema mirrors [`WorldConfig`]. Unknown keys are errors (a typo must not
//! silently fall back to a default), and every error names the file and the field.

use std::path::{Path, PathBuf};

use meridian_core::world::{Rect, World, WorldConfig, WorldError};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorldFile {
    world: WorldSection,
    zones: ZonesSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorldSection {
    bounds: Bounds,
    tick_rate_hz: u32,
    margin_m: f32,
    aura_m: f32,
    cell_size_m: f32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bounds {
    x_min: f32,
    y_min: f32,
    x_max: f32,
    y_max: f32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZonesSection {
    columns: u32,
    rows: u32,
}

/// Why a world file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WorldFileError {
    #[error("cannot read world file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("world file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("world file {path}: [world] {source}")]
    Invalid { path: PathBuf, source: WorldError },
}

/// Reads, parses and checks a world file.
pub fn load(path: &Path) -> Result<World, WorldFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| WorldFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|e| match e {
        ParseError::Toml(source) => WorldFileError::Parse {
            path: path.to_owned(),
            source,
        },
        ParseError::World(source) => WorldFileError::Invalid {
            path: path.to_owned(),
            source,
        },
    })
}

#[derive(Debug)]
enum ParseError {
    Toml(Box<toml::de::Error>),
    World(WorldError),
}

fn parse(text: &str) -> Result<World, ParseError> {
    let file: WorldFile = toml::from_str(text).map_err(|e| ParseError::Toml(Box::new(e)))?;
    let b = file.world.bounds;
    World::new(WorldConfig {
        bounds: Rect::new(b.x_min, b.y_min, b.x_max, b.y_max),
        zones_x: file.zones.columns,
        zones_y: file.zones.rows,
        margin_m: file.world.margin_m,
        aura_m: file.world.aura_m,
        tick_rate_hz: file.world.tick_rate_hz,
        cell_size_m: file.world.cell_size_m,
    })
    .map_err(ParseError::World)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../worlds/default.toml");

    #[test]
    fn shipped_worlds_load() {
        let world = parse(DEFAULT).unwrap();
        assert_eq!(world.zone_count(), 2);
        let grid = parse(include_str!("../worlds/grid-2x2.toml")).unwrap();
        assert_eq!(grid.zone_count(), 4);
    }

    #[test]
    fn typo_is_an_error_that_names_the_key() {
        let text = DEFAULT.replace("aura_m", "aura");
        let Err(ParseError::Toml(e)) = parse(&text) else {
            panic!("accepted a misspelt key")
        };
        assert!(e.to_string().contains("aura"), "{e}");
    }

    #[test]
    fn bad_value_names_the_field() {
        let text = DEFAULT.replace("aura_m = 32.0", "aura_m = 4.0");
        let Err(ParseError::World(e)) = parse(&text) else {
            panic!("accepted an aura smaller than the margin")
        };
        assert!(e.to_string().starts_with("aura_m"), "{e}");
    }

    #[test]
    fn missing_file_says_which() {
        let err = load(Path::new("/nonexistent/world.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/world.toml"), "{err}");
    }
}
