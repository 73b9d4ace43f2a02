//! A zone moved to its standby on purpose while its node runs on (docs/mesh.md, "Moving
//! a zone"): what an operator does to drain a node or to bring a zone home after a rolling
//! restart. With `Options::moves`, in standby seeds without a node death or a false
//! suspicion, one zone is moved to its standby's node and, later, back to the node it
//! came from — which keeps its standby in between.
//!
//! A move is a leave of one zone:
//! 1. the zone's run stops after its tick and writes a checkpoint of that tick (the
//!    *final* one), which its stream sends the standby like any record;
//! 2. once the standby acknowledges everything the run wrote, the node *announces* that
//!    the run ended — every node learns it over the lossy network, one to three ticks
//!    later, and again every tick until it does; if the acknowledgement does not come
//!    within [`ACK_TICKS`], the move is given up and the zone restarts on its node from
//!    its own files (a clean stop: nothing lost, a new run);
//! 3. the standby that hears of the end asks the mesh to promote its copy, exactly as
//!    after a death: a node agrees when it sees the primary's node down *or* knows that
//!    the run the copy is of ended. An end is as safe as a false suspicion (the run
//!    stopped, and what it sent the standby holds), and a node that has not heard of it
//!    only waits.
//!
//! Unlike a death's takeover nothing is set back: the standby's copy holds the final
//! checkpoint, so the invariants are held to positions and game state going on exactly
//! from where the moved run stopped (`Bugs::move_without_checkpoint` restores the last
//! periodic checkpoint instead: caught as a teleport or a game counter going back).
//!
//! In half the seeds of three nodes or more the standby's node dies while the first move
//! is under way — 1 to 60 ticks after the stop: before it acknowledged the last records,
//! between the end's announcement and the votes, between the votes and its new run, or
//! just after the run started — and in half of those it comes back later
//! ([`super::comeback`]). A dead node asks nothing and acts on nothing it was granted;
//! the node the zone left gives the move up as the node does: when it sees the standby
//! declared down, or [`TAKEN_TICKS`] after the announcement, and runs the zone again
//! itself. In half the other seeds of three nodes or more it is the node the zone left
//! that dies instead, as drawn: before the end was announced the move is a death like
//! any (the standby's copy may lack the last records, and the checks allow what a
//! death's takeover sets back); after it, the standby takes the zone over on the end or
//! on the death, whichever it learns first, and nothing may go back — unless the node
//! came back first and runs the zone again from its files (as the node does), which is
//! then set back like any restarted run a takeover supersedes (seed 52622).

use std::hash::Hash;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::Sim;
use super::rejoin::Rejoin;
use super::standby::Stream;
use crate::mesh::votes::Ask;

/// Ticks a stopped run waits for its standby to acknowledge its last records (the node's
/// clean stop waits up to a second) before it gives the move up.
pub(super) const ACK_TICKS: u64 = 30;

/// Ticks after its end was announced that a moved zone not yet taken over runs on its
/// node again (the node's 10 s).
pub(super) const TAKEN_TICKS: u64 = 300;

/// The moves of a seed: one zone there and back.
#[derive(Debug)]
pub(super) struct Moves {
    zone: usize,
    /// The ticks the moves are asked for, the next first; a move not possible then (the
    /// zone down, its standby not current, a ballot about it out) is asked again every
    /// tick until `last`.
    due: Vec<u64>,
    last: u64,
    /// The move under way.
    pub(super) under_way: Option<Move>,
    /// Every end announced: (zone, run, node), and when each node learnt it.
    ended: Vec<Ended>,
    rng: SmallRng,
    /// The standby's node dies this many ticks after the first move's stop, and whether
    /// it comes back.
    standby_dies: Option<(u64, bool)>,
    /// Instead, the node the zone left dies so many ticks after the stop, and whether it
    /// comes back.
    primary_dies: Option<(u64, bool)>,
    /// What the stopped run held (owned and in flight): a death before the end was
    /// announced may set them back.
    held: Vec<crate::entities::EntityID>,
    seed: u64,
}

/// A move under way.
#[derive(Clone, Copy, Debug)]
pub(super) struct Move {
    pub(super) zone: usize,
    /// The run that stopped, on node `from`.
    pub(super) run: u32,
    pub(super) from: u32,
    pub(super) stopped_at: u64,
    /// The tick the standby held everything and the end was announced.
    announced: Option<u64>,
}

