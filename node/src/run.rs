//! `meridian node`: run the zones this node hosts, with NPCs, a status line and an admin
//! endpoint.
//!
//! **Admin endpoint** (plain-text HTTP, on the node's `admin` address):
//! - `GET /status` — one line per zone: `zone Z tick T entities N ghosts G in_flight F
//!   tick_p50_us … tick_p99_us … tick_max_us … tick_cpu_p99_us … arrivals A departures D drops X`;
//!   with a mesh, `peer …` lines (`crate::mesh::status_text`), `promoted zone Z incarnation
//!   I took_ms MS` for each takeover, and `standby zone Z held S` for each zone whose
//!   standby this node keeps (S: the highest append sequence its copy holds durably, 0
//!   until a stream reached it since the node started).
//! - `GET /entities` — a consistent cut of the node's ownership: every zone samples at its
//!   next tick boundary and holds there until all have (at most about one tick), so each
//!   entity shows once, owned or in flight. `zone Z tick T taken_at_ns NS owned N
//!   in_flight F`, then `owned ID EPOCH` and `in_flight ID EPOCH` lines (in flight:
//!   relinquished, awaiting DONE; EPOCH is the epoch it was handed off at).
//! - `GET /freeze`, then `GET /release` — the `/entities` cut, but the zones stay held
//!   until `/release` (at most 2 s): freeze several nodes, then release them, for one
//!   consistent cut across nodes.
//! - `GET /avatars` — the same cut, client avatars only: `avatar ID EPOCH` and
//!   `avatar_in_flight ID EPOCH` lines.
//! - `GET /positions?view=X0,Y0,X1,Y1` — the same cut with positions, owned entities inside
//!   the window only: `at ID X Y` lines (the swarm's visibility check).
//! - `GET /metrics` — Prometheus text format ([`crate::metrics`]).
//! - `GET /map` — the live map page; `GET /map/stream` its Server-Sent Events
//!   ([`crate::map`]).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use meridian_core::limits::Limits;
use meridian_core::replicate::InterestConfig;
use meridian_core::session::SessionConfig;
use meridian_core::world::ZoneID;
pub use meridian_io::runtime::GamePlan;
use meridian_io::runtime::{
    ClientsPlan, Node, NodePlan, NpcPlan, Snapshot, StorePlan, ZonePlan, ZoneStats,
};
use meridian_io::signing::NodeKeys;
use meridian_io::store::DataDir;

use crate::world_file::{NodeSpec, WorldSpec};

/// A running node, its admin server and its mesh membership.
pub struct Running {
    node: Arc<Node>,
    mesh: Option<crate::mesh::MeshHandle>,
    /// The standbys this node keeps for other nodes' zones, and the thread that promotes
    /// them.
    standbys: Option<crate::standby::KeptStandbys>,
    failover: Option<crate::failover::Failover>,
    admin_stop: Arc<AtomicBool>,
    admin: Option<AdminThread>,
    pub spec: NodeSpec,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("node", &self.spec.name)
            .finish()
    }
}

/// Picks the node to run: by name, or the only one.
pub fn pick_node<'a>(spec: &'a WorldSpec, name: Option<&str>) -> anyhow::Result<&'a NodeSpec> {
    let names = || {
        spec.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(name) => spec.nodes.iter().find(|n| n.name == name).ok_or_else(|| {
            anyhow::anyhow!(
                "no node named {name:?} in the world file (nodes: {})",
                names()
            )
        }),
        None if spec.nodes.len() == 1 => Ok(&spec.nodes[0]),
        None if spec.nodes.is_empty() => Err(anyhow::anyhow!(
            "the world file has no [[nodes]] section: add one that lists the zones this machine hosts"
        )),
        None => Err(anyhow::anyhow!(
            "the world file has several nodes ({}): choose one with --name",
            names()
        )),
    }
}

/// The signing identity for `node`: required when the world's nodes have public keys, and
/// it must be the pair of this node's pinned key.
fn node_keys(
    spec: &WorldSpec,
    node: &NodeSpec,
    key: Option<&SigningKey>,
) -> anyhow::Result<Option<NodeKeys>> {
    let Some(pinned) = node.public_key else {
        return Ok(None);
    };
    let key = key.ok_or_else(|| {
        anyhow::anyhow!(
            "the world file pins node {}'s public key, so its traffic is signed: pass its key pair with --key FILE",
            node.name
        )
    })?;
    if key.verifying_key().to_bytes() != pinned {
        anyhow::bail!(
            "the key pair given does not match node {}'s public_key in the world file ({})",
            node.name,
            hex::encode(pinned)
        );
    }
    Ok(Some(NodeKeys {
        key: key.clone(),
        signer: spec
            .nodes
            .iter()
            .position(|n| n.name == node.name)
            .expect("node is in the spec") as u32,
        public_keys: spec
            .nodes
            .iter()
            .map(|n| n.public_key.expect("all or none"))
            .collect(),
    }))
}

