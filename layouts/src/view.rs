//! VIEW: a client's replication state, sent by the zone that hands the client's avatar
//! away to the zone that receives it, so the receiver's first snapshot is a delta against
//! a snapshot the client already holds (docs/protocol.md, "Continuity at handoff").
//!
//! | part             | bytes            |
//! |------------------|------------------|
//! | [`Header`]       | 8                |
//! | [`ViewHeader`]   | 128              |
//! | chunk            | ≤ [`VIEW_CHUNK_MAX`] |
//!
//! The state is one byte stream of `stream_len` bytes cut into chunks of
//! [`VIEW_CHUNK_MAX`] (the last one shorter); each datagram carries the chunk at `offset`.
//! The receiver uses the stream once every chunk arrived; a VIEW that never completes
//! costs continuity (the client gets a full snapshot), never correctness. The stream:
//!
//! ```text
//! members := count:varint (id-gap:varint flags:u8)×count      interest set, by id
//! records := count:varint entries                             the baseline's records:
//!                                                             delta entries against nothing
//! ```
//!
//! A member's `flags` byte is its priority (bits 0–6) and, in bit 7, whether the sender's
//! newest snapshot showed it: the receiver offers those first while the budget is short
//! and the client's acknowledgements lag, so nothing the client was just shown blinks out.
//!
//! The header also carries the inputs the sender had buffered and not yet played (every
//! chunk the same ones): the receiver plays them at their ticks instead of losing them
//! with the handoff. They do not wait for the stream: they are taken as soon as a chunk
//! and the session are both there.

use bytemuck::{Pod, Zeroable};

use crate::client::InputEntry;
use crate::{F32Le, Header, I32Le, Kind, ParseError, U16Le, U32Le, U64Le};

/// Inputs a VIEW carries at most (a zone buffers no more than this many per session).
pub const VIEW_INPUTS_MAX: usize = 8;

/// A [`ViewHeader::flags`] bit: no snapshot of the sender's view was whole yet (a new
/// run's, or a session's first; they were flagged partial), so the client may still draw
/// the scene it had before over it.
pub const VIEW_DRAWN_OVER: u8 = 1;

/// A [`ViewHeader::flags`] bit: the sender's last interest search did not find the whole
/// view (its zone's run did not hold its peers' ghosts yet, or the search held newcomers
/// back): the receiver searches again as soon as its own run is settled, as the sender
/// would have, instead of following the carried members.
pub const VIEW_SEARCH_AGAIN: u8 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ViewHeader {
    /// The session, as its binding names it, and its secret.
    pub session_id: U64Le,
    pub session_secret: U64Le,
    /// The snapshot the client acknowledged, as (zone, tick): the baseline the stream's
    /// records are. Not zero.
    pub baseline_tick: U32Le,
    pub baseline_zone: U32Le,
    /// The client's byte budget (a token bucket; may be negative).
    pub budget_bytes: I32Le,
    /// How far the client's last interest search reached, in metres (finite, ≥ 0).
    pub reach_m: F32Le,
    /// Where that search was made (finite): the receiver follows the members from there
    /// until the client moves or its next search is due, as the sender would have.
    pub search_x: F32Le,
    pub search_y: F32Le,
    pub stream_len: U16Le,
    /// Where this datagram's chunk starts: a multiple of [`VIEW_CHUNK_MAX`].
    pub offset: U16Le,
    /// How many of `inputs` are the client's (≤ [`VIEW_INPUTS_MAX`]).
    pub input_count: u8,
    /// [`VIEW_DRAWN_OVER`], [`VIEW_SEARCH_AGAIN`]; other bits are ignored (a sender before
    /// session 54 wrote 0).
    pub flags: u8,
    pub reserved: [u8; 2],
    /// Inputs the sender had received and not played, in any order; the rest zero.
    pub inputs: [InputEntry; VIEW_INPUTS_MAX],
}

const _: () = assert!(core::mem::size_of::<ViewHeader>() == 128);