#[derive(Clone, Debug)]
struct Ended {
    zone: usize,
    run: u32,
    node: u32,
    /// Per node: the tick it learnt of the end.
    known_at: Vec<Option<u64>>,
}

impl Moves {
    /// Draws a seed's moves (from a generator of their own, so every other draw stays as
    /// it was): with `on`, in standby seeds with no node death and no false suspicion,
    /// long enough for both moves to settle before the healing phase.
    pub(super) fn draw(
        seed: u64,
        on: bool,
        standbys: &super::standby::Standbys,
        zones: usize,
        fault_end: u64,
    ) -> Option<Moves> {
        let quiet = standbys.death.is_none() && standbys.isolation.is_none();
        if !on || !standbys.active() || !quiet || fault_end < 900 {
            return None;
        }
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x57a9_d8b1_0000_0008);
        let there = rng.random_range(150..fault_end / 2);
        let back = there + rng.random_range(150..=300);
        let zone = rng.random_range(0..zones);
        // From a generator of its own: the draws above stay as they were.
        let mut rng_death = SmallRng::seed_from_u64(seed ^ 0x57a9_d8b1_0000_0009);
        let standby_dies = (standbys.majority_without_one() && rng_death.random_bool(0.5))
            .then(|| (rng_death.random_range(1..=60), rng_death.random_bool(0.5)));
        let mut rng_death = SmallRng::seed_from_u64(seed ^ 0x57a9_d8b1_0000_000a);
        let primary_dies = (standbys.majority_without_one()
            && standby_dies.is_none()
            && rng_death.random_bool(0.5))
        .then(|| (rng_death.random_range(1..=60), rng_death.random_bool(0.5)));
        Some(Moves {
            zone,
            due: vec![there, back],
            last: fault_end - 200,
            under_way: None,
            ended: Vec::new(),
            rng,
            standby_dies,
            primary_dies,
            held: Vec::new(),
            seed,
        })
    }
}

impl Sim {
    /// Every tick: a move begun when due, the one under way taken a step further.
    pub(super) fn moves_step(&mut self, tick: u64) {
        let Some(moves) = self.moves.as_ref() else {
            return;
        };
        if let Some(m) = moves.under_way {
            self.move_goes_on(tick, m);
            return;
        }
        let due = moves
            .due
            .first()
            .is_some_and(|&at| tick >= at && tick <= moves.last);
        let z = moves.zone;
        if due && self.movable(z) {
            self.moves.as_mut().expect("drawn").due.remove(0);
            self.stop_for_move(tick, z);
        }
    }

    /// Whether zone `z` can be moved now: it runs, and its standby is current (not
    /// dropped, not on its way back) and holds everything the run wrote so far (the
    /// stop then waits only for the last tick and the final checkpoint), with no ballot
    /// about the zone out. (A run's node is alive: a zone that waits for its dead node
    /// brings the whole node back, [`Sim::node_restarts`]; until session 46 it ran there
    /// while the node stayed dead, and this asked that the node be alive too — seed 551.)
    fn movable(&self, z: usize) -> bool {
        let current = self.standbys.streams[z]
            .as_ref()
            .is_some_and(|s| !s.dropped && s.rejoin == Rejoin::No && s.acked >= s.written);
        let asking = self.votes_about(z);
        self.zones[z].is_some() && current && !asking
    }

    /// Zone `z`'s run stops after its last tick and writes its final checkpoint, which
    /// its stream sends the standby with whatever it has not acknowledged yet.
    fn stop_for_move(&mut self, tick: u64, z: usize) {
        let mut zone = self.zones[z].take().expect("movable");
        let run = zone.incarnation();
        let held = zone.entities().ids().iter().copied();
        let held: Vec<_> = held.chain(zone.tombstones().map(|t| t.0)).collect();
        // What its mailbox held is lost with the run, counted; the run's counts are kept
        // for the accounting of messages (`Sim::messages_unaccounted`).
        zone.stop_messages();
        let c = zone.counters();
        self.retired_messages += c.game_messages_undeliverable
            + c.game_messages_dropped
            + c.game_messages_unacknowledged;
        if !self.bugs.move_without_checkpoint {
            self.disks[z].final_checkpoint(&zone);
            self.stream_wrote(tick, z, run, 1);
        }
        let from = self.node_of[z];
        ("move: zone stops", tick, z, from).hash(&mut self.hasher);
        self.report.moves += 1;
        if self.trace_entity.is_some() {
            eprintln!("tick {tick}: zone {z} (run {run}) stops on node {from} to move");
        }
        let moves = self.moves.as_mut().expect("drawn");
        moves.held = held;
        moves.under_way = Some(Move {
            zone: z,
            run,
            from,
            stopped_at: tick,
            announced: None,
        });
        self.death_under_way(tick, z);
    }

