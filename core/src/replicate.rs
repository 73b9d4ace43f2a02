//! Replication: which entities a client is told about, and the bytes that tell it.
//!
//! **Interest** ([`Replicator::snapshot`]). Around the client's avatar, owned entities and
//! ghosts within the far radius are candidates; the nearest [`InterestConfig::entities_max`]
//! are the client's *interest set*. The set is searched anew every
//! [`InterestConfig::search_every_ticks`] ticks (each client on its own phase, so a tick
//! searches for a fraction of the clients) or when the avatar has moved
//! [`InterestConfig::search_move_m`]; in between, members are followed where they are now
//! (their positions fresh every tick) and dropped once past the far radius or gone. Each tick every member accumulates priority by its
//! distance tier (near: every tick, mid: ½, far: ⅙ of the tick rate, as weights 6/3/1). A
//! member is *due* once its priority reaches [`PRIORITY_DUE`]; the due members with the
//! highest priority are sent, as many as the client's byte budget allows, and their priority
//! resets. Far entities therefore wait longer but are never starved; nothing outside the
//! interest set is ever sent.
//!
//! **Delta encoding** ([`encode_delta`]). The server keeps, per client, the last
//! [`HISTORY`] snapshots *as the client will hold them* (a sorted list of quantised
//! [`Record`]s). A new snapshot is encoded against the snapshot the client acknowledged
//! (its baseline; none → every entry is new):
//!
//! ```text
//! entry  := head:varint [mask:u8 field:zigzag-varint…]
//! head   := (id − previous id) << 2 | op        op: 0 update, 1 new, 2 remove, 3 escape
//! escape := gap:varint op:u8                    (for id gaps ≥ 2⁶²)
//! mask   := bit per changed field: x y z vx vy kind flags
//! field  := new − baseline (zero for a new entity), zigzag, LEB128
//! ```
//!
//! Entries are in id order. Members not due and unchanged cost nothing; members that left
//! interest get a remove. If the datagram fills, the remaining entries are left out, and the
//! stored snapshot says so (an update left out keeps its baseline value, a removal left out
//! keeps the entity), so a later delta against it is still exact.
//!
//! Nothing here allocates after the first ticks: every buffer is sized by
//! [`InterestConfig::entities_max`] and reused.

use meridian_layouts::I16Le;
use meridian_layouts::I32Le;
use meridian_layouts::U16Le;
use meridian_layouts::U64Le;
use meridian_layouts::quant::{
    dequantise_position, quantise_height, quantise_position, quantise_velocity,
};
use meridian_layouts::snapshot::EntityRecord;

use crate::entities::Entities;
use crate::grid::Packed;
use crate::zone::Zone;

/// Snapshots kept per client: the oldest baseline a client can acknowledge.
pub const HISTORY: usize = 16;

/// Priority at which an interest member is due to be sent.
pub const PRIORITY_DUE: u16 = 6;

/// Longest encoded entry: head (10) + escape op (1) + mask (1) + 7 fields × 10.
pub const ENTRY_BYTES_MAX: usize = 82;

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
}

impl Record {
    /// The quantised state of the entity in `slot` of `entities`.
    pub fn of(entities: &Entities, slot: u32) -> Record {
        let i = slot as usize;
        Record {
            id: entities.ids()[i].0,
            x: quantise_position(entities.xs()[i]),
            y: quantise_position(entities.ys()[i]),
            z: quantise_height(entities.z(slot)),
            vx: quantise_velocity(entities.vxs()[i]),
            vy: quantise_velocity(entities.vys()[i]),
            kind: entities.kind(slot),
            flags: entities.flags(slot),
        }
    }

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
        }
    }

    fn fields(&self) -> [i64; 7] {
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

    fn with_fields(id: u64, f: [i64; 7]) -> Option<Record> {
        Some(Record {
            id,
            x: i32::try_from(f[0]).ok()?,
            y: i32::try_from(f[1]).ok()?,
            z: i16::try_from(f[2]).ok()?,
            vx: i16::try_from(f[3]).ok()?,
            vy: i16::try_from(f[4]).ok()?,
            kind: u16::try_from(f[5]).ok()?,
            flags: u16::try_from(f[6]).ok()?,
        })
    }
}

