//! A game's per-entity state: a `Pod` record in each entity's state slot, and what a
//! zone does with it ([`StateLayout`]).
//!
//! Every entity has a [`STATE_SIZE`]-byte state slot, stored as a column beside its
//! position and velocity (no per-entity allocation). A game keeps its record there — any
//! `bytemuck::Pod` type of at most [`STATE_SIZE`] bytes, checked when the program is
//! compiled ([`read`], [`write`]). The slot travels whole in OFFER/COMMIT and in the log
//! and checkpoints; the record's own bytes (`StateLayout::len`) go to neighbours with
//! every ghost; the fields the layout names go to clients, quantised to integers and
//! delta-encoded like positions (docs/protocol.md, "Delta snapshots").

use bytemuck::Pod;
use meridian_layouts::handoff::STATE_SIZE;

/// Fields of the state record a client sees, at most.
pub const CLIENT_FIELDS_MAX: usize = meridian_protocol::delta::GAME_FIELDS;

/// The record `S` in an entity's state bytes (`Entities::state`). Bytes the store does
/// not keep (a record longer than the zone's `StateLayout::len`) read as zero.
#[inline]
pub fn read<S: Pod>(state: &[u8]) -> S {
    const {
        assert!(
            size_of::<S>() <= STATE_SIZE,
            "a state record is at most 64 bytes"
        )
    };
    if state.len() >= size_of::<S>() {
        return bytemuck::pod_read_unaligned(&state[..size_of::<S>()]);
    }
    let mut record = S::zeroed();
    bytemuck::bytes_of_mut(&mut record)[..state.len()].copy_from_slice(state);
    record
}

/// Writes `record` into an entity's state bytes; what does not fit the zone's record
/// length is not kept.
#[inline]
pub fn write<S: Pod>(state: &mut [u8], record: &S) {
    const {
        assert!(
            size_of::<S>() <= STATE_SIZE,
            "a state record is at most 64 bytes"
        )
    };
    let bytes = bytemuck::bytes_of(record);
    if state.len() >= size_of::<S>() {
        // A copy of constant length: no call per entity.
        state[..size_of::<S>()].copy_from_slice(bytes);
    } else {
        let n = state.len();
        state.copy_from_slice(&bytes[..n]);
    }
}

/// How one field of the record is read and quantised for clients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldKind {
    U8,
    I8,
    U16,
    I16,
    /// Sent as the `i32` with the same bits.
    U32,
    I32,
    /// Multiplied by `per_unit` and rounded (saturating; NaN is 0): `per_unit: 100.0`
    /// sends hundredths.
    F32 {
        per_unit: f32,
    },
}

impl FieldKind {
    pub const fn size(self) -> usize {
        match self {
            FieldKind::U8 | FieldKind::I8 => 1,
            FieldKind::U16 | FieldKind::I16 => 2,
            FieldKind::U32 | FieldKind::I32 | FieldKind::F32 { .. } => 4,
        }
    }
}

/// One field a client sees: its byte offset in the record and its kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Field {
    pub offset: usize,
    pub kind: FieldKind,
}

impl Field {
    /// The field's value as a client gets it, from an entity's state bytes (0 if they
    /// are too short to hold it).
    #[inline]
    pub fn quantise(&self, state: &[u8]) -> i32 {
        let Some(bytes) = state.get(self.offset..self.offset + self.kind.size()) else {
            return 0;
        };
        let mut w = [0u8; 4];
        w[..bytes.len()].copy_from_slice(bytes);
        match self.kind {
            FieldKind::U8 => i32::from(w[0]),
            FieldKind::I8 => i32::from(w[0] as i8),
            FieldKind::U16 => i32::from(u16::from_le_bytes([w[0], w[1]])),
            FieldKind::I16 => i32::from(i16::from_le_bytes([w[0], w[1]])),
            FieldKind::U32 | FieldKind::I32 => i32::from_le_bytes(w),
            // `as` saturates and maps NaN to 0.
            FieldKind::F32 { per_unit } => (f32::from_le_bytes(w) * per_unit).round() as i32,
        }
    }
}

