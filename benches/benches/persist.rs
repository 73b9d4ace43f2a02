//! Persistence benches, on this machine's disk (the data directory goes under the system
//! temporary directory). Run: `cargo bench -p meridian-benches --bench persist`.
//!
//! - `persist/capture/250000`: the copy a checkpoint takes of a 250,000-entity zone (the
//!   part that runs on the zone's core).
//! - `persist/checkpoint_write/250000`: copy a 250,000-entity zone at a tick boundary,
//!   encode it, write it to a temporary file, fsync, rename, fsync the directory.
//! - `persist/restore/250000`: map that checkpoint, verify every checksum, load it into a
//!   new zone (the restart path before WAL replay).
//! - `persist/wal_tick/1000`: one tick's 1,000 records (relinquishes, adoptions, DONEs)
//!   encoded, appended and `fdatasync`ed.

use std::io::Write;
use std::time::{Duration, Instant as WallInstant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meridian_benches::zone_with_walkers;
use meridian_core::entities::EntityID;
use meridian_core::handoff::{HandoffConfig, LogRecord, NO_SESSION};
use meridian_core::limits::Limits;
use meridian_core::persist::{Capture, encode_record, read_checkpoint};
use meridian_core::time::Instant;
use meridian_core::world::ZoneID;
use meridian_core::zone::Zone;
use meridian_io::store::DataDir;
use meridian_layouts::handoff::{Commit, Transfer};
use meridian_layouts::{U32Le, U64Le};

const ZONE_ENTITIES: usize = 250_000;
const TICK_RECORDS: usize = 1_000;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("meridian-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn checkpoints(c: &mut Criterion) {
    let zone = zone_with_walkers(ZONE_ENTITIES, 3);
    let dir = scratch("ckp");
    let data = DataDir::open(&dir).expect("data directory");
    let store = data.zone(1, zone.id());
    let mut capture = Capture::default();
    let mut buf = Vec::new();
    let mut group = c.benchmark_group("persist");
    group.sample_size(20);
    group.throughput(Throughput::Elements(ZONE_ENTITIES as u64));
    group.bench_function(BenchmarkId::new("capture", ZONE_ENTITIES), |b| {
        b.iter(|| zone.capture(&mut capture));
    });
    group.bench_function(BenchmarkId::new("checkpoint_write", ZONE_ENTITIES), |b| {
        b.iter(|| {
            zone.capture(&mut capture);
            store
                .write_checkpoint(1, 1, &capture, &mut buf)
                .expect("checkpoint written");
        });
    });
    // The checkpoint the restore reads (written here too, so a filter can pick restore
    // alone).
    zone.capture(&mut capture);
    store
        .write_checkpoint(1, 1, &capture, &mut buf)
        .expect("checkpoint written");
    let path = dir.join(format!("zone-{}.ckp.1", zone.id().0));
    let world = *zone.world();
    let limits = Limits::for_entities(ZONE_ENTITIES as u32);
    group.bench_function(BenchmarkId::new("restore", ZONE_ENTITIES), |b| {
        b.iter(|| {
            let file = std::fs::File::open(&path).expect("checkpoint");
            // SAFETY: a bench's own file, not written while mapped.
            #[allow(unsafe_code)]
            let map = unsafe { memmap2::Mmap::map(&file) }.expect("map");
            let view = read_checkpoint(&map).expect("valid checkpoint");
            let restored = Zone::restore_from(
                &world,
                zone.id(),
                limits,
                HandoffConfig::default(),
                Instant::ZERO,
                2,
                Some(&view),
                &[],
            )
            .expect("restored");
            assert_eq!(restored.entities().len(), ZONE_ENTITIES);
            restored
        });
    });
    group.finish();
    drop(data);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One tick's worth of records: a third each of relinquishes, adoptions and DONEs.
fn tick_records(zone: &Zone) -> Vec<LogRecord> {
    (0..TICK_RECORDS)
        .map(|i| {
            let entity = zone.entities().get(i as u32);
            match i % 3 {
                0 => LogRecord::Relinquish {
                    commit: Commit::new(
                        Transfer {
                            entity_id: U64Le::new(entity.id.0),
                            epoch: U32Le::new(1),
                            source_zone: U32Le::new(4),
                            target_zone: U32Le::new(5),
                            transfer_id: U64Le::new(i as u64),
                        },
                        7,
                        meridian_core::handoff::state_of(&entity),
                        NO_SESSION,
                    ),
                },
                1 => LogRecord::Adopt {
                    entity,
                    from: ZoneID(5),
                    transfer_id: i as u64,
                },
                _ => LogRecord::Done {
                    id: EntityID(i as u64),
                    transfer_id: i as u64,
                },
            }
        })
        .collect()
}

fn wal(c: &mut Criterion) {
    let zone = zone_with_walkers(TICK_RECORDS, 4);
    let records = tick_records(&zone);
    let dir = scratch("wal");
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let path = dir.join("bench.wal");
    let mut buf = Vec::with_capacity(256 * TICK_RECORDS);
    let mut group = c.benchmark_group("persist");
    group.throughput(Throughput::Elements(TICK_RECORDS as u64));
    group.bench_function(BenchmarkId::new("wal_tick", TICK_RECORDS), |b| {
        b.iter_custom(|iterations| {
            // A fresh segment per sample, as the WAL begins one per checkpoint.
            let mut file = std::fs::File::create(&path).expect("segment");
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let started = WallInstant::now();
                buf.clear();
                for r in &records {
                    encode_record(r, &mut buf);
                }
                file.write_all(&buf).expect("append");
                file.sync_data().expect("fdatasync");
                total += started.elapsed();
            }
            total
        });
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, checkpoints, wal);
criterion_main!(benches);
