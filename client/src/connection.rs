//! The client library, sans-IO: connect, send inputs, apply snapshots, interpolate remote
//! entities, predict and reconcile the own avatar, follow redirects (docs/protocol.md).
//!
//! ```text
//! let mut c = Client::new(server, token, session_key, now);
//! loop:
//!   c.handle_datagram(now, from, &bytes)   // everything that arrives
//!   c.set_intent(move_x, move_y, buttons)  // what the player wants this tick
//!   c.tick(now)                            // handshake retries, or one signed INPUT
//!   c.poll_transmit(&mut buf)              // → send to the address returned
//!   c.poll_event()                         // Connected, Snapshot, Redirected, Closed
//! ```
//!
//! **Snapshots** are deltas against a snapshot the client acknowledged; the client keeps
//! the last [`CLIENT_HISTORY`] decoded snapshots by (zone, tick), so any baseline the
//! server may pick is at hand — also across a zone change: the zone an avatar moves to
//! gets the client's replication state from the zone it left, and its first snapshots
//! are deltas against that zone's. A snapshot is accepted from any address if it carries
//! the session secret; one of another zone than the newest is shown only once a REDIRECT
//! named that zone. Each entity is drawn at its newest *sample* — the newest state an
//! entry sent of it — which need not be the newest snapshot's record: a delta is against
//! an acknowledged snapshot, ticks old, and an entity not due keeps that one's older value
//! ([`Client::entities`]; `meridian_protocol::delta`, "Samples").
//!
//! **Prediction.** Each INPUT's velocity is applied to the predicted avatar position at
//! once; a snapshot carries the authoritative avatar and the last input the server
//! applied, so the prediction restarts from the server's position plus the inputs still
//! unapplied (reconciliation). What a reconciliation moves the prediction by is drawn
//! away over about five ticks ([`Client::drawn_avatar`]) rather than snapped to.
//!
//! **Remote motion** ([`crate::motion`]): per-zone clock sync from snapshot arrivals
//! ([`Client::server_tick`]), an adaptive playout delay, and a track per entity
//! interpolated on server time, extrapolated (bounded) when a snapshot is late, bent
//! rather than broken when one comes — drawn by [`Client::render_remote`], continuous
//! across zone changes. [`Client::interpolated`] (two newest snapshots, a fraction the
//! caller gives) stays for callers that do their own timing.

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::VecDeque;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use meridian_layouts::client::{
    Accept, CLIENT_AUTH_ED25519, CLIENT_DATAGRAM_MAX, CONNECT_SIZE, Challenge, Connect,
    DELTA_PARTIAL, Disconnect, INPUTS_PER_PACKET, Input, InputBody, InputEntry, PathProbe,
    RESPONSE_DOMAIN, RedirectBody, Refuse, RefuseReason, Response, parse_delta,
};
use meridian_layouts::quant::{dequantise_position, dequantise_velocity};
use meridian_layouts::witness::{
    ConnectToken, ENVELOPE_PAYLOAD_MAX, SIGNATURE_SIZE, domain, parse_envelope,
    write_envelope_unsigned,
};
use meridian_layouts::{Header, Kind, U16Le, U32Le, U64Le, header_for, parse};

use meridian_protocol::address::redirect_addr;
use meridian_protocol::delta::{DecodeError, GAME_FIELDS, Record, apply_delta_sampled, freshen};
use meridian_protocol::game::{get_avatar_game, get_events};
use meridian_protocol::motion::intent_velocity;
use meridian_protocol::replay::ReplayWindow;
use meridian_protocol::seal::{self, Key, PublicKey, x25519_public};
use meridian_protocol::time::Instant;

mod counters;
mod scene;
mod sealed;
mod snapshot;

pub use counters::ClientCounters;

/// Decoded snapshots the client keeps (more than the server's history, so every baseline
/// the server can choose is here).
pub const CLIENT_HISTORY: usize = 32;

/// Handshake packets are resent about this often until answered (give or take half of
/// it: [`Client::handshake_retry`]).
const HANDSHAKE_RETRY: Duration = Duration::from_millis(250);
/// The handshake gives up after this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A correction of the own avatar keeps this share of itself per client tick.
const CORRECTION_KEEP: f32 = 0.7;

