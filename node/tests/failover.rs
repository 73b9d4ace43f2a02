//! Failover over real processes: three signed `meridian node` processes on loopback, one
//! zone each, random walkers crossing both borders; node n2 keeps the standbys of zones 0
//! and 1, n1 that of zone 2. Node n0 is killed with SIGKILL: membership declares it down,
//! n2 (seeing n1 alive: a majority) takes zone 0 over from its standby copy, n1 routes
//! zone 0's traffic to it from its first datagram, and every cut afterwards shows each NPC
//! exactly once. Then the full circle: n0 comes back as zone 0's standby, n2 is killed,
//! zone 0 goes back to n0 and zone 2 to n1, zone 1 (whose standby was n2) goes on without
//! it once n0 and n1 agreed n2 is down, and when n2 comes back zone 1 streams to it again
//! until the mesh agrees it is current. Last, n0 (which runs zone 0 from its standby
//! directory since it took it back) is killed and started again at once: it resumes zone
//! 0 from there, not from the stale files of its own directory.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::conservation::{assert_sound, npc_ids};
use crate::processes::Nodes;

const NODES: usize = 3;
const NPCS_PER_ZONE: u64 = 300;

/// Three nodes (`crate::processes`): n2 keeps the standbys of zones 0 and 1, n1 that of
/// zone 2.
pub(crate) struct Mesh3 {
    nodes: Nodes,
    /// Each node's first zone address, and its public key.
    pub(crate) zones: Vec<SocketAddr>,
    pub(crate) keys: Vec<ed25519_dalek::VerifyingKey>,
}

/// The world's auth key (it signs the clients' connect tokens).
pub(crate) fn auth_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

impl Mesh3 {
    pub(crate) fn new(name: &str) -> Mesh3 {
        Mesh3::with(name, "")
    }

    /// The mesh with `extra` appended to its world file (a `[mesh]` section, say).
    pub(crate) fn with(name: &str, extra: &str) -> Mesh3 {
        let (dir, keys) = Nodes::prepare(&format!("fo-{name}"), NODES);
        let mut nodes = String::new();
        let (mut admins, mut zones) = (Vec::new(), Vec::new());
        let standby_for = ["[]", "[2]", "[0, 1]"];
        for (k, standby_for) in standby_for.iter().enumerate() {
            let admin = SocketAddr::from(([127, 0, 0, 1], crate::free_ports(1)));
            admins.push(admin);
            let udp = SocketAddr::from(([127, 0, 0, 1], crate::free_ports(3)));
            zones.push(udp);
            nodes.push_str(&format!(
                "\n[[nodes]]\nname = \"n{k}\"\nzones = [{k}]\ncores = [{}]\nudp = \"{udp}\"\n\
                 admin = \"{admin}\"\ncontrol = \"127.0.0.1:{}\"\npublic_key = \"{}\"\nstandby_for = {standby_for}\n",
                k % 2,
                crate::free_ports(1),
                hex::encode(keys[k].as_bytes()),
            ));
        }
        let world = format!(
            "[world]\nid = 21\nbounds = {{ x_min = 0.0, y_min = 0.0, x_max = 192.0, y_max = 64.0 }}\n\
             tick_rate_hz = 30\nmargin_m = 4.0\naura_m = 16.0\ncell_size_m = 16.0\n\n\
             [zones]\ncolumns = 3\nrows = 1\n\n\
             [npcs]\npattern = \"random_walk\"\nper_zone = {NPCS_PER_ZONE}\nspeed_mps = 8.0\n\n\
             [persistence]\ncheckpoint_interval_s = 0.5\n\n\
             [clients]\nauth_key = \"{}\"\nspeed_mps = 6.0\n{nodes}{extra}",
            hex::encode(auth_key().verifying_key().as_bytes())
        );
        let log = "warn,meridian_io::runtime::persistence=info,meridian_node::mesh=info,\
                   meridian_node::failover=info";
        Mesh3 {
            nodes: Nodes::new(dir, &world, admins, &[("RUST_LOG", log)]),
            zones,
            keys,
        }
    }
}

impl std::ops::Deref for Mesh3 {
    type Target = Nodes;
    fn deref(&self) -> &Nodes {
        &self.nodes
    }
}

impl std::ops::DerefMut for Mesh3 {
    fn deref_mut(&mut self) -> &mut Nodes {
        &mut self.nodes
    }
}

/// A `/status` value: the number after `key ` on the first line that starts with `prefix`.
pub(crate) fn status_value(status: &str, prefix: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(prefix))?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == key)?;
    words.next()?.parse().ok()
}

/// What a client playing in the background has seen.
#[derive(Clone, Debug, Default)]
struct Seen {
    session: u32,
    avatar: u64,
    snapshots: u64,
    x: f32,
    counters: meridian_client::ClientCounters,
    /// REDIRECT events that said they were a takeover.
    takeover_events: u64,
    closed: Option<String>,
}

