//! Client input cost at a zone: 4,096 established sessions each send one INPUT; the bench
//! times what the zone does with them — open each sealed packet (ChaCha20-Poly1305),
//! check its replay window, authenticate the input, and apply it in `Sessions::tick`.
//! Side by side: `meridian` (inputs authenticated by the AEAD, the default) and `ed25519`
//! (`client_auth = "ed25519"`: each input also signed, verified in the tick's batch).
//!
//! The clients are real `meridian_client::Client`s that did the whole handshake; building
//! their packets (the client's cost) is outside the timed part.
//!
//! `aead_open/4096` is the floor under the first: the opening alone; `aead_seal/N` the
//! other direction, sealing a snapshot-sized datagram of N bytes for each session.
//!
//! `token_replay/hashed/16384`: 256 handshakes recording their tokens in a node's used-token
//! table (its default capacity, 16,512) that holds 16,384; `token_replay/linear/16384` the
//! same with the list it replaced, scanned per token (the peer).
//!
//! Run: `cargo bench -p meridian-benches --bench session`.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use meridian_client::Client;
use meridian_client::token::issue_token;
use meridian_core::limits::Limits;
use meridian_core::net::Peer;
use meridian_core::session::{ClientAuth, SessionConfig, Sessions};
use meridian_core::time::Instant;
use meridian_core::world::{Rect, World, WorldConfig, ZoneID};
use meridian_core::zone::Zone;

const SESSIONS: usize = 4096;
const WORLD_ID: u64 = 5;
const UNIX_MS: u64 = 1_800_000_000_000;

/// A zone and its sessions.
struct Fixture {
    zone: Zone,
    sessions: Sessions,
    unix_ms: u64,
}

type Clients = Vec<(SocketAddr, Client)>;

fn client_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8], 30_000))
}

/// A zone with `SESSIONS` connected clients, each at its own address.
fn fixture(auth_mode: ClientAuth) -> (Fixture, Clients) {
    let world = World::new(WorldConfig {
        bounds: Rect::new(0.0, 0.0, 2048.0, 2048.0),
        zones_x: 1,
        zones_y: 1,
        ..WorldConfig::default()
    })
    .expect("world");
    let zone = Zone::new(
        &world,
        ZoneID(0),
        Limits::for_entities(2 * SESSIONS as u32),
        Instant::ZERO,
    )
    .expect("zone");
    let auth = SigningKey::from_bytes(&[9; 32]);
    let config = SessionConfig {
        sessions_max: SESSIONS,
        // Room to admit every client in a tick or two (the defaults pace a real flood).
        handshakes_per_tick: SESSIONS as u16,
        challenges_per_tick: SESSIONS as u16,
        client_auth: auth_mode,
        ..SessionConfig::default()
    };
    let mut sessions = Sessions::new(
        config,
        ZoneID(0),
        WORLD_ID,
        auth.verifying_key().as_bytes(),
        [4; 32],
    )
    .expect("sessions");
    sessions.set_node_key(SigningKey::from_bytes(&[8; 32]), 0);
    let server = SocketAddr::from(([10, 0, 0, 1], 7000));
    let mut clients: Clients = (0..SESSIONS)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            let key = SigningKey::from_bytes(&seed);
            let token = issue_token(
                &auth,
                *key.verifying_key().as_bytes(),
                WORLD_ID,
                i as u64 + 1,
                UNIX_MS + 3_600_000,
                i as u64,
            );
            (
                client_addr(i),
                Client::new(server, token, key, Instant::ZERO),
            )
        })
        .collect();
    let index: HashMap<SocketAddr, usize> = clients
        .iter()
        .enumerate()
        .map(|(i, (a, _))| (*a, i))
        .collect();
    let mut fixture = Fixture {
        zone,
        sessions,
        unix_ms: UNIX_MS,
    };
    let mut buf = [0u8; 1500];
    // Clients resend their handshake every 250 ms of their clock (a few are refused at
    // first: the per-IP limit is per hash bucket, and 4,096 IPs share some).
    for round in 0..15u64 {
        let now = Instant::ZERO + Duration::from_millis(300 * round);
        if clients.iter().all(|(_, c)| c.is_connected()) {
            break;
        }
        for (addr, c) in &mut clients {
            if c.is_connected() {
                continue;
            }
            c.tick(now);
            while let Some((_, len)) = c.poll_transmit(&mut buf) {
                fixture
                    .sessions
                    .handle_datagram(fixture.unix_ms, *addr, &buf[..len]);
            }
        }
        fixture.step();
        while let Some((to, len)) = fixture.sessions.poll_transmit(&mut buf) {
            if let Peer::Client(to) = to {
                let c = &mut clients[index[&to]].1;
                c.handle_datagram(now, server, &buf[..len]);
            }
        }
    }
    assert_eq!(
        fixture.sessions.len(),
        SESSIONS,
        "every client connected: {:?}",
        fixture.sessions.counters()
    );
    (fixture, clients)
}

