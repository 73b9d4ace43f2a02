//! `meridian demo --mesh`: failover, shown. Three `meridian node` processes on loopback —
//! the layout of `node/worlds/mesh-3.toml`: one zone each, n2 keeping the standbys of
//! zones 0 and 1, n1 that of zone 2 — signed with keys made for the run, with persistence
//! in a scratch directory; a swarm of bots playing across the three zones; after
//! `--kill-after` seconds node n0 is killed with SIGKILL — or, with `--sigterm`, stopped as
//! a rolling restart stops it (its zones stop, then it leaves the mesh), or, with
//! `--move-zone`, asked to move zone 0 to its standby while it runs on (`/move?zone=0`).
//! With `--restart-after`, n0 is started again that long after it stopped, and the world
//! moves zones home on their own (`[mesh] move_home_after_s`): zone 0 goes back to n0 —
//! a rolling restart, end to end, under the bots.
//! At the end, a summary: when the others declared n0 down, when zone 0 served again on
//! its standby (and, restarted, when it ran on n0 again), NPCs lost and duplicated (a
//! consistent cut of the nodes running), and the bots that kept playing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian_core::entities::EntityID;
use meridian_core::world::ZoneID;

use crate::swarm::{self, http_get};
use crate::{keyfile, world_file};

const NODES: usize = 3;
/// NPCs per zone: enough to see on the map, few enough for three nodes on a laptop.
const NPCS_PER_ZONE: u64 = 2000;
/// n2 keeps the standbys of zones 0 and 1, n1 that of zone 2 (as in mesh-3.toml).
const STANDBY_FOR: [&str; NODES] = ["[]", "[2]", "[0, 1]"];

/// What the demo runs.
#[derive(Clone, Debug)]
pub struct MeshDemo {
    pub swarm: swarm::Config,
    /// First port: node k's zones on `port + 10 k`, its control on `+ 100`, admin `+ 200`.
    pub port: u16,
    pub kill_after: Duration,
    /// How zone 0 leaves n0.
    pub ending: Ending,
    /// n0 is started again this long after it was stopped or killed (not with
    /// [`Ending::Move`]); the world then moves zones home [`MOVE_HOME_AFTER_S`] seconds
    /// after their home is back.
    pub restart_after: Option<Duration>,
    /// The node processes' log filter (`RUST_LOG`; their logs are `n0.log`… in the
    /// demo's directory).
    pub node_log: String,
}

/// `[mesh] move_home_after_s` of the demo's world when n0 is started again.
pub const MOVE_HOME_AFTER_S: u64 = 2;

/// How zone 0 leaves node n0 in the demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// n0 is killed with SIGKILL.
    Kill,
    /// n0 is stopped with SIGTERM (it leaves the mesh).
    Sigterm,
    /// n0 is asked to move zone 0 to its standby (`/move?zone=0`) and runs on.
    Move,
}

impl MeshDemo {
    /// How n0 ends, as the demo's lines say it.
    fn ended(&self) -> &'static str {
        match self.ending {
            Ending::Kill => "killed n0 (SIGKILL)",
            Ending::Sigterm => "stopped n0 (SIGTERM)",
            Ending::Move => "asked n0 to move zone 0 to n2 (/move?zone=0)",
        }
    }
}

/// When the kill (or the stop, with `--sigterm`) and what followed happened, seen from
/// the nodes left.
#[derive(Clone, Copy, Debug, Default)]
struct Failover {
    killed: Option<Instant>,
    /// After the kill: n0 declared down (by n2), and zone 0 ticking on n2.
    detected: Option<Duration>,
    serving: Option<Duration>,
    /// The swarm's violations when n0 was killed, and at the end of the failover's gap.
    violations_at_kill: u64,
    violations_after_gap: Option<u64>,
    /// n0 started again, and (after that) zone 0 ticking on n0 again.
    restarted: Option<Instant>,
    home: Option<Duration>,
}

/// The failover's gap, as the summary counts violations: from the kill until this long
/// after zone 0 serves on n2 (a client notices a missing snapshot after a second).
const GAP_AFTER_SERVING: Duration = Duration::from_secs(2);

