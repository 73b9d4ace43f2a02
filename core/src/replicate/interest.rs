//! The interest search: which entities are near a client, and following them between
//! searches.
//!
//! A search runs a radius query over the packed, cell-ordered copy of the zone's
//! positions and over the ghosts, keeps the nearest [`InterestConfig::entities_max`]
//! candidates in a buffer of fixed capacity, and sorts them by id. Between searches the
//! last members are followed by slot (checked against the id), by id if the slot moved,
//! and across owned ↔ ghost when a handoff moved them.
//!
//! [`InterestConfig::entities_max`]: super::InterestConfig::entities_max

use meridian_layouts::quant::dequantise_position;

use super::{ClientView, Replicator};
use crate::entities::Entities;
use crate::zone::Zone;

/// One member of a client's interest set, carried from tick to tick.
#[derive(Clone, Copy, Debug)]
pub(super) struct Member {
    pub(super) id: u64,
    /// Where it was at the last tick: a slot of the owned store, or of the ghost store
    /// with [`GHOST_BIT`] set (checked against the id before use).
    pub(super) slot: u32,
    pub(super) priority: u16,
}

/// A candidate from the spatial query: 16 bytes, so selecting and sorting move little.
#[derive(Clone, Copy, Debug)]
pub(super) struct Candidate {
    pub(super) id: u64,
    pub(super) distance2: f32,
    /// The slot in the owned store, or in the ghost store with [`GHOST_BIT`] set.
    pub(super) slot: u32,
}

pub(super) const GHOST_BIT: u32 = 1 << 31;

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

impl Replicator {
    /// The interest search: owned entities (through the packed copy) and ghosts within the
    /// far radius, the nearest `entities_max`, sorted by id into `candidates`.
    pub(super) fn search(&mut self, zone: &Zone, avatar: Option<u64>, (x, y): (f32, f32)) {
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
    pub(super) fn follow(
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
}