impl Fixture {
    fn step(&mut self) {
        self.sessions.tick(self.unix_ms, &mut self.zone);
        self.unix_ms += 33;
    }
}

/// One INPUT per client, as its sealed datagram.
fn inputs(clients: &mut Clients) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut buf = [0u8; 1500];
    let mut out = Vec::with_capacity(clients.len());
    {
        for (i, (addr, c)) in clients.iter_mut().enumerate() {
            c.set_intent((i % 255) as i8, 3, 0);
            c.tick(Instant::ZERO + Duration::from_secs(4));
            while let Some((_, len)) = c.poll_transmit(&mut buf) {
                out.push((*addr, buf[..len].to_vec()));
            }
        }
        out
    }
}

fn session_inputs(c: &mut Criterion) {
    let mut group = c.benchmark_group("session_inputs");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(SESSIONS as u64));
    for (name, mode) in [
        ("meridian", ClientAuth::Aead),
        ("ed25519", ClientAuth::Ed25519),
    ] {
        let (mut f, mut clients) = fixture(mode);
        let applied = f.sessions.counters().inputs_applied;
        group.bench_function(BenchmarkId::new(name, SESSIONS), |b| {
            b.iter_batched(
                || inputs(&mut clients),
                |inputs| {
                    for (from, bytes) in &inputs {
                        f.sessions.handle_datagram(f.unix_ms, *from, bytes);
                    }
                    f.step();
                    black_box(f.sessions.counters().inputs_applied)
                },
                BatchSize::PerIteration,
            );
        });
        // Every input of every iteration was applied: the bench measured the whole path
        // (when it ran: a filter may skip it).
        let c = f.sessions.counters();
        if c.inputs == 0 {
            continue;
        }
        assert!(c.inputs_applied - applied >= SESSIONS as u64, "{c:?}");
        assert_eq!(c.sealed_forged + c.bad_signatures + c.overflow, 0, "{c:?}");
        assert_eq!(f.sessions.len(), SESSIONS);
    }
    group.finish();
}

/// The floor under `session_inputs/meridian`: ChaCha20-Poly1305 opening of the same 4,096
/// sealed INPUT datagrams (86 bytes each), nothing else.
fn aead_open(c: &mut Criterion) {
    use meridian_layouts::client::Input;
    use meridian_layouts::header_for;
    use meridian_protocol::seal;
    let mut group = c.benchmark_group("aead_open");
    group.throughput(Throughput::Elements(SESSIONS as u64));
    let input: Input = bytemuck::Zeroable::zeroed();
    let input = Input {
        header: header_for::<Input>(),
        ..input
    };
    let packets: Vec<([u8; 32], Vec<u8>)> = (0..SESSIONS)
        .map(|i| {
            let key = seal::client_key(&[i as u8; 32]);
            let mut out = [0u8; 1500];
            let n = seal::seal(&key, i as u32, 0, 7, bytemuck::bytes_of(&input), &mut out);
            (key, out[..n].to_vec())
        })
        .collect();
    group.bench_function(BenchmarkId::from_parameter(SESSIONS), |b| {
        let mut plain = [0u8; 1200];
        b.iter(|| {
            for (key, packet) in &packets {
                black_box(seal::open(key, packet, &mut plain).is_ok());
            }
        });
    });
    group.finish();
}

/// The other direction: sealing one snapshot-sized datagram (300 and 1,200 bytes) for
/// each of 4,096 sessions, as a zone does every tick it owes them one.
fn aead_seal(c: &mut Criterion) {
    use meridian_protocol::seal;
    let mut group = c.benchmark_group("aead_seal");
    group.throughput(Throughput::Elements(SESSIONS as u64));
    let keys: Vec<[u8; 32]> = (0..SESSIONS)
        .map(|i| seal::client_key(&[i as u8; 32]))
        .collect();
    for size in [300usize, 1200 - meridian_layouts::client::SEALED_OVERHEAD] {
        let inner = vec![7u8; size];
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            let mut out = [0u8; 1500];
            let mut sequence = 0u64;
            b.iter(|| {
                sequence += 1;
                for (i, key) in keys.iter().enumerate() {
                    black_box(seal::seal(key, i as u32, 0, sequence, &inner, &mut out));
                }
            });
        });
    }
    group.finish();
}

