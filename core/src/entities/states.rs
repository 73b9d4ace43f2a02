//! The game-state column of the store: each entity's state record, `state_len` bytes,
//! back to back by slot (`crate::game::state`).

use meridian_layouts::handoff::STATE_SIZE;

use super::Entities;

/// The column's bytes, kept 16-aligned (in 16-byte blocks) so records cast in place.
#[derive(Clone, Debug, Default)]
pub(super) struct Column {
    blocks: Vec<u128>,
    len: usize,
}

impl Column {
    pub(super) fn with_capacity(bytes: usize) -> Column {
        Column {
            blocks: Vec::with_capacity(bytes.div_ceil(16)),
            len: 0,
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.blocks.capacity() * 16
    }

    pub(super) fn resize(&mut self, len: usize) {
        if len > self.len {
            self.blocks.resize(len.div_ceil(16), 0);
            let end = self.blocks.len() * 16;
            bytemuck::cast_slice_mut::<u128, u8>(&mut self.blocks)[self.len..end].fill(0);
        }
        self.len = len;
    }

    pub(super) fn extend_from_slice(&mut self, bytes: &[u8]) {
        let at = self.len;
        self.resize(at + bytes.len());
        self[at..].copy_from_slice(bytes);
    }

    pub(super) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl core::ops::Deref for Column {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.blocks)[..self.len]
    }
}

impl core::ops::DerefMut for Column {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.blocks)[..self.len]
    }
}

impl Entities {
    /// Bytes of game state kept per entity: the game's record length (0 without one).
    pub fn state_len(&self) -> usize {
        self.state_len
    }

    /// The state record of the entity at `slot` (`state_len` bytes).
    pub fn state(&self, slot: u32) -> &[u8] {
        let n = self.state_len;
        &self.state[slot as usize * n..][..n]
    }

    /// The state record of the entity at `slot`, to write.
    pub fn state_mut(&mut self, slot: u32) -> &mut [u8] {
        let n = self.state_len;
        &mut self.state[slot as usize * n..][..n]
    }

    /// The state column: every entity's record back to back, by slot.
    pub fn states(&self) -> &[u8] {
        &self.state[..self.len * self.state_len]
    }

    /// Every entity's record, by slot, to write (none when `state_len` is 0).
    pub fn states_mut(&mut self) -> core::slice::ChunksExactMut<'_, u8> {
        let n = self.state_len;
        self.state[..self.len * n].chunks_exact_mut(n.max(1))
    }

    /// The state column as records of type `S`, by slot: a plain slice a system can
    /// loop over (SIMD-friendly). `None` unless `S` is exactly the record length kept
    /// (`StateLayout::of::<S>()`) and the column is aligned for `S`, which holds for any
    /// record of alignment ≤ 16 (the column is 16-aligned), i.e. every `Pod` in practice.
    pub fn records<S: bytemuck::Pod>(&self) -> Option<&[S]> {
        (size_of::<S>() == self.state_len && self.state_len > 0)
            .then(|| bytemuck::try_cast_slice(self.states()).ok())
            .flatten()
    }

    /// [`Entities::records`], to write.
    pub fn records_mut<S: bytemuck::Pod>(&mut self) -> Option<&mut [S]> {
        let n = self.len * self.state_len;
        (size_of::<S>() == self.state_len && self.state_len > 0)
            .then(|| bytemuck::try_cast_slice_mut(&mut self.state[..n]).ok())
            .flatten()
    }

    /// Changes the record length to `len` (≤ `STATE_SIZE`): each record is cut or
    /// zero-padded. For a game installed on a zone that holds entities already.
    pub fn set_state_len(&mut self, len: usize) {
        let len = len.min(STATE_SIZE);
        let old = self.state_len;
        if len == old {
            return;
        }
        let mut state = Column::with_capacity(self.state.capacity() / old.max(1) * len);
        let keep = len.min(old);
        for k in 0..self.len {
            state.extend_from_slice(&self.state[k * old..][..keep]);
            state.resize(state.len() + len - keep);
        }
        self.state = state;
        self.state_len = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::EntityID;
    use crate::entities::tests::{columns_of, init};
    use crate::limits::Limits;

    /// State records follow their entity through swap-removes, and a new record length
    /// cuts or zero-pads every record in place; columns of another length convert.
    #[test]
    fn state_records_follow_their_entities_and_change_length() {
        let mut e = Entities::new(&Limits {
            state_bytes: 4,
            ..Limits::for_entities(64)
        });
        for id in 1..=5u64 {
            let mut one = init(id, id as f32);
            one.payload[..5].copy_from_slice(&[id as u8, 2, 3, 4, 99]);
            e.insert(&one).unwrap();
        }
        e.swap_remove(e.slot_of(EntityID(2)).unwrap());
        for id in [1u64, 3, 4, 5] {
            let slot = e.slot_of(EntityID(id)).unwrap();
            assert_eq!(
                e.state(slot),
                &[id as u8, 2, 3, 4],
                "the fifth byte is not kept"
            );
            assert_eq!(e.get(slot).payload[..5], [id as u8, 2, 3, 4, 0]);
        }
        assert_eq!(e.states_mut().count(), 4);
        e.set_state_len(6);
        let slot = e.slot_of(EntityID(5)).unwrap();
        assert_eq!(e.state(slot), &[5, 2, 3, 4, 0, 0]);
        e.set_state_len(2);
        assert_eq!(e.state(slot), &[5, 2]);
        assert_eq!(e.states().len(), 8);
        // Typed: a slice of records when the type is the record length, else none.
        e.set_state_len(4);
        e.records_mut::<[u8; 4]>().unwrap()[0][3] = 77;
        assert_eq!(e.records::<u32>().unwrap().len(), 4);
        assert_eq!(e.state(0)[3], 77);
        assert!(e.records::<u64>().is_none() && e.records::<u16>().is_none());
        e.set_state_len(0);
        assert!(e.records::<()>().is_none());
        assert_eq!(e.states_mut().count(), 0);
        let mut x = Vec::new();
        e.set_state_len(3);
        e.extend_columns(&columns_of(&[7, 8], &mut x)).unwrap();
        assert_eq!(e.state(e.slot_of(EntityID(8)).unwrap()), &[9, 9, 9]);
        e.verify();
    }
}
