//! What a client draws while its acknowledgements lag: no entity ever goes back, and a
//! state that flips back is drawn as it is.
//!
//! Each snapshot is a delta against the newest one the client acknowledged, a few ticks
//! old over a real network, and members are sent at their tier's rate. A far member sent
//! in snapshot *s* and not due again in *s + 1* keeps, in *s + 1*, the state the older
//! baseline held: drawn as the newest snapshot holds it, with acknowledgements three ticks
//! behind, two snapshots in three showed every far entity where it had been when first
//! seen — stepping back further and further as it walked on (found in session 33). The
//! client draws each entity's newest sample instead (`meridian_protocol::delta`,
//! "Samples"), decoded here as it does; and a due member whose state went back to what
//! the baseline holds after a newer sample went out is renewed (a door that opened for a
//! moment, once its opening was drawn, must be drawn shut again).

use meridian_core::entities::{EntityID, EntityInit};
use meridian_core::replicate::{ClientView, InterestConfig, Replicator, record_of, with_game};
use meridian_core::time::Instant;
use meridian_layouts::client::CLIENT_DATAGRAM_MAX;
use meridian_protocol::delta::Record;
use rand::Rng;

use crate::support::{Drawing, OneField, one_zone, rng};

const AT: (f32, f32) = (440.0, 500.0);

/// How the client's acknowledgements reach the zone.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// Always this many ticks behind, nothing lost.
    Steady(u32),
    /// One to six ticks behind, a tenth of the snapshots lost.
    Jittery,
}

/// Doors: entities that stand still and open (game field 1, [`OneField`]) for two ticks
/// in ninety, each on its own phase; walkers show 0.
const DOORS: u64 = 1_000;

fn door_open(id: u64, tick: u64) -> u32 {
    u32::from(id >> 20 >= DOORS && (tick + (id >> 20) * 7) % 90 < 2)
}

/// What the client saw: steps back (walkers), and doors drawn in a state they had not
/// been in for `STALE_TICKS`.
#[derive(Debug, Default)]
struct Seen {
    entries: u64,
    back: Vec<String>,
    stale_doors: Vec<String>,
}

/// Longer than a door's state may be drawn after it changed: a far member's six ticks
/// between samples, the longest lag, and what a budget that binds defers (at 8 KB/s, up
/// to ~26 ticks) — and far shorter than a door stays shut.
const STALE_TICKS: usize = 40;

/// Walkers heading east (x only grows) at every distance from a standing client, and
/// doors among them, one client, `ticks` ticks over `path`, decoded and drawn as the
/// client library does: what the client was shown (see [`Seen`]), in snapshots that
/// carried the whole view.
fn walk(path: Path, bytes_per_second: u32, ticks: u32) -> Seen {
    let (world, mut zone) = one_zone(1024);
    zone.set_game(Box::new(OneField(door_open)));
    let mut rng = rng(0x1a66);
    let doors = DOORS..DOORS + 60;
    for id in (1..=160u64).chain(doors) {
        // Near (60 m), mid (120 m) and far (250 m) tiers all populated.
        let (r, a) = (
            rng.random_range(5.0..240.0f32),
            rng.random_range(0.0..std::f32::consts::TAU),
        );
        let speed = if id >= DOORS {
            0.0
        } else {
            rng.random_range(1.0..5.0)
        };
        zone.insert(&EntityInit {
            id: EntityID(id << 20),
            epoch: 0,
            position: [AT.0 - 60.0 + r * a.cos(), AT.1 + r * a.sin(), 0.0],
            velocity: [speed, 0.0],
            speed_mps_max: 6.0,
            kind: 0,
            flags: 0,
            payload: [0; 64],
        })
        .unwrap();
    }
    let (mut replicator, mut view) = crate::support::replicating(bytes_per_second);
    let mut now = Instant::ZERO;
    let mut client = Drawing::default();
    // Each door's open state over the last ticks, newest last.
    let mut doors_then: Vec<Vec<(u64, i32)>> = Vec::new();
    let mut seen = Seen::default();
    let mut partials = Vec::new();
    for tick in 1..=ticks {
        now = now + world.tick_duration();
        zone.tick(now);
        for _ in zone.drain_log() {}
        let (owned, layout) = (zone.entities(), zone.state_layout());
        doors_then.push(
            (0..owned.len() as u32)
                .map(|slot| with_game(record_of(owned, slot), owned, slot, &layout))
                .filter(|r| r.id >> 20 >= DOORS)
                .map(|r| (r.id, r.game[0]))
                .collect(),
        );
        if doors_then.len() > STALE_TICKS {
            doors_then.remove(0);
        }
        let lag = match path {
            Path::Steady(lag) => lag,
            Path::Jittery => rng.random_range(1..=6),
        };
        if let Some(acked) = client.acknowledged(tick, lag) {
            view.acknowledge(acked);
        }
        let mut out = [0u8; CLIENT_DATAGRAM_MAX];
        let (against, encoded) = replicator.snapshot(&mut view, &zone, None, AT, tick, &mut out);
        // A partial snapshot (the datagram could not carry the whole view: a session's
        // first ticks) may leave a member at an older state.
        let partial = replicator.partial();
        let lost = matches!(path, Path::Jittery) && rng.random_bool(0.1);
        if lost {
            continue;
        }
        let entries = (&out[..encoded.bytes], encoded.entries);
        let before = client.receive(tick, against.tick, entries);
        if partial {
            partials.push(tick);
        } else {
            look(
                &mut seen,
                (tick, against.tick),
                (&before, &client.drawn),
                &doors_then,
            );
        }
    }
    // Only a session's first snapshots may be partial: the rest of the run is checked
    // whole.
    assert!(
        partials.iter().all(|&t| t < 20),
        "{path:?}, {bytes_per_second} B/s: partial snapshots at ticks {partials:?}"
    );
    seen.entries = replicator.counters().entries;
    seen
}

