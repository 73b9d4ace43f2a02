//! Moving a zone that runs here to its standby on purpose (docs/mesh.md, "Moving a zone
//! on purpose"): to drain this node, or to bring a zone home. Asked through the admin
//! endpoint (`/move?zone=Z`, [`MoveBox`]); the failover thread carries it out:
//!
//! 1. only a zone whose standby is current (it holds everything, and the zone's datagrams
//!    wait for it) and whose standby node this node sees alive is moved;
//! 2. the zone stops after its tick, writes a final checkpoint and ends its stream with
//!    a claim its standby acknowledges once it holds all of it
//!    (`meridian_io::runtime::Node::stop_for_move`);
//! 3. acknowledged: this node keeps the zone's standby from then on, as a node that came
//!    back does, and asks the mesh's vote `Ended` — every node then takes a takeover of
//!    that copy as it would after this node's death — again every second until the
//!    zone's new run, on the standby's node, streams here (its hello names a newer run);
//! 4. not acknowledged in time, or not taken over within [`TAKEN_WITHIN`], or its
//!    standby's node declared down meanwhile: the zone runs here again, as its next run
//!    (from this node's own files, which hold everything: nothing is lost). Should the
//!    standby take it over after all, the run here waits for that standby like any
//!    restart and stands down when told — the gate keeps it from sending meanwhile.
//!
//! With `[mesh] move_home_after_s` the node also moves zones home on its own: a zone
//! running here whose home (the world file's node) is another node that stopped or died
//! since — after a failover or a rolling restart — and whose standby is that node, once
//! the node is back and the standby has been current that long without a break
//! ([`Homeward`]). Not a zone an operator moved away from a home that runs on (a drain):
//! that one stays until its home restarts. Only toward home: a zone at home never moves
//! on its own, so two nodes cannot hand a zone back and forth. A move home that does not
//! happen (refused, or given up) is tried again after the same wait; a home that is not
//! steady doubles it (`homeward`).

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian_core::mesh::Liveness;
use meridian_core::mesh::votes::Ask;
use meridian_core::world::ZoneID;
use meridian_io::runtime::{Node, StandbyState};
use meridian_io::standby::StandbyServer;
use meridian_io::store::DataDir;

use super::homeward::{self, Homeward, Homing, Look};
use super::resume::keep_standby;
use super::{Layout, Watched};
use crate::mesh::{MeshView, VoteBox};

/// A moved zone not running on its standby's node this long after its end was announced
/// runs here again.
const TAKEN_WITHIN: Duration = Duration::from_secs(10);
/// The end is announced again this often until the zone runs on the standby's node.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);

/// What the admin endpoint hands the failover thread: a zone to move, and where to say
/// whether the move began (or why not).
pub(super) type MoveRequest = (ZoneID, Sender<Result<String, String>>);

/// Where the admin endpoint asks for moves, and sees those under way.
#[derive(Clone, Debug)]
pub struct MoveBox {
    asks: Sender<MoveRequest>,
    /// One `/status` line per move under way, renewed at every step of the thread.
    under_way: Arc<Mutex<Vec<String>>>,
    counts: Arc<Mutex<MoveCounts>>,
}

/// The moves of zones that ran here, since the node started (`/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MoveCounts {
    /// Moves begun: asked through `/move`, or home on the node's own.
    pub begun: u64,
    /// Of those, begun on the node's own (`[mesh] move_home_after_s`).
    pub home: u64,
    /// Moves asked through `/move` and refused (the reason in the answer).
    pub refused: u64,
    /// Moves done: the zone runs on its standby's node.
    pub done: u64,
    /// Moves given up: the zone runs here again.
    pub given_up: u64,
    /// Moves under way now.
    pub under_way: u64,
}

impl MoveBox {
    /// The moves under way, as `/status` lines: `moving zone Z to NODE stopping` (the zone
    /// stops, its standby acknowledging) or `… announced S` (its end announced S seconds
    /// ago, the standby to take it over); with `[mesh] move_home_after_s`, one line per
    /// zone running here away from its home: `zone Z away from home NODE: moves home in
    /// S` or `…: stays (why)`.
    pub fn status_lines(&self) -> Vec<String> {
        self.under_way.lock().expect("moves").clone()
    }

    /// The moves so far.
    pub fn counts(&self) -> MoveCounts {
        *self.counts.lock().expect("move counts")
    }

    /// Asks to move `zone` to its standby: `Ok` with what began, or why it cannot.
    pub fn ask(&self, zone: ZoneID) -> Result<String, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.asks
            .send((zone, tx))
            .map_err(|_| "the failover thread has stopped".to_owned())?;
        rx.recv_timeout(Duration::from_secs(2))
            .map_err(|_| "the failover thread did not answer".to_owned())?
    }
}

