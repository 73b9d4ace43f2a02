//! The game's parts of a DELTA, between its fixed part and its entries
//! (docs/protocol.md, "Delta snapshots"):
//!
//! ```text
//! avatar game := mask:u8 value:varint…          the own avatar's game fields, nonzero ones
//! events      := count:u8 [first:u32le (len:u8 byte×len)×count]
//! ```
//!
//! `events` are the session's game events its client has not acknowledged, oldest first,
//! with consecutive sequences from `first`: resent in every snapshot until the client
//! acknowledges them (INPUT's `event_ack`), so they arrive once (the client drops a
//! sequence it has taken) and in order, from whichever zone holds the avatar.

use meridian_layouts::handoff::{GAME_EVENT_MAX, GAME_EVENTS_PENDING_MAX, GameEvent};

use crate::delta::{DecodeError, GAME_FIELDS, get_varint, put_varint, unzigzag, zigzag};

/// Writes the own avatar's game fields (the block after a DELTA's fixed part): a mask
/// of the nonzero ones, then each, zigzag LEB128. Returns the bytes written (at most
/// [`AVATAR_GAME_BYTES_MAX`]); `out` must be that long.
pub fn put_avatar_game(out: &mut [u8], game: &[i32; GAME_FIELDS]) -> usize {
    let mut at = 1;
    let mut mask = 0u8;
    for (k, &v) in game.iter().enumerate() {
        if v != 0 {
            mask |= 1 << k;
            put_varint(out, &mut at, zigzag(i64::from(v)));
        }
    }
    out[0] = mask;
    at
}

/// Longest avatar game block: mask + 4 fields × 5 bytes.
pub const AVATAR_GAME_BYTES_MAX: usize = 1 + GAME_FIELDS * 5;

/// Reads the own avatar's game fields from the start of `bytes`; returns them and the
/// bytes read. Never panics.
pub fn get_avatar_game(bytes: &[u8]) -> Result<([i32; GAME_FIELDS], usize), DecodeError> {
    let mask = *bytes.first().ok_or(DecodeError::Truncated)?;
    if mask >> GAME_FIELDS != 0 {
        return Err(DecodeError::Inconsistent);
    }
    let mut at = 1;
    let mut game = [0; GAME_FIELDS];
    for (k, v) in game.iter_mut().enumerate() {
        if mask & (1 << k) != 0 {
            let value = unzigzag(get_varint(bytes, &mut at)?);
            *v = i32::try_from(value).map_err(|_| DecodeError::Inconsistent)?;
        }
    }
    Ok((game, at))
}

/// Longest events block: count, first sequence, and the most events at their longest.
pub const EVENTS_BYTES_MAX: usize = 1 + 4 + GAME_EVENTS_PENDING_MAX * (1 + GAME_EVENT_MAX);

/// Writes the events block of `pending` (oldest first, consecutive sequences) into `out`
/// (at least [`EVENTS_BYTES_MAX`] long); returns its length.
pub fn put_events(out: &mut [u8], pending: &[GameEvent]) -> usize {
    let pending = &pending[..pending.len().min(GAME_EVENTS_PENDING_MAX)];
    out[0] = pending.len() as u8;
    let Some(first) = pending.first() else {
        return 1;
    };
    out[1..5].copy_from_slice(&first.seq.get().to_le_bytes());
    let mut at = 5;
    for e in pending {
        let bytes = e.bytes();
        out[at] = bytes.len() as u8;
        out[at + 1..at + 1 + bytes.len()].copy_from_slice(bytes);
        at += 1 + bytes.len();
    }
    at
}

/// A parsed events block: the first sequence and the events' bytes, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Events<'a> {
    pub first: u32,
    count: u8,
    bytes: &'a [u8],
}

impl<'a> Events<'a> {
    /// `(sequence, bytes)` of each event, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &'a [u8])> + 'a {
        let (mut at, bytes, first) = (0usize, self.bytes, self.first);
        (0..u32::from(self.count)).map(move |k| {
            let len = usize::from(bytes[at]);
            let event = &bytes[at + 1..at + 1 + len];
            at += 1 + len;
            (first.wrapping_add(k), event)
        })
    }
}

