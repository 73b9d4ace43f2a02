//! The handoff invariants (docs/protocol.md), checked after every step and at the end: one owner, no
//! entity created or lost, epochs only grow, no teleport, every transfer committed or
//! aborted (never both), a committed one arriving exactly once.

use rustc_hash::FxHashMap;
use std::hash::{Hash, Hasher};

use super::{SPEED_MPS_MAX, Sim};
use crate::entities::EntityID;
use crate::handoff::Event;

/// Transfer bookkeeping for the "exactly one of committed or aborted" invariant.
#[derive(Default, Clone, Copy)]
pub(super) struct TransferFate {
    pub(super) offered: bool,
    pub(super) aborted: bool,
    pub(super) relinquished: bool,
    pub(super) arrivals: u32,
    pub(super) departed: bool,
}

impl Sim {
    /// Prints the event if it concerns the traced entity (`Options::trace_entity`).
    fn trace(&self, tick: u64, zone: u32, event: Event) {
        let Some(traced) = self.trace_entity else {
            return;
        };
        let id = match event {
            Event::Offered { id, .. }
            | Event::Aborted { id, .. }
            | Event::Relinquished { id, .. }
            | Event::Arrived { id, .. }
            | Event::Departed { id, .. } => id,
        };
        if id.0 == traced {
            eprintln!("tick {tick} zone {zone}: {event:?}");
        }
    }

    /// Feeds the trace hash and the transfer-fate invariants.
    pub(super) fn record(&mut self, tick: u64, zone: u32, event: Event) {
        (tick, zone, event).hash(&mut self.hasher);
        self.trace(tick, zone, event);
        let key = |source: u32, transfer_id: u64| (source, transfer_id);
        match event {
            Event::Offered { transfer_id, .. } => {
                self.fates
                    .entry(key(zone, transfer_id))
                    .or_default()
                    .offered = true
            }
            Event::Aborted {
                transfer_id, id, ..
            } => {
                let fate = self.fates.entry(key(zone, transfer_id)).or_default();
                fate.aborted = true;
                if fate.relinquished {
                    self.violation(
                        tick,
                        format!("transfer {transfer_id} of entity {id} aborted after COMMIT"),
                    );
                }
                self.report.transfers_aborted += 1;
            }
            Event::Relinquished {
                transfer_id, id, ..
            } => {
                let fate = self.fates.entry(key(zone, transfer_id)).or_default();
                fate.relinquished = true;
                if fate.aborted {
                    self.violation(
                        tick,
                        format!("transfer {transfer_id} of entity {id} committed after abort"),
                    );
                }
                self.report.transfers_committed += 1;
            }
            Event::Arrived {
                transfer_id,
                from,
                id,
                ..
            } => {
                let fate = self.fates.entry(key(from.0, transfer_id)).or_default();
                fate.arrivals += 1;
                let (arrivals, relinquished) = (fate.arrivals, fate.relinquished);
                if arrivals > 1 {
                    self.violation(
                        tick,
                        format!("transfer {transfer_id} of entity {id} arrived twice"),
                    );
                }
                if !relinquished {
                    self.violation(
                        tick,
                        format!("entity {id} arrived without a COMMIT (transfer {transfer_id})"),
                    );
                }
            }
            Event::Departed {
                transfer_id,
                ticks,
                superseded,
                ..
            } => {
                self.fates
                    .entry(key(zone, transfer_id))
                    .or_default()
                    .departed = true;
                if !superseded {
                    self.report.handoff_ticks.push(ticks);
                }
            }
        }
    }

    /// The invariants, after every step.
    pub(super) fn check(&mut self, tick: u64) {
        let dt = self.world.tick_duration().as_secs_f32();
        let mut owner: FxHashMap<EntityID, u32> =
            FxHashMap::with_capacity_and_hasher(self.spawned.len(), Default::default());
        let mut problems = Vec::new();
        for (z, zone) in self.zones.iter().enumerate() {
            let Some(zone) = zone else { continue };
            // The model's own consistency: a run lives in a node's process (until session
            // 46 a zone that waited for its dead node ran there while the node stayed dead).
            if self.dead(tick, self.node_of[z]) {
                problems.push(format!("zone {z} runs on node {}, dead", self.node_of[z]));
            }
            let e = zone.entities();
            for slot in 0..e.len() {
                let id = e.ids()[slot];
                let epoch = e.epochs()[slot];
                if let Some(other) = owner.insert(id, z as u32) {
                    problems.push(format!("entity {id} owned by zones {other} and {z}"));
                }
                if !self.behaviour.contains_key(&id) {
                    problems.push(format!("entity {id} in zone {z} was never created"));
                }
                let last = self.last_epoch.entry(id).or_insert(epoch);
                if epoch < *last {
                    problems.push(format!(
                        "entity {id} epoch went back from {last} to {epoch} in zone {z}"
                    ));
                }
                *last = epoch.max(*last);
                let (x, y) = (e.xs()[slot], e.ys()[slot]);
                if let Some(&(px, py, pt)) = self.last_seen.get(&id) {
                    let allowed = SPEED_MPS_MAX * dt * (tick - pt) as f32 + 1e-3;
                    let moved = ((x - px).powi(2) + (y - py).powi(2)).sqrt();
                    if moved > allowed {
                        problems.push(format!(
                            "entity {id} jumped {moved:.3} m in {} ticks (zone {z})",
                            tick - pt
                        ));
                    }
                }
                self.last_seen.insert(id, (x, y, tick));
                let n = super::game::counter(e.state(slot as u32));
                if let Some(last) = self.game_counter.insert(id, n)
                    && n < last
                {
                    problems.push(format!(
                        "entity {id}'s game state went back from {last} to {n} in zone {z}"
                    ));
                }
            }
        }
        problems.extend(self.game_problems.lock().expect("not poisoned").drain(..));
        for (z, zone) in self.zones.iter().enumerate() {
            let Some(zone) = zone else { continue };
            let ghosts = zone.ghosts().entities();
            for (slot, id) in ghosts.ids()[..ghosts.len()].iter().enumerate() {
                if owner.get(id) == Some(&(z as u32)) {
                    problems.push(format!("entity {id} is both owned and a ghost in zone {z}"));
                }
                if self
                    .last_epoch
                    .get(id)
                    .is_some_and(|&e| ghosts.epochs()[slot] > e)
                {
                    problems.push(format!(
                        "zone {z} holds a ghost of {id} from a future epoch"
                    ));
                }
            }
        }
        for p in problems {
            self.violation(tick, p);
        }
    }