/// A move under way.
#[derive(Debug)]
struct Moving {
    zone: ZoneID,
    /// The standby's node, by index.
    to: usize,
    /// The stopped run, once its stop ended with the standby holding all of it; when
    /// its end was first and last announced.
    run: Option<u32>,
    announced: Option<(Instant, Instant)>,
}

/// The moves of this node.
#[derive(Debug)]
pub(super) struct Moves {
    asked: Receiver<MoveRequest>,
    shown: Arc<Mutex<Vec<String>>>,
    counts: Arc<Mutex<MoveCounts>>,
    under_way: Vec<Moving>,
    /// Stops the node reported that were looked at.
    stops_seen: usize,
    homeward: Homeward,
    /// One `/status` line per zone running here away from its home (with `[mesh]
    /// move_home_after_s`).
    homing: Vec<String>,
}

impl Moves {
    pub(super) fn new() -> (Moves, MoveBox) {
        let (tx, rx) = std::sync::mpsc::channel();
        let shown = Arc::new(Mutex::new(Vec::new()));
        let counts = Arc::new(Mutex::new(MoveCounts::default()));
        let moves = Moves {
            asked: rx,
            shown: shown.clone(),
            counts: counts.clone(),
            under_way: Vec::new(),
            stops_seen: 0,
            homeward: Homeward::default(),
            homing: Vec::new(),
        };
        let box_ = MoveBox {
            asks: tx,
            under_way: shown,
            counts,
        };
        (moves, box_)
    }

    /// One look: moves asked for (or due home) begin, stops that ended are announced (or
    /// undone), and announced ones end once the zone runs on its standby's node (or are
    /// undone).
    pub(super) fn step(
        &mut self,
        view: &MeshView,
        (layout, votes): (&Layout, &VoteBox),
        watched: &mut Vec<Watched>,
        kept: (&Arc<StandbyServer>, &Arc<DataDir>),
        node: &Node,
    ) {
        while let Ok((zone, reply)) = self.asked.try_recv() {
            let began = self.begin(zone, view, layout, node);
            bump(&self.counts, |c| match began {
                Ok(_) => c.begun += 1,
                Err(_) => c.refused += 1,
            });
            let _ = reply.send(began);
        }
        if let Some(after) = layout.move_home_after {
            self.move_home(after, view, layout, node);
        }
        self.stops_ended(layout, watched, kept, node);
        self.announced(view, (layout, votes), watched, kept, node);
        let lines = self.under_way.iter().map(|m| {
            let to = &layout.nodes[m.to].0;
            match m.announced {
                Some((first, _)) => format!(
                    "moving zone {} to {to} announced {:.1}",
                    m.zone,
                    first.elapsed().as_secs_f64()
                ),
                None => format!("moving zone {} to {to} stopping", m.zone),
            }
        });
        *self.shown.lock().expect("moves") = lines.chain(self.homing.iter().cloned()).collect();
        let under_way = self.under_way.len() as u64;
        bump(&self.counts, |c| c.under_way = under_way);
    }

    /// Zones that can move home and have waited their wait begin to ([`Homeward`]).
    fn move_home(&mut self, after: Duration, view: &MeshView, layout: &Layout, node: &Node) {
        let moving: Vec<ZoneID> = self.under_way.iter().map(|m| m.zone).collect();
        let looks = homes_seen(view, layout, node, &moving);
        let looked = self.homeward.due(Instant::now(), after, &looks);
        let home_name = |zone| {
            layout
                .home_of(zone)
                .map_or("?", |h| layout.nodes[h].0.as_str())
        };
        self.homing = looked
            .away
            .iter()
            .filter(|(zone, _)| !moving.contains(zone))
            .map(|&(zone, homing)| {
                let home = home_name(zone);
                match homing {
                    Homing::In(left) => format!(
                        "zone {zone} away from home {home}: moves home in {:.1}",
                        left.as_secs_f64()
                    ),
                    Homing::NotBack => format!(
                        "zone {zone} away from home {home}: stays ({home} not back since the zone left)"
                    ),
                    Homing::NotCurrent => format!(
                        "zone {zone} away from home {home}: stays (its standby there not current)"
                    ),
                }
            })
            .collect();
        for u in looked.unsteady {
            let (zone, home) = (u.zone, home_name(u.zone));
            tracing::warn!(%zone, "zone {zone} runs here again {:.0?} after it went home to node {home}: that node is not steady, so the zone waits {:?} before it goes home again (doubled, at most {}x [mesh] move_home_after_s; a zone home for {:?} starts over)", u.home_for, u.wait, 1 << homeward::MOST_DOUBLINGS, homeward::STEADY);
        }
        for zone in looked.due {
            if self.under_way.iter().any(|m| m.zone == zone) {
                continue;
            }
            let (home, wait) = (home_name(zone), self.homeward.wait(zone, after));
            match self.begin(zone, view, layout, node) {
                Ok(_) => {
                    bump(&self.counts, |c| {
                        c.begun += 1;
                        c.home += 1;
                    });
                    tracing::warn!(%zone, "zone {zone} moves home to node {home}: the node is back and its standby there has been current for {wait:?} ([mesh] move_home_after_s)");
                }
                Err(e) => {
                    tracing::warn!(%zone, "zone {zone} cannot move home to node {home} now: {e}; trying again in {wait:?}");
                }
            }
        }
    }

