//! Shared fixtures: random worlds and entity sets from a seed.

use meridian_core::entities::{EntityID, EntityInit};
use meridian_core::world::{Rect, World, WorldConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub(crate) fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

/// A world of `zones_x × zones_y` zones over `size_m` square, random margin and aura.
pub(crate) fn world(rng: &mut SmallRng, zones_x: u32, zones_y: u32, size_m: f32) -> World {
    let margin_m = rng.random_range(0.0..10.0f32);
    World::new(WorldConfig {
        bounds: Rect::new(-size_m / 2.0, 0.0, size_m / 2.0, size_m),
        zones_x,
        zones_y,
        margin_m,
        aura_m: margin_m + rng.random_range(1.0..40.0f32),
        tick_rate_hz: 30,
        cell_size_m: rng.random_range(4.0..64.0f32),
    })
    .unwrap()
}

/// An entity at a random position in `area` (and up to `spill_m` outside it) with a
/// random velocity up to `speed_mps`, sometimes above its own limit.
pub(crate) fn entity(
    rng: &mut SmallRng,
    id: u64,
    area: Rect,
    spill_m: f32,
    speed_mps: f32,
) -> EntityInit {
    let x = rng.random_range(area.x_min - spill_m..area.x_max + spill_m);
    let y = rng.random_range(area.y_min - spill_m..area.y_max + spill_m);
    EntityInit {
        id: EntityID(id),
        epoch: 0,
        position: [x, y, 0.0],
        velocity: [
            rng.random_range(-speed_mps..=speed_mps),
            rng.random_range(-speed_mps..=speed_mps),
        ],
        speed_mps_max: rng.random_range(0.0..speed_mps),
        kind: 0,
        flags: 0,
        payload: [0; 16],
    }
}
