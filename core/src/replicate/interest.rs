//! The interest search: which entities are near a client, and following them between
//! searches.
//!
//! A search runs a radius query over the packed, cell-ordered copy of the zone's
//! positions and over the ghosts, keeps the nearest candidates in a buffer of fixed
//! capacity, and ranks them ([`super::rank`]): the nearest
//! [`InterestConfig::entities_max`], members with hysteresis, sorted by id. The radius starts
//! where the client's last search reached and doubles, up to the far radius, until it
//! holds the nearest N (a dense crowd holds them within a few cells). Between searches the
//! last members are followed by slot (checked against the id), by id if the slot moved,
//! and across owned ↔ ghost when a handoff moved them.
//!
//! **Hysteresis.** A member ranks as if it were [`STAY`] times as far as it is, at the cap
//! and at the far radius: it keeps its place until it is clearly outside (about 18 %
//! farther than the entity that would replace it, or than the far radius), so an entity
//! at the edge of the nearest-N set does not flicker in and out from tick to tick.
//!
//! [`InterestConfig::entities_max`]: super::InterestConfig::entities_max

use meridian_layouts::quant::dequantise_position;

use super::held::Core;
use super::rank::Stores;
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
    /// The name of the newest state sent of it ([`super::samples`]: the tick of the entry
    /// that first sent that state, in 16 bits); [`super::samples::UNKNOWN`] for a member
    /// new to interest. A baseline record whose [`Core`] `sent` differs holds another
    /// state than the newest, and the client may draw one sent since, so the member is
    /// renewed when due and unchanged ([`super::pass::RENEW`]).
    pub(super) sampled: u16,
}

/// A candidate from the spatial query: 16 bytes, so selecting and sorting move little.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub(crate) id: u64,
    pub(crate) distance2: f32,
    /// The slot in the owned store, or in the ghost store with [`GHOST_BIT`] set.
    pub(crate) slot: u32,
}

pub(super) const GHOST_BIT: u32 = 1 << 31;

/// A member ranks as if it were this many times as far as it is (see the module docs).
pub const STAY: f32 = 0.85;

