//! The client protocol (docs/protocol.md): connect handshake, inputs, delta snapshots, redirects.
//!
//! | kind         | direction       | bytes | notes                                              |
//! |--------------|-----------------|------:|----------------------------------------------------|
//! | [`Connect`]  | client → zone   | 1,000 | token + zero padding: the request is the largest   |
//! | [`Challenge`]| zone → client   | 92    | cookie, the zone's X25519 ephemeral and node key   |
//! | [`Response`] | client → zone   | 332   | token, cookie, both ephemerals, signed by the client |
//! | [`Refuse`]   | zone → client   | 12    | only after the address is proven (cookie valid)    |
//! | [`Sealed`](SealedHeader) | both | ≤1200 | every session packet after the handshake:        |
//! |              |                 |       | [`SealedHeader`] · ChaCha20-Poly1305(inner) · tag  |
//!
//! Inside a sealed packet (the *inner* datagram, a complete datagram of its own):
//!
//! | inner kind   | direction       | bytes | notes                                              |
//! |--------------|-----------------|------:|----------------------------------------------------|
//! | [`Accept`]   | zone → client   | 44    | session id, secret, avatar, tick, rate, input auth |
//! | [`Input`]    | client → zone   | 62    | [`InputBody`] (`client_auth = "aead"`)             |
//! | input        | client → zone   | 152   | an envelope, domain `INPUT` (`client_auth = "ed25519"`) |
//! | delta        | zone → client   | ≤1160 | [`DeltaHeader`] + the avatar's game fields + varint entries (`meridian_protocol::delta`) |
//! | redirect     | zone → client   | 138   | an envelope, domain `REDIRECT`, [`RedirectBody`]   |
//! | [`PathProbe`]| both            | 16    | PATH_CHALLENGE / PATH_RESPONSE (address migration) |
//! | [`Disconnect`]| both           | 20    | session id + secret                                |
//!
//! No reply is larger than the request that caused it: CHALLENGE (92) answers CONNECT
//! (1,000); the sealed ACCEPT (84) and REFUSE (12) answer RESPONSE (332); a
//! PATH_CHALLENGE (56) answers a sealed input (≥ 102); snapshots and redirects go only to
//! addresses the session proved.

use bytemuck::{Pod, Zeroable};

use crate::snapshot::EntityRecord;
use crate::witness::{ConnectToken, SIGNATURE_SIZE};
use crate::{F32Le, Header, Kind, Packet, ParseError, U16Le, U32Le, U64Le};

/// Domain tag of a RESPONSE's signature.
pub const RESPONSE_DOMAIN: [u8; 8] = *b"MRDN-RSP";

/// Size of every CONNECT datagram: large, so the CHALLENGE it earns amplifies nothing.
pub const CONNECT_SIZE: usize = 1000;

/// Bytes of a stateless cookie.
pub const COOKIE_SIZE: usize = 16;

/// Inputs carried in each INPUT (the newest and up to three before it).
pub const INPUTS_PER_PACKET: usize = 4;

/// Largest client-bound datagram (snapshots are cut to fit).
pub const CLIENT_DATAGRAM_MAX: usize = 1200;

/// CONNECT: a connect token, padded with zeros to [`CONNECT_SIZE`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Connect {
    pub header: Header,
    pub token: ConnectToken,
    pub padding: [u8; CONNECT_SIZE - Header::SIZE - ConnectToken::SIZE],
}

const _: () = assert!(core::mem::size_of::<Connect>() == CONNECT_SIZE);

impl Packet for Connect {
    const KIND: Kind = Kind::Connect;
    fn header(&self) -> &Header {
        &self.header
    }
}

/// CHALLENGE: the cookie the client must sign and return, and the zone's half of the key
/// exchange.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Challenge {
    pub header: Header,
    pub cookie: [u8; COOKIE_SIZE],
    /// The time window the cookie was made in.
    pub window: U32Le,
    /// The zone's X25519 ephemeral public key for this window.
    pub server_ephemeral: [u8; 32],
    /// The Ed25519 public key of the node serving the zone (all zeros in a world without
    /// node keys): the client checks it against the keys it pins and takes it into the
    /// key exchange, so only that node can read what the client sends.
    pub node_key: [u8; 32],
}

