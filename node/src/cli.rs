//! The `meridian` command line: run and inspect Meridian world nodes.
//!
//! In the library so that a studio's own node binary is the same command line with its
//! games linked in ([`main`] with [`Games`]): `meridian node` then runs the game its world
//! file names (docs/game.md, "Your own node binary").

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::admin_token::AdminToken;
use crate::games::Games;
use crate::progress::Progress;
use crate::{inspect, keyfile, run, sim, swarm, world_file};
use clap::{Parser, Subcommand};

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

/// The bots' path to the nodes, as `swarm` and `demo` play it.
#[derive(Debug, Clone, Copy, clap::Args)]
struct PathArgs {
    /// Probability of dropping each datagram, in each direction (0 ≤ P < 1).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Milliseconds added to each datagram, in each direction (half the round trip
    /// added), to play a far player.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Up to this many more milliseconds, uniform, per datagram and direction.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the zones this node hosts: pinned executors, UDP, NPCs, status line, admin.
    ///
    /// Logs go to stderr (RUST_LOG filters them: `RUST_LOG=debug` shows every ARRIVED and
    /// DEPARTED entity). A status line per second gives per-zone entities, ghosts and tick
    /// p50/p99/max, handoffs per second and their p99, sessions, packets and drops. The
    /// world file's admin address serves /status, /metrics (Prometheus text format) and
    /// /map (a live map for a browser); its URL is logged at start. Ctrl-C or SIGTERM
    /// stops the node cleanly and prints a summary.
    Node {
        /// The world file (TOML), e.g. node/worlds/default.toml.
        #[arg(long, value_name = "FILE")]
        world: PathBuf,
        /// Which of the world file's nodes this is (default: the only one).
        #[arg(long)]
        name: Option<String>,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long, value_name = "SECS")]
        duration: Option<u64>,
        /// Override the world file's NPCs per zone.
        #[arg(long)]
        npcs: Option<u32>,
        /// This node's key pair (from `meridian keygen`): required when the world file pins
        /// node public keys, so traffic between nodes is signed.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// The data directory: each zone's write-ahead log and checkpoints. Created (mode
        /// 0700) if missing; a restart with the same directory restores every zone.
        /// Default: meridian-data/<node name> under the current directory.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Move the zones' existing files aside (into DIR/discarded-<time>/) and start
        /// empty. Without it, a data directory with no valid state is refused.
        #[arg(long)]
        fresh: bool,
        /// Persist nothing: a restart starts empty (benchmarks and throwaway runs).
        #[arg(long, conflicts_with_all = ["data", "fresh"])]
        ephemeral: bool,
        /// A token file (from `meridian admin-token`): the admin endpoint then answers only
        /// requests that carry it (`Authorization: Bearer TOKEN`, or `?token=TOKEN` for a
        /// browser). Without it the endpoint answers anyone who reaches its address.
        #[arg(long, value_name = "FILE")]
        admin_token: Option<PathBuf>,
    },
    /// Inspect a zone's WAL or checkpoint file: its header, its records by kind or its
    /// sections, and every checksum.
    ///
    /// Exits with status 1 when anything is corrupt, printing the offset of the first bad
    /// byte.
    Inspect {
        /// A file from a data directory: zone-K.wal.G or zone-K.ckp.G.
        path: PathBuf,
    },
    /// Validate a world file and print its zones, neighbours and spatial-index shape.
    ///
    /// Exits with status 1 and a message naming the field when the file is invalid.
    Check {
        /// The world file (TOML), e.g. node/worlds/default.toml.
        #[arg(long, value_name = "FILE")]
        world: PathBuf,
    },
    /// Run the deterministic simulator: zones, a faulty network, crashes, invariants.
    ///
    /// Each seed draws a world (2–9 zones on 1–3 simulated nodes), entities that cross
    /// borders (walkers, border dancers, a flash crowd) and faults (loss, duplication,
    /// delay, reordering, partitions, zone crashes), runs it, heals it, and checks the
    /// handoff invariants after every step. Exits with status 1 if any seed fails, and
    /// prints the command that replays it.
    Sim(sim::Args),
    /// Simulated clients over real UDP against running nodes, with a progress line and a
    /// final report (connections, inputs, snapshots, redirects, bandwidth, latency, own-avatar
    /// corrections, and invariant checks: own avatar always seen, one owner per avatar, no
    /// teleports, no pop-in, no NPC shown going back to an older state, no full scene after
    /// a handoff, no remote entity jumping between drawn frames, and what bots are shown
    /// against a brute-force search over the nodes' entities).
    ///
    /// The world file must have a [clients] section whose auth_key is the public half of
    /// --auth-key. The one-owner and visibility checks need the nodes' admin addresses in
    /// the world file. Exits with status 1 if any invariant was violated.
    Swarm {
        /// The world file the nodes run (TOML).
        #[arg(long, value_name = "FILE")]
        world: PathBuf,
        /// The world's auth key pair (from `meridian keygen`): signs the bots' tokens.
        #[arg(long, value_name = "FILE")]
        auth_key: PathBuf,
        /// How many bots.
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// How bots move.
        #[arg(long, value_enum, default_value_t = swarm::Pattern::Random)]
        pattern: swarm::Pattern,
        #[command(flatten)]
        path: PathArgs,
        /// Worker threads driving the bots.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Seed for bot keys and movement.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The nodes' admin token file (from `meridian admin-token`), if they run with
        /// --admin-token: the one-owner and visibility checks send it.
        #[arg(long, value_name = "FILE")]
        admin_token: Option<PathBuf>,
    },
    /// Run a node playing tag (the `tag` game) and a swarm of bots playing it across its
    /// two zones, with live status and a summary table: the invariant checks, and the
    /// shots — how many the shooter's own view said would hit, and how many of those the
    /// server confirmed after rewinding to what the shooter saw. No files needed: the demo
    /// world is built in, and the demo makes its own auth key. The live map rings whoever
    /// is "it". Exits with status 1 if any invariant was violated.
    Demo {
        /// How many bots.
        #[arg(long, default_value_t = 200)]
        clients: usize,
        /// How long to run, in seconds (Ctrl-C ends it early, with the summary).
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// How bots move.
        #[arg(long, value_enum, default_value_t = swarm::Pattern::Tag)]
        pattern: swarm::Pattern,
        #[command(flatten)]
        path: PathArgs,
        /// First UDP port of the demo node (zone k listens on port + k). With --mesh, node
        /// k's zones listen on port + 10 k, its control (gossip, standby streams) on
        /// port + 100 + 10 k, its admin endpoint on port + 200 + 10 k.
        #[arg(long, default_value_t = 7400)]
        port: u16,
        /// Show failover instead: three node processes (one zone each, with warm
        /// standbys, keys made for the run), the bots playing across them, node n0
        /// killed with SIGKILL after --kill-after seconds; the summary gives the detection
        /// and failover times, NPCs lost and duplicated, and the bots that kept playing.
        /// Exits with status 1 if anything was lost or duplicated, or zone 0 never came
        /// back. The bots move as --pattern says: with tag (the default) the world file
        /// names the game, every node plays it, and the takeover carries on the game's
        /// state from the standby's copy.
        #[arg(long)]
        mesh: bool,
        /// With --mesh: seconds before node n0 is killed (or stopped, with --sigterm; or
        /// asked to move zone 0, with --move-zone).
        #[arg(long, default_value_t = 10)]
        kill_after: u64,
        /// With --mesh: stop n0 with SIGTERM instead, as a rolling restart does — its zone
        /// stops at a tick, then it leaves the mesh, so n2 takes zone 0 over at once
        /// instead of after the suspicion a death needs.
        #[arg(long, requires = "mesh")]
        sigterm: bool,
        /// With --mesh: instead of stopping n0, ask it to move zone 0 to its standby on
        /// n2 while it runs on (`/move?zone=0` on its admin endpoint): the zone stops
        /// after a final checkpoint and n2 takes it over once the mesh heard it ended.
        #[arg(long, requires = "mesh", conflicts_with = "sigterm")]
        move_zone: bool,
        /// With --mesh: start n0 again this many seconds after it was killed (or stopped,
        /// with --sigterm) — a rolling restart. The demo's world then moves zones home on
        /// their own 2 s after their node is back ([mesh] move_home_after_s), so zone 0
        /// goes back to n0; the summary says when. Leave about 6 s of --duration after
        /// --kill-after plus this.
        #[arg(long, requires = "mesh", conflicts_with = "move_zone")]
        restart_after: Option<u64>,
        /// With --mesh: the log filter of the three node processes (`RUST_LOG` syntax;
        /// their logs are n0.log, n1.log and n2.log in the demo's directory, kept after
        /// the run): `info` adds each zone's start, restore, takeover and move with their
        /// times, `debug` every handoff.
        #[arg(long, requires = "mesh", default_value = "warn", value_name = "FILTER")]
        node_log: String,
    },
    /// Generate an Ed25519 key pair (a node key, the world's auth key, or a client's
    /// session key) and print its public key.
    ///
    /// The file is created with mode 0600 and is never overwritten without --force. Put
    /// the printed public key in the world file.
    Keygen {
        /// Where to write the key pair.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Generate a token for a node's admin endpoint and write it to a file.
    ///
    /// The file (mode 0600, never overwritten without --force) holds 64 hex digits alone:
    /// give it to `meridian node --admin-token` and `meridian swarm --admin-token`, and to
    /// Prometheus as the scrape's bearer `credentials_file`.
    AdminToken {
        /// Where to write the token.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Issue a development connect token, signed by the world's auth key, and print it as
    /// hex on standard output.
    ///
    /// In production an account service issues tokens; this is for tests and local play.
    Token {
        /// The world's auth key pair (from `meridian keygen`).
        #[arg(long, value_name = "FILE")]
        auth_key: PathBuf,
        /// The client's session key pair (from `meridian keygen`); its public key goes into
        /// the token, and the client signs its inputs with the secret.
        #[arg(long, value_name = "FILE")]
        client_key: PathBuf,
        /// The world the token admits to.
        #[arg(long)]
        world_id: u64,
        /// The client's account id.
        #[arg(long)]
        client_id: u64,
        /// How long the token is valid, in seconds.
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400 * 30))]
        ttl_secs: u64,
    },
}

