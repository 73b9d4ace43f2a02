//! Failover in the node (docs/mesh.md): a thread that watches what membership believes
//! and promotes the zones this node keeps the standby of when their node is declared
//! down — only while this node sees a majority of the world's nodes alive (itself
//! included), so a node cut off alone, or either half of a two-node world, never takes a
//! zone over from a stale copy.
//!
//! A promotion: the standby listener stops mirroring the zone (its old primary's stream
//! is ended and refused from then on: the old primary, if it lives behind a cut, can no
//! longer get an acknowledgement, so it hands nothing away), the zone's files are read,
//! the mesh is asked to agree to the takeover as the next incarnation (refused if the
//! primary dropped this standby: its copy is stale), and the zone starts here on its
//! standby address. The other nodes route to it from its first datagram
//! (`meridian_io::runtime::routes`).
//!
//! The thread also guards the zones running here ([`guard`]): when a zone's standby node
//! is declared down it asks the mesh to agree to go on without it, and drops it once a
//! majority did (the zone's datagrams stop waiting for it); when that node is back, it
//! streams the zone to it again and, once the standby holds the zone, tells the mesh the
//! standby is current (so it may take the zone over again). A new run tells the mesh the
//! same once its standby holds its first state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian_core::mesh::votes::Ask;
use meridian_core::mesh::{Liveness, VOTE_TIMEOUT};
use meridian_core::world::ZoneID;
use meridian_io::runtime::{Node, StandbyState};
use meridian_io::standby::{StandbyServer, StandbyTarget};
use meridian_io::store::DataDir;

use crate::mesh::{MeshView, VoteBox};

/// How often the thread looks at membership.
const POLL: Duration = Duration::from_millis(20);
/// A promotion or an ask that failed is tried again after this long, twice as long after
/// each failure in a row, up to [`RETRY_MAX`].
const RETRY: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// When to try again after failures in a row.
#[derive(Clone, Copy, Debug, Default)]
struct Retry {
    at: Option<Instant>,
    wait: Duration,
}

impl Retry {
    /// Whether it is time to try (again).
    fn due(&self) -> bool {
        self.at.is_none_or(|t| Instant::now() >= t)
    }

    /// It failed: returns how long until the next try.
    fn failed(&mut self) -> Duration {
        self.wait = (self.wait * 2).clamp(RETRY, RETRY_MAX);
        self.at = Some(Instant::now() + self.wait);
        self.wait
    }

    fn succeeded(&mut self) {
        *self = Retry::default();
    }
}

/// A zone this node took over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    pub zone: ZoneID,
    pub incarnation: u32,
    /// Milliseconds from the primary's node being declared down (as this node saw it) to
    /// the zone running here.
    pub took_ms: u64,
}

/// What the failover thread shares: the promotions so far.
pub type Promotions = Arc<Mutex<Vec<Promotion>>>;

/// One kept zone: the node hosting it, whether this node took it over (and gave it a
/// standby since), and when a promotion last failed.
struct Watched {
    zone: ZoneID,
    primary: String,
    promoted: bool,
    attached: bool,
    retry: Retry,
}

/// What the thread needs of the world file.
#[derive(Clone, Debug)]
pub struct Layout {
    pub world_id: u64,
    /// This node's index.
    pub me: usize,
    /// Every zone of the world.
    pub zones: Vec<ZoneID>,
    /// Every node: name, control address, public key.
    pub nodes: Vec<(String, std::net::SocketAddr, ed25519_dalek::VerifyingKey)>,
    /// Each zone's standby node, by index.
    pub standby_node: Vec<(ZoneID, usize)>,
    /// Each zone's home node (the world file's), by index.
    pub home_node: Vec<(ZoneID, usize)>,
}

impl Layout {
    /// The node `zone` runs on when it does not run here, by the world file: its standby
    /// node if it is this node's own zone, else its home node.
    fn other(&self, zone: ZoneID) -> Option<usize> {
        match self.home_of(zone) {
            Some(home) if home == self.me => self
                .standby_node
                .iter()
                .find(|(z, _)| *z == zone)
                .map(|&(_, n)| n),
            home => home,
        }
    }

    /// The node `zone` is placed on in the world file.
    fn home_of(&self, zone: ZoneID) -> Option<usize> {
        self.home_node
            .iter()
            .find(|(z, _)| *z == zone)
            .map(|&(_, n)| n)
    }

