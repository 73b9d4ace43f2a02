//! Client sessions at a zone: the connect handshake, signed inputs, snapshots (docs/protocol.md).
//!
//! Sans-IO, beside the [`Zone`] it serves; the driver calls, per tick:
//!
//! ```text
//! sessions.handle_datagram(unix_ms, from, &bytes)   // any client datagram, on arrival
//! sessions.tick(unix_ms, &mut zone)                 // verify the batch, apply inputs — before zone.tick
//! zone.tick(now)
//! sessions.replicate(&zone)                         // one snapshot per session — after zone.tick
//! sessions.poll_transmit(&mut buf)                  // the datagrams to clients
//! ```
//!
//! **Handshake.** CONNECT (1,000 bytes, a connect token) earns a CHALLENGE (92 bytes): a
//! cookie, the keyed BLAKE3 hash of the client's address, the time window, and the token's
//! client id and nonce; the zone's X25519 ephemeral for the window and its node's public
//! key. Nothing is stored and no signature is checked for it. RESPONSE brings the token
//! back with the cookie and the client's ephemeral, signed by the client session key
//! named in the token. A valid cookie proves the address; only then are the two
//! signatures (token by the world's auth key, response by the client key) queued for the
//! tick's handshake budget, verified strictly, the token's nonce recorded against replay,
//! the session key derived (`meridian_protocol::seal`), a session allocated and the avatar
//! spawned: a sealed ACCEPT. Refusals after that point are REFUSE (12 bytes); before it,
//! silence.
//!
//! **Sealed packets** (`sealed`). Everything after the handshake, both ways, is sealed
//! with ChaCha20-Poly1305 under keys derived from the session key, with a replay window
//! over the client's packet sequence. With `client_auth = Aead` an INPUT is authenticated
//! by the AEAD alone; with `Ed25519` it is also a signed envelope, verified in the tick's
//! batch. An authenticated packet from a new address starts path migration.
//!
//! **Inputs** are buffered by sequence; a client sends one per tick of its own, so the
//! sequence is the client tick it was made for. Each tick applies exactly one input per
//! session, the next in sequence (`inputs::Playout`), as the avatar's velocity, its length
//! clamped to the configured top speed: each input once, a steady number of ticks after
//! the client made it. An input due and not there is guessed (the last one's motion);
//! repeated underruns make the playout wait a tick (the avatar stands still), a surplus
//! through a whole window is skipped, and each snapshot tells the client how early its
//! inputs arrive so it can pace them; underruns, skips and lost inputs are counted. Old
//! and duplicate sequences are ignored; redundancy (the last four inputs in each packet)
//! covers loss.
//!
//! **Limits.** The session table, the verify batches, the outbox and the admission gate
//! ([`gate`]: per-IP limits, the handshake budget, the negative cache, cool-downs) are sized
//! at construction; overload is a counted drop. Handshakes are verified after the
//! established sessions' inputs, at most `handshakes_per_tick` a tick, so no flood of them
//! can take a tick's time from the players.

mod bindings;
mod carry;
mod gate;
mod handshake;
mod inputs;
mod measure;
mod sample;
mod sealed;
mod snapshots;

use core::net::SocketAddr;
use std::collections::VecDeque;

use ed25519_dalek::VerifyingKey;
use meridian_layouts::client::{
    Accept, CLIENT_DATAGRAM_MAX, COOKIE_SIZE, Challenge, Connect, Disconnect, INPUT_UNDERRUN,
    InputBody, InputEntry, RedirectBody, Refuse, RefuseReason, Response,
};
use meridian_layouts::handoff::SessionBinding;
use meridian_layouts::witness::{
    ConnectToken, SIGNATURE_SIZE, domain, parse_envelope, write_envelope_unsigned,
};
use meridian_layouts::{Header, Kind, Packet, U16Le, U32Le, U64Le, header_for, parse};
use rustc_hash::FxHashMap;

use crate::entities::EntityID;
use crate::net::Peer;
pub use inputs::InputPlayout;
use inputs::next_input;
pub use measure::{SessionCounters, SessionHistograms};
use meridian_protocol::address::{mapped_ip_port, redirect_fields};
use meridian_protocol::motion::intent_velocity;