const _: () = assert!(core::mem::size_of::<Challenge>() == 92);

impl Packet for Challenge {
    const KIND: Kind = Kind::Challenge;
    fn header(&self) -> &Header {
        &self.header
    }
}

/// RESPONSE: the token again (the zone kept nothing), the cookie, the client's X25519
/// ephemeral, the zone's ephemeral and node key as the client saw them, and the client
/// session key's signature over every byte before it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Response {
    pub header: Header,
    /// Always [`RESPONSE_DOMAIN`].
    pub domain: [u8; 8],
    pub token: ConnectToken,
    pub cookie: [u8; COOKIE_SIZE],
    pub window: U32Le,
    pub client_ephemeral: [u8; 32],
    pub server_ephemeral: [u8; 32],
    pub node_key: [u8; 32],
    pub signature: [u8; SIGNATURE_SIZE],
}

const _: () = assert!(core::mem::size_of::<Response>() == 332);

impl Response {
    /// Bytes covered by the client's signature.
    pub const SIGNED_SIZE: usize = core::mem::size_of::<Response>() - SIGNATURE_SIZE;

    pub fn signed_bytes(&self) -> &[u8] {
        &bytemuck::bytes_of(self)[..Self::SIGNED_SIZE]
    }
}

impl Packet for Response {
    const KIND: Kind = Kind::Response;
    fn header(&self) -> &Header {
        &self.header
    }
    fn validate_body(&self) -> Result<(), ParseError> {
        if self.domain != RESPONSE_DOMAIN {
            return Err(ParseError::BadField);
        }
        Ok(())
    }
}

/// The clear front of a sealed packet: everything a session sends after the handshake,
/// both ways, is this header, then a complete inner datagram encrypted with
/// ChaCha20-Poly1305, then the 16-byte tag. The header is the associated data; the nonce
/// is `sequence` (8 bytes, little-endian) followed by 4 zero bytes.
///
/// Client → zone, `key_id` is 0 and the key is the session's client key; `sequence`
/// counts the client's packets (the zone's replay window is over it). Zone → client,
/// `key_id` names the zone run's key (random per run of a zone) and `sequence` counts
/// that run's packets from a random start.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SealedHeader {
    pub header: Header,
    pub session: U32Le,
    pub key_id: U32Le,
    pub sequence: U64Le,
}

const _: () = assert!(core::mem::size_of::<SealedHeader>() == 24);

impl SealedHeader {
    pub const SIZE: usize = core::mem::size_of::<SealedHeader>();
}

/// Bytes of the AEAD tag at the end of a sealed packet.
pub const TAG_SIZE: usize = 16;

/// What sealing adds to an inner datagram.
pub const SEALED_OVERHEAD: usize = SealedHeader::SIZE + TAG_SIZE;

/// Largest inner datagram (a sealed packet is at most [`CLIENT_DATAGRAM_MAX`]).
pub const SEALED_INNER_MAX: usize = CLIENT_DATAGRAM_MAX - SEALED_OVERHEAD;

/// Splits a sealed packet into its header, ciphertext and tag. Checks the datagram header
/// (kind [`Kind::Sealed`], length), the size bounds (an inner datagram header at least),
/// nothing else: the AEAD is the check.
pub fn parse_sealed(bytes: &[u8]) -> Result<(&SealedHeader, &[u8], &[u8; TAG_SIZE]), ParseError> {
    if Header::parse(bytes)? != Kind::Sealed {
        return Err(ParseError::WrongKind);
    }
    if bytes.len() > CLIENT_DATAGRAM_MAX {
        return Err(ParseError::BadLength);
    }
    if bytes.len() < SEALED_OVERHEAD + Header::SIZE {
        return Err(ParseError::Truncated);
    }
    let head: &SealedHeader = bytemuck::from_bytes(&bytes[..SealedHeader::SIZE]);
    let (body, tag) = bytes[SealedHeader::SIZE..].split_at(bytes.len() - SEALED_OVERHEAD);
    Ok((head, body, tag.try_into().expect("16 bytes")))
}

