//! Which of a zone's background threads yield to the zones: only those doing bulk work
//! that no zone waits on.

use super::streaming;

/// The nice value of the task `stat` describes (its 19th field; the name before it, in
/// parentheses, may hold spaces).
fn nice(stat: &str) -> Option<i64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(16)?.parse().ok()
}

/// The nice values of this process's threads named `name` (as the kernel keeps it: 15
/// bytes at most).
fn nice_of(name: &str) -> Vec<i64> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("a task").path();
        // A thread may end between the listing and the reads: skipped.
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue;
        };
        if comm.trim_end() == name
            && let Some(n) = nice(&stat)
        {
            found.push(n);
        }
    }
    found
}

/// A zone with a standby holds its datagrams until the standby acknowledges what they
/// depend on, so the stream's thread (which sends the appends), its acknowledgement
/// reader and the standby's receiving thread run at the zone's priority; only encoding a
/// checkpoint (the primary's checkpoint thread), sealing it (the sealer) and verifying and
/// writing it (the standby's worker) run at nice 19. With the first three at nice 19 as
/// well, as before, the loaded move-home demo had swarm violations in every run of a
/// debug build (docs/mesh.md).
#[test]
fn the_threads_a_zone_waits_on_keep_its_priority_and_only_checkpoint_work_yields() {
    // A checkpoint at tick 40 starts the standby's worker.
    let (pdir, sdir, _, _server, _p) = streaming(("nice-p", "nice-s"));
    let own = nice(&std::fs::read_to_string("/proc/thread-self/stat").expect("own stat"))
        .expect("own nice");
    assert!(own < 19, "the test runs at nice {own}: it cannot tell");
    let waited_on = ["zone-0-standby", "zone-0-standby-", "standby-mirror"];
    let bulk = ["zone-0-ckp", "zone-0-sealer", "standby-checkpo"];
    for (names, want) in [(&waited_on[..], own), (&bulk[..], 19)] {
        for name in names {
            let found = nice_of(name);
            assert!(!found.is_empty(), "no thread named {name}");
            assert!(
                found.iter().all(|&n| n == want),
                "{name} runs at nice {found:?}, not {want}"
            );
        }
    }
    for d in [pdir, sdir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// The appends the zone waits on go out while a checkpoint is being sealed: the sealer
/// (nice 19, starved on a saturated machine) pauses before checkpoint 2 for 1.5 s, and
/// the standby acknowledges every append made meanwhile before the pause ends. With the
/// checkpoint sealed on the stream's own thread, or waited for there, the appends queue
/// behind it.
#[test]
fn a_checkpoint_sealed_slowly_holds_no_append_back() {
    use crate::standby::hooks::{self as tests_hooks, Point};
    use std::time::{Duration, Instant};
    let (pdir, sdir, standby_dir, _server, mut p) = streaming(("seal-p", "seal-s"));
    tests_hooks::pause_once(&pdir, Point::Sealing, Duration::from_millis(1500));
    // Checkpoint 2 at tick 80.
    p.run(30);
    let started = Instant::now();
    while !tests_hooks::pausing(&pdir) {
        assert!(started.elapsed() < Duration::from_secs(10), "never sealing");
        std::thread::sleep(Duration::from_millis(2));
    }
    // Appends fed after the checkpoint.
    p.run(5);
    p.wait_acked();
    assert!(
        tests_hooks::pausing(&pdir),
        "the appends were acknowledged only after the checkpoint was sealed"
    );
    // The checkpoint goes out after its pause, and the copy is whole.
    super::assert_same(&p, &standby_dir);
    for d in [pdir, sdir] {
        let _ = std::fs::remove_dir_all(d);
    }
}
