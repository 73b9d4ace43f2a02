//! Client replication: delta encoding alone, and one tick of interest + priority + encoding
//! for many clients.
//!
//! - `encode/meridian/5000`: delta-encode 5,000 quantised records against a baseline of
//!   the same 5,000 in which half changed (moved one to three ticks' worth at 5 m/s; every
//!   tenth changed velocity too). Prints the bytes per entity once.
//! - `encode/meridian-game/5000`: the same with four game fields per record, as a small
//!   game's (health, team, heading, animation): a turn changes heading and animation,
//!   one record in twenty loses health each tick.
//! - `replicate/meridian/1000`: one tick's snapshots for 1,000 clients in a zone of 20,000
//!   walkers (4 × 4 km, ~230 within the 250 m far radius, capped at 128): interest (each
//!   client's set searched by spatial query every 6th tick — a sixth of the clients per
//!   tick — and followed by slot in between), tiers, priority accumulation, byte budget,
//!   delta against each client's acknowledged baseline, written into a 1,200-byte datagram.
//! - `replicate/meridian-staged/1000`: as `meridian`, every snapshot built in stages
//!   (prioritised into a list, ranked if over budget, then encoded: what the budget path
//!   does) instead of in one pass: the peer of the one-pass build.
//! - `replicate/meridian-lagged/1000`: as `meridian`, each client acknowledging the
//!   snapshot of three ticks before (a 100 ms round trip): deltas against an older
//!   baseline, as over a real network.
//! - `replicate/meridian-search-every-tick/1000`: the same with every client's interest set
//!   searched every tick.
//! - `replicate/meridian-dense/1000`: as `meridian`, in a zone of 1,000,000 walkers (the
//!   default world's density: the nearest 128 lie within about 30 m, ~12,000 within 250 m). Between
//!   iterations (untimed) the zone ticks and every client acknowledges the last snapshot,
//!   as in a steady session.
//!
//! Run: `cargo bench -p meridian-benches --bench replicate`.

use std::hint::black_box;
use std::time::{Duration, Instant as WallInstant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meridian_benches::{rng, snapshot_clients, tick_alone, zone_with_walkers};
use meridian_core::replicate::{ClientView, InterestConfig, Replicator};
use meridian_core::time::Instant;
use meridian_layouts::client::CLIENT_DATAGRAM_MAX;
use meridian_protocol::delta::{Record, Wanted, encode_delta};
use rand::Rng;

/// A baseline of `n` records and the wanted list a tick later (see the module docs); with
/// `game`, every record carries four game fields as a small game's would (see
/// `encode/meridian-game`).
fn encode_workload(n: usize, game: bool) -> (Vec<Record>, Vec<Wanted>) {
    let mut rng = rng(11);
    let baseline: Vec<Record> = (0..n as u64)
        .map(|i| Record {
            id: (7 << 40) | (i * 3 + 1),
            x: rng.random_range(0..400_000),
            y: rng.random_range(0..400_000),
            z: 0,
            vx: rng.random_range(-500..500),
            vy: rng.random_range(-500..500),
            kind: 1,
            flags: 0,
            // health, team, heading (hundredths of a radian), animation state.
            game: if game {
                [100, (i % 4) as i32, rng.random_range(-314..314), 1]
            } else {
                [0; 4]
            },
        })
        .collect();
    let wanted: Vec<Wanted> = baseline
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut record = *r;
            if i % 2 == 0 {
                let ticks = rng.random_range(1..=3);
                record.x += i32::from(r.vx) * ticks / 30;
                record.y += i32::from(r.vy) * ticks / 30;
                if i % 10 == 0 {
                    record.vx = -record.vx;
                    if game {
                        // A turn changes the heading and the animation.
                        record.game[2] = rng.random_range(-314..314);
                        record.game[3] = 2;
                    }
                }
            }
            if game && i % 20 == 0 {
                record.game[0] -= rng.random_range(1..=25);
            }
            Wanted {
                record,
                due: true,
                renew: false,
            }
        })
        .collect();
    (baseline, wanted)
}

