//! MESSAGES: a game's messages to entities another zone owns (docs/protocol.md, "Game
//! messages").
//!
//! A game acts on what it owns; an entity across a border is another zone's to write. A
//! game that hits a ghost, or trades with one, sends the entity a message; the zone sends
//! it to the zone it believes owns the entity (the ghost's source, or where a handoff in
//! flight takes it), which hands it to its game — or, if the entity left in the meantime,
//! forwards it once more, up to [`MESSAGE_HOPS_MAX`] zones in all.
//!
//! | part                  | bytes  |
//! |-----------------------|--------|
//! | [`Header`]            | 8      |
//! | [`MessagesHeader`]    | 12     |
//! | [`GameMessage`] × n   | 68 × n |
//!
//! A message is named by its origin: the zone, its run (incarnation) and a number the
//! run counts up from 0. A zone that receives a message again with no more hops than
//! before (a copy the network made) drops it.

use bytemuck::{Pod, Zeroable};

use crate::{Header, Kind, ParseError, U16Le, U32Le, U64Le};

/// Most bytes of one message's payload.
pub const GAME_MESSAGE_MAX: usize = 24;

/// Most zones a message visits: the one its sender believed owns the entity, then as
/// many forwards as make this many in all.
pub const MESSAGE_HOPS_MAX: u8 = 3;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct MessagesHeader {
    /// The sending zone.
    pub source_zone: U32Le,
    /// The receiving zone.
    pub target_zone: U32Le,
    /// Number of [`GameMessage`]s that follow.
    pub count: U16Le,
    pub reserved: U16Le,
}

const _: () = assert!(core::mem::size_of::<MessagesHeader>() == 12);

/// One message to an entity.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct GameMessage {
    /// The entity it is for.
    pub to: U64Le,
    /// The entity it is from, as the sending game named it (0: none).
    pub from: U64Le,
    /// The zone whose game sent it, that zone's run, and the message's number in the run
    /// (from 0): together, the message's name.
    pub origin_zone: U32Le,
    pub origin_incarnation: U32Le,
    pub seq: U64Le,
    /// That zone's tick when its game sent it.
    pub sent_tick: U64Le,
    /// Zones it was sent to so far, this one included (1 to [`MESSAGE_HOPS_MAX`]).
    pub hops: u8,
    /// Bytes of `bytes` that are the payload (at most [`GAME_MESSAGE_MAX`]).
    pub len: u8,
    pub reserved: [u8; 2],
    pub bytes: [u8; GAME_MESSAGE_MAX],
}

const _: () = assert!(core::mem::size_of::<GameMessage>() == 68);

impl GameMessage {
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(GAME_MESSAGE_MAX)]
    }
}

/// Fixed bytes before the messages.
pub const MESSAGES_FIXED_SIZE: usize = Header::SIZE + core::mem::size_of::<MessagesHeader>();

/// The most messages one MESSAGES packet of at most `datagram_size` bytes holds.
pub const fn messages_per_packet(datagram_size: usize) -> usize {
    (datagram_size - MESSAGES_FIXED_SIZE) / core::mem::size_of::<GameMessage>()
}

const _: () = assert!(messages_per_packet(1200) == 17);

/// Parses a MESSAGES packet. A message whose `len` exceeds [`GAME_MESSAGE_MAX`] or whose
/// `hops` is 0 or past [`MESSAGE_HOPS_MAX`] is an error for the whole packet.
pub fn parse_messages(bytes: &[u8]) -> Result<(&MessagesHeader, &[GameMessage]), ParseError> {
    let kind = Header::parse(bytes)?;
    if kind != Kind::Messages {
        return Err(ParseError::WrongKind);
    }
    let Some(head) = bytes.get(Header::SIZE..MESSAGES_FIXED_SIZE) else {
        return Err(ParseError::Truncated);
    };
    let head: &MessagesHeader = bytemuck::from_bytes(head);
    let body = &bytes[MESSAGES_FIXED_SIZE..];
    if body.len() != usize::from(head.count.get()) * core::mem::size_of::<GameMessage>() {
        return Err(ParseError::BadCount);
    }
    let messages: &[GameMessage] =
        bytemuck::try_cast_slice(body).map_err(|_| ParseError::BadCount)?;
    let bad = |m: &GameMessage| {
        usize::from(m.len) > GAME_MESSAGE_MAX || m.hops == 0 || m.hops > MESSAGE_HOPS_MAX
    };
    if messages.iter().any(bad) {
        return Err(ParseError::BadField);
    }
    Ok((head, messages))
}

