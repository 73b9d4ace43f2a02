//! The zones fail back (docs/mesh.md). In half the seeds where a dead node came back
//! ([`super::comeback`]) and there is time to fail over again and heal, a node that now
//! runs a zone the returned node keeps the standby of dies in turn, 150–350 ticks after the
//! return — preferring one whose standby there the mesh has agreed is current again. (In
//! half of the other seeds the returned node itself dies again, as the standby of the
//! zones it kept: their primaries must be able to drop it, so nothing it once asked for
//! and never acted on may be left in the ledgers — [`super::votes`].) Its
//! zones are promoted like any dead node's: a zone whose standby is the returned node
//! goes back to it, from the copy it rebuilt since (its resync), if the mesh agrees.
//!
//! What this asks of the votes: a copy the mesh has not agreed is current — a kept standby
//! still catching up, or one that holds only the old run the zone was taken over from —
//! must not take the zone over; one agreed current may, and must hold every record whose
//! datagrams left.
//!
//! A zone of the node that nobody may take over waits for the node, which then restarts
//! (as after the first death): from that restart the node is alive again, and its other
//! zones nobody took over restart with it. The model found two gaps of its own on the way:
//! a takeover ask left over from the first death and a new one for the same zone were
//! both granted (one takeover ask per zone at a time now, as in the node), and a node that
//! restarted for one waiting zone left its others down for good (seed 375).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::Sim;
use super::standby::DETECT_TICKS;

/// The second death: when, and (once it happened) which node.
pub(super) struct Failback {
    pub(super) at: u64,
    /// The returned node itself dies again, rather than one running its standbys' zones.
    returned: bool,
    node: Option<u32>,
    /// When a zone nobody could take over restarted on the node (it waited for it): the
    /// node is back from then.
    revived: Option<u64>,
}

impl Failback {
    /// Draws it (from generators of its own) for a node that comes back at `back_at`,
    /// where the failover and a heal still fit before `fault_end`: in half the seeds a
    /// node running its standbys' zones, and in half of the others the returned node
    /// itself (`dies_again`: the returned node in all of them, or in none).
    pub(super) fn draw(
        seed: u64,
        back_at: Option<u64>,
        fault_end: u64,
        dies_again: Option<bool>,
    ) -> Option<Failback> {
        let back_at = back_at?;
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x57a9_d8b1_0000_0005);
        let at = back_at + rng.random_range(150..=350);
        let drawn = rng.random_bool(0.5);
        let mut rng_again = SmallRng::seed_from_u64(seed ^ 0x57a9_d8b1_0000_0006);
        let returned = dies_again.unwrap_or_else(|| !drawn && rng_again.random_bool(0.5));
        let in_turn = drawn && dies_again != Some(true);
        ((in_turn || returned) && at + DETECT_TICKS + 200 <= fault_end).then_some(Failback {
            at,
            returned,
            node: None,
            revived: None,
        })
    }
}

impl Sim {
    /// Whether node `node` died in turn by `tick` and is not back (it comes back only
    /// for a zone nobody could take over, which waits for it).
    pub(super) fn died_in_turn(&self, tick: u64, node: u32) -> bool {
        self.failback.as_ref().is_some_and(|f| {
            f.node == Some(node) && tick >= f.at && f.revived.is_none_or(|r| tick < r)
        })
    }

    /// A zone restarts on node `node` (or something waits for the node: [`Sim::dead_taker`]):
    /// if the node is dead, the whole node is back — its other zones nobody took over
    /// restart with it, it withdraws the promises it never acted on, and asks again for
    /// the takeovers it would have asked for while dead. From its first death that is its
    /// comeback ([`Sim::comeback_now`]); from dying in turn, here.
    pub(super) fn node_restarts(&mut self, tick: u64, node: u32) {
        if let Some(f) = self.failback.as_mut()
            && f.node == Some(node)
            && tick >= f.at
            && f.revived.is_none()
        {
            f.revived = Some(tick);
            self.report.returned_awaited += 1;
            self.event(tick, ("back after dying in turn", node));
            self.restart_zones_left(tick, node);
            self.withdraw_unacted(tick, node);
            self.retry_takeovers(tick, node);
        } else if self.dead(tick, node) {
            self.report.returned_awaited += 1;
            self.event(tick, ("back from its first death", node));
            self.comeback_now(tick, node);
        }
    }

    /// With `Options::takers_die`: the mesh just agreed to `taker`'s takeover of a zone of
    /// the seed's dead node — the first such takeover, with time left to come back and
    /// heal — and the taker dies before it hears (the node's crash-test pause
    /// `MERIDIAN_AGREED_PAUSE_MS` and a kill, in the process test). A second death, kept
    /// as the one that follows a comeback is ([`Failback`]): declared down 25 ticks later,
    /// its zones asked for by their standbys, and back only when something waits for it
    /// — the zone it was to take over does ([`Sim::dead_taker`]).
    pub(super) fn taker_dies(&mut self, tick: u64, taker: u32) {
        let Some((at, first)) = self.standbys.death else {
            return;
        };
        let room = tick + DETECT_TICKS + 2 * super::standby::REBOOT_TICKS + 200;
        let late = room > self.ticks - super::HEAL_TICKS;
        if !self.takers_die || self.failback.is_some() || tick < at || taker == first || late {
            return;
        }
        self.failback = Some(Failback {
            at: tick,
            returned: false,
            node: Some(taker),
            revived: None,
        });
        self.report.takers_died += 1;
        self.event(tick, ("taker dies as its takeover is agreed", taker));
        self.kill_node(tick, taker);
    }

    /// The second death and its takeovers, when due.
    pub(super) fn failback_step(&mut self, tick: u64) {
        let Some(f) = self.failback.as_ref() else {
            return;
        };
        if tick == f.at {
            match self.failback_victim() {
                Some(node) => {
                    self.failback.as_mut().expect("drawn").node = Some(node);
                    self.event(tick, ("dies in turn", node));
                    if self.comeback_node() == Some(node) {
                        self.report.died_again += 1;
                    } else {
                        self.report.failbacks += 1;
                    }
                    self.kill_node(tick, node);
                }
                None => self.failback = None,
            }
        } else if let Some(node) = f.node
            && self.declaring(tick, f.at, DETECT_TICKS)
        {
            self.declared_down(tick, node, (f.at, DETECT_TICKS), false);
        }
    }

    /// The returned node itself when drawn so; otherwise a node running a zone whose
    /// standby the returned node keeps (one agreed current first), if any.
    fn failback_victim(&self) -> Option<u32> {
        let back = self.comeback_node()?;
        if self.failback.as_ref().is_some_and(|f| f.returned) {
            return Some(back);
        }
        let mut victim = None;
        for z in 0..self.zones.len() {
            let Some(stream) = self.standbys.streams[z].as_ref() else {
                continue;
            };
            let (node, running) = (self.node_of[z], self.zones[z].is_some());
            if stream.node != back || !running || node == back {
                continue;
            }
            if !stream.dropped {
                return Some(node);
            }
            victim.get_or_insert(node);
        }
        victim
    }
}
