//! The 8-byte header at the front of every Meridian datagram.
//!
//! | offset | size | field   | meaning                                      |
//! |-------:|-----:|---------|----------------------------------------------|
//! | 0      | 4    | magic   | `b"MRDN"`                                    |
//! | 4      | 1    | version | [`VERSION`]                                  |
//! | 5      | 1    | kind    | [`Kind`]                                     |
//! | 6      | 2    | length  | total datagram length in bytes, little-endian |
//!
//! The length field lets a receiver reject a datagram that was cut or padded in transit
//! before it looks at the body, and lets several packets share one buffer later.

use bytemuck::{Pod, Zeroable};

use crate::{ParseError, U16Le};

/// The first four bytes of every datagram.
pub const MAGIC: [u8; 4] = *b"MRDN";

/// The protocol version this build speaks. A peer with another version is rejected.
pub const VERSION: u8 = 10;

/// What a datagram is. The numeric values are the wire values and never change meaning.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Handoff: the source offers an entity to the target (docs/protocol.md).
    Offer = 1,
    /// Handoff: the target staged the entity.
    Ack = 2,
    /// Handoff: the target refuses, with a reason.
    Nack = 3,
    /// Handoff: the source has relinquished; the target owns the entity on receipt.
    Commit = 4,
    /// Handoff: the target owns the entity; the source may drop its tombstone.
    Done = 5,
    /// Handoff: the source has durably recorded the DONE; the target may forget the
    /// transfer (it stops resending DONE and no longer needs to recognise its COMMIT).
    Confirm = 7,
    /// An owner's entities inside a neighbour's aura (ghost refresh).
    Ghosts = 6,
    /// Where a zone's clients stand, for the zones their views reach (see [`crate::watch`]).
    Watch = 21,
    /// A client's replication state, sent with its avatar to the zone it was handed to
    /// (see [`crate::view`]).
    View = 22,
    /// A game's messages to entities another zone owns (see [`crate::messages`]).
    Messages = 23,
    /// Client → zone: a connect token, padded (see [`crate::client`]).
    Connect = 8,
    /// Zone → client: a stateless cookie.
    Challenge = 9,
    /// Client → zone: the cookie, signed by the client session key.
    Response = 10,
    /// Zone → client: the session is open.
    Accept = 11,
    /// Zone → client: a proven client was refused.
    Refuse = 12,
    /// Either way: the session ends.
    Disconnect = 13,
    /// Either way, after ACCEPT: a session packet, ChaCha20-Poly1305-sealed; the plaintext
    /// is one of the other client kinds (see [`crate::client::SealedHeader`]).
    Sealed = 14,
    /// Inside a sealed packet, client → zone: inputs (authenticated by the AEAD).
    Input = 18,
    /// Inside a sealed packet, zone → client: is the client at this new address?
    PathChallenge = 19,
    /// Inside a sealed packet, client → zone: the answer to a PATH_CHALLENGE.
    PathResponse = 20,
    /// A full (key-frame) snapshot of entity records for one client.
    Snapshot = 16,
    /// A delta snapshot against the client's acknowledged baseline.
    Delta = 17,
    /// A signed envelope around a payload (see [`crate::witness`]).
    Envelope = 32,
}

impl Kind {
    /// Every kind, in wire-value order.
    pub const ALL: [Kind; 23] = [
        Kind::Offer,
        Kind::Ack,
        Kind::Nack,
        Kind::Commit,
        Kind::Done,
        Kind::Ghosts,
        Kind::Confirm,
        Kind::Connect,
        Kind::Challenge,
        Kind::Response,
        Kind::Accept,
        Kind::Refuse,
        Kind::Disconnect,
        Kind::Sealed,
        Kind::Snapshot,
        Kind::Delta,
        Kind::Input,
        Kind::PathChallenge,
        Kind::PathResponse,
        Kind::Watch,
        Kind::View,
        Kind::Messages,
        Kind::Envelope,
    ];

