//! The node's side of mesh membership: `meridian_core::mesh` on the node's control UDP
//! port, in a thread of its own (never on a zone core). What it believes of every other
//! node is published for the status line, `/status` and `/metrics`; changes are logged.
//!
//! The thread also carries the votes on standbys ([`VoteBox`]): the failover thread asks,
//! the mesh thread asks the other nodes and hands back the outcome. A node with a data
//! directory votes, from its ledger `DATA/votes.ledger` (written and synced before any
//! answer resting on it leaves); a node without one asks but does not vote.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use meridian_core::mesh::votes::{Ask, Promise};
use meridian_core::mesh::{Liveness, Mesh, MeshConfig, MeshCounters, MeshEvent};
use meridian_io::Clock;
use meridian_layouts::control::{MESH_VERSION, WORLD_DIGEST_SIZE};

use crate::world_file::WorldSpec;

mod ledger;

use ledger::{Saver, load_ledger};

/// One other node as this one sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerView {
    pub name: String,
    pub liveness: Liveness,
    pub generation: u32,
    /// How long it has been in that state.
    pub for_ms: u64,
    /// The mesh protocol its datagrams last spoke (this build's until heard otherwise).
    pub protocol: u8,
    /// Its datagrams carry another world digest: it runs another world file.
    pub other_world: bool,
}

/// What the mesh thread publishes.
#[derive(Clone, Debug, Default)]
pub struct MeshView {
    pub peers: Vec<PeerView>,
    pub counters: MeshCounters,
    /// This node's generation (bumped when it learns the others declared it down).
    pub generation: u32,
    /// Runs their primaries stopped to move their zone (`Ask::Ended`): (zone, run, node).
    pub ended: Vec<(u32, u32, u16)>,
}

/// Asks the mesh's vote (see the module docs).
#[derive(Clone, Debug)]
pub struct VoteBox(Sender<(Ask, Sender<bool>)>);

impl VoteBox {
    /// A box whose asks land in the returned receiver (tests answer them by hand).
    #[cfg(test)]
    pub(crate) fn for_tests() -> (VoteBox, Receiver<(Ask, Sender<bool>)>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (VoteBox(tx), rx)
    }

    /// Puts `ask` to the other nodes; the receiver gets `true` once a majority agreed,
    /// `false` at a refusal or after `meridian_core::mesh::VOTE_TIMEOUT`.
    pub fn ask(&self, ask: Ask) -> Receiver<bool> {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.0.send((ask, tx)).is_err() {
            // The mesh thread has stopped: the receiver sees a disconnection.
        }
        rx
    }
}

/// The running mesh thread.
#[derive(Debug)]
pub struct MeshHandle {
    votes: VoteBox,
    view: Arc<Mutex<MeshView>>,
    stop: Arc<Stopping>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub control: SocketAddr,
    /// This life's generation (the wall clock's seconds at its start): the high half of
    /// every ballot id it asks.
    pub generation: u32,
    /// The promotions of this node's own its ledger held when it started, withdrawn or
    /// not. The failover thread withdraws those it never acted on (again, if withdrawn:
    /// the ledger holds a withdrawal from when it was asked, not from when every node
    /// held it).
    pub promises: Vec<Promise>,
}

impl MeshHandle {
    pub fn view(&self) -> MeshView {
        self.view.lock().expect("mesh view").clone()
    }

    /// Where to put asks to the vote.
    pub fn votes(&self) -> VoteBox {
        self.votes.clone()
    }

    /// The published view, for the admin thread.
    pub fn shared(&self) -> Arc<Mutex<MeshView>> {
        self.view.clone()
    }

