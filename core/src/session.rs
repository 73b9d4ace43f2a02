//! Client sessions at a zone: the connect handshake, signed inputs, snapshots (DESIGN §6).
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
//! **Handshake.** CONNECT (1,000 bytes, a connect token) earns a CHALLENGE (28 bytes): a
//! cookie, the keyed BLAKE3 hash of the client's address, the time window, and the token's
//! client id and nonce. Nothing is stored and no signature is checked for it. RESPONSE
//! brings the token back with the cookie, signed by the client session key named in the
//! token. A valid cookie proves the address; only then are the two signatures (token by
//! the world's auth key, response by the client key) queued, verified in the tick's batch
//! with the strict policy, the token's nonce recorded against replay, a session allocated
//! and the avatar spawned: ACCEPT (40 bytes). Refusals after that point are REFUSE
//! (12 bytes); before it, silence.
//!
//! **Inputs** are envelopes (domain `INPUT`, signer = session id, sequence = newest input)
//! checked against the session's address and replay window on arrival, verified in the
//! tick's batch, then buffered by sequence. Each tick applies at most one input per
//! session: what arrived since the last tick, merged (the newest movement intent, every
//! button pressed), as the avatar's velocity, its length clamped to the configured top
//! speed. Old and duplicate sequences are ignored; redundancy (the last four inputs in
//! each packet) carries button presses across loss.
//!
//! **Limits.** The session table, the verify batch, the outbox and the per-address rate
//! limiter are sized at construction; overload is a counted drop. A rate-limit bucket is
//! chosen by hashing the source address, so memory is fixed whatever the number of
//! sources (addresses that share a bucket share its allowance).

use core::net::SocketAddr;
use std::collections::VecDeque;

use ed25519_dalek::VerifyingKey;
use meridian_layouts::client::{
    Accept, CLIENT_DATAGRAM_MAX, COOKIE_SIZE, Challenge, Connect, DELTA_ENTRIES_OFFSET,
    DeltaHeader, Disconnect, InputBody, InputEntry, RedirectBody, Refuse, RefuseReason, Response,
    write_delta_header,
};
use meridian_layouts::handoff::SessionBinding;
use meridian_layouts::witness::{
    ConnectToken, SIGNATURE_SIZE, domain, parse_envelope, write_envelope_unsigned,
};
use meridian_layouts::{Header, Kind, Packet, U16Le, U32Le, U64Le, header_for, parse};
use rustc_hash::FxHashMap;

use crate::entities::EntityID;
use crate::net::Peer;
use crate::replicate::{ClientView, InterestConfig, Record, Replicator};
use crate::witness::{BatchVerifier, KeyRegistry, Policy, ReplayWindow, Verdict, precheck_token};
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
    /// Datagrams one source-address bucket may send per tick; the rest are dropped.
    pub datagrams_per_tick: u16,
    /// The `kind` given to avatars.
    pub avatar_kind: u16,
    /// Ticks the old zone keeps redirecting a moved client and forwarding its inputs.
    pub redirect_grace_ticks: u64,
    pub interest: InterestConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            sessions_max: 4096,
            speed_mps_max: 6.0,
            idle_timeout_ticks: 5 * 30,
            cookie_window_ms: 10_000,
            datagrams_per_tick: 8,
            avatar_kind: AVATAR_KIND,
            redirect_grace_ticks: 2 * 30,
            interest: InterestConfig::default(),
        }
    }
}

/// The entity kind of a client's avatar.
pub const AVATAR_KIND: u16 = 2;

/// A moved client is sent a REDIRECT this often during the grace period.
const REDIRECT_EVERY_TICKS: u64 = 10;

/// Rate-limit buckets (a power of two).
const RATE_BUCKETS: usize = 4096;

/// Buffered inputs per session, ahead of the one being applied.
const INPUT_BUFFER: usize = 8;

