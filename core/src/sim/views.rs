//! Membership views that differ between nodes ([`super::Options::skewed_views`]).
//!
//! By default every node of a seed learns a death, a cut and a return at the same tick
//! ([`super::standby::DETECT_TICKS`] after it, or the refutation's delay). Real membership
//! does not agree so neatly: gossip reaches nodes tens to hundreds of milliseconds apart.
//! With skewed views each node sees each such change 0–[`SKEW_TICKS`] ticks after the
//! earliest, drawn per (observer, node, event): a standby can ask to take a zone over
//! before the nodes it asks see its primary down, and a primary can ask to drop a standby
//! that some nodes still see alive; those answer "wait", and the ask is sent again until
//! they see it too or it runs out of time. A takeover refused is asked once more a second
//! later if its standby still sees the primary down, as the node retries
//! (`failover::RETRY` in the node). Not modelled: a restarted node that misses word of a
//! death for its whole start grace (the deaths datagram lost; docs/mesh.md).

use std::collections::{BTreeMap, BTreeSet};

use super::Sim;
use super::votes::RETRY_TICKS;

/// The most ticks one node's view of a change trails the earliest: ~270 ms at 30 Hz, the
/// order of the spread measured for "declared down" over loopback (575–795 ms after the
/// stop) and of gossip's delay to a node that just met another (50–100 ms, session 49).
pub(super) const SKEW_TICKS: u64 = 8;

/// Salts that tell a view's events apart, for [`Sim::skew`].
pub(super) const DOWN: u64 = 0x0d0e;
pub(super) const BACK: u64 = 0x0bac;
pub(super) const HEALED: u64 = 0x0e41;

/// A seed's skewed views.
pub(super) struct Views {
    /// Mixed into every draw of [`Sim::skew`].
    key: u64,
    /// Zones whose takeover was refused, by the tick their standby asks again.
    again: BTreeMap<u64, Vec<usize>>,
    /// Zones whose takeover is asked again: a second refusal is final.
    asked_again: BTreeSet<usize>,
}

impl Views {
    pub(super) fn new(seed: u64) -> Views {
        Views {
            key: seed ^ 0x5e3e_d71e_0000_0007,
            again: BTreeMap::new(),
            asked_again: BTreeSet::new(),
        }
    }
}

impl Sim {
    /// Ticks by which node `observer`'s view of event `(salt, at)` about node `node` trails
    /// the earliest view: 0 unless views are skewed.
    pub(super) fn skew(&self, observer: u32, node: u32, (salt, at): (u64, u64)) -> u64 {
        let Some(views) = &self.views else {
            return 0;
        };
        let mut x = views.key ^ salt.rotate_left(48) ^ at.rotate_left(16);
        x ^= (u64::from(observer) << 32) | u64::from(node);
        // splitmix64's finaliser: every input bit moves every output bit.
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        x % (SKEW_TICKS + 1)
    }

    /// Whether `tick` falls in the window in which the nodes' views of node `node`'s death
    /// at `at` (declared `detect` ticks later at the earliest) each turn to "down".
    pub(super) fn declaring(&self, tick: u64, at: u64, detect: u64) -> bool {
        let first = at + detect;
        let last = first + if self.views.is_some() { SKEW_TICKS } else { 0 };
        (first..=last).contains(&tick)
    }

    /// Membership declares node `node` (dead or cut off at `at`) down, as each zone's
    /// deciding node comes to see it: primaries whose standby it was ask to go on without
    /// it ([`super::votes`]), standbys of its zones ask to take them over. Called every
    /// tick of [`Sim::declaring`]; with one view for all, once, as before. `cut`: the node
    /// runs on behind a cut, and a zone of it that is down when its takeover is asked
    /// stays down (its restart would be one more superseded run).
    pub(super) fn declared_down(
        &mut self,
        tick: u64,
        node: u32,
        (at, detect): (u64, u64),
        cut: bool,
    ) {
        let sees_now =
            |sim: &Sim, observer: u32| tick == at + detect + sim.skew(observer, node, (DOWN, at));
        for z in 0..self.zones.len() {
            let orphaned = self.standbys.streams[z]
                .as_ref()
                .is_some_and(|s| s.node == node && self.node_of[z] != node);
            if orphaned && sees_now(self, self.node_of[z]) {
                self.ask_drop(tick, z);
            }
        }
        for z in 0..self.zones.len() {
            if self.node_of[z] != node {
                continue;
            }
            // Without a standby, nobody asks: the zone waits for its node (the ask
            // finds that out), at the earliest view.
            let asker = self.standbys.streams[z].as_ref().map(|s| s.node);
            let skew = asker.map_or(0, |a| self.skew(a, node, (DOWN, at)));
            if tick == at + detect + skew {
                if cut {
                    self.down_until[z] = None;
                }
                self.ask_promote(tick, z);
            }
        }
    }

    /// Zone `z`'s takeover was refused. The node tries again after a second
    /// (`failover::RETRY`): a refusal can hold only for a while (a promise to another run
    /// not yet withdrawn everywhere; a node that does not see the primary down answers
    /// "wait", not "no"). With skewed views the standby asks once more after
    /// [`RETRY_TICKS`] if it still sees its primary down (true: asked again); a second
    /// refusal is final, as every refusal is with one view for all: the zone waits for
    /// its own node.
    pub(super) fn ask_takeover_again(&mut self, tick: u64, z: usize) -> bool {
        let sees_down = self.standby_sees_primary_down(tick, z);
        let Some(views) = self.views.as_mut() else {
            return false;
        };
        // Asked again already (a second refusal), or no longer worth asking.
        if views.asked_again.remove(&z) || !sees_down {
            return false;
        }
        views.asked_again.insert(z);
        views.again.entry(tick + RETRY_TICKS).or_default().push(z);
        true
    }

    /// Whether zone `z`'s standby, if it has one, sees the zone's node down.
    pub(super) fn standby_sees_primary_down(&self, tick: u64, z: usize) -> bool {
        let standby = self.standbys.streams[z].as_ref().map(|s| s.node);
        standby.is_some_and(|s| self.sees_down(tick, s, self.node_of[z]))
    }

    /// Zone `z` was taken over: a later refusal of its takeover is a first one again.
    pub(super) fn took_over(&mut self, z: usize) {
        if let Some(views) = self.views.as_mut()
            && views.asked_again.remove(&z)
        {
            self.report.asked_again_took_over += 1;
        }
    }

    /// Every tick: the takeovers refused a while ago asked again, where the zone is still
    /// down and its standby still sees its node down; otherwise it waits for its node.
    pub(super) fn takeovers_again(&mut self, tick: u64) {
        let Some(views) = self.views.as_mut() else {
            return;
        };
        for z in super::network::take_due(&mut views.again, tick) {
            let down = self.zones[z].is_none() && self.down_until[z].is_none();
            if down && self.standby_sees_primary_down(tick, z) {
                self.report.takeovers_asked_again += 1;
                self.ask_promote(tick, z);
            } else {
                self.views.as_mut().expect("skewed").asked_again.remove(&z);
                self.wait_for_own_node(tick, z);
            }
        }
    }
}
