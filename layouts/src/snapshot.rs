//! Full (key-frame) snapshot: a header, then `record_count` quantised entity records.
//!
//! | part                 | bytes                 |
//! |----------------------|-----------------------|
//! | [`Header`]           | 8                     |
//! | [`SnapshotHeader`]   | 26                    |
//! | [`EntityRecord`] × n | 26 × n                |
//!
//! Records use the units of [`crate::quant`]. Delta-encoded snapshots (against a client's
//! acknowledged baseline) are a separate, variable-length format owned by the replication
//! issue; this key frame is what a client receives when it has no baseline.

use bytemuck::{Pod, Zeroable};

use crate::{Header, I16Le, I32Le, Kind, ParseError, U16Le, U32Le, U64Le};

/// Per-snapshot fields after the datagram header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SnapshotHeader {
    /// The per-session secret; a client drops server packets that do not carry it.
    pub session_secret: U64Le,
    /// The server tick this snapshot describes (wraps after 2³² ticks, ~2 years at 60 Hz).
    pub tick: U32Le,
    /// The tick of the baseline this snapshot is relative to; equal to `tick` for a key frame.
    pub baseline_tick: U32Le,
    /// The last input sequence the server applied for this client.
    pub input_sequence: U32Le,
    /// The zone that sent the snapshot.
    pub zone: U32Le,
    /// Number of [`EntityRecord`]s that follow.
    pub record_count: U16Le,
}

const _: () = assert!(core::mem::size_of::<SnapshotHeader>() == 26);

/// One entity in a snapshot, quantised.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct EntityRecord {
    /// Global entity id.
    pub id: U64Le,
    /// Position x, centimetres.
    pub x: I32Le,
    /// Position y, centimetres.
    pub y: I32Le,
    /// Height, decimetres.
    pub z: I16Le,
    /// Velocity x, centimetres per second.
    pub vx: I16Le,
    /// Velocity y, centimetres per second.
    pub vy: I16Le,
    /// Game-defined kind.
    pub kind: U16Le,
    /// Game-defined flags.
    pub flags: U16Le,
}

const _: () = assert!(core::mem::size_of::<EntityRecord>() == 26);

/// The most records one snapshot datagram can hold within 1,200 bytes.
pub const RECORDS_PER_SNAPSHOT_MAX: usize =
    (1200 - Header::SIZE - core::mem::size_of::<SnapshotHeader>())
        / core::mem::size_of::<EntityRecord>();

const _: () = assert!(RECORDS_PER_SNAPSHOT_MAX == 44);

/// Parses a snapshot datagram into its header and records, without copying.
///
/// Checks the datagram header, then that `record_count` records exactly fill the rest.
pub fn parse_snapshot(bytes: &[u8]) -> Result<(&SnapshotHeader, &[EntityRecord]), ParseError> {
    let kind = Header::parse(bytes)?;
    if kind != Kind::Snapshot {
        return Err(ParseError::WrongKind);
    }
    let fixed = Header::SIZE + core::mem::size_of::<SnapshotHeader>();
    let Some(head) = bytes.get(Header::SIZE..fixed) else {
        return Err(ParseError::Truncated);
    };
    let head: &SnapshotHeader = bytemuck::from_bytes(head);
    let count = usize::from(head.record_count.get());
    let body = &bytes[fixed..];
    if body.len() != count * core::mem::size_of::<EntityRecord>() {
        return Err(ParseError::BadCount);
    }
    let records: &[EntityRecord] =
        bytemuck::try_cast_slice(body).map_err(|_| ParseError::BadCount)?;
    Ok((head, records))
}

/// Writes a snapshot datagram into `out` and returns its length, or `None` if `out` is
/// too small or there are more records than fit a `u16` length.
pub fn write_snapshot(
    out: &mut [u8],
    head: &SnapshotHeader,
    records: &[EntityRecord],
) -> Option<usize> {
    let fixed = Header::SIZE + core::mem::size_of::<SnapshotHeader>();
    let length = fixed + core::mem::size_of_val(records);
    let length_u16 = u16::try_from(length).ok()?;
    let count = u16::try_from(records.len()).ok()?;
    let out = out.get_mut(..length)?;
    out[..Header::SIZE]
        .copy_from_slice(bytemuck::bytes_of(&Header::new(Kind::Snapshot, length_u16)));
    let mut head = *head;
    head.record_count = U16Le::new(count);
    out[Header::SIZE..fixed].copy_from_slice(bytemuck::bytes_of(&head));
    out[fixed..].copy_from_slice(bytemuck::cast_slice(records));
    Some(length)
}
