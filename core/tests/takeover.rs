//! A client across its zone's takeover, in memory: the standby's new run at a new address.

use std::net::SocketAddr;

use ed25519_dalek::SigningKey;
use meridian_client::Client;
use meridian_core::handoff::HandoffConfig;
use meridian_core::limits::Limits;
use meridian_core::persist::{Capture, FileIdentity, encode_checkpoint, read_checkpoint};
use meridian_core::session::{SessionConfig, Sessions};
use meridian_core::world::{Rect, ZoneID};
use meridian_core::zone::Zone;
use meridian_layouts::client::SEALED_OVERHEAD;

use crate::clients::{Harness, WORLD_ID, client_addr};

/// A REDIRECT's size, sealed; with one client and no NPCs no snapshot has it.
const REDIRECT_SEALED: usize = 138 + SEALED_OVERHEAD;

/// Zone 0 taken over by its standby as the next run, from a checkpoint of this tick, at
/// `addr`: a new session layer (new keys) that restores the zone's sessions and tells
/// their clients where the zone runs now.
fn take_over_zone_0(h: &mut Harness, node: &SigningKey, addr: SocketAddr) {
    next_run_of_zone_0(h, node, addr, true);
}

/// Zone 0's next run from a checkpoint of this tick, at `addr`; `announce`: as a takeover
/// (else a restart of its own node from its files, at the same address).
fn next_run_of_zone_0(h: &mut Harness, node: &SigningKey, addr: SocketAddr, announce: bool) {
    let mut capture = Capture::default();
    h.zones[0].capture(&mut capture);
    let identity = FileIdentity {
        run: 1,
        world_id: WORLD_ID,
        zone: ZoneID(0),
        incarnation: 1,
        tick: 0,
        generation: 1,
    };
    let mut image = Vec::new();
    encode_checkpoint(&identity, &capture, &mut image);
    let view = read_checkpoint(&image).unwrap();
    let world = *h.zones[0].world();
    h.zones[0] = Zone::restore_from(
        &world,
        ZoneID(0),
        Limits::for_entities(4096),
        HandoffConfig::default(),
        h.now,
        2,
        Some(&view),
        &[],
    )
    .unwrap();
    let mut sessions = Sessions::new(
        SessionConfig::default(),
        ZoneID(0),
        WORLD_ID,
        h.auth.verifying_key().as_bytes(),
        [42; 32],
    )
    .unwrap();
    h.addrs[0] = addr;
    for (k, &a) in h.addrs.iter().enumerate() {
        sessions.set_zone_address(ZoneID(k as u32), a);
    }
    sessions.set_node_key(node.clone(), 0);
    if announce {
        sessions.announce_takeover();
    }
    h.sessions[0] = sessions;
    h.sessions[1].set_zone_address(ZoneID(0), addr);
}

/// Two zones side by side whose sessions sign with one node key, and a client that pins
/// it: 100 ticks standing in zone 0, then walking east.
fn walking_east() -> (Harness, SigningKey, Vec<(SocketAddr, Client)>) {
    let mut h = Harness::with_world(Rect::new(0.0, 0.0, 256.0, 128.0), 2);
    let node = SigningKey::from_bytes(&[21; 32]);
    for s in &mut h.sessions {
        s.set_node_key(node.clone(), 0);
    }
    let auth = h.auth.clone();
    let mut client = h.client(1, WORLD_ID, crate::clients::UNIX_MS + 600_000, &auth);
    client.trust_node_key(node.verifying_key());
    let mut clients = vec![(client_addr(1), client)];
    for _ in 0..100 {
        h.step(&mut clients, |_, _| {});
    }
    assert!(clients[0].1.is_connected());
    clients[0].1.set_intent(127, 0, 0);
    (h, node, clients)
}

