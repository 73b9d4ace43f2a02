//! Continuity at handoff: a client's replication state travels with its avatar, so the
//! first snapshot from the zone it moves to is a delta like any other — no scene
//! re-appearing in pieces after a border crossing.

use meridian_core::entities::{EntityID, EntityInit};
use meridian_core::world::Rect;

use crate::clients::{Harness, UNIX_MS, WORLD_ID, client_addr, events};
use meridian_client::ClientEvent;

/// Two 128 m zones side by side, an entity every 8 m over both (rows alternately walking
/// north and south at `speed` m/s), and one client connected 40 ticks ago in zone 0,
/// about to walk east.
fn field_and_walker(
    speed: f32,
) -> (
    Harness,
    Vec<(std::net::SocketAddr, meridian_client::Client)>,
) {
    let mut h = Harness::with_world(Rect::new(0.0, 0.0, 256.0, 128.0), 2);
    let mut n = 0;
    for i in 0..32 {
        for j in 0..16 {
            let (x, y) = (4.0 + 8.0 * i as f32, 4.0 + 8.0 * j as f32);
            let e = EntityInit {
                id: EntityID(1_000_000 + n),
                epoch: 0,
                position: [x, y, 0.0],
                velocity: [0.0, if j % 2 == 0 { speed } else { -speed }],
                speed_mps_max: 7.0,
                kind: 1,
                flags: 0,
                payload: [0; 64],
            };
            h.zones[usize::from(x >= 128.0)].insert(&e).unwrap();
            n += 1;
        }
    }
    let auth = h.auth.clone();
    let mut clients = vec![(
        client_addr(1),
        h.client(1, WORLD_ID, UNIX_MS + 600_000, &auth),
    )];
    for _ in 0..40 {
        h.step(&mut clients, |_, _| {});
    }
    (h, clients)
}

/// Two 128 m zones side by side, a static field of entities every 8 m over both, one
/// client walking east across the border. Returns the harness after the walk, the
/// sealed sizes of zone 0's snapshots to the client once it settled, the sizes of zone
/// 1's, and the fewest entities the client held at any tick once it had its full view.
fn walk_across() -> (Harness, Vec<usize>, Vec<usize>, usize) {
    let (mut h, mut clients) = field_and_walker(0.0);
    clients[0].1.set_intent(127, 0, 0);
    let mut fewest = usize::MAX;
    let mut redirected_at = None;
    let mut sizes = [Vec::new(), Vec::new()];
    for step in 0..900 {
        h.to_clients.clear();
        h.step(&mut clients, |_, _| {});
        for (k, to, bytes) in &h.to_clients {
            // Zone 0 sends snapshots until the handoff (REDIRECTs after it); zone 1 only
            // snapshots.
            if *to == client_addr(1) && (*k == 1 || redirected_at.is_none()) {
                sizes[*k].push(bytes.len());
            }
        }
        for e in events(&mut clients[0].1) {
            match e {
                ClientEvent::Redirected { .. } => redirected_at = Some(step),
                ClientEvent::Closed(reason) => panic!("closed: {reason:?}"),
                _ => {}
            }
        }
        fewest = fewest.min(clients[0].1.entities().1.len());
        if redirected_at.is_some_and(|r| step > r + 60) {
            break;
        }
    }
    assert!(redirected_at.is_some(), "the avatar crossed into zone 1");
    assert_eq!(clients[0].1.counters().decode_errors, 0);
    let [zone0, zone1] = sizes;
    (h, zone0, zone1, fewest)
}

