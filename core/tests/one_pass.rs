//! The one-pass snapshot ([`Replicator::set_one_pass`]) against the staged path: the same
//! bytes, the same interest set, the same flags, snapshot after snapshot, through what
//! makes them differ if anything does — budgets that bind, lagging and lost
//! acknowledgements, members leaving and joining at the cap, entities removed and
//! inserted (slots reused), handoffs turning owned members into ghosts, headroom changing
//! under the budget.

use meridian_core::entities::EntityInit;
use meridian_core::replicate::{ClientView, InterestConfig, ReplicateCounters, Replicator};
use meridian_core::time::Instant;
use meridian_core::world::Rect;
use meridian_layouts::client::CLIENT_DATAGRAM_MAX;
use rand::Rng;

use crate::support::{OneField, entity, rng, step, two_zones};

#[test]
fn one_pass_and_staged_snapshots_are_the_same_bytes() {
    same_bytes(false);
}

/// The same with a game that shows clients a field: zero for a third of the entities,
/// changing every few ticks for the others (the server keeps game fields apart from the
/// rest of a record, and only while any is nonzero).
#[test]
fn one_pass_and_staged_snapshots_are_the_same_bytes_with_game_fields() {
    let (plain, shown) = (same_bytes(false), same_bytes(true));
    // The entities that stand still flip back and forth: both paths renewed them alike.
    assert!(shown.renewals > 20, "{shown:?}");
    // The game's fields were sent: an entry of the same scene cost more bytes (the
    // budget binds in both, so the totals are the budget's).
    let per_entry = |c: ReplicateCounters| c.bytes as f64 / c.entries as f64;
    assert!(
        per_entry(shown) > per_entry(plain) * 1.1,
        "{plain:?} {shown:?}"
    );
}

/// What the game shows clients of an entity ([`OneField`]): its id / 3 plus the tick /
/// 8, zero for ids divisible by 3; for the entities that stand still ([`STILL`]), 1 for
/// two ticks in eleven, else 0 (a state that flips back: renewals).
fn shown(id: u64, tick: u64) -> u32 {
    if id >= STILL {
        u32::from((tick + id) % 11 < 2)
    } else if id.is_multiple_of(3) {
        0
    } else {
        (id / 3 + tick / 8) as u32 % 60_000
    }
}

/// The first id of the entities that stand still.
const STILL: u64 = 1 << 40;

fn same_bytes(game: bool) -> ReplicateCounters {
    const CLIENTS: usize = 12;
    let mut rng = rng(0x0e_9a55);
    let (_, mut zones) = two_zones();
    if game {
        for zone in &mut zones {
            zone.set_game(Box::new(OneField(shown)));
        }
    }
    let mut next_id = 1u64;
    for (z, zone) in zones.iter_mut().enumerate() {
        let area = Rect::new(128.0 * z as f32, 0.0, 128.0 * (z + 1) as f32, 128.0);
        for _ in 0..180 {
            zone.insert(&entity(&mut rng, next_id, area, 0.0, 4.0))
                .unwrap();
            next_id += 1;
        }
        for k in 0..16 {
            let still = EntityInit {
                velocity: [0.0; 2],
                ..entity(&mut rng, STILL + 16 * z as u64 + k, area, 0.0, 1.0)
            };
            zone.insert(&still).unwrap();
        }
    }
    // Tiers, cap and budget small enough to bind: a few dozen members, most ticks
    // something is due, and the budget runs out now and then.
    let config = InterestConfig {
        near_m: 15.0,
        mid_m: 40.0,
        far_m: 90.0,
        entities_max: 40,
        bytes_per_second: 4_500,
        search_every_ticks: 3,
        ..InterestConfig::default()
    };
    let mut one = Replicator::new(config);
    let mut staged = Replicator::new(config);
    staged.set_one_pass(false);
    let mut views: Vec<(ClientView, ClientView)> = (0..CLIENTS as u32)
        .map(|k| {
            let v = ClientView::with_phase(&config, k);
            (v.clone(), v)
        })
        .collect();
    let mut at: Vec<(f32, f32)> = (0..CLIENTS)
        .map(|_| (rng.random_range(60.0..128.0), rng.random_range(0.0..128.0)))
        .collect();
    let mut now = Instant::ZERO;
    let (mut out_one, mut out_staged) = ([0u8; CLIENT_DATAGRAM_MAX], [0u8; CLIENT_DATAGRAM_MAX]);
    let mut compared = 0;
    for _ in 0..1_000 {
        // Churn: entities removed, others inserted (slots reused, ids new).
        for _ in 0..3 {
            let z = rng.random_range(0..2);
            let slot = rng.random_range(0..zones[z].entities().len() as u32);
            let id = zones[z].entities().ids()[slot as usize];
            let _ = zones[z].remove(id);
            let area = Rect::new(128.0 * z as f32, 0.0, 128.0 * (z + 1) as f32, 128.0);
            let _ = zones[z].insert(&entity(&mut rng, next_id, area, 0.0, 4.0));
            next_id += 1;
        }
        step(&mut zones, &mut now);
        let zone = &zones[0];
        let tick = zone.tick_count() as u32;
        for (k, (a, b)) in views.iter_mut().enumerate() {
            // Clients walk, now and then jump (a search at once).
            let (x, y) = &mut at[k];
            if rng.random_bool(0.02) {
                (*x, *y) = (rng.random_range(60.0..128.0), rng.random_range(0.0..128.0));
            } else {
                *x = (*x + rng.random_range(-0.3..0.3)).clamp(0.0, 128.0);
                *y = (*y + rng.random_range(-0.3..0.3)).clamp(0.0, 128.0);
            }
            // Acknowledgements lag 0–4 ticks, and a quarter are lost.
            if rng.random_bool(0.75) {
                let acked = tick.saturating_sub(rng.random_range(1..=5));
                a.acknowledge(acked);
                b.acknowledge(acked);
            }
            let headroom = rng.random_range(0..300);
            one.set_headroom(headroom);
            staged.set_headroom(headroom);
            let avatar = Some(k as u64 + 1);
            let ra = one.snapshot(a, zone, avatar, (*x, *y), tick, &mut out_one);
            let rb = staged.snapshot(b, zone, avatar, (*x, *y), tick, &mut out_staged);
            let context = format!("client {k} at tick {tick}");
            assert_eq!(ra, rb, "{context}: baseline or sizes");
            let n = ra.1.bytes;
            assert_eq!(out_one[..n], out_staged[..n], "{context}: entries");
            assert_eq!(one.partial(), staged.partial(), "{context}: partial");
            assert!(a.interest().eq(b.interest()), "{context}: interest set");
            compared += 1;
        }
    }
    // Both paths were taken (the one pass most of the time), and the staged replicator
    // took only the staged one; every other counter agrees.
    let (c, s) = (one.counters(), staged.counters());
    assert_eq!(s.staged, s.snapshots);
    assert!(
        c.staged > 0 && c.staged < c.snapshots / 2,
        "{} of {} staged",
        c.staged,
        c.snapshots
    );
    assert_eq!(
        ReplicateCounters { staged: 0, ..c },
        ReplicateCounters { staged: 0, ..s }
    );
    assert!(c.deferred > 100, "the budget never bound: {c:?}");
    assert_eq!(c.snapshots, compared);
    c
}