/// A client of the world in a thread of its own, signed in at `zone`, trusting the
/// world's node keys; it walks east while `walk` is set.
struct Player {
    seen: std::sync::Arc<std::sync::Mutex<Seen>>,
    walk: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Player {
    fn start(mesh: &Mesh3, zone: SocketAddr, id: u64) -> Player {
        use std::sync::atomic::Ordering;
        let key = ed25519_dalek::SigningKey::from_bytes(&[id as u8; 32]);
        let expires = crate::clients::unix_ms() + 120_000;
        let token = crate::clients::token(&auth_key(), &key, 21, id, expires);
        let clock = meridian_io::Clock::new();
        let mut c =
            meridian_client::udp::UdpClient::connect(zone, token, key, clock.now()).unwrap();
        for k in &mesh.keys {
            c.client_mut().trust_node_key(*k);
        }
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
        let walk = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (seen, walk, stop) = (seen.clone(), walk.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(15));
                    let east = if walk.load(Ordering::Relaxed) { 127 } else { 0 };
                    c.client_mut().set_intent(east, 0, 0);
                    let _ = c.pump(clock.now(), || true);
                    let mut seen = seen.lock().unwrap();
                    while let Some(e) = c.client_mut().poll_event() {
                        match e {
                            meridian_client::ClientEvent::Snapshot { .. } => seen.snapshots += 1,
                            meridian_client::ClientEvent::Redirected { takeover, .. } => {
                                seen.takeover_events += u64::from(takeover);
                            }
                            meridian_client::ClientEvent::Closed(r) => {
                                seen.closed = Some(format!("{r:?}"));
                            }
                            _ => {}
                        }
                    }
                    seen.session = c.client().session();
                    seen.avatar = c.client().avatar();
                    seen.x = c.client().authoritative().position[0];
                    seen.counters = c.client().counters();
                }
            })
        };
        Player {
            seen,
            walk,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn kill_9_of_a_primary_fails_its_zone_over_to_its_standby_losing_nothing() {
    // Timing targets (detection, takeover, the player's gap): the machine to itself.
    let _machine = crate::alone();
    let (mut mesh, expected, player, before_kill) = three_nodes_and_a_player("kill", 7);
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

    // The player of zone 0 carries on in the same session: told of the takeover by the
    // new run, it gets snapshots again, and its inputs move its avatar.
    let taken = Instant::now();
    let mut redirected: Option<(Duration, u64)> = None;
    let mut first_snapshot = None;
    let resumed = loop {
        let seen = player.seen();
        if redirected.is_none() && seen.counters.takeovers >= 1 {
            redirected = Some((killed.elapsed(), seen.snapshots));
        }
        if first_snapshot.is_none() && redirected.is_some_and(|(_, n)| seen.snapshots > n) {
            first_snapshot = Some(killed.elapsed());
        }
        if first_snapshot.is_some() && seen.snapshots > before_kill.snapshots + 30 {
            // The event says what the counter does: a takeover, not a handoff.
            assert_eq!(seen.takeover_events, seen.counters.takeovers, "{seen:?}");
            break seen;
        }
        assert!(
            taken.elapsed() < Duration::from_secs(10),
            "the player of zone 0 did not carry on: {seen:?}\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (redirected, _) = redirected.expect("redirected");
    let first_snapshot = first_snapshot.expect("a snapshot");
    eprintln!(
        "the player of zone 0: redirected {redirected:?} after the kill, its first snapshot \
         from the new run {first_snapshot:?} after it; {:?}",
        resumed.counters
    );
    assert!(
        first_snapshot <= Duration::from_secs(3),
        "the player waited {first_snapshot:?} for a snapshot"
    );
    assert_eq!(resumed.session, before_kill.session, "the same session");
    assert!(resumed.closed.is_none(), "{resumed:?}");
    player
        .walk
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let x0 = resumed.x;
    while player.seen().x < x0 + 3.0 {
        assert!(
            taken.elapsed() < Duration::from_secs(15),
            "inputs after the takeover did not move the avatar: {x0} → {:?}",
            player.seen()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    player
        .walk
        .store(false, std::sync::atomic::Ordering::Relaxed);

    // Handoffs go on between zone 0's new run and zone 1, across the node border.
    handoffs_go_on(
        &mesh,
        "handoffs stalled after the takeover",
        &[(2, 0), (1, 1)],
        (10, 3),
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
        // No zone 0 line (its `standby zone 0` line, once n0 keeps the standby, is another).
        let runs_zone_0 = n0.lines().any(|l| l.starts_with("zone 0 "));
        let stood_down = !runs_zone_0 && mesh.log(0).contains("standing down");
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
    three_sound_cuts(&mesh, &expected, 0);
    let n1 = mesh.status(1);
    assert!(
        !mesh.log(1).contains("runs on node 0"),
        "a neighbour routed zone 0 back to the stale run: {n1}\n{}",
        mesh.logs()
    );

    // n0 keeps zone 0's standby now: n2 streams the zone to it, and once n0 holds it the
    // zone's datagrams wait for n0 as they waited for n2 before.
    let rejoined = Instant::now();
    while !(mesh.log(0).contains("keeping its standby")
        && mesh.log(2).contains("the new standby holds the zone"))
    {
        assert!(
            rejoined.elapsed() < Duration::from_secs(10),
            "n0 did not become zone 0's standby:\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Restarted now, n0 keeps zone 0's standby again at once — it does not restore its own
    // stale files of zone 0 only to be told the zone runs elsewhere (its kept-here marker)
    // — and n2's stream reaches it again.
    let count = |mesh: &Mesh3, k: usize, what: &str| mesh.log(k).matches(what).count();
    let stood_down = count(&mesh, 0, "standing down");
    mesh.kill(0);
    mesh.start(0);
    let restarted = Instant::now();
    let held = |mesh: &Mesh3| status_value(&mesh.status(0), "standby zone 0 ", "held");
    while !(mesh
        .log(0)
        .contains("not restoring this node's stale files")
        && held(&mesh).is_some_and(|h| h > 0))
    {
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "n0 did not keep zone 0's standby again after its restart:\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        count(&mesh, 0, "standing down"),
        stood_down,
        "n0 restored its stale zone 0 again:\n{}",
        mesh.log(0)
    );
    three_sound_cuts(&mesh, &expected, 0);

    // And it takes the zone back when n2 dies in turn (n0 and n1 are a majority); zone 2
    // goes to n1. The player follows again.
    let seen = player.seen();
    let killed = Instant::now();
    mesh.kill(2);
    let mut dropped = None;
    loop {
        if dropped.is_none() && mesh.log(1).contains("the zone goes on without its standby") {
            dropped = Some(killed.elapsed());
        }
        let (n0, n1) = (mesh.status(0), mesh.status(1));
        let back = status_value(&n0, "zone 0 ", "tick").is_some_and(|t| t > 0)
            && status_value(&n1, "zone 2 ", "tick").is_some_and(|t| t > 0);
        let played = player.seen();
        if back && played.counters.takeovers >= 2 && played.snapshots > seen.snapshots + 30 {
            eprintln!(
                "kill -9 of n2: zone 0 back on n0 and zone 2 on n1, the player carrying on, {:?} after the kill",
                killed.elapsed()
            );
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "zone 0 did not come back to n0: n0 {n0}\nn1 {n1}\nplayer {played:?}\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    three_sound_cuts(&mesh, &expected, 0);

    // Zone 1 (on n1) kept its standby on n2: once n0 and n1 agreed n2 is down, n1 goes on
    // without it and zone 1 hands entities away again (without the vote it would wait for
    // n2 for ever).
    while dropped.is_none() {
        if mesh.log(1).contains("the zone goes on without its standby") {
            dropped = Some(killed.elapsed());
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "zone 1 never dropped its dead standby:\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("kill -9 of n2: zone 1 went on without its standby {dropped:?} after the kill");
    handoffs_go_on(
        &mesh,
        "zone 1 hands nothing away without its standby",
        &[(1, 1)],
        (10, 3),
    );
    three_sound_cuts(&mesh, &expected, 0);

    // n2 comes back: n1 streams zone 1 to it again, and once it holds the zone the mesh
    // agrees it is current (it may take zone 1 over again).
    let current = |mesh: &Mesh3| {
        mesh.log(1)
            .matches("zone 1 (incarnation 1) has its standby on n2 current again — agreed")
            .count()
    };
    let before = current(&mesh);
    mesh.start(2);
    let back = Instant::now();
    while current(&mesh) <= before {
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "zone 1's standby on n2 did not become current again:\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    three_sound_cuts(&mesh, &expected, 0);

    // n2 ran zone 0 when it was killed (it had taken it over from n0): it resumed that run
    // at its start, streaming to n0 — which took zone 0 back meanwhile and answered that
    // it did — so the resumed run stood down before anything it sent left (the samples
    // above: nothing lost, nothing doubled), and n2 keeps zone 0's standby again.
    let n2 = mesh.log(2);
    assert!(
        n2.contains("zone 0 ran here from") && n2.contains("zone 0's run resumed here stood down"),
        "n2 did not resume zone 0 and stand it down:\n{}",
        mesh.logs()
    );

    // n0 runs zone 0 from its standby directory now (it took the zone back there). Killed
    // and started again at once, it resumes zone 0 from there: its own directory holds
    // the run n2 took over long ago. Restoring that, n2 (zone 0's standby again) refused
    // it as stale and zone 0 ran nowhere.
    let resumed = "running it from there again";
    let before = mesh.log(0).matches(resumed).count();
    let stopped = mesh.log(0).matches("zone 0 stopped").count();
    mesh.kill(0);
    mesh.start(0);
    let restarted = Instant::now();
    loop {
        let (n0, n2) = (mesh.status(0), mesh.status(2));
        let runs = |s: &str| status_value(s, "zone 0 ", "tick").is_some_and(|t| t > 0);
        let log = mesh.log(0);
        if log.matches(resumed).count() > before && (runs(&n0) || runs(&n2)) {
            break;
        }
        assert!(
            log.matches("zone 0 stopped").count() == stopped,
            "n0 restored zone 0 from stale files:\n{}",
            mesh.logs()
        );
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "zone 0 did not run again after n0's restart: n0 {n0}\nn2 {n2}\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "n0 restarted: zone 0 resumed after {:?}",
        restarted.elapsed()
    );
    std::thread::sleep(Duration::from_secs(2));
    three_sound_cuts(&mesh, &expected, 0);
    both_resume_zone_0(&mut mesh, &expected);
}

/// Three cuts of the mesh, 300 ms apart (numbered from `first`), each holding every NPC of
/// `expected` exactly once.
fn three_sound_cuts(mesh: &Mesh3, expected: &BTreeSet<u64>, first: u32) {
    for sample in first..first + 3 {
        assert_sound(&mesh.cut(), expected, sample);
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The three nodes started and a player (`id`) signed in at zone 0, once the standbys are
/// current, handoffs under way out of zone 0 and the player's session bound for a second
/// of snapshots (two checkpoints, every 0.5 s, hold it); the first cut sound. Returns the
/// mesh, what every cut must hold (the NPCs and the player's avatar), the player and what
/// it had seen.
fn three_nodes_and_a_player(name: &str, id: u64) -> (Mesh3, BTreeSet<u64>, Player, Seen) {
    three_nodes_and_a_player_in(Mesh3::new(name), id)
}

/// [`three_nodes_and_a_player`] on the mesh given.
fn three_nodes_and_a_player_in(mut mesh: Mesh3, id: u64) -> (Mesh3, BTreeSet<u64>, Player, Seen) {
    for k in 0..NODES {
        mesh.start(k);
    }
    let mut expected = npc_ids(&[0, 1, 2], NPCS_PER_ZONE);
    let player = Player::start(&mesh, mesh.zones[0], id);
    let started = Instant::now();
    standbys_current(&mesh);
    wait(&mesh, "no handoffs out of zone 0", &|m| {
        status_value(&m.status(0), "zone 0 ", "departures").is_some_and(|d| d > 0)
    });
    loop {
        let seen = player.seen();
        if seen.session != 0 && seen.snapshots > 30 {
            break;
        }
        // (The bound the fixed 5 s warm-up held it to.)
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the player did not get going: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = player.seen();
    expected.insert(seen.avatar);
    assert_sound(&mesh.cut(), &expected, 0);
    (mesh, expected, player, seen)
}

/// Whether zone 0 ticks on node `k` (its status says so).
fn zone_0_ticks_on(mesh: &Mesh3, k: usize) -> bool {
    status_value(&mesh.status(k), "zone 0 ", "tick").is_some_and(|t| t > 0)
}

/// Waits up to 15 s for `done`; fails with `what` and the nodes' logs.
pub(crate) fn wait(mesh: &Mesh3, what: &str, done: &dyn Fn(&Mesh3) -> bool) {
    let started = Instant::now();
    while !done(mesh) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{what}:\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (as [`wait`]) until the mesh agreed, for each zone, that its standby is current
/// (its primary's log says so: the stream connected and caught up) — what a kill, a stop
/// or a move needs before it.
fn standbys_current(mesh: &Mesh3) {
    wait(mesh, "the standbys were not agreed current", &|m| {
        (0..NODES).all(|k| {
            let (zone, agreed) = (format!("zone {k} (incarnation "), "current again — agreed");
            m.log(k)
                .lines()
                .any(|l| l.contains(&zone) && l.contains(agreed))
        })
    });
}

/// Waits until each zone of `zones`, given as (node, zone), has handed more than `more`
/// entities away past what its node's `/status` says now — handoffs go on there — and
/// fails with `what` and the logs if that takes longer than `within`.
fn handoffs_go_on(mesh: &Mesh3, what: &str, zones: &[(usize, u32)], (more, within): (u64, u64)) {
    let departures = |(k, zone): (usize, u32)| {
        status_value(&mesh.status(k), &format!("zone {zone} "), "departures").unwrap_or(0)
    };
    let from: Vec<u64> = zones.iter().map(|&z| departures(z)).collect();
    let started = Instant::now();
    while !zones
        .iter()
        .zip(&from)
        .all(|(&z, &f)| departures(z) > f + more)
    {
        assert!(
            started.elapsed() < Duration::from_secs(within),
            "{what} (fewer than {more} departures in {within} s):\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two nodes that both ran zone 0 from their standby directories when they stopped: n0
/// runs it resumed (above); once n2 holds it, n0 is killed and n2 takes it over, then n2
/// is killed too, and both start together. Each resumes its run; the older (n0's, a run
/// the mesh agreed to replace) must stand down and the newer go on. Each used to wait for
/// the other's answer, and zone 0 ran nowhere.
fn both_resume_zone_0(mesh: &mut Mesh3, expected: &std::collections::BTreeSet<u64>) {
    let runs = zone_0_ticks_on;
    wait(mesh, "n0's resumed run of zone 0 was not confirmed", &|m| {
        m.log(0).contains("resumed run is confirmed")
    });
    mesh.kill(0);
    wait(
        mesh,
        "n2 did not take zone 0 over from the resumed run",
        &|m| runs(m, 2),
    );
    mesh.kill(2);
    let stood_down = "zone 0's run resumed here stood down";
    let (before0, before2) = (
        mesh.log(0).matches(stood_down).count(),
        mesh.log(2).matches(stood_down).count(),
    );
    mesh.start(0);
    mesh.start(2);
    let started = Instant::now();
    wait(
        mesh,
        "of two resumed runs of zone 0, the older did not stand down",
        &|m| m.log(0).matches(stood_down).count() > before0 && runs(m, 2),
    );
    eprintln!(
        "n0 and n2 both resumed zone 0: n0's older run stood down {:?} after the start",
        started.elapsed()
    );
    assert_eq!(
        mesh.log(2).matches(stood_down).count(),
        before2,
        "the newer resumed run stood down:\n{}",
        mesh.logs()
    );
    wait(mesh, "n0 did not keep zone 0's standby again", &|m| {
        m.log(2).contains("resumed run is confirmed")
    });
    three_sound_cuts(mesh, expected, 0);
}

/// A mesh whose n2 holds a takeover for 5 s at the crash-test pause `pause`, its streams
/// caught up and the cut sound, then n0 killed (n2 takes zone 0 over). Returns the mesh,
/// the NPCs every cut must hold, and when n0 was killed.
fn n0_killed_with_n2_paused(name: &str, pause: &str) -> (Mesh3, BTreeSet<u64>, Instant) {
    let mut mesh = Mesh3::new(name);
    mesh.start(0);
    mesh.start(1);
    mesh.start_with(2, &[(pause, "5000")]);
    let expected = npc_ids(&[0, 1, 2], NPCS_PER_ZONE);
    standbys_current(&mesh);
    assert_sound(&mesh.cut(), &expected, 0);
    mesh.kill(0);
    (mesh, expected, Instant::now())
}

/// A standby killed right after it took a zone over — the zone already ticking there, the
/// takeover not yet reported — runs the zone again when it restarts (its marker was
/// written when the mesh agreed, before the run started), rather than waiting as the
/// zone's standby. (Found in CI under load: the marker used to follow the start, and a
/// kill between the two left the newer run unresumed while an older run of the zone came
/// back with the same incarnation, so the zone ran nowhere.)
#[test]
fn a_standby_killed_just_after_its_takeover_runs_the_zone_again_on_restart() {
    let _machine = crate::alone();
    let (mut mesh, expected, killed) =
        n0_killed_with_n2_paused("early", "MERIDIAN_TAKEOVER_PAUSE_MS");
    let runs = |mesh: &Mesh3| zone_0_ticks_on(mesh, 2);
    while !runs(&mesh) {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "n2 did not take zone 0 over:\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let reported = "zone 0 runs here now";
    assert!(
        !mesh.log(2).contains(reported),
        "the kill must land before the takeover is reported (the pause):\n{}",
        mesh.log(2)
    );
    let takeover = "taking zone 0 over from its standby copy";
    let takeovers = mesh.log(2).matches(takeover).count();
    mesh.kill(2);
    mesh.start(2);
    let restarted = Instant::now();
    let resumed = "zone 0 ran here from";
    while !(mesh.log(2).contains(resumed) && runs(&mesh)) {
        assert_eq!(
            mesh.log(2).matches(takeover).count(),
            takeovers,
            "n2 took zone 0 over afresh instead of running its run again:\n{}",
            mesh.log(2)
        );
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "n2 did not run zone 0 again after its restart:\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    // Its ledger holds the promise, which it acted on (its record of runs taken over says
    // so): a restart that withdrew it would let a stale primary of the run before drop
    // this node as its standby.
    assert!(
        !mesh.log(2).contains("withdrawing it"),
        "n2 withdrew a promise it acted on:\n{}",
        mesh.log(2)
    );
    three_sound_cuts(&mesh, &expected, 1);
}

/// A standby killed after the mesh agreed to its takeover and before it recorded or
/// started anything (`MERIDIAN_AGREED_PAUSE_MS`) restarts with the promise in its ledger,
/// never acted on: it withdraws it (its primary, still down, cannot hold the withdrawal
/// yet: asked again) — until it asks to take the zone over itself again, which the mesh
/// grants (a later ballot than any withdrawal): the zone runs there and the cut is sound.
#[test]
fn a_standby_killed_between_the_vote_and_its_takeover_withdraws_the_promise_on_restart() {
    let _machine = crate::alone();
    let (mut mesh, expected, _) = n0_killed_with_n2_paused("agreed", "MERIDIAN_AGREED_PAUSE_MS");
    wait(&mesh, "the mesh did not agree to n2's takeover", &|m| {
        m.log(2)
            .contains("n2 takes zone 0 over from n0 as incarnation")
    });
    let acted = mesh.data(2).join("standby").join("zone-0.acted");
    assert!(!acted.exists(), "killed before the takeover was recorded");
    mesh.kill(2);
    mesh.start(2);
    wait(&mesh, "n2 did not withdraw its promise", &|m| {
        m.log(2).contains("which it never did: withdrawing it")
    });
    let runs = |mesh: &Mesh3| zone_0_ticks_on(mesh, 2);
    wait(
        &mesh,
        "n2 did not take zone 0 over after its restart",
        &|m| runs(m),
    );
    assert!(acted.exists(), "the takeover after the restart is recorded");
    std::thread::sleep(Duration::from_secs(1));
    three_sound_cuts(&mesh, &expected, 1);
}

/// The promise limit, in the node (docs/mesh.md, "A standby that never comes back"): n0
/// stops (SIGSTOP) long enough to be declared down, and n2, zone 0's standby, has a
/// majority agree to its takeover — then is killed before it asked them to hold that it
/// acts on it (`MERIDIAN_PROMISED_PAUSE_MS`). n0 comes back (SIGCONT) to a zone whose
/// standby is dead and a ledger (n1's) holding a takeover promised to it: its drop is
/// refused, it has the ledgers release the promise n2 never said it acts on, and the drop
/// then passes — zone 0 goes on at n0, every NPC held once. Without the release, the drop
/// is refused for as long as n2 stays dead.
#[test]
fn a_standby_killed_before_it_acts_on_its_takeover_is_released_and_dropped() {
    let _machine = crate::alone();
    let (mut mesh, expected) = n2_held_at_its_promise("released", "10000");
    mesh.signal(0, "STOP");
    n2_killed_once_its_takeover_is_agreed(&mut mesh);
    mesh.signal(0, "CONT");
    wait(&mesh, "n0 did not drop its dead standby", &|m| {
        m.log(0)
            .contains("goes on without its standby on n2 — agreed")
    });
    assert!(
        mesh.log(0)
            .contains("that it never said it acts on — agreed"),
        "the drop passed without a release:\n{}",
        mesh.log(0)
    );
    assert!(zone_0_ticks_on(&mesh, 0));
    // Zone 2 (n2's) fails over to n1 meanwhile; then every NPC is held once.
    wait(&mesh, "n1 did not take zone 2 over", &|m| {
        status_value(&m.status(1), "zone 2 ", "tick").is_some_and(|t| t > 0)
    });
    std::thread::sleep(Duration::from_secs(1));
    three_sound_cuts(&mesh, &expected, 1);
}

/// The other side of the release: n0 stops (SIGSTOP) long enough to be declared down, n2
/// takes zone 0 over and runs it — and is killed. n0 comes back (SIGCONT) to a dead
/// standby and ledgers holding that n2 acts on a later run of the zone: its drop is
/// refused, and so is the release (n2 said it acts on the takeover), and the drop asked
/// again — its run stays gated, handing nothing away, for as long as n2 is dead. n2 restarts from
/// its directory, runs zone 0 again and tells n0, which stands down; every NPC held once.
/// A release that let go of an acted promise would let n0's drop pass here and its stale
/// run go on beside n2's.
#[test]
fn a_primary_back_to_a_dead_standby_that_took_its_zone_over_waits_for_it() {
    let _machine = crate::alone();
    let mut mesh = Mesh3::new("taken");
    for k in 0..3 {
        mesh.start(k);
    }
    let expected = npc_ids(&[0, 1, 2], NPCS_PER_ZONE);
    standbys_current(&mesh);
    assert_sound(&mesh.cut(), &expected, 0);
    mesh.signal(0, "STOP");
    wait(&mesh, "n2 did not take zone 0 over", &|m| {
        zone_0_ticks_on(m, 2)
    });
    mesh.kill(2);
    mesh.signal(0, "CONT");
    // Each refusal takes the vote's 3 s (n2 answers nothing: the ask waits out its time).
    let release = "that it never said it acts on — ";
    wait(&mesh, "n0 did not ask the ledgers to release", &|m| {
        m.log(0).contains(release)
    });
    let refused = "that it never said it acts on — not agreed";
    assert!(
        !mesh
            .log(0)
            .contains("that it never said it acts on — agreed"),
        "the ledgers let go of a takeover n2 acted on:\n{}",
        mesh.log(0)
    );
    wait(&mesh, "n0 did not ask the drop again", &|m| {
        let log = m.log(0);
        log.split(refused)
            .nth(1)
            .is_some_and(|after| after.contains("goes on without its standby on n2 — not agreed"))
    });
    let dropped = "goes on without its standby on n2 — agreed";
    assert!(
        !mesh.log(0).contains(dropped),
        "n0's superseded run went on without its standby:\n{}",
        mesh.log(0)
    );
    mesh.start(2);
    wait(&mesh, "n0 did not stand zone 0 down", &|m| {
        m.log(0).contains("zone 0 was taken over by its standby")
    });
    wait(&mesh, "n2 did not run zone 0 again", &|m| {
        zone_0_ticks_on(m, 2)
    });
    assert!(!mesh.log(0).contains(dropped), "{}", mesh.log(0));
    std::thread::sleep(Duration::from_secs(1));
    three_sound_cuts(&mesh, &expected, 1);
}

/// A standby killed after the mesh agreed to its takeover and before the run's first files
/// reached the disk (`MERIDIAN_MARKED_PAUSE_MS` holds it there) runs the zone again on
/// restart as one past the run the mesh agreed to, not as the number its files give —
/// that is the agreed run's own, and an older run of the zone resumed elsewhere at the
/// same moment could carry it too: neither would answer the other, and the zone would
/// run nowhere. The marker names the agreed run.
#[test]
fn a_standby_killed_before_its_takeovers_first_files_resumes_past_the_agreed_run() {
    let _machine = crate::alone();
    let (mut mesh, expected, killed) =
        n0_killed_with_n2_paused("marked", "MERIDIAN_MARKED_PAUSE_MS");
    let marker = mesh.data(2).join("standby").join("zone-0.runs-here");
    let agreed: u32 = loop {
        let text = std::fs::read_to_string(&marker).unwrap_or_default();
        if let Some(n) = text.trim().strip_prefix("incarnation ") {
            break n.parse().expect("the marker's incarnation");
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "n2 did not take zone 0 over:\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        !mesh.log(2).contains("zone 0 runs here now"),
        "the kill must land before the zone starts (the pause):\n{}",
        mesh.log(2)
    );
    mesh.kill(2);
    mesh.start(2);
    let restarted = Instant::now();
    let runs = |mesh: &Mesh3| zone_0_ticks_on(mesh, 2);
    while !(mesh.log(2).contains("zone 0 ran here from") && runs(&mesh)) {
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "n2 did not run zone 0 again after its restart:\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let past = format!("again as incarnation {}", agreed + 1);
    assert!(
        mesh.log(2).contains(&past),
        "n2 resumed zone 0 as the agreed run's number ({agreed}), not past it:\n{}",
        mesh.log(2)
    );
    std::thread::sleep(Duration::from_secs(1));
    three_sound_cuts(&mesh, &expected, 1);
}

/// A takeover whose runs-here marker cannot be written does not start (a run that ticked
/// unmarked would be one a restart neither resumes nor can tell from a takeover never
/// acted on): the mesh agreed, so n2 withdraws its takeover, and tries again. Here the
/// marker's temporary file is a directory for a while; once it is gone, the next try
/// takes zone 0 over, and nothing was lost.
#[test]
fn a_takeover_whose_marker_cannot_be_written_is_withdrawn_and_tried_again() {
    let _machine = crate::alone();
    let mut mesh = Mesh3::new("unmarked");
    for k in 0..3 {
        mesh.start(k);
    }
    let expected = npc_ids(&[0, 1, 2], NPCS_PER_ZONE);
    standbys_current(&mesh);
    assert_sound(&mesh.cut(), &expected, 0);
    let blocker = mesh.data(2).join("standby").join("zone-0.runs-here.tmp");
    std::fs::create_dir_all(&blocker).expect("the blocking directory");
    mesh.kill(0);
    let killed = Instant::now();
    let runs = |mesh: &Mesh3| zone_0_ticks_on(mesh, 2);
    let withdrawn = "withdraws its takeover of zone 0";
    while !mesh.log(2).contains(withdrawn) {
        assert!(!runs(&mesh), "zone 0 ran unmarked on n2:\n{}", mesh.log(2));
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "n2 did not withdraw its takeover:\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        mesh.log(2)
            .contains("cannot write the marker that zone 0 runs here"),
        "{}",
        mesh.log(2)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(!runs(&mesh), "zone 0 ran unmarked on n2:\n{}", mesh.log(2));
    std::fs::remove_dir(&blocker).expect("unblock");
    let unblocked = Instant::now();
    while !runs(&mesh) {
        assert!(
            unblocked.elapsed() < Duration::from_secs(20),
            "n2 did not take zone 0 over once the marker could be written:\n{}",
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        mesh.data(2)
            .join("standby")
            .join("zone-0.runs-here")
            .exists()
    );
    std::thread::sleep(Duration::from_secs(1));
    three_sound_cuts(&mesh, &expected, 1);
}

/// A primary restarted from its files while its standby is dead has its asks taken at
/// once. Zone 1 (n1) drops its standby n2, has it current again and drops it again — the
/// ledgers hold four asks of the zone's run — then n1 is killed and started while n2 stays
/// dead. Its zone waits for n2 from the start (as any restart does) until the mesh agrees
/// to drop it. The restarted process numbers its asks from 1 again; they are taken
/// because its run is a new one (one past every run its files saw), and a primary's asks
/// are ordered by run first. Were the run the old one, each ask would be refused as older
/// than what the ledgers hold, one refusal per retry (1 s, 2 s, 4 s …), the zone's
/// datagrams held all the while. When n2 is back, the restarted run has it agreed current
/// the same way.
#[test]
fn a_primary_restarted_while_its_standby_is_dead_drops_it_at_its_first_ask() {
    let _machine = crate::alone();
    let mut mesh = Mesh3::new("reseq");
    for k in 0..3 {
        mesh.start(k);
    }
    let expected = npc_ids(&[0, 1, 2], NPCS_PER_ZONE);
    // The decisions about zone 1, whatever its run.
    let (dropped, current) = (
        ") goes on without its standby on n2 — agreed",
        ") has its standby on n2 current again — agreed",
    );
    let count = |m: &Mesh3, what: &str| {
        let log = m.log(1);
        log.lines()
            .filter(|l| l.contains("zone 1 (incarnation ") && l.contains(what))
            .count()
    };
    wait(&mesh, "zone 1's standby was not agreed current", &|m| {
        count(m, current) == 1
    });
    mesh.kill(2);
    wait(&mesh, "zone 1 did not drop its dead standby", &|m| {
        count(m, dropped) == 1
    });
    mesh.start(2);
    wait(&mesh, "zone 1's standby was not current again", &|m| {
        count(m, current) == 2
    });
    mesh.kill(2);
    wait(&mesh, "zone 1 did not drop its standby again", &|m| {
        count(m, dropped) == 2
    });

    mesh.kill(1);
    // A refusal shows in the vote's line and in the failover thread's warning.
    let refused = |m: &Mesh3| {
        let log = m.log(1);
        log.lines()
            .filter(|l| l.contains("zone 1 ") && l.contains("not agree"))
            .count()
    };
    let refusals = refused(&mesh);
    mesh.start(1);
    let restarted = Instant::now();
    wait(
        &mesh,
        "the restarted zone 1 did not drop its dead standby",
        &|m| count(m, dropped) == 3,
    );
    eprintln!(
        "n1 restarted with its standby dead: zone 1 went on without it after {:?}",
        restarted.elapsed()
    );
    assert_eq!(
        refused(&mesh),
        refusals,
        "the restarted run's asks were refused:\n{}",
        mesh.log(1)
    );
    let departures = |m: &Mesh3| status_value(&m.status(1), "zone 1 ", "departures");
    let before = departures(&mesh).unwrap_or(0);
    wait(&mesh, "the restarted zone 1 hands nothing away", &|m| {
        departures(m).is_some_and(|d| d > before + 10)
    });
    mesh.start(2);
    wait(
        &mesh,
        "the restarted run's standby was not agreed current",
        &|m| count(m, current) == 3,
    );
    assert_eq!(refused(&mesh), refusals, "{}", mesh.log(1));
    three_sound_cuts(&mesh, &expected, 0);
}

/// What a rolling restart does to a zone: n0 is stopped with SIGTERM, as an operator (or
/// systemd) stops a node. Its zone stops at a tick and writes a final checkpoint, then the
/// node leaves the mesh, so n2 takes zone 0 over from that checkpoint within a round trip
/// and a vote, not after the suspicion a death needs (`kill_9_of_a_primary…`: declared
/// down after 0.6–0.7 s). The process exits 0, nothing is lost or duplicated, the player
/// goes on in its session, and handoffs go on across the new node border. With the node
/// stopping without the leave, the takeover waits for the suspicion and this fails;
/// without the final checkpoint, n2 restores an older one and this fails.
#[test]
fn a_primary_stopped_with_sigterm_is_taken_over_at_once_losing_nothing() {
    let _machine = crate::alone();
    let (mut mesh, expected, player, before) = three_nodes_and_a_player("term", 9);

    let stopped = Instant::now();
    mesh.signal(0, "TERM");
    let mut exited = None;
    while !zone_0_ticks_on(&mesh, 2) {
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "zone 0 was not taken over within 10 s: n2 {}\n{}",
            mesh.status(2),
            mesh.logs()
        );
        if exited.is_none() {
            exited = mesh.try_exit(0).map(|status| (status, stopped.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let serving = stopped.elapsed();
    let (status, exited) = match exited {
        Some(e) => e,
        None => (
            mesh.wait_exit(0, Duration::from_secs(10)),
            stopped.elapsed(),
        ),
    };
    eprintln!(
        "SIGTERM of n0: it exited after {exited:?} ({status}); zone 0 serving on n2 \
         {serving:?} after the signal"
    );
    assert!(
        status.success(),
        "n0 exited with {status}:\n{}",
        mesh.log(0)
    );
    assert!(
        mesh.log(0).contains("mesh: left"),
        "n0 did not leave the mesh:\n{}",
        mesh.log(0)
    );
    assert!(
        serving <= Duration::from_millis(400),
        "zone 0 served again on n2 only {serving:?} after the SIGTERM"
    );
    // n0's zone wrote a final checkpoint at its last tick, and n2 took the zone over from
    // it: nothing rolled back to the last periodic checkpoint (up to 0.5 s of movement).
    let final_tick = mesh
        .log(0)
        .split("final checkpoint at tick ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no final checkpoint:\n{}", mesh.log(0)));
    assert!(
        mesh.log(2)
            .contains(&format!("the checkpoint of tick {final_tick} and")),
        "n2 did not restore zone 0 from n0's final checkpoint (tick {final_tick}):\n{}",
        mesh.log(2)
    );

    // The player carries on in its session; handoffs go on between zone 0's new run and
    // zone 1; every cut holds every NPC once.
    wait(&mesh, "the player of zone 0 did not carry on", &|_| {
        let seen = player.seen();
        seen.counters.takeovers >= 1 && seen.snapshots > before.snapshots + 30
    });
    let seen = player.seen();
    assert_eq!(seen.session, before.session, "the same session");
    assert!(seen.closed.is_none(), "{seen:?}");
    eprintln!(
        "the player of zone 0 carried on: {:?} after the signal",
        stopped.elapsed()
    );
    handoffs_go_on(
        &mesh,
        "handoffs stalled after the takeover",
        &[(2, 0), (1, 1)],
        (5, 2),
    );
    three_sound_cuts(&mesh, &expected, 0);
}

/// The other half of a rolling restart: n2, which keeps the standbys of zones 0 and 1,
/// is stopped with SIGTERM. Zones 0 and 1 hold their datagrams until their standby
/// acknowledges them, so until the mesh agrees n2 is down they hand nothing away and
/// their clients' snapshots wait; with n2 leaving the mesh, both go on without it within
/// a vote, and n1 takes zone 2 over. (A kill -9 of n2, in `kill_9_of_a_primary…`, holds
/// them for the suspicion first: 0.6–0.8 s.) With the node stopping without the leave,
/// this fails.
#[test]
fn a_standby_node_stopped_with_sigterm_holds_its_primaries_only_for_a_vote() {
    let _machine = crate::alone();
    let mut mesh = Mesh3::new("term-standby");
    for k in 0..NODES {
        mesh.start(k);
    }
    let expected = npc_ids(&[0, 1, 2], NPCS_PER_ZONE);
    standbys_current(&mesh);
    assert_sound(&mesh.cut(), &expected, 0);
    let stopped = Instant::now();
    mesh.signal(2, "TERM");
    let on_without = "the zone goes on without its standby";
    let (mut zone_0, mut zone_1, mut zone_2) = (None, None, None);
    while zone_0.is_none() || zone_1.is_none() || zone_2.is_none() {
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "not settled within 10 s of n2's SIGTERM:\n{}",
            mesh.logs()
        );
        let at = Some(stopped.elapsed());
        if zone_0.is_none() && mesh.log(0).contains(on_without) {
            zone_0 = at;
        }
        if zone_1.is_none() && mesh.log(1).contains(on_without) {
            zone_1 = at;
        }
        if zone_2.is_none()
            && status_value(&mesh.status(1), "zone 2 ", "tick").is_some_and(|t| t > 0)
        {
            zone_2 = at;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = mesh.wait_exit(2, Duration::from_secs(10));
    eprintln!(
        "SIGTERM of n2: zone 0 went on without its standby {zone_0:?} after the signal, zone 1 \
         {zone_1:?}; zone 2 serving on n1 {zone_2:?}"
    );
    assert!(
        status.success(),
        "n2 exited with {status}:\n{}",
        mesh.log(2)
    );
    for (zone, at) in [(0, zone_0), (1, zone_1), (2, zone_2)] {
        assert!(
            at <= Some(Duration::from_millis(400)),
            "zone {zone}: {at:?} after n2's SIGTERM"
        );
    }
    three_sound_cuts(&mesh, &expected, 0);
}

/// Asks node `k` to move `zone` to its standby (`/move`), again every 100 ms while it
/// answers that it cannot yet (409: its standby not current), for up to 15 s.
fn move_zone(mesh: &Mesh3, k: usize, zone: u32) -> Instant {
    let started = Instant::now();
    loop {
        let path = format!("/move?zone={zone}");
        match meridian_node::swarm::http_get(mesh.admins[k], &path) {
            Ok(_) => return Instant::now(),
            Err(e) => assert!(
                e.to_string().contains("409") && started.elapsed() < Duration::from_secs(15),
                "{path} on n{k}: {e}\n{}",
                mesh.logs()
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An operator moves zone 0 from n0 to its standby on n2 while n0 runs on (`/move`), then
/// back: each time the zone stops after a final checkpoint, its end is announced once
/// the standby holds it all, and the standby takes it over through the votes — serving
/// within a second, restored from that checkpoint (nothing set back), the player carrying
/// on in its session, handoffs going on, every cut holding every NPC once; n0 keeps the
/// zone's standby in between (the zone could move back). Bad requests are refused
/// (no zone, a zone that does not run there). Without the vote's end in the answers the
/// takeover never comes (n2 waits for n0's death) and this fails.
#[test]
fn a_zone_moved_to_its_standby_and_back_loses_nothing() {
    let _machine = crate::alone();
    let (mesh, expected, player, before) = three_nodes_and_a_player("move", 11);
    let get = |k: usize, path: &str| meridian_node::swarm::http_get(mesh.admins[k], path);
    let refused = get(0, "/move").unwrap_err().to_string();
    assert!(refused.contains("400"), "{refused}");
    let refused = get(0, "/move?zone=1").unwrap_err().to_string();
    assert!(refused.contains("409"), "{refused}");

    let mut takeovers = 0;
    for (from, to, id) in [(0, 2, "there"), (2, 0, "back")] {
        let asked = move_zone(&mesh, from, 0);
        wait(&mesh, &format!("zone 0 did not move {id}"), &|m| {
            zone_0_ticks_on(m, to) && !zone_0_ticks_on(m, from)
        });
        let serving = asked.elapsed();
        eprintln!("zone 0 moved {id} (n{from} → n{to}): serving {serving:?} after the ask");
        assert!(serving <= Duration::from_secs(2), "{id}: {serving:?}");
        restored_from_the_final_checkpoint(&mesh, from, to);
        takeovers += 1;
        wait(&mesh, "the player of zone 0 did not carry on", &|_| {
            let seen = player.seen();
            seen.counters.takeovers >= takeovers && seen.snapshots > before.snapshots + 30
        });
        let seen = player.seen();
        assert_eq!(seen.session, before.session, "the same session");
        assert!(seen.closed.is_none(), "{seen:?}");
        let keeping = format!("n{from} does not keep zone 0's standby");
        wait(&mesh, &keeping, &|m| {
            m.status(from).contains("standby zone 0 held")
        });
        three_sound_cuts(&mesh, &expected, 3 * takeovers as u32);
    }
    handoffs_go_on(
        &mesh,
        "handoffs stalled after the move back",
        &[(0, 0)],
        (5, 2),
    );
    // Each node counts the move it made and the takeover it took (`/metrics`).
    for k in [0, 2] {
        let n = format!("n{k}");
        assert_eq!(
            metric(
                &mesh,
                k,
                "meridian_zone_moves_total",
                &n,
                "outcome=\"begun\""
            ),
            1
        );
        assert_eq!(
            metric(
                &mesh,
                k,
                "meridian_zone_moves_total",
                &n,
                "outcome=\"done\""
            ),
            1
        );
        assert_eq!(
            metric(
                &mesh,
                k,
                "meridian_zone_moves_total",
                &n,
                "outcome=\"given_up\""
            ),
            0
        );
        let moved = metric(
            &mesh,
            k,
            "meridian_failover_takeovers_total",
            &n,
            "cause=\"move\"",
        );
        assert_eq!(moved, 1, "n{k}'s takeovers");
        assert_eq!(metric(&mesh, k, "meridian_zone_moves_under_way", &n, ""), 0);
    }
    let refused = metric(
        &mesh,
        0,
        "meridian_zone_moves_total",
        "n0",
        "outcome=\"refused\"",
    );
    assert!(
        refused >= 1,
        "n0 refused {refused} moves (zone 1 asked of it)"
    );
}

/// Node `to` restored zone 0 from the final checkpoint node `from` wrote when the zone
/// stopped to move (nothing set back).
fn restored_from_the_final_checkpoint(mesh: &Mesh3, from: usize, to: usize) {
    let final_tick = mesh
        .log(from)
        .rsplit("final checkpoint at tick ")
        .next()
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no final checkpoint:\n{}", mesh.log(from)));
    assert!(
        mesh.log(to)
            .contains(&format!("the checkpoint of tick {final_tick} and")),
        "n{to} did not restore zone 0 from the final checkpoint (tick {final_tick}):\n{}",
        mesh.log(to)
    );
}

/// The value of `family` in node `k`'s `/metrics`, on the line with label `node` and the
/// other `label` (`key="value"`, or empty for none).
fn metric(mesh: &Mesh3, k: usize, family: &str, node: &str, label: &str) -> u64 {
    let text = meridian_node::swarm::http_get(mesh.admins[k], "/metrics").unwrap();
    let node = format!("node=\"{node}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .find(|l| l.contains(&node) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {family} {{{node} {label}}} in n{k}'s /metrics:\n{text}"))
}

/// The standby dies in the middle of a move: n0 is asked to move zone 0 to n2, whose
/// takeover is agreed and then held (crash-test pause) — and n2 is killed before it acts
/// on it. n0, running on, sees n2 declared down and runs zone 0 again from its own files
/// (nothing lost: they hold the final checkpoint); the new run waits for its standby n2
/// like any restart, has the ledgers release the promise n2 never acted on, drops n2,
/// and goes on. Every NPC held once, handoffs going on; while n2 holds, n0's `/status`
/// shows the move announced. Without the fallback zone 0 would run nowhere until n2 came
/// back.
#[test]
fn a_zone_whose_standby_dies_as_it_moves_runs_on_where_it_was() {
    let _machine = crate::alone();
    let (mut mesh, expected) = n2_held_at_its_promise("move-dies", "10000");
    move_zone(&mesh, 0, 0);
    // n2 holds its takeover: the move stays announced, and /status says so.
    wait(&mesh, "n0's /status does not show the move", &|m| {
        m.status(0).contains("moving zone 0 to n2 announced")
    });
    n2_killed_once_its_takeover_is_agreed(&mut mesh);
    wait(&mesh, "zone 0 did not run on n0 again", &|m| {
        m.log(0).contains("zone 0 runs here again") && zone_0_ticks_on(m, 0)
    });
    wait(&mesh, "n0 did not drop its dead standby", &|m| {
        m.log(0)
            .contains("goes on without its standby on n2 — agreed")
    });
    // Zone 2 (n2's) fails over to n1 meanwhile; then every NPC is held once.
    wait(&mesh, "n1 did not take zone 2 over", &|m| {
        status_value(&m.status(1), "zone 2 ", "tick").is_some_and(|t| t > 0)
    });
    std::thread::sleep(Duration::from_secs(1));
    three_sound_cuts(&mesh, &expected, 1);
    handoffs_go_on(
        &mesh,
        "zone 0 handed nothing away after it ran again",
        &[(0, 0)],
        (5, 2),
    );
}

/// The node a zone leaves dies as the move ends: n0 stopped zone 0, its standby on n2
/// acknowledged all of it, n0 announced the end and the mesh agreed to n2's takeover (n2
/// held there by the crash-test pause) when n0 is killed. n2 takes the zone over all the
/// same, from n0's final checkpoint (nothing set back), and n0, started again, keeps the
/// zone's standby instead of running it from its own files: every cut holds every NPC
/// once, before and after n0's return.
#[test]
fn the_node_a_zone_leaves_killed_as_the_move_ends_comes_back_as_its_standby() {
    let _machine = crate::alone();
    let (mut mesh, expected) = n2_held_at_its_promise("move-left-dies", "3000");
    move_zone(&mesh, 0, 0);
    wait(&mesh, "the mesh did not agree to n2's takeover", &|m| {
        m.log(2)
            .lines()
            .any(|l| l.contains("n2 takes zone 0 over from n0") && l.contains("agreed"))
    });
    mesh.kill(0);
    wait(&mesh, "n2 did not take zone 0 over", &|m| {
        zone_0_ticks_on(m, 2)
    });
    restored_from_the_final_checkpoint(&mesh, 0, 2);
    std::thread::sleep(Duration::from_secs(1));
    three_sound_cuts(&mesh, &expected, 1);
    mesh.start(0);
    n0_keeps_zone_0_on_n2(
        &mesh,
        2,
        "zone 0 does not run on n2 alone after n0's return",
    );
    three_sound_cuts(&mesh, &expected, 4);
}

/// The three nodes, n2 holding any takeover `ms` milliseconds once a majority agreed to
/// it (the crash-test pause before it asks them to hold that it acts), streams caught up
/// and the first cut sound. Returns the mesh and the NPCs every cut must hold.
fn n2_held_at_its_promise(name: &str, ms: &str) -> (Mesh3, BTreeSet<u64>) {
    let mut mesh = Mesh3::new(name);
    mesh.start(0);
    mesh.start(1);
    mesh.start_with(2, &[("MERIDIAN_PROMISED_PAUSE_MS", ms)]);
    let expected = npc_ids(&[0, 1, 2], NPCS_PER_ZONE);
    standbys_current(&mesh);
    assert_sound(&mesh.cut(), &expected, 0);
    (mesh, expected)
}

/// Kills n2 once the mesh agreed to its takeover of zone 0 (it holds there, paused).
fn n2_killed_once_its_takeover_is_agreed(mesh: &mut Mesh3) {
    wait(mesh, "the mesh did not agree to n2's takeover", &|m| {
        m.log(2)
            .lines()
            .any(|l| l.contains("n2 takes zone 0 over from n0") && l.contains("agreed"))
    });
    mesh.kill(2);
}

/// With `[mesh] move_home_after_s = 1`, a zone goes home on its own after a rolling
/// restart: n0 is stopped with SIGTERM (zone 0 moves to its standby on n2) and started
/// again; n0 keeps zone 0's standby, and once that copy has been current and n0 alive for
/// a second, n2 moves the zone home as `/move` would — the player carrying on in its
/// session, every cut holding every NPC once, n2 keeping the zone's standby again. Only
/// toward home: zone 0 stays on n0 afterwards, and no node moves a zone it runs at home.
/// And not after a drain: moved away from n0 on purpose while n0 runs on, zone 0 stays
/// on n2 (fails if the policy ignores whether the home node restarted). Without the
/// policy (the default) zone 0 stays on n2 after the restart and this fails.
#[test]
fn a_zone_moves_home_on_its_own_once_its_node_is_back() {
    let _machine = crate::alone();
    let mesh = Mesh3::with("home", "\n[mesh]\nmove_home_after_s = 1\n");
    let (mut mesh, expected, player, before) = three_nodes_and_a_player_in(mesh, 12);
    n0_stopped_and_started(&mut mesh);
    let restarted = Instant::now();
    wait(&mesh, "zone 0 did not move home to n0", &|m| {
        zone_0_ticks_on(m, 0) && !zone_0_ticks_on(m, 2)
    });
    eprintln!(
        "n0 restarted: zone 0 running on it again {:?} later",
        restarted.elapsed()
    );
    assert!(
        mesh.log(2).contains("zone 0 moves home to node n0"),
        "zone 0 went home, but not by n2's policy:\n{}",
        mesh.logs()
    );
    wait(&mesh, "the player of zone 0 did not carry on", &|_| {
        let seen = player.seen();
        seen.counters.takeovers >= 2 && seen.snapshots > before.snapshots + 60
    });
    let seen = player.seen();
    assert_eq!(seen.session, before.session, "the same session");
    assert!(seen.closed.is_none(), "{seen:?}");
    wait(&mesh, "n2 does not keep zone 0's standby", &|m| {
        m.status(2).contains("standby zone 0 held")
    });
    three_sound_cuts(&mesh, &expected, 0);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        zone_0_ticks_on(&mesh, 0) && !zone_0_ticks_on(&mesh, 2),
        "zone 0 left home again:\n{}",
        mesh.logs()
    );
    // n0 stops again soon after: a home that is not steady doubles the wait.
    stopped_and_home_again(&mut mesh);
    // A drain: the operator moves zone 0 away from n0, which runs on. It stays on n2 —
    // n0 did not stop since — where a policy that looked only at the standby would send it
    // straight back.
    move_zone(&mesh, 0, 0);
    wait(&mesh, "zone 0 did not move to n2 when asked", &|m| {
        zone_0_ticks_on(m, 2) && !zone_0_ticks_on(m, 0)
    });
    n0_keeps_zone_0_on_n2(&mesh, 3, "zone 0, moved away from n0 on purpose, went back");
    let status = mesh.status(2);
    assert!(
        status.contains("zone 0 away from home n0: stays (n0 not back since the zone left)"),
        "n2's /status does not say why zone 0 stays:\n{status}"
    );
    for k in 0..NODES {
        assert_eq!(
            mesh.log(k).matches("moves home").count(),
            if k == 2 { 2 } else { 0 },
            "n{k} moved a zone home it should not have:\n{}",
            mesh.log(k)
        );
    }
    let home = metric(
        &mesh,
        2,
        "meridian_zone_moves_total",
        "n2",
        "outcome=\"begun_home\"",
    );
    assert_eq!(home, 2, "n2's moves home in /metrics");
    let took = metric(
        &mesh,
        0,
        "meridian_failover_takeovers_total",
        "n0",
        "cause=\"move\"",
    );
    // Since n0's last start: the second move home.
    assert_eq!(took, 1, "n0's takeovers of a move in /metrics");
}

/// n0 comes to keep zone 0's standby, and `secs` later zone 0 still runs on n2 alone
/// (else fails with `what`).
fn n0_keeps_zone_0_on_n2(mesh: &Mesh3, secs: u64, what: &str) {
    wait(mesh, "n0 does not keep zone 0's standby", &|m| {
        m.status(0).contains("standby zone 0 held")
    });
    std::thread::sleep(Duration::from_secs(secs));
    assert!(
        zone_0_ticks_on(mesh, 2) && !zone_0_ticks_on(mesh, 0),
        "{what}:\n{}",
        mesh.logs()
    );
}

/// n0 stopped with SIGTERM (zone 0 moves to n2; n0 exits cleanly) and started again.
fn n0_stopped_and_started(mesh: &mut Mesh3) {
    mesh.signal(0, "TERM");
    wait(mesh, "zone 0 did not move to n2 at n0's SIGTERM", &|m| {
        zone_0_ticks_on(m, 2)
    });
    let status = mesh.wait_exit(0, Duration::from_secs(10));
    assert!(
        status.success(),
        "n0 exited with {status}:\n{}",
        mesh.log(0)
    );
    mesh.start(0);
}

/// n0, home of zone 0 and back from a stop, stops again with SIGTERM and starts again:
/// zone 0 goes to n2 and home again, after twice the wait, as n2 says.
fn stopped_and_home_again(mesh: &mut Mesh3) {
    n0_stopped_and_started(mesh);
    wait(
        mesh,
        "n2's /status does not count down zone 0's move home",
        &|m| {
            m.status(2)
                .contains("zone 0 away from home n0: moves home in")
        },
    );
    wait(mesh, "zone 0 did not move home to n0 again", &|m| {
        zone_0_ticks_on(m, 0) && !zone_0_ticks_on(m, 2)
    });
    assert!(
        mesh.log(2)
            .contains("that node is not steady, so the zone waits 2s before it goes home again"),
        "n2 did not double zone 0's wait:\n{}",
        mesh.log(2)
    );
    wait(mesh, "n2 does not keep zone 0's standby", &|m| {
        m.status(2).contains("standby zone 0 held")
    });
}