/// An interest member as the encoder sees it: its state now, and whether it is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub record: Record,
    /// Send its state if it changed. Not due: the client keeps its baseline value.
    pub due: bool,
}

const OP_UPDATE: u64 = 0;
const OP_NEW: u64 = 1;
const OP_REMOVE: u64 = 2;
const OP_ESCAPE: u64 = 3;

#[inline(always)]
fn put_varint(out: &mut [u8], at: &mut usize, mut v: u64) {
    while v >= 0x80 {
        out[*at] = (v as u8) | 0x80;
        *at += 1;
        v >>= 7;
    }
    out[*at] = v as u8;
    *at += 1;
}

#[inline(always)]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Writes one entry into `out` (at least [`ENTRY_BYTES_MAX`] long) and returns its length.
#[inline(always)]
fn put_entry(out: &mut [u8], gap: u64, op: u64, from: &[i64; 7], to: &[i64; 7]) -> usize {
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
    let mut mask = 0u8;
    for k in 0..7 {
        let d = to[k] - from[k];
        if d != 0 {
            mask |= 1 << k;
            put_varint(out, &mut at, zigzag(d));
        }
    }
    out[mask_at] = mask;
    at
}

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
    let mut e = Encoder {
        out,
        written: Encoded::default(),
        previous: 0,
    };
    const ZERO: [i64; 7] = [0; 7];
    let (mut b, mut w) = (0, 0);
    // Both lists are sorted by id: one merge, then the tails.
    while b < baseline.len() && w < wanted.len() {
        let (base, want) = (&baseline[b], &wanted[w]);
        if base.id < want.record.id {
            // Left interest.
            if !e.emit(base.id, OP_REMOVE, &ZERO, &ZERO) {
                result.push(*base);
            }
            b += 1;
        } else if want.record.id < base.id {
            // New to the client: always sent (if it fits), due or not.
            if e.emit(want.record.id, OP_NEW, &ZERO, &want.record.fields()) {
                result.push(want.record);
            }
            w += 1;
        } else {
            if want.due && want.record != *base {
                let ok = e.emit(
                    want.record.id,
                    OP_UPDATE,
                    &base.fields(),
                    &want.record.fields(),
                );
                result.push(if ok { want.record } else { *base });
            } else {
                result.push(*base);
            }
            b += 1;
            w += 1;
        }
    }
    for base in &baseline[b..] {
        if !e.emit(base.id, OP_REMOVE, &ZERO, &ZERO) {
            result.push(*base);
        }
    }
    for want in &wanted[w..] {
        if e.emit(want.record.id, OP_NEW, &ZERO, &want.record.fields()) {
            result.push(want.record);
        }
    }
    e.written
}

/// The output side of [`encode_delta`].
struct Encoder<'a> {
    out: &'a mut [u8],
    written: Encoded,
    previous: u64,
}

impl Encoder<'_> {
    /// Appends an entry if it fits; returns whether it did.
    #[inline(always)]
    fn emit(&mut self, id: u64, op: u64, from: &[i64; 7], to: &[i64; 7]) -> bool {
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

fn get_varint(bytes: &[u8], at: &mut usize) -> Result<u64, DecodeError> {
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

/// Applies `count` encoded entries to `baseline` (sorted by id) and writes the client's new
/// records into `result` (sorted by id). Never panics, whatever the bytes.
pub fn apply_delta(
    baseline: &[Record],
    entries: &[u8],
    count: u16,
    result: &mut Vec<Record>,
) -> Result<(), DecodeError> {
    result.clear();
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
            result.push(baseline[b]);
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
            OP_NEW if !in_baseline => [0; 7],
            _ => return Err(DecodeError::Inconsistent),
        };
        let mask = *entries.get(at).ok_or(DecodeError::Truncated)?;
        at += 1;
        if mask & 0x80 != 0 {
            return Err(DecodeError::Inconsistent);
        }
        let mut fields = from;
        for (k, field) in fields.iter_mut().enumerate() {
            if mask & (1 << k) != 0 {
                let d = unzigzag(get_varint(entries, &mut at)?);
                *field = field.checked_add(d).ok_or(DecodeError::Inconsistent)?;
            }
        }
        result.push(Record::with_fields(id, fields).ok_or(DecodeError::Inconsistent)?);
    }
    if at != entries.len() {
        return Err(DecodeError::Trailing);
    }
    result.extend_from_slice(&baseline[b..]);
    Ok(())
}

