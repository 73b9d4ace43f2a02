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
//! | [`MessagesHeader`]    | 16     |
//! | [`GameMessage`] × n   | 68 × n |
//! | [`MessageAck`] × a    | 24 × a |
//!
//! A message is named by its origin: the zone, its run (incarnation) and a number the
//! run counts up from 0. A zone that receives a message again with no more hops than
//! before (a copy the network made, or a resend) drops it. Each hop is acknowledged: the
//! receiving zone names every message it received — new, copy or too old — in the acks
//! of its next MESSAGES packet back, and the sending zone sends the message again until
//! it hears so (a packet may carry acks alone). Each packet names the run of the
//! receiving zone its messages were first sent to: a zone restarted (or taken over) since
//! forgot which messages it took, so it drops those addressed to an older run of itself
//! rather than take a resend of one its old run took.

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
    /// Number of [`MessageAck`]s after them.
    pub acks: U16Le,
    /// The run (incarnation) of the receiving zone these messages were first sent to, as
    /// the sender knew it then.
    pub target_incarnation: U32Le,
}

const _: () = assert!(core::mem::size_of::<MessagesHeader>() == 16);

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

    /// The acknowledgement of this message as it arrived (with its hops).
    pub fn ack(&self) -> MessageAck {
        MessageAck {
            origin_zone: self.origin_zone,
            origin_incarnation: self.origin_incarnation,
            seq: self.seq,
            hops: self.hops,
            reserved: [0; 7],
        }
    }
}

/// A message received, as the receiving zone names it back to the zone that sent it: its
/// name and the hops it came with (a message forwarded back to a zone it passed is another
/// hop, acknowledged on its own).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct MessageAck {
    pub origin_zone: U32Le,
    pub origin_incarnation: U32Le,
    pub seq: U64Le,
    pub hops: u8,
    pub reserved: [u8; 7],
}

const _: () = assert!(core::mem::size_of::<MessageAck>() == 24);

/// Fixed bytes before the messages.
pub const MESSAGES_FIXED_SIZE: usize = Header::SIZE + core::mem::size_of::<MessagesHeader>();

/// The most messages one MESSAGES packet of at most `datagram_size` bytes holds.
pub const fn messages_per_packet(datagram_size: usize) -> usize {
    (datagram_size - MESSAGES_FIXED_SIZE) / core::mem::size_of::<GameMessage>()
}

const _: () = assert!(messages_per_packet(1200) == 17);

/// The most acks one MESSAGES packet of at most `datagram_size` bytes holds beside
/// `messages` messages.
pub const fn acks_per_packet(datagram_size: usize, messages: usize) -> usize {
    (datagram_size - MESSAGES_FIXED_SIZE - messages * core::mem::size_of::<GameMessage>())
        / core::mem::size_of::<MessageAck>()
}

const _: () = assert!(acks_per_packet(1200, 0) == 49);

/// A MESSAGES packet's parts.
pub type Messages<'a> = (&'a MessagesHeader, &'a [GameMessage], &'a [MessageAck]);

/// Parses a MESSAGES packet. A message whose `len` exceeds [`GAME_MESSAGE_MAX`] or whose
/// `hops` is 0 or past [`MESSAGE_HOPS_MAX`] is an error for the whole packet, and so is
/// an ack whose `hops` is.
pub fn parse_messages(bytes: &[u8]) -> Result<Messages<'_>, ParseError> {
    let kind = Header::parse(bytes)?;
    if kind != Kind::Messages {
        return Err(ParseError::WrongKind);
    }
    let Some(head) = bytes.get(Header::SIZE..MESSAGES_FIXED_SIZE) else {
        return Err(ParseError::Truncated);
    };
    let head: &MessagesHeader = bytemuck::from_bytes(head);
    let body = &bytes[MESSAGES_FIXED_SIZE..];
    let split = usize::from(head.count.get()) * core::mem::size_of::<GameMessage>();
    let acks_len = usize::from(head.acks.get()) * core::mem::size_of::<MessageAck>();
    if body.len() != split + acks_len {
        return Err(ParseError::BadCount);
    }
    let (messages, acks) = body.split_at(split);
    let messages: &[GameMessage] =
        bytemuck::try_cast_slice(messages).map_err(|_| ParseError::BadCount)?;
    let acks: &[MessageAck] = bytemuck::try_cast_slice(acks).map_err(|_| ParseError::BadCount)?;
    let hops = |hops: u8| (1..=MESSAGE_HOPS_MAX).contains(&hops);
    let bad = |m: &GameMessage| usize::from(m.len) > GAME_MESSAGE_MAX || !hops(m.hops);
    if messages.iter().any(bad) || acks.iter().any(|a| !hops(a.hops)) {
        return Err(ParseError::BadField);
    }
    Ok((head, messages, acks))
}

