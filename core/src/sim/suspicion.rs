//! A false suspicion: a node cut off from every other node long enough to be declared
//! down, while it runs on. Its zones are promoted on their standbys as if it had died
//! (`standby`), but the old primaries keep ticking — *superseded* runs, alive behind the
//! partition — until they learn of the takeover after the partition heals and stand down.
//!
//! What keeps them harmless (docs/mesh.md, "Fencing"):
//! - their standby acknowledges nothing more (it has become the zone), so from the first
//!   record an old primary writes after the cut, every datagram it would send waits for
//!   ever — it can hand nothing away and complete no adoption;
//! - what it sends without a new record (ghosts, a resent COMMIT or DONE, answers to its
//!   twins on the same node) rests on records the standby holds, so the new run agrees
//!   with it; it carries its incarnation, and every zone that heard of the newer run (the
//!   news spreads within 10 ticks here; a datagram from the new run teaches it too) fences
//!   it off.
//!
//! Until a zone hears of the takeover it sends to the old primary — lost while the cut
//! lasts, taken by the old primary once it heals. The invariants are the usual ones: one
//! owner, nothing lost, no epoch going back. Without the gate (`Bugs::skip_standby_gate`)
//! the old primary hands away what the new run still owns, and they fail.
//!
//! An old primary learns of the takeover from the node that took it over (its standby,
//! which answers the stream with the newer run). If that node dies after the heal and
//! before it told the old primary, the old run *waits*: gated, seeing its standby's node
//! down, it asks the mesh to go on without it, and when refused asks the ledgers to
//! release the takeover — and both must be refused every time, as the standby acted on
//! it (a drop agreed here is a violation: the old run would go on beside the new one).
//! It stands down once the new run runs again (the dead node's disk back, after
//! [`super::standby::REBOOT_TICKS`]).

use std::hash::Hash;

use rand::Rng;

use super::Sim;
use super::network::Flight;
use super::standby::DETECT_TICKS;
use crate::net::Peer;
use crate::time::Instant;
use crate::world::ZoneID;
use crate::zone::Zone;

/// Node `node` is cut off from `at` to `heal`; its old primaries stand down at
/// `stand_down` (after the heal: the first stream message or gossip that reaches them
/// says their zones run elsewhere).
#[derive(Clone, Copy, Debug)]
pub(super) struct Isolation {
    pub(super) node: u32,
    pub(super) at: u64,
    pub(super) heal: u64,
    pub(super) stand_down: u64,
}

/// An old primary, superseded by its promoted standby, still running.
#[derive(Debug)]
pub(super) struct Superseded {
    z: usize,
    node: u32,
    zone: Zone,
    /// Its standby lacks a record it wrote: every datagram it makes waits for ever.
    behind: bool,
    /// A run a node that came back resumed from its own files ([`super::comeback`]): it
    /// stands down at this tick, when the mesh's answer reaches it.
    until: Option<u64>,
    /// It outlived the stand-down: the node that took it over died before telling it. It
    /// asks to drop that node as its standby (again at this tick) until the new run is
    /// back.
    waiting: Option<u64>,
}

impl Sim {
    /// The isolated node's zones become superseded runs when their standbys take over.
    pub(super) fn supersede(&mut self, z: usize, zone: Zone, behind: bool) {
        self.standbys.superseded.push(Superseded {
            z,
            node: self.node_of[z],
            zone,
            behind,
            until: None,
            waiting: None,
        });
    }

    /// A node that came back runs zone `z` from its own files on node `node`, superseded
    /// from its first tick (another run holds the zone), until tick `until`.
    pub(super) fn supersede_on(
        &mut self,
        z: usize,
        node: u32,
        zone: Zone,
        behind: bool,
        until: u64,
    ) {
        self.standbys.superseded.push(Superseded {
            z,
            node,
            zone,
            behind,
            until: Some(until),
            waiting: None,
        });
    }