/// The used-token table at a node's default size (two zones of 4,096 sessions: capacity
/// 16,512) holding 16,384 live tokens: recording 256 more, as 256 handshakes do; and
/// (`hashed-churn`) full, each of the 256 arriving as one held token expires.
/// `hashed` is `TokenReplay`; `linear` is the list scanned per record it replaced (the
/// peer, as it was written before session 21).
fn token_replay(c: &mut Criterion) {
    use meridian_core::witness::TokenReplay;
    use meridian_layouts::U64Le;
    use meridian_layouts::witness::ConnectToken;
    const HELD: u64 = 16_384;
    const CAPACITY: usize = 16_512;
    const NEW: u64 = 256;
    let token = |client: u64| {
        let mut t: ConnectToken = bytemuck::Zeroable::zeroed();
        t.client_id = U64Le::new(client);
        t.nonce = U64Le::new(client.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        t.expires_unix_ms = U64Le::new(UNIX_MS + 60_000);
        t
    };
    let held: Vec<ConnectToken> = (0..HELD).map(token).collect();
    let new: Vec<ConnectToken> = (HELD..HELD + NEW).map(token).collect();
    let mut group = c.benchmark_group("token_replay");
    group.throughput(Throughput::Elements(NEW));
    group.bench_function(BenchmarkId::new("hashed", HELD), |b| {
        b.iter_batched_ref(
            || {
                let mut t = TokenReplay::new(CAPACITY);
                for h in &held {
                    assert_eq!(t.record(h, UNIX_MS), Ok(true));
                }
                t
            },
            |t| {
                for n in &new {
                    black_box(t.record(n, UNIX_MS).ok());
                }
            },
            BatchSize::LargeInput,
        )
    });
    // Full, with expiries a millisecond apart: each of the 256 handshakes comes as one held
    // token expires, so each frees one place and takes it (the regime where a sweep of the
    // whole table per record would cost O(n) again).
    let churn = |client: u64, expires: u64| {
        let mut t = token(client);
        t.expires_unix_ms = U64Le::new(expires);
        t
    };
    let full: Vec<ConnectToken> = (0..CAPACITY as u64)
        .map(|i| churn(i, UNIX_MS + 1 + i))
        .collect();
    let fresh: Vec<ConnectToken> = (CAPACITY as u64..CAPACITY as u64 + NEW)
        .map(token)
        .collect();
    group.bench_function(BenchmarkId::new("hashed-churn", CAPACITY), |b| {
        b.iter_batched_ref(
            || {
                let mut t = TokenReplay::new(CAPACITY);
                for h in &full {
                    assert_eq!(t.record(h, UNIX_MS), Ok(true));
                }
                t
            },
            |t| {
                for (k, n) in fresh.iter().enumerate() {
                    let now = UNIX_MS + 1 + k as u64;
                    assert_eq!(t.record(n, now), Ok(true));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function(BenchmarkId::new("linear", HELD), |b| {
        b.iter_batched_ref(
            || {
                let mut t = LinearTokens::new(CAPACITY);
                for h in &held {
                    assert!(t.record(h, UNIX_MS));
                }
                t
            },
            |t| {
                for n in &new {
                    black_box(t.record(n, UNIX_MS));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// The used-token list before session 21 (the peer of `token_replay/hashed`): scanned
/// whole for every token recorded.
struct LinearTokens {
    used: Vec<(u64, u64, u64)>,
    capacity: usize,
}

impl LinearTokens {
    fn new(capacity: usize) -> LinearTokens {
        LinearTokens {
            used: Vec::with_capacity(capacity),
            capacity,
        }
    }

    fn record(&mut self, token: &meridian_layouts::witness::ConnectToken, now: u64) -> bool {
        let entry = (
            token.client_id.get(),
            token.nonce.get(),
            token.expires_unix_ms.get(),
        );
        if self.used.iter().any(|u| u.0 == entry.0 && u.1 == entry.1) {
            return false;
        }
        if self.used.len() == self.capacity {
            self.used.retain(|u| u.2 > now);
            if self.used.len() == self.capacity {
                return false;
            }
        }
        self.used.push(entry);
        true
    }
}

criterion_group!(benches, session_inputs, aead_open, aead_seal, token_replay);
criterion_main!(benches);