/// A correction larger than this is a teleport: taken at once, not drawn away.
const CORRECTION_SNAP_M: f32 = 2.0;

/// A connected client gives up after this long without a snapshot.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    Refused(RefuseReason),
    /// The server sent DISCONNECT (idle timeout, avatar gone, shutdown).
    Disconnected,
    /// No answer (handshake) or no snapshot (session) for too long.
    TimedOut,
    /// [`Client::disconnect`] was called.
    Local,
}

/// Something the application should know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    Connected {
        session: u32,
        avatar: u64,
        zone: u32,
    },
    /// A snapshot was applied (the newest: late ones are not reported).
    Snapshot {
        tick: u32,
        zone: u32,
        /// Bytes of its DELTA datagram (inside the seal).
        bytes: u16,
        /// It was against nothing (a full snapshot) rather than a baseline the client held.
        full: bool,
    },
    /// The session moved to `zone` at `addr`; inputs go there from now on. `takeover`: the
    /// zone the client is in is run by its standby now, which said so from `addr` (a new
    /// run: its first snapshots are sent against nothing), not a handoff to another zone.
    Redirected {
        zone: u32,
        addr: SocketAddr,
        takeover: bool,
    },
    Closed(CloseReason),
    /// A game event from the zone's game (`GameEvent::bytes`): each sequence once, in
    /// order, across zone changes.
    Game(meridian_layouts::handoff::GameEvent),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Connecting,
    /// The RESPONSE is signed (`Client::response`) and the session key derived.
    Responding,
    Connected,
    Closed(CloseReason),
}

/// A snapshot's name: ticks are per zone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SnapshotId {
    zone: u32,
    tick: u32,
}

/// A decoded snapshot the client holds, and the sample each record holds (see
/// [`Client::entities`]).
#[derive(Debug, Default)]
struct Held {
    id: SnapshotId,
    records: Vec<Record>,
    samples: Vec<u64>,
}

/// The own avatar as last reported by the server.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AvatarState {
    /// The entity the server reported as the avatar (always the session's).
    pub id: u64,
    pub position: [f32; 2],
    pub velocity: [f32; 2],
    /// The last input the server applied.
    pub input_sequence: u32,
    /// The zone whose snapshot reported it (its tick is of that zone's clock). Not always
    /// [`Client::zone`]: a REDIRECT handled since may have moved the client on.
    pub zone: u32,
    pub tick: u32,
    /// The game's client fields of the avatar (docs/game.md; 0 without a game).
    pub game: [i32; GAME_FIELDS],
}

/// A client session. See the module docs.
#[derive(Debug)]
pub struct Client {
    key: SigningKey,
    token: ConnectToken,
    server: SocketAddr,
    stage: Stage,
    started: Instant,
    next_send: Instant,
    /// Handshake packets sent so far (each draws its own retry delay).
    handshakes_sent: u64,
    last_snapshot_at: Instant,
    session: u32,
    secret: u64,
    avatar: u64,
    zone: u32,
    tick_hz: u32,
    speed_mps_max: f32,
    /// The world's bounds as ACCEPT gave them: x_min, y_min, x_max, y_max.
    bounds: [f32; 4],
    pace: crate::pace::Pace,
    round_trip: crate::pace::RoundTrip,
    node_keys: Vec<VerifyingKey>,
    /// The RESPONSE sent (and resent) while the stage is `Responding`.
    response: Response,
    /// The session key, and the key client → zone packets are sealed with.
    master: Key,
    to_server: Key,
    /// Sealed packets sent (the nonce of the next is one more).
    packet_sequence: u64,
    /// Zone → client keys by key id (the current zone's and the previous one's) and their
    /// replay windows; the front one is the most recently used.
    zone_keys: [(u32, Key, ReplayWindow); 2],
    /// Inputs are signed envelopes (the zone's `client_auth = "ed25519"`).
    sign_inputs: bool,
    intent: (i8, i8, u16),
    /// INPUT's aim field ([`Client::set_aim`]).
    aim: u16,
    /// The sequence of the next game event to hand out (events before it were taken).
    event_next: u32,
    sequence: u32,
    recent: [InputEntry; INPUTS_PER_PACKET],
    recent_count: usize,
    /// Inputs sent and not yet applied by the server: (sequence, velocity).
    unapplied: VecDeque<(u32, [f32; 2])>,
    predicted: [f32; 2],
    /// What a reconciliation moved the prediction by, drawn away over the next ticks
    /// ([`Client::drawn_avatar`]).
    correction: [f32; 2],
    /// How far the last reconciliation moved the prediction.
    misprediction_m: f32,
    motion: crate::motion::Motion,
    authoritative: AvatarState,
    /// Decoded snapshots, from every zone the session was served by; the oldest is
    /// replaced (`next_held`).
    history: Vec<Held>,
    next_held: usize,
    latest: SnapshotId,
    /// The zone → client key id the last opened packet and the newest snapshot came
    /// under (a zone's run), and the runs of the current zone the client left behind.
    opened_key: u32,
    latest_key: u32,
    retired_keys: [u32; 4],
    outbox: VecDeque<(SocketAddr, usize, [u8; CLIENT_DATAGRAM_MAX])>,
    events: VecDeque<ClientEvent>,
    counters: ClientCounters,
    scratch: Vec<Record>,
    scratch_samples: Vec<u64>,
    /// The newest snapshot's entities, each at its newest sample ([`Client::entities`]),
    /// and those samples; the same of the newest snapshot before
    /// ([`Client::interpolated`]).
    drawn: Vec<Record>,
    drawn_samples: Vec<u64>,
    drawn_before: Vec<Record>,
    /// Which stay of the client in a zone (or a zone's run) each zone's snapshots belong
    /// to: samples are (stay, tick), so a zone's ticks are compared only with its own
    /// and any later stay's samples are newer. `stays` counts them.
    stays: [(u32, u32); 4],
    stay: u32,
    stale: scene::Stale,
}

