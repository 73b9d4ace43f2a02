//! The delta codec of snapshots: how a zone tells a client what changed since a snapshot
//! the client acknowledged.
//!
//! Both sides keep snapshots as a list of quantised [`Record`]s sorted by id (units of
//! [`meridian_layouts::quant`]). A delta is a sequence of entries against a *baseline* (an
//! earlier snapshot, or nothing):
//!
//! ```text
//! entry  := head:varint [mask:u8 field:zigzag-varint…]
//! head   := (id − previous id) << 2 | op        op: 0 update, 1 new, 2 remove, 3 escape
//! escape := gap:varint op:u8                    (for id gaps ≥ 2⁶²)
//! mask   := bit per changed field: x y z vx vy kind flags; bit 7: a game mask follows
//! game   := bit per changed game field 0–3 (bits 4–7 clear, not all clear)
//! field  := new − baseline (zero for a new entity), zigzag, LEB128
//! ```
//!
//! so an entry is `head [mask [game] field…]`, the fields in order x y z vx vy kind flags
//! game0 game1 game2 game3. The game fields are what the zone's game declares clients see
//! of an entity's state (quantised to integers; all 0 without a game), and cost nothing
//! when they do not change.
//!
//! Entries are in strictly increasing id order; the first gap counts from id 0. A remove
//! has no mask. An update names an entity in the baseline, a new entry one that is not; a
//! baseline entity no entry names is kept unchanged.
//!
//! [`encode_delta`] is the server's side. Only *due* members are sent (updated or
//! introduced); the caller chooses which, by its priorities and budget. When the output
//! fills, the remaining entries are
//! left out, and the records it returns say what the client will then hold (an update left
//! out keeps its baseline value, a removal left out keeps the entity, a new entity left out
//! is not held), so the next delta against that snapshot is still exact.
//! [`apply_delta`] is the client's side; it never panics, whatever the bytes.
//!
//! **Samples.** A delta is against a baseline the client acknowledged — ticks old over a
//! real network — so the newest snapshot need not hold the newest state the client was
//! sent of an entity: one sent in a snapshot since, as due, is not sent again until it is
//! due again, and the newest snapshot keeps the baseline's older value. What a record of a
//! snapshot holds is a *sample*: the snapshot of the entry that wrote it, or, for a record
//! no entry named, the sample its baseline record held ([`apply_delta_sampled`]). A client
//! draws each entity's newest sample ([`freshen`]), never an older one. An update may name
//! no field (a *renewal*, [`Wanted::renew`]): the state is the baseline's and is a new
//! sample — what the server sends when a due entity's state is back to what the baseline
//! holds while the client may have been sent another since (an A, B, A flip).

use meridian_layouts::snapshot::EntityRecord;
use meridian_layouts::{I16Le, I32Le, U16Le, U64Le};

/// Game fields of a record: what a game declares clients see of an entity's state.
pub const GAME_FIELDS: usize = 4;

/// Fields of a record after its id: x y z vx vy kind flags, then the game fields.
const FIELDS: usize = 7 + GAME_FIELDS;

/// Longest encoded entry: head (10) + escape op (1) + masks (2) + 11 fields × 10.
pub const ENTRY_BYTES_MAX: usize = 123;

/// One entity as a client sees it: quantised (units of `meridian_layouts::quant`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub id: u64,
    pub x: i32,
    pub y: i32,
    pub z: i16,
    pub vx: i16,
    pub vy: i16,
    pub kind: u16,
    pub flags: u16,
    /// The game's client fields (0 without a game).
    pub game: [i32; GAME_FIELDS],
}

impl Record {
    /// The wire form (a fixed 26-byte record).
    pub fn to_wire(&self) -> EntityRecord {
        EntityRecord {
            id: U64Le::new(self.id),
            x: I32Le::new(self.x),
            y: I32Le::new(self.y),
            z: I16Le::new(self.z),
            vx: I16Le::new(self.vx),
            vy: I16Le::new(self.vy),
            kind: U16Le::new(self.kind),
            flags: U16Le::new(self.flags),
        }
    }

