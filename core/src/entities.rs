//! The entity store: structure of arrays, one column per field.
//!
//! Columns that SIMD kernels touch (`x`, `y`, `vx`, `vy`, `speed_mps_max`) are stored as
//! `Vec<f32x8>` and viewed as `&[f32]` with `bytemuck::cast_slice` — casting a `Vec<f32>`
//! to `f32x8` would panic on alignment. Slots `len..` of the last lane are padding: they
//! hold zeros (no velocity), and every pass masks them out by index.
//!
//! Slots are dense: removing an entity moves the last one into its slot (swap-remove).
//! An id → slot map finds an entity by id. All columns and the map are allocated once
//! at the capacity from [`Limits`]; inserting past it is an error, never a reallocation.
//!
//! Entity ids are global: the creator zone in the top [`ID_ZONE_BITS`] bits, a counter
//! local to that zone in the rest, so zones mint ids without coordinating.

use rustc_hash::FxHashMap;
use wide::f32x8;

use crate::limits::{LANES, Limits};
use crate::world::ZoneID;
mod states;

use meridian_layouts::handoff::STATE_SIZE;

/// Bits of an entity id that name the zone that created it.
pub const ID_ZONE_BITS: u32 = 24;
const ID_COUNTER_BITS: u32 = 64 - ID_ZONE_BITS;

/// A global entity id. See the module docs for its structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityID(pub u64);

impl EntityID {
    /// The `counter`-th id minted by `zone`.
    pub fn new(zone: ZoneID, counter: u64) -> EntityID {
        assert!(counter < (1 << ID_COUNTER_BITS));
        EntityID((u64::from(zone.0) << ID_COUNTER_BITS) | counter)
    }

    /// The creator's counter part of the id.
    pub fn counter(self) -> u64 {
        self.0 & ((1 << ID_COUNTER_BITS) - 1)
    }

    /// The zone that created this id (not necessarily its owner now).
    pub fn creator(self) -> ZoneID {
        ZoneID((self.0 >> ID_COUNTER_BITS) as u32)
    }
}

impl core::fmt::Display for EntityID {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Everything needed to place an entity in a zone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EntityInit {
    pub id: EntityID,
    /// Ownership epoch; +1 on every transfer.
    pub epoch: u32,
    pub position: [f32; 3],
    pub velocity: [f32; 2],
    pub speed_mps_max: f32,
    pub kind: u16,
    pub flags: u16,
    pub payload: [u8; STATE_SIZE],
}

/// Why an entity could not be inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    #[error("zone is full")]
    Full,
    #[error("an entity with this id is already present")]
    Duplicate,
    #[error("position, velocity and speed must be finite, speed ≥ 0")]
    NotFinite,
}

/// Whole entity columns, native byte order, all of one length (see
/// [`Entities::extend_columns`]).
#[derive(Clone, Copy, Debug)]
pub struct Columns<'a> {
    pub ids: &'a [u64],
    pub epochs: &'a [u32],
    pub x: &'a [f32],
    pub y: &'a [f32],
    pub z: &'a [f32],
    pub vx: &'a [f32],
    pub vy: &'a [f32],
    pub speeds: &'a [f32],
    pub kinds: &'a [u16],
    pub flags: &'a [u16],
    /// The state records, `state_len` bytes each (converted to the store's length).
    pub states: &'a [u8],
    pub state_len: usize,
}

/// The SoA store. See the module docs.
#[derive(Debug)]
pub struct Entities {
    len: usize,
    x: Vec<f32x8>,
    y: Vec<f32x8>,
    vx: Vec<f32x8>,
    vy: Vec<f32x8>,
    speed_mps_max: Vec<f32x8>,
    z: Vec<f32>,
    id: Vec<EntityID>,
    epoch: Vec<u32>,
    kind: Vec<u16>,
    flags: Vec<u16>,
    /// The game-state column: `state_len` bytes per entity, back to back (0: none kept).
    state: states::Column,
    state_len: usize,
    /// No handoff may start for the entity before this tick (cooldown, NACK backoff).
    hold_until_tick: Vec<u64>,
    slots: FxHashMap<EntityID, u32>,
    /// Slot changes since the log was last cleared, once logging is on
    /// ([`Entities::log_moves`]).
    moves: Option<Vec<SlotMove>>,
}