/// Counters, cumulative. Every dropped datagram lands in exactly one of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionCounters {
    pub connects: u64,
    pub challenges: u64,
    pub responses: u64,
    pub accepted: u64,
    pub refused: u64,
    /// RESPONSEs whose cookie did not match (wrong address, window or token): silence.
    pub bad_cookies: u64,
    pub tokens_wrong_world: u64,
    pub tokens_expired: u64,
    pub tokens_bad_key: u64,
    pub tokens_replayed: u64,
    pub bad_signatures: u64,
    pub inputs: u64,
    pub inputs_applied: u64,
    /// Inputs with a sequence already seen or older than the replay window.
    pub inputs_replayed: u64,
    /// Inputs for no session, or from another address than the session's.
    pub inputs_unknown: u64,
    pub rate_limited: u64,
    pub malformed: u64,
    /// The verify batch, the session table or the outbox was full.
    pub overflow: u64,
    pub timeouts: u64,
    pub disconnects: u64,
    pub snapshots: u64,
    pub snapshot_bytes: u64,
    /// Sessions that arrived with their avatar from another zone.
    pub sessions_arrived: u64,
    /// Sessions whose avatar moved to another zone (REDIRECTed).
    pub sessions_left: u64,
    pub redirects_sent: u64,
    /// Inputs forwarded to the zone the avatar moved to.
    pub inputs_forwarded: u64,
}

#[derive(Debug)]
struct Session {
    id: u32,
    secret: u64,
    addr: SocketAddr,
    client_key: VerifyingKey,
    /// The avatar was handed to this zone: redirect the client there and forward its
    /// stray inputs until the tick given, then forget the session.
    moved: Option<(ZoneID, u64)>,
    avatar: EntityID,
    window: ReplayWindow,
    /// Verified inputs not yet applied, by sequence (unordered; at most [`INPUT_BUFFER`]).
    buffered: Vec<InputEntry>,
    applied_sequence: u32,
    last_heard_tick: u64,
    view: ClientView,
}

/// A verify-batch item's meaning. (Both variants are a few hundred bytes and the vector
/// is allocated once, so the size difference costs nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug)]
enum Pending {
    Response {
        addr: SocketAddr,
        token: ConnectToken,
        token_item: usize,
        response_item: usize,
        client_key: VerifyingKey,
    },
    Input {
        slot: u32,
        session: u32,
        item: usize,
        sequence: u64,
        body: InputBody,
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
    moves: Vec<SessionMove>,
    tokens: crate::witness::TokenReplay,
    rate: Vec<u16>,
    replicator: Replicator,
    outbox: VecDeque<Outgoing>,
    outbox_max: usize,
    tick: u64,
    counters: SessionCounters,
    /// Each zone's client-facing address, for REDIRECTs.
    zone_addrs: Vec<(ZoneID, SocketAddr)>,
    /// Signs REDIRECTs: this node's key and its index in the world's node list.
    node_key: Option<(ed25519_dalek::SigningKey, u32)>,
    redirect_sequence: u64,
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
        // Two signatures per RESPONSE, one per INPUT; a tick sees at most a few per session.
        let batch = 2 * n + 64;
        let message_max = Response::SIGNED_SIZE
            .max(meridian_layouts::witness::EnvelopeHeader::SIZE + size_of::<InputBody>());
        Ok(Sessions {
            config,
            zone,
            world_id,
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
            moves: Vec::with_capacity(1024),
            tokens: crate::witness::TokenReplay::new(2 * n + 64),
            rate: vec![0; RATE_BUCKETS],
            replicator: Replicator::new(config.interest),
            outbox: VecDeque::with_capacity(n + 256),
            outbox_max: n + 256,
            tick: 0,
            counters: SessionCounters::default(),
            zone_addrs: Vec::new(),
            node_key: None,
            redirect_sequence: 0,
        })
    }

    pub fn counters(&self) -> SessionCounters {
        self.counters
    }

    /// Where clients reach `zone` (every zone a session may move to).
    pub fn set_zone_address(&mut self, zone: ZoneID, addr: SocketAddr) {
        self.zone_addrs.retain(|(z, _)| *z != zone);
        self.zone_addrs.push((zone, addr));
    }