    /// The first move's stop: the standby's node, or the node the zone left, is set to
    /// die as drawn, and to come back.
    fn death_under_way(&mut self, tick: u64, z: usize) {
        let moves = self.moves.as_mut().expect("drawn");
        let standby = self.standbys.streams[z].as_ref().map(|s| s.node);
        let (death, node) = match (moves.standby_dies.take(), moves.primary_dies.take()) {
            (Some(death), _) => (death, standby),
            (None, Some(death)) => (death, Some(self.node_of[z])),
            (None, None) => return,
        };
        let (seed, (after, back)) = (moves.seed, death);
        let Some(node) = node else { return };
        if self.standbys.death.is_some() || self.comeback.is_some() {
            return;
        }
        self.standbys.death = Some((tick + after, node));
        if Some(node) == standby {
            self.report.move_standby_deaths += 1;
        } else {
            self.report.move_primary_deaths += 1;
        }
        if back {
            self.comeback = super::comeback::Comeback::draw(seed, &self.standbys, Some(true));
        }
        if self.trace_entity.is_some() {
            eprintln!(
                "tick {tick}: node {node} to die at {}, zone {z} moving",
                tick + after
            );
        }
    }

    /// The move under way: its end announced once the standby holds everything, told
    /// to every node until each knows, and the standby's takeover asked.
    fn move_goes_on(&mut self, tick: u64, m: Move) {
        let z = m.zone;
        if self.dead(tick, m.from) {
            self.node_left_died(tick, m);
            return;
        }
        if m.announced.is_none() {
            let held = self.standbys.streams[z]
                .as_ref()
                .is_some_and(|s| s.acked >= s.written)
                // BROKEN ON PURPOSE (`move_before_held`).
                || self.bugs.move_before_held;
            if held {
                self.announce_end(tick, m);
            } else if tick >= m.stopped_at + ACK_TICKS {
                self.give_move_up(tick, m);
            }
            return;
        }
        let Some(standby) = self.standbys.streams[z].as_ref().map(|s| s.node) else {
            return;
        };
        let announced = m.announced.expect("announced");
        if self.sees_down(tick, m.from, standby) || tick >= announced + TAKEN_TICKS {
            self.give_move_up(tick, m);
            return;
        }
        self.tell_end(tick);
        let asks = self.knows_end(tick, standby, (z, m.run, m.from)) && !self.dead(tick, standby);
        if asks && !self.votes_about(z) {
            self.ask_promote(tick, z);
        }
    }

    /// The node zone `m.zone` left died while it moved. Before the end was announced the
    /// move is over: the zone is one of a dead node's, taken over once it is declared down,
    /// and what the stopped run held may be set back like theirs. After it, the standby
    /// still takes the zone over on the end if it knows of it (else on the death).
    fn node_left_died(&mut self, tick: u64, m: Move) {
        if m.announced.is_none() {
            let moves = self.moves.as_mut().expect("drawn");
            moves.under_way = None;
            let held = std::mem::take(&mut moves.held);
            self.standbys.held_at_death.extend(held);
            self.event(tick, ("move: its node died", m.zone));
            return;
        }
        let standby = self.standbys.streams[m.zone].as_ref().map(|s| s.node);
        let asks = standby.is_some_and(|s| {
            self.knows_end(tick, s, (m.zone, m.run, m.from)) && !self.dead(tick, s)
        });
        if asks && !self.votes_about(m.zone) {
            self.ask_promote(tick, m.zone);
        }
    }

    /// The standby holds everything the stopped run wrote: the run's end is announced.
    fn announce_end(&mut self, tick: u64, m: Move) {
        ("move: end announced", tick, m.zone, m.run).hash(&mut self.hasher);
        let nodes = self.node_count();
        let moves = self.moves.as_mut().expect("drawn");
        let mut known_at = vec![None; nodes];
        known_at[m.from as usize] = Some(tick);
        moves.ended.push(Ended {
            zone: m.zone,
            run: m.run,
            node: m.from,
            known_at,
        });
        moves.under_way = Some(Move {
            announced: Some(tick),
            ..m
        });
        self.tell_end(tick);
    }

