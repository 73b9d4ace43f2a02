//! Failover over real processes: three signed `meridian node` processes on loopback, one
//! zone each, random walkers crossing both borders; node n2 keeps the standbys of zones 0
//! and 1, n1 that of zone 2. Node n0 is killed with SIGKILL: membership declares it down,
//! n2 (seeing n1 alive: a majority) takes zone 0 over from its standby copy, n1 routes
//! zone 0's traffic to it from its first datagram, and every cut afterwards shows each NPC
//! exactly once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::conservation::{ZoneCut, assert_sound, npc_ids, parse_cut};

const NODES: usize = 3;
const NPCS_PER_ZONE: u64 = 300;

/// `n` consecutive ports free for UDP and TCP on loopback a moment ago.
fn free_ports(n: u16) -> u16 {
    loop {
        let base = crate::free_port();
        if base > u16::MAX - n {
            continue;
        }
        let free = (base..base + n).all(|p| {
            std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
        });
        if free {
            return base;
        }
    }
}

pub(crate) struct Mesh3 {
    pub(crate) dir: PathBuf,
    world: PathBuf,
    pub(crate) admins: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
}

impl Mesh3 {
    pub(crate) fn new(name: &str) -> Mesh3 {
        let dir = std::env::temp_dir().join(format!("meridian-fo-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut nodes = String::new();
        let mut admins = Vec::new();
        // n2 keeps the standbys of zones 0 and 1, n1 that of zone 2.
        let standby_for = ["[]", "[2]", "[0, 1]"];
        for (k, standby_for) in standby_for.iter().enumerate() {
            let key = meridian_node::keyfile::generate().unwrap();
            meridian_node::keyfile::write(&dir.join(format!("n{k}.key")), &key, false).unwrap();
            let admin = SocketAddr::from(([127, 0, 0, 1], free_ports(1)));
            admins.push(admin);
            nodes.push_str(&format!(
                "\n[[nodes]]\nname = \"n{k}\"\nzones = [{k}]\ncores = [{}]\nudp = \"127.0.0.1:{}\"\n\
                 admin = \"{admin}\"\ncontrol = \"127.0.0.1:{}\"\npublic_key = \"{}\"\nstandby_for = {standby_for}\n",
                k % 2,
                free_ports(3),
                free_ports(1),
                hex::encode(key.verifying_key().as_bytes()),
            ));
        }
        let world = format!(
            "[world]\nid = 21\nbounds = {{ x_min = 0.0, y_min = 0.0, x_max = 192.0, y_max = 64.0 }}\n\
             tick_rate_hz = 30\nmargin_m = 4.0\naura_m = 16.0\ncell_size_m = 16.0\n\n\
             [zones]\ncolumns = 3\nrows = 1\n\n\
             [npcs]\npattern = \"random_walk\"\nper_zone = {NPCS_PER_ZONE}\nspeed_mps = 8.0\n\n\
             [persistence]\ncheckpoint_interval_s = 0.5\n{nodes}"
        );
        let path = dir.join("world.toml");
        std::fs::write(&path, world).unwrap();
        Mesh3 {
            dir,
            world: path,
            admins,
            children: (0..NODES).map(|_| None).collect(),
        }
    }

    fn command(&self, k: usize) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_meridian"));
        c.arg("node")
            .arg("--world")
            .arg(&self.world)
            .args(["--name", &format!("n{k}")])
            .arg("--key")
            .arg(self.dir.join(format!("n{k}.key")))
            .arg("--data")
            .arg(self.dir.join(format!("data{k}")))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(format!("n{k}.log")))
                    .unwrap(),
            ));
        c
    }

    pub(crate) fn start(&mut self, k: usize) {
        self.children[k] = Some(self.command(k).spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while meridian_node::swarm::http_get(self.admins[k], "/status").is_err() {
            if let Some(status) = self.children[k].as_mut().unwrap().try_wait().unwrap() {
                panic!("node {k} exited with {status}: {}", self.log(k));
            }
            assert!(
                Instant::now() < deadline,
                "node {k} did not come up: {}",
                self.log(k)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn kill(&mut self, k: usize) {
        let mut child = self.children[k].take().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    pub(crate) fn log(&self, k: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("n{k}.log"))).unwrap_or_default()
    }

    pub(crate) fn logs(&self) -> String {
        (0..NODES)
            .map(|k| format!("--- n{k}:\n{}", self.log(k)))
            .collect()
    }

    pub(crate) fn status(&self, k: usize) -> String {
        meridian_node::swarm::http_get(self.admins[k], "/status").unwrap_or_default()
    }

    /// One consistent cut of the running nodes: freeze all, read, release all.
    pub(crate) fn cut(&self) -> Vec<ZoneCut> {
        let live: Vec<usize> = (0..NODES).filter(|&k| self.children[k].is_some()).collect();
        let bodies: Vec<String> = live
            .iter()
            .map(|&k| meridian_node::swarm::http_get(self.admins[k], "/freeze").expect("freeze"))
            .collect();
        for &k in &live {
            meridian_node::swarm::http_get(self.admins[k], "/release").expect("release");
        }
        bodies.iter().flat_map(|b| parse_cut(b)).collect()
    }
}

impl Drop for Mesh3 {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `/status` value: the number after `key ` on the first line that starts with `prefix`.
pub(crate) fn status_value(status: &str, prefix: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(prefix))?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == key)?;
    words.next()?.parse().ok()
}

#[test]
fn kill_9_of_a_primary_fails_its_zone_over_to_its_standby_losing_nothing() {
    let _machine = crate::shared();
    let mut mesh = Mesh3::new("kill");
    for k in 0..NODES {
        mesh.start(k);
    }
    let expected = npc_ids(&[0, 1, 2], NPCS_PER_ZONE);
    // Streams connected, handoffs under way across both borders.
    std::thread::sleep(Duration::from_secs(5));
    assert_sound(&mesh.cut(), &expected, 0);
    let before = mesh.status(0);
    assert!(
        status_value(&before, "zone 0 ", "departures").unwrap_or(0) > 0,
        "no handoffs before the kill: {before}\n{}",
        mesh.logs()
    );

    let killed = Instant::now();
    mesh.kill(0);
    // n2 takes zone 0 over: the promotion shows in its /status.
    let (mut detected, mut serving) = (None, None);
    while serving.is_none() || detected.is_none() {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "zone 0 was not taken over within 10 s: n1 {}\nn2 {}\n{}",
            mesh.status(1),
            mesh.status(2),
            mesh.logs()
        );
        let status = mesh.status(2);
        if detected.is_none()
            && let Some(for_ms) = status_value(&status, "peer n0 down", "for_ms")
        {
            detected = Some(
                killed
                    .elapsed()
                    .saturating_sub(Duration::from_millis(for_ms)),
            );
        }
        if serving.is_none() && status_value(&status, "zone 0 ", "tick").is_some_and(|t| t > 0) {
            serving = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (detected, serving) = (detected.unwrap(), serving.unwrap());
    eprintln!(
        "kill -9 of n0: declared down after {detected:?}, zone 0 serving on n2 after {serving:?}"
    );
    assert!(
        detected <= Duration::from_secs(1),
        "declared down after {detected:?}"
    );
    assert!(
        serving <= Duration::from_secs(2),
        "serving after {serving:?}"
    );

    // Handoffs go on between zone 0's new run and zone 1, across the node border.
    let departures = |k: usize, zone: &str| status_value(&mesh.status(k), zone, "departures");
    let (z0, z1) = (
        departures(2, "zone 0 ").unwrap(),
        departures(1, "zone 1 ").unwrap(),
    );
    std::thread::sleep(Duration::from_secs(3));
    let (z0_after, z1_after) = (
        departures(2, "zone 0 ").unwrap(),
        departures(1, "zone 1 ").unwrap(),
    );
    assert!(
        z0_after > z0 + 10 && z1_after > z1 + 10,
        "handoffs stalled after the takeover: zone 0 {z0} → {z0_after}, zone 1 {z1} → {z1_after}\n\
         n1 {}\nn2 {}\n{}",
        mesh.status(1),
        mesh.status(2),
        mesh.logs()
    );
    for _ in 0..3 {
        assert_sound(&mesh.cut(), &expected, 0);
        std::thread::sleep(Duration::from_millis(300));
    }

    // n0 comes back on its data directory: its zone 0, restored from a disk the world has
    // moved past, hears from its standby that the zone was taken over, and stands down
    // before it sends anything; n0 rejoins the mesh.
    mesh.start(0);
    let back = Instant::now();
    loop {
        let (n0, n2) = (mesh.status(0), mesh.status(2));
        let stood_down = !n0.contains("zone 0 ") && mesh.log(0).contains("standing down");
        if stood_down && n2.contains("peer n0 alive") {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "n0 did not stand down and rejoin: n0 {n0}\nn2 {n2}\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for sample in 0..3 {
        assert_sound(&mesh.cut(), &expected, sample);
        std::thread::sleep(Duration::from_millis(300));
    }
    let n1 = mesh.status(1);
    assert!(
        !mesh.log(1).contains("runs on node 0"),
        "a neighbour routed zone 0 back to the stale run: {n1}\n{}",
        mesh.logs()
    );
}