/// INPUT (inside a sealed packet, `client_auth = "aead"`): the AEAD authenticates it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Input {
    pub header: Header,
    pub body: InputBody,
}

const _: () = assert!(core::mem::size_of::<Input>() == 62);

impl Packet for Input {
    const KIND: Kind = Kind::Input;
    fn header(&self) -> &Header {
        &self.header
    }
    fn validate_body(&self) -> Result<(), ParseError> {
        InputBody::parse(bytemuck::bytes_of(&self.body)).map(|_| ())
    }
}

/// PATH_CHALLENGE (zone → client, to a new address an authenticated packet came from) and
/// PATH_RESPONSE (client → zone, echoing `data`), both inside sealed packets. The session
/// moves to the new address when the echo arrives from it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PathProbe {
    pub header: Header,
    pub data: U64Le,
}

const _: () = assert!(core::mem::size_of::<PathProbe>() == 16);

/// ACCEPT: the session exists and its avatar has spawned.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Accept {
    pub header: Header,
    pub session: U32Le,
    /// Random; in every server packet to this client, so off-path forgeries are dropped.
    pub session_secret: U64Le,
    /// The avatar's entity id.
    pub entity: U64Le,
    pub zone: U32Le,
    pub tick: U32Le,
    pub tick_hz: U16Le,
    /// The speed the server clamps the avatar to, centimetres per second.
    pub speed_cmps_max: U16Le,
    /// How the client's inputs are authenticated: [`CLIENT_AUTH_AEAD`] (the AEAD alone)
    /// or [`CLIENT_AUTH_ED25519`] (each INPUT also signed).
    pub client_auth: u8,
    pub padding: [u8; 3],
    /// The world's bounds, metres: x_min, y_min, x_max, y_max (finite, min < max). The
    /// zone keeps avatars inside them; the client's prediction does the same.
    pub bounds: [F32Le; 4],
}

const _: () = assert!(core::mem::size_of::<Accept>() == 60);

/// [`Accept::client_auth`]: inputs are [`Input`] packets, authenticated by the AEAD.
pub const CLIENT_AUTH_AEAD: u8 = 0;
/// [`Accept::client_auth`]: inputs are signed INPUT envelopes inside the sealed packets.
pub const CLIENT_AUTH_ED25519: u8 = 1;

impl Packet for Accept {
    const KIND: Kind = Kind::Accept;
    fn header(&self) -> &Header {
        &self.header
    }
    fn validate_body(&self) -> Result<(), ParseError> {
        let [x_min, y_min, x_max, y_max] = self.bounds.map(|b| b.get());
        let bounds_ok = [x_min, y_min, x_max, y_max].iter().all(|v| v.is_finite())
            && x_min < x_max
            && y_min < y_max;
        match self.client_auth {
            CLIENT_AUTH_AEAD | CLIENT_AUTH_ED25519 if bounds_ok => Ok(()),
            _ => Err(ParseError::BadField),
        }
    }
}

/// Why a proven client was refused.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefuseReason {
    /// The session table is full.
    Full = 1,
    /// The token was already used.
    TokenReplayed = 2,
    /// A signature (token or response) did not verify.
    BadSignature = 3,
    /// The zone cannot place the avatar.
    NoRoom = 4,
}

impl RefuseReason {
    pub fn from_u8(value: u8) -> Option<RefuseReason> {
        match value {
            1 => Some(RefuseReason::Full),
            2 => Some(RefuseReason::TokenReplayed),
            3 => Some(RefuseReason::BadSignature),
            4 => Some(RefuseReason::NoRoom),
            _ => None,
        }
    }
}