    pub fn from_wire(r: &EntityRecord) -> Record {
        Record {
            id: r.id.get(),
            x: r.x.get(),
            y: r.y.get(),
            z: r.z.get(),
            vx: r.vx.get(),
            vy: r.vy.get(),
            kind: r.kind.get(),
            flags: r.flags.get(),
            game: [0; GAME_FIELDS],
        }
    }

    /// The standard fields, widened: x y z vx vy kind flags.
    #[inline(always)]
    fn fields7(&self) -> [i64; 7] {
        [
            i64::from(self.x),
            i64::from(self.y),
            i64::from(self.z),
            i64::from(self.vx),
            i64::from(self.vy),
            i64::from(self.kind),
            i64::from(self.flags),
        ]
    }

    /// Every field, widened: the standard ones, then the game fields.
    fn fields(&self) -> [i64; FIELDS] {
        let mut f = [0; FIELDS];
        f[..7].copy_from_slice(&self.fields7());
        for (to, &g) in f[7..].iter_mut().zip(&self.game) {
            *to = i64::from(g);
        }
        f
    }

    fn with_fields(id: u64, f: [i64; FIELDS]) -> Option<Record> {
        Some(Record {
            id,
            x: i32::try_from(f[0]).ok()?,
            y: i32::try_from(f[1]).ok()?,
            z: i16::try_from(f[2]).ok()?,
            vx: i16::try_from(f[3]).ok()?,
            vy: i16::try_from(f[4]).ok()?,
            kind: u16::try_from(f[5]).ok()?,
            flags: u16::try_from(f[6]).ok()?,
            game: [
                i32::try_from(f[7]).ok()?,
                i32::try_from(f[8]).ok()?,
                i32::try_from(f[9]).ok()?,
                i32::try_from(f[10]).ok()?,
            ],
        })
    }
}

/// An interest member as the encoder sees it: its state now, and whether it is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub record: Record,
    /// Send its state if it changed (or it is new to the client). Not due: the client
    /// keeps its baseline value (or, if new, does not hold it yet).
    pub due: bool,
    /// Due, and the client may have been sent a newer sample than its baseline record
    /// (see "Samples" in the module docs): an unchanged state is sent too, as a renewal.
    pub renew: bool,
}

const OP_UPDATE: u64 = 0;
const OP_NEW: u64 = 1;
const OP_REMOVE: u64 = 2;
const OP_ESCAPE: u64 = 3;

/// Writes `v` as LEB128 at `out[*at..]` (at most 10 bytes) and advances `at`.
#[inline(always)]
pub fn put_varint(out: &mut [u8], at: &mut usize, mut v: u64) {
    while v >= 0x80 {
        out[*at] = (v as u8) | 0x80;
        *at += 1;
        v >>= 7;
    }
    out[*at] = v as u8;
    *at += 1;
}

/// Bytes [`put_varint`] writes for `v`.
pub fn varint_len(v: u64) -> usize {
    ((64 - v.leading_zeros() as usize).div_ceil(7)).max(1)
}

