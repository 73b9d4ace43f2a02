//! The handoff messages (docs/protocol.md): OFFER, ACK | NACK, COMMIT, DONE, CONFIRM.
//!
//! Every message starts with a [`Header`] and a [`Transfer`] that names the entity, the
//! epoch the target will own it at (`e + 1`), the transfer id, and both zones. The state
//! travels at full `f32` precision (not quantised): a handoff must not move an entity.
//!
//! | message | layout                                                      | bytes |
//! |---------|-------------------------------------------------------------|------:|
//! | OFFER   | header · transfer · tick · [`EntityState`]                   | 136   |
//! | ACK     | header · transfer                                           | 36    |
//! | NACK    | header · transfer · reason                                  | 37    |
//! | COMMIT  | header · transfer · tick · [`EntityState`] · [`SessionBinding`] | 262 |
//! | DONE    | header · transfer                                           | 36    |
//! | CONFIRM | header · transfer                                           | 36    |
//!
//! Validation beyond the header: every float in a state must be finite (a NaN position
//! would poison the SIMD passes of the receiving zone), the epoch must be ≥ 1 (epoch 0 is
//! "created, never transferred" and is never the result of a transfer), source and target
//! must differ, and a NACK reason must be a known [`NackReason`].

use bytemuck::{Pod, Zeroable};

use crate::{F32Le, Header, Kind, Packet, ParseError, U16Le, U32Le, U64Le, header_for};

/// Bytes of game state carried with each entity: the slot a game's state record (a `Pod`
/// of at most this size, `meridian-core::game`) lives in. Opaque to the protocol.
pub const STATE_SIZE: usize = 64;

/// Names one transfer: which entity, at which new epoch, from where to where.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Transfer {
    /// Global entity id (creator zone in the high bits).
    pub entity_id: U64Le,
    /// The epoch the target owns the entity at once the transfer commits (`e + 1`).
    pub epoch: U32Le,
    /// The zone giving the entity away.
    pub source_zone: U32Le,
    /// The zone receiving it.
    pub target_zone: U32Le,
    /// Unique per source zone; lets both sides tell a retransmit from a new transfer.
    pub transfer_id: U64Le,
}

const _: () = assert!(core::mem::size_of::<Transfer>() == 28);

impl Transfer {
    /// The field checks every message applies: epoch ≥ 1, source ≠ target.
    pub fn validate(&self) -> Result<(), ParseError> {
        if self.epoch.get() == 0 {
            return Err(ParseError::BadField);
        }
        if self.source_zone == self.target_zone {
            return Err(ParseError::BadField);
        }
        Ok(())
    }
}

/// The simulated state of one entity, at full precision.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct EntityState {
    /// x, y (the partitioned plane) and z (height), metres.
    pub position: [F32Le; 3],
    /// Velocity in the plane, metres per second.
    pub velocity: [F32Le; 2],
    /// The entity's speed limit, metres per second; ≥ 0.
    pub speed_mps_max: F32Le,
    /// Game-defined entity kind.
    pub kind: U16Le,
    /// Game-defined flags.
    pub flags: U16Le,
    /// The game's state record (zero-padded to [`STATE_SIZE`]), carried unchanged.
    pub payload: [u8; STATE_SIZE],
}

const _: () = assert!(core::mem::size_of::<EntityState>() == 92);

impl EntityState {
    fn validate(&self) -> Result<(), ParseError> {
        let floats = [
            self.position[0],
            self.position[1],
            self.position[2],
            self.velocity[0],
            self.velocity[1],
            self.speed_mps_max,
        ];
        if floats.iter().any(|f| !f.get().is_finite()) {
            return Err(ParseError::BadField);
        }
        if self.speed_mps_max.get() < 0.0 {
            return Err(ParseError::BadField);
        }
        Ok(())
    }
}