/// Adds a candidate, keeping the nearest `keep` of everything added in a buffer of fixed
/// capacity: when the buffer fills, it is cut to the nearest `keep` and `cutoff2` drops
/// to the farthest of those, so later candidates beyond it are not even pushed. (A dense
/// crowd can put thousands within the far radius; taking the first ones found would take
/// them in cell order, not nearest first.)
#[inline(always)]
pub(crate) fn push_nearest(
    candidates: &mut Vec<Candidate>,
    keep: usize,
    cutoff2: &mut f32,
    k: Candidate,
) {
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
    /// far radius, and the current `members` with hysteresis; the nearest `entities_max`,
    /// sorted by id into `candidates`, displacing at most `displace` members (`proven`:
    /// with hysteresis; see `ClientView::unproven`). Returns the distance of the farthest
    /// one kept: the next search of this client starts there (`start_m`).
    pub(super) fn search(
        &mut self,
        zone: &Zone,
        (members, displace, unproven): (&[Member], usize, &[u64]),
        avatar: Option<u64>,
        (x, y): (f32, f32),
        start_m: f32,
    ) -> f32 {
        let c = self.config;
        let keep = c.entities_max;
        // Start where the client's last search found its nearest N (a dense crowd keeps
        // them within a few cells: scanning the whole far radius would read hundreds),
        // and double until N (besides the avatar) lie within the radius: then no entity
        // beyond it is among the nearest N. Members past it join in the ranking (`rank`).
        let mut r = start_m.clamp(zone.grid().cell_size_m().min(c.far_m), c.far_m);
        loop {
            let found = self.search_within(zone, (x, y), r, keep);
            // The avatar, and an entity both owned and a ghost for a tick after a handoff,
            // may be among those found: a margin of 8 keeps N others within reach.
            if found >= keep + 8 || r >= c.far_m {
                break;
            }
            r = (2.0 * r).min(c.far_m);
        }
        if let Some(own) = avatar
            && let Some(i) = self
                .candidates
                .iter()
                .position(|k| k.id == own && k.slot & GHOST_BIT == 0)
        {
            self.candidates.swap_remove(i);
        }
        let stores = Stores {
            records: &self.records,
            owned: zone.entities(),
            ghosts: zone.ghosts().entities(),
        };
        let keep2 = self.keep_radius2();
        let reach2 = self.ranking.rank(
            &mut self.candidates,
            (members, unproven),
            &stores,
            ((x, y), keep2),
            (c.entities_max, displace),
        );
        reach2.sqrt()
    }

    /// Owned entities (through the packed copy) and ghosts within `r` of `(x, y)`, the
    /// nearest `keep` of them kept in `candidates`; returns how many lay within `r`.
    fn search_within(&mut self, zone: &Zone, (x, y): (f32, f32), r: f32, keep: usize) -> usize {
        self.candidates.clear();
        let mut cutoff2 = r * r;
        let mut found = 0;
        let ghosts = zone.ghosts().entities();
        let packed = self.packed.as_mut().expect("refreshed before the search");
        let (candidates, records) = (&mut self.candidates, &self.records);
        let owned = zone.entities();
        let columns = (owned.xs(), owned.ys());
        packed.for_each_in_radius_with_distance(
            zone.grid(),
            columns,
            (x, y, r),
            |slot, distance2| {
                // Slots past the copy's end are stale (the zone changed after its tick).
                if (slot as usize) < records.len() {
                    found += 1;
                    if distance2 <= cutoff2 {
                        let id = records[slot as usize].id;
                        let k = Candidate {
                            id,
                            distance2,
                            slot,
                        };
                        push_nearest(candidates, keep, &mut cutoff2, k);
                    }
                }
            },
        );
        zone.query_ghosts_radius(x, y, r, |slot| {
            let i = slot as usize;
            let (dx, dy) = (ghosts.xs()[i] - x, ghosts.ys()[i] - y);
            let distance2 = dx * dx + dy * dy;
            found += 1;
            if distance2 <= cutoff2 {
                let k = Candidate {
                    distance2,
                    slot: slot | GHOST_BIT,
                    id: ghosts.ids()[i].0,
                };
                push_nearest(candidates, keep, &mut cutoff2, k);
            }
        });
        found
    }

    /// How far a member may be and stay: the far radius over [`STAY`], squared.
    pub(super) fn keep_radius2(&self) -> f32 {
        let far = self.config.far_m / STAY;
        far * far
    }

    /// Between searches: the last tick's members where they are now (by slot, checked
    /// against the id; by id if the slot moved; owned ↔ ghost after a handoff), still
    /// within the far radius over [`STAY`], in the same (id) order.
    pub(super) fn follow(
        &mut self,
        view: &ClientView,
        owned: &Entities,
        ghosts: &Entities,
        at: (f32, f32),
    ) {
        let keep2 = self.keep_radius2();
        self.candidates.clear();
        for m in &view.members {
            if let Some(k) = self.locate(m, owned, ghosts, at)
                && k.distance2 <= keep2
            {
                self.candidates.push(k);
            }
        }
    }

    /// Where member `m` is now ([`locate`]).
    #[inline(always)]
    fn locate(
        &self,
        m: &Member,
        owned: &Entities,
        ghosts: &Entities,
        at: (f32, f32),
    ) -> Option<Candidate> {
        locate(&self.records, m, owned, ghosts, at)
    }
}

/// Where member `m` is now, and its distance from `(x, y)` squared; `None` if it is no
/// longer in this zone's stores. `records` are the owned entities' of this tick, by slot.
/// (Inlined: every member of every client is located between searches.)
#[inline(always)]
pub(super) fn locate(
    records: &[Core],
    m: &Member,
    owned: &Entities,
    ghosts: &Entities,
    (x, y): (f32, f32),
) -> Option<Candidate> {
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
    let id_of = crate::entities::EntityID;
    let tagged = match owned_here {
        Some(s) => s,
        None if m.slot & GHOST_BIT != 0
            && ghosts.ids().get(slot as usize).is_some_and(|e| e.0 == m.id) =>
        {
            slot | GHOST_BIT
        }
        // Moved slot, or owned ↔ ghost after a handoff: look the id up.
        None => owned
            .slot_of(id_of(m.id))
            .filter(|&s| (s as usize) < records.len())
            .or_else(|| ghosts.slot_of(id_of(m.id)).map(|s| s | GHOST_BIT))?,
    };
    let (px, py) = if tagged & GHOST_BIT == 0 {
        let r = &records[tagged as usize];
        (dequantise_position(r.x), dequantise_position(r.y))
    } else {
        let i = (tagged & !GHOST_BIT) as usize;
        (ghosts.xs()[i], ghosts.ys()[i])
    };
    let (dx, dy) = (px - x, py - y);
    Some(Candidate {
        id: m.id,
        distance2: dx * dx + dy * dy,
        slot: tagged,
    })
}
