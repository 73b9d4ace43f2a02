//! Mesh membership: which nodes of the world are alive, by SWIM gossip with suspicion (the
//! `foca` crate), sans-IO like the zones — driven by `now`, datagrams in and out through
//! the caller — so a node runs it on its control port and tests run it in memory.
//!
//! **Identity.** A node is its index in the world file's `[[nodes]]` and a *generation*: a
//! node starts with a generation above any it had before (the node uses the wall clock's
//! seconds), and foca renews it (+1) when the node learns the others declared it down, so
//! a node that comes back is a new member, never the old one resurrected. Addresses and
//! public keys come from the world file, not from gossip.
//!
//! **Authentication.** foca authenticates nothing; every datagram is signed with the
//! sender's node key and checked against the key the world file pins for that node
//! before foca sees it, and carries a tag under a key only the sender and the receiver
//! share, checked before the signature ([`gate`]):
//!
//! ```text
//! datagram := kind:u8 (0x67) version:u8 node:u16le world:8 payload tag:16 signature:64
//! signed   := "meridian/gossip/v1" ‖ version:u8 ‖ node:u16le ‖ world:8 ‖ payload
//! ```
//!
//! A datagram from a node the world file does not list, from another address than that
//! node's control address, with a tag that does not hold, beyond the node's budget of
//! signature checks, with a bad signature, or too short is dropped and counted. The checks
//! go from cheap to dear: a stranger flooding the control port from its own address costs
//! a comparison, and one that forges a node's source address (no answer needed: UDP) a
//! hash — never a signature check (~40 µs; enough of them delay the probes and make live
//! nodes look dead, as they did before the tag). What is left to a sender on the path is
//! replaying a node's datagrams: they cost at most that node's budget
//! ([`VERIFY_PER_WINDOW`]), and foca orders what they say by each member's incarnation,
//! so an old suspicion or announcement changes nothing a newer one said.
//!
//! **Versions.** `version` is the mesh protocol the sender speaks
//! ([`meridian_layouts::control`]). A datagram of another version — from a listed node's
//! address, before any signature check, as its signing rules may differ — is dropped and
//! counted, and the node's version is reported ([`MeshEvent::Version`], [`Peer::version`]):
//! to this node, a node of another protocol is one that does not answer, so the mesh
//! treats it as down, and neither counts the other's votes.
//!
//! **Worlds.** `world` is the sender's world digest ([`MeshConfig::world`]: what the
//! nodes must agree on in their world file, hashed by the node). A datagram of this
//! protocol whose tag holds (the node made it) but with another digest — checked before
//! the signature — is dropped and counted, and reported once per change ([`MeshEvent::World`],
//! [`Peer::world`]): a node started with another world file places zones, standbys and
//! keys by other rules, so it is not of this mesh, and neither side counts the other's
//! votes.
//!
//! **Timing.** [`MeshConfig::default`] is tuned for a LAN: a dead node is suspected
//! within about two probe periods and declared down `suspect_to_down_after` later (under
//! a second; `mesh::a_dead_node_is_declared_down_within_a_second`). A suspicion that is
//! false (a slow or partitioned node) is refuted by the node itself when it hears of it;
//! what a declaration of death may and may not cause is the failover's business (the
//! incarnation of each zone fences it), not membership's.
//!
//! **Votes.** The same port carries the votes on zones' standbys ([`votes`]): a node asks
//! ([`Mesh::ask`]) every other node, which answers from its [`votes::Ledger`] and its own
//! view of who is down; the ask is sent again every [`VOTE_RESEND`] to the nodes that
//! have not agreed, and decided ([`MeshEvent::Decided`]) when a majority agreed (every
//! node, for a withdrawal), when so many refused that none can, or after
//! [`VOTE_TIMEOUT`]. Vote datagrams are checked like gossip (the
//! node's address first, then its signature) under their own signing domain. A node
//! keeps its ledger on disk: answers and decisions leave only after what they rest on
//! was saved ([`Mesh::ledger_to_save`], reported with [`Mesh::ledger_saved`]; or
//! [`Mesh::save_ledger`] in one call). A mesh without a ledger asks but does not vote.