    /// Signs REDIRECTs with this node's key (`signer`: its index in the world's node
    /// list). Without it, REDIRECTs carry a zero signature and clients that pin node keys
    /// ignore them.
    pub fn set_node_key(&mut self, key: ed25519_dalek::SigningKey, signer: u32) {
        self.node_key = Some((key, signer));
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn keyed_hash(&self, parts: &[&[u8]]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.secret_key);
        for p in parts {
            h.update(p);
        }
        h.finalize()
    }

    fn cookie(&self, addr: SocketAddr, window: u32, token: &ConnectToken) -> [u8; COOKIE_SIZE] {
        let (ip, port) = ip_port(addr);
        let hash = self.keyed_hash(&[
            b"cookie",
            &ip,
            &port.to_le_bytes(),
            &window.to_le_bytes(),
            &token.client_id.get().to_le_bytes(),
            &token.nonce.get().to_le_bytes(),
        ]);
        hash.as_bytes()[..COOKIE_SIZE]
            .try_into()
            .expect("16 of 32 bytes")
    }

    fn next_random(&mut self) -> u64 {
        self.secret_counter += 1;
        let hash = self.keyed_hash(&[b"secret", &self.secret_counter.to_le_bytes()]);
        u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
    }

    fn allow(&mut self, from: SocketAddr) -> bool {
        use core::hash::BuildHasher;
        let bucket = rustc_hash::FxBuildHasher.hash_one(from) as usize & (RATE_BUCKETS - 1);
        if self.rate[bucket] >= self.config.datagrams_per_tick {
            self.counters.rate_limited += 1;
            return false;
        }
        self.rate[bucket] += 1;
        true
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
        if !self.allow(from) {
            return;
        }
        let kind = match Header::parse(bytes) {
            Ok(kind) => kind,
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        match kind {
            Kind::Connect => self.handle_connect(unix_ms, from, bytes),
            Kind::Response => self.handle_response(unix_ms, from, bytes),
            Kind::Envelope => self.handle_input(Some(from), bytes),
            Kind::Disconnect => self.handle_disconnect(from, bytes),
            _ => self.counters.malformed += 1,
        }
    }

    /// Token format, world and expiry; the signature is not checked here (a CHALLENGE costs
    /// the zone a hash, and is smaller than the CONNECT).
    fn token_ok(&mut self, token: &ConnectToken, unix_ms: u64) -> bool {
        if token.world_id.get() != self.world_id {
            self.counters.tokens_wrong_world += 1;
            return false;
        }
        if token.expires_unix_ms.get() <= unix_ms {
            self.counters.tokens_expired += 1;
            return false;
        }
        true
    }

    fn window(&self, unix_ms: u64) -> u32 {
        (unix_ms / self.config.cookie_window_ms.max(1)) as u32
    }

    fn handle_connect(&mut self, unix_ms: u64, from: SocketAddr, bytes: &[u8]) {
        let Ok(connect) = parse::<Connect>(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.connects += 1;
        let token = connect.token;
        if ConnectToken::parse(bytemuck::bytes_of(&token)).is_err() {
            self.counters.malformed += 1;
            return;
        }
        if !self.token_ok(&token, unix_ms) {
            return;
        }
        let window = self.window(unix_ms);
        let challenge = Challenge {
            header: header_for::<Challenge>(),
            cookie: self.cookie(from, window, &token),
            window: U32Le::new(window),
        };
        self.counters.challenges += 1;
        self.send(from, &challenge);
    }

    fn handle_response(&mut self, unix_ms: u64, from: SocketAddr, bytes: &[u8]) {
        let Ok(response) = parse::<Response>(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.responses += 1;
        let response = *response;
        let window = response.window.get();
        let now_window = self.window(unix_ms);
        let fresh = window == now_window || window.wrapping_add(1) == now_window;
        let expected = self.cookie(from, window, &response.token);
        // blake3's Hash comparison is constant-time.
        let matches = blake3::Hash::from_bytes(pad32(&expected))
            == blake3::Hash::from_bytes(pad32(&response.cookie));
        if !fresh || !matches {
            self.counters.bad_cookies += 1;
            return;
        }
        // The address is proven from here on.
        if let Some(&slot) = self.by_addr.get(&from) {
            // A retransmitted RESPONSE (our ACCEPT was lost): the same client gets its
            // ACCEPT again; anyone else at this address is refused.
            let session = self.slots[slot as usize].as_ref().expect("indexed slot");
            if session.client_key.as_bytes() == &response.token.client_key {
                let accept = self.accept_packet(slot);
                self.send(from, &accept);
            }
            return;
        }
        if !self.token_ok(&response.token, unix_ms) {
            return;
        }
        let (token_item, client_key) = match precheck_token(
            &response.token,
            self.world_id,
            unix_ms,
            &self.keys,
            &mut self.verifier,
        ) {
            Ok(Ok(pushed)) => pushed,
            Ok(Err(_)) => {
                self.counters.overflow += 1;
                return;
            }
            Err(_) => {
                self.counters.tokens_bad_key += 1;
                return;
            }
        };
        let Ok(response_item) = self.verifier.push(
            &client_key,
            response.signed_bytes(),
            &response.signature,
            Policy::Strict,
        ) else {
            self.counters.overflow += 1;
            return;
        };
        self.pending.push(Pending::Response {
            addr: from,
            token: response.token,
            token_item,
            response_item,
            client_key,
        });
    }

    /// A client INPUT another zone forwarded: the client's avatar moved here and the
    /// client has not followed the REDIRECT yet. The forwarding zone checked the address;
    /// the session id and signature say whose input it is, wherever it came from.
    pub fn handle_forwarded(&mut self, bytes: &[u8]) {
        self.handle_input(None, bytes);
    }

    /// `from`: the client's address, or `None` for a forwarded input.
    fn handle_input(&mut self, from: Option<SocketAddr>, bytes: &[u8]) {
        let Ok(envelope) = parse_envelope(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        if envelope.header.domain != domain::INPUT {
            self.counters.malformed += 1;
            return;
        }
        let Ok(body) = InputBody::parse(envelope.payload) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.inputs += 1;
        let id = envelope.header.signer.get();
        let Some(&slot) = self.by_id.get(&id) else {
            self.counters.inputs_unknown += 1;
            return;
        };
        let session = self.slots[slot as usize].as_ref().expect("indexed slot");
        if from.is_some_and(|from| session.addr != from) {
            self.counters.inputs_unknown += 1;
            return;
        }
        if let Some((to, _)) = session.moved {
            // The avatar is in another zone now: pass the input on, unverified (the zone
            // that owns the avatar verifies it).
            if from.is_some() {
                self.counters.inputs_forwarded += 1;
                self.send_to_peer(Peer::Zone(to), bytes);
            }
            return;
        }
        let sequence = envelope.header.sequence.get();
        if envelope.header.epoch.get() != 0
            || sequence != u64::from(body.inputs[0].sequence.get())
            || !session.window.check(0, sequence)
        {
            self.counters.inputs_replayed += 1;
            return;
        }
        let key = session.client_key;
        let body = *body;
        match self
            .verifier
            .push(&key, envelope.signed, envelope.signature, Policy::Batch)
        {
            Ok(item) => self.pending.push(Pending::Input {
                slot,
                session: id,
                item,
                sequence,
                body,
            }),
            Err(_) => self.counters.overflow += 1,
        }
    }

    fn handle_disconnect(&mut self, from: SocketAddr, bytes: &[u8]) {
        let Ok(d) = parse::<Disconnect>(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        let Some(&slot) = self.by_id.get(&d.session.get()) else {
            return;
        };
        let session = self.slots[slot as usize].as_ref().expect("indexed slot");
        if session.addr == from && session.secret == d.session_secret.get() {
            self.closing.push((slot, false));
        }
    }

    fn rebind(&mut self, zone: &mut Zone, slot: u32) {
        let session = self.slots[slot as usize].as_ref().expect("live slot");
        let (ip, port) = ip_port(session.addr);
        let binding = SessionBinding {
            session_id: U64Le::new(u64::from(session.id)),
            client_ip: ip,
            client_port: U16Le::new(port),
            session_secret: U64Le::new(session.secret),
            client_key: *session.client_key.as_bytes(),
            input_sequence: U32Le::new(session.applied_sequence),
        };
        zone.bind_session(session.avatar, binding);
    }

    /// Avatar `id` arrived with its session: serve the client from here.
    fn adopt(&mut self, zone: &mut Zone, id: EntityID, binding: &SessionBinding) {
        let session_id = binding.session_id.get() as u32;
        let ip = std::net::Ipv6Addr::from(binding.client_ip);
        let ip = ip
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(ip), std::net::IpAddr::V4);
        let addr = SocketAddr::new(ip, binding.client_port.get());
        let Ok(client_key) = VerifyingKey::from_bytes(&binding.client_key) else {
            self.counters.malformed += 1;
            return;
        };
        // The client may have been here before (it came back): the old entry goes.
        if let Some(&old) = self.by_id.get(&session_id) {
            self.forget(old);
        }
        if let Some(&old) = self.by_addr.get(&addr) {
            self.forget(old);
        }
        let Some(slot) = self.free.pop() else {
            self.counters.overflow += 1;
            return;
        };
        self.slots[slot as usize] = Some(Session {
            id: session_id,
            secret: binding.session_secret.get(),
            addr,
            client_key,
            moved: None,
            avatar: id,
            window: ReplayWindow::default(),
            buffered: Vec::with_capacity(INPUT_BUFFER),
            applied_sequence: binding.input_sequence.get(),
            last_heard_tick: self.tick,
            view: ClientView::with_phase(&self.config.interest, slot),
        });
        self.by_id.insert(session_id, slot);
        self.by_addr.insert(addr, slot);
        self.rebind(zone, slot);
        self.counters.sessions_arrived += 1;
    }

    /// Frees a slot without touching the zone.
    fn forget(&mut self, slot: u32) {
        if let Some(session) = self.slots[slot as usize].take() {
            self.by_id.remove(&session.id);
            self.by_addr.remove(&session.addr);
            self.free.push(slot);
        }
    }

    /// Avatar `id` was handed to zone `to`: redirect its client and forward stray inputs.
    fn left(&mut self, id: EntityID, to: ZoneID) {
        let Some(slot) = self.slots.iter().position(|s| {
            s.as_ref()
                .is_some_and(|s| s.avatar == id && s.moved.is_none())
        }) else {
            return;
        };
        let until = self.tick + self.config.redirect_grace_ticks;
        self.slots[slot].as_mut().expect("found").moved = Some((to, until));
        self.counters.sessions_left += 1;
        self.redirect(slot as u32, to);
    }

    fn redirect(&mut self, slot: u32, to: ZoneID) {
        let Some(&(_, addr)) = self.zone_addrs.iter().find(|(z, _)| *z == to) else {
            return;
        };
        let session = self.slots[slot as usize].as_ref().expect("live slot");
        let (ip, port, family) = crate::client::redirect_fields(addr);
        let body = RedirectBody {
            session: U32Le::new(session.id),
            session_secret: U64Le::new(session.secret),
            zone: U32Le::new(to.0),
            addr: ip,
            port: U16Le::new(port),
            family,
            padding: 0,
            tick: U32Le::new(self.tick as u32),
        };
        let client = session.addr;
        self.redirect_sequence += 1;
        let signer = self.node_key.as_ref().map_or(0, |(_, i)| *i);
        let mut datagram = [0u8; CLIENT_DATAGRAM_MAX];
        let signed = write_envelope_unsigned(
            &mut datagram,
            domain::REDIRECT,
            signer,
            0,
            self.redirect_sequence,
            bytemuck::bytes_of(&body),
        )
        .expect("a redirect fits a datagram");
        if let Some((key, _)) = &self.node_key {
            use ed25519_dalek::Signer;
            let signature = key.sign(&datagram[..signed]).to_bytes();
            datagram[signed..signed + SIGNATURE_SIZE].copy_from_slice(&signature);
        }
        self.counters.redirects_sent += 1;
        self.send_bytes(client, &datagram[..signed + SIGNATURE_SIZE]);
    }

    fn accept_packet(&self, slot: u32) -> Accept {
        let session = self.slots[slot as usize].as_ref().expect("live slot");
        Accept {
            header: header_for::<Accept>(),
            session: U32Le::new(session.id),
            session_secret: U64Le::new(session.secret),
            entity: U64Le::new(session.avatar.0),
            zone: U32Le::new(self.zone.0),
            tick: U32Le::new(self.tick as u32),
            tick_hz: U16Le::new(self.config.interest.tick_hz as u16),
            speed_cmps_max: U16Le::new((self.config.speed_mps_max * 100.0) as u16),
        }
    }

    fn refuse(&mut self, to: SocketAddr, reason: RefuseReason) {
        self.counters.refused += 1;
        let refuse = Refuse {
            header: header_for::<Refuse>(),
            reason: reason as u8,
            padding: [0; 3],
        };
        self.send(to, &refuse);
    }

    /// Verifies the tick's batch, opens the sessions whose handshake verified, applies one
    /// input per session, and closes idle and disconnected sessions. Call it before
    /// `zone.tick`: the inputs become the avatars' velocities for that tick.
    pub fn tick(&mut self, unix_ms: u64, zone: &mut Zone) {
        self.tick += 1;
        self.rate.fill(0);
        self.verifier.verify();
        let pending = std::mem::take(&mut self.pending);
        for p in &pending {
            match *p {
                Pending::Response {
                    addr,
                    token,
                    token_item,
                    response_item,
                    client_key,
                } => self.open(
                    unix_ms,
                    zone,
                    addr,
                    &token,
                    token_item,
                    response_item,
                    client_key,
                ),
                Pending::Input {
                    slot,
                    session,
                    item,
                    sequence,
                    body,
                } => self.buffer_input(slot, session, item, sequence, &body),
            }
        }
        self.pending = pending;
        self.pending.clear();
        self.verifier.clear();

        // Sessions that moved with their avatars since the last tick.
        let mut moves = std::mem::take(&mut self.moves);
        moves.extend(zone.drain_session_moves());
        for m in &moves {
            match *m {
                SessionMove::Arrived { id, binding } => self.adopt(zone, id, &binding),
                SessionMove::Left { id, to, .. } => self.left(id, to),
            }
        }
        moves.clear();
        self.moves = moves;

        // Inputs, idle timeouts, avatars that are gone.
        let (speed, timeout) = (self.config.speed_mps_max, self.config.idle_timeout_ticks);
        for slot in 0..self.slots.len() {
            let Some(session) = self.slots[slot].as_mut() else {
                continue;
            };
            if let Some((to, until)) = session.moved {
                if self.tick >= until {
                    // Grace is over: forget the session (the avatar is not ours to remove).
                    self.closing.push((slot as u32, false));
                } else if (until - self.tick).is_multiple_of(REDIRECT_EVERY_TICKS) {
                    self.redirect(slot as u32, to);
                }
                continue;
            }
            if self.tick > session.last_heard_tick + timeout {
                self.counters.timeouts += 1;
                self.closing.push((slot as u32, true));
                continue;
            }
            if zone.entities().slot_of(session.avatar).is_none() {
                // The avatar left this zone (no redirect yet: the session ends here).
                self.closing.push((slot as u32, true));
                continue;
            }
            if let Some(input) = next_input(session) {
                let (vx, vy) = intent_velocity(input.move_x, input.move_y, speed);
                zone.set_velocity(session.avatar, vx, vy);
                session.applied_sequence = input.sequence.get();
                self.counters.inputs_applied += 1;
                // The binding carries the applied sequence to the next zone.
                self.rebind(zone, slot as u32);
            }
        }
        let closing = std::mem::take(&mut self.closing);
        for &(slot, notify) in &closing {
            self.close(zone, slot, notify);
        }
        self.closing = closing;
        self.closing.clear();
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        unix_ms: u64,
        zone: &mut Zone,
        addr: SocketAddr,
        token: &ConnectToken,
        token_item: usize,
        response_item: usize,
        client_key: VerifyingKey,
    ) {
        if self.verifier.verdict(token_item) != Verdict::Accepted
            || self.verifier.verdict(response_item) != Verdict::Accepted
        {
            self.counters.bad_signatures += 1;
            self.refuse(addr, RefuseReason::BadSignature);
            return;
        }
        if self.by_addr.contains_key(&addr) {
            // Two RESPONSEs from one address in one tick: the first won.
            return;
        }
        match self.tokens.record(token, unix_ms) {
            Ok(true) => {}
            Ok(false) => {
                self.counters.overflow += 1;
                self.refuse(addr, RefuseReason::Full);
                return;
            }
            Err(_) => {
                self.counters.tokens_replayed += 1;
                self.refuse(addr, RefuseReason::TokenReplayed);
                return;
            }
        }
        let Some(slot) = self.free.pop() else {
            self.counters.overflow += 1;
            self.refuse(addr, RefuseReason::Full);
            return;
        };
        let position = spawn_point(zone, token.client_id.get());
        let avatar = match zone.spawn(
            position,
            [0.0, 0.0],
            self.config.speed_mps_max,
            self.config.avatar_kind,
        ) {
            Ok(id) => id,
            Err(_) => {
                self.free.push(slot);
                self.refuse(addr, RefuseReason::NoRoom);
                return;
            }
        };
        let mut id = self.next_random() as u32;
        while id == 0 || self.by_id.contains_key(&id) {
            id = self.next_random() as u32;
        }
        let secret = self.next_random();
        self.slots[slot as usize] = Some(Session {
            id,
            secret,
            addr,
            client_key,
            moved: None,
            avatar,
            window: ReplayWindow::default(),
            buffered: Vec::with_capacity(INPUT_BUFFER),
            applied_sequence: 0,
            last_heard_tick: self.tick,
            view: ClientView::with_phase(&self.config.interest, slot),
        });
        self.by_id.insert(id, slot);
        self.by_addr.insert(addr, slot);
        self.rebind(zone, slot);
        self.counters.accepted += 1;
        let accept = self.accept_packet(slot);
        self.send(addr, &accept);
    }

    fn buffer_input(&mut self, slot: u32, id: u32, item: usize, sequence: u64, body: &InputBody) {
        let tick = self.tick;
        let Some(session) = self.slots[slot as usize].as_mut().filter(|s| s.id == id) else {
            return;
        };
        if self.verifier.verdict(item) != Verdict::Accepted {
            self.counters.bad_signatures += 1;
            return;
        }
        if !session.window.record(0, sequence) {
            self.counters.inputs_replayed += 1;
            return;
        }
        session.last_heard_tick = tick;
        session.view.acknowledge(body.ack_tick.get());
        let applied = session.applied_sequence;
        for entry in &body.inputs[..usize::from(body.count)] {
            let seq = entry.sequence.get();
            if seq <= applied || session.buffered.iter().any(|b| b.sequence.get() == seq) {
                continue;
            }
            if session.buffered.len() == INPUT_BUFFER {
                // Keep the newest: drop the oldest buffered.
                let oldest = (0..session.buffered.len())
                    .min_by_key(|&i| session.buffered[i].sequence.get())
                    .expect("full buffer");
                if session.buffered[oldest].sequence.get() > seq {
                    continue;
                }
                session.buffered.swap_remove(oldest);
            }
            session.buffered.push(*entry);
        }
    }

    fn close(&mut self, zone: &mut Zone, slot: u32, notify: bool) {
        let Some(session) = self.slots[slot as usize].take() else {
            return;
        };
        self.by_id.remove(&session.id);
        self.by_addr.remove(&session.addr);
        self.free.push(slot);
        if session.moved.is_some() {
            return;
        }
        zone.remove(session.avatar);
        self.counters.disconnects += 1;
        if notify {
            let d = Disconnect {
                header: header_for::<Disconnect>(),
                session: U32Le::new(session.id),
                session_secret: U64Le::new(session.secret),
            };
            self.send(session.addr, &d);
        }
    }

    /// Builds this tick's snapshot for every session whose avatar the zone owns. Call it
    /// after `zone.tick`.
    pub fn replicate(&mut self, zone: &Zone) {
        let tick = zone.tick_count() as u32;
        if tick == 0 {
            return;
        }
        let entities = zone.entities();
        let mut datagram = [0u8; CLIENT_DATAGRAM_MAX];
        for slot in 0..self.slots.len() {
            let Some(session) = self.slots[slot].as_mut().filter(|s| s.moved.is_none()) else {
                continue;
            };
            let Some(avatar_slot) = entities.slot_of(session.avatar) else {
                continue;
            };
            let at = (
                entities.xs()[avatar_slot as usize],
                entities.ys()[avatar_slot as usize],
            );
            let (baseline_tick, encoded) = self.replicator.snapshot(
                &mut session.view,
                zone,
                Some(session.avatar.0),
                at,
                tick,
                &mut datagram[DELTA_ENTRIES_OFFSET..],
            );
            let head = DeltaHeader {
                session_secret: U64Le::new(session.secret),
                tick: U32Le::new(tick),
                baseline_tick: U32Le::new(baseline_tick),
                input_sequence: U32Le::new(session.applied_sequence),
                zone: U32Le::new(zone.id().0),
                avatar: Record::of(entities, avatar_slot).to_wire(),
                entry_count: U16Le::new(encoded.entries),
            };
            let total = DELTA_ENTRIES_OFFSET + encoded.bytes;
            write_delta_header(&mut datagram, &head, total);
            let to = session.addr;
            self.counters.snapshots += 1;
            self.counters.snapshot_bytes += total as u64;
            self.send_bytes(to, &datagram[..total]);
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

/// The input to apply this tick: everything buffered, merged — the newest movement intent,
/// the buttons of all of them (a press in a superseded input is not lost). Applying one
/// input per tick in sequence instead would let a backlog that formed after jitter or loss
/// persist for the whole session, adding a tick of latency per buffered input.
fn next_input(session: &mut Session) -> Option<InputEntry> {
    let newest = *session.buffered.iter().max_by_key(|e| e.sequence.get())?;
    let buttons = session
        .buffered
        .iter()
        .fold(0u16, |b, e| b | e.buttons.get());
    session.buffered.clear();
    Some(InputEntry {
        buttons: U16Le::new(buttons),
        ..newest
    })
}

/// The velocity an intent asks for: the intent's length clamped to 1, times top speed.
pub fn intent_velocity(move_x: i8, move_y: i8, speed_mps_max: f32) -> (f32, f32) {
    let (x, y) = (f32::from(move_x) / 127.0, f32::from(move_y) / 127.0);
    let length = (x * x + y * y).sqrt();
    let scale = if length > 1.0 { 1.0 / length } else { 1.0 };
    (x * scale * speed_mps_max, y * scale * speed_mps_max)
}

/// Where a client's avatar appears: a point of the zone (its outer 5 % excepted), from its
/// client id.
fn spawn_point(zone: &Zone, client_id: u64) -> [f32; 3] {
    let r = zone.rect();
    let h = client_id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let (u, v) = (
        (h >> 40) as f32 / (1u64 << 24) as f32,
        ((h >> 16) & 0xFF_FFFF) as f32 / (1u64 << 24) as f32,
    );
    let (w, hgt) = (r.x_max - r.x_min, r.y_max - r.y_min);
    [
        r.x_min + w * (0.05 + 0.9 * u),
        r.y_min + hgt * (0.05 + 0.9 * v),
        0.0,
    ]
}

/// An address as 16 bytes of IPv6 (IPv4 mapped) and a port: the form a binding carries,
/// and the form the cookie hashes (so one client has one cookie either way).
fn ip_port(addr: SocketAddr) -> ([u8; 16], u16) {
    match addr {
        SocketAddr::V4(a) => (a.ip().to_ipv6_mapped().octets(), a.port()),
        SocketAddr::V6(a) => (a.ip().octets(), a.port()),
    }
}

fn pad32(bytes: &[u8; COOKIE_SIZE]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..COOKIE_SIZE].copy_from_slice(bytes);
    out
}