/// Writes a MESSAGES packet into `out`; returns its length, or `None` if it does not fit.
pub fn write_messages(
    out: &mut [u8],
    (source, target): (u32, u32),
    messages: &[GameMessage],
) -> Option<usize> {
    let length = MESSAGES_FIXED_SIZE + core::mem::size_of_val(messages);
    let length_u16 = u16::try_from(length).ok()?;
    let count = u16::try_from(messages.len()).ok()?;
    let out = out.get_mut(..length)?;
    let head = MessagesHeader {
        source_zone: U32Le::new(source),
        target_zone: U32Le::new(target),
        count: U16Le::new(count),
        reserved: U16Le::new(0),
    };
    out[..Header::SIZE]
        .copy_from_slice(bytemuck::bytes_of(&Header::new(Kind::Messages, length_u16)));
    out[Header::SIZE..MESSAGES_FIXED_SIZE].copy_from_slice(bytemuck::bytes_of(&head));
    out[MESSAGES_FIXED_SIZE..].copy_from_slice(bytemuck::cast_slice(messages));
    Some(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: u64, payload: &[u8]) -> GameMessage {
        let mut m = GameMessage {
            to: U64Le::new(to),
            from: U64Le::new(7),
            origin_zone: U32Le::new(1),
            origin_incarnation: U32Le::new(3),
            seq: U64Le::new(to),
            sent_tick: U64Le::new(99),
            hops: 1,
            len: payload.len() as u8,
            reserved: [0; 2],
            bytes: [0; GAME_MESSAGE_MAX],
        };
        m.bytes[..payload.len()].copy_from_slice(payload);
        m
    }

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 1200];
        let messages = [message(5, b"hit 12"), message(6, b"")];
        let len = write_messages(&mut buf, (1, 2), &messages).unwrap();
        let (h, m) = parse_messages(&buf[..len]).unwrap();
        assert_eq!((h.source_zone.get(), h.target_zone.get()), (1, 2));
        assert_eq!(m, &messages);
        assert_eq!(m[0].payload(), b"hit 12");
    }

    #[test]
    fn rejects_bad_fields_and_counts() {
        let mut buf = [0u8; 1200];
        for bad in [
            GameMessage {
                len: GAME_MESSAGE_MAX as u8 + 1,
                ..message(5, b"")
            },
            GameMessage {
                hops: 0,
                ..message(5, b"")
            },
            GameMessage {
                hops: MESSAGE_HOPS_MAX + 1,
                ..message(5, b"")
            },
        ] {
            let len = write_messages(&mut buf, (1, 2), &[bad]).unwrap();
            assert_eq!(parse_messages(&buf[..len]), Err(ParseError::BadField));
        }
        let len = write_messages(&mut buf, (1, 2), &[message(5, b"x")]).unwrap();
        assert!(parse_messages(&buf[..len - 1]).is_err());
        // A count that claims more messages than follow.
        buf[Header::SIZE + 8] = 2;
        assert_eq!(parse_messages(&buf[..len]), Err(ParseError::BadCount));
    }

    #[test]
    fn a_full_packet_fits() {
        let mut buf = [0u8; 1200];
        let messages = [message(1, b"x"); messages_per_packet(1200)];
        assert!(write_messages(&mut buf, (1, 2), &messages).is_some_and(|n| n <= 1200));
    }
}