impl Client {
    /// A client that will connect to `server` with `token`, signing with `key` (the session
    /// key whose public half the token names).
    pub fn new(server: SocketAddr, token: ConnectToken, key: SigningKey, now: Instant) -> Client {
        Client {
            key,
            token,
            server,
            stage: Stage::Connecting,
            started: now,
            next_send: now,
            handshakes_sent: 0,
            last_snapshot_at: now,
            session: 0,
            secret: 0,
            avatar: 0,
            zone: 0,
            tick_hz: 30,
            speed_mps_max: 0.0,
            bounds: [f32::MIN, f32::MIN, f32::MAX, f32::MAX],
            pace: Default::default(),
            round_trip: Default::default(),
            node_keys: Vec::new(),
            response: bytemuck::Zeroable::zeroed(),
            master: [0; 32],
            to_server: [0; 32],
            packet_sequence: 0,
            zone_keys: [(0, [0; 32], ReplayWindow::default()); 2],
            sign_inputs: false,
            intent: (0, 0, 0),
            aim: 0,
            event_next: 1,
            sequence: 0,
            recent: [InputEntry::default(); INPUTS_PER_PACKET],
            recent_count: 0,
            unapplied: VecDeque::with_capacity(256),
            predicted: [0.0; 2],
            correction: [0.0; 2],
            misprediction_m: 0.0,
            motion: crate::motion::Motion::new(30),
            authoritative: AvatarState::default(),
            history: (0..CLIENT_HISTORY).map(|_| Held::default()).collect(),
            next_held: 0,
            latest: SnapshotId::default(),
            opened_key: 0,
            latest_key: 0,
            retired_keys: [0; 4],
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            counters: ClientCounters::default(),
            scratch: Vec::new(),
            scratch_samples: Vec::new(),
            drawn: Vec::new(),
            drawn_samples: Vec::new(),
            drawn_before: Vec::new(),
            stays: [(u32::MAX, 0); 4],
            stay: 0,
            stale: scene::Stale::default(),
        }
    }

    /// Pins a node key: the handshake then goes on only with a zone whose node key is
    /// pinned (the session key depends on it, so no one else can read the session), and
    /// REDIRECTs must be signed by a pinned key. Without any, the client takes the node
    /// key the zone names (encrypted, but not authenticated against a man in the middle).
    pub fn trust_node_key(&mut self, key: VerifyingKey) {
        self.node_keys.push(key);
    }

    pub fn is_connected(&self) -> bool {
        self.stage == Stage::Connected
    }

    pub fn closed(&self) -> Option<CloseReason> {
        match self.stage {
            Stage::Closed(reason) => Some(reason),
            _ => None,
        }
    }