    /// Stops the node reported since the last look: held by the standby, the end is to be
    /// announced (and the standby kept here); not, the zone runs here again.
    fn stops_ended(
        &mut self,
        layout: &Layout,
        watched: &mut Vec<Watched>,
        kept: (&Arc<StandbyServer>, &Arc<DataDir>),
        node: &Node,
    ) {
        let stops = node.stopped_for_move();
        let mut undone = Vec::new();
        for stop in &stops[self.stops_seen.min(stops.len())..] {
            let Some(m) = self.under_way.iter_mut().find(|m| m.zone == stop.zone) else {
                continue;
            };
            if stop.held {
                m.run = Some(stop.incarnation);
                // A restart of this node must not resume it from a standby directory.
                if let Err(e) = crate::standby::unmark_running(kept.1, m.zone) {
                    tracing::error!(zone = %m.zone, "cannot remove the marker that zone {} runs here: {e}", m.zone);
                }
                let name = &layout.nodes[m.to].0;
                tracing::warn!(zone = %m.zone, incarnation = stop.incarnation, "zone {} stopped and its standby on node {name} holds all of it: announcing the end of incarnation {}", m.zone, stop.incarnation);
                // Kept from now: the zone's new run streams here from its start, and its
                // hello is how this node learns the move is done.
                keep_standby(m.zone, layout, watched, kept, Some(stop.incarnation + 1));
            } else {
                tracing::error!(zone = %m.zone, "zone {} stopped to move, but its standby did not acknowledge all of it within a second: running it here again", m.zone);
                run_here_again(m.zone, layout, kept.1, node);
                undone.push(m.zone);
            }
        }
        bump(&self.counts, |c| c.given_up += undone.len() as u64);
        self.stops_seen = stops.len();
        self.under_way.retain(|m| !undone.contains(&m.zone));
    }

    /// Moves whose end is announced: done once the zone's new run streams here, undone
    /// (the zone runs here again) if not within [`TAKEN_WITHIN`] or the standby's node is
    /// declared down, announced again every [`ANNOUNCE_EVERY`] meanwhile.
    fn announced(
        &mut self,
        view: &MeshView,
        (layout, votes): (&Layout, &VoteBox),
        watched: &mut Vec<Watched>,
        kept: (&Arc<StandbyServer>, &Arc<DataDir>),
        node: &Node,
    ) {
        let me = layout.me as u16;
        let mut done = Vec::new();
        for (k, m) in self.under_way.iter_mut().enumerate() {
            let Some(run) = m.run else { continue };
            let (name, now) = (&layout.nodes[m.to].0, Instant::now());
            let moved = kept.0.newest_run(m.zone.0).is_some_and(|r| r > run);
            let down = view
                .peers
                .iter()
                .any(|p| &p.name == name && p.liveness == Liveness::Down);
            let first = m.announced.map_or(now, |a| a.0);
            if moved {
                tracing::warn!(zone = %m.zone, "zone {} runs on node {name} now and streams here: the move is done", m.zone);
                // A restart keeps the standby rather than restore this node's files.
                if layout.home_of(m.zone) == Some(layout.me)
                    && let Err(e) = crate::standby::mark_kept(kept.1, m.zone)
                {
                    tracing::error!(zone = %m.zone, "cannot write the marker that zone {}'s standby is kept here: {e}", m.zone);
                }
                if layout.home_of(m.zone) == Some(m.to) {
                    self.homeward.went_home(m.zone, now);
                }
                bump(&self.counts, |c| c.done += 1);
                done.push(k);
            } else if down || now.duration_since(first) > TAKEN_WITHIN {
                tracing::error!(zone = %m.zone, "zone {} did not start on node {name} (declared down: {down}): running it here again", m.zone);
                // Not the standby of it any more: its copy here is not what runs.
                watched.retain(|w| w.zone != m.zone);
                kept.0.release(m.zone.0, Duration::from_secs(2));
                run_here_again(m.zone, layout, kept.1, node);
                bump(&self.counts, |c| c.given_up += 1);
                done.push(k);
            } else if m
                .announced
                .is_none_or(|a| now.duration_since(a.1) >= ANNOUNCE_EVERY)
            {
                let ended = Ask::Ended {
                    zone: m.zone.0,
                    incarnation: run,
                    primary: me,
                };
                // The answer does not matter: a standby that heard it asks its own vote.
                drop(votes.ask(ended));
                m.announced = Some((first, now));
            }
        }
        for k in done.into_iter().rev() {
            self.under_way.remove(k);
        }
    }

