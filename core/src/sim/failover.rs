//! A node's death and what follows it (docs/mesh.md): its zones promoted on their
//! standbys once a majority agreed, or — where the others are no majority — the node's
//! reboot from its own disks; the standbys it kept dropped. See [`super::standby`] for
//! the streams and the gate these decisions rest on.

use std::hash::Hash;

use super::Sim;
use super::rejoin::Rejoin;
use super::standby::REBOOT_TICKS;
use crate::handoff::LogRecord;
use crate::world::ZoneID;

impl Sim {
    /// The node death and the promotions it leads to, when due.
    pub(super) fn node_death(&mut self, tick: u64) {
        let Some((at, node)) = self.standbys.death else {
            return;
        };
        let majority = self.standbys.majority_without_one();
        if tick == at && !majority {
            self.reboot_node(tick, node);
        } else if tick == at {
            self.kill_node(tick, node);
        } else if majority && self.declaring(tick, at, self.standbys.detect_ticks()) {
            self.declared_down(tick, node, (at, self.standbys.detect_ticks()), false);
        }
    }

    /// Node `node` dies for good: its zones stop.
    pub(super) fn kill_node(&mut self, tick: u64, node: u32) {
        self.event(tick, ("node dies", node));
        self.forget_withdrawals(node);
        for z in 0..self.zones.len() {
            if self.node_of[z] == node {
                if let Some(zone) = self.zones[z].take() {
                    let held = &mut self.standbys.held_at_death;
                    held.extend_from_slice(zone.entities().ids());
                    held.extend(zone.tombstones().map(|t| t.0));
                }
                self.down_until[z] = None;
                self.stream_crashed(z);
            }
        }
    }

    /// Node `node` dies where its standbys are no majority: its zones stay down (no
    /// promotion; the zones it keeps the standbys of wait for it, their standby not
    /// declared down by a majority) until it restarts from its own disks.
    fn reboot_node(&mut self, tick: u64, node: u32) {
        self.event(tick, ("node dies, no majority", node));
        self.forget_withdrawals(node);
        let until = tick + REBOOT_TICKS;
        for z in 0..self.zones.len() {
            if self.node_of[z] == node {
                if self.zones[z].take().is_some() {
                    self.crash_disk(z);
                    self.stream_crashed(z);
                }
                self.down_until[z] = Some(until);
            }
        }
        self.standbys.outage = Some((node, until));
    }

    /// A majority agreed: zone `z` goes on without its standby (its waiting datagrams
    /// leave: nothing holds them any more). The standby keeps its copy as it was.
    pub(super) fn drop_standby(&mut self, tick: u64, z: usize) {
        let Some(stream) = self.standbys.streams[z].as_mut() else {
            return;
        };
        stream.dropped = true;
        self.report.dropped += 1;
        self.ungate(tick, z);
    }

    /// Nothing waits for zone `z`'s standby any more (dropped, or dropped and down again
    /// on its way back): its waiting datagrams leave.
    pub(super) fn ungate(&mut self, tick: u64, z: usize) {
        let stream = self.standbys.streams[z].as_mut().expect("a standby");
        stream.rejoin = Rejoin::No;
        stream.marks.clear();
        let gated = std::mem::take(&mut stream.gated);
        self.pin_copy(z);
        for (_, to, bytes) in gated {
            self.route(tick, ZoneID(z as u32), to, bytes);
        }
    }

    /// Zone `z` lost its node and no standby may take it over: it waits for its node,
    /// which restarts it from its own disk (a zone still running behind a cut goes on).
    /// A dead node comes back whole for it ([`Sim::node_restarts`]).
    pub(super) fn wait_for_own_node(&mut self, tick: u64, z: usize) {
        self.report.waited_for_node += 1;
        self.event(tick, ("zone waits for its node", z));
        if self.zones[z].is_some() || self.down_until[z].is_some() {
            return;
        }
        self.crash_disk(z);
        self.down_until[z] = Some(tick + REBOOT_TICKS);
    }

