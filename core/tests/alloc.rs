//! The tick does not allocate after warm-up: counted by a replacement global allocator.

use meridian_core::limits::Limits;
use meridian_core::time::Instant;
use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;
use rand::Rng;

use crate::support;

/// The counter is live in this binary: otherwise the test below could not fail.
#[test]
fn counter_sees_allocations() {
    let info = allocation_counter::measure(|| {
        std::hint::black_box(vec![1u8; 10]);
    });
    assert_eq!(info.count_total, 1);
}

#[test]
fn zone_tick_does_not_allocate_after_warm_up() {
    let world = World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 600.0, 600.0),
        zones_x: 3,
        zones_y: 3,
        margin_m: 4.0,
        aura_m: 20.0,
        tick_rate_hz: 30,
        cell_size_m: 10.0,
    })
    .unwrap();
    // The centre zone: 8 neighbours, so every border-pass path runs.
    let zone_id = ZoneID(4);
    let mut zone = Zone::new(&world, zone_id, Limits::for_entities(4000), Instant::ZERO).unwrap();
    let mut rng = support::rng(7);
    for id in 0..3000 {
        // Fast walkers so cells change and borders are crossed every tick.
        zone.insert(&support::entity(
            &mut rng,
            id,
            world.zone_rect(zone_id),
            30.0,
            60.0,
        ))
        .unwrap();
    }
    let tick = world.tick_duration();
    let mut now = Instant::ZERO;
    for _ in 0..5 {
        zone.tick(now);
        now = now + tick;
    }
    let mut crossings_seen = 0;
    let mut cell_moves = zone.grid().stats().moves;
    let info = allocation_counter::measure(|| {
        for _ in 0..100 {
            zone.tick(now);
            now = now + tick;
            crossings_seen += zone.crossings().len();
            // Entities also leave (as handoffs will make them) and turn.
            let leaving: Option<_> = zone
                .crossings()
                .first()
                .map(|c| zone.entities().ids()[c.slot as usize]);
            if let Some(id) = leaving {
                zone.remove(id);
            }
            let slot = rng.random_range(0..zone.entities().len() as u32);
            let id = zone.entities().ids()[slot as usize];
            zone.set_velocity(
                id,
                rng.random_range(-60.0..60.0),
                rng.random_range(-60.0..60.0),
            );
        }
    });
    cell_moves = zone.grid().stats().moves - cell_moves;
    assert!(crossings_seen > 0, "the test must exercise crossings");
    assert!(cell_moves > 0, "the test must exercise grid moves");
    assert_eq!(
        info.count_total, 0,
        "the tick allocated {} times ({} bytes)",
        info.count_total, info.bytes_total
    );
}

/// Two zones handing entities back and forth, with ghosts, through the sans-IO API: the
/// whole protocol path (OFFER, ACK, COMMIT, DONE, GHOSTS, log, events) allocates nothing
/// after warm-up.
#[test]
fn handoff_does_not_allocate_after_warm_up() {
    use meridian_core::net::Peer;
    let world = World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 400.0, 200.0),
        zones_x: 2,
        zones_y: 1,
        margin_m: 2.0,
        aura_m: 15.0,
        tick_rate_hz: 30,
        cell_size_m: 10.0,
    })
    .unwrap();
    let limits = Limits::for_entities(2000);
    let mut zones = [
        Zone::new(&world, ZoneID(0), limits, Instant::ZERO).unwrap(),
        Zone::new(&world, ZoneID(1), limits, Instant::ZERO).unwrap(),
    ];
    let mut rng = support::rng(9);
    for id in 0..1000 {
        let mut e = support::entity(&mut rng, id, world.bounds(), 0.0, 60.0);
        e.speed_mps_max = 60.0;
        let z = world.zone_at(e.position[0], e.position[1]).0 as usize;
        zones[z].insert(&e).unwrap();
    }
    let tick = world.tick_duration();
    let mut now = Instant::ZERO;
    let mut buf = [0u8; 1200];
    let mut step = |zones: &mut [Zone; 2], now: Instant| {
        for z in 0..2 {
            zones[z].tick(now);
            for _ in zones[z].drain_log() {}
            while zones[z].poll_event().is_some() {}
            while let Some(t) = zones[z].poll_transmit(&mut buf) {
                let Peer::Zone(to) = t.to else { unreachable!() };
                zones[to.0 as usize].handle_datagram(
                    now,
                    Peer::Zone(ZoneID(z as u32)),
                    &buf[..t.len],
                );
            }
        }
    };
    for _ in 0..100 {
        step(&mut zones, now);
        now = now + tick;
    }
    let arrivals_before: u64 = zones.iter().map(|z| z.counters().arrivals).sum();
    let ghosts_before: u64 = zones.iter().map(|z| z.counters().ghosts_received).sum();
    let info = allocation_counter::measure(|| {
        for _ in 0..200 {
            step(&mut zones, now);
            now = now + tick;
        }
    });
    let arrivals = zones.iter().map(|z| z.counters().arrivals).sum::<u64>() - arrivals_before;
    let ghosts = zones
        .iter()
        .map(|z| z.counters().ghosts_received)
        .sum::<u64>()
        - ghosts_before;
    assert!(
        arrivals > 100,
        "only {arrivals} handoffs in the measured window"
    );
    assert!(
        ghosts > 100,
        "only {ghosts} ghost refreshes in the measured window"
    );
    assert_eq!(
        info.count_total, 0,
        "{} allocations ({} bytes)",
        info.count_total, info.bytes_total
    );
}
