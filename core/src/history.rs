//! Lag compensation's memory: where every entity of a store was at each of the last
//! ticks, and the queries that rewind to one of them ("where was E at tick t", "what did
//! this ray hit at tick t").
//!
//! **Recording is a column copy.** Each tick, [`History::record`] copies the store's `x`
//! and `y` columns, by slot, into a ring of frames allocated up front (`frames × capacity
//! × 8` bytes: 240 MB for 1,000,000 entities and 1 s at 30 Hz), plus the few slot changes
//! ([`SlotMove`]) the store logged since the last record. The id column is not copied: a
//! swap-remove moves one entity, an insert appends one, so a handful of changes per tick
//! say how every slot's occupant changed.
//!
//! **Rewinding undoes slot changes.** An entity's slot at tick `t` is its slot now,
//! walked back through the changes logged since `t` (in each frame they are sorted by id:
//! a binary search per frame). Its position at `t` is then one load from frame `t`. An
//! entity removed since `t` (handed off, killed) is found too: its removal is undone.
//!
//! **Rays.** [`History::ray_at`] tests candidate entities (the caller finds them in its
//! current spatial index, in [`History::ray_reach`] of the ray: everything that could have
//! been on the ray at `t` is within its speed × the age of `t` of where it is now) at
//! their positions at `t`, as discs of the given radius, and returns the first hit along
//! the ray.
//!
//! Ticks must be recorded one after another; a gap starts the history over (a zone that
//! skipped ticks has no positions for them to rewind to). Nothing allocates after
//! [`History::new`].

use crate::entities::{Entities, EntityID, SlotMove};
use crate::world::Rect;

/// One tick of positions, by slot, and the slot changes that led to its layout.
#[derive(Debug)]
struct Frame {
    /// The tick recorded here; `None`: empty.
    tick: Option<u64>,
    len: usize,
    xs: Vec<f32>,
    ys: Vec<f32>,
    /// The store's slot changes between the previous frame and this one, sorted by id
    /// (stably: one id's changes stay in the order they happened).
    moves: Vec<SlotMove>,
    /// One bit per hash of the ids in `moves` ([`filter_bit`]): most entities did not
    /// move slot in most ticks, and a rewind passes such a frame on one bit test.
    filter: [u64; FILTER_WORDS],
}

/// A frame's filter: 4,096 bits (a tick with 300 slot changes answers "maybe" for 7 % of
/// the ids it does not hold).
const FILTER_WORDS: usize = 64;

/// The filter bit of `id`: (word, mask).
#[inline(always)]
fn filter_bit(id: EntityID) -> (usize, u64) {
    let h = id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52;
    ((h >> 6) as usize, 1 << (h & 63))
}

/// Why a rewind query has no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewindError {
    /// The tick is older than the oldest kept (or nothing is kept).
    NotKept { tick: u64, oldest: Option<u64> },
    /// The tick is newer than the newest recorded.
    Future { tick: u64, newest: u64 },
}

/// A ray: from `origin` along the unit vector `direction` for `length_m`; it hits an
/// entity whose centre passes within `radius_m` of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ray {
    pub origin: [f32; 2],
    pub direction: [f32; 2],
    pub length_m: f32,
    pub radius_m: f32,
}

/// The first entity along a ray, and how far along the ray its disc begins.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub id: EntityID,
    pub distance_m: f32,
    /// Where the entity was at the rewound tick.
    pub position: [f32; 2],
}

/// A ring of per-tick positions of one entity store. See the module docs.
#[derive(Debug)]
pub struct History {
    frames: Vec<Frame>,
    newest: Option<u64>,
    /// Frames recorded since the last gap (how far back the ring is valid).
    recorded: u64,
}

impl History {
    /// A history of `frames` ticks (≥ 1) of a store of at most `capacity` entities.
    pub fn new(capacity: usize, frames: usize) -> History {
        assert!(frames >= 1);
        History {
            frames: (0..frames)
                .map(|_| Frame {
                    tick: None,
                    len: 0,
                    xs: vec![0.0; capacity],
                    ys: vec![0.0; capacity],
                    moves: Vec::new(),
                    filter: [0; FILTER_WORDS],
                })
                .collect(),
            newest: None,
            recorded: 0,
        }
    }

    /// The oldest and newest ticks kept.
    pub fn kept(&self) -> Option<(u64, u64)> {
        let newest = self.newest?;
        let kept = self.recorded.min(self.frames.len() as u64);
        Some((newest + 1 - kept, newest))
    }

    /// Records `entities` as they are at `tick` (the tick after the last one recorded,
    /// else the history starts over), and clears the store's move log, which must be on
    /// ([`Entities::log_moves`]) from before the first record.
    pub fn record(&mut self, tick: u64, entities: &mut Entities) {
        if self.newest.and_then(|n| n.checked_add(1)) != Some(tick) {
            self.recorded = 0;
        }
        let n = self.frames.len();
        let frame = &mut self.frames[(tick % n as u64) as usize];
        let len = entities.len();
        assert!(
            len <= frame.xs.len(),
            "more entities than the history's capacity"
        );
        frame.tick = Some(tick);
        frame.len = len;
        frame.xs[..len].copy_from_slice(&entities.xs()[..len]);
        frame.ys[..len].copy_from_slice(&entities.ys()[..len]);
        frame.moves.clear();
        frame.moves.extend_from_slice(entities.moves());
        frame.moves.sort_by_key(|m| m.id);
        frame.filter = [0; FILTER_WORDS];
        for m in &frame.moves {
            let (word, mask) = filter_bit(m.id);
            frame.filter[word] |= mask;
        }
        entities.clear_moves();
        self.newest = Some(tick);
        self.recorded += 1;
    }