    /// The zone's address inputs go to.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    pub fn session(&self) -> u32 {
        self.session
    }

    pub fn avatar(&self) -> u64 {
        self.avatar
    }

    pub fn zone(&self) -> u32 {
        self.zone
    }

    pub fn counters(&self) -> ClientCounters {
        self.counters
    }

    /// The sequence of the newest INPUT sent (0 before the first).
    pub fn input_sequence(&self) -> u32 {
        self.sequence
    }

    /// The own avatar as the server last reported it.
    pub fn authoritative(&self) -> AvatarState {
        self.authoritative
    }

    /// The own avatar's predicted position: the server's plus the unapplied inputs.
    pub fn predicted(&self) -> [f32; 2] {
        self.predicted
    }

    /// Where to draw the own avatar: the prediction, plus what is left of the last
    /// corrections (each is drawn away over about five ticks instead of snapping).
    pub fn drawn_avatar(&self) -> [f32; 2] {
        [
            self.predicted[0] + self.correction[0],
            self.predicted[1] + self.correction[1],
        ]
    }

    /// Remote entities drawn at `now` on server time, a playout delay behind it (see
    /// [`crate::motion`]): `(id, position)`, in id order. Continuous across late
    /// snapshots, far entities' sparse updates and zone changes.
    pub fn render_remote(&mut self, now: Instant, f: impl FnMut(u64, [f32; 2])) {
        self.motion.render(now, f);
    }

    /// Clock sync: the client's estimate of its zone's tick at `now` (fractional), and
    /// how far behind it remote entities are drawn.
    pub fn server_tick(&self, now: Instant) -> Option<f64> {
        self.motion.server_tick(self.zone, now)
    }

    /// How far the newest snapshot's reconciliation moved the predicted avatar, in metres:
    /// what the prediction got wrong (the server applied an input later, or not as
    /// predicted). [`Client::drawn_avatar`] draws it away.
    pub fn misprediction(&self) -> f32 {
        self.misprediction_m
    }

    pub fn motion(&self) -> &crate::motion::Motion {
        &self.motion
    }

    /// Sets the movement intent (−127…127 per axis) and buttons sent from the next tick.
    pub fn set_intent(&mut self, move_x: i8, move_y: i8, buttons: u16) {
        self.intent = (move_x, move_y, buttons);
    }

    /// Sets where the player aims (radians counterclockwise from +x), sent with the
    /// inputs from the next tick: the game gets it with the buttons (`Action::aim`).
    pub fn set_aim(&mut self, radians: f32) {
        self.aim = meridian_protocol::motion::aim_field(radians);
    }

    /// Ends the session: one DISCONNECT is queued.
    pub fn disconnect(&mut self) {
        if self.stage == Stage::Connected {
            let d = Disconnect {
                header: header_for::<Disconnect>(),
                session: U32Le::new(self.session),
                session_secret: U64Le::new(self.secret),
            };
            self.send_sealed(self.server, bytemuck::bytes_of(&d));
        }
        self.close(CloseReason::Local);
    }

    fn close(&mut self, reason: CloseReason) {
        if !matches!(self.stage, Stage::Closed(_)) {
            self.stage = Stage::Closed(reason);
            self.events.push_back(ClientEvent::Closed(reason));
        }
    }

    fn queue(&mut self, to: SocketAddr, bytes: &[u8]) {
        let mut out = [0u8; CLIENT_DATAGRAM_MAX];
        out[..bytes.len()].copy_from_slice(bytes);
        self.counters.datagrams_out += 1;
        self.counters.bytes_out += bytes.len() as u64;
        self.outbox.push_back((to, bytes.len(), out));
    }

    /// The next datagram to send, written into `buf`: its address and length.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let (to, len, bytes) = self.outbox.pop_front()?;
        buf[..len].copy_from_slice(&bytes[..len]);
        Some((to, len))
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Advances the client by one of its ticks: handshake retries and timeouts, or one
    /// signed INPUT carrying the current intent (and the three before it).
    pub fn tick(&mut self, now: Instant) {
        match self.stage {
            Stage::Closed(_) => {}
            Stage::Connecting | Stage::Responding => {
                if now.saturating_duration_since(self.started) > HANDSHAKE_TIMEOUT {
                    self.close(CloseReason::TimedOut);
                } else if now >= self.next_send {
                    self.next_send = now + self.handshake_retry();
                    self.send_handshake();
                }
            }
            Stage::Connected => {
                if now.saturating_duration_since(self.last_snapshot_at) > SILENCE_TIMEOUT {
                    self.close(CloseReason::TimedOut);
                    return;
                }
                self.send_input();
                self.round_trip.sent(self.sequence, now);
            }
        }
    }

    /// When to resend an unanswered handshake packet: [`HANDSHAKE_RETRY`] ± half, drawn
    /// per client and attempt from the token. Clients that start together (a load test;
    /// a zone's clients after a restart) would otherwise resend in the same tick every
    /// time, and a zone verifies its per-tick budget and drops the rest: 2,000 bots
    /// joined at ~300 a second and up to a third timed out.
    fn handshake_retry(&mut self) -> Duration {
        self.handshakes_sent += 1;
        let key: [u8; 8] = self.token.client_key[..8].try_into().expect("8 bytes");
        let seed = u64::from_le_bytes(key) ^ self.token.nonce.get();
        // splitmix64's output function over the seed and the attempt.
        let mut x = seed.wrapping_add(self.handshakes_sent.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let half = HANDSHAKE_RETRY.as_micros() as u64 / 2;
        Duration::from_micros(half + x % (2 * half))
    }

    fn send_handshake(&mut self) {
        match self.stage {
            Stage::Connecting => {
                let connect = Connect {
                    header: header_for::<Connect>(),
                    token: self.token,
                    padding: [0; CONNECT_SIZE - Header::SIZE - ConnectToken::SIZE],
                };
                self.queue(self.server, bytemuck::bytes_of(&connect));
            }
            Stage::Responding => {
                let response = self.response;
                self.queue(self.server, bytemuck::bytes_of(&response));
            }
            _ => {}
        }
    }

    fn send_input(&mut self) {
        self.sequence = self.sequence.wrapping_add(1);
        let (move_x, move_y, buttons) = self.intent;
        let entry = InputEntry {
            sequence: U32Le::new(self.sequence),
            move_x,
            move_y,
            buttons: U16Le::new(buttons),
            aim: U16Le::new(self.aim),
        };
        self.recent.copy_within(0..INPUTS_PER_PACKET - 1, 1);
        self.recent[0] = entry;
        self.recent_count = (self.recent_count + 1).min(INPUTS_PER_PACKET);
        // How far behind the acknowledged snapshot remote entities are drawn, in eighths
        // of a tick: the server judges this input's shots there.
        let back = self
            .motion
            .view_tick(self.latest.zone)
            .map_or(0.0, |t| (f64::from(self.latest.tick) - t) * 8.0);
        let body = InputBody {
            ack_tick: U32Le::new(self.latest.tick),
            ack_zone: U32Le::new(self.latest.zone),
            count: self.recent_count as u8,
            view_back: back.round().clamp(0.0, 255.0) as u8,
            event_ack: U32Le::new(self.event_next.wrapping_sub(1)),
            inputs: self.recent,
        };
        let server = self.server;
        if self.sign_inputs {
            let mut datagram = [0u8; CLIENT_DATAGRAM_MAX];
            let payload = bytemuck::bytes_of(&body);
            debug_assert!(payload.len() <= ENVELOPE_PAYLOAD_MAX);
            let signed = write_envelope_unsigned(
                &mut datagram,
                domain::INPUT,
                self.session,
                0,
                u64::from(self.sequence),
                payload,
            )
            .expect("an input fits a datagram");
            let signature = self.key.sign(&datagram[..signed]).to_bytes();
            datagram[signed..signed + SIGNATURE_SIZE].copy_from_slice(&signature);
            self.send_sealed(server, &datagram[..signed + SIGNATURE_SIZE]);
        } else {
            let input = Input {
                header: header_for::<Input>(),
                body,
            };
            self.send_sealed(server, bytemuck::bytes_of(&input));
        }
        self.counters.inputs_sent += 1;

        // Prediction: the input moves the avatar now.
        let velocity = intent_velocity(move_x, move_y, self.speed_mps_max);
        if self.unapplied.len() == self.unapplied.capacity() {
            self.unapplied.pop_front();
        }
        self.unapplied
            .push_back((self.sequence, [velocity.0, velocity.1]));
        self.predicted = self.step([velocity.0, velocity.1], self.predicted);
        self.correction = self.correction.map(|c| c * CORRECTION_KEEP);
    }

    /// One input's tick of motion from `at`, kept inside the world as the zone keeps it
    /// (clamped to the bounds).
    fn step(&self, velocity: [f32; 2], at: [f32; 2]) -> [f32; 2] {
        let dt = 1.0 / self.tick_hz.max(1) as f32;
        let [x_min, y_min, x_max, y_max] = self.bounds;
        [
            (at[0] + velocity[0] * dt).clamp(x_min, x_max),
            (at[1] + velocity[1] * dt).clamp(y_min, y_max),
        ]
    }

    /// What to multiply the tick interval by for the next calls to [`Client::tick`]: the
    /// zone's reports of how early the inputs arrive, turned into a pace that keeps its
    /// input buffer at the margin the path needs ([`crate::pace`]). A client that ticks at
    /// a fixed rate still works; the zone then guesses, waits and skips more often.
    pub fn input_pace(&self) -> f32 {
        self.pace.factor()
    }

    /// The round trip the player feels: from sending an input to the first snapshot that
    /// shows it applied (the least of the recent ones); `None` before the first sample.
    pub fn round_trip(&self) -> Option<std::time::Duration> {
        self.round_trip.get()
    }

    /// Takes one datagram from the network. Anything that does not belong to this session
    /// is dropped and counted.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.counters.datagrams_in += 1;
        self.counters.bytes_in += bytes.len() as u64;
        let Ok(kind) = Header::parse(bytes) else {
            self.counters.dropped += 1;
            return;
        };
        let handled = match (kind, self.stage) {
            (Kind::Challenge, Stage::Connecting) if from == self.server => {
                parse::<Challenge>(bytes).is_ok_and(|c| {
                    let Some((response, master)) = self.respond(c) else {
                        return false;
                    };
                    (self.response, self.master) = (response, master);
                    self.to_server = seal::client_key(&master);
                    self.stage = Stage::Responding;
                    self.next_send = now;
                    self.send_handshake();
                    self.next_send = now + self.handshake_retry();
                    true
                })
            }
            (Kind::Refuse, Stage::Responding) if from == self.server => parse::<Refuse>(bytes)
                .is_ok_and(|r| {
                    let reason = RefuseReason::from_u8(r.reason).expect("validated");
                    self.close(CloseReason::Refused(reason));
                    true
                }),
            (Kind::Sealed, Stage::Responding) if from == self.server => {
                let mut plain = [0u8; CLIENT_DATAGRAM_MAX];
                match self.open_sealed(bytes, &mut plain) {
                    Some(inner) => parse::<Accept>(inner).is_ok_and(|a| {
                        let a = *a;
                        self.accept(now, &a);
                        true
                    }),
                    None => {
                        self.counters.sealed_rejected += 1;
                        false
                    }
                }
            }
            (Kind::Sealed, Stage::Connected) => {
                let mut plain = [0u8; CLIENT_DATAGRAM_MAX];
                match self.open_sealed(bytes, &mut plain) {
                    Some(inner) => self.handle_inner(now, from, inner),
                    None => {
                        self.counters.sealed_rejected += 1;
                        false
                    }
                }
            }
            _ => false,
        };
        if !handled {
            self.counters.dropped += 1;
        }
    }

    fn accept(&mut self, now: Instant, a: &Accept) {
        self.stage = Stage::Connected;
        self.session = a.session.get();
        self.secret = a.session_secret.get();
        self.avatar = a.entity.get();
        self.zone = a.zone.get();
        self.tick_hz = u32::from(a.tick_hz.get()).max(1);
        self.motion = crate::motion::Motion::new(self.tick_hz);
        self.speed_mps_max = f32::from(a.speed_cmps_max.get()) / 100.0;
        self.bounds = a.bounds.map(|b| b.get());
        self.sign_inputs = a.client_auth == CLIENT_AUTH_ED25519;
        self.last_snapshot_at = now;
        self.events.push_back(ClientEvent::Connected {
            session: self.session,
            avatar: self.avatar,
            zone: self.zone,
        });
    }
}