/// Interest settings (DESIGN §6 defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InterestConfig {
    pub near_m: f32,
    pub mid_m: f32,
    pub far_m: f32,
    /// Most entities in a client's interest set (and so in one snapshot).
    pub entities_max: usize,
    /// Bytes per second a client may receive; a snapshot never exceeds one datagram.
    pub bytes_per_second: u32,
    pub tick_hz: u32,
    /// Every this many ticks a client's interest set is searched anew (spatial query,
    /// nearest `entities_max`, id sort); between searches its members are followed where
    /// they are, which costs a fraction of a search. An entity coming into range waits at
    /// most this many ticks to be found. 1: search every tick.
    pub search_every_ticks: u32,
    /// A client whose avatar moved this far since its last search is searched at once.
    pub search_move_m: f32,
}

impl Default for InterestConfig {
    fn default() -> Self {
        InterestConfig {
            near_m: 60.0,
            mid_m: 120.0,
            far_m: 250.0,
            entities_max: 128,
            bytes_per_second: 24_000,
            tick_hz: 30,
            // The far tier's rate (⅙ of the tick rate): 200 ms at 30 Hz.
            search_every_ticks: 6,
            search_move_m: 4.0,
        }
    }
}

/// One member of a client's interest set, carried from tick to tick.
#[derive(Clone, Copy, Debug)]
struct Member {
    id: u64,
    /// Where it was at the last tick: a slot of the owned store, or of the ghost store
    /// with [`GHOST_BIT`] set (checked against the id before use).
    slot: u32,
    priority: u16,
}

/// A stored snapshot: the records a client holds once it has applied the snapshot of `tick`.
#[derive(Clone, Debug, Default)]
struct Stored {
    tick: u32,
    records: Vec<Record>,
}

/// What one client has been sent: interest members and their priorities, the snapshot
/// history, the acknowledged baseline and the byte budget.
#[derive(Clone, Debug)]
pub struct ClientView {
    members: Vec<Member>,
    history: Vec<Stored>,
    acked_tick: u32,
    budget_bytes: i64,
    /// The interest set is searched anew when `(tick + phase) % search_every_ticks == 0`
    /// (clients with different phases spread the searches over ticks), or when the avatar
    /// moved `search_move_m` from where the last search was made.
    phase: u32,
    searched_at: Option<(f32, f32)>,
}

impl ClientView {
    pub fn new(config: &InterestConfig) -> ClientView {
        ClientView::with_phase(config, 0)
    }

    /// A view whose interest searches fall on ticks `t` with `(t + phase) %
    /// search_every_ticks == 0`: give each client its own phase (its session slot, say) so
    /// searches spread evenly over ticks.
    pub fn with_phase(config: &InterestConfig, phase: u32) -> ClientView {
        ClientView {
            phase,
            searched_at: None,
            members: Vec::with_capacity(config.entities_max),
            history: (0..HISTORY)
                .map(|_| Stored {
                    tick: 0,
                    records: Vec::with_capacity(config.entities_max),
                })
                .collect(),
            acked_tick: 0,
            budget_bytes: 0,
        }
    }

    /// The client has applied the snapshot of `tick` (from its INPUT's `ack_tick`). Older
    /// or unknown ticks are ignored.
    pub fn acknowledge(&mut self, tick: u32) {
        if tick > self.acked_tick && self.stored(tick).is_some() {
            self.acked_tick = tick;
        }
    }