    /// Whether `tick` is kept (rewinds to it have an answer).
    pub fn keeps(&self, tick: u64) -> Result<(), RewindError> {
        self.frame(tick).map(|_| ())
    }

    /// The frame of `tick`, if kept.
    fn frame(&self, tick: u64) -> Result<&Frame, RewindError> {
        let kept = self.kept();
        let Some((_, newest)) = kept.filter(|&(o, _)| tick >= o) else {
            return Err(RewindError::NotKept {
                tick,
                oldest: kept.map(|k| k.0),
            });
        };
        if tick > newest {
            return Err(RewindError::Future { tick, newest });
        }
        let frame = &self.frames[(tick % self.frames.len() as u64) as usize];
        debug_assert_eq!(frame.tick, Some(tick));
        Ok(frame)
    }

    /// The slot `id` had at `tick` (`None`: it was not in the store then). `now` is the
    /// store the history records, as it is now.
    pub fn slot_at(
        &self,
        now: &Entities,
        id: EntityID,
        tick: u64,
    ) -> Result<Option<u32>, RewindError> {
        self.frame(tick)?;
        Ok(self.slot_in(now, id, tick))
    }

    /// [`History::slot_at`] for a tick known to be kept.
    fn slot_in(&self, now: &Entities, id: EntityID, tick: u64) -> Option<u32> {
        let mut slot = now.slot_of(id);
        // Changes since the newest record (still in the store's log), newest first.
        for m in now.moves().iter().rev().filter(|m| m.id == id) {
            slot = undo(slot, m);
        }
        let newest = self.newest.expect("a frame is kept");
        let (word, mask) = filter_bit(id);
        for t in (tick + 1..=newest).rev() {
            let f = &self.frames[(t % self.frames.len() as u64) as usize];
            if f.filter[word] & mask == 0 {
                continue;
            }
            let start = f.moves.partition_point(|m| m.id < id);
            let end = start + f.moves[start..].partition_point(|m| m.id == id);
            for m in f.moves[start..end].iter().rev() {
                slot = undo(slot, m);
            }
        }
        slot
    }

    /// Where `id` was at `tick` (`None`: not in the store then).
    pub fn position_at(
        &self,
        now: &Entities,
        id: EntityID,
        tick: u64,
    ) -> Result<Option<[f32; 2]>, RewindError> {
        let frame = self.frame(tick)?;
        let Some(slot) = self.slot_in(now, id, tick) else {
            return Ok(None);
        };
        let s = slot as usize;
        Ok((s < frame.len).then(|| [frame.xs[s], frame.ys[s]]))
    }

    /// The rectangle a caller searches its current spatial index in for candidates of a
    /// ray rewound `age_s` seconds, for entities no faster than `speed_mps`.
    pub fn ray_reach(ray: &Ray, speed_mps: f32, age_s: f32) -> Rect {
        let end = [
            ray.origin[0] + ray.direction[0] * ray.length_m,
            ray.origin[1] + ray.direction[1] * ray.length_m,
        ];
        let pad = ray.radius_m + speed_mps * age_s;
        Rect::new(
            ray.origin[0].min(end[0]) - pad,
            ray.origin[1].min(end[1]) - pad,
            ray.origin[0].max(end[0]) + pad,
            ray.origin[1].max(end[1]) + pad,
        )
    }

    /// The first of `candidates` that `ray` hits at `tick`, each where it was then.
    pub fn ray_at(
        &self,
        now: &Entities,
        ray: &Ray,
        tick: u64,
        candidates: impl IntoIterator<Item = EntityID>,
    ) -> Result<Option<Hit>, RewindError> {
        let frame = self.frame(tick)?;
        let mut first: Option<Hit> = None;
        for id in candidates {
            let Some(slot) = self.slot_in(now, id, tick) else {
                continue;
            };
            let s = slot as usize;
            if s >= frame.len {
                continue;
            }
            ray.keep_first(&mut first, id, [frame.xs[s], frame.ys[s]]);
        }
        Ok(first)
    }
}

/// The slot before change `m` of the entity that is in `slot` after it.
fn undo(slot: Option<u32>, m: &SlotMove) -> Option<u32> {
    debug_assert_eq!(slot, m.to, "the log and the store disagree for {:?}", m.id);
    m.from
}

impl Ray {
    /// How far along the ray a disc of its radius around `p` begins, if the ray meets it
    /// (0 if the ray starts inside it).
    pub fn entry_distance(&self, p: [f32; 2]) -> Option<f32> {
        let (dx, dy) = (p[0] - self.origin[0], p[1] - self.origin[1]);
        let along = dx * self.direction[0] + dy * self.direction[1];
        let off2 = dx * dx + dy * dy - along * along;
        let r2 = self.radius_m * self.radius_m;
        if off2 > r2 {
            return None;
        }
        let half = (r2 - off2).sqrt();
        let entry = along - half;
        (entry <= self.length_m && along + half >= 0.0).then_some(entry.max(0.0))
    }

    /// Makes `first` the entity at `p` if the ray meets it before `first`'s.
    pub fn keep_first(&self, first: &mut Option<Hit>, id: EntityID, p: [f32; 2]) {
        if let Some(d) = self.entry_distance(p)
            && first.is_none_or(|h| d < h.distance_m)
        {
            *first = Some(Hit {
                id,
                distance_m: d,
                position: p,
            });
        }
    }
}