/// The three node processes and their scratch directory.
struct Cluster {
    dir: PathBuf,
    world: PathBuf,
    /// The nodes' `RUST_LOG`.
    node_log: String,
    admins: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The world file of the run: the mesh-3 layout on `port`, with `keys` and `auth`, every
/// zone playing `game` if one is named.
fn world_text(
    port: u16,
    keys: &[[u8; 32]],
    auth: &[u8; 32],
    (game, move_home): (Option<&str>, bool),
) -> String {
    let mut text = format!(
        "[world]\nid = 3\nbounds = {{ x_min = 0.0, y_min = 0.0, x_max = 768.0, y_max = 256.0 }}\n\
         tick_rate_hz = 30\nmargin_m = 4.0\naura_m = 24.0\ncell_size_m = 16.0\n\n\
         [zones]\ncolumns = 3\nrows = 1\n\n\
         [npcs]\npattern = \"random_walk\"\nper_zone = {NPCS_PER_ZONE}\nspeed_mps = 5.0\n\n\
         [persistence]\ncheckpoint_interval_s = 1.0\n\n\
         [clients]\nauth_key = \"{}\"\nspeed_mps = 8.0\nsessions_per_zone = 2048\n\n\
         [limits]\nentities_per_zone = 65536\n",
        hex::encode(auth)
    );
    for (k, key) in keys.iter().enumerate() {
        let p = |offset: u16| port + offset + 10 * k as u16;
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"n{k}\"\nzones = [{k}]\ncores = [{}]\nudp = \"127.0.0.1:{}\"\n\
             control = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:{}\"\npublic_key = \"{}\"\n\
             standby_for = {}\n",
            k % 2,
            p(0),
            p(100),
            p(200),
            hex::encode(key),
            STANDBY_FOR[k]
        ));
    }
    if let Some(game) = game {
        text.push_str(&format!("\n[game]\nname = \"{game}\"\n"));
    }
    if move_home {
        text.push_str(&format!(
            "\n[mesh]\nmove_home_after_s = {MOVE_HOME_AFTER_S}\n"
        ));
    }
    text
}

impl Cluster {
    /// Writes keys and the world file into a scratch directory and starts the nodes.
    fn start(
        port: u16,
        auth: &ed25519_dalek::SigningKey,
        world: (Option<&str>, bool),
        node_log: &str,
    ) -> anyhow::Result<(Cluster, String)> {
        let dir = std::env::temp_dir().join(format!("meridian-demo-mesh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut keys = Vec::new();
        for k in 0..NODES {
            let key = keyfile::generate()?;
            keyfile::write(&dir.join(format!("n{k}.key")), &key, false)?;
            keys.push(key.verifying_key().to_bytes());
        }
        let text = world_text(port, &keys, &auth.verifying_key().to_bytes(), world);
        let world = dir.join("world.toml");
        std::fs::write(&world, &text)?;
        let spec = world_file::parse_spec(&text).map_err(anyhow::Error::msg)?;
        let mut cluster = Cluster {
            dir,
            world,
            node_log: node_log.to_owned(),
            admins: spec.nodes.iter().filter_map(|n| n.admin).collect(),
            children: (0..NODES).map(|_| None).collect(),
        };
        for k in 0..NODES {
            cluster.spawn(k)?;
        }
        for k in 0..NODES {
            cluster.wait_up(k)?;
        }
        Ok((cluster, text))
    }

    fn spawn(&mut self, k: usize) -> anyhow::Result<()> {
        // Appended: a node started again keeps the log of its first run.
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("n{k}.log")))?;
        let child = Command::new(std::env::current_exe()?)
            .arg("node")
            .arg("--world")
            .arg(&self.world)
            .args(["--name", &format!("n{k}")])
            .arg("--key")
            .arg(self.dir.join(format!("n{k}.key")))
            .arg("--data")
            .arg(self.dir.join(format!("data-n{k}")))
            .env("RUST_LOG", &self.node_log)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        self.children[k] = Some(child);
        Ok(())
    }