/// The client session bound to an avatar, carried in COMMIT so the target can take the
/// client over without the client reconnecting (docs/protocol.md). All zero for an NPC.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SessionBinding {
    /// Session id; 0 means "no session" (an NPC).
    pub session_id: U64Le,
    /// The client's IP address, IPv6 or IPv4-mapped IPv6.
    pub client_ip: [u8; 16],
    /// The client's UDP port.
    pub client_port: U16Le,
    /// The per-session secret stamped in every server packet to the client.
    pub session_secret: U64Le,
    /// The client session's Ed25519 public key, to verify its inputs.
    pub client_key: [u8; 32],
    /// The last input sequence the source applied; the target continues after it.
    pub input_sequence: U32Le,
    /// The session's master key (its AEAD keys are derived from it). In clear inside a
    /// node and in its files; sealed to the target node when the binding crosses to
    /// another node (`key_salt` non-zero then).
    pub session_key: [u8; 32],
    /// Zero: `session_key` is in clear. Otherwise the salt of the pad it is sealed with.
    pub key_salt: [u8; 16],
    /// The highest client packet sequence the source accepted: the target's replay window
    /// starts after it.
    pub packet_sequence: U64Le,
}

const _: () = assert!(core::mem::size_of::<SessionBinding>() == 126);

/// S → T: S offers E, still owning and simulating it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Offer {
    pub header: Header,
    pub transfer: Transfer,
    /// The source tick the state was taken at.
    pub tick: U64Le,
    pub state: EntityState,
}

const _: () = assert!(core::mem::size_of::<Offer>() == 136);

/// T → S: T has staged E (reserved a slot) and does not simulate it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Ack {
    pub header: Header,
    pub transfer: Transfer,
}

const _: () = assert!(core::mem::size_of::<Ack>() == 36);

/// Why a target refused an OFFER.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NackReason {
    /// The target has no free entity slot or staging slot.
    Full = 1,
    /// The target does not know the source zone or does not border it.
    Unknown = 2,
    /// The target is shutting down and accepts no new entities.
    ShuttingDown = 3,
    /// The target already knows the entity at an epoch ≥ the offered one.
    Stale = 4,
}

impl NackReason {
    /// The reason for a wire value, if it names one.
    pub const fn from_u8(value: u8) -> Option<NackReason> {
        match value {
            1 => Some(NackReason::Full),
            2 => Some(NackReason::Unknown),
            3 => Some(NackReason::ShuttingDown),
            4 => Some(NackReason::Stale),
            _ => None,
        }
    }
}

/// T → S: T refuses E; S keeps owning it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Nack {
    pub header: Header,
    pub transfer: Transfer,
    /// A [`NackReason`] wire value.
    pub reason: u8,
}

const _: () = assert!(core::mem::size_of::<Nack>() == 37);

impl Nack {
    /// The reason. Always `Some` for a NACK returned by [`crate::parse`].
    pub fn reason(&self) -> Option<NackReason> {
        NackReason::from_u8(self.reason)
    }
}

/// Bytes of one game event at most.
pub const GAME_EVENT_MAX: usize = 24;

/// Game events waiting for a client's acknowledgement, per session, at most.
pub const GAME_EVENTS_PENDING_MAX: usize = 8;

/// One game event for a client: its sequence (per session, from 1) and its bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct GameEvent {
    pub seq: U32Le,
    pub len: u8,
    pub bytes: [u8; GAME_EVENT_MAX],
}

const _: () = assert!(core::mem::size_of::<GameEvent>() == 29);

impl GameEvent {
    /// The event's bytes (`len` of them; a parsed COMMIT's are checked ≤ the maximum).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(GAME_EVENT_MAX)]
    }
}

/// A session's game events not yet acknowledged by its client, oldest first, carried in
/// COMMIT's wire form (`crate::wire`) so they are resent from the avatar's new zone.
/// All zero for an NPC.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct EventBacklog {
    /// The sequence the next event gets (0: no event was ever sent).
    pub next_seq: U32Le,
    pub count: u8,
    pub events: [GameEvent; GAME_EVENTS_PENDING_MAX],
}

const _: () = assert!(core::mem::size_of::<EventBacklog>() == 237);

impl EventBacklog {
    /// The pending events, oldest first.
    pub fn pending(&self) -> &[GameEvent] {
        &self.events[..usize::from(self.count).min(GAME_EVENTS_PENDING_MAX)]
    }

    /// Checks: at most the maximum pending, each event's length in range, sequences
    /// consecutive and ending just before `next_seq`.
    pub fn validate(&self) -> Result<(), ParseError> {
        let count = usize::from(self.count);
        if count > GAME_EVENTS_PENDING_MAX {
            return Err(ParseError::BadCount);
        }
        let next = self.next_seq.get();
        for (k, e) in self.events[..count].iter().enumerate() {
            let expected = next.wrapping_sub((count - k) as u32);
            if usize::from(e.len) > GAME_EVENT_MAX || e.seq.get() != expected || expected == 0 {
                return Err(ParseError::BadField);
            }
        }
        Ok(())
    }
}

