//! What a client is shown while its acknowledgements lag: no entity ever goes back.
//!
//! Each snapshot is a delta against the newest one the client acknowledged, a few ticks
//! old over a real network, and members are sent at their tier's rate. A far member sent
//! in snapshot *s* and not due again in *s + 1* used to keep, in *s + 1*, the state the
//! older baseline held: with acknowledgements three ticks behind, two snapshots in three
//! showed every far entity where it had been when first seen — stepping back further and
//! further as it walked on (found while measuring a redesign of the client state,
//! session 33).

use meridian_core::entities::{EntityID, EntityInit};
use meridian_core::limits::Limits;
use meridian_core::replicate::{ClientView, InterestConfig, Replicator};
use meridian_core::time::Instant;
use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;
use meridian_layouts::client::CLIENT_DATAGRAM_MAX;
use meridian_protocol::delta::{Record, apply_delta};
use rand::Rng;

use crate::support::rng;

const AT: (f32, f32) = (440.0, 500.0);

/// How the client's acknowledgements reach the zone.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// Always this many ticks behind, nothing lost.
    Steady(u32),
    /// One to six ticks behind, a tenth of the snapshots lost.
    Jittery,
}

/// Walkers heading east (x only grows) at every distance from a standing client, one
/// client, `ticks` ticks over `path`: returns the entries sent and the steps back seen in
/// snapshots that carried the whole view.
fn walk(path: Path, bytes_per_second: u32, ticks: u32) -> (u64, Vec<String>) {
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
    let mut zone = Zone::new(&world, ZoneID(0), Limits::for_entities(1024), Instant::ZERO).unwrap();
    let mut rng = rng(0x1a66);
    for id in 1..=160u64 {
        // Near (60 m), mid (120 m) and far (250 m) tiers all populated.
        let (r, a) = (
            rng.random_range(5.0..240.0f32),
            rng.random_range(0.0..std::f32::consts::TAU),
        );
        zone.insert(&EntityInit {
            id: EntityID(id << 20),
            epoch: 0,
            position: [AT.0 - 60.0 + r * a.cos(), AT.1 + r * a.sin(), 0.0],
            velocity: [rng.random_range(1.0..5.0), 0.0],
            speed_mps_max: 6.0,
            kind: 0,
            flags: 0,
            payload: [0; 64],
        })
        .unwrap();
    }
    let config = InterestConfig {
        bytes_per_second,
        ..InterestConfig::default()
    };
    let (mut replicator, mut view) = (Replicator::new(config), ClientView::new(&config));
    let mut now = Instant::ZERO;
    // What the client received, by tick, and the last x it showed of each entity.
    let mut received: Vec<(u32, Vec<Record>)> = Vec::new();
    let mut shown: Vec<(u64, i32)> = Vec::new();
    let (mut back, mut partials) = (Vec::new(), Vec::new());
    for tick in 1..=ticks {
        now = now + world.tick_duration();
        zone.tick(now);
        for _ in zone.drain_log() {}
        let lag = match path {
            Path::Steady(lag) => lag,
            Path::Jittery => rng.random_range(1..=6),
        };
        // The newest snapshot the client had received `lag` ticks ago.
        if let Some(&(acked, _)) = received.iter().rev().find(|(t, _)| *t + lag <= tick) {
            view.acknowledge(acked);
        }
        let mut out = [0u8; CLIENT_DATAGRAM_MAX];
        let (against, encoded) = replicator.snapshot(&mut view, &zone, None, AT, tick, &mut out);
        // A partial snapshot (the datagram could not carry the whole view: a session's
        // first ticks) may leave a member at the older state its baseline holds.
        let partial = replicator.partial();
        let lost = matches!(path, Path::Jittery) && rng.random_bool(0.1);
        if lost {
            continue;
        }
        let base = received.iter().find(|(t, _)| *t == against.tick);
        let base = base.map_or(&[][..], |(_, records)| records.as_slice());
        let mut records = Vec::new();
        apply_delta(base, &out[..encoded.bytes], encoded.entries, &mut records)
            .unwrap_or_else(|e| panic!("tick {tick}: {e:?}"));
        for r in &records {
            match shown.binary_search_by_key(&r.id, |&(id, _)| id) {
                Ok(i) if r.x < shown[i].1 && !partial => back.push(format!(
                    "tick {tick} (against {}): entity {} back {} cm",
                    against.tick,
                    r.id >> 20,
                    shown[i].1 - r.x
                )),
                _ => {}
            }
        }
        if partial {
            partials.push(tick);
        }
        shown = records.iter().map(|r| (r.id, r.x)).collect();
        received.push((tick, records));
        if received.len() > 40 {
            received.remove(0);
        }
    }
    // Only a session's first snapshots may be partial: the rest of the run is checked
    // whole.
    assert!(
        partials.iter().all(|&t| t < 20),
        "{path:?}, {bytes_per_second} B/s: partial snapshots at ticks {partials:?}"
    );
    (replicator.counters().entries, back)
}

#[test]
fn acknowledgements_three_ticks_behind_never_show_an_entity_going_back() {
    let (entries, back) = walk(Path::Steady(3), 24_000, 240);
    assert!(
        back.is_empty(),
        "{} steps back: {:?}",
        back.len(),
        &back[..back.len().min(5)]
    );
    assert!(entries > 5_000, "{entries} entries: nothing was tested");
}

/// Lag that changes from tick to tick and lost snapshots: a baseline descends from some
/// snapshots and not others in every pattern; with a budget that binds (resent samples
/// go past it, into debt).
#[test]
fn jittery_lossy_acknowledgements_never_show_an_entity_going_back() {
    for bytes_per_second in [24_000, 8_000] {
        let (_, back) = walk(Path::Jittery, bytes_per_second, 300);
        assert!(
            back.is_empty(),
            "{bytes_per_second} B/s: {} steps back: {:?}",
            back.len(),
            &back[..back.len().min(5)]
        );
    }
}