    fn wait_up(&mut self, k: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(self.admins[k], "/status").is_err() {
            if let Some(child) = self.children[k].as_mut()
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!(
                    "node n{k} exited with {status}; its log: {}",
                    self.log_path(k).display()
                );
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "node n{k} did not come up in 30 s; its log: {}",
                self.log_path(k).display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn log_path(&self, k: usize) -> PathBuf {
        self.dir.join(format!("n{k}.log"))
    }

    /// SIGKILL.
    fn kill(&mut self, k: usize) {
        if let Some(mut child) = self.children[k].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s.
    fn terminate(&mut self, k: usize) {
        let Some(child) = self.children[k].as_mut() else {
            return;
        };
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while sent.as_ref().is_ok_and(|s| s.success()) && Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.children[k] = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        eprintln!("n{k} did not exit within 10 s of SIGTERM: killing it");
        self.kill(k);
    }
}

/// Watches n2 after the kill: when it declares n0 down and when zone 0 ticks there; then,
/// with `restart` (n0 is started again), when zone 0 ticks on n0 and no longer on n2.
fn watch_failover(
    (admins, restart): ([SocketAddr; 2], bool),
    failover: &Mutex<Failover>,
    stop: &AtomicBool,
) {
    let [n0, admin] = admins;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        let (killed, restarted) = {
            let f = failover.lock().expect("failover");
            (f.killed, f.restarted)
        };
        let Some(killed) = killed else {
            continue;
        };
        if let Some(restarted) = restarted {
            // On n0 and no longer on n2: n0's restart resumes zone 0 from its own files
            // for a moment before it is told the zone runs on n2 and stands down.
            let ticks = |a| {
                http_get(a, "/status")
                    .is_ok_and(|s| value(&s, "zone 0 ", "tick").is_some_and(|t| t > 0))
            };
            if ticks(n0) && !ticks(admin) {
                failover.lock().expect("failover").home = Some(restarted.elapsed());
                return;
            }
            continue;
        }
        let Ok(status) = http_get(admin, "/status") else {
            continue;
        };
        let mut f = failover.lock().expect("failover");
        if f.detected.is_none()
            && let Some(for_ms) = value(&status, "peer n0 down", "for_ms")
        {
            f.detected = Some(
                killed
                    .elapsed()
                    .saturating_sub(Duration::from_millis(for_ms)),
            );
        }
        if f.serving.is_none() && value(&status, "zone 0 ", "tick").is_some_and(|t| t > 0) {
            f.serving = Some(killed.elapsed());
        }
        if f.detected.is_some() && f.serving.is_some() && !restart {
            return;
        }
    }
}

/// The number after `key ` on the first `/status` line that starts with `prefix`.
fn value(status: &str, prefix: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(prefix))?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == key)?;
    words.next()?.parse().ok()
}

/// NPCs lost and duplicated in one consistent cut of the nodes at `admins`.
fn conservation(admins: &[SocketAddr]) -> anyhow::Result<(u64, u64)> {
    let bodies: Vec<anyhow::Result<String>> =
        admins.iter().map(|a| http_get(*a, "/freeze")).collect();
    for a in admins {
        let _ = http_get(*a, "/release");
    }
    let (mut owned, mut in_flight) = (BTreeMap::<u64, u32>::new(), BTreeMap::<u64, u32>::new());
    for body in bodies {
        for line in body?.lines() {
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["owned", id, _] => *owned.entry(id.parse()?).or_default() += 1,
                ["in_flight", id, _] => *in_flight.entry(id.parse()?).or_default() += 1,
                _ => {}
            }
        }
    }
    let (mut lost, mut duplicated) = (0, 0);
    for z in 0..NODES as u32 {
        for i in 0..NPCS_PER_ZONE {
            let id = EntityID::new(ZoneID(z), i).0;
            match owned.get(&id).copied().unwrap_or(0) {
                0 if !in_flight.contains_key(&id) => lost += 1,
                0 | 1 => {}
                _ => duplicated += 1,
            }
        }
    }
    Ok((lost, duplicated))
}

