//! What seamless interest costs: the default world's two zones (4,096 × 2,048 m, 250,000
//! walkers each, aura 32 m) with 1,000 clients' avatars bound to sessions, one tick of
//! both zones and the datagrams between them delivered, with watching off (ghosts cover
//! the aura only) and on (each zone ghosts to the other what its clients watch, up to
//! 298 m past the border).
//!
//! - `seamless/<off|on>-uniform/1000`: the avatars spread over the world (as the swarm's
//!   `random` pattern puts them): about an eighth of them see across the border.
//! - `seamless/<off|on>-border/1000`: every avatar within 250 m of the border, the worst
//!   case for watching: all 1,000 watch the other zone.
//!
//! Each variant also prints, once, the bytes per second the zones send each other (every
//! zone-to-zone datagram of 90 ticks, aura ghosts included) and the ghosts each holds.
//!
//! Run: `cargo bench -p meridian-benches --bench seamless`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use meridian_benches::{rng, walker};
use meridian_core::ghosts::watch::WatchConfig;
use meridian_core::handoff::{HandoffConfig, NO_SESSION};
use meridian_core::limits::Limits;
use meridian_core::net::Peer;
use meridian_core::time::Instant;
use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;
use meridian_layouts::U64Le;
use meridian_layouts::handoff::SessionBinding;

const WALKERS: usize = 250_000;
const CLIENTS: usize = 1000;
const BORDER_X: f32 = 2048.0;

/// The default world (`node/worlds/default.toml` has the same geometry).
fn world() -> World {
    World::new(WorldConfig::default()).unwrap()
}

struct Pair {
    zones: Vec<Zone>,
    now: Instant,
    buf: Vec<u8>,
}

impl Pair {
    fn new(watch: WatchConfig, border_only: bool) -> Pair {
        let world = world();
        let config = HandoffConfig {
            watch,
            ..HandoffConfig::default()
        };
        let limits = Limits::for_entities((2 * WALKERS) as u32);
        let mut zones: Vec<Zone> = world
            .zones()
            .map(|z| Zone::with_config(&world, z, limits, config, Instant::ZERO, 0).unwrap())
            .collect();
        let mut rng = rng(23);
        for (k, zone) in zones.iter_mut().enumerate() {
            let rect = world.zone_rect(ZoneID(k as u32));
            for i in 0..WALKERS as u64 {
                zone.insert(&walker(&mut rng, ((k as u64) << 40) | i, rect))
                    .unwrap();
            }
        }
        for c in 0..CLIENTS as u64 {
            let k = (c % 2) as usize;
            let rect = world.zone_rect(ZoneID(k as u32));
            let area = if border_only {
                let x = (BORDER_X - 250.0, BORDER_X + 250.0);
                Rect::new(x.0.max(rect.x_min), 0.0, x.1.min(rect.x_max), 2048.0)
            } else {
                rect
            };
            let mut avatar = walker(&mut rng, (9 << 40) | c, area);
            avatar.kind = 2;
            zones[k].insert(&avatar).unwrap();
            let binding = SessionBinding {
                session_id: U64Le::new(c + 1),
                ..NO_SESSION
            };
            assert!(zones[k].bind_session(avatar.id, binding));
        }
        Pair {
            zones,
            now: Instant::ZERO,
            buf: vec![0; 1500],
        }
    }

    /// One tick of both zones, then every datagram delivered; returns the bytes sent.
    fn tick(&mut self) -> u64 {
        self.now = self.now + self.zones[0].world().tick_duration();
        for zone in &mut self.zones {
            zone.tick(self.now);
            for _ in zone.drain_log() {}
        }
        let mut bytes = 0;
        for from in 0..self.zones.len() {
            while let Some(t) = self.zones[from].poll_transmit(&mut self.buf) {
                if let Peer::Zone(to) = t.to {
                    let sender = Peer::Zone(ZoneID(from as u32));
                    let datagram = &self.buf[..t.len];
                    self.zones[to.0 as usize].handle_datagram(self.now, sender, datagram);
                    bytes += t.len as u64;
                }
            }
        }
        bytes
    }
}

fn seamless(c: &mut Criterion) {
    let mut group = c.benchmark_group("seamless");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    for (layout, border_only) in [("uniform", false), ("border", true)] {
        for (mode, watch) in [("off", WatchConfig::OFF), ("on", WatchConfig::default())] {
            let mut pair = Pair::new(watch, border_only);
            // Ten ticks to bring the first watched ghosts, then 90 (3 s) measured.
            for _ in 0..10 {
                pair.tick();
            }
            let bytes: u64 = (0..90).map(|_| pair.tick()).sum();
            let ghosts: Vec<usize> = pair.zones.iter().map(|z| z.ghosts().len()).collect();
            let watched: u64 = pair
                .zones
                .iter()
                .map(|z| z.counters().watched_ghosts_sent)
                .sum();
            println!(
                "seamless/{mode}-{layout}: {:.0} KB/s between the zones, ghosts held {ghosts:?}, watched ghost records sent {watched}",
                bytes as f64 / 3.0 / 1000.0
            );
            group.bench_function(BenchmarkId::new(format!("{mode}-{layout}"), CLIENTS), |b| {
                b.iter(|| pair.tick())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, seamless);
criterion_main!(benches);