/// Signed to unsigned, small magnitudes small: how fields are written.
#[inline(always)]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Writes one entry into `out` (at least [`ENTRY_BYTES_MAX`] long) and returns its length:
/// the change from `from` to `to` (a new entity's is from [`NOTHING`]; a remove has none).
#[inline(always)]
fn put_entry(out: &mut [u8], gap: u64, op: u64, from: &Record, to: &Record) -> usize {
    let mut at = 0;
    if gap < 1 << 62 {
        put_varint(out, &mut at, (gap << 2) | op);
    } else {
        put_varint(out, &mut at, OP_ESCAPE);
        put_varint(out, &mut at, gap);
        out[at] = op as u8;
        at += 1;
    }
    if op == OP_REMOVE {
        return at;
    }
    let mask_at = at;
    at += 1;
    // The game fields are compared whole first: without a game (or unchanged) they cost
    // one comparison.
    let mut game = 0u8;
    if from.game != to.game {
        for k in 0..GAME_FIELDS {
            game |= u8::from(from.game[k] != to.game[k]) << k;
        }
        out[at] = game;
        at += 1;
    }
    let (from7, to7) = (from.fields7(), to.fields7());
    let mut mask = 0u8;
    for k in 0..7 {
        let d = to7[k] - from7[k];
        if d != 0 {
            mask |= 1 << k;
            put_varint(out, &mut at, zigzag(d));
        }
    }
    if game != 0 {
        for k in 0..GAME_FIELDS {
            if game & (1 << k) != 0 {
                let d = i64::from(to.game[k]) - i64::from(from.game[k]);
                put_varint(out, &mut at, zigzag(d));
            }
        }
    }
    out[mask_at] = mask | if game != 0 { 0x80 } else { 0 };
    at
}

/// The record a new entity's entry is relative to.
const NOTHING: Record = Record {
    id: 0,
    x: 0,
    y: 0,
    z: 0,
    vx: 0,
    vy: 0,
    kind: 0,
    flags: 0,
    game: [0; GAME_FIELDS],
};

/// What [`encode_delta`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Bytes written into `out`.
    pub bytes: usize,
    /// Entries written.
    pub entries: u16,
    /// Entries left out because `out` was full.
    pub left_out: u32,
}

/// Encodes `wanted` against `baseline` (both sorted by id, ids unique) into `out`, and
/// writes into `result` the records the client holds after applying it (sorted by id).
/// See the module docs for the format and for what happens when `out` fills.
pub fn encode_delta(
    baseline: &[Record],
    wanted: &[Wanted],
    out: &mut [u8],
    result: &mut Vec<Record>,
) -> Encoded {
    result.clear();
    result.reserve(baseline.len() + wanted.len());
    let mut e = DeltaWriter::new(out);
    let (mut b, mut w) = (0, 0);
    // Both lists are sorted by id: one merge, then the tails.
    while b < baseline.len() && w < wanted.len() {
        let (base, want) = (&baseline[b], &wanted[w]);
        if base.id < want.record.id {
            // Left interest.
            if !e.remove(base.id) {
                result.push(*base);
            }
            b += 1;
        } else if want.record.id < base.id {
            // New to the client: sent when due (if it fits); until then the client does
            // not hold it.
            if want.due && e.introduce(&want.record) {
                result.push(want.record);
            }
            w += 1;
        } else {
            if want.due && (want.record != *base || want.renew) {
                let ok = e.update(base, &want.record);
                result.push(if ok { want.record } else { *base });
            } else {
                result.push(*base);
            }
            b += 1;
            w += 1;
        }
    }
    for base in &baseline[b..] {
        if !e.remove(base.id) {
            result.push(*base);
        }
    }
    for want in &wanted[w..] {
        if want.due && e.introduce(&want.record) {
            result.push(want.record);
        }
    }
    e.written()
}

/// Writes a delta's entries one by one, for a caller that walks its baseline and members
/// itself ([`encode_delta`] is one). Entries must come in strictly increasing id order;
/// each call returns whether the entry fit `out` (one that did not is left out, counted,
/// and the caller's records must say the client keeps what it held).
#[derive(Debug)]
pub struct DeltaWriter<'a> {
    out: &'a mut [u8],
    written: Encoded,
    previous: u64,
}

