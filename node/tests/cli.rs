//! The `meridian` binary as an operator runs it.

use std::process::Command;

fn meridian() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("meridian-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn help_lists_every_command() {
    let out = meridian().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // The names in the "Commands:" section, as clap prints them: two spaces, the name,
    // then its description.
    let listed: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    let commands = [
        "node",
        "demo",
        "swarm",
        "sim",
        "check",
        "keygen",
        "admin-token",
        "token",
    ];
    for command in commands {
        assert!(
            listed.contains(&command),
            "--help does not list the command {command} (it lists {listed:?}):\n{text}"
        );
        // Each command explains itself.
        let out = meridian().args([command, "--help"]).output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "meridian {command} --help failed");
        assert!(
            help.contains(&format!("Usage: meridian {command}")),
            "meridian {command} --help:\n{help}"
        );
    }
}

#[test]
fn check_names_the_bad_field_and_exits_1() {
    let dir = temp_dir("check");
    let bad =
        include_str!("../worlds/default.toml").replace("tick_rate_hz = 30", "tick_rate_hz = 0");
    let path = dir.join("bad.toml");
    std::fs::write(&path, bad).unwrap();
    let out = meridian()
        .args(["check", "--world"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("tick_rate_hz"), "{err}");
    let ok = meridian()
        .args(["check", "--world", "worlds/default.toml"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `[game]`: `check` says which game the zones play and with which settings; a game the
/// binary does not know, or a setting its game refuses, fails `check` and `node` alike,
/// naming the games the binary knows or the setting.
#[test]
fn a_world_naming_a_game_the_binary_does_not_know_is_refused() {
    let dir = temp_dir("game");
    let default = include_str!("../worlds/default.toml");
    let settings = "[game.settings]\nrewind_ms = 200\nit_every = 4\n";
    for (name, game, says) in [
        (
            "tag",
            "name = \"tag\"\n",
            Ok("game: every zone plays \"tag\"\n"),
        ),
        (
            "tag-set",
            &format!("name = \"tag\"\n{settings}"),
            Ok("game: every zone plays \"tag\" with settings it_every = 4, rewind_ms = 200\n"),
        ),
        (
            "chess",
            "name = \"chess\"\n",
            Err("[game] name = \"chess\": this binary knows \"tag\""),
        ),
        (
            "tag-speed",
            "name = \"tag\"\n[game.settings]\nspeed = 3\n",
            Err("[game.settings] of \"tag\": speed: tag takes it_every and rewind_ms"),
        ),
    ] {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, format!("{default}\n[game]\n{game}")).unwrap();
        // (`node` only where it stops at once: the default world's zones are large.)
        let node = &["node", "--ephemeral", "--duration", "1"][..];
        let commands = [&["check"][..], node];
        for command in &commands[..if says.is_ok() { 1 } else { 2 }] {
            let out = meridian()
                .args(*command)
                .arg("--world")
                .arg(&path)
                .output()
                .unwrap();
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            match says {
                Ok(line) => {
                    assert!(out.status.success(), "{stderr}");
                    assert!(stdout.contains(line), "{name}: {stdout}");
                }
                Err(error) => {
                    assert_eq!(out.status.code(), Some(1), "{command:?}: {stdout}");
                    assert!(stderr.contains(error), "{name} {command:?}: {stderr}");
                }
            }
        }
    }
    let out = meridian()
        .args(["check", "--world", "worlds/default.toml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("game: none"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn node_runs_for_a_while_and_prints_a_summary() {
    let _machine = crate::shared();
    let dir = temp_dir("node");
    let world = include_str!("../worlds/default.toml")
        .replace("udp = \"127.0.0.1:7000\"", "udp = \"127.0.0.1:0\"")
        .replace("admin = \"127.0.0.1:7100\"", "admin = \"127.0.0.1:0\"");
    let path = dir.join("world.toml");
    std::fs::write(&path, world).unwrap();
    let out = meridian()
        .args(["node", "--duration", "3", "--npcs", "2000", "--world"])
        .arg(&path)
        .arg("--data")
        .arg(dir.join("data"))
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("summary after"), "{stdout}");
    assert!(
        stderr.contains("handoffs") && stderr.contains("tick p50"),
        "no status line:\n{stderr}"
    );
    // Both zones, 2,000 NPCs each, all accounted for in the summary (owned, or in flight).
    let zones: Vec<Vec<u64>> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(['0', '1']))
        .map(|l| {
            l.split_whitespace()
                .take(3)
                .map(|w| w.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(zones.len(), 2, "{stdout}");
    // An entity the target adopted whose DONE has not reached the source yet (it waits for
    // the target's WAL sync, and the node stopped) is owned by the target and still in
    // flight at the source: owned ≤ total ≤ owned + in flight, and owned twice never.
    let owned: u64 = zones.iter().map(|z| z[1]).sum();
    let in_flight: u64 = zones.iter().map(|z| z[2]).sum();
    assert!(
        owned <= 4000 && owned + in_flight >= 4000,
        "{owned} owned and {in_flight} in flight of 4,000 after stopping:\n{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn node_with_pinned_keys_refuses_to_start_without_its_key() {
    let dir = temp_dir("keys");
    let key = meridian_node::keyfile::generate().unwrap();
    let world = include_str!("../worlds/default.toml").replace(
        "name = \"local\"",
        &format!(
            "name = \"local\"\npublic_key = \"{}\"",
            hex::encode(key.verifying_key().as_bytes())
        ),
    );
    let path = dir.join("world.toml");
    std::fs::write(&path, world).unwrap();
    let out = meridian()
        .args(["node", "--duration", "1", "--world"])
        .arg(&path)
        .arg("--data")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sim_runs_seeds_and_reports() {
    let _machine = crate::shared();
    let out = meridian()
        .args(["sim", "--seeds", "4", "--ticks", "600"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("seeds/s, 0 failed"), "{text}");
    assert!(text.contains("handoff completion"), "{text}");
}

/// `meridian sim --membership`: the real gossip's simulator from the command line, and
/// the flags it refuses (the zone simulator's).
#[test]
fn sim_membership_runs_seeds_and_reports() {
    let _machine = crate::shared();
    let out = meridian()
        .args(["sim", "--membership", "--seeds", "2", "--threads", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("2 seeds in") && text.contains("0 failed"),
        "{text}"
    );
    assert!(
        text.contains("calm deaths seen down by every node"),
        "{text}"
    );
    let refused = meridian()
        .args(["sim", "--membership", "--standbys"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn keygen_and_token_round_trip() {
    let dir = temp_dir("token");
    let (auth, client) = (dir.join("auth.key"), dir.join("client.key"));
    for path in [&auth, &client] {
        let out = meridian()
            .args(["keygen", "--out"])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("public_key = \""));
    }
    let again = meridian()
        .args(["keygen", "--out"])
        .arg(&auth)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(1),
        "keygen must not overwrite without --force"
    );
    let out = meridian()
        .args([
            "token",
            "--world-id",
            "1",
            "--client-id",
            "42",
            "--auth-key",
        ])
        .arg(&auth)
        .arg("--client-key")
        .arg(&client)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = hex::decode(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    assert!(meridian_layouts::witness::ConnectToken::parse(&token).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn admin_tokens_are_made_secret_and_a_node_refuses_an_exposed_one() {
    let dir = temp_dir("admin-token");
    let token = dir.join("admin.token");
    let make = || {
        meridian()
            .args(["admin-token", "--out"])
            .arg(&token)
            .output()
            .unwrap()
    };
    assert!(make().status.success());
    let text = std::fs::read_to_string(&token).unwrap();
    assert_eq!(text.len(), 65, "{text:?}");
    assert!(hex::decode(text.trim()).is_ok(), "{text:?}");
    let again = make();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let world = include_str!("../worlds/default.toml")
        .replace("udp = \"127.0.0.1:7000\"", "udp = \"127.0.0.1:0\"")
        .replace("admin = \"127.0.0.1:7100\"", "admin = \"127.0.0.1:0\"");
    let path = dir.join("world.toml");
    std::fs::write(&path, world).unwrap();
    let node = || {
        meridian()
            .args(["node", "--ephemeral", "--duration", "1", "--npcs", "10"])
            .arg("--world")
            .arg(&path)
            .arg("--admin-token")
            .arg(&token)
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let exposed = node();
    assert_eq!(exposed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&exposed.stderr).contains("chmod 600"));
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = node();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("--admin-token file's token"), "{stderr}");
    // The log says a token is needed, and never says the token.
    assert!(!stderr.contains(text.trim()), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `meridian demo --mesh` end to end: three node processes playing tag (the world file
/// names the game), bots playing it, n0 killed; the summary says zone 0 came back on its
/// standby with nothing lost or duplicated (exit status 0), and the nodes judged the bots'
/// shots throughout.
#[test]
fn demo_mesh_kills_a_node_and_reports_the_failover() {
    let stdout = demo_mesh(&[], "killed n0 (SIGKILL)", "before the kill");
    // Zone 0 back after the suspicion (0.7 s or so): no claim on the time here.
    assert!(stdout.contains("n0 killed after"), "{stdout}");
    // "tag: shots (server hits / misses / refused)  1925 (1396 / 506 / 2); 21 unanswered"
    let shots: Vec<u64> = stdout
        .lines()
        .find_map(|l| {
            l.split("tag: shots (server hits / misses / refused)")
                .nth(1)
        })
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let [shots, hits, misses, refused, _] = shots[..] else {
        panic!("no tag row in\n{stdout}")
    };
    assert!(
        shots >= 100 && hits + misses + refused >= shots * 8 / 10,
        "{shots} shots, {hits} / {misses} / {refused} answered\n{stdout}"
    );
}

/// `meridian demo --mesh --sigterm --restart-after 2`: a rolling restart of n0 under the
/// bots. Stopped, it leaves the mesh, and zone 0 serves on its standby well under the
/// suspicion a kill needs; started again two seconds later, it gets zone 0 back on its
/// own (`[mesh] move_home_after_s`), with nothing lost or duplicated across the three
/// nodes and no violation after the stop's gap — the move home included.
#[test]
fn demo_mesh_sigterm_and_restart_moves_zone_0_away_and_home() {
    // Bots crossing the borders (handoffs between the nodes), where the test above plays tag.
    // The nodes' logs at info: a failure under load shows the moves and each run's
    // settling beside the swarm's violations.
    let stdout = demo_mesh(
        &[
            "--sigterm",
            "--pattern",
            "cross",
            "--restart-after",
            "2",
            "--node-log",
            "info",
        ],
        "stopped n0 (SIGTERM)",
        "before the stop",
    );
    let serving = zone_0_serving_s(&stdout);
    // 0.1-0.2 s on an idle machine; a suspicion alone takes 0.5 s.
    assert!(serving < 0.5, "zone 0 serving after {serving} s\n{stdout}");
    let home = stdout
        .lines()
        .find(|l| l.contains("zone 0 home on n0 in"))
        .unwrap_or_default();
    assert!(home.contains(" s "), "{home}\n{stdout}");
}

/// Runs `meridian demo --mesh` (24 bots, 12 s — 16 s with `--restart-after` — n0 ended
/// after 5 s) with `extra` arguments;
/// checks the summary (`ended`: how n0 ended; `before`: the violations' first part) and
/// returns its standard output.
fn demo_mesh(extra: &[&str], ended: &str, before: &str) -> String {
    // Three node processes and a swarm on two cores: the machine to itself.
    let _machine = crate::alone();
    // A base with its three zone ports, control and admin ports free a moment ago.
    let offsets: Vec<u16> = (0..3u16)
        .flat_map(|k| [10 * k, 10 * k + 1, 10 * k + 2, 100 + 10 * k, 200 + 10 * k])
        .collect();
    let port = crate::free_ports_at(&offsets);
    let duration = if extra.contains(&"--restart-after") {
        "16"
    } else {
        "12"
    };
    let out = meridian()
        .args([
            "demo",
            "--mesh",
            "--clients",
            "24",
            "--duration",
            duration,
            "--kill-after",
            "5",
        ])
        .args(["--port", &port.to_string()])
        .args(extra)
        // The swarm's violations with their details (the demo keeps them from its log).
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "NPCs lost                0",
        "NPCs duplicated          0",
        ended,
    ] {
        assert!(stdout.contains(line), "no {line:?} in\n{stdout}");
    }
    let serving = stdout
        .lines()
        .find(|l| l.contains("zone 0 serving on n2 in"))
        .unwrap_or_default();
    assert!(serving.contains(" s "), "{serving}\n{stdout}");
    // The swarm sees nothing wrong but the failover's gap: a client whose session the new
    // run lost (it had just crossed into zone 0) timed out after it.
    let violations = stdout
        .lines()
        .find(|l| l.contains("swarm violations"))
        .unwrap_or_default();
    assert!(
        violations.contains(&format!(" 0 {before}")) && violations.ends_with(", 0 after"),
        "{violations}\n{stdout}\n{stderr}\n{}",
        node_logs(&stdout)
    );
    // The owner and visibility checks ran across the three nodes (the killed one skipped).
    for (check, unit) in [
        ("two owners", "admin samples"),
        ("visibility", "sampled views"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("violations: {check}")))
            .unwrap_or_default();
        let samples: u64 = line
            .split("(in ")
            .nth(1)
            .and_then(|rest| rest.strip_suffix(&format!(" {unit})")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(samples > 0, "{line}\n{stdout}");
    }
    stdout
}

/// What the demo's nodes logged that explains a failure: their warnings and errors, each
/// zone run's restore and settling (from the demo's directory, named in `stdout`).
fn node_logs(stdout: &str) -> String {
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("logs and data: "))
        .unwrap_or_default();
    let mut out = String::new();
    for node in ["n0", "n1", "n2"] {
        let path = std::path::Path::new(dir).join(format!("{node}.log"));
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        out.push_str(&format!("--- {node}.log (warnings, restores, settling)\n"));
        for line in log.lines().filter(|l| {
            ["WARN", "ERROR", "restored from", "holds its peers"]
                .iter()
                .any(|k| l.contains(k))
        }) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `meridian demo --mesh` refuses what cannot be shown before it starts anything: a
/// restart with `--move-zone` (n0 never stops), a restart with no time left for zone 0
/// to go home, a kill after the end, and `--restart-after` without `--mesh`.
#[test]
fn demo_mesh_refuses_a_restart_it_cannot_show() {
    for (args, says) in [
        (
            &["--mesh", "--move-zone", "--restart-after", "2"][..],
            "cannot be used with",
        ),
        (
            &[
                "--mesh",
                "--kill-after",
                "5",
                "--restart-after",
                "8",
                "--duration",
                "15",
            ][..],
            "leaves zone 0 no time to go home before the end of the run (--duration 15 s)",
        ),
        (
            &["--mesh", "--kill-after", "20", "--duration", "15"][..],
            "--kill-after (20 s) must come before the end of the run",
        ),
        (&["--restart-after", "2"][..], "--mesh"),
        (&["--node-log", "info"][..], "--mesh"),
    ] {
        let out = meridian().arg("demo").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// `meridian demo --mesh --move-zone`: n0, running on, is asked to move zone 0 to its
/// standby on n2 (`/move?zone=0`); zone 0 serves there within a fraction of a second,
/// nothing is lost or duplicated (a cut of all three nodes: n0 answers it), and the bots
/// see nothing wrong before or after. With `--node-log info` n0's log, kept in the
/// demo's directory, says how the zone stopped: its final checkpoint, held whole by n2.
#[test]
fn demo_mesh_move_zone_moves_zone_0_while_n0_runs_on() {
    let stdout = demo_mesh(
        &["--move-zone", "--pattern", "cross", "--node-log", "info"],
        "asked n0 to move zone 0 to n2",
        "before the ask",
    );
    assert!(stdout.contains("n0 declared down         no"), "{stdout}");
    let serving = zone_0_serving_s(&stdout);
    assert!(serving < 0.5, "zone 0 serving after {serving} s\n{stdout}");
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("logs and data: "))
        .unwrap_or_default();
    let log = std::fs::read_to_string(std::path::Path::new(dir).join("n0.log")).unwrap();
    for line in [
        "final checkpoint at tick",
        "zone 0 stopped to move to its standby (the standby holds it whole: true)",
    ] {
        assert!(log.contains(line), "no {line:?} in n0.log:\n{log}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The demo summary's "zone 0 serving on n2 in" figure, in seconds (`f64::MAX` if none).
fn zone_0_serving_s(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.split("zone 0 serving on n2 in").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::MAX)
}
