//! `meridian`: run and inspect Meridian world nodes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use meridian_node::world_file;

/// Meridian — a thread-per-core, spatially partitioned, authoritative world server.
///
/// The world is cut into rectangular zones; each zone runs on one pinned core and hands
/// entities to its neighbours with a protocol that never loses or duplicates one.
#[derive(Debug, Parser)]
#[command(name = "meridian", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a world file and print its zones, neighbours and spatial-index shape.
    ///
    /// Exits with status 1 and a message naming the field when the file is invalid.
    Check {
        /// The world file (TOML), e.g. node/worlds/default.toml.
        #[arg(long, value_name = "FILE")]
        world: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { world } => match check(&world) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn check(path: &std::path::Path) -> Result<(), world_file::WorldFileError> {
    let world = world_file::load(path)?;
    let config = world.config();
    let b = world.bounds();
    println!(
        "world {}: {} × {} m, {} zones ({} × {}), {} Hz, margin {} m, aura {} m",
        path.display(),
        b.width(),
        b.height(),
        world.zone_count(),
        config.zones_x,
        config.zones_y,
        config.tick_rate_hz,
        config.margin_m,
        config.aura_m,
    );
    let (columns, rows) = world.grid_shape();
    println!(
        "spatial index per zone: {columns} × {rows} cells of {} m",
        config.cell_size_m
    );
    for zone in world.zones() {
        let r = world.zone_rect(zone);
        let neighbours: Vec<String> = world
            .neighbours(zone)
            .as_slice()
            .iter()
            .map(|n| n.to_string())
            .collect();
        println!(
            "  zone {zone}: x [{}, {}) y [{}, {})  neighbours [{}]",
            r.x_min,
            r.x_max,
            r.y_min,
            r.y_max,
            neighbours.join(", ")
        );
    }
    Ok(())
}