/// Parses the command line and runs the command; `games` are the games a world file may
/// name (`Games::stock()` for the stock binary). Errors are printed to stderr and give
/// status 1.
pub fn main(games: Games) -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { world } => check(&world, &games),
        Command::Node {
            world,
            name,
            duration,
            npcs,
            key,
            data,
            fresh,
            ephemeral,
            admin_token,
        } => node(
            (&world, &games),
            name.as_deref(),
            duration,
            npcs,
            (key.as_deref(), admin_token.as_deref()),
            Storage {
                data,
                fresh,
                ephemeral,
            },
        ),
        Command::Inspect { path } => inspect::run(&path),
        Command::Keygen { out, force } => keygen(&out, force),
        Command::AdminToken { out, force } => admin_token(&out, force),
        Command::Sim(args) => sim::run(args),
        Command::Swarm {
            world,
            auth_key,
            clients,
            duration,
            pattern,
            path,
            threads,
            seed,
            admin_token,
        } => swarm_command(
            &world,
            (&auth_key, admin_token.as_deref()),
            swarm::Config {
                clients,
                duration: Duration::from_secs(duration),
                pattern,
                loss: path.loss,
                latency: Duration::from_millis(path.latency_ms),
                jitter: Duration::from_millis(path.jitter_ms),
                threads,
                seed,
            },
        ),
        Command::Demo {
            clients,
            duration,
            pattern,
            path,
            port,
            mesh,
            kill_after,
            sigterm,
            move_zone,
            restart_after,
            node_log,
        } => {
            let config = swarm::Config {
                clients,
                duration: Duration::from_secs(duration),
                pattern,
                loss: path.loss,
                latency: Duration::from_millis(path.latency_ms),
                jitter: Duration::from_millis(path.jitter_ms),
                threads: 1,
                seed: 1,
            };
            if mesh {
                use crate::demo_mesh::Ending;
                let ending = match (sigterm, move_zone) {
                    (true, _) => Ending::Sigterm,
                    (false, true) => Ending::Move,
                    (false, false) => Ending::Kill,
                };
                demo_mesh(config, port, (kill_after, ending, restart_after), node_log)
            } else {
                demo(config, port)
            }
        }
        Command::Token {
            auth_key,
            client_key,
            world_id,
            client_id,
            ttl_secs,
        } => token(&auth_key, &client_key, world_id, client_id, ttl_secs),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The node command's persistence flags.