/// Fixed bytes before the chunk.
pub const VIEW_FIXED_SIZE: usize = Header::SIZE + core::mem::size_of::<ViewHeader>();

/// Bytes of every chunk but the last (a VIEW is at most 1,200 bytes).
pub const VIEW_CHUNK_MAX: usize = 1200 - VIEW_FIXED_SIZE;

/// Chunks of one stream at most.
pub const VIEW_CHUNKS_MAX: usize = 16;

/// The longest stream.
pub const VIEW_STREAM_MAX: usize = VIEW_CHUNKS_MAX * VIEW_CHUNK_MAX;

const _: () = assert!(VIEW_STREAM_MAX <= u16::MAX as usize);

/// Parses a VIEW datagram: returns its header and its chunk. The chunk must be where the
/// header says and exactly as long as a chunk there is; the radius must be finite and
/// ≥ 0, the search position finite, the baseline tick not zero and at most
/// [`VIEW_INPUTS_MAX`] inputs.
pub fn parse_view(bytes: &[u8]) -> Result<(&ViewHeader, &[u8]), ParseError> {
    let kind = Header::parse(bytes)?;
    if kind != Kind::View {
        return Err(ParseError::WrongKind);
    }
    let Some(head) = bytes.get(Header::SIZE..VIEW_FIXED_SIZE) else {
        return Err(ParseError::Truncated);
    };
    let head: &ViewHeader = bytemuck::from_bytes(head);
    let chunk = &bytes[VIEW_FIXED_SIZE..];
    let (len, offset) = (
        usize::from(head.stream_len.get()),
        usize::from(head.offset.get()),
    );
    if len == 0 || len > VIEW_STREAM_MAX || offset >= len || !offset.is_multiple_of(VIEW_CHUNK_MAX)
    {
        return Err(ParseError::BadField);
    }
    if chunk.len() != (len - offset).min(VIEW_CHUNK_MAX) {
        return Err(ParseError::BadLength);
    }
    let reach = head.reach_m.get();
    if !reach.is_finite() || reach < 0.0 || head.baseline_tick.get() == 0 {
        return Err(ParseError::BadField);
    }
    if !head.search_x.get().is_finite() || !head.search_y.get().is_finite() {
        return Err(ParseError::BadField);
    }
    if usize::from(head.input_count) > VIEW_INPUTS_MAX {
        return Err(ParseError::BadField);
    }
    Ok((head, chunk))
}