    /// The announcing node tells every node that does not know of the end yet, over the
    /// network (lost, cut off, delayed 1–3 ticks like the mesh's control datagrams).
    fn tell_end(&mut self, tick: u64) {
        let healing = self.healing(tick);
        let loss = if healing { 0.0 } else { self.network.loss() };
        let moves = self.moves.as_mut().expect("drawn");
        let Some(last) = moves.ended.last_mut() else {
            return;
        };
        for to in 0..last.known_at.len() {
            if last.known_at[to].is_some() {
                continue;
            }
            let cut = !healing && self.network.partitioned(tick, last.node, to as u32);
            if cut || moves.rng.random_bool(loss) {
                continue;
            }
            last.known_at[to] = Some(tick + moves.rng.random_range(1..=3));
        }
    }

    /// Whether node `node` knows, at `tick`, that run `run` of zone `z` on node `primary`
    /// ended for a move (as the mesh keeps an `Ask::Ended`: only its primary says it).
    pub(super) fn knows_end(
        &self,
        tick: u64,
        node: u32,
        (z, run, primary): (usize, u32, u32),
    ) -> bool {
        self.moves.as_ref().is_some_and(|moves| {
            moves.ended.iter().any(|e| {
                (e.zone, e.run, e.node) == (z, run, primary)
                    && e.known_at[node as usize].is_some_and(|at| at <= tick)
            })
        })
    }

    /// Whether `ask` is a takeover of a run that node `node` knows ended for a move: it
    /// rests on that as on the primary's node being down (as the mesh answers it).
    pub(super) fn promotes_an_ended_run(&self, tick: u64, node: u32, ask: Ask) -> bool {
        let Ask::Promote {
            zone,
            incarnation,
            primary,
            ..
        } = ask
        else {
            return false;
        };
        let run = (
            zone as usize,
            incarnation.wrapping_sub(1),
            u32::from(primary),
        );
        self.knows_end(tick, node, run)
    }

    /// The standby's copy never got everything: the zone restarts on its own node from
    /// its own files (clean: nothing lost), as a new run, and the move is over.
    fn give_move_up(&mut self, tick: u64, m: Move) {
        ("move: given up", tick, m.zone).hash(&mut self.hasher);
        self.report.moves_given_up += 1;
        self.moves.as_mut().expect("drawn").under_way = None;
        self.down_until[m.zone] = Some(tick + 1);
    }

    /// Zone `z` was promoted: if that ends a move, the node it left keeps its standby
    /// (streamed to from a resync, current once the mesh agrees: [`super::rejoin`]) and
    /// the move is done. Returns whether it was a move.
    pub(super) fn move_done(&mut self, tick: u64, z: usize) -> bool {
        let Some(moves) = self.moves.as_mut() else {
            return false;
        };
        let Some(m) = moves.under_way.filter(|m| m.zone == z) else {
            return false;
        };
        moves.under_way = None;
        self.report.move_ticks.push(tick - m.stopped_at);
        self.standbys.streams[z] = Some(Stream::kept_here(m.from));
        ("move: done", tick, z).hash(&mut self.hasher);
        true
    }

    /// Whether zone `z` is stopped for a move (its stream still sends what the standby
    /// lacks).
    pub(super) fn stopped_for_move(&self, z: usize) -> bool {
        self.moves
            .as_ref()
            .and_then(|m| m.under_way)
            .is_some_and(|m| m.zone == z)
    }

    /// Zone `z`'s takeover ballot ended without a promotion: asked again while the standby
    /// knows the run ended (returns `true`), else the zone's own node restarts it.
    pub(super) fn move_ballot_failed(&mut self, tick: u64, z: usize) -> bool {
        let Some(m) = self.moves.as_ref().and_then(|m| m.under_way) else {
            return false;
        };
        if m.zone != z {
            return false;
        }
        let standby = self.standbys.streams[z].as_ref().map(|s| s.node);
        if standby
            .is_some_and(|s| self.knows_end(tick, s, (z, m.run, m.from)) || self.dead(tick, s))
        {
            // Asked again from `moves_step` once no ballot about the zone is out; a dead
            // standby's ballot tells the node the zone left nothing (it gives the move up
            // on what it sees: `move_goes_on`).
            return true;
        }
        self.give_move_up(tick, m);
        true
    }
}