    fn stored(&self, tick: u32) -> Option<&Stored> {
        let s = &self.history[tick as usize % HISTORY];
        (tick != 0 && s.tick == tick).then_some(s)
    }
}

/// A candidate from the spatial query: 16 bytes, so selecting and sorting move little.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    id: u64,
    distance2: f32,
    /// The slot in the owned store, or in the ghost store with [`GHOST_BIT`] set.
    slot: u32,
}

const GHOST_BIT: u32 = 1 << 31;

/// Adds a candidate, keeping the nearest `keep` of everything added in a buffer of fixed
/// capacity: when the buffer fills, it is cut to the nearest `keep` and `cutoff2` drops
/// to the farthest of those, so later candidates beyond it are not even pushed. (A dense
/// crowd can put thousands within the far radius; taking the first ones found would take
/// them in cell order, not nearest first.)
#[inline(always)]
fn push_nearest(candidates: &mut Vec<Candidate>, keep: usize, cutoff2: &mut f32, k: Candidate) {
    if candidates.len() == candidates.capacity() {
        compact_nearest(candidates, keep, cutoff2);
        if k.distance2 > *cutoff2 {
            return;
        }
    }
    candidates.push(k);
}

#[cold]
#[inline(never)]
fn compact_nearest(candidates: &mut Vec<Candidate>, keep: usize, cutoff2: &mut f32) {
    candidates.select_nth_unstable_by(keep - 1, |a, b| a.distance2.total_cmp(&b.distance2));
    candidates.truncate(keep);
    *cutoff2 = candidates.iter().map(|c| c.distance2).fold(0.0, f32::max);
}

/// Counters, cumulative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicateCounters {
    pub snapshots: u64,
    pub bytes: u64,
    pub entries: u64,
    /// Entries that did not fit the datagram or the budget and wait for a later tick.
    pub deferred: u64,
    /// Snapshots sent with no baseline (first, or the acknowledged one was too old).
    pub full: u64,
}

/// Shared scratch for building every client's snapshot in a tick.
#[derive(Debug)]
pub struct Replicator {
    config: InterestConfig,
    candidates: Vec<Candidate>,
    wanted: Vec<Wanted>,
    due: Vec<(u16, u32)>,
    members: Vec<Member>,
    /// A cell-ordered copy of the zone's positions, and the zone tick it was taken at.
    packed: Option<Packed>,
    packed_tick: Option<u64>,
    /// The owned entities' records at `packed_tick`, by slot.
    records: Vec<Record>,
    result: Vec<Record>,
    counters: ReplicateCounters,
}

impl Replicator {
    pub fn new(config: InterestConfig) -> Replicator {
        assert!(config.near_m <= config.mid_m && config.mid_m <= config.far_m);
        assert!(config.entities_max > 0);
        assert!(config.search_every_ticks > 0);
        Replicator {
            config,
            candidates: Vec::with_capacity(config.entities_max * 4),
            wanted: Vec::with_capacity(config.entities_max),
            due: Vec::with_capacity(config.entities_max),
            members: Vec::with_capacity(config.entities_max),
            packed: None,
            packed_tick: None,
            records: Vec::new(),
            result: Vec::with_capacity(config.entities_max),
            counters: ReplicateCounters::default(),
        }
    }

    pub fn counters(&self) -> ReplicateCounters {
        self.counters
    }

    /// Copies the zone's positions (packed, cell-ordered) and every owned entity's record,
    /// once per zone tick.
    fn refresh(&mut self, zone: &Zone) {
        if self.packed_tick == Some(zone.tick_count()) {
            return;
        }
        let owned = zone.entities();
        let packed = self.packed.get_or_insert_with(|| Packed::new(zone.grid()));
        packed.refresh(zone.grid(), owned.xs(), owned.ys());
        // Every owned entity quantised once per tick, by slot: a client's members are
        // then one 32-byte load each instead of eight scattered column reads.
        self.records.clear();
        self.records
            .extend((0..owned.len() as u32).map(|slot| Record::of(owned, slot)));
        self.packed_tick = Some(zone.tick_count());
    }