#[test]
fn the_first_snapshot_after_a_handoff_is_a_delta_and_the_view_stays_whole() {
    let (h, zone0, zone1, fewest) = walk_across();
    let mut steady = zone0.clone();
    steady.sort_unstable();
    let median = steady[steady.len() / 2];
    let first = zone1[0];
    eprintln!(
        "snapshot bytes: zone 0 median {median} (max {}), zone 1 first {first}, next {:?}",
        steady[steady.len() - 1],
        &zone1[1..6]
    );
    assert!(
        first <= 2 * median,
        "the first snapshot after the handoff ({first} B) is over twice the median ({median} B)"
    );
    let arrived = h.sessions[1].counters();
    assert_eq!(arrived.sessions_arrived, 1);
    assert_eq!(arrived.views_installed, 1, "{arrived:?}");
    let zone1 = h.sessions[1].replication_counters();
    assert_eq!(
        zone1.full, 0,
        "zone 1 never sent a full snapshot: {zone1:?}"
    );
    assert!(zone1.carried >= 1, "{zone1:?}");
    // 512 entities lie within the far radius throughout: the client holds its 128 at
    // every tick, crossing included (a full snapshot would take several ticks of budget).
    assert_eq!(fewest, 128);
}

/// Remote entities drawn by the client library (`Client::render_remote`, at 120 Hz) glide
/// through a handoff: entities walking at 1.5 m/s never move more than their speed allows
/// between two frames, before, during and after the client's zone change.
#[test]
fn remote_motion_is_smooth_across_a_handoff() {
    use meridian_core::time::Instant;
    let (mut h, mut clients) = field_and_walker(1.5);
    clients[0].1.set_intent(127, 0, 0);
    let mut last: std::collections::HashMap<u64, [f32; 2]> = Default::default();
    let (mut worst, mut zones) = (0.0f32, Vec::new());
    let frame = std::time::Duration::from_nanos(8_333_333);
    for _ in 0..500 {
        h.step(&mut clients, |_, _| {});
        let c = &mut clients[0].1;
        if zones.last() != Some(&c.zone()) {
            zones.push(c.zone());
        }
        for k in 0..4u32 {
            let at: Instant = h.now + frame * k;
            c.render_remote(at, |id, p| {
                if let Some(q) = last.insert(id, p) {
                    let d = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt();
                    worst = worst.max(d);
                }
            });
        }
    }
    assert_eq!(zones, vec![0, 1], "the client changed zone");
    // 1.5 m/s over one 120 Hz frame is 1.25 cm; a bent path and the 1 cm quantum allow a
    // little more, a snapshot-to-snapshot step (5 cm) or a reset at the handoff far more.
    assert!(
        worst <= 0.03,
        "a remote entity moved {worst} m between two frames"
    );
}

/// A client's interest set changes at the cap only when it is searched, every
/// `search_every_ticks`, and on the same ticks in every zone: across a handoff too, so an
/// entity that left the set at the old zone's last search cannot be back a tick later
/// after the new zone's first. A client walks east through a still field after another
/// one crossed ahead of it (so its session slot differs between the two zones: by slot,
/// its searches fell on another phase after the crossing); the ticks at which what it
/// draws changes are whole search intervals apart throughout.
#[test]
fn interest_is_searched_on_the_same_ticks_across_a_handoff() {
    let (mut h, mut clients) = field_and_walker(0.0);
    let auth = h.auth.clone();
    let runner = h.client(2, WORLD_ID, UNIX_MS + 600_000, &auth);
    clients.push((client_addr(2), runner));
    clients[1].1.set_intent(127, 0, 0);
    for _ in 0..1500 {
        h.step(&mut clients, |_, _| {});
        let _ = events(&mut clients[1].1);
        if clients[1].1.zone() == 1 {
            break;
        }
    }
    assert_eq!(clients[1].1.zone(), 1, "the runner crossed first");
    let every = meridian_core::replicate::InterestConfig::default().search_every_ticks;
    clients[0].1.set_intent(127, 0, 0);
    let (mut changed, mut zones) = (Vec::new(), Vec::new());
    let mut before: Vec<u64> = Vec::new();
    for _ in 0..300 {
        h.step(&mut clients, |_, _| {});
        let _ = events(&mut clients[1].1);
        let c = &mut clients[0].1;
        let _ = events(c);
        if zones.last() != Some(&c.zone()) {
            zones.push(c.zone());
        }
        let (tick, drawn) = c.entities();
        let ids: Vec<u64> = drawn.iter().map(|r| r.id).collect();
        if ids != before && !before.is_empty() {
            changed.push(tick);
        }
        before = ids;
    }
    assert_eq!(zones, vec![0, 1], "the walker changed zone");
    assert!(
        changed.len() > 10,
        "the set changed {} times",
        changed.len()
    );
    let uneven: Vec<_> = changed
        .windows(2)
        .filter(|w| (w[1] - w[0]) % every != 0)
        .collect();
    assert!(
        uneven.is_empty(),
        "changes at ticks {changed:?}: {uneven:?}"
    );
}