/// Reads the events block at the start of `bytes`; returns it and the bytes read. Every
/// length is checked here, so [`Events::iter`] cannot run past the block. Never panics.
pub fn get_events(bytes: &[u8]) -> Result<(Events<'_>, usize), DecodeError> {
    let count = *bytes.first().ok_or(DecodeError::Truncated)?;
    if usize::from(count) > GAME_EVENTS_PENDING_MAX {
        return Err(DecodeError::Inconsistent);
    }
    if count == 0 {
        let none = Events {
            first: 0,
            count: 0,
            bytes: &[],
        };
        return Ok((none, 1));
    }
    let first = bytes.get(1..5).ok_or(DecodeError::Truncated)?;
    let first = u32::from_le_bytes(first.try_into().expect("4 bytes"));
    let mut at = 5;
    for _ in 0..count {
        let len = usize::from(*bytes.get(at).ok_or(DecodeError::Truncated)?);
        if len > GAME_EVENT_MAX {
            return Err(DecodeError::Inconsistent);
        }
        at += 1 + len;
        if at > bytes.len() {
            return Err(DecodeError::Truncated);
        }
    }
    if first == 0 || first.checked_add(u32::from(count) - 1).is_none() {
        return Err(DecodeError::Inconsistent);
    }
    let events = Events {
        first,
        count,
        bytes: &bytes[5..at],
    };
    Ok((events, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_layouts::U32Le;

    fn event(seq: u32, text: &[u8]) -> GameEvent {
        let mut bytes = [0; GAME_EVENT_MAX];
        bytes[..text.len()].copy_from_slice(text);
        GameEvent {
            seq: U32Le::new(seq),
            len: text.len() as u8,
            bytes,
        }
    }

    #[test]
    fn the_avatar_game_block_round_trips() {
        let mut out = [0u8; AVATAR_GAME_BYTES_MAX];
        for game in [
            [0; GAME_FIELDS],
            [100, 0, -1, i32::MIN],
            [i32::MAX; GAME_FIELDS],
        ] {
            let n = put_avatar_game(&mut out, &game);
            assert_eq!(get_avatar_game(&out[..n]), Ok((game, n)));
            assert!(get_avatar_game(&out[..n - 1]).is_err() || n == 1);
        }
        assert_eq!(put_avatar_game(&mut out, &[0; GAME_FIELDS]), 1);
        assert!(get_avatar_game(&[1 << GAME_FIELDS]).is_err());
        assert!(get_avatar_game(&[]).is_err());
        // A value past i32.
        let mut at = 1;
        let mut big = [1u8; 16];
        put_varint(&mut big, &mut at, zigzag(i64::from(i32::MAX) + 1));
        assert_eq!(get_avatar_game(&big[..at]), Err(DecodeError::Inconsistent));
    }

    #[test]
    fn events_round_trip_and_bad_blocks_are_refused() {
        let mut out = [0u8; EVENTS_BYTES_MAX];
        assert_eq!(put_events(&mut out, &[]), 1);
        let (none, n) = get_events(&out[..1]).unwrap();
        assert_eq!((none.iter().count(), n), (0, 1));
        let pending = [
            event(7, b"hit"),
            event(8, b""),
            event(9, &[0xAB; GAME_EVENT_MAX]),
        ];
        let n = put_events(&mut out, &pending);
        assert_eq!(n, 1 + 4 + 4 + 1 + 1 + GAME_EVENT_MAX);
        let (events, read) = get_events(&out[..n + 3]).unwrap();
        assert_eq!(read, n);
        let got: Vec<(u32, &[u8])> = events.iter().collect();
        assert_eq!(
            got,
            vec![
                (7, &b"hit"[..]),
                (8, &b""[..]),
                (9, &[0xAB; GAME_EVENT_MAX][..])
            ]
        );
        for cut in 0..n {
            assert!(get_events(&out[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = out;
        bad[0] = GAME_EVENTS_PENDING_MAX as u8 + 1;
        assert_eq!(get_events(&bad), Err(DecodeError::Inconsistent));
        let mut bad = out;
        bad[5] = GAME_EVENT_MAX as u8 + 1;
        assert_eq!(get_events(&bad[..n]), Err(DecodeError::Inconsistent));
        let mut bad = out;
        bad[1..5].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(get_events(&bad[..n]), Err(DecodeError::Inconsistent));
        bad[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(get_events(&bad[..n]), Err(DecodeError::Inconsistent));
    }
}