/// Where a node keeps its zones' durable state.
#[derive(Clone, Debug)]
pub struct Persistence {
    /// The data directory (created mode 0700, locked while the node runs).
    pub dir: std::path::PathBuf,
    /// Move the zones' existing files aside and start empty.
    pub fresh: bool,
}

/// Starts the zones of `node` without persistence (tests, the demo). See [`start_with`].
pub fn start(
    spec: &WorldSpec,
    node: &NodeSpec,
    npcs_per_zone: Option<u32>,
    key: Option<&SigningKey>,
) -> anyhow::Result<Running> {
    start_with(spec, node, npcs_per_zone, key, None, None)
}

/// Starts the zones of `node`, and its admin server if it has an address. `key` is this
/// node's key pair, needed when the world file pins node keys. With `persistence`, each
/// zone restores from the data directory and makes its log durable before it sends. With
/// `game`, every zone runs the game it makes (docs/game.md): a studio's own node binary
/// calls this with its game.
pub fn start_with(
    spec: &WorldSpec,
    node: &NodeSpec,
    npcs_per_zone: Option<u32>,
    key: Option<&SigningKey>,
    persistence: Option<&Persistence>,
    game: Option<GamePlan>,
) -> anyhow::Result<Running> {
    let keys = node_keys(spec, node, key)?;
    // Membership: when the world gives nodes control addresses (and so keys: checked).
    let mesh = match (node.control, key) {
        (Some(_), Some(key)) => {
            let me = spec
                .nodes
                .iter()
                .position(|n| n.name == node.name)
                .expect("node is in the spec");
            let data = persistence.map(|p| p.dir.as_path());
            Some(crate::mesh::start(spec, me, key, data)?)
        }
        _ => None,
    };
    let me = spec
        .nodes
        .iter()
        .position(|n| n.name == node.name)
        .expect("node is in the spec") as u32;
    let npcs = spec.npcs.map(|n| NpcPlan {
        pattern: n.pattern,
        per_zone: npcs_per_zone.unwrap_or(n.per_zone),
        speed_mps: n.speed_mps,
    });
    let entities = spec
        .entities_per_zone
        .max(npcs.map_or(0, |n| n.per_zone.saturating_mul(2)));
    let clients = clients_plan(spec);
    if clients.is_none() {
        tracing::info!("clients disabled: the world file has no [clients] section");
    }
    let data_dir = persistence
        .map(|p| DataDir::open(&p.dir).map(Arc::new))
        .transpose()?;
    // The world geometry the directory was written under (`data_geometry`).
    let record_geometry = match (&data_dir, persistence) {
        (Some(dir), Some(p)) => crate::data_geometry::check(dir, spec, p.fresh)?,
        _ => false,
    };
    let store = match (persistence, &data_dir) {
        (Some(p), Some(dir)) => Some(StorePlan {
            dir: dir.clone(),
            world_id: spec.world_id,
            fresh: p.fresh,
            checkpoint_every_ticks: spec.checkpoint_every_ticks,
            restore_only: false,
            incarnation_floor: 0,
        }),
        _ => None,
    };
    let standbys =
        crate::standby::serve_kept(spec, node, persistence.map(|p| p.dir.as_path()), key)?;
    let (resumed, kept_back) = match (&standbys, persistence, &mesh) {
        (Some((_, dir)), Some(p), Some(_)) => (
            resumed_zones(node, dir, p.fresh),
            kept_back_zones(node, dir, p.fresh),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let not_started: Vec<ZoneID> = resumed.iter().chain(&kept_back).copied().collect();
    let (zones, standby_slots) = zone_slots(spec, node, &not_started)?;
    let plan = NodePlan {
        world: spec.world,
        limits: Limits::for_entities(entities),
        zones,
        me,
        routes: crate::standby::routes(spec),
        standby_slots,
        npcs,
        keys,
        clients,
        store,
        game,
    };
    let node_handle = Arc::new(Node::start(plan)?);
    if let Some(dir) = data_dir.as_ref().filter(|_| record_geometry) {
        crate::data_geometry::record(dir, spec)?;
    }
    let failover = start_failover(
        (spec, node),
        standbys.as_ref(),
        mesh.as_ref(),
        &node_handle,
        (resumed, kept_back),
    )?;
    let admin_stop = Arc::new(AtomicBool::new(false));
    let admin = match node.admin {
        None => None,
        Some(addr) => {
            let admin = Admin {
                node: node_handle.clone(),
                mesh: mesh.as_ref().map(crate::mesh::MeshHandle::shared),
                promotions: failover.as_ref().map(|f| f.promotions.clone()),
                moves: failover.as_ref().map(|f| f.moves.clone()),
                standbys: standbys.as_ref().map(|(server, _)| server.clone()),
                name: node.name.clone(),
                world: Arc::new(crate::map::world_json(spec, node)),
                frames: Arc::default(),
                bounds: spec.world.bounds(),
                stop: admin_stop.clone(),
                token: node.admin_token.clone(),
                refusals: Refusals::default(),
            };
            Some(start_admin(addr, admin)?)
        }
    };
    Ok(Running {
        node: node_handle,
        mesh,
        standbys,
        failover,
        admin_stop,
        admin,
        spec: node.clone(),
    })
}

/// The admin endpoint's thread: its address, the server (to wake the thread when it is
/// to stop) and the thread.
type AdminThread = (
    SocketAddr,
    Arc<tiny_http::Server>,
    std::thread::JoinHandle<()>,
);

/// Serves the admin endpoint on `addr` from a thread of its own.
fn start_admin(addr: SocketAddr, admin: Admin) -> anyhow::Result<AdminThread> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("cannot serve the admin endpoint on {addr}: {e}"))?;
    let server = Arc::new(server);
    let bound = server.server_addr().to_ip().unwrap_or(addr);
    if admin.token.is_none() && !bound.ip().is_loopback() {
        tracing::warn!(
            "admin endpoint on {bound} answers anyone who reaches it (it can hold every zone \
             for 2 s and read the whole world): give the node --admin-token FILE (from \
             `meridian admin-token`), or bind it to a loopback address"
        );
    }
    let (map, needs) = match admin.token {
        Some(_) => ("?token=TOKEN", ", each with the --admin-token file's token"),
        None => ("", ""),
    };
    let handle = {
        let server = server.clone();
        std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || serve_admin(&server, &admin))?
    };
    tracing::info!(
        "admin endpoint on http://{bound}: /status /metrics /entities /avatars /positions{needs}; \
         live map: {}{map}",
        crate::map::url(bound)
    );
    Ok((bound, server, handle))
}