/// Inputs the old zone had received and not yet played go to the new zone with the
/// avatar (VIEW) and play there at their ticks. The client walks back and forth across
/// the border under 1–4 ticks of jittered delay each way, so a zone holds a few inputs
/// when the avatar leaves it, and the client's next packets, overtaking one another, do
/// not always reach back to them: without the carry some are lost.
#[test]
fn inputs_waiting_at_the_old_zone_are_played_at_the_new_one() {
    let (mut h, mut clients) = field_and_walker(0.0);
    h.delay = (1, 3);
    let (mut zones, mut east) = (vec![0], true);
    let mut turn_at = None;
    for step in 0..2400 {
        // Turned around 30 ticks (about 6 m) past each crossing.
        let zone = clients[0].1.zone();
        if zones.last() != Some(&zone) {
            zones.push(zone);
            turn_at = Some(step + 30);
        }
        if turn_at == Some(step) {
            east = !east;
        }
        clients[0].1.set_intent(if east { 127 } else { -127 }, 0, 0);
        h.step(&mut clients, |_, _| {});
    }
    assert!(
        zones.len() >= 10,
        "the client crossed back and forth: {zones:?}"
    );
    assert!(clients[0].1.is_connected());
    let [c0, c1] = [h.sessions[0].counters(), h.sessions[1].counters()];
    eprintln!(
        "carried {} + {}, lost {} + {}, guessed {} + {}, skipped {} + {}",
        c0.inputs_carried,
        c1.inputs_carried,
        c0.inputs_lost,
        c1.inputs_lost,
        c0.inputs_guessed,
        c1.inputs_guessed,
        c0.inputs_skipped,
        c1.inputs_skipped
    );
    assert_eq!(
        (c0.inputs_lost, c1.inputs_lost),
        (0, 0),
        "no input was lost: nothing was dropped on the way"
    );
    assert!(
        c0.inputs_carried > 0 && c1.inputs_carried > 0,
        "each zone took inputs the other had waiting: {c0:?} {c1:?}"
    );
}

mod damaged {
    use meridian_core::entities::{EntityID, EntityInit};
    use meridian_core::limits::Limits;
    use meridian_core::replicate::{ClientView, InterestConfig, Replicator};
    use meridian_core::time::Instant;
    use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
    use meridian_core::zone::Zone;
    use meridian_layouts::view::VIEW_STREAM_MAX;
    use meridian_protocol::delta::{Record, apply_delta};
    use proptest::prelude::*;

    const AT: (f32, f32) = (500.0, 500.0);

    /// A 1 km zone with an entity every 25 m (the client's nearest 128 reach into all
    /// three distance tiers), one snapshot acknowledged, and the stream its state makes.
    fn carried() -> (Zone, meridian_core::replicate::Carried, Vec<u8>) {
        let (zone, carried, stream, _, _, _) = origin();
        (zone, carried, stream)
    }

    type Origin = (
        Zone,
        meridian_core::replicate::Carried,
        Vec<u8>,
        Replicator,
        ClientView,
        Client,
    );

    /// What the client holds: the snapshot it acknowledged (its baseline over there),
    /// and the newest one it was shown.
    #[derive(Default)]
    struct Client {
        acked: Vec<Record>,
        shown: Vec<Record>,
    }

    /// As [`carried`], with the replicator and the view the state came from.
    fn origin() -> Origin {
        origin_with(InterestConfig::default(), &[AT])
    }