    /// Zone `z`'s standby takes over: the zone restarts on the standby's node from the
    /// standby's copy, as the next incarnation. What its old primary wrote after that copy
    /// is lost — and no datagram that depended on it ever left.
    pub(super) fn promote(&mut self, tick: u64, z: usize) {
        let Some(stream) = self.standbys.streams[z].take() else {
            self.violation(tick, format!("zone {z} lost its node and has no standby"));
            return;
        };
        let replica = stream.replica.expect("a standby starts with a copy");
        // A move's copy holds the stopped run's last tick: nothing is set back — unless
        // the node the zone left died after announcing the end and came back before the
        // takeover, and runs the zone again from its files (as the node does): that run
        // waits for the standby like any restart, so what it did since was never seen
        // outside, and it is set back like a dead primary's (seed 52622 of `--moves`).
        let moved = self.stopped_for_move(z);
        let keep_checks = moved && self.zones[z].is_none();
        if let Some(old) = self.zones[z].take() {
            // Not dead: cut off (a false suspicion), or a moved zone's run again on the
            // node it left, back before the takeover. It runs on, superseded.
            let held = &mut self.standbys.held_at_death;
            held.extend_from_slice(old.entities().ids());
            held.extend(old.tombstones().map(|t| t.0));
            self.supersede(z, old, stream.written > stream.acked);
        }

        for (_, _, _, records) in &stream.marks {
            self.undo_lost(z, records);
        }
        self.keep_old_files(z);
        if !self.disks[z].holds(replica) {
            self.violation(
                tick,
                format!("zone {z}'s standby copy names files its primary no longer has"),
            );
        }
        self.disks[z] = self.disks[z].copy_at(replica);
        if let Some((at, node)) = self.standbys.death
            && node == self.node_of[z]
            && tick >= at
        {
            self.report.takeover_ticks.push(tick - at);
        }
        self.node_of[z] = stream.node;
        let zone = match self.try_restore(tick, z, true) {
            Ok(zone) => zone,
            Err(reason) => {
                self.violation(
                    tick,
                    format!("zone {z}'s standby cannot restore it: {reason}"),
                );
                return;
            }
        };
        let mut zone = zone;
        zone.set_bugs(self.bugs);
        super::install_game(&mut zone, (&self.game_problems, &self.game_mail), false);
        // Back to the standby's copy: what the dead primary did since was never seen
        // outside it (its datagrams waited for the standby) — its entities, and those
        // it held in flight, may come back as they were then, from here or from a
        // promoted neighbour's resent COMMIT. Not a teleport, not a loss.
        let rolled_back = zone
            .entities()
            .ids()
            .iter()
            .chain(&self.standbys.held_at_death);
        if !keep_checks {
            for id in rolled_back {
                self.last_seen.remove(id);
                self.game_counter.remove(id);
                self.last_epoch.remove(id);
            }
        }
        self.zones[z] = Some(zone);
        if moved {
            self.move_done(tick, z);
        }
        self.standbys.promoted.push(z as u32);
        self.took_over(z);
        if self.comeback_node() == Some(stream.node) && self.failback.is_some() {
            self.report.failed_back += 1;
        }
        self.spread_takeover(tick, z);
        ("promoted", tick, z).hash(&mut self.hasher);
        if self.trace_entity.is_some() {
            eprintln!("tick {tick}: zone {z} promoted on node {}", stream.node);
        }
    }

    /// The transfer bookkeeping of records a promotion loses: they never happened.
    fn undo_lost(&mut self, z: usize, records: &[LogRecord]) {
        for r in records {
            match r {
                LogRecord::Relinquish { commit } => {
                    let key = (z as u32, commit.transfer.transfer_id.get());
                    if let Some(fate) = self.fates.get_mut(&key)
                        && fate.relinquished
                    {
                        fate.relinquished = false;
                        self.report.transfers_committed -= 1;
                    }
                }
                LogRecord::Adopt {
                    entity,
                    from,
                    transfer_id,
                } => {
                    if let Some(fate) = self.fates.get_mut(&(from.0, *transfer_id)) {
                        fate.arrivals = fate.arrivals.saturating_sub(1);
                    }
                    // It comes back from its source's resent COMMIT, as it was then — even
                    // when the primary was down at the takeover and held nothing to list
                    // (seed 176: a zone down when its node was cut off).
                    self.last_seen.remove(&entity.id);
                    self.game_counter.remove(&entity.id);
                    self.last_epoch.remove(&entity.id);
                }
                LogRecord::Done { transfer_id, .. } => {
                    if let Some(fate) = self.fates.get_mut(&(z as u32, *transfer_id)) {
                        fate.departed = false;
                    }
                }
                _ => {}
            }
        }
    }
}