struct Storage {
    data: Option<PathBuf>,
    fresh: bool,
    ephemeral: bool,
}

fn node(
    (world, games): (&Path, &Games),
    name: Option<&str>,
    duration: Option<u64>,
    npcs: Option<u32>,
    (key, admin_token): (Option<&Path>, Option<&Path>),
    storage: Storage,
) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a log redirected to a file reads and greps clean.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let spec = world_file::load_spec(world)?;
    let game = games.plan(&spec)?;
    let mut node_spec = run::pick_node(&spec, name)?.clone();
    if let Some(path) = admin_token {
        if node_spec.admin.is_none() {
            tracing::warn!(
                "--admin-token: node {} has no admin address in {}, so nothing uses the token",
                node_spec.name,
                world.display()
            );
        }
        node_spec.admin_token = Some(AdminToken::read(path)?);
    }
    // Ctrl-C or SIGTERM wakes the loop below at once: in a mesh, the others take this
    // node's zones over as soon as it has stopped them and left.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = stop.send(());
    })?;
    tracing::info!(
        "node {} starting zones {:?} on cores {:?} (world {}, {} zones)",
        node_spec.name,
        node_spec.zones.iter().map(|z| z.0).collect::<Vec<_>>(),
        node_spec.cores,
        world.display(),
        spec.world.zone_count()
    );
    let key = key.map(keyfile::read).transpose()?;
    let persistence = (!storage.ephemeral).then(|| run::Persistence {
        dir: storage
            .data
            .unwrap_or_else(|| Path::new("meridian-data").join(&node_spec.name)),
        fresh: storage.fresh,
    });
    match &persistence {
        Some(p) => tracing::info!("data directory {}", p.dir.display()),
        None => tracing::warn!("--ephemeral: nothing is persisted; a restart starts empty"),
    }
    if let Some(game) = &spec.game {
        tracing::info!("every zone plays {:?}", game.name);
    }
    let running = run::start_with(
        &spec,
        &node_spec,
        npcs,
        key.as_ref(),
        persistence.as_ref(),
        game,
    )?;
    let started = std::time::Instant::now();
    let mut previous = running.stats();
    let mut next = started + Duration::from_secs(1);
    loop {
        if duration.is_some_and(|d| started.elapsed() >= Duration::from_secs(d)) {
            break;
        }
        let wait = next.saturating_duration_since(std::time::Instant::now());
        match stopped.recv_timeout(wait.min(Duration::from_millis(100))) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            // A signal; or no handler any more (cannot happen: it lives as long as the
            // process), taken as one.
            _ => break,
        }
        if std::time::Instant::now() >= next {
            next += Duration::from_secs(1);
            let now = running.stats();
            let mut line = run::status_line(&node_spec.name, started.elapsed(), &now, &previous);
            if let Some(view) = running.mesh() {
                line.push_str(" | ");
                line.push_str(&crate::mesh::status_part(&view));
            }
            tracing::info!("{line}");
            previous = now;
        }
    }
    tracing::info!("stopping");
    let elapsed = started.elapsed();
    let finals = running.stop()?;
    println!("summary after {:.1} s:", elapsed.as_secs_f64());
    println!(
        "{:>5} {:>9} {:>9} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>7}",
        "zone",
        "entities",
        "in_flight",
        "ghosts",
        "ticks",
        "p50 ms",
        "p99 ms",
        "max ms",
        "arrivals",
        "departures",
        "drops"
    );
    for s in &finals {
        println!(
            "{:>5} {:>9} {:>9} {:>7} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9} {:>10} {:>7}",
            s.zone,
            s.entities,
            s.in_flight,
            s.ghosts,
            s.tick,
            s.tick_p50_us as f64 / 1000.0,
            s.tick_p99_us as f64 / 1000.0,
            s.tick_max_us as f64 / 1000.0,
            s.counters.arrivals,
            s.counters.departures,
            s.drops
        );
    }
    Ok(())
}

