//! The wire forms of OFFER and COMMIT: as long as what they carry.
//!
//! In memory, in the log and in checkpoints an [`Offer`] and a [`Commit`] are fixed
//! layouts with room for the largest game record (64 bytes) and, in COMMIT, the largest
//! event backlog (8 events). On the wire most of that is zeros — an NPC has no events and a
//! game's record is usually shorter — so a zone sends them compact:
//!
//! | message | wire layout | bytes |
//! |---|---|---:|
//! | OFFER  | header · transfer · tick · state core · record | 72 + r |
//! | COMMIT | header · transfer · tick · state core · session binding · backlog · record | 203 + 29·e + r |
//!
//! The backlog ([`EventBacklog`]) is not part of the fixed [`Commit`]: the sending zone
//! keeps it beside its tombstone, the receiving zone gives it to the avatar's session.
//!
//! *state core*: the [`EntityState`] without its state field (28 bytes); *backlog*:
//! `next_seq u32 · count u8` and `count` (= e) events of 29 bytes; *record*: the state
//! field without its trailing zero bytes (r ≤ 64) — the receiver zero-pads it, which
//! gives back the same 64 bytes. The header's length is the datagram's. A message in this
//! form decodes to the fixed layout, checked as that layout is ([`crate::parse`]).

use bytemuck::Zeroable;

use crate::handoff::{
    Commit, EntityState, EventBacklog, GameEvent, Offer, STATE_SIZE, SessionBinding,
};
use crate::{Header, Kind, Packet, ParseError};

/// Bytes of an [`EntityState`] before its state field.
const CORE: usize = core::mem::size_of::<EntityState>() - STATE_SIZE;
/// Bytes of an OFFER before the record.
pub const OFFER_FIXED: usize = core::mem::size_of::<Offer>() - STATE_SIZE;
/// Where a COMMIT's session binding starts, and where its backlog starts.
pub const COMMIT_SESSION_AT: usize = OFFER_FIXED;
const BACKLOG_AT: usize = COMMIT_SESSION_AT + core::mem::size_of::<SessionBinding>();
/// Bytes of a COMMIT with no events and an empty record.
pub const COMMIT_FIXED: usize = BACKLOG_AT + 5;
/// The longest wire form of either (a COMMIT with 8 events and a full record).
pub const WIRE_MAX: usize = COMMIT_FIXED + 8 * core::mem::size_of::<GameEvent>() + STATE_SIZE;

const _: () = assert!(CORE == 28 && OFFER_FIXED == 72 && COMMIT_FIXED == 203);
const EVENT: usize = core::mem::size_of::<GameEvent>();

/// The state field without its trailing zeros.
fn record(state: &EntityState) -> &[u8] {
    let len = state
        .payload
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1);
    &state.payload[..len]
}

fn header(out: &mut [u8], kind: Kind, length: usize) {
    let head = Header::new(kind, length as u16);
    out[..Header::SIZE].copy_from_slice(bytemuck::bytes_of(&head));
}

/// Writes `offer` in its wire form into `out` (at least [`WIRE_MAX`] bytes); returns the
/// length.
pub fn encode_offer(offer: &Offer, out: &mut [u8]) -> usize {
    let bytes = bytemuck::bytes_of(offer);
    let record = record(&offer.state);
    out[..OFFER_FIXED].copy_from_slice(&bytes[..OFFER_FIXED]);
    out[OFFER_FIXED..OFFER_FIXED + record.len()].copy_from_slice(record);
    let length = OFFER_FIXED + record.len();
    header(out, Kind::Offer, length);
    length
}

/// Reads an OFFER's wire form into the fixed layout and checks it.
pub fn decode_offer(bytes: &[u8]) -> Result<Offer, ParseError> {
    if Header::parse(bytes)? != Kind::Offer {
        return Err(ParseError::WrongKind);
    }
    let Some(record) = bytes.get(OFFER_FIXED..) else {
        return Err(ParseError::Truncated);
    };
    if record.len() > STATE_SIZE {
        return Err(ParseError::BadLength);
    }
    let mut offer = Offer::zeroed();
    let full = bytemuck::bytes_of_mut(&mut offer);
    full[..OFFER_FIXED].copy_from_slice(&bytes[..OFFER_FIXED]);
    full[OFFER_FIXED..OFFER_FIXED + record.len()].copy_from_slice(record);
    offer.header = crate::header_for::<Offer>();
    offer.validate_body()?;
    Ok(offer)
}

/// Writes `commit` with the session's `events` in its wire form into `out` (at least
/// [`WIRE_MAX`] bytes); returns the length.
pub fn encode_commit(commit: &Commit, events: &EventBacklog, out: &mut [u8]) -> usize {
    let bytes = bytemuck::bytes_of(commit);
    // Header, transfer, tick and the state core are the fixed layout's first bytes.
    out[..OFFER_FIXED].copy_from_slice(&bytes[..OFFER_FIXED]);
    out[COMMIT_SESSION_AT..BACKLOG_AT].copy_from_slice(bytemuck::bytes_of(&commit.session));
    out[BACKLOG_AT..BACKLOG_AT + 4].copy_from_slice(&events.next_seq.get().to_le_bytes());
    let events = events.pending();
    out[BACKLOG_AT + 4] = events.len() as u8;
    let mut at = COMMIT_FIXED;
    out[at..at + events.len() * EVENT].copy_from_slice(bytemuck::cast_slice(events));
    at += events.len() * EVENT;
    let record = record(&commit.state);
    out[at..at + record.len()].copy_from_slice(record);
    at += record.len();
    header(out, Kind::Commit, at);
    at
}