/// A client's zone is taken over by its standby, and the new run hands the avatar on
/// before any snapshot of it reached the client — the avatar was crossing as the old run
/// stopped, and here the new run's snapshots are lost. The new run's REDIRECT carries the
/// new run's tick, which counts from the restore: the client weighed it against the newest
/// snapshot of the old run, took it for a replay and ignored it, and the session was lost
/// (a bot of `meridian demo --mesh` under load: a takeover followed, then nine REDIRECTs
/// refused as stale and a timeout). The takeover starts the zone's new run at the client.
#[test]
fn a_redirect_of_a_taken_over_zone_before_its_first_snapshot_is_followed() {
    let (mut h, node, mut clients) = walking_east();
    // 8 m from the border.
    while clients[0].1.authoritative().position[0] < 120.0 {
        h.step(&mut clients, |_, _| {});
    }
    let standby = SocketAddr::from(([10, 0, 0, 2], 7000));
    take_over_zone_0(&mut h, &node, standby);
    // The new run's snapshots are lost; its REDIRECTs get through.
    h.delivered = |k, b| k != 0 || b.len() == REDIRECT_SEALED;
    for _ in 0..200 {
        h.step(&mut clients, |_, _| {});
    }
    let c = &clients[0].1;
    assert_eq!(c.counters().takeovers, 1, "{:?}", c.counters());
    assert_eq!(
        (c.server(), c.counters().redirects_stale),
        (crate::clients::zone_addr(1), 0),
        "the new run's REDIRECT was not followed: {:?}",
        c.counters()
    );
    assert!(c.is_connected());
    assert!(
        c.authoritative().position[0] > 140.0,
        "it walks on in zone 1"
    );
}

/// Walks the client east until zone 0 relinquishes its avatar; that tick's datagrams
/// (the COMMIT, and the REDIRECT a tick later) never leave zone 0's node.
fn relinquished_unsent(h: &mut Harness, clients: &mut [(SocketAddr, Client)]) {
    h.cut = |k, zone| k == 0 && zone.tombstone_count() > 0;
    let mut steps = 0;
    while h.zones[0].tombstone_count() == 0 {
        h.step(clients, |_, _| {});
        steps += 1;
        assert!(steps < 300, "the avatar never crossed");
    }
    h.cut = |_, _| false;
}

/// A client's avatar is being handed to zone 1 as its zone's node dies: the tick that
/// relinquished it (its COMMIT, and the client's REDIRECT a tick later) never left the
/// node — the gate held them for the standby — so the standby's copy holds the avatar as
/// in flight (a tombstone) and no session for it, and zone 1 adopts it when the new run
/// sends the COMMIT again. Nobody told the client: zone 1 withholds its snapshots until
/// the client proves its address there, the new run had no session to announce itself
/// to, and the client, still sending to the dead node, timed out (a bot of `meridian demo
/// --mesh` under load: no takeover, no redirect, 162 snapshots, `TimedOut`). The new run
/// serves such a session as one that left: it tells the client where zone 0 runs now,
/// then redirects it to zone 1.
#[test]
fn an_avatar_in_flight_as_its_zone_is_taken_over_reaches_its_client() {
    let (mut h, node, mut clients) = walking_east();
    relinquished_unsent(&mut h, &mut clients);
    assert_eq!(clients[0].1.counters().redirects, 0);
    take_over_zone_0(&mut h, &node, SocketAddr::from(([10, 0, 0, 2], 7000)));
    let c = walks_on(&mut h, &mut clients);
    assert_eq!(
        (c.server(), c.counters().takeovers, c.counters().redirects),
        (crate::clients::zone_addr(1), 1, 1),
        "the client was not told where its avatar went: {:?}",
        c.counters()
    );
    assert!(
        c.authoritative().position[0] > 140.0,
        "it walks on in zone 1"
    );
}

/// 200 ticks more; the client, still connected.
fn walks_on<'a>(h: &mut Harness, clients: &'a mut [(SocketAddr, Client)]) -> &'a Client {
    for _ in 0..200 {
        h.step(clients, |_, _| {});
    }
    let c = &clients[0].1;
    assert!(
        c.is_connected(),
        "the client lost its session: {:?}",
        c.counters()
    );
    c
}