/// One change of an entity's slot: inserted (`from` is `None`), removed (`to` is `None`)
/// or moved by a swap-remove. A position history undoes these to find where an entity's
/// record was at an earlier tick (`crate::history`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotMove {
    pub id: EntityID,
    pub from: Option<u32>,
    pub to: Option<u32>,
}

/// Mutable views of the SIMD columns, borrowed together for a kernel.
#[derive(Debug)]
pub struct LanesMut<'a> {
    pub x: &'a mut [f32x8],
    pub y: &'a mut [f32x8],
    pub vx: &'a mut [f32x8],
    pub vy: &'a mut [f32x8],
    pub speed_mps_max: &'a [f32x8],
}

impl Entities {
    /// An empty store with room for `limits.entity_count_max` entities.
    pub fn new(limits: &Limits) -> Entities {
        let slots = limits.entity_slots();
        let lanes = slots / LANES;
        let count = limits.entity_count_max as usize;
        let zero = f32x8::splat(0.0);
        Entities {
            len: 0,
            x: vec![zero; lanes],
            y: vec![zero; lanes],
            vx: vec![zero; lanes],
            vy: vec![zero; lanes],
            speed_mps_max: vec![zero; lanes],
            z: Vec::with_capacity(count),
            id: Vec::with_capacity(count),
            epoch: Vec::with_capacity(count),
            kind: Vec::with_capacity(count),
            flags: Vec::with_capacity(count),
            state: states::Column::with_capacity(count * limits.state_bytes as usize),
            state_len: limits.state_bytes as usize,
            hold_until_tick: Vec::with_capacity(count),
            slots: FxHashMap::with_capacity_and_hasher(count, Default::default()),
            moves: None,
        }
    }

    /// Starts logging slot changes ([`SlotMove`]). The log grows until
    /// [`Entities::clear_moves`]: its reader (a position history) clears it every tick.
    pub fn log_moves(&mut self) {
        self.moves.get_or_insert_with(Vec::new);
    }

    /// The slot changes since the log was last cleared, oldest first (empty when logging
    /// is off).
    pub fn moves(&self) -> &[SlotMove] {
        self.moves.as_deref().unwrap_or(&[])
    }

    pub fn clear_moves(&mut self) {
        if let Some(moves) = &mut self.moves {
            moves.clear();
        }
    }

    fn log_move(&mut self, id: EntityID, from: Option<u32>, to: Option<u32>) {
        if let Some(moves) = &mut self.moves {
            moves.push(SlotMove { id, from, to });
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.id.capacity().min(self.x.len() * LANES)
    }

    /// Lanes that hold at least one live entity.
    pub fn lanes_used(&self) -> usize {
        self.len.div_ceil(LANES)
    }

    /// Inserts an entity at slot `len` and returns the slot.
    pub fn insert(&mut self, init: &EntityInit) -> Result<u32, InsertError> {
        let finite = init
            .position
            .iter()
            .chain(&init.velocity)
            .all(|v| v.is_finite());
        if !finite || !init.speed_mps_max.is_finite() || init.speed_mps_max < 0.0 {
            return Err(InsertError::NotFinite);
        }
        if self.len == self.capacity() {
            return Err(InsertError::Full);
        }
        let slot = self.len;
        match self.slots.entry(init.id) {
            std::collections::hash_map::Entry::Occupied(_) => return Err(InsertError::Duplicate),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(slot as u32);
            }
        }
        self.len += 1;
        self.set_simd(
            slot,
            init.position[0],
            init.position[1],
            init.velocity[0],
            init.velocity[1],
            init.speed_mps_max,
        );
        self.z.push(init.position[2]);
        self.id.push(init.id);
        self.epoch.push(init.epoch);
        self.kind.push(init.kind);
        self.flags.push(init.flags);
        self.state
            .extend_from_slice(&init.payload[..self.state_len]);
        self.hold_until_tick.push(0);
        self.log_move(init.id, None, Some(slot as u32));
        Ok(slot as u32)
    }

