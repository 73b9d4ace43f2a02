//! Criterion benches for the core pipeline, peers side by side in each group.
//!
//! Run: `cargo bench -p meridian-benches --bench core` (add `-- movement` to pick a group).

use meridian_core::game::state::{FieldKind, StateLayout};
use std::hint::black_box;
use std::time::{Duration, Instant as WallInstant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meridian_benches::{
    Body, CENTRE, SPEED_MPS_MAX, integrate_bodies, rng, walker, world, zone_with_walkers,
};
use meridian_core::entities::{Entities, EntityInit};
use meridian_core::grid::{Grid, Packed};
use meridian_core::limits::Limits;
use meridian_core::time::Instant;
use meridian_core::world::Rect;
use rand::Rng;

const MILLION: usize = 1_000_000;
const DT: f32 = 1.0 / 30.0;

fn walkers(n: usize, seed: u64) -> (Vec<EntityInit>, Rect) {
    let area = world().zone_rect(CENTRE);
    let mut rng = rng(seed);
    (
        (0..n as u64).map(|id| walker(&mut rng, id, area)).collect(),
        area,
    )
}

fn movement(c: &mut Criterion) {
    let mut group = c.benchmark_group("movement");
    group.throughput(Throughput::Elements(MILLION as u64));
    group.sample_size(30);
    let (inits, _) = walkers(MILLION, 1);
    let bounds = world().bounds();

    let mut entities = Entities::new(&Limits::for_entities(MILLION as u32));
    for e in &inits {
        entities.insert(e).unwrap();
    }
    group.bench_function(BenchmarkId::new("meridian", MILLION), |b| {
        b.iter(|| {
            entities.integrate(black_box(DT), bounds);
        })
    });

    let mut bodies: Vec<Body> = inits.iter().map(Body::from).collect();
    group.bench_function(BenchmarkId::new("scalar", MILLION), |b| {
        b.iter(|| integrate_bodies(&mut bodies, black_box(DT), bounds))
    });

    // hecs stores each component type in its own column per archetype: a real ECS peer.
    #[derive(Clone, Copy)]
    struct Position([f32; 3]);
    #[derive(Clone, Copy)]
    struct Velocity([f32; 2]);
    #[derive(Clone, Copy)]
    struct SpeedMax(f32);
    #[derive(Clone, Copy)]
    struct Identity {
        _id: u64,
        _epoch: u32,
        _kind: u16,
        _flags: u16,
    }
    let mut ecs = hecs::World::new();
    ecs.spawn_batch(inits.iter().map(|e| {
        (
            Position(e.position),
            Velocity(e.velocity),
            SpeedMax(e.speed_mps_max),
            Identity {
                _id: e.id.0,
                _epoch: e.epoch,
                _kind: e.kind,
                _flags: e.flags,
            },
            e.payload,
        )
    }));
    group.bench_function(BenchmarkId::new("hecs", MILLION), |b| {
        b.iter(|| {
            let dt = black_box(DT);
            for (p, v, s) in ecs.query_mut::<(&mut Position, &mut Velocity, &SpeedMax)>() {
                let (mut vx, mut vy) = (v.0[0], v.0[1]);
                let speed_squared = vx * vx + vy * vy;
                if speed_squared > s.0 * s.0 {
                    let scale = s.0 / speed_squared.sqrt();
                    vx *= scale;
                    vy *= scale;
                }
                let x = p.0[0] + vx * dt;
                let y = p.0[1] + vy * dt;
                let x_out = x < bounds.x_min || x > bounds.x_max;
                let y_out = y < bounds.y_min || y > bounds.y_max;
                p.0[0] = x.max(bounds.x_min).min(bounds.x_max);
                p.0[1] = y.max(bounds.y_min).min(bounds.y_max);
                v.0 = [if x_out { -vx } else { vx }, if y_out { -vy } else { vy }];
            }
        })
    });
    group.finish();
}

/// One tick's refresh of the spatial index after one tick of movement (what the zone
/// pays every tick), and a from-scratch counting sort of the same entities.
fn grid_rebuild(c: &mut Criterion) {
    let mut group = c.benchmark_group("grid_rebuild");
    group.throughput(Throughput::Elements(MILLION as u64));
    group.sample_size(30);
    let world = world();
    let (inits, _) = walkers(MILLION, 2);
    let mut entities = Entities::new(&Limits::for_entities(MILLION as u32));
    for e in &inits {
        entities.insert(e).unwrap();
    }
    let area = world.zone_rect(CENTRE).expand(world.aura_m());
    let mut grid = Grid::covering(area, world.config().cell_size_m, MILLION);
    let (x, y) = entities.position_lanes();
    grid.update(x, y, MILLION);
    let bounds = world.bounds();

    group.bench_function(BenchmarkId::new("meridian", MILLION), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                entities.integrate(DT, bounds);
                let (x, y) = entities.position_lanes();
                let start = WallInstant::now();
                grid.update(x, y, MILLION);
                total += start.elapsed();
            }
            total
        })
    });
    group.bench_function(BenchmarkId::new("full_sort", MILLION), |b| {
        b.iter(|| {
            grid.clear();
            let (x, y) = entities.position_lanes();
            grid.update(x, y, MILLION);
        })
    });
    group.finish();
}