/// S → T: S has relinquished E; T owns E at `transfer.epoch` from the moment it applies
/// this. Self-sufficient: full latest state plus the session binding (and, on the wire,
/// the session's unacknowledged game events: `crate::wire`). This fixed layout is the
/// one the log and checkpoints keep.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Commit {
    pub header: Header,
    pub transfer: Transfer,
    /// The source tick the state was taken at (the tick S relinquished).
    pub tick: U64Le,
    pub state: EntityState,
    pub session: SessionBinding,
}

const _: () = assert!(core::mem::size_of::<Commit>() == 262);

/// T → S: T owns E; S may drop its tombstone.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Done {
    pub header: Header,
    pub transfer: Transfer,
}

const _: () = assert!(core::mem::size_of::<Done>() == 36);

/// S → T: S has durably recorded T's DONE and will never send this transfer's COMMIT
/// again, so T may forget the transfer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Confirm {
    pub header: Header,
    pub transfer: Transfer,
}

const _: () = assert!(core::mem::size_of::<Confirm>() == 36);

impl Packet for Offer {
    const KIND: Kind = Kind::Offer;
    fn header(&self) -> &Header {
        &self.header
    }
    fn validate_body(&self) -> Result<(), ParseError> {
        self.transfer.validate()?;
        self.state.validate()
    }
}

impl Packet for Ack {
    const KIND: Kind = Kind::Ack;
    fn header(&self) -> &Header {
        &self.header
    }
    fn validate_body(&self) -> Result<(), ParseError> {
        self.transfer.validate()
    }
}

impl Packet for Nack {
    const KIND: Kind = Kind::Nack;
    fn header(&self) -> &Header {
        &self.header
    }
    fn validate_body(&self) -> Result<(), ParseError> {
        self.transfer.validate()?;
        NackReason::from_u8(self.reason).ok_or(ParseError::BadField)?;
        Ok(())
    }
}

impl Packet for Commit {
    const KIND: Kind = Kind::Commit;
    fn header(&self) -> &Header {
        &self.header
    }
    fn validate_body(&self) -> Result<(), ParseError> {
        self.transfer.validate()?;
        self.state.validate()
    }
}

impl Packet for Done {
    const KIND: Kind = Kind::Done;
    fn header(&self) -> &Header {
        &self.header
    }
    fn validate_body(&self) -> Result<(), ParseError> {
        self.transfer.validate()
    }
}

impl Packet for Confirm {
    const KIND: Kind = Kind::Confirm;
    fn header(&self) -> &Header {
        &self.header
    }
    fn validate_body(&self) -> Result<(), ParseError> {
        self.transfer.validate()
    }
}

impl Offer {
    /// An OFFER with its header filled in.
    pub fn new(transfer: Transfer, tick: u64, state: EntityState) -> Offer {
        Offer {
            header: header_for::<Offer>(),
            transfer,
            tick: U64Le::new(tick),
            state,
        }
    }
}

impl Ack {
    /// An ACK with its header filled in.
    pub fn new(transfer: Transfer) -> Ack {
        Ack {
            header: header_for::<Ack>(),
            transfer,
        }
    }
}

impl Nack {
    /// A NACK with its header filled in.
    pub fn new(transfer: Transfer, reason: NackReason) -> Nack {
        Nack {
            header: header_for::<Nack>(),
            transfer,
            reason: reason as u8,
        }
    }
}

impl Commit {
    /// A COMMIT with its header filled in.
    pub fn new(
        transfer: Transfer,
        tick: u64,
        state: EntityState,
        session: SessionBinding,
    ) -> Commit {
        Commit {
            header: header_for::<Commit>(),
            transfer,
            tick: U64Le::new(tick),
            state,
            session,
        }
    }
}

impl Done {
    /// A DONE with its header filled in.
    pub fn new(transfer: Transfer) -> Done {
        Done {
            header: header_for::<Done>(),
            transfer,
        }
    }
}

impl Confirm {
    /// A CONFIRM with its header filled in.
    pub fn new(transfer: Transfer) -> Confirm {
        Confirm {
            header: header_for::<Confirm>(),
            transfer,
        }
    }
}