/// How the zones serve clients, if the world takes them.
fn clients_plan(spec: &WorldSpec) -> Option<ClientsPlan> {
    spec.clients.map(|c| ClientsPlan {
        world_id: spec.world_id,
        auth_key: c.auth_key,
        config: SessionConfig {
            sessions_max: c.sessions_per_zone,
            speed_mps_max: c.speed_mps,
            client_auth: c.client_auth,
            idle_timeout_ticks: 5 * u64::from(spec.world.config().tick_rate_hz),
            redirect_grace_ticks: 2 * u64::from(spec.world.config().tick_rate_hz),
            interest: InterestConfig {
                tick_hz: spec.world.config().tick_rate_hz,
                ..InterestConfig::default()
            },
            ..SessionConfig::default()
        },
        zone_addrs: spec
            .nodes
            .iter()
            .flat_map(|n| {
                n.zones
                    .iter()
                    .enumerate()
                    .map(|(k, &zone)| (zone, n.zone_address(k)))
            })
            .collect(),
    })
}

/// The thread that promotes the standbys `node` keeps, when it keeps any and the world runs
/// a mesh.
fn start_failover(
    (spec, node): (&WorldSpec, &NodeSpec),
    standbys: Option<&crate::standby::KeptStandbys>,
    mesh: Option<&crate::mesh::MeshHandle>,
    node_handle: &Arc<Node>,
    (resumed, kept_back): (Vec<ZoneID>, Vec<ZoneID>),
) -> anyhow::Result<Option<crate::failover::Failover>> {
    let (Some(kept), Some(mesh)) = (standbys, mesh) else {
        return Ok(None);
    };
    let mut nodes = Vec::new();
    for n in &spec.nodes {
        // The world file checked: a mesh has control addresses and keys on every node.
        let (Some(control), Some(key)) = (n.control, n.public_key) else {
            return Ok(None);
        };
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key)
            .map_err(|e| anyhow::anyhow!("node {}: public_key: {e}", n.name))?;
        nodes.push((n.name.clone(), control, key));
    }
    let standby_node = spec
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(k, n)| n.standby_for.iter().map(move |&z| (z, k)))
        .collect();
    let layout = crate::failover::Layout {
        world_id: spec.world_id,
        me: spec
            .nodes
            .iter()
            .position(|n| n.name == node.name)
            .expect("node is in the spec"),
        zones: spec.nodes.iter().flat_map(|n| n.zones.clone()).collect(),
        nodes,
        standby_node,
        home_node: spec
            .nodes
            .iter()
            .enumerate()
            .flat_map(|(k, n)| n.zones.iter().map(move |&z| (z, k)))
            .collect(),
        move_home_after: spec.mesh.move_home_after,
    };
    let watched = node
        .standby_for
        .iter()
        .map(|&zone| {
            let primary = spec.nodes.iter().find(|n| n.zones.contains(&zone));
            (zone, primary.map(|n| n.name.clone()).unwrap_or_default())
        })
        .collect();
    let promised = (mesh.generation, mesh.promises.clone());
    Ok(Some(crate::failover::start(
        (watched, resumed, kept_back),
        (layout, promised),
        (mesh.shared(), mesh.votes()),
        kept.clone(),
        node_handle.clone(),
    )?))
}