use crate::replicate::{ClientView, InterestConfig, Replicator};
use crate::witness::{BatchVerifier, KeyRegistry, Policy, ReplayWindow, Verdict};
use crate::world::ZoneID;
use crate::zone::{SessionMove, Zone};

/// Session settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionConfig {
    /// Most sessions at once.
    pub sessions_max: usize,
    /// The avatar's top speed; inputs are clamped to it.
    pub speed_mps_max: f32,
    /// Ticks without a verified input before a session is closed.
    pub idle_timeout_ticks: u64,
    /// Length of a cookie's time window; a cookie is valid in its window and the next.
    pub cookie_window_ms: u64,
    /// Datagrams one source IP without a session may send per tick; the rest are dropped.
    pub datagrams_per_tick: u16,
    /// Datagrams one established session may send per tick.
    pub session_datagrams_per_tick: u16,
    /// RESPONSEs verified per tick at most (two strict signature checks each, ~80 µs):
    /// the handshake budget, after the established sessions' work. Which ones: a sample
    /// fair across source IPs (each IP that sent has the same chance, whatever it sent).
    pub handshakes_per_tick: u16,
    /// RESPONSEs of one source IP verified per tick at most (when fewer IPs than the
    /// budget want in; when more, one each).
    pub handshakes_per_ip_per_tick: u16,
    /// CHALLENGEs (replies to addresses not yet proven) sent per tick at most, so a
    /// CONNECT flood from many IPs cannot crowd the sessions' snapshots out of the outbox;
    /// the CONNECTs answered are a sample of those since the last tick fair across source
    /// IPs, at most `datagrams_per_tick` of one.
    pub challenges_per_tick: u16,
    /// A session whose inputs fail verification this many times is closed.
    pub input_failures_max: u32,
    /// Ticks a closed misbehaving session's IP is refused afterwards.
    pub cooldown_ticks: u64,
    /// The `kind` given to avatars.
    pub avatar_kind: u16,
    /// Ticks the old zone keeps redirecting a moved client and forwarding its inputs.
    pub redirect_grace_ticks: u64,
    /// Outgoing datagrams a tick may hold beyond one snapshot per session (handshake
    /// replies, REDIRECTs, forwarded inputs).
    pub outbox_headroom: usize,
    /// How inputs are authenticated after the handshake.
    pub client_auth: ClientAuth,
    pub interest: InterestConfig,
}

/// How a session's inputs are authenticated (every session packet is sealed either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// By the session's AEAD alone: about a microsecond per input.
    #[default]
    Aead,
    /// Each INPUT is also an Ed25519-signed envelope, verified in the tick's batch: proof
    /// of what each client sent, for worlds that keep it (~13 µs per input).
    Ed25519,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            sessions_max: 4096,
            speed_mps_max: 6.0,
            idle_timeout_ticks: 5 * 30,
            cookie_window_ms: 10_000,
            datagrams_per_tick: 8,
            session_datagrams_per_tick: 8,
            handshakes_per_tick: 32,
            handshakes_per_ip_per_tick: 4,
            challenges_per_tick: 128,
            input_failures_max: 4,
            cooldown_ticks: 10 * 30,
            avatar_kind: AVATAR_KIND,
            redirect_grace_ticks: 2 * 30,
            outbox_headroom: 256,
            client_auth: ClientAuth::Aead,
            interest: InterestConfig::default(),
        }
    }
}

/// The entity kind of a client's avatar.
pub const AVATAR_KIND: u16 = 2;

/// A moved client is sent a REDIRECT this often during the grace period…
const REDIRECT_EVERY_TICKS: u64 = 10;

/// …and on each of this many ticks after the first, so one lost REDIRECT does not keep
/// the client away from its new zone (and its snapshots withheld) for ten ticks.
const REDIRECT_REPEATS: u64 = 2;

/// Buffered inputs per session, ahead of the one being applied.
const INPUT_BUFFER: usize = 8;