/// 1,000 queries of radius 100 m around random points among 100,000 entities spread
/// uniformly over 2 km × 2 km; each query collects the matching ids.
fn aoi_query(c: &mut Criterion) {
    const N: usize = 100_000;
    const QUERIES: usize = 1_000;
    const RADIUS_M: f32 = 100.0;
    let area = Rect::new(0.0, 0.0, 2048.0, 2048.0);
    let mut rng = rng(3);
    let inits: Vec<EntityInit> = (0..N as u64).map(|id| walker(&mut rng, id, area)).collect();
    let centres: Vec<[f32; 2]> = (0..QUERIES)
        .map(|_| [rng.random_range(0.0..2048.0), rng.random_range(0.0..2048.0)])
        .collect();

    let mut group = c.benchmark_group("aoi_query");
    group.throughput(Throughput::Elements(QUERIES as u64));

    let mut entities = Entities::new(&Limits::for_entities(N as u32));
    for e in &inits {
        entities.insert(e).unwrap();
    }
    // The default world's cell size, not one tuned to this query.
    let cell_size_m = meridian_core::world::WorldConfig::default().cell_size_m;
    let mut grid = Grid::covering(area, cell_size_m, N);
    let (x, y) = entities.position_lanes();
    grid.update(x, y, N);
    let mut found: Vec<u64> = Vec::with_capacity(N);
    let mut total_found = 0usize;
    // The packed copy is refreshed once per batch of 1,000 queries, inside the timing, as
    // replication will refresh it once per tick for all clients.
    let mut packed = Packed::new(&grid);
    group.bench_function(BenchmarkId::new("meridian", N), |b| {
        b.iter(|| {
            let (xs, ys, ids) = (entities.xs(), entities.ys(), entities.ids());
            packed.refresh(&grid, (xs, ys));
            for &[cx, cy] in &centres {
                found.clear();
                packed.for_each_in_radius(&grid, (xs, ys), (cx, cy, RADIUS_M), |slot| {
                    found.push(ids[slot as usize].0)
                });
                total_found += black_box(&found).len();
            }
        })
    });
    // The bucket grid queried directly, without the packed copy, for comparison.
    group.bench_function(BenchmarkId::new("meridian_buckets", N), |b| {
        b.iter(|| {
            let (xs, ys, ids) = (entities.xs(), entities.ys(), entities.ids());
            for &[cx, cy] in &centres {
                found.clear();
                grid.for_each_in_radius(xs, ys, cx, cy, RADIUS_M, |slot| {
                    found.push(ids[slot as usize].0)
                });
                total_found += black_box(&found).len();
            }
        })
    });

    let tree = rstar::RTree::bulk_load(
        inits
            .iter()
            .map(|e| rstar::primitives::GeomWithData::new([e.position[0], e.position[1]], e.id.0))
            .collect(),
    );
    let mut total_found_rstar = 0usize;
    group.bench_function(BenchmarkId::new("rstar", N), |b| {
        b.iter(|| {
            for centre in &centres {
                found.clear();
                found.extend(
                    tree.locate_within_distance(*centre, RADIUS_M * RADIUS_M)
                        .map(|g| g.data),
                );
                total_found_rstar += black_box(&found).len();
            }
        })
    });
    group.finish();
    black_box((total_found, total_found_rstar));
}