    /// Begins moving `zone` if it can move now: what began, or why not.
    fn begin(
        &mut self,
        zone: ZoneID,
        view: &MeshView,
        layout: &Layout,
        node: &Node,
    ) -> Result<String, String> {
        if self.under_way.iter().any(|m| m.zone == zone) {
            return Err(format!("zone {zone} is moving already"));
        }
        let Some((incarnation, state, _)) = node.standby_state(zone) else {
            return Err(format!(
                "zone {zone} does not run on this node, or has no standby"
            ));
        };
        if state != StandbyState::Current {
            return Err(format!(
                "zone {zone}'s standby is not current ({state:?}): it must hold everything \
                 before the zone can move to it"
            ));
        }
        let Some(to) = layout.other(zone) else {
            return Err(format!(
                "the world file names no other node for zone {zone}"
            ));
        };
        let name = &layout.nodes[to].0;
        let alive = view
            .peers
            .iter()
            .any(|p| &p.name == name && p.liveness == Liveness::Alive);
        if !alive {
            return Err(format!(
                "zone {zone}'s standby node {name} is not seen alive"
            ));
        }
        if !node.stop_for_move(zone) {
            return Err(format!("zone {zone} does not run on this node"));
        }
        self.under_way.push(Moving {
            zone,
            to,
            run: None,
            announced: None,
        });
        tracing::warn!(%zone, incarnation, "moving zone {zone} (incarnation {incarnation}) to its standby on node {name}: it stops after its tick");
        Ok(format!(
            "moving zone {zone} (incarnation {incarnation}) to node {name}: see /status\n"
        ))
    }
}

/// A zone that stopped to move and did not runs here again: one of this node's own from
/// its own files, one it ran from its standby directory from there, with the marker
/// that says so (as a takeover's run).
fn run_here_again(zone: ZoneID, layout: &Layout, dir: &Arc<DataDir>, node: &Node) {
    let result = if layout.home_of(zone) == Some(layout.me) {
        node.restart_own(zone)
    } else {
        let target = layout.other_target(zone).map(|(_, t)| t);
        let mark = |incarnation: u32| -> Result<(), String> {
            crate::standby::mark_running(dir, zone, incarnation).map_err(|e| e.to_string())
        };
        node.promote(zone, dir.clone(), &mark, target, 0)
    };
    match result {
        Ok(incarnation) => {
            tracing::warn!(%zone, incarnation, "zone {zone} runs here again as incarnation {incarnation}")
        }
        Err(e) => tracing::error!(%zone, "zone {zone} cannot run here again: {e}"),
    }
}

/// What [`Homeward`] looks at: every zone whose home is another node, with what
/// membership says of that node, whether the zone runs here, and whether its standby
/// there is current (the standby of a zone away from home is its home node:
/// `Layout::other`).
/// A zone moving from here counts as running here: stopped, it is not, and if the move is
/// given up it must come back with the generation it left its home with, or it would wait
/// for a restart of its home that never comes.
fn homes_seen(view: &MeshView, layout: &Layout, node: &Node, moving: &[ZoneID]) -> Vec<Look> {
    let mut looks = Vec::new();
    for &zone in &layout.zones {
        let Some(h) = layout.home_of(zone).filter(|&h| h != layout.me) else {
            continue;
        };
        let state = node.standby_state(zone).map(|(_, state, _)| state);
        let peer = view.peers.iter().find(|p| p.name == layout.nodes[h].0);
        looks.push(Look {
            zone,
            generation: peer.map_or(0, |p| p.generation),
            alive: peer.is_some_and(|p| p.liveness == Liveness::Alive),
            // From the run's start, not its first tick: a home back between the two
            // (its node restarted within ~0.1 s of the takeover) was first seen in its new
            // generation, taken for the one the zone left, and the zone never went home
            // (CI, session 49: `a_zone_moves_home_on_its_own_once_its_node_is_back`).
            runs_here: node.runs(zone) || moving.contains(&zone),
            current: state == Some(StandbyState::Current),
        });
    }
    looks
}

/// Counts something in `counts` (`/metrics`).
fn bump(counts: &Mutex<MoveCounts>, f: impl FnOnce(&mut MoveCounts)) {
    f(&mut counts.lock().expect("move counts"));
}