/// What a game's state record is to the zone: how many bytes of the slot it uses (sent
/// with ghosts) and which fields clients see. Built in a `const`, so a layout that does
/// not fit its record fails to compile:
///
/// ```
/// use meridian_core::game::state::{FieldKind, StateLayout};
/// #[repr(C)]
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// struct Ship { health: u16, team: u8, it: u8, heading: f32 }
/// const SHIP: StateLayout = StateLayout::of::<Ship>()
///     .field(0, FieldKind::U16)
///     .field(3, FieldKind::U8)
///     .field(4, FieldKind::F32 { per_unit: 100.0 });
/// assert_eq!(SHIP.len(), 8);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateLayout {
    len: usize,
    fields: [Field; CLIENT_FIELDS_MAX],
    count: usize,
}

const NO_FIELD: Field = Field {
    offset: 0,
    kind: FieldKind::U8,
};

impl StateLayout {
    /// No game state: nothing ghosted, nothing sent to clients (a zone without a game).
    pub const NONE: StateLayout = StateLayout {
        len: 0,
        fields: [NO_FIELD; CLIENT_FIELDS_MAX],
        count: 0,
    };

    /// The record `S`, no field sent to clients yet.
    pub const fn of<S: Pod>() -> StateLayout {
        const {
            assert!(
                size_of::<S>() <= STATE_SIZE,
                "a state record is at most 64 bytes"
            )
        };
        StateLayout {
            len: size_of::<S>(),
            ..StateLayout::NONE
        }
    }

    /// Adds a field clients see. Panics (at compile time, in a `const`) past
    /// [`CLIENT_FIELDS_MAX`] fields or for a field outside the record.
    pub const fn field(mut self, offset: usize, kind: FieldKind) -> StateLayout {
        assert!(self.count < CLIENT_FIELDS_MAX, "at most 4 client fields");
        assert!(offset + kind.size() <= self.len, "field outside the record");
        self.fields[self.count] = Field { offset, kind };
        self.count += 1;
        self
    }

    /// Bytes of the record (what a ghost carries).
    pub const fn len(&self) -> usize {
        self.len
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The fields clients see, in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields[..self.count]
    }

    /// The client fields of an entity's state bytes (zero past the layout's fields).
    #[inline]
    pub fn client_fields(&self, slot: &[u8]) -> [i32; CLIENT_FIELDS_MAX] {
        let mut out = [0; CLIENT_FIELDS_MAX];
        for (o, f) in out.iter_mut().zip(self.fields()) {
            *o = f.quantise(slot);
        }
        out
    }
}

impl Default for StateLayout {
    fn default() -> StateLayout {
        StateLayout::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    struct Rec {
        a: u8,
        b: i8,
        c: u16,
        d: i16,
        pad: i16,
        e: u32,
        f: f32,
    }

    #[test]
    fn records_round_trip_and_fields_quantise_by_kind() {
        let r = Rec {
            a: 200,
            b: -3,
            c: 60_000,
            d: -30_000,
            pad: 0,
            e: u32::MAX,
            f: 1.236,
        };
        let mut slot = [0xAA; STATE_SIZE];
        write(&mut slot, &r);
        assert_eq!(read::<Rec>(&slot), r);
        assert_eq!(
            slot[size_of::<Rec>()],
            0xAA,
            "bytes past the record untouched"
        );
        const L: StateLayout = StateLayout::of::<Rec>()
            .field(0, FieldKind::U8)
            .field(1, FieldKind::I8)
            .field(2, FieldKind::U16)
            .field(4, FieldKind::I16);
        assert_eq!(L.client_fields(&slot), [200, -3, 60_000, -30_000]);
        const M: StateLayout = StateLayout::of::<Rec>()
            .field(8, FieldKind::U32)
            .field(12, FieldKind::F32 { per_unit: 100.0 });
        assert_eq!(M.client_fields(&slot), [-1, 124, 0, 0]);
        write(&mut slot, &Rec { f: f32::NAN, ..r });
        assert_eq!(M.client_fields(&slot)[1], 0);
        write(&mut slot, &Rec { f: 1e30, ..r });
        assert_eq!(M.client_fields(&slot)[1], i32::MAX);
        assert_eq!(L.len(), 16);
        assert!(StateLayout::NONE.is_empty());
        // A store that keeps fewer bytes than the record: reads pad with zeros, writes
        // keep what fits, fields past the end read 0 — never a panic.
        let mut short = [0u8; 3];
        write(&mut short, &r);
        assert_eq!(short, [200, (-3i8) as u8, 0x60]);
        assert_eq!(read::<Rec>(&short).a, 200);
        assert_eq!(read::<Rec>(&short).d, 0);
        assert_eq!(L.client_fields(&short), [200, -3, 0, 0]);
        assert_eq!(L.client_fields(&[]), [0; 4]);
    }
}