mod ballots;
mod counters;
mod deaths;
mod frame;
mod gate;
mod rejoin;
pub mod votes;

pub use ballots::LedgerSave;

pub use counters::MeshCounters;
pub use frame::control_datagram;
use frame::{datagram, signed_bytes};

pub use gate::{VERIFY_PER_WINDOW, VERIFY_WINDOW, tag_key};

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::VecDeque;
use std::num::{NonZeroU8, NonZeroUsize};

use ed25519_dalek::{Signature, SigningKey, Verifier, VerifyingKey};
use foca::{
    AccumulatingRuntime, Config, Foca, Identity, NoCustomBroadcast, OwnedNotification,
    PeriodicParams, PostcardCodec, State, Timer,
};
use meridian_layouts::control::{
    ControlHead, ControlKind, MESH_VERSION, WORLD_DIGEST_SIZE, parse_control, tagged_bytes,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::time::Instant;
use ballots::Ballot;
use votes::{Ask, Ledger};

/// How often an undecided ask goes again to the nodes that have not agreed.
pub const VOTE_RESEND: Duration = Duration::from_millis(100);
/// An ask not decided by then is refused (the asker may ask again).
pub const VOTE_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest payload foca may write (a gossip datagram stays under 1,400 bytes).
const PAYLOAD_MAX: usize = 1_400 - ControlHead::OVERHEAD;

/// A member: a node of the world file, in one of its lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct NodeId {
    /// Its index in the world file's `[[nodes]]`.
    pub node: u16,
    pub generation: u32,
}

impl Identity for NodeId {
    type Addr = u16;

    fn renew(&self) -> Option<Self> {
        Some(NodeId {
            generation: self.generation.wrapping_add(1),
            ..*self
        })
    }

    fn addr(&self) -> u16 {
        self.node
    }

    /// Two lives of one node: the newer one is the node.
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

/// What this node believes of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Not heard of yet.
    Unknown,
    Alive,
    /// Some member suspects it (still treated as alive until declared down).
    Suspect,
    Down,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Unknown => "unknown",
            Liveness::Alive => "alive",
            Liveness::Suspect => "suspect",
            Liveness::Down => "down",
        }
    }
}

/// Another node of the world, as this one sees it.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub node: u16,
    pub addr: SocketAddr,
    key: VerifyingKey,
    pub liveness: Liveness,
    /// The generation last heard of.
    pub generation: u32,
    /// When `liveness` last changed.
    pub since: Instant,
    /// The mesh protocol its datagrams last spoke: this build's
    /// ([`MESH_VERSION`]) until one of another version arrives from its address.
    pub version: u8,
    /// The world digest its datagrams last carried: this node's until one with another
    /// arrives.
    pub world: [u8; WORLD_DIGEST_SIZE],
    /// The key of the tags between it and this node.
    tag: gate::TagKey,
    /// The signature checks its datagrams may still cost in this window.
    budget: gate::Budget,
    /// When this node last told the peer it holds it down ([`rejoin`]).
    undead_told: Option<Instant>,
}

/// A change in membership, for the node to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeshEvent {
    Up {
        node: u16,
        generation: u32,
    },
    Down {
        node: u16,
        generation: u32,
    },
    /// Down too: not heard from since this node started, and `by` (alive) saw it go
    /// down in `generation` (0: `by` never heard from it either) ([`deaths`]).
    Told {
        node: u16,
        generation: u32,
        by: u16,
    },
    /// The others had declared this node down — or it did not run for longer than they
    /// take to, and rejoined without waiting to hear so: it rejoined as `generation`.
    Rejoined {
        generation: u32,
    },
    /// Datagrams from `node`'s address now speak mesh protocol `version`: another than
    /// this build's (they are dropped, and the node looks down from here), or this
    /// build's again (it was upgraded or rolled back to match).
    Version {
        node: u16,
        version: u8,
    },
    /// Datagrams from `node` now carry world digest `world`: another than this node's
    /// (they are dropped, and the node looks down from here: it runs another world file),
    /// or this node's again.
    World {
        node: u16,
        world: [u8; WORLD_DIGEST_SIZE],
    },
    /// An ask of this node was decided: agreed by a majority, or not.
    Decided {
        ballot: u64,
        ask: Ask,
        granted: bool,
    },
}