/// The zones this node ran from its standby directory `dir` when it stopped (it took them
/// over or back; `crate::standby::mark_running`): the failover thread runs them from there
/// again. `fresh` (`--fresh`) forgets them.
fn resumed_zones(node: &NodeSpec, dir: &DataDir, fresh: bool) -> Vec<ZoneID> {
    let marked = node
        .zones
        .iter()
        .chain(&node.standby_for)
        .copied()
        .filter(|&z| crate::standby::marked_running(dir, z));
    if !fresh {
        return marked.collect();
    }
    for zone in marked {
        match crate::standby::unmark_running(dir, zone) {
            Ok(()) => {
                tracing::warn!(%zone, "--fresh: zone {zone} ran here from {} when this node stopped; it is not resumed", dir.path().display())
            }
            Err(e) => {
                tracing::error!(%zone, "--fresh: cannot remove the marker that zone {zone} ran here: {e}")
            }
        }
    }
    Vec::new()
}

/// This node's own zones that stood down when it last ran (another node runs them) and
/// whose standbys it kept (`crate::standby::mark_kept`): they are not restored from the
/// node's own directory, stale since, but kept as standbys again from the start. A zone
/// that also ran here from the standby directory is resumed instead ([`resumed_zones`]).
/// `fresh` (`--fresh`) forgets them.
fn kept_back_zones(node: &NodeSpec, dir: &DataDir, fresh: bool) -> Vec<ZoneID> {
    let marked = node.zones.iter().copied().filter(|&z| {
        crate::standby::marked_kept(dir, z) && !crate::standby::marked_running(dir, z)
    });
    if !fresh {
        return marked.collect();
    }
    for zone in marked {
        if let Err(e) = crate::standby::unmark_kept(dir, zone) {
            tracing::error!(%zone, "--fresh: cannot remove the marker that zone {zone}'s standby is kept here: {e}");
        }
    }
    Vec::new()
}

/// The zones `node` starts (its own, but those in `not_started`: resumed from its standby
/// directory, or kept as standbys) and the slots it may start zones in later (the zones it
/// keeps the standby of, and its own not started: the failover thread starts those from
/// the standby directory).
fn zone_slots(
    spec: &WorldSpec,
    node: &NodeSpec,
    not_started: &[ZoneID],
) -> anyhow::Result<(Vec<ZonePlan>, Vec<ZonePlan>)> {
    let mut zones = Vec::new();
    let mut slots = standby_slots(node);
    for (k, &zone) in node.zones.iter().enumerate() {
        let plan = ZonePlan {
            zone,
            core: node.cores[k],
            bind: node.zone_address(k),
            standby: crate::standby::target(spec, zone)?,
        };
        if not_started.contains(&zone) {
            slots.push(plan);
        } else {
            zones.push(plan);
        }
    }
    Ok((zones, slots))
}

/// The standby slots of `node`: the zones it keeps the standby of, as they would run here
/// once promoted (on the ports after its own zones, round-robin over its cores).
fn standby_slots(node: &NodeSpec) -> Vec<ZonePlan> {
    node.standby_for
        .iter()
        .enumerate()
        .map(|(j, &zone)| ZonePlan {
            zone,
            core: node.cores[j % node.cores.len().max(1)],
            bind: node.standby_address(j),
            standby: None,
        })
        .collect()
}

impl Running {
    pub fn stats(&self) -> Vec<ZoneStats> {
        self.node.stats()
    }

    /// A consistent cut of this node's ownership (see the module docs).
    pub fn snapshot(&self, timeout: Duration) -> Option<Vec<Snapshot>> {
        self.node.snapshot(timeout)
    }

    /// Samples every zone and holds them until [`Running::release`]: freeze several nodes,
    /// then release them all, for a consistent cut across nodes.
    pub fn freeze(&self, timeout: Duration) -> Option<Vec<Snapshot>> {
        self.node.freeze(timeout)
    }

    pub fn release(&self) {
        self.node.release();
    }

    /// What this node believes of the others (mesh membership), if the world runs a mesh.
    pub fn mesh(&self) -> Option<crate::mesh::MeshView> {
        self.mesh.as_ref().map(crate::mesh::MeshHandle::view)
    }

    /// What the standby listener turned away, if this node keeps standbys.
    pub fn standby_listener(&self) -> Option<meridian_io::standby::ListenerCounters> {
        self.standbys.as_ref().map(|(server, _)| server.counters())
    }

