//! A zone: the entities one core owns, and the fixed-step pipeline that advances them.
//!
//! [`Zone::tick`] runs, in order: movement (speed clamp, integration, bounds) → spatial
//! index update → border pass. Handoff, ghosts, sessions and replication plug into this
//! pipeline in later stages (DESIGN §4); today the border pass's output is exposed through
//! [`Zone::crossings`] and [`Zone::aura`] for the layer that will act on it.
//!
//! Every table is allocated in [`Zone::new`] from [`Limits`]; after warm-up the tick does
//! not allocate (a test with a counting allocator holds us to it).

use core::time::Duration;

use crate::borders::{BorderOutput, Borders, Crossing, border_pass};
use crate::entities::{Entities, EntityID, EntityInit, InsertError};
use crate::grid::Grid;
use crate::limits::{Limits, LimitsError};
use crate::movement::integrate;
use crate::time::Instant;
use crate::world::{Rect, World, ZoneID};
use meridian_layouts::handoff::PAYLOAD_SIZE;

/// One zone. See the module docs.
#[derive(Debug)]
pub struct Zone {
    id: ZoneID,
    world: World,
    entities: Entities,
    grid: Grid,
    borders: Borders,
    border_output: BorderOutput,
    tick: u64,
    tick_duration: Duration,
    next_tick_at: Instant,
    next_entity_counter: u64,
}

impl Zone {
    /// A zone `id` of `world`, empty, first tick due at `now`.
    pub fn new(
        world: &World,
        id: ZoneID,
        limits: Limits,
        now: Instant,
    ) -> Result<Zone, LimitsError> {
        limits.validate()?;
        assert!(id.0 < world.zone_count());
        let entities = Entities::new(&limits);
        // The index covers the zone and its aura: owned entities past the border by up
        // to the margin, and (later) ghosts within the aura.
        let area = world.zone_rect(id).expand(world.aura_m());
        let grid = Grid::covering(area, world.config().cell_size_m, entities.capacity());
        Ok(Zone {
            id,
            world: *world,
            entities,
            grid,
            borders: Borders::new(world, id),
            border_output: BorderOutput::new(&limits),
            tick: 0,
            tick_duration: world.tick_duration(),
            next_tick_at: now,
            next_entity_counter: 0,
        })
    }

    pub fn id(&self) -> ZoneID {
        self.id
    }

    pub fn rect(&self) -> Rect {
        self.world.zone_rect(self.id)
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// Ticks run so far.
    pub fn tick_count(&self) -> u64 {
        self.tick
    }

    pub fn entities(&self) -> &Entities {
        &self.entities
    }

    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    pub fn borders(&self) -> &Borders {
        &self.borders
    }

    /// Creates a new entity owned by this zone, with an id minted here, at epoch 0.
    pub fn spawn(
        &mut self,
        position: [f32; 3],
        velocity: [f32; 2],
        speed_mps_max: f32,
        kind: u16,
    ) -> Result<EntityID, InsertError> {
        let id = EntityID::new(self.id, self.next_entity_counter);
        self.insert(&EntityInit {
            id,
            epoch: 0,
            position,
            velocity,
            speed_mps_max,
            kind,
            flags: 0,
            payload: [0; PAYLOAD_SIZE],
        })?;
        self.next_entity_counter += 1;
        Ok(id)
    }

    /// Inserts an entity with a known id and epoch (an arrival, or a restore).
    pub fn insert(&mut self, init: &EntityInit) -> Result<u32, InsertError> {
        self.entities.insert(init)
    }

    /// Removes an entity, returning its last state.
    pub fn remove(&mut self, id: EntityID) -> Option<EntityInit> {
        let slot = self.entities.slot_of(id)?;
        let (removed, moved_from) = self.entities.swap_remove(slot);
        self.grid.swap_remove(slot, moved_from);
        Some(removed)
    }

    /// Sets an entity's velocity (its movement intent); clamped to its speed limit by the
    /// next tick. Returns `false` if the entity is not here.
    pub fn set_velocity(&mut self, id: EntityID, vx: f32, vy: f32) -> bool {
        match self.entities.slot_of(id) {
            Some(slot) => {
                self.entities.set_velocity(slot, vx, vy);
                true
            }
            None => false,
        }
    }

    /// When the next tick is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick_at
    }

    /// Runs one fixed step: movement → grid → borders.
    ///
    /// The step is always `1 / tick_rate_hz` of simulated time; `now` only schedules the
    /// next one. A driver that fell behind sees a deadline in the past and ticks again.
    pub fn tick(&mut self, now: Instant) {
        let dt = self.tick_duration.as_secs_f32();
        let bounds = self.world.bounds();
        {
            let lanes = self.entities.lanes_mut();
            integrate(
                lanes.x,
                lanes.y,
                lanes.vx,
                lanes.vy,
                lanes.speed_mps_max,
                dt,
                bounds,
            );
        }
        let len = self.entities.len();
        let (x, y) = self.entities.position_lanes();
        self.grid.update(x, y, len);
        border_pass(x, y, len, &self.borders, &mut self.border_output);
        self.tick += 1;
        self.next_tick_at = self
            .next_tick_at
            .max(now.saturating_sub(self.tick_duration))
            + self.tick_duration;
        #[cfg(feature = "verify")]
        self.entities.verify();
    }

    /// Entities past a border by more than the margin, as of the last tick.
    pub fn crossings(&self) -> &[Crossing] {
        self.border_output.crossings()
    }

    /// For each neighbour, the slots of entities inside its aura, as of the last tick.
    pub fn aura(&self) -> impl Iterator<Item = (ZoneID, &[u32])> {
        self.borders
            .neighbours()
            .iter()
            .enumerate()
            .map(|(k, &n)| (n, self.border_output.aura(k)))
    }

    /// Border-list entries dropped at the limits so far: (crossings, aura members).
    pub fn border_drops(&self) -> (u64, u64) {
        (
            self.border_output.crossings_dropped,
            self.border_output.aura_dropped,
        )
    }

    /// Calls `f(slot)` for every owned entity within `radius_m` of `(x, y)`, as indexed at
    /// the last tick.
    pub fn query_radius(&self, x: f32, y: f32, radius_m: f32, f: impl FnMut(u32)) {
        self.grid
            .for_each_in_radius(self.entities.xs(), self.entities.ys(), x, y, radius_m, f);
    }
}