/// Checks what is drawn at `tick` against what was drawn before and the doors' states of
/// the last [`STALE_TICKS`] ticks.
fn look(
    seen: &mut Seen,
    (tick, against): (u32, u32),
    (before, drawn): (&[Record], &[Record]),
    doors_then: &[Vec<(u64, i32)>],
) {
    for r in drawn {
        if r.id >> 20 >= DOORS {
            let was = |states: &Vec<(u64, i32)>| states.iter().any(|&d| d == (r.id, r.game[0]));
            if doors_then.len() == STALE_TICKS && !doors_then.iter().any(was) {
                seen.stale_doors.push(format!(
                    "tick {tick} (against {against}): door {} drawn {}",
                    r.id >> 20,
                    r.game[0]
                ));
            }
            continue;
        }
        if let Ok(i) = before.binary_search_by_key(&r.id, |b| b.id)
            && r.x < before[i].x
        {
            seen.back.push(format!(
                "tick {tick} (against {against}): entity {} back {} cm",
                r.id >> 20,
                before[i].x - r.x
            ));
        }
    }
}

/// Fails with what was seen if anything went back or a door was drawn stale.
fn assert_clean(what: &str, seen: &Seen) {
    assert!(
        seen.back.is_empty() && seen.stale_doors.is_empty(),
        "{what}: {} steps back, {} stale doors: {:?} {:?}",
        seen.back.len(),
        seen.stale_doors.len(),
        &seen.back[..seen.back.len().min(5)],
        &seen.stale_doors[..seen.stale_doors.len().min(5)]
    );
}

#[test]
fn acknowledgements_three_ticks_behind_never_show_an_entity_going_back() {
    let seen = walk(Path::Steady(3), 24_000, 240);
    assert_clean("3 ticks behind", &seen);
    assert!(
        seen.entries > 5_000,
        "{} entries: nothing was tested",
        seen.entries
    );
}

/// Lag that changes from tick to tick and lost snapshots: a baseline descends from some
/// snapshots and not others in every pattern, and acknowledgements skip snapshots the
/// client drew (a door's opening among them: without renewals, drawn open until it next
/// opens); with a budget that binds too.
#[test]
fn jittery_lossy_acknowledgements_never_show_an_entity_going_back() {
    for bytes_per_second in [24_000, 8_000] {
        let seen = walk(Path::Jittery, bytes_per_second, 300);
        assert_clean(&format!("{bytes_per_second} B/s"), &seen);
    }
}

/// Entities that stand still cost nothing once the client holds them, however far its
/// acknowledgements lag: a state sent again while they were new (introduced in every
/// snapshot until one was acknowledged) keeps its name, so no baseline is ever behind it.
/// (A first version named every entry anew: under lag each renewal was itself newer than
/// the baseline, and every entity standing near a client cost an entry every tick for
/// ever.)
#[test]
fn entities_that_stand_still_cost_nothing_under_lag() {
    let (world, mut zone) = one_zone(1024);
    let mut rng = rng(0x5711);
    for id in 1..=100u64 {
        let (x, y) = (
            rng.random_range(-170.0..170.0f32),
            rng.random_range(-170.0..170.0f32),
        );
        zone.insert(&EntityInit {
            id: EntityID(id),
            epoch: 0,
            position: [AT.0 + x, AT.1 + y, 0.0],
            velocity: [0.0, 0.0],
            speed_mps_max: 6.0,
            kind: 0,
            flags: 0,
            payload: [0; 64],
        })
        .unwrap();
    }
    let config = InterestConfig::default();
    let (mut replicator, mut view) = (Replicator::new(config), ClientView::new(&config));
    let mut now = Instant::ZERO;
    let mut late = Vec::new();
    for tick in 1..=200u32 {
        now = now + world.tick_duration();
        zone.tick(now);
        view.acknowledge(tick.saturating_sub(5));
        let mut out = [0u8; CLIENT_DATAGRAM_MAX];
        let (_, encoded) = replicator.snapshot(&mut view, &zone, None, AT, tick, &mut out);
        if tick > 40 && encoded.entries > 0 {
            late.push((tick, encoded.entries));
        }
    }
    assert!(late.is_empty(), "entries after tick 40: {late:?}");
    assert_eq!(view.interest().count(), 100);
}