    /// The zones this node took over from their standby copies.
    pub fn promotions(&self) -> Vec<crate::failover::Promotion> {
        self.failover
            .as_ref()
            .map(|f| f.promotions.lock().expect("promotions").clone())
            .unwrap_or_default()
    }

    /// The admin endpoint's address, if it runs.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.0)
    }

    /// Stops the admin server and every zone; returns the zones' final figures.
    ///
    /// In a mesh, the node then leaves it (`MeshHandle::leave`): the zones have stopped, so
    /// the others may take them over from their standbys at once instead of after a
    /// suspicion, and the zones whose standby this node keeps go on without it as soon as
    /// a majority agrees. The standbys it keeps are served until then.
    pub fn stop(self) -> anyhow::Result<Vec<ZoneStats>> {
        self.stop_and(true)
    }

    /// As [`Running::stop`], without leaving the mesh: to the others the node looks dead
    /// (they declare it down when it stops answering). For tests of what a death does.
    pub fn stop_without_leaving(self) -> anyhow::Result<Vec<ZoneStats>> {
        self.stop_and(false)
    }

    fn stop_and(self, leave: bool) -> anyhow::Result<Vec<ZoneStats>> {
        if let Some(failover) = self.failover {
            failover.stop();
        }
        self.admin_stop.store(true, Ordering::SeqCst);
        // Woken at once (it waits up to 100 ms for a request otherwise).
        let admin = self.admin.map(|(_, server, handle)| {
            server.unblock();
            handle.join()
        });
        let node =
            Arc::try_unwrap(self.node).map_err(|_| anyhow::anyhow!("the node is still shared"));
        let stats = node.map(|node| node.stop());
        // Leave only with every zone thread ended (stopped, or failed and gone).
        match (self.mesh, &stats) {
            (Some(mesh), Ok(_)) if leave => mesh.leave(),
            (Some(mesh), _) => mesh.stop(),
            (None, _) => {}
        }
        drop(self.standbys);
        if let Some(Err(_)) = admin {
            anyhow::bail!("the admin thread panicked");
        }
        Ok(stats??)
    }
}

/// The longest `/freeze` holds the zones without a `/release`.
const FREEZE_MAX: Duration = Duration::from_secs(2);

/// What the admin thread serves from.
struct Admin {
    node: Arc<Node>,
    mesh: Option<Arc<std::sync::Mutex<crate::mesh::MeshView>>>,
    promotions: Option<crate::failover::Promotions>,
    /// Where `/move` asks the failover thread to move a zone to its standby.
    moves: Option<crate::failover::MoveBox>,
    /// The standbys this node keeps (`standby zone …` lines).
    standbys: Option<Arc<meridian_io::standby::StandbyServer>>,
    name: String,
    /// The live map's `world` event, and the frames' part all streams share.
    world: Arc<String>,
    frames: Arc<crate::map::SharedFrames>,
    bounds: meridian_core::world::Rect,
    stop: Arc<AtomicBool>,
    /// The token every request must present, if the node was given one.
    token: Option<crate::admin_token::AdminToken>,
    refusals: Refusals,
}

/// The requests refused for lack of the admin token: counted, and logged at most once
/// per [`REFUSALS_LOGGED_EVERY`].
#[derive(Default)]
struct Refusals {
    total: std::cell::Cell<u64>,
    unlogged: std::cell::Cell<u64>,
    logged_at: std::cell::Cell<Option<std::time::Instant>>,
}

const REFUSALS_LOGGED_EVERY: Duration = Duration::from_secs(10);

impl Admin {
    /// Whether `request` may be answered: it presents the token, or the node has none.
    /// Otherwise it is answered 401 here, counted and logged.
    fn admits(&self, request: tiny_http::Request) -> Option<tiny_http::Request> {
        let Some(token) = &self.token else {
            return Some(request);
        };
        let headers = request
            .headers()
            .iter()
            .map(|h| (h.field.as_str().as_str(), h.value.as_str()));
        if crate::admin_token::presented(headers, request.url()).is_some_and(|p| token.admits(p)) {
            return Some(request);
        }
        let r = &self.refusals;
        r.total.set(r.total.get() + 1);
        r.unlogged.set(r.unlogged.get() + 1);
        if r.logged_at
            .get()
            .is_none_or(|t| t.elapsed() >= REFUSALS_LOGGED_EVERY)
        {
            let peer = request
                .remote_addr()
                .map_or("?".to_owned(), ToString::to_string);
            // The path is the sender's text: quoted and cut, so it cannot forge log lines.
            let path: String = request
                .url()
                .split('?')
                .next()
                .unwrap_or_default()
                .chars()
                .take(80)
                .collect();
            tracing::warn!(
                "admin endpoint: refused {} request(s) without the admin token since the last \
                 such line (the latest from {peer} for {path:?})",
                r.unlogged.get(),
            );
            r.unlogged.set(0);
            r.logged_at.set(Some(std::time::Instant::now()));
        }
        let header = tiny_http::Header::from_bytes("WWW-Authenticate", "Bearer realm=\"meridian\"")
            .expect("a valid header");
        let body = "this node's admin endpoint needs its token: send `Authorization: Bearer \
                    TOKEN`, or add ?token=TOKEN to the URL\n";
        let response = tiny_http::Response::from_string(body)
            .with_status_code(401)
            .with_header(header);
        if let Err(e) = request.respond(response) {
            tracing::debug!("admin endpoint: {e}");
        }
        None
    }
}