/// One client's session. `repr(C)` keeps the fields the datagram path and the tick
/// touch for every session together at the front, in the first few cache lines of the
/// slot (after them: the master key, the client's key, a path probe and the replication
/// state, which the snapshot build touches): with 4,096 sessions the slots do not fit
/// the L2, and each line the input path reads is a miss.
#[derive(Debug)]
#[repr(C, align(64))]
struct Session {
    /// The avatar was handed to this zone: redirect the client there and forward its
    /// stray inputs until the tick given, then forget the session.
    moved: Option<(ZoneID, u64)>,
    /// Datagrams received in tick `datagram_tick`.
    datagram_tick: u64,
    id: u32,
    datagrams: u16,
    /// The client's interpolation time with that input: `ack_tick` − this / 8 ticks
    /// (`InputBody::view_back`; 0 while the acknowledgement is another zone's).
    view_back: u8,
    /// The client proved it holds `addr`: it completed the handshake from there, or an
    /// input from there verified. Until then the zone sends it nothing but REDIRECTs — a
    /// binding that arrived with an avatar (in a COMMIT, or from the log) could name any
    /// address, and snapshots must not be aimed at one that never asked for them.
    proven: bool,
    /// Restored with its avatar in flight (`SessionMove::InFlight`): a takeover is
    /// announced to it although it left, so that the client takes the REDIRECTs that
    /// follow from this run's address.
    left_at_restore: bool,
    addr: SocketAddr,
    /// Every input is opened with one, every snapshot sealed with the other.
    keys: sealed::SessionKeys,
    /// Over the client's sealed-packet sequences.
    window: ReplayWindow,
    last_heard_tick: u64,
    avatar: EntityID,
    /// Where the avatar was in the zone's table when last looked up: checked against the
    /// table's id column before use (a slot read instead of a hash lookup per tick).
    avatar_slot: u32,
    applied_sequence: u32,
    /// The snapshot tick the client's newest input acknowledged (not yet given to `view`).
    ack_tick: u32,
    /// The newest input sequence of the packet that said `view_back`: an older input
    /// it carried, or one buffered before, was made that many client ticks earlier, when
    /// the client drew remote entities as many ticks further back.
    view_seq: u32,
    /// The newest game event the client took (`InputBody::event_ack`; `None` until an
    /// input since the session came to this zone), and the newest the zone was told of
    /// (one table lookup per change, not per tick). The first is told even if 0: a zone
    /// restored from its log learns the session's numbering from it.
    event_ack: Option<u32>,
    event_acked: Option<u32>,
    /// Inputs that failed verification.
    failures: u32,
    /// Verified inputs not yet applied, by sequence (unordered), inline: one allocation
    /// fewer to touch per input.
    buffered: inputs::InputBuffer,
    playout: inputs::Playout,
    /// The session's master key: it travels in the binding; `keys` are derived from it.
    master: meridian_protocol::seal::Key,
    secret: u64,
    client_key: VerifyingKey,
    /// A new address being probed (path migration).
    path: Option<sealed::PathCandidate>,
    view: ClientView,
}

impl Session {
    /// The avatar's slot in `entities`, if it is there.
    fn avatar_slot(&mut self, entities: &crate::entities::Entities) -> Option<u32> {
        if entities.ids().get(self.avatar_slot as usize) == Some(&self.avatar) {
            return Some(self.avatar_slot);
        }
        let slot = entities.slot_of(self.avatar)?;
        self.avatar_slot = slot;
        Some(slot)
    }
}

/// A verify-batch item's meaning.
#[derive(Clone, Copy, Debug)]
enum Pending {
    Input {
        slot: u32,
        session: u32,
        item: usize,
        body: InputBody,
        /// From the session's address (not forwarded by another zone).
        direct: bool,
    },
}

/// A datagram to a client (or a forwarded input to a zone), waiting for `poll_transmit`.
#[derive(Clone, Copy, Debug)]
struct Outgoing {
    to: Peer,
    len: u16,
    bytes: [u8; CLIENT_DATAGRAM_MAX],
}

