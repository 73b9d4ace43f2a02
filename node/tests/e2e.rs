//! End to end over real loopback sockets: a 2-zone node on two pinned executors, 5,000
//! NPCs dancing across the border for 10 s, sampled through the admin HTTP endpoint; then
//! two nodes handing off over UDP (plain and signed), sampled as one cut across both.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use meridian_io::runtime::Snapshot;
use meridian_node::{run, world_file};

use crate::conservation::{ZoneCut, assert_sound, npc_ids, parse_cut};

pub(crate) const WORLD: &str = r#"
[world]
id = 7
bounds = { x_min = 0.0, y_min = 0.0, x_max = 1024.0, y_max = 512.0 }
tick_rate_hz = 30
margin_m = 4.0
aura_m = 16.0
cell_size_m = 16.0

[zones]
columns = 2
rows = 1

[[nodes]]
name = "e2e"
zones = [0, 1]
cores = [0, 1]
udp = "127.0.0.1:0"
admin = "127.0.0.1:0"

[npcs]
pattern = "border_dancers"
per_zone = 2500
speed_mps = 6.0

[limits]
entities_per_zone = 16384
"#;

/// `GET path` from the admin endpoint (the swarm's client): the body of a 200 answer.
fn get(addr: SocketAddr, path: &str) -> String {
    meridian_node::swarm::http_get(addr, path).expect("admin endpoint answers 200")
}

fn cut_of(snapshots: &[Snapshot]) -> Vec<ZoneCut> {
    snapshots
        .iter()
        .map(|s| ZoneCut {
            zone: s.zone,
            owned: s.owned.clone(),
            in_flight: s.in_flight.clone(),
        })
        .collect()
}