/// Reads a COMMIT's wire form into the fixed layout and its event backlog, and checks
/// both.
pub fn decode_commit(bytes: &[u8]) -> Result<(Commit, EventBacklog), ParseError> {
    if Header::parse(bytes)? != Kind::Commit {
        return Err(ParseError::WrongKind);
    }
    if bytes.len() < COMMIT_FIXED {
        return Err(ParseError::Truncated);
    }
    let mut commit = Commit::zeroed();
    {
        let full = bytemuck::bytes_of_mut(&mut commit);
        full[..OFFER_FIXED].copy_from_slice(&bytes[..OFFER_FIXED]);
    }
    commit.session = bytemuck::pod_read_unaligned(&bytes[COMMIT_SESSION_AT..BACKLOG_AT]);
    let mut backlog = EventBacklog::zeroed();
    backlog.next_seq = bytemuck::pod_read_unaligned(&bytes[BACKLOG_AT..BACKLOG_AT + 4]);
    backlog.count = bytes[BACKLOG_AT + 4];
    let count = usize::from(backlog.count);
    if count > backlog.events.len() {
        return Err(ParseError::BadCount);
    }
    let Some(events) = bytes.get(COMMIT_FIXED..COMMIT_FIXED + count * EVENT) else {
        return Err(ParseError::Truncated);
    };
    bytemuck::cast_slice_mut::<GameEvent, u8>(&mut backlog.events[..count]).copy_from_slice(events);
    let record = &bytes[COMMIT_FIXED + count * EVENT..];
    if record.len() > STATE_SIZE {
        return Err(ParseError::BadLength);
    }
    commit.state.payload[..record.len()].copy_from_slice(record);
    commit.header = crate::header_for::<Commit>();
    commit.validate_body()?;
    backlog.validate()?;
    Ok((commit, backlog))
}

/// The session binding inside a COMMIT's wire form, to rewrite in place (a node seals
/// the session key when the COMMIT crosses to another node). `None` if the datagram is
/// not a COMMIT long enough to hold one.
pub fn commit_session_mut(datagram: &mut [u8]) -> Option<&mut SessionBinding> {
    if Header::parse(datagram).ok()? != Kind::Commit || datagram.len() < COMMIT_FIXED {
        return None;
    }
    bytemuck::try_from_bytes_mut(&mut datagram[COMMIT_SESSION_AT..BACKLOG_AT]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{GAME_EVENT_MAX, Transfer};
    use crate::{F32Le, U32Le, U64Le};

    fn commit(events: usize, record: &[u8]) -> (Commit, EventBacklog) {
        let transfer = Transfer {
            entity_id: U64Le::new(9),
            epoch: U32Le::new(2),
            source_zone: U32Le::new(0),
            target_zone: U32Le::new(1),
            transfer_id: U64Le::new(5),
        };
        let mut state = EntityState::zeroed();
        state.position = [F32Le::new(1.5); 3];
        state.speed_mps_max = F32Le::new(3.0);
        state.payload[..record.len()].copy_from_slice(record);
        let mut session = SessionBinding::zeroed();
        session.session_id = U64Le::new(44);
        let c = Commit::new(transfer, 7, state, session);
        let mut b = EventBacklog::zeroed();
        b.next_seq = U32Le::new(10 + events as u32);
        b.count = events as u8;
        for k in 0..events {
            b.events[k] = GameEvent {
                seq: U32Le::new(10 + k as u32),
                len: 3,
                bytes: [k as u8 + 1; GAME_EVENT_MAX],
            };
        }
        (c, b)
    }

    #[test]
    fn the_wire_forms_are_as_long_as_what_they_carry_and_decode_to_the_fixed_layout() {
        let mut out = [0u8; WIRE_MAX];
        for (events, record) in [
            (0, &[][..]),
            (0, &[1, 2, 0, 3, 0, 0][..]),
            (8, &[7; 64][..]),
        ] {
            let (c, b) = commit(events, record);
            let n = encode_commit(&c, &b, &mut out);
            let trimmed = record.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            assert_eq!(n, COMMIT_FIXED + events * EVENT + trimmed);
            assert_eq!(decode_commit(&out[..n]), Ok((c, b)));
            assert_eq!(
                commit_session_mut(&mut out[..n]).unwrap().session_id.get(),
                44
            );
            for cut in 0..COMMIT_FIXED + events * EVENT {
                assert!(decode_commit(&out[..cut]).is_err(), "cut at {cut}");
            }
            let offer = Offer::new(c.transfer, 7, c.state);
            let n = encode_offer(&offer, &mut out);
            assert_eq!(n, OFFER_FIXED + trimmed);
            assert_eq!(decode_offer(&out[..n]), Ok(offer));
        }
        let (c, b) = commit(0, &[]);
        assert_eq!(encode_commit(&c, &b, &mut out), 203);
        // A record longer than a state field, a backlog that is not consecutive.
        let (c, b) = commit(0, &[5; 64]);
        let n = encode_commit(&c, &b, &mut out);
        let mut long = out[..n].to_vec();
        long.push(1);
        long[6..8].copy_from_slice(&((n + 1) as u16).to_le_bytes());
        assert_eq!(decode_commit(&long), Err(ParseError::BadLength));
        let (c, mut bad) = commit(2, &[]);
        bad.events[1].seq = U32Le::new(99);
        let n = encode_commit(&c, &bad, &mut out);
        assert_eq!(decode_commit(&out[..n]), Err(ParseError::BadField));
    }
}
