//! Spatial queries on a zone: what is near a point now (owned entities and ghosts), and
//! what was where at an earlier tick — lag compensation.
//!
//! **Rewinding.** Once enabled ([`Zone::enable_rewind`]) the zone records, at the end of
//! every tick, a [`History`] of its owned entities and one of its ghosts, so a shot across
//! a border is judged against the entity on the other side where the shooter saw it. A
//! query names a time in ticks, fractional (a client draws remote entities between two
//! snapshots: its interpolation time); positions are interpolated between the two
//! recorded ticks around it. A time older than the zone's maximum rewind is refused and
//! counted ([`RewindCounters::refused_too_old`]): past it, a slow or lying client would
//! shoot at where its targets were long ago.

use crate::entities::EntityID;
use crate::history::{History, Hit, Ray, RewindError};
use crate::zone::Zone;

/// The histories and the rewind settings of one zone.
#[derive(Debug)]
pub struct Rewind {
    owned: History,
    ghosts: History,
    max_rewind_ticks: f64,
    counters: RewindCounters,
    /// Scratch: the candidates of a ray.
    candidates: Vec<EntityID>,
}

crate::counters! {
    /// Rewind queries, cumulative.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct RewindCounters {
        /// Rewound rays asked for (lag-compensated shots).
        pub rays: u64,
        /// Rewound rays that hit an entity.
        pub hits: u64,
        /// Refused: older than the maximum rewind (or not a time).
        pub refused_too_old: u64,
        /// Refused: not in the history (newer than the newest tick, or recorded over).
        pub refused_not_kept: u64,
    }
}

/// Why a rewind query was refused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RefusedRewind {
    /// `age_ticks` is past the zone's maximum rewind.
    TooOld {
        age_ticks: f64,
        max_ticks: f64,
    },
    NotKept(RewindError),
    /// The zone does not record a history ([`Zone::enable_rewind`] was not called).
    Disabled,
}

impl Zone {
    /// Calls `f(slot)` for every owned entity within `radius_m` of `(x, y)`, as indexed at
    /// the last tick.
    pub fn query_radius(&self, x: f32, y: f32, radius_m: f32, f: impl FnMut(u32)) {
        self.grid
            .for_each_in_radius(self.entities.xs(), self.entities.ys(), x, y, radius_m, f);
    }

    /// Calls `f(slot)` for every ghost within `radius_m` of `(x, y)`.
    pub fn query_ghosts_radius(&self, x: f32, y: f32, radius_m: f32, f: impl FnMut(u32)) {
        self.ghosts.query_radius(x, y, radius_m, f);
    }

    /// Calls `f(id, position)` for every owned entity, then every ghost, inside `rect`, as
    /// indexed at the last tick.
    pub fn query_rect(&self, rect: crate::world::Rect, mut f: impl FnMut(EntityID, [f32; 2])) {
        let (owned, ghosts) = (&self.entities, self.ghosts.entities());
        self.grid
            .for_each_in_rect(owned.xs(), owned.ys(), rect, |s| {
                let s = s as usize;
                f(owned.ids()[s], [owned.xs()[s], owned.ys()[s]]);
            });
        self.ghosts.query_rect(rect, |s| {
            let s = s as usize;
            f(ghosts.ids()[s], [ghosts.xs()[s], ghosts.ys()[s]]);
        });
    }

    /// Starts recording positions for lag compensation: `history_ticks` ticks kept (1 s:
    /// the tick rate), rewinds up to `max_rewind_ticks` allowed. Allocates the histories
    /// (8 bytes × capacity × ticks, for owned entities and for ghosts): call it when the
    /// zone is built.
    pub fn enable_rewind(&mut self, history_ticks: usize, max_rewind_ticks: f64) {
        self.entities.log_moves();
        self.ghosts.entities_mut().log_moves();
        let frames = history_ticks.max(2);
        self.rewind = Some(Box::new(Rewind {
            owned: History::new(self.entities.capacity(), frames),
            ghosts: History::new(self.ghosts.entities().capacity(), frames),
            max_rewind_ticks: max_rewind_ticks.max(0.0),
            counters: RewindCounters::default(),
            candidates: Vec::with_capacity(256),
        }));
    }

    /// The tick's positions into the histories (end of [`Zone::tick`]).
    pub(crate) fn record_history(&mut self) {
        if let Some(rewind) = &mut self.rewind {
            rewind.owned.record(self.tick, &mut self.entities);
            rewind.ghosts.record(self.tick, self.ghosts.entities_mut());
        }
    }