    /// As [`origin`], under `config`, with a snapshot made at each of `at` (the first
    /// acknowledged, the others not) before the state is carried.
    fn origin_with(config: InterestConfig, at: &[(f32, f32)]) -> Origin {
        let world = World::new(WorldConfig {
            bounds: Rect::new(0.0, 0.0, 1000.0, 1000.0),
            zones_x: 1,
            zones_y: 1,
            ..WorldConfig::default()
        })
        .unwrap();
        let mut zone =
            Zone::new(&world, ZoneID(0), Limits::for_entities(2048), Instant::ZERO).unwrap();
        for i in 0..1600u64 {
            let e = EntityInit {
                id: EntityID(5_000 + 7 * i),
                epoch: 0,
                position: [
                    (i % 40) as f32 * 25.0 + 1.0,
                    (i / 40) as f32 * 25.0 + 3.0,
                    0.0,
                ],
                velocity: [0.5, -0.25],
                speed_mps_max: 7.0,
                kind: 1,
                flags: 3,
                payload: [0; 64],
            };
            zone.insert(&e).unwrap();
        }
        zone.tick(Instant::ZERO);
        for _ in zone.drain_log() {}
        let mut replicator = Replicator::new(config);
        let mut view = ClientView::new(&config);
        let mut out = [0u8; 1200];
        let mut client = Client::default();
        for (tick, &p) in (1..).zip(at) {
            let (_, encoded) = replicator.snapshot(&mut view, &zone, None, p, tick, &mut out);
            apply_delta(
                &client.acked,
                &out[..encoded.bytes],
                encoded.entries,
                &mut client.shown,
            )
            .unwrap();
            if tick == 1 {
                view.acknowledge(1);
                client.acked = client.shown.clone();
            }
        }
        let mut stream = vec![0; VIEW_STREAM_MAX];
        let (carried, len) = replicator.carry(&view, 0, &mut stream).unwrap();
        stream.truncate(len);
        (zone, carried, stream, replicator, view, client)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A carried stream damaged anywhere (bytes changed, cut short) is refused or
        /// taken, never a panic; a view that refused it is as new: its next snapshot is
        /// a full one.
        #[test]
        fn a_damaged_stream_is_refused_or_taken_never_a_panic(
            flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..6),
            cut in any::<u16>(),
        ) {
            let (zone, carried, mut stream) = carried();
            for (at, b) in flips {
                let i = usize::from(at) % stream.len();
                stream[i] ^= b;
            }
            let keep = stream.len() - usize::from(cut) % 4;
            stream.truncate(keep);
            let config = InterestConfig::default();
            let mut replicator = Replicator::new(config);
            let mut view = ClientView::new(&config);
            let installed = replicator.install(&mut view, &carried, &stream);
            let mut out = [0u8; 1200];
            let (baseline, _) = replicator.snapshot(&mut view, &zone, None, AT, 2, &mut out);
            prop_assert!(view.interest().count() <= config.entities_max);
            if installed.is_err() {
                prop_assert_eq!(baseline.tick, 0, "a refused state left the view as new");
            } else {
                prop_assert_eq!(baseline, carried.baseline);
            }
        }
    }

    /// The zone a state is carried to builds the very snapshot the zone it came from would
    /// have built: same baseline, members, priorities and budget, byte for byte — and
    /// searches the client's interest when that zone would have, no sooner: the members
    /// are followed from where the origin searched (a search would change the set in the
    /// one snapshot that should cost least) unless the origin's last search did not find
    /// the whole view (`Carried::search_again`; the seamless tests). After one snapshot
    /// and after two (the first, to a new session, could not carry every member: the view
    /// is not whole yet, `Carried::drawn_over`).
    #[test]
    fn a_carried_state_makes_the_same_next_snapshot() {
        let config = InterestConfig::default();
        // (snapshots made at the origin before the carry, the first snapshot after it)
        for (made, first) in [(1, 2), (2, 3)] {
            let (mut zone, carried, stream, mut from, mut view, _) =
                origin_with(config, &vec![AT; made]);
            assert!(
                !carried.search_again,
                "{made} snapshots made: searched whole"
            );
            let mut to = Replicator::new(config);
            let mut moved = ClientView::new(&config);
            to.install(&mut moved, &carried, &stream).unwrap();
            // The entities move on: due members get updates, the others keep their
            // baseline. Tick 6 searches (the phase), on both sides.
            let mut now = Instant::ZERO;
            for tick in [first, first + 1, 6] {
                now = now + zone.world().tick_duration();
                zone.tick(now);
                for _ in zone.drain_log() {}
                let (mut a, mut b) = ([0u8; 1200], [0u8; 1200]);
                let searched = (from.counters().searches, to.counters().searches);
                let (base_a, enc_a) = from.snapshot(&mut view, &zone, None, AT, tick, &mut a);
                let (base_b, enc_b) = to.snapshot(&mut moved, &zone, None, AT, tick, &mut b);
                let from_searched = from.counters().searches - searched.0;
                let to_searched = to.counters().searches - searched.1;
                let context = format!("{made} snapshots made, tick {tick}");
                assert_eq!(to_searched, from_searched, "{context}: searched");
                if tick == first {
                    assert_eq!(base_b, carried.baseline);
                    assert_eq!(to_searched, 0, "{context}: followed");
                }
                assert_eq!(base_a, base_b, "{context}");
                assert_eq!(enc_a, enc_b, "{context}");
                assert!(enc_a.entries > 0);
                assert_eq!(a[..enc_a.bytes], b[..enc_b.bytes], "{context}");
            }
            assert_eq!(
                view.interest().collect::<Vec<_>>(),
                moved.interest().collect::<Vec<_>>()
            );
        }
    }

    /// The same while acknowledgements lag and the budget is short: the client walks
    /// (members change every tick) and has acknowledged only its first snapshot, so most
    /// members are new to it, and only some fit. The zone it moves to must offer first
    /// what the other zone's newest snapshot showed — ranking by distance alone would
    /// leave out, once, an entity the client was just shown: a pop-in after every
    /// handoff under latency — and must not show an entity where it was before the
    /// newest snapshot showed it. (Not always the same bytes as staying: a member whose
    /// newest sample the carried baseline lacks gets a new one over there, where staying
    /// would send that sample again; see `pass::RESEND`.)
    #[test]
    fn a_carried_state_keeps_what_was_shown_while_acknowledgements_lag() {
        let config = InterestConfig {
            bytes_per_second: 6_000,
            ..InterestConfig::default()
        };
        let walk = |k: u32| (AT.0 + 20.0 * k as f32, AT.1);
        let (mut zone, carried, stream, mut from, mut view, client) =
            origin_with(config, &[walk(0), walk(0), walk(1)]);
        let mut to = Replicator::new(config);
        let mut moved = ClientView::new(&config);
        to.install(&mut moved, &carried, &stream).unwrap();
        let mut now = Instant::ZERO;
        let (mut stayed, mut went) = (Vec::new(), Vec::new());
        let mut compared = 0;
        for tick in 4..8 {
            now = now + zone.world().tick_duration();
            zone.tick(now);
            for _ in zone.drain_log() {}
            let (mut a, mut b) = ([0u8; 1200], [0u8; 1200]);
            let p = walk(tick - 2);
            let (base_a, enc_a) = from.snapshot(&mut view, &zone, None, p, tick, &mut a);
            let (base_b, enc_b) = to.snapshot(&mut moved, &zone, None, p, tick, &mut b);
            assert_eq!(
                base_a, carried.baseline,
                "tick {tick}: nothing acknowledged"
            );
            assert_eq!(base_a, base_b, "tick {tick}");
            assert!(from.counters().deferred > 0, "the budget is short");
            apply_delta(&client.acked, &a[..enc_a.bytes], enc_a.entries, &mut stayed).unwrap();
            apply_delta(&client.acked, &b[..enc_b.bytes], enc_b.entries, &mut went).unwrap();
            let ids = |r: &[Record]| r.iter().map(|r| r.id).collect::<Vec<_>>();
            assert_eq!(ids(&stayed), ids(&went), "tick {tick}: what is shown");
            // Every entity walks east: none may be shown west of where the client saw
            // it last before the handoff.
            for r in &went {
                if let Some(before) = client.shown.iter().find(|s| s.id == r.id) {
                    assert!(r.x >= before.x, "tick {tick}: {} shown going back", r.id);
                    compared += 1;
                }
            }
        }
        assert!(compared >= 100, "{compared} entities compared");
    }
}