/// Detection timing (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeshConfig {
    pub probe_period: Duration,
    pub probe_rtt: Duration,
    pub suspect_to_down_after: Duration,
    /// A listed node this one has not heard from since it started is declared down after
    /// this long. foca suspects only members it has heard of, and the others tell of a
    /// death a few times, then stop: a node that starts while another is dead would
    /// otherwise never learn of it, and never take that node's zones over. Longer than a
    /// death takes, so that the nodes of a mesh started together find each other first.
    pub silent_to_down_after: Duration,
    /// This node's world digest: what the nodes of one mesh must agree on in their world
    /// file (the node hashes it; the simulator's nodes share one). See the module docs.
    pub world: [u8; WORLD_DIGEST_SIZE],
}

impl Default for MeshConfig {
    fn default() -> MeshConfig {
        MeshConfig {
            probe_period: Duration::from_millis(100),
            probe_rtt: Duration::from_millis(40),
            suspect_to_down_after: Duration::from_millis(500),
            silent_to_down_after: Duration::from_secs(5),
            world: [0; WORLD_DIGEST_SIZE],
        }
    }
}

/// Why a mesh could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MeshError {
    #[error("node {0}: its public key is not a valid Ed25519 key")]
    BadKey(u16),
    #[error("node {0} is listed twice")]
    Duplicate(u16),
    #[error("node {0}: its public key shares no secret with this node's (a key of small order)")]
    WeakKey(u16),
}

/// One node's membership (see the module docs).
pub struct Mesh {
    foca: Foca<NodeId, PostcardCodec, SmallRng, NoCustomBroadcast>,
    /// foca's configuration (it has no getter; [`Mesh::leave`] widens it).
    foca_config: Config,
    runtime: AccumulatingRuntime<NodeId>,
    /// Timers foca asked for: (due, order of asking, timer).
    timers: Vec<(Instant, u64, Timer<NodeId>)>,
    asked: u64,
    key: SigningKey,
    /// This node's world digest ([`MeshConfig::world`]).
    world: [u8; WORLD_DIGEST_SIZE],
    peers: Vec<Peer>,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<MeshEvent>,
    counters: MeshCounters,
    now: Instant,
    /// A gap between two calls longer than this means this node did not run for as long
    /// as the others take to declare a silent node down ([`Mesh::woke`]).
    stall_after: Duration,
    /// When a listed node not heard from since this one started counts as down.
    silent_until: Instant,
    /// How long a listed node may stay unheard at the start ([`MeshConfig::silent_to_down_after`]).
    silent_after: Duration,
    /// When this node next announces itself to the listed nodes it does not hear from.
    announce_at: Instant,
    /// Deaths to tell again: (when, node, its life) ([`deaths::TELL_AGAIN`]).
    deaths_again: Vec<(Instant, u16, u32)>,
    /// What this node agreed to (`None`: it does not vote).
    ledger: Option<Ledger>,
    ballots: Vec<Ballot>,
    /// Runs their primaries announced ended for a move: (zone, run, node) ([`Mesh::ended`]).
    ended: Vec<(u32, u32, u16)>,
    asks_made: u32,
    /// Answers and decisions waiting for the ledger to be saved.
    held: ballots::Held,
}

impl core::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mesh")
            .field("me", self.foca.identity())
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

