//! Output capacity: a zone with 4,096 sessions — its configured default — sends a snapshot
//! to every session every tick, over real loopback UDP, and its clients get them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant as WallInstant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use meridian_client::ClientEvent;
use meridian_client::token::issue_token;
use meridian_client::udp::UdpClient;
use meridian_io::Clock;
use meridian_node::{run, world_file};

const WORLD_ID: u64 = 9;
const SESSIONS: usize = 4096;

fn world(port: u16, auth: &SigningKey) -> String {
    format!(
        r#"
[world]
id = {WORLD_ID}
bounds = {{ x_min = 0.0, y_min = 0.0, x_max = 1024.0, y_max = 1024.0 }}
tick_rate_hz = 30
margin_m = 4.0
aura_m = 16.0
cell_size_m = 32.0

[zones]
columns = 1
rows = 1

[[nodes]]
name = "capacity"
zones = [0]
cores = [0]
udp = "127.0.0.1:{port}"
admin = "127.0.0.1:0"

[clients]
auth_key = "{}"
sessions_per_zone = {SESSIONS}

[limits]
entities_per_zone = 16384
"#,
        hex::encode(auth.verifying_key().as_bytes())
    )
}

/// Every client gets a snapshot every tick: over a window of zone ticks, the zone sent
/// exactly one per session per tick (none dropped for want of room), and the clients
/// received them. The zone may tick slower than 30 Hz on this machine with 4,096 clients
/// and their bots sharing two cores; what is checked is that no tick leaves a session out.
#[test]
fn a_4096_session_zone_snapshots_every_session_every_tick() {
    let _machine = crate::alone();
    let auth = SigningKey::from_bytes(&[43; 32]);
    let port = crate::free_ports(2);
    let spec = world_file::parse_spec(&world(port, &auth)).unwrap();
    let node = spec.nodes[0].clone();
    let running = run::start(&spec, &node, None, None).unwrap();
    let zone0 = spec.nodes[0].zone_address(0);
    let clock = Clock::new();
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 600_000;
    // Client `i`, attempt `attempt`: one loopback address per client, as distinct
    // players would have.
    let make = |i: usize, attempt: u64| -> UdpClient {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        let key = SigningKey::from_bytes(&seed);
        let t = issue_token(
            &auth,
            *key.verifying_key().as_bytes(),
            WORLD_ID,
            i as u64 + 1,
            expires,
            (attempt << 32) | i as u64,
        );
        let n = i as u32 + 1;
        let local: SocketAddr = ([127, 2, (n >> 8) as u8, n as u8], 0).into();
        UdpClient::connect_from(local, zone0, t, key, clock.now()).unwrap()
    };
    let mut snapshots = Received {
        by_tick: HashMap::new(),
        newest: vec![0; SESSIONS],
    };
    let pump = |clients: &mut Vec<UdpClient>, snapshots: &mut Received| {
        for (k, c) in clients.iter_mut().enumerate() {
            c.pump(clock.now(), || true).unwrap();
            while let Some(e) = c.client_mut().poll_event() {
                if let ClientEvent::Snapshot { tick, .. } = e {
                    *snapshots.by_tick.entry(tick).or_default() += 1;
                    snapshots.newest[k] = snapshots.newest[k].max(tick);
                }
            }
        }
    };
    // Clients join a few hundred at a time (a zone verifies 32 handshakes a tick; a client
    // gives up after 5 s), and one that gave up tries again with a new token.
    let mut clients: Vec<UdpClient> = Vec::with_capacity(SESSIONS);
    let mut attempt = 0u64;
    let started = WallInstant::now();
    loop {
        let connected = clients.iter().filter(|c| c.client().is_connected()).count();
        if connected == SESSIONS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {connected} of {SESSIONS} clients connected"
        );
        for (i, c) in clients.iter_mut().enumerate() {
            if c.client().closed().is_some() {
                attempt += 1;
                *c = make(i, attempt);
            }
        }
        while clients.len() < SESSIONS && clients.len() - connected < 384 {
            clients.push(make(clients.len(), 0));
        }
        pump(&mut clients, &mut snapshots);
        std::thread::sleep(Duration::from_millis(2));
    }
    // Settle, then measure a window of zone ticks.
    let settle = WallInstant::now();
    while settle.elapsed() < Duration::from_secs(2) {
        pump(&mut clients, &mut snapshots);
    }
    // Stats are published about once a second, at a tick boundary: the window runs from
    // one publication to another, and the snapshots of its ticks are counted, however
    // late the clients read them (one thread pumping 4,096 clients falls ticks behind on
    // a busy host).
    let published = |clients: &mut Vec<UdpClient>, snapshots: &mut Received| {
        let last = running.stats()[0].tick;
        loop {
            pump(clients, snapshots);
            let s = running.stats()[0].clone();
            if s.tick != last {
                return s;
            }
        }
    };
    let before = published(&mut clients, &mut snapshots);
    let kernel_dropped_before = udp_receive_buffer_drops();
    let window = WallInstant::now();
    while window.elapsed() < Duration::from_secs(3) {
        pump(&mut clients, &mut snapshots);
    }
    let after = published(&mut clients, &mut snapshots);
    // Every client reads on past the window's last tick.
    let drain = WallInstant::now();
    while snapshots.newest.iter().any(|&t| u64::from(t) <= after.tick)
        && drain.elapsed() < Duration::from_secs(10)
    {
        pump(&mut clients, &mut snapshots);
    }
    let kernel_dropped = udp_receive_buffer_drops().saturating_sub(kernel_dropped_before);
    running.stop().unwrap();
    let received: u64 = snapshots
        .by_tick
        .iter()
        .filter(|&(&t, _)| (before.tick + 1..=after.tick).contains(&u64::from(t)))
        .map(|(_, n)| n)
        .sum();
    let ticks = after.tick - before.tick;
    let sent = after.clients.snapshots - before.clients.snapshots;
    let owed = ticks * SESSIONS as u64;
    eprintln!(
        "capacity: {} sessions, {ticks} ticks, {sent} snapshots sent of {owed} owed, \
         {received} received, {kernel_dropped} datagrams dropped by the kernel (full receive \
         buffers); tick p99 {} µs; {:?}",
        after.sessions, after.tick_p99_us, after.clients
    );
    assert_eq!(after.sessions, SESSIONS);
    assert!(ticks >= 10, "the zone ticked {ticks} times");
    assert_eq!(after.clients.snapshots_dropped, 0, "{:?}", after.clients);
    // (Before the window, a retrying client may have found the session table full.)
    assert_eq!(
        after.clients.overflow - before.clients.overflow,
        0,
        "outbox or table full in the window: {:?}",
        after.clients
    );
    assert_eq!(
        after.drops - before.drops,
        0,
        "datagrams dropped by the driver"
    );
    // The stats of one sample are taken together, at a tick boundary: exact.
    assert_eq!(sent, owed, "a tick left sessions without a snapshot");
    // Counted by tick, the window's snapshots are exactly the ones sent in it: all
    // received but those the kernel dropped from a client's full receive buffer (the test's
    // clients falling behind, not the zone) and, with slack for a few, those that came
    // after a newer one (a client reports only the newest it applied).
    assert!(
        received <= sent && received + kernel_dropped + SESSIONS as u64 / 16 >= sent,
        "clients received {received} of {sent} snapshots ({kernel_dropped} datagrams dropped \
         by the kernel)"
    );
}

/// Snapshots the clients applied: how many of each tick, and the newest tick per client.
struct Received {
    by_tick: HashMap<u32, u64>,
    newest: Vec<u32>,
}

/// UDP datagrams this host's kernel dropped from full socket receive buffers so far
/// (`RcvbufErrors` in `/proc/net/snmp`); 0 where it cannot be read.
fn udp_receive_buffer_drops() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|&(name, _)| name == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}
