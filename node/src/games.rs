//! The games a node binary can run, by the name a world file gives in `[game] name`.
//!
//! A game is Rust code linked into the node binary (docs/game.md), so the world file can
//! only choose among the games the binary was built with. The stock `meridian` knows
//! [`TAG`] (the demo's game); a studio's own binary is the same command line with its
//! games added:
//!
//! ```no_run
//! use meridian_node::games::Games;
//! use meridian_node::run::GamePlan;
//! use meridian_node::world_file::WorldSpec;
//!
//! /// The game's plan for the world the node starts with, from its `[game.settings]`:
//! /// `GamePlan { make, rewind }`, `make` giving each zone its game (here the stock tag's,
//! /// to stand in for yours).
//! fn my_game(spec: &WorldSpec) -> anyhow::Result<GamePlan> {
//!     meridian_node::games::tag_plan(spec)
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     meridian_node::cli::main(Games::stock().with("my-game", my_game))
//! }
//! ```
//!
//! Every node of a mesh must run the same game (a zone's standby takes it over with the
//! state records the game wrote): the name is one of the terms the nodes' world digests
//! cover, and a data directory records it with its geometry (`crate::data_geometry`).

use std::sync::Arc;

use crate::run::GamePlan;
use crate::world_file::WorldSpec;

/// The demo's game ([`crate::tag`]), in every stock binary.
pub const TAG: &str = "tag";

/// Makes a world's game plan: the zones' game and how far back it rewinds, from the
/// world's `[game.settings]` (an error names a setting it refuses). Cheap: `meridian
/// check` calls it to check the settings; the work of a zone's game is in `make`.
type MakePlan = Box<dyn Fn(&WorldSpec) -> anyhow::Result<GamePlan> + Send + Sync>;

/// The games a binary knows, by name.
pub struct Games {
    known: Vec<(String, MakePlan)>,
}

impl std::fmt::Debug for Games {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Games {
    /// No game at all: a world file naming one is refused.
    pub fn none() -> Games {
        Games { known: Vec::new() }
    }

    /// The stock binary's: [`TAG`].
    pub fn stock() -> Games {
        Games::none().with(TAG, tag_plan)
    }

    /// These games and `name`, made by `plan` for the world it is started with (a game
    /// of that name already known is replaced). `plan` reads the world's `[game.settings]`
    /// and refuses, naming it, one it does not take; it is cheap (`meridian check` calls
    /// it): a zone's game is made by the plan's `make`.
    pub fn with(
        mut self,
        name: &str,
        plan: impl Fn(&WorldSpec) -> anyhow::Result<GamePlan> + Send + Sync + 'static,
    ) -> Games {
        self.known.retain(|(known, _)| known != name);
        self.known.push((name.to_owned(), Box::new(plan)));
        self
    }

    /// The names known, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.known.iter().map(|(name, _)| name.as_str())
    }

    /// The game `spec` names, planned for it; `None` when it names none. An error naming
    /// the games this binary knows when it names another, or the setting its plan
    /// refused.
    pub fn plan(&self, spec: &WorldSpec) -> anyhow::Result<Option<GamePlan>> {
        let Some(game) = &spec.game else {
            return Ok(None);
        };
        let name = game.name.as_str();
        match self.known.iter().find(|(known, _)| known == name) {
            Some((_, plan)) => plan(spec)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("[game.settings] of {name:?}: {e}")),
            None => anyhow::bail!(
                "[game] name = {name:?}: this binary knows {}; a game is Rust code linked \
                 into the node binary — build your own (docs/game.md, \"Your own node \
                 binary\") or name one of these",
                self.known_list()
            ),
        }
    }

    fn known_list(&self) -> String {
        let names: Vec<String> = self.names().map(|n| format!("{n:?}")).collect();
        match names.len() {
            0 => "no game".to_owned(),
            _ => names.join(", "),
        }
    }
}