impl<'a> DeltaWriter<'a> {
    pub fn new(out: &'a mut [u8]) -> DeltaWriter<'a> {
        DeltaWriter {
            out,
            written: Encoded::default(),
            previous: 0,
        }
    }

    /// A baseline entity the client is to forget.
    #[inline(always)]
    pub fn remove(&mut self, id: u64) -> bool {
        self.emit(id, OP_REMOVE, &NOTHING, &NOTHING)
    }

    /// An entity the client does not hold.
    #[inline(always)]
    pub fn introduce(&mut self, to: &Record) -> bool {
        self.emit(to.id, OP_NEW, &NOTHING, to)
    }

    /// A baseline entity's change from `from` to `to` (the same id); equal: a renewal
    /// (see "Samples" in the module docs).
    #[inline(always)]
    pub fn update(&mut self, from: &Record, to: &Record) -> bool {
        self.emit(to.id, OP_UPDATE, from, to)
    }

    /// What has been written so far.
    pub fn written(&self) -> Encoded {
        self.written
    }

    /// Appends an entry if it fits; returns whether it did.
    #[inline(always)]
    fn emit(&mut self, id: u64, op: u64, from: &Record, to: &Record) -> bool {
        if self.written.entries == u16::MAX {
            self.written.left_out += 1;
            return false;
        }
        let gap = id - self.previous;
        let at = self.written.bytes;
        let room = self.out.len() - at;
        let n = if room >= ENTRY_BYTES_MAX {
            put_entry(&mut self.out[at..], gap, op, from, to)
        } else {
            let mut scratch = [0u8; ENTRY_BYTES_MAX];
            let n = put_entry(&mut scratch, gap, op, from, to);
            if n > room {
                self.written.left_out += 1;
                return false;
            }
            self.out[at..at + n].copy_from_slice(&scratch[..n]);
            n
        };
        self.written.bytes += n;
        self.written.entries += 1;
        self.previous = id;
        true
    }
}

/// Why a delta could not be applied. `Copy`: counted, not formatted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The entries end before `entry_count` of them were read.
    Truncated,
    /// Ids out of order, an update or removal of an entity not in the baseline, a new
    /// entity already in it, or a field out of its range.
    Inconsistent,
    /// Bytes left after `entry_count` entries.
    Trailing,
}

/// Reads a LEB128 value at `bytes[*at..]` and advances `at`; never panics.
pub fn get_varint(bytes: &[u8], at: &mut usize) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or(DecodeError::Truncated)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DecodeError::Inconsistent)
}

/// Reads an entry's masks: bits 0–6 the standard fields, 7–10 the game fields.
fn get_mask(entries: &[u8], at: &mut usize) -> Result<u16, DecodeError> {
    let mask = *entries.get(*at).ok_or(DecodeError::Truncated)?;
    *at += 1;
    if mask & 0x80 == 0 {
        return Ok(u16::from(mask));
    }
    let game = *entries.get(*at).ok_or(DecodeError::Truncated)?;
    *at += 1;
    // The game mask names at least one field (else it is not sent) and only real ones.
    if game == 0 || game >> GAME_FIELDS != 0 {
        return Err(DecodeError::Inconsistent);
    }
    Ok(u16::from(mask & 0x7f) | u16::from(game) << 7)
}

/// Applies `count` encoded entries to `baseline` (sorted by id) and writes the client's new
/// records into `result` (sorted by id). Never panics, whatever the bytes.
pub fn apply_delta(
    baseline: &[Record],
    entries: &[u8],
    count: u16,
    result: &mut Vec<Record>,
) -> Result<(), DecodeError> {
    apply(baseline, entries, count, result, None)
}

/// [`apply_delta`], and the sample each of the client's new records holds (see "Samples"
/// in the module docs), into `samples`: `sample` (the snapshot's) where an entry wrote the
/// record, the baseline record's where none did. `baseline_samples` holds the baseline's
/// (a missing one reads 0: older than any). Never panics, whatever the bytes.
pub fn apply_delta_sampled(
    (baseline, baseline_samples): (&[Record], &[u64]),
    (entries, count): (&[u8], u16),
    sample: u64,
    (result, samples): (&mut Vec<Record>, &mut Vec<u64>),
) -> Result<(), DecodeError> {
    apply(
        baseline,
        entries,
        count,
        result,
        Some((baseline_samples, sample, samples)),
    )
}

