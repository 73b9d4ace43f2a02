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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian_core::mesh::votes::Ask;
use meridian_core::mesh::{Liveness, VOTE_TIMEOUT};
use meridian_core::world::ZoneID;
use meridian_io::runtime::Node;
use meridian_io::standby::{StandbyServer, StandbyTarget};
use meridian_io::store::DataDir;

use crate::mesh::{MeshView, VoteBox};

mod guard;
mod homeward;
mod moves;
mod promises;
mod resume;

pub use moves::{MoveBox, MoveCounts};

use guard::guard;
use resume::{attach, confirm, keep_standby, rejoin, resume};

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
    /// the zone running here — or, for a zone moved here, from its end being heard.
    pub took_ms: u64,
    /// Whether the zone was moved here on purpose (its run's end heard), not taken over
    /// after its node's death.
    pub moved: bool,
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
    /// `[mesh] move_home_after_s`: how long a zone running here away from its home waits,
    /// its standby there current and that node alive, before it moves home on its own.
    pub move_home_after: Option<Duration>,
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
    /// Where the admin endpoint asks to move a zone running here to its standby.
    pub moves: MoveBox,
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

/// What the node's ledger held at start: its generation (see `crate::mesh`) and its own
/// promises, withdrawn or not.
pub type Promised = (u32, Vec<meridian_core::mesh::votes::Promise>);

/// Watches `mesh` and promotes the zones of `kept` (zone, the name of the node hosting it)
/// through `server`, `dir` and `node`, asking `votes` first; guards the zones running here;
/// withdraws the promises of `promised` it never acted on ([`promises`]).
pub fn start(
    (kept, resumed, kept_back): (Vec<(ZoneID, String)>, Vec<ZoneID>, Vec<ZoneID>),
    (layout, promised): (Layout, Promised),
    (mesh, votes): (Arc<Mutex<MeshView>>, VoteBox),
    standbys: (Arc<StandbyServer>, Arc<DataDir>),
    node: Arc<Node>,
) -> std::io::Result<Failover> {
    let promotions = Promotions::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (mut moves, move_box) = moves::Moves::new();
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
                let mut unacted = match crate::standby::acted_records_since(&standbys.1, promised.0) {
                    Ok(since) => promises::unacted(&promised.1, &standbys.1, since),
                    Err(e) => {
                        tracing::error!("cannot tell since when this node records the runs it took over ({e}): the promises of its own in its ledger are left as they are");
                        Vec::new()
                    }
                };
                for &zone in &kept_back {
                    let kept = (&standbys.0, &standbys.1);
                    if !keep_standby(zone, &layout, &mut watched, kept, None) {
                        tracing::error!(%zone, "zone {zone} stood down when this node last ran, but its standby cannot be kept (the world file names no other node for it, or it is kept already): this node neither runs it nor keeps its copy");
                    }
                }
                while !stop.load(Ordering::SeqCst) {
                    let view = mesh.lock().expect("mesh view").clone();
                    let ctx = (&layout, &votes);
                    let kept = (&standbys.0, &standbys.1);
                    moves.step(&view, ctx, &mut watched, kept, &node);
                    let watching = (&mut watched[..], &mut unacted);
                    step(&view, ctx, watching, &standbys, &node, &promotions);
                    promises::withdraw(&mut unacted, &votes, layout.me);
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
        moves: move_box,
        stop,
        thread: Some(thread),
    })
}