    pub(super) fn finish(&mut self) {
        let tick = self.ticks;
        self.report.nodes = self.node_of.iter().max().map_or(1, |m| m + 1);
        self.report.standbys = self.standbys.active();
        (self.report.gated, self.report.gated_ticks) =
            (self.standbys.gated, self.standbys.gated_ticks);
        self.report.dead_standby_wait = self.standbys.dead_wait_max;
        let faulted = self.standbys.isolation.is_some() || self.standbys.death.is_some();
        let mut problems = Vec::new();
        if let Some(mail) = &self.game_mail {
            let mail = mail.lock().expect("not poisoned");
            self.report.game_messages_sent = mail.sent;
            self.report.game_messages_delivered = mail.delivered.len() as u64;
            if self.report.crashes == 0 && !faulted {
                problems.extend(self.messages_unaccounted(&mail, tick));
            }
        }
        self.report.promoted = self.standbys.promoted.len() as u64;
        self.report.no_majority = faulted && !self.standbys.majority_without_one();
        self.report.isolated = self.standbys.isolation.is_some() && !self.report.no_majority;
        self.report.left = self.standbys.leave_ticks.is_some() && !self.report.no_majority;
        let mut owned: FxHashMap<EntityID, u32> = FxHashMap::default();
        for (z, zone) in self.zones.iter().enumerate() {
            let Some(zone) = zone else {
                problems.push(format!("zone {z} is still down after healing"));
                continue;
            };
            for &id in zone.entities().ids() {
                *owned.entry(id).or_default() += 1;
            }
            if zone.tombstone_count() > 0 {
                problems.push(format!(
                    "zone {z} still has {} tombstones after healing",
                    zone.tombstone_count()
                ));
            }
            if zone.pending_offer_count() > 0 {
                problems.push(format!(
                    "zone {z} still has {} pending offers after healing",
                    zone.pending_offer_count()
                ));
            }
            let mut ids: Vec<u64> = zone.entities().ids().iter().map(|id| id.0).collect();
            ids.sort_unstable();
            (z, ids).hash(&mut self.hasher);
        }
        for z in self.waiting_old_runs() {
            problems.push(format!(
                "zone {z}'s old run still waits for the node that took it over after healing"
            ));
        }
        for id in &self.spawned {
            match owned.get(id) {
                Some(1) => {}
                Some(n) => problems.push(format!("entity {id} owned {n} times after healing")),
                None => problems.push(format!("entity {id} lost: owned by no zone after healing")),
            }
        }
        for (&(source, transfer_id), fate) in &self.fates {
            if fate.relinquished && (fate.arrivals != 1 || !fate.departed) {
                problems.push(format!(
                    "transfer {transfer_id} from zone {source}: committed but arrived {} times, departed {}",
                    fate.arrivals, fate.departed
                ));
            }
        }
        problems.sort();
        for p in problems {
            self.violation(tick, p);
        }
        self.report.trace_hash = self.hasher.finish();
    }

    /// Game messages sent [`MESSAGES_SETTLE_TICKS`] or more before `tick` that no game
    /// was handed and no zone counted lost (undeliverable, dropped, unacknowledged): lost
    /// silently, on the network. For a seed where no zone crashed and no node died or was
    /// cut off (the zones' counters then cover every run, with those of runs that stopped
    /// for a move).
    fn messages_unaccounted(&self, mail: &super::game::MailLog, tick: u64) -> Option<String> {
        let old = mail
            .sent_ticks
            .iter()
            .take_while(|&&t| t + MESSAGES_SETTLE_TICKS <= tick)
            .count() as u64;
        let handed = mail.delivered.keys().filter(|&&n| n < old).count() as u64;
        let counted: u64 = (self.zones.iter().flatten())
            .map(|z| {
                let c = z.counters();
                c.game_messages_undeliverable
                    + c.game_messages_dropped
                    + c.game_messages_unacknowledged
            })
            .sum::<u64>()
            + self.retired_messages;
        (handed + counted < old).then(|| {
            format!(
                "{} of {old} game messages lost uncounted ({handed} handed to a game, \
                 {counted} counted lost)",
                old - handed - counted
            )
        })
    }
}

/// Ticks a game message may still be on its way at the end of a seed: its resends, and the
/// network's delay of each.
const MESSAGES_SETTLE_TICKS: u64 = 60;