    /// Where the standby stream of `zone` goes when it runs here: [`Layout::other`].
    fn other_target(&self, zone: ZoneID) -> Option<(usize, StandbyTarget)> {
        let n = self.other(zone)?;
        let (_, addr, key) = &self.nodes[n];
        Some((
            n,
            StandbyTarget {
                addr: *addr,
                key: *key,
            },
        ))
    }
}

/// The running failover thread.
#[derive(Debug)]
pub struct Failover {
    pub promotions: Promotions,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Failover {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Failover {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Whether `alive` nodes (this one included) of `nodes` are a majority.
pub fn majority(alive: usize, nodes: usize) -> bool {
    2 * alive > nodes
}

/// Watches `mesh` and promotes the zones of `kept` (zone, the name of the node hosting it)
/// through `server`, `dir` and `node`, asking `votes` first; guards the zones running here.
pub fn start(
    (kept, resumed, kept_back): (Vec<(ZoneID, String)>, Vec<ZoneID>, Vec<ZoneID>),
    layout: Layout,
    (mesh, votes): (Arc<Mutex<MeshView>>, VoteBox),
    standbys: (Arc<StandbyServer>, Arc<DataDir>),
    node: Arc<Node>,
) -> std::io::Result<Failover> {
    let promotions = Promotions::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut watched: Vec<Watched> = kept
        .into_iter()
        .map(|(zone, primary)| Watched {
            zone,
            primary,
            promoted: false,
            attached: false,
            retry: Retry::default(),
        })
        .collect();
    let thread = {
        let (promotions, stop) = (promotions.clone(), stop.clone());
        std::thread::Builder::new()
            .name("failover".into())
            .spawn(move || {
                let mut stood_down = 0;
                let mut guards = HashMap::new();
                let mut unconfirmed = resume(&resumed, &layout, &mut watched, &standbys, &node);
                for &zone in &kept_back {
                    let kept = (&standbys.0, &standbys.1);
                    if !keep_standby(zone, &layout, &mut watched, kept, None) {
                        tracing::error!(%zone, "zone {zone} stood down when this node last ran, but its standby cannot be kept (the world file names no other node for it, or it is kept already): this node neither runs it nor keeps its copy");
                    }
                }
                while !stop.load(Ordering::SeqCst) {
                    let view = mesh.lock().expect("mesh view").clone();
                    let ctx = (&layout, &votes);
                    step(&view, ctx, &mut watched, &standbys, &node, &promotions);
                    confirm(&mut unconfirmed, &standbys.0, &node);
                    let done = (&mut stood_down, &resumed[..]);
                    rejoin(&layout, done, &mut watched, &standbys, &node);
                    attach(&view, &layout, &mut watched, &node);
                    guard(&view, ctx, &mut guards, &node);
                    std::thread::sleep(POLL);
                }
            })?
    };
    Ok(Failover {
        promotions,
        stop,
        thread: Some(thread),
    })
}

/// Crash-test pauses (unset in production), so tests can land a kill inside a takeover:
/// `MERIDIAN_MARKED_PAUSE_MS` after the vote passed and the runs-here marker is written,
/// before the zone's files are opened; `MERIDIAN_TAKEOVER_PAUSE_MS` after the zone taken
/// over starts running here, before the takeover is reported.
fn crash_test_pause(var: &str) {
    if let Some(ms) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// This node and the peers it sees alive (suspects do not count).
fn alive(view: &MeshView) -> usize {
    1 + view
        .peers
        .iter()
        .filter(|p| p.liveness == Liveness::Alive)
        .count()
}

/// One look at membership: promotes every kept zone whose node is down, if this node sees
/// a majority and the mesh agrees.
fn step(
    view: &MeshView,
    (layout, votes): (&Layout, &VoteBox),
    watched: &mut [Watched],
    (server, dir): &(Arc<StandbyServer>, Arc<DataDir>),
    node: &Node,
    promotions: &Promotions,
) {
    let (alive, nodes) = (alive(view), layout.nodes.len());
    for w in watched.iter_mut().filter(|w| !w.promoted) {
        let Some(peer) = view.peers.iter().find(|p| p.name == w.primary) else {
            continue;
        };
        if peer.liveness != Liveness::Down || !w.retry.due() {
            continue;
        }
        if !majority(alive, nodes) {
            tracing::warn!(zone = %w.zone, "node {} is declared down, but this node sees only {alive} of {nodes} nodes alive: no takeover without a majority", w.primary);
            w.retry.failed();
            continue;
        }
        let began = Instant::now();
        tracing::warn!(zone = %w.zone, "node {} is declared down: taking zone {} over from its standby copy", w.primary, w.zone);
        if !server.release(w.zone.0, Duration::from_secs(2)) {
            let wait = w.retry.failed();
            tracing::error!(zone = %w.zone, "the zone's standby streams did not end within 2 s; trying again in {wait:?}");
            continue;
        }
        let primary = layout.nodes.iter().position(|n| n.0 == w.primary);
        // Whether this attempt wrote the marker (and must remove it if it fails after),
        // and the run it asked the mesh for (withdrawn if it fails).
        let marked = std::cell::Cell::new(false);
        let asked = std::cell::Cell::new(None);
        let approve = |incarnation: u32| -> Result<(), String> {
            asked.set(Some(incarnation));
            let ask = Ask::Promote {
                zone: w.zone.0,
                incarnation,
                standby: layout.me as u16,
                primary: primary.unwrap_or(usize::from(u16::MAX)) as u16,
            };
            match votes
                .ask(ask)
                .recv_timeout(VOTE_TIMEOUT + Duration::from_secs(1))
            {
                Ok(true) => {
                    // Durable before the run starts: once it ticks, others hear of it, and
                    // a restart must run it again — not wait as its standby while an
                    // older run of the zone resumes with the same number.
                    match crate::standby::mark_running(dir, w.zone, incarnation) {
                        Ok(()) => {
                            marked.set(true);
                            crash_test_pause("MERIDIAN_MARKED_PAUSE_MS");
                        }
                        Err(e) => {
                            tracing::error!(zone = %w.zone, "cannot write the marker that zone {} runs here from {} (a restart would not resume it): {e}", w.zone, dir.path().display())
                        }
                    }
                    Ok(())
                }
                Ok(false) => Err(format!(
                    "the other nodes did not agree to the takeover as incarnation \
                     {incarnation}: its primary went on without this standby (the copy here \
                     is stale), or they do not see node {} down",
                    w.primary
                )),
                Err(_) => Err("the mesh did not answer the vote".into()),
            }
        };
        match node.promote(w.zone, dir.clone(), &approve, None, 0) {
            Ok(incarnation) => {
                // Runs here again: a restart resumes it (the runs-here marker), and no
                // longer keeps only its standby.
                if let Err(e) = crate::standby::unmark_kept(dir, w.zone) {
                    tracing::error!(zone = %w.zone, "cannot remove the marker that zone {}'s standby is kept here: {e}", w.zone);
                }
                server.taken_over(w.zone.0, incarnation);
                crash_test_pause("MERIDIAN_TAKEOVER_PAUSE_MS");
                let took_ms = peer.for_ms + began.elapsed().as_millis() as u64;
                tracing::warn!(zone = %w.zone, incarnation, "zone {} runs here now as incarnation {incarnation}, {took_ms} ms after its node was declared down", w.zone);
                w.promoted = true;
                promotions.lock().expect("promotions").push(Promotion {
                    zone: w.zone,
                    incarnation,
                    took_ms,
                });
            }
            Err(e) => {
                server.unrelease(w.zone.0);
                if let Some(incarnation) = asked.get() {
                    // Whatever the others agreed to, this node will not act on it: a
                    // promise a majority holds unknown to it (answers lost) would keep
                    // the zone's primary from ever dropping this standby.
                    let _ = votes.ask(Ask::Withdraw {
                        zone: w.zone.0,
                        incarnation,
                        standby: layout.me as u16,
                    });
                }
                if marked.get()
                    && let Err(e) = crate::standby::unmark_running(dir, w.zone)
                {
                    tracing::error!(zone = %w.zone, "cannot remove the marker that zone {} runs here: {e}", w.zone);
                }
                let wait = w.retry.failed();
                tracing::error!(zone = %w.zone, "cannot take the zone over: {e}; trying again in {wait:?}");
            }
        }
    }
}

/// The zones this node ran from its standby directory when it stopped (it took them over
/// or back) run from there again, as the next incarnation. No vote: this is a restart of
/// this node's own run, like a primary restarting from its own directory — and, like it,
/// it streams from the start to the node the zone runs on otherwise ([`Layout::other`]),
/// and nothing it sends leaves before that node's answer: if that node runs the zone now
/// (it took it over or back meanwhile), `TakenOver` stands this run down ([`rejoin`]).
/// Until the run is confirmed ([`confirm`]) this node answers `TakenOver` only to a run
/// older than its own: two nodes that each resumed a run (each ran the zone when it
/// stopped: one took it over or back from the other, which was down) would otherwise each
/// wait for the other, or each stand the other down; the newer run is the one the mesh
/// agreed to last. Returns the runs resumed, as (zone, incarnation).
fn resume(
    resumed: &[ZoneID],
    layout: &Layout,
    watched: &mut Vec<Watched>,
    (server, dir): &(Arc<StandbyServer>, Arc<DataDir>),
    node: &Node,
) -> Vec<(ZoneID, u32)> {
    let mut runs = Vec::new();
    for &zone in resumed {
        let Some((other, target)) = layout.other_target(zone) else {
            tracing::error!(%zone, "zone {zone} ran here when this node stopped, but the world file names no other node for it: not resumed");
            continue;
        };
        if !server.release(zone.0, Duration::from_secs(2)) {
            tracing::error!(%zone, "zone {zone} ran here when this node stopped, but its standby streams did not end: not resumed");
            continue;
        }
        // One past the run the marker names: its first files may never have reached the
        // disk (killed between the vote and its first checkpoint), and a resumed run must
        // not carry the number of the run it resumes — an older run of the zone resumed
        // elsewhere with that number would be answered by neither.
        let floor = match crate::standby::marked_incarnation(dir, zone) {
            Ok(marked) => marked.map_or(0, |m| m + 1),
            Err(e) => {
                tracing::error!(%zone, "cannot read the marker that zone {zone} ran here: {e}; resuming as its files say");
                0
            }
        };
        // The marker names the resumed run before it starts, as a takeover's does.
        let mark = |incarnation: u32| -> Result<(), String> {
            if let Err(e) = crate::standby::mark_running(dir, zone, incarnation) {
                tracing::error!(%zone, "cannot write the marker that zone {zone} runs here as incarnation {incarnation}: {e}");
            }
            Ok(())
        };
        match node.promote(zone, dir.clone(), &mark, Some(target), floor) {
            Ok(incarnation) => {
                runs.push((zone, incarnation));
                server.resumed(zone.0, incarnation);
                let name = &layout.nodes[other].0;
                tracing::warn!(%zone, incarnation, "zone {zone} ran here from {} when this node stopped: running it from there again as incarnation {incarnation}, streaming to node {name} (it sends nothing until {name} answers)", dir.path().display());
                watched.retain(|w| w.zone != zone);
                watched.push(Watched {
                    zone,
                    primary: name.clone(),
                    promoted: true,
                    attached: true,
                    retry: Retry::default(),
                });
            }
            Err(e) => {
                server.unrelease(zone.0);
                tracing::error!(%zone, "zone {zone} ran here when this node stopped, but cannot run from {} again: {e}", dir.path().display());
            }
        }
    }
    runs
}

/// A resumed run is confirmed once the node it streams to holds it (that node does not
/// run the zone) or the mesh agreed it goes on without that node (declared down): from
/// then on a node that says hello for the zone is told this node took it over. A run
/// that stood down is dropped from the list. Until the zone's driver has said how its
/// standby stands (its first tick after the promotion) the run waits: dropping it then
/// left it unconfirmed for good, and a node coming back with an older run of the zone
/// was never told to stand down.
fn confirm(unconfirmed: &mut Vec<(ZoneID, u32)>, server: &StandbyServer, node: &Node) {
    let stood_down = node.stood_down();
    unconfirmed.retain(|&(zone, incarnation)| {
        if stood_down.iter().any(|&(z, _)| z == zone) {
            return false;
        }
        match node.standby_state(zone) {
            Some((now, state, _)) if now == incarnation && state != StandbyState::CatchingUp => {
                server.taken_over(zone.0, incarnation);
                tracing::info!(%zone, incarnation, "zone {zone}'s resumed run is confirmed ({state:?}): this node answers for it now");
                false
            }
            _ => true,
        }
    });
}

/// Zones running here stood down (their standbys, or the nodes they were taken from,
/// run them now): this node keeps their standbys now, mirroring from the nodes that run
/// them, and watches those nodes to take the zones back if they die. A zone that stood
/// down a run resumed from the standby directory ([`resume`]) had written that run's
/// first files there: they are moved aside (`discarded-*`), as the copy starts anew
/// from the running node's stream — left, the copy would name a run the mesh never
/// knew, and refuse the real one as stale.
fn rejoin(
    layout: &Layout,
    (handled, resumed): (&mut usize, &[ZoneID]),
    watched: &mut Vec<Watched>,
    (server, dir): &(Arc<StandbyServer>, Arc<DataDir>),
    node: &Node,
) {
    let stood_down = node.stood_down();
    for &(zone, incarnation) in &stood_down[*handled..] {
        if let Err(e) = crate::standby::unmark_running(dir, zone) {
            tracing::error!(%zone, "cannot remove the marker that zone {zone} runs here: {e}");
        }
        let store = dir.zone(layout.world_id, zone);
        if resumed.contains(&zone) {
            match store.discard() {
                Ok(aside) => {
                    tracing::warn!(%zone, "zone {zone}'s run resumed here stood down: its files moved to {}", aside.map_or("(none)".into(), |p| p.display().to_string()))
                }
                Err(e) => {
                    tracing::error!(%zone, "zone {zone}'s run resumed here stood down, but its files cannot be moved aside ({e}): not keeping its standby");
                    continue;
                }
            }
        }
        if keep_standby(zone, layout, watched, (server, dir), Some(incarnation))
            && layout.home_of(zone) == Some(layout.me)
            && let Err(e) = crate::standby::mark_kept(dir, zone)
        {
            tracing::error!(%zone, "cannot write the marker that zone {zone}'s standby is kept here (a restart restores its stale files first): {e}");
        }
    }
    *handled = stood_down.len();
}

/// Keeps the standby of `zone`, which runs on its other node ([`Layout::other`]) —
/// `incarnation` there when known — and watches that node to take the zone back if it
/// dies. Whether the standby server took it.
fn keep_standby(
    zone: ZoneID,
    layout: &Layout,
    watched: &mut Vec<Watched>,
    (server, dir): (&Arc<StandbyServer>, &Arc<DataDir>),
    incarnation: Option<u32>,
) -> bool {
    let Some(host) = layout.other(zone) else {
        return false;
    };
    let (name, _, key) = &layout.nodes[host];
    let kept = meridian_io::standby::Kept {
        zone: zone.0,
        store: dir.zone(layout.world_id, zone),
        primary: *key,
    };
    if !server.keep(kept) {
        return false;
    }
    match incarnation {
        Some(i) => {
            tracing::warn!(%zone, "zone {zone} runs on node {name} now (incarnation {i}): keeping its standby")
        }
        None => {
            tracing::warn!(%zone, "zone {zone} stood down when this node last ran (node {name} runs it): keeping its standby, not restoring this node's stale files of it")
        }
    }
    watched.retain(|w| w.zone != zone);
    watched.push(Watched {
        zone,
        primary: name.clone(),
        promoted: false,
        attached: false,
        retry: Retry::default(),
    });
    true
}

/// A zone this node took over gets a standby again: the node it took it from, once that
/// node is alive (it keeps the zone's standby when it comes back: [`rejoin`]).
fn attach(view: &MeshView, layout: &Layout, watched: &mut [Watched], node: &Node) {
    for w in watched.iter_mut().filter(|w| w.promoted && !w.attached) {
        let alive = view
            .peers
            .iter()
            .any(|p| p.name == w.primary && p.liveness == Liveness::Alive);
        let Some((_, addr, key)) = layout.nodes.iter().find(|n| n.0 == w.primary) else {
            continue;
        };
        if alive {
            let target = meridian_io::standby::StandbyTarget {
                addr: *addr,
                key: *key,
            };
            if node.attach_standby(w.zone, target) {
                tracing::warn!(zone = %w.zone, "node {} is back: streaming zone {} to it as its standby", w.primary, w.zone);
                w.attached = true;
            }
        }
    }
}

/// A zone running here with a standby: what the mesh agreed about it in this run.
struct Guarded {
    incarnation: u32,
    /// The standby's node, by index.
    standby: usize,
    /// This run's asks about the zone so far.
    seq: u32,
    /// The mesh agreed the zone goes on without its standby.
    dropped: bool,
    /// The mesh agreed the standby is current in this run.
    current: bool,
    /// An ask under way: its outcome, and whether it is a drop.
    pending: Option<(Receiver<bool>, bool)>,
    retry: Retry,
}

impl Guarded {
    fn new(incarnation: u32, standby: usize) -> Guarded {
        Guarded {
            incarnation,
            standby,
            seq: 0,
            dropped: false,
            current: false,
            pending: None,
            retry: Retry::default(),
        }
    }
}

/// One look at the zones running here that have (or had) a standby: drops a standby the
/// mesh agreed is down, streams to it again when it is back, and tells the mesh when it
/// is current.
fn guard(
    view: &MeshView,
    (layout, votes): (&Layout, &VoteBox),
    guards: &mut HashMap<ZoneID, Guarded>,
    node: &Node,
) {
    for &zone in &layout.zones {
        let Some((incarnation, state, Some(addr))) = node.standby_state(zone) else {
            guards.remove(&zone);
            continue;
        };
        let Some(standby) = layout.nodes.iter().position(|n| n.1 == addr) else {
            continue;
        };
        let g = guards
            .entry(zone)
            .or_insert_with(|| Guarded::new(incarnation, standby));
        if (g.incarnation, g.standby) != (incarnation, standby) {
            // A new run, or a new standby: nothing agreed about it yet. The asks of one
            // run stay numbered in order (the others refuse one older than they took).
            let seq = if g.incarnation == incarnation {
                g.seq
            } else {
                0
            };
            *g = Guarded {
                seq,
                ..Guarded::new(incarnation, standby)
            };
        }
        if g.outcome(zone, node) && g.retry.due() {
            g.next(zone, state, (view, layout, votes), node);
        }
    }
}

impl Guarded {
    /// Takes the outcome of the ask under way, if any; `false` while it is undecided.
    fn outcome(&mut self, zone: ZoneID, node: &Node) -> bool {
        let Some((outcome, drop)) = &self.pending else {
            return true;
        };
        match outcome.try_recv() {
            Err(TryRecvError::Empty) => return false,
            Ok(true) if *drop => {
                node.drop_standby(zone);
                (self.dropped, self.current) = (true, false);
                self.retry.succeeded();
            }
            Ok(true) => {
                self.current = true;
                self.retry.succeeded();
            }
            Ok(false) | Err(TryRecvError::Disconnected) => {
                let wait = self.retry.failed();
                let what = if *drop {
                    "goes on without its standby"
                } else {
                    "has its standby current"
                };
                tracing::warn!(%zone, "the mesh did not agree that zone {zone} {what}; asking again in {wait:?}");
            }
        }
        self.pending = None;
        true
    }

    /// The next step for `zone`, its standby now `state`: ask to drop a standby declared
    /// down, say a standby holding the zone again is current, stream to a dropped one
    /// that is back.
    fn next(
        &mut self,
        zone: ZoneID,
        state: StandbyState,
        (view, layout, votes): (&MeshView, &Layout, &VoteBox),
        node: &Node,
    ) {
        let (name, control, key) = &layout.nodes[self.standby];
        let liveness = view
            .peers
            .iter()
            .find(|p| &p.name == name)
            .map(|p| p.liveness);
        let (z, incarnation, standby) = (zone.0, self.incarnation, self.standby as u16);
        if !self.dropped && liveness == Some(Liveness::Down) {
            if majority(alive(view), layout.nodes.len()) {
                tracing::warn!(%zone, "node {name}, zone {zone}'s standby, is declared down: asking the mesh to let the zone go on without it");
                self.seq += 1;
                let ask = Ask::Drop {
                    zone: z,
                    incarnation,
                    seq: self.seq,
                    standby,
                };
                self.pending = Some((votes.ask(ask), true));
            }
        } else if !self.dropped && !self.current && state == StandbyState::Current {
            self.seq += 1;
            let ask = Ask::Current {
                zone: z,
                incarnation,
                seq: self.seq,
                standby,
            };
            self.pending = Some((votes.ask(ask), false));
        } else if self.dropped && liveness == Some(Liveness::Alive) && state == StandbyState::None {
            let target = StandbyTarget {
                addr: *control,
                key: *key,
            };
            if node.attach_standby(zone, target) {
                tracing::warn!(%zone, "node {name} is back: streaming zone {zone} to it again as its standby");
                self.dropped = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Retry, majority};
    use std::time::Duration;

    #[test]
    fn a_retry_waits_twice_as_long_after_each_failure_in_a_row() {
        let mut r = Retry::default();
        assert!(r.due());
        let waits: Vec<u64> = (0..7).map(|_| r.failed().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert!(!r.due());
        r.succeeded();
        assert!(r.due());
        assert_eq!(r.failed(), Duration::from_secs(1));
    }

    #[test]
    fn a_majority_is_more_than_half() {
        assert!(!majority(1, 2), "either half of two nodes");
        assert!(!majority(1, 3), "a node cut off alone");
        assert!(majority(2, 3));
        assert!(!majority(2, 4));
        assert!(majority(3, 5));
    }
}