/// What the cheapest hostile peer zone can make a zone's session layer do with VIEWs:
/// hold at most a sixteenth of its sessions' worth of streams (256 at the default 4,096)
/// for at most 30 ticks, count the rest, and nothing else — the client being served is
/// not disturbed.
#[test]
fn hostile_views_cost_bounded_memory_and_time() {
    use meridian_core::world::ZoneID;
    use meridian_layouts::view::{VIEW_CHUNK_MAX, ViewHeader, write_view};
    use meridian_layouts::{F32Le, I32Le, U16Le, U32Le, U64Le};

    let (mut h, mut clients) = crate::clients::one_connected();
    let head = |session: u64| ViewHeader {
        session_id: U64Le::new(session),
        session_secret: U64Le::new(99),
        baseline_tick: U32Le::new(5),
        baseline_zone: U32Le::new(1),
        budget_bytes: I32Le::new(i32::MAX),
        reach_m: F32Le::new(1e30),
        search_x: F32Le::new(0.0),
        search_y: F32Le::new(0.0),
        stream_len: U16Le::new(0),
        offset: U16Le::new(0),
        // Inputs far ahead of anything the client sent: taken, they would stall its
        // playout for good.
        input_count: 8,
        flags: 0,
        reserved: [0; 2],
        inputs: [meridian_layouts::client::InputEntry {
            sequence: U32Le::new(u32::MAX - 1),
            move_x: 127,
            ..Default::default()
        }; 8],
    };
    let stream = vec![0xffu8; VIEW_CHUNK_MAX + 10];
    let mut buf = [0u8; 1200];
    // 260 streams that never complete (their second chunk never comes).
    const HELD: u64 = 4096 / 16;
    for session in 0..HELD + 4 {
        let n = write_view(&mut buf, &head(session), &stream, 0).unwrap();
        h.sessions[0].handle_zone_datagram(ZoneID(1), &buf[..n]);
    }
    assert_eq!(
        h.sessions[0].counters().views_dropped,
        4,
        "{HELD} held, 4 dropped"
    );
    // A chunk at a made-up offset is malformed.
    let before = h.sessions[0].counters().malformed;
    let n = write_view(&mut buf, &head(1), &stream, 0).unwrap();
    buf[8 + 42] = 7;
    h.sessions[0].handle_zone_datagram(ZoneID(1), &buf[..n]);
    assert_eq!(h.sessions[0].counters().malformed, before + 1);
    for _ in 0..32 {
        h.step(&mut clients, |_, _| {});
    }
    // Past their time: every held stream was let go.
    assert_eq!(h.sessions[0].counters().views_dropped, HELD + 4);
    // A complete stream of garbage for the live session's id, without its secret:
    // nothing is installed.
    let session = u64::from(clients[0].1.session());
    let garbage = [0xffu8; 40];
    let n = write_view(&mut buf, &head(session), &garbage, 0).unwrap();
    h.sessions[0].handle_zone_datagram(ZoneID(1), &buf[..n]);
    let snapshots = clients[0].1.counters().snapshots;
    for _ in 0..10 {
        h.step(&mut clients, |_, _| {});
    }
    let c = &clients[0].1;
    assert_eq!(h.sessions[0].counters().views_installed, 0);
    assert_eq!(h.sessions[0].counters().inputs_carried, 0);
    assert_eq!(c.counters().decode_errors, 0);
    assert_eq!(
        c.counters().snapshots,
        snapshots + 10,
        "the client was served every tick"
    );
}