    /// Stops the mesh thread without a word to the others: they declare this node down
    /// when it stops answering (under a second).
    pub fn stop(mut self) {
        self.stop.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Leaves the mesh and stops the thread: the others hear this node is down within a
    /// round trip, and take over its zones from their standbys at once. Call it only
    /// once this node's zones have stopped (`meridian_core::mesh::Mesh::leave`).
    pub fn leave(self) {
        self.stop.leave.store(true, Ordering::SeqCst);
        self.stop();
    }
}

impl Drop for MeshHandle {
    fn drop(&mut self) {
        self.stop.stop.store(true, Ordering::SeqCst);
    }
}

/// How the mesh thread is to end.
#[derive(Debug, Default)]
struct Stopping {
    stop: AtomicBool,
    /// Leave the mesh first ([`MeshHandle::leave`]).
    leave: AtomicBool,
}

/// The ledger's file in a data directory.
pub const LEDGER_FILE: &str = "votes.ledger";

/// What the nodes of one mesh must agree on in their world file, one term a line: the
/// world's id, geometry and tick rate (where zones' borders, auras and ticks are), every
/// node with its zones, data and control addresses, key and standbys (who runs and keeps
/// which zone, and whom to believe), how clients are admitted, and the game the zones
/// play with its settings (a standby takes its zone over with the state records its game
/// wrote, and plays on by the same rules). Not what one node may
/// set for itself: its cores and admin address, NPCs, capacities, checkpoint interval,
/// the mesh's start grace.
pub fn world_terms(spec: &WorldSpec) -> String {
    use std::fmt::Write as _;
    let c = spec.world.config();
    let b = c.bounds;
    let mut terms = format!(
        "world {}\nbounds {} {} {} {}\nzones {} x {}\nmargin {} aura {}\ntick_rate_hz {}\n",
        spec.world_id,
        b.x_min,
        b.y_min,
        b.x_max,
        b.y_max,
        c.zones_x,
        c.zones_y,
        c.margin_m,
        c.aura_m,
        c.tick_rate_hz
    );
    for n in &spec.nodes {
        // Sets: the order a node lists them in is its own (its cores follow its zones).
        let mut zones: Vec<u32> = n.zones.iter().map(|z| z.0).collect();
        let mut standbys: Vec<u32> = n.standby_for.iter().map(|z| z.0).collect();
        zones.sort_unstable();
        standbys.sort_unstable();
        let _ = writeln!(
            terms,
            "node {} zones {zones:?} udp {} control {:?} key {} standby_for {standbys:?}",
            n.name,
            n.udp,
            n.control,
            n.public_key.map(hex::encode).unwrap_or_default(),
        );
    }
    if let Some(clients) = &spec.clients {
        let _ = writeln!(
            terms,
            "clients auth_key {} client_auth {:?}",
            hex::encode(clients.auth_key),
            clients.client_auth
        );
    }
    if let Some(game) = &spec.game {
        // The settings sorted by key (`toml::Table` is), one line.
        let settings = toml::to_string(&game.settings).unwrap_or_default();
        let settings = settings.trim_end().replace('\n', "; ");
        let _ = writeln!(terms, "game {} settings {{{settings}}}", game.name);
    }
    terms
}

/// The world digest a node's control datagrams carry: [`world_terms`] hashed (BLAKE3,
/// the first eight bytes). `meridian check` prints it, so two machines' world files can
/// be compared before they meet.
pub fn world_digest(spec: &WorldSpec) -> [u8; WORLD_DIGEST_SIZE] {
    let terms = world_terms(spec);
    let hash = blake3::derive_key("meridian 2026-12 mesh world digest", terms.as_bytes());
    let mut digest = [0u8; WORLD_DIGEST_SIZE];
    digest.copy_from_slice(&hash[..WORLD_DIGEST_SIZE]);
    digest
}

/// Starts membership for node `me` of `spec` (which has a control address and keys on
/// every node), signing with `key`; it votes from `data`'s ledger if it has a data
/// directory.
pub fn start(
    spec: &WorldSpec,
    me: usize,
    key: &SigningKey,
    data: Option<&Path>,
) -> anyhow::Result<MeshHandle> {
    let node = &spec.nodes[me];
    let control = node
        .control
        .ok_or_else(|| anyhow::anyhow!("node {} has no control address", node.name))?;
    let socket = bind_control(control)
        .map_err(|e| anyhow::anyhow!("cannot bind the control port {control}: {e}"))?;
    let mut peers = Vec::new();
    for (j, other) in spec.nodes.iter().enumerate() {
        if j != me {
            let addr = other
                .control
                .expect("every node has one (world file check)");
            let public = other
                .public_key
                .expect("every node has one (world file check)");
            peers.push((j as u16, addr, public));
        }
    }
    let names: Vec<String> = spec.nodes.iter().map(|n| n.name.clone()).collect();
    // A generation above any this node had before: the wall clock's seconds.
    let generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32);
    let clock = Clock::new();
    let seed = u64::from(generation) ^ (me as u64) << 32;
    let mut mesh = Mesh::new(
        me as u16,
        generation,
        key.clone(),
        &peers,
        MeshConfig {
            silent_to_down_after: spec.mesh.start_grace,
            world: world_digest(spec),
            ..MeshConfig::default()
        },
        clock.now(),
        seed,
    )?;
    let ledger = data.map(|dir| dir.join(LEDGER_FILE));
    let mut promises = Vec::new();
    if let Some(path) = &ledger {
        let loaded = load_ledger(path)?;
        promises = loaded.promises_to(me as u16).collect();
        mesh = mesh.with_ledger(loaded);
    }
    mesh.join(clock.now());
    let world = mesh.world();
    let view = Arc::new(Mutex::new(MeshView::default()));
    let stop = Arc::new(Stopping::default());
    let (asks_tx, asks) = std::sync::mpsc::channel();
    let thread = {
        let (view, stop) = (view.clone(), stop.clone());
        let io = Io {
            socket,
            clock,
            ledger,
            asks,
        };
        std::thread::Builder::new()
            .name("mesh".into())
            .spawn(move || run(mesh, io, &names, &view, &stop))?
    };
    tracing::info!(
        "mesh membership on control port {control}: {} other nodes, world digest {} (every \
         node's must be the same: `meridian check` prints a world file's)",
        peers.len(),
        hex::encode(world)
    );
    Ok(MeshHandle {
        votes: VoteBox(asks_tx),
        view,
        stop,
        thread: Some(thread),
        control,
        generation,
        promises,
    })
}