/// One full tick of a zone with n walking entities: ingest, movement, grid, borders,
/// handoff (OFFERs for crossings), ghost batches for all eight neighbours. No neighbour
/// answers, so entities that cross a border are moved back to a random point inside,
/// outside the timing, standing in for the balanced departures and arrivals of a steady
/// state.
/// A 32-byte game state record, as the game API's target is sized: a counter, health,
/// team, animation, heading and twenty bytes of whatever else a game keeps.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Record32 {
    counter: u32,
    health: u16,
    team: u8,
    anim: u8,
    heading: f32,
    rest: [u32; 5],
}

/// Ghosts carry the 32 bytes; clients see health and heading.
const RECORD32: StateLayout = StateLayout::of::<Record32>()
    .field(4, FieldKind::U16)
    .field(8, FieldKind::F32 { per_unit: 100.0 });

/// A trivial game: one system that bumps the counter in every owned entity's record.
struct CounterGame;

impl meridian_core::game::Game for CounterGame {
    fn state_layout(&self) -> StateLayout {
        RECORD32
    }

    fn systems(&mut self, world: &mut meridian_core::game::GameWorld<'_>) {
        let records = world
            .records_mut::<Record32>()
            .expect("the declared record");
        for r in records {
            r.counter = r.counter.wrapping_add(1);
        }
    }
}

fn zone_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("zone_tick");
    group.sample_size(20);
    // `meridian-rewind`: the same with lag compensation's history recorded every tick
    // (owned entities and ghosts, 30 ticks kept; `meridian_core::queries`).
    // `meridian-game`: with a game whose state record is 32 bytes (ghosted with every
    // ghost) and whose one system bumps a counter in every owned entity's record
    // (`meridian_core::game`).
    for (name, n, rewind, game) in [
        ("meridian", 100_000, false, false),
        ("meridian", MILLION, false, false),
        ("meridian-rewind", MILLION, true, false),
        ("meridian-game", MILLION, false, true),
    ] {
        group.throughput(Throughput::Elements(n as u64));
        let mut zone = zone_with_walkers(n, 4);
        if rewind {
            zone.enable_rewind(30, 8.0);
        }
        if game {
            zone.set_game(Box::new(CounterGame));
        }
        let area = zone.rect();
        let tick = zone.world().tick_duration();
        let mut now = Instant::ZERO;
        let mut rng = rng(5);
        let mut next_id = n as u64;
        zone.tick(now);
        group.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                let mut buf = [0u8; 1200];
                for _ in 0..iterations {
                    let start = WallInstant::now();
                    zone.tick(now);
                    total += start.elapsed();
                    now = now + tick;
                    // What a driver does after the tick, outside the timing: persist the
                    // log, send the datagrams (OFFERs, ghost batches), read the events.
                    for _ in zone.drain_log() {}
                    while zone.poll_transmit(&mut buf).is_some() {}
                    while zone.poll_event().is_some() {}
                    let leaving: Vec<_> = zone
                        .crossings()
                        .iter()
                        .map(|c| zone.entities().ids()[c.slot as usize])
                        .collect();
                    for id in leaving {
                        zone.remove(id);
                        let mut arrival = walker(&mut rng, next_id, area);
                        arrival.speed_mps_max = SPEED_MPS_MAX;
                        next_id += 1;
                        zone.insert(&arrival).unwrap();
                    }
                }
                total
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = core;
    config = config();
    targets = movement, grid_rebuild, aoi_query, zone_tick
}
criterion_main!(core);