/// `/move?zone=Z`: moves zone `Z`, running here, to its standby (docs/operations.md,
/// "Moving a zone"): 200 once it began, 409 with the reason when it cannot now, 400 for
/// a request without a zone number, 404 on a node without a mesh.
fn move_zone(admin: &Admin, url: &str) -> (u16, String) {
    let Some(moves) = &admin.moves else {
        return (
            404,
            "this node runs no mesh with standbys: nothing to move a zone to\n".to_owned(),
        );
    };
    let zone = url
        .split_once('?')
        .into_iter()
        .flat_map(|(_, query)| query.split('&'))
        .find_map(|pair| pair.strip_prefix("zone="))
        .and_then(|z| z.parse::<u32>().ok());
    let Some(zone) = zone else {
        return (400, "say which zone: /move?zone=N\n".to_owned());
    };
    match moves.ask(meridian_core::world::ZoneID(zone)) {
        Ok(began) => (200, began),
        Err(why) => (409, format!("{why}\n")),
    }
}

/// Puts the calling thread (the admin thread, a live-map stream) at `SCHED_IDLE`: on a
/// machine whose every core hosts a zone there is no core "off the zones" to serve
/// from, so these threads take only time no zone wants, and a zone waking for its tick
/// preempts them at once. (On a saturated machine they may wait; the zones do not.)
pub fn background_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle) {
        tracing::warn!("admin thread keeps its normal priority (SCHED_IDLE refused: {e:?})");
    }
}

fn serve_admin(server: &tiny_http::Server, admin: &Admin) {
    background_priority();
    let (node, stop) = (&*admin.node, &*admin.stop);
    let mut frozen_until: Option<std::time::Instant> = None;
    let mut streams: Vec<std::thread::JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        streams.retain(|s| !s.is_finished());
        if frozen_until.is_some_and(|t| std::time::Instant::now() >= t) {
            tracing::warn!("admin /freeze was not released within {FREEZE_MAX:?}: releasing");
            node.release();
            frozen_until = None;
        }
        let request = match server.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(request)) => match admin.admits(request) {
                Some(request) => request,
                None => continue,
            },
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("admin endpoint: {e}");
                continue;
            }
        };
        let path = request
            .url()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut content_type = "text/plain; charset=utf-8";
        let (status, body) = match path.as_str() {
            "/status" => {
                let mut text = status_text(&node.stats());
                if let Some(view) = admin.mesh_view() {
                    text.push_str(&crate::mesh::status_text(&view));
                }
                for p in admin
                    .promotions
                    .iter()
                    .flat_map(|p| p.lock().expect("promotions").clone())
                {
                    let _ = writeln!(
                        text,
                        "promoted zone {} incarnation {} took_ms {}",
                        p.zone, p.incarnation, p.took_ms
                    );
                }
                for (zone, held) in admin.standbys.iter().flat_map(|s| s.kept_zones()) {
                    let _ = writeln!(text, "standby zone {zone} held {held}");
                }
                for line in admin.moves.iter().flat_map(|m| m.status_lines()) {
                    let _ = writeln!(text, "{line}");
                }
                (200, text)
            }
            "/metrics" => {
                content_type = crate::metrics::CONTENT_TYPE;
                let mesh = admin.mesh_view();
                let standby = admin.standbys.as_ref().map(|s| s.counters());
                let failover = admin.promotions.as_ref().map(|p| {
                    let promotions = p.lock().expect("promotions").clone();
                    let moves = admin.moves.as_ref().map(|m| m.counts()).unwrap_or_default();
                    (promotions, moves)
                });
                let body = crate::metrics::render(
                    &admin.name,
                    node.stats(),
                    (mesh, standby, failover),
                    admin.token.as_ref().map(|_| admin.refusals.total.get()),
                );
                (200, body)
            }
            "/map" => {
                content_type = "text/html; charset=utf-8";
                (200, crate::map::PAGE.to_owned())
            }
            "/map/stream" => {
                let node = admin.node.clone();
                let layout = (admin.world.clone(), admin.frames.clone());
                let stop = admin.stop.clone();
                streams.extend(crate::map::stream(
                    request,
                    node,
                    layout,
                    admin.bounds,
                    stop,
                ));
                continue;
            }
            "/entities" => match node.snapshot(Duration::from_secs(2)) {
                Some(snapshots) => (200, entities_text(&snapshots)),
                None => (503, "zones did not answer in time\n".to_owned()),
            },
            "/freeze" => match node.freeze(Duration::from_secs(2)) {
                Some(snapshots) => {
                    frozen_until = Some(std::time::Instant::now() + FREEZE_MAX);
                    (200, entities_text(&snapshots))
                }
                None => {
                    node.release();
                    (503, "zones did not answer in time\n".to_owned())
                }
            },
            "/release" => {
                node.release();
                frozen_until = None;
                (200, "released\n".to_owned())
            }
            "/move" => move_zone(admin, request.url()),
            "/avatars" => match node.snapshot(Duration::from_secs(2)) {
                Some(snapshots) => (200, avatars_text(&snapshots)),
                None => (503, "zones did not answer in time\n".to_owned()),
            },
            "/positions" => match crate::map::parse_view(request.url(), admin.bounds) {
                Err(e) => (400, format!("{e}\n")),
                Ok(view) => match node.snapshot(Duration::from_secs(2)) {
                    Some(snapshots) => (200, positions_text(&snapshots, view)),
                    None => (503, "zones did not answer in time\n".to_owned()),
                },
            },
            _ => (
                404,
                "try /status, /metrics, /map, /entities, /avatars or /positions\n".to_owned(),
            ),
        };
        let header =
            tiny_http::Header::from_bytes("Content-Type", content_type).expect("a valid header");
        let response = tiny_http::Response::from_string(body)
            .with_status_code(status)
            .with_header(header);
        if let Err(e) = request.respond(response) {
            tracing::debug!("admin endpoint: {e}");
        }
    }
    for stream in streams {
        let _ = stream.join();
    }
}