impl Mesh {
    /// This node (`me`, in its `generation`, signing with `key`) among `peers` — every
    /// other node of the world file: (index, control address, public key).
    pub fn new(
        me: u16,
        generation: u32,
        key: SigningKey,
        peers: &[(u16, SocketAddr, [u8; 32])],
        config: MeshConfig,
        now: Instant,
        seed: u64,
    ) -> Result<Mesh, MeshError> {
        let mut list: Vec<Peer> = Vec::with_capacity(peers.len());
        for &(node, addr, public) in peers {
            if node == me || list.iter().any(|p| p.node == node) {
                return Err(MeshError::Duplicate(node));
            }
            let public = VerifyingKey::from_bytes(&public).map_err(|_| MeshError::BadKey(node))?;
            let tag = gate::TagKey::between(&key, &public).ok_or(MeshError::WeakKey(node))?;
            list.push(Peer {
                node,
                addr,
                key: public,
                liveness: Liveness::Unknown,
                generation: 0,
                since: now,
                version: MESH_VERSION,
                world: config.world,
                tag,
                budget: gate::Budget::new(now),
                undead_told: None,
            });
        }
        let size = u8::try_from(list.len() + 1).unwrap_or(u8::MAX);
        let foca_config = Config {
            probe_period: config.probe_period,
            probe_rtt: config.probe_rtt,
            num_indirect_probes: NonZeroUsize::MIN.saturating_add(1),
            // Enough for every member to hear of an update a few times over.
            max_transmissions: NonZeroU8::new(size.saturating_mul(2).max(6))
                .unwrap_or(NonZeroU8::MAX),
            suspect_to_down_after: config.suspect_to_down_after,
            remove_down_after: Duration::from_secs(60),
            max_packet_size: NonZeroUsize::new(PAYLOAD_MAX).unwrap_or(NonZeroUsize::MIN),
            // Telling a member it was declared down (TURN UNDEAD) made a lossy mesh churn:
            // at 5 % loss, 54 false rejoins per 100 node-seconds with it, none without
            // (`mesh::loss_and_a_partial_partition_declare_no_one_down`). A node learns it
            // was declared down from the periodic announcements instead.
            notify_down_members: false,
            periodic_announce: Some(PeriodicParams {
                frequency: Duration::from_secs(5),
                num_members: NonZeroUsize::MIN,
            }),
            periodic_announce_to_down_members: Some(PeriodicParams {
                frequency: Duration::from_secs(2),
                num_members: NonZeroUsize::MIN,
            }),
            periodic_gossip: Some(PeriodicParams {
                frequency: config.probe_period,
                num_members: NonZeroUsize::MIN.saturating_add(1),
            }),
        };
        let identity = NodeId {
            node: me,
            generation,
        };
        let foca = Foca::new(
            identity,
            foca_config.clone(),
            SmallRng::seed_from_u64(seed),
            PostcardCodec,
        );
        Ok(Mesh {
            foca,
            foca_config,
            runtime: AccumulatingRuntime::new(),
            timers: Vec::new(),
            asked: 0,
            key,
            world: config.world,
            peers: list,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            counters: MeshCounters::default(),
            now,
            stall_after: config.suspect_to_down_after,
            silent_until: now + config.silent_to_down_after,
            silent_after: config.silent_to_down_after,
            announce_at: now + deaths::ANNOUNCE_EVERY,
            deaths_again: Vec::new(),
            ledger: None,
            ballots: Vec::new(),
            ended: Vec::new(),
            asks_made: 0,
            held: ballots::Held::default(),
        })
    }

    /// This node's world digest ([`MeshConfig::world`]).
    pub fn world(&self) -> [u8; WORLD_DIGEST_SIZE] {
        self.world
    }

    /// Announces this node to every peer (the world file's nodes are the seeds).
    pub fn join(&mut self, now: Instant) {
        self.now = now;
        let peers: Vec<u16> = self.peers.iter().map(|p| p.node).collect();
        for node in peers {
            // Any generation: an announcement is taken by whichever life the node is in.
            let _ = self.foca.announce(
                NodeId {
                    node,
                    generation: 0,
                },
                &mut self.runtime,
            );
        }
        self.drain_runtime();
    }