    /// The interest search: owned entities (through the packed copy) and ghosts within the
    /// far radius, the nearest `entities_max`, sorted by id into `candidates`.
    fn search(&mut self, zone: &Zone, avatar: Option<u64>, (x, y): (f32, f32)) {
        let c = self.config;
        self.candidates.clear();
        let keep = c.entities_max;
        let mut cutoff2 = c.far_m * c.far_m;
        let ghosts = zone.ghosts().entities();
        let add =
            |entities: &Entities, slot: u32, candidates: &mut Vec<Candidate>, cutoff2: &mut f32| {
                let i = slot as usize;
                let (dx, dy) = (entities.xs()[i] - x, entities.ys()[i] - y);
                let distance2 = dx * dx + dy * dy;
                if distance2 <= *cutoff2 {
                    push_nearest(
                        candidates,
                        keep,
                        cutoff2,
                        Candidate {
                            distance2,
                            slot: slot | GHOST_BIT,
                            id: entities.ids()[i].0,
                        },
                    );
                }
            };
        let packed = self.packed.as_ref().expect("refreshed before the search");
        let candidates = &mut self.candidates;
        let records = &self.records;
        packed.for_each_in_radius_with_distance(x, y, c.far_m, |slot, distance2| {
            // Slots past the copy's end are stale (the zone changed after its tick).
            if (slot as usize) < records.len() && distance2 <= cutoff2 {
                push_nearest(
                    candidates,
                    keep,
                    &mut cutoff2,
                    Candidate {
                        distance2,
                        slot,
                        id: records[slot as usize].id,
                    },
                );
            }
        });
        zone.query_ghosts_radius(x, y, c.far_m, |slot| {
            add(ghosts, slot, candidates, &mut cutoff2)
        });
        if let Some(own) = avatar
            && let Some(i) = self
                .candidates
                .iter()
                .position(|k| k.id == own && k.slot & GHOST_BIT == 0)
        {
            self.candidates.swap_remove(i);
        }
        if self.candidates.len() > c.entities_max {
            self.candidates
                .select_nth_unstable_by(c.entities_max, |a, b| a.distance2.total_cmp(&b.distance2));
            self.candidates.truncate(c.entities_max);
        }
        self.candidates.sort_unstable_by_key(|k| k.id);
    }

    /// Between searches: the last tick's members where they are now (by slot, checked
    /// against the id; by id if the slot moved; owned ↔ ghost after a handoff), still
    /// within the far radius, in the same (id) order.
    fn follow(
        &mut self,
        view: &ClientView,
        owned: &Entities,
        ghosts: &Entities,
        (x, y): (f32, f32),
    ) {
        let far2 = self.config.far_m * self.config.far_m;
        let recorded = self.records.len();
        self.candidates.clear();
        let records = &self.records;
        let id_of = crate::entities::EntityID;
        for m in &view.members {
            let slot = m.slot & !GHOST_BIT;
            // An owned member is usually still in its slot: one load of its record (id and
            // position together) answers both questions.
            let owned_here = if m.slot & GHOST_BIT == 0 {
                records
                    .get(slot as usize)
                    .filter(|r| r.id == m.id)
                    .map(|_| slot)
            } else {
                None
            };
            let found = match owned_here {
                Some(s) => Some(s),
                None if m.slot & GHOST_BIT != 0
                    && ghosts.ids().get(slot as usize).is_some_and(|e| e.0 == m.id) =>
                {
                    Some(slot | GHOST_BIT)
                }
                // Moved slot, or owned ↔ ghost after a handoff: look the id up.
                None => owned
                    .slot_of(id_of(m.id))
                    .filter(|&s| (s as usize) < recorded)
                    .or_else(|| ghosts.slot_of(id_of(m.id)).map(|s| s | GHOST_BIT)),
            };
            let Some(tagged) = found else {
                continue;
            };
            let (px, py) = if tagged & GHOST_BIT == 0 {
                let r = &records[tagged as usize];
                (dequantise_position(r.x), dequantise_position(r.y))
            } else {
                let i = (tagged & !GHOST_BIT) as usize;
                (ghosts.xs()[i], ghosts.ys()[i])
            };
            let (dx, dy) = (px - x, py - y);
            let distance2 = dx * dx + dy * dy;
            if distance2 <= far2 {
                self.candidates.push(Candidate {
                    id: m.id,
                    distance2,
                    slot: tagged,
                });
            }
        }
    }