/// Tag's plan: shots judged up to `rewind_ms` back (default 250, at most 1,000) over a
/// second of history, one player in `it_every` (default [`crate::tag::IT_EVERY`]) starting
/// out "it"; no entity faster than the world's clients and NPCs. Any other setting is
/// refused.
pub fn tag_plan(spec: &WorldSpec) -> anyhow::Result<GamePlan> {
    let settings = spec.game.as_ref().map(|g| &g.settings);
    let mut it_every = i64::from(crate::tag::IT_EVERY);
    let mut rewind_ms = 250;
    for (key, value) in settings.into_iter().flatten() {
        let (slot, range) = match key.as_str() {
            "it_every" => (&mut it_every, 1..=1_000),
            "rewind_ms" => (&mut rewind_ms, 0..=1_000),
            _ => anyhow::bail!("{key}: tag takes it_every and rewind_ms"),
        };
        match value.as_integer() {
            Some(n) if range.contains(&n) => *slot = n,
            _ => anyhow::bail!(
                "{key}: an integer in {}..={} (got {value})",
                range.start(),
                range.end()
            ),
        }
    }
    let fastest = spec
        .clients
        .map_or(0.0, |c| c.speed_mps)
        .max(spec.npcs.map_or(0.0, |n| n.speed_mps));
    let hz = spec.world.config().tick_rate_hz;
    let it_every = it_every as u32;
    Ok(GamePlan {
        make: Arc::new(move |_| Box::new(crate::tag::Tag::new(fastest, it_every)) as Box<_>),
        rewind: Some((hz as usize, rewind_ms as f64 / 1_000.0 * f64::from(hz))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world_file::parse_spec;

    const DEFAULT: &str = include_str!("../worlds/default.toml");

    /// The stock games make tag for a world naming it, nothing for a world naming none,
    /// and refuse another name, listing what they know; a studio's game is found by its
    /// name and replaces a stock one of the same name.
    #[test]
    fn a_world_gets_the_game_it_names_or_a_list_of_the_known_ones() {
        let spec = |game: &str| parse_spec(&format!("{DEFAULT}\n[game]\nname = \"{game}\"\n"));
        let stock = Games::stock();
        assert!(stock.plan(&parse_spec(DEFAULT).unwrap()).unwrap().is_none());
        let tag = stock.plan(&spec("tag").unwrap()).unwrap().expect("tag");
        // The default world ticks at 30 Hz: a second of history, 250 ms back at most.
        assert_eq!(tag.rewind, Some((30, 7.5)));
        let e = stock.plan(&spec("chess").unwrap()).unwrap_err().to_string();
        assert!(
            e.contains("\"chess\"") && e.contains("knows \"tag\""),
            "{e}"
        );
        // Tag's settings: taken within their ranges; another key or value refused, named.
        let set = |lines: &str| {
            let text = format!("{DEFAULT}\n[game]\nname = \"tag\"\n[game.settings]\n{lines}");
            stock.plan(&parse_spec(&text).unwrap())
        };
        let tag = set("rewind_ms = 100\nit_every = 1\n")
            .unwrap()
            .expect("tag");
        assert_eq!(tag.rewind, Some((30, 3.0)));
        for (bad, says) in [
            (
                "rewind_ms = 2000",
                "rewind_ms: an integer in 0..=1000 (got 2000)",
            ),
            ("it_every = 0", "it_every: an integer in 1..=1000"),
            ("it_every = \"8\"", "it_every: an integer"),
            ("speed = 3", "speed: tag takes it_every and rewind_ms"),
        ] {
            let e = set(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("[game.settings] of \"tag\": ") && e.contains(says),
                "{e}"
            );
        }
        let e = Games::none().plan(&spec("tag").unwrap()).unwrap_err();
        assert!(e.to_string().contains("knows no game"), "{e}");
        let ours = |_: &WorldSpec| {
            Ok(GamePlan {
                make: Arc::new(|_| Box::new(crate::tag::Tag::new(1.0, 2)) as Box<_>),
                rewind: None,
            })
        };
        let games = Games::stock().with("chess", ours).with("tag", ours);
        assert_eq!(games.names().collect::<Vec<_>>(), ["chess", "tag"]);
        let chess = games.plan(&spec("chess").unwrap()).unwrap().expect("chess");
        assert_eq!(chess.rewind, None);
        let tag = games.plan(&spec("tag").unwrap()).unwrap().expect("tag");
        assert_eq!(tag.rewind, None, "the studio's tag replaced the stock one");
    }
}
