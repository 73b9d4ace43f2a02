//! Fixtures for Meridian's criterion benches, and the plain peers they are compared with.
//!
//! Every fixture is seeded, so two runs (and two commits) bench the same inputs.

use meridian_core::entities::{EntityID, EntityInit};
use meridian_core::limits::Limits;
use meridian_core::movement::integrate_scalar;
use meridian_core::replicate::{ClientView, Replicator};
use meridian_core::time::Instant;
use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;
use meridian_layouts::client::{CLIENT_DATAGRAM_MAX, DELTA_ENTRIES_OFFSET};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Walking speed of bench entities, and their limit.
pub const SPEED_MPS: f32 = 5.0;
pub const SPEED_MPS_MAX: f32 = 7.0;

pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

/// A 3 × 3 world of 4 km zones at 30 Hz. The centre zone (4) has eight neighbours.
pub fn world() -> World {
    World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 12_288.0, 12_288.0),
        zones_x: 3,
        zones_y: 3,
        ..WorldConfig::default()
    })
    .expect("bench world is valid")
}

pub const CENTRE: ZoneID = ZoneID(4);

/// An entity at a uniform random point of `area`, walking at [`SPEED_MPS`] in a random
/// direction.
pub fn walker(rng: &mut SmallRng, id: u64, area: Rect) -> EntityInit {
    let angle = rng.random_range(0.0..core::f32::consts::TAU);
    EntityInit {
        id: EntityID(id),
        epoch: 0,
        position: [
            rng.random_range(area.x_min..area.x_max),
            rng.random_range(area.y_min..area.y_max),
            0.0,
        ],
        velocity: [SPEED_MPS * angle.cos(), SPEED_MPS * angle.sin()],
        speed_mps_max: SPEED_MPS_MAX,
        kind: 1,
        flags: 0,
        payload: [0; 64],
    }
}

/// The centre zone of [`world`] with `n` walkers spread over it.
pub fn zone_with_walkers(n: usize, seed: u64) -> Zone {
    let world = world();
    let mut zone = Zone::new(
        &world,
        CENTRE,
        Limits::for_entities(n as u32),
        Instant::ZERO,
    )
    .expect("limits");
    let area = world.zone_rect(CENTRE);
    let mut rng = rng(seed);
    for id in 0..n as u64 {
        zone.insert(&walker(&mut rng, id, area)).expect("capacity");
    }
    zone
}

/// The peer for `movement/scalar`: one entity as a plain struct holding the same fields
/// as Meridian's columns, as a hand-written server would store it.
#[derive(Clone, Copy, Debug)]
pub struct Body {
    pub id: u64,
    pub epoch: u32,
    pub kind: u16,
    pub flags: u16,
    pub position: [f32; 3],
    pub velocity: [f32; 2],
    pub speed_mps_max: f32,
    pub payload: [u8; 64],
}

impl From<&EntityInit> for Body {
    fn from(e: &EntityInit) -> Body {
        Body {
            id: e.id.0,
            epoch: e.epoch,
            kind: e.kind,
            flags: e.flags,
            position: e.position,
            velocity: e.velocity,
            speed_mps_max: e.speed_mps_max,
            payload: e.payload,
        }
    }
}

/// The same update as `meridian_core::movement::integrate`, one struct at a time.
pub fn integrate_bodies(bodies: &mut [Body], dt: f32, bounds: Rect) {
    for b in bodies {
        let (mut vx, mut vy) = (b.velocity[0], b.velocity[1]);
        let speed_squared = vx * vx + vy * vy;
        if speed_squared > b.speed_mps_max * b.speed_mps_max {
            let scale = b.speed_mps_max / speed_squared.sqrt();
            vx *= scale;
            vy *= scale;
        }
        let x = b.position[0] + vx * dt;
        let y = b.position[1] + vy * dt;
        let x_out = x < bounds.x_min || x > bounds.x_max;
        let y_out = y < bounds.y_min || y > bounds.y_max;
        b.position[0] = x.max(bounds.x_min).min(bounds.x_max);
        b.position[1] = y.max(bounds.y_min).min(bounds.y_max);
        b.velocity = [if x_out { -vx } else { vx }, if y_out { -vy } else { vy }];
    }
}

/// Keeps the scalar reference in this crate's API, so the peer and the reference cannot
/// drift apart silently: a test below checks they agree.
pub fn integrate_reference(bodies: &mut [Body], dt: f32, bounds: Rect) {
    let mut x: Vec<f32> = bodies.iter().map(|b| b.position[0]).collect();
    let mut y: Vec<f32> = bodies.iter().map(|b| b.position[1]).collect();
    let mut vx: Vec<f32> = bodies.iter().map(|b| b.velocity[0]).collect();
    let mut vy: Vec<f32> = bodies.iter().map(|b| b.velocity[1]).collect();
    let s: Vec<f32> = bodies.iter().map(|b| b.speed_mps_max).collect();
    integrate_scalar(&mut x, &mut y, &mut vx, &mut vy, &s, dt, bounds);
    for (i, b) in bodies.iter_mut().enumerate() {
        b.position[0] = x[i];
        b.position[1] = y[i];
        b.velocity = [vx[i], vy[i]];
    }
}

/// One zone tick, its outputs drained and dropped (a bench's untimed step).
pub fn tick_alone(zone: &mut Zone, now: Instant) {
    zone.tick(now);
    let mut sink = [0u8; 1200];
    while zone.poll_transmit(&mut sink).is_some() {}
    for _ in zone.drain_log() {}
    while zone.poll_event().is_some() {}
}

/// One tick's snapshots for every client of `views`, client `k`'s avatar being entity `k`
/// (the `replicate` workload), each written into `datagram` after the DELTA header;
/// returns the entry bytes written. Call it after the zone's tick.
pub fn snapshot_clients(
    (replicator, views): (&mut Replicator, &mut [ClientView]),
    zone: &Zone,
    snapshot_tick: u32,
    datagram: &mut [u8; CLIENT_DATAGRAM_MAX],
) -> u64 {
    let out = &mut datagram[DELTA_ENTRIES_OFFSET..];
    let entities = zone.entities();
    let mut bytes = 0;
    for k in 0..views.len() {
        // As the session layer does: the next client's state is read ahead.
        if let Some(next) = views.get(k + 1) {
            replicator.warm(next);
        }
        let view = &mut views[k];
        let avatar = k as u64;
        let Some(slot) = entities.slot_of(EntityID(avatar)) else {
            continue;
        };
        let at = (entities.xs()[slot as usize], entities.ys()[slot as usize]);
        let (_, encoded) = replicator.snapshot(view, zone, Some(avatar), at, snapshot_tick, out);
        bytes += encoded.bytes as u64;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aos_peer_does_the_same_work_as_the_reference() {
        let mut rng = rng(1);
        let area = Rect::new(0.0, 0.0, 100.0, 100.0);
        let mut a: Vec<Body> = (0..1000)
            .map(|i| Body::from(&walker(&mut rng, i, area)))
            .collect();
        for b in a.iter_mut().step_by(7) {
            b.velocity = [40.0, -30.0]; // Over the limit: the clamp must run.
        }
        let mut b = a.clone();
        for _ in 0..100 {
            integrate_bodies(&mut a, 0.5, area);
            integrate_reference(&mut b, 0.5, area);
        }
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(a.position, b.position);
            assert_eq!(a.velocity, b.velocity);
        }
    }
}
