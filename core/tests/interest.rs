//! Interest at its edges: hysteresis keeps an entity at the cap (the nearest N) or at the
//! far radius from flickering in and out of a client's snapshots.

use meridian_core::entities::{EntityID, EntityInit};
use meridian_core::limits::Limits;
use meridian_core::replicate::{ClientView, InterestConfig, Replicator};
use meridian_core::time::Instant;
use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;
use meridian_layouts::client::CLIENT_DATAGRAM_MAX;

/// The client stands here; the world is one 1 km zone around it.
const AT: (f32, f32) = (500.0, 500.0);

struct Scene {
    zone: Zone,
    now: Instant,
    replicator: Replicator,
    view: ClientView,
}

impl Scene {
    fn new(config: InterestConfig) -> Scene {
        let world = World::new(WorldConfig {
            bounds: Rect::new(0.0, 0.0, 1000.0, 1000.0),
            zones_x: 1,
            zones_y: 1,
            margin_m: 4.0,
            aura_m: 16.0,
            tick_rate_hz: 30,
            cell_size_m: 32.0,
        })
        .unwrap();
        let zone = Zone::new(&world, ZoneID(0), Limits::for_entities(256), Instant::ZERO).unwrap();
        Scene {
            zone,
            now: Instant::ZERO,
            replicator: Replicator::new(config),
            view: ClientView::new(&config),
        }
    }

    /// Puts entity `id` (standing still) `distance` metres east of the client.
    fn put(&mut self, id: u64, distance: f32) {
        let _ = self.zone.remove(EntityID(id));
        self.zone
            .insert(&EntityInit {
                id: EntityID(id),
                epoch: 0,
                position: [AT.0 + distance, AT.1, 0.0],
                velocity: [0.0, 0.0],
                speed_mps_max: 0.0,
                kind: 0,
                flags: 0,
                payload: [0; 16],
            })
            .unwrap();
    }

    /// One tick and the client's snapshot; returns its interest set.
    fn tick(&mut self) -> Vec<u64> {
        self.now = self.now + self.zone.world().tick_duration();
        self.zone.tick(self.now);
        for _ in self.zone.drain_log() {}
        let mut out = [0u8; CLIENT_DATAGRAM_MAX];
        let tick = self.zone.tick_count() as u32;
        self.replicator
            .snapshot(&mut self.view, &self.zone, None, AT, tick, &mut out);
        self.view.interest().collect()
    }
}

fn config(entities_max: usize) -> InterestConfig {
    InterestConfig {
        entities_max,
        search_every_ticks: 1,
        ..InterestConfig::default()
    }
}

#[test]
fn an_entity_at_the_cap_stays_until_clearly_outside() {
    let mut s = Scene::new(config(8));
    for id in 1..=7 {
        s.put(id, 10.0);
    }
    s.put(100, 50.0); // A: fixed
    s.put(200, 49.0); // B: swaps places with A every tick
    let first = s.tick();
    assert!(first.contains(&200) && !first.contains(&100), "{first:?}");
    let mut changes = 0;
    let mut last = first;
    for k in 0..30 {
        s.put(200, if k % 2 == 0 { 51.0 } else { 49.0 });
        let now = s.tick();
        assert_eq!(now.len(), 8);
        changes += usize::from(now != last);
        last = now;
    }
    assert_eq!(changes, 0, "the set changed {changes} times in 30 ticks");
    // Clearly outside: B at 70 m ranks behind A at 50 m even with its member's discount.
    s.put(200, 70.0);
    let now = s.tick();
    assert!(now.contains(&100) && !now.contains(&200), "{now:?}");
}

#[test]
fn an_entity_at_the_far_radius_stays_until_clearly_outside() {
    let far = InterestConfig::default().far_m;
    let mut s = Scene::new(config(128));
    s.put(1, far - 5.0);
    assert_eq!(s.tick(), [1]);
    for k in 0..30 {
        s.put(1, if k % 2 == 0 { far + 5.0 } else { far - 5.0 });
        assert_eq!(s.tick(), [1], "tick {k}");
    }
    s.put(1, far * 1.25);
    assert!(s.tick().is_empty(), "25 % past the far radius it goes");
    // Not a member any more: it comes back only inside the far radius.
    s.put(1, far + 5.0);
    assert!(s.tick().is_empty());
    s.put(1, far - 5.0);
    assert_eq!(s.tick(), [1]);
}