fn init_logs(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a log redirected to a file reads and greps clean.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn stop_flag() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst))?;
    Ok(stop)
}

fn progress_line(p: &swarm::Progress) -> String {
    format!(
        "[swarm {:>4}s] connected {} | inputs {} | snapshots {} | redirects {} | violations {} | bots run ≤ {} ms late",
        p.elapsed.as_secs(),
        p.connected,
        p.inputs,
        p.snapshots,
        p.redirects,
        p.violations,
        p.late_max.as_millis()
    )
}

fn swarm_command(
    world: &Path,
    (auth_key, admin_token): (&Path, Option<&Path>),
    config: swarm::Config,
) -> anyhow::Result<()> {
    init_logs("info");
    let spec = world_file::load_spec(world)?;
    let clients = spec.clients.ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no [clients] section: the nodes take no clients",
            world.display()
        )
    })?;
    let auth = keyfile::read(auth_key)?;
    anyhow::ensure!(
        auth.verifying_key().to_bytes() == clients.auth_key,
        "{} is not the world's auth key: [clients] auth_key is {}",
        auth_key.display(),
        hex::encode(clients.auth_key)
    );
    let target = swarm::Target {
        world: spec.world,
        world_id: spec.world_id,
        zone_addrs: zone_addrs(&spec),
        admins: spec.nodes.iter().filter_map(|n| n.admin).collect(),
        admin_token: admin_token.map(AdminToken::read).transpose()?,
        node_keys: spec.nodes.iter().filter_map(|n| n.public_key).collect(),
        auth,
        speed_mps: clients.speed_mps,
    };
    let stop = stop_flag()?;
    let progress = Progress::new(config.duration.as_secs(), "s");
    let report = swarm::run(&target, &config, &stop, |p| {
        progress.update(p.elapsed.as_secs(), &progress_line(p))
    })?;
    progress.finish();
    println!("swarm report:\n{}", report.table());
    anyhow::ensure!(
        report.violations() == 0,
        "{} invariant violations",
        report.violations()
    );
    Ok(())
}