    /// The superseded runs of a node that came back whose stand-down is due: they stand
    /// down; returns their (zone, node).
    pub(super) fn stand_down_due(&mut self, tick: u64) -> Vec<(usize, u32)> {
        let due: Vec<(usize, u32)> = self
            .standbys
            .superseded
            .iter()
            .filter(|s| s.until == Some(tick))
            .map(|s| (s.z, s.node))
            .collect();
        if !due.is_empty() {
            self.standbys.superseded.retain(|s| s.until != Some(tick));
            self.report.stood_down += due.len() as u64;
            ("came back, stood down", tick, due.len()).hash(&mut self.hasher);
        }
        due
    }

    /// The isolation's turns when due: membership declares the node down (its zones are
    /// promoted; zones it was the standby of go on without one), the old primaries stand
    /// down after the heal.
    pub(super) fn isolation_step(&mut self, tick: u64) {
        let Some(iso) = self.standbys.isolation else {
            return;
        };
        if tick == iso.at {
            self.event(tick, ("node cut off", iso.node));
        }
        // Two nodes: neither side of the cut is a majority, so nothing is declared down
        // or promoted — both wait for the heal (docs/mesh.md, "A majority").
        if self.declaring(tick, iso.at, DETECT_TICKS) && self.standbys.majority_without_one() {
            self.declared_down(tick, iso.node, (iso.at, DETECT_TICKS), true);
        }
        self.hear_of_takeovers(tick);
        if tick == iso.stand_down {
            // Those whose zone's new run died with its node before telling them wait.
            let taker_dead: Vec<bool> = (self.standbys.superseded.iter())
                .map(|s| s.until.is_none() && self.dead(tick, self.node_of[s.z]))
                .collect();
            for (s, &dead) in self.standbys.superseded.iter_mut().zip(&taker_dead) {
                if dead {
                    s.waiting = Some(tick);
                    self.report.superseded_waited += 1;
                }
            }
            let before = self.standbys.superseded.len();
            (self.standbys.superseded).retain(|s| s.until.is_some() || s.waiting.is_some());
            let n = (before - self.standbys.superseded.len()) as u64;
            self.report.stood_down += n;
            ("stood down", tick, n).hash(&mut self.hasher);
        }
        self.superseded_wait(tick);
    }

    /// The old runs that wait for the dead node that took their zone over: each asks to
    /// go on without it while it sees it down (every [`super::votes::RETRY_TICKS`]), and
    /// stands down once the zone's new run runs again.
    fn superseded_wait(&mut self, tick: u64) {
        let zones = &self.zones;
        let before = self.standbys.superseded.len();
        (self.standbys.superseded).retain(|s| s.waiting.is_none() || zones[s.z].is_none());
        let n = (before - self.standbys.superseded.len()) as u64;
        if n > 0 {
            self.report.stood_down += n;
            ("waited, stood down", tick, n).hash(&mut self.hasher);
        }
        for k in 0..self.standbys.superseded.len() {
            let s = &self.standbys.superseded[k];
            let (z, node, incarnation) = (s.z, s.node, s.zone.incarnation());
            let taker = self.node_of[z];
            if s.waiting.is_some_and(|at| at <= tick) && self.sees_down(tick, node, taker) {
                let again = tick + super::votes::RETRY_TICKS;
                self.standbys.superseded[k].waiting = Some(again);
                self.ask_superseded_drop(tick, z, (node, incarnation), taker);
            }
        }
    }

    /// Zone `z` was taken over while its old primary may run on behind a cut: the news
    /// spreads, each other zone hearing of it within 10 ticks (gossip); from then on it
    /// routes to the new run and fences the old one off.
    pub(super) fn spread_takeover(&mut self, tick: u64, z: usize) {
        if self.standbys.isolation.is_none() {
            return;
        }
        let rng = self.standbys.rng.as_mut().expect("standbys drawn");
        for from in 0..self.zones.len() {
            let at = if from == z {
                tick
            } else {
                tick + rng.random_range(1..=10)
            };
            self.standbys.heard_at.push((from, z, at));
        }
    }

