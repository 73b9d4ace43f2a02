//! The client protocol (docs/protocol.md): connect handshake, inputs, delta snapshots, redirects.
//!
//! | kind         | direction       | bytes | notes                                              |
//! |--------------|-----------------|------:|----------------------------------------------------|
//! | [`Connect`]  | client → zone   | 1,000 | token + zero padding: the request is the largest   |
//! | [`Challenge`]| zone → client   | 28    | stateless cookie over address, time window, token  |
//! | [`Response`] | client → zone   | 236   | token + cookie, signed by the client session key   |
//! | [`Accept`]   | zone → client   | 40    | session id, secret, avatar, tick, tick rate        |
//! | [`Refuse`]   | zone → client   | 12    | only after the address is proven (cookie valid)    |
//! | input        | client → zone   | 136   | an envelope, domain `INPUT`, [`InputBody`] payload |
//! | delta        | zone → client   | ≤1200 | [`DeltaHeader`] + varint entries (`meridian_protocol::delta`) |
//! | redirect     | zone → client   | 138   | an envelope, domain `REDIRECT`, [`RedirectBody`]   |
//! | [`Disconnect`]| both           | 20    | session id + secret                                |
//!
//! No reply is larger than the request that caused it: CHALLENGE (28) answers CONNECT
//! (1,000); ACCEPT (40) and REFUSE (12) answer RESPONSE (236); snapshots and redirects go
//! only to sessions, whose address the handshake proved.

use bytemuck::{Pod, Zeroable};

use crate::snapshot::EntityRecord;
use crate::witness::{ConnectToken, SIGNATURE_SIZE};
use crate::{Header, Kind, Packet, ParseError, U16Le, U32Le, U64Le};

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

/// CHALLENGE: the cookie the client must sign and return.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Challenge {
    pub header: Header,
    pub cookie: [u8; COOKIE_SIZE],
    /// The time window the cookie was made in.
    pub window: U32Le,
}

const _: () = assert!(core::mem::size_of::<Challenge>() == 28);

impl Packet for Challenge {
    const KIND: Kind = Kind::Challenge;
    fn header(&self) -> &Header {
        &self.header
    }
}

/// RESPONSE: the token again (the zone kept nothing), the cookie, and the client session
/// key's signature over every byte before it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Response {
    pub header: Header,
    /// Always [`RESPONSE_DOMAIN`].
    pub domain: [u8; 8],
    pub token: ConnectToken,
    pub cookie: [u8; COOKIE_SIZE],
    pub window: U32Le,
    pub signature: [u8; SIGNATURE_SIZE],
}

const _: () = assert!(core::mem::size_of::<Response>() == 236);

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
}

const _: () = assert!(core::mem::size_of::<Accept>() == 40);

impl Packet for Accept {
    const KIND: Kind = Kind::Accept;
    fn header(&self) -> &Header {
        &self.header
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
}

/// The payload of an INPUT envelope (domain `INPUT`, signer = session id, sequence = the
/// newest entry's). Entries are newest first; `count` of them are valid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct InputBody {
    /// The newest snapshot tick the client has applied: the server's delta baseline.
    pub ack_tick: U32Le,
    pub count: u8,
    pub padding: u8,
    pub inputs: [InputEntry; INPUTS_PER_PACKET],
}

const _: () = assert!(core::mem::size_of::<InputBody>() == 38);

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
    /// The snapshot this one is relative to; 0 = none (every entry is new).
    pub baseline_tick: U32Le,
    /// The last input sequence the server applied for this client.
    pub input_sequence: U32Le,
    pub zone: U32Le,
    /// The client's own avatar, authoritative, for reconciliation.
    pub avatar: EntityRecord,
    pub entry_count: U16Le,
}

const _: () = assert!(core::mem::size_of::<DeltaHeader>() == 52);

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
