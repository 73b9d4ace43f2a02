//! Handoff benches. Run: `cargo bench -p meridian-benches --bench handoff`.

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meridian_core::entities::{EntityID, EntityInit};
use meridian_core::limits::Limits;
use meridian_core::net::Peer;
use meridian_core::time::Instant;
use meridian_core::world::{World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;

const CROWD: usize = 10_000;

/// Two zones of the default world; the whole crowd stands just past S's +x border.
fn crowd() -> [Zone; 2] {
    let world = World::new(WorldConfig::default()).expect("default world");
    let limits = Limits::for_entities(CROWD as u32);
    let mut zones = [
        Zone::new(&world, ZoneID(0), limits, Instant::ZERO).expect("limits"),
        Zone::new(&world, ZoneID(1), limits, Instant::ZERO).expect("limits"),
    ];
    let border = world.zone_rect(ZoneID(0)).x_max;
    let height = world.bounds().height();
    for i in 0..CROWD {
        zones[0]
            .insert(&EntityInit {
                id: EntityID(i as u64),
                epoch: 0,
                position: [
                    border + world.margin_m() + 1.0,
                    (i as f32 + 0.5) * height / CROWD as f32,
                    0.0,
                ],
                velocity: [0.0, 0.0],
                speed_mps_max: 5.0,
                kind: 0,
                flags: 0,
                payload: [0; 64],
            })
            .expect("capacity");
    }
    zones
}

/// Ticks both zones, passing datagrams through a perfect in-memory link, until every
/// transfer is DONE. Returns the ticks it took.
fn run_until_done(zones: &mut [Zone; 2]) -> u64 {
    let mut buf = [0u8; 1200];
    let mut now = Instant::ZERO;
    let tick = Duration::from_nanos(33_333_333);
    for step in 1..=1000 {
        for z in 0..2 {
            zones[z].tick(now);
            for _ in zones[z].drain_log() {}
            while zones[z].poll_event().is_some() {}
            while let Some(t) = zones[z].poll_transmit(&mut buf) {
                let Peer::Zone(to) = t.to else {
                    unreachable!("zones only")
                };
                zones[to.0 as usize].handle_datagram(
                    now,
                    Peer::Zone(ZoneID(z as u32)),
                    &buf[..t.len],
                );
            }
        }
        now = now + tick;
        if zones[0].counters().departures == CROWD as u64 {
            return step;
        }
    }
    panic!(
        "the crowd did not finish: {} of {CROWD} departed ({:?})",
        zones[0].counters().departures,
        zones[0].counters()
    );
}

fn flash_crowd(c: &mut Criterion) {
    // How many ticks it takes, once, for the report.
    let ticks = run_until_done(&mut crowd());
    eprintln!("handoff/flash_crowd/{CROWD}: every transfer DONE after {ticks} ticks");

    let mut group = c.benchmark_group("handoff");
    group.throughput(Throughput::Elements(CROWD as u64));
    group.sample_size(20);
    group.bench_function(BenchmarkId::new("flash_crowd", CROWD), |b| {
        b.iter_batched_ref(crowd, run_until_done, BatchSize::LargeInput)
    });
    group.finish();
}

criterion_group!(handoff, flash_crowd);
criterion_main!(handoff);