fn encode(c: &mut Criterion) {
    const N: usize = 5000;
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(N as u64));
    for (name, game) in [("meridian", false), ("meridian-game", true)] {
        let (baseline, wanted) = encode_workload(N, game);
        let mut out = vec![0u8; N * 32];
        let mut result = Vec::with_capacity(N);
        let encoded = encode_delta(&baseline, &wanted, &mut out, &mut result);
        eprintln!(
            "encode/{name}/{N}: {} bytes, {:.2} bytes per entity ({} entries)",
            encoded.bytes,
            encoded.bytes as f64 / N as f64,
            encoded.entries
        );
        group.bench_function(BenchmarkId::new(name, N), |b| {
            b.iter(|| {
                black_box(encode_delta(
                    black_box(&baseline),
                    black_box(&wanted),
                    &mut out,
                    &mut result,
                ))
            })
        });
    }
    group.finish();
}

fn replicate(c: &mut Criterion) {
    let mut group = c.benchmark_group("replicate");
    group.sample_size(20);
    // As shipped: each client's interest set searched every 6th tick (phases spread),
    // followed in between. The peer: the same work with a search every tick.
    // Dense: the default world's density (1,000,000 walkers over the 4 km zone, ~12,000
    // within the far radius), where the nearest 128 lie within about 30 m.
    // Staged: every snapshot prioritised into a list, then encoded (the path the budget
    // takes when what is due does not fit), for the one-pass build's ratio.
    // Lagged: each client acknowledges the snapshot of three ticks ago (a 100 ms round
    // trip at 30 Hz), so deltas are against an older baseline, as over a real network;
    // the others acknowledge the newest at once.
    for (name, search_every_ticks, walkers, one_pass, ack_lag) in [
        ("meridian", 6, 20_000, true, 0),
        ("meridian-staged", 6, 20_000, false, 0),
        ("meridian-lagged", 6, 20_000, true, 3),
        ("meridian-search-every-tick", 1, 20_000, true, 0),
        ("meridian-dense", 6, 1_000_000, true, 0),
    ] {
        let config = InterestConfig {
            search_every_ticks,
            ..InterestConfig::default()
        };
        replicate_one(&mut group, name, config, (walkers, one_pass, ack_lag));
    }
    group.finish();
}

fn replicate_one(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    config: InterestConfig,
    (walkers, one_pass, ack_lag): (usize, bool, u32),
) {
    const CLIENTS: usize = 1000;
    let mut zone = zone_with_walkers(walkers, 12);
    let tick = zone.world().tick_duration();
    let mut now = Instant::ZERO;
    zone.tick(now);
    let mut replicator = Replicator::new(config);
    replicator.set_one_pass(one_pass);
    let mut views: Vec<ClientView> = (0..CLIENTS as u32)
        .map(|k| ClientView::with_phase(&config, k))
        .collect();
    let mut out = [0u8; CLIENT_DATAGRAM_MAX];
    let mut snapshot_tick = 0u32;
    let mut bytes = 0u64;
    group.throughput(Throughput::Elements(CLIENTS as u64));
    group.bench_function(BenchmarkId::new(name, CLIENTS), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                // Untimed: the world moves on and every client has applied the last snapshot.
                now = now + tick;
                tick_alone(&mut zone, now);
                for view in &mut views {
                    view.acknowledge(snapshot_tick.saturating_sub(ack_lag));
                }
                snapshot_tick += 1;
                let start = WallInstant::now();
                bytes += snapshot_clients(
                    (&mut replicator, &mut views),
                    &zone,
                    snapshot_tick,
                    &mut out,
                );
                total += start.elapsed();
            }
            total
        })
    });
    let c = replicator.counters();
    eprintln!(
        "replicate/{name}/{CLIENTS}: {:.0} entry bytes per snapshot, {:.1} entries per snapshot, {} full, {} deferred, {} snapshots",
        bytes as f64 / c.snapshots.max(1) as f64,
        c.entries as f64 / c.snapshots.max(1) as f64,
        c.full,
        c.deferred,
        c.snapshots
    );
}

criterion_group!(benches, encode, replicate);
criterion_main!(benches);
