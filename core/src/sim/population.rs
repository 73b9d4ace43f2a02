//! The simulated population: random walkers, border dancers that swing across a border at
//! margin ± ε, and a flash crowd that crosses one border all at once.

use rustc_hash::FxHashMap;

use rand::Rng;
use rand::rngs::SmallRng;

use super::{HEAL_TICKS, Options, SPEED_MPS_MAX, Sim};
use crate::entities::EntityID;
use crate::handoff::{HandoffConfig, NO_SESSION};
use crate::limits::Limits;
use crate::time::Instant;
use crate::world::World;
use crate::zone::Zone;
use meridian_layouts::U64Le;
use meridian_layouts::handoff::SessionBinding;

/// One spawned entity in this many is an avatar with a session binding (a watcher).
const WATCHER_EVERY: u64 = 32;

#[derive(Clone, Copy, Debug)]
pub(super) enum Behaviour {
    Walker,
    /// Oscillates along x with the given speed and half-period.
    Dancer {
        speed: f32,
        half_period: u64,
    },
    /// Waits, then runs toward +x from `start` on.
    Crowd {
        start: u64,
    },
}

/// What a seed populates the world with.
pub(super) struct Population {
    pub(super) zones: Vec<Option<Zone>>,
    pub(super) limits: Limits,
    pub(super) behaviour: FxHashMap<EntityID, Behaviour>,
    pub(super) spawned: Vec<EntityID>,
}

/// Builds every zone and spawns walkers, border dancers and the flash crowd.
pub(super) fn populate(
    rng: &mut SmallRng,
    world: &World,
    zone_m: f32,
    ticks: u64,
    config: HandoffConfig,
    options: &Options,
) -> Population {
    let (zones_x, margin_m) = (world.config().zones_x, world.config().margin_m);
    let walkers = options
        .walkers
        .unwrap_or_else(|| rng.random_range(100..300));
    let dancers = rng.random_range(10..30);
    let crowd = rng.random_range(20..60);
    let total = walkers + dancers + crowd;
    // The simulator's game keeps a whole 64-byte record (`super::game`).
    let limits = Limits {
        state_bytes: meridian_layouts::handoff::STATE_SIZE as u32,
        ..Limits::for_entities((total as u32).max(64))
    };
    let mut population = Population {
        zones: world
            .zones()
            .map(|z| {
                let mut zone =
                    Zone::with_config(world, z, limits, config, Instant::ZERO, 0).expect("limits");
                zone.set_bugs(options.bugs);
                Some(zone)
            })
            .collect(),
        limits,
        behaviour: FxHashMap::default(),
        spawned: Vec::new(),
    };
    let bounds = world.bounds();
    for _ in 0..walkers {
        let (x, y) = (
            rng.random_range(bounds.x_min..bounds.x_max),
            rng.random_range(bounds.y_min..bounds.y_max),
        );
        population.spawn(world, x, y, Behaviour::Walker, rng);
    }
    // Dancers straddle an internal x border (if any), swinging to margin ± ε past it.
    for _ in 0..dancers {
        let column = rng.random_range(0..zones_x.max(2) - 1) + 1;
        let border = (column.min(zones_x - 1).max(1)) as f32 * zone_m;
        let reach = margin_m + rng.random_range(-1.0..1.0f32);
        let speed = rng.random_range(2.0..SPEED_MPS_MAX);
        let half_period = ((2.0 * reach / speed) * 30.0).round().max(2.0) as u64;
        let x = (border - reach).clamp(bounds.x_min, bounds.x_max - 1.0);
        let y = rng.random_range(bounds.y_min..bounds.y_max);
        let dancer = Behaviour::Dancer { speed, half_period };
        population.spawn(world, x, y, dancer, rng);
    }
    // The flash crowd lines up just inside the first zone's +x border.
    let start = rng.random_range(50..(ticks - HEAL_TICKS).max(51));
    for k in 0..crowd {
        let x = zone_m - margin_m * 0.5 - (k % 4) as f32 * 0.1;
        let y = 5.0 + (k as f32 * 150.0 / crowd as f32);
        let (x, y) = (x.min(bounds.x_max - 1.0), y.min(bounds.y_max - 1.0));
        population.spawn(world, x, y, Behaviour::Crowd { start }, rng);
    }
    population
}

impl Population {
    /// Spawns one entity in the zone that holds `(x, y)`; a walker gets a random velocity.
    fn spawn(&mut self, world: &World, x: f32, y: f32, b: Behaviour, rng: &mut SmallRng) {
        let z = world.zone_at(x, y);
        let zone = self.zones[z.0 as usize]
            .as_mut()
            .expect("all zones up at start");
        let angle = rng.random_range(0.0..core::f32::consts::TAU);
        let speed = rng.random_range(0.0..SPEED_MPS_MAX);
        let velocity = match b {
            Behaviour::Walker => [speed * angle.cos(), speed * angle.sin()],
            _ => [0.0, 0.0],
        };
        let id = zone
            .spawn([x, y, 0.0], velocity, SPEED_MPS_MAX, 0)
            .expect("room");
        // Every 32nd entity carries a client session: its binding travels with it, and its
        // zone watches across borders for it (WATCH and watched ghosts under the faults).
        let n = self.spawned.len() as u64;
        if n.is_multiple_of(WATCHER_EVERY) {
            let binding = SessionBinding {
                session_id: U64Le::new(n + 1),
                ..NO_SESSION
            };
            assert!(
                zone.bind_session(id, binding),
                "binding table sized for the sim"
            );
        }
        self.behaviour.insert(id, b);
        self.spawned.push(id);
    }
}

impl Sim {
    /// Sets every owned entity's velocity from its behaviour.
    pub(super) fn steer(&mut self, tick: u64) {
        let healing = self.healing(tick);
        for zone in self.zones.iter_mut().flatten() {
            for slot in 0..zone.entities().len() {
                let id = zone.entities().ids()[slot];
                let velocity = if healing {
                    [0.0, 0.0]
                } else {
                    match self.behaviour[&id] {
                        Behaviour::Walker => {
                            if self.rng_walk.random_bool(0.02) {
                                let angle = self.rng_walk.random_range(0.0..core::f32::consts::TAU);
                                let speed = self.rng_walk.random_range(0.0..SPEED_MPS_MAX);
                                [speed * angle.cos(), speed * angle.sin()]
                            } else {
                                continue;
                            }
                        }
                        Behaviour::Dancer { speed, half_period } => {
                            let sign = if (tick / half_period).is_multiple_of(2) {
                                1.0
                            } else {
                                -1.0
                            };
                            [sign * speed, 0.0]
                        }
                        Behaviour::Crowd { start } => {
                            if tick < start {
                                [0.0, 0.0]
                            } else if tick < start + 30 {
                                [SPEED_MPS_MAX, 0.0]
                            } else {
                                continue;
                            }
                        }
                    }
                };
                zone.set_velocity(id, velocity[0], velocity[1]);
            }
        }
    }
}