/// REFUSE: sent only to a proven address (valid cookie), never in answer to CONNECT.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Refuse {
    pub header: Header,
    /// A [`RefuseReason`].
    pub reason: u8,
    pub padding: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<Refuse>() == 12);

impl Packet for Refuse {
    const KIND: Kind = Kind::Refuse;
    fn header(&self) -> &Header {
        &self.header
    }
    fn validate_body(&self) -> Result<(), ParseError> {
        RefuseReason::from_u8(self.reason)
            .map(|_| ())
            .ok_or(ParseError::BadField)
    }
}

/// DISCONNECT, either way: the session ends. The secret proves it comes from a party to
/// the session.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Disconnect {
    pub header: Header,
    pub session: U32Le,
    pub session_secret: U64Le,
}

const _: () = assert!(core::mem::size_of::<Disconnect>() == 20);

impl Packet for Disconnect {
    const KIND: Kind = Kind::Disconnect;
    fn header(&self) -> &Header {
        &self.header
    }
}

/// One input: a movement intent and buttons, for one client tick.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct InputEntry {
    /// The client's input counter; consecutive entries have consecutive sequences.
    pub sequence: U32Le,
    /// Movement intent, −127…127 on each axis; the server clamps its length to 127.
    pub move_x: i8,
    pub move_y: i8,
    pub buttons: U16Le,
    /// Where the player aims: an angle counterclockwise from +x, in 1/65,536 of a turn.
    /// Handed to the game with the buttons (`Action::aim`).
    pub aim: U16Le,
}

const _: () = assert!(core::mem::size_of::<InputEntry>() == 10);

/// The payload of an INPUT envelope (domain `INPUT`, signer = session id, sequence = the
/// newest entry's). Entries are newest first; `count` of them are valid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct InputBody {
    /// The newest snapshot the client has applied, as (zone, tick): the server's delta
    /// baseline. Ticks are per zone; a zone ignores an acknowledgement of another zone's.
    pub ack_tick: U32Le,
    pub ack_zone: U32Le,
    pub count: u8,
    /// How far behind `ack_tick` the client drew remote entities when it made the newest
    /// input (its interpolation time, for lag compensation), in eighths of a tick: 0–255,
    /// up to 31.9 ticks. 0 from a client that does not say (the byte was padding).
    pub view_back: u8,
    /// The newest game event the client has taken, in sequence (0: none yet): the zone
    /// stops resending it and the ones before.
    pub event_ack: U32Le,
    pub inputs: [InputEntry; INPUTS_PER_PACKET],
}

const _: () = assert!(core::mem::size_of::<InputBody>() == 54);

impl InputBody {
    /// Parses a payload: exact size, `1 ≤ count ≤ 4`, consecutive sequences.
    pub fn parse(bytes: &[u8]) -> Result<&InputBody, ParseError> {
        let body: &InputBody =
            bytemuck::try_from_bytes(bytes).map_err(|_| ParseError::BadLength)?;
        let count = usize::from(body.count);
        if count == 0 || count > INPUTS_PER_PACKET {
            return Err(ParseError::BadCount);
        }
        let newest = body.inputs[0].sequence.get();
        for (i, entry) in body.inputs[..count].iter().enumerate() {
            if entry.sequence.get() != newest.wrapping_sub(i as u32) {
                return Err(ParseError::BadField);
            }
        }
        Ok(body)
    }
}

/// The payload of a REDIRECT envelope (domain `REDIRECT`, signed by the old zone's node).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RedirectBody {
    pub session: U32Le,
    pub session_secret: U64Le,
    /// The zone that owns the avatar now.
    pub zone: U32Le,
    /// Its address: IPv4 in the first 4 bytes (`family` 4) or IPv6 (`family` 6).
    pub addr: [u8; 16],
    pub port: U16Le,
    pub family: u8,
    pub padding: u8,
    pub tick: U32Le,
}

const _: () = assert!(core::mem::size_of::<RedirectBody>() == 40);