/// The sessions of one zone. See the module docs.
#[derive(Debug)]
pub struct Sessions {
    config: SessionConfig,
    zone: ZoneID,
    world_id: u64,
    /// The world's bounds (from the zone, each tick), for ACCEPT: clients predict within
    /// them as the zone moves avatars.
    bounds: crate::world::Rect,
    keys: KeyRegistry,
    /// Keys the cookies and the session secrets (from the driver's entropy).
    secret_key: [u8; 32],
    secret_counter: u64,
    slots: Vec<Option<Session>>,
    free: Vec<u32>,
    by_id: FxHashMap<u32, u32>,
    by_addr: FxHashMap<SocketAddr, u32>,
    verifier: BatchVerifier,
    pending: Vec<Pending>,
    /// Sessions to close at the next tick: (slot, send a DISCONNECT).
    closing: Vec<(u32, bool)>,
    /// Avatars of closed sessions the zone could not remove yet (its log was full for the
    /// tick): removed at the next ticks, so none is left without a client.
    orphans: Vec<EntityID>,
    moves: Vec<SessionMove>,
    tokens: crate::witness::SharedTokens,
    gate: gate::Gate,
    replicator: Replicator,
    /// Client views of closed sessions, for the next ones.
    spares: Vec<ClientView>,
    outbox: VecDeque<Outgoing>,
    outbox_max: usize,
    tick: u64,
    /// The zone's tick as of the last [`Sessions::tick`]: the clock of snapshots, which
    /// REDIRECTs carry so a client can tell a fresh one from a replayed one.
    zone_tick: u64,
    /// CONNECTs to answer at the next tick (a sample fair across IPs: [`sample::Sample`]).
    challenges: sample::Sample<(SocketAddr, ConnectToken)>,
    counters: SessionCounters,
    /// Each zone's client-facing address, for REDIRECTs.
    zone_addrs: Vec<(ZoneID, SocketAddr)>,
    /// Signs REDIRECTs: this node's key and its index in the world's node list.
    node_key: Option<(ed25519_dalek::SigningKey, u32)>,
    /// The node key as X25519 (its secret) and as Ed25519 (its public key, in CHALLENGEs).
    node_dh: Option<(meridian_protocol::seal::DhSecret, [u8; 32])>,
    /// The zone's handshake ephemerals of the current and the previous cookie window.
    ephemerals: [Option<(u32, meridian_protocol::seal::DhSecret, [u8; 32])>; 2],
    /// This run's zone → client key id, and its packet counter (from a random start).
    key_id: u32,
    seal_sequence: u64,
    /// Sessions whose binding must be rewritten at the next tick (moved address).
    rebound: Vec<u32>,
    /// Where sealed packets are opened (not zeroed per packet).
    plain: Vec<u8>,
    redirect_sequence: u64,
    /// From and until these ticks, every session is told at intervals that the zone runs
    /// here: the zone was taken over from its dead node ([`Sessions::announce_takeover`]).
    takeover: (u64, u64),
    histograms: SessionHistograms,
    /// Client states carried here from other zones, being assembled or waiting for their
    /// sessions (`carry`).
    views: Vec<carry::PendingView>,
    /// Where a leaving session's state is written as a VIEW stream.
    view_stream: Vec<u8>,
}