/// The `/status` body.
pub fn status_text(stats: &[ZoneStats]) -> String {
    let mut out = String::new();
    for s in stats {
        let _ = writeln!(
            out,
            "zone {} tick {} entities {} ghosts {} in_flight {} tick_p50_us {} tick_p99_us {} tick_max_us {} tick_cpu_p99_us {} \
             arrivals {} departures {} packets_in {} packets_out {} drops {} verify_failures {}{}",
            s.zone,
            s.tick,
            s.entities,
            s.ghosts,
            s.in_flight,
            s.tick_p50_us,
            s.tick_p99_us,
            s.tick_max_us,
            s.tick_cpu_p99_us,
            s.counters.arrivals,
            s.counters.departures,
            s.packets_in,
            s.packets_out,
            s.drops,
            s.verify_failures,
            if s.tentative { " tentative" } else { "" }
        );
    }
    out
}

/// The `/entities` body.
pub fn entities_text(snapshots: &[Snapshot]) -> String {
    let mut out = String::new();
    for s in snapshots {
        let _ = writeln!(
            out,
            "zone {} tick {} taken_at_ns {} owned {} in_flight {}{}",
            s.zone,
            s.tick,
            s.taken_at_ns,
            owned_of(s).len(),
            in_flight_of(s).len(),
            tentative(s)
        );
        for (id, epoch) in owned_of(s) {
            let _ = writeln!(out, "owned {id} {epoch}");
        }
        for (id, epoch) in in_flight_of(s) {
            let _ = writeln!(out, "in_flight {id} {epoch}");
        }
    }
    out
}

/// What a zone owns, as the cuts show it: nothing while its run is tentative (its gate
/// let nothing out yet: a restart waiting for its standby, which may run the zone now).
fn owned_of(s: &Snapshot) -> &[(u64, u32)] {
    if s.tentative { &[] } else { &s.owned }
}

/// What a zone handed off and awaits DONE for, as the cuts show it (see [`owned_of`]).
fn in_flight_of(s: &Snapshot) -> &[(u64, u32)] {
    if s.tentative { &[] } else { &s.in_flight }
}

/// The word a tentative zone's line ends with.
fn tentative(s: &Snapshot) -> &'static str {
    if s.tentative { " tentative" } else { "" }
}

/// A cut's `zone Z tick T taken_at_ns N` line (`… tentative` for a tentative run).
fn zone_line(out: &mut String, s: &Snapshot) {
    let _ = writeln!(
        out,
        "zone {} tick {} taken_at_ns {}{}",
        s.zone,
        s.tick,
        s.taken_at_ns,
        tentative(s)
    );
}