fn zone_addrs(
    spec: &world_file::WorldSpec,
) -> Vec<(meridian_core::world::ZoneID, std::net::SocketAddr)> {
    spec.nodes
        .iter()
        .flat_map(|n| {
            n.zones
                .iter()
                .enumerate()
                .map(|(k, &z)| (z, n.zone_address(k)))
        })
        .collect()
}

fn demo_mesh(
    mut config: swarm::Config,
    port: u16,
    (kill_after, ending, restart_after): (u64, crate::demo_mesh::Ending, Option<u64>),
    node_log: String,
) -> anyhow::Result<()> {
    // The swarm's per-violation lines would drown the summary: they are counted there.
    init_logs("warn,meridian_node::swarm=error");
    config.threads = 2;
    let demo = crate::demo_mesh::MeshDemo {
        swarm: config,
        port,
        kill_after: Duration::from_secs(kill_after),
        ending,
        restart_after: restart_after.map(Duration::from_secs),
        node_log,
    };
    let stop = stop_flag()?;
    if !crate::demo_mesh::run(demo, &stop)? {
        std::process::exit(1);
    }
    Ok(())
}

/// The demo world, built in.
const DEMO_WORLD: &str = include_str!("../worlds/demo.toml");

fn demo(config: swarm::Config, port: u16) -> anyhow::Result<()> {
    init_logs("info,meridian_io::runtime=warn");
    let mut spec = world_file::parse_spec(DEMO_WORLD)
        .map_err(|e| anyhow::anyhow!("built-in demo world: {e}"))?;
    for node in &mut spec.nodes {
        node.udp.set_port(port);
    }
    let auth = keyfile::generate()?;
    let speed_mps = 8.0;
    spec.clients = Some(world_file::ClientsSpec {
        auth_key: auth.verifying_key().to_bytes(),
        sessions_per_zone: config.clients.max(16) * 2,
        speed_mps,
        client_auth: meridian_core::session::ClientAuth::Aead,
    });
    let node_spec = spec.nodes[0].clone();
    println!(
        "demo: node with {} zones ({} NPCs each) on UDP {}, {} bots ({:?}) for {} s — Ctrl-C ends early",
        node_spec.zones.len(),
        spec.npcs.map_or(0, |n| n.per_zone),
        node_spec.udp,
        config.clients,
        config.pattern,
        config.duration.as_secs()
    );
    // Every zone plays tag (the demo world's [game]), judging shots up to 250 ms back.
    let game = Games::stock().plan(&spec)?;
    let running = run::start_with(&spec, &node_spec, None, None, None, game)?;
    if let Some(admin) = running.admin_address() {
        println!(
            "live map: {} · metrics: http://{admin}/metrics",
            crate::map::url(admin)
        );
    }
    let target = swarm::Target {
        world: spec.world,
        world_id: spec.world_id,
        zone_addrs: zone_addrs(&spec),
        admins: running.admin_address().into_iter().collect(),
        admin_token: None,
        node_keys: Vec::new(),
        auth,
        speed_mps,
    };
    let stop = stop_flag()?;
    let started = std::time::Instant::now();
    let mut previous = running.stats();
    let progress = Progress::new(config.duration.as_secs(), "s");
    let report = swarm::run(&target, &config, &stop, |p| {
        let now = running.stats();
        progress.println(&run::status_line(
            &node_spec.name,
            started.elapsed(),
            &now,
            &previous,
        ));
        progress.update(p.elapsed.as_secs(), &progress_line(p));
        previous = now;
    })?;
    progress.finish();
    let finals = running.stop()?;
    println!("\nzones:");
    println!(
        "  {:>4} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>9} {:>27}",
        "zone",
        "entities",
        "sessions",
        "arrived",
        "left",
        "p99 ms",
        "snapshots",
        "redirects",
        "inputs guess/wait/skip/lost"
    );
    for s in &finals {
        let c = &s.clients;
        println!(
            "  {:>4} {:>8} {:>8} {:>9} {:>9} {:>9.2} {:>10} {:>9} {:>27}",
            s.zone,
            s.entities,
            s.sessions,
            c.sessions_arrived,
            c.sessions_left,
            s.tick_p99_us as f64 / 1000.0,
            c.snapshots,
            c.redirects_sent,
            format!(
                "{}/{}/{}/{}",
                c.inputs_guessed,
                c.inputs_underrun - c.inputs_guessed,
                c.inputs_skipped,
                c.inputs_lost
            )
        );
    }
    let total = |f: fn(&meridian_core::handoff::Counters) -> u64| {
        finals.iter().map(|s| f(&s.counters)).sum::<u64>()
    };
    println!(
        "\ngame messages (\"it\" passed across a border): {} sent, {} handed to a game \
         ({} sent on after the entity moved), {} lost",
        total(|c| c.game_messages_sent),
        total(|c| c.game_messages_delivered),
        total(|c| c.game_messages_forwarded),
        total(|c| c.game_messages_undeliverable
            + c.game_messages_dropped
            + c.game_messages_unacknowledged),
    );
    println!("\nbots:\n{}", report.table());
    anyhow::ensure!(
        report.violations() == 0,
        "{} invariant violations",
        report.violations()
    );
    println!("zero invariant violations");
    Ok(())
}