    /// The kind for a wire value, if it names one.
    pub const fn from_u8(value: u8) -> Option<Kind> {
        match value {
            1 => Some(Kind::Offer),
            2 => Some(Kind::Ack),
            3 => Some(Kind::Nack),
            4 => Some(Kind::Commit),
            5 => Some(Kind::Done),
            6 => Some(Kind::Ghosts),
            7 => Some(Kind::Confirm),
            8 => Some(Kind::Connect),
            9 => Some(Kind::Challenge),
            10 => Some(Kind::Response),
            11 => Some(Kind::Accept),
            12 => Some(Kind::Refuse),
            13 => Some(Kind::Disconnect),
            14 => Some(Kind::Sealed),
            16 => Some(Kind::Snapshot),
            17 => Some(Kind::Delta),
            18 => Some(Kind::Input),
            19 => Some(Kind::PathChallenge),
            20 => Some(Kind::PathResponse),
            21 => Some(Kind::Watch),
            22 => Some(Kind::View),
            23 => Some(Kind::Messages),
            32 => Some(Kind::Envelope),
            _ => None,
        }
    }
}

/// The datagram header. See the module docs for the byte table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Header {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// Always [`VERSION`] for datagrams this build sends.
    pub version: u8,
    /// A [`Kind`] wire value.
    pub kind: u8,
    /// Total datagram length in bytes, header included.
    pub length: U16Le,
}

const _: () = assert!(core::mem::size_of::<Header>() == 8);
const _: () = assert!(core::mem::align_of::<Header>() == 1);

impl Header {
    /// Size of the header on the wire.
    pub const SIZE: usize = core::mem::size_of::<Header>();

    /// A header for a datagram of `kind` and total `length` bytes.
    pub const fn new(kind: Kind, length: u16) -> Header {
        Header {
            magic: MAGIC,
            version: VERSION,
            kind: kind as u8,
            length: U16Le::new(length),
        }
    }

    /// Checks the header at the front of `bytes` and returns the datagram's kind.
    ///
    /// Checks, in order: length ≥ 8, magic, version, kind, and that the length field
    /// equals `bytes.len()`. The body is not looked at.
    pub fn parse(bytes: &[u8]) -> Result<Kind, ParseError> {
        let Some(head) = bytes.get(..Self::SIZE) else {
            return Err(ParseError::Truncated);
        };
        let header: &Header = bytemuck::from_bytes(head);
        if header.magic != MAGIC {
            return Err(ParseError::BadMagic);
        }
        if header.version != VERSION {
            return Err(ParseError::BadVersion);
        }
        let kind = Kind::from_u8(header.kind).ok_or(ParseError::UnknownKind)?;
        if usize::from(header.length.get()) != bytes.len() {
            return Err(ParseError::BadLength);
        }
        Ok(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_wire_values() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_u8(kind as u8), Some(kind));
        }
        assert_eq!(Kind::from_u8(0), None);
        assert_eq!(Kind::from_u8(255), None);
    }

    #[test]
    fn header_checks_in_order() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(bytemuck::bytes_of(&Header::new(Kind::Ack, 8)));
        assert_eq!(Header::parse(&bytes), Ok(Kind::Ack));
        assert_eq!(Header::parse(&bytes[..7]), Err(ParseError::Truncated));

        let mut bad = bytes;
        bad[0] = b'X';
        bad[4] = 99; // Also a bad version: magic is checked first.
        assert_eq!(Header::parse(&bad), Err(ParseError::BadMagic));

        let mut bad = bytes;
        bad[4] = 99;
        assert_eq!(Header::parse(&bad), Err(ParseError::BadVersion));

        let mut bad = bytes;
        bad[5] = 200;
        assert_eq!(Header::parse(&bad), Err(ParseError::UnknownKind));

        let mut bad = bytes;
        bad[6] = 9;
        assert_eq!(Header::parse(&bad), Err(ParseError::BadLength));
    }
}
