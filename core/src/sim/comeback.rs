//! A dead node comes back (docs/mesh.md, "A node that comes back"). In half the seeds
//! where a node dies for good and its zones fail over (or as `Options::comebacks` says),
//! the node restarts some ticks after the takeovers, from its own disks as they stood when
//! it died (meeting the crash: a capture under way lost, a bit perhaps flipped). For every
//! zone of it already running on a standby, it resumes the zone from its stale files —
//! as the real node does before the mesh tells it `TakenOver` — and that run goes on as a
//! *superseded* one ([`super::suspicion`]) until the answer reaches it (1–10 ticks), then
//! stands down.
//!
//! Its files may hold records its standby never acknowledged — a relinquish whose COMMIT
//! waited in the gate when it died, say — so what the stale run would send rests on
//! things the zone's new run never did. What keeps it harmless is the restart's resync:
//! a resumed zone sends nothing until its standby holds its restart checkpoint, and the
//! standby, now the zone, never acknowledges it. Without that
//! (`Bugs::comeback_sends_at_once`) the stale run resends what it restored and the
//! invariants fail.
//!
//! From its return the node is alive again for membership and the votes (its ledger is
//! the one it left on its disk), and it goes on as the node does with its markers:
//! - each of its zones that stood down, it keeps the standby of (the `kept-here` marker):
//!   the zone's new run streams to it from a resync, and the mesh agrees it is current
//!   once it holds everything ([`super::rejoin`]);
//! - the standbys it kept for other zones, dropped while it was dead, come back the same
//!   way.
//!
//! A zone of the node not yet taken over when it returns (the mesh had not agreed yet)
//! restarts from its own disk on its own node, as after a crash; a takeover agreed after
//! that supersedes it like a false suspicion's old primary.
//!
//! A dead node also comes back, in any seed, when something waits for it (session 46): a
//! zone of its that no standby may take over, or a takeover agreed to it after it died
//! ([`Sim::dead_taker`]). Back, it looks at the zones it keeps the standby of that run
//! nowhere ([`Sim::retry_takeovers`]), as the node's failover thread does.

use std::hash::Hash;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::Sim;
use super::disk::ZoneDisk;
use super::standby::{REBOOT_TICKS, Standbys, Stream};
use crate::mesh::votes::Ask;

/// A dead node's return: when, and the files it left behind, per zone taken over.
pub(super) struct Comeback {
    node: u32,
    /// The tick it comes back: alive from then on.
    at: u64,
    rng: SmallRng,
    files: Vec<(usize, ZoneDisk)>,
}

impl Comeback {
    /// Draws the return of the seed's dead node (from a generator of its own: every other
    /// draw stays as it was): in half the seeds where its zones fail over (a majority
    /// lives on), or as `forced` says, 40–200 ticks after the takeovers are asked for.
    pub(super) fn draw(seed: u64, standbys: &Standbys, forced: Option<bool>) -> Option<Comeback> {
        let (died, node) = standbys.death?;
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x57a9_d8b1_0000_0004);
        let on = forced.unwrap_or_else(|| rng.random_bool(0.5));
        (on && standbys.majority_without_one()).then(|| Comeback {
            node,
            at: died + standbys.detect_ticks() + rng.random_range(40..=200),
            rng,
            files: Vec::new(),
        })
    }

    /// The tick the node comes back.
    pub(super) fn at(&self) -> u64 {
        self.at
    }
}

impl Sim {
    /// The node that came back (or is to).
    pub(super) fn comeback_node(&self) -> Option<u32> {
        self.comeback.as_ref().map(|b| b.node)
    }

    /// Zone `z` is about to be promoted: if its node is to come back, the files it left
    /// behind are kept for then.
    pub(super) fn keep_old_files(&mut self, z: usize) {
        let Some(back) = self.comeback.as_mut() else {
            return;
        };
        if self.node_of[z] == back.node && self.zones[z].is_none() {
            let disk = &self.disks[z];
            back.files.push((z, disk.copy_at(disk.mark())));
        }
    }