fn keygen(out: &Path, force: bool) -> anyhow::Result<()> {
    let key = keyfile::generate()?;
    keyfile::write(out, &key, force)?;
    eprintln!("wrote key pair to {} (mode 0600)", out.display());
    println!(
        "public_key = \"{}\"",
        hex::encode(key.verifying_key().as_bytes())
    );
    Ok(())
}

fn admin_token(out: &Path, force: bool) -> anyhow::Result<()> {
    AdminToken::generate()?.write(out, force)?;
    eprintln!(
        "wrote an admin token to {} (mode 0600): pass it to `meridian node --admin-token`",
        out.display()
    );
    Ok(())
}

fn token(
    auth_key: &Path,
    client_key: &Path,
    world_id: u64,
    client_id: u64,
    ttl_secs: u64,
) -> anyhow::Result<()> {
    let auth = keyfile::read(auth_key)?;
    let client = keyfile::read(client_key)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let expires = now + Duration::from_secs(ttl_secs);
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("cannot get randomness: {e}"))?;
    let token = keyfile::issue_token(
        &auth,
        client.verifying_key().to_bytes(),
        world_id,
        client_id,
        u64::try_from(expires.as_millis())?,
        u64::from_le_bytes(nonce),
    );
    eprintln!(
        "token for client {client_id} in world {world_id}, expires in {ttl_secs} s, signed by auth key {}",
        hex::encode(auth.verifying_key().as_bytes())
    );
    println!("{}", hex::encode(bytemuck::bytes_of(&token)));
    Ok(())
}

fn check(path: &Path, games: &Games) -> anyhow::Result<()> {
    let spec = world_file::load_spec(path)?;
    // A game this binary does not know, or settings it refuses, fail here as `meridian
    // node` would (a plan is cheap: a zone's game is made when the zone opens).
    games.plan(&spec)?;
    let world = &spec.world;
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
    print!("{}", crate::layout::describe(&spec));
    match &spec.game {
        Some(game) if game.settings.is_empty() => {
            println!("game: every zone plays {:?}", game.name);
        }
        Some(game) => println!(
            "game: every zone plays {:?} with settings {}",
            game.name,
            toml::to_string(&game.settings)?
                .trim_end()
                .replace('\n', ", ")
        ),
        None => println!("game: none (NPCs and avatars only)"),
    }
    if spec.nodes.iter().any(|n| n.control.is_some()) {
        println!(
            "mesh world digest {}: every node's world file must give the same (nodes whose \
             digests differ refuse each other's gossip and votes)",
            hex::encode(crate::mesh::world_digest(&spec))
        );
    }
    Ok(())
}