/// Receive buffer asked of the kernel for the control port.
const CONTROL_RECV_BUFFER_BYTES: usize = 4 << 20;

/// The control port's socket, with a receive buffer that holds a few milliseconds of a
/// flood. With the kernel's default (208 KiB, ~200 datagrams of this size on loopback) a
/// flood of forged frames filled it whenever the mesh thread was off its core for half a
/// millisecond, and the genuine probes that came meanwhile were lost with the flood: the
/// other node suspected this one about once per 8 s of flood
/// (`mesh::a_spoofed_flood_from_a_nodes_address_declares_no_one_down`).
fn bind_control(control: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(control),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    meridian_io::runtime::ask_recv_buffer(
        &socket,
        CONTROL_RECV_BUFFER_BYTES,
        &format!("control port {control}"),
    );
    socket.bind(&control.into())?;
    Ok(socket.into())
}

/// Datagrams read in one go after the first (then timers and sends get their turn).
const DRAIN_MAX: usize = 1024;

/// What the mesh thread does I/O with.
struct Io {
    socket: UdpSocket,
    clock: Clock,
    /// The ledger's file (`None`: this node does not vote).
    ledger: Option<PathBuf>,
    asks: Receiver<(Ask, Sender<bool>)>,
}

fn run(mut mesh: Mesh, io: Io, names: &[String], view: &Mutex<MeshView>, stop: &Stopping) {
    let mut buf = [0u8; 2048];
    let mut waiting: HashMap<u64, Sender<bool>> = HashMap::new();
    let mut save_failed = false;
    let mut saver = match io.ledger.clone().map(Saver::start).transpose() {
        Ok(saver) => saver,
        Err(e) => {
            tracing::error!(
                "cannot start the thread that saves the vote ledger: {e}; this node does not answer votes"
            );
            None
        }
    };
    let name = |node: u16| names.get(usize::from(node)).map_or("?", String::as_str);
    let world = mesh.world();
    while !stop.stop.load(Ordering::SeqCst) {
        let now = io.clock.now();
        let wait = mesh
            .next_timeout()
            .map_or(Duration::from_millis(50), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_millis(1), Duration::from_millis(20));
        // While the ledger is being saved, look for the save's end often: answers wait.
        let wait = match &saver {
            Some(s) if s.busy() => wait.min(Duration::from_millis(2)),
            _ => wait,
        };
        let _ = io.socket.set_read_timeout(Some(wait));
        if let Ok((len, from)) = io.socket.recv_from(&mut buf) {
            mesh.handle_datagram(io.clock.now(), from, &buf[..len]);
            // Then whatever else is queued (a burst — a stranger's flood — must not fill
            // the socket's buffer and crowd out the probes).
            let _ = io.socket.set_nonblocking(true);
            for _ in 0..DRAIN_MAX {
                let Ok((len, from)) = io.socket.recv_from(&mut buf) else {
                    break;
                };
                mesh.handle_datagram(io.clock.now(), from, &buf[..len]);
            }
            let _ = io.socket.set_nonblocking(false);
        }
        mesh.handle_timeout(io.clock.now());
        while let Ok((ask, reply)) = io.asks.try_recv() {
            waiting.insert(mesh.ask(io.clock.now(), ask), reply);
        }
        // Nothing that rests on the ledger leaves before it is on disk — saved on a
        // thread of its own, so a slow disk does not hold the probes (`ledger`).
        if let (Some(save), Some(s)) = (mesh.ledger_to_save(), saver.as_mut()) {
            s.save(save);
        }
        for (version, saved) in saver.as_mut().map(Saver::reports).unwrap_or_default() {
            match saved {
                Ok(()) => {
                    mesh.ledger_saved(version);
                    save_failed = false;
                }
                Err(e) => {
                    if !save_failed {
                        tracing::error!(
                            "cannot save the vote ledger: {e}; this node's answers wait until it can"
                        );
                    }
                    save_failed = true;
                    mesh.ledger_save_failed();
                }
            }
        }
        while let Some((to, bytes)) = mesh.poll_transmit() {
            let _ = io.socket.send_to(&bytes, to);
        }
        while let Some(event) = mesh.poll_event() {
            on_event(event, (&name, world), &mut waiting);
        }
        let now = io.clock.now();
        let peers = mesh
            .peers()
            .iter()
            .map(|p| PeerView {
                name: names.get(usize::from(p.node)).cloned().unwrap_or_default(),
                liveness: p.liveness,
                generation: p.generation,
                for_ms: now.saturating_duration_since(p.since).as_millis() as u64,
                protocol: p.version,
                other_world: p.world != world,
            })
            .collect();
        *view.lock().expect("mesh view") = MeshView {
            peers,
            counters: mesh.counters(),
            generation: mesh.me().generation,
            ended: mesh.ended().to_vec(),
        };
    }
    if stop.leave.load(Ordering::SeqCst) {
        mesh.leave(io.clock.now());
        let mut told = Vec::new();
        while let Some((to, bytes)) = mesh.poll_transmit() {
            if io.socket.send_to(&bytes, to).is_ok() {
                told.push(to);
            }
        }
        tracing::info!(
            "mesh: left — told {} of the other nodes this node is down ({}); they take \
             its zones over from their standbys",
            told.len(),
            told.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// Logs a membership change or a vote's outcome, and hands the outcome to its asker.
fn on_event<'a>(
    event: MeshEvent,
    (name, ours): (&impl Fn(u16) -> &'a str, [u8; WORLD_DIGEST_SIZE]),
    waiting: &mut HashMap<u64, Sender<bool>>,
) {
    match event {
        MeshEvent::Up { node, generation } => {
            tracing::info!("mesh: node {} is up (generation {generation})", name(node));
        }
        MeshEvent::Down {
            node,
            generation: 0,
        } => {
            tracing::warn!(
                "mesh: node {} is declared down: not heard from since this node started",
                name(node)
            );
        }
        MeshEvent::Told {
            node,
            generation,
            by,
        } => {
            tracing::warn!(
                "mesh: node {} is declared down: not heard from since this node started, and \
                 node {} saw it go down ({})",
                name(node),
                name(by),
                if generation == 0 {
                    "it had not heard from it either".to_owned()
                } else {
                    format!("generation {generation}")
                }
            );
        }
        MeshEvent::Down { node, generation } => {
            tracing::warn!(
                "mesh: node {} is declared down (generation {generation})",
                name(node)
            );
        }
        MeshEvent::Version { node, version } if version == MESH_VERSION => tracing::info!(
            "mesh: node {} speaks this build's mesh protocol ({version}) again",
            name(node)
        ),
        MeshEvent::Version { node, version } => tracing::error!(
            "mesh: node {} speaks mesh protocol {version}, this build {MESH_VERSION}: its datagrams are dropped, so to this node it is down, and neither counts the other's votes; run one build on every node of the mesh (docs/operations.md, \"Upgrading\")",
            name(node)
        ),
        MeshEvent::World { node, world } if world == ours => tracing::info!(
            "mesh: node {} runs this node's world file again (world digest {})",
            name(node),
            hex::encode(world)
        ),
        MeshEvent::World { node, world } => tracing::error!(
            "mesh: node {} runs another world file (world digest {}, this node's {}): its \
             datagrams are dropped, so to this node it is down, and neither counts the \
             other's votes; give every node the same world file (`meridian check --world \
             FILE` prints its digest)",
            name(node),
            hex::encode(world),
            hex::encode(ours)
        ),
        MeshEvent::Rejoined { generation } => tracing::warn!(
            "mesh: the other nodes declared this node down (or it did not run for longer than they take to: a stall, a stop); rejoined as generation {generation}"
        ),
        MeshEvent::Decided {
            ballot,
            ask,
            granted,
        } => {
            let verdict = match (ask, granted) {
                (Ask::Withdraw { .. }, true) => "every node holds it",
                (Ask::Withdraw { .. }, false) => {
                    "not every node answered in time (those that did hold it)"
                }
                (_, true) => "agreed",
                (_, false) => "not agreed",
            };
            if matches!(ask, Ask::Current { .. }) {
                tracing::info!("mesh vote: {} — {verdict}", describe(ask, name));
            } else {
                tracing::warn!("mesh vote: {} — {verdict}", describe(ask, name));
            }
            if let Some(reply) = waiting.remove(&ballot) {
                let _ = reply.send(granted);
            }
        }
    }
}

/// An ask, for the log.
fn describe<'a>(ask: Ask, name: &impl Fn(u16) -> &'a str) -> String {
    match ask {
        Ask::Drop {
            zone,
            incarnation,
            standby,
            ..
        } => format!(
            "zone {zone} (incarnation {incarnation}) goes on without its standby on {}",
            name(standby)
        ),
        Ask::Current {
            zone,
            incarnation,
            standby,
            ..
        } => format!(
            "zone {zone} (incarnation {incarnation}) has its standby on {} current again",
            name(standby)
        ),
        Ask::Promote {
            zone,
            incarnation,
            standby,
            primary,
        } => format!(
            "{} takes zone {zone} over from {} as incarnation {incarnation}",
            name(standby),
            name(primary)
        ),
        Ask::Withdraw {
            zone,
            incarnation,
            standby,
        } => format!(
            "{} withdraws its takeover of zone {zone} as incarnation {incarnation}",
            name(standby)
        ),
        Ask::Acted {
            zone,
            incarnation,
            standby,
        } => format!(
            "{} acts on its takeover of zone {zone} as incarnation {incarnation}",
            name(standby)
        ),
        Ask::Release {
            zone,
            incarnation,
            standby,
        } => format!(
            "zone {zone} (incarnation {incarnation}) has the ledgers let go of a takeover \
             promised to {} that it never said it acts on",
            name(standby)
        ),
        Ask::Ended {
            zone,
            incarnation,
            primary,
        } => format!(
            "{} stopped zone {zone} (incarnation {incarnation}) to move it to its standby",
            name(primary)
        ),
    }
}

/// `/status` lines for membership: `peer NAME STATE generation G for_ms MS protocol P`.
pub fn status_text(view: &MeshView) -> String {
    view.peers
        .iter()
        .map(|p| {
            format!(
                "peer {} {} generation {} for_ms {} protocol {}{}\n",
                p.name,
                p.liveness.as_str(),
                p.generation,
                p.for_ms,
                p.protocol,
                if p.other_world { " other_world" } else { "" }
            )
        })
        .collect()
}

/// The status line's part: `mesh a alive, b suspect: NAME, c down: NAME`.
pub fn status_part(view: &MeshView) -> String {
    let of = |l: Liveness| -> Vec<&str> {
        view.peers
            .iter()
            .filter(|p| p.liveness == l)
            .map(|p| p.name.as_str())
            .collect()
    };
    let mut part = format!("mesh {} alive", of(Liveness::Alive).len());
    for (l, word) in [
        (Liveness::Suspect, "suspect"),
        (Liveness::Down, "down"),
        (Liveness::Unknown, "unknown"),
    ] {
        let names = of(l);
        if !names.is_empty() {
            part.push_str(&format!(", {} {word}: {}", names.len(), names.join(" ")));
        }
    }
    // Peers that are not of this mesh, and what sets them apart.
    type Apart = fn(&PeerView) -> Option<String>;
    let apart: [(&str, Apart); 2] = [
        ("on another mesh protocol", |p| {
            (p.protocol != MESH_VERSION).then(|| format!("{} ({})", p.name, p.protocol))
        }),
        ("on another world file", |p| {
            p.other_world.then(|| p.name.clone())
        }),
    ];
    for (what, pick) in apart {
        let names: Vec<String> = view.peers.iter().filter_map(pick).collect();
        if !names.is_empty() {
            part.push_str(&format!(", {} {what}: {}", names.len(), names.join(" ")));
        }
    }
    part
}

#[cfg(test)]
mod world_tests {
    use super::*;

    /// The digest changes with every term the nodes must agree on and with none that a
    /// node sets for itself.
    #[test]
    fn the_world_digest_covers_what_nodes_must_agree_on() {
        let base = include_str!("../worlds/mesh-3.toml");
        let digest = |text: &str| world_digest(&crate::world_file::parse_spec(text).unwrap());
        let ours = digest(base);
        let edit = |from: &str, to: &str| {
            assert!(base.contains(from), "{from}");
            base.replacen(from, to, 1)
        };
        for (from, to) in [
            ("margin_m = 8.0", "margin_m = 9.0"),
            ("aura_m = 32.0", "aura_m = 30.0"),
            ("tick_rate_hz = 30", "tick_rate_hz = 20"),
            ("udp = \"127.0.0.1:7500\"", "udp = \"127.0.0.1:7501\""),
            ("standby_for = [0, 1]", "standby_for = [0]"),
        ] {
            assert_ne!(digest(&edit(from, to)), ours, "{from} → {to}");
        }
        // A game, and another game.
        let tag = format!("{base}\n[game]\nname = \"tag\"\n");
        assert_ne!(digest(&tag), ours, "a game");
        assert_ne!(digest(&tag), digest(&tag.replace("\"tag\"", "\"chess\"")));
        // Its settings, but not the order they are written in.
        let set = |lines: &str| digest(&format!("{tag}[game.settings]\n{lines}"));
        assert_ne!(set("it_every = 4\n"), digest(&tag));
        assert_ne!(set("it_every = 4\n"), set("it_every = 5\n"));
        assert_eq!(set("a = 1\nb = 2\n"), set("b = 2\na = 1\n"));
        for (from, to) in [
            ("admin = \"127.0.0.1:7700\"", "admin = \"127.0.0.1:7701\""),
            ("standby_for = [0, 1]", "standby_for = [1, 0]"),
            ("per_zone = 20000", "per_zone = 100"),
            ("cell_size_m = 32.0", "cell_size_m = 16.0"),
        ] {
            assert_eq!(digest(&edit(from, to)), ours, "{from} → {to}");
        }
    }
}