    /// Builds the snapshot of `tick` for the client whose avatar is at `(x, y)`: interest,
    /// priority, then the delta against its acknowledged baseline, encoded into `out` (the
    /// entries only, at most `out.len()` bytes). Returns the baseline tick used (0: none)
    /// and what was encoded. The avatar itself is excluded (it travels in the header).
    ///
    /// Call it after the zone's tick and before anything else changes the zone: positions
    /// come from a copy taken at the first call after each tick.
    pub fn snapshot(
        &mut self,
        view: &mut ClientView,
        zone: &Zone,
        avatar: Option<u64>,
        (x, y): (f32, f32),
        tick: u32,
        out: &mut [u8],
    ) -> (u32, Encoded) {
        assert!(tick != 0, "tick 0 means 'no baseline'");
        let c = self.config;
        let (owned, ghosts) = (zone.entities(), zone.ghosts().entities());
        // The records of owned entities, once per zone tick (see `refresh`).
        self.refresh(zone);
        let (near2, mid2) = (c.near_m * c.near_m, c.mid_m * c.mid_m);
        let moved = view.searched_at.is_none_or(|(sx, sy)| {
            (sx - x) * (sx - x) + (sy - y) * (sy - y) > c.search_move_m * c.search_move_m
        });
        let search = moved
            || view.members.is_empty()
            || (tick.wrapping_add(view.phase)).is_multiple_of(c.search_every_ticks.max(1));
        if search {
            view.searched_at = Some((x, y));
            self.search(zone, avatar, (x, y));
        } else {
            self.follow(view, owned, ghosts, (x, y));
        }

        // Priority: carry each member's accumulation over (both lists sorted by id).
        self.wanted.clear();
        self.due.clear();
        let mut m = 0;
        let old = &view.members;
        let members = &mut self.members;
        members.clear();
        for k in &self.candidates {
            while m < old.len() && old[m].id < k.id {
                m += 1;
            }
            let carried = if m < old.len() && old[m].id == k.id {
                old[m].priority
            } else {
                // New to interest: due at once.
                PRIORITY_DUE
            };
            let weight = if k.distance2 <= near2 {
                6
            } else if k.distance2 <= mid2 {
                3
            } else {
                1
            };
            let priority = carried.saturating_add(weight);
            if priority >= PRIORITY_DUE {
                self.due.push((priority, self.wanted.len() as u32));
            }
            let record = if k.slot & GHOST_BIT != 0 {
                Record::of(ghosts, k.slot & !GHOST_BIT)
            } else {
                self.records[k.slot as usize]
            };
            self.wanted.push(Wanted { record, due: false });
            members.push(Member {
                id: k.id,
                slot: k.slot,
                priority,
            });
        }
        std::mem::swap(&mut view.members, &mut self.members);

        // Budget: a token bucket of bytes per tick, at most one datagram.
        let per_tick = i64::from(c.bytes_per_second / c.tick_hz.max(1));
        view.budget_bytes = (view.budget_bytes + per_tick).min(out.len() as i64);
        let room = view.budget_bytes.max(0) as usize;
        // The due members with the highest priority, as many as the room allows (an
        // update costs ~4–8 bytes; `encode_delta` enforces the exact limit).
        let due_max = (room / 6).max(1);
        if self.due.len() > due_max {
            self.due
                .select_nth_unstable_by(due_max, |a, b| b.0.cmp(&a.0));
            self.counters.deferred += (self.due.len() - due_max) as u64;
            self.due.truncate(due_max);
        }
        for &(_, index) in &self.due {
            self.wanted[index as usize].due = true;
            view.members[index as usize].priority = 0;
        }

        // Delta against the acknowledged baseline.
        let baseline_tick = view.stored(view.acked_tick).map_or(0, |s| s.tick);
        if baseline_tick == 0 {
            self.counters.full += 1;
        }
        let baseline: &[Record] = view
            .stored(baseline_tick)
            .map_or(&[], |s| s.records.as_slice());
        let room = room.min(out.len());
        let encoded = encode_delta(baseline, &self.wanted, &mut out[..room], &mut self.result);
        // Entries left out stay due.
        if encoded.left_out > 0 {
            self.counters.deferred += u64::from(encoded.left_out);
        }
        view.budget_bytes -= encoded.bytes as i64;
        let slot = &mut view.history[tick as usize % HISTORY];
        slot.tick = tick;
        std::mem::swap(&mut slot.records, &mut self.result);
        self.counters.snapshots += 1;
        self.counters.bytes += encoded.bytes as u64;
        self.counters.entries += u64::from(encoded.entries);
        (baseline_tick, encoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, x: i32) -> Record {
        Record {
            id,
            x,
            y: -x,
            z: 3,
            vx: 500,
            vy: -500,
            kind: 1,
            flags: 0,
        }
    }

    fn round_trip(baseline: &[Record], wanted: &[Wanted], room: usize) -> Vec<Record> {
        let mut out = vec![0u8; room];
        let mut stored = Vec::new();
        let e = encode_delta(baseline, wanted, &mut out, &mut stored);
        let mut decoded = Vec::new();
        apply_delta(baseline, &out[..e.bytes], e.entries, &mut decoded).unwrap();
        assert_eq!(decoded, stored, "the client holds what the server stored");
        decoded
    }

    #[test]
    fn delta_round_trips_updates_news_and_removals() {
        let baseline: Vec<Record> = (1..=10).map(|i| rec(i * 3, 100 * i as i32)).collect();
        let wanted: Vec<Wanted> = [3u64, 6, 9, 11, 15, 1 << 63]
            .iter()
            .map(|&id| Wanted {
                record: rec(id, id as i32 * 7),
                due: true,
            })
            .collect();
        let got = round_trip(&baseline, &wanted, 1200);
        let ids: Vec<u64> = got.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![3, 6, 9, 11, 15, 1 << 63]);
        assert_eq!(got[0].x, 21);
    }