    /// Leaves the mesh: tells every live member that this life is down, so the others
    /// declare it down at once instead of after a suspicion. Call it last, after the
    /// node's zones have stopped: the others take its zones over from their standbys as
    /// soon as they hear. The mesh sends nothing after this but what it queued here
    /// ([`Mesh::poll_transmit`]); if those datagrams are lost, the others declare the node
    /// down as if it had died. (foca's leave tells as many members as it sends indirect
    /// probes to, two, and leaves the rest to gossip; for the leave that is widened to
    /// every member, so the standbys of a large mesh hear first hand.)
    pub fn leave(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let everyone = NonZeroUsize::new(self.peers.len()).unwrap_or(NonZeroUsize::MIN);
        let widened = Config {
            num_indirect_probes: everyone,
            ..self.foca_config.clone()
        };
        let _ = self.foca.set_config(widened);
        let _ = self.foca.leave_cluster(&mut self.runtime);
        self.drain_runtime();
    }

    /// A datagram from `from` on the control port.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.woke(now);
        self.counters.received += 1;
        let Ok(control) = parse_control(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        let node = control.node;
        let Some(k) = self.peers.iter().position(|p| p.node == node) else {
            self.counters.unknown_node += 1;
            return;
        };
        if from != self.peers[k].addr {
            self.counters.wrong_source += 1;
            return;
        }
        if control.version != MESH_VERSION {
            self.counters.other_version += 1;
            self.heard_version(k, control.version);
            return;
        }
        // The tag first (a hash: what a forged source address gets to cost), then the
        // peer's budget of signature checks (what replayed genuine datagrams get to).
        let peer = &mut self.peers[k];
        if !control
            .tag
            .is_some_and(|tag| peer.tag.holds(tagged_bytes(bytes), tag))
        {
            self.counters.bad_tag += 1;
            return;
        }
        // The tag held: the node made this datagram, and says which world it runs.
        let world = control.world.copied().unwrap_or_default();
        self.heard_world(k, world);
        if world != self.world {
            self.counters.other_world += 1;
            return;
        }
        let peer = &mut self.peers[k];
        if !peer.budget.take(now) {
            self.counters.over_budget += 1;
            return;
        }
        let signed = signed_bytes(control.kind, node, self.world, control.payload);
        let signature = Signature::from_bytes(control.signature);
        if self.peers[k].key.verify(&signed, &signature).is_err() {
            self.counters.bad_signature += 1;
            return;
        }
        self.heard_version(k, MESH_VERSION);
        let payload = control.payload;
        match control.kind {
            ControlKind::Vote => return self.handle_vote(node, from, payload),
            ControlKind::Deaths => return self.heard_deaths(node, payload),
            ControlKind::Gossip => {}
        }
        self.tell_undead(k, payload);
        if self.foca.handle_data(payload, &mut self.runtime).is_err() {
            self.counters.refused += 1;
        }
        self.drain_runtime();
    }

    /// Datagrams of peer `k` (their tag held) carry world digest `world`: reported when
    /// that changes.
    fn heard_world(&mut self, k: usize, world: [u8; WORLD_DIGEST_SIZE]) {
        let peer = &mut self.peers[k];
        if peer.world != world {
            peer.world = world;
            let node = peer.node;
            self.events.push_back(MeshEvent::World { node, world });
        }
    }

    /// Datagrams from peer `k`'s address speak mesh protocol `version`: reported when
    /// that changes.
    fn heard_version(&mut self, k: usize, version: u8) {
        let peer = &mut self.peers[k];
        if peer.version != version {
            peer.version = version;
            let node = peer.node;
            self.events.push_back(MeshEvent::Version { node, version });
        }
    }

