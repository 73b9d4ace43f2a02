//! Durability over real processes: two signed `meridian node` processes, border dancers
//! crossing the node border, one node killed with SIGKILL at random moments and restarted
//! on the same data directory; every cut of both nodes afterwards shows each NPC exactly
//! once. And bad data directories, each refused with a message that names the file.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::conservation::{assert_sound, npc_ids};
use crate::processes::Nodes;

const NPCS_PER_ZONE: u64 = 400;

/// A two-zone world of `width_m` × half that, with `nodes` (TOML `[[nodes]]` entries),
/// border dancers and checkpoints every `checkpoint_s`.
fn world_file(id: u64, width_m: f32, nodes: &str, per_zone: u64, checkpoint_s: f32) -> String {
    format!(
        r#"
[world]
id = {id}
bounds = {{ x_min = 0.0, y_min = 0.0, x_max = {width_m:.1}, y_max = {:.1} }}
tick_rate_hz = 30
margin_m = 4.0
aura_m = 16.0
cell_size_m = 16.0

[zones]
columns = 2
rows = 1

{nodes}
[npcs]
pattern = "border_dancers"
per_zone = {per_zone}
speed_mps = 6.0

[persistence]
checkpoint_interval_s = {checkpoint_s}
"#,
        width_m / 2.0
    )
}

/// Two nodes, one zone each (`crate::processes`); checkpoints every 100 ms, each paused
/// 40 ms before its rename, so kills land inside checkpoint writes often.
struct Cluster {
    nodes: Nodes,
}

impl Cluster {
    fn new(name: &str) -> Cluster {
        let (dir, keys) = Nodes::prepare(&format!("dur-{name}"), 2);
        let admins = vec![
            SocketAddr::from(([127, 0, 0, 1], crate::free_port())),
            SocketAddr::from(([127, 0, 0, 1], crate::free_port())),
        ];
        let node = |k: usize| {
            format!(
                "[[nodes]]\nname = \"n{k}\"\nzones = [{k}]\ncores = [{k}]\nudp = \"127.0.0.1:{}\"\nadmin = \"{}\"\npublic_key = \"{}\"\n",
                crate::free_port(),
                admins[k],
                hex::encode(keys[k].as_bytes())
            )
        };
        let nodes = format!("{}\n{}", node(0), node(1));
        let world = world_file(5, 512.0, &nodes, NPCS_PER_ZONE, 0.1);
        let env = [("RUST_LOG", "warn"), ("MERIDIAN_CHECKPOINT_PAUSE_MS", "40")];
        Cluster {
            nodes: Nodes::new(dir, &world, admins, &env),
        }
    }
}

impl std::ops::Deref for Cluster {
    type Target = Nodes;
    fn deref(&self) -> &Nodes {
        &self.nodes
    }
}

impl std::ops::DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut Nodes {
        &mut self.nodes
    }
}

fn checkpoint_tmp_exists(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        })
        .unwrap_or(false)
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let _machine = crate::shared();
    let mut cluster = Cluster::new("kill9");
    cluster.start(0);
    cluster.start(1);
    let expected: BTreeSet<u64> = npc_ids(&[0, 1], NPCS_PER_ZONE);
    std::thread::sleep(Duration::from_millis(800));
    assert_sound(&cluster.cut(), &expected, 0);

    // A deterministic spread of kill moments (xorshift), some landing on checkpoint writes
    // (every 100 ms): a `.tmp` left behind proves one did. Every fourth kill waits (up to
    // 2 s) until a write is under way: on a fast disk a write lasts a few milliseconds,
    // and 30 kills at random moments once all missed.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut during_checkpoint = 0;
    let mut kills = 0;
    while kills < 10 || (during_checkpoint == 0 && kills < 30) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(150 + x % 900));
        let victim = if kills % 3 == 2 { 0 } else { 1 }; // mostly node 1, sometimes node 0 (the rule the incarnation check below counts with)
        if kills % 4 == 3 {
            let waited = std::time::Instant::now();
            while !checkpoint_tmp_exists(&cluster.data(victim))
                && waited.elapsed() < Duration::from_secs(2)
            {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        cluster.kill(victim);
        if checkpoint_tmp_exists(&cluster.data(victim)) {
            during_checkpoint += 1;
        }
        kills += 1;
        cluster.start(victim);
    }
    // Quiet period, then several cuts: each NPC exactly once.
    std::thread::sleep(Duration::from_secs(2));
    for sample in 1..=5 {
        assert_sound(&cluster.cut(), &expected, sample);
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("{kills} kills, {during_checkpoint} during a checkpoint write");
    assert!(
        during_checkpoint > 0,
        "no kill landed on a checkpoint write in {kills} kills"
    );
    // Every start was a new incarnation: the first is 1, each restart adds one.
    for (k, zone) in [(0usize, 0u32), (1, 1)] {
        let restarts = (0..kills).filter(|&i| (i % 3 == 2) == (k == 0)).count() as u32;
        let wal = newest(&cluster.data(k), zone, "wal");
        let bytes = std::fs::read(&wal).unwrap();
        let id = meridian_core::persist::read_header(&bytes, meridian_core::persist::FileKind::Wal)
            .unwrap();
        assert_eq!(id.incarnation, 1 + restarts, "{}", wal.display());
    }
}

// ---- bad data directories -----------------------------------------------------------------

/// A one-node world (two zones, a few dancers) and a scratch directory.
fn single_node(name: &str, world_id: u64) -> (PathBuf, PathBuf) {
    single_node_checkpointing(name, world_id, 0.2)
}

/// [`single_node`], checkpoints every `checkpoint_s`.
fn single_node_checkpointing(name: &str, world_id: u64, checkpoint_s: f32) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("meridian-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let node = format!(
        "[[nodes]]\nname = \"solo\"\nzones = [0, 1]\ncores = [0, 1]\nudp = \"127.0.0.1:{}\"\n",
        crate::free_port()
    );
    let world = world_file(world_id, 256.0, &node, 50, checkpoint_s);
    let path = dir.join("world.toml");
    std::fs::write(&path, world).unwrap();
    (dir, path)
}