    /// Whether node `node` died and came back by `tick`.
    pub(super) fn back(&self, tick: u64, node: u32) -> bool {
        self.comeback
            .as_ref()
            .is_some_and(|b| b.node == node && tick >= b.at)
    }

    /// The dead node comes back when due: each zone of it that runs elsewhere resumes from
    /// its stale files as a superseded run, until the mesh's answer reaches it; then it
    /// keeps the zone's standby.
    pub(super) fn comeback_step(&mut self, tick: u64) {
        for (z, node) in self.stand_down_due(tick) {
            self.keep_here(tick, z, node);
        }
        for node in super::network::take_due(&mut self.awaited, tick) {
            self.node_restarts(tick, node);
        }
        let Some(back) = self.comeback.as_mut() else {
            return;
        };
        if tick != back.at {
            return;
        }
        let (node, files) = (back.node, std::mem::take(&mut back.files));
        self.event(tick, ("node comes back", node));
        self.report.restarted_on_return += self.restart_zones_left(tick, node);
        self.withdraw_unacted(tick, node);
        for (z, mut disk) in files {
            let back = self.comeback.as_mut().expect("drawn");
            if disk.crash(&mut back.rng) {
                self.report.bit_flips += 1;
            }
            let until = tick + back.rng.random_range(1..=10);
            let mut zone = match disk.restore_alone(&self.world, self.limits, self.config) {
                Ok(zone) => zone,
                // Files a flip damaged past recovery: the node does not resume the zone
                // (its start refuses), which is harmless here.
                Err(_) => continue,
            };
            zone.set_bugs(self.bugs);
            super::install_game(&mut zone, (&self.game_problems, &self.game_mail), true);
            // BROKEN ON PURPOSE when `comeback_sends_at_once`: no resync to wait for.
            let behind = !self.bugs.comeback_sends_at_once;
            self.supersede_on(z, node, zone, behind, until);
            self.report.comebacks += 1;
            if self.trace_entity.is_some() {
                eprintln!("tick {tick}: zone {z} resumed from stale files on node {node}");
            }
        }
        self.retry_takeovers(tick, node);
    }

    /// Node `node`, dead since the seed's first death, is back at `tick` (a zone waited for
    /// it and restarts there, or a takeover it was agreed while dead waits for it): its
    /// comeback — drawn for later, or not drawn — happens now, and [`Sim::comeback_step`]
    /// does the rest this very tick.
    pub(super) fn comeback_now(&mut self, tick: u64, node: u32) {
        match self.comeback.as_mut() {
            Some(back) if back.node == node => back.at = back.at.min(tick),
            Some(_) => {}
            None => {
                self.comeback = Some(Comeback {
                    node,
                    at: tick,
                    rng: SmallRng::seed_from_u64(self.report.seed ^ 0x57a9_d8b1_0000_0007),
                    files: Vec::new(),
                });
            }
        }
    }

    /// Whether `ask` — a takeover, or acting on one — was asked by a standby dead at
    /// `tick`: it learns nothing of its ballot then, neither asks to act nor starts the run
    /// (what the ledgers hold of it stays until it returns). A zone under a move runs
    /// again on the node it left, on what that node sees; any other zone waits for the
    /// taker, whose node comes back [`REBOOT_TICKS`] later (an operator restarts it),
    /// withdraws the promise it never acted on and looks at the zone again
    /// ([`Sim::retry_takeovers`]). (Until session 46 the model let such a run start as if
    /// the node had learnt the answer and restarted at once, the dead node asking and
    /// answering nothing; seed 40962 with `--moves --messages` is the taker that died as
    /// its `Acted` was agreed.)
    pub(super) fn dead_taker(&mut self, tick: u64, ask: Ask) -> bool {
        let (Ask::Promote { zone, standby, .. } | Ask::Acted { zone, standby, .. }) = ask else {
            return false;
        };
        let taker = u32::from(standby);
        if matches!(ask, Ask::Promote { .. }) {
            self.taker_dies(tick, taker);
        }
        if !self.dead(tick, taker) {
            return false;
        }
        if !self.stopped_for_move(zone as usize) {
            self.report.waited_for_taker += 1;
            self.event(tick, ("zone waits for its dead taker", zone, taker));
            let at = tick + REBOOT_TICKS;
            self.awaited.entry(at).or_default().push(taker);
        }
        true
    }