/// Writes a MESSAGES packet into `out`; returns its length, or `None` if it does not fit.
pub fn write_messages(
    out: &mut [u8],
    (source, target, target_incarnation): (u32, u32, u32),
    messages: &[GameMessage],
    acks: &[MessageAck],
) -> Option<usize> {
    let split = MESSAGES_FIXED_SIZE + core::mem::size_of_val(messages);
    let length = split + core::mem::size_of_val(acks);
    let length_u16 = u16::try_from(length).ok()?;
    let out = out.get_mut(..length)?;
    let head = MessagesHeader {
        source_zone: U32Le::new(source),
        target_zone: U32Le::new(target),
        count: U16Le::new(u16::try_from(messages.len()).ok()?),
        acks: U16Le::new(u16::try_from(acks.len()).ok()?),
        target_incarnation: U32Le::new(target_incarnation),
    };
    out[..Header::SIZE]
        .copy_from_slice(bytemuck::bytes_of(&Header::new(Kind::Messages, length_u16)));
    out[Header::SIZE..MESSAGES_FIXED_SIZE].copy_from_slice(bytemuck::bytes_of(&head));
    out[MESSAGES_FIXED_SIZE..split].copy_from_slice(bytemuck::cast_slice(messages));
    out[split..].copy_from_slice(bytemuck::cast_slice(acks));
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
        let acks = [message(9, b"").ack()];
        let len = write_messages(&mut buf, (1, 2, 5), &messages, &acks).unwrap();
        let (h, m, a) = parse_messages(&buf[..len]).unwrap();
        assert_eq!((h.source_zone.get(), h.target_zone.get()), (1, 2));
        assert_eq!(h.target_incarnation.get(), 5);
        assert_eq!((m, a), (&messages[..], &acks[..]));
        assert_eq!(m[0].payload(), b"hit 12");
        assert_eq!((a[0].seq.get(), a[0].hops), (9, 1));
        // Acks alone.
        let len = write_messages(&mut buf, (1, 2, 5), &[], &acks).unwrap();
        assert_eq!(parse_messages(&buf[..len]).unwrap().2, &acks);
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
            let len = write_messages(&mut buf, (1, 2, 5), &[bad], &[]).unwrap();
            assert_eq!(parse_messages(&buf[..len]), Err(ParseError::BadField));
            // An ack's hops are held to the same range (its message's length is not in it).
            let len = write_messages(&mut buf, (1, 2, 5), &[], &[bad.ack()]).unwrap();
            let parsed = parse_messages(&buf[..len]).map(|p| p.2.len());
            let expect = if bad.hops == 1 {
                Ok(1)
            } else {
                Err(ParseError::BadField)
            };
            assert_eq!(parsed, expect);
        }
        let len = write_messages(&mut buf, (1, 2, 5), &[message(5, b"x")], &[]).unwrap();
        assert!(parse_messages(&buf[..len - 1]).is_err());
        // A count that claims more messages than follow.
        buf[Header::SIZE + 8] = 2;
        assert_eq!(parse_messages(&buf[..len]), Err(ParseError::BadCount));
    }

    #[test]
    fn a_full_packet_fits() {
        let mut buf = [0u8; 1200];
        let messages = [message(1, b"x"); messages_per_packet(1200)];
        let acks = [message(1, b"").ack(); acks_per_packet(1200, messages_per_packet(1200))];
        assert!(write_messages(&mut buf, (1, 2, 5), &messages, &acks).is_some_and(|n| n <= 1200));
        let acks = [message(1, b"").ack(); acks_per_packet(1200, 0)];
        assert!(write_messages(&mut buf, (1, 2, 5), &[], &acks).is_some_and(|n| n <= 1200));
    }
}
