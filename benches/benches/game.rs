//! Lag compensation's history (`meridian_core::history`).
//!
//! - `history/record/1000000`: one tick of history for 1,000,000 walkers — the `x` and
//!   `y` columns copied into the ring, plus the tick's slot changes (here 1,000 entities
//!   removed and 1,000 inserted per tick, as handoffs would). Peer
//!   `history/record-with-ids/1000000`: the same ring also copying the id column, as a
//!   history that did not track slot changes would have to.
//! - `history/rewind_ray/1000`: 1,000 rays of 60 m rewound 8 ticks (267 ms, past the
//!   250 ms default cap) among 100,000 walkers spread over the 4 km zone at 2.5 times the
//!   default density around the shooters: candidates from the current grid within the
//!   ray's reach (its box grown by top speed × the age), each found where it was through
//!   the slot changes since. Peer `history/ray_now/1000`: the same rays and candidates
//!   tested where they are now (no rewind).
//!
//! Run: `cargo bench -p meridian-benches --bench game`.

use std::hint::black_box;
use std::time::{Duration, Instant as WallInstant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meridian_benches::{CENTRE, SPEED_MPS_MAX, rng, walker, world};
use meridian_core::entities::{Entities, EntityID};
use meridian_core::grid::Grid;
use meridian_core::history::{History, Ray};
use meridian_core::limits::Limits;
use meridian_core::world::Rect;
use rand::Rng;
use rand::rngs::SmallRng;

const FRAMES: usize = 30;
const DT: f32 = 1.0 / 30.0;

/// `n` walkers in the centre zone, moves logged, and the zone's rectangle.
fn walkers(n: usize, area: Option<Rect>) -> (Entities, Rect, SmallRng) {
    let rect = area.unwrap_or_else(|| world().zone_rect(CENTRE));
    let mut entities = Entities::new(&Limits::for_entities(n as u32 + 2_000));
    entities.log_moves();
    let mut rng = rng(5);
    for id in 0..n as u64 {
        entities
            .insert(&walker(&mut rng, id, rect))
            .expect("capacity");
    }
    (entities, rect, rng)
}

/// One tick of the world outside the timed part: movement and `churn` removals and
/// inserts (fresh ids from `next_id`).
fn churn(entities: &mut Entities, rect: Rect, rng: &mut SmallRng, next_id: &mut u64, n: usize) {
    entities.integrate(DT, rect);
    for _ in 0..n {
        let slot = rng.random_range(0..entities.len() as u32);
        entities.swap_remove(slot);
        entities
            .insert(&walker(rng, *next_id, rect))
            .expect("capacity");
        *next_id += 1;
    }
}

fn record(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let mut group = c.benchmark_group("history");
    group.sample_size(20);
    group.throughput(Throughput::Elements(N as u64));
    let (mut entities, rect, mut rng) = walkers(N, None);
    let mut history = History::new(N + 2_000, FRAMES);
    let (mut tick, mut next_id) = (0u64, N as u64);
    group.bench_function(BenchmarkId::new("record", N), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                churn(&mut entities, rect, &mut rng, &mut next_id, 1_000);
                tick += 1;
                let start = WallInstant::now();
                history.record(tick, &mut entities);
                total += start.elapsed();
            }
            total
        })
    });
    // The peer: x, y and the ids, every tick.
    let mut ring: Vec<(Vec<f32>, Vec<f32>, Vec<EntityID>)> = (0..FRAMES)
        .map(|_| {
            (
                vec![0.0; N + 2_000],
                vec![0.0; N + 2_000],
                vec![EntityID(0); N + 2_000],
            )
        })
        .collect();
    group.bench_function(BenchmarkId::new("record-with-ids", N), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                churn(&mut entities, rect, &mut rng, &mut next_id, 1_000);
                entities.clear_moves();
                tick += 1;
                let start = WallInstant::now();
                let (xs, ys, ids) = &mut ring[tick as usize % FRAMES];
                let len = entities.len();
                xs[..len].copy_from_slice(&entities.xs()[..len]);
                ys[..len].copy_from_slice(&entities.ys()[..len]);
                ids[..len].copy_from_slice(&entities.ids()[..len]);
                black_box(&ring);
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

fn rays(c: &mut Criterion) {
    const N: usize = 100_000;
    const RAYS: usize = 1_000;
    const AGE: u64 = 8;
    let mut group = c.benchmark_group("history");
    group.sample_size(20);
    group.throughput(Throughput::Elements(RAYS as u64));
    // 100,000 walkers in a 2 km square: 0.025 per m², 2.5× the default world's density.
    let area = Rect::new(4096.0, 4096.0, 6096.0, 6096.0);
    let (mut entities, rect, mut rng) = walkers(N, Some(area));
    let mut grid = Grid::covering(rect, 32.0, N + 2_000);
    let mut history = History::new(N + 2_000, FRAMES);
    let (mut tick, mut next_id) = (0u64, N as u64);
    for _ in 0..FRAMES {
        churn(&mut entities, rect, &mut rng, &mut next_id, 100);
        tick += 1;
        history.record(tick, &mut entities);
    }
    let (x, y) = entities.position_lanes();
    grid.update(x, y, entities.len());
    // Rays from 20 m west of a random entity's position AGE ticks ago, aimed at it.
    let shots: Vec<Ray> = (0..RAYS)
        .map(|_| {
            let slot = rng.random_range(0..entities.len() as u32);
            let id = entities.ids()[slot as usize];
            let then = history
                .position_at(&entities, id, tick - AGE)
                .expect("kept")
                .unwrap_or([entities.xs()[slot as usize], entities.ys()[slot as usize]]);
            Ray {
                origin: [then[0] - 20.0, then[1]],
                direction: [1.0, 0.0],
                length_m: 60.0,
                radius_m: 0.5,
            }
        })
        .collect();
    let age_s = AGE as f32 * DT;
    let mut candidates: Vec<EntityID> = Vec::with_capacity(256);
    for (name, at) in [("rewind_ray", tick - AGE), ("ray_now", tick)] {
        group.bench_function(BenchmarkId::new(name, RAYS), |b| {
            b.iter(|| {
                let mut hits = 0u32;
                for ray in &shots {
                    let reach = History::ray_reach(
                        ray,
                        SPEED_MPS_MAX,
                        if at == tick { 0.0 } else { age_s },
                    );
                    candidates.clear();
                    grid.for_each_in_rect(entities.xs(), entities.ys(), reach, |slot| {
                        candidates.push(entities.ids()[slot as usize]);
                    });
                    let hit = history
                        .ray_at(&entities, ray, at, candidates.iter().copied())
                        .expect("kept");
                    hits += u32::from(hit.is_some());
                }
                black_box(hits)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, record, rays);
criterion_main!(benches);