impl Sessions {
    /// Sessions for `zone` of world `world_id`, admitting tokens signed by `auth_key`.
    /// `entropy` must be random (it keys cookies and session secrets); a simulator passes a
    /// seed.
    pub fn new(
        config: SessionConfig,
        zone: ZoneID,
        world_id: u64,
        auth_key: &[u8; 32],
        entropy: [u8; 32],
    ) -> Result<Sessions, crate::witness::KeyError> {
        let mut keys = KeyRegistry::new(0);
        keys.set_auth(auth_key)?;
        let n = config.sessions_max;
        // One signature per INPUT; a tick sees at most a few per session.
        let batch = 2 * n + 64;
        // This run's zone → client key id and counter start: random, so no two runs of a
        // zone seal with the same key and nonce.
        let run = *blake3::keyed_hash(&entropy, b"sealing run").as_bytes();
        let message_max = Response::SIGNED_SIZE
            .max(meridian_layouts::witness::EnvelopeHeader::SIZE + size_of::<InputBody>());
        Ok(Sessions {
            config,
            zone,
            world_id,
            bounds: crate::world::Rect::new(f32::MIN, f32::MIN, f32::MAX, f32::MAX),
            keys,
            secret_key: entropy,
            secret_counter: 0,
            slots: (0..n).map(|_| None).collect(),
            free: (0..n as u32).rev().collect(),
            by_id: FxHashMap::with_capacity_and_hasher(n, Default::default()),
            by_addr: FxHashMap::with_capacity_and_hasher(n, Default::default()),
            verifier: BatchVerifier::new(batch, message_max),
            pending: Vec::with_capacity(batch),
            closing: Vec::with_capacity(n),
            orphans: Vec::with_capacity(n),
            moves: Vec::with_capacity(1024),
            tokens: std::sync::Arc::new(std::sync::Mutex::new(crate::witness::TokenReplay::new(
                2 * n + 64,
            ))),
            gate: gate::Gate::new(
                *blake3::keyed_hash(&entropy, b"admission gate").as_bytes(),
                usize::from(config.handshakes_per_tick),
                usize::from(config.handshakes_per_ip_per_tick),
            ),
            replicator: Replicator::new(config.interest),
            spares: Vec::with_capacity(n),
            outbox: VecDeque::with_capacity(n + config.outbox_headroom),
            outbox_max: n + config.outbox_headroom,
            tick: 0,
            zone_tick: 0,
            challenges: sample::Sample::new(
                usize::from(config.challenges_per_tick),
                usize::from(config.datagrams_per_tick),
                gate::IP_BUCKETS,
            ),
            counters: SessionCounters::default(),
            histograms: SessionHistograms::default(),
            zone_addrs: Vec::new(),
            node_key: None,
            node_dh: None,
            ephemerals: [None, None],
            key_id: u32::from_le_bytes(run[..4].try_into().expect("4 bytes")),
            seal_sequence: u64::from_le_bytes(run[4..12].try_into().expect("8 bytes")) >> 2,
            rebound: Vec::with_capacity(n),
            plain: vec![0; CLIENT_DATAGRAM_MAX],
            redirect_sequence: 0,
            takeover: (0, 0),
            views: (0..carry::views_pending(n))
                .map(|_| carry::PendingView::new())
                .collect(),
            view_stream: vec![0; meridian_layouts::view::VIEW_STREAM_MAX],
        })
    }

    /// Snapshot sizes and input ages (see [`SessionHistograms`]).
    pub fn histograms(&self) -> &SessionHistograms {
        &self.histograms
    }