    /// Removes the entity at `slot` by moving the last entity into it. Returns the state of
    /// the removed entity and the slot the moved entity came from (`None` if `slot` was
    /// the last).
    pub fn swap_remove(&mut self, slot: u32) -> (EntityInit, Option<u32>) {
        let slot = slot as usize;
        assert!(slot < self.len);
        let removed = self.get(slot as u32);
        let last = self.len - 1;
        {
            let (x, y, vx, vy, s) = (
                self.xs()[last],
                self.ys()[last],
                self.vxs()[last],
                self.vys()[last],
                self.speeds()[last],
            );
            self.set_simd(slot, x, y, vx, vy, s);
            // Padding is inert: zeros, so a kernel over the whole lane does nothing to it.
            self.set_simd(last, 0.0, 0.0, 0.0, 0.0, 0.0);
        }
        self.z.swap_remove(slot);
        self.id.swap_remove(slot);
        self.epoch.swap_remove(slot);
        self.kind.swap_remove(slot);
        self.flags.swap_remove(slot);
        let n = self.state_len;
        if slot != last {
            self.state.copy_within(last * n..(last + 1) * n, slot * n);
        }
        self.state.truncate(last * n);
        self.hold_until_tick.swap_remove(slot);
        self.len -= 1;
        let gone = self.slots.remove(&removed.id);
        assert_eq!(gone, Some(slot as u32));
        self.log_move(removed.id, Some(slot as u32), None);
        if slot == last {
            return (removed, None);
        }
        let moved = self.id[slot];
        self.slots.insert(moved, slot as u32);
        self.log_move(moved, Some(last as u32), Some(slot as u32));
        (removed, Some(last as u32))
    }

    /// The slot of `id`, if present.
    pub fn slot_of(&self, id: EntityID) -> Option<u32> {
        self.slots.get(&id).copied()
    }

    /// A copy of the entity at `slot`.
    pub fn get(&self, slot: u32) -> EntityInit {
        let s = slot as usize;
        assert!(s < self.len);
        EntityInit {
            id: self.id[s],
            epoch: self.epoch[s],
            position: [self.xs()[s], self.ys()[s], self.z[s]],
            velocity: [self.vxs()[s], self.vys()[s]],
            speed_mps_max: self.speeds()[s],
            kind: self.kind[s],
            flags: self.flags[s],
            payload: {
                let mut slot = [0; STATE_SIZE];
                slot[..self.state_len].copy_from_slice(self.state(s as u32));
                slot
            },
        }
    }