#[test]
fn npcs_cross_back_and_forth_and_are_conserved() {
    let _machine = crate::alone();
    let dir = std::env::temp_dir().join(format!("meridian-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("world.toml");
    std::fs::write(&path, WORLD).unwrap();
    let spec = world_file::load_spec(&path).unwrap();
    let node_spec = run::pick_node(&spec, None).unwrap().clone();
    let running = run::start(&spec, &node_spec, None, None).unwrap();
    let admin = running.admin_address().expect("admin endpoint");

    let expected = npc_ids(&[0, 1], 2500);
    let total = expected.len();
    let started = Instant::now();
    let mut samples = 0;
    let mut in_flight_seen = 0;
    while started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(300));
        let cut = parse_cut(&get(admin, "/entities"));
        assert_eq!(cut.len(), 2);
        samples += 1;
        in_flight_seen += cut.iter().map(|z| z.in_flight.len()).sum::<usize>();
        assert_sound(&cut, &expected, samples);
    }
    let status = get(admin, "/status");
    assert_eq!(status.lines().count(), 2, "{status}");

    let finals = running.stop().unwrap();
    let period_us = 1_000_000 / 30;
    for s in &finals {
        assert!(
            s.counters.departures > 100,
            "zone {} handed off only {} entities",
            s.zone,
            s.counters.departures
        );
        assert!(
            s.tick_p99_us < period_us,
            "zone {} tick p99 {} µs",
            s.zone,
            s.tick_p99_us
        );
        assert!(
            s.tick > 250,
            "zone {} ran only {} ticks in 10 s",
            s.zone,
            s.tick
        );
    }
    // After stopping: no entity owned twice (a duplicate would push the sum past the
    // total), none lost (the in-flight ones are owned by nobody yet).
    let owned: usize = finals.iter().map(|s| s.entities).sum();
    let in_flight: usize = finals.iter().map(|s| s.in_flight).sum();
    assert!(
        owned <= total && owned + in_flight >= total,
        "after stopping: {owned} owned and {in_flight} in flight of {total}"
    );
    assert!(samples >= 15, "only {samples} samples");
    // The cuts caught transfers mid-flight, so the in-flight rule was exercised.
    assert!(in_flight_seen > 0, "no sample caught an entity in flight");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two nodes, one zone each: every handoff and ghost batch crosses real loopback UDP.
#[test]
fn two_nodes_hand_off_over_udp() {
    let _machine = crate::shared();
    two_nodes(false);
}

/// The same with node keys pinned in the world file: every datagram between the nodes is
/// sealed in a signed envelope and verified in a batch per tick before the zone sees it.
#[test]
fn two_nodes_hand_off_over_signed_udp() {
    let _machine = crate::shared();
    two_nodes(true);
}

fn two_nodes(signed: bool) {
    // Free ports for both zones (a short race with other processes; fine on a test host).
    let free = || {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port_a, port_b) = (free(), free());
    let world = WORLD
        .replace(
            "[[nodes]]\nname = \"e2e\"\nzones = [0, 1]\ncores = [0, 1]\nudp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"",
            &format!(
                "[[nodes]]\nname = \"a\"\nzones = [0]\ncores = [0]\nudp = \"127.0.0.1:{port_a}\"\n\n\
                 [[nodes]]\nname = \"b\"\nzones = [1]\ncores = [1]\nudp = \"127.0.0.1:{port_b}\""
            ),
        )
        .replace("per_zone = 2500", "per_zone = 1000");
    let (key_a, key_b) = (
        meridian_node::keyfile::generate().unwrap(),
        meridian_node::keyfile::generate().unwrap(),
    );
    let world = if signed {
        let pin = |name: &str, key: &ed25519_dalek::SigningKey| {
            format!(
                "name = \"{name}\"\npublic_key = \"{}\"",
                hex::encode(key.verifying_key().as_bytes())
            )
        };
        world
            .replace("name = \"a\"", &pin("a", &key_a))
            .replace("name = \"b\"", &pin("b", &key_b))
    } else {
        world
    };
    assert!(world.contains("name = \"b\""));
    let dir =
        std::env::temp_dir().join(format!("meridian-e2e-udp-{signed}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("world.toml");
    std::fs::write(&path, world).unwrap();
    let spec = world_file::load_spec(&path).unwrap();
    let (node_a, node_b) = (
        run::pick_node(&spec, Some("a")).unwrap(),
        run::pick_node(&spec, Some("b")).unwrap(),
    );
    if signed {
        // A signed world refuses to start without the node's key, or with another node's.
        let missing = run::start(&spec, node_a, None, None)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("--key"), "{missing}");
        let wrong = run::start(&spec, node_a, None, Some(&key_b))
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("does not match"), "{wrong}");
    }
    let a = run::start(&spec, node_a, None, signed.then_some(&key_a)).unwrap();
    let b = run::start(&spec, node_b, None, signed.then_some(&key_b)).unwrap();

    let expected = npc_ids(&[0, 1], 1000);
    let started = Instant::now();
    let mut samples = 0;
    while started.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(300));
        // Freeze both nodes before releasing either: every zone of both holds at a tick
        // boundary while the others sample, so the four samples are one consistent cut;
        // datagrams still on the wire are covered by the in-flight entries.
        let sa = a.freeze(Duration::from_secs(2));
        let sb = b.freeze(Duration::from_secs(2));
        a.release();
        b.release();
        let (sa, sb) = (sa.expect("node a answers"), sb.expect("node b answers"));
        samples += 1;
        let mut cut = cut_of(&sa);
        cut.extend(cut_of(&sb));
        assert_sound(&cut, &expected, samples);
    }
    assert!(samples >= 10, "only {samples} samples");
    let fa = a.stop().unwrap();
    let fb = b.stop().unwrap();
    for s in fa.iter().chain(&fb) {
        assert!(
            s.counters.departures > 50,
            "zone {} handed off only {}",
            s.zone,
            s.counters.departures
        );
        assert!(
            s.counters.ghosts_received > 0,
            "zone {} received no ghosts over UDP",
            s.zone
        );
        assert!(s.packets_out > 0 && s.packets_in > 0);
        assert_eq!(
            s.verify_failures, 0,
            "zone {}: a healthy run has no verify failures: {:?}",
            s.zone, s.witness
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