/// What a client draws: each record of its newest snapshot (`newest`, with the samples
/// [`apply_delta_sampled`] gave them), or the one drawn before (`before`, with its samples)
/// where that holds a newer sample of the entity. Entities the newest snapshot lacks are
/// not drawn. Into `out` (cleared; sorted by id).
pub fn freshen(
    newest: (&[Record], &[u64]),
    before: (&[Record], &[u64]),
    (records, samples): (&mut Vec<Record>, &mut Vec<u64>),
) {
    records.clear();
    samples.clear();
    let mut b = 0;
    for (i, r) in newest.0.iter().enumerate() {
        let sample = newest.1.get(i).copied().unwrap_or(0);
        while b < before.0.len() && before.0[b].id < r.id {
            b += 1;
        }
        let drawn = before.1.get(b).copied().unwrap_or(0);
        if b < before.0.len() && before.0[b].id == r.id && drawn > sample {
            records.push(before.0[b]);
            samples.push(drawn);
        } else {
            records.push(*r);
            samples.push(sample);
        }
    }
}

/// Both decoders: with `sampled`, each result record's sample too.
fn apply(
    baseline: &[Record],
    entries: &[u8],
    count: u16,
    result: &mut Vec<Record>,
    mut sampled: Option<(&[u64], u64, &mut Vec<u64>)>,
) -> Result<(), DecodeError> {
    result.clear();
    if let Some((_, _, samples)) = sampled.as_mut() {
        samples.clear();
    }
    // A record kept from the baseline keeps its sample; one an entry wrote is new.
    fn keep(
        (baseline, b): (&[Record], usize),
        result: &mut Vec<Record>,
        sampled: &mut Option<(&[u64], u64, &mut Vec<u64>)>,
    ) {
        result.push(baseline[b]);
        if let Some((base, _, samples)) = sampled.as_mut() {
            samples.push(base.get(b).copied().unwrap_or(0));
        }
    }
    let mut at = 0;
    let mut b = 0;
    let mut previous: Option<u64> = None;
    for _ in 0..count {
        let head = get_varint(entries, &mut at)?;
        let (gap, op) = if head == OP_ESCAPE {
            let gap = get_varint(entries, &mut at)?;
            let op = *entries.get(at).ok_or(DecodeError::Truncated)?;
            at += 1;
            (gap, u64::from(op))
        } else {
            (head >> 2, head & 3)
        };
        let id = previous
            .unwrap_or(0)
            .checked_add(gap)
            .ok_or(DecodeError::Inconsistent)?;
        if previous.is_some_and(|p| id <= p) {
            return Err(DecodeError::Inconsistent);
        }
        previous = Some(id);
        while b < baseline.len() && baseline[b].id < id {
            keep((baseline, b), result, &mut sampled);
            b += 1;
        }
        let in_baseline = b < baseline.len() && baseline[b].id == id;
        let from = match op {
            OP_REMOVE if in_baseline => {
                b += 1;
                continue;
            }
            OP_UPDATE if in_baseline => {
                b += 1;
                baseline[b - 1].fields()
            }
            OP_NEW if !in_baseline => [0; FIELDS],
            _ => return Err(DecodeError::Inconsistent),
        };
        let mask = get_mask(entries, &mut at)?;
        let mut fields = from;
        for (k, field) in fields.iter_mut().enumerate() {
            if mask & (1 << k) != 0 {
                let d = unzigzag(get_varint(entries, &mut at)?);
                *field = field.checked_add(d).ok_or(DecodeError::Inconsistent)?;
            }
        }
        result.push(Record::with_fields(id, fields).ok_or(DecodeError::Inconsistent)?);
        if let Some((_, sample, samples)) = sampled.as_mut() {
            samples.push(*sample);
        }
    }
    if at != entries.len() {
        return Err(DecodeError::Trailing);
    }
    for k in b..baseline.len() {
        keep((baseline, k), result, &mut sampled);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
