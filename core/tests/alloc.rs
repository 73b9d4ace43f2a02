//! The tick does not allocate after warm-up: counted by a replacement global allocator.

use meridian_core::limits::Limits;
use meridian_core::time::Instant;
use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;
use rand::Rng;

use crate::support;

/// The counter is live in this binary: otherwise the test below could not fail.
#[test]
fn counter_sees_allocations() {
    let info = allocation_counter::measure(|| {
        std::hint::black_box(vec![1u8; 10]);
    });
    assert_eq!(info.count_total, 1);
}

#[test]
fn zone_tick_does_not_allocate_after_warm_up() {
    let world = World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 600.0, 600.0),
        zones_x: 3,
        zones_y: 3,
        margin_m: 4.0,
        aura_m: 20.0,
        tick_rate_hz: 30,
        cell_size_m: 10.0,
    })
    .unwrap();
    // The centre zone: 8 neighbours, so every border-pass path runs.
    let zone_id = ZoneID(4);
    let mut zone = Zone::new(&world, zone_id, Limits::for_entities(4000), Instant::ZERO).unwrap();
    let mut rng = support::rng(7);
    for id in 0..3000 {
        // Fast walkers so cells change and borders are crossed every tick.
        zone.insert(&support::entity(
            &mut rng,
            id,
            world.zone_rect(zone_id),
            30.0,
            60.0,
        ))
        .unwrap();
    }
    let tick = world.tick_duration();
    let mut now = Instant::ZERO;
    for _ in 0..5 {
        zone.tick(now);
        now = now + tick;
    }
    let mut crossings_seen = 0;
    let mut cell_moves = zone.grid().stats().moves;
    let info = allocation_counter::measure(|| {
        for _ in 0..100 {
            zone.tick(now);
            now = now + tick;
            crossings_seen += zone.crossings().len();
            // Entities also leave (as handoffs will make them) and turn.
            let leaving: Option<_> = zone
                .crossings()
                .first()
                .map(|c| zone.entities().ids()[c.slot as usize]);
            if let Some(id) = leaving {
                zone.remove(id);
            }
            let slot = rng.random_range(0..zone.entities().len() as u32);
            let id = zone.entities().ids()[slot as usize];
            zone.set_velocity(
                id,
                rng.random_range(-60.0..60.0),
                rng.random_range(-60.0..60.0),
            );
        }
    });
    cell_moves = zone.grid().stats().moves - cell_moves;
    assert!(crossings_seen > 0, "the test must exercise crossings");
    assert!(cell_moves > 0, "the test must exercise grid moves");
    assert_eq!(
        info.count_total, 0,
        "the tick allocated {} times ({} bytes)",
        info.count_total, info.bytes_total
    );
}

/// Two zones handing entities back and forth, with ghosts, through the sans-IO API: the
/// whole protocol path (OFFER, ACK, COMMIT, DONE, GHOSTS, log, events) allocates nothing
/// after warm-up.
#[test]
fn handoff_does_not_allocate_after_warm_up() {
    use meridian_core::net::Peer;
    let world = World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 400.0, 200.0),
        zones_x: 2,
        zones_y: 1,
        margin_m: 2.0,
        aura_m: 15.0,
        tick_rate_hz: 30,
        cell_size_m: 10.0,
    })
    .unwrap();
    let limits = Limits::for_entities(2000);
    let mut zones = [
        Zone::new(&world, ZoneID(0), limits, Instant::ZERO).unwrap(),
        Zone::new(&world, ZoneID(1), limits, Instant::ZERO).unwrap(),
    ];
    let mut rng = support::rng(9);
    for id in 0..1000 {
        let mut e = support::entity(&mut rng, id, world.bounds(), 0.0, 60.0);
        e.speed_mps_max = 60.0;
        let z = world.zone_at(e.position[0], e.position[1]).0 as usize;
        zones[z].insert(&e).unwrap();
    }
    let tick = world.tick_duration();
    let mut now = Instant::ZERO;
    let mut buf = [0u8; 1200];
    let mut step = |zones: &mut [Zone; 2], now: Instant| {
        for z in 0..2 {
            zones[z].tick(now);
            for _ in zones[z].drain_log() {}
            while zones[z].poll_event().is_some() {}
            while let Some(t) = zones[z].poll_transmit(&mut buf) {
                let Peer::Zone(to) = t.to else { unreachable!() };
                zones[to.0 as usize].handle_datagram(
                    now,
                    Peer::Zone(ZoneID(z as u32)),
                    &buf[..t.len],
                );
            }
        }
    };
    for _ in 0..100 {
        step(&mut zones, now);
        now = now + tick;
    }
    let arrivals_before: u64 = zones.iter().map(|z| z.counters().arrivals).sum();
    let ghosts_before: u64 = zones.iter().map(|z| z.counters().ghosts_received).sum();
    let info = allocation_counter::measure(|| {
        for _ in 0..200 {
            step(&mut zones, now);
            now = now + tick;
        }
    });
    let arrivals = zones.iter().map(|z| z.counters().arrivals).sum::<u64>() - arrivals_before;
    let ghosts = zones
        .iter()
        .map(|z| z.counters().ghosts_received)
        .sum::<u64>()
        - ghosts_before;
    assert!(
        arrivals > 100,
        "only {arrivals} handoffs in the measured window"
    );
    assert!(
        ghosts > 100,
        "only {ghosts} ghost refreshes in the measured window"
    );
    assert_eq!(
        info.count_total, 0,
        "{} allocations ({} bytes)",
        info.count_total, info.bytes_total
    );
}