/// A client handed into zone 0 whose node dies before any snapshot of zone 0 reached it:
/// the newest snapshot it holds is zone 1's. The standby's takeover REDIRECT started "the
/// zone's new run" at the client all the same, and that retired the key of the newest
/// snapshot — zone 1's, whose run goes on: back in zone 1 a few seconds later, the client
/// dropped every snapshot zone 1 sent it (bot 4 of the rolling-restart CLI test under
/// load: three seconds without a snapshot, `dropped` rising 30 a second, the only
/// failure of that test in CI for two sessions). A takeover starts a new run only of the
/// zone the newest snapshot came from.
#[test]
fn a_takeover_before_the_zones_first_snapshot_keeps_the_zone_before() {
    let (mut h, node, mut clients) = walking_east();
    // Into zone 1 (the border is at 128 m), then back west.
    while clients[0].1.authoritative().position[0] < 140.0 {
        h.step(&mut clients, |_, _| {});
    }
    assert_eq!(clients[0].1.server(), crate::clients::zone_addr(1));
    clients[0].1.set_intent(-127, 0, 0);
    // Zone 0's snapshots never reach the client: zone 1 redirects it there, and zone 0's
    // node dies before any does.
    h.delivered = |k, _| k != 0;
    let mut steps = 0;
    while clients[0].1.server() != crate::clients::zone_addr(0) {
        h.step(&mut clients, |_, _| {});
        steps += 1;
        assert!(steps < 300, "never redirected to zone 0");
    }
    let standby = SocketAddr::from(([10, 0, 0, 2], 7000));
    take_over_zone_0(&mut h, &node, standby);
    h.delivered = |k, b| k != 0 || b.len() == REDIRECT_SEALED;
    while clients[0].1.counters().takeovers == 0 {
        h.step(&mut clients, |_, _| {});
        steps += 1;
        assert!(steps < 600, "the takeover never reached the client");
    }
    // The new run serves it; it walks back east into zone 1.
    h.delivered = |_, _| true;
    clients[0].1.set_intent(127, 0, 0);
    for _ in 0..200 {
        h.step(&mut clients, |_, _| {});
    }
    let c = &clients[0].1;
    assert_eq!(
        c.server(),
        crate::clients::zone_addr(1),
        "{:?}",
        c.counters()
    );
    assert!(
        c.is_connected() && c.authoritative().position[0] > 150.0,
        "zone 1's snapshots were dropped: at {:?}, {:?}",
        c.authoritative().position,
        c.counters()
    );
}

/// The same when zone 0's node restarts from its own files at the same address (no
/// standby): there is no takeover to announce, and the new run's REDIRECT to zone 1 —
/// sealed under the run's new key, with a tick of the run's own count from its restore —
/// was weighed against the old run's newest snapshot, taken for a replay and ignored
/// (counted `redirects_stale`); the client timed out. A REDIRECT from the client's own
/// zone under a key it has not had a snapshot of (and has not retired) starts the zone's
/// new run at the client, as the run's first snapshot would.
#[test]
fn an_avatar_in_flight_as_its_node_restarts_in_place_reaches_its_client() {
    let (mut h, node, mut clients) = walking_east();
    relinquished_unsent(&mut h, &mut clients);
    next_run_of_zone_0(&mut h, &node, crate::clients::zone_addr(0), false);
    let c = walks_on(&mut h, &mut clients);
    assert_eq!(
        (
            c.server(),
            c.counters().redirects,
            c.counters().redirects_stale
        ),
        (crate::clients::zone_addr(1), 1, 0),
        "the new run's REDIRECT was not followed: {:?}",
        c.counters()
    );
    assert!(
        c.authoritative().position[0] > 140.0,
        "it walks on in zone 1"
    );
}
