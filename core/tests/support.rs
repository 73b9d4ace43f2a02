//! Shared fixtures: random worlds and entity sets from a seed.

use meridian_core::entities::{EntityID, EntityInit};
use meridian_core::game::state::{self, FieldKind, StateLayout};
use meridian_core::game::{Game, GameWorld};
use meridian_core::replicate::{ClientView, InterestConfig, Replicator};
use meridian_core::world::{Rect, World, WorldConfig};
use meridian_protocol::delta::{Record, apply_delta_sampled, freshen};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub(crate) fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

/// A game whose clients see one field of each entity: `value(id, tick)`, written every
/// tick.
pub(crate) struct OneField(pub(crate) fn(u64, u64) -> u32);

impl Game for OneField {
    fn state_layout(&self) -> StateLayout {
        StateLayout::of::<u32>().field(0, FieldKind::U16)
    }

    fn systems(&mut self, world: &mut GameWorld<'_>) {
        let tick = world.tick();
        let ids = world.owned().ids().to_vec();
        for (slot, id) in world.states_mut().zip(ids) {
            state::write(slot, &(self.0)(id.0, tick));
        }
    }
}

/// A 1 km world of one zone (the defaults' cell size, a 16 m aura) that holds up to
/// `entities` entities.
pub(crate) fn one_zone(entities: u32) -> (World, meridian_core::zone::Zone) {
    zones_in_a_row(1, entities)
}

/// `zones` zones of 1 km² in a row (the defaults' cell size, a 16 m aura), and zone 0,
/// which holds up to `entities` entities.
pub(crate) fn zones_in_a_row(zones: u32, entities: u32) -> (World, meridian_core::zone::Zone) {
    let world = World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 1000.0 * zones as f32, 1000.0),
        zones_x: zones,
        zones_y: 1,
        margin_m: 4.0,
        aura_m: 16.0,
        tick_rate_hz: 30,
        cell_size_m: 32.0,
    })
    .unwrap();
    let limits = meridian_core::limits::Limits::for_entities(entities);
    let zone = meridian_core::zone::Zone::new(
        &world,
        meridian_core::world::ZoneID(0),
        limits,
        meridian_core::time::Instant::ZERO,
    )
    .unwrap();
    (world, zone)
}

/// A client's replication state at the default interest settings but for its byte
/// budget: the replicator and the view.
pub(crate) fn replicating(bytes_per_second: u32) -> (Replicator, ClientView) {
    let config = InterestConfig {
        bytes_per_second,
        ..InterestConfig::default()
    };
    (Replicator::new(config), ClientView::new(&config))
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
        payload: [0; 64],
    }
}

/// Two 128 m zones side by side (x 0–256, y 0–128; 16 m aura, 4 m margin) holding up to
/// 256 entities each, on one in-memory network ([`step`]).
pub(crate) fn two_zones() -> (World, Vec<meridian_core::zone::Zone>) {
    use meridian_core::limits::Limits;
    use meridian_core::time::Instant;
    use meridian_core::world::ZoneID;
    let world = World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 256.0, 128.0),
        zones_x: 2,
        zones_y: 1,
        margin_m: 4.0,
        aura_m: 16.0,
        tick_rate_hz: 30,
        cell_size_m: 16.0,
    })
    .unwrap();
    let zones = (0..2)
        .map(|z| {
            meridian_core::zone::Zone::new(
                &world,
                ZoneID(z),
                Limits::for_entities(256),
                Instant::ZERO,
            )
            .unwrap()
        })
        .collect();
    (world, zones)
}

/// One tick of every zone, its log drained and its datagrams delivered at once.
pub(crate) fn step(
    zones: &mut [meridian_core::zone::Zone],
    now: &mut meridian_core::time::Instant,
) {
    use meridian_core::net::Peer;
    use meridian_core::world::ZoneID;
    *now = *now + zones[0].world().tick_duration();
    for zone in zones.iter_mut() {
        zone.tick(*now);
        for _ in zone.drain_log() {}
    }
    let mut buf = [0u8; 1500];
    for from in 0..zones.len() {
        while let Some(t) = zones[from].poll_transmit(&mut buf) {
            if let Peer::Zone(to) = t.to {
                let sender = Peer::Zone(ZoneID(from as u32));
                zones[to.0 as usize].handle_datagram(*now, sender, &buf[..t.len]);
            }
        }
    }
}

/// One client's snapshots, decoded and drawn as the client library does: each against
/// the one it names as its baseline among those received, each entity drawn at its
/// newest sample (`meridian_protocol::delta`, "Samples").
#[derive(Debug, Default)]
pub(crate) struct Drawing {
    /// Snapshots received (the last 40): tick, records, their samples.
    received: Vec<(u32, Vec<Record>, Vec<u64>)>,
    /// What is drawn now (sorted by id), and each record's sample.
    pub(crate) drawn: Vec<Record>,
    drawn_samples: Vec<u64>,
}

impl Drawing {
    /// The newest snapshot received at least `lag` ticks before `tick`: what the client
    /// had acknowledged by the time its acknowledgement reaches the zone at `tick`.
    pub(crate) fn acknowledged(&self, tick: u32, lag: u32) -> Option<u32> {
        let newest = self.received.iter().rev().find(|(t, ..)| *t + lag <= tick);
        newest.map(|&(t, ..)| t)
    }

    /// Receives the snapshot of `tick`, sent against the one of `against`, its entries
    /// `entries` (bytes, count); returns what was drawn before it.
    pub(crate) fn receive(
        &mut self,
        tick: u32,
        against: u32,
        entries: (&[u8], u16),
    ) -> Vec<Record> {
        let base = self.received.iter().find(|(t, ..)| *t == against);
        let base = base.map_or((&[][..], &[][..]), |(_, r, s)| (r.as_slice(), s.as_slice()));
        let (mut records, mut samples) = (Vec::new(), Vec::new());
        apply_delta_sampled(base, entries, u64::from(tick), (&mut records, &mut samples))
            .unwrap_or_else(|e| panic!("tick {tick}: {e:?}"));
        let before = (self.drawn.clone(), self.drawn_samples.clone());
        freshen(
            (&records, &samples),
            (&before.0, &before.1),
            (&mut self.drawn, &mut self.drawn_samples),
        );
        self.received.push((tick, records, samples));
        if self.received.len() > 40 {
            self.received.remove(0);
        }
        before.0
    }
}