/// Crash-test pauses (unset in production), so tests can land a kill inside a takeover:
/// `MERIDIAN_PROMISED_PAUSE_MS` after a majority agreed to the takeover, before this node
/// asks them to hold that it acts on it; `MERIDIAN_AGREED_PAUSE_MS` after both votes
/// passed, before anything of the takeover is
/// written; `MERIDIAN_MARKED_PAUSE_MS` after the vote passed and the runs-here marker is written,
/// before the zone's files are opened; `MERIDIAN_TAKEOVER_PAUSE_MS` after the zone taken
/// over starts running here, before the takeover is reported.
fn crash_test_pause(var: &str) {
    if let Some(ms) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// Asks the mesh for the takeover `ask` (a promotion), then — agreed — to hold that this
/// node acts on it: `Ok(true)` only once a majority hold both, so the run may start. A
/// promise no majority holds acted on, the zone's primary (alive all along) may have had
/// released (docs/mesh.md, "A limit: a standby that never comes back"): acting on the
/// first majority alone could start a run its primary no longer waits for.
fn agree_takeover(votes: &VoteBox, ask: Ask) -> Result<bool, String> {
    let Ask::Promote {
        zone,
        incarnation,
        standby,
        ..
    } = ask
    else {
        return Err(format!("not a takeover: {ask:?}"));
    };
    let wait = VOTE_TIMEOUT + Duration::from_secs(1);
    let unanswered = |_| "the mesh did not answer the vote".to_owned();
    if !votes.ask(ask).recv_timeout(wait).map_err(unanswered)? {
        return Ok(false);
    }
    crash_test_pause("MERIDIAN_PROMISED_PAUSE_MS");
    let acted = Ask::Acted {
        zone,
        incarnation,
        standby,
    };
    if votes.ask(acted).recv_timeout(wait).map_err(unanswered)? {
        Ok(true)
    } else {
        Err(
            "a majority agreed to the takeover, but no majority held that this node acts \
             on it: the zone's primary, alive, had the promise released"
                .to_owned(),
        )
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
    (watched, unacted): (&mut [Watched], &mut Vec<promises::Unacted>),
    (server, dir): &(Arc<StandbyServer>, Arc<DataDir>),
    node: &Node,
    promotions: &Promotions,
) {
    let (alive, nodes) = (alive(view), layout.nodes.len());
    for w in watched.iter_mut().filter(|w| !w.promoted) {
        let Some(peer) = view.peers.iter().find(|p| p.name == w.primary) else {
            continue;
        };
        // The primary stopped the run this copy is of to move the zone here (`Ended`):
        // taken over as after a death, the votes resting on the end.
        let primary = layout.nodes.iter().position(|n| n.0 == w.primary);
        let copy =
            (primary.zip(server.newest_run(w.zone.0))).map(|(p, run)| (w.zone.0, run, p as u16));
        let ended = copy.is_some_and(|c| view.ended.contains(&c));
        if (peer.liveness != Liveness::Down && !ended) || !w.retry.due() {
            continue;
        }
        if !majority(alive, nodes) {
            tracing::warn!(zone = %w.zone, "node {} is declared down, but this node sees only {alive} of {nodes} nodes alive: no takeover without a majority", w.primary);
            w.retry.failed();
            continue;
        }
        let began = Instant::now();
        if ended {
            tracing::warn!(zone = %w.zone, "node {} stopped zone {} to move it here: taking it over from its standby copy", w.primary, w.zone);
        } else {
            tracing::warn!(zone = %w.zone, "node {} is declared down: taking zone {} over from its standby copy", w.primary, w.zone);
        }
        promises::forget(unacted, w.zone);
        if !server.release(w.zone.0, Duration::from_secs(2)) {
            let wait = w.retry.failed();
            tracing::error!(zone = %w.zone, "the zone's standby streams did not end within 2 s; trying again in {wait:?}");
            continue;
        }
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
            match agree_takeover(votes, ask) {
                Ok(true) => {
                    crash_test_pause("MERIDIAN_AGREED_PAUSE_MS");
                    // Recorded for good first: a restart must never withdraw a promise
                    // this node acted on, even after the run stood down and its marker
                    // went (`promises`).
                    crate::standby::mark_acted(dir, w.zone, incarnation).map_err(|e| {
                        format!(
                            "cannot record in {} that zone {} is taken over: {e}",
                            dir.path().display(),
                            w.zone
                        )
                    })?;
                    // Durable before the run starts: once it ticks, others hear of it, and
                    // a restart must run it again — not wait as its standby while an
                    // older run of the zone resumes with the same number. Without it the
                    // run does not start (and the takeover is withdrawn): a run that ticked
                    // unmarked would be one a restart neither resumes nor can tell from a
                    // takeover never acted on.
                    crate::standby::mark_running(dir, w.zone, incarnation).map_err(|e| {
                        format!(
                            "cannot write the marker that zone {} runs here from {}: {e}",
                            w.zone,
                            dir.path().display()
                        )
                    })?;
                    marked.set(true);
                    crash_test_pause("MERIDIAN_MARKED_PAUSE_MS");
                    Ok(())
                }
                Ok(false) => Err(format!(
                    "the other nodes did not agree to the takeover as incarnation \
                     {incarnation}: its primary went on without this standby (the copy here \
                     is stale), or they do not see node {} down",
                    w.primary
                )),
                Err(e) => Err(e),
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
                let took_ms =
                    began.elapsed().as_millis() as u64 + if ended { 0 } else { peer.for_ms };
                if ended {
                    tracing::warn!(zone = %w.zone, incarnation, "zone {} runs here now as incarnation {incarnation}, moved from node {} ({took_ms} ms after the end was heard)", w.zone, w.primary);
                } else {
                    tracing::warn!(zone = %w.zone, incarnation, "zone {} runs here now as incarnation {incarnation}, {took_ms} ms after its node was declared down", w.zone);
                }
                w.promoted = true;
                promotions.lock().expect("promotions").push(Promotion {
                    zone: w.zone,
                    incarnation,
                    took_ms,
                    moved: ended,
                });
            }
            Err(e) => {
                server.unrelease(w.zone.0);
                if let Some(incarnation) = asked.get() {
                    // Whatever the others agreed to, this node will not act on it: a
                    // promise a majority holds unknown to it (answers lost) would keep
                    // the zone's primary from ever dropping this standby. Withdrawn at
                    // once and asked again until every node holds it ([`promises`]).
                    unacted.push(promises::Unacted::new(w.zone, incarnation));
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