/// Clients on both sides of a border, walking across it: the session layer's whole tick
/// path — inputs on arrival, `Sessions::tick` (verification, merged inputs, adoptions,
/// redirects), `Zone::tick`, `Sessions::replicate` (interest, priority, delta encoding) and
/// every transmit — allocates nothing once the zones have held as many sessions as they
/// will. Only the server side is counted; the clients (a separate library) are not.
#[test]
fn sessions_and_replication_do_not_allocate_after_warm_up() {
    use std::net::SocketAddr;

    use ed25519_dalek::SigningKey;
    use meridian_client::Client;
    use meridian_client::token::issue_token;
    use meridian_core::net::Peer;
    use meridian_core::session::{SessionConfig, Sessions};

    const CLIENTS: u16 = 24;
    const UNIX_MS: u64 = 1_800_000_000_000;
    let world = World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 120.0, 60.0),
        zones_x: 2,
        zones_y: 1,
        margin_m: 2.0,
        aura_m: 10.0,
        tick_rate_hz: 30,
        cell_size_m: 10.0,
    })
    .unwrap();
    let zone_addr = |k: usize| SocketAddr::from(([10, 0, 0, 1], 7000 + k as u16));
    let auth = SigningKey::from_bytes(&[9; 32]);
    let config = SessionConfig {
        // 1 m per tick: a walker crosses a 60 m zone in two seconds.
        speed_mps_max: 30.0,
        ..SessionConfig::default()
    };
    let mut zones = Vec::new();
    let mut sessions = Vec::new();
    for k in 0..2u32 {
        zones
            .push(Zone::new(&world, ZoneID(k), Limits::for_entities(1024), Instant::ZERO).unwrap());
        let mut s = Sessions::new(
            config,
            ZoneID(k),
            5,
            auth.verifying_key().as_bytes(),
            [k as u8; 32],
        )
        .unwrap();
        for j in 0..2 {
            s.set_zone_address(ZoneID(j), zone_addr(j as usize));
        }
        sessions.push(s);
    }
    let mut clients: Vec<(SocketAddr, Client)> = (0..CLIENTS)
        .map(|i| {
            let key = SigningKey::from_bytes(&[i as u8 + 100; 32]);
            let token = issue_token(
                &auth,
                *key.verifying_key().as_bytes(),
                5,
                u64::from(i),
                UNIX_MS + 3_600_000,
                u64::from(i),
            );
            let addr = SocketAddr::from(([10, 0, 1, 1], 20_000 + i));
            (
                addr,
                Client::new(zone_addr(usize::from(i % 2)), token, key, Instant::ZERO),
            )
        })
        .collect();

    // Datagrams between the two sides, in buffers sized once: (to zone k | to client i, bytes).
    let mut to_servers: Vec<(usize, SocketAddr, Vec<u8>)> = Vec::with_capacity(4096);
    let mut to_clients: Vec<(usize, usize, usize, [u8; 1200])> = Vec::with_capacity(4096);
    let mut buf = [0u8; 1500];
    let tick = world.tick_duration();
    let mut now = Instant::ZERO;
    let mut counted = (0u64, 0u64);
    let (mut verify_ticks, mut verify_allocations_max) = (0u64, 0u64);
    for step in 0..1200u32 {
        let measured = step >= 600;
        // Clients (not counted): walk east or west, flipping every 60 ticks.
        let east = (step / 60) % 2 == 0;
        to_servers.clear();
        for (addr, c) in &mut clients {
            c.set_intent(if east { 127 } else { -127 }, 0, 0);
            c.tick(now);
            while let Some((to, len)) = c.poll_transmit(&mut buf) {
                let k = (0..2).find(|&k| zone_addr(k) == to).unwrap();
                to_servers.push((k, *addr, buf[..len].to_vec()));
            }
        }
        // The servers, counted after warm-up stage by stage: `Sessions::tick` apart,
        // because its batch verification calls ed25519-dalek's `verify_batch`, which
        // allocates its own scratch (a fixed number of vectors per batch, measured below).
        let mut other = |f: &mut dyn FnMut()| {
            let info = allocation_counter::measure(f);
            if measured {
                counted.0 += info.count_total;
                counted.1 += info.bytes_total;
            }
        };
        to_clients.clear();
        other(&mut || {
            for (k, from, bytes) in &to_servers {
                sessions[*k].handle_datagram(UNIX_MS, *from, bytes);
            }
        });
        for k in 0..2 {
            let info = allocation_counter::measure(|| sessions[k].tick(UNIX_MS, &mut zones[k]));
            if measured {
                verify_ticks += 1;
                verify_allocations_max = verify_allocations_max.max(info.count_total);
            }
            other(&mut || {
                zones[k].tick(now);
                sessions[k].replicate(&zones[k]);
                for _ in zones[k].drain_log() {}
                while zones[k].poll_event().is_some() {}
            });
        }
        other(&mut || {
            let mut out = [0u8; 1500];
            for k in 0..2 {
                while let Some(t) = zones[k].poll_transmit(&mut out) {
                    let Peer::Zone(j) = t.to else { continue };
                    zones[j.0 as usize].handle_datagram(
                        now,
                        Peer::Zone(ZoneID(k as u32)),
                        &out[..t.len],
                    );
                }
                while let Some((to, len)) = sessions[k].poll_transmit(&mut out) {
                    match to {
                        Peer::Zone(j) => sessions[j.0 as usize]
                            .handle_zone_datagram(ZoneID(k as u32), &out[..len]),
                        Peer::Client(to) => {
                            let i = clients.iter().position(|(a, _)| *a == to).unwrap();
                            let mut bytes = [0u8; 1200];
                            bytes[..len].copy_from_slice(&out[..len]);
                            to_clients.push((k, i, len, bytes));
                        }
                    }
                }
            }
        });
        // Deliver to the clients (not counted).
        for (k, i, len, bytes) in &to_clients {
            clients[*i]
                .1
                .handle_datagram(now, zone_addr(*k), &bytes[..*len]);
        }
        while clients.iter_mut().any(|(_, c)| c.poll_event().is_some()) {}
        now = now + tick;
    }
    let arrived: u64 = sessions.iter().map(|s| s.counters().sessions_arrived).sum();
    let applied: u64 = sessions.iter().map(|s| s.counters().inputs_applied).sum();
    let snapshots: u64 = sessions.iter().map(|s| s.counters().snapshots).sum();
    assert!(
        arrived > 40,
        "only {arrived} sessions followed their avatar"
    );
    assert!(
        applied > 10_000 && snapshots > 10_000,
        "inputs {applied}, snapshots {snapshots}"
    );
    assert_eq!(
        counted.0, 0,
        "the session path allocated {} times ({} bytes) after warm-up",
        counted.0, counted.1
    );
    // What `Sessions::tick` allocates is ed25519-dalek's batch scratch and nothing else:
    // never more per tick than one `verify_batch` over every client's input.
    let batch_allocations = verify_batch_allocations(usize::from(CLIENTS));
    assert!(verify_ticks > 1000);
    assert!(
        verify_allocations_max <= batch_allocations,
        "Sessions::tick allocated {verify_allocations_max} times in one tick; one verify_batch of {CLIENTS} allocates {batch_allocations}"
    );
}

/// Allocations of one `ed25519_dalek::verify_batch` over `n` signed messages.
fn verify_batch_allocations(n: usize) -> u64 {
    use ed25519_dalek::{Signer, SigningKey};
    let keys: Vec<SigningKey> = (0..n)
        .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
        .collect();
    let messages: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 64]).collect();
    let signatures: Vec<_> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
    let verifying: Vec<_> = keys.iter().map(|k| k.verifying_key()).collect();
    let refs: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
    let info = allocation_counter::measure(|| {
        assert!(ed25519_dalek::verify_batch(&refs, &signatures, &verifying).is_ok());
    });
    info.count_total
}
