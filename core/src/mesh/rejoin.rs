//! How a node that the others declared down gets back into their view while it runs on.
//!
//! foca trusts nothing from a member it holds down (its messages are dropped until the
//! member is forgotten, a minute later), and telling a member it was declared down —
//! foca's TURN UNDEAD, `notify_down_members` — is off: foca sends that notice for any
//! message from a member it merely suspects too, and at 5 % loss live nodes rejoined 54
//! times in 100 node-seconds (docs/mesh.md). So a node learns it was declared down only
//! from the others' periodic announcements — which a node that holds *them* down drops.
//! Two cases end there, each side holding the other down for a minute:
//!
//! - **a stall** (SIGSTOP, a VM pause): the node's own timers fire late and declare the
//!   others down before it hears from them. The node notices the gap in its clock and
//!   rejoins at once as a new life ([`Mesh::woke`]; session 28).
//! - **a cut that heals** (found by the membership simulator, session 51): a node cut off
//!   from the others for longer than a suspicion takes declares them down while they
//!   declare it down; after the heal each drops the other's datagrams. Now a node that
//!   gets an authenticated datagram from a life it holds down tells that life so — a TURN
//!   UNDEAD of its own, sent only for a member down here, never for a suspect, at most once
//!   per probe period per node ([`Mesh::tell_undead`]). The sender rejoins as a new life,
//!   which the others take like any newcomer. Where both sides hold each other down, both
//!   rejoin. foca takes the notice only if it names the receiver's current life, so one
//!   still on the way after a rejoin changes nothing. (For the notice to be sent, the two
//!   must speak at all: a node that sees every other down has nobody to gossip with, so
//!   each node announces itself every 2 s to the nodes it does not hear from, down ones
//!   included: `deaths::ANNOUNCE_EVERY`.)
//!
//! Either way the rejoined node starts over with a fresh membership ([`Mesh::start_over`]),
//! as at a start: foca's rejoin would keep the member list — the others still held down,
//! and a peer that died while this node stalled held alive for good, as nothing probes a
//! member while no other answers.

use foca::{AccumulatingRuntime, Codec, Foca, Header, Identity, Message, PostcardCodec, State};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::{Liveness, Mesh, MeshEvent, NodeId};
use crate::time::Instant;
use meridian_layouts::control::ControlKind;

impl Mesh {
    /// Moves the clock to `now`. If this node did not run for longer than a suspicion
    /// takes to become a death (its process stopped or stalled), the others may have
    /// declared it down — and its own timers, firing late, are about to declare them
    /// down before it hears from them. Each side would then discard what the other sends
    /// (a down member's messages are not trusted) until the down members are forgotten,
    /// a minute later. So it rejoins at once as a new life, announced to every node,
    /// which the others take whatever they believed of the old one.
    pub(super) fn woke(&mut self, now: Instant) {
        let stalled = now.saturating_duration_since(self.now) > self.stall_after;
        self.now = self.now.max(now);
        if !stalled {
            return;
        }
        let Some(renewed) = self.foca.identity().renew() else {
            return;
        };
        self.counters.stall_rejoins += 1;
        self.events.push_back(MeshEvent::Rejoined {
            generation: renewed.generation,
        });
        self.start_over(renewed);
    }

    /// This node goes on as the new life `life`, as if it had just started: a fresh
    /// membership that holds nobody down and knows nobody alive, announced to every
    /// node. What it saw alive it must hear from again — within the start grace, else it
    /// is down, as at the start; what it saw down stays down until it speaks. (foca's own
    /// rejoin keeps its member list: a node that saw the others down dropped their
    /// datagrams still, and one whose peers all died while it stalled saw them alive for
    /// good, as nothing probed them — both found by the membership simulator.)
    pub(super) fn start_over(&mut self, life: NodeId) {
        let seed = u64::from(life.generation) << 16 | u64::from(life.node);
        self.foca = Foca::new(
            life,
            self.foca_config.clone(),
            SmallRng::seed_from_u64(seed ^ 0x7265_6a6f_696e),
            PostcardCodec,
        );
        // The old membership's timers and what it still meant to send are void.
        self.timers.clear();
        self.runtime = AccumulatingRuntime::new();
        let now = self.now;
        for peer in &mut self.peers {
            if matches!(peer.liveness, Liveness::Alive | Liveness::Suspect) {
                (peer.liveness, peer.since) = (Liveness::Unknown, now);
            }
        }
        self.silent_until = now + self.silent_after;
        self.join(now);
    }

    /// A gossip datagram (authenticated) from peer `k`: if foca holds its sender's life
    /// down, tell that life so (see the module docs).
    pub(super) fn tell_undead(&mut self, k: usize, payload: &[u8]) {
        let header: Result<Header<NodeId>, _> = PostcardCodec.decode_header(payload);
        let Ok(header) = header else {
            return;
        };
        let src = header.src;
        let down = self
            .foca
            .iter_membership_state()
            .any(|m| *m.id() == src && m.state() == State::Down);
        let (now, every) = (self.now, self.foca_config.probe_period);
        let peer = &mut self.peers[k];
        let recently = peer.undead_told.is_some_and(|t| now < t + every);
        if !down || src.node != peer.node || recently {
            return;
        }
        peer.undead_told = Some(now);
        let notice = Header {
            src: *self.foca.identity(),
            src_incarnation: Default::default(),
            dst: src,
            message: Message::TurnUndead,
        };
        let mut payload = Vec::new();
        if PostcardCodec.encode_header(&notice, &mut payload).is_err() {
            return;
        }
        self.send_control(ControlKind::Gossip, src.node, &payload);
        self.counters.undead_told += 1;
    }
}
