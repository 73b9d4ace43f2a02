//! A node that comes up is told which nodes the others see down (mesh protocol 10).
//!
//! foca tells of a death a few times, piggybacked on what a node sends anyway, then stops;
//! its answer to a newcomer's announcement lists live members only. A node that starts —
//! or restarts — after the others stopped telling never heard of the dead node: "unknown",
//! down only once [`super::MeshConfig::silent_to_down_after`] passed (5 s by default, the
//! world file's `start_grace_s`). Meanwhile a zone it resumed waits for that node as its
//! standby and sends nothing (found by the node test
//! `failover::a_standby_killed_just_after_its_takeover_runs_the_zone_again_on_restart`,
//! which failed when the restart came ~170 ms after the death was declared).
//!
//! So each node, when another comes up (a new life), sends it one deaths datagram: every
//! node it sees down, with the life it saw go down. The newcomer takes, from a node it
//! sees alive, those it has not heard from since it started: down from its view, exactly
//! as after the silent wait (a takeover still needs a majority that sees the node down;
//! if the node speaks up later, it is up like any node that comes back). What it knows
//! first-hand is never overruled: a node it heard from stays as it heard. A member can
//! lie this way no more than it already could in foca's gossip, which every member takes.

use core::time::Duration;

use meridian_layouts::control::{ControlKind, Death};
use meridian_layouts::{U16Le, U32Le};

use super::{Liveness, Mesh, MeshEvent, NodeId, Peer};
use crate::time::Instant;

/// How often a node announces itself again to the listed nodes it does not hear from.
/// Its announcement at the start is lost when such a node starts later; the others'
/// announcements reach this node, and it answers them — unless it cannot take them (a
/// node of another world file or protocol), and then that node never heard of this one
/// and could not say which world or protocol it runs (found by the node test
/// `mesh::nodes_of_different_world_files_refuse_each_other_and_say_so`, which failed in
/// 2 of 5 runs for the ~20 ms its second node took to start). And a node that sees every
/// other down — cut off from all of them until each side declared the other down — has
/// no live member to gossip with, and foca goes quiet: two such nodes never spoke again
/// after the cut healed (the membership simulator, session 51). Announced to, a node that
/// holds this one down says so, and this one rejoins (`rejoin`).
pub(super) const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);

/// When a node that came up is told the deaths again, after the first time. The first
/// datagram can arrive before the newcomer hears from this node — it takes the deaths
/// only from a node it sees alive, so it drops them — or be lost; either way it would
/// wait the whole start grace (the membership simulator, session 51: seed 236, a
/// datagram overtaken by one sent before it).
pub(super) const TELL_AGAIN: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];

/// Whether this node does not hear from `peer`: not since it started, or it is down.
pub(super) fn silent(peer: &Peer) -> bool {
    matches!(peer.liveness, Liveness::Unknown | Liveness::Down)
}

impl Mesh {
    /// Declares down every listed node not heard from since this one started, once
    /// [`super::MeshConfig::silent_to_down_after`] has passed (from this node's view only: a
    /// takeover still needs a majority that sees it down). If it speaks up later, it is
    /// up again like any node that comes back.
    pub(super) fn declare_silent(&mut self) {
        if self.now < self.silent_until {
            return;
        }
        for peer in &mut self.peers {
            if peer.liveness == Liveness::Unknown {
                (peer.liveness, peer.since) = (Liveness::Down, self.now);
                let (node, generation) = (peer.node, peer.generation);
                self.events.push_back(MeshEvent::Down { node, generation });
            }
        }
    }

    /// Announces this node again to the listed nodes it does not hear from, every
    /// [`ANNOUNCE_EVERY`].
    pub(super) fn announce_to_silent(&mut self) {
        if self.now < self.announce_at {
            return;
        }
        self.announce_at = self.now + ANNOUNCE_EVERY;
        let silent: Vec<u16> = self
            .peers
            .iter()
            .filter(|p| silent(p))
            .map(|p| p.node)
            .collect();
        for node in silent {
            let life = NodeId {
                node,
                generation: 0,
            };
            let _ = self.foca.announce(life, &mut self.runtime);
        }
        self.drain_runtime();
    }

    /// Tells node `to`, which just came up, every node this one sees down — now and
    /// again after each of [`TELL_AGAIN`], while it stays up in that life.
    pub(super) fn tell_deaths(&mut self, to: u16) {
        let generation = self
            .peers
            .iter()
            .find(|p| p.node == to)
            .map(|p| p.generation);
        if let Some(generation) = generation {
            let now = self.now;
            let again = TELL_AGAIN.iter().map(|&d| (now + d, to, generation));
            self.deaths_again.extend(again);
        }
        self.send_deaths(to);
    }

    /// Every [`TELL_AGAIN`] due: the deaths again, to a node still up in the life they
    /// were first told to.
    pub(super) fn tell_deaths_again(&mut self) {
        let now = self.now;
        let due: Vec<(Instant, u16, u32)> =
            self.deaths_again.extract_if(.., |t| t.0 <= now).collect();
        for (_, to, generation) in due {
            let up = self.peers.iter().any(|p| {
                p.node == to
                    && p.generation == generation
                    && matches!(p.liveness, Liveness::Alive | Liveness::Suspect)
            });
            if up {
                self.send_deaths(to);
            }
        }
    }

    /// Sends node `to` one deaths datagram: every node this one sees down (none: nothing).
    fn send_deaths(&mut self, to: u16) {
        let deaths: Vec<Death> = self
            .peers
            .iter()
            .filter(|p| p.liveness == Liveness::Down && p.node != to)
            .map(|p| Death {
                node: U16Le::new(p.node),
                generation: U32Le::new(p.generation),
            })
            .collect();
        if !deaths.is_empty() {
            self.send_control(ControlKind::Deaths, to, bytemuck::cast_slice(&deaths));
        }
    }

    /// A deaths datagram from node `from`, signature checked: the nodes it lists that
    /// this node has not heard from since it started are down — if `from` is alive here.
    pub(super) fn heard_deaths(&mut self, from: u16, payload: &[u8]) {
        let alive = self
            .peers
            .iter()
            .any(|p| p.node == from && matches!(p.liveness, Liveness::Alive | Liveness::Suspect));
        let deaths: Option<&[Death]> = bytemuck::try_cast_slice(payload).ok();
        let Some(deaths) = deaths.filter(|_| alive) else {
            self.counters.deaths_dropped += 1;
            return;
        };
        self.counters.deaths_heard += 1;
        let now = self.now;
        for death in deaths {
            let (node, generation) = (death.node.get(), death.generation.get());
            let Some(peer) = self
                .peers
                .iter_mut()
                .find(|p| p.node == node && p.node != from)
            else {
                continue;
            };
            // Its generation stays unknown here (0): whichever life of it speaks up
            // later is up, whatever `from` said.
            if peer.liveness == Liveness::Unknown {
                (peer.liveness, peer.since) = (Liveness::Down, now);
                self.events.push_back(MeshEvent::Told {
                    node,
                    generation,
                    by: from,
                });
            }
        }
    }
}