/// The admin `/positions` body: per zone a `zone Z tick T taken_at_ns N` line, then
/// `at ID X Y` for each entity it owns inside `view` (none while its run is tentative).
pub fn positions_text(snapshots: &[Snapshot], view: meridian_core::world::Rect) -> String {
    let mut out = String::new();
    for s in snapshots {
        zone_line(&mut out, s);
        for ((id, _), [x, y]) in owned_of(s).iter().zip(&s.positions) {
            if (view.x_min..=view.x_max).contains(x) && (view.y_min..=view.y_max).contains(y) {
                let _ = writeln!(out, "at {id} {x} {y}");
            }
        }
    }
    out
}

/// The admin `/avatars` body: per zone a `zone Z tick T taken_at_ns N` line, then
/// `avatar ID EPOCH` for each client avatar it owns and `avatar_in_flight ID EPOCH` for each
/// it handed off and awaits DONE for (none while its run is tentative).
pub fn avatars_text(snapshots: &[Snapshot]) -> String {
    let mut out = String::new();
    for s in snapshots {
        zone_line(&mut out, s);
        if s.tentative {
            continue;
        }
        for (id, epoch) in &s.avatars {
            let _ = writeln!(out, "avatar {id} {epoch}");
        }
        for (id, epoch) in &s.avatars_in_flight {
            let _ = writeln!(out, "avatar_in_flight {id} {epoch}");
        }
    }
    out
}

/// One status line for the whole node: per zone entities, ghosts, clients and tick
/// percentiles; handoffs per second and their latency p99 (crossing → DONE, the worst
/// zone's, as a histogram bucket bound); sessions; packets and bytes; drops. `previous` is
/// a second earlier.
pub fn status_line(
    name: &str,
    elapsed: Duration,
    now: &[ZoneStats],
    previous: &[ZoneStats],
) -> String {
    let mut line = format!("[{name} {:>4}s]", elapsed.as_secs());
    let (mut handoffs, mut handoff_p99_s, mut sessions) = (0, 0.0f64, 0);
    let (mut pin, mut pout, mut bin, mut bout, mut drops) = (0, 0, 0, 0, 0);
    for (s, p) in now.iter().zip(
        previous
            .iter()
            .chain(std::iter::repeat(&ZoneStats::default())),
    ) {
        let _ = write!(
            line,
            " z{}: {} ent {} gh {} cl tick p50 {:.1} p99 {:.1} max {:.1} ms |",
            s.zone,
            s.entities,
            s.ghosts,
            s.sessions,
            s.tick_p50_us as f64 / 1000.0,
            s.tick_p99_us as f64 / 1000.0,
            s.tick_max_us as f64 / 1000.0
        );
        handoffs += s.counters.departures.saturating_sub(p.counters.departures);
        let latency = &s.histograms.handoff_seconds;
        let second = latency.since(&p.histograms.handoff_seconds);
        handoff_p99_s = handoff_p99_s.max(second.quantile_bound(0.99));
        sessions += s.sessions;
        pin += s.packets_in.saturating_sub(p.packets_in);
        pout += s.packets_out.saturating_sub(p.packets_out);
        bin += s.bytes_in.saturating_sub(p.bytes_in);
        bout += s.bytes_out.saturating_sub(p.bytes_out);
        drops += s.drops;
    }
    // The histogram's bucket bound: "at most this" (empty second: none).
    let p99 = match handoff_p99_s {
        0.0 => "-".to_owned(),
        s if s.is_infinite() => "> 10 s".to_owned(),
        s => format!("≤ {:.0} ms", s * 1000.0),
    };
    let _ = write!(
        line,
        " handoffs {handoffs}/s p99 {p99} | sessions {sessions} | in {pin} pkt {:.1} MB | out {pout} pkt {:.1} MB | drops {drops}",
        bin as f64 / 1e6,
        bout as f64 / 1e6
    );
    line
}

impl Admin {
    fn mesh_view(&self) -> Option<crate::mesh::MeshView> {
        let view = self.mesh.as_ref()?;
        Some(view.lock().expect("mesh view").clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_shows_the_last_seconds_handoff_p99_and_sessions() {
        let mut before = ZoneStats::default();
        for _ in 0..100 {
            before.histograms.handoff_seconds.record(4.0);
        }
        let mut now = before.clone();
        now.sessions = 3;
        for k in 0..100 {
            // 98 within 75 ms, 2 slower: the 99th percentile is in the 100 ms bucket.
            let seconds = if k < 98 { 0.06 } else { 0.09 };
            now.histograms.handoff_seconds.record(seconds);
        }
        let line = status_line("n", Duration::from_secs(1), &[now.clone()], &[before]);
        // The older handoffs (4 s each) are not in this second's p99.
        assert!(line.contains("p99 ≤ 100 ms"), "{line}");
        assert!(line.contains("sessions 3"), "{line}");
        let idle = status_line("n", Duration::from_secs(1), &[now.clone()], &[now]);
        assert!(idle.contains("handoffs 0/s p99 -"), "{idle}");
    }
}