    #[test]
    fn not_due_members_keep_their_baseline_value() {
        let baseline = vec![rec(1, 0), rec(2, 0)];
        let wanted = vec![
            Wanted {
                record: rec(1, 50),
                due: false,
            },
            Wanted {
                record: rec(2, 50),
                due: true,
            },
        ];
        let got = round_trip(&baseline, &wanted, 1200);
        assert_eq!(got[0].x, 0);
        assert_eq!(got[1].x, 50);
    }

    #[test]
    fn a_full_datagram_leaves_entries_out_and_says_so() {
        let baseline: Vec<Record> = (1..=100).map(|i| rec(i, 0)).collect();
        let wanted: Vec<Wanted> = (50..=200)
            .map(|i| Wanted {
                record: rec(i, 1000),
                due: true,
            })
            .collect();
        let got = round_trip(&baseline, &wanted, 300);
        // The removals (1 byte each) fit; updates left out keep the baseline value; news
        // left out are not held.
        assert!(got.iter().all(|r| r.id >= 50));
        assert!(got.iter().any(|r| r.id <= 100 && r.x == 0));
        assert!(got.len() < 151);
    }

    #[test]
    fn garbage_never_panics() {
        let baseline = vec![rec(1, 0), rec(2, 0)];
        let mut state = 0x1234_5678_u64;
        let mut result = Vec::new();
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (state >> 58) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (state >> (i % 8 * 8)) as u8 ^ i as u8)
                .collect();
            let _ = apply_delta(&baseline, &bytes, (state >> 40) as u16 % 8, &mut result);
        }
    }
}