impl RedirectBody {
    /// Parses a payload: exact size, address family 4 or 6.
    pub fn parse(bytes: &[u8]) -> Result<&RedirectBody, ParseError> {
        let body: &RedirectBody =
            bytemuck::try_from_bytes(bytes).map_err(|_| ParseError::BadLength)?;
        if body.family != 4 && body.family != 6 {
            return Err(ParseError::BadField);
        }
        Ok(body)
    }
}

/// The fixed part of a delta snapshot, after the datagram header. Entries follow (their
/// encoding is `meridian_protocol::delta`'s) up to the datagram's end.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct DeltaHeader {
    pub session_secret: U64Le,
    pub tick: U32Le,
    /// The snapshot this one is relative to, as (zone, tick); tick 0 = none (every entry
    /// is new). The zone is another than `zone` when the client's replication state came
    /// with its avatar from there (continuity at handoff).
    pub baseline_tick: U32Le,
    pub baseline_zone: U32Le,
    /// The last input sequence the server applied for this client.
    pub input_sequence: U32Le,
    pub zone: U32Le,
    /// The client's own avatar, authoritative, for reconciliation.
    pub avatar: EntityRecord,
    pub entry_count: U16Le,
    /// How early the client's inputs arrive: how many waited beyond the one the zone
    /// applied at this tick, or [`INPUT_UNDERRUN`] when the one due had not arrived. A
    /// client paces its inputs by it (see the protocol docs, "Inputs").
    pub input_waiting: u8,
    /// [`DELTA_PARTIAL`]; other bits are 0 (and ignored by clients).
    pub flags: u8,
}

const _: () = assert!(core::mem::size_of::<DeltaHeader>() == 58);

/// [`DeltaHeader::input_waiting`]: the input due at this tick had not arrived.
pub const INPUT_UNDERRUN: u8 = u8::MAX;

/// [`DeltaHeader::flags`]: the client's state after this snapshot lacks members of its
/// interest set (the byte budget left them for later snapshots). After a snapshot sent
/// against nothing (a zone's new run after a takeover or restart, a baseline lost), a
/// client keeps drawing what it showed before until a snapshot without this flag.
pub const DELTA_PARTIAL: u8 = 1;

impl DeltaHeader {
    pub const SIZE: usize = core::mem::size_of::<DeltaHeader>();
}

/// Offset of the entries in a delta datagram.
pub const DELTA_ENTRIES_OFFSET: usize = Header::SIZE + DeltaHeader::SIZE;

/// Parses a delta snapshot's fixed part; returns it and the entry bytes.
pub fn parse_delta(bytes: &[u8]) -> Result<(&DeltaHeader, &[u8]), ParseError> {
    let kind = Header::parse(bytes)?;
    if kind != Kind::Delta {
        return Err(ParseError::WrongKind);
    }
    if bytes.len() > CLIENT_DATAGRAM_MAX {
        return Err(ParseError::BadLength);
    }
    let Some(head) = bytes.get(Header::SIZE..DELTA_ENTRIES_OFFSET) else {
        return Err(ParseError::Truncated);
    };
    let head: &DeltaHeader = bytemuck::from_bytes(head);
    Ok((head, &bytes[DELTA_ENTRIES_OFFSET..]))
}

/// Writes a delta's datagram header and fixed part into `out[..DELTA_ENTRIES_OFFSET]`
/// for a datagram of `total` bytes (the entries are already at
/// `out[DELTA_ENTRIES_OFFSET..total]`).
pub fn write_delta_header(out: &mut [u8], head: &DeltaHeader, total: usize) {
    assert!(total <= CLIENT_DATAGRAM_MAX);
    assert!(total >= DELTA_ENTRIES_OFFSET);
    out[..Header::SIZE]
        .copy_from_slice(bytemuck::bytes_of(&Header::new(Kind::Delta, total as u16)));
    out[Header::SIZE..DELTA_ENTRIES_OFFSET].copy_from_slice(bytemuck::bytes_of(head));
}
