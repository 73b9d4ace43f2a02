//! A dropped standby comes back (docs/mesh.md, "Dropping a standby: the votes"): once the
//! primary's node sees the standby's node alive again, the zone streams to it anew — a
//! resync first (the zone's files whole: one item), its datagrams not waiting for it
//! yet; once the standby holds the resync, they wait for it again (it is in the gate);
//! once it holds everything written up to then, the primary asks the mesh to agree it is
//! **current**, which clears the drop in the ledgers — and the standby may take the zone
//! over again if the primary's node dies.
//!
//! The order is the safety: a standby said current must hold every record whose datagrams
//! left. `Bugs::current_before_caught_up` asks as soon as the resync begins: the mesh
//! agrees to a copy that still lacks what the primary did while it was dropped, and a
//! promotion after that owns what the primary had handed away.

use std::hash::Hash;

use super::Sim;
use super::votes::Then;
use crate::mesh::votes::Ask;

/// Where a dropped standby is on its way back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Rejoin {
    /// Not coming back (or not dropped).
    #[default]
    No,
    /// Streamed to again from a resync (record `until`); nothing waits for it yet.
    Resync { until: u64 },
    /// In the gate; once it holds `current_at`, the primary asks the mesh to agree it
    /// is current (`asked`: a ballot is out).
    Gated { current_at: u64, asked: bool },
}

impl Sim {
    /// Every tick, for every dropped standby: start its way back, or take the next step.
    pub(super) fn rejoin_tick(&mut self, tick: u64) {
        for z in 0..self.standbys.streams.len() {
            let Some(stream) = self.standbys.streams[z].as_ref() else {
                continue;
            };
            if !stream.dropped {
                continue;
            }
            let (primary, standby) = (self.node_of[z], stream.node);
            let gone = self.dead(tick, standby) || self.sees_down(tick, primary, standby);
            if gone && stream.rejoin != Rejoin::No {
                // Down again before the mesh agreed it is current: still dropped, so
                // nothing may wait for it.
                self.ungate(tick, z);
                continue;
            }
            match stream.rejoin {
                Rejoin::No => {
                    let back = !gone && !self.rebooting(tick, primary, standby);
                    if back && self.zones[z].is_some() {
                        self.resync(tick, z);
                    }
                }
                Rejoin::Resync { until } if stream.acked >= until => {
                    let current_at = stream.written;
                    self.set_rejoin(
                        z,
                        Rejoin::Gated {
                            current_at,
                            asked: false,
                        },
                    );
                }
                // Only the run the stream is of asks: not a zone that is down (its node
                // dead), nor one restarted since (its stream starts over at its first
                // tick). Seed 196 (`--comebacks`): a dead node's zone asked again for its
                // old run, and its standby was agreed current — and took over — while the
                // node, back, had just restarted the zone.
                Rejoin::Gated {
                    current_at,
                    asked: false,
                } if stream.acked >= current_at && self.runs(z, stream.incarnation) => {
                    self.ask_current(tick, z, current_at);
                }
                _ => {}
            }
        }
    }

    /// Whether zone `z` runs, as `incarnation`.
    fn runs(&self, z: usize, incarnation: u32) -> bool {
        self.zones[z]
            .as_ref()
            .is_some_and(|zone| zone.incarnation() == incarnation)
    }

    fn set_rejoin(&mut self, z: usize, rejoin: Rejoin) {
        if let Some(stream) = self.standbys.streams[z].as_mut() {
            stream.rejoin = rejoin;
        }
    }

    /// Zone `z` streams to its dropped standby again, from its files whole.
    fn resync(&mut self, tick: u64, z: usize) {
        let incarnation = self.zones[z]
            .as_ref()
            .map_or(0, crate::zone::Zone::incarnation);
        let mark = self.disks[z].mark();
        let stream = self.standbys.streams[z].as_mut().expect("looked at");
        stream.restart_for_resync(incarnation, mark);
        self.pin_copy(z);
        self.report.rejoined += 1;
        ("rejoin", tick, z).hash(&mut self.hasher);
        self.stream_records(tick, z);
        if self.bugs.current_before_caught_up {
            // BROKEN ON PURPOSE (`current_before_caught_up`).
            self.ask_current(tick, z, 1);
        }
    }

    fn ask_current(&mut self, tick: u64, z: usize, current_at: u64) {
        let Some(stream) = self.standbys.streams[z].as_mut() else {
            return;
        };
        if !self.bugs.current_before_caught_up {
            stream.rejoin = Rejoin::Gated {
                current_at,
                asked: true,
            };
        }
        let (standby, incarnation) = (stream.node, stream.incarnation);
        let ask = Ask::Current {
            zone: z as u32,
            incarnation,
            seq: self.next_primary_seq(z),
            standby: standby as u16,
        };
        self.ask(tick, self.node_of[z], ask, Then::Current(z));
    }

    /// The mesh decided on zone `z`'s standby being current: agreed, the drop is over
    /// (it is in the gate already) — and if the primary sees the standby's node declared
    /// down by now, it asks to drop it again at once, as the node's guard does at every
    /// step (seed 4133, `--moves`: the standby's node died after the ask and was declared
    /// down before the agreement; the zone's datagrams waited for it for good, as the
    /// model asked drops only at the declaration); otherwise asked again.
    pub(super) fn current_decided(&mut self, tick: u64, z: usize, granted: bool) {
        let Some(stream) = self.standbys.streams[z].as_mut() else {
            return;
        };
        if granted {
            stream.dropped = false;
            stream.rejoin = Rejoin::No;
            self.report.current_again += 1;
            let standby = stream.node;
            if self.sees_down(tick, self.node_of[z], standby) && !self.bugs.drop_only_when_declared
            {
                self.ask_drop(tick, z);
            }
        } else if let Rejoin::Gated { current_at, .. } = stream.rejoin {
            stream.rejoin = Rejoin::Gated {
                current_at,
                asked: false,
            };
        }
    }
}