/// Runs `meridian node` for `secs`: (exit code, stderr).
fn run_node(world: &Path, data: &Path, secs: u64, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("node")
        .arg("--world")
        .arg(world)
        .arg("--data")
        .arg(data)
        .args(["--duration", &secs.to_string()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn newest(data: &Path, zone: u32, kind: &str) -> PathBuf {
    files(data, zone, kind).pop().expect("a file of that kind")
}

/// The data directory's files of `zone` and `kind` ("wal" or "ckp"), newest last.
fn files(data: &Path, zone: u32, kind: &str) -> Vec<PathBuf> {
    let prefix = format!("zone-{zone}.{kind}.");
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(data)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let g = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((g, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|f| f.1).collect()
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

/// The offset of the checkpoint's entity-id section (checksummed; never padding).
fn ids_section(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let sections = meridian_core::persist::checkpoint_sections(&bytes).unwrap();
    let (_, offset, _, _) = sections
        .iter()
        .find(|s| s.0 == meridian_layouts::persist::SectionKind::Ids)
        .unwrap();
    *offset as usize
}

#[test]
fn a_torn_wal_tail_is_truncated_and_named() {
    let _machine = crate::shared();
    let (dir, world) = single_node("torn", 5);
    let data = dir.join("data");
    assert_eq!(run_node(&world, &data, 2, &[]).0, Some(0));
    let wal = files(&data, 0, "wal").pop().unwrap();
    let len = std::fs::metadata(&wal).unwrap().len();
    // Half a record header: a write interrupted by the crash.
    let mut f = std::fs::OpenOptions::new().append(true).open(&wal).unwrap();
    std::io::Write::write_all(&mut f, &[7, 0, 0, 0, 3]).unwrap();
    drop(f);
    let (code, err) = run_node(&world, &data, 1, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("{}: torn tail at offset {len}", wal.display())),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_damaged_checkpoint_falls_back_and_damage_everywhere_is_refused_until_fresh() {
    let _machine = crate::shared();
    let (dir, world) = single_node("ckp", 5);
    let data = dir.join("data");
    assert_eq!(run_node(&world, &data, 2, &[]).0, Some(0));
    let checkpoints = files(&data, 1, "ckp");
    assert_eq!(checkpoints.len(), 2, "two generations kept");
    // The newest checkpoint damaged: the older generation and its WAL take over.
    let newest = checkpoints.last().unwrap();
    flip(newest, ids_section(newest));
    let (code, err) = run_node(&world, &data, 1, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("falling back to the older generation"),
        "{err}"
    );
    assert!(
        err.contains(&checkpoints.last().unwrap().display().to_string()),
        "{err}"
    );
    // Every checkpoint damaged: refused, with the files named and --fresh offered.
    for c in files(&data, 1, "ckp") {
        flip(&c, ids_section(&c));
    }
    let (code, err) = run_node(&world, &data, 1, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("zone 1: no valid state to restore"), "{err}");
    assert!(err.contains("--fresh"), "{err}");
    assert!(err.contains("zone-1.ckp."), "{err}");
    // An empty file where a checkpoint was is no better.
    for c in files(&data, 1, "ckp") {
        std::fs::write(&c, b"").unwrap();
    }
    let (code, err) = run_node(&world, &data, 1, &[]);
    assert_eq!(code, Some(1), "{err}");
    // --fresh: the old files move aside, the node starts empty on purpose.
    let (code, err) = run_node(&world, &data, 1, &["--fresh"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("--fresh: moved the zone's old files"), "{err}");
    assert!(
        std::fs::read_dir(&data)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("discarded-"))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The same world id with other bounds or another grid of zones: the data directory's
/// zones were written under another layout, and restoring them would misplace or drop
/// entities. Refused, naming both layouts, until the node starts `--fresh`, which records
/// the new layout (and the old world file is refused from then on).
#[test]
fn a_data_directory_written_under_another_layout_is_refused() {
    let _machine = crate::shared();
    let (dir, world) = single_node("geometry", 5);
    let data = dir.join("data");
    assert_eq!(run_node(&world, &data, 1, &[]).0, Some(0));
    let text = std::fs::read_to_string(&world).unwrap();
    let wider = dir.join("wider.toml");
    std::fs::write(&wider, text.replace("x_max = 256.0", "x_max = 512.0")).unwrap();
    let regridded = dir.join("regridded.toml");
    // Two zones still (the node hosts both), stacked instead of side by side.
    let stacked = text.replace("columns = 2\nrows = 1", "columns = 1\nrows = 2");
    assert_ne!(stacked, text);
    std::fs::write(&regridded, stacked).unwrap();
    for other in [&wider, &regridded] {
        let (code, err) = run_node(other, &data, 1, &[]);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains("written under another layout")
                && err.contains("bounds 0 0 256 128, zones 2 x 1"),
            "{err}"
        );
    }
    assert_eq!(run_node(&wider, &data, 1, &["--fresh"]).0, Some(0));
    assert_eq!(run_node(&wider, &data, 1, &[]).0, Some(0));
    let (code, err) = run_node(&world, &data, 1, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bounds 0 0 512 128"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn another_worlds_data_a_file_and_a_locked_directory_are_refused() {
    let _machine = crate::shared();
    let (dir, world) = single_node("foreign", 5);
    let data = dir.join("data");
    assert_eq!(run_node(&world, &data, 1, &[]).0, Some(0));
    // The same directory under another world id.
    let other = std::fs::read_to_string(&world)
        .unwrap()
        .replace("id = 5", "id = 6");
    let other_world = dir.join("other.toml");
    std::fs::write(&other_world, other).unwrap();
    let (code, err) = run_node(&other_world, &data, 1, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("belong to world 5 zone 0, not to world 6 zone 0"),
        "{err}"
    );
    assert!(err.contains("zone-0."), "{err}");
    // A data "directory" that is a file.
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let (code, err) = run_node(&world, &file.join("data"), 1, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    // A directory another running node holds.
    let mut holder = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("node")
        .arg("--world")
        .arg(&world)
        .arg("--data")
        .arg(&data)
        .args(["--duration", "6"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (code, err) = run_node(&world, &data, 1, &[]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("in use by another running node"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A node stopped cleanly (at the end of `--duration`, as at SIGTERM) leaves each zone's
/// newest checkpoint at the zone's last tick — a restart begins where the zones stopped,
/// not at the last periodic checkpoint (5 s apart here: none but the first in the run) —
/// and the restart restores from it.
#[test]
fn a_clean_stop_leaves_a_checkpoint_of_the_last_tick() {
    let _machine = crate::shared();
    let (dir, world) = single_node_checkpointing("final", 32, 5.0);
    let data = dir.join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["node", "--duration", "2", "--world"])
        .arg(&world)
        .arg("--data")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for zone in 0..2u32 {
        // The summary's row: zone entities in_flight ghosts ticks …
        let ticks: u64 = stdout
            .lines()
            .map(str::split_whitespace)
            .find_map(|mut w| (w.next()? == zone.to_string()).then(|| w.nth(3)?.parse().ok())?)
            .unwrap_or_else(|| panic!("no row for zone {zone}:\n{stdout}"));
        let newest = std::fs::read(newest(&data, zone, "ckp")).unwrap();
        let header = meridian_core::persist::read_header(
            &newest,
            meridian_core::persist::FileKind::Checkpoint,
        )
        .unwrap();
        assert!(ticks > 30, "zone {zone} ticked {ticks} times");
        assert_eq!(header.tick, ticks, "zone {zone}'s newest checkpoint");
    }
    let (code, stderr) = run_node(&world, &data, 1, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