/// Runs the demo and prints its summary; `Ok(false)` if anything was lost or duplicated.
pub fn run(demo: MeshDemo, stop: &AtomicBool) -> anyhow::Result<bool> {
    anyhow::ensure!(
        demo.kill_after < demo.swarm.duration,
        "--kill-after ({} s) must come before the end of the run (--duration {} s)",
        demo.kill_after.as_secs(),
        demo.swarm.duration.as_secs()
    );
    if let Some(after) = demo.restart_after {
        anyhow::ensure!(
            demo.ending != Ending::Move,
            "--restart-after starts n0 again after it stopped; with --move-zone it runs on"
        );
        let home = demo.kill_after + after + Duration::from_secs(MOVE_HOME_AFTER_S + 4);
        anyhow::ensure!(
            home <= demo.swarm.duration,
            "--kill-after ({} s) + --restart-after ({} s) leaves zone 0 no time to go home \
             before the end of the run (--duration {} s): it needs about {} s more than both",
            demo.kill_after.as_secs(),
            after.as_secs(),
            demo.swarm.duration.as_secs(),
            MOVE_HOME_AFTER_S + 4
        );
    }
    let auth = keyfile::generate()?;
    // Bots playing tag need the game: the world file names it, and every node plays it.
    let game = (demo.swarm.pattern == swarm::Pattern::Tag).then_some(crate::games::TAG);
    let restart = demo.restart_after.is_some();
    let (mut cluster, text) = Cluster::start(demo.port, &auth, (game, restart), &demo.node_log)?;
    let spec = world_file::parse_spec(&text).map_err(anyhow::Error::msg)?;
    println!(
        "demo --mesh: 3 node processes (logs and data in {}), {} NPCs per zone, {} bots ({:?}); \
         node n0 (zone 0) is {} after {} s",
        cluster.dir.display(),
        NPCS_PER_ZONE,
        demo.swarm.clients,
        demo.swarm.pattern,
        match demo.ending {
            Ending::Kill => "killed with SIGKILL",
            Ending::Sigterm => "stopped with SIGTERM (it leaves the mesh)",
            Ending::Move => "asked to move zone 0 to its standby on n2 (it runs on)",
        },
        demo.kill_after.as_secs()
    );
    if let Some(after) = demo.restart_after {
        println!(
            "  n0 is started again {} s later; zones move home {MOVE_HOME_AFTER_S} s after \
             their node is back ([mesh] move_home_after_s)",
            after.as_secs()
        );
    }
    for (k, admin) in cluster.admins.iter().enumerate() {
        println!("  n{k}: live map {}", crate::map::url(*admin));
    }
    let target = swarm::Target {
        world: spec.world,
        world_id: spec.world_id,
        zone_addrs: spec
            .nodes
            .iter()
            .map(|n| (n.zones[0], n.zone_address(0)))
            .collect(),
        // Every node's: the owner and visibility samples skip a node that does not answer
        // (n0 once killed).
        admins: cluster.admins.clone(),
        admin_token: None,
        node_keys: spec.nodes.iter().filter_map(|n| n.public_key).collect(),
        auth,
        speed_mps: 8.0,
    };
    let failover = Arc::new(Mutex::new(Failover::default()));
    let watcher = {
        let admins = ([cluster.admins[0], cluster.admins[2]], restart);
        let failover = failover.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        (
            stop,
            std::thread::spawn(move || watch_failover(admins, &failover, &s)),
        )
    };
    let report = swarm::run(&target, &demo.swarm, stop, |p| {
        let killed = failover.lock().expect("failover").killed.is_some();
        if !killed && p.elapsed >= demo.kill_after {
            let at = Instant::now();
            {
                // The watcher times from the signal.
                let mut f = failover.lock().expect("failover");
                (f.killed, f.violations_at_kill) = (Some(at), p.violations);
            }
            match demo.ending {
                Ending::Kill => cluster.kill(0),
                Ending::Sigterm => cluster.terminate(0),
                Ending::Move => {
                    if let Err(e) = ask_move(cluster.admins[0]) {
                        eprintln!("the move was not begun: {e}");
                    }
                }
            }
            println!("[{:>4}s] {}", p.elapsed.as_secs(), demo.ended());
        }
        restart_when_due(&mut cluster, &demo, &failover, p.elapsed);
        let mut f = failover.lock().expect("failover");
        if let (Some(killed), Some(serving), None) = (f.killed, f.serving, f.violations_after_gap)
            && killed.elapsed() >= serving + GAP_AFTER_SERVING
        {
            f.violations_after_gap = Some(p.violations);
        }
        let f = *f;
        println!(
            "[{:>4}s] bots connected {} | snapshots {} | redirects {} | violations {} | n0 declared down {} | zone 0 on n2 {}",
            p.elapsed.as_secs(),
            p.connected,
            p.snapshots,
            p.redirects,
            p.violations,
            shown(f.detected),
            shown(f.serving)
        );
    })?;
    watcher.0.store(true, Ordering::Relaxed);
    let _ = watcher.1.join();
    let f = *failover.lock().expect("failover");
    // After a move n0 runs on and answers the cut (it holds nothing of zone 0 now), and
    // so it does started again.
    let alive = if demo.ending == Ending::Move || f.restarted.is_some() {
        0
    } else {
        1
    };
    let (lost, duplicated) = conservation(&cluster.admins[alive..])?;
    let kept_playing = report.connected.saturating_sub(report.timed_out);
    println!("\n{}", report.table());
    println!("failover:");
    let (what, after) = match demo.ending {
        Ending::Kill => ("killed", "the kill"),
        Ending::Sigterm => ("stopped", "the stop"),
        Ending::Move => ("asked to move zone 0", "the ask"),
    };
    println!(
        "  {:<24} {} s",
        format!("n0 {what} after"),
        demo.kill_after.as_secs()
    );
    if demo.ending == Ending::Move {
        println!("  n0 declared down         no: it runs on, keeping zone 0's standby");
    } else {
        println!(
            "  declared down after      {}  (target 1 s)",
            shown(f.detected)
        );
    }
    println!(
        "  zone 0 serving on n2 in  {}  (target 2 s)",
        shown(f.serving)
    );
    if let Some(after) = demo.restart_after {
        println!("  n0 started again after   {} s", after.as_secs());
        println!(
            "  zone 0 home on n0 in     {}  after n0 started again (move_home_after_s = {MOVE_HOME_AFTER_S})",
            shown(f.home)
        );
    }
    println!(
        "  NPCs lost                {lost}  of {}",
        NPCS_PER_ZONE * NODES as u64
    );
    println!("  NPCs duplicated          {duplicated}");
    println!(
        "  bots that kept playing   {kept_playing} of {} connected",
        report.connected
    );
    let total = report.violations();
    let gap_end = f.violations_after_gap.unwrap_or(total);
    println!(
        "  swarm violations         {} before {after}, {} in the failover's gap (to {} s \
         after zone 0 served again), {} after",
        f.violations_at_kill,
        gap_end.saturating_sub(f.violations_at_kill),
        GAP_AFTER_SERVING.as_secs(),
        total.saturating_sub(gap_end)
    );
    println!("logs and data: {}", cluster.dir.display());
    let home = !restart || f.home.is_some();
    Ok(lost == 0 && duplicated == 0 && f.serving.is_some() && home)
}

/// Starts n0 again once `--restart-after` has passed since it stopped.
fn restart_when_due(
    cluster: &mut Cluster,
    demo: &MeshDemo,
    failover: &Mutex<Failover>,
    elapsed: Duration,
) {
    let Some(after) = demo.restart_after else {
        return;
    };
    let mut f = failover.lock().expect("failover");
    if f.restarted.is_some() || f.killed.is_none() || elapsed < demo.kill_after + after {
        return;
    }
    match cluster.spawn(0) {
        Ok(()) => {
            f.restarted = Some(Instant::now());
            println!("[{:>4}s] started n0 again", elapsed.as_secs());
        }
        Err(e) => eprintln!("n0 could not be started again: {e}"),
    }
}

/// Asks n0 (at `admin`) to move zone 0 to its standby, again every 100 ms for up to 5 s
/// while it answers that it cannot yet (its standby not current).
fn ask_move(admin: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match http_get(admin, "/move?zone=0") {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline && e.to_string().contains("409") => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

fn shown(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
}