    /// Appends whole columns (a checkpoint's), all of one length: one pass per column and
    /// one hash insert per entity. Checks everything [`Entities::insert`] checks; on an
    /// error the store is left as it was before the call.
    pub fn extend_columns(&mut self, columns: &Columns<'_>) -> Result<(), (EntityID, InsertError)> {
        let n = columns.ids.len();
        let start = self.len;
        for i in 0..n {
            let finite = [
                columns.x[i],
                columns.y[i],
                columns.z[i],
                columns.vx[i],
                columns.vy[i],
            ]
            .iter()
            .all(|v| v.is_finite());
            let speed = columns.speeds[i];
            if !finite || !speed.is_finite() || speed < 0.0 {
                return Err((EntityID(columns.ids[i]), InsertError::NotFinite));
            }
        }
        if start + n > self.capacity() {
            return Err((EntityID(columns.ids[0]), InsertError::Full));
        }
        for (i, &id) in columns.ids.iter().enumerate() {
            match self.slots.entry(EntityID(id)) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    for &inserted in &columns.ids[..i] {
                        self.slots.remove(&EntityID(inserted));
                    }
                    return Err((EntityID(id), InsertError::Duplicate));
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((start + i) as u32);
                }
            }
        }
        let end = start + n;
        for (lanes, column) in [
            (&mut self.x, columns.x),
            (&mut self.y, columns.y),
            (&mut self.vx, columns.vx),
            (&mut self.vy, columns.vy),
            (&mut self.speed_mps_max, columns.speeds),
        ] {
            bytemuck::cast_slice_mut::<f32x8, f32>(lanes)[start..end].copy_from_slice(column);
        }
        self.z.extend_from_slice(columns.z);
        self.id.extend(columns.ids.iter().map(|&id| EntityID(id)));
        self.epoch.extend_from_slice(columns.epochs);
        self.kind.extend_from_slice(columns.kinds);
        self.flags.extend_from_slice(columns.flags);
        let len = self.state_len;
        if columns.state_len == len {
            self.state.extend_from_slice(&columns.states[..n * len]);
        } else {
            // Another record length (a checkpoint written by another game): each record
            // cut or zero-padded to this store's.
            let keep = len.min(columns.state_len);
            for k in 0..n {
                let from = &columns.states[k * columns.state_len..][..keep];
                self.state.extend_from_slice(from);
                self.state.resize(self.state.len() + len - keep);
            }
        }
        self.hold_until_tick.resize(end, 0);
        self.len = end;
        for (i, &id) in columns.ids.iter().enumerate() {
            self.log_move(EntityID(id), None, Some((start + i) as u32));
        }
        Ok(())
    }

    fn set_simd(&mut self, slot: usize, x: f32, y: f32, vx: f32, vy: f32, speed: f32) {
        bytemuck::cast_slice_mut::<f32x8, f32>(&mut self.x)[slot] = x;
        bytemuck::cast_slice_mut::<f32x8, f32>(&mut self.y)[slot] = y;
        bytemuck::cast_slice_mut::<f32x8, f32>(&mut self.vx)[slot] = vx;
        bytemuck::cast_slice_mut::<f32x8, f32>(&mut self.vy)[slot] = vy;
        bytemuck::cast_slice_mut::<f32x8, f32>(&mut self.speed_mps_max)[slot] = speed;
    }

    /// Overwrites the state of the entity at `slot` (same id): a ghost refresh.
    pub fn set_state(&mut self, slot: u32, init: &EntityInit) {
        let s = slot as usize;
        assert!(s < self.len);
        assert_eq!(self.id[s], init.id);
        self.set_simd(
            s,
            init.position[0],
            init.position[1],
            init.velocity[0],
            init.velocity[1],
            init.speed_mps_max,
        );
        self.z[s] = init.position[2];
        self.epoch[s] = init.epoch;
        self.kind[s] = init.kind;
        self.flags[s] = init.flags;
        let n = self.state_len;
        self.state[s * n..(s + 1) * n].copy_from_slice(&init.payload[..n]);
    }

    /// Sets the velocity of the entity at `slot` (movement intent; clamped by the next
    /// movement pass to the entity's speed limit).
    pub fn set_velocity(&mut self, slot: u32, vx: f32, vy: f32) {
        let s = slot as usize;
        assert!(s < self.len);
        bytemuck::cast_slice_mut::<f32x8, f32>(&mut self.vx)[s] =
            if vx.is_finite() { vx } else { 0.0 };
        bytemuck::cast_slice_mut::<f32x8, f32>(&mut self.vy)[s] =
            if vy.is_finite() { vy } else { 0.0 };
    }

    /// Forbids starting a handoff of the entity at `slot` before `tick`.
    pub fn hold_until(&mut self, slot: u32, tick: u64) {
        self.hold_until_tick[slot as usize] = tick;
    }

    /// The tick before which no handoff of each entity may start.
    pub fn holds(&self) -> &[u64] {
        &self.hold_until_tick
    }

    /// x positions of live entities.
    pub fn xs(&self) -> &[f32] {
        &bytemuck::cast_slice::<f32x8, f32>(&self.x)[..self.len]
    }
    pub fn ys(&self) -> &[f32] {
        &bytemuck::cast_slice::<f32x8, f32>(&self.y)[..self.len]
    }
    pub fn vxs(&self) -> &[f32] {
        &bytemuck::cast_slice::<f32x8, f32>(&self.vx)[..self.len]
    }
    pub fn vys(&self) -> &[f32] {
        &bytemuck::cast_slice::<f32x8, f32>(&self.vy)[..self.len]
    }
    pub fn speeds(&self) -> &[f32] {
        &bytemuck::cast_slice::<f32x8, f32>(&self.speed_mps_max)[..self.len]
    }
    /// Height of the entity at `slot`.
    pub fn z(&self, slot: u32) -> f32 {
        self.z[slot as usize]
    }
    pub fn kind(&self, slot: u32) -> u16 {
        self.kind[slot as usize]
    }
    pub fn flags(&self, slot: u32) -> u16 {
        self.flags[slot as usize]
    }

    /// The height column, one per entity.
    pub fn zs_column(&self) -> &[f32] {
        &self.z[..self.len]
    }

    /// The kind column.
    pub fn kinds(&self) -> &[u16] {
        &self.kind[..self.len]
    }

    /// The flags column.
    pub fn flags_column(&self) -> &[u16] {
        &self.flags[..self.len]
    }

    pub fn ids(&self) -> &[EntityID] {
        &self.id
    }
    pub fn epochs(&self) -> &[u32] {
        &self.epoch
    }

    /// x and y lanes covering every live entity (the last lane may hold padding).
    pub fn position_lanes(&self) -> (&[f32x8], &[f32x8]) {
        let lanes = self.lanes_used();
        (&self.x[..lanes], &self.y[..lanes])
    }

    /// Mutable SIMD columns covering every live entity, for the movement kernel.
    pub fn lanes_mut(&mut self) -> LanesMut<'_> {
        let lanes = self.lanes_used();
        LanesMut {
            x: &mut self.x[..lanes],
            y: &mut self.y[..lanes],
            vx: &mut self.vx[..lanes],
            vy: &mut self.vy[..lanes],
            speed_mps_max: &self.speed_mps_max[..lanes],
        }
    }

    /// Runs the movement kernel ([`crate::movement::integrate`]) over every live lane:
    /// speed clamp, integration over `dt` seconds, world-bounds clamp.
    pub fn integrate(&mut self, dt: f32, bounds: crate::world::Rect) {
        let lanes = self.lanes_mut();
        crate::movement::integrate(
            lanes.x,
            lanes.y,
            lanes.vx,
            lanes.vy,
            lanes.speed_mps_max,
            dt,
            bounds,
        );
    }

    /// O(n) consistency check: column lengths, slot map, inert padding.
    pub fn verify(&self) {
        assert_eq!(self.id.len(), self.len);
        assert_eq!(self.epoch.len(), self.len);
        assert_eq!(self.z.len(), self.len);
        assert_eq!(self.hold_until_tick.len(), self.len);
        assert_eq!(self.state.len(), self.len * self.state_len);
        assert_eq!(self.slots.len(), self.len);
        for (slot, id) in self.id.iter().enumerate() {
            assert_eq!(self.slots.get(id), Some(&(slot as u32)));
        }
        let padding_end = self.lanes_used() * LANES;
        for slot in self.len..padding_end {
            assert_eq!(bytemuck::cast_slice::<f32x8, f32>(&self.vx)[slot], 0.0);
            assert_eq!(bytemuck::cast_slice::<f32x8, f32>(&self.vy)[slot], 0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn init(id: u64, x: f32) -> EntityInit {
        EntityInit {
            id: EntityID(id),
            epoch: 0,
            position: [x, 2.0, 3.0],
            velocity: [1.0, -1.0],
            speed_mps_max: 5.0,
            kind: 1,
            flags: 0,
            payload: [0; STATE_SIZE],
        }
    }

    /// Columns of `ids`, entity `i` at x = i.
    pub(super) fn columns_of(ids: &[u64], x: &mut Vec<f32>) -> Columns<'static> {
        x.clear();
        x.extend((0..ids.len()).map(|i| i as f32));
        let n = ids.len();
        let leak = |v: Vec<f32>| -> &'static [f32] { Vec::leak(v) };
        Columns {
            ids: Vec::leak(ids.to_vec()),
            epochs: Vec::leak(vec![3; n]),
            x: leak(x.clone()),
            y: leak(vec![2.0; n]),
            z: leak(vec![1.0; n]),
            vx: leak(vec![0.5; n]),
            vy: leak(vec![-0.5; n]),
            speeds: leak(vec![4.0; n]),
            kinds: Vec::leak(vec![7; n]),
            flags: Vec::leak(vec![1; n]),
            states: Vec::leak(vec![9; n * STATE_SIZE]),
            state_len: STATE_SIZE,
        }
    }

    #[test]
    fn whole_columns_load_like_inserts_and_bad_ones_change_nothing() {
        let mut e = Entities::new(&Limits {
            state_bytes: STATE_SIZE as u32,
            ..Limits::for_entities(64)
        });
        e.insert(&init(100, 0.0)).unwrap();
        let mut x = Vec::new();
        e.extend_columns(&columns_of(&[1, 2, 3], &mut x)).unwrap();
        assert_eq!(e.len(), 4);
        let got = e.get(e.slot_of(EntityID(3)).unwrap());
        assert_eq!(got.position, [2.0, 2.0, 1.0]);
        assert_eq!(
            (got.epoch, got.kind, got.flags, got.payload),
            (3, 7, 1, [9; STATE_SIZE])
        );
        e.verify();
        // A duplicate (with the store, or within the columns) and a non-finite value are
        // refused, and the store is as it was.
        for bad in [&[4, 100][..], &[5, 6, 5][..]] {
            let err = e.extend_columns(&columns_of(bad, &mut x)).unwrap_err();
            assert_eq!(err.1, InsertError::Duplicate);
            assert_eq!(e.len(), 4);
            assert!(e.slot_of(EntityID(4)).is_none() && e.slot_of(EntityID(5)).is_none());
        }
        let mut nan = columns_of(&[8], &mut x);
        nan.x = Vec::leak(vec![f32::NAN]);
        assert_eq!(
            e.extend_columns(&nan).unwrap_err().1,
            InsertError::NotFinite
        );
        let many: Vec<u64> = (1000..1100).collect();
        assert_eq!(
            e.extend_columns(&columns_of(&many, &mut x)).unwrap_err().1,
            InsertError::Full
        );
        assert_eq!(e.len(), 4);
        e.verify();
    }

    #[test]
    fn swap_remove_keeps_slot_map_and_padding_consistent() {
        let mut e = Entities::new(&Limits::for_entities(20));
        for i in 0..10 {
            e.insert(&init(i, i as f32)).unwrap();
        }
        let (removed, moved) = e.swap_remove(3);
        assert_eq!(removed.id, EntityID(3));
        assert_eq!(moved, Some(9));
        assert_eq!(e.slot_of(EntityID(9)), Some(3));
        assert_eq!(e.xs()[3], 9.0);
        assert_eq!(e.slot_of(EntityID(3)), None);
        let (_, moved) = e.swap_remove(8);
        assert_eq!(moved, None);
        e.verify();
        assert_eq!(e.len(), 8);
    }

    #[test]
    fn insert_refuses_full_duplicate_and_nan() {
        let mut e = Entities::new(&Limits::for_entities(2));
        assert_eq!(e.capacity(), 2);
        e.insert(&init(1, 0.0)).unwrap();
        assert_eq!(e.insert(&init(1, 0.0)), Err(InsertError::Duplicate));
        assert_eq!(e.insert(&init(2, f32::NAN)), Err(InsertError::NotFinite));
        e.insert(&init(2, 0.0)).unwrap();
        assert_eq!(e.insert(&init(3, 0.0)), Err(InsertError::Full));
    }

    #[test]
    fn ids_carry_their_creator() {
        let id = EntityID::new(ZoneID(77), 12345);
        assert_eq!(id.creator(), ZoneID(77));
        assert_eq!(id.0 & ((1 << ID_COUNTER_BITS) - 1), 12345);
    }
}
