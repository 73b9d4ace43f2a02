//! What an operator sees: `/metrics` read by the reference Prometheus parser while a node
//! with NPCs crossing, a client and a data directory works; the live map in headless
//! Chromium.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use meridian_client::udp::UdpClient;
use meridian_io::Clock;
use meridian_node::admin_token::AdminToken;
use meridian_node::swarm::{http_get, http_get_with, sample_owners};
use meridian_node::{run, world_file};
use serde_json::Value;

use crate::clients::{token, two_free_ports, unix_ms};

/// Two zones, NPCs dancing on the border (handoffs every tick), clients.
fn world(port: u16, auth: &SigningKey) -> String {
    format!(
        r#"
[world]
id = 7
bounds = {{ x_min = 0.0, y_min = 0.0, x_max = 256.0, y_max = 128.0 }}
tick_rate_hz = 30
margin_m = 4.0
aura_m = 16.0
cell_size_m = 16.0

[zones]
columns = 2
rows = 1

[[nodes]]
name = "observed"
zones = [0, 1]
cores = [0, 1]
udp = "127.0.0.1:{port}"
admin = "127.0.0.1:0"

[npcs]
pattern = "border_dancers"
per_zone = 1000
speed_mps = 6.0

[clients]
auth_key = "{}"
speed_mps = 20.0

[limits]
entities_per_zone = 8192
"#,
        hex::encode(auth.verifying_key().as_bytes())
    )
}

pub(crate) struct Observed {
    pub(crate) running: run::Running,
    spec: world_file::WorldSpec,
    auth: SigningKey,
    pub(crate) dir: PathBuf,
}

pub(crate) fn start(name: &str) -> Observed {
    start_guarded(name, None)
}

