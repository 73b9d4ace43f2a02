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
use meridian_layouts::witness::{SIGNATURE_SIZE, parse_envelope};
use meridian_node::{run, swarm, world_file};

const WORLD_ID: u64 = 7;

/// Two 128 m zones, few NPCs, fast avatars: crossings within seconds.
fn world(port: u16, auth: &SigningKey, speed_mps: f32) -> String {
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
per_zone = 500
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
fn two_free_ports() -> u16 {
    loop {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < u16::MAX && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

fn start(speed_mps: f32) -> (run::Running, world_file::WorldSpec, SigningKey) {
    let auth = SigningKey::from_bytes(&[42; 32]);
    let port = two_free_ports();
    let spec = world_file::parse_spec(&world(port, &auth, speed_mps)).unwrap();
    let node = spec.nodes[0].clone();
    let running = run::start(&spec, &node, None, None).unwrap();
    (running, spec, auth)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn token(
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
                ClientEvent::Redirected { zone, addr } => {
                    assert_eq!((zone, addr), (1, zone1));
                    redirected = true;
                }
                ClientEvent::Closed(reason) => panic!("closed: {reason:?}"),
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
    let auth = SigningKey::from_bytes(&[42; 32]);
    let port = two_free_ports();
    let spec = world_file::parse_spec(&world(port, &auth, 6.0)).unwrap();
    let node = spec.nodes[0].clone();
    let dir = std::env::temp_dir().join(format!("meridian-session-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let persistence = run::Persistence {
        dir: dir.clone(),
        fresh: false,
    };
    let running = run::start_with(&spec, &node, None, None, Some(&persistence)).unwrap();
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
    let down = pump(&mut c, 1, &|_, _| false);
    assert!(
        down <= 2,
        "{down} snapshots while the node was down (more than were in flight)"
    );
    let running = run::start_with(&spec, &node, None, None, Some(&persistence)).unwrap();
    let after = pump(&mut c, 10, &|_, n| n >= 30);
    assert!(after >= 30, "only {after} snapshots after the restart");
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
fn forged_expired_wrong_world_tokens_and_bad_inputs_are_rejected() {
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
    // A good client whose inputs are stripped of their signature or signed by another key.
    let (mut good, good_socket) =
        client_on_socket(zone0, &auth, WORLD_ID, 14, now + 60_000, &clock);
    good.set_intent(127, 0, 0);
    let intruder = SigningKey::from_bytes(&[7; 32]);
    let mut round = 0u32;
    let started = WallInstant::now();
    while started.elapsed() < Duration::from_secs(4) {
        for (c, s) in &mut bad {
            step(c, s, &clock, |_| {});
        }
        step(&mut good, &good_socket, &clock, |bytes| {
            let Ok(envelope) = parse_envelope(bytes) else {
                return;
            };
            let signed = envelope.signed.len();
            round += 1;
            if round.is_multiple_of(2) {
                bytes[signed..signed + SIGNATURE_SIZE].fill(0);
            } else {
                let signature = intruder.sign(&bytes[..signed]).to_bytes();
                bytes[signed..signed + SIGNATURE_SIZE].copy_from_slice(&signature);
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
    assert!(good.is_connected(), "the good client's handshake worked");
    assert!(round > 30, "the good client sent inputs");
    let stats = running.stop().unwrap();
    let z = stats[0].clients;
    assert!(z.tokens_expired > 0, "{z:?}");
    assert!(z.tokens_wrong_world > 0, "{z:?}");
    assert_eq!(z.accepted, 1, "only the good client got a session");
    assert!(z.bad_signatures > 30, "{z:?}");
    assert_eq!(
        z.inputs_applied, 0,
        "no unsigned or mis-signed input was applied"
    );
    assert_eq!(good.authoritative().velocity, [0.0, 0.0]);
}

#[test]
fn a_swarm_at_ten_percent_loss_has_no_violations() {
    let (running, spec, auth) = start(20.0);
    let target = swarm::Target {
        world: spec.world,
        world_id: WORLD_ID,
        zone_addrs: (0..2)
            .map(|k| (spec.nodes[0].zones[k], spec.nodes[0].zone_address(k)))
            .collect(),
        admins: running.admin_address().into_iter().collect(),
        node_keys: Vec::new(),
        auth,
        speed_mps: 20.0,
    };
    let config = swarm::Config {
        clients: 60,
        duration: Duration::from_secs(8),
        pattern: swarm::Pattern::Cross,
        loss: 0.10,
        threads: 1,
        seed: 3,
    };
    let report = swarm::run(&target, &config, &AtomicBool::new(false), |_| {}).unwrap();
    running.stop().unwrap();
    assert_eq!(report.connected, 60, "{}", report.table());
    assert!(report.redirects > 20, "bots crossed: {}", report.table());
    assert!(report.snapshots > 60 * 30 * 5, "{}", report.table());
    assert!(report.owner_samples >= 5);
    assert_eq!(report.violations(), 0, "{}", report.table());
}