    /// Fires the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.woke(now);
        loop {
            let due = self
                .timers
                .iter()
                .enumerate()
                .filter(|(_, t)| t.0 <= now)
                .min_by_key(|(_, t)| (t.0, t.1))
                .map(|(i, _)| i);
            let Some(i) = due else { break };
            let (_, _, timer) = self.timers.swap_remove(i);
            let _ = self.foca.handle_timer(timer, &mut self.runtime);
            self.drain_runtime();
        }
        self.declare_silent();
        self.announce_to_silent();
        self.tell_deaths_again();
        self.decide();
    }

    /// When [`Mesh::handle_timeout`] has work next.
    pub fn next_timeout(&self) -> Option<Instant> {
        let ballots = self.ballots.iter().map(|b| b.sent_at + VOTE_RESEND);
        let silent = self
            .peers
            .iter()
            .any(|p| p.liveness == Liveness::Unknown)
            .then_some(self.silent_until)
            .into_iter()
            .chain(
                self.peers
                    .iter()
                    .any(deaths::silent)
                    .then_some(self.announce_at),
            );
        self.timers
            .iter()
            .map(|t| t.0)
            .chain(self.deaths_again.iter().map(|t| t.0))
            .chain(ballots)
            .chain(silent)
            .min()
    }

    /// The next datagram to send: where, and its bytes.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.outbox.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<MeshEvent> {
        self.events.pop_front()
    }

    /// Every other node, as this one sees it.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// This node's current identity.
    pub fn me(&self) -> NodeId {
        *self.foca.identity()
    }

    pub fn counters(&self) -> MeshCounters {
        self.counters
    }

    /// Frames, tags and signs `payload` as a control datagram of `kind` to node `to`, and
    /// queues it.
    fn send_control(&mut self, kind: ControlKind, to: u16, payload: &[u8]) {
        let me = self.foca.identity().node;
        if let Some(peer) = self.peers.iter().find(|p| p.node == to) {
            let datagram = datagram(kind, (me, self.world), payload, &self.key, &peer.tag);
            self.outbox.push_back((peer.addr, datagram));
            self.counters.sent += 1;
        }
    }

    /// Takes what foca produced: datagrams (signed), timers, notifications.
    fn drain_runtime(&mut self) {
        while let Some((to, payload)) = self.runtime.to_send() {
            self.send_control(ControlKind::Gossip, to.node, &payload);
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.asked += 1;
            self.timers.push((self.now + after, self.asked, timer));
        }
        let mut rejoined = None;
        while let Some(notification) = self.runtime.to_notify() {
            if let OwnedNotification::Rejoin(id) = notification {
                self.events.push_back(MeshEvent::Rejoined {
                    generation: id.generation,
                });
                rejoined = Some(id);
            }
        }
        self.read_members();
        if let Some(life) = rejoined {
            self.start_over(life);
        }
    }

    /// Each node's liveness is its newest life's (an old generation going down after a
    /// newer one came up is not a death); a change is an event. Suspicion is not one of
    /// foca's notifications: it is read off the member list.
    fn read_members(&mut self) {
        let (now, mut ups) = (self.now, Vec::new());
        for peer in &mut self.peers {
            let newest = self
                .foca
                .iter_membership_state()
                .filter(|m| m.id().node == peer.node)
                .max_by_key(|m| m.id().generation);
            let Some(member) = newest else { continue };
            let generation = member.id().generation;
            let liveness = match member.state() {
                State::Alive => Liveness::Alive,
                State::Suspect => Liveness::Suspect,
                State::Down => Liveness::Down,
            };
            if generation < peer.generation
                || (peer.liveness, peer.generation) == (liveness, generation)
            {
                continue;
            }
            let node = peer.node;
            let up = matches!(peer.liveness, Liveness::Unknown | Liveness::Down)
                || generation != peer.generation;
            (peer.liveness, peer.generation, peer.since) = (liveness, generation, now);
            match liveness {
                Liveness::Down => self.events.push_back(MeshEvent::Down { node, generation }),
                Liveness::Alive | Liveness::Suspect if up => {
                    self.events.push_back(MeshEvent::Up { node, generation });
                    ups.push(node);
                }
                _ => {}
            }
        }
        for node in ups {
            self.tell_deaths(node);
        }
    }
}
