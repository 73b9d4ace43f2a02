//! Clients end to end over real loopback UDP: a 2-zone node, the io client wrapper, the
//! swarm. (The same protocol is tested in memory, deterministically, in meridian-core.)

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant as WallInstant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer, SigningKey};
use meridian_client::token::issue_token;
use meridian_client::udp::UdpClient;
use meridian_client::{Client, ClientEvent, CloseReason};
use meridian_io::Clock;
use meridian_layouts::client::RefuseReason;
use meridian_node::{run, swarm, world_file};

const WORLD_ID: u64 = 7;

/// Two 128 m zones, few NPCs, fast avatars: crossings within seconds.
pub(crate) fn world(port: u16, auth: &SigningKey, speed_mps: f32, npcs_per_zone: u32) -> String {
    format!(
        r#"
[world]
id = {WORLD_ID}
bounds = {{ x_min = 0.0, y_min = 0.0, x_max = 256.0, y_max = 128.0 }}
tick_rate_hz = 30
margin_m = 4.0
aura_m = 16.0
cell_size_m = 16.0

[zones]
columns = 2
rows = 1

[[nodes]]
name = "clients"
zones = [0, 1]
cores = [0, 1]
udp = "127.0.0.1:{port}"
admin = "127.0.0.1:0"

[npcs]
pattern = "random_walk"
per_zone = {npcs_per_zone}
speed_mps = 3.0

[clients]
auth_key = "{}"
speed_mps = {speed_mps}

[limits]
entities_per_zone = 8192
"#,
        hex::encode(auth.verifying_key().as_bytes())
    )
}