    /// The avatar of every session this zone serves (not those redirected away).
    pub fn avatars(&self) -> impl Iterator<Item = EntityID> + '_ {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.moved.is_none())
            .map(|s| s.avatar)
    }

    pub fn counters(&self) -> SessionCounters {
        self.counters
    }

    /// What the snapshots cost and against which baselines (see [`ReplicateCounters`]).
    pub fn replication_counters(&self) -> crate::replicate::ReplicateCounters {
        self.replicator.counters()
    }

    /// Shares `tokens` (one table for every zone of a node, so a token admits once at the
    /// node, not once per zone) instead of this zone's own table.
    pub fn share_tokens(&mut self, tokens: crate::witness::SharedTokens) {
        self.tokens = tokens;
    }

    /// Where clients reach `zone` (every zone a session may move to).
    /// The zone was taken over here from its dead node (a standby's promotion): its
    /// restored sessions' clients still send to the old address, so each is sent a
    /// REDIRECT to this zone's address (set with [`Sessions::set_zone_address`]) from here,
    /// signed by this node's key, every few ticks until the idle timeout has passed.
    pub fn announce_takeover(&mut self) {
        self.takeover = (self.tick, self.tick + self.config.idle_timeout_ticks);
    }

    /// Whether `slot` is told of a takeover this tick: on the first ticks (as the
    /// restored sessions are adopted), then every [`REDIRECT_EVERY_TICKS`].
    fn announcing(&self, slot: usize) -> bool {
        let (from, until) = self.takeover;
        let since = self.tick.wrapping_sub(from);
        self.tick < until
            && (since <= REDIRECT_REPEATS || since.is_multiple_of(REDIRECT_EVERY_TICKS))
            && (self.slots[slot].as_ref()).is_some_and(|s| s.moved.is_none() || s.left_at_restore)
    }

    pub fn set_zone_address(&mut self, zone: ZoneID, addr: SocketAddr) {
        self.zone_addrs.retain(|(z, _)| *z != zone);
        self.zone_addrs.push((zone, addr));
    }

    /// Signs REDIRECTs with this node's key (`signer`: its index in the world's node
    /// list). Without it, REDIRECTs carry a zero signature and clients that pin node keys
    /// ignore them.
    /// The same key serves the handshake's key exchange (as X25519), so a client that pins
    /// node keys knows only this node can read its session.
    pub fn set_node_key(&mut self, key: ed25519_dalek::SigningKey, signer: u32) {
        self.node_dh = Some((
            meridian_protocol::seal::DhSecret(meridian_protocol::seal::StaticSecret::from(
                key.to_scalar_bytes(),
            )),
            key.verifying_key().to_bytes(),
        ));
        self.node_key = Some((key, signer));
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn send<T: Packet>(&mut self, to: SocketAddr, packet: &T) {
        self.send_bytes(to, bytemuck::bytes_of(packet));
    }

    fn send_bytes(&mut self, to: SocketAddr, bytes: &[u8]) {
        self.send_to_peer(Peer::Client(to), bytes);
    }

    fn send_to_peer(&mut self, to: Peer, bytes: &[u8]) {
        assert!(bytes.len() <= CLIENT_DATAGRAM_MAX);
        if self.outbox.len() >= self.outbox_max {
            self.counters.overflow += 1;
            return;
        }
        let mut out = Outgoing {
            to,
            len: bytes.len() as u16,
            bytes: [0; CLIENT_DATAGRAM_MAX],
        };
        out.bytes[..bytes.len()].copy_from_slice(bytes);
        self.outbox.push_back(out);
    }

    /// Takes one client datagram. Cheap checks only; signatures wait for [`Sessions::tick`].
    pub fn handle_datagram(&mut self, unix_ms: u64, from: SocketAddr, bytes: &[u8]) {
        let kind = Header::parse(bytes);
        if kind == Ok(Kind::Sealed) {
            // Most datagrams: admitted by the session their header names.
            self.handle_sealed_datagram(from, bytes);
            return;
        }
        let Some(bucket) = self.admit_datagram(from) else {
            return;
        };
        match kind {
            Ok(Kind::Connect) => self.handle_connect(unix_ms, (from, bucket), bytes),
            Ok(Kind::Response) => self.handle_response(unix_ms, (from, bucket), bytes),
            _ => self.counters.malformed += 1,
        }
    }

    /// Verifies the tick's batch, opens the sessions whose handshake verified, applies one
    /// input per session, and closes idle and disconnected sessions. Call it before
    /// `zone.tick`: the inputs become the avatars' velocities for that tick.
    pub fn tick(&mut self, unix_ms: u64, zone: &mut Zone) {
        self.tick += 1;
        self.bounds = zone.world().bounds();
        self.gate.tick();
        self.send_challenges(unix_ms);
        self.zone_tick = zone.tick_count();
        self.apply_verified();
        self.admit_handshakes(unix_ms, zone);
        let mut rebound = std::mem::take(&mut self.rebound);
        for &slot in &rebound {
            if self.slots[slot as usize].is_some() {
                self.rebind(zone, slot);
            }
        }
        rebound.clear();
        self.rebound = rebound;
        self.apply_moves(zone);
        self.expire_views();
        self.advance_sessions(zone);
        self.orphans.retain(|&avatar| {
            zone.entities().slot_of(avatar).is_some() && zone.remove(avatar).is_none()
        });
        let closing = std::mem::take(&mut self.closing);
        for &(slot, notify) in &closing {
            self.close(zone, slot, notify);
        }
        self.closing = closing;
        self.closing.clear();
    }

    /// Stage 1: verify the inputs' batch; buffer the inputs that verified. (Then, in
    /// [`Sessions::admit_handshakes`], the tick's handshake budget.)
    fn apply_verified(&mut self) {
        self.verifier.verify();
        let pending = std::mem::take(&mut self.pending);
        for p in &pending {
            let Pending::Input {
                slot,
                session,
                item,
                body,
                direct,
            } = *p;
            self.buffer_input(slot, session, item, &body, direct);
        }
        self.pending = pending;
        self.pending.clear();
        self.verifier.clear();
    }

    /// Stage 2: sessions that moved with their avatars since the last tick.
    fn apply_moves(&mut self, zone: &mut Zone) {
        let mut moves = std::mem::take(&mut self.moves);
        moves.extend(zone.drain_session_moves());
        for m in &moves {
            match *m {
                SessionMove::Arrived { id, binding } => self.adopt(zone, id, &binding),
                SessionMove::Left { id, to, .. } => self.left(id, to),
                SessionMove::InFlight { id, to, binding } => {
                    self.adopt_in_flight(zone, id, &binding, to);
                }
            }
        }
        moves.clear();
        self.moves = moves;
    }

    /// Stage 3: per session, redirects during the grace period, idle timeouts, avatars
    /// that are gone, and the tick's merged input as the avatar's velocity.
    fn advance_sessions(&mut self, zone: &mut Zone) {
        let (speed, timeout) = (self.config.speed_mps_max, self.config.idle_timeout_ticks);
        for slot in 0..self.slots.len() {
            if self.announcing(slot) {
                self.redirect(slot as u32, self.zone);
            }
            let Some(session) = self.slots[slot].as_mut() else {
                continue;
            };
            if let Some((to, until)) = session.moved {
                if self.tick >= until {
                    // Grace is over: forget the session (the avatar is not ours to remove).
                    self.closing.push((slot as u32, false));
                } else if (until - self.tick).is_multiple_of(REDIRECT_EVERY_TICKS)
                    || (1..=REDIRECT_REPEATS)
                        .contains(&(self.tick + self.config.redirect_grace_ticks - until))
                {
                    self.redirect(slot as u32, to);
                }
                continue;
            }
            if self.tick > session.last_heard_tick + timeout {
                self.counters.timeouts += 1;
                self.closing.push((slot as u32, true));
                continue;
            }
            if let Some(ack) = session.event_ack
                && session.event_acked != Some(ack)
            {
                zone.ack_game_events(session.avatar, ack);
                session.event_acked = Some(ack);
            }
            let Some(avatar_slot) = session.avatar_slot(zone.entities()) else {
                // The avatar left this zone (no redirect yet: the session ends here).
                self.closing.push((slot as u32, true));
                continue;
            };
            let played = next_input(session, &mut self.counters);
            // Most sessions have none this tick: no copy of the press buffer for them.
            if session.playout.has_presses() {
                for press in session.playout.take_presses() {
                    zone.act(session.avatar, action(&press, session));
                }
            }
            if let Some(input) = played {
                let (vx, vy) = intent_velocity(input.move_x, input.move_y, speed);
                zone.set_velocity_slot(avatar_slot, vx, vy);
                if input.buttons.get() != 0 {
                    zone.act(session.avatar, action(&input, session));
                }
                session.applied_sequence = input.sequence.get();
                // The snapshot this tick builds is tick `zone_tick + 1`; an ack of a tick
                // not yet sent (another zone's clock, after a move) is not an age.
                let acked = u64::from(session.ack_tick);
                if acked != 0 && acked <= self.zone_tick {
                    let age = (self.zone_tick + 1 - acked) as f64;
                    self.histograms.input_age_ticks.record(age);
                }
                // The binding carries the applied sequence and the packet window to the
                // next zone.
                let (avatar, packets) = (session.avatar, session.window.highest());
                if !zone.update_session_progress(avatar, input.sequence.get(), packets) {
                    self.rebind(zone, slot as u32);
                }
            }
        }
    }

    /// The next datagram: written into `buf`, returns where it goes and its length. A
    /// `Peer::Zone` datagram is a client input forwarded to the zone its avatar moved to.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<(Peer, usize)> {
        let out = self.outbox.pop_front()?;
        let len = usize::from(out.len);
        buf[..len].copy_from_slice(&out.bytes[..len]);
        Some((out.to, len))
    }
}

/// A client's buttons and aim as a game action, at the client's interpolation time when
/// its acknowledgement is of this zone (`view_back`). A client makes one input per tick
/// of its own and its interpolation time moves on a tick with each, so an input made `k`
/// inputs before the newest one the packet carried (played from the buffer, or resent
/// after a loss) was made looking `k` ticks further back.
fn action(input: &InputEntry, session: &Session) -> crate::game::Action {
    let sequence = input.sequence.get();
    let earlier = f64::from(session.view_seq.wrapping_sub(sequence) as i32);
    crate::game::Action {
        buttons: u32::from(input.buttons.get()),
        sequence,
        view_tick: (session.ack_tick != 0)
            .then(|| f64::from(session.ack_tick) - f64::from(session.view_back) / 8.0 - earlier),
        aim: crate::game::aim_radians(input.aim.get()),
    }
}