    /// Zones that hear of a takeover this tick learn the zone's newest run.
    fn hear_of_takeovers(&mut self, tick: u64) {
        for k in 0..self.standbys.heard_at.len() {
            let (from, z, at) = self.standbys.heard_at[k];
            if at != tick {
                continue;
            }
            let incarnation = self.incarnation[z];
            if let Some(zone) = self.zones[from].as_mut() {
                zone.fence(ZoneID(z as u32), incarnation);
            }
        }
    }

    /// Where zone `from` still sends zone `to`'s datagrams when it has not heard that
    /// `to`'s standby took over: the old primary's node.
    pub(super) fn old_primary_of(&self, tick: u64, from: ZoneID, to: ZoneID) -> Option<u32> {
        let (from, to_z) = (from.0 as usize, to.0 as usize);
        let heard = self
            .standbys
            .heard_at
            .iter()
            .find(|h| h.0 == from && h.1 == to_z)?;
        if tick >= heard.2 {
            return None;
        }
        let old = self
            .standbys
            .superseded
            .iter()
            .find(|s| s.z == to.0 as usize)?;
        Some(old.node)
    }

    /// The zones whose old run still waits for the node that took them over.
    pub(super) fn waiting_old_runs(&self) -> Vec<usize> {
        let waiting = self
            .standbys
            .superseded
            .iter()
            .filter(|s| s.waiting.is_some());
        waiting.map(|s| s.z).collect()
    }

    /// The node of zone `z`'s old run, while one runs.
    pub(super) fn old_run_node(&self, z: usize) -> Option<u32> {
        let old = self.standbys.superseded.iter().find(|s| s.z == z)?;
        Some(old.node)
    }

    /// Zone `z`'s old primary, while it runs.
    pub(super) fn old_primary_mut(&mut self, z: ZoneID) -> Option<&mut Zone> {
        let old = self
            .standbys
            .superseded
            .iter_mut()
            .find(|s| s.z == z.0 as usize)?;
        Some(&mut old.zone)
    }

    /// One tick of every superseded run: it ticks, its records reach no standby, and
    /// what it sends goes out stamped with its incarnation (or waits for ever).
    pub(super) fn superseded_tick(&mut self, tick: u64, now: Instant) {
        for k in 0..self.standbys.superseded.len() {
            let s = &mut self.standbys.superseded[k];
            s.zone.tick(now);
            let records = s.zone.drain_log().count();
            while s.zone.poll_event().is_some() {}
            // BROKEN ON PURPOSE when `superseded_skips_gate`.
            s.behind = (s.behind || records > 0) && !self.bugs.superseded_skips_gate;
            let (z, node, behind, incarnation) = (s.z, s.node, s.behind, s.zone.incarnation());
            let mut out = Vec::new();
            while let Some(transmit) = s.zone.poll_transmit(&mut self.buf) {
                if let Peer::Zone(to) = transmit.to {
                    out.push((to, self.buf[..transmit.len].to_vec()));
                }
            }
            for (to, bytes) in out {
                if behind {
                    self.report.superseded_held += 1;
                    continue;
                }
                self.report.superseded_sent += 1;
                let flight = Flight {
                    from: ZoneID(z as u32),
                    incarnation,
                    superseded: true,
                    to,
                    to_old_primary: false,
                    bytes,
                };
                self.send_superseded(tick, node, flight);
            }
        }
    }

    /// A superseded run's datagram: to a twin superseded on the same node over the
    /// cross-core queue, to anyone else over the network (cut until the heal).
    fn send_superseded(&mut self, tick: u64, node: u32, mut flight: Flight) {
        let to = flight.to.0 as usize;
        let twin = self
            .standbys
            .superseded
            .iter()
            .any(|s| s.node == node && s.z == to);
        flight.to_old_primary = twin;
        let b = if twin { node } else { self.node_of[to] };
        self.send(tick, node, b, flight);
    }
}