/// [`start`], the admin endpoint requiring `token` if given.
pub(crate) fn start_guarded(name: &str, token: Option<AdminToken>) -> Observed {
    let auth = SigningKey::from_bytes(&[42; 32]);
    let spec = world_file::parse_spec(&world(two_free_ports(), &auth)).unwrap();
    let dir = std::env::temp_dir().join(format!("meridian-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let persistence = run::Persistence {
        dir: dir.join("data"),
        fresh: false,
    };
    let mut node = spec.nodes[0].clone();
    node.admin_token = token;
    let running = run::start_with(&spec, &node, None, None, Some(&persistence), None).unwrap();
    Observed {
        running,
        spec,
        auth,
        dir,
    }
}

/// The families of a scrape, as the reference parser read them.
fn parse(dir: &Path, body: &str) -> BTreeMap<String, Value> {
    let file = dir.join("scrape.txt");
    std::fs::write(&file, body).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/parse_metrics.py"
    );
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3 runs (CI installs it and `pip install prometheus_client`)");
    assert!(
        output.status.success(),
        "the Prometheus parser refused the scrape (is prometheus_client installed? \
         `python3 -m pip install prometheus_client`): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The sum over zones of a family's sample `sample`.
fn total(families: &BTreeMap<String, Value>, family: &str, sample: &str) -> f64 {
    let f = families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}"));
    f["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s[0] == sample)
        .map(|s| s[2].as_f64().unwrap_or(f64::INFINITY))
        .sum()
}

/// Every histogram: buckets cumulative, `+Inf` equal to `_count`, per zone.
fn check_histogram(families: &BTreeMap<String, Value>, name: &str) {
    let samples = families[name]["samples"].as_array().unwrap();
    for zone in ["0", "1"] {
        let of_zone = |suffix: &str| {
            samples
                .iter()
                .filter(|s| s[0] == format!("{name}{suffix}") && s[1]["zone"] == zone)
                .collect::<Vec<_>>()
        };
        let buckets: Vec<f64> = of_zone("_bucket")
            .iter()
            .map(|s| s[2].as_f64().unwrap())
            .collect();
        assert!(buckets.len() >= 2, "{name} zone {zone}: {buckets:?}");
        assert!(
            buckets.windows(2).all(|w| w[0] <= w[1]),
            "{name} zone {zone}: buckets not cumulative: {buckets:?}"
        );
        let count = of_zone("_count")[0][2].as_f64().unwrap();
        let inf = of_zone("_bucket")
            .iter()
            .find(|s| s[1]["le"] == "+Inf")
            .map(|s| s[2].as_f64().unwrap());
        assert_eq!(inf, Some(count), "{name} zone {zone}: +Inf bucket ≠ count");
    }
}

fn scrape(admin: SocketAddr) -> String {
    http_get(admin, "/metrics").expect("/metrics answers 200")
}

#[test]
fn metrics_parse_and_move_as_the_node_works() {
    let _machine = crate::shared();
    let o = start("metrics");
    let admin = o.running.admin_address().unwrap();
    let zone0 = o.spec.nodes[0].zone_address(0);
    let clock = Clock::new();
    let key = SigningKey::from_bytes(&[5; 32]);
    let t = token(&o.auth, &key, 7, 1, unix_ms() + 60_000);
    let mut client = UdpClient::connect(zone0, t, key, clock.now()).unwrap();
    let mut drive = |for_how_long: Duration| {
        let until = Instant::now() + for_how_long;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(33));
            client.pump(clock.now(), || true).unwrap();
            while client.client_mut().poll_event().is_some() {}
            client.client_mut().set_intent(127, 0, 0);
        }
    };
    drive(Duration::from_millis(1500));
    let first = parse(&o.dir, &scrape(admin));
    drive(Duration::from_millis(2500));
    let second = parse(&o.dir, &scrape(admin));

    let expected = [
        ("meridian_zone_entities", "gauge"),
        ("meridian_zone_ghosts", "gauge"),
        ("meridian_zone_sessions", "gauge"),
        ("meridian_zone_handoffs_in_flight", "gauge"),
        ("meridian_handoff_departures", "counter"),
        ("meridian_handoff_offers_sent", "counter"),
        ("meridian_session_snapshots", "counter"),
        ("meridian_session_sealed_forged", "counter"),
        ("meridian_replicate_entries", "counter"),
        ("meridian_replicate_blinked", "counter"),
        ("meridian_witness_forged", "counter"),
        ("meridian_persist_wal_appends", "counter"),
        ("meridian_udp_sent", "counter"),
        ("meridian_io_received_bytes", "counter"),
        ("meridian_tick_duration_seconds", "histogram"),
        ("meridian_tick_busy_seconds", "histogram"),
        ("meridian_handoff_latency_ticks", "histogram"),
        ("meridian_handoff_latency_seconds", "histogram"),
        ("meridian_snapshot_size_bytes", "histogram"),
        ("meridian_input_age_ticks", "histogram"),
        ("meridian_persist_gate_disk_seconds", "histogram"),
        ("meridian_persist_gate_seconds", "histogram"),
        ("meridian_zone_tick_phase_error_seconds", "gauge"),
    ];
    for (name, kind) in expected {
        let family = second
            .get(name)
            .unwrap_or_else(|| panic!("no family {name}"));
        assert_eq!(family["type"], kind, "{name}");
        assert!(
            !family["help"].as_str().unwrap().is_empty(),
            "{name}: no help"
        );
    }
    for (name, family) in &second {
        assert!(name.starts_with("meridian_"), "{name}");
        for s in family["samples"].as_array().unwrap() {
            assert_eq!(s[1]["node"], "observed", "{name}: {s}");
            assert!(s[1]["zone"] == "0" || s[1]["zone"] == "1", "{name}: {s}");
        }
    }
    for name in expected.iter().filter(|e| e.1 == "histogram") {
        check_histogram(&second, name.0);
    }
    // The values move as the node works.
    let moved = |family: &str, sample: &str| {
        let (a, b) = (
            total(&first, family, sample),
            total(&second, family, sample),
        );
        assert!(b > a, "{sample} did not move: {a} then {b}");
    };
    moved("meridian_zone_tick", "meridian_zone_tick");
    moved(
        "meridian_handoff_departures",
        "meridian_handoff_departures_total",
    );
    moved(
        "meridian_session_snapshots",
        "meridian_session_snapshots_total",
    );
    moved("meridian_replicate_bytes", "meridian_replicate_bytes_total");
    moved(
        "meridian_persist_wal_appends",
        "meridian_persist_wal_appends_total",
    );
    moved("meridian_udp_sent", "meridian_udp_sent_total");
    let hist = "meridian_tick_duration_seconds";
    moved(hist, &format!("{hist}_count"));
    let hist = "meridian_handoff_latency_ticks";
    moved(hist, &format!("{hist}_count"));
    let hist = "meridian_persist_gate_seconds";
    moved(hist, &format!("{hist}_count"));
    // The busy time holds the tick's work and more (ingest, transmit).
    let busy = "meridian_tick_busy_seconds";
    moved(busy, &format!("{busy}_count"));
    let work = "meridian_tick_duration_seconds";
    let (b, w) = (
        total(&second, busy, &format!("{busy}_sum")),
        total(&second, work, &format!("{work}_sum")),
    );
    assert!(b >= w, "busy {b} s < work {w} s");
    // Both zones tick on their phase of the Unix clock: aligned at start, kept through
    // ticks late by more than a period (which a debug build's can be: the slots missed
    // are skipped whole), corrected by up to 2 ms a second for the monotonic clock's drift.
    // Unaligned, each zone's error would stay anywhere in ±16 ms. Each scrape is another
    // chance, for up to 10 s (a loaded machine: other tests' nodes on the same two cores).
    let phase = "meridian_zone_tick_phase_error_seconds";
    let error = |families: &BTreeMap<String, Value>, zone: &str| {
        let samples = families[phase]["samples"].as_array().unwrap();
        let s = samples.iter().find(|s| s[1]["zone"] == zone).unwrap();
        s[2].as_f64().unwrap().abs()
    };
    let mut best = ["0", "1"].map(|z| error(&first, z).min(error(&second, z)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while best.iter().any(|&e| e >= 0.001) {
        assert!(
            Instant::now() < deadline,
            "{phase}: zones 0 and 1 at best {best:?} s over 10 s of scrapes"
        );
        std::thread::sleep(Duration::from_millis(500));
        let again = parse(&o.dir, &scrape(admin));
        for (k, z) in ["0", "1"].iter().enumerate() {
            best[k] = best[k].min(error(&again, z));
        }
    }
    let ages = total(
        &second,
        "meridian_input_age_ticks",
        "meridian_input_age_ticks_count",
    );
    assert!(ages > 10.0, "only {ages} input ages recorded");
    let sessions = total(&second, "meridian_zone_sessions", "meridian_zone_sessions");
    assert_eq!(sessions, 1.0, "one client, one session");
    // Zones publish at their own instants, so this is not a conservation check.
    let entities = total(&second, "meridian_zone_entities", "meridian_zone_entities");
    assert!(
        (1900.0..2100.0).contains(&entities),
        "{entities} entities for 2,000 NPCs and an avatar"
    );
    o.running.stop().unwrap();
    std::fs::remove_dir_all(&o.dir).unwrap();
}

/// The first line of the answer to `GET path`, and the open connection.
fn open_stream(admin: SocketAddr, path: &str) -> (String, std::net::TcpStream) {
    use std::io::{BufRead, Write};
    let mut stream = std::net::TcpStream::connect(admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {admin}\r\n\r\n").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    (line.trim_end().to_owned(), stream)
}

#[test]
fn live_map_streams_are_bounded_and_bad_windows_refused() {
    let _machine = crate::shared();
    let o = start("streams");
    let admin = o.running.admin_address().unwrap();
    let (status, _) = open_stream(admin, "/map/stream?view=10,0,5,10");
    assert!(status.contains(" 400 "), "{status}");
    let open: Vec<_> = (0..meridian_io::runtime::map::VIEWS_MAX)
        .map(|_| open_stream(admin, "/map/stream"))
        .collect();
    for (status, _) in &open {
        assert!(status.contains(" 200 "), "{status}");
    }
    let (status, _) = open_stream(admin, "/map/stream");
    assert!(
        status.contains(" 503 "),
        "a stream past the limit: {status}"
    );
    // A closed stream frees its window (noticed at its next write).
    drop(open);
    std::thread::sleep(Duration::from_millis(600));
    let (status, _) = open_stream(admin, "/map/stream");
    assert!(status.contains(" 200 "), "after closing: {status}");
    o.running.stop().unwrap();
    std::fs::remove_dir_all(&o.dir).unwrap();
}

/// The status line and headers of the answer to `GET path` with `headers`.
fn head(admin: SocketAddr, path: &str, headers: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {admin}\r\n{headers}\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    // A stream's answer does not end: what came within the timeout is enough.
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer) {
        answer.extend_from_slice(&buffer[..n]);
        if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    answer.split("\r\n\r\n").next().unwrap().to_owned()
}

#[test]
fn the_admin_endpoint_answers_only_with_its_token() {
    let _machine = crate::shared();
    let token = AdminToken::generate().unwrap();
    let o = start_guarded("guarded", Some(token.clone()));
    let admin = o.running.admin_address().unwrap();
    let t = token.text();
    let wrong = AdminToken::generate().unwrap();
    // Every path, a stream and a hold of the zones included, refuses a request without
    // the token, with a wrong one, or with it under another scheme.
    let paths = [
        "/status",
        "/metrics",
        "/entities",
        "/avatars",
        "/positions",
        "/freeze",
        "/release",
        "/map",
        "/map/stream",
        "/nothing",
    ];
    let refusals = [
        String::new(),
        format!("Authorization: Bearer {}\r\n", wrong.text()),
        format!("Authorization: Bearer {}\r\n", &t[1..]),
        format!("Authorization: Basic {t}\r\n"),
    ];
    let mut refused = 0;
    for path in paths {
        for headers in &refusals {
            let answer = head(admin, path, headers);
            assert!(
                answer.starts_with("HTTP/1.0 401 "),
                "{path} {headers:?}: {answer}"
            );
            assert!(answer.contains("WWW-Authenticate: Bearer"), "{answer}");
            refused += 1;
        }
        let answer = head(admin, &format!("{path}?token={}", wrong.text()), "");
        assert!(answer.starts_with("HTTP/1.0 401 "), "{path}: {answer}");
        refused += 1;
    }
    // With the token, as a header or in the query, the endpoint answers as before.
    let bearer = format!("Authorization: Bearer {t}\r\n");
    for (path, headers) in [
        ("/status".to_owned(), bearer.as_str()),
        (format!("/status?token={t}"), ""),
        (format!("/positions?view=0,0,10,10&token={t}"), ""),
        (format!("/map?token={t}"), ""),
        ("/map/stream".to_owned(), bearer.as_str()),
        ("/avatars".to_owned(), bearer.as_str()),
    ] {
        let answer = head(admin, &path, headers);
        assert!(answer.contains(" 200 "), "{path}: {answer}");
    }
    // The swarm's checks send it; without it they get nothing.
    assert!(sample_owners(&[admin], Some(&token)).is_ok());
    let e = sample_owners(&[admin], None).unwrap_err().to_string();
    assert!(e.contains("401"), "{e}");
    // Every refusal is counted, and the count is scraped.
    let metrics = http_get_with(admin, "/metrics", Some(&token)).unwrap();
    let families = parse(&o.dir, &metrics);
    let counted = total(
        &families,
        "meridian_admin_refused",
        "meridian_admin_refused_total",
    );
    assert_eq!(counted as u64, refused + 1, "{metrics}");
    o.running.stop().unwrap();
    std::fs::remove_dir_all(&o.dir).unwrap();
}
