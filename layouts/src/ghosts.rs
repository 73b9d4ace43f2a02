//! GHOSTS: an owner's batch of its entities inside a neighbour's aura (docs/architecture.md).
//!
//! | part               | bytes      |
//! |--------------------|------------|
//! | [`Header`]         | 8          |
//! | [`GhostsHeader`]   | 28         |
//! | [`GhostRecord`] × n | 36 × n    |
//! | game state × n     | `state_len` × n |
//!
//! Records carry full-precision state (the receiver may run queries on ghosts exactly as on
//! its own entities) and the owner's epoch, which fences stale ghost data. After them come
//! the records' game states in the same order, `state_len` bytes each: the leading bytes of
//! each entity's state slot that the owner's game declared (0 without a game).

use bytemuck::{Pod, Zeroable};

use crate::handoff::STATE_SIZE;
use crate::{F32Le, Header, Kind, ParseError, U16Le, U32Le, U64Le};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct GhostsHeader {
    /// The owning zone.
    pub source_zone: U32Le,
    /// The owner's tick when the batch was taken.
    pub tick: U64Le,
    /// Number of [`GhostRecord`]s that follow.
    pub record_count: U16Le,
    /// Bytes of game state per record, after the records; at most [`STATE_SIZE`].
    pub state_len: U16Le,
    /// The newest WATCH of the receiving zone's run that the batch's watched records
    /// answer: its tick (0: none heard) …
    pub answers_tick: U64Le,
    /// … and that run (incarnation), as the sender knows it. A new run of the receiver
    /// counts its ticks from its restore, so the tick alone could name an old run's WATCH.
    pub answers_run: U32Le,
}

const _: () = assert!(core::mem::size_of::<GhostsHeader>() == 28);

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct GhostRecord {
    pub id: U64Le,
    /// The owner's epoch for this entity.
    pub epoch: U32Le,
    pub position: [F32Le; 3],
    pub velocity: [F32Le; 2],
    pub kind: U16Le,
    pub flags: U16Le,
}

const _: () = assert!(core::mem::size_of::<GhostRecord>() == 36);

/// Fixed bytes before the records.
pub const GHOSTS_FIXED_SIZE: usize = Header::SIZE + core::mem::size_of::<GhostsHeader>();

/// The most records one GHOSTS datagram of at most `datagram_size` bytes holds, with
/// `state_len` bytes of game state each.
pub const fn records_per_datagram(datagram_size: usize, state_len: usize) -> usize {
    (datagram_size - GHOSTS_FIXED_SIZE) / (core::mem::size_of::<GhostRecord>() + state_len)
}

const _: () = assert!(records_per_datagram(1200, 0) == 32);
const _: () = assert!(records_per_datagram(1200, STATE_SIZE) >= 11);

/// One GHOSTS datagram, parsed: its header, its records, and their game states
/// (`state_len` bytes each, in record order).
pub type Ghosts<'a> = (&'a GhostsHeader, &'a [GhostRecord], &'a [u8]);

/// Parses a GHOSTS datagram. Records with non-finite floats are an error for the whole
/// datagram: an owner never sends them, so the datagram is not from a correct owner.
pub fn parse_ghosts(bytes: &[u8]) -> Result<Ghosts<'_>, ParseError> {
    let kind = Header::parse(bytes)?;
    if kind != Kind::Ghosts {
        return Err(ParseError::WrongKind);
    }
    let Some(head) = bytes.get(Header::SIZE..GHOSTS_FIXED_SIZE) else {
        return Err(ParseError::Truncated);
    };
    let head: &GhostsHeader = bytemuck::from_bytes(head);
    let state_len = usize::from(head.state_len.get());
    if state_len > STATE_SIZE {
        return Err(ParseError::BadField);
    }
    let body = &bytes[GHOSTS_FIXED_SIZE..];
    let count = usize::from(head.record_count.get());
    if body.len() != count * (core::mem::size_of::<GhostRecord>() + state_len) {
        return Err(ParseError::BadCount);
    }
    let (body, states) = body.split_at(count * core::mem::size_of::<GhostRecord>());
    let records: &[GhostRecord] =
        bytemuck::try_cast_slice(body).map_err(|_| ParseError::BadCount)?;
    for r in records {
        let floats = [
            r.position[0],
            r.position[1],
            r.position[2],
            r.velocity[0],
            r.velocity[1],
        ];
        if floats.iter().any(|f| !f.get().is_finite()) {
            return Err(ParseError::BadField);
        }
    }
    Ok((head, records, states))
}

/// Writes a GHOSTS datagram into `out`: `records`, then `states` (`head.state_len` bytes
/// per record); returns its length, or `None` if it does not fit or `states` is not
/// `state_len` bytes per record.
pub fn write_ghosts(
    out: &mut [u8],
    head: &GhostsHeader,
    records: &[GhostRecord],
    states: &[u8],
) -> Option<usize> {
    let state_len = usize::from(head.state_len.get());
    if state_len > STATE_SIZE || states.len() != records.len() * state_len {
        return None;
    }
    let length = GHOSTS_FIXED_SIZE + core::mem::size_of_val(records) + states.len();
    let length_u16 = u16::try_from(length).ok()?;
    let count = u16::try_from(records.len()).ok()?;
    let out = out.get_mut(..length)?;
    out[..Header::SIZE].copy_from_slice(bytemuck::bytes_of(&Header::new(Kind::Ghosts, length_u16)));
    let mut head = *head;
    head.record_count = U16Le::new(count);
    out[Header::SIZE..GHOSTS_FIXED_SIZE].copy_from_slice(bytemuck::bytes_of(&head));
    let (body, tail) = out[GHOSTS_FIXED_SIZE..].split_at_mut(core::mem::size_of_val(records));
    body.copy_from_slice(bytemuck::cast_slice(records));
    tail.copy_from_slice(states);
    Some(length)
}