/// A port `p` with `p` and `p + 1` free (zone k listens on port + k).
pub(crate) fn two_free_ports() -> u16 {
    loop {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < u16::MAX && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

fn start(speed_mps: f32) -> (run::Running, world_file::WorldSpec, SigningKey) {
    start_with(speed_mps, 500)
}

/// As [`start`], with `npcs_per_zone` NPCs walking in each zone.
fn start_with(
    speed_mps: f32,
    npcs_per_zone: u32,
) -> (run::Running, world_file::WorldSpec, SigningKey) {
    let auth = SigningKey::from_bytes(&[42; 32]);
    let port = two_free_ports();
    let spec = world_file::parse_spec(&world(port, &auth, speed_mps, npcs_per_zone)).unwrap();
    let node = spec.nodes[0].clone();
    let running = run::start(&spec, &node, None, None).unwrap();
    (running, spec, auth)
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub(crate) fn token(
    auth: &SigningKey,
    key: &SigningKey,
    world: u64,
    id: u64,
    expires: u64,
) -> meridian_layouts::witness::ConnectToken {
    issue_token(
        auth,
        *key.verifying_key().as_bytes(),
        world,
        id,
        expires,
        id * 977,
    )
}

#[test]
fn a_client_connects_and_crosses_the_border_with_one_session() {
    let _machine = crate::shared();
    let (running, spec, auth) = start(20.0);
    let zone0 = spec.nodes[0].zone_address(0);
    let zone1 = spec.nodes[0].zone_address(1);
    let clock = Clock::new();
    let key = SigningKey::from_bytes(&[5; 32]);
    let t = token(&auth, &key, WORLD_ID, 1, unix_ms() + 60_000);
    let mut c = UdpClient::connect(zone0, t, key, clock.now()).unwrap();
    let started = WallInstant::now();
    let (mut connected, mut redirected, mut zones) = (None, false, Vec::new());
    while started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(33));
        c.pump(clock.now(), || true).unwrap();
        while let Some(e) = c.client_mut().poll_event() {
            match e {
                ClientEvent::Connected { session, zone, .. } => {
                    assert_eq!(zone, 0);
                    connected = Some(session);
                }
                ClientEvent::Snapshot { zone, .. } => {
                    if zones.last() != Some(&zone) {
                        zones.push(zone);
                    }
                }
                ClientEvent::Redirected { zone, addr, .. } => {
                    assert_eq!((zone, addr), (1, zone1));
                    redirected = true;
                }
                ClientEvent::Closed(reason) => panic!("closed: {reason:?}"),
                ClientEvent::Game(event) => panic!("no game runs, yet event {event:?}"),
            }
        }
        // East, full speed, into zone 1 and on.
        c.client_mut().set_intent(127, 0, 0);
        if redirected && zones == [0, 1] && c.client().authoritative().position[0] > 180.0 {
            break;
        }
    }
    assert!(connected.is_some(), "never connected");
    assert_eq!(zones, vec![0, 1], "snapshots from zone 0, then from zone 1");
    assert!(redirected, "followed a REDIRECT");
    assert_eq!(
        Some(c.client().session()),
        connected,
        "one session throughout"
    );
    assert_eq!(c.client().server(), zone1);
    assert!(
        c.client().authoritative().position[0] > 180.0,
        "inputs kept moving the avatar in zone 1"
    );
    let stats = running.stop().unwrap();
    assert_eq!(stats[0].clients.sessions_left, 1);
    assert_eq!(stats[1].clients.sessions_arrived, 1);
}

/// A client's session survives its zone's restart: the node stops, starts again on the
/// same data directory, and the restored zone — its session bindings in the checkpoint —
/// serves the same session at the same address again. The client sees a gap, then
/// snapshots of the same session, and its inputs move the avatar again; it never
/// reconnects.
#[test]
fn a_session_survives_its_zones_restart() {
    let _machine = crate::shared();
    let auth = SigningKey::from_bytes(&[42; 32]);
    let port = two_free_ports();
    let spec = world_file::parse_spec(&world(port, &auth, 6.0, 500)).unwrap();
    let node = spec.nodes[0].clone();
    let dir = std::env::temp_dir().join(format!("meridian-session-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let persistence = run::Persistence {
        dir: dir.clone(),
        fresh: false,
    };
    let running = run::start_with(&spec, &node, None, None, Some(&persistence), None).unwrap();
    let zone0 = spec.nodes[0].zone_address(0);
    let clock = Clock::new();
    let key = SigningKey::from_bytes(&[8; 32]);
    let t = token(&auth, &key, WORLD_ID, 3, unix_ms() + 60_000);
    let mut c = UdpClient::connect(zone0, t, key, clock.now()).unwrap();
    // Pumps the client for `secs` (or until `until` holds); returns the snapshots seen.
    let pump = |c: &mut UdpClient, secs: u64, until: &dyn Fn(&UdpClient, u64) -> bool| {
        let started = WallInstant::now();
        let mut snapshots = 0;
        while started.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(Duration::from_millis(33));
            c.pump(clock.now(), || true).unwrap();
            while let Some(e) = c.client_mut().poll_event() {
                match e {
                    ClientEvent::Snapshot { .. } => snapshots += 1,
                    ClientEvent::Closed(reason) => panic!("closed: {reason:?}"),
                    _ => {}
                }
            }
            if until(c, snapshots) {
                break;
            }
        }
        snapshots
    };
    let before = pump(&mut c, 10, &|_, n| n >= 30);
    assert!(before >= 30, "only {before} snapshots before the restart");
    let session = c.client().session();
    // Standing still long enough for a checkpoint to hold the session (1 s interval).
    pump(&mut c, 2, &|_, _| false);
    running.stop().unwrap();
    // What the node sent before it stopped (its last ticks while stopping) may still wait in
    // the socket: taken now, not counted. After that, nothing may arrive.
    std::thread::sleep(Duration::from_millis(100));
    c.pump(clock.now(), || true).unwrap();
    while c.client_mut().poll_event().is_some() {}
    let down = pump(&mut c, 1, &|_, _| false);
    assert_eq!(down, 0, "{down} snapshots while the node was down");
    let running = run::start_with(&spec, &node, None, None, Some(&persistence), None).unwrap();
    let after = pump(&mut c, 10, &|_, n| n >= 30);
    assert!(after >= 30, "only {after} snapshots after the restart");
    // The restarted run counts its ticks from its restore: the client takes it for a new
    // run of the zone, not for snapshots older than the old run's (it showed none of them
    // for as long as the old run had been up).
    let counters = c.client().counters();
    assert_eq!(counters.zone_runs, 1, "{counters:?}");
    assert!(counters.snapshots_late <= 2, "{counters:?}");
    assert_eq!(c.client().session(), session, "the same session");
    // Inputs still reach the avatar: east, into the zone's middle.
    let x0 = c.client().authoritative().position[0];
    c.client_mut().set_intent(127, 0, 0);
    pump(&mut c, 5, &|c, _| {
        c.client().authoritative().position[0] > x0 + 5.0
    });
    let x1 = c.client().authoritative().position[0];
    assert!(
        x1 > x0 + 5.0,
        "inputs after the restart moved the avatar {x0} → {x1}"
    );
    let stats = running.stop().unwrap();
    assert!(
        stats[0].clients.sessions_arrived >= 1,
        "{:?}",
        stats[0].clients
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The stall found from outside, reproduced over loopback: 512 sockets on 64 loopback IPs
/// each take a CONNECT → CHALLENGE round trip and answer with a RESPONSE whose signatures
/// are forged (a new token nonce, so a new cookie and a new forgery, after every refusal),
/// one socket resends one forged RESPONSE as fast as it can, and a signed-in client sends
/// inputs with bad signatures. The zone's tick stays under the tick period (the median of
/// the flood's per-second wall-clock p99s: what players feel; a flood that stalls the zone
/// raises every second); in the zone thread's CPU time (the work the flood forces on the
/// zone), the median second's p99 passes the calm one by at most 15 % of the period and
/// three seconds in four stay under the period; and its busy time a tick (the tick plus
/// reading and checking datagrams, which the tick time leaves out) averages under half
/// the period. The worst second is printed, not bounded: in CI on this shared machine one
/// read 294 ms wall-clock while the zone's work stayed small (the host), and another 40 ms
/// in CPU time with the median at 4 ms (under investigation: a host effect, or a
/// debug-build spike such as a table growing). The honest clients keep their sessions and
/// their snapshots, and every defence is counted.
#[test]
fn a_handshake_and_bad_input_flood_does_not_stall_the_zone() {
    let _machine = crate::alone();
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    let (running, spec, auth) = start(6.0);
    let zone0 = spec.nodes[0].zone_address(0);
    let clock = Clock::new();
    let expires = unix_ms() + 120_000;
    let mut honest: Vec<UdpClient> = (0..40u64)
        .map(|i| {
            let key = SigningKey::from_bytes(&[(i + 1) as u8; 32]);
            let t = token(&auth, &key, WORLD_ID, 1_000 + i, expires);
            UdpClient::connect(zone0, t, key, clock.now()).unwrap()
        })
        .collect();
    let started = WallInstant::now();
    while honest.iter().any(|c| !c.client().is_connected()) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "honest clients did not connect"
        );
        std::thread::sleep(Duration::from_millis(20));
        for c in &mut honest {
            c.pump(clock.now(), || true).unwrap();
            while c.client_mut().poll_event().is_some() {}
        }
    }
    // The calm before: two seconds of honest clients alone, for comparison.
    let calm_started = WallInstant::now();
    while calm_started.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
        for c in &mut honest {
            c.pump(clock.now(), || true).unwrap();
            while c.client_mut().poll_event().is_some() {}
        }
    }
    let (calm_p99_us, calm_cpu_p99_us) = {
        let zone = &running.stats()[0];
        (zone.tick_p99_us, zone.tick_cpu_p99_us)
    };
    // The busy time a tick (the datagrams read and checked included, which the tick time
    // leaves out).
    let busy_before = crate::busy(&running, 0);
    // The attackers, in their own thread.
    let stop = Arc::new(AtomicBool::new(false));
    let attack = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            if std::env::var_os("NOFLOOD").is_some() {
                0
            } else {
                flood(zone0, expires, &stop)
            }
        })
    };
    // A signed-in client whose inputs carry bad signatures.
    let (mut bad, mut bad_socket) = client_on_socket(zone0, &auth, WORLD_ID, 77, expires, &clock);
    // It connects during the flood, trying again as a player's client would when its
    // handshake times out (5 s: its CONNECTs race the flood's, and the CHALLENGEs answer a
    // uniform sample of each tick's); with every input changed, it idles out 5 s later.
    // The flood lasts 8 s, and past that until the client has sent a second of inputs
    // (20 s at most).
    let (mut bad_connected_at, mut bad_attempts) = (None::<WallInstant>, 1u64);
    let mut snapshots = vec![0u32; honest.len()];
    let (mut p99s_us, mut cpu_p99s_us) = (Vec::new(), Vec::new());
    let flood_started = WallInstant::now();
    let mut next_stats = flood_started + Duration::from_secs(1);
    let second_of_inputs =
        |at: Option<WallInstant>| at.is_some_and(|t| t.elapsed() >= Duration::from_secs(1));
    while (flood_started.elapsed() < Duration::from_secs(8) || !second_of_inputs(bad_connected_at))
        && flood_started.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(20));
        if bad_connected_at.is_none() && bad.closed().is_some() {
            // A new socket and a new token nonce: the zone may have seen the last one's.
            bad_attempts += 1;
            let key = SigningKey::from_bytes(&[77; 32]);
            let nonce = (bad_attempts << 32) | 77;
            let t = issue_token(
                &auth,
                *key.verifying_key().as_bytes(),
                WORLD_ID,
                77,
                expires,
                nonce,
            );
            bad = Client::new(zone0, t, key, clock.now());
            bad_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            bad_socket.set_nonblocking(true).unwrap();
        }
        let connected = bad.is_connected();
        if connected && bad_connected_at.is_none() {
            bad_connected_at = Some(WallInstant::now());
        }
        step(&mut bad, &bad_socket, &clock, |bytes| {
            if connected && bytes.get(5) == Some(&(meridian_layouts::Kind::Sealed as u8)) {
                let n = bytes.len();
                bytes[n - 1] ^= 1;
            }
        });
        for (k, c) in honest.iter_mut().enumerate() {
            c.pump(clock.now(), || true).unwrap();
            while let Some(e) = c.client_mut().poll_event() {
                if matches!(e, ClientEvent::Snapshot { .. }) {
                    snapshots[k] += 1;
                }
            }
        }
        if WallInstant::now() >= next_stats {
            next_stats += Duration::from_secs(1);
            // The first second's window still holds ticks from before the flood.
            let zone = &running.stats()[0];
            p99s_us.push(zone.tick_p99_us);
            cpu_p99s_us.push(zone.tick_cpu_p99_us);
        }
    }
    let busy_after = crate::busy(&running, 0);
    stop.store(true, Ordering::SeqCst);
    let attempts = attack.join().unwrap();
    let stats = running.stop().unwrap();
    let busy_ms = crate::busy_ms(busy_before, busy_after);
    let c = stats[0].clients;
    p99s_us.sort_unstable();
    cpu_p99s_us.sort_unstable();
    let (median_p99_us, worst_p99_us) = (p99s_us[p99s_us.len() / 2], p99s_us[p99s_us.len() - 1]);
    let (median_cpu_p99_us, worst_cpu_p99_us) = (
        cpu_p99s_us[cpu_p99s_us.len() / 2],
        cpu_p99s_us[cpu_p99s_us.len() - 1],
    );
    let three_quarters_cpu_p99_us = cpu_p99s_us[cpu_p99s_us.len() * 3 / 4];
    eprintln!(
        "flood: {attempts} forged RESPONSEs sent; tick p99 {calm_p99_us} µs calm, under the \
         flood {median_p99_us} µs (median second), {worst_p99_us} µs (worst); in CPU time \
         {calm_cpu_p99_us} µs calm, {median_cpu_p99_us} µs (median second), {worst_cpu_p99_us} \
         µs (worst); busy {busy_ms:.2} ms a tick on average; the client with changed inputs \
         connected in handshake {bad_attempts}; {c:?}"
    );
    assert!(
        attempts > 1_000,
        "the flood was too weak to mean anything: {attempts}"
    );
    // The handshake budget's point: the flood adds at most a small share of the period to
    // the zone's work (without the budget, 8.5 ms over the calm p99 here; with it, 1.6).
    assert!(
        median_p99_us < 33_333
            && median_cpu_p99_us < calm_cpu_p99_us + 33_333 * 15 / 100
            && three_quarters_cpu_p99_us < 33_333,
        "tick p99 under the flood, per second: {p99s_us:?} µs, in CPU time {cpu_p99s_us:?} µs \
         (calm {calm_p99_us}, in CPU time {calm_cpu_p99_us})"
    );
    // And with what the tick time leaves out — reading and checking the flood's datagrams
    // — the zone stays well within its period (3.5 ms a tick here, a debug build).
    assert!(
        busy_ms < 33.333 / 2.0,
        "busy {busy_ms:.2} ms a tick under the flood"
    );
    let kept = honest.iter().filter(|c| c.client().is_connected()).count();
    assert!(
        kept * 100 >= honest.len() * 95,
        "only {kept} of {} honest clients kept their session",
        honest.len()
    );
    let fed = snapshots.iter().filter(|&&n| n >= 100).count();
    assert!(
        fed * 100 >= honest.len() * 95,
        "only {fed} honest clients got ≥ 100 snapshots: {snapshots:?}"
    );
    // The client that connected during the flood (its CONNECT raced a self-clocked
    // CONNECT flood: the CHALLENGEs answer a uniform sample of each tick's CONNECTs) ...
    assert!(
        bad_connected_at.is_some(),
        "a client could not connect during the flood in {bad_attempts} handshakes: {c:?}"
    );
    // ... and its changed packets cost an AEAD check each and close nothing.
    assert!(c.sealed_forged > 0, "{c:?}");
    assert!(c.handshakes_known_bad > 0 && c.bad_signatures > 0, "{c:?}");
}