/// Writes the VIEW datagram of the chunk at `offset` of `stream` into `out` (at least
/// 1,200 bytes); returns its length, or `None` if the stream is empty or too long or the
/// offset is not a chunk's.
pub fn write_view(
    out: &mut [u8],
    head: &ViewHeader,
    stream: &[u8],
    offset: usize,
) -> Option<usize> {
    if stream.is_empty() || stream.len() > VIEW_STREAM_MAX || offset >= stream.len() {
        return None;
    }
    if !offset.is_multiple_of(VIEW_CHUNK_MAX) {
        return None;
    }
    let chunk = &stream[offset..stream.len().min(offset + VIEW_CHUNK_MAX)];
    let length = VIEW_FIXED_SIZE + chunk.len();
    let out = out.get_mut(..length)?;
    out[..Header::SIZE]
        .copy_from_slice(bytemuck::bytes_of(&Header::new(Kind::View, length as u16)));
    let mut head = *head;
    head.stream_len = U16Le::new(stream.len() as u16);
    head.offset = U16Le::new(offset as u16);
    out[Header::SIZE..VIEW_FIXED_SIZE].copy_from_slice(bytemuck::bytes_of(&head));
    out[VIEW_FIXED_SIZE..].copy_from_slice(chunk);
    Some(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> ViewHeader {
        ViewHeader {
            session_id: U64Le::new(5),
            session_secret: U64Le::new(6),
            baseline_tick: U32Le::new(100),
            baseline_zone: U32Le::new(1),
            budget_bytes: I32Le::new(-20),
            reach_m: F32Le::new(30.0),
            search_x: F32Le::new(10.0),
            search_y: F32Le::new(-4.5),
            stream_len: U16Le::new(0),
            offset: U16Le::new(0),
            input_count: 0,
            flags: 0,
            reserved: [0; 2],
            inputs: [InputEntry::zeroed(); VIEW_INPUTS_MAX],
        }
    }

    #[test]
    fn chunks_round_trip_and_cover_the_stream() {
        let mut stream = [0u8; 3000];
        for (i, b) in stream.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut buf = [0u8; 1200];
        let mut back = [0u8; 3000];
        for offset in (0..stream.len()).step_by(VIEW_CHUNK_MAX) {
            let n = write_view(&mut buf, &head(), &stream, offset).unwrap();
            assert!(n <= 1200);
            let (h, chunk) = parse_view(&buf[..n]).unwrap();
            assert_eq!(usize::from(h.offset.get()), offset);
            assert_eq!(usize::from(h.stream_len.get()), stream.len());
            back[offset..offset + chunk.len()].copy_from_slice(chunk);
        }
        assert_eq!(back, stream);
    }

    #[test]
    fn rejects_misplaced_chunks_and_bad_fields() {
        let stream = [7u8; 2000];
        let mut buf = [0u8; 1200];
        assert!(write_view(&mut buf, &head(), &stream, 5).is_none());
        assert!(write_view(&mut buf, &head(), &[], 0).is_none());
        assert!(write_view(&mut buf, &head(), &[0; VIEW_STREAM_MAX + 1], 0).is_none());
        let n = write_view(&mut buf, &head(), &stream, 0).unwrap();
        // A chunk one byte short: the header's length disagrees, or the chunk does.
        assert!(parse_view(&buf[..n - 1]).is_err());
        // An offset that is not a chunk's.
        let mut bad = buf;
        bad[Header::SIZE + 42] = 1;
        assert_eq!(parse_view(&bad[..n]), Err(ParseError::BadField));
        // A stream longer than the most chunks.
        let mut bad = buf;
        bad[Header::SIZE + 40..Header::SIZE + 42]
            .copy_from_slice(&((VIEW_STREAM_MAX + 1) as u16).to_le_bytes());
        assert_eq!(parse_view(&bad[..n]), Err(ParseError::BadField));
        let bad_fields = [
            (f32::NAN, 1, 0.0),
            (-1.0, 1, 0.0),
            (f32::INFINITY, 1, 0.0),
            (1.0, 0, 0.0),
            (1.0, 1, f32::NAN),
            (1.0, 1, f32::NEG_INFINITY),
        ];
        for (reach, tick, at) in bad_fields {
            let h = ViewHeader {
                reach_m: F32Le::new(reach),
                baseline_tick: U32Le::new(tick),
                search_y: F32Le::new(at),
                ..head()
            };
            let n = write_view(&mut buf, &h, &stream, 0).unwrap();
            assert_eq!(parse_view(&buf[..n]), Err(ParseError::BadField));
        }
    }

    #[test]
    fn carried_inputs_round_trip_and_no_more_than_the_most() {
        let stream = [7u8; 2000];
        let mut buf = [0u8; 1200];
        let mut h = head();
        h.input_count = VIEW_INPUTS_MAX as u8;
        for (i, input) in h.inputs.iter_mut().enumerate() {
            input.sequence = U32Le::new(40 + i as u32);
            input.move_x = -(i as i8);
        }
        for offset in [0, VIEW_CHUNK_MAX] {
            let n = write_view(&mut buf, &h, &stream, offset).unwrap();
            let (back, _) = parse_view(&buf[..n]).unwrap();
            assert_eq!((back.input_count, back.inputs), (h.input_count, h.inputs));
        }
        h.input_count = VIEW_INPUTS_MAX as u8 + 1;
        let n = write_view(&mut buf, &h, &stream, 0).unwrap();
        assert_eq!(parse_view(&buf[..n]), Err(ParseError::BadField));
    }
}