    pub fn rewind_counters(&self) -> Option<RewindCounters> {
        self.rewind.as_ref().map(|r| r.counters)
    }

    /// Where `id` (owned or a ghost) was at tick `at` (fractional: interpolated), if it
    /// was in this zone's stores then.
    pub fn rewind_position(
        &self,
        id: EntityID,
        at: f64,
    ) -> Result<Option<[f32; 2]>, RefusedRewind> {
        let rewind = self.rewind.as_ref().ok_or(RefusedRewind::Disabled)?;
        self.check_age(rewind, at)?;
        Ok(self.position_between(rewind, id, at))
    }

    /// The first entity (owned or ghost) `ray` hits at tick `at` (fractional), each where
    /// it was then; entities are no faster than `speed_mps` (it bounds where to look).
    /// Refusals and hits are counted.
    pub fn rewind_ray(
        &mut self,
        ray: &Ray,
        at: f64,
        speed_mps: f32,
    ) -> Result<Option<Hit>, RefusedRewind> {
        self.rewind_ray_where(ray, at, speed_mps, |_, _| true)
    }

    /// [`Zone::rewind_ray`] among the entities `keep` accepts, given each one's id and
    /// state record (a game's targets: players and not props, another team's): the ray
    /// passes through the others.
    pub fn rewind_ray_where(
        &mut self,
        ray: &Ray,
        at: f64,
        speed_mps: f32,
        mut keep: impl FnMut(EntityID, &[u8]) -> bool,
    ) -> Result<Option<Hit>, RefusedRewind> {
        let mut rewind = self.rewind.take().ok_or(RefusedRewind::Disabled)?;
        rewind.counters.rays += 1;
        let result = self.check_age(&rewind, at).map(|()| {
            let age_s = (self.tick as f64 - at) as f32 * self.tick_duration.as_secs_f32();
            let reach = History::ray_reach(ray, speed_mps, age_s.max(0.0));
            let mut candidates = core::mem::take(&mut rewind.candidates);
            candidates.clear();
            self.query_rect(reach, |id, _| candidates.push(id));
            let mut first: Option<Hit> = None;
            for &id in &candidates {
                if let Some(p) = self.position_between(&rewind, id, at)
                    && keep(id, self.state_of(id))
                {
                    ray.keep_first(&mut first, id, p);
                }
            }
            rewind.candidates = candidates;
            first
        });
        match &result {
            Ok(hit) => rewind.counters.hits += u64::from(hit.is_some()),
            Err(RefusedRewind::TooOld { .. }) => rewind.counters.refused_too_old += 1,
            Err(RefusedRewind::NotKept(_) | RefusedRewind::Disabled) => {
                rewind.counters.refused_not_kept += 1
            }
        }
        self.rewind = Some(rewind);
        result
    }

    /// The state record of an owned entity or a ghost (empty if neither).
    fn state_of(&self, id: EntityID) -> &[u8] {
        let ghosts = self.ghosts.entities();
        match self.entities.slot_of(id) {
            Some(slot) => self.entities.state(slot),
            None => ghosts.slot_of(id).map_or(&[], |slot| ghosts.state(slot)),
        }
    }

    fn check_age(&self, rewind: &Rewind, at: f64) -> Result<(), RefusedRewind> {
        let age_ticks = self.tick as f64 - at;
        if age_ticks.is_nan() || age_ticks > rewind.max_rewind_ticks {
            return Err(RefusedRewind::TooOld {
                age_ticks,
                max_ticks: rewind.max_rewind_ticks,
            });
        }
        for t in [at.floor(), at.ceil()] {
            rewind
                .owned
                .keeps(t.max(0.0) as u64)
                .map_err(RefusedRewind::NotKept)?;
        }
        Ok(())
    }

    /// `id` at fractional tick `at`: owned, else a ghost, at each of the two ticks around
    /// it; interpolated when both are known, else the one that is.
    fn position_between(&self, rewind: &Rewind, id: EntityID, at: f64) -> Option<[f32; 2]> {
        let at_tick = |t: u64| {
            let owned = rewind
                .owned
                .position_at(&self.entities, id, t)
                .ok()
                .flatten();
            owned.or_else(|| {
                rewind
                    .ghosts
                    .position_at(self.ghosts.entities(), id, t)
                    .ok()
                    .flatten()
            })
        };
        let (below, above) = (at.floor() as u64, at.ceil() as u64);
        let f = (at - at.floor()) as f32;
        match (at_tick(below), at_tick(above)) {
            (Some(a), Some(b)) => Some([a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f]),
            (a, b) => a.or(b),
        }
    }
}
