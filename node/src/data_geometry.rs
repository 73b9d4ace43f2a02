//! The world geometry a data directory's zones were written under.
//!
//! A zone's files say which world and zone they belong to (`world_id`, zone number) and
//! the node refuses another world's. But a world file edited in place — other bounds,
//! another grid of zones, the same id — passed that check: its zones restored the old
//! files, entities landed in zones that no longer cover them (handed off at once, or
//! outside the world), and the files of zones the new grid lacks were never read — their
//! entities silently gone. So the node records the geometry its zones depend on (world
//! bounds and columns × rows) in the data directory, [`FILE`], and refuses to start on a
//! directory recorded under another. Written once the zones have opened, so a start with
//! `--fresh` (which moves the zones' files aside) records the new geometry, and a
//! directory of a build before the record gets one at its next start.
//!
//! The record names the world's game too (`[game] name`), when it has one: a zone's files
//! hold its game's state record for every entity, which another game would read as its
//! own and a node without a game would drop — so a directory written under one game is
//! refused under another or under none, and one written without a game under a game. (A world
//! without a game records what it did before, so its directories keep matching.)

use meridian_io::store::DataDir;

use crate::world_file::WorldSpec;

/// The record's file name in the data directory.
pub const FILE: &str = "world-geometry";

/// What the data depends on in the world file besides its id (which every zone file
/// carries and the restore checks, naming the files), as the record holds it.
pub fn of(spec: &WorldSpec) -> String {
    let c = spec.world.config();
    let b = c.bounds;
    let mut record = format!(
        "bounds {} {} {} {}\nzones {} x {}\n",
        b.x_min, b.y_min, b.x_max, b.y_max, c.zones_x, c.zones_y
    );
    // The game's name, not its settings: they change how it plays, not what its records hold.
    if let Some(game) = &spec.game {
        record.push_str(&format!("game {}\n", game.name));
    }
    record
}

/// Before the zones open: refuses `dir` if it records another geometry (unless `fresh`:
/// the zones start empty). Returns whether the record is to be written once they opened
/// ([`record`]): missing, or `fresh`.
pub fn check(dir: &DataDir, spec: &WorldSpec, fresh: bool) -> anyhow::Result<bool> {
    let want = of(spec);
    let held = dir.read_file(FILE)?;
    match held {
        Some(held) if held == want.as_bytes() => Ok(fresh),
        Some(_) if fresh => Ok(true),
        Some(held) => anyhow::bail!(
            "data directory {}: its zones were written under another layout or game of the \
             world; it holds ({}) where the world file says ({}). Restoring them would put \
             entities in zones that no longer cover them, drop the zones the new layout \
             lacks, or read one game's state records as another's. Start with the world \
             file the data was written under, or start empty with --fresh (the zones' files \
             are moved aside) or another --data directory.",
            dir.path().display(),
            one_line(&String::from_utf8_lossy(&held)),
            one_line(&want),
        ),
        None => Ok(true),
    }
}

/// Records this world's geometry in `dir` (after the zones opened: see [`check`]).
pub fn record(dir: &DataDir, spec: &WorldSpec) -> anyhow::Result<()> {
    dir.put_file(FILE, of(spec).as_bytes())?;
    Ok(())
}

fn one_line(record: &str) -> String {
    record.trim_end().replace('\n', ", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world_file::parse_spec;

    fn spec(bounds: &str, columns: u32) -> WorldSpec {
        parse_spec(&format!(
            "[world]\nid = 3\nbounds = {{ {bounds} }}\ntick_rate_hz = 30\nmargin_m = 4.0\n\
             aura_m = 16.0\ncell_size_m = 16.0\n\n[zones]\ncolumns = {columns}\nrows = 1\n"
        ))
        .unwrap()
    }

    /// A new directory gets the record; the same geometry (however the file spells its
    /// numbers) passes; other bounds or another grid are refused, naming both; `fresh`
    /// passes and re-records.
    #[test]
    fn a_directory_is_held_to_the_geometry_it_was_written_under() {
        let path = std::env::temp_dir().join(format!("meridian-geometry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let dir = DataDir::open(&path).unwrap();
        let first = spec("x_min = 0.0, y_min = 0.0, x_max = 512.0, y_max = 256.0", 2);
        assert!(check(&dir, &first, false).unwrap(), "new: to record");
        record(&dir, &first).unwrap();
        let same = spec("x_min = 0, y_min = 0.0, x_max = 512, y_max = 256.00", 2);
        assert!(!check(&dir, &same, false).unwrap(), "same: nothing to do");
        for other in [
            spec("x_min = 0.0, y_min = 0.0, x_max = 1024.0, y_max = 256.0", 2),
            spec("x_min = 0.0, y_min = 0.0, x_max = 512.0, y_max = 256.0", 4),
        ] {
            let error = check(&dir, &other, false).unwrap_err().to_string();
            assert!(
                error.contains("bounds 0 0 512 256, zones 2 x 1") && error.contains("--fresh"),
                "{error}"
            );
            assert!(check(&dir, &other, true).unwrap(), "fresh: to record");
        }
        std::fs::remove_dir_all(&path).unwrap();
    }

    /// A directory written without a game keeps its record (a world without one matches
    /// it as before) and is refused under a game; one written under a game is refused
    /// under another and under none, naming the games.
    #[test]
    fn a_directory_is_held_to_the_game_it_was_written_under() {
        let path =
            std::env::temp_dir().join(format!("meridian-geometry-game-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let dir = DataDir::open(&path).unwrap();
        let bounds = "x_min = 0.0, y_min = 0.0, x_max = 512.0, y_max = 256.0";
        let none = spec(bounds, 2);
        let game = |name: &str| {
            let mut s = spec(bounds, 2);
            s.game = Some(crate::world_file::GameSpec {
                name: name.to_owned(),
                settings: toml::Table::new(),
            });
            s
        };
        assert_eq!(
            of(&none),
            "bounds 0 0 512 256\nzones 2 x 1\n",
            "as before games"
        );
        record(&dir, &none).unwrap();
        let error = check(&dir, &game("tag"), false).unwrap_err().to_string();
        assert!(
            error.contains("game tag") && error.contains("--fresh"),
            "{error}"
        );
        assert!(check(&dir, &game("tag"), true).unwrap());
        record(&dir, &game("tag")).unwrap();
        assert!(!check(&dir, &game("tag"), false).unwrap());
        for other in [game("chess"), none] {
            let error = check(&dir, &other, false).unwrap_err().to_string();
            assert!(error.contains("zones 2 x 1, game tag)"), "{error}");
        }
        std::fs::remove_dir_all(&path).unwrap();
    }
}