    /// Node `node` is back: each zone it keeps the standby of that runs nowhere (no
    /// takeover of it voted on, not stopped for a move) it asks to take over if it sees
    /// the zone's node down — as the node's failover thread does whenever it sees such a
    /// zone — and otherwise leaves to that node, which restarts it (as after a takeover
    /// that ran out of time). The takeovers it was agreed while dead it withdrew on its
    /// return: it never acted on them.
    pub(super) fn retry_takeovers(&mut self, tick: u64, node: u32) {
        for z in 0..self.zones.len() {
            let keeps = self.standbys.streams[z]
                .as_ref()
                .is_some_and(|s| s.node == node);
            let primary = self.node_of[z];
            let nowhere = self.zones[z].is_none() && self.down_until[z].is_none();
            let busy = self.takeover_asked(z) || self.stopped_for_move(z);
            if !keeps || !nowhere || busy || primary == node {
                continue;
            }
            if self.bugs.no_takeover_retry {
                // BROKEN ON PURPOSE (`no_takeover_retry`).
                continue;
            }
            if self.sees_down(tick, node, primary) {
                self.report.takeovers_retried += 1;
                self.event(tick, ("returned node asks again to take over", z, node));
                self.ask_promote(tick, z);
            } else {
                self.wait_for_own_node(tick, z);
            }
        }
    }

    /// Node `node` restarts: its zones nobody took over (down, no restart due) restart from
    /// their disks next tick. Returns how many.
    pub(super) fn restart_zones_left(&mut self, tick: u64, node: u32) -> u64 {
        let mut n = 0;
        for z in 0..self.zones.len() {
            if self.node_of[z] == node && self.zones[z].is_none() && self.down_until[z].is_none() {
                self.crash_disk(z);
                self.down_until[z] = Some(tick + 1);
                self.forget_drop(z);
                n += 1;
            }
        }
        n
    }

    /// Zone `z` restarts in a new process of its node: the node's drop of its standby
    /// lived in the old process's memory (the failover thread's), and the new one attaches
    /// the world file's standby — so the restarted run's stream starts over from a resync
    /// that its datagrams wait for, as any restart's does. (The model kept the drop, and
    /// the restarted run acted without its standby; seed 27183: a `Current` ask of the
    /// dead run, answered late, then let the standby take the zone over without what the
    /// restarted run had done.)
    fn forget_drop(&mut self, z: usize) {
        if self.bugs.comeback_keeps_drops {
            // BROKEN ON PURPOSE (`comeback_keeps_drops`).
            return;
        }
        if let Some(stream) = self.standbys.streams[z].as_mut()
            && stream.dropped
        {
            stream.restart_attached();
        }
    }

    /// Zone `z`'s stale run on node `node` stood down: the node keeps the zone's standby
    /// (unless the zone runs nowhere, or already streams to a standby elsewhere).
    fn keep_here(&mut self, tick: u64, z: usize, node: u32) {
        if self.zones[z].is_none() || self.node_of[z] == node {
            return;
        }
        let Some(slot) = self.standbys.streams.get_mut(z) else {
            return;
        };
        if slot.is_none() {
            *slot = Some(Stream::kept_here(node));
            self.report.kept_here += 1;
            ("keeps the standby", tick, z, node).hash(&mut self.hasher);
        }
    }
}