/// The attacker of the flood test, as cheap as it gets: 512 sockets on 127.0.0.2–65, each
/// sending a CONNECT with a forged token (an issued token with its nonce changed: a
/// well-formed signature over other bytes), then, on the CHALLENGE, a RESPONSE with that
/// cookie and a well-formed signature over other bytes — no signing per attempt. The first
/// socket also resends its first RESPONSE in a loop (its cookie holds for its address).
/// Returns the RESPONSEs sent.
fn flood(zone: SocketAddr, expires: u64, stop: &AtomicBool) -> u64 {
    use meridian_layouts::client::{CONNECT_SIZE, Challenge, Connect, RESPONSE_DOMAIN, Response};
    use meridian_layouts::{Header, U64Le, header_for, parse};
    use std::sync::atomic::Ordering;
    let fake_auth = SigningKey::from_bytes(&[66; 32]);
    let key = SigningKey::from_bytes(&[67; 32]);
    let template = issue_token(
        &fake_auth,
        *key.verifying_key().as_bytes(),
        WORLD_ID,
        1,
        expires,
        1,
    );
    let other_signature = key.sign(b"other bytes").to_bytes();
    let mut sockets = Vec::new();
    for ip in 2..66u8 {
        for _ in 0..8 {
            let socket = UdpSocket::bind((std::net::Ipv4Addr::new(127, 0, 0, ip), 0)).unwrap();
            socket.set_nonblocking(true).unwrap();
            sockets.push((socket, None, WallInstant::now()));
        }
    }
    let mut nonce = 1u64;
    let mut captured: Option<Vec<u8>> = None;
    let mut sent = 0;
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::SeqCst) {
        for (k, (socket, pending, asked)) in sockets.iter_mut().enumerate() {
            while let Ok((len, _)) = socket.recv_from(&mut buf) {
                let (Some(token), Ok(challenge)) = (*pending, parse::<Challenge>(&buf[..len]))
                else {
                    continue;
                };
                let response = Response {
                    header: header_for::<Response>(),
                    domain: RESPONSE_DOMAIN,
                    token,
                    cookie: challenge.cookie,
                    window: challenge.window,
                    client_ephemeral: [9; 32],
                    server_ephemeral: challenge.server_ephemeral,
                    node_key: challenge.node_key,
                    signature: other_signature,
                };
                let bytes = bytemuck::bytes_of(&response);
                let _ = socket.send_to(bytes, zone);
                sent += 1;
                if k == 0 {
                    captured.get_or_insert_with(|| bytes.to_vec());
                }
                *pending = None;
            }
            if pending.is_none() || asked.elapsed() > Duration::from_millis(200) {
                nonce += 1;
                let mut token = template;
                token.nonce = U64Le::new(nonce);
                let connect = Connect {
                    header: header_for::<Connect>(),
                    token,
                    padding: [0; CONNECT_SIZE
                        - Header::SIZE
                        - meridian_layouts::witness::ConnectToken::SIZE],
                };
                let _ = socket.send_to(bytemuck::bytes_of(&connect), zone);
                (*pending, *asked) = (Some(token), WallInstant::now());
            }
        }
        if let Some(bytes) = &captured {
            for _ in 0..16 {
                let _ = sockets[0].0.send_to(bytes, zone);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    sent
}

/// One round of a core client over a plain socket: receive, tick, send — letting
/// `tamper` rewrite what it sends.
fn step(
    client: &mut Client,
    socket: &UdpSocket,
    clock: &Clock,
    mut tamper: impl FnMut(&mut Vec<u8>),
) {
    let mut buf = [0u8; 1500];
    while let Ok((len, from)) = socket.recv_from(&mut buf) {
        client.handle_datagram(clock.now(), from, &buf[..len]);
    }
    client.tick(clock.now());
    while let Some((to, len)) = client.poll_transmit(&mut buf) {
        let mut bytes = buf[..len].to_vec();
        tamper(&mut bytes);
        let _ = socket.send_to(&bytes, to);
    }
}

fn client_on_socket(
    zone0: SocketAddr,
    auth: &SigningKey,
    world: u64,
    id: u64,
    expires: u64,
    clock: &Clock,
) -> (Client, UdpSocket) {
    let key = SigningKey::from_bytes(&[id as u8; 32]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let t = token(auth, &key, world, id, expires);
    (Client::new(zone0, t, key, clock.now()), socket)
}

#[test]
fn forged_expired_wrong_world_tokens_and_changed_inputs_are_rejected() {
    let _machine = crate::shared();
    let (running, spec, auth) = start(6.0);
    let zone0 = spec.nodes[0].zone_address(0);
    let clock = Clock::new();
    let forger = SigningKey::from_bytes(&[99; 32]);
    let now = unix_ms();
    let mut bad = [
        client_on_socket(zone0, &forger, WORLD_ID, 11, now + 60_000, &clock),
        client_on_socket(zone0, &auth, WORLD_ID, 12, now - 1_000, &clock),
        client_on_socket(zone0, &auth, WORLD_ID + 1, 13, now + 60_000, &clock),
    ];
    // A good client whose sealed inputs are changed on the way (a forger without the
    // session key): it connects; every changed packet is dropped, none is applied, none
    // closes the session (each cost the zone one AEAD check).
    let (mut good, good_socket) =
        client_on_socket(zone0, &auth, WORLD_ID, 14, now + 60_000, &clock);
    good.set_intent(127, 0, 0);
    let mut round = 0u32;
    let started = WallInstant::now();
    while started.elapsed() < Duration::from_secs(4) {
        for (c, s) in &mut bad {
            step(c, s, &clock, |_| {});
        }
        step(&mut good, &good_socket, &clock, |bytes| {
            if bytes.get(5) == Some(&(meridian_layouts::Kind::Sealed as u8)) {
                round += 1;
                let n = bytes.len();
                bytes[n - 1 - (round as usize % 16)] ^= 0x20;
            }
        });
        std::thread::sleep(Duration::from_millis(33));
    }
    assert_eq!(
        bad[0].0.closed(),
        Some(CloseReason::Refused(RefuseReason::BadSignature)),
        "forged token"
    );
    assert!(!bad[1].0.is_connected(), "expired token");
    assert!(!bad[2].0.is_connected(), "wrong-world token");
    assert!(round >= 4, "the good client sent inputs");
    assert!(good.is_connected(), "{:?}", good.closed());
    let stats = running.stop().unwrap();
    let z = stats[0].clients;
    assert!(z.tokens_expired > 0, "{z:?}");
    assert!(z.tokens_wrong_world > 0, "{z:?}");
    assert_eq!(z.accepted, 1, "only the good client got a session");
    assert_eq!(z.sessions_closed_bad_inputs, 0, "{z:?}");
    assert!(z.sealed_forged >= 4, "{z:?}");
    assert!(z.bad_signatures >= 1, "the forged token: {z:?}");
    assert_eq!(z.inputs_applied, 0, "no changed input was applied");
    assert_eq!(good.authoritative().velocity, [0.0, 0.0]);
}

#[test]
fn a_swarm_at_ten_percent_loss_has_no_violations() {
    let _machine = crate::alone();
    // The progress line's lateness, each second: what the swarm's own report sums up.
    let mut late_seen = Vec::new();
    let report = swarm_against_node(swarm::Pattern::Cross, |p| late_seen.push(p.late_max));
    assert_eq!(report.connected, 60, "{}", report.table());
    assert!(report.redirects > 20, "bots crossed: {}", report.table());
    let late_max = late_seen.iter().max().expect("progress every second");
    assert!(!late_max.is_zero(), "{late_seen:?}");
    assert!(
        late_max.as_secs_f64() * 1000.0 <= report.late_ms.2 + 1.0,
        "{late_seen:?} against the report's max {}",
        report.late_ms.2
    );
    assert!(report.snapshots > 60 * 30 * 5, "{}", report.table());
    assert!(report.owner_samples >= 5);
    // 60 bots on one thread: the swarm keeps up (its ticks run well under a tick late).
    assert!(
        report.late_ms.2 > 0.0,
        "lateness measured: {}",
        report.table()
    );
    assert!(report.late_ms.1 < 33.0, "{}", report.table());
    assert_eq!(report.violations(), 0, "{}", report.table());
}

/// The crowd mills about the middle of the world, which is the border: bots in a dense
/// crowd cross it back and forth, each handoff judged (continuity, pop-in, visibility).
#[test]
fn a_crowd_milling_across_the_border_at_ten_percent_loss_has_no_violations() {
    let _machine = crate::alone();
    let report = swarm_against_node(swarm::Pattern::Crowd, |_| {});
    assert_eq!(report.connected, 60, "{}", report.table());
    assert!(
        report.handoffs_judged > 30,
        "the crowd crossed: {}",
        report.table()
    );
    assert_eq!(report.violations(), 0, "{}", report.table());
}

/// Over a 100 ms round trip with jitter, in a sparse world (40 NPCs a zone: a bot's
/// members lie at every distance tier, up to the far radius): acknowledgements run three
/// ticks behind, and no entity may be shown in an older state than a snapshot before
/// showed it (the far entities of earlier builds stepped back and forth).
#[test]
fn a_swarm_over_a_100_ms_round_trip_never_shows_an_entity_going_back() {
    let _machine = crate::alone();
    let net = (0.0, Duration::from_millis(50), Duration::from_millis(10));
    let report = swarm_with(swarm::Pattern::Cross, (40, net), |_| {});
    assert_eq!(report.connected, 60, "{}", report.table());
    assert!(report.snapshots > 60 * 30 * 5, "{}", report.table());
    assert_eq!(report.violations(), 0, "{}", report.table());
}

/// 60 bots moving as `pattern` says, for 8 s at 10 % loss on one thread, against a node
/// [`start`]ed for them (avatars at 20 m/s); the report once the node stopped.
fn swarm_against_node(
    pattern: swarm::Pattern,
    progress: impl FnMut(&swarm::Progress),
) -> swarm::Report {
    swarm_with(
        pattern,
        (500, (0.10, Duration::ZERO, Duration::ZERO)),
        progress,
    )
}

/// As [`swarm_against_node`], with `npcs` NPCs a zone, over a path of (loss, latency,
/// jitter).
fn swarm_with(
    pattern: swarm::Pattern,
    (npcs, (loss, latency, jitter)): (u32, (f64, Duration, Duration)),
    progress: impl FnMut(&swarm::Progress),
) -> swarm::Report {
    // The swarm logs the first few violations of each kind: shown with a failure.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::WARN)
        .try_init();
    let (running, spec, auth) = start_with(20.0, npcs);
    let target = swarm::Target {
        world: spec.world,
        world_id: WORLD_ID,
        zone_addrs: (0..2)
            .map(|k| (spec.nodes[0].zones[k], spec.nodes[0].zone_address(k)))
            .collect(),
        admins: running.admin_address().into_iter().collect(),
        admin_token: None,
        node_keys: Vec::new(),
        auth,
        speed_mps: 20.0,
    };
    let config = swarm::Config {
        clients: 60,
        duration: Duration::from_secs(8),
        pattern,
        loss,
        latency,
        jitter,
        threads: 1,
        seed: 3,
    };
    let report = swarm::run(&target, &config, &AtomicBool::new(false), progress).unwrap();
    running.stop().unwrap();
    report
}

/// `client_auth = "ed25519"` in the world file: the zone tells the client in ACCEPT, the
/// client signs every input inside its sealed packets, the zone verifies them and applies
/// them. A value other than "aead" or "ed25519" is refused with a message naming it.
#[test]
fn signed_inputs_work_end_to_end_when_the_world_asks_for_them() {
    let _machine = crate::shared();
    let auth = SigningKey::from_bytes(&[42; 32]);
    let port = two_free_ports();
    let text = world(port, &auth, 20.0, 500)
        .replace("[clients]\n", "[clients]\nclient_auth = \"ed25519\"\n");
    let bad = text.replace("\"ed25519\"", "\"rsa\"");
    let error = world_file::parse_spec(&bad).unwrap_err().to_string();
    assert!(
        error.contains("client_auth") && error.contains("rsa"),
        "{error}"
    );
    let spec = world_file::parse_spec(&text).unwrap();
    let node = spec.nodes[0].clone();
    let running = run::start(&spec, &node, None, None).unwrap();
    let zone0 = spec.nodes[0].zone_address(0);
    let clock = Clock::new();
    let key = SigningKey::from_bytes(&[12; 32]);
    let t = token(&auth, &key, WORLD_ID, 12, unix_ms() + 60_000);
    let mut c = UdpClient::connect(zone0, t, key, clock.now()).unwrap();
    let mut from = None;
    let started = WallInstant::now();
    while started.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(33));
        c.pump(clock.now(), || true).unwrap();
        while c.client_mut().poll_event().is_some() {}
        if c.client().is_connected() && from.is_none() && c.client().authoritative().tick > 0 {
            // Connected: a short walk north (the avatar spawned inside the zone).
            from = Some(c.client().authoritative().position);
            c.client_mut().set_intent(0, 127, 0);
        }
    }
    let from = from.expect("connected");
    let to = c.client().authoritative().position;
    assert!(
        to[1] > from[1] + 1.0,
        "inputs moved the avatar: {from:?} -> {to:?}"
    );
    let stats = running.stop().unwrap();
    let z = stats[0].clients;
    assert!(z.inputs_applied > 30, "{z:?}");
    assert_eq!(
        (z.bad_signatures, z.sealed_forged, z.malformed),
        (0, 0, 0),
        "{z:?}"
    );
}
